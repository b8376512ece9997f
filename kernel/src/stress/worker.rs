//! One CPU's side of a phase: allocation and free wrapped with stamping (in the
//! [`super::ledger`]; in the frames too for `exhaust`, [`super::mark`]), checking and counting,
//! so the phase bodies in [`super::phases`] read as the workload alone.
//!
//! Every operation pins the CPU (interrupts off) only for the allocator calls themselves, as
//! any kernel caller would; interrupts, and so the BSP's live report, get in between them.
//! A worker never stops early on an error: it records the first one, counts the rest and
//! goes on, so the CPUs that wait for it on a barrier are never left hanging.
//!
//! # Allocator-only time
//! Allocator calls are made in pinned sections of one call, or of up to [`BURST`] calls back to
//! back ([`Worker::alloc_burst`], [`Worker::free_all`], [`Worker::free_chain`]: stamps are
//! written after the section and checked before it). Each section is bracketed by two TSC
//! reads inside the pin (so neither the pin nor an interrupt taken when it ends is counted),
//! summed in `alloc_cycles`; between the calls of a section there is only a store of each
//! result. The sum includes any time the host deschedules the vCPU during a call (a
//! preempted lock holder, a waiter spinning on it): that is the allocator's real cost on an
//! oversubscribed host.
//!
//! Sections of several calls keep the clock out of what they measure: under TCG every guest
//! TSC read takes one host lock all vCPUs share (QEMU's `cpu_get_ticks`). With two reads per
//! call, that function alone was a sixth of QEMU's host time in magazine-mode `cross` at
//! -smp 8 (`perf record` on QEMU); with sections of 8 calls the phase's magazine-mode
//! throughput rose from a median of 1.24 M to 2.02 M ops/s (16 runs each, alternated), and
//! with [`BURST`] (16) to 2.68 M against 2.17 M for 8.
//!
//! # Progress and waits
//! After every pinned section (one operation, or a burst) the worker publishes its count in
//! its [`Progress`] slot for the watchdog; a wait for peers ([`Worker::wait`]) publishes
//! `Waiting` and sleeps until a peer wakes it ([`super::wake`]) rather than spinning: under
//! TCG a spinning vCPU takes a host core from the vCPUs that have work.

use alloc::format;
use alloc::string::String;

use mm::{Frame, FreeError, NodeLayout};

pub use super::burst::{BURST, Burst};
use super::ledger::{Ledger, Stamp, tag};
use super::live::Live;
use super::mark::Marker;
use super::wake::Sleepers;
use super::watchdog::{Progress, State};
use crate::memory::{FRAMES, KernelCpu, pin};

/// A frame (or contiguous run) a worker holds, with the tag it stamped.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// The first frame.
    pub frame: Frame,
    /// Frames in the run (1 for a single frame).
    pub count: usize,
    /// The tag stamped into every frame of the run.
    pub tag: u64,
}

/// What a worker does for the phase run besides its share of the work.
#[derive(Clone, Copy)]
pub enum Watch<'a> {
    /// Prints the live lines and runs the watchdog (the BSP).
    Reporter(&'a Live<'a>),
    /// Runs the watchdog too, so that a stuck reporter is caught ([`super::watchdog::deputy`]).
    Deputy(&'a Live<'a>),
    /// Nothing.
    None,
}

impl Watch<'_> {
    /// Whether this CPU watches the others.
    pub fn is_watcher(&self) -> bool {
        !matches!(self, Watch::None)
    }
}

/// The test hooks armed on one worker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// The operation count at which this CPU stalls (`stress.stall`).
    pub stall_at: Option<u64>,
    /// Whether this CPU's first burst of two frames or more plays an allocator that hands
    /// one frame out twice (`stress.duplicate`): see [`Worker::hand_out_twice`].
    pub duplicate: bool,
}

/// Per-CPU state of a running phase.
pub struct Worker<'a> {
    /// This CPU's index.
    pub cpu: usize,
    /// Allocator operations done (allocs, frees, contiguous allocs and frees).
    pub ops: u64,
    /// Errors seen; the first is kept in `first_error`.
    pub errors: u64,
    /// The first error, for the verdict.
    pub first_error: Option<String>,
    /// TSC cycles spent inside allocator calls.
    pub alloc_cycles: u64,
    /// TSC cycles spent asleep in waits for peers.
    pub wait_cycles: u64,
    /// TSC when its last allocator call returned (0 before the first).
    pub last_op_end: u64,
    /// Single frames it allocated whose home node is not its own, by the kernel's own node
    /// table (compared with the allocator's `remote_allocs` after the run).
    pub foreign_allocs: u64,
    /// Single frames of another node than its own that it freed.
    pub foreign_frees: u64,
    /// Its node and the node table, when there is more than one node.
    home: Option<(usize, &'static NodeLayout)>,
    ledger: &'a Ledger,
    /// Marks the frames themselves too (`exhaust`).
    marker: Option<Marker>,
    seq: u64,
    watch: Watch<'a>,
    progress: &'a Progress,
    hooks: Hooks,
    is_waiting: bool,
}

impl<'a> Worker<'a> {
    /// A worker for `cpu` stamping in `ledger` (and marking frames with `marker`), publishing
    /// to `progress`, watching as `watch` says, with the test hooks `hooks`.
    pub fn new(
        cpu: usize,
        ledger: &'a Ledger,
        marker: Option<Marker>,
        watch: Watch<'a>,
        progress: &'a Progress,
        hooks: Hooks,
    ) -> Self {
        Worker {
            cpu,
            ops: 0,
            errors: 0,
            first_error: None,
            alloc_cycles: 0,
            last_op_end: 0,
            wait_cycles: 0,
            foreign_allocs: 0,
            foreign_frees: 0,
            home: home_node(cpu),
            ledger,
            marker,
            seq: 0,
            watch,
            progress,
            hooks,
            is_waiting: false,
        }
    }

    /// Runs one allocator call pinned, adding the cycles inside it to `alloc_cycles`.
    #[inline]
    fn timed<T>(&mut self, call: impl FnOnce(&KernelCpu) -> T) -> T {
        let cpu = pin();
        let t0 = arch::tsc::now();
        let result = call(&cpu);
        let t1 = arch::tsc::now();
        drop(cpu);
        self.alloc_cycles += t1 - t0;
        self.last_op_end = t1;
        result
    }

    /// Counts `n` operations and publishes the count; stalls here if the test hook says so.
    fn count_ops(&mut self, n: usize) {
        self.ops += n as u64;
        self.progress.set_ops(self.ops);
        if self.hooks.stall_at.is_some_and(|at| self.ops >= at) {
            stall(self.cpu);
        }
    }

    /// One step of a wait for peers: publishes `Waiting`, reports and watches if this CPU
    /// does, and sleeps until woken unless `has_work` (see [`Sleepers::sleep`]).
    pub fn wait(&mut self, sleepers: &Sleepers, has_work: impl Fn() -> bool) {
        if !self.is_waiting {
            self.is_waiting = true;
            self.progress.set_state(State::Waiting);
        }
        self.poll_live();
        let t0 = arch::tsc::now();
        sleepers.sleep(self.cpu, has_work);
        self.wait_cycles += arch::tsc::now() - t0;
    }

    /// Reports and watches if this CPU does, then halts until the next interrupt (spins if
    /// interrupts are off): a watcher's wait for the others once its share is done.
    pub fn idle(&self) {
        self.poll_live();
        if arch::irq::are_enabled() {
            arch::irq::IrqGuard::new().enable_and_wait();
        } else {
            core::hint::spin_loop();
        }
    }

    fn poll_live(&self) {
        match self.watch {
            Watch::Reporter(live) => live.poll(self.ops),
            Watch::Deputy(live) => live.watch(),
            Watch::None => {}
        }
    }

    /// Ends a wait: publishes `Working` again.
    pub fn resume(&mut self) {
        if self.is_waiting {
            self.is_waiting = false;
            self.progress.set_state(State::Working);
        }
    }

    /// Records an error (the first one verbatim).
    pub fn fail(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    /// Allocates and stamps one frame; `None` (error recorded) when the allocator refuses.
    pub fn alloc(&mut self) -> Option<Held> {
        let result = self.timed(|cpu| FRAMES.alloc(cpu));
        self.took(result.map(|frame| (frame, 1)), true, 0)
    }

    /// Allocates one frame and stamps it with `link`; `None` without recording an error
    /// when memory is exhausted.
    pub fn alloc_until_empty(&mut self, link: u64) -> Option<Held> {
        let result = self.timed(|cpu| FRAMES.alloc(cpu));
        self.took(result.map(|frame| (frame, 1)), false, link)
    }

    /// Allocates and stamps `count` contiguous frames aligned to `1 << align_log2` frames.
    pub fn alloc_contiguous(&mut self, count: usize, align_log2: u32) -> Option<Held> {
        let result = self.timed(|cpu| FRAMES.alloc_contiguous(cpu, count, align_log2));
        if let Ok(first) = result
            && first.number() % (1 << align_log2) != 0
        {
            self.fail(format!(
                "contiguous run at {first:?} misses its 2^{align_log2} alignment"
            ));
        }
        self.took(result.map(|frame| (frame, count)), true, 0)
    }

    fn took<E: core::fmt::Display>(
        &mut self,
        result: Result<(Frame, usize), E>,
        exhaustion_is_error: bool,
        link: u64,
    ) -> Option<Held> {
        self.tick();
        match result {
            Ok((frame, count)) => {
                self.count_ops(1);
                Some(self.took_frames(frame, count, link))
            }
            Err(e) => {
                if exhaustion_is_error {
                    self.refused(e);
                }
                None
            }
        }
    }

    /// Tags and stamps (with `link`) `count` frames from `frame` just allocated.
    fn took_frames(&mut self, frame: Frame, count: usize, link: u64) -> Held {
        if count == 1 && self.is_foreign(frame) {
            self.foreign_allocs += 1;
        }
        self.seq += 1;
        let held = Held {
            frame,
            count,
            tag: tag(self.cpu, self.seq),
        };
        self.stamp(&held, link);
        held
    }

    fn refused(&mut self, e: impl core::fmt::Display) {
        self.fail(format!("cpu {}: allocation failed: {e}", self.cpu));
    }

    /// Allocates `n` single frames (at most [`BURST`]) in one pinned, timed section, then
    /// stamps them, each linked to the one allocated before it (the first to none): the burst
    /// is a chain ending at its last frame (see [`Worker::free_chain`]). Fewer frames if the
    /// allocator refused one (the error recorded).
    pub fn alloc_burst(&mut self, n: usize) -> Burst {
        let n = n.min(BURST);
        let mut frames = [Frame::from_number(0); BURST];
        self.tick();
        let (got, refusal) = self.timed(|cpu| {
            for (i, slot) in frames[..n].iter_mut().enumerate() {
                match FRAMES.alloc(cpu) {
                    Ok(frame) => *slot = frame,
                    Err(e) => return (i, Some(e)),
                }
            }
            (n, None)
        });
        if self.hooks.duplicate && got >= 2 {
            self.hand_out_twice(&mut frames[..got]);
        }
        self.count_ops(got);
        let mut burst = Burst::new();
        for &frame in &frames[..got] {
            let link = burst.last().map_or(0, |h| h.frame.number() + 1);
            burst.push(self.took_frames(frame, 1, link));
        }
        if let Some(e) = refusal {
            self.refused(e);
        }
        burst
    }

    /// Stamps every frame of `held` in the ledger with its tag and `link`, and marks it if
    /// this worker marks frames.
    fn stamp(&mut self, held: &Held, link: u64) {
        let stamp = Stamp {
            tag: held.tag,
            link,
        };
        for frame in frames_of(held) {
            if !self.ledger.record(frame, stamp) {
                self.outside_managed_memory(frame);
            }
            if let Some(marker) = self.marker {
                // SAFETY: `held` came from the allocator to this worker and is not freed yet.
                unsafe { marker.write(frame, held.tag) };
            }
        }
    }

    /// Checks the stamps (and marks) of `held`; returns the first frame's link word.
    fn check(&mut self, held: &Held) -> u64 {
        let mut first_link = 0;
        for (n, frame) in frames_of(held).enumerate() {
            match self.ledger.read(frame) {
                Some(s) if s.tag == held.tag && n == 0 => first_link = s.link,
                Some(s) if s.tag == held.tag => {}
                Some(s) => self.fail(format!(
                    "cpu {}: frame {:#x} lost its stamp (tag {:#x}, found tag {:#x}): \
                     handed out twice?",
                    self.cpu,
                    frame.number(),
                    held.tag,
                    s.tag
                )),
                None => self.outside_managed_memory(frame),
            }
            if let Some(marker) = self.marker
                // SAFETY: `held` came from the allocator to its holder and is not freed yet.
                && !unsafe { marker.is_marked(frame, held.tag) }
            {
                self.fail(format!(
                    "cpu {}: frame {:#x} does not hold the mark its holder wrote (tag {:#x}): \
                     not memory of its own?",
                    self.cpu,
                    frame.number(),
                    held.tag
                ));
            }
        }
        first_link
    }

    /// Checks and frees `held` (single frame or contiguous run), whoever allocated it.
    pub fn free(&mut self, held: Held) {
        self.check(&held);
        self.free_checked(&[held]);
    }

    /// Checks and frees every frame of `helds` in order, in pinned, timed sections of up to
    /// [`BURST`] calls.
    pub fn free_all(&mut self, helds: impl IntoIterator<Item = Held>) {
        let mut burst = Burst::new();
        for held in helds {
            self.check(&held);
            burst.push(held);
            if burst.is_full() {
                self.free_checked(&burst);
                burst = Burst::new();
            }
        }
        self.free_checked(&burst);
    }

    /// Checks and frees the chain of single frames that ends at `last`: each frame's link
    /// word names the one allocated before it (0 for none), whose tag is one less. Frees in
    /// pinned, timed sections of up to [`BURST`] calls; returns how many frames it freed.
    pub fn free_chain(&mut self, last: Held) -> usize {
        let mut next = Some(last);
        let mut freed = 0;
        while next.is_some() {
            let mut burst = Burst::new();
            while let Some(held) = next
                && !burst.is_full()
            {
                let link = self.check(&held);
                burst.push(held);
                next = (link != 0).then(|| Held {
                    frame: Frame::from_number(link - 1),
                    count: 1,
                    tag: held.tag - 1,
                });
            }
            self.free_checked(&burst);
            freed += burst.len();
        }
        freed
    }

    /// Records that the allocator handed out `frame`, which the ledger does not cover.
    fn outside_managed_memory(&mut self, frame: Frame) {
        self.fail(format!(
            "cpu {}: the allocator handed out frame {:#x}, outside managed memory",
            self.cpu,
            frame.number()
        ));
    }

    /// The `stress.duplicate` test hook: plays an allocator that hands `frames[0]` out twice,
    /// as `frames[1]` too. The frame that was `frames[1]` goes back to the allocator first, so
    /// the duplicate is the only thing wrong; the ledger must catch it when the first holder
    /// checks its stamp (the freeing CPU's error, then a refused free of the duplicate).
    fn hand_out_twice(&mut self, frames: &mut [Frame]) {
        self.hooks.duplicate = false;
        arch::println!(
            "stress: cpu {} hands frame {:#x} out twice (test hook stress.duplicate)",
            self.cpu,
            frames[0].number()
        );
        if let Err(e) = FRAMES.free(&pin(), frames[1]) {
            self.fail(format!("cpu {}: the duplicate hook's free: {e}", self.cpu));
        }
        frames[1] = frames[0];
    }

    /// Frees `helds` (checked by the caller, at most [`BURST`]) in one pinned, timed section.
    fn free_checked(&mut self, helds: &[Held]) {
        if helds.is_empty() {
            return;
        }
        self.tick();
        let mut results: [Result<(), FreeError>; BURST] = [Ok(()); BURST];
        self.timed(|cpu| {
            for (held, result) in helds.iter().zip(&mut results) {
                *result = if held.count == 1 {
                    FRAMES.free(cpu, held.frame)
                } else {
                    FRAMES.free_contiguous(cpu, held.frame, held.count)
                };
            }
        });
        self.count_ops(helds.len());
        for (held, result) in helds.iter().zip(results) {
            match result {
                Err(e) => self.fail(format!("cpu {}: free refused: {e}", self.cpu)),
                Ok(()) if held.count == 1 && self.is_foreign(held.frame) => self.foreign_frees += 1,
                Ok(()) => {}
            }
        }
    }

    fn tick(&self) {
        self.poll_live();
    }

    /// Whether `frame`'s home node (by the kernel's node table) is not this CPU's.
    fn is_foreign(&self, frame: Frame) -> bool {
        self.home
            .is_some_and(|(node, layout)| layout.node_of(frame) != node)
    }
}

/// The frames of `held`, first to last.
fn frames_of(held: &Held) -> impl Iterator<Item = Frame> + use<> {
    let first = held.frame.number();
    (first..first + held.count as u64).map(Frame::from_number)
}

/// CPU `cpu`'s node and the node table, if there is more than one node.
fn home_node(cpu: usize) -> Option<(usize, &'static NodeLayout)> {
    let topology = crate::numa::topology();
    (topology.layout.node_count() > 1)
        .then(|| (usize::from(topology.cpu_nodes[cpu]), &topology.layout))
}

/// The `stress.stall` test hook: spins forever with interrupts off, so only the watchdog can
/// end the run.
fn stall(cpu: usize) -> ! {
    arch::println!("stress: cpu {cpu} stalls here (test hook stress.stall)");
    let _cpu = pin();
    loop {
        core::hint::spin_loop();
    }
}
