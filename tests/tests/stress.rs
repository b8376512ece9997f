//! Stress-suite boot tests (issues 5 and 9): `test=stress` at -smp 1, 2, 4, 8, 32 and 64 and at
//! -m 256M and 2G reaches `RESULT PASS`, prints one `STAT` line per phase and mode whose
//! counters are present and consistent (allocator-only cycles included), prints both speedup
//! `TARGET`s, an injected double free is caught (`test=double-free`), and the phase watchdog
//! names a stalled CPU and fails the run (`stress.stall=<cpu>`).
//!
//! The kernel checks its own invariants after every phase (no duplicate, no lost frame,
//! `exhaust` obtains every free frame) and fails the run otherwise; these tests check, from
//! the outside, that what it printed adds up.

use std::collections::BTreeMap;
use std::time::Duration;

use tests::{Boot, Outcome, Status, boot};

/// Wall-clock limit per boot: an 8-CPU stress run takes about 5 s here, alone.
const TIMEOUT: Duration = Duration::from_secs(240);

const PHASES: [&str; 5] = ["repeat", "bulk", "cross", "random", "exhaust"];
/// With two nodes or more the NUMA phases run too.
const NUMA_PHASES: [&str; 7] = [
    "repeat", "bulk", "cross", "remote", "numa", "random", "exhaust",
];
const MODES: [&str; 2] = ["baseline", "magazine"];

/// The keys every `STAT` line has first, in this order: issue 5's format, then issue 9's
/// allocator-only cycles and busy cycles.
const STAT_KEYS: [&str; 13] = [
    "phase",
    "mode",
    "cpus",
    "ops",
    "cycles_per_op",
    "ops_per_s",
    "hit_rate",
    "lock_acq",
    "contended",
    "wait_cycles",
    "max_hold_cycles",
    "alloc_cycles_per_op",
    "busy_cycles",
];

/// Wall-clock limit for the -smp 64 and 128 boots: 75 s and 2 minutes alone on two host
/// cores.
const TIMEOUT_64: Duration = Duration::from_secs(900);
/// Wall-clock limit for a watchdog boot: boot, warm-up, then the 10 s bound.
const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(120);

type Record = BTreeMap<String, String>;

fn run(cmdline: &str, smp: u32, mem: &str) -> Outcome {
    run_for(cmdline, smp, mem, TIMEOUT)
}

fn run_for(cmdline: &str, smp: u32, mem: &str, timeout: Duration) -> Outcome {
    run_numa(cmdline, smp, 0, mem, timeout)
}

fn run_numa(cmdline: &str, smp: u32, nodes: u32, mem: &str, timeout: Duration) -> Outcome {
    boot(&Boot {
        smp,
        mem,
        cmdline,
        timeout,
        numa_nodes: nodes,
        ..Default::default()
    })
}

fn num(rec: &Record, key: &str) -> f64 {
    rec.get(key)
        .unwrap_or_else(|| panic!("STAT line lacks {key}: {rec:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {rec:?}"))
}

/// Boots the stress suite and checks everything it printed; returns the `STAT` records.
fn stress(smp: u32, mem: &str) -> Vec<Record> {
    stress_with("test=stress", smp, mem, TIMEOUT)
}

fn stress_with(cmdline: &str, smp: u32, mem: &str, timeout: Duration) -> Vec<Record> {
    let out = run_for(cmdline, smp, mem, timeout);
    assert_stress_passed(&out, smp, &PHASES)
}

/// Checks everything a passing stress run printed, its phases `phases`; returns the `STAT`
/// records.
fn assert_stress_passed(out: &Outcome, smp: u32, phases: &[&str]) -> Vec<Record> {
    out.assert_passed();
    assert_stat_lines_in_order(out);
    let records = out.records("STAT ");
    assert_eq!(records.len(), phases.len() * MODES.len(), "{}", out.serial);
    for (i, rec) in records.iter().enumerate() {
        assert_eq!(rec["phase"], phases[i / 2], "{rec:?}");
        assert_eq!(rec["mode"], MODES[i % 2], "{rec:?}");
        assert_eq!(rec["cpus"], smp.to_string(), "{rec:?}");
        assert_counters_consistent(rec);
        assert_alloc_cycles_fit(rec);
    }
    out.assert_contains("comparison at ");
    assert_speedup_targets(out, phases);
    records
}

/// The cycles inside allocator calls are part of the CPUs' busy cycles (the printed figure
/// is rounded to 0.1 cycle per operation).
fn assert_alloc_cycles_fit(rec: &Record) {
    let (per_op, ops, busy) = (
        num(rec, "alloc_cycles_per_op"),
        num(rec, "ops"),
        num(rec, "busy_cycles"),
    );
    assert!(per_op > 0.0, "{rec:?}");
    assert!(per_op * ops <= busy + 0.05 * ops, "{rec:?}");
}

/// `bulk` and `cross` (those of `phases` that ran) each report both speedups, wall and
/// allocator-only, with a verdict.
fn assert_speedup_targets(out: &Outcome, phases: &[&str]) {
    let targets = out.records("TARGET ");
    for phase in ["bulk", "cross"].into_iter().filter(|p| phases.contains(p)) {
        for metric in ["wall_speedup", "alloc_speedup"] {
            let t = targets
                .iter()
                .find(|t| t["phase"] == phase && t["metric"] == metric)
                .unwrap_or_else(|| panic!("no TARGET {phase} {metric}\n{}", out.serial));
            assert!(num(t, "got") > 0.0, "{t:?}");
            assert!(["yes", "no"].contains(&t["met"].as_str()), "{t:?}");
        }
    }
}

/// Every `STAT` line carries the keys first, in the order.
fn assert_stat_lines_in_order(out: &Outcome) {
    for line in out.lines_with("STAT ") {
        let keys: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .take(STAT_KEYS.len())
            .map(|w| w.split_once('=').expect("key=value").0)
            .collect();
        assert_eq!(keys, STAT_KEYS, "{line}");
    }
}

/// The counters of one phase run add up.
fn assert_counters_consistent(rec: &Record) {
    let n = |k| num(rec, k);
    assert_eq!(n("balanced"), 1.0, "books unbalanced: {rec:?}");
    assert_eq!(n("free_errors"), 0.0, "{rec:?}");
    let single = n("allocs") + n("frees") + n("alloc_failures");
    assert_eq!(n("hits") + n("misses") + n("direct"), single, "{rec:?}");
    let ops = n("allocs") + n("frees") + n("contig_allocs") + n("contig_frees");
    assert_eq!(n("ops"), ops, "every operation is counted once: {rec:?}");
    assert!(n("ops") > 0.0, "{rec:?}");
    assert!(n("contended") <= n("lock_acq"), "{rec:?}");
    let hit_rate = n("hit_rate");
    assert!((0.0..=1.0).contains(&hit_rate), "{rec:?}");
    // NUMA keys: the local rate is the allocator's own count; one size per node's depot.
    let local = 1.0 - n("remote_allocs") / n("allocs").max(1.0);
    assert!((n("local_rate") - local).abs() < 1e-3, "{rec:?}");
    let sizes = rec["mag_sizes"].split(',').count();
    assert_eq!(sizes as f64, n("nodes"), "{rec:?}");
    if rec["mode"] == "baseline" {
        // Every single-frame operation takes the global lock and none touches a magazine.
        assert_eq!((n("hits"), n("misses")), (0.0, 0.0), "{rec:?}");
        assert!(n("lock_acq") >= n("direct"), "{rec:?}");
    } else {
        assert_eq!(n("direct"), 0.0, "{rec:?}");
        let expected = n("hits") / (n("hits") + n("misses")).max(1.0);
        assert!((hit_rate - expected).abs() < 1e-3, "{rec:?}");
    }
    if rec["phase"] == "exhaust" {
        assert!(n("exhausted") > 0.0, "{rec:?}");
        assert_eq!(n("allocs"), n("exhausted"), "{rec:?}");
        // Each CPU learns that memory is gone exactly once.
        assert_eq!(n("alloc_failures"), n("cpus"), "{rec:?}");
    } else {
        assert_eq!(n("alloc_failures"), 0.0, "{rec:?}");
    }
}

/// The magazine-mode `exhaust` record.
fn exhaust(records: &[Record]) -> &Record {
    let is_it = |r: &&Record| r["phase"] == "exhaust" && r["mode"] == "magazine";
    records.iter().find(is_it).expect("an exhaust STAT line")
}

/// Both modes' `exhaust` runs obtained the same frames: all that were free.
fn assert_exhaust_agrees(records: &[Record]) {
    let got: Vec<f64> = records
        .iter()
        .filter(|r| r["phase"] == "exhaust")
        .map(|r| num(r, "exhausted"))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], got[1], "baseline and magazine exhaust differ");
}

#[test]
fn stress_one_cpu() {
    assert_exhaust_agrees(&stress(1, "512M"));
}

#[test]
fn stress_two_cpus() {
    assert_exhaust_agrees(&stress(2, "512M"));
}

#[test]
fn stress_four_cpus() {
    assert_exhaust_agrees(&stress(4, "512M"));
}

#[test]
fn stress_eight_cpus() {
    let records = stress(8, "1G");
    assert_exhaust_agrees(&records);
    // The repeat phase never leaves the loaded magazine after its first refill.
    let repeat = &records[1];
    assert!(num(repeat, "hit_rate") >= 0.99, "{repeat:?}");
}

/// Regression: the `cross` queues grow with the square of the CPU count and once exhausted
/// the kernel heap at 32 CPUs; they are now bounded by the heap that is free.
#[test]
fn stress_thirty_two_cpus() {
    assert_exhaust_agrees(&stress(32, "2G"));
}

/// About 75 s alone on two host cores. The watchdog bound is raised: with 64 vCPUs spinning
/// on the baseline's global lock on a busy two-core host, one CPU was seen to complete no
/// operation for about 8 s.
#[test]
fn stress_sixty_four_cpus() {
    let cmdline = "test=stress stress.watchdog=120";
    assert_exhaust_agrees(&stress_with(cmdline, 64, "2G", TIMEOUT_64));
}

/// The most CPUs `just test` runs the suite with: about 2 minutes alone on two host cores
/// (beyond 16 CPUs the CPUs split 16 CPUs' worth of work). At 128 vCPUs on two host cores
/// the BSP was seen to complete no operation for 12 s of a baseline phase.
#[test]
fn stress_one_hundred_twenty_eight_cpus() {
    let cmdline = "test=stress stress.watchdog=240";
    assert_exhaust_agrees(&stress_with(cmdline, 128, "2G", TIMEOUT_64));
}

#[test]
fn stress_with_256m() {
    let records = stress(4, "256M");
    let frames = num(exhaust(&records), "exhausted");
    // 256 MiB minus the kernel, the loader's reserved areas and the BIOS.
    assert!((50_000.0..65_536.0).contains(&frames), "{frames} frames");
}

#[test]
fn stress_with_2g() {
    let records = stress(4, "2G");
    let frames = num(exhaust(&records), "exhausted");
    assert!((450_000.0..524_288.0).contains(&frames), "{frames} frames");
}

#[test]
fn default_mode_is_the_stress_suite() {
    let out = run("", 2, "512M");
    out.assert_passed();
    out.assert_contains("test mode: stress");
    assert_eq!(out.records("STAT ").len(), PHASES.len() * MODES.len());
}

#[test]
fn double_free_is_caught_in_both_modes() {
    for smp in [1, 4] {
        let out = run("test=double-free", smp, "512M");
        out.assert_passed();
        let caught: Vec<&str> = out.lines_with("double-free: ").collect();
        assert_eq!(caught.len(), 2, "{}", out.serial);
        let cpu = format!("on CPU {} rejected: it is not allocated", smp - 1);
        for (line, mode) in caught.iter().zip(["Baseline", "Magazine"]) {
            assert!(
                line.contains(&format!("mode={mode} caught: free of frame ")),
                "{line}"
            );
            assert!(line.contains(&cpu), "{line}");
        }
    }
}

/// An AP that stops making progress mid-phase is named by the watchdog, which ends the run
/// with a failure; the other CPUs, done with their share, are not named.
#[test]
fn watchdog_names_a_stalled_cpu() {
    assert_watchdog_names_only(2);
}

/// A stalled BSP (which prints the live lines and watches too) is named by the deputy.
#[test]
fn watchdog_names_a_stalled_bsp() {
    assert_watchdog_names_only(0);
}

/// Stalls `cpu` of 4 in the first phase run and checks that the watchdog names it alone.
fn assert_watchdog_names_only(cpu: usize) {
    let out = run_for(
        &format!("test=stress stress.stall={cpu}"),
        4,
        "512M",
        WATCHDOG_TIMEOUT,
    );
    out.assert_status(Status::Failed);
    out.assert_contains(&format!("stress: cpu {cpu} stalls here"));
    let named: Vec<&str> = out.lines_with("watchdog: cpu ").collect();
    assert_eq!(named.len(), 1, "{}", out.serial);
    let stuck = format!(
        "watchdog: cpu {cpu} made no progress for 10 s: phase=repeat mode=baseline ops=1000"
    );
    assert!(named[0].starts_with(&stuck), "{}", named[0]);
    let verdict = out.lines_with("RESULT FAIL").last().expect("a verdict");
    let failed = format!("RESULT FAIL watchdog: cpu {cpu} made no progress for 10 s");
    assert!(verdict.starts_with(&failed), "{verdict}");
}

/// A frame handed out twice is caught by the ledger: the `stress.duplicate` hook makes CPU 1
/// play an allocator that does so, once, and the run fails naming that frame, whichever CPU
/// frees it (its own in `bulk`, the other in `cross`).
#[test]
fn ledger_catches_a_frame_handed_out_twice() {
    for phase in ["bulk", "cross"] {
        let out = run(
            &format!("test=stress stress.phases={phase} stress.duplicate=1"),
            2,
            "512M",
        );
        out.assert_status(Status::Failed);
        let hook = out.lines_with("stress: cpu 1 hands frame ").next();
        let frame = hook
            .and_then(|l| l.split_whitespace().nth(5))
            .unwrap_or_else(|| panic!("no hook line: {}", out.serial));
        let verdict = out.lines_with("RESULT FAIL").last().expect("a verdict");
        assert!(
            verdict.starts_with(&format!("RESULT FAIL {phase} (baseline): ")),
            "{verdict}"
        );
        let lost = format!("frame {frame} lost its stamp");
        assert!(verdict.contains(&lost), "{verdict}");
        assert!(verdict.contains("handed out twice?"), "{verdict}");
    }
}

/// `stress.phases=` runs the phases it names, in the suite's order, checked as in a full run.
#[test]
fn phases_key_runs_the_named_phases() {
    let out = run("test=stress stress.phases=cross,repeat", 2, "512M");
    assert_stress_passed(&out, 2, &["repeat", "cross"]);
    assert_eq!(
        out.lines_with("TARGET phase=bulk").count(),
        0,
        "{}",
        out.serial
    );
}

/// `stress.phases=` fails the run on a word that is not a phase, naming it, and when every
/// phase it names needs two NUMA nodes on a machine with one.
#[test]
fn phases_key_refuses_what_cannot_run() {
    let out = run("test=stress stress.phases=cross,nope", 1, "256M");
    out.assert_status(Status::Failed);
    out.assert_contains("RESULT FAIL stress.phases=cross,nope: no phase called 'nope'");
    let out = run("test=stress stress.phases=remote,numa", 1, "256M");
    out.assert_status(Status::Failed);
    out.assert_contains("RESULT FAIL stress.phases: every phase selected needs two NUMA nodes");
}

/// The stall hook refuses a single CPU, which no other CPU could watch.
#[test]
fn stall_hook_refuses_a_single_cpu() {
    let out = run("test=stress stress.stall=0", 1, "512M");
    out.assert_status(Status::Failed);
    out.assert_contains("RESULT FAIL stress.stall=0: a single CPU has no other to watch it");
}

/// Boots the stress suite on `smp` CPUs over `nodes` NUMA nodes and checks it: every phase
/// passes its invariants (nothing lost, `exhaust` drains every node), the `numa` phase is
/// served from each CPU's own node (`local_rate` at least 0.99, magazine and baseline), the
/// `remote` phase sends every free home to another node, and the per-node lines add up.
fn stress_numa(smp: u32, nodes: u32, mem: &str) {
    let out = run_numa("test=stress", smp, nodes, mem, TIMEOUT_64);
    let records = assert_stress_passed(&out, smp, &NUMA_PHASES);
    assert_exhaust_agrees(&records);
    for rec in records.iter().filter(|r| r["phase"] == "numa") {
        assert!(num(rec, "local_rate") >= 0.99, "{rec:?}");
        assert_eq!(num(rec, "nodes"), f64::from(nodes), "{rec:?}");
    }
    let remote = records
        .iter()
        .find(|r| r["phase"] == "remote" && r["mode"] == "magazine")
        .unwrap();
    assert_eq!(
        num(remote, "remote_frees"),
        num(remote, "frees"),
        "{remote:?}"
    );
    let node_lines = out.records("NODESTAT ");
    assert_eq!(
        node_lines.len(),
        records.len() * nodes as usize,
        "{}",
        out.serial
    );
    for (rec, per_node) in records.iter().zip(node_lines.chunks(nodes as usize)) {
        let sum = |key: &str| per_node.iter().map(|n| num(n, key)).sum::<f64>();
        let allocs = sum("local_allocs") + sum("remote_allocs");
        assert_eq!(allocs, num(rec, "allocs"), "{rec:?}\n{per_node:?}");
        assert_eq!(sum("remote_allocs"), num(rec, "remote_allocs"), "{rec:?}");
        let pinned_or_bounded = per_node.iter().all(|n| {
            let size = num(n, "mag_size");
            (8.0..=256.0).contains(&size)
        });
        assert!(pinned_or_bounded, "{per_node:?}");
    }
}

#[test]
fn numa_two_nodes_four_cpus_1g() {
    stress_numa(4, 2, "1G");
}

#[test]
fn numa_four_nodes_eight_cpus_6g() {
    stress_numa(8, 4, "6G");
}

#[test]
fn numa_two_nodes_eight_cpus_6g() {
    stress_numa(8, 2, "6G");
}

#[test]
fn numa_four_nodes_four_cpus_1g() {
    stress_numa(4, 4, "1G");
}
