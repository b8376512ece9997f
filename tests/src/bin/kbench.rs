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
//! Then the magazine-size table: the stress suite on a 2-node NUMA machine (-smp 4, 1G), with
//! adaptive magazines and pinned at each of [`FIXED_SIZES`] (`mag=`), [`SIZE_ROUNDS`] boots
//! of each, interleaved so that the host's drift falls on every configuration alike. Per
//! phase in magazine mode, medians over the boots: nanoseconds per operation inside the
//! allocator, global and depot lock acquisitions per 1000 operations; the sizes the adaptive
//! depots ended at most often; and adaptive's time over the best fixed size's (the target is
//! at most 1.10). Single boots are too noisy for that ratio under TCG.
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
/// Boots of each configuration in the magazine-size table.
const SIZE_ROUNDS: usize = 5;

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
struct SizeFigures {
    ns: f64,
    global: f64,
    depot: f64,
    sizes: String,
}

/// One boot: its `STAT` records and its TSC's MHz.
type BootRecords = (Vec<Record>, f64);

fn size_figures((records, mhz): &BootRecords, phase: &str) -> SizeFigures {
    let v = |key| value(records, phase, "magazine", key);
    let ops = v("ops");
    let sizes = records
        .iter()
        .find(|r| r["phase"] == phase && r["mode"] == "magazine")
        .map_or(String::from("?"), |r| r["mag_sizes"].clone());
    SizeFigures {
        ns: v("alloc_cycles_per_op") * 1000.0 / mhz,
        global: v("lock_acq") * 1000.0 / ops,
        depot: v("depot_acq") * 1000.0 / ops,
        sizes,
    }
}

/// The medians of one configuration's figures over its boots (the most frequent sizes).
fn median_figures(boots: &[BootRecords], phase: &str) -> SizeFigures {
    let all: Vec<SizeFigures> = boots.iter().map(|b| size_figures(b, phase)).collect();
    let median_of = |f: fn(&SizeFigures) -> f64| median(all.iter().map(f).collect());
    let mut sizes: Vec<&str> = all.iter().map(|f| f.sizes.as_str()).collect();
    sizes.sort_unstable();
    let most_frequent = sizes
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| run.len())
        .map_or("?", |run| run[0]);
    SizeFigures {
        ns: median_of(|f| f.ns),
        global: median_of(|f| f.global),
        depot: median_of(|f| f.depot),
        sizes: most_frequent.to_owned(),
    }
}

/// The median of `values` (the mean of the middle two for an even count; NaN for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `ns/g/d` of one cell.
fn cell(f: &SizeFigures) -> String {
    format!("{:.0}/{:.2}/{:.1}", f.ns, f.global, f.depot)
}

/// The adaptive-versus-fixed table at 2 nodes (see the crate docs).
fn magazine_size_table() -> Result<(), String> {
    let configs: Vec<String> = std::iter::once("test=stress".to_owned())
        .chain(FIXED_SIZES.map(|size| format!("test=stress mag={size}")))
        .collect();
    let mut boots: Vec<Vec<BootRecords>> = vec![Vec::new(); configs.len()];
    for _ in 0..SIZE_ROUNDS {
        for (cmdline, runs) in configs.iter().zip(&mut boots) {
            runs.push(stress_boot(4, "1G", 2, cmdline)?);
        }
    }
    println!();
    println!(
        "magazine sizes at 2 nodes, -smp 4 (magazine mode, medians of {SIZE_ROUNDS} boots each; \
         ns = allocator ns/op; g, d = global, depot acquisitions per 1000 ops; vs best = \
         adaptive ns / best fixed ns)"
    );
    print!("{:<8} {:>22} {:>9}", "phase", "adaptive ns/g/d", "sizes");
    for size in FIXED_SIZES {
        print!(" {:>20}", format!("mag={size} ns/g/d"));
    }
    println!(" {:>8}", "vs best");
    for phase in NUMA_PHASES {
        let adaptive = median_figures(&boots[0], phase);
        print!("{phase:<8} {:>22} {:>9}", cell(&adaptive), adaptive.sizes);
        let mut best = f64::INFINITY;
        for runs in &boots[1..] {
            let fixed = median_figures(runs, phase);
            best = best.min(fixed.ns);
            print!(" {:>20}", cell(&fixed));
        }
        println!(" {:>8.2}", adaptive.ns / best);
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
