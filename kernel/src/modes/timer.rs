//! `test=timer`: every CPU's periodic APIC timer ticks, and not faster than programmed.
//!
//! Reads every CPU's tick count, waits [`WINDOW`] by the TSC, reads again, and requires each
//! CPU's ticks in the window to lie within [`MIN_PERCENT`]..[`MAX_PERCENT`] of
//! `TIMER_HZ * WINDOW`. The lower bound is low on purpose: under TCG on a busy host a vCPU
//! that is not scheduled loses ticks (a period that expires while the previous tick is
//! still pending merges with it), measured down to a fifth of the rate with two 8-CPU runs
//! on two host cores. A dead timer, or one 16 times too slow (the divider forgotten), still
//! fails; one too fast fails the upper bound. The calibration itself is checked on the host
//! against QEMU's fixed 1 GHz APIC clock.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// How long ticks are counted.
const WINDOW: Duration = Duration::from_secs(1);
/// Fewest ticks accepted, in percent of the expected count.
const MIN_PERCENT: u64 = 10;
/// Most ticks accepted, in percent of the expected count.
const MAX_PERCENT: u64 = 150;

/// Counts every CPU's ticks over [`WINDOW`] and checks the rate.
pub fn run() -> Result<(), String> {
    let areas = smp::area::areas();
    let before: Vec<u64> = areas.iter().map(|a| a.ticks()).collect();
    let waited = arch::tsc::spin_for(WINDOW);
    let after: Vec<u64> = areas.iter().map(|a| a.ticks()).collect();
    let expected = u64::from(arch::apic::TIMER_HZ) * waited.as_millis() as u64 / 1000;
    let (low, high) = (expected * MIN_PERCENT / 100, expected * MAX_PERCENT / 100);
    let mut bad = Vec::new();
    for (cpu, (b, a)) in before.iter().zip(&after).enumerate() {
        let ticks = a - b;
        arch::println!("TIMER cpu={cpu} ticks={ticks} expected={expected}");
        if !(low..=high).contains(&ticks) {
            bad.push((cpu, ticks));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tick counts outside {low}..={high}: {bad:?} (cpu, ticks)"
        ))
    }
}
