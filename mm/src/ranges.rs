//! The table of managed frame spans: which frames the allocator owns.
//!
//! The bitmap alone cannot tell "allocated" from "never managed" (both are clear bits), and
//! bitmap-allocator 0.4.6 happily frees a frame it never had. This sorted table of disjoint,
//! non-adjacent spans answers "is this frame ours?" and lets `add_ranges` insert only frames
//! not managed already, so overlapping or repeated ranges never free a frame in use.
//!
//! # Implementation
//! A fixed array (no heap) kept sorted and merged: adjacent spans fuse, so a memory map of a
//! few dozen entries needs a few dozen slots. Lookups are binary searches. When the table is
//! full a span that would need a new slot is refused and reported, never silently dropped.
#![deny(unsafe_code)]

use core::ops::Range;

/// Slots in the table: far more than the 16 (BIOS) to 33 (UEFI) usable entries a 512 MiB
/// Limine memory map holds, even before adjacent spans merge.
/// Loom builds use 8, so a model's allocator fits a model thread's stack.
pub(crate) const MAX_SPANS: usize = if cfg!(loom) { 8 } else { 128 };

/// What [`ManagedSpans::add`] did with a span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpanOutcome {
    /// Frames newly recorded.
    pub(crate) added: u64,
    /// Frames that were recorded already.
    pub(crate) overlapping: u64,
    /// Frames refused because the table was full.
    pub(crate) refused: u64,
}

/// Sorted, disjoint, non-adjacent spans of frame numbers.
#[derive(Clone)]
pub(crate) struct ManagedSpans {
    spans: [(u64, u64); MAX_SPANS],
    len: usize,
}

impl ManagedSpans {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        Self {
            spans: [(0, 0); MAX_SPANS],
            len: 0,
        }
    }

    fn spans(&self) -> &[(u64, u64)] {
        &self.spans[..self.len]
    }

    /// Index of the first span whose end lies beyond `frame`.
    fn first_ending_after(&self, frame: u64) -> usize {
        self.spans().partition_point(|&(_, end)| end <= frame)
    }

    /// The spans, in address order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.spans().iter().map(|&(start, end)| start..end)
    }

    /// Whether frame number `frame` is managed.
    pub(crate) fn contains(&self, frame: u64) -> bool {
        let i = self.first_ending_after(frame);
        self.spans()
            .get(i)
            .is_some_and(|&(start, _)| start <= frame)
    }

    /// The first frame of `span` that is not managed, if any.
    pub(crate) fn first_unmanaged(&self, span: Range<u64>) -> Option<u64> {
        if span.is_empty() {
            return None;
        }
        let i = self.first_ending_after(span.start);
        match self.spans().get(i) {
            Some(&(start, end)) if start <= span.start => (end < span.end).then_some(end),
            _ => Some(span.start),
        }
    }

    /// One past the highest managed frame (0 when empty).
    pub(crate) fn end(&self) -> u64 {
        self.spans().last().map_or(0, |&(_, end)| end)
    }

    /// Writes the parts of `span` that are managed into `out`; returns how many.
    pub(crate) fn overlaps(&self, span: Range<u64>, out: &mut [(u64, u64); MAX_SPANS]) -> usize {
        let mut count = 0;
        for &(start, end) in &self.spans()[self.first_ending_after(span.start)..] {
            if start >= span.end {
                break;
            }
            out[count] = (start.max(span.start), end.min(span.end));
            count += 1;
        }
        count
    }

    /// Stops managing `span`. Returns false, changing nothing, if splitting a span would need
    /// a slot and none is free.
    pub(crate) fn remove(&mut self, span: Range<u64>) -> bool {
        if span.is_empty() {
            return true;
        }
        let mut kept = [(0u64, 0u64); MAX_SPANS];
        let mut count = 0;
        for &(start, end) in self.spans() {
            for piece in [(start, end.min(span.start)), (start.max(span.end), end)] {
                if piece.0 < piece.1 {
                    if count == MAX_SPANS {
                        return false;
                    }
                    kept[count] = piece;
                    count += 1;
                }
            }
        }
        self.spans = kept;
        self.len = count;
        true
    }

    /// Records `span`, calling `on_new` with each part of it that was not managed before.
    pub(crate) fn add(
        &mut self,
        span: Range<u64>,
        mut on_new: impl FnMut(Range<u64>),
    ) -> SpanOutcome {
        let mut outcome = SpanOutcome::default();
        let mut cursor = span.start;
        while cursor < span.end {
            let i = self.first_ending_after(cursor);
            let next = self.spans().get(i).copied();
            let gap_end = next.map_or(span.end, |(start, _)| start.min(span.end));
            if gap_end > cursor {
                if self.insert_gap(cursor..gap_end) {
                    outcome.added += gap_end - cursor;
                    on_new(cursor..gap_end);
                } else {
                    outcome.refused += gap_end - cursor;
                }
                cursor = gap_end;
                continue;
            }
            // `cursor` lies inside the existing span `next`: skip what it covers.
            let (_, end) = next.expect("a gap ends early only at an existing span");
            let covered_end = end.min(span.end);
            outcome.overlapping += covered_end - cursor;
            cursor = covered_end;
        }
        outcome
    }

    /// Inserts a span that overlaps no recorded span, merging it with adjacent neighbours.
    /// Returns false if it needs a slot and none is free.
    fn insert_gap(&mut self, gap: Range<u64>) -> bool {
        let i = self.first_ending_after(gap.start);
        let joins_prev = i > 0 && self.spans[i - 1].1 == gap.start;
        let joins_next = i < self.len && self.spans[i].0 == gap.end;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.spans[i - 1].1 = self.spans[i].1;
                self.spans.copy_within(i + 1..self.len, i);
                self.len -= 1;
            }
            (true, false) => self.spans[i - 1].1 = gap.end,
            (false, true) => self.spans[i].0 = gap.start,
            (false, false) => {
                if self.len == MAX_SPANS {
                    return false;
                }
                self.spans.copy_within(i..self.len, i + 1);
                self.spans[i] = (gap.start, gap.end);
                self.len += 1;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn added(t: &mut ManagedSpans, span: Range<u64>) -> (SpanOutcome, Vec<Range<u64>>) {
        let mut new = Vec::new();
        let outcome = t.add(span, |r| new.push(r));
        (outcome, new)
    }

    #[test]
    fn overlapping_spans_add_only_new_frames() {
        let mut t = ManagedSpans::new();
        let (o, new) = added(&mut t, 10..20);
        assert_eq!((o.added, o.overlapping, new), (10, 0, std::vec![10..20]));
        let (o, new) = added(&mut t, 5..25);
        assert_eq!((o.added, o.overlapping), (10, 10));
        assert_eq!(new, std::vec![5..10, 20..25]);
        assert_eq!(t.spans(), &[(5, 25)]);
        let (o, new) = added(&mut t, 5..25);
        assert_eq!((o.added, o.overlapping, new.len()), (0, 20, 0));
    }

    #[test]
    fn adjacent_spans_merge_and_holes_stay() {
        let mut t = ManagedSpans::new();
        added(&mut t, 10..20);
        added(&mut t, 30..40);
        added(&mut t, 20..25);
        assert_eq!(t.spans(), &[(10, 25), (30, 40)]);
        added(&mut t, 25..30);
        assert_eq!(t.spans(), &[(10, 40)]);
        added(&mut t, 50..60);
        assert!(t.contains(10) && t.contains(39) && t.contains(55));
        assert!(!t.contains(9) && !t.contains(40) && !t.contains(49) && !t.contains(60));
        assert_eq!(t.end(), 60);
    }

    #[test]
    fn spans_across_several_holes_fill_them() {
        let mut t = ManagedSpans::new();
        added(&mut t, 10..12);
        added(&mut t, 14..16);
        let (o, new) = added(&mut t, 0..20);
        assert_eq!(new, std::vec![0..10, 12..14, 16..20]);
        assert_eq!((o.added, o.overlapping), (16, 4));
        assert_eq!(t.spans(), &[(0, 20)]);
    }

    #[test]
    fn first_unmanaged_finds_holes() {
        let mut t = ManagedSpans::new();
        added(&mut t, 10..20);
        added(&mut t, 30..40);
        assert_eq!(t.first_unmanaged(12..18), None);
        assert_eq!(t.first_unmanaged(12..25), Some(20));
        assert_eq!(t.first_unmanaged(5..15), Some(5));
        assert_eq!(t.first_unmanaged(20..31), Some(20));
        assert_eq!(t.first_unmanaged(45..50), Some(45));
        assert_eq!(t.first_unmanaged(15..15), None);
    }

    #[test]
    fn remove_splits_and_drops_spans() {
        let mut t = ManagedSpans::new();
        added(&mut t, 10..20);
        added(&mut t, 30..40);
        let mut out = [(0, 0); MAX_SPANS];
        assert_eq!(t.overlaps(15..35, &mut out), 2);
        assert_eq!(&out[..2], &[(15, 20), (30, 35)]);
        assert!(t.remove(12..14));
        assert_eq!(t.spans(), &[(10, 12), (14, 20), (30, 40)]);
        assert!(t.remove(15..35));
        assert_eq!(t.spans(), &[(10, 12), (14, 15), (35, 40)]);
        assert!(t.remove(0..100));
        assert_eq!(t.spans(), &[]);
    }

    #[test]
    fn full_table_refuses_and_reports() {
        let mut t = ManagedSpans::new();
        for i in 0..MAX_SPANS as u64 {
            let (o, _) = added(&mut t, i * 10..i * 10 + 5);
            assert_eq!(o.refused, 0);
        }
        let (o, new) = added(&mut t, 100_000..100_003);
        assert_eq!((o.added, o.refused, new.len()), (0, 3, 0));
        // Growing an existing span needs no slot.
        let (o, _) = added(&mut t, 5..7);
        assert_eq!((o.added, o.refused), (2, 0));
        assert!(!t.contains(100_000));
    }
}
