//! Bringing the APs up through the Limine MP response.
//!
//! [`init_areas`] maps a kernel stack for every CPU and creates the per-CPU areas (the BSP's
//! installed at once); [`start_aps`] writes each AP's `extra_argument` (its area) and then its
//! `goto_address`; [`wait_for_aps`] waits for all of them with a timeout that names the
//! missing ones. An AP enters at [`ap_entry`] on the bootloader's stack, installs its area,
//! moves to its own kernel stack and runs [`crate::ap_main`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;

use limine::mp::Cpu;
use smp::CpuDesc;
use x86_64::VirtAddr;

use crate::boot::{BootInfo, responses};
use crate::memory;

/// Shortest wait for the APs.
const MIN_AP_WAIT: Duration = Duration::from_secs(10);
/// Extra wait per CPU: TCG on two host cores starts 64 CPUs in seconds, but be generous.
const AP_WAIT_PER_CPU: Duration = Duration::from_millis(500);

/// Maps every CPU's kernel stack and creates the per-CPU areas; installs the BSP's.
pub fn init_areas(boot: &BootInfo) -> &'static smp::CpuArea {
    let descs: Vec<CpuDesc> = boot
        .lapic_ids
        .iter()
        .map(|&lapic_id| CpuDesc {
            lapic_id,
            stack_top: memory::new_kernel_stack(),
        })
        .collect();
    // SAFETY: on the BSP, after `arch::cpu::init_bsp_early` and the heap, before any AP
    // starts (APs start in `start_aps`, later in the BSP's list).
    unsafe { smp::init_bsp(&descs) }
}

/// Sends every AP to [`ap_entry`] with its per-CPU area as the boot argument.
pub fn start_aps() {
    for (index, cpu) in responses::cpus_bsp_first().enumerate().skip(1) {
        let argument = smp::area::boot_argument(index).expect("an area exists for every CPU");
        cpu.extra.store(argument, Ordering::Release);
        cpu.goto_address.write(ap_entry);
    }
}

/// Waits until every AP is online; the error names the missing CPUs, their local APIC IDs
/// and how long they were given.
pub fn wait_for_aps(boot: &BootInfo) -> Result<Duration, String> {
    let timeout = MIN_AP_WAIT.max(AP_WAIT_PER_CPU * smp::cpu_count() as u32);
    let start = arch::tsc::Instant::now();
    smp::bringup::wait_for_all_online(timeout).map_err(|missing| {
        let lapics: Vec<u32> = missing.iter().map(|&cpu| boot.lapic_ids[cpu]).collect();
        format!(
            "cpus {missing:?} (lapic ids {lapics:?}) did not come online within {} s",
            timeout.as_secs()
        )
    })?;
    Ok(start.elapsed())
}

/// An AP's first instructions: install its area, switch to its own stack.
///
/// # Safety
/// Only the bootloader calls this, once per AP, through `goto_address`.
unsafe extern "C" fn ap_entry(info: &Cpu) -> ! {
    let argument = info.extra.load(Ordering::Acquire);
    // SAFETY: first thing on this AP, with the argument the BSP wrote for it alone.
    let area = unsafe { smp::area::enter_ap(argument) };
    // SAFETY: the stack was mapped for this CPU alone in `init_areas`; nothing on the
    // bootloader's stack is used afterwards.
    unsafe { arch::cpu::run_on_stack(VirtAddr::new(area.stack_top()), ap_start, 0) }
}

extern "C" fn ap_start(_: usize) -> ! {
    crate::ap_main()
}
