//! A `spin::Mutex` that counts its acquisitions, contention, waiting and longest hold.
//!
//! The global bitmap and the depot each sit behind a [`TimedLock`]; the per-CPU cache locks are
//! plain (their owner takes them uncontended, and timing them would cost the fast path two clock
//! reads). Times come from the allocator's clock ([`Clock`]): TSC cycles in the kernel.
//!
//! # Implementation
//! `spin::Mutex` counts nothing, so the wrapper detects contention itself: a taker first calls
//! `try_lock` once; only if that fails is the acquisition contended, and only then is the
//! clock read before spinning in `lock`. The counters are written while the lock is
//! held, so each has one writer at a time and a relaxed load and store suffice; the longest
//! hold is recorded when the guard drops, still inside the critical section.
#![deny(unsafe_code)]

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::raw::Clock;
use crate::stats::LockStats;
use crate::sync::{Mutex, MutexGuard, const_unless_loom};

/// A `spin::Mutex` with contention counters.
pub(crate) struct TimedLock<T> {
    lock: Mutex<T>,
    acquisitions: AtomicU64,
    contended: AtomicU64,
    wait_cycles: AtomicU64,
    max_hold_cycles: AtomicU64,
    /// Cycles the lock was held, summed over every hold since it was made (never reset: the
    /// depot reads differences of it to measure how busy its lock is).
    held_cycles: AtomicU64,
}

/// Holds a [`TimedLock`]; records the hold time and releases the lock when dropped.
pub(crate) struct TimedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    owner: &'a TimedLock<T>,
    clock: &'a Clock,
    acquired_at: u64,
    contended: bool,
}

/// Adds `n` to a counter that only the lock holder writes.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl<T> TimedLock<T> {
    const_unless_loom! {
        /// An unlocked lock around `value`, counters at 0.
        pub(crate) fn new(value: T) -> Self {
            Self {
                lock: Mutex::new(value),
                acquisitions: AtomicU64::new(0),
                contended: AtomicU64::new(0),
                wait_cycles: AtomicU64::new(0),
                max_hold_cycles: AtomicU64::new(0),
                held_cycles: AtomicU64::new(0),
            }
        }
    }

    /// Takes the lock, counting the acquisition and timing any wait with `clock`.
    #[inline]
    pub(crate) fn lock<'a>(&'a self, clock: &'a Clock) -> TimedGuard<'a, T> {
        let (guard, acquired_at, waited) = match self.lock.try_lock() {
            Some(guard) => (guard, clock.now(), None),
            None => {
                let started = clock.now();
                let guard = self.lock.lock();
                let now = clock.now();
                (guard, now, Some(now.saturating_sub(started)))
            }
        };
        add(&self.acquisitions, 1);
        if let Some(waited) = waited {
            add(&self.contended, 1);
            add(&self.wait_cycles, waited);
        }
        TimedGuard {
            guard,
            owner: self,
            clock,
            acquired_at,
            contended: waited.is_some(),
        }
    }

    /// Takes the lock without counting it: for reading statistics, which should not show up
    /// in the statistics they read.
    pub(crate) fn lock_quietly(&self) -> MutexGuard<'_, T> {
        self.lock.lock()
    }

    /// The counters (inexact while the lock is in use).
    pub(crate) fn stats(&self) -> LockStats {
        LockStats {
            acquisitions: self.acquisitions.load(Relaxed),
            contended: self.contended.load(Relaxed),
            wait_cycles: self.wait_cycles.load(Relaxed),
            max_hold_cycles: self.max_hold_cycles.load(Relaxed),
        }
    }

    /// Zeroes the counters, under the lock so no holder's update is half lost.
    pub(crate) fn reset_stats(&self) {
        let _held = self.lock.lock();
        for counter in [
            &self.acquisitions,
            &self.contended,
            &self.wait_cycles,
            &self.max_hold_cycles,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

impl<T> TimedGuard<'_, T> {
    /// Cycles the lock was held before this hold, summed over all earlier holds: exact, since
    /// only holders write it.
    pub(crate) fn held_cycles_before(&self) -> u64 {
        self.owner.held_cycles.load(Relaxed)
    }

    /// The clock reading when the lock was taken (0 without a clock).
    pub(crate) fn acquired_at(&self) -> u64 {
        self.acquired_at
    }

    /// Whether taking the lock had to wait for another holder.
    pub(crate) fn was_contended(&self) -> bool {
        self.contended
    }
}

impl<T> Drop for TimedGuard<'_, T> {
    fn drop(&mut self) {
        let held = self.clock.now().saturating_sub(self.acquired_at);
        add(&self.owner.held_cycles, held);
        let max = &self.owner.max_hold_cycles;
        if held > max.load(Relaxed) {
            max.store(held, Relaxed);
        }
        // `self.guard` drops after this body: the lock is released last.
    }
}

impl<T> Deref for TimedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for TimedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU64;

    static TICKS: AtomicU64 = AtomicU64::new(0);
    fn tick() -> u64 {
        TICKS.fetch_add(10, Relaxed)
    }

    #[test]
    fn counts_acquisitions_and_hold_time() {
        let clock = Clock::new();
        clock.set(tick);
        let lock = TimedLock::new(5u32);
        {
            let mut g = lock.lock(&clock);
            *g += 1;
        }
        assert_eq!(*lock.lock(&clock), 6);
        let s = lock.stats();
        assert_eq!(s.acquisitions, 2);
        assert_eq!(s.contended, 0);
        assert_eq!(s.wait_cycles, 0);
        assert!(s.max_hold_cycles >= 10, "{s:?}");
        drop(lock.lock_quietly());
        assert_eq!(lock.stats().acquisitions, 2);
        lock.reset_stats();
        assert_eq!(lock.stats(), LockStats::default());
    }

    static CONTENDED_TICKS: AtomicU64 = AtomicU64::new(0);
    fn contended_tick() -> u64 {
        CONTENDED_TICKS.fetch_add(10, Relaxed)
    }

    #[test]
    fn counts_contention_and_wait() {
        let clock = Clock::new();
        clock.set(contended_tick);
        let lock = TimedLock::new(0u64);
        std::thread::scope(|s| {
            let held = lock.lock(&clock);
            let ticks_while_held = CONTENDED_TICKS.load(Relaxed);
            s.spawn(|| *lock.lock(&clock) += 1);
            // The waiter reads the clock only once its try fails: then it is contended.
            while CONTENDED_TICKS.load(Relaxed) == ticks_while_held {
                std::thread::yield_now();
            }
            drop(held);
        });
        let s = lock.stats();
        assert_eq!(*lock.lock_quietly(), 1);
        assert_eq!(s.acquisitions, 2);
        assert_eq!(s.contended, 1);
        assert!(s.wait_cycles > 0, "{s:?}");
    }

    #[test]
    fn without_a_clock_times_are_zero() {
        let clock = Clock::new();
        let lock = TimedLock::new(());
        drop(lock.lock(&clock));
        assert_eq!(lock.stats().max_hold_cycles, 0);
        assert_eq!(lock.stats().acquisitions, 1);
    }
}
