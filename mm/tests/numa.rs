//! Several nodes through the public API, at full size: the layout taken after early
//! allocations, allocation order by distance, home-node frees, exhaustion across nodes, and
//! the per-node figures.
#![cfg(not(loom))]

mod common;

use common::{HostCpu, frames, host_clock, new_allocator};
use mm::{
    AllocError, AttachError, CpuCache, Distances, FRAME_SIZE, Frame, FrameAllocator, LayoutError,
    MemoryAffinity, Mode, NodeLayout,
};

const GIB: u64 = 1 << 30;

fn mem(domain: u32, first: u64, end: u64) -> MemoryAffinity {
    MemoryAffinity {
        domain,
        base: first * FRAME_SIZE,
        length: (end - first) * FRAME_SIZE,
    }
}

/// Caches for CPUs on the given nodes.
fn caches_on(nodes: &[usize]) -> &'static [&'static CpuCache] {
    let caches: Vec<&'static CpuCache> = nodes
        .iter()
        .map(|&n| &*Box::leak(Box::new(CpuCache::on_node(n))))
        .collect();
    Box::leak(caches.into_boxed_slice())
}

/// Three nodes of 1000 frames each (domains 4, 5, 6 at frames 1000.., 2000.., 3000..);
/// node 0 is nearest to node 2, then node 1. CPU i is on node `cpu_nodes[i]`.
fn three_nodes(cpu_nodes: &[usize]) -> Box<FrameAllocator> {
    let a = new_allocator();
    a.add_ranges(&[frames(1000, 4000)]);
    #[rustfmt::skip]
    let matrix = [
        10, 0, 0, 0, 0, 0, 0,
        0, 10, 0, 0, 0, 0, 0,
        0, 0, 10, 0, 0, 0, 0,
        0, 0, 0, 10, 0, 0, 0,
        0, 0, 0, 0, 10, 40, 20,
        0, 0, 0, 0, 30, 10, 30,
        0, 0, 0, 0, 20, 40, 10,
    ];
    let memory = [mem(5, 2000, 3000), mem(4, 1000, 2000), mem(6, 3000, 4000)];
    let distances = Distances {
        domains: 7,
        matrix: &matrix,
    };
    let layout = NodeLayout::from_affinity(&memory, &[], Some(distances), &[], &mut []).unwrap();
    a.set_layout(&layout).unwrap();
    a.attach_caches(caches_on(cpu_nodes));
    a.set_clock(host_clock);
    a
}

fn node_of(f: Frame) -> usize {
    (f.number() / 1000 - 1) as usize
}

#[test]
fn allocation_follows_distance_then_fails_only_when_every_node_is_empty() {
    let a = three_nodes(&[0, 1]);
    assert_eq!(a.layout().fallback_order(0), &[0, 2, 1]);
    // CPU 1 parks node-1 frames in its cache: they must still be found.
    let parked: Vec<Frame> = (0..100).map(|_| a.alloc(&HostCpu(1)).unwrap()).collect();
    parked
        .into_iter()
        .for_each(|f| a.free(&HostCpu(1), f).unwrap());
    let mut nodes_seen = Vec::new();
    let mut got = Vec::new();
    while let Ok(f) = a.alloc(&HostCpu(0)) {
        if nodes_seen.last() != Some(&node_of(f)) {
            nodes_seen.push(node_of(f));
        }
        got.push(f.number());
    }
    assert_eq!(nodes_seen, [0, 2, 1], "own node, then nearest first");
    assert_eq!(got.len(), 3000, "every frame, cached ones included");
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 3000, "no frame twice");
    let s = a.stats();
    assert!(s.is_balanced(), "{s:?}");
    assert_eq!((s.free, s.cached, s.nodes), (0, 0, 3));
    let n0 = a.node_stats(0);
    assert_eq!((n0.local_allocs, n0.remote_allocs), (1000, 2000));
    assert_eq!(
        a.alloc(&HostCpu(0)),
        Err(AllocError::OutOfMemory { cpu: 0 })
    );
}

#[test]
fn frees_go_to_the_home_node_not_the_freeing_cpus() {
    let a = three_nodes(&[0, 1, 2]);
    let from_node0: Vec<Frame> = (0..300).map(|_| a.alloc(&HostCpu(0)).unwrap()).collect();
    assert!(from_node0.iter().all(|&f| node_of(f) == 0));
    // CPU 1 (node 1) frees node 0's frames: they go home, in batches.
    from_node0
        .iter()
        .for_each(|&f| a.free(&HostCpu(1), f).unwrap());
    assert_eq!(a.cpu_stats(1).remote_frees, 300);
    assert_eq!(a.node_stats(1).remote_frees, 300);
    // CPU 1's own allocations still come from node 1 only.
    let mine: Vec<Frame> = (0..500).map(|_| a.alloc(&HostCpu(1)).unwrap()).collect();
    assert!(
        mine.iter().all(|&f| node_of(f) == 1),
        "no foreign frame served"
    );
    mine.into_iter()
        .for_each(|f| a.free(&HostCpu(1), f).unwrap());
    a.drain_all();
    for node in 0..3 {
        let n = a.node_stats(node);
        assert_eq!(
            (n.managed, n.free, n.cached),
            (1000, 1000, 0),
            "node {node}"
        );
    }
    assert!(a.stats().is_balanced());
}

#[test]
fn cached_frames_are_counted_on_their_home_node() {
    let a = three_nodes(&[0, 1]);
    let f = a.alloc(&HostCpu(0)).unwrap();
    a.free(&HostCpu(1), f).unwrap();
    let n0 = a.node_stats(0);
    assert_eq!(n0.managed, n0.free + n0.cached, "{n0:?}");
    let total: u64 = (0..3).map(|n| a.node_stats(n).cached).sum();
    assert_eq!(total, a.stats().cached);
}

#[test]
fn contiguous_runs_fall_back_by_distance() {
    let a = three_nodes(&[0]);
    let big = a.alloc_contiguous(&HostCpu(0), 900, 0).unwrap();
    assert_eq!(node_of(big), 0);
    let next = a.alloc_contiguous(&HostCpu(0), 500, 0).unwrap();
    assert_eq!(node_of(next), 2, "node 0 has no run of 500 left");
    a.free_contiguous(&HostCpu(0), next, 500).unwrap();
    a.free_contiguous(&HostCpu(0), big, 900).unwrap();
    assert_eq!(a.node_stats(2).free, 1000);
}

#[test]
fn baseline_mode_uses_the_home_bitmaps() {
    let a = three_nodes(&[0, 1]);
    a.set_mode(Mode::Baseline);
    let f = a.alloc(&HostCpu(1)).unwrap();
    assert_eq!(node_of(f), 1);
    a.free(&HostCpu(0), f).unwrap();
    assert_eq!(a.node_stats(1).free, 1000);
    assert_eq!(a.stats().cached, 0);
}

#[test]
fn layout_after_early_allocations_moves_frames_home() {
    let a = new_allocator();
    // Firmware-like map: low memory, a hole, memory above 4 GiB; node 1 owns everything
    // from 4 GiB up, node 0 the rest; one range lies outside every affinity record.
    let high = 4 * GIB / FRAME_SIZE;
    a.add_ranges(&[
        frames(0, 0x9f),
        frames(0x100, 0x8000),
        frames(high, high + 40_000),
    ]);
    let early: Vec<Frame> = (0..40).map(|_| a.alloc(&HostCpu(0)).unwrap()).collect();
    let early_high = a.alloc_contiguous(&HostCpu(0), 35_000, 0).unwrap();
    assert!(
        early_high.number() >= high,
        "only node 1's span holds a run of 35000"
    );
    let memory = [
        mem(0, 0, 0x9f),
        mem(0, 0x100, 0x7000),
        mem(1, high, high + 41_000),
    ];
    let mut cpu_nodes = [0u8; 2];
    let layout = NodeLayout::from_affinity(
        &memory,
        &[mm::CpuAffinity {
            hw_id: 0,
            domain: 0,
        }],
        None,
        &[0, 0],
        &mut cpu_nodes,
    )
    .unwrap();
    a.set_layout(&layout).unwrap();
    assert_eq!(a.set_layout(&layout), Err(LayoutError::AlreadySet));
    let (n0, n1) = (a.node_stats(0), a.node_stats(1));
    assert_eq!(n0.managed, (0x9f - 1) + (0x8000 - 0x100));
    assert_eq!((n1.managed, n1.free), (40_000, 5000));
    assert_eq!(
        a.stats().outside_nodes,
        0x1000,
        "frames 0x7000..0x8000 stay on node 0"
    );
    // Memory added later (bootloader-reclaimable) goes to its node too.
    let report = a.add_ranges(&[frames(high + 40_000, high + 41_000), frames(0x9000, 0x9010)]);
    assert_eq!((report.added, report.outside_nodes), (1016, 0x10));
    assert_eq!(a.node_stats(0).managed, n0.managed + 0x10);
    assert_eq!(a.node_stats(1).managed, 41_000);
    let a_caches = caches_on(&[0, 1]);
    a.attach_caches(a_caches);
    assert_eq!(a.set_layout(&layout), Err(LayoutError::CachesAttached));
    // Early allocations freed later go home by address.
    a.free_contiguous(&HostCpu(0), early_high, 35_000).unwrap();
    assert_eq!(a.node_stats(1).free, 41_000);
    early
        .into_iter()
        .for_each(|f| a.free(&HostCpu(1), f).unwrap());
    a.drain_all();
    let s = a.stats();
    assert!(s.is_balanced() && s.allocated == 0, "{s:?}");
    assert_eq!(a.node_stats(0).free, a.node_stats(0).managed);
}

#[test]
fn layout_and_caches_are_checked_against_each_other() {
    let a = new_allocator();
    a.add_ranges(&[frames(1, 100)]);
    assert_eq!(
        a.try_attach_caches(caches_on(&[0, 1])),
        Err(AttachError::UnknownNode {
            cpu: 1,
            node: 1,
            nodes: 1
        })
    );
    a.attach_caches(caches_on(&[0]));
    let layout = NodeLayout::from_affinity(&[mem(0, 1, 100)], &[], None, &[], &mut []).unwrap();
    assert_eq!(a.set_layout(&layout), Err(LayoutError::CachesAttached));
    assert_eq!(a.layout(), NodeLayout::single());
}

#[test]
fn magazine_size_pins_and_reports_per_node() {
    let a = three_nodes(&[0, 1]);
    assert_eq!(a.node_stats(2).magazine_size, mm::DEFAULT_MAGAZINE_SIZE);
    assert!(
        a.set_magazine_size(Some(mm::MIN_MAGAZINE_SIZE - 1))
            .is_err()
    );
    assert!(
        a.set_magazine_size(Some(mm::MAX_MAGAZINE_SIZE + 1))
            .is_err()
    );
    let held: Vec<Frame> = (0..200).map(|_| a.alloc(&HostCpu(0)).unwrap()).collect();
    held.into_iter()
        .for_each(|f| a.free(&HostCpu(0), f).unwrap());
    assert_eq!(a.set_magazine_size(Some(8)), Ok(8));
    assert_eq!(
        a.stats().cached,
        0,
        "a pin drains magazines of the old size"
    );
    for node in 0..3 {
        let n = a.node_stats(node);
        assert_eq!((n.magazine_size, n.magazine_pinned), (8, true));
    }
    // CPU 0's magazines now hold 8: one refill takes 8 frames.
    a.alloc(&HostCpu(0)).unwrap();
    assert_eq!(a.stats().cached, 7);
    assert_eq!(a.set_magazine_size(None), Ok(8));
    assert!(!a.node_stats(0).magazine_pinned);
    assert_eq!(a.node_stats(7), mm::NodeStats::default(), "no such node");
}

#[test]
fn running_out_shrinks_the_nodes_magazines() {
    let a = three_nodes(&[0]);
    let before = a.node_stats(0).magazine_size;
    let held: Vec<Frame> = std::iter::from_fn(|| a.alloc(&HostCpu(0)).ok()).collect();
    assert_eq!(held.len(), 3000);
    let n0 = a.node_stats(0);
    assert!(n0.magazine_size < before, "{n0:?}");
    assert!(n0.magazine_shrinks >= 1);
    assert!(n0.magazine_size >= mm::MIN_MAGAZINE_SIZE);
    held.into_iter()
        .for_each(|f| a.free(&HostCpu(0), f).unwrap());
    assert!(a.stats().is_balanced());
}
