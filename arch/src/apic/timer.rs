//! The local APIC timer: calibrated once against the TSC, then periodic on every CPU.
//!
//! The timer counts the bus clock divided by 16 (SDM Vol. 3A §11.5.4, "APIC Timer"); its
//! frequency is not architectural, so the BSP measures it against the TSC (see
//! [`calibrate_timer`]) and every CPU then programs the same periodic count for [`TIMER_HZ`]
//! ticks a second.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use x2apic::lapic::{TimerDivide, TimerMode};

use crate::cpu_local;
use crate::irq::IrqGuard;
use crate::tsc;

/// Timer interrupts per second on every CPU: frequent enough to show that each CPU ticks
/// within a test's few seconds, rare enough to cost nothing under TCG at 64 CPUs.
pub const TIMER_HZ: u32 = 100;
/// How long one calibration run measures the timer against the TSC.
const CALIBRATION: Duration = Duration::from_millis(20);
/// Runs tried before settling for the most precise one.
const MAX_RUNS: usize = 20;
/// A run is good enough when its brackets add up to less than 1/`PRECISION` of it.
const PRECISION: u64 = 2000;
/// The divider programmed in the divide configuration register.
const DIVIDER: u64 = 16;

/// Initial count for one period at [`TIMER_HZ`]; 0 until calibrated.
static PERIOD_COUNT: AtomicU32 = AtomicU32::new(0);

/// Measures the timer's input frequency (bus clock, in Hz) on this CPU and records the
/// periodic count. BSP, once, after [`tsc::init`] and [`super::init_this_cpu`].
///
/// Like the PIT calibration, each reading of the timer's current count is bracketed by two
/// TSC reads, and a run counts only if the brackets are narrow compared with the interval,
/// so a descheduled vCPU (TCG at many CPUs) cannot skew the result; the most precise of up
/// to [`MAX_RUNS`] runs wins.
pub fn calibrate_timer(irq: &IrqGuard) -> Result<u64, &'static str> {
    let (counts, cycles) = cpu_local::with_local_apic(irq, |l| {
        let apic = l.inner_mut();
        // SAFETY: reprogramming this CPU's timer, masked; no memory effects.
        unsafe {
            apic.disable_timer();
            apic.set_timer_divide(TimerDivide::Div16);
            apic.set_timer_mode(TimerMode::OneShot);
        }
        let mut best: Option<Run> = None;
        for _ in 0..MAX_RUNS {
            let run = one_run(apic);
            if best.is_none_or(|b| run.error * b.cycles < b.error * run.cycles) {
                best = Some(run);
            }
            if run.error * PRECISION <= run.cycles {
                break;
            }
        }
        // SAFETY: stopping the one-shot timer; no memory effects.
        unsafe { apic.set_timer_initial(0) };
        let run = best.expect("MAX_RUNS > 0");
        (run.counts, run.cycles)
    })
    .ok_or("local APIC not set up")?;
    let tsc_hz = tsc::hz().ok_or("TSC not calibrated")?;
    let bus_hz =
        u128::from(counts) * u128::from(DIVIDER) * u128::from(tsc_hz) / u128::from(cycles.max(1));
    let period = bus_hz / u128::from(DIVIDER) / u128::from(TIMER_HZ);
    if period == 0 || period > u128::from(u32::MAX) {
        return Err("APIC timer frequency out of range");
    }
    PERIOD_COUNT.store(period as u32, Ordering::Relaxed);
    Ok(bus_hz as u64)
}

/// One calibration run: timer counts and TSC cycles over [`CALIBRATION`], with the error
/// bound of the two brackets in TSC cycles.
#[derive(Clone, Copy)]
struct Run {
    counts: u64,
    cycles: u64,
    error: u64,
}

fn one_run(apic: &mut x2apic::lapic::LocalApic) -> Run {
    // SAFETY: arming this CPU's masked one-shot timer; no memory effects.
    unsafe { apic.set_timer_initial(u32::MAX) };
    let start = bracketed_count(apic);
    let deadline = tsc::Deadline::after(CALIBRATION);
    while !deadline.is_past() {
        core::hint::spin_loop();
    }
    let end = bracketed_count(apic);
    Run {
        counts: u64::from(start.1.saturating_sub(end.1)),
        cycles: end.0.saturating_sub(start.0),
        error: start.2 + end.2,
    }
}

/// (TSC midpoint, current count, bracket width).
fn bracketed_count(apic: &x2apic::lapic::LocalApic) -> (u64, u32, u64) {
    let before = tsc::now();
    // SAFETY: reading the current-count register has no side effects.
    let count = unsafe { apic.timer_current() };
    let after = tsc::now();
    (before + (after - before) / 2, count, after - before)
}

/// Starts this CPU's periodic timer at [`TIMER_HZ`].
pub fn start_timer(irq: &IrqGuard) -> Result<(), &'static str> {
    let period = PERIOD_COUNT.load(Ordering::Relaxed);
    if period == 0 {
        return Err("APIC timer not calibrated");
    }
    cpu_local::with_local_apic(irq, |l| {
        let apic = l.inner_mut();
        // SAFETY: programming this CPU's timer, whose vector the IDT handles.
        unsafe {
            apic.set_timer_divide(TimerDivide::Div16);
            apic.set_timer_mode(TimerMode::Periodic);
            apic.set_timer_initial(period);
            apic.enable_timer();
        }
    })
    .ok_or("local APIC not set up")
}
