//! Instructions per alloc+free pair on the magazine fast path, counted by callgrind.
//!
//! `cargo bench -p mm --bench instructions` (also part of `cargo bench -p mm`, hence of
//! `just bench`) runs this binary twice under `valgrind --tool=callgrind`, once with K and once
//! with 2K pairs (K = 100000, or the first argument), and prints `(I(2K) - I(K)) / K`: the cost
//! of one pair with setup and teardown cancelled out, loop overhead included. Add
//! `--features checked` for the checked build. Without valgrind it says so and exits cleanly.
//! `mm/benches/instructions.sh` is the same measurement from the shell.
//!
//! Run as `instructions --pairs K`, the binary is the measured program: it warms one CPU's
//! cache, then allocates and frees one frame K times, every pair served by the loaded magazine.
#![allow(unsafe_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use mm::{CpuCache, CpuGuard, FRAME_SIZE, FrameAllocator, PhysRange};

/// Pairs in the shorter of the two counted runs, unless the first argument says otherwise.
const DEFAULT_PAIRS: u64 = 100_000;
/// The budget for one pair served from a magazine.
const TARGET: u64 = 60;

/// The one host thread plays CPU 0.
struct Cpu0;

// SAFETY: the measured program is single-threaded, so only this thread ever plays CPU 0.
unsafe impl CpuGuard for Cpu0 {
    fn cpu(&self) -> usize {
        0
    }
}

static ALLOCATOR: FrameAllocator = FrameAllocator::new();
static CACHE: CpuCache = CpuCache::new();
static CACHES: [&CpuCache; 1] = [&CACHE];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, pairs] = args.as_slice()
        && flag == "--pairs"
    {
        match pairs.parse() {
            Ok(pairs) => run_pairs(pairs),
            Err(_) => fail("--pairs needs a number"),
        }
        return;
    }
    // `cargo bench` passes `--bench`; a plain number sets K.
    let pairs = match args.iter().find(|a| !a.starts_with('-')) {
        Some(text) => text.parse().unwrap_or_else(|_| fail("K must be a number")),
        None => DEFAULT_PAIRS,
    };
    count_instructions(pairs);
}

/// The measured program: `pairs` alloc+free pairs after one warm-up pair.
fn run_pairs(pairs: u64) {
    ALLOCATOR.add_ranges(&[PhysRange::new(FRAME_SIZE, 4096 * FRAME_SIZE)]);
    ALLOCATOR.attach_caches(&CACHES);
    // Warm-up: the first alloc refills the loaded magazine; later pairs are pure hits.
    let first = ALLOCATOR.alloc(&Cpu0).expect("frames were added");
    ALLOCATOR.free(&Cpu0, first).expect("frame was allocated");
    for _ in 0..pairs {
        // One pair: both calls inline here, as in a kernel caller.
        let Ok(frame) = ALLOCATOR.alloc(&Cpu0) else {
            fail("alloc failed")
        };
        if ALLOCATOR.free(&Cpu0, frame).is_err() {
            fail("free failed");
        }
    }
    let stats = ALLOCATOR.stats();
    assert_eq!(
        stats.cpu.misses, 1,
        "every timed pair must hit the magazine"
    );
}

/// Runs this binary under callgrind with `pairs` and `2 * pairs` pairs; prints the cost of one.
fn count_instructions(pairs: u64) {
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !valgrind.is_ok_and(|s| s.success()) {
        println!("instructions: valgrind not found, fast-path instruction count skipped");
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| fail("cannot find own executable"));
    let once = callgrind_total(&exe, pairs);
    let twice = callgrind_total(&exe, 2 * pairs);
    let per_pair = (twice - once) / pairs;
    let build = if cfg!(feature = "checked") {
        "checked"
    } else {
        "unchecked"
    };
    println!(
        "instructions ({build} build): {once} for {pairs} pairs, {twice} for {} pairs",
        2 * pairs
    );
    let verdict = if per_pair < TARGET {
        "under"
    } else {
        "NOT under"
    };
    println!("instructions per alloc+free pair: {per_pair} ({verdict} the target of {TARGET})");
}

/// The instructions callgrind counts for one run of `exe --pairs pairs`.
fn callgrind_total(exe: &Path, pairs: u64) -> u64 {
    let out = std::env::temp_dir().join(format!("mm-fastpath.{}.{pairs}", std::process::id()));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--pairs", &pairs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        fail("the callgrind run failed");
    }
    let text = std::fs::read_to_string(&out).unwrap_or_else(|_| fail("no callgrind output"));
    let _ = std::fs::remove_file(&out);
    text.lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|total| total.trim().parse().ok())
        .unwrap_or_else(|| fail("no summary line in the callgrind output"))
}

/// Reports a failure; out of line so the measured loop carries no error handling.
#[cold]
#[inline(never)]
fn fail(what: &str) -> ! {
    eprintln!("instructions: {what}");
    std::process::exit(1);
}
