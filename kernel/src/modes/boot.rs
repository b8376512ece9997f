//! `test=boot`: every CPU came online (checked by the bring-up before any mode runs) and
//! every CPU's timer ticks.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use arch::tsc::Deadline;

/// How long every CPU gets to take its first timer tick.
const FIRST_TICK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the online mask and waits for a timer tick on every CPU.
pub fn run() -> Result<(), String> {
    let online = smp::bringup::online_count();
    if online != smp::cpu_count() {
        return Err(format!("{online} of {} cpus online", smp::cpu_count()));
    }
    let deadline = Deadline::after(FIRST_TICK_TIMEOUT);
    loop {
        let silent: Vec<usize> = smp::area::areas()
            .iter()
            .filter(|a| a.ticks() == 0)
            .map(|a| a.index())
            .collect();
        if silent.is_empty() {
            break;
        }
        if deadline.is_past() {
            return Err(format!("cpus {silent:?} took no timer tick"));
        }
        core::hint::spin_loop();
    }
    let ticks = smp::area::areas().iter().map(|a| a.ticks());
    let (min, max) = ticks.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    arch::println!("timer ticks: min={min} max={max} over {online} cpus");
    Ok(())
}
