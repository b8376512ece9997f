//! Baseline (one global lock, the seed's design) against magazine mode with adaptive magazine
//! sizes and with sizes pinned to 8, 32 and 128, in one run.
//!
//! `cargo bench -p mm --bench compare` runs three workloads at 1, 2, 4 and 8 threads, each
//! thread playing one CPU of one shared `static` allocator, in each configuration, and prints
//! one line per configuration, then adaptive against the best fixed size per row:
//! - **bulk**: each thread allocates 1024 frames, then frees them, repeatedly;
//! - **repeat**: each thread allocates and frees the same frame, repeatedly;
//! - **cross**: each thread allocates 1024 frames and hands them to the next thread in a
//!   ring, then frees the batch its predecessor handed it (at 1 thread, its own), repeatedly:
//!   every frame is freed on another CPU than the one that allocated it.
//!
//! `ns/op` is wall time divided by all operations of all threads (inverse throughput), the
//! median of several runs; `size` is node 0's magazine size after the runs (adaptive starts
//! each row from the default size). The host has 2
//! cores: at 4 and 8 threads CPUs are oversubscribed, and a preempted holder of the baseline's
//! spin lock stalls every other thread (a kernel CPU is never preempted while holding it).
//! Also printed: the fastest run, the share of operations served by the CPU's own magazines,
//! and global-bitmap and depot lock acquisitions per 1000 operations.
//!
//! Knobs: arguments `bulk`, `repeat`, `cross` select workloads; `MM_BENCH_RUNS=<n>` sets the
//! runs per configuration; `MM_BENCH_BASELINE=0` skips baseline mode; `MM_BENCH_CLOCK=0`
//! leaves the locks untimed (by default they are timed with the TSC, as in the kernel, which
//! costs two TSC reads per global lock hold, mostly in baseline mode). Fixed sizes are pinned
//! at run time (`set_magazine_size`); `MM_MAGAZINE_SIZE=<n>` at build time changes the size
//! adaptive depots start from.
#![allow(unsafe_code)]

use std::sync::Barrier;
use std::time::Instant;

use mm::{
    CpuCache, CpuGuard, DEFAULT_MAGAZINE_SIZE, FRAME_SIZE, Frame, FrameAllocator, Mode, PhysRange,
};

const MAX_THREADS: usize = 8;
const THREAD_COUNTS: [usize; 4] = [1, 2, 4, 8];
/// Frames per thread per bulk or cross round.
const BATCH: usize = 1024;
/// Operations per baseline run, shared out among its threads.
const OPS: usize = 1 << 21;
/// Operations per magazine-mode run: four times more, so a run lasts tens of milliseconds
/// rather than a few (shorter runs measured the host's scheduler more than the allocator).
const MAG_OPS: usize = 1 << 23;
/// Timed runs per configuration (override with `MM_BENCH_RUNS`); the median is reported,
/// and for magazine mode also the minimum, which other load on the host can only raise.
const RUNS: usize = 7;
/// The fixed magazine sizes adaptive mode is compared with.
const FIXED_SIZES: [usize; 3] = [8, 32, 128];

static ALLOCATOR: FrameAllocator = FrameAllocator::new();

/// A thread playing CPU `.0`.
struct BenchCpu(usize);

// SAFETY: every run gives each of its threads a distinct CPU number, and runs do not overlap.
unsafe impl CpuGuard for BenchCpu {
    fn cpu(&self) -> usize {
        self.0
    }
}

/// The time-stamp counter, the kernel's lock clock too.
#[cfg(target_arch = "x86_64")]
fn cycles() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU (Intel SDM Vol. 2B, "RDTSC") and only reads
    // the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A monotonic nanosecond count where there is no TSC.
#[cfg(not(target_arch = "x86_64"))]
fn cycles() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Bulk,
    Repeat,
    Cross,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Bulk => "bulk",
            Workload::Repeat => "repeat",
            Workload::Cross => "cross",
        }
    }
}

fn alloc(cpu: usize) -> Frame {
    match ALLOCATOR.alloc(&BenchCpu(cpu)) {
        Ok(frame) => frame,
        Err(e) => panic!("bench: {e}"),
    }
}

fn free(cpu: usize, frame: Frame) {
    if let Err(e) = ALLOCATOR.free(&BenchCpu(cpu), frame) {
        panic!("bench: {e}");
    }
}

/// One thread's share of a workload; `inboxes` pass batches to the next thread.
fn work(workload: Workload, cpu: usize, threads: usize, ops: usize, inboxes: &[Inbox]) {
    match workload {
        Workload::Repeat => {
            for _ in 0..ops / 2 {
                free(cpu, alloc(cpu));
            }
        }
        Workload::Bulk => {
            let mut held = Vec::with_capacity(BATCH);
            for _ in 0..ops / (2 * BATCH) {
                held.extend((0..BATCH).map(|_| alloc(cpu)));
                held.drain(..).for_each(|f| free(cpu, f));
            }
        }
        Workload::Cross => {
            for _ in 0..ops / (2 * BATCH) {
                let batch: Vec<Frame> = (0..BATCH).map(|_| alloc(cpu)).collect();
                inboxes[(cpu + 1) % threads].lock().unwrap().push(batch);
                // Each thread receives as many batches as it sends, so this wait ends; it
                // also keeps every thread within one batch of its predecessor.
                let theirs = loop {
                    if let Some(batch) = inboxes[cpu].lock().unwrap().pop() {
                        break batch;
                    }
                    std::thread::yield_now();
                };
                theirs.into_iter().for_each(|f| free(cpu, f));
            }
        }
    }
}

/// Batches of frames handed to one thread.
type Inbox = std::sync::Mutex<Vec<Vec<Frame>>>;

/// What one timed run measured.
#[derive(Clone, Copy)]
struct Sample {
    ns_per_op: f64,
    hit_rate: f64,
    global_per_kop: f64,
    depot_per_kop: f64,
}

/// The median and minimum of a configuration's runs.
struct Summary {
    median: Sample,
    min_ns_per_op: f64,
}

fn run(workload: Workload, threads: usize, mode: Mode) -> Sample {
    ALLOCATOR.set_mode(mode);
    ALLOCATOR.drain_all();
    ALLOCATOR.reset_counters();
    let total = if mode == Mode::Baseline { OPS } else { MAG_OPS };
    let per_thread = total / threads;
    let start = Barrier::new(threads + 1);
    let inboxes: Vec<Inbox> = (0..threads).map(|_| Default::default()).collect();
    // Each thread times itself: the run spans the first start to the last end (a clock read
    // by the main thread could be late if the scheduler preempts it at the barrier).
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|cpu| {
                let (start, inboxes) = (&start, &inboxes);
                s.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    work(workload, cpu, threads, per_thread, inboxes);
                    (began, Instant::now())
                })
            })
            .collect();
        start.wait();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    let wall = last - first;
    let stats = ALLOCATOR.stats();
    assert!(stats.is_balanced() && stats.allocated == 0, "{stats:?}");
    let ops = (stats.cpu.allocs + stats.cpu.frees) as f64;
    Sample {
        ns_per_op: wall.as_nanos() as f64 / ops,
        hit_rate: stats.cpu.hits as f64 / ops,
        global_per_kop: stats.global_lock.acquisitions as f64 * 1000.0 / ops,
        depot_per_kop: stats.depot_lock.acquisitions as f64 * 1000.0 / ops,
    }
}

/// How the allocator runs in one configuration.
#[derive(Clone, Copy, PartialEq)]
enum Config {
    /// Every operation takes the global lock.
    Baseline,
    /// Magazines, each depot adapting its size (from the default, at the start of each row).
    Adaptive,
    /// Magazines pinned to this size.
    Fixed(usize),
}

impl Config {
    fn name(self) -> String {
        match self {
            Config::Baseline => "baseline".to_string(),
            Config::Adaptive => "adaptive".to_string(),
            Config::Fixed(n) => format!("fixed {n}"),
        }
    }

    /// Puts the allocator in this configuration; adaptive depots resume from `adaptive_size`.
    fn apply(self, adaptive_size: usize) {
        let mode = if self == Config::Baseline {
            Mode::Baseline
        } else {
            Mode::Magazine
        };
        ALLOCATOR.set_mode(mode);
        if let Config::Fixed(n) = self {
            ALLOCATOR.set_magazine_size(Some(n)).unwrap();
        } else {
            ALLOCATOR.set_magazine_size(Some(adaptive_size)).unwrap();
            ALLOCATOR.set_magazine_size(None).unwrap();
        }
    }

    fn mode(self) -> Mode {
        if self == Config::Baseline {
            Mode::Baseline
        } else {
            Mode::Magazine
        }
    }
}

/// Runs every configuration of one row `runs` times, interleaved (run 1 of each, then run 2
/// of each..., each round in a rotated order), so that load from elsewhere on the host falls
/// on all of them alike. The
/// adaptive configuration starts the row at the default size and keeps what it learnt from
/// one of its runs to the next. Returns each configuration's summary and adaptive's size.
fn row(
    workload: Workload,
    threads: usize,
    configs: &[Config],
    runs: usize,
) -> (Vec<Summary>, usize) {
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    let mut adaptive_size = DEFAULT_MAGAZINE_SIZE;
    for round in 0..runs {
        // Each round starts at another configuration, so none always follows the same one
        // (right after a baseline run the host is still catching up).
        for i in 0..configs.len() {
            let k = (round + i) % configs.len();
            let config = configs[k];
            config.apply(adaptive_size);
            samples[k].push(run(workload, threads, config.mode()));
            if config == Config::Adaptive {
                adaptive_size = ALLOCATOR.node_stats(0).magazine_size;
            }
        }
    }
    let summaries = samples
        .into_iter()
        .map(|mut samples| {
            samples.sort_by(|a, b| a.ns_per_op.total_cmp(&b.ns_per_op));
            Summary {
                median: samples[runs / 2],
                min_ns_per_op: samples[0].ns_per_op,
            }
        })
        .collect();
    (summaries, adaptive_size)
}

/// A positive number from environment variable `name`, else `default`.
fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => match text.parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("bench: {name} must be a positive number, not {text:?}"),
        },
        Err(_) => default,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters workloads by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let caches: Vec<&'static CpuCache> = (0..MAX_THREADS)
        .map(|_| &*Box::leak(Box::new(CpuCache::new())))
        .collect();
    ALLOCATOR.add_ranges(&[PhysRange::new(FRAME_SIZE, (1 << 20) * FRAME_SIZE)]);
    ALLOCATOR.attach_caches(Box::leak(caches.into_boxed_slice()));
    // `MM_BENCH_CLOCK=0` leaves the locks untimed (no TSC reads inside the global lock).
    if std::env::var("MM_BENCH_CLOCK").map_or(true, |v| v != "0") {
        ALLOCATOR.set_clock(cycles);
    }
    run(Workload::Repeat, 2, Mode::Magazine);
    let runs = env_number("MM_BENCH_RUNS", RUNS);
    // `MM_BENCH_BASELINE=0` skips baseline mode.
    let with_baseline = std::env::var("MM_BENCH_BASELINE").map_or(true, |v| v != "0");
    let mut configs = vec![Config::Adaptive];
    configs.extend(FIXED_SIZES.map(Config::Fixed));
    if with_baseline {
        configs.insert(0, Config::Baseline);
    }
    println!(
        "default magazine size {DEFAULT_MAGAZINE_SIZE}, {OPS} ops per baseline run, {MAG_OPS} per magazine run, median of {runs} runs"
    );
    println!(
        "{:<8} {:>7} {:<9} {:>8} {:>10} {:>8} {:>8} {:>9} {:>5}",
        "workload",
        "threads",
        "config",
        "ns/op",
        "min ns/op",
        "hits",
        "glob/kop",
        "depot/kop",
        "size"
    );
    let mut verdicts = Vec::new();
    for workload in [Workload::Bulk, Workload::Repeat, Workload::Cross] {
        if !filter.is_empty() && !filter.iter().any(|f| f == workload.name()) {
            continue;
        }
        for threads in THREAD_COUNTS {
            let (summaries, adaptive_size) = row(workload, threads, &configs, runs);
            let mut line = Vec::new();
            for (&config, s) in configs.iter().zip(&summaries) {
                let size = match config {
                    Config::Baseline => "-".to_string(),
                    Config::Adaptive => adaptive_size.to_string(),
                    Config::Fixed(n) => n.to_string(),
                };
                println!(
                    "{:<8} {:>7} {:<9} {:>8.1} {:>10.1} {:>7.1}% {:>8.2} {:>9.2} {:>5}",
                    workload.name(),
                    threads,
                    config.name(),
                    s.median.ns_per_op,
                    s.min_ns_per_op,
                    s.median.hit_rate * 100.0,
                    s.median.global_per_kop,
                    s.median.depot_per_kop,
                    size,
                );
                line.push((config, s.median.ns_per_op, s.min_ns_per_op));
            }
            let row = line;
            verdicts.push((workload, threads, row));
        }
    }
    println!();
    println!("adaptive against the best fixed size (target: within 10%); medians, then minima");
    for (workload, threads, row) in verdicts {
        let find = |c: Config| row.iter().find(|r| r.0 == c).copied();
        let Some((_, adaptive, adaptive_min)) = find(Config::Adaptive) else {
            continue;
        };
        let fixed: Vec<(usize, f64, f64)> = FIXED_SIZES
            .iter()
            .filter_map(|&n| find(Config::Fixed(n)).map(|(_, m, lo)| (n, m, lo)))
            .collect();
        let best = fixed.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let best_min = fixed.iter().map(|f| f.2).fold(f64::INFINITY, f64::min);
        let ratio = adaptive / best.1;
        let speedup =
            find(Config::Baseline).map_or("-".to_string(), |b| format!("{:.1}x", b.1 / adaptive));
        println!(
            "{:<8} {:>2} threads: adaptive {:>6.1} ns/op, best fixed ({:>3}) {:>6.1}: {:>5.2}x {:<6} | minima {:>5.1} vs {:>5.1}: {:>5.2}x | baseline/adaptive {}",
            workload.name(),
            threads,
            adaptive,
            best.0,
            best.1,
            ratio,
            if ratio <= 1.10 { "ok" } else { "SLOWER" },
            adaptive_min,
            best_min,
            adaptive_min / best_min,
            speedup,
        );
    }
}
