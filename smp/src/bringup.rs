//! CPU bring-up bookkeeping: the online mask and the BSP's wait for the APs.
//!
//! An AP calls [`mark_online`] once it can take part in cross-CPU work (tables, local APIC,
//! timer, interrupts on). The BSP calls [`wait_for_all_online`], which gives up after a
//! timeout and returns the indices of the CPUs that never came, so a lost AP is a named
//! failure rather than a hang. APs may come up in any order.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::time::Duration;

use arch::tsc::Deadline;
use spin::Once;

use crate::cpuset::CpuSet;
use crate::pin::PinnedCpu;

static ONLINE: Once<CpuSet> = Once::new();

/// Creates the online mask with only the BSP in it.
pub(crate) fn init_online(cpu_count: usize) {
    ONLINE.call_once(|| CpuSet::new(cpu_count)).insert(0);
}

/// The CPUs that finished bring-up. Panics before `smp::init_bsp`.
pub fn online() -> &'static CpuSet {
    ONLINE.get().expect("online mask used before smp::init_bsp")
}

/// Number of CPUs online (1 before `smp::init_bsp`).
pub fn online_count() -> usize {
    ONLINE.get().map_or(1, CpuSet::count)
}

/// Marks the current CPU online. Panics if it already was.
pub fn mark_online(pin: &PinnedCpu) {
    assert!(
        online().insert(pin.cpu_id()),
        "cpu {} marked online twice",
        pin.cpu_id()
    );
}

/// Waits until every CPU is online; on timeout returns the missing CPU indices.
pub fn wait_for_all_online(timeout: Duration) -> Result<(), Vec<usize>> {
    let online = online();
    let deadline = Deadline::after(timeout);
    while online.count() < online.len() {
        if deadline.is_past() {
            return Err(online.missing());
        }
        core::hint::spin_loop();
    }
    Ok(())
}
