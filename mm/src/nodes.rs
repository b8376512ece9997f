//! Setting the node layout, moving managed frames to their home nodes, pinning the magazine
//! size, and the per-node statistics.
//!
//! `set_layout` may come after `add_ranges` and after early allocations (the kernel reads its
//! affinity tables once memory management runs), but before the per-CPU caches are attached:
//! until then every frame is in node 0's bitmap or allocated, none in a magazine. It hands
//! every managed span outside node 0's share to its home node's bitmap, free frames free and
//! allocated ones allocated, so an early allocation freed later goes home by its address.
//! This is the one place two global locks are held at once (node 0's, then the receiving
//! node's), before any other CPU uses the allocator.
//!
//! Magazine sizes are per node (each depot adapts its own, see [`crate::depot`]);
//! `set_magazine_size` pins them all for benchmarks and drains every magazine so no
//! magazine of the old size stays in use.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use bitmap_allocator::BitAlloc;

use crate::checked::FrameCheck;
use crate::depot::Resize;
use crate::engine::{Engine, MULTI_NODE, Route};
use crate::error::{LayoutError, MagazineSizeError};
use crate::frame::FRAME_SIZE;
use crate::magazine::{MAX_MAGAZINE_SIZE, MIN_MAGAZINE_SIZE};
use crate::stats::NodeStats;
use crate::topology::{MAX_NODES, NodeLayout};

impl<B: BitAlloc, C: FrameCheck> Engine<B, C> {
    /// Installs the node table and moves every managed frame to its home node; see
    /// [`crate::FrameAllocator::set_layout`].
    pub fn set_layout(&self, layout: &NodeLayout) -> Result<(), LayoutError> {
        if !self.caches().is_empty() {
            return Err(LayoutError::CachesAttached);
        }
        let foreign = || {
            let spans = layout.spans().filter(|&(_, node)| node != 0);
            spans.map(|(r, _)| r.start.div_ceil(FRAME_SIZE)..r.end.div_ceil(FRAME_SIZE))
        };
        let mut home = self.nodes[0].global.lock(&self.clock);
        // Check first that node 0's span table can take the holes, so a refusal moves nothing.
        if !home.can_hand_over(foreign()) {
            return Err(LayoutError::SpanTableFull { node: 0 });
        }
        if !self.numa.claim() {
            return Err(LayoutError::AlreadySet);
        }
        for (frames, (_, node)) in foreign().zip(layout.spans().filter(|&(_, n)| n != 0)) {
            let moved = home.hand_over(frames, &mut self.nodes[node].global.lock(&self.clock));
            debug_assert!(moved, "checked by can_hand_over");
        }
        let mut outside = 0;
        for span in home.spans() {
            let mut at = span.start;
            while at < span.end {
                let (_, end, inside) = layout.piece_at(at, span.end);
                outside += if inside { 0 } else { end - at };
                at = end;
            }
        }
        drop(home);
        self.numa.outside.store(outside, Relaxed);
        self.numa.install(layout);
        if self.numa.is_multi() {
            self.mode.fetch_or(MULTI_NODE, Relaxed);
        }
        Ok(())
    }

    /// The node layout in force ([`NodeLayout::single`] without one).
    pub fn layout(&self) -> NodeLayout {
        self.numa.layout()
    }

    /// Pins every depot's magazine size (`Some`) or lets each adapt again (`None`); returns
    /// node 0's size in force. A pin drains every magazine.
    pub fn set_magazine_size(&self, size: Option<usize>) -> Result<usize, MagazineSizeError> {
        if let Some(size) = size
            && !(MIN_MAGAZINE_SIZE..=MAX_MAGAZINE_SIZE).contains(&size)
        {
            return Err(MagazineSizeError { size });
        }
        let mut sizes = self.nodes.iter().map(|n| n.depot.pin(&self.clock, size));
        let in_force = sizes.next().unwrap_or(0);
        sizes.for_each(drop);
        if size.is_some() {
            self.drain_all();
        }
        Ok(in_force)
    }

    /// The node a route allocates from first.
    #[inline]
    pub(crate) fn route_node(route: Route<'_>) -> usize {
        match route {
            Route::Early => 0,
            Route::Cpu(cache) => cache.node(),
        }
    }

    /// Node `node` ran out of frames: its depot halves the magazine size (unless pinned or
    /// at the minimum) and spills the magazines it holds that are bigger than the new size.
    /// Returns the size in force.
    pub(crate) fn memory_short(&self, node: usize) -> usize {
        let n = &self.nodes[node];
        // Already at the minimum: nothing to do, and no depot lock taken on every miss of
        // an exhausted node.
        if n.depot.size() <= MIN_MAGAZINE_SIZE {
            return n.depot.size();
        }
        if let Resize::To(_) = n.depot.shrink(&self.clock) {
            let spill = |m: &mut _| n.global.lock(&self.clock).spill(m);
            while n.depot.spill_oversize(&self.clock, spill).is_some() {}
        }
        n.depot.size()
    }

    /// Managed frames outside every span of the layout.
    pub(crate) fn outside_nodes(&self) -> u64 {
        self.numa.outside.load(Relaxed)
    }

    /// Node `node`'s figures (all zero for a node the layout does not have).
    pub fn node_stats(&self, node: usize) -> NodeStats {
        if node >= self.numa.node_count() || node >= MAX_NODES {
            return NodeStats::default();
        }
        let n = &self.nodes[node];
        let mut stats = NodeStats {
            domain: self.numa.layout().domain(node),
            depot_frames: n.depot.frames(),
            global_lock: n.global.stats(),
            depot_lock: n.depot.lock_stats(),
            magazine_size: n.depot.size(),
            magazine_pinned: n.depot.is_pinned(),
            ..NodeStats::default()
        };
        (stats.magazine_grows, stats.magazine_shrinks) = n.depot.resizes();
        {
            let global = n.global.lock_quietly();
            (stats.managed, stats.free) = (global.managed(), global.free_frames());
        }
        stats.cached = stats.depot_frames;
        for cache in self.caches() {
            stats.cached += cache.lock().frames_of(cache.node(), node);
            if cache.node() == node {
                let cpu = cache.stats();
                stats.cpus += 1;
                stats.local_allocs += cpu.allocs - cpu.remote_allocs;
                stats.remote_allocs += cpu.remote_allocs;
                stats.remote_frees += cpu.remote_frees;
            }
        }
        if node == 0 {
            let early = self.early.snapshot();
            stats.local_allocs += early.allocs - early.remote_allocs;
            stats.remote_allocs += early.remote_allocs;
        }
        stats
    }
}
