//! Live counters: while a phase runs, one CPU (the BSP) prints a one-line summary of the
//! allocator's counters every [`INTERVAL`], so a long run shows progress on serial.
//!
//! The BSP polls between its own allocator operations (a TSC read per burst) and in its
//! waits, rather than printing from its timer interrupt: the summary takes the allocator's
//! statistics path, which must not run inside an interrupt that may have cut into an
//! allocator call. Each poll past the interval also runs the phase [`Watchdog`], which ends
//! the run when a CPU is stuck. A deputy CPU polls the watchdog alone, on its own interval
//! ([`Live::watch`]), so that a stuck BSP is reported too.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use mm::Mode;

use super::watchdog::Watchdog;
use crate::memory::{FRAMES, pin};

/// Time between two live lines.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The live reporter and watchdog of one phase run.
pub struct Live<'a> {
    phase: &'static str,
    mode: Mode,
    started: u64,
    /// When the reporter next prints and checks (TSC).
    next: AtomicU64,
    /// When the deputy next checks (TSC).
    next_watch: AtomicU64,
    watchdog: Watchdog<'a>,
}

impl<'a> Live<'a> {
    /// A reporter for `phase` in `mode` running `watchdog`, starting now.
    pub fn new(phase: &'static str, mode: Mode, watchdog: Watchdog<'a>) -> Self {
        let now = arch::tsc::now();
        let next = now + arch::tsc::cycles_in(INTERVAL);
        Live {
            phase,
            mode,
            started: now,
            next: AtomicU64::new(next),
            next_watch: AtomicU64::new(next),
            watchdog,
        }
    }

    /// The watchdog.
    pub fn watchdog(&self) -> &Watchdog<'a> {
        &self.watchdog
    }

    /// Prints a summary and runs the watchdog if the interval has passed; `own_ops` is the
    /// caller's progress. Ends the run (`RESULT FAIL watchdog: ...`) if a CPU is stuck.
    pub fn poll(&self, own_ops: u64) {
        if let Some(now) = interval_passed(&self.next) {
            // The watchdog first: the summary takes the allocator's locks, which a stuck CPU
            // may hold.
            self.check();
            self.print(now, own_ops);
        }
    }

    /// The deputy's poll: runs the watchdog alone if the interval has passed.
    pub fn watch(&self) {
        if interval_passed(&self.next_watch).is_some() {
            self.check();
        }
    }

    /// Runs the watchdog; ends the run if a CPU is stuck.
    fn check(&self) {
        let mode = super::report::mode_name(self.mode);
        if let Err((lines, verdict)) = self.watchdog.check(self.phase, mode) {
            for line in lines {
                arch::println!("{line}");
            }
            crate::modes::finish(Err(verdict));
        }
    }

    fn print(&self, now: u64, own_ops: u64) {
        let s = {
            // The statistics path takes the allocator's locks: interrupts off meanwhile.
            let _cpu = pin();
            FRAMES.stats()
        };
        arch::println!(
            "live: phase={} mode={} t={}ms cpu0_ops={own_ops} allocs={} frees={} hits={} \
             misses={} global_acq={} global_contended={} depot_acq={}",
            self.phase,
            super::report::mode_name(self.mode),
            arch::tsc::duration_of(now - self.started).as_millis(),
            s.cpu.allocs + s.cpu.contig_allocs,
            s.cpu.frees + s.cpu.contig_frees,
            s.cpu.hits,
            s.cpu.misses,
            s.global_lock.acquisitions,
            s.global_lock.contended,
            s.depot_lock.acquisitions,
        );
    }
}

/// The time now if `next` (TSC) has passed, moving `next` one [`INTERVAL`] on.
fn interval_passed(next: &AtomicU64) -> Option<u64> {
    let now = arch::tsc::now();
    if now < next.load(Ordering::Relaxed) {
        return None;
    }
    next.store(now + arch::tsc::cycles_in(INTERVAL), Ordering::Relaxed);
    Some(now)
}
