//! The allocator stress suite: `test=stress`, what `limine.conf` runs by default.
//!
//! Every online CPU hammers the frame allocator through five phases ([`phases`]; seven with
//! two NUMA nodes or more; `stress.phases=<name>,...` picks some), each run twice in the same
//! boot: in baseline mode (every operation takes the global lock, as the seed allocator did)
//! and in magazine mode (per-CPU magazines over the depot over the global
//! bitmap). Checked mode is on (the kernel enables `mm/checked`), and every frame is stamped
//! in a ledger and checked before it is freed ([`ledger`]); `exhaust` also marks every frame
//! it obtains in the frame itself ([`mark`]).
//!
//! # What a run proves
//! After each phase and mode, at a quiescent point ([`verify`]): no CPU saw an error (a lost
//! stamp means a frame was handed out twice; a refused free means the allocator's books and
//! ours disagree); `free + cached + allocated == managed`; the phase returned every frame it
//! took; the checked in-use map agrees with the books; the allocator counted exactly the
//! operations the workers did, and every one was a hit, a miss or a direct operation; and
//! `exhaust` obtained every frame that was free or cached when it started.
//!
//! Before the phases, one unreported `exhaust` run touches every free frame, so that neither
//! mode pays for the first touch of memory (see [`warm_up`]).
//!
//! # Watchdog
//! While a phase runs, the BSP and a deputy CPU (workers themselves) watch every CPU's
//! published operation count between their own operations and, once their share is done, at
//! every timer tick until the others are done ([`watchdog`]). A CPU that makes no progress for
//! 10 s (more beyond 16 CPUs; `stress.watchdog=<seconds>`, 0 for none) ends the run with
//! `RESULT FAIL watchdog: ...`, the BSP included. The test hook `stress.stall=<cpu>` stalls a
//! CPU.
//!
//! # Output
//! One `STAT` line per phase and mode (the keys of the issue, then more), a per-CPU table for
//! people, live counter lines while phases run ([`live`]), a comparison table of both modes,
//! `TARGET` lines for the performance targets (reported, not enforced: they depend on the
//! host), and the verdict: `RESULT PASS` or `RESULT FAIL <reason>`.

mod burst;
mod cross;
mod ledger;
mod live;
mod mark;
mod nodes;
mod phases;
mod report;
mod rng;
mod verify;
mod wake;
mod watchdog;
mod worker;

use alloc::string::String;
use alloc::vec::Vec;

use mm::{CpuStats, Mode, NodeStats, Stats};
use spin::Mutex;

use self::ledger::Ledger;
use self::live::Live;
use self::mark::Marker;
use self::phases::{Phase, Shared};
use self::watchdog::{Config, Progress, State, Watchdog};
use self::worker::{Hooks, Watch, Worker};
use crate::boot::BootInfo;
use crate::cmdline::Cmdline;
use crate::memory::{FRAMES, pin};

/// Both designs, baseline first so magazine mode starts from a bitmap the baseline used too.
const MODES: [Mode; 2] = [Mode::Baseline, Mode::Magazine];

/// What one CPU did in one phase run.
#[derive(Clone, Debug, Default)]
pub struct CpuRun {
    /// TSC when it left the start barrier.
    pub start: u64,
    /// TSC when its last allocator operation returned.
    pub end: u64,
    /// Allocator operations it did.
    pub ops: u64,
    /// TSC cycles it spent inside allocator calls.
    pub alloc_cycles: u64,
    /// TSC cycles it spent asleep waiting for peers.
    pub wait_cycles: u64,
    /// Single frames it allocated from another node, by the kernel's node table.
    pub foreign_allocs: u64,
    /// Single frames of another node it freed.
    pub foreign_frees: u64,
    /// Errors it saw, and the first one.
    pub errors: u64,
    /// The first error.
    pub first_error: Option<String>,
    /// The allocator's counters for this CPU.
    pub counters: CpuStats,
}

/// One phase in one mode, on every CPU.
pub struct PhaseRun {
    /// The workload.
    pub phase: Phase,
    /// The allocator mode.
    pub mode: Mode,
    /// Each CPU's part, by CPU index.
    pub cpus: Vec<CpuRun>,
    /// The allocator before the phase (after its caches were drained).
    pub before: Stats,
    /// The allocator after the phase.
    pub after: Stats,
    /// Frames the checked in-use map marks allocated after the phase.
    pub in_use: Option<u64>,
    /// Frames obtained in `exhaust` (0 for other phases).
    pub exhausted: u64,
    /// Each node's figures after the phase, by node.
    pub nodes: Vec<NodeStats>,
}

/// Runs every phase in both modes; `Err` names the first failure.
pub fn run() -> Result<(), String> {
    let cpus = smp::cpu_count();
    if smp::bringup::online_count() != cpus {
        return Err(alloc::format!(
            "only {} of {cpus} cpus online",
            smp::bringup::online_count()
        ));
    }
    let boot = BootInfo::get();
    let cmdline = Cmdline::new(&boot.cmdline);
    let config = Config::from_cmdline(&cmdline, cpus)?;
    let phases = phases_to_run(&cmdline)?;
    let ledger = Ledger::new(boot.managed_ranges(), boot.hhdm_offset)?;
    let marker = Marker::new(boot.hhdm_offset);
    let stamps = Stamps {
        ledger: &ledger,
        marker,
    };
    warm_up(stamps, config)?;
    let mut runs = Vec::new();
    for phase in phases {
        for mode in MODES {
            // The test hooks act in the first reported run only.
            let first = runs.is_empty();
            let hooks = Config {
                stall: config.stall.filter(|_| first),
                duplicate: config.duplicate.filter(|_| first),
                ..config
            };
            let run = run_phase(phase, mode, stamps, hooks);
            report::print_phase(&run);
            verify::phase(&run)?;
            runs.push(run);
        }
    }
    report::print_comparison(&runs);
    report::print_targets(&runs);
    Ok(())
}

/// The phases `stress.phases=` selects (every phase without it), less the NUMA phases on a
/// machine with one node; `Err` if that leaves none.
fn phases_to_run(cmdline: &Cmdline) -> Result<Vec<Phase>, String> {
    let selected = phases::selected(cmdline)?;
    if crate::numa::topology().layout.node_count() > 1 {
        return Ok(selected);
    }
    arch::println!("stress: one node: the NUMA phases (remote, numa) do not run");
    let phases: Vec<Phase> = selected.into_iter().filter(|p| !p.needs_nodes()).collect();
    if phases.is_empty() {
        return Err("stress.phases: every phase selected needs two NUMA nodes or more".into());
    }
    Ok(phases)
}

/// Touches every free frame once, through an unreported, verified `exhaust` run (which marks
/// every frame it obtains): the first touch of guest RAM is far dearer than later ones under
/// an emulator (the host faults the page in), and whichever mode ran `exhaust` first would
/// pay it.
fn warm_up(stamps: Stamps, config: Config) -> Result<(), String> {
    let config = Config {
        stall: None,
        duplicate: None,
        ..config
    };
    let run = run_phase(Phase::Exhaust, Mode::Magazine, stamps, config);
    verify::phase(&run).map_err(|e| alloc::format!("warm-up: {e}"))?;
    arch::println!("stress: warm-up touched {} frames", run.exhausted);
    Ok(())
}

/// Where workers record the frames they hold: the ledger for every phase, the frames
/// themselves too for the phase that obtains them all ([`Phase::marks_frames`]).
#[derive(Clone, Copy)]
struct Stamps<'a> {
    ledger: &'a Ledger,
    marker: Marker,
}

/// Runs `phase` in `mode` on every online CPU and collects what happened.
fn run_phase(phase: Phase, mode: Mode, stamps: Stamps, config: Config) -> PhaseRun {
    let before = {
        // The allocator's management calls need interrupts off (mm's interrupt rules).
        let _cpu = pin();
        FRAMES.set_mode(mode);
        FRAMES.drain_all();
        FRAMES.reset_counters();
        FRAMES.stats()
    };
    let cpus = smp::cpu_count();
    let heap_bytes = crate::memory::heap::free_bytes();
    let cpu_nodes = &crate::numa::topology().cpu_nodes;
    let shared = Shared::new(phase, cpu_nodes, before.free + before.cached, heap_bytes);
    let results: Vec<Mutex<CpuRun>> = (0..cpus).map(|_| Mutex::new(CpuRun::default())).collect();
    let progress: Vec<Progress> = (0..cpus).map(|_| Progress::default()).collect();
    let start = smp::Barrier::new(cpus);
    let live = Live::new(phase.name(), mode, Watchdog::new(&progress, config.bound));
    let reporter = smp::pin().cpu_id();
    let deputy = watchdog::deputy(reporter, cpus);
    smp::run_on_all(|| {
        let cpu = smp::pin().cpu_id();
        let watch = match cpu {
            _ if cpu == reporter => Watch::Reporter(&live),
            _ if Some(cpu) == deputy => Watch::Deputy(&live),
            _ => Watch::None,
        };
        let hooks = Hooks {
            stall_at: (config.stall == Some(cpu)).then_some(watchdog::STALL_AFTER_OPS),
            duplicate: config.duplicate == Some(cpu),
        };
        let marker = phase.marks_frames().then_some(stamps.marker);
        let mut w = Worker::new(cpu, stamps.ledger, marker, watch, &progress[cpu], hooks);
        start.wait();
        if cpu == reporter {
            live.watchdog().restart();
        }
        let t0 = arch::tsc::now();
        phase.run(&mut w, &shared);
        progress[cpu].set_state(State::Done);
        // The CPU's part ends with its last operation, not when it noticed its peers were
        // done too (a halted CPU notices at its next timer tick).
        let t1 = w.last_op_end.max(t0);
        *results[cpu].lock() = cpu_run(&mut w, t0, t1);
        if watch.is_watcher() {
            // Watch the others until they are done (run_on_all's own wait cannot).
            while !live.watchdog().all_done() {
                w.idle();
            }
        }
    });
    // Quiescent now: every number read below is exact.
    let _cpu = pin();
    let mut cpu_runs: Vec<CpuRun> = results.into_iter().map(Mutex::into_inner).collect();
    for (cpu, run) in cpu_runs.iter_mut().enumerate() {
        run.counters = FRAMES.cpu_stats(cpu);
    }
    let after = FRAMES.stats();
    PhaseRun {
        phase,
        mode,
        cpus: cpu_runs,
        before,
        after,
        in_use: FRAMES.in_use_frames(),
        exhausted: shared.exhausted.into_inner(),
        nodes: (0..after.nodes).map(|n| FRAMES.node_stats(n)).collect(),
    }
}

/// What `w` did between `start` and `end` (TSC).
fn cpu_run(w: &mut Worker, start: u64, end: u64) -> CpuRun {
    CpuRun {
        start,
        end,
        ops: w.ops,
        alloc_cycles: w.alloc_cycles,
        wait_cycles: w.wait_cycles,
        foreign_allocs: w.foreign_allocs,
        foreign_frees: w.foreign_frees,
        errors: w.errors,
        first_error: w.first_error.take(),
        counters: CpuStats::default(),
    }
}
