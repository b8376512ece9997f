//! Model-based property test: random sequences of alloc, free, bad free, contiguous alloc and
//! free, drains, mode switches, depot caps and magazine-size pins over several CPUs on one to
//! three nodes, checked step by step against a reference model of which frames are free,
//! held singly or held as runs, and on which node each free frame must sit (its home node,
//! whichever CPU freed it). Needs the `checked` feature, which turns bad frees into errors
//! instead of corruption.
#![cfg(all(feature = "checked", not(loom)))]

mod common;

use std::collections::BTreeSet;

use common::{HostCpu, frames, new_allocator};
use mm::{
    AllocError, CpuCache, FRAME_SIZE, Frame, FrameAllocator, FreeErrorKind, MemoryAffinity, Mode,
    NodeLayout,
};
use proptest::prelude::*;

const CPUS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        cpu: usize,
    },
    AllocMany {
        cpu: usize,
        n: usize,
    },
    Free {
        cpu: usize,
        pick: usize,
    },
    FreeMany {
        cpu: usize,
        n: usize,
    },
    BadFree {
        cpu: usize,
        frame: u64,
    },
    AllocRun {
        cpu: usize,
        count: usize,
        align_log2: u32,
    },
    FreeRun {
        cpu: usize,
        pick: usize,
    },
    Drain {
        cpu: usize,
    },
    DrainAll,
    SetMode(bool),
    DepotCap(usize),
    MagazineSize(Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    let cpu = 0..CPUS;
    prop_oneof![
        30 => cpu.clone().prop_map(|cpu| Op::Alloc { cpu }),
        3 => (cpu.clone(), 1usize..100).prop_map(|(cpu, n)| Op::AllocMany { cpu, n }),
        25 => (cpu.clone(), any::<usize>()).prop_map(|(cpu, pick)| Op::Free { cpu, pick }),
        3 => (cpu.clone(), 1usize..100).prop_map(|(cpu, n)| Op::FreeMany { cpu, n }),
        4 => (cpu.clone(), 0u64..400).prop_map(|(cpu, frame)| Op::BadFree { cpu, frame }),
        6 => (cpu.clone(), 1usize..48, 0u32..6)
            .prop_map(|(cpu, count, align_log2)| Op::AllocRun { cpu, count, align_log2 }),
        5 => (cpu.clone(), any::<usize>()).prop_map(|(cpu, pick)| Op::FreeRun { cpu, pick }),
        2 => cpu.prop_map(|cpu| Op::Drain { cpu }),
        1 => Just(Op::DrainAll),
        1 => any::<bool>().prop_map(Op::SetMode),
        1 => (0usize..200).prop_map(Op::DepotCap),
        1 => prop_oneof![Just(None), Just(Some(8)), Just(Some(16)), Just(Some(256))]
            .prop_map(Op::MagazineSize),
    ]
}

/// The reference: every managed frame is free, held singly, or in a held run.
struct Model {
    managed: BTreeSet<u64>,
    free: BTreeSet<u64>,
    singles: Vec<Frame>,
    runs: Vec<(Frame, usize)>,
    /// Runs come from one node's bitmap: a free run across a node edge cannot be handed out.
    layout: NodeLayout,
}

impl Model {
    fn held(&self) -> usize {
        self.singles.len() + self.runs.iter().map(|r| r.1).sum::<usize>()
    }

    fn take(&mut self, first: u64, count: usize) {
        for n in first..first + count as u64 {
            assert!(self.free.remove(&n), "frame {n:#x} handed out but not free");
        }
    }

    fn has_run(&self, count: usize, align_log2: u32) -> bool {
        let step = 1u64 << align_log2;
        let last = self.managed.last().copied().unwrap_or(0);
        let node = |n: u64| self.layout.node_of(Frame::from_number(n));
        (0..=last / step).any(|i| {
            let first = i * step;
            (0..count as u64)
                .all(|k| self.free.contains(&(first + k)) && node(first + k) == node(first))
        })
    }
}

fn apply(a: &FrameAllocator, m: &mut Model, op: &Op) {
    match *op {
        Op::AllocMany { cpu, n } => {
            for _ in 0..n {
                apply(a, m, &Op::Alloc { cpu });
            }
        }
        Op::Alloc { cpu } => match a.alloc(&HostCpu(cpu)) {
            Ok(f) => {
                m.take(f.number(), 1);
                m.singles.push(f);
            }
            Err(e) => {
                assert_eq!(e, AllocError::OutOfMemory { cpu });
                assert!(
                    m.free.is_empty(),
                    "failed with {} frames free",
                    m.free.len()
                );
            }
        },
        Op::FreeMany { cpu, n } => {
            for pick in 0..n {
                apply(a, m, &Op::Free { cpu, pick });
            }
        }
        Op::Free { cpu, pick } if !m.singles.is_empty() => {
            let f = m.singles.swap_remove(pick % m.singles.len());
            a.free(&HostCpu(cpu), f).unwrap();
            m.free.insert(f.number());
        }
        Op::Free { .. } => {}
        Op::BadFree { cpu, frame } => {
            let held = m.singles.iter().any(|f| f.number() == frame)
                || m.runs
                    .iter()
                    .any(|&(f, c)| (f.number()..f.number() + c as u64).contains(&frame));
            if !held {
                let err = a
                    .free(&HostCpu(cpu), Frame::from_number(frame))
                    .unwrap_err();
                let kind = if m.managed.contains(&frame) {
                    FreeErrorKind::NotAllocated
                } else {
                    FreeErrorKind::OutsideManaged
                };
                assert_eq!((err.kind, err.frame.number(), err.cpu), (kind, frame, cpu));
            }
        }
        Op::AllocRun {
            cpu,
            count,
            align_log2,
        } => match a.alloc_contiguous(&HostCpu(cpu), count, align_log2) {
            Ok(f) => {
                assert_eq!(f.number() % (1 << align_log2), 0);
                m.take(f.number(), count);
                m.runs.push((f, count));
            }
            Err(e) => {
                assert_eq!(e, AllocError::OutOfMemory { cpu });
                assert!(!m.has_run(count, align_log2), "a run of {count} existed");
            }
        },
        Op::FreeRun { cpu, pick } if !m.runs.is_empty() => {
            let (f, count) = m.runs.swap_remove(pick % m.runs.len());
            a.free_contiguous(&HostCpu(cpu), f, count).unwrap();
            m.free.extend(f.number()..f.number() + count as u64);
        }
        Op::FreeRun { .. } => {}
        Op::Drain { cpu } => {
            a.drain_cpu(cpu);
        }
        Op::DrainAll => {
            a.drain_all();
        }
        Op::SetMode(baseline) => {
            a.set_mode(if baseline {
                Mode::Baseline
            } else {
                Mode::Magazine
            });
        }
        Op::DepotCap(frames) => {
            a.set_depot_cap(frames);
        }
        Op::MagazineSize(size) => {
            a.set_magazine_size(size).unwrap();
        }
    }
}

fn check_accounting(a: &FrameAllocator, m: &Model, scan_in_use: bool) {
    // Every free frame sits on its home node, whichever CPU freed it.
    let layout = a.layout();
    for node in 0..layout.node_count() {
        let n = a.node_stats(node);
        let home = |f: &&u64| layout.node_of(Frame::from_number(**f)) == node;
        let free_here = m.free.iter().filter(home).count() as u64;
        assert_eq!(n.free + n.cached, free_here, "node {node}: {n:?}");
        assert_eq!(n.managed, m.managed.iter().filter(home).count() as u64);
    }
    let s = a.stats();
    assert!(s.is_balanced(), "{s:?}");
    assert_eq!(s.managed, m.managed.len() as u64);
    assert_eq!(s.allocated, m.held() as u64);
    assert_eq!(s.free + s.cached, m.free.len() as u64);
    if scan_in_use {
        // A 2 MiB scan: every few steps keeps the test fast.
        assert_eq!(a.in_use_frames(), Some(m.held() as u64));
    }
    assert_eq!(s.anomalies, 0);
}

/// One to three nodes: each node's first frame (the first is 0); the last node's memory
/// ends at frame `ends`, past which memory belongs to no node (it goes to node 0).
fn nodes() -> impl Strategy<Value = (Vec<u64>, u64)> {
    (prop::collection::btree_set(1u64..400, 0..3), 300u64..500)
        .prop_map(|(starts, end)| (std::iter::once(0).chain(starts).collect(), end))
}

/// The layout of `nodes()` (domains 0.., CPU i on node i % count) and each CPU's node.
fn layout_of(starts: &[u64], end: u64) -> NodeLayout {
    let memory: Vec<MemoryAffinity> = starts
        .iter()
        .enumerate()
        .map(|(i, &first)| {
            let last = starts.get(i + 1).copied().unwrap_or(end.max(first + 1));
            MemoryAffinity {
                domain: i as u32,
                base: first * FRAME_SIZE,
                length: (last - first) * FRAME_SIZE,
            }
        })
        .collect();
    NodeLayout::from_affinity(&memory, &[], None, &[], &mut []).unwrap()
}

fn caches_on(nodes: usize) -> &'static [&'static CpuCache] {
    let caches: Vec<&'static CpuCache> = (0..CPUS)
        .map(|cpu| &*Box::leak(Box::new(CpuCache::on_node(cpu % nodes))))
        .collect();
    Box::leak(caches.into_boxed_slice())
}

/// Spans of frames, some overlapping, with holes, including frame 0 sometimes.
fn layout() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..300, 1u64..120), 1..4)
        .prop_map(|spans| spans.into_iter().map(|(s, len)| (s, s + len)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_the_model(
        spans in layout(),
        ops in prop::collection::vec(op(), 1..300),
        as_runs in any::<bool>(),
        last_cpu in 0..CPUS,
        (starts, end) in nodes(),
    ) {
        let a = new_allocator();
        let mut m = Model {
            managed: BTreeSet::new(),
            free: BTreeSet::new(),
            singles: Vec::new(),
            runs: Vec::new(),
            layout: layout_of(&starts, end),
        };
        for &(start, end) in &spans {
            a.add_ranges(&[frames(start, end)]);
            m.managed.extend((start.max(1))..end);
        }
        m.free = m.managed.clone();
        let layout = m.layout;
        a.set_layout(&layout).unwrap();
        a.attach_caches(caches_on(layout.node_count()));
        for (step, op) in ops.iter().enumerate() {
            apply(&a, &mut m, op);
            check_accounting(&a, &m, step % 8 == 7 || step + 1 == ops.len());
        }
        // Finally every free frame, wherever it is cached, can be allocated, exactly once:
        // as single frames in the current mode, or as runs of one, which come only from the
        // bitmap and so must reclaim every cache and the depot.
        let mut rest = Vec::new();
        while let Ok(f) = if as_runs {
            a.alloc_contiguous(&HostCpu(last_cpu), 1, 0)
        } else {
            a.alloc(&HostCpu(last_cpu))
        } {
            rest.push(f.number());
        }
        let s = a.stats();
        prop_assert_eq!((s.free, s.cached), (0, 0));
        let obtained = rest.len();
        let rest: BTreeSet<u64> = rest.into_iter().collect();
        prop_assert_eq!(obtained, rest.len(), "a frame was handed out twice");
        prop_assert_eq!(rest, m.free);
    }
}
