//! The layered allocator, generic over its bitmap and its free validation.
//!
//! [`Engine`] ties the layers together: per-CPU [`CpuCache`]s over one [`Depot`] and one
//! [`Global`] bitmap per node. [`crate::FrameAllocator`] is `Engine<BitAlloc16M, _>` with the
//! checked in-use map or the bounds check; loom models instantiate it with a small bitmap.
//! This file holds its state, setup, modes and statistics; [`crate::fastpath`] the
//! single-frame paths; [`crate::reclaim`] drains, exhaustion and contiguous runs;
//! [`crate::nodes`] the node layout and magazine sizes.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use bitmap_allocator::BitAlloc;

use crate::cache::CpuCache;
use crate::checked::FrameCheck;
use crate::depot::Depot;
use crate::error::AttachError;
use crate::frame::PhysRange;
use crate::global::Global;
use crate::lock::TimedLock;
use crate::numa::Numa;
use crate::raw::{CacheTable, Clock};
use crate::stats::{AddReport, Counter, CpuCounters, CpuStats, LockStats, Mode, Stats};
use crate::sync::{AtomicU8, AtomicUsize, const_unless_loom};
use crate::topology::MAX_NODES;

/// One node's shared layers: its bitmap and its depot.
pub(crate) struct Node<B> {
    /// The bottom layer: this node's frames. Lock order: cache -> depot -> global.
    pub(crate) global: TimedLock<Global<B>>,
    /// Full magazines of this node's frames, shared by its CPUs.
    pub(crate) depot: Depot,
}

impl<B: BitAlloc> Node<B> {
    const_unless_loom! {
        /// A node managing nothing.
        pub(crate) fn new() -> Self {
            Self {
                global: TimedLock::new(Global::new()),
                depot: Depot::new(),
            }
        }
    }
}

/// The per-CPU caches and each node's depot and global bitmap, with their counters.
pub struct Engine<B, C> {
    /// Per node, its bitmap and depot; node 0 owns everything without a layout.
    pub(crate) nodes: [Node<B>; MAX_NODES],
    /// The node table as the hot paths read it.
    pub(crate) numa: Numa,
    /// The per-CPU caches, index = CPU number; unset until `attach_caches`.
    pub(crate) caches: CacheTable,
    /// Counters of operations made before caches were attached (shared, updated atomically).
    pub(crate) early: CpuCounters,
    /// Flags the free fast path tests with one load: [`BASELINE`] (baseline [`Mode`]) and
    /// [`MULTI_NODE`] (a layout with several nodes is set). 0 = magazine mode with one node,
    /// so all-zero bytes mean that, and a free in it tests one byte once.
    pub(crate) mode: AtomicU8,
    /// Number of reclaims in progress; while non-zero no frame moves into a cache.
    pub(crate) reclaiming: AtomicUsize,
    /// Times the global and depot locks.
    pub(crate) clock: Clock,
    /// Validates frees (checked in-use map or bounds check).
    pub(crate) check: C,
}

/// Where a CPU's operations go: its cache, or (before caches are attached) the global layer.
#[derive(Clone, Copy)]
pub(crate) enum Route<'a> {
    /// No cache attached yet: straight to the global layer, shared early counters.
    Early,
    /// The CPU's own cache.
    Cpu(&'a CpuCache),
}

/// Bit of `Engine::mode`: baseline mode.
pub(crate) const BASELINE: u8 = 1;
/// Bit of `Engine::mode`: several nodes, so frees check the frame's home node.
pub(crate) const MULTI_NODE: u8 = 2;

impl<B: BitAlloc, C: FrameCheck> Engine<B, C> {
    const_unless_loom! {
        /// An allocator managing nothing, in magazine mode, with no caches attached.
        /// All-zero bytes are this same value.
        pub fn new() -> Self {
            Self {
                #[cfg(not(loom))]
                nodes: [const { Node::new() }; MAX_NODES],
                #[cfg(loom)]
                nodes: core::array::from_fn(|_| Node::new()),
                numa: Numa::new(),
                caches: CacheTable::new(),
                early: CpuCounters::new(),
                mode: AtomicU8::new(0),
                reclaiming: AtomicUsize::new(0),
                clock: Clock::new(),
                check: C::NEW,
            }
        }
    }

    /// Frame numbers from here up are never managed: the smaller of the bitmap's and the
    /// check's reach.
    pub(crate) const REACH: u64 = {
        let bitmap = B::CAP as u64;
        if bitmap < C::REACH { bitmap } else { C::REACH }
    };

    /// Adds usable memory; see [`crate::FrameAllocator::add_ranges`]. With a layout, each
    /// range is cut at node boundaries and each piece goes to its home node's bitmap.
    pub fn add_ranges(&self, ranges: &[PhysRange]) -> AddReport {
        let mut report = AddReport::default();
        for range in ranges {
            report.unaligned_bytes += range.unaligned_bytes();
            let frames = range.frames();
            if frames.is_empty() {
                report.empty_ranges += 1;
                continue;
            }
            if !self.numa.is_set() {
                self.nodes[0]
                    .global
                    .lock(&self.clock)
                    .add(frames, Self::REACH, &mut report);
                continue;
            }
            let layout = self.numa.layout();
            let mut at = frames.start;
            while at < frames.end {
                let (node, end, inside) = layout.piece_at(at, frames.end);
                let global = &self.nodes[node].global;
                global
                    .lock(&self.clock)
                    .add(at..end, Self::REACH, &mut report);
                if !inside {
                    report.outside_nodes += end.min(Self::REACH).saturating_sub(at.max(1));
                }
                at = end;
            }
        }
        self.check.note_managed_end(self.managed_end());
        report
    }

    /// One past the highest frame any node manages.
    pub(crate) fn managed_end(&self) -> u64 {
        let ends = self.nodes.iter().map(|n| n.global.lock_quietly().end());
        ends.max().unwrap_or(0)
    }

    /// The nodes in use (node 0 alone without a layout).
    pub(crate) fn used_nodes(&self) -> &[Node<B>] {
        &self.nodes[..self.numa.node_count()]
    }

    /// Sets the clock that times the global and depot locks.
    pub fn set_clock(&self, now: fn() -> u64) {
        self.clock.set(now);
    }

    /// Registers the per-CPU caches (index = CPU number), once.
    pub fn try_attach_caches(
        &self,
        caches: &'static [&'static CpuCache],
    ) -> Result<(), AttachError> {
        if caches.is_empty() {
            return Err(AttachError::Empty);
        }
        if let Some((first, second)) = first_duplicate(caches) {
            return Err(AttachError::Duplicate { first, second });
        }
        let nodes = self.numa.node_count();
        if let Some(cpu) = caches.iter().position(|c| c.node() >= nodes) {
            let node = caches[cpu].node();
            return Err(AttachError::UnknownNode { cpu, node, nodes });
        }
        if self.caches.install(caches) {
            Ok(())
        } else {
            Err(AttachError::AlreadyAttached)
        }
    }

    /// The route of CPU `cpu`, or `None` if caches are attached but none is CPU `cpu`'s.
    #[inline]
    pub(crate) fn route(&self, cpu: usize) -> Option<Route<'_>> {
        let caches = self.caches.get();
        match caches.get(cpu) {
            Some(&cache) => Some(Route::Cpu(cache)),
            None if caches.is_empty() => Some(Route::Early),
            None => None,
        }
    }

    /// Adds `n` to counter `c` of `route`'s CPU (or of the shared early counters).
    #[inline]
    pub(crate) fn count(&self, route: Route<'_>, c: Counter, n: u64) {
        match route {
            Route::Early => self.early.add_shared(c, n),
            Route::Cpu(cache) => cache.counters().add(c, n),
        }
    }

    /// Whether operations go to the global layer directly.
    #[inline]
    pub(crate) fn is_baseline(&self) -> bool {
        self.mode.load(Relaxed) & BASELINE != 0
    }

    /// Whether frames may move into a cache now: not in baseline mode, no reclaim running.
    /// Read under the CPU's cache lock (see [`crate::reclaim`] for why that suffices).
    pub(crate) fn may_fill_caches(&self) -> bool {
        !self.is_baseline() && self.reclaiming.load(Relaxed) == 0
    }

    /// Switches mode; switching to baseline drains every cache and the depot, and no frame
    /// enters a cache again until magazine mode returns.
    pub fn set_mode(&self, mode: Mode) {
        match mode {
            Mode::Magazine => self.mode.fetch_and(!BASELINE, Relaxed),
            Mode::Baseline => self.mode.fetch_or(BASELINE, Relaxed),
        };
        if mode == Mode::Baseline {
            self.drain_all();
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        if self.is_baseline() {
            Mode::Baseline
        } else {
            Mode::Magazine
        }
    }

    /// The attached caches (empty before `attach_caches`).
    pub(crate) fn caches(&self) -> &'static [&'static CpuCache] {
        self.caches.get()
    }

    /// Caps the frames each node's depot may hold; returns node 0's cap in force (whole
    /// magazines) after spilling any excess to the global layer.
    pub fn set_depot_cap(&self, max_frames: usize) -> usize {
        let mut caps = self
            .nodes
            .iter()
            .map(|n| n.depot.set_cap(&self.clock, max_frames));
        let cap = caps.next().unwrap_or(0);
        caps.for_each(drop);
        self.spill_depot(true);
        cap
    }

    /// A snapshot of the whole allocator (exact when quiescent).
    pub fn stats(&self) -> Stats {
        let mut cpu = self.early.snapshot();
        let mut net_allocated = self.early.net_allocated();
        let mut cached = 0;
        for cache in self.caches() {
            cpu.accumulate(&cache.stats());
            net_allocated += cache.counters().net_allocated();
            cached += cache.cached_frames();
        }
        let (mut managed, mut free, mut anomalies, mut depot_frames) = (0, 0, 0, 0);
        let (mut global_lock, mut depot_lock) = (LockStats::default(), LockStats::default());
        for node in &self.nodes {
            depot_frames += node.depot.frames();
            let global = node.global.lock_quietly();
            managed += global.managed();
            free += global.free_frames();
            anomalies += global.anomalies();
            global_lock.merge(&node.global.stats());
            depot_lock.merge(&node.depot.lock_stats());
        }
        Stats {
            managed,
            free,
            cached: cached + depot_frames,
            allocated: u64::try_from(net_allocated).unwrap_or(0),
            depot_frames,
            anomalies,
            cpu,
            global_lock,
            depot_lock,
            mode: self.mode(),
            cpus: self.caches().len(),
            nodes: self.numa.node_count(),
            outside_nodes: self.outside_nodes(),
        }
    }

    /// CPU `cpu`'s counters since the last reset (zeros for a CPU without a cache).
    pub fn cpu_stats(&self, cpu: usize) -> CpuStats {
        self.caches()
            .get(cpu)
            .map_or_else(CpuStats::default, |cache| cache.stats())
    }

    /// Zeroes every statistics counter (the frame accounting is kept).
    pub fn reset_counters(&self) {
        self.early.reset();
        for cache in self.caches() {
            cache.counters().reset();
        }
        for node in &self.nodes {
            node.global.reset_stats();
            node.depot.reset_lock_stats();
        }
    }

    /// Frames the checked in-use map marks allocated (`None` without the `checked` map).
    pub fn in_use_frames(&self) -> Option<u64> {
        self.check.in_use()
    }
}

/// The indices of the first two entries that are the same cache, if any.
fn first_duplicate(caches: &[&CpuCache]) -> Option<(usize, usize)> {
    caches.iter().enumerate().find_map(|(i, a)| {
        caches[i + 1..]
            .iter()
            .position(|b| core::ptr::eq(*a, *b))
            .map(|j| (i, i + 1 + j))
    })
}

impl<B: BitAlloc, C: FrameCheck> Default for Engine<B, C> {
    fn default() -> Self {
        Self::new()
    }
}
