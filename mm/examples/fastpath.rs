//! Runs K alloc+free pairs served from a magazine, for counting instructions of the fast path.
//!
//! `fastpath K` warms one CPU's cache, then allocates and frees one frame K times. Under
//! `valgrind --tool=callgrind`, the difference between the instruction totals of a run with
//! 2K pairs and one with K pairs, divided by K, is the cost of one pair with setup cancelled
//! out: `mm/benches/instructions.sh` does exactly that.
#![allow(unsafe_code)]

use mm::{CpuCache, CpuGuard, FRAME_SIZE, FrameAllocator, PhysRange};

/// The one host thread plays CPU 0.
struct Cpu0;

// SAFETY: the program is single-threaded, so only this thread ever plays CPU 0.
unsafe impl CpuGuard for Cpu0 {
    fn cpu(&self) -> usize {
        0
    }
}

static ALLOCATOR: FrameAllocator = FrameAllocator::new();
static CACHE: CpuCache = CpuCache::new();
static CACHES: [&CpuCache; 1] = [&CACHE];

fn main() {
    let pairs: u64 = match std::env::args().nth(1).map(|arg| arg.parse()) {
        Some(Ok(pairs)) => pairs,
        _ => {
            eprintln!("usage: fastpath <pairs>");
            std::process::exit(2);
        }
    };
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
    println!("{pairs} pairs, {} hits", stats.cpu.hits);
}

/// Reports a failed timed operation; out of line so the loop carries no error handling.
#[cold]
#[inline(never)]
fn fail(what: &str) -> ! {
    eprintln!("fastpath: {what}");
    std::process::exit(1);
}
