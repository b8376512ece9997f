//! [`FrameAllocator`]: the kernel's allocator, `Engine<BitAlloc16M, _>` behind a fixed API.
//!
//! The kernel keeps one in a `static` (it is about 4.3 MB with the checked map, 2.3 MB
//! without: never build it on the stack), adds the memory map's usable ranges, attaches the
//! per-CPU caches once the CPUs are known, and calls `alloc`/`free` with a [`CpuGuard`].
#![deny(unsafe_code)]

use bitmap_allocator::BitAlloc16M;

use crate::cache::CpuCache;
use crate::engine::Engine;
use crate::error::{AllocError, AttachError, FreeError};
use crate::frame::{Frame, PhysRange};
use crate::raw::CpuGuard;
use crate::stats::{AddReport, CpuStats, Mode, Stats};
use crate::sync::const_unless_loom;

/// Free validation of this build: the atomic in-use map of the bitmap's whole reach.
#[cfg(feature = "checked")]
type Check = crate::checked::InUseMap<{ (1 << 24) / 64 }>;
/// Free validation of this build: bounds only.
#[cfg(not(feature = "checked"))]
type Check = crate::checked::LimitCheck;

/// The physical frame allocator: per-CPU magazines over a depot over a global bitmap of up to
/// 16M frames (64 GiB). Lives in a `static`; every method takes `&self`.
///
/// All-zero bytes are a valid `FrameAllocator`, equal to [`FrameAllocator::new`] (every lock
/// unlocked, every counter and bitmap zero, magazine mode, no clock, no caches, default depot
/// cap): a `static` of it lands in `.bss`, and host tests allocate one zeroed on the heap.
pub struct FrameAllocator {
    engine: Engine<BitAlloc16M, Check>,
}

impl FrameAllocator {
    const_unless_loom! {
        /// An allocator managing nothing, in magazine mode, with no caches attached.
        pub fn new() -> Self {
            Self { engine: Engine::new() }
        }
    }

    /// Adds usable ranges: unaligned edges are trimmed, empty ranges and frames already managed
    /// (overlap within or across calls) are skipped, frame 0 is never handed out, and frames
    /// beyond the bitmap's 64 GiB reach are counted, not managed. May be called again later
    /// (e.g. to release bootloader-reclaimable memory).
    pub fn add_ranges(&self, ranges: &[PhysRange]) -> AddReport {
        self.engine.add_ranges(ranges)
    }

    /// Sets the clock for lock timing (TSC in the kernel, a monotonic counter on the host).
    pub fn set_clock(&self, now: fn() -> u64) {
        self.engine.set_clock(now);
    }

    /// Registers the per-CPU caches, index = CPU number. Before this, every operation goes
    /// straight to the global layer (early boot).
    ///
    /// # Panics
    /// If called a second time, with an empty slice, or with one cache at two CPU numbers:
    /// boot code has a bug. [`FrameAllocator::try_attach_caches`] returns the error instead.
    pub fn attach_caches(&self, caches: &'static [&'static CpuCache]) {
        if let Err(error) = self.try_attach_caches(caches) {
            panic!("mm: attach_caches: {error}");
        }
    }

    /// Registers the per-CPU caches, or says why not (leaving the allocator unchanged).
    pub fn try_attach_caches(
        &self,
        caches: &'static [&'static CpuCache],
    ) -> Result<(), AttachError> {
        self.engine.try_attach_caches(caches)
    }

    /// Allocates one frame on the guard's CPU.
    #[inline(always)]
    pub fn alloc(&self, g: &impl CpuGuard) -> Result<Frame, AllocError> {
        self.engine.alloc(g)
    }

    /// Frees one frame on the guard's CPU; it may have been allocated on any CPU.
    #[inline(always)]
    pub fn free(&self, g: &impl CpuGuard, frame: Frame) -> Result<(), FreeError> {
        self.engine.free(g, frame)
    }

    /// Allocates `count` contiguous frames, the first a multiple of `2^align_log2` frames.
    pub fn alloc_contiguous(
        &self,
        g: &impl CpuGuard,
        count: usize,
        align_log2: u32,
    ) -> Result<Frame, AllocError> {
        self.engine.alloc_contiguous(g, count, align_log2)
    }

    /// Frees the run `first..first+count` (all or nothing).
    pub fn free_contiguous(
        &self,
        g: &impl CpuGuard,
        first: Frame,
        count: usize,
    ) -> Result<(), FreeError> {
        self.engine.free_contiguous(g, first, count)
    }

    /// Switches mode at run time. Switching to [`Mode::Baseline`] drains every cache and the
    /// depot; from then on no frame enters a cache until [`Mode::Magazine`] returns.
    pub fn set_mode(&self, mode: Mode) {
        self.engine.set_mode(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.engine.mode()
    }

    /// Empties CPU `cpu`'s cache into the global bitmap (remote-safe); returns frames moved.
    pub fn drain_cpu(&self, cpu: usize) -> u64 {
        self.engine.drain_cpu(cpu)
    }

    /// Drains every CPU's cache and the depot (remote-safe); returns frames moved.
    pub fn drain_all(&self) -> u64 {
        self.engine.drain_all()
    }

    /// Caps the frames the depot may cache (rounded down to whole magazines, at most
    /// [`crate::DEPOT_SLOTS`] magazines); spills the excess; returns the cap in force.
    pub fn set_depot_cap(&self, max_frames: usize) -> usize {
        self.engine.set_depot_cap(max_frames)
    }

    /// A snapshot of every layer and counter: exact at quiescent points, inexact while
    /// running.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// CPU `cpu`'s counters since the last reset (zeros for a CPU without a cache).
    pub fn cpu_stats(&self, cpu: usize) -> CpuStats {
        self.engine.cpu_stats(cpu)
    }

    /// Zeroes every statistics counter; the frame accounting behind `Stats::allocated` stays.
    pub fn reset_counters(&self) {
        self.engine.reset_counters();
    }

    /// Frames the checked in-use map marks allocated; `None` without the `checked` feature.
    /// Scans the whole map (2 MiB): for tests and end-of-run checks, not hot paths.
    pub fn in_use_frames(&self) -> Option<u64> {
        self.engine.in_use_frames()
    }
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}
