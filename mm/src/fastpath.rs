//! Single-frame allocation and free: the per-CPU fast path and its slow paths.
//!
//! Fast path (magazine mode, cache attached), one comment per step in the code:
//! pick the CPU's cache through the guard, take its uncontended lock, pop from (or push onto)
//! the loaded magazine, count, unlock. Only the CPU's own cache lines are written (in checked
//! mode also one bit of the shared in-use map, with an atomic read-modify-write).
//!
//! Slow paths, in Bonwick's order: swap with the previous magazine; else exchange a magazine
//! with the depot; else refill from (or spill to) the global bitmap, one magazine per global
//! lock hold; else (allocation only) reclaim every cached frame and retry before failing.
#![deny(unsafe_code)]

use bitmap_allocator::BitAlloc;

use crate::cache::{CpuCache, Magazines};
use crate::checked::FrameCheck;
use crate::engine::{Engine, Route};
use crate::error::{AllocError, FreeError, FreeErrorKind};
use crate::frame::Frame;
use crate::global::Global;
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

    /// Loaded magazine empty: swap, or load a full magazine from the depot or the bitmap.
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
        // Nothing in the depot or the bitmap, or caches may not fill now: take one frame
        // directly, reclaiming every cache first if the bitmap is empty.
        drop(magazines);
        self.alloc_global(Route::Cpu(cache))
    }

    /// Fills the empty loaded magazine from the depot, else from the global bitmap.
    fn load_magazine(&self, cache: &CpuCache, magazines: &mut Magazines) {
        if self.depot.get(&self.clock, &mut magazines.loaded) {
            cache.counters().bump(Counter::DepotGets);
            return;
        }
        let refilled = self.global.lock(&self.clock).refill(&mut magazines.loaded);
        if refilled > 0 {
            cache.counters().bump(Counter::Refills);
        }
    }

    /// Baseline mode or no cache yet: one frame from the global bitmap.
    #[inline(never)]
    fn alloc_direct(&self, route: Route<'_>) -> Option<Frame> {
        self.count(route, Counter::Direct, 1);
        self.alloc_global(route)
    }

    /// One frame from the global bitmap; if it is empty, reclaim every cache and retry.
    fn alloc_global(&self, route: Route<'_>) -> Option<Frame> {
        let taken = self.global.lock(&self.clock).alloc();
        let taken = taken.or_else(|| self.reclaim_then(Global::alloc));
        let counter = if taken.is_some() {
            Counter::Allocs
        } else {
            Counter::AllocFailures
        };
        self.count(route, counter, 1);
        taken
    }

    #[inline(always)]
    fn free_cached(&self, cache: &CpuCache, frame: Frame) -> Result<(), FreeErrorKind> {
        let mut magazines = cache.lock();
        // A switch to baseline drains caches under this lock: recheck, or the frame would be
        // stranded in a cache nobody refills from.
        if self.is_baseline() {
            drop(magazines);
            return self.free_direct(Route::Cpu(cache), frame);
        }
        // Hit: room in the loaded magazine.
        if magazines.loaded.push(frame).is_ok() {
            cache.counters().bump(Counter::Frees);
            return Ok(());
        }
        self.free_slow(cache, magazines, frame);
        Ok(())
    }

    /// Loaded magazine full: swap, or hand the full previous one to the depot or the bitmap.
    #[inline(never)]
    fn free_slow(&self, cache: &CpuCache, mut magazines: SpinGuard<'_, Magazines>, frame: Frame) {
        let counters = cache.counters();
        if magazines.previous.is_full() {
            counters.bump(Counter::Misses);
            if self.depot.put(&self.clock, &mut magazines.previous) {
                counters.bump(Counter::DepotPuts);
            } else {
                // Depot at its cap: the whole magazine goes back under one global hold.
                self.global.lock(&self.clock).spill(&mut magazines.previous);
                counters.bump(Counter::Spills);
            }
        }
        // Previous is now empty (or was): it becomes the loaded one.
        magazines.swap();
        if let Err(frame) = magazines.loaded.push(frame) {
            debug_assert!(false, "swapped-in magazine is not full");
            drop(magazines);
            self.global.lock(&self.clock).spill_one(frame);
        }
        counters.bump(Counter::Frees);
    }

    /// Baseline mode or no cache yet: the frame goes straight back to the global bitmap.
    #[inline(never)]
    fn free_direct(&self, route: Route<'_>, frame: Frame) -> Result<(), FreeErrorKind> {
        let freed = self.global.lock(&self.clock).free(frame);
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
            FreeErrorKind::NotAllocated if !self.global.lock_quietly().is_managed(frame) => {
                FreeErrorKind::OutsideManaged
            }
            other => other,
        };
        self.count(route, Counter::FreeErrors, 1);
        FreeError { kind, frame, cpu }
    }
}
