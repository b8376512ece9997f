//! Serial output of the stress suite: one machine-readable `STAT` line per phase and mode,
//! tables for people, and the `TARGET` lines.
//!
//! `STAT` keys, in order: `phase mode cpus ops cycles_per_op ops_per_s hit_rate lock_acq
//! contended wait_cycles max_hold_cycles` (the global lock's figures), then more:
//! `alloc_cycles_per_op` (TSC cycles inside allocator calls per operation, summed over CPUs:
//! the allocator alone, without the harness), `busy_cycles` (the sum over CPUs of each one's
//! end minus start, of which the allocator calls are a part), `local_rate` (the share of
//! single-frame allocations served by the allocating CPU's own node: 1 with one node),
//! `acq_per_magazine` (global
//! acquisitions per magazine's worth of operations), the depot lock's figures, the summed
//! per-CPU counters (failures and refused frees included), `wall_us` and `balanced`, then the
//! NUMA keys: `remote_allocs`, `remote_frees` (the allocator's counts), `nodes`, and
//! `mag_sizes` (each node's depot magazine size after the phase, comma-separated, chosen by
//! the adaptive policy or pinned by `mag=`). Per-node figures follow in `NODESTAT` lines
//! ([`super::nodes`]).
//!
//! Two speedups compare the modes: `wall` (ops/s over the phase's wall time: harness and
//! allocator) and `alloc` (baseline over magazine `alloc_cycles_per_op`: the allocator alone).
#![deny(unsafe_code)]

use mm::{MAGAZINE_SIZE, Mode};

use super::PhaseRun;
use super::phases::Phase;

/// The `mode=` value of a mode.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Magazine => "magazine",
        Mode::Baseline => "baseline",
    }
}

/// Derived figures of one phase run.
struct Figures {
    ops: u64,
    cycles_per_op: f64,
    ops_per_s: f64,
    hit_rate: f64,
    acq_per_magazine: f64,
    wall_us: u64,
    alloc_cycles_per_op: f64,
    busy_cycles: u64,
    local_rate: f64,
}

fn figures(run: &PhaseRun) -> Figures {
    let ops: u64 = run.cpus.iter().map(|c| c.ops).sum();
    let busy: u64 = run.cpus.iter().map(|c| c.end - c.start).sum();
    let alloc_cycles: u64 = run.cpus.iter().map(|c| c.alloc_cycles).sum();
    let first = run.cpus.iter().map(|c| c.start).min().unwrap_or(0);
    let last = run.cpus.iter().map(|c| c.end).max().unwrap_or(0);
    let wall = arch::tsc::duration_of(last - first);
    let k = &run.after.cpu;
    let served = k.hits + k.misses + k.direct;
    Figures {
        ops,
        cycles_per_op: busy as f64 / ops.max(1) as f64,
        ops_per_s: ops as f64 / wall.as_secs_f64().max(1e-9),
        hit_rate: k.hits as f64 / served.max(1) as f64,
        acq_per_magazine: run.after.global_lock.acquisitions as f64 * MAGAZINE_SIZE as f64
            / ops.max(1) as f64,
        wall_us: wall.as_micros() as u64,
        alloc_cycles_per_op: alloc_cycles as f64 / ops.max(1) as f64,
        busy_cycles: busy,
        local_rate: 1.0 - k.remote_allocs as f64 / k.allocs.max(1) as f64,
    }
}

/// Prints the `STAT` line and the per-CPU table of `run`.
pub fn print_phase(run: &PhaseRun) {
    let f = figures(run);
    let (g, d, k) = (
        &run.after.global_lock,
        &run.after.depot_lock,
        &run.after.cpu,
    );
    arch::println!(
        "STAT phase={} mode={} cpus={} ops={} cycles_per_op={:.1} ops_per_s={:.0} \
         hit_rate={:.4} lock_acq={} contended={} wait_cycles={} max_hold_cycles={} \
         alloc_cycles_per_op={:.1} busy_cycles={} local_rate={:.4} acq_per_magazine={:.3} \
         depot_acq={} \
         depot_contended={} depot_wait_cycles={} \
         allocs={} frees={} hits={} misses={} direct={} depot_gets={} depot_puts={} \
         refills={} spills={} drains={} contig_allocs={} contig_frees={} alloc_failures={} \
         free_errors={} exhausted={} wall_us={} balanced={} remote_allocs={} remote_frees={} \
         nodes={} mag_sizes={}",
        run.phase.name(),
        mode_name(run.mode),
        run.cpus.len(),
        f.ops,
        f.cycles_per_op,
        f.ops_per_s,
        f.hit_rate,
        g.acquisitions,
        g.contended,
        g.wait_cycles,
        g.max_hold_cycles,
        f.alloc_cycles_per_op,
        f.busy_cycles,
        f.local_rate,
        f.acq_per_magazine,
        d.acquisitions,
        d.contended,
        d.wait_cycles,
        k.allocs,
        k.frees,
        k.hits,
        k.misses,
        k.direct,
        k.depot_gets,
        k.depot_puts,
        k.refills,
        k.spills,
        k.drains,
        k.contig_allocs,
        k.contig_frees,
        k.alloc_failures,
        k.free_errors,
        run.exhausted,
        f.wall_us,
        u8::from(run.after.is_balanced()),
        k.remote_allocs,
        k.remote_frees,
        run.nodes.len(),
        super::nodes::magazine_sizes(run),
    );
    print_cpu_table(run);
    super::nodes::print_table(run);
}

fn print_cpu_table(run: &PhaseRun) {
    arch::println!(
        "  {:>4} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>10}",
        "cpu",
        "ops",
        "allocs",
        "frees",
        "hits",
        "misses",
        "depot<",
        "depot>",
        "refill",
        "spill",
        "kcycles",
        "kc(alloc)",
        "kc(wait)"
    );
    for (cpu, c) in run.cpus.iter().enumerate() {
        let k = &c.counters;
        arch::println!(
            "  {:>4} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>10}",
            cpu,
            c.ops,
            k.allocs + k.contig_allocs,
            k.frees + k.contig_frees,
            k.hits,
            k.misses,
            k.depot_gets,
            k.depot_puts,
            k.refills,
            k.spills,
            (c.end - c.start) / 1000,
            c.alloc_cycles / 1000,
            c.wait_cycles / 1000
        );
    }
}

/// Every phase that ran in both modes, with its baseline and its magazine run.
fn pairs(runs: &[PhaseRun]) -> impl Iterator<Item = (Phase, &PhaseRun, &PhaseRun)> {
    let find = move |phase, mode| runs.iter().find(|r| r.phase == phase && r.mode == mode);
    Phase::ALL.into_iter().filter_map(move |phase| {
        Some((
            phase,
            find(phase, Mode::Baseline)?,
            find(phase, Mode::Magazine)?,
        ))
    })
}

/// The two speedups of magazine over baseline: (wall, alloc).
fn speedups(b: &PhaseRun, m: &PhaseRun) -> (f64, f64) {
    let (fb, fm) = (figures(b), figures(m));
    (
        fm.ops_per_s / fb.ops_per_s.max(1e-9),
        fb.alloc_cycles_per_op / fm.alloc_cycles_per_op.max(1e-9),
    )
}

/// Prints magazine against baseline for every phase.
pub fn print_comparison(runs: &[PhaseRun]) {
    let cpus = runs.first().map_or(0, |r| r.cpus.len());
    arch::println!(
        "comparison at {cpus} cpus (ops/s; wall = magazine / baseline ops/s; \
         alloc = baseline / magazine alloc cycles per op):"
    );
    arch::println!(
        "  {:<8} {:>13} {:>13} {:>7} {:>7} {:>9} {:>10} {:>10} {:>10}",
        "phase",
        "baseline",
        "magazine",
        "wall",
        "alloc",
        "hit_rate",
        "local_rate",
        "acq(base)",
        "acq(mag)"
    );
    for (phase, b, m) in pairs(runs) {
        let (fb, fm) = (figures(b), figures(m));
        let (wall, alloc) = speedups(b, m);
        arch::println!(
            "  {:<8} {:>13.0} {:>13.0} {:>7.2} {:>7.2} {:>9.4} {:>10.4} {:>10} {:>10}",
            phase.name(),
            fb.ops_per_s,
            fm.ops_per_s,
            wall,
            alloc,
            fm.hit_rate,
            fm.local_rate,
            b.after.global_lock.acquisitions,
            m.after.global_lock.acquisitions
        );
    }
}

/// Prints one `TARGET` line per performance target of the magazine design: reported with
/// `met=yes|no`, not enforced (the figures depend on the host and the CPU count). Speedups
/// come twice: `wall_speedup` (ops/s, harness included) and `alloc_speedup` (cycles inside
/// the allocator only).
pub fn print_targets(runs: &[PhaseRun]) {
    for (phase, b, m) in pairs(runs) {
        let fm = figures(m);
        let want_hits = match phase {
            Phase::Repeat => Some(0.99),
            Phase::Bulk | Phase::Cross | Phase::Remote | Phase::Random => Some(0.95),
            // `numa` goes past the caches on purpose; `exhaust` runs them dry.
            Phase::Numa | Phase::Exhaust => None,
        };
        if phase == Phase::Numa {
            target(phase, "local_rate", fm.local_rate, Want::AtLeast(0.99));
        }
        if let Some(want) = want_hits {
            target(phase, "hit_rate", fm.hit_rate, Want::AtLeast(want));
            target(
                phase,
                "acq_per_magazine",
                fm.acq_per_magazine,
                Want::AtMost(2.0),
            );
        }
        if matches!(phase, Phase::Bulk | Phase::Cross) {
            let (wall, alloc) = speedups(b, m);
            target(phase, "wall_speedup", wall, Want::AtLeast(5.0));
            target(phase, "alloc_speedup", alloc, Want::AtLeast(10.0));
        }
    }
}

/// Which side of its bound a target wants a figure on.
enum Want {
    AtLeast(f64),
    AtMost(f64),
}

fn target(phase: Phase, name: &str, got: f64, want: Want) {
    let (bound, met) = match want {
        Want::AtLeast(b) => (alloc::format!(">={b}"), got >= b),
        Want::AtMost(b) => (alloc::format!("<={b}"), got <= b),
    };
    arch::println!(
        "TARGET phase={} metric={name} got={got:.4} want{bound} met={}",
        phase.name(),
        if met { "yes" } else { "no" }
    );
}
