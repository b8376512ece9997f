//! Unit tests of drains, exhaustion and contiguous runs.

use std::boxed::Box;
use std::vec::Vec;

use crate::MAGAZINE_SIZE;
use crate::error::{AllocError, FreeErrorKind};
use crate::frame::Frame;
use crate::testutil::{Checked, Cpu, alloc_all, engine};

const M: u64 = MAGAZINE_SIZE as u64;

/// Leaves every CPU of `e` with a partly used magazine.
fn spread(e: &Checked, cpus: usize) -> Vec<Frame> {
    (0..cpus).map(|cpu| e.alloc(&Cpu(cpu)).unwrap()).collect()
}

#[test]
fn remote_drain_empties_one_cpu() {
    let e: Box<Checked> = engine(1, 1001, 2);
    spread(&e, 2);
    assert_eq!(e.drain_cpu(1), M - 1);
    assert_eq!(e.drain_cpu(1), 0);
    assert_eq!(e.drain_cpu(5), 0, "no such CPU: nothing to drain");
    let s = e.stats();
    assert_eq!(s.cached, M - 1, "CPU 0 keeps its cache");
    assert_eq!(e.cpu_stats(1).drains, 2);
    assert!(s.is_balanced());
}

#[test]
fn drain_all_empties_caches_and_depot() {
    let e: Box<Checked> = engine(1, 2001, 2);
    let held: Vec<Frame> = (0..5 * M).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    for f in &held {
        e.free(&Cpu(1), *f).unwrap();
    }
    assert!(e.stats().depot_frames > 0);
    let cached = e.stats().cached;
    assert_eq!(e.drain_all(), cached);
    let s = e.stats();
    assert_eq!((s.cached, s.free), (0, 2000));
    assert!(s.is_balanced());
}

#[test]
fn exhaustion_reclaims_frames_parked_in_other_caches() {
    let e: Box<Checked> = engine(1, 4 * M + 1, 4);
    let mut got = spread(&e, 4);
    assert_eq!(e.stats().free, 0, "all frames sit in the four caches");
    got.extend(alloc_all(&e, 0));
    assert_eq!(got.len() as u64, 4 * M, "every managed frame was obtained");
    got.sort();
    got.dedup();
    assert_eq!(got.len() as u64, 4 * M, "no frame twice");
    assert_eq!(e.alloc(&Cpu(2)), Err(AllocError::OutOfMemory { cpu: 2 }));
    let s = e.stats();
    assert_eq!((s.free, s.cached, s.allocated), (0, 0, 4 * M));
    assert_eq!(
        s.cpu.alloc_failures, 2,
        "the end of alloc_all and the call above"
    );
    let c = s.cpu;
    assert_eq!(
        c.hits + c.misses + c.direct,
        c.allocs + c.frees + c.alloc_failures,
        "a failed allocation is a miss, not a lost hit: {c:?}"
    );
    assert!(e.cpu_stats(3).drains >= 1);
}

#[test]
fn exhaustion_also_reclaims_the_depot() {
    let e: Box<Checked> = engine(1, 8 * M + 1, 2);
    let held: Vec<Frame> = (0..8 * M).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    for f in &held {
        e.free(&Cpu(0), *f).unwrap();
    }
    assert!(e.stats().depot_frames > 0);
    assert_eq!(alloc_all(&e, 1).len() as u64, 8 * M);
    assert_eq!(e.in_use_frames(), Some(8 * M));
}

#[test]
fn baseline_exhaustion_is_an_error_after_reclaiming() {
    let e: Box<Checked> = engine(1, 2 * M + 1, 2);
    spread(&e, 2);
    e.set_mode(crate::stats::Mode::Baseline);
    let got = alloc_all(&e, 1);
    assert_eq!(got.len() as u64, 2 * M - 2, "all but the two held frames");
    assert_eq!(e.alloc(&Cpu(0)), Err(AllocError::OutOfMemory { cpu: 0 }));
    let s = e.stats();
    assert_eq!((s.free, s.cached, s.cpu.alloc_failures), (0, 0, 2));
    assert!(s.is_balanced());
}

#[test]
fn early_exhaustion_is_an_error() {
    let e: Box<Checked> = engine(1, 3, 0);
    assert_eq!(alloc_all(&e, 4).len(), 2);
    assert_eq!(e.alloc(&Cpu(9)), Err(AllocError::OutOfMemory { cpu: 9 }));
    assert_eq!(e.stats().cpu.alloc_failures, 2);
}

#[test]
fn contiguous_runs_are_aligned_and_freed_whole() {
    let e: Box<Checked> = engine(1, 1001, 1);
    let run = e.alloc_contiguous(&Cpu(0), 16, 4).unwrap();
    assert_eq!(run.number() % 16, 0);
    assert_eq!(e.in_use_frames(), Some(16));
    e.free_contiguous(&Cpu(0), run, 16).unwrap();
    let s = e.stats();
    assert_eq!(
        (s.cpu.contig_allocs, s.cpu.contig_frees, s.allocated),
        (1, 1, 0)
    );
    assert!(s.is_balanced());
}

#[test]
fn contiguous_allocation_reclaims_cached_frames() {
    let e: Box<Checked> = engine(1, 2 * M + 1, 2);
    spread(&e, 2);
    assert_eq!(e.stats().free, 0);
    // Each CPU holds the top frame of its magazine: the longest free run is M - 1.
    let run = e.alloc_contiguous(&Cpu(0), MAGAZINE_SIZE - 1, 0).unwrap();
    assert_eq!(e.in_use_frames(), Some(M + 1));
    assert_eq!(e.stats().cached, 0, "caches were drained to make room");
    e.free_contiguous(&Cpu(1), run, MAGAZINE_SIZE - 1).unwrap();
    assert!(e.stats().is_balanced());
}

#[test]
fn contiguous_request_errors() {
    let e: Box<Checked> = engine(1, 101, 1);
    let cpu = Cpu(0);
    assert_eq!(
        e.alloc_contiguous(&cpu, 0, 0),
        Err(AllocError::BadCount { count: 0 })
    );
    assert_eq!(
        e.alloc_contiguous(&cpu, 5000, 0),
        Err(AllocError::BadCount { count: 5000 })
    );
    assert_eq!(
        e.alloc_contiguous(&cpu, 1, 13),
        Err(AllocError::BadAlignment { align_log2: 13 })
    );
    assert_eq!(
        e.alloc_contiguous(&cpu, 1, 64),
        Err(AllocError::BadAlignment { align_log2: 64 })
    );
    assert_eq!(
        e.alloc_contiguous(&cpu, 101, 0),
        Err(AllocError::OutOfMemory { cpu: 0 })
    );
    assert_eq!(
        e.alloc_contiguous(&Cpu(4), 1, 0),
        Err(AllocError::UnknownCpu { cpu: 4 })
    );
    let c = e.cpu_stats(0);
    assert_eq!((c.contig_failures, c.alloc_failures), (5, 0));
}

#[test]
fn contiguous_free_errors_change_nothing() {
    let e: Box<Checked> = engine(1, 101, 1);
    let run = e.alloc_contiguous(&Cpu(0), 8, 3).unwrap();
    let end = run.number() + 8;
    e.free(&Cpu(0), Frame::from_number(end - 3)).unwrap();
    let err = e.free_contiguous(&Cpu(0), run, 8).unwrap_err();
    assert_eq!(
        (err.kind, err.frame.number()),
        (FreeErrorKind::NotAllocated, end - 3)
    );
    assert_eq!(e.in_use_frames(), Some(7), "nothing released");
    let err = e.free_contiguous(&Cpu(0), run, 0).unwrap_err();
    assert_eq!(err.kind, FreeErrorKind::BadCount);
    let err = e
        .free_contiguous(&Cpu(0), Frame::from_number(u64::MAX), 2)
        .unwrap_err();
    assert_eq!(err.kind, FreeErrorKind::BadCount);
    let err = e
        .free_contiguous(&Cpu(0), Frame::from_number(101), 2)
        .unwrap_err();
    assert_eq!(
        (err.kind, err.frame.number()),
        (FreeErrorKind::OutsideManaged, 101)
    );
    let err = e.free_contiguous(&Cpu(3), run, 8).unwrap_err();
    assert_eq!(err.kind, FreeErrorKind::UnknownCpu);
    e.free(&Cpu(0), Frame::from_number(end - 3)).unwrap_err();
    assert!(e.stats().is_balanced());
}

#[test]
fn unchecked_contiguous_free_is_validated_by_the_bitmap() {
    let e: Box<crate::testutil::Unchecked> = engine(1, 101, 1);
    let run = e.alloc_contiguous(&Cpu(0), 4, 2).unwrap();
    e.free_contiguous(&Cpu(0), run, 4).unwrap();
    let err = e.free_contiguous(&Cpu(0), run, 4).unwrap_err();
    assert_eq!((err.kind, err.frame), (FreeErrorKind::NotAllocated, run));
    let err = e
        .free_contiguous(&Cpu(0), Frame::from_number(98), 4)
        .unwrap_err();
    assert_eq!(err.kind, FreeErrorKind::OutsideManaged);
    assert!(e.stats().is_balanced());
}

#[test]
fn lock_timing_uses_the_clock() {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NOW: AtomicU64 = AtomicU64::new(0);
    fn now() -> u64 {
        NOW.fetch_add(7, Relaxed)
    }
    let e: Box<Checked> = engine(1, 101, 1);
    assert_eq!(e.stats().global_lock.max_hold_cycles, 0, "no clock yet");
    e.set_clock(now);
    e.alloc_contiguous(&Cpu(0), 4, 0).unwrap();
    assert!(e.stats().global_lock.max_hold_cycles >= 7);
}
