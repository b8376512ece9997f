//! The five workloads. Each runs on every online CPU at once, started together from a
//! barrier, and is bounded in operations so a run ends in seconds even under TCG: each CPU
//! does a fixed share up to 16 CPUs ([`FULL_SHARE_CPUS`]), and beyond that the CPUs split 16
//! CPUs' worth.
//!
//! - `repeat`: alloc and free the same frame: the best case for a per-CPU cache.
//! - `bulk`: allocate a batch several magazines deep, then free it: magazines travel through
//!   the depot.
//! - `cross`: frames allocated on one CPU are freed on another, through bounded per-pair
//!   queues: see [`super::cross`].
//! - `remote`: `cross` between nodes: frames allocated on a CPU of one node are freed on CPUs
//!   of other nodes only, so every free sends a frame home to a remote node (any other CPU
//!   where there is one node).
//! - `numa`: `bulk` sixteen magazines deep, so refills reach the node's bitmap: every frame
//!   should come from the CPU's own node (`local_rate` 1) while memory is plentiful.
//! - `random`: a random mix of single frames and aligned contiguous runs held for random
//!   times (slots picked at random: holding times are geometric).
//! - `exhaust`: every CPU allocates until the allocator says no, then all free. The frames
//!   obtained must add up to every free frame, including those cached on other CPUs.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mm::MAGAZINE_SIZE;

use super::cross::{self, Cross};
use super::rng::Rng;
use super::wake::Sleepers;
use super::worker::{BURST, Held, Worker};
use crate::cmdline::Cmdline;

/// CPUs that each do a phase's full share: beyond them the CPUs split this many CPUs' worth
/// (as `cross` does with its sends), so that a run stays minutes long at 64 CPUs and beyond
/// under TCG on two host cores, where the baseline does about 55000 ops/s at 64 CPUs.
const FULL_SHARE_CPUS: usize = 16;
/// `repeat`: alloc+free pairs per CPU.
const REPEAT_PAIRS: usize = 20_000;
/// `bulk`: frames per batch: four magazines, so batches cross the depot, not only the cache.
const BULK_BATCH: usize = 4 * MAGAZINE_SIZE;
/// `bulk`: batches per CPU.
const BULK_ROUNDS: usize = 80;
/// `numa`: frames per batch: sixteen magazines of the default size, past what a CPU's
/// magazines and its node's depot hand back, so most refills come from the node's bitmap.
const NUMA_BATCH: usize = 16 * MAGAZINE_SIZE;
/// `numa`: batches per CPU (as many operations as `bulk`).
const NUMA_ROUNDS: usize = BULK_ROUNDS / 4;
/// `random`: steps per CPU; each frees a held slot or fills an empty one.
const RANDOM_STEPS: usize = 40_000;
/// `random`: slots a CPU holds at most.
const RANDOM_SLOTS: usize = 64;
/// `random`: one allocation in this many is a contiguous run (2 to 8 frames).
const RANDOM_CONTIG_ONE_IN: u64 = 32;

/// A stress phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Alloc and free the same frame.
    Repeat,
    /// Allocate a batch, then free it.
    Bulk,
    /// Free on another CPU what this one allocated.
    Cross,
    /// Free on a CPU of another node what this one allocated.
    Remote,
    /// Allocate deep batches on this CPU's node, then free them.
    Numa,
    /// Random sizes and holding times.
    Random,
    /// Allocate until failure, then free everything.
    Exhaust,
}

impl Phase {
    /// Every phase, in the order they run.
    pub const ALL: [Phase; 7] = [
        Phase::Repeat,
        Phase::Bulk,
        Phase::Cross,
        Phase::Remote,
        Phase::Numa,
        Phase::Random,
        Phase::Exhaust,
    ];

    /// The name used in `STAT` lines.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Repeat => "repeat",
            Phase::Bulk => "bulk",
            Phase::Cross => "cross",
            Phase::Remote => "remote",
            Phase::Numa => "numa",
            Phase::Random => "random",
            Phase::Exhaust => "exhaust",
        }
    }

    /// The phase called `name` in `STAT` lines.
    pub fn named(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the phase measures something only with two nodes or more (with one, `remote`
    /// is `cross` and `numa` is `bulk` run deeper: they do not run).
    pub fn needs_nodes(self) -> bool {
        matches!(self, Phase::Remote | Phase::Numa)
    }

    /// Whether its workers mark the frames themselves, besides the ledger ([`super::mark`]):
    /// `exhaust`, which obtains every free frame.
    pub fn marks_frames(self) -> bool {
        self == Phase::Exhaust
    }

    /// Runs this phase's share of the work on the current CPU.
    pub fn run(self, w: &mut Worker, shared: &Shared) {
        match self {
            Phase::Repeat => repeat(w, share(REPEAT_PAIRS, shared.cpus)),
            Phase::Bulk => batches(w, BULK_BATCH, share(BULK_ROUNDS, shared.cpus)),
            Phase::Cross | Phase::Remote => cross::run(w, &shared.cross, &shared.sleepers),
            Phase::Numa => batches(w, NUMA_BATCH, share(NUMA_ROUNDS, shared.cpus)),
            Phase::Random => random(w, share(RANDOM_STEPS, shared.cpus)),
            Phase::Exhaust => exhaust(w, shared),
        }
    }
}

/// One CPU's part of `per_cpu` units of work per CPU when `cpus` CPUs run a phase: all of it
/// up to [`FULL_SHARE_CPUS`] CPUs, an even split of that many CPUs' worth beyond (at least 1).
pub fn share(per_cpu: usize, cpus: usize) -> usize {
    (per_cpu * FULL_SHARE_CPUS / cpus.max(1)).clamp(1, per_cpu)
}

/// The phases `stress.phases=<name>,<name>...` names, in running order; every phase without
/// the key. `Err` names a word that is not a phase.
pub fn selected(cmdline: &Cmdline) -> Result<Vec<Phase>, String> {
    let Some(list) = cmdline.get("stress.phases") else {
        return Ok(Phase::ALL.to_vec());
    };
    let mut named = Vec::new();
    for word in list.split(',') {
        let phase = Phase::named(word).ok_or_else(|| {
            let all: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
            format!(
                "stress.phases={list}: no phase called '{word}' (phases: {})",
                all.join(",")
            )
        })?;
        named.push(phase);
    }
    Ok(Phase::ALL
        .into_iter()
        .filter(|p| named.contains(p))
        .collect())
}

/// State the CPUs of one phase run share.
pub struct Shared {
    cpus: usize,
    /// The queues of `cross` (none for other phases).
    cross: Cross,
    /// CPUs that ran dry (`exhaust`): nobody frees before all have.
    dry: AtomicUsize,
    /// CPUs waiting on their peers (`cross`, `exhaust`).
    sleepers: Sleepers,
    /// Frames obtained by all CPUs (`exhaust`).
    pub exhausted: AtomicU64,
}

impl Shared {
    /// Shared state for `phase` over `cpus` CPUs (all online), `available` frames free and
    /// `heap_bytes` of kernel heap to spare (see [`Cross::new`]).
    /// `cpu_nodes[cpu]` is each CPU's node (`remote` pairs CPUs of different nodes).
    pub fn new(phase: Phase, cpu_nodes: &[u8], available: u64, heap_bytes: usize) -> Self {
        let cpus = cpu_nodes.len();
        let cross = match phase {
            Phase::Cross => Cross::new(cpus, available, heap_bytes, None),
            Phase::Remote => Cross::new(cpus, available, heap_bytes, Some(cpu_nodes)),
            _ => Cross::none(cpus),
        };
        Shared {
            cpus,
            cross,
            dry: AtomicUsize::new(0),
            sleepers: Sleepers::new(cpus),
            exhausted: AtomicU64::new(0),
        }
    }
}

fn repeat(w: &mut Worker, pairs: usize) {
    for _ in 0..pairs {
        if let Some(held) = w.alloc() {
            w.free(held);
        }
    }
}

/// `rounds` times: allocate `depth` frames, then free them, last first.
fn batches(w: &mut Worker, depth: usize, rounds: usize) {
    let mut batch = Vec::with_capacity(depth);
    for _ in 0..rounds {
        while batch.len() < depth {
            let want = (depth - batch.len()).min(BURST);
            let burst = w.alloc_burst(want);
            batch.extend_from_slice(&burst);
            if burst.len() < want {
                break; // refused (recorded): free what it got
            }
        }
        w.free_all(batch.drain(..).rev());
    }
}

fn random(w: &mut Worker, steps: usize) {
    let mut rng = Rng::for_cpu(w.cpu);
    let mut slots: [Option<Held>; RANDOM_SLOTS] = [None; RANDOM_SLOTS];
    for _ in 0..steps {
        let slot = &mut slots[rng.below(RANDOM_SLOTS as u64) as usize];
        *slot = match slot.take() {
            Some(held) => {
                w.free(held);
                None
            }
            None if rng.below(RANDOM_CONTIG_ONE_IN) == 0 => {
                let count = 2 + rng.below(7) as usize;
                let align_log2 = rng.below(u64::from(count.ilog2()) + 1) as u32;
                w.alloc_contiguous(count, align_log2)
            }
            None => w.alloc(),
        };
    }
    for held in slots.into_iter().flatten() {
        w.free(held);
    }
}

fn exhaust(w: &mut Worker, s: &Shared) {
    // Chain the frames through their stamps: each links to the one allocated before it, and
    // its tag's sequence number is one less (see `Worker::free_chain`).
    let mut head: Option<Held> = None;
    let mut obtained = 0;
    while let Some(held) = w.alloc_until_empty(head.map_or(0, |h| h.frame.number() + 1)) {
        head = Some(held);
        obtained += 1;
    }
    s.exhausted.fetch_add(obtained, Ordering::Relaxed);
    // Nobody frees before everybody has run dry.
    if s.dry.fetch_add(1, Ordering::AcqRel) + 1 == s.cpus {
        s.sleepers.wake_all();
    }
    while s.dry.load(Ordering::Acquire) < s.cpus {
        w.wait(&s.sleepers, || s.dry.load(Ordering::Acquire) == s.cpus);
    }
    w.resume();
    if let Some(last) = head {
        w.free_chain(last);
    }
}
