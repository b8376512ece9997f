//! The `cross` phase: frames allocated on one CPU are freed on another, through bounded per-pair
//! queues (`queue[src][dst]`), each CPU sending batches round-robin to every other: frames
//! have no home. Batches keep the queues' own cost (a shared-line atomic per push and pop) out
//! of what the phase measures, as far as possible: it is the allocator under test. A batch
//! travels as a chain through its frames' stamps, so a queue slot is three words.
//!
//! # What `cross` cost at -smp 8 (issue 9)
//! With the cycles inside allocator calls measured apart (`alloc_cycles_per_op`), magazine
//! mode spent about a tenth of its busy cycles in the allocator: the rest was the harness,
//! and most of that was waiting. Under TCG each vCPU is a host thread, 8 of them on 2 host
//! cores. A sender whose queues to every peer were full, and every CPU that had sent its share
//! and waited for the others' last batches, spun; a spinning vCPU holds a host core that a
//! vCPU with work (or a preempted lock holder) needs. The depot's rare contended acquisitions
//! with hundreds of millions of wait cycles are the same effect on the allocator: a vCPU
//! descheduled while it holds the depot lock, its waiters spinning (mm is not ours to change;
//! fewer spinning vCPUs make it rarer, not impossible).
//!
//! So waits sleep: a waiting CPU halts, and the peer that gives it work (a batch in its inbox,
//! room in a full queue, the last sender finishing) wakes it with an IPI ([`super::wake`]).
//! A CPU's part now ends with its last allocator operation, not when it noticed the others
//! were done (a woken CPU notices later than a spinning one). Batches travel as chains
//! through their stamps (a queue slot is three words, not the frames and tags: 144 bytes),
//! which also leaves heap for larger runs at 64 CPUs.
//!
//! Between two sends a CPU frees one batch from its inbox, not all of it ("one in, one out",
//! the steady state of a pipeline); it empties its inbox only when its queues are full and
//! once its sends are done. Freeing a whole inbox at once (up to 7 x 64 frames after a vCPU
//! was descheduled) overflowed the loaded and previous magazines into the depot and the next
//! allocations fetched them back: 4000 to 4600 depot acquisitions per run, each a chance to
//! be descheduled holding the depot lock; now 480 to 1100, hit rate 0.99 instead of 0.97.
//! Bursts of frees through the depot remain measured by `bulk`.
//!
//! Otherwise the workload is unchanged: the same sends, batches and queue bounds in both
//! modes, every frame allocated on one CPU and freed on another. Deeper queues (16, 32 and
//! 64 batches, measured again after the change below) did not raise magazine-mode throughput
//! beyond the noise, and took the global lock more often (up to 146 times a run, against
//! 13 to 36 with 8).
//!
//! What still cost most was the clock. Each allocator call was timed with two TSC reads, and
//! under TCG every guest TSC read takes one host lock all vCPUs share: `perf record` on QEMU
//! put that lock's function (`cpu_get_ticks`) at a sixth of QEMU's host time in magazine-mode
//! `cross`. A worker now times a burst of allocator calls at once ([`super::burst`]): a batch
//! is one burst on each side. With bursts of 8, magazine-mode `cross` went from a median of
//! 1.24 M to 2.02 M ops/s in 16 alternated runs of each build; bursts of 16 gave 2.68 M
//! against 2.17 M in another 16. Fifteen `just run-smp 8` runs with bursts of 8 gave wall
//! ratios 5.1 to 12.4 and allocator-only ratios 31 to 166.
//!
//! Then the host, which cuts the wrong way. While the VM's own CPUs showed 17 to 25% steal,
//! the baseline ran at 170 k to 430 k ops/s and the wall ratio stayed above 5. Later the host
//! got quieter and the baseline reached 440 k to 660 k ops/s (its lock holders are preempted
//! less) while the magazine run, bound by the harness's own per-frame work, gained less: ten
//! runs with bursts of 16 gave wall ratios 4.0 to 13.3, under 5 in the three whose baseline
//! was fastest (allocator-only ratios 16.6 to 173, all above 10).
//!
//! Most of that per-frame work was the stamps. Written into the frames, each one missed the
//! software TLB of the vCPU that wrote or checked it (a frame crosses CPUs here), a page walk
//! in QEMU's helpers every time; gdb samples put a third of the running vCPUs' time just
//! after the stamp's store. The stamps now live in a ledger beside memory, 256 to a page
//! ([`super::ledger`]): magazine-mode `cross` went from medians of 2.2 M to 2.7 M ops/s to
//! 3.1 M to 3.8 M (three alternated boots of ten runs each), and at -smp 1 the harness's
//! cycles per operation fell from about 750 to 640 once the ledger was a table and workers
//! counted operations per burst. Eight `just run-smp 8` runs on a quiet host (no steal), with
//! the baseline at 330 k to 776 k ops/s, then gave magazine-mode `cross` 3.7 M to 6.5 M ops/s,
//! wall ratios 5.2 to 16.6 and allocator-only ratios 28 to 121. The wall ratio still moves
//! most with the baseline: a cheaper harness makes the baseline's CPUs hit its one lock
//! harder, and how much that costs depends on how often the host preempts a lock holder.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use mm::Frame;

use super::phases::share;
use super::wake::Sleepers;
use super::worker::{BURST, Held, Worker};

/// `cross`: frames each CPU sends to others, at most (fewer beyond 16 CPUs, and when memory
/// is short: see [`Cross::new`]).
const CROSS_SENDS: usize = 10_000;
/// `cross`: frames per batch, one queue operation each: one worker burst (half a magazine of
/// the starting size), so a receiver's magazines still fill from several senders' batches.
const CROSS_BATCH: usize = BURST;
/// `cross`: batches one queue holds at most (128 frames, four magazines of the starting
/// size). Bounding what is in flight keeps the phase a steady exchange of magazines through
/// the depot: with unbounded queues, senders that ran ahead of descheduled receivers (with
/// more virtual CPUs than host cores) had up to 80000 frames in flight at -smp 8, far past
/// the depot's cap, and the magazines overflowed to the bitmap and back (about 1500 global
/// lock acquisitions per run at -smp 8; 18 to 37 with this bound and 16-frame batches; 4
/// batches of 16 were slower, by a median of 7%).
const CROSS_QUEUE_BATCHES: usize = 8;
/// The queues of one `cross` run and what the CPUs share about them.
pub struct Cross {
    cpus: usize,
    /// Frames each CPU sends.
    sends: usize,
    /// Batches a queue holds before its sender wakes the receiver: half the capacity, so one
    /// wake-up (a host thread switch under TCG) frees several.
    wake_batches: usize,
    /// `queues[src * cpus + dst]`.
    queues: Vec<ArrayQueue<Batch>>,
    /// `is_peer[src * cpus + dst]`: whether `src` sends to `dst` (every other CPU in `cross`;
    /// in `remote`, the CPUs of other nodes).
    is_peer: Vec<bool>,
    /// CPUs that finished sending.
    senders_done: AtomicUsize,
}

impl Cross {
    /// Queues for `cpus` CPUs (all online), `available` frames free and `heap_bytes` of kernel
    /// heap to spare. With `nodes` (each CPU's node), a CPU sends only to CPUs of other nodes
    /// (to every other CPU if no other node has one).
    ///
    /// Queues hold at most [`CROSS_QUEUE_BATCHES`]; a CPU sends its [`share`] of
    /// [`CROSS_SENDS`], at most its share of half the available frames, and all queues
    /// together take at most half of `heap_bytes` (they grow with the square of the CPU
    /// count).
    pub fn new(cpus: usize, available: u64, heap_bytes: usize, nodes: Option<&[u8]>) -> Self {
        let mut sends = share(CROSS_SENDS, cpus)
            .min(available as usize / (2 * cpus))
            .max(1);
        while sends > 1 && queue_bytes(cpus, sends) > heap_bytes / 2 {
            sends /= 2;
        }
        let capacity = queue_capacity(cpus, sends);
        Cross {
            cpus,
            sends,
            wake_batches: capacity.div_ceil(2),
            queues: (0..cpus * cpus)
                .map(|_| ArrayQueue::new(capacity))
                .collect(),
            is_peer: peers(cpus, nodes),
            senders_done: AtomicUsize::new(0),
        }
    }

    /// No queues: for the other phases.
    pub fn none(cpus: usize) -> Self {
        Cross {
            cpus,
            sends: 0,
            wake_batches: 1,
            queues: Vec::new(),
            is_peer: Vec::new(),
            senders_done: AtomicUsize::new(0),
        }
    }

    fn queue(&self, src: usize, dst: usize) -> &ArrayQueue<Batch> {
        &self.queues[src * self.cpus + dst]
    }

    fn is_peer(&self, src: usize, dst: usize) -> bool {
        self.is_peer[src * self.cpus + dst]
    }

    /// The peer of `me` after `current` in round-robin order; `me` itself only when it has no
    /// peer (a single CPU).
    fn next_peer(&self, current: usize, me: usize) -> usize {
        (1..=self.cpus)
            .map(|step| (current + step) % self.cpus)
            .find(|&dst| self.is_peer(me, dst))
            .unwrap_or(me)
    }
}

/// `is_peer` of [`Cross`]: every other CPU, or with `nodes` the CPUs of other nodes (every
/// other CPU for a CPU whose node is the only one with CPUs).
fn peers(cpus: usize, nodes: Option<&[u8]>) -> Vec<bool> {
    let other_node = |src: usize, dst: usize| nodes.is_none_or(|n| n[src] != n[dst]);
    let has_remote: Vec<bool> = (0..cpus)
        .map(|src| (0..cpus).any(|dst| dst != src && other_node(src, dst)))
        .collect();
    (0..cpus * cpus)
        .map(|i| (i / cpus, i % cpus))
        .map(|(src, dst)| dst != src && (other_node(src, dst) || !has_remote[src]))
        .collect()
}

/// Batches one `cross` queue holds when each CPU sends `sends` frames: its share of them, at
/// most [`CROSS_QUEUE_BATCHES`].
fn queue_capacity(cpus: usize, sends: usize) -> usize {
    let share = sends
        .div_ceil(CROSS_BATCH)
        .div_ceil(cpus.saturating_sub(1).max(1));
    share.min(CROSS_QUEUE_BATCHES)
}

/// Heap bytes the `cpus * cpus` queues of a `cross` run take (a slot is a batch plus the
/// queue's sequence stamp).
fn queue_bytes(cpus: usize, sends: usize) -> usize {
    let slot = core::mem::size_of::<Batch>() + core::mem::size_of::<usize>();
    cpus * cpus * queue_capacity(cpus, sends) * slot
}

/// Up to [`CROSS_BATCH`] single frames in transit between two CPUs: one worker burst, a chain
/// through the frames' stamps ([`Worker::alloc_burst`]). The queue slot holds only the last
/// frame, its tag and the length, so a push or pop moves three words whatever the batch size.
#[derive(Clone, Copy)]
struct Batch {
    last: Frame,
    tag: u64,
    len: usize,
}

impl Batch {
    /// Allocates up to `n` (at most [`CROSS_BATCH`]) frames; `None` if it got none.
    fn alloc(w: &mut Worker, n: usize) -> Option<Batch> {
        let burst = w.alloc_burst(n.min(CROSS_BATCH));
        // A failure ends the batch; the frames already in it still travel.
        burst.last().map(|last| Batch {
            last: last.frame,
            tag: last.tag,
            len: burst.len(),
        })
    }

    /// Checks and frees every frame of the chain; returns how many.
    fn free(self, w: &mut Worker) -> usize {
        let freed = w.free_chain(Held {
            frame: self.last,
            count: 1,
            tag: self.tag,
        });
        if freed != self.len {
            w.fail(alloc::format!(
                "cpu {}: a cross batch of {} frames had a chain of {freed}",
                w.cpu,
                self.len
            ));
        }
        freed
    }
}

/// Runs this CPU's share of `cross`; `sleepers` holds the CPUs waiting on their peers.
pub fn run(w: &mut Worker, s: &Cross, sleepers: &Sleepers) {
    let (mut dst, mut src) = (w.cpu, w.cpu);
    let mut sent = 0;
    while sent < s.sends {
        let Some(batch) = Batch::alloc(w, CROSS_BATCH.min(s.sends - sent)) else {
            break;
        };
        sent += CROSS_BATCH;
        dst = send(w, s, sleepers, batch, dst);
        src = receive_one(w, s, sleepers, src);
    }
    if s.senders_done.fetch_add(1, Ordering::AcqRel) + 1 == s.cpus {
        sleepers.wake_all();
    }
    // Once every sender is done, one pass that finds all queues empty proves none refills.
    loop {
        let all_sent = s.senders_done.load(Ordering::Acquire) == s.cpus;
        if receive(w, s, sleepers) == 0 {
            if all_sent {
                break;
            }
            let me = w.cpu;
            w.wait(sleepers, || {
                s.senders_done.load(Ordering::Acquire) == s.cpus || has_inbox(s, me)
            });
        }
    }
    w.resume();
}

/// Queues `batch` for the first peer after `last` whose queue has room, and wakes it;
/// returns that peer. After each round of full queues it frees its own inbox (a peer may be
/// waiting on it); with nothing there either, every peer is behind: it sleeps until one
/// makes room or sends it something.
fn send(w: &mut Worker, s: &Cross, sleepers: &Sleepers, mut batch: Batch, last: usize) -> usize {
    let mut dst = last;
    for tries in 1.. {
        dst = s.next_peer(dst, w.cpu);
        match s.queue(w.cpu, dst).push(batch) {
            Ok(()) => break,
            Err(back) => batch = back,
        }
        if tries % s.cpus == 0 && receive(w, s, sleepers) == 0 {
            let me = w.cpu;
            w.wait(sleepers, || has_room(s, me) || has_inbox(s, me));
        }
    }
    w.resume();
    // Waking costs the host a thread switch: only for a batch worth the trip (half a queue),
    // or when the sender cannot wait (its sends done: see `cross`).
    if s.queue(w.cpu, dst).len() >= s.wake_batches {
        sleepers.wake(dst);
    }
    dst
}

/// Whether some queue from `me` to a peer has room.
fn has_room(s: &Cross, me: usize) -> bool {
    (0..s.cpus).any(|dst| s.is_peer(me, dst) && !s.queue(me, dst).is_full())
}

/// Whether some queue to `me` holds a batch.
fn has_inbox(s: &Cross, me: usize) -> bool {
    (0..s.cpus).any(|src| !s.queue(src, me).is_empty())
}

/// Frees one batch queued for this CPU, from the first peer after `last` that sent one;
/// returns that peer (`last` if none did). One in for one out keeps what a CPU frees in step
/// with what it allocates, as in a steady pipeline (see the module docs).
fn receive_one(w: &mut Worker, s: &Cross, sleepers: &Sleepers, last: usize) -> usize {
    let mut src = last;
    for _ in 0..s.cpus {
        src = (src + 1) % s.cpus;
        if let Some(batch) = s.queue(src, w.cpu).pop() {
            batch.free(w);
            sleepers.wake(src);
            return src;
        }
    }
    last
}

/// Frees everything queued for this CPU, waking each sender it made room for; returns how
/// many frames that was.
fn receive(w: &mut Worker, s: &Cross, sleepers: &Sleepers) -> usize {
    let mut freed = 0;
    for src in 0..s.cpus {
        let before = freed;
        while let Some(batch) = s.queue(src, w.cpu).pop() {
            freed += batch.free(w);
        }
        if freed != before {
            sleepers.wake(src);
        }
    }
    freed
}
