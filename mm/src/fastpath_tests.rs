//! Unit tests of setup, the single-frame paths, modes, errors and counters.

use std::boxed::Box;
use std::vec::Vec;

use crate::MAGAZINE_SIZE;
use crate::error::{AllocError, AttachError, FreeError, FreeErrorKind};
use crate::frame::Frame;
use crate::stats::Mode;
use crate::testutil::{Checked, Cpu, Unchecked, alloc_all, caches, engine, frames};

const M: u64 = MAGAZINE_SIZE as u64;

#[test]
fn early_operations_go_to_the_global_layer() {
    let e: Box<Checked> = engine(1, 101, 0);
    let f = e.alloc(&Cpu(7)).unwrap();
    assert_eq!(
        e.stats().free,
        99,
        "no magazine refilled before caches exist"
    );
    e.free(&Cpu(3), f).unwrap();
    let s = e.stats();
    assert_eq!(
        (s.free, s.cached, s.allocated, s.cpu.direct),
        (100, 0, 0, 2)
    );
    assert_eq!(s.global_lock.acquisitions, 3, "add_ranges, alloc, free");
}

#[test]
fn attach_refuses_empty_duplicate_and_second_slices() {
    let e: Box<Checked> = engine(1, 101, 0);
    assert_eq!(e.try_attach_caches(&[]), Err(AttachError::Empty));
    let one = caches(2);
    let dup = std::boxed::Box::leak(std::vec![one[0], one[1], one[0]].into_boxed_slice());
    let dup: &'static [_] = dup;
    assert_eq!(
        e.try_attach_caches(dup),
        Err(AttachError::Duplicate {
            first: 0,
            second: 2
        })
    );
    e.try_attach_caches(one).unwrap();
    assert_eq!(
        e.try_attach_caches(caches(2)),
        Err(AttachError::AlreadyAttached)
    );
    assert_eq!(e.stats().cpus, 2);
}

#[test]
fn unknown_cpu_is_an_error_not_a_panic() {
    let e: Box<Checked> = engine(1, 101, 2);
    assert_eq!(e.alloc(&Cpu(2)), Err(AllocError::UnknownCpu { cpu: 2 }));
    let f = e.alloc(&Cpu(0)).unwrap();
    let err = e.free(&Cpu(9), f).unwrap_err();
    assert_eq!(
        (err.kind, err.frame, err.cpu),
        (FreeErrorKind::UnknownCpu, f, 9)
    );
    assert_eq!(
        e.in_use_frames(),
        Some(1),
        "the refused free changed nothing"
    );
    assert_eq!(e.cpu_stats(9), Default::default());
}

#[test]
fn first_alloc_refills_a_magazine_then_hits() {
    let e: Box<Checked> = engine(1, 1001, 1);
    let a = e.alloc(&Cpu(0)).unwrap();
    let b = e.alloc(&Cpu(0)).unwrap();
    assert_ne!(a, b);
    let s = e.stats();
    assert_eq!((s.free, s.cached, s.allocated), (1000 - M, M - 2, 2));
    assert_eq!((s.cpu.refills, s.cpu.misses, s.cpu.hits), (1, 1, 1));
    assert!(s.is_balanced());
}

#[test]
fn alternating_around_a_magazine_boundary_never_leaves_the_cache() {
    let e: Box<Checked> = engine(1, 1001, 1);
    let mut held: Vec<Frame> = (0..2 * M).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    for f in held.drain(..MAGAZINE_SIZE) {
        e.free(&Cpu(0), f).unwrap();
    }
    // Loaded is full, previous empty: each round crosses the boundary both ways.
    let s = e.stats();
    let before = (
        s.depot_lock.acquisitions,
        s.global_lock.acquisitions,
        s.cpu.misses,
    );
    for _ in 0..10 * M {
        e.free(&Cpu(0), held.pop().unwrap()).unwrap();
        let a1 = e.alloc(&Cpu(0)).unwrap();
        let a2 = e.alloc(&Cpu(0)).unwrap();
        e.free(&Cpu(0), a2).unwrap();
        held.push(a1);
    }
    let s = e.stats();
    let after = (
        s.depot_lock.acquisitions,
        s.global_lock.acquisitions,
        s.cpu.misses,
    );
    assert_eq!(after, before, "no depot, no bitmap, no miss");
    assert_eq!(s.cached, M);
    assert!(s.is_balanced());
}

#[test]
fn full_magazines_go_to_the_depot_and_feed_other_cpus() {
    let e: Box<Checked> = engine(1, 1001, 2);
    let held: Vec<Frame> = (0..4 * M).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    for f in &held {
        e.free(&Cpu(0), *f).unwrap();
    }
    let s = e.cpu_stats(0);
    assert!(s.depot_puts >= 1, "{s:?}");
    let depot_frames = e.stats().depot_frames;
    assert_eq!(depot_frames, s.depot_puts * M);
    let got = e.alloc(&Cpu(1)).unwrap();
    assert!(held.contains(&got), "CPU 1 was fed from CPU 0's frees");
    assert_eq!(e.cpu_stats(1).depot_gets, 1);
    assert_eq!(e.cpu_stats(1).refills, 0);
    assert!(e.stats().is_balanced());
}

#[test]
fn depot_cap_makes_cpus_spill_to_the_bitmap() {
    let e: Box<Checked> = engine(1, 1001, 1);
    assert_eq!(e.set_depot_cap(0), 0);
    let held: Vec<Frame> = (0..5 * M).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    for f in &held {
        e.free(&Cpu(0), *f).unwrap();
    }
    let s = e.stats();
    assert_eq!((s.depot_frames, s.cpu.depot_puts), (0, 0));
    assert!(s.cpu.spills >= 1);
    assert_eq!(s.cached, 2 * M, "both magazines full, the rest spilled");
    assert!(s.is_balanced());
}

#[test]
fn lowering_the_depot_cap_spills_the_excess() {
    let e: Box<Checked> = engine(1, 1001, 1);
    let held: Vec<Frame> = (0..6 * M).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    for f in &held {
        e.free(&Cpu(0), *f).unwrap();
    }
    assert!(e.stats().depot_frames >= 2 * M);
    assert_eq!(e.set_depot_cap(MAGAZINE_SIZE + 1), MAGAZINE_SIZE);
    assert_eq!(e.stats().depot_frames, M);
    assert!(e.stats().is_balanced());
}

#[test]
fn a_frame_freed_on_another_cpu_joins_that_cpus_cache() {
    let e: Box<Checked> = engine(1, 1001, 2);
    let f = e.alloc(&Cpu(0)).unwrap();
    e.free(&Cpu(1), f).unwrap();
    assert_eq!(
        e.alloc(&Cpu(1)),
        Ok(f),
        "LIFO: CPU 1 reuses the cache-warm frame"
    );
    assert_eq!(e.cpu_stats(1).refills, 0);
}

fn assert_refused(e: &Checked, err: FreeError, kind: FreeErrorKind, frame: u64, cpu: usize) {
    assert_eq!(
        (err.kind, err.frame.number(), err.cpu),
        (kind, frame, cpu),
        "{err}"
    );
    assert!(e.stats().is_balanced(), "a refused free changes nothing");
}

#[test]
fn checked_mode_catches_double_free_in_a_magazine() {
    let e: Box<Checked> = engine(1, 1001, 2);
    let f = e.alloc(&Cpu(0)).unwrap();
    e.free(&Cpu(0), f).unwrap();
    let err = e.free(&Cpu(1), f).unwrap_err();
    assert_refused(&e, err, FreeErrorKind::NotAllocated, f.number(), 1);
    assert_eq!(e.cpu_stats(1).free_errors, 1);
    assert_eq!(e.cpu_stats(1).frees, 0);
}

#[test]
fn checked_mode_catches_never_allocated_and_unmanaged_frames() {
    let e: Box<Checked> = engine(10, 100, 1);
    e.add_ranges(&[frames(200, 300)]);
    let never = e.free(&Cpu(0), Frame::from_number(50)).unwrap_err();
    assert_refused(&e, never, FreeErrorKind::NotAllocated, 50, 0);
    for n in [0, 5, 150, 300, 4095, 4096, u64::MAX] {
        let err = e.free(&Cpu(0), Frame::from_number(n)).unwrap_err();
        assert_refused(&e, err, FreeErrorKind::OutsideManaged, n, 0);
    }
}

#[test]
fn unchecked_mode_bounds_checks_and_baseline_catches_double_free() {
    let e: Box<Unchecked> = engine(10, 100, 1);
    for n in [0, 100, 5000] {
        let err = e.free(&Cpu(0), Frame::from_number(n)).unwrap_err();
        assert_eq!(err.kind, FreeErrorKind::OutsideManaged, "{err}");
    }
    e.set_mode(Mode::Baseline);
    let f = e.alloc(&Cpu(0)).unwrap();
    e.free(&Cpu(0), f).unwrap();
    let err = e.free(&Cpu(0), f).unwrap_err();
    assert_eq!(err.kind, FreeErrorKind::NotAllocated);
    let hole = e.free(&Cpu(0), Frame::from_number(5)).unwrap_err();
    assert_eq!(hole.kind, FreeErrorKind::OutsideManaged);
    assert!(e.stats().is_balanced());
}

#[test]
fn unchecked_double_free_into_a_magazine_becomes_an_anomaly_not_a_duplicate() {
    let e: Box<Unchecked> = engine(1, 1001, 1);
    let f = e.alloc(&Cpu(0)).unwrap();
    e.free(&Cpu(0), f).unwrap();
    e.free(&Cpu(0), f).unwrap();
    e.drain_all();
    assert_eq!(e.stats().anomalies, 1);
    assert_eq!(
        alloc_all(&e, 0).len(),
        1000,
        "every frame handed out exactly once"
    );
}

#[test]
fn baseline_mode_drains_and_bypasses_the_caches() {
    let e: Box<Checked> = engine(1, 1001, 2);
    let f = e.alloc(&Cpu(0)).unwrap();
    assert!(e.stats().cached > 0);
    e.set_mode(Mode::Baseline);
    assert_eq!(e.mode(), Mode::Baseline);
    assert_eq!(e.stats().cached, 0, "switching drained every cache");
    e.reset_counters();
    let g = e.alloc(&Cpu(1)).unwrap();
    e.free(&Cpu(1), f).unwrap();
    e.free(&Cpu(0), g).unwrap();
    let s = e.stats();
    assert_eq!(s.cached, 0, "baseline never fills a cache");
    assert_eq!((s.global_lock.acquisitions, s.cpu.direct), (3, 3));
    e.set_mode(Mode::Magazine);
    e.alloc(&Cpu(0)).unwrap();
    assert!(e.stats().cached > 0);
    assert!(e.stats().is_balanced());
}

#[test]
fn reset_counters_keeps_the_frame_accounting() {
    let e: Box<Checked> = engine(1, 1001, 1);
    let held: Vec<Frame> = (0..5).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    e.reset_counters();
    let s = e.stats();
    assert_eq!(
        (s.cpu.allocs, s.global_lock.acquisitions, s.allocated),
        (0, 0, 5)
    );
    e.free(&Cpu(0), held[0]).unwrap();
    assert_eq!(e.stats().allocated, 4);
    assert_eq!(e.cpu_stats(0).frees, 1);
}

#[test]
fn add_ranges_reports_what_it_did() {
    let e: std::boxed::Box<Checked> = crate::testutil::new_engine();
    let r = e.add_ranges(&[
        crate::frame::PhysRange::new(0, 0x10_800),
        crate::frame::PhysRange::new(0x8000, 0x20_000),
        crate::frame::PhysRange::new(0x30_001, 0x30_fff),
        crate::frame::PhysRange::new(0xfff_000, 0x1_001_000),
    ]);
    assert!(r.skipped_frame_zero);
    assert_eq!(r.added, 15 + 16 + 1);
    assert_eq!(r.overlapping, 8);
    assert_eq!(r.empty_ranges, 1);
    assert_eq!(r.unaligned_bytes, 0x800 + 0xffe);
    assert_eq!(r.beyond_reach, 1);
    assert_eq!(e.stats().managed, 32);
}
