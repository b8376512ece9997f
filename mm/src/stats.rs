//! Counters and the snapshots the allocator reports.
//!
//! Counters are cheap to update, inexact to read while running: each has a single writer at
//! a time (the owning CPU, or whoever holds the lock the counter belongs to), so an update is a
//! relaxed load and store, no atomic read-modify-write; a reader on another CPU sums them
//! without stopping anyone. At a quiescent point (no operation in flight) every number is
//! exact and `free + cached + allocated == managed` ([`Stats::is_balanced`]).
//!
//! # Implementation
//! [`CpuCounters`] keeps monotonic totals plus a baseline: `reset_counters` copies the totals
//! into the baseline instead of zeroing them, so the frame accounting behind
//! [`Stats::allocated`] survives a reset and no writer ever races a reset.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Whether operations go through the per-CPU magazines or straight to the global bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Per-CPU magazines over a depot over the global bitmap (the design of this crate).
    Magazine,
    /// Every operation takes the global lock, like the seed allocator: the benchmark baseline.
    Baseline,
}

/// Contention figures of one lock (the global bitmap's or the depot's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Times the lock was taken.
    pub acquisitions: u64,
    /// Times it was already held, so the taker had to spin.
    pub contended: u64,
    /// Clock cycles spent spinning for it, summed over all takers.
    pub wait_cycles: u64,
    /// The longest single hold, in clock cycles.
    pub max_hold_cycles: u64,
}

/// What one CPU (or, summed, all CPUs) did. Cheap to update, inexact to read while running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Single frames allocated.
    pub allocs: u64,
    /// Single frames freed.
    pub frees: u64,
    /// Allocs and frees served by the loaded or previous magazine.
    pub hits: u64,
    /// Allocs and frees that needed the depot or the global bitmap.
    pub misses: u64,
    /// Allocs and frees that bypassed the magazines (baseline mode, or no cache attached yet).
    pub direct: u64,
    /// Full magazines taken from the depot.
    pub depot_gets: u64,
    /// Full magazines given to the depot.
    pub depot_puts: u64,
    /// Magazines filled from the global bitmap under one lock hold.
    pub refills: u64,
    /// Magazines emptied into the global bitmap under one lock hold.
    pub spills: u64,
    /// Times this CPU's cache was drained (by itself or remotely).
    pub drains: u64,
    /// Contiguous runs allocated.
    pub contig_allocs: u64,
    /// Contiguous runs freed.
    pub contig_frees: u64,
    /// Single-frame allocations that failed (each also counted as a miss or a direct
    /// operation: it went past the loaded magazine before it found nothing).
    pub alloc_failures: u64,
    /// Contiguous allocations that failed.
    pub contig_failures: u64,
    /// Frees rejected with an error.
    pub free_errors: u64,
    /// Of `allocs`, frames that came from another node than the CPU's (its own was empty).
    pub remote_allocs: u64,
    /// Of `frees`, frames of another node than the CPU's, batched to go home.
    pub remote_frees: u64,
}

impl CpuStats {
    /// Adds `other` field by field (for summing CPUs).
    pub fn accumulate(&mut self, other: &CpuStats) {
        self.allocs += other.allocs;
        self.frees += other.frees;
        self.hits += other.hits;
        self.misses += other.misses;
        self.direct += other.direct;
        self.depot_gets += other.depot_gets;
        self.depot_puts += other.depot_puts;
        self.refills += other.refills;
        self.spills += other.spills;
        self.drains += other.drains;
        self.contig_allocs += other.contig_allocs;
        self.contig_frees += other.contig_frees;
        self.alloc_failures += other.alloc_failures;
        self.contig_failures += other.contig_failures;
        self.free_errors += other.free_errors;
        self.remote_allocs += other.remote_allocs;
        self.remote_frees += other.remote_frees;
    }
}

/// A snapshot of the whole allocator. Exact at quiescent points, inexact while running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Frames under management (everything `add_ranges` accepted).
    pub managed: u64,
    /// Frames free in the global bitmap.
    pub free: u64,
    /// Frames cached: in the depot plus in every CPU's magazines.
    pub cached: u64,
    /// Frames handed out and not yet freed, from the per-CPU accounting.
    pub allocated: u64,
    /// Of `cached`, the frames held by the depot.
    pub depot_frames: u64,
    /// Frames a spill could not return to the bitmap because it held them free already or
    /// did not manage them: only possible without the `checked` feature, after a double free
    /// or a bad free. Always 0 in checked mode.
    pub anomalies: u64,
    /// The per-CPU counters summed over all CPUs (and the early, cache-less operations).
    pub cpu: CpuStats,
    /// The global bitmap locks of all nodes, merged: counts and wait cycles summed, the
    /// longest hold the longest of any node ([`LockStats::merge`]).
    pub global_lock: LockStats,
    /// The depot locks of all nodes, merged the same way.
    pub depot_lock: LockStats,
    /// The current mode.
    pub mode: Mode,
    /// Number of attached per-CPU caches.
    pub cpus: usize,
    /// Number of nodes (1 without a layout); per-node figures: `FrameAllocator::node_stats`.
    pub nodes: usize,
    /// Managed frames that lie outside every memory range of the layout (they belong to
    /// node 0).
    pub outside_nodes: u64,
}

/// One node's figures. Cheap to update, inexact to read while running. At a quiescent point
/// the nodes' `managed`, `free` and `cached` sum to the [`Stats`] totals, and
/// `managed - free - cached` is the node's frames in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The node's proximity domain (0 without a layout).
    pub domain: u32,
    /// Attached CPUs on this node.
    pub cpus: usize,
    /// Frames of this node under management.
    pub managed: u64,
    /// Frames of this node free in its bitmap.
    pub free: u64,
    /// Frames of this node cached anywhere: its depot, its CPUs' magazines, and any CPU's
    /// batch for this node.
    pub cached: u64,
    /// Of `cached`, the frames in this node's depot.
    pub depot_frames: u64,
    /// Single frames allocated by this node's CPUs from this node.
    pub local_allocs: u64,
    /// Single frames allocated by this node's CPUs from other nodes (their own was empty).
    pub remote_allocs: u64,
    /// Frees by this node's CPUs of other nodes' frames (sent home in batches).
    pub remote_frees: u64,
    /// This node's global bitmap lock.
    pub global_lock: LockStats,
    /// This node's depot lock.
    pub depot_lock: LockStats,
    /// The magazine size this node's depot hands out now.
    pub magazine_size: usize,
    /// Whether that size is pinned (`set_magazine_size(Some(_))`).
    pub magazine_pinned: bool,
    /// Times the depot grew its magazines (its lock was contended or busy).
    pub magazine_grows: u64,
    /// Times the depot shrank its magazines (the node ran out of memory).
    pub magazine_shrinks: u64,
}

impl LockStats {
    /// Combines the figures of two locks: counts and waits add, the longest hold is the
    /// longer of the two.
    pub fn merge(&mut self, other: &LockStats) {
        self.acquisitions += other.acquisitions;
        self.contended += other.contended;
        self.wait_cycles += other.wait_cycles;
        self.max_hold_cycles = self.max_hold_cycles.max(other.max_hold_cycles);
    }
}

impl Stats {
    /// Whether `free + cached + allocated == managed`: true at every quiescent point.
    pub fn is_balanced(&self) -> bool {
        self.free + self.cached + self.allocated == self.managed
    }
}

/// What `add_ranges` did with the ranges it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddReport {
    /// Frames newly put under management.
    pub added: u64,
    /// Frames skipped because they were already managed (overlap within or across calls).
    pub overlapping: u64,
    /// Frames beyond the bitmap's reach (64 GiB with `BitAlloc16M`), not managed.
    pub beyond_reach: u64,
    /// Whether frame 0 was in a range and left out (it is never handed out).
    pub skipped_frame_zero: bool,
    /// Bytes trimmed from unaligned range edges.
    pub unaligned_bytes: u64,
    /// Ranges that held no whole frame.
    pub empty_ranges: u64,
    /// Frames dropped because the table of managed ranges was full.
    pub table_full: u64,
    /// Frames outside every memory range of the node layout (given to node 0); 0 without
    /// a layout.
    pub outside_nodes: u64,
}

impl AddReport {
    /// Adds `other` field by field (for reports of several `add_ranges` calls).
    pub fn accumulate(&mut self, other: &AddReport) {
        self.added += other.added;
        self.overlapping += other.overlapping;
        self.beyond_reach += other.beyond_reach;
        self.skipped_frame_zero |= other.skipped_frame_zero;
        self.unaligned_bytes += other.unaligned_bytes;
        self.empty_ranges += other.empty_ranges;
        self.table_full += other.table_full;
        self.outside_nodes += other.outside_nodes;
    }
}

/// Names of the per-CPU counters, indices into [`CpuCounters`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Allocs,
    Frees,
    Misses,
    Direct,
    DepotGets,
    DepotPuts,
    Refills,
    Spills,
    Drains,
    ContigAllocs,
    ContigFrees,
    ContigAllocFrames,
    ContigFreeFrames,
    AllocFailures,
    ContigFailures,
    FreeErrors,
    RemoteAllocs,
    RemoteFrees,
}

const COUNTERS: usize = Counter::RemoteFrees as usize + 1;

/// The counters of one CPU: monotonic totals and the baseline of the last reset.
pub(crate) struct CpuCounters {
    totals: [AtomicU64; COUNTERS],
    baseline: [AtomicU64; COUNTERS],
}

impl CpuCounters {
    /// All counters at 0.
    pub(crate) const fn new() -> Self {
        Self {
            totals: [const { AtomicU64::new(0) }; COUNTERS],
            baseline: [const { AtomicU64::new(0) }; COUNTERS],
        }
    }

    /// Adds `n` to counter `c`. Only the counter's current single writer may call this (the
    /// owning CPU, or the holder of the CPU's cache lock for `Drains`).
    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        let total = &self.totals[c as usize];
        total.store(total.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Adds 1 to counter `c`, under the same rule as [`CpuCounters::add`].
    #[inline]
    pub(crate) fn bump(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n` to counter `c` when several writers may race (the shared early counters).
    pub(crate) fn add_shared(&self, c: Counter, n: u64) {
        self.totals[c as usize].fetch_add(n, Relaxed);
    }

    fn since_reset(&self, c: Counter) -> u64 {
        let i = c as usize;
        self.totals[i]
            .load(Relaxed)
            .wrapping_sub(self.baseline[i].load(Relaxed))
    }

    fn total(&self, c: Counter) -> u64 {
        self.totals[c as usize].load(Relaxed)
    }

    /// Frames handed out minus frames taken back, over this counter set's whole life.
    pub(crate) fn net_allocated(&self) -> i64 {
        let out = self.total(Counter::Allocs) + self.total(Counter::ContigAllocFrames);
        let back = self.total(Counter::Frees) + self.total(Counter::ContigFreeFrames);
        out as i64 - back as i64
    }

    /// Makes every counter read 0 from now on (totals are kept for the frame accounting).
    pub(crate) fn reset(&self) {
        for (base, total) in self.baseline.iter().zip(&self.totals) {
            base.store(total.load(Relaxed), Relaxed);
        }
    }

    /// The counters since the last reset.
    pub(crate) fn snapshot(&self) -> CpuStats {
        use Counter::*;
        let s = |c| self.since_reset(c);
        let (allocs, frees, misses, direct) = (s(Allocs), s(Frees), s(Misses), s(Direct));
        let failures = s(AllocFailures);
        CpuStats {
            allocs,
            frees,
            // Every single-frame call is a hit, a miss or direct; the fast path counts only
            // its outcome (alloc, free or failure), so hits are what is left.
            hits: (allocs + frees + failures).saturating_sub(misses + direct),
            misses,
            direct,
            depot_gets: s(DepotGets),
            depot_puts: s(DepotPuts),
            refills: s(Refills),
            spills: s(Spills),
            drains: s(Drains),
            contig_allocs: s(ContigAllocs),
            contig_frees: s(ContigFrees),
            alloc_failures: failures,
            contig_failures: s(ContigFailures),
            free_errors: s(FreeErrors),
            remote_allocs: s(RemoteAllocs),
            remote_frees: s(RemoteFrees),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_zeroes_snapshot_but_keeps_accounting() {
        let c = CpuCounters::new();
        c.add(Counter::Allocs, 5);
        c.bump(Counter::Frees);
        c.add(Counter::ContigAllocFrames, 8);
        c.bump(Counter::Misses);
        assert_eq!(c.snapshot().allocs, 5);
        assert_eq!(c.snapshot().hits, 5);
        assert_eq!(c.net_allocated(), 12);
        c.reset();
        assert_eq!(c.snapshot(), CpuStats::default());
        assert_eq!(c.net_allocated(), 12);
        c.add_shared(Counter::Frees, 2);
        assert_eq!(c.snapshot().frees, 2);
        assert_eq!(c.net_allocated(), 10);
    }

    #[test]
    fn stats_balance_checks_the_sum() {
        let mut s = Stats {
            managed: 10,
            free: 4,
            cached: 3,
            allocated: 3,
            depot_frames: 0,
            anomalies: 0,
            cpu: CpuStats::default(),
            global_lock: LockStats::default(),
            depot_lock: LockStats::default(),
            mode: Mode::Magazine,
            cpus: 0,
            nodes: 1,
            outside_nodes: 0,
        };
        assert!(s.is_balanced());
        s.allocated = 2;
        assert!(!s.is_balanced());
    }

    #[test]
    fn add_reports_accumulate() {
        let one = AddReport {
            added: 3,
            skipped_frame_zero: true,
            table_full: 1,
            ..AddReport::default()
        };
        let mut sum = AddReport::default();
        sum.accumulate(&one);
        sum.accumulate(&AddReport {
            added: 2,
            ..AddReport::default()
        });
        assert_eq!(
            (sum.added, sum.skipped_frame_zero, sum.table_full),
            (5, true, 1)
        );
    }

    #[test]
    fn accumulate_sums_fields() {
        let one = CpuStats {
            allocs: 1,
            drains: 2,
            ..CpuStats::default()
        };
        let mut sum = one;
        sum.accumulate(&one);
        assert_eq!((sum.allocs, sum.drains), (2, 4));
    }
}
