//! Draining caches, reclaiming every cached frame before failing, and contiguous runs.
//!
//! A drain empties one CPU's magazines (and its batches of other nodes' frames) into the
//! home nodes' bitmaps under that CPU's cache lock, so it is safe against the owner running
//! at the same time. `drain_all` drains every CPU, then every node's depot.
//!
//! # Reclaim: an allocation fails only when no free frame exists anywhere
//! When no node's bitmap can serve a request, [`Engine::reclaim_then`] raises the
//! `reclaiming` count, drains every cache and every depot, and retries every node's bitmap in
//! fallback order, one global lock at a time.
//! While the count is raised no frame may move *into* a cache (no refill, no depot get:
//! [`Engine::may_fill_caches`] is false), so no frame can slip from a not-yet-drained place
//! into an already-drained one. Reading the count under the CPU's own cache lock suffices:
//! for each CPU, either the reclaimer's drain of it comes after the CPU's fill (and takes the
//! filled frames), or before, in which case the drain's unlock happens-before the CPU's next
//! lock and the CPU sees the raised count. Frames leaving caches meanwhile go to the depot
//! (drained last) or the bitmap. So when the retry fails, every frame cached when the
//! allocation started was back in the bitmap or handed out: memory is truly exhausted, except
//! for frames freed concurrently with the failing call. Nothing is stranded.
//!
//! Contiguous runs always come from the global bitmap; when fragmentation (or frames parked
//! in caches) blocks one, the same reclaim runs before the request fails.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use bitmap_allocator::BitAlloc;

use crate::cache::CpuCache;
use crate::checked::FrameCheck;
use crate::engine::Engine;
use crate::error::{AllocError, FreeError, FreeErrorKind};
use crate::frame::Frame;
use crate::magazine::Magazine;
use crate::raw::CpuGuard;
use crate::stats::Counter;

impl<B: BitAlloc, C: FrameCheck> Engine<B, C> {
    /// Empties CPU `cpu`'s cache into the global bitmap; returns the frames moved (0 for a
    /// CPU without a cache). Safe to call from any CPU while `cpu` runs; call it with
    /// interrupts off, like every allocator call in the kernel.
    pub fn drain_cpu(&self, cpu: usize) -> u64 {
        self.caches()
            .get(cpu)
            .map_or(0, |cache| self.drain_cache(cache))
    }

    /// Drains every CPU's cache, then the depot, into the global bitmap; returns the frames
    /// moved.
    pub fn drain_all(&self) -> u64 {
        let mut moved = 0;
        for cache in self.caches() {
            moved += self.drain_cache(cache);
        }
        moved + self.spill_depot(false)
    }

    /// Spills depot magazines (all, or those beyond the cap) of every node into that node's
    /// bitmap, one magazine per hold of the depot lock and, inside it, the node's global lock
    /// (order depot -> global), so the frames are never outside every lock.
    pub(crate) fn spill_depot(&self, excess_only: bool) -> u64 {
        let mut moved = 0;
        for node in self.used_nodes() {
            let spill = |magazine: &mut Magazine| node.global.lock(&self.clock).spill(magazine);
            while let Some(frames) = node.depot.spill_one(&self.clock, excess_only, spill) {
                moved += frames;
            }
        }
        moved
    }

    fn drain_cache(&self, cache: &CpuCache) -> u64 {
        let mut magazines = cache.lock();
        // Holding the cache lock makes us the single writer of `Drains`.
        cache.counters().bump(Counter::Drains);
        let frames = magazines.frames();
        let home = &self.nodes[cache.node()];
        if magazines.loaded.len() + magazines.previous.len() > 0 {
            let mut global = home.global.lock(&self.clock);
            global.spill(&mut magazines.loaded);
            global.spill(&mut magazines.previous);
        }
        // Both are empty: arm them with the node's size, so a shrink reaches this CPU now.
        let size = home.depot.size();
        magazines.loaded.arm(size);
        magazines.previous.arm(size);
        for (node, batch) in self.nodes.iter().zip(magazines.remote.iter_mut()) {
            if !batch.is_empty() {
                node.global.lock(&self.clock).spill(batch);
            }
        }
        frames
    }

    /// Drains every cached frame of every node into the bitmaps with cache fills blocked,
    /// then runs `op`, which takes what it needs from the bitmaps (see the module docs for
    /// why a failure of `op` is then genuine).
    pub(crate) fn reclaim_then<R>(&self, op: impl FnOnce() -> Option<R>) -> Option<R> {
        self.reclaiming.fetch_add(1, Relaxed);
        self.drain_all();
        let result = op();
        self.reclaiming.fetch_sub(1, Relaxed);
        result
    }

    /// Allocates `count` contiguous frames whose first frame number is a multiple of
    /// `2^align_log2`.
    pub fn alloc_contiguous(
        &self,
        guard: &impl CpuGuard,
        count: usize,
        align_log2: u32,
    ) -> Result<Frame, AllocError> {
        let cpu = guard.cpu();
        let route = self.route(cpu).ok_or(AllocError::UnknownCpu { cpu })?;
        let node = Self::route_node(route);
        let result = self.take_run(node, count, align_log2, cpu);
        match result {
            Ok(first) => {
                self.check.claim(first, count as u64);
                self.count(route, Counter::ContigAllocs, 1);
                self.count(route, Counter::ContigAllocFrames, count as u64);
            }
            Err(_) => self.count(route, Counter::ContigFailures, 1),
        }
        result
    }

    fn take_run(
        &self,
        node: usize,
        count: usize,
        align_log2: u32,
        cpu: usize,
    ) -> Result<Frame, AllocError> {
        if count == 0 || count as u64 > Self::REACH {
            return Err(AllocError::BadCount { count });
        }
        if align_log2 >= 64 || 1u64 << align_log2 > Self::REACH {
            return Err(AllocError::BadAlignment { align_log2 });
        }
        // Own node first, then the others nearest first; one global lock at a time.
        let take = || {
            self.numa.fallback(node).find_map(|from| {
                let mut global = self.nodes[from].global.lock(&self.clock);
                global.alloc_contiguous(count, align_log2)
            })
        };
        take()
            .or_else(|| self.reclaim_then(take))
            .ok_or(AllocError::OutOfMemory { cpu })
    }

    /// Frees the run `first..first+count`, all or nothing.
    pub fn free_contiguous(
        &self,
        guard: &impl CpuGuard,
        first: Frame,
        count: usize,
    ) -> Result<(), FreeError> {
        let cpu = guard.cpu();
        let Some(route) = self.route(cpu) else {
            let kind = FreeErrorKind::UnknownCpu;
            return Err(FreeError {
                kind,
                frame: first,
                cpu,
            });
        };
        let count = count as u64;
        if count == 0 || first.number().checked_add(count).is_none() {
            return Err(self.refuse_free(route, FreeErrorKind::BadCount, first, cpu));
        }
        if let Err((kind, bad)) = self.check.release(first, count) {
            return Err(self.refuse_free(route, kind, bad, cpu));
        }
        // A run comes from one node's bitmap: it goes back to the home of its first frame.
        let home = &self.nodes[self.numa.home(first)];
        let freed = home.global.lock(&self.clock).free_contiguous(first, count);
        if let Err((kind, bad)) = freed {
            // Undo the release so the refused free changes nothing.
            self.check.claim(first, count);
            return Err(self.refuse_free(route, kind, bad, cpu));
        }
        self.count(route, Counter::ContigFrees, 1);
        self.count(route, Counter::ContigFreeFrames, count);
        Ok(())
    }
}
