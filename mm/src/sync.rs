//! The synchronising primitives of the allocator, swapped for loom's under `cfg(loom)`.
//!
//! Only what orders frames between CPUs goes through here: the locks of the three layers and
//! the two atomics that steer the slow paths (the mode and the reclaim flag). Statistics
//! counters and the checked bitmap use `core` atomics directly: loom need not explore them.
//!
//! # Implementation
//! Two locks, both busy-waiting:
//! - [`Mutex`], the lock of the shared layers (the global bitmap and the depot), is
//!   `spin::Mutex`, wrapped by [`crate::lock::TimedLock`] for its contention counters.
//! - [`SpinLock`], the per-CPU cache lock, is [`crate::raw::RawSpinLock`]: the fast path takes
//!   it twice per alloc+free pair, and its one-`xchg` acquisition saves two instructions per
//!   pair over `spin::Mutex`'s compare-exchange (the pair is now 50, 59 with `checked`;
//!   `mm/benches/instructions.sh`).
//!
//! Both are unlocked when all bytes are zero (`spin::Mutex` is a `false` flag, or two zero
//! ticket counters with spin's `use_ticket_mutex`; `tests/api.rs` takes the locks of a zeroed
//! allocator). Under loom both are `loom::sync::Mutex`, whose
//! constructor is not `const`: constructors that must be `const` in the kernel use
//! [`const_unless_loom!`].
#![deny(unsafe_code)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU8, AtomicUsize};

/// Declares a function `const` in normal builds and non-`const` under loom, whose locks and
/// atomics cannot be built in a constant.
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $($rest)*

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $($rest)*
    };
}
pub(crate) use const_unless_loom;

/// The lock of the global bitmap and the depot: `spin::Mutex` (loom's model lock under
/// `cfg(loom)`). Off the fast path; always taken through [`crate::lock::TimedLock`].
#[cfg(not(loom))]
pub(crate) type Mutex<T> = spin::Mutex<T>;
/// Proof of holding a [`Mutex`]; releases it when dropped.
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The lock of the global bitmap and the depot (loom's model lock under `cfg(loom)`).
#[cfg(loom)]
pub(crate) type Mutex<T> = SpinLock<T>;
/// Proof of holding a [`Mutex`]; releases it when dropped.
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = SpinGuard<'a, T>;

/// The per-CPU cache lock: a busy-waiting lock taken in one `xchg` (loom's model lock under
/// `cfg(loom)`).
pub(crate) struct SpinLock<T> {
    #[cfg(not(loom))]
    inner: crate::raw::RawSpinLock<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// Proof of holding a [`SpinLock`]; releases it when dropped.
#[cfg(not(loom))]
pub(crate) type SpinGuard<'a, T> = crate::raw::RawSpinGuard<'a, T>;
/// Proof of holding a [`SpinLock`]; releases it when dropped.
#[cfg(loom)]
pub(crate) type SpinGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> SpinLock<T> {
    const_unless_loom! {
        /// An unlocked lock around `value`.
        pub(crate) fn new(value: T) -> Self {
            #[cfg(not(loom))]
            let inner = crate::raw::RawSpinLock::new(value);
            #[cfg(loom)]
            let inner = loom::sync::Mutex::new(value);
            Self { inner }
        }
    }

    /// Spins until the lock is free, then takes it.
    #[inline(always)]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }

    /// Takes the lock if it is free right now. Only loom builds need it: there this type is
    /// also the [`Mutex`] that [`crate::lock::TimedLock`] tries before it spins.
    #[cfg(loom)]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}
