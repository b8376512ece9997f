//! The public contract of `FrameAllocator`, at full size (`BitAlloc16M`, 64 GiB reach).
#![cfg(not(loom))]

mod common;

use common::{HostCpu, allocator, caches, frames, new_allocator};
use mm::{
    AllocError, DEPOT_SLOTS, FRAME_SIZE, Frame, FrameAllocator, FreeErrorKind, MAGAZINE_SIZE, Mode,
    PhysRange,
};

/// 16M frames: the reach of `BitAlloc16M`.
const REACH: u64 = 1 << 24;

#[test]
fn zeroed_allocator_equals_new() {
    static NEW: FrameAllocator = FrameAllocator::new();
    let zeroed = new_allocator();
    assert_eq!(zeroed.stats(), NEW.stats());
    assert_eq!(zeroed.mode(), Mode::Magazine);
    assert_eq!(zeroed.in_use_frames(), NEW.in_use_frames());
    assert_eq!(zeroed.stats().global_lock.max_hold_cycles, 0, "no clock");
    for a in [&*zeroed, &NEW] {
        let default_cap = DEPOT_SLOTS * MAGAZINE_SIZE;
        assert_eq!(a.set_depot_cap(usize::MAX), default_cap);
        assert_eq!(
            a.alloc(&HostCpu(0)),
            Err(AllocError::OutOfMemory { cpu: 0 })
        );
        a.add_ranges(&[frames(1, 100)]);
        a.attach_caches(caches(1));
        let f = a.alloc(&HostCpu(0)).unwrap();
        a.free(&HostCpu(0), f).unwrap();
        assert!(a.stats().is_balanced());
    }
}

#[test]
fn frames_beyond_64_gib_are_counted_not_managed() {
    let a = new_allocator();
    let report = a.add_ranges(&[frames(REACH - 10, REACH + 90)]);
    assert_eq!((report.added, report.beyond_reach), (10, 90));
    a.attach_caches(caches(1));
    let err = a
        .free(&HostCpu(0), Frame::from_number(REACH + 1))
        .unwrap_err();
    assert_eq!(err.kind, FreeErrorKind::OutsideManaged);
    let mut got: Vec<u64> = (0..10)
        .map(|_| a.alloc(&HostCpu(0)).unwrap().number())
        .collect();
    got.sort();
    assert_eq!(got, (REACH - 10..REACH).collect::<Vec<_>>());
}

#[test]
fn memory_map_like_ranges_initialise_the_allocator() {
    let a = new_allocator();
    // Shaped like a 512 MiB BIOS map: low memory with frame 0, a hole, unaligned edges.
    let report = a.add_ranges(&[
        PhysRange::new(0, 0x9fc00),
        PhysRange::new(0x10_0000, 0x1ffe_0000),
        PhysRange::new(0x1000, 0x2000),
        PhysRange::new(0x1ffe_0000, 0x1ffe_0000),
    ]);
    assert!(report.skipped_frame_zero);
    assert_eq!(report.added, (0x9f - 1) + (0x1ffe0 - 0x100));
    assert_eq!(report.overlapping, 1);
    assert_eq!(report.empty_ranges, 1);
    assert_eq!(report.unaligned_bytes, 0xc00);
    assert_eq!(a.stats().managed, report.added);
    // A later call (bootloader-reclaimable memory) adds more.
    let later = a.add_ranges(&[PhysRange::new(0xa0000, 0x100000)]);
    assert_eq!(later.added, 0x60);
}

#[test]
#[should_panic(expected = "already attached")]
fn attaching_twice_is_a_boot_bug() {
    let a = allocator(1, 100, 2);
    a.attach_caches(caches(2));
}

#[test]
fn try_attach_reports_instead_of_panicking() {
    let a = allocator(1, 100, 2);
    assert_eq!(
        a.try_attach_caches(caches(1)),
        Err(mm::AttachError::AlreadyAttached)
    );
}

#[cfg(feature = "checked")]
#[test]
fn free_errors_name_frame_and_cpu_in_display() {
    let a = allocator(1, 100, 4);
    let f = a.alloc(&HostCpu(2)).unwrap();
    a.free(&HostCpu(2), f).unwrap();
    let err = a.free(&HostCpu(3), f).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("{:#x}", f.number())), "{text}");
    assert!(text.contains("CPU 3"), "{text}");
    assert!(a.stats().is_balanced());
}

#[test]
fn frame_helpers_are_const() {
    const F: Frame = Frame::containing_address(3 * FRAME_SIZE + 5);
    const N: u64 = F.number();
    const A: u64 = Frame::from_number(N).start_address();
    assert_eq!(A, 3 * FRAME_SIZE);
}

#[test]
fn cpu_stats_count_one_cpu() {
    let a = allocator(1, 1000, 2);
    let f = a.alloc(&HostCpu(1)).unwrap();
    a.free(&HostCpu(1), f).unwrap();
    let s = a.cpu_stats(1);
    assert_eq!(
        (s.allocs, s.frees, s.refills, s.misses, s.hits),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(a.cpu_stats(0), Default::default());
    a.reset_counters();
    assert_eq!(a.cpu_stats(1), Default::default());
    assert!(a.stats().global_lock.acquisitions == 0);
}

#[cfg(feature = "checked")]
#[test]
fn checked_build_tracks_in_use_frames() {
    let a = allocator(1, 1000, 1);
    let f = a.alloc(&HostCpu(0)).unwrap();
    let run = a.alloc_contiguous(&HostCpu(0), 8, 3).unwrap();
    assert_eq!(a.in_use_frames(), Some(9));
    a.free(&HostCpu(0), f).unwrap();
    a.free_contiguous(&HostCpu(0), run, 8).unwrap();
    assert_eq!(a.in_use_frames(), Some(0));
}
