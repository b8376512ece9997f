//! Helpers shared by the host integration tests: heap allocators, host CPUs, caches.
#![allow(dead_code, unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, handle_alloc_error};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Instant;

use mm::{CpuCache, CpuGuard, FRAME_SIZE, Frame, FrameAllocator, PhysRange};

/// A thread playing CPU `.0`.
pub struct HostCpu(pub usize);

// SAFETY: every test gives each thread its own CPU number (or runs single-threaded), so no two
// threads play the same CPU at once; host threads have no interrupt handlers.
unsafe impl CpuGuard for HostCpu {
    fn cpu(&self) -> usize {
        self.0
    }
}

/// A fresh allocator on the heap, never on the stack (it is megabytes large).
pub fn new_allocator() -> Box<FrameAllocator> {
    let layout = Layout::new::<FrameAllocator>();
    // SAFETY: the layout is that of `FrameAllocator`, which is not zero-sized.
    let raw = unsafe { alloc_zeroed(layout) }.cast::<FrameAllocator>();
    if raw.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: `raw` is a live allocation of `FrameAllocator`'s layout from the global
    // allocator, and `FrameAllocator` documents that all-zero bytes are a valid value equal
    // to `FrameAllocator::new()` (unlocked spin locks and `Once`, zero atomics and bitmaps,
    // null clock, magazine mode, default depot cap; `tests/api.rs` checks the equality).
    unsafe { Box::from_raw(raw) }
}

/// `n` fresh caches that live for the rest of the test process.
pub fn caches(n: usize) -> &'static [&'static CpuCache] {
    let caches: Vec<&'static CpuCache> = (0..n)
        .map(|_| &*Box::leak(Box::new(CpuCache::new())))
        .collect();
    Box::leak(caches.into_boxed_slice())
}

/// The bytes of frames `first..end`.
pub fn frames(first: u64, end: u64) -> PhysRange {
    PhysRange::new(first * FRAME_SIZE, end * FRAME_SIZE)
}

/// An allocator managing frames `first..end` with `cpus` caches attached.
pub fn allocator(first: u64, end: u64, cpus: usize) -> Box<FrameAllocator> {
    let a = new_allocator();
    a.add_ranges(&[frames(first, end)]);
    a.attach_caches(caches(cpus));
    a.set_clock(host_clock);
    a
}

/// Nanoseconds since the first call: the host's stand-in for the TSC.
pub fn host_clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Who holds each frame (0 = nobody, else CPU + 1): a duplicate is caught the moment the
/// allocator hands it out.
pub struct Owners(Vec<AtomicU32>);

impl Owners {
    /// Nobody holds any of frames `0..end`.
    pub fn new(end: u64) -> Self {
        Owners((0..end).map(|_| AtomicU32::new(0)).collect())
    }

    /// Records that CPU `cpu` holds `frame`; panics if someone already does.
    pub fn claim(&self, frame: Frame, cpu: usize) {
        let slot = &self.0[frame.number() as usize];
        if let Err(owner) = slot.compare_exchange(0, cpu as u32 + 1, Relaxed, Relaxed) {
            panic!(
                "{frame} handed to CPU {cpu} while CPU {} holds it",
                owner - 1
            );
        }
    }

    /// Records that `frame` is given back; panics if nobody held it.
    pub fn release(&self, frame: Frame) {
        assert_ne!(
            self.0[frame.number() as usize].swap(0, Relaxed),
            0,
            "{frame} not held"
        );
    }
}
