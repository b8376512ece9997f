//! [`FrameAllocator`]: the kernel's allocator, `Engine<BitAlloc16M, _>` behind a fixed API.
//!
//! The kernel keeps one in a `static` (one `BitAlloc16M` and one depot per node, for
//! [`crate::MAX_NODES`] nodes: about 21 MB with the checked map, 19 MB without, all zero
//! bytes, so in `.bss`; never build it on the stack), adds the memory map's usable ranges,
//! optionally sets the node table, attaches the per-CPU caches once the CPUs are known, and
//! calls `alloc`/`free` with a [`CpuGuard`].
#![deny(unsafe_code)]

use bitmap_allocator::BitAlloc16M;

use crate::cache::CpuCache;
use crate::engine::Engine;
use crate::error::{AllocError, AttachError, FreeError, LayoutError, MagazineSizeError};
use crate::frame::{Frame, PhysRange};
use crate::raw::CpuGuard;
use crate::stats::{AddReport, CpuStats, Mode, NodeStats, Stats};
use crate::sync::const_unless_loom;
use crate::topology::NodeLayout;

/// Free validation of this build: the atomic in-use map of the bitmap's whole reach.
#[cfg(feature = "checked")]
type Check = crate::checked::InUseMap<{ (1 << 24) / 64 }>;
/// Free validation of this build: bounds only.
#[cfg(not(feature = "checked"))]
type Check = crate::checked::LimitCheck;

/// The physical frame allocator: per-CPU magazines over a depot and a global bitmap of up to
/// 16M frames (64 GiB) per node. Lives in a `static`; every method takes `&self`.
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

    /// Sets the node table. Once, before `attach_caches`; may come after `add_ranges` and
    /// early allocations: every frame already managed, free or allocated, moves to its home
    /// node's bitmap, and an early allocation freed later goes home by its address. Memory
    /// outside every span of the layout stays with node 0 and is counted
    /// ([`Stats::outside_nodes`]). Refused (allocator unchanged) if caches are attached or a
    /// layout was set before. Without a call the allocator is one node: exactly
    /// [`NodeLayout::single`].
    pub fn set_layout(&self, layout: &NodeLayout) -> Result<(), LayoutError> {
        self.engine.set_layout(layout)
    }

    /// A copy of the node table in force.
    pub fn layout(&self) -> NodeLayout {
        self.engine.layout()
    }

    /// Pins every depot's magazine size to `Some(n)` frames (the kernel's `mag=N` key), from
    /// [`crate::MIN_MAGAZINE_SIZE`] to [`crate::MAX_MAGAZINE_SIZE`], draining every magazine
    /// so none of another size stays in use; `None` lets each depot adapt again (the
    /// default). Returns node 0's size in force.
    pub fn set_magazine_size(&self, size: Option<usize>) -> Result<usize, MagazineSizeError> {
        self.engine.set_magazine_size(size)
    }

    /// Node `node`'s figures, including its magazine size in force (zeros for a node the
    /// layout does not have).
    pub fn node_stats(&self, node: usize) -> NodeStats {
        self.engine.node_stats(node)
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

    /// Caps the frames each node's depot may cache (rounded down to whole magazines of the
    /// size in force, at most [`crate::DEPOT_SLOTS`] magazines; `DEPOT_SLOTS *
    /// MAX_MAGAZINE_SIZE` or more removes the cap); spills the excess; returns node 0's cap
    /// in force.
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
