//! Stress-suite boot tests (issue 5): `test=stress` at -smp 1, 2, 4, 8 and 32 and at -m 256M
//! and 2G reaches `RESULT PASS`, prints one `STAT` line per phase and mode whose counters are
//! present and consistent, and an injected double free is caught (`test=double-free`).
//!
//! The kernel checks its own invariants after every phase (no duplicate, no lost frame,
//! `exhaust` obtains every free frame) and fails the run otherwise; these tests check, from
//! the outside, that what it printed adds up.

use std::collections::BTreeMap;
use std::time::Duration;

use tests::{Boot, Outcome, boot};

/// Wall-clock limit per boot: an 8-CPU stress run takes about 5 s here, alone.
const TIMEOUT: Duration = Duration::from_secs(240);

const PHASES: [&str; 5] = ["repeat", "bulk", "cross", "random", "exhaust"];
const MODES: [&str; 2] = ["baseline", "magazine"];

/// The keys every `STAT` line has, in this order (the format).
const STAT_KEYS: [&str; 11] = [
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
];

type Record = BTreeMap<String, String>;

fn run(cmdline: &str, smp: u32, mem: &str) -> Outcome {
    boot(&Boot {
        smp,
        mem,
        cmdline,
        timeout: TIMEOUT,
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
    let out = run("test=stress", smp, mem);
    out.assert_passed();
    assert_stat_lines_in_order(&out);
    let records = out.records("STAT ");
    assert_eq!(records.len(), PHASES.len() * MODES.len(), "{}", out.serial);
    for (i, rec) in records.iter().enumerate() {
        assert_eq!(rec["phase"], PHASES[i / 2], "{rec:?}");
        assert_eq!(rec["mode"], MODES[i % 2], "{rec:?}");
        assert_eq!(rec["cpus"], smp.to_string(), "{rec:?}");
        assert_counters_consistent(rec);
    }
    out.assert_contains("comparison at ");
    records
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

#[test]
fn stress_with_256m() {
    let records = stress(4, "256M");
    let frames = num(&records[8], "exhausted");
    // 256 MiB minus the kernel, the loader's reserved areas and the BIOS.
    assert!((50_000.0..65_536.0).contains(&frames), "{frames} frames");
}

#[test]
fn stress_with_2g() {
    let records = stress(4, "2G");
    let frames = num(&records[8], "exhausted");
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
