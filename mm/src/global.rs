//! The global layer: a `bitmap-allocator` bitmap of every managed frame, behind one lock.
//!
//! [`Global`] is the bottom of the allocator and the only layer that knows which frames exist.
//! It lives inside the `static` allocator (a `BitAlloc16M` is about 2.2 MB) behind a
//! [`TimedLock`](crate::lock::TimedLock); refills and spills move a whole magazine per lock
//! hold, contiguous runs come only from here.
//!
//! # Guards around bitmap-allocator 0.4.6
//! Its source shows behaviour a kernel must not inherit (regression tests below):
//! - `dealloc_contiguous` frees sub-blocks one by one and stops at the first that fails, so a
//!   run that is partly free gets its leading part freed before it reports failure. We check
//!   the whole run first (managed, and `next(first)` finds no free frame inside it) and only
//!   then free it, so it cannot fail half way.
//! - `dealloc` of a frame never inserted returns true and makes it allocatable. We free only
//!   frames the [`ManagedSpans`] table lists and whose bit is clear.
//! - `insert`, `dealloc` and `test` panic (or index out of bounds) past `CAP`, and `insert` of an
//!   empty range at 0 underflows: ranges are clipped to the reach and empty ones skipped.
#![deny(unsafe_code)]

use core::ops::Range;

use bitmap_allocator::BitAlloc;

use crate::error::FreeErrorKind;
use crate::frame::Frame;
use crate::magazine::Stack;
use crate::ranges::ManagedSpans;
use crate::stats::AddReport;

/// The global bitmap with its bookkeeping. `B` is `BitAlloc16M` in the kernel, a small
/// bitmap in loom models.
pub(crate) struct Global<B> {
    bitmap: B,
    spans: ManagedSpans,
    managed: u64,
    free: u64,
    anomalies: u64,
}

impl<B: BitAlloc> Global<B> {
    /// An empty layer: no frame managed.
    pub(crate) const fn new() -> Self {
        Self {
            bitmap: B::DEFAULT,
            spans: ManagedSpans::new(),
            managed: 0,
            free: 0,
            anomalies: 0,
        }
    }

    /// Puts the frames of `span` under management, except frame 0, frames at or past `reach`
    /// and frames already managed; records what happened in `report`.
    pub(crate) fn add(&mut self, span: Range<u64>, reach: u64, report: &mut AddReport) {
        let reach = reach.min(B::CAP as u64);
        let mut start = span.start;
        if start == 0 && span.end > 0 {
            report.skipped_frame_zero = true;
            start = 1;
        }
        let end = span.end.min(reach);
        report.beyond_reach += span.end - span.end.min(reach.max(start));
        if start >= end {
            return;
        }
        let bitmap = &mut self.bitmap;
        let outcome = self.spans.add(start..end, |new| {
            bitmap.insert(new.start as usize..new.end as usize);
        });
        self.managed += outcome.added;
        self.free += outcome.added;
        report.added += outcome.added;
        report.overlapping += outcome.overlapping;
        report.table_full += outcome.refused;
    }

    /// Takes one free frame.
    pub(crate) fn alloc(&mut self) -> Option<Frame> {
        let n = self.bitmap.alloc()?;
        self.free -= 1;
        Some(Frame::from_number(n as u64))
    }

    /// Fills `magazine` with free frames; returns how many it took (0 when none is free).
    pub(crate) fn refill<const N: usize>(&mut self, magazine: &mut Stack<N>) -> usize {
        let mut taken = 0;
        // `len < cap`, not `!is_full()`: an unarmed (capacity 0) magazine takes nothing.
        while magazine.len() < magazine.cap() {
            let Some(frame) = self.alloc() else { break };
            let pushed = magazine.push(frame);
            debug_assert!(pushed.is_ok(), "magazine checked not full");
            taken += 1;
        }
        taken
    }

    /// Takes `count` contiguous free frames whose first number is a multiple of
    /// `2^align_log2`. The caller has checked `count >= 1` and the alignment.
    pub(crate) fn alloc_contiguous(&mut self, count: usize, align_log2: u32) -> Option<Frame> {
        if count > B::CAP || (count as u64) > self.free {
            return None;
        }
        let first = self
            .bitmap
            .alloc_contiguous(None, count, align_log2 as usize)?;
        self.free -= count as u64;
        Some(Frame::from_number(first as u64))
    }

    /// Returns one allocated frame to the bitmap. Refuses frames it does not manage and
    /// frames already free, leaving the bitmap unchanged.
    pub(crate) fn free(&mut self, frame: Frame) -> Result<(), FreeErrorKind> {
        let n = frame.number();
        if !self.spans.contains(n) {
            return Err(FreeErrorKind::OutsideManaged);
        }
        if self.bitmap.test(n as usize) {
            return Err(FreeErrorKind::NotAllocated);
        }
        let freed = self.bitmap.dealloc(n as usize);
        debug_assert!(freed, "bit was checked clear");
        self.free += 1;
        Ok(())
    }

    /// Empties `magazine` into the bitmap under the caller's single lock hold. A frame the
    /// bitmap refuses (only possible after an unchecked double or bad free) is counted as an
    /// anomaly and dropped rather than handed out twice.
    pub(crate) fn spill<const N: usize>(&mut self, magazine: &mut Stack<N>) {
        while let Some(frame) = magazine.pop() {
            self.spill_one(frame);
        }
    }

    /// Returns one cached frame to the bitmap, counting it as an anomaly if refused.
    pub(crate) fn spill_one(&mut self, frame: Frame) {
        if self.free(frame).is_err() {
            self.anomalies += 1;
        }
    }

    /// Returns the run `first..first+count` to the bitmap, all or nothing: on error nothing is
    /// freed and the first offending frame is named.
    pub(crate) fn free_contiguous(
        &mut self,
        first: Frame,
        count: u64,
    ) -> Result<(), (FreeErrorKind, Frame)> {
        let start = first.number();
        let end = start + count;
        if let Some(n) = self.spans.first_unmanaged(start..end) {
            return Err((FreeErrorKind::OutsideManaged, Frame::from_number(n)));
        }
        // `next` finds the first free frame at or after `start`: none may lie in the run.
        if let Some(n) = self.bitmap.next(start as usize)
            && (n as u64) < end
        {
            return Err((FreeErrorKind::NotAllocated, Frame::from_number(n as u64)));
        }
        let freed = self
            .bitmap
            .dealloc_contiguous(start as usize, count as usize);
        debug_assert!(freed, "run was checked managed and fully allocated");
        self.free += count;
        Ok(())
    }

    /// Moves the managed frames of `span` to `to`, free ones free and allocated ones
    /// allocated (for `set_layout`, which gives every frame its home node). Returns false,
    /// moving nothing, if this layer's span table cannot record the hole it would leave.
    pub(crate) fn hand_over(&mut self, span: Range<u64>, to: &mut Global<B>) -> bool {
        let mut pieces = [(0u64, 0u64); crate::ranges::MAX_SPANS];
        let count = self.spans.overlaps(span.clone(), &mut pieces);
        if !self.spans.remove(span) {
            return false;
        }
        for &(start, end) in &pieces[..count] {
            let moved_free = self.move_free_frames(start..end, to);
            // `to` receives at most the pieces this layer had: its table has room for them.
            let outcome = to.spans.add(start..end, |_| {});
            debug_assert_eq!(outcome.refused, 0);
            to.managed += end - start;
            to.free += moved_free;
            self.managed -= end - start;
            self.free -= moved_free;
        }
        true
    }

    /// Whether removing every span of `spans` fits this layer's span table.
    pub(crate) fn can_hand_over(&self, spans: impl Iterator<Item = Range<u64>>) -> bool {
        let mut trial = self.spans.clone();
        spans.into_iter().all(|span| trial.remove(span))
    }

    /// The managed spans, in address order.
    pub(crate) fn spans(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.spans.iter()
    }

    /// Marks the free frames of `span` allocated here and free in `to`; returns how many.
    fn move_free_frames(&mut self, span: Range<u64>, to: &mut Global<B>) -> u64 {
        let mut moved = 0;
        let mut at = span.start;
        while let Some(first) = self.bitmap.next(at as usize) {
            let first = first as u64;
            if first >= span.end {
                break;
            }
            let mut end = first + 1;
            while end < span.end && self.bitmap.test(end as usize) {
                end += 1;
            }
            self.bitmap.remove(first as usize..end as usize);
            to.bitmap.insert(first as usize..end as usize);
            moved += end - first;
            at = end;
        }
        moved
    }

    /// Whether frame `frame` is managed.
    pub(crate) fn is_managed(&self, frame: Frame) -> bool {
        self.spans.contains(frame.number())
    }

    /// One past the highest managed frame number.
    pub(crate) fn end(&self) -> u64 {
        self.spans.end()
    }

    /// Frames managed.
    pub(crate) fn managed(&self) -> u64 {
        self.managed
    }

    /// Frames free in the bitmap.
    pub(crate) fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames dropped by spills (see [`Global::spill`]).
    pub(crate) fn anomalies(&self) -> u64 {
        self.anomalies
    }
}

#[cfg(test)]
#[path = "global_tests.rs"]
mod tests;
