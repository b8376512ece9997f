//! `kbench`: the in-kernel magazine-versus-baseline comparison, the second half of
//! `just bench`.
//!
//! Boots the stress suite (`test=stress`) at -smp 1, 2, 4 and 8 and at as many CPUs as the
//! host has cores (or the counts given as arguments), reads the `STAT` lines of each run and
//! prints one table: per phase and CPU count, both modes' throughput and two ratios, `wall`
//! (magazine over baseline ops/s: harness and allocator) and `alloc` (baseline over magazine
//! cycles inside allocator calls per operation: the allocator alone), the magazine hit rate,
//! global lock acquisitions per magazine's worth of operations and both modes' allocator
//! cycles per operation. Exits non-zero if any boot fails.
//!
//! Then the magazine-size table: the stress suite on a 2-node NUMA machine (-smp 4, 1G), once
//! with adaptive magazines and once pinned at each of [`FIXED_SIZES`] (`mag=`), per phase in
//! magazine mode: nanoseconds per operation inside the allocator, global and depot lock
//! acquisitions per 1000 operations, the sizes the adaptive depots ended at, and adaptive's
//! time over the best fixed size's (the target is at most 1.10).
//!
//! Under TCG every virtual CPU is a host thread: with more virtual CPUs than host cores the
//! figures measure the host's scheduler too (a preempted lock holder stalls every waiter),
//! so compare runs made on the same machine. The row at the host's core count is the last
//! without oversubscription.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use tests::{Boot, Status, boot};

const PHASES: [&str; 5] = ["repeat", "bulk", "cross", "random", "exhaust"];
const DEFAULT_CPUS: [u32; 4] = [1, 2, 4, 8];
const TIMEOUT: Duration = Duration::from_secs(600);
/// The phases of a NUMA run.
const NUMA_PHASES: [&str; 7] = [
    "repeat", "bulk", "cross", "remote", "numa", "random", "exhaust",
];
/// Pinned magazine sizes the adaptive policy is compared with.
const FIXED_SIZES: [u32; 3] = [8, 32, 128];

type Record = BTreeMap<String, String>;

/// The `STAT` records of one stress boot at `smp` CPUs, or why it failed.
fn stress_records(smp: u32) -> Result<Vec<Record>, String> {
    let mem = if smp > 4 { "1G" } else { "512M" };
    let (records, _) = stress_boot(smp, mem, 0, "test=stress")?;
    Ok(records)
}

/// The `STAT` records and the TSC's MHz of one stress boot, or why it failed.
fn stress_boot(
    smp: u32,
    mem: &str,
    nodes: u32,
    cmdline: &str,
) -> Result<(Vec<Record>, f64), String> {
    let out = boot(&Boot {
        smp,
        mem,
        cmdline,
        timeout: TIMEOUT,
        numa_nodes: nodes,
        ..Default::default()
    });
    if out.status != Status::Passed {
        return Err(format!(
            "-smp {smp} {cmdline}: {:?}\n{}",
            out.status, out.serial
        ));
    }
    let mhz = out
        .lines_with("tsc: ")
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or("no `tsc: <MHz> MHz` line")?;
    Ok((out.records("STAT "), mhz))
}

/// One configuration's magazine-mode figures of one phase: allocator ns per operation,
/// global and depot acquisitions per 1000 operations, the magazine sizes it ended at.
fn size_figures(records: &[Record], mhz: f64, phase: &str) -> (f64, f64, f64, String) {
    let v = |key| value(records, phase, "magazine", key);
    let ops = v("ops");
    let sizes = records
        .iter()
        .find(|r| r["phase"] == phase && r["mode"] == "magazine")
        .map_or(String::from("?"), |r| r["mag_sizes"].clone());
    (
        v("alloc_cycles_per_op") * 1000.0 / mhz,
        v("lock_acq") * 1000.0 / ops,
        v("depot_acq") * 1000.0 / ops,
        sizes,
    )
}

/// The adaptive-versus-fixed table at 2 nodes (see the crate docs).
fn magazine_size_table() -> Result<(), String> {
    let adaptive = stress_boot(4, "1G", 2, "test=stress")?;
    let mut fixed = Vec::new();
    for size in FIXED_SIZES {
        fixed.push(stress_boot(4, "1G", 2, &format!("test=stress mag={size}"))?);
    }
    println!();
    println!(
        "magazine sizes at 2 nodes, -smp 4 (magazine mode; ns = allocator ns/op; g, d = global, \
         depot acquisitions per 1000 ops; vs best = adaptive ns / best fixed ns)"
    );
    print!("{:<8} {:>22} {:>9}", "phase", "adaptive ns/g/d", "sizes");
    for size in FIXED_SIZES {
        print!(" {:>20}", format!("mag={size} ns/g/d"));
    }
    println!(" {:>8}", "vs best");
    for phase in NUMA_PHASES {
        let (ns, g, d, sizes) = size_figures(&adaptive.0, adaptive.1, phase);
        print!(
            "{phase:<8} {:>22} {sizes:>9}",
            format!("{ns:.0}/{g:.2}/{d:.1}")
        );
        let mut best = f64::INFINITY;
        for (records, mhz) in &fixed {
            let (ns, g, d, _) = size_figures(records, *mhz, phase);
            best = best.min(ns);
            print!(" {:>20}", format!("{ns:.0}/{g:.2}/{d:.1}"));
        }
        println!(" {:>8.2}", ns / best);
    }
    Ok(())
}

fn value(records: &[Record], phase: &str, mode: &str, key: &str) -> f64 {
    records
        .iter()
        .find(|r| r["phase"] == phase && r["mode"] == mode)
        .and_then(|r| r.get(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn print_rows(smp: u32, records: &[Record]) {
    for phase in PHASES {
        let base = value(records, phase, "baseline", "ops_per_s");
        let mag = value(records, phase, "magazine", "ops_per_s");
        let alloc_base = value(records, phase, "baseline", "alloc_cycles_per_op");
        let alloc_mag = value(records, phase, "magazine", "alloc_cycles_per_op");
        println!(
            "{phase:<8} {smp:>4} {base:>13.0} {mag:>13.0} {:>7.2} {:>7.2} {:>9.4} {:>9.3} \
             {alloc_base:>10.0} {alloc_mag:>10.0}",
            mag / base,
            alloc_base / alloc_mag,
            value(records, phase, "magazine", "hit_rate"),
            value(records, phase, "magazine", "acq_per_magazine"),
        );
    }
}

/// Host cores, as the standard library sees them (1 if unknown).
fn host_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// [`DEFAULT_CPUS`] plus the host's core count, in increasing order without repeats.
fn default_cpus() -> Vec<u32> {
    let mut cpus = DEFAULT_CPUS.to_vec();
    cpus.push(host_cores());
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

fn main() -> ExitCode {
    let args: Result<Vec<u32>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let cpus = match args {
        Ok(list) if !list.is_empty() => list,
        Ok(_) => default_cpus(),
        Err(e) => {
            eprintln!("kbench: CPU counts must be numbers: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "in-kernel stress, magazine vs baseline (ops/s over all CPUs; wall = mag / base ops/s; \
         alloc = base / mag allocator cycles per op; host cores: {})",
        host_cores()
    );
    println!(
        "{:<8} {:>4} {:>13} {:>13} {:>7} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "phase",
        "cpus",
        "baseline",
        "magazine",
        "wall",
        "alloc",
        "hit_rate",
        "acq/mag",
        "acyc(base)",
        "acyc(mag)"
    );
    for smp in cpus {
        match stress_records(smp) {
            Ok(records) => print_rows(smp, &records),
            Err(e) => {
                eprintln!("kbench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = magazine_size_table() {
        eprintln!("kbench: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
