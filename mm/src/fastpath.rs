//! Single-frame allocation and free: the per-CPU fast path and its slow paths.
//!
//! Fast path (magazine mode, cache attached), one comment per step in the code:
//! pick the CPU's cache through the guard, take its uncontended lock, pop from (or push onto)
//! the loaded magazine, count, unlock. Only the CPU's own cache lines are written (in checked
//! mode also one bit of the shared in-use map, with an atomic read-modify-write).
//!
//! Slow paths, in Bonwick's order: swap with the previous magazine; else exchange a magazine
//! with the node's depot; else refill from (or spill to) the node's bitmap, one magazine per
//! global lock hold; else (allocation only) take from the other nodes in fallback order,
//! through a per-CPU batch per node; else reclaim every cached frame of every node and retry
//! before failing.
//!
//! With several nodes a free first looks up the frame's home node (one byte of the granule
//! table): a frame of another node goes into the CPU's batch for that node, and a full batch
//! goes home as a magazine into that node's depot, so the CPU's own magazines only ever hold
//! its own node's frames. With one node that test is one load of a flag that is false.
#![deny(unsafe_code)]

use bitmap_allocator::BitAlloc;

use crate::cache::{CpuCache, Magazines, REMOTE_BATCH};
use crate::checked::FrameCheck;
use core::sync::atomic::Ordering::Relaxed;

use crate::engine::{BASELINE, Engine, Route};
use crate::error::{AllocError, FreeError, FreeErrorKind};
use crate::frame::Frame;
use crate::magazine::Magazine;
use crate::raw::CpuGuard;
use crate::stats::Counter;
use crate::sync::SpinGuard;

impl<B: BitAlloc, C: FrameCheck> Engine<B, C> {
    /// Allocates one frame on the guard's CPU.
    #[inline(always)]
    pub fn alloc(&self, guard: &impl CpuGuard) -> Result<Frame, AllocError> {
        // The guard names the CPU; its cache is ours alone while the guard lives.
        let cpu = guard.cpu();
        let out_of_memory = AllocError::OutOfMemory { cpu };
        // Slow paths return `Option<Frame>`, which travels in registers; the hit returns its
        // frame directly, so it tests no `Option` after the pop.
        let frame = match self.route(cpu) {
            Some(Route::Cpu(cache)) if !self.is_baseline() => {
                // Uncontended unless a drain is visiting this CPU right now.
                let mut magazines = cache.lock();
                // Hit: the loaded magazine has a frame (popping needs no mode check: it adds
                // nothing to the cache).
                match magazines.loaded.pop() {
                    Some(frame) => {
                        cache.counters().bump(Counter::Allocs);
                        frame
                    }
                    None => self.alloc_slow(cache, magazines).ok_or(out_of_memory)?,
                }
            }
            Some(route) => self.alloc_direct(route).ok_or(out_of_memory)?,
            None => return Err(AllocError::UnknownCpu { cpu }),
        };
        // Checked mode marks the frame in use (a no-op otherwise).
        self.check.claim(frame, 1);
        Ok(frame)
    }

    /// Frees one frame on the guard's CPU (it may have been allocated on any CPU).
    #[inline(always)]
    pub fn free(&self, guard: &impl CpuGuard, frame: Frame) -> Result<(), FreeError> {
        let cpu = guard.cpu();
        let Some(route) = self.route(cpu) else {
            let kind = FreeErrorKind::UnknownCpu;
            return Err(FreeError { kind, frame, cpu });
        };
        // Validate before the frame can enter a magazine, where a duplicate would hide.
        if let Err((kind, bad)) = self.check.release(frame, 1) {
            return Err(self.refuse_free(route, kind, bad, cpu));
        }
        let freed = match route {
            Route::Cpu(cache) if !self.is_baseline() => self.free_cached(cache, frame),
            _ => self.free_direct(route, frame),
        };
        freed.map_err(|kind| self.refuse_free(route, kind, frame, cpu))
    }

    /// Loaded magazine empty: swap, or load a full magazine from the node's depot or bitmap,
    /// else take from the other nodes.
    #[inline(never)]
    fn alloc_slow(
        &self,
        cache: &CpuCache,
        mut magazines: SpinGuard<'_, Magazines>,
    ) -> Option<Frame> {
        let counters = cache.counters();
        if !magazines.previous.is_empty() {
            // Previous is full: swap, still a hit.
            magazines.swap();
        } else {
            counters.bump(Counter::Misses);
            if self.may_fill_caches() {
                self.load_magazine(cache, &mut magazines);
            }
        }
        if let Some(frame) = magazines.loaded.pop() {
            counters.bump(Counter::Allocs);
            return Some(frame);
        }
        self.alloc_elsewhere(cache, magazines)
    }

    /// Fills the empty loaded magazine from the node's depot, else from its bitmap, armed
    /// with the depot's magazine size; an empty node shrinks its magazines.
    fn load_magazine(&self, cache: &CpuCache, magazines: &mut Magazines) {
        let node = &self.nodes[cache.node()];
        if node.depot.get(&self.clock, &mut magazines.loaded) {
            cache.counters().bump(Counter::DepotGets);
            return;
        }
        magazines.loaded.arm(node.depot.size());
        let refilled = node.global.lock(&self.clock).refill(&mut magazines.loaded);
        if refilled > 0 {
            cache.counters().bump(Counter::Refills);
        } else {
            // Memory is short on this node: both magazines are empty, adopt the new size.
            let size = self.memory_short(cache.node());
            magazines.loaded.arm(size);
            magazines.previous.arm(size);
        }
    }

    /// The CPU's node has nothing (or caches may not fill now): take a frame from the
    /// nearest other node that has one, through the CPU's batch for that node; else one frame
    /// directly, reclaiming every cache of every node first if all bitmaps are empty.
    #[cold]
    fn alloc_elsewhere(
        &self,
        cache: &CpuCache,
        mut magazines: SpinGuard<'_, Magazines>,
    ) -> Option<Frame> {
        if self.numa.is_multi() {
            let may_fill = self.may_fill_caches();
            for node in self.numa.fallback(cache.node()).skip(1) {
                let batch = &mut magazines.remote[node];
                if batch.is_empty() && may_fill {
                    batch.arm(REMOTE_BATCH);
                    self.nodes[node].global.lock(&self.clock).refill(batch);
                }
                if let Some(frame) = batch.pop() {
                    cache.counters().bump(Counter::RemoteAllocs);
                    cache.counters().bump(Counter::Allocs);
                    return Some(frame);
                }
            }
        }
        drop(magazines);
        self.alloc_global(Route::Cpu(cache))
    }

    /// Baseline mode or no cache yet: one frame from the global bitmaps.
    #[inline(never)]
    fn alloc_direct(&self, route: Route<'_>) -> Option<Frame> {
        self.count(route, Counter::Direct, 1);
        self.alloc_global(route)
    }

    /// One frame from the route's node's bitmap, else the other nodes' in fallback order; if
    /// every bitmap is empty, reclaim every cache and depot and retry them all.
    fn alloc_global(&self, route: Route<'_>) -> Option<Frame> {
        let node = Self::route_node(route);
        let taken = self.take_one(node);
        let taken = taken.or_else(|| self.reclaim_then(|| self.take_one(node)));
        match taken {
            Some((frame, from)) => {
                if from != node {
                    self.count(route, Counter::RemoteAllocs, 1);
                }
                self.count(route, Counter::Allocs, 1);
                Some(frame)
            }
            None => {
                self.count(route, Counter::AllocFailures, 1);
                None
            }
        }
    }

    /// One frame from the first bitmap in `node`'s fallback order that has one, with the
    /// node it came from. One global lock at a time.
    fn take_one(&self, node: usize) -> Option<(Frame, usize)> {
        self.numa.fallback(node).find_map(|from| {
            let frame = self.nodes[from].global.lock(&self.clock).alloc()?;
            Some((frame, from))
        })
    }

    #[inline(always)]
    fn free_cached(&self, cache: &CpuCache, frame: Frame) -> Result<(), FreeErrorKind> {
        let mut magazines = cache.lock();
        // One load tests both exceptions: baseline mode (a switch to it drains caches under
        // this lock, so recheck here, or the frame would be stranded in a cache nobody
        // refills from) and several nodes (the frame may belong to another node).
        if self.mode.load(Relaxed) != 0 {
            drop(magazines);
            return self.free_flagged(cache, frame);
        }
        // Hit: room in the loaded magazine.
        if magazines.loaded.push(frame).is_ok() {
            cache.counters().bump(Counter::Frees);
            return Ok(());
        }
        self.free_slow(cache, magazines, frame);
        Ok(())
    }

    /// A free in baseline mode, or with several nodes. It takes the cache lock again and
    /// re-reads the flags under it (the fast path let go of it so as not to pass it here).
    #[cold]
    #[inline(never)]
    fn free_flagged(&self, cache: &CpuCache, frame: Frame) -> Result<(), FreeErrorKind> {
        let mut magazines = cache.lock();
        if self.mode.load(Relaxed) & BASELINE != 0 {
            drop(magazines);
            return self.free_direct(Route::Cpu(cache), frame);
        }
        // A frame of another node goes home, not into this CPU's magazines.
        if self.numa.home(frame) != cache.node() {
            self.free_remote(cache, magazines, frame);
        } else if magazines.loaded.push(frame).is_ok() {
            cache.counters().bump(Counter::Frees);
        } else {
            self.free_slow(cache, magazines, frame);
        }
        Ok(())
    }

    /// Loaded magazine full: swap, or hand the full previous one to the depot or the bitmap.
    #[inline(never)]
    fn free_slow(&self, cache: &CpuCache, mut magazines: SpinGuard<'_, Magazines>, frame: Frame) {
        let counters = cache.counters();
        let node = &self.nodes[cache.node()];
        if magazines.previous.is_full() {
            counters.bump(Counter::Misses);
            if node.depot.put(&self.clock, &mut magazines.previous) {
                counters.bump(Counter::DepotPuts);
            } else {
                // Depot at its cap: the whole magazine goes back under one global hold.
                node.global.lock(&self.clock).spill(&mut magazines.previous);
                counters.bump(Counter::Spills);
            }
        }
        // Previous is now empty (or was): armed with the depot's size, it becomes the loaded
        // one. So a resized depot reaches every CPU at its next exchange.
        magazines.previous.arm(node.depot.size());
        magazines.swap();
        if let Err(frame) = magazines.loaded.push(frame) {
            debug_assert!(false, "swapped-in magazine is not full");
            drop(magazines);
            node.global.lock(&self.clock).spill_one(frame);
        }
        counters.bump(Counter::Frees);
    }

    /// A frame of another node: into the CPU's batch for its home node; a full batch goes
    /// home first, as a magazine into the home depot (or its bitmap if the depot is full),
    /// under one lock.
    #[inline(never)]
    fn free_remote(&self, cache: &CpuCache, mut magazines: SpinGuard<'_, Magazines>, frame: Frame) {
        let counters = cache.counters();
        let home = self.numa.home(frame);
        let batch = &mut magazines.remote[home];
        if batch.is_full() {
            counters.bump(Counter::Misses);
            let mut magazine = Magazine::with_cap(batch.len());
            while let Some(f) = batch.pop() {
                let pushed = magazine.push(f);
                debug_assert!(pushed.is_ok(), "magazine sized to the batch");
            }
            let node = &self.nodes[home];
            if !node.depot.put(&self.clock, &mut magazine) {
                node.global.lock(&self.clock).spill(&mut magazine);
            }
        }
        if batch.is_empty() {
            // First use (capacity 0) or just sent home: arm it.
            batch.arm(REMOTE_BATCH);
        }
        let pushed = batch.push(frame);
        debug_assert!(pushed.is_ok(), "batch emptied when full");
        counters.bump(Counter::RemoteFrees);
        counters.bump(Counter::Frees);
    }

    /// Baseline mode or no cache yet: the frame goes straight back to its home bitmap.
    #[inline(never)]
    fn free_direct(&self, route: Route<'_>, frame: Frame) -> Result<(), FreeErrorKind> {
        let home = self.numa.home(frame);
        let freed = self.nodes[home].global.lock(&self.clock).free(frame);
        if freed.is_err() {
            // Undo the release so the refused free changes nothing.
            self.check.claim(frame, 1);
            return freed;
        }
        self.count(route, Counter::Direct, 1);
        self.count(route, Counter::Frees, 1);
        Ok(())
    }

    /// Builds the error for a refused free, telling unmanaged memory from a double free.
    #[cold]
    pub(crate) fn refuse_free(
        &self,
        route: Route<'_>,
        kind: FreeErrorKind,
        frame: Frame,
        cpu: usize,
    ) -> FreeError {
        let kind = match kind {
            FreeErrorKind::NotAllocated if !self.is_managed(frame) => FreeErrorKind::OutsideManaged,
            other => other,
        };
        self.count(route, Counter::FreeErrors, 1);
        FreeError { kind, frame, cpu }
    }

    /// Whether `frame` is managed (by its home node).
    fn is_managed(&self, frame: Frame) -> bool {
        let home = self.numa.home(frame);
        self.nodes[home].global.lock_quietly().is_managed(frame)
    }
}
