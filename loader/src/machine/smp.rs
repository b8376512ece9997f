//! Starting the APs: INIT-SIPI-SIPI to each, one at a time, until it is parked.
//!
//! The sequence is Intel SDM Vol. 3A 9.4.4.1 ("Typical BSP Initialization Sequence"): INIT,
//! 10 ms, start-up IPI, 200 µs, a second start-up IPI (ignored by an AP already running). The
//! loader then waits for the AP to report from its parking loop, for at most
//! [`AP_TIMEOUT_MS`]; an AP that does not is an error naming its APIC ID, never a hang.
//!
//! # Implementation
//! APs start one at a time because they share the trampoline's data page (their info pointer
//! is in it); by the time the next AP is started, the previous one has read everything it
//! needs and is spinning on its own `goto_address`.

use super::lapic::Lapic;
use super::timer::Tsc;
use super::trampoline::{Trampoline, TrampolineConfig};
use loader::Error;
use loader::answer::MpCpu;
use loader::memmap::MemoryMap;
use loader::phys::PhysMem;
use loader::protocol::mp_info;

/// Delay after INIT before the first start-up IPI (SDM 9.4.4.1).
const INIT_DELAY_US: u64 = 10_000;
/// Delay between the two start-up IPIs (SDM 9.4.4.1).
const SIPI_DELAY_US: u64 = 200;
/// How long one AP may take to reach its parking loop. Real hardware needs microseconds;
/// under TCG with many vCPUs on few host cores an AP can wait long for a host thread (real
/// Limine's 255-CPU boot here averages 0.5 s per AP), so the limit is generous.
pub const AP_TIMEOUT_MS: u64 = 5_000;

/// Starts every CPU of `cpus` except the BSP and parks it on its `limine_mp_info`, info `i`
/// being at physical `infos + 32 * i`. Returns how many APs were started.
pub fn start_aps(
    mem: &mut impl PhysMem,
    map: &mut MemoryMap,
    lapic: &Lapic,
    cpus: &[MpCpu],
    infos: u64,
    config: TrampolineConfig,
) -> Result<usize, Error> {
    let bsp = lapic.id();
    if cpus.iter().all(|c| c.lapic_id == bsp) {
        return Ok(0);
    }
    let tsc = Tsc::calibrate()?;
    let trampoline = Trampoline::install(mem, map, config)?;
    let mut started = 0;
    for (i, cpu) in cpus.iter().enumerate().filter(|(_, c)| c.lapic_id != bsp) {
        trampoline.arm(mem, infos + mp_info::SIZE * i as u64)?;
        start_one(lapic, &tsc, &trampoline, cpu.lapic_id)?;
        started += 1;
    }
    Ok(started)
}

/// INIT-SIPI-SIPI to `lapic_id`, then waits for it to park.
fn start_one(
    lapic: &Lapic,
    tsc: &Tsc,
    trampoline: &Trampoline,
    lapic_id: u32,
) -> Result<(), Error> {
    lapic.send_init(lapic_id, tsc)?;
    tsc.delay_us(INIT_DELAY_US);
    lapic.send_startup(lapic_id, trampoline.vector(), tsc)?;
    tsc.delay_us(SIPI_DELAY_US);
    if !trampoline.has_booted() {
        lapic.send_startup(lapic_id, trampoline.vector(), tsc)?;
    }
    let deadline = tsc.deadline_us(AP_TIMEOUT_MS * 1000);
    while !trampoline.has_booted() {
        if tsc.is_past(deadline) {
            return Err(Error::ApTimeout { lapic_id });
        }
        core::hint::spin_loop();
    }
    Ok(())
}
