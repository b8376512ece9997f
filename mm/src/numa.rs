//! The allocator's copy of the node table, shaped for its hot paths.
//!
//! [`NodeLayout`] is the kernel-facing description; [`Numa`] is what the allocator reads on
//! every free and every slow path: whether there is more than one node (the fast path tests
//! only this when there is not), each frame's home node from a table of 2 MiB granules (one
//! byte load), and the fallback order of each node, all in atomics so the allocator can live
//! in a `static` and take the layout after it is already shared.
//!
//! # Implementation
//! All-zero bytes are one node owning everything: a single-node allocator never writes here.
//! `set_layout` runs once, before the per-CPU caches are attached; attaching publishes them
//! with a release store that the fast path reads with acquire, so every CPU that uses its
//! cache sees the whole table. A granule whose frames belong to two nodes (a span edge inside
//! it) is marked [`MIXED`] and answered from the layout itself, under its lock: SRAT ranges
//! are normally 2 MiB aligned, so that path is rare.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::frame::Frame;
use crate::sync::{Mutex, const_unless_loom};
use crate::topology::{MAX_NODES, NodeLayout};

/// Frames per granule of the home table: 512 (2 MiB, the large-page size SRAT ranges are
/// normally aligned to).
const GRANULE_FRAMES: u64 = 512;
/// Granules covered: the 64 GiB reach of `BitAlloc16M` (32 KiB of table). Loom models manage
/// a few frames: one granule would do, 64 keeps the type the same shape.
const GRANULES: usize = if cfg!(loom) { 64 } else { (1 << 24) / 512 };
/// A granule holding frames of more than one node.
const MIXED: u8 = u8::MAX;

/// The node table as the allocator reads it.
pub(crate) struct Numa {
    /// More than one node: frees must check the home node.
    is_multi: AtomicBool,
    /// `set_layout` ran (or is running).
    is_set: AtomicBool,
    /// Nodes in use; 0 (all-zero bytes) means 1.
    node_count: AtomicUsize,
    /// `fallback[n]`: every node, nearest to `n` first.
    fallback: [[AtomicU8; MAX_NODES]; MAX_NODES],
    /// Home node of each 2 MiB granule, or [`MIXED`].
    homes: [AtomicU8; GRANULES],
    /// The layout given to `set_layout`; until then [`NodeLayout::zeroed`], read as
    /// [`NodeLayout::single`].
    layout: Mutex<NodeLayout>,
    /// Managed frames outside every span of the layout (they belong to node 0).
    pub(crate) outside: AtomicU64,
}

impl Numa {
    const_unless_loom! {
        /// One node owning everything.
        pub(crate) fn new() -> Self {
            Self {
                is_multi: AtomicBool::new(false),
                is_set: AtomicBool::new(false),
                node_count: AtomicUsize::new(0),
                fallback: [const { [const { AtomicU8::new(0) }; MAX_NODES] }; MAX_NODES],
                homes: [const { AtomicU8::new(0) }; GRANULES],
                layout: Mutex::new(NodeLayout::zeroed()),
                outside: AtomicU64::new(0),
            }
        }
    }

    /// Whether there is more than one node.
    #[inline(always)]
    pub(crate) fn is_multi(&self) -> bool {
        self.is_multi.load(Relaxed)
    }

    /// Whether a layout was installed.
    pub(crate) fn is_set(&self) -> bool {
        self.is_set.load(Relaxed)
    }

    /// Nodes in use (at least 1).
    pub(crate) fn node_count(&self) -> usize {
        self.node_count.load(Relaxed).max(1)
    }

    /// The home node of `frame` (0 outside every span, and always 0 with one node).
    #[inline]
    pub(crate) fn home(&self, frame: Frame) -> usize {
        let granule = (frame.number() / GRANULE_FRAMES) as usize;
        match self.homes.get(granule).map(|h| h.load(Relaxed)) {
            Some(MIXED) => self.home_slow(frame),
            Some(node) => node as usize,
            None => 0,
        }
    }

    #[cold]
    fn home_slow(&self, frame: Frame) -> usize {
        self.layout.lock().piece_at(frame.number(), u64::MAX).0
    }

    /// Every node, nearest to `node` first (`node` itself first).
    pub(crate) fn fallback(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        // Before a layout every row is all zero and one node long: node 0 serves everyone.
        let order = &self.fallback[node.min(MAX_NODES - 1)];
        order[..self.node_count()]
            .iter()
            .map(|n| n.load(Relaxed) as usize)
    }

    /// A copy of the layout in force.
    pub(crate) fn layout(&self) -> NodeLayout {
        let layout = *self.layout.lock();
        if layout.node_count() == 0 {
            NodeLayout::single()
        } else {
            layout
        }
    }

    /// Claims the one installation; false if a layout was installed before.
    pub(crate) fn claim(&self) -> bool {
        !self.is_set.swap(true, Relaxed)
    }

    /// Installs `layout`: fallback orders, granule homes, then the multi-node flag.
    pub(crate) fn install(&self, layout: &NodeLayout) {
        *self.layout.lock() = *layout;
        let count = layout.node_count();
        for node in 0..count {
            for (slot, &to) in self.fallback[node].iter().zip(layout.fallback_order(node)) {
                slot.store(to, Relaxed);
            }
        }
        for (granule, home) in self.homes.iter().enumerate() {
            let first = granule as u64 * GRANULE_FRAMES;
            let end = first + GRANULE_FRAMES;
            let (node, piece_end, _) = layout.piece_at(first, end);
            let byte = if piece_end < end { MIXED } else { node as u8 };
            home.store(byte, Relaxed);
        }
        self.node_count.store(count, Relaxed);
        self.is_multi.store(count > 1, Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::topology::MemoryAffinity;
    use std::boxed::Box;

    #[test]
    fn zeroed_is_one_node() {
        let numa = Box::new(Numa::new());
        assert!(!numa.is_multi());
        assert_eq!(numa.node_count(), 1);
        assert_eq!(numa.fallback(0).collect::<std::vec::Vec<_>>(), [0]);
        assert_eq!(numa.home(Frame::from_number(1 << 40)), 0);
        assert_eq!(numa.layout(), NodeLayout::single());
    }

    #[test]
    fn homes_follow_spans_including_mixed_granules() {
        let mem = |domain, base, length| MemoryAffinity {
            domain,
            base,
            length,
        };
        // Node 1 starts 1 MiB into granule 1 (mixed); node 0 owns the rest below it.
        let memory = [mem(0, 0, 3 << 20), mem(1, 3 << 20, 5 << 20)];
        let layout = NodeLayout::from_affinity(&memory, &[], None, &[], &mut []).unwrap();
        let numa = Box::new(Numa::new());
        assert!(numa.claim());
        numa.install(&layout);
        assert!(!numa.claim(), "installed once");
        assert!(numa.is_multi());
        let home = |byte: u64| numa.home(Frame::containing_address(byte));
        assert_eq!(home(0), 0);
        assert_eq!(home((3 << 20) - 4096), 0, "mixed granule, node 0 part");
        assert_eq!(home(3 << 20), 1, "mixed granule, node 1 part");
        assert_eq!(home(7 << 20), 1);
        assert_eq!(home(9 << 20), 0, "outside every span");
        assert_eq!(numa.fallback(1).collect::<std::vec::Vec<_>>(), [1, 0]);
        assert_eq!(numa.layout(), layout);
    }
}
