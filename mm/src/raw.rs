//! The crate's only `unsafe`: the CPU-guard contract, the per-CPU cache lock and the clock cell.
//!
//! - [`CpuGuard`] is an `unsafe trait`: the allocator trusts its implementors to prove that
//!   the caller alone plays CPU `cpu()`, which is what lets a CPU's counters be updated with
//!   plain loads and stores and its cache lock be uncontended.
//! - [`RawSpinLock`] is a test-and-test-and-set lock whose acquisition is one `xchg`, used only
//!   for the per-CPU cache locks (the global bitmap and the depot use `spin::Mutex`). The fast
//!   path takes a cache lock twice per alloc+free pair, and `spin::Mutex`'s compare-exchange
//!   cost two more instructions per pair when measured (59 instead of 57, 67 instead of 64
//!   with `checked`, before the cache table below; `mm/benches/instructions.sh`), against a
//!   budget of under 60.
//! - [`Clock`] keeps the lock-timing function pointer in an `AtomicPtr`, so `set_clock` works
//!   on an allocator that already lives in a `static` and is shared by every CPU.
//! - [`CacheTable`] holds the attached per-CPU caches as a pointer and a length, set once:
//!   the fast path finds a CPU's cache with one compare and two loads, where `spin::Once`
//!   would add a test of its state (3 instructions per operation, 6 per alloc+free pair).
//!
//! # Implementation
//! The lock hands out its `UnsafeCell` contents only through a guard that exists while the
//! flag is held. A function pointer goes into the clock cell as `*mut ()` and comes back out
//! by `transmute`; the cell accepts nothing but `fn() -> u64`, so every non-null value it
//! holds is one.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::cache::CpuCache;

#[cfg(not(loom))]
pub(crate) use spin_lock::{RawSpinGuard, RawSpinLock};

/// Proof that the holder runs on CPU `cpu()` with interrupts off (or, on the host, that this
/// thread alone plays that CPU), so the CPU's cache has no other local user meanwhile.
///
/// # Safety
/// Implementors guarantee that, while a value exists, no other code runs as `cpu()`: no other
/// thread or CPU holds a guard naming the same number, and no interrupt handler on this CPU
/// uses the allocator (interrupts are off). The allocator relies on it for its per-CPU
/// counters and for never contending on its own cache lock except with a remote drain.
pub unsafe trait CpuGuard {
    /// The number of the CPU this guard pins: the index of its cache in `attach_caches`.
    fn cpu(&self) -> usize;
}

/// The clock that times the global and depot locks: TSC in the kernel, a monotonic counter on
/// the host. Until one is set it reads 0, so lock timings stay 0.
pub(crate) struct Clock {
    now: AtomicPtr<()>,
}

// A `fn` pointer must round-trip through a data pointer unchanged.
const _: () = assert!(size_of::<fn() -> u64>() == size_of::<*mut ()>());

impl Clock {
    /// A clock that reads 0 until [`Clock::set`].
    pub(crate) const fn new() -> Self {
        Self {
            now: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Installs `now` as the time source.
    pub(crate) fn set(&self, now: fn() -> u64) {
        self.now.store(now as *mut (), Ordering::Release);
    }

    /// The current time, or 0 without a clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let raw = self.now.load(Ordering::Acquire);
        if raw.is_null() {
            return 0;
        }
        // SAFETY: `set` is the only writer and stores only `fn() -> u64` pointers cast to
        // `*mut ()`; the two have the same size (asserted above), so transmuting a non-null
        // value back yields the function pointer that was stored.
        let now = unsafe { core::mem::transmute::<*mut (), fn() -> u64>(raw) };
        now()
    }
}

/// The per-CPU caches, index = CPU number: a `&'static [&'static CpuCache]` installed once.
/// Empty until then; all-zero bytes are that empty table.
pub(crate) struct CacheTable {
    /// The slice's start; set once, by the installer that wins the compare-exchange.
    ptr: AtomicPtr<&'static CpuCache>,
    /// The slice's length, published (release) after `ptr`; 0 until then.
    len: AtomicUsize,
}

impl CacheTable {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
        }
    }

    /// Installs `caches` (not empty) unless a table is installed or being installed; `false`
    /// if one was.
    pub(crate) fn install(&self, caches: &'static [&'static CpuCache]) -> bool {
        debug_assert!(
            !caches.is_empty(),
            "an empty table cannot be told from none"
        );
        let ptr = caches.as_ptr().cast_mut();
        let null = core::ptr::null_mut();
        if (self.ptr)
            .compare_exchange(null, ptr, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.len.store(caches.len(), Ordering::Release);
        true
    }

    /// The installed caches, or an empty slice.
    #[inline(always)]
    pub(crate) fn get(&self) -> &'static [&'static CpuCache] {
        let len = self.len.load(Ordering::Acquire);
        if len == 0 {
            return &[];
        }
        let ptr = self.ptr.load(Ordering::Relaxed);
        // SAFETY: a non-zero `len` was stored (release, read here with acquire) only by the
        // `install` call whose compare-exchange set `ptr` before it, and neither changes
        // again; so `ptr` and `len` are the start and length of the `&'static` slice that
        // call was given, valid and immutable for the rest of the program.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }
}

/// The spin lock; loom builds use loom's mutex instead (see `crate::sync`).
#[cfg(not(loom))]
mod spin_lock {
    use core::cell::UnsafeCell;
    use core::ops::{Deref, DerefMut};
    use core::sync::atomic::{AtomicBool, Ordering};

    /// A busy-waiting lock: `swap(true)` to take it, spin reading while it is held, store
    /// `false` to release it. All-zero bytes are an unlocked lock around zero bytes of `T`.
    pub(crate) struct RawSpinLock<T> {
        locked: AtomicBool,
        value: UnsafeCell<T>,
    }

    // SAFETY: the lock hands `&mut T` to one holder at a time, so sharing it between threads only
    // moves `T` between them: `T: Send` suffices, as for `std::sync::Mutex`.
    unsafe impl<T: Send> Sync for RawSpinLock<T> {}

    /// Proof of holding a [`RawSpinLock`]; releases it when dropped.
    pub(crate) struct RawSpinGuard<'a, T> {
        lock: &'a RawSpinLock<T>,
    }

    impl<T> RawSpinLock<T> {
        /// An unlocked lock around `value`.
        pub(crate) const fn new(value: T) -> Self {
            Self {
                locked: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        /// Takes the lock if it is free right now.
        #[inline(always)]
        pub(crate) fn try_lock(&self) -> Option<RawSpinGuard<'_, T>> {
            if self.locked.swap(true, Ordering::Acquire) {
                None
            } else {
                Some(RawSpinGuard { lock: self })
            }
        }

        /// Spins until the lock is free, then takes it.
        #[inline(always)]
        pub(crate) fn lock(&self) -> RawSpinGuard<'_, T> {
            match self.try_lock() {
                Some(guard) => guard,
                None => self.lock_contended(),
            }
        }

        #[cold]
        fn lock_contended(&self) -> RawSpinGuard<'_, T> {
            loop {
                // Spin on a plain read so waiters share the line until the holder releases it.
                while self.locked.load(Ordering::Relaxed) {
                    core::hint::spin_loop();
                }
                if let Some(guard) = self.try_lock() {
                    return guard;
                }
            }
        }
    }

    impl<T> Deref for RawSpinGuard<'_, T> {
        type Target = T;
        #[inline(always)]
        fn deref(&self) -> &T {
            // SAFETY: a guard exists only while its holder owns the lock flag (set by the
            // `swap` that created it, cleared by its `drop`), so no `&mut T` exists elsewhere.
            unsafe { &*self.lock.value.get() }
        }
    }

    impl<T> DerefMut for RawSpinGuard<'_, T> {
        #[inline(always)]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as for `deref`, and `&mut self` makes this the guard's only live borrow.
            unsafe { &mut *self.lock.value.get() }
        }
    }

    impl<T> Drop for RawSpinGuard<'_, T> {
        #[inline(always)]
        fn drop(&mut self) {
            self.lock.locked.store(false, Ordering::Release);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn lock_excludes_and_releases() {
            let lock = RawSpinLock::new(1u32);
            let mut held = lock.lock();
            assert!(lock.try_lock().is_none());
            *held += 1;
            drop(held);
            assert_eq!(*lock.try_lock().unwrap(), 2);
        }

        #[test]
        fn threads_increment_without_losing_updates() {
            let lock = RawSpinLock::new(0u64);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..10_000 {
                            *lock.lock() += 1;
                        }
                    });
                }
            });
            assert_eq!(*lock.lock(), 40_000);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod cache_table_tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// A leaked table of `n` fresh caches.
    fn leaked_caches(n: usize) -> &'static [&'static CpuCache] {
        let caches: Vec<&'static CpuCache> = (0..n)
            .map(|_| &*Box::leak(Box::new(CpuCache::new())))
            .collect();
        caches.leak()
    }

    #[test]
    fn empty_until_installed_then_fixed() {
        let table = CacheTable::new();
        assert!(table.get().is_empty());
        let first = leaked_caches(3);
        assert!(table.install(first));
        assert!(
            !table.install(leaked_caches(2)),
            "a second install is refused"
        );
        assert!(core::ptr::eq(table.get(), first));
    }

    #[test]
    fn racing_installs_leave_exactly_one_winner() {
        for _ in 0..50 {
            let table = CacheTable::new();
            let candidates: Vec<_> = (1..=8).map(leaked_caches).collect();
            let won: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = candidates
                    .iter()
                    .map(|&c| s.spawn(|| table.install(c)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(won.iter().filter(|&&w| w).count(), 1);
            let winner = won.iter().position(|&w| w).unwrap();
            assert!(core::ptr::eq(table.get(), candidates[winner]));
        }
    }
}
