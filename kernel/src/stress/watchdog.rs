//! The phase watchdog: a CPU that makes no progress for a bound (10 s up to 16 CPUs, then
//! 10 s per 16 CPUs, unless `stress.watchdog=<seconds>` says otherwise; 0 turns it off) fails
//! the run, named. The clock starts when the BSP leaves the phase's start barrier.
//!
//! Why the default grows past 16 CPUs: at -smp 64 under TCG on two busy host cores, a CPU in
//! baseline mode was seen to complete no operation at all for about 8 s (64 vCPUs spinning on
//! the one global lock, which is not fair, with the host's load at 19).
//!
//! Every worker publishes its operation count and whether it is working, waiting on its
//! peers (a harness wait: the `cross` drain, the `exhaust` barrier) or done, in its own
//! [`Progress`] slot (one cache line each, a relaxed store per pinned section of
//! operations in both modes).
//! Two CPUs watch the slots, each a worker itself: the BSP, and a deputy (the last other
//! CPU, [`deputy`]) so that a stuck BSP is caught too. Each checks once per live interval
//! while it works (from [`super::live`]) and at every timer tick once its share is done,
//! until every CPU is done. A CPU that is not done and whose count has not moved for the
//! bound is stuck: the first watcher to see it prints one `watchdog:` line per stuck CPU (CPU,
//! phase, mode, op count, state) and ends QEMU through the failure path of every test mode,
//! `RESULT FAIL watchdog: ...`.
//!
//! Only a run whose two watchers both stall goes unreported, and a single CPU has no one to
//! watch it. The test hook `stress.stall=<cpu>` (refused on a single CPU) makes that CPU spin
//! forever with interrupts off after [`STALL_AFTER_OPS`] operations of the first reported
//! phase run.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use core::time::Duration;

use spin::Mutex;

use crate::cmdline::Cmdline;

/// The bound when the command line sets none, per [`CPUS_PER_BOUND`] CPUs (at least one):
/// far above any pause a correct run shows under TCG at 8 CPUs (a descheduled vCPU on two
/// host cores loses tens of milliseconds).
pub const DEFAULT_BOUND: Duration = Duration::from_secs(10);
/// CPUs per [`DEFAULT_BOUND`] in the default.
const CPUS_PER_BOUND: usize = 16;
/// Operations the `stress.stall` CPU does in the first phase run before it stalls.
pub const STALL_AFTER_OPS: u64 = 1000;

/// The run's command-line settings: the watchdog's bound and the test hooks.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How long a CPU may make no progress (zero: no watchdog).
    pub bound: Duration,
    /// The CPU the test hook `stress.stall` stalls, if any.
    pub stall: Option<usize>,
    /// The CPU that plays a broken allocator for the test hook `stress.duplicate`, if any
    /// ([`super::worker::Hooks`]).
    pub duplicate: Option<usize>,
}

impl Config {
    /// Reads `stress.watchdog=<seconds>`, `stress.stall=<cpu>` and `stress.duplicate=<cpu>`
    /// for a run on `cpus` CPUs.
    pub fn from_cmdline(cmdline: &Cmdline, cpus: usize) -> Result<Self, String> {
        let bound = match cmdline.get("stress.watchdog") {
            None => DEFAULT_BOUND * cpus.div_ceil(CPUS_PER_BOUND).max(1) as u32,
            Some(s) => Duration::from_secs(
                s.parse()
                    .map_err(|_| format!("stress.watchdog={s}: expected seconds"))?,
            ),
        };
        let stall = cmdline
            .get("stress.stall")
            .map(|s| stall_cpu(s, cpus))
            .transpose()?;
        let duplicate = cmdline
            .get("stress.duplicate")
            .map(|s| cpu_below("stress.duplicate", s, cpus))
            .transpose()?;
        Ok(Config {
            bound,
            stall,
            duplicate,
        })
    }
}

fn stall_cpu(text: &str, cpus: usize) -> Result<usize, String> {
    if cpus == 1 && text.parse::<usize>().is_ok() {
        return Err(format!(
            "stress.stall={text}: a single CPU has no other to watch it"
        ));
    }
    cpu_below("stress.stall", text, cpus)
}

/// The CPU `key=text` names, which must be below `cpus`.
fn cpu_below(key: &str, text: &str, cpus: usize) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|&cpu| cpu < cpus)
        .ok_or_else(|| format!("{key}={text}: expected a CPU below {cpus}"))
}

/// The CPU that watches beside `bsp`: the last other CPU of `cpus`, if there is one.
pub fn deputy(bsp: usize, cpus: usize) -> Option<usize> {
    (0..cpus).rev().find(|&cpu| cpu != bsp)
}

/// Where a worker is in its phase run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Doing its own operations.
    Working = 0,
    /// In a harness wait for its peers.
    Waiting = 1,
    /// Finished its share.
    Done = 2,
}

impl State {
    /// The `state=` value.
    fn name(self) -> &'static str {
        match self {
            State::Working => "working",
            State::Waiting => "waiting",
            State::Done => "done",
        }
    }
}

/// One CPU's published progress, on its own cache line so that publishing costs a store to
/// a line no other CPU writes.
#[repr(align(64))]
#[derive(Default)]
pub struct Progress {
    ops: AtomicU64,
    state: AtomicU8,
}

impl Progress {
    /// Publishes the operation count.
    #[inline]
    pub fn set_ops(&self, ops: u64) {
        self.ops.store(ops, Ordering::Relaxed);
    }

    /// Publishes the state.
    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Working,
            1 => State::Waiting,
            _ => State::Done,
        }
    }

    /// Whether this CPU finished its share.
    pub fn is_done(&self) -> bool {
        self.state() == State::Done
    }
}

/// What the watchdog last saw of one CPU: its count, and when the count last moved (TSC).
#[derive(Clone, Copy)]
struct Seen {
    ops: u64,
    moved: u64,
}

/// The watch over every CPU of one phase run, shared by its watchers.
pub struct Watchdog<'a> {
    cpus: &'a [Progress],
    /// The bound in TSC cycles; 0 when off.
    bound: u64,
    seen: Mutex<Vec<Seen>>,
    /// Whether a watcher has found a stuck CPU (it reports; the other stays quiet).
    fired: AtomicBool,
}

impl<'a> Watchdog<'a> {
    /// A watchdog over `cpus` with `bound` (zero: off), starting now.
    pub fn new(cpus: &'a [Progress], bound: Duration) -> Self {
        let now = arch::tsc::now();
        Watchdog {
            cpus,
            bound: arch::tsc::cycles_in(bound),
            seen: Mutex::new(cpus.iter().map(|_| Seen { ops: 0, moved: now }).collect()),
            fired: AtomicBool::new(false),
        }
    }

    /// Restarts the clock of every CPU: the phase starts now.
    pub fn restart(&self) {
        let now = arch::tsc::now();
        for s in self.seen.lock().iter_mut() {
            s.moved = now;
        }
    }

    /// Whether every CPU finished its share.
    pub fn all_done(&self) -> bool {
        self.cpus.iter().all(Progress::is_done)
    }

    /// Updates what it saw; `Err` holds the report lines and the verdict when a CPU is stuck
    /// (for the first watcher to see one only).
    pub fn check(&self, phase: &str, mode: &str) -> Result<(), (Vec<String>, String)> {
        if self.bound == 0 {
            return Ok(());
        }
        let now = arch::tsc::now();
        let stuck = self.stuck(now);
        if stuck.is_empty() || self.fired.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let secs = arch::tsc::duration_of(self.bound).as_secs();
        let lines = stuck
            .iter()
            .map(|&(cpu, ops, state)| {
                format!(
                    "watchdog: cpu {cpu} made no progress for {secs} s: phase={phase} \
                     mode={mode} ops={ops} state={}",
                    state.name()
                )
            })
            .collect();
        Err((lines, verdict(&stuck, secs, phase, mode)))
    }

    /// The CPUs, not done, whose count has not moved for the bound: (cpu, ops, state). None
    /// while the other watcher is looking (it holds the record; a watcher stuck while holding
    /// it is the one case left unreported).
    fn stuck(&self, now: u64) -> Vec<(usize, u64, State)> {
        let Some(mut seen) = self.seen.try_lock() else {
            return Vec::new();
        };
        let mut stuck = Vec::new();
        for (cpu, (p, s)) in self.cpus.iter().zip(seen.iter_mut()).enumerate() {
            let (ops, state) = (p.ops.load(Ordering::Relaxed), p.state());
            if ops != s.ops || state == State::Done {
                *s = Seen { ops, moved: now };
            } else if now - s.moved >= self.bound {
                stuck.push((cpu, ops, state));
            }
        }
        stuck
    }
}

/// `watchdog: ...` naming the working stuck CPUs (those waiting on peers only when none is
/// working: then the wait itself is what hangs).
fn verdict(stuck: &[(usize, u64, State)], secs: u64, phase: &str, mode: &str) -> String {
    let working: Vec<_> = stuck.iter().filter(|s| s.2 == State::Working).collect();
    let named: Vec<String> = if working.is_empty() {
        stuck.iter().map(|s| format!("{}", s.0)).collect()
    } else {
        working.iter().map(|s| format!("{}", s.0)).collect()
    };
    format!(
        "watchdog: cpu {} made no progress for {secs} s (phase={phase} mode={mode})",
        named.join(",")
    )
}
