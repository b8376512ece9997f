//! Per-CPU variables.
//!
//! A [`PerCpu<T>`] holds one `T` per CPU, created at boot once the CPU count is known. The
//! current CPU's value is reached only with a [`PinnedCpu`] (`CACHES.get(&pin)`), so code
//! that mutates it through interior mutability runs with interrupts off on its own CPU.
//! Other CPUs' values are reachable too ([`PerCpu::get_remote`], [`PerCpu::iter`]), which is
//! why `T` must be `Sync`: drains and statistics read them.
//!
//! # Implementation
//! A boxed slice of `CachePadded<T>` in a `spin::Once`: one cache line (or more) per CPU so
//! neighbours never share a line.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crossbeam_utils::CachePadded;
use spin::Once;

use crate::area::cpu_count;
use crate::pin::PinnedCpu;

/// One `T` per CPU.
pub struct PerCpu<T> {
    slots: Once<Box<[CachePadded<T>]>>,
}

impl<T: Sync> PerCpu<T> {
    /// An empty per-CPU variable; call [`PerCpu::init`] at boot.
    pub const fn new() -> Self {
        PerCpu { slots: Once::new() }
    }

    /// Creates every CPU's value with `make(cpu)`; once, after `smp::init_bsp`.
    ///
    /// Panics if called twice.
    pub fn init(&self, make: impl FnMut(usize) -> T) {
        let mut fresh = false;
        self.slots.call_once(|| {
            fresh = true;
            (0..cpu_count())
                .map(make)
                .map(CachePadded::new)
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        assert!(fresh, "PerCpu::init called twice");
    }

    /// The current CPU's value. Panics before [`PerCpu::init`].
    pub fn get(&self, pin: &PinnedCpu) -> &T {
        self.get_remote(pin.cpu_id())
            .expect("PerCpu used before init (or CPU index out of range)")
    }

    /// CPU `cpu`'s value, if initialized.
    pub fn get_remote(&self, cpu: usize) -> Option<&T> {
        self.slots.get()?.get(cpu).map(|slot| &**slot)
    }

    /// Every CPU's value, in CPU order (empty before [`PerCpu::init`]).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots
            .get()
            .into_iter()
            .flat_map(|s| s.iter().map(|slot| &**slot))
    }
}

impl<T: Sync> Default for PerCpu<T> {
    fn default() -> Self {
        Self::new()
    }
}
