//! Time for the INIT-SIPI-SIPI delays and the AP timeouts: the TSC, calibrated against PIT
//! channel 2.
//!
//! Under QEMU TCG the PIT runs on the virtual clock, which follows host time, so a calibrated
//! TSC gives real durations however slowly the guest executes: a timeout of 5 s is 5 host
//! seconds, not 5 s of emulated instructions.
//!
//! # Implementation
//! Channel 2 is gated through port 0x61 (bit 0) and its output is readable there (bit 5), so it
//! can be polled without interrupts (the classic PIT calibration, as in Linux's
//! `pit_calibrate_tsc`). Mode 0 ("interrupt on terminal count") raises OUT when the count
//! reaches zero.

use super::cpu::{inb, outb, rdtsc};
use loader::Error;

/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms (fits the 16-bit counter, long enough for 1% accuracy).
const CALIBRATION_MS: u64 = 10;
/// Port 0x61 polls before concluding the PIT is dead; each poll is at least ~1 µs of I/O, so
/// this is far beyond the 10 ms window but still a bounded wait.
const MAX_POLLS: u32 = 50_000_000;

/// A TSC whose rate is known.
#[derive(Clone, Copy, Debug)]
pub struct Tsc {
    ticks_per_ms: u64,
}

impl Tsc {
    /// Measures the TSC rate over 10 ms of PIT channel 2.
    pub fn calibrate() -> Result<Tsc, Error> {
        let count = PIT_HZ * CALIBRATION_MS / 1000;
        // SAFETY: ports 0x61, 0x42 and 0x43 are the PC speaker gate and PIT channel 2, which
        // nothing else uses; the speaker output (bit 1) is kept off.
        let start = unsafe {
            outb(0x61, (inb(0x61) & !0x02) | 0x01);
            outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
            outb(0x42, count as u8);
            outb(0x42, (count >> 8) as u8);
            rdtsc()
        };
        // SAFETY: reading port 0x61 has no side effect.
        let expired = (0..MAX_POLLS).any(|_| unsafe { inb(0x61) } & 0x20 != 0);
        let ticks_per_ms = (rdtsc() - start) / CALIBRATION_MS;
        if !expired || ticks_per_ms == 0 {
            return Err(Error::NoTimer);
        }
        Ok(Tsc { ticks_per_ms })
    }

    /// The TSC value `us` microseconds from now.
    pub fn deadline_us(&self, us: u64) -> u64 {
        rdtsc() + us * self.ticks_per_ms / 1000
    }

    /// Whether `deadline` has passed.
    pub fn is_past(&self, deadline: u64) -> bool {
        rdtsc() >= deadline
    }

    /// Busy-waits `us` microseconds.
    pub fn delay_us(&self, us: u64) {
        let deadline = self.deadline_us(us);
        while !self.is_past(deadline) {
            core::hint::spin_loop();
        }
    }
}
