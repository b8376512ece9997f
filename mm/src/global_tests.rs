//! Tests of the global layer, including regression tests for bitmap-allocator 0.4.6.

use super::*;
use crate::magazine::{MAGAZINE_SIZE, Magazine};
use bitmap_allocator::{BitAlloc4K, BitAlloc16};

type Small = Global<BitAlloc4K>;

fn f(n: u64) -> Frame {
    Frame::from_number(n)
}

fn layer(span: Range<u64>) -> Small {
    let mut g = Small::new();
    g.add(span, u64::MAX, &mut AddReport::default());
    g
}

/// Fact 1, verified in bitmap-allocator 0.4.6's source: `dealloc_contiguous` over sub-blocks
/// frees the leading blocks, then fails on a block that is partly free, and reports false
/// with the leading part already freed.
#[test]
fn raw_bitmap_dealloc_contiguous_frees_part_before_failing() {
    let mut raw = BitAlloc4K::default();
    raw.insert(0..64);
    assert_eq!(raw.alloc_contiguous(None, 64, 0), Some(0));
    assert!(raw.dealloc(40), "make one frame of the second block free");
    assert!(!raw.dealloc_contiguous(0, 48), "reports failure...");
    assert!(
        raw.test(0) && raw.test(15),
        "...yet the first 16 frames were freed"
    );
}

/// Fact 2: `dealloc` of a frame never inserted returns true and makes it allocatable.
#[test]
fn raw_bitmap_dealloc_of_unknown_frame_succeeds() {
    let mut raw = BitAlloc16::default();
    raw.insert(0..4);
    assert!(raw.dealloc(9), "never inserted, yet accepted");
    assert!(raw.test(9));
    let mut got = [0usize; 5];
    for slot in &mut got {
        *slot = raw.alloc().unwrap();
    }
    assert!(got.contains(&9), "the foreign frame is handed out");
}

#[test]
fn contiguous_free_of_partly_free_run_changes_nothing() {
    let mut g = layer(1..100);
    let run = g.alloc_contiguous(48, 4).unwrap();
    assert_eq!(run, f(16));
    g.free(f(40)).unwrap();
    let free_before = g.free_frames();
    assert_eq!(
        g.free_contiguous(run, 48),
        Err((FreeErrorKind::NotAllocated, f(40)))
    );
    assert_eq!(g.free_frames(), free_before);
    assert!(!g.bitmap.test(16) && !g.bitmap.test(31), "nothing freed");
}

#[test]
fn free_of_unmanaged_frame_is_refused() {
    let mut g = layer(10..20);
    assert_eq!(g.free(f(9)), Err(FreeErrorKind::OutsideManaged));
    assert_eq!(g.free(f(3000)), Err(FreeErrorKind::OutsideManaged));
    assert!(!g.bitmap.test(9), "not made allocatable");
    assert_eq!(g.free(f(12)), Err(FreeErrorKind::NotAllocated));
    assert_eq!(
        g.free_contiguous(f(18), 4),
        Err((FreeErrorKind::OutsideManaged, f(20)))
    );
    assert_eq!(g.free_frames(), 10);
}

#[test]
fn frame_zero_is_never_managed() {
    let mut g = Small::new();
    let mut report = AddReport::default();
    g.add(0..4, u64::MAX, &mut report);
    assert!(report.skipped_frame_zero);
    assert_eq!(report.added, 3);
    let mut seen = [g.alloc(), g.alloc(), g.alloc(), g.alloc()];
    seen.sort();
    assert_eq!(seen, [None, Some(f(1)), Some(f(2)), Some(f(3))]);
}

#[test]
fn frames_beyond_reach_are_counted_not_managed() {
    let mut g = Small::new();
    let mut report = AddReport::default();
    g.add(4000..5000, u64::MAX, &mut report);
    assert_eq!((report.added, report.beyond_reach), (96, 904));
    g.add(6000..6001, u64::MAX, &mut report);
    assert_eq!(report.beyond_reach, 905);
    let mut report = AddReport::default();
    g.add(1..100, 50, &mut report);
    assert_eq!((report.added, report.beyond_reach), (49, 50));
    assert_eq!(g.managed(), 145);
}

#[test]
fn overlapping_adds_never_free_allocated_frames() {
    let mut g = layer(1..9);
    let taken: std::vec::Vec<_> = (0..8).map(|_| g.alloc().unwrap()).collect();
    assert_eq!(g.alloc(), None);
    let mut report = AddReport::default();
    g.add(1..12, u64::MAX, &mut report);
    assert_eq!((report.added, report.overlapping), (3, 8));
    for _ in 0..3 {
        let frame = g.alloc().unwrap();
        assert!(!taken.contains(&frame), "{frame} handed out twice");
    }
    assert_eq!(g.alloc(), None);
}

#[test]
fn refill_and_spill_move_whole_magazines() {
    let mut g = layer(1..1000);
    let mut m = Magazine::with_cap(MAGAZINE_SIZE);
    assert_eq!(g.refill(&mut m), MAGAZINE_SIZE);
    assert!(m.is_full());
    assert_eq!(g.free_frames(), 999 - m.len() as u64);
    g.spill(&mut m);
    assert!(m.is_empty());
    assert_eq!(g.free_frames(), 999);
    assert_eq!(g.anomalies(), 0);
}

#[test]
fn refill_takes_what_is_left_and_spill_drops_anomalies() {
    let mut g = layer(1..3);
    let mut m = Magazine::with_cap(MAGAZINE_SIZE);
    assert_eq!(g.refill(&mut m), 2);
    assert_eq!(g.refill(&mut Magazine::with_cap(MAGAZINE_SIZE)), 0);
    m.push(m.frames()[0]).unwrap();
    g.spill(&mut m);
    assert_eq!(
        g.anomalies(),
        1,
        "the duplicate is dropped, not freed twice"
    );
    assert_eq!(g.free_frames(), 2);
}

#[test]
fn contiguous_runs_are_aligned_and_bounded() {
    let mut g = layer(1..4096);
    let a = g.alloc_contiguous(3, 3).unwrap();
    assert_eq!(a.number() % 8, 0);
    assert_eq!(g.alloc_contiguous(5000, 0), None);
    assert_eq!(g.alloc_contiguous(4095, 0), None, "frame 0 is not managed");
    g.free_contiguous(a, 3).unwrap();
    assert_eq!(g.free_frames(), 4095);
    assert_eq!(g.alloc_contiguous(2048, 11).map(Frame::number), Some(2048));
}

#[test]
fn a_full_span_table_is_reported_not_silently_dropped() {
    let mut g = Small::new();
    let mut report = AddReport::default();
    // Disjoint, non-adjacent spans of one frame each fill the table.
    for i in 0..crate::ranges::MAX_SPANS as u64 {
        g.add(2 * i + 1..2 * i + 2, u64::MAX, &mut report);
    }
    assert_eq!((report.added, report.table_full), (128, 0));
    g.add(3000..3010, u64::MAX, &mut report);
    assert_eq!((report.added, report.table_full), (128, 10));
    assert_eq!(g.managed(), 128);
    assert!(!g.is_managed(f(3000)));
    assert_eq!(g.free(f(3000)), Err(FreeErrorKind::OutsideManaged));
}

#[test]
fn hand_over_moves_free_and_allocated_frames() {
    let mut from = layer(1..100);
    let mut to = Small::new();
    let held: std::vec::Vec<Frame> = (0..30).map(|_| from.alloc().unwrap()).collect();
    assert!(from.can_hand_over(core::iter::once(20..40)));
    assert!(from.hand_over(20..40, &mut to));
    assert_eq!((from.managed(), to.managed()), (79, 20));
    // Frames 1..31 were allocated: 20..31 moved allocated, 31..40 moved free.
    assert_eq!((from.free_frames(), to.free_frames()), (60, 9));
    assert!(!from.is_managed(f(25)) && to.is_managed(f(25)));
    assert_eq!(from.free(f(25)), Err(FreeErrorKind::OutsideManaged));
    assert_eq!(to.free(f(25)), Ok(()));
    assert_eq!(
        to.free(f(35)),
        Err(FreeErrorKind::NotAllocated),
        "moved free"
    );
    let mut got = std::vec::Vec::new();
    while let Some(frame) = to.alloc() {
        got.push(frame.number());
    }
    got.sort();
    let mut want: std::vec::Vec<u64> = (31..40).collect();
    want.insert(0, 25);
    assert_eq!(got, want);
    assert!(held.iter().all(|f| f.number() < 31));
    assert_eq!(from.spans().collect::<std::vec::Vec<_>>(), [1..20, 40..100]);
}
