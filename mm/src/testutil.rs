//! Helpers shared by the crate's unit tests: a small engine and a host "CPU" guard.
#![allow(unsafe_code)]

use std::boxed::Box;
use std::vec::Vec;

use bitmap_allocator::BitAlloc4K;

use crate::cache::CpuCache;
use crate::checked::{FrameCheck, InUseMap, LimitCheck};
use crate::engine::Engine;
use crate::frame::{FRAME_SIZE, Frame, PhysRange};
use crate::raw::CpuGuard;

/// A checked engine over 4096 frames.
pub(crate) type Checked = Engine<BitAlloc4K, InUseMap<64>>;
/// An unchecked engine over 4096 frames.
pub(crate) type Unchecked = Engine<BitAlloc4K, LimitCheck>;

/// Plays CPU `.0` on the host.
pub(crate) struct Cpu(pub(crate) usize);

// SAFETY: each unit test is single-threaded, or gives each thread its own CPU number, so no
// two users play the same CPU at once.
unsafe impl CpuGuard for Cpu {
    fn cpu(&self) -> usize {
        self.0
    }
}

/// `n` fresh caches that live for the rest of the test process.
pub(crate) fn caches(n: usize) -> &'static [&'static CpuCache] {
    let caches: Vec<&'static CpuCache> = (0..n)
        .map(|_| &*Box::leak(Box::new(CpuCache::new())))
        .collect();
    Box::leak(caches.into_boxed_slice())
}

/// The byte range of frames `first..end`.
pub(crate) fn frames(first: u64, end: u64) -> PhysRange {
    PhysRange::new(first * FRAME_SIZE, end * FRAME_SIZE)
}

/// An engine managing frames `first..end`, with `cpus` caches attached (none if 0).
/// A new engine on the heap (its depots make it over a megabyte: not for a test's stack).
pub(crate) fn new_engine<C: FrameCheck>() -> Box<Engine<BitAlloc4K, C>> {
    let layout = std::alloc::Layout::new::<Engine<BitAlloc4K, C>>();
    // SAFETY: the layout is that of the engine, which is not zero-sized.
    let raw = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Engine<BitAlloc4K, C>>();
    assert!(!raw.is_null(), "out of host memory");
    // SAFETY: `raw` is a live allocation of the engine's layout, and all-zero bytes are a
    // valid engine equal to `Engine::new()` (see `crate::FrameAllocator`).
    unsafe { Box::from_raw(raw) }
}

pub(crate) fn engine<C: FrameCheck>(
    first: u64,
    end: u64,
    cpus: usize,
) -> Box<Engine<BitAlloc4K, C>> {
    let engine = new_engine();
    engine.add_ranges(&[frames(first, end)]);
    if cpus > 0 {
        engine.try_attach_caches(caches(cpus)).unwrap();
    }
    engine
}

/// Allocates on `cpu` until the allocator runs out.
pub(crate) fn alloc_all<C: FrameCheck>(e: &Engine<BitAlloc4K, C>, cpu: usize) -> Vec<Frame> {
    core::iter::from_fn(|| e.alloc(&Cpu(cpu)).ok()).collect()
}
