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

type Record = BTreeMap<String, String>;

/// The `STAT` records of one stress boot at `smp` CPUs, or why it failed.
fn stress_records(smp: u32) -> Result<Vec<Record>, String> {
    let mem = if smp > 4 { "1G" } else { "512M" };
    let out = boot(&Boot {
        smp,
        mem,
        cmdline: "test=stress",
        timeout: TIMEOUT,
        ..Default::default()
    });
    if out.status != Status::Passed {
        return Err(format!("-smp {smp}: {:?}\n{}", out.status, out.serial));
    }
    Ok(out.records("STAT "))
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
    ExitCode::SUCCESS
}
