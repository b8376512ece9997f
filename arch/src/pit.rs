//! The 8254 Programmable Interval Timer, used to calibrate the TSC when CPUID does not state
//! its frequency (and to check it when it does).
//!
//! Channel 2 is the one whose gate software controls (port 0x61 bit 0) and whose output it
//! can read (port 0x61 bit 5). Programmed in mode 0 ("interrupt on terminal count") with the
//! full count, it counts down for about 55 ms and raises its output at zero (Intel 8254
//! datasheet, "Mode 0"; the PC wiring of port 0x61 is in the IBM PC/AT reference).
//!
//! # Implementation
//! Under an emulator the calibrating CPU can be descheduled for milliseconds at any point,
//! so the measurement must not depend on when it happens to look. Each sample latches the
//! counter between two TSC reads, and the sample's error is the width of that bracket;
//! [`measure_tsc_hz`] takes a start sample, polls until at least [`TARGET_TICKS`] have
//! passed, and accepts the run only if both brackets are narrow compared with the interval
//! and the counter has not reached zero (output still low, so no wrap-around). Runs that
//! fail these checks are repeated; the most precise run wins.

use x86_64::instructions::port::Port;

use crate::tsc;

/// The PIT input clock, in Hz (8254 datasheet; 1.193182 MHz on the PC).
pub const PIT_HZ: u64 = 1_193_182;
/// Channel 2 data port.
const CHANNEL2_DATA: u16 = 0x42;
/// Mode/command register.
const MODE_COMMAND: u16 = 0x43;
/// PC system control port B: bit 0 = channel 2 gate, bit 1 = speaker, bit 5 = channel 2 out.
const SYSTEM_CONTROL_B: u16 = 0x61;
/// Command: channel 2, access low then high byte, mode 0, binary.
const CMD_CHANNEL2_LOHI_MODE0: u8 = 0b1011_0000;
/// Command: latch channel 2's count.
const CMD_CHANNEL2_LATCH: u8 = 0b1000_0000;
const GATE2: u8 = 1 << 0;
const SPEAKER: u8 = 1 << 1;
const OUT2: u8 = 1 << 5;
/// Counts measured per run: about 17 ms, leaving 38 ms before the counter reaches zero, so a
/// CPU descheduled for tens of milliseconds (TCG, 64 vCPUs on two host cores) still ends
/// most runs in time.
pub const TARGET_TICKS: u16 = 20_000;
/// A run is good enough when its brackets add up to less than 1/`PRECISION` of it.
const PRECISION: u64 = 2000;
/// Runs tried before settling for the best one seen (at most about 5.5 s).
const MAX_RUNS: usize = 100;
/// Polls per run before declaring the PIT dead (a live one reaches zero in far fewer).
const MAX_POLLS: u64 = 1 << 28;

/// A counter value latched between two TSC reads.
#[derive(Clone, Copy)]
struct Sample {
    tsc_mid: u64,
    width: u64,
    count: u16,
}

/// One calibration run: TSC cycles over PIT ticks, and its error bound in TSC cycles.
#[derive(Clone, Copy)]
struct Run {
    cycles: u64,
    ticks: u64,
    error: u64,
}

/// Measures the TSC frequency against the PIT, in Hz.
pub fn measure_tsc_hz() -> Result<u64, &'static str> {
    let mut best: Option<Run> = None;
    for _ in 0..MAX_RUNS {
        let Some(run) = one_run()? else { continue };
        if best.is_none_or(|b| run.error * b.cycles < b.error * run.cycles) {
            best = Some(run);
        }
        if run.error * PRECISION <= run.cycles {
            break;
        }
    }
    let run = best.ok_or("every PIT calibration run was disturbed")?;
    Ok(run.cycles * PIT_HZ / run.ticks)
}

/// One run; `None` if the counter reached zero before a clean end sample was taken.
fn one_run() -> Result<Option<Run>, &'static str> {
    start_countdown();
    let start = (0..3)
        .map(|_| sample())
        .min_by_key(|s| s.width)
        .expect("three samples");
    for _ in 0..MAX_POLLS {
        let end = sample();
        if output_high() {
            return Ok(None);
        }
        let ticks = u64::from(start.count.saturating_sub(end.count));
        if ticks < u64::from(TARGET_TICKS) {
            continue;
        }
        let cycles = end.tsc_mid.saturating_sub(start.tsc_mid);
        let error = start.width + end.width;
        if error * PRECISION <= cycles || ticks > u64::from(TARGET_TICKS) * 5 / 4 {
            return Ok(Some(Run {
                cycles,
                ticks,
                error,
            }));
        }
    }
    Err("the PIT never counted down (no 8254?)")
}

/// Programs channel 2 in mode 0 with the full count and opens its gate.
fn start_countdown() {
    let mut control = Port::<u8>::new(SYSTEM_CONTROL_B);
    let mut command = Port::<u8>::new(MODE_COMMAND);
    let mut data = Port::<u8>::new(CHANNEL2_DATA);
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and system control port of every PC; the
    // writes only program channel 2 (speaker off) and touch no memory.
    unsafe {
        let old = control.read();
        control.write(old & !(SPEAKER | GATE2));
        command.write(CMD_CHANNEL2_LOHI_MODE0);
        data.write(0xff);
        data.write(0xff);
        control.write((old & !SPEAKER) | GATE2);
    }
}

/// Latches and reads channel 2's count between two TSC reads.
fn sample() -> Sample {
    let mut command = Port::<u8>::new(MODE_COMMAND);
    let mut data = Port::<u8>::new(CHANNEL2_DATA);
    let before = tsc::now();
    // SAFETY: latching and reading channel 2's count has no effect beyond the PIT.
    let count = unsafe {
        command.write(CMD_CHANNEL2_LATCH);
        let low = data.read();
        let high = data.read();
        u16::from_le_bytes([low, high])
    };
    let after = tsc::now();
    Sample {
        tsc_mid: before + (after - before) / 2,
        width: after - before,
        count,
    }
}

/// Whether channel 2 reached zero.
fn output_high() -> bool {
    // SAFETY: reading the system control port has no side effects.
    unsafe { Port::<u8>::new(SYSTEM_CONTROL_B).read() & OUT2 != 0 }
}
