//! The per-CPU cache: a loaded and a previous magazine (Bonwick's two-magazine scheme).
//!
//! Each CPU owns one [`CpuCache`] (the kernel embeds it in its per-CPU area) and reaches it
//! only through a [`CpuGuard`](crate::CpuGuard) naming that CPU. Allocation pops from the
//! loaded magazine, free pushes onto it; when the loaded magazine runs empty (or full) and the
//! previous one is full (or empty), the two swap. So a CPU alternating allocs and frees
//! around a magazine boundary never thrashes the depot: it needs the depot only after a whole
//! magazine's worth of net allocations or frees.
//!
//! # Implementation
//! The magazines sit behind a per-CPU spin lock, as Linux's per-CPU page lists do since 6.0:
//! the owner takes it on every operation, always uncontended (one atomic exchange on a line
//! only it uses), and a remote `drain_cpu` takes the same lock to empty the cache safely while
//! the owner runs. The whole cache is `CachePadded`, so no two CPUs share a cache line. The
//! counters beside the lock are written by the owner alone (or by a drainer holding the lock,
//! for `drains`), so updating them needs no atomic read-modify-write.
#![deny(unsafe_code)]

use crossbeam_utils::CachePadded;

use crate::magazine::{Magazine, Stack};
use crate::stats::{CpuCounters, CpuStats};
use crate::sync::{SpinGuard, SpinLock, const_unless_loom};
use crate::topology::MAX_NODES;

/// Frames a CPU batches per foreign node before it hands them to that node: 32 (the
/// starting magazine size: one lock of the home node per 32 remote frees, as a local
/// magazine exchange costs). Loom builds use 2.
pub const REMOTE_BATCH: usize = if cfg!(loom) { 2 } else { 32 };

/// Frames of one foreign node held by a CPU: freed here and waiting to go home, or taken
/// from that node in a batch while this CPU's own node is empty.
pub(crate) type RemoteBatch = Stack<REMOTE_BATCH>;

/// The magazines of a CPU. The previous magazine is always either full or empty: it only
/// ever receives the loaded magazine when that one has just run full or empty. `loaded` and
/// `previous` hold frames of the CPU's own node only; `remote[n]` holds frames of node `n`
/// (`remote[own node]` stays empty).
pub(crate) struct Magazines {
    /// The magazine allocs pop from and frees push onto.
    pub(crate) loaded: Magazine,
    /// The one swapped in when `loaded` runs empty (if this is full) or full (if empty).
    pub(crate) previous: Magazine,
    /// Per foreign node, frames of that node.
    pub(crate) remote: [RemoteBatch; MAX_NODES],
}

impl Magazines {
    /// Frames held by the two magazines and the remote batches.
    pub(crate) fn frames(&self) -> u64 {
        let remote: usize = self.remote.iter().map(RemoteBatch::len).sum();
        (self.loaded.len() + self.previous.len() + remote) as u64
    }

    /// Frames of node `node` held, for a cache on node `home`.
    pub(crate) fn frames_of(&self, home: usize, node: usize) -> u64 {
        let own = if node == home {
            self.loaded.len() + self.previous.len()
        } else {
            0
        };
        (own + self.remote[node].len()) as u64
    }

    /// Exchanges the loaded and the previous magazine.
    pub(crate) fn swap(&mut self) {
        core::mem::swap(&mut self.loaded, &mut self.previous);
    }
}

struct CacheState {
    magazines: SpinLock<Magazines>,
    counters: CpuCounters,
    /// The CPU's node: its magazines hold only this node's frames.
    node: usize,
}

/// One CPU's magazine cache; embed one per CPU (the kernel puts it in its per-CPU area).
pub struct CpuCache {
    state: CachePadded<CacheState>,
}

impl CpuCache {
    const_unless_loom! {
        /// An empty cache of a CPU on node 0, with zeroed counters.
        pub fn new() -> Self {
            Self::on_node(0)
        }
    }

    const_unless_loom! {
        /// An empty cache of a CPU on node `node` (from
        /// [`NodeLayout::from_affinity`](crate::NodeLayout::from_affinity)'s `cpu_nodes`).
        /// Nodes at or past [`MAX_NODES`] count as node 0.
        pub fn on_node(node: usize) -> Self {
            let node = if node < MAX_NODES { node } else { 0 };
            Self {
                state: CachePadded::new(CacheState {
                    // Capacity 0 (all zero bytes, so a `static` cache on node 0 is in `.bss`):
                    // each magazine and batch is armed with its size on first use.
                    magazines: SpinLock::new(Magazines {
                        loaded: Magazine::zeroed(),
                        previous: Magazine::zeroed(),
                        remote: [RemoteBatch::zeroed(); MAX_NODES],
                    }),
                    counters: CpuCounters::new(),
                    node,
                }),
            }
        }
    }

    /// The CPU's node.
    #[inline]
    pub fn node(&self) -> usize {
        self.state.node
    }

    /// Takes the cache lock: uncontended for the owner, contended only by a drain.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, Magazines> {
        self.state.magazines.lock()
    }

    /// The CPU's counters.
    #[inline]
    pub(crate) fn counters(&self) -> &CpuCounters {
        &self.state.counters
    }

    /// Frames cached in the two magazines (takes the lock briefly).
    pub(crate) fn cached_frames(&self) -> u64 {
        self.lock().frames()
    }

    /// The CPU's counters since the last reset.
    pub fn stats(&self) -> CpuStats {
        self.counters().snapshot()
    }
}

impl Default for CpuCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::frame::Frame;

    #[test]
    fn new_cache_is_empty_and_padded() {
        let cache = CpuCache::new();
        assert_eq!(cache.cached_frames(), 0);
        assert_eq!(cache.stats(), CpuStats::default());
        assert!(core::mem::align_of::<CpuCache>() >= 64);
    }

    #[test]
    fn swap_exchanges_magazines() {
        let cache = CpuCache::new();
        let mut m = cache.lock();
        assert_eq!(
            m.loaded.push(Frame::from_number(7)),
            Err(Frame::from_number(7))
        );
        m.loaded.arm(2);
        m.loaded.push(Frame::from_number(7)).unwrap();
        m.swap();
        assert!(m.loaded.is_empty());
        assert_eq!(m.previous.pop(), Some(Frame::from_number(7)));
        drop(m);
        assert_eq!(cache.cached_frames(), 0);
    }
}
