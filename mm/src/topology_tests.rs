//! Tests of the node table built from SRAT/SLIT-like records.

use super::*;

const GIB: u64 = 1 << 30;

fn mem(domain: u32, base: u64, length: u64) -> MemoryAffinity {
    MemoryAffinity {
        domain,
        base,
        length,
    }
}

fn cpu(hw_id: u32, domain: u32) -> CpuAffinity {
    CpuAffinity { hw_id, domain }
}

fn build(
    memory: &[MemoryAffinity],
    cpus: &[CpuAffinity],
    distances: Option<Distances<'_>>,
    hw_ids: &[u32],
) -> Result<(NodeLayout, [u8; 8]), TopologyError> {
    let mut nodes = [0xff; 8];
    NodeLayout::from_affinity(memory, cpus, distances, hw_ids, &mut nodes).map(|l| (l, nodes))
}

#[test]
fn single_is_one_node_owning_everything() {
    let l = NodeLayout::single();
    assert_eq!(l.node_count(), 1);
    assert_eq!(l.fallback_order(0), &[0]);
    assert_eq!(l.distance(0, 0), 10);
    assert_eq!(l.node_of(Frame::from_number(123_456_789)), 0);
    assert_eq!(l.spans().count(), 0);
}

/// Two sparse domains (7 and 3), holes, a node with memory above 4 GiB and no CPU.
#[test]
fn holes_sparse_domains_cpuless_node_and_high_memory() {
    let memory = [
        mem(7, 0, 640 << 10),
        mem(7, 1 << 20, 2 * GIB - (1 << 20)),
        // Hole 2..4 GiB (PCI window), then node of domain 3 above 4 GiB, no CPUs.
        mem(3, 4 * GIB, 4 * GIB),
        mem(9, 8 * GIB, GIB),
        mem(9, 100 * GIB, 0),
    ];
    let cpus = [cpu(0, 7), cpu(2, 9), cpu(4, 7)];
    let (l, nodes) = build(&memory, &cpus, None, &[0, 4, 2]).unwrap();
    assert_eq!(l.node_count(), 3);
    assert_eq!((l.domain(0), l.domain(1), l.domain(2)), (3, 7, 9));
    assert_eq!(&nodes[..3], &[1, 1, 2]);
    assert_eq!(nodes[3], 0xff, "slots past the CPUs untouched");
    let at = |addr: u64| l.node_of(Frame::containing_address(addr));
    assert_eq!(at(0x1000), 1);
    assert_eq!(at(3 * GIB), 0, "a hole belongs to node 0");
    assert_eq!(at(5 * GIB), 0);
    assert_eq!(at(8 * GIB + 4096), 2);
    assert_eq!(at(9 * GIB), 0, "past every span");
    let spans: std::vec::Vec<_> = l.spans().collect();
    assert_eq!(spans.len(), 4, "the empty record is dropped");
    assert_eq!(spans[2], (PhysRange::new(4 * GIB, 8 * GIB), 0));
    assert_eq!(l.distance(0, 1), 20);
    assert_eq!(l.distance(2, 2), 10);
}

#[test]
fn fallback_orders_follow_distances_with_ties_by_node() {
    let memory = [
        mem(0, 0, GIB),
        mem(1, GIB, GIB),
        mem(2, 2 * GIB, GIB),
        mem(3, 3 * GIB, GIB),
    ];
    // Asymmetric: 0 sees 3 nearer than 1; 1 sees 0 and 2 tied; 3 sees everyone tied.
    #[rustfmt::skip]
    let matrix = [
        10, 30, 40, 15,
        21, 10, 21, 50,
        40, 16, 10, 40,
        25, 25, 25, 10,
    ];
    let d = Distances {
        domains: 4,
        matrix: &matrix,
    };
    let (l, _) = build(&memory, &[], Some(d), &[]).unwrap();
    assert_eq!(l.fallback_order(0), &[0, 3, 1, 2]);
    assert_eq!(l.fallback_order(1), &[1, 0, 2, 3]);
    assert_eq!(l.fallback_order(2), &[2, 1, 0, 3]);
    assert_eq!(l.fallback_order(3), &[3, 0, 1, 2]);
    assert_eq!((l.distance(0, 3), l.distance(3, 0)), (15, 25));
}

#[test]
fn without_distances_remote_nodes_tie_in_node_order() {
    let memory = [mem(5, GIB, GIB), mem(2, 0, GIB), mem(8, 2 * GIB, GIB)];
    let (l, _) = build(&memory, &[], None, &[]).unwrap();
    assert_eq!(l.fallback_order(2), &[2, 0, 1]);
    assert_eq!(l.fallback_order(1), &[1, 0, 2]);
    // Renumbered by domain, not by address: domain 2 (at 0) is node 0.
    assert_eq!(l.node_of(Frame::containing_address(GIB)), 1);
}

#[test]
fn every_error_names_its_items() {
    let one = [mem(0, 0, GIB)];
    let cases: [(Result<_, _>, TopologyError, &str); 5] = [
        (
            build(&[], &[], None, &[]),
            TopologyError::Empty,
            "no memory",
        ),
        (
            build(&[mem(0, 0, GIB), mem(1, GIB - 4096, GIB)], &[], None, &[]),
            TopologyError::Overlap {
                first: mem(0, 0, GIB),
                second: mem(1, GIB - 4096, GIB),
            },
            "0x0..0x40000000 (domain 0) and 0x3ffff000..0x7ffff000 (domain 1) overlap",
        ),
        (
            build(&one, &[cpu(1, 0)], None, &[1, 6]),
            TopologyError::CpuWithoutNode { hw_id: 6 },
            "CPU hw id 6",
        ),
        (
            build(&one, &[cpu(1, 4)], None, &[1]),
            TopologyError::NodeWithoutMemory { domain: 4 },
            "domain 4 has CPUs but no memory",
        ),
        (
            build(&[mem(0, u64::MAX - 10, 20)], &[], None, &[]),
            TopologyError::BadRange {
                range: mem(0, u64::MAX - 10, 20),
            },
            "wraps",
        ),
    ];
    for (result, error, text) in cases {
        assert_eq!(result.unwrap_err(), error);
        let shown = std::format!("{error}");
        assert!(shown.contains(text), "{shown:?} lacks {text:?}");
    }
}

#[test]
fn size_limits_are_errors() {
    let many: std::vec::Vec<_> = (0..9).map(|d| mem(d, u64::from(d) * GIB, GIB)).collect();
    assert_eq!(
        build(&many, &[], None, &[]).unwrap_err(),
        TopologyError::TooManyNodes { domain: 8 }
    );
    let ranges: std::vec::Vec<_> = (0..65).map(|i| mem(0, i * GIB, GIB)).collect();
    assert_eq!(
        build(&ranges, &[], None, &[]).unwrap_err(),
        TopologyError::TooManyRanges { count: 65 }
    );
    let mut slots = [0u8; 1];
    let err = NodeLayout::from_affinity(&[mem(0, 0, GIB)], &[], None, &[1, 2], &mut slots);
    assert_eq!(
        err.unwrap_err(),
        TopologyError::CpuSlots { cpus: 2, slots: 1 }
    );
}

#[test]
fn malformed_distances_are_errors() {
    let memory = [mem(0, 0, GIB), mem(2, GIB, GIB)];
    let d = |domains, matrix: &'static [u8]| Some(Distances { domains, matrix });
    let err = |distances| build(&memory, &[], distances, &[]).unwrap_err();
    assert_eq!(
        err(d(2, &[10, 20, 20])),
        TopologyError::DistanceSize { domains: 2, len: 3 }
    );
    assert_eq!(
        err(d(2, &[10, 20, 20, 10])),
        TopologyError::DomainOutsideDistances {
            domain: 2,
            domains: 2
        }
    );
    let local_not_ten: &[u8] = &[10, 0, 20, 0, 0, 0, 20, 0, 11];
    assert_eq!(
        err(d(3, local_not_ten)),
        TopologyError::BadDistance {
            from: 2,
            to: 2,
            distance: 11
        }
    );
    let below_ten: &[u8] = &[10, 0, 9, 0, 0, 0, 20, 0, 10];
    assert_eq!(
        err(d(3, below_ten)),
        TopologyError::BadDistance {
            from: 0,
            to: 2,
            distance: 9
        }
    );
    let fine: &[u8] = &[10, 0, 17, 0, 0, 0, 17, 0, 10];
    let (l, _) = build(&memory, &[], d(3, fine), &[]).unwrap();
    assert_eq!(l.distance(1, 0), 17);
}
