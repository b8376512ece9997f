//! Physical frame allocation: a global bitmap feeding per-CPU magazines through a depot.
//!
//! # Big theory statement
//!
//! ## What and why
//! Every core allocates and frees 4 KiB frames. One spin lock around one bitmap (the seed
//! allocator, kept here as [`Mode::Baseline`]) makes every allocation a shared cache-line
//! write and serialises all cores. Following Bonwick & Adams, "Magazines and Vmem: Extending
//! the Slab Allocator to Many CPUs and Arbitrary Resources" (USENIX 2001), each CPU instead
//! keeps a small cache of frames and touches shared state only once per magazine of frames.
//!
//! ## Layers (top to bottom)
//! ```text
//!   CPU 0            CPU 1                  CPU n        per-CPU caches (cache.rs)
//! [loaded|prev]   [loaded|prev]    ...   [loaded|prev]   one spin lock each, owner-only
//!        \              |                     /
//!         +------- depot (depot.rs) ---------+            full magazines, spin::Mutex, capped
//!                       |
//!          global bitmap (global.rs)                      BitAlloc16M, spin::Mutex, 64 GiB
//! ```
//! - **Per-CPU cache** ([`CpuCache`]): a *loaded* and a *previous* magazine
//!   ([`MAGAZINE_SIZE`] frames each). Alloc pops from loaded, free pushes onto it. When loaded
//!   is empty (full) and previous is full (empty), they swap; so a CPU that alternates around
//!   a magazine boundary never leaves its cache.
//! - **Depot** (`depot.rs`): a stack of full magazines shared by all CPUs. A CPU with both
//!   magazines empty takes one; a CPU with both full leaves one, up to a cap on cached frames
//!   (`set_depot_cap`); past it the magazine is spilled to the bitmap.
//! - **Global** (`global.rs`): a `bitmap-allocator` `BitAlloc16M` of every managed frame and a
//!   table of managed spans, in a `spin::Mutex` (wrapped by `lock.rs` to count and time its
//!   contention) inside the `static` allocator. A refill or a spill moves a whole magazine
//!   under one lock hold. Contiguous, aligned runs come only from here.
//!
//! ## Invariants
//! 1. A frame is in exactly one place: free in the bitmap, in one magazine (a CPU's or the
//!    depot's), or allocated. Hence at every quiescent point
//!    `free + cached + allocated == managed` ([`Stats::is_balanced`]); the three terms are
//!    counted independently (bitmap counter, magazine counts, per-CPU alloc/free totals).
//! 2. A CPU's previous magazine is always full or empty.
//! 3. Frames have no home CPU: a frame freed on another CPU goes into that CPU's magazine.
//! 4. Only the owning CPU touches its cache, through a [`CpuGuard`]; the one exception is a
//!    drain, which takes the same per-CPU lock.
//! 5. An allocation fails only when no free frame exists anywhere: before failing it drains
//!    every cache and the depot with cache fills blocked, then retries (`reclaim.rs`).
//! 6. Frame 0 and frames outside the ranges given to `add_ranges` are never handed out;
//!    overlapping or repeated ranges never free a frame twice.
//! 7. In checked mode (feature `checked`), a free of a frame that is not allocated, or not
//!    managed, is refused before it reaches any magazine, naming frame and CPU, with the
//!    allocator unchanged ([`FreeError`]).
//! 8. After `set_mode(Mode::Baseline)` returns, every cache is empty and stays empty: each
//!    path that adds frames to a cache re-reads the mode under the cache lock that the
//!    switch's drain also takes.
//!
//! ## Lock order
//! `CpuCache -> Depot -> Global`. A path holds at most one cache lock (drains and reclaims
//! visit caches one at a time, never while holding the depot or global lock). The depot and
//! global locks nest only when the depot is drained: each magazine is spilled into the bitmap
//! before the depot lock is released, so no frame is ever outside every lock, where a
//! concurrent reclaim could miss it. The global lock is taken once per refill,
//! spill, contiguous request or baseline operation (a reclaim, when memory runs out, takes it
//! once per drained cache or depot magazine, then once to retry).
//!
//! ## Interrupt rules
//! All locks spin. In the kernel every call runs with interrupts off: the fast path because
//! its [`CpuGuard`] proves it; `drain_*`, `set_mode`, `stats` and `add_ranges` because an
//! interrupt handler allocating on the same CPU while the interrupted code holds a lock would
//! deadlock. Never call the allocator from an NMI.
//!
//! ## Counters
//! Per CPU: allocs, frees, hits, misses, depot gets and puts, refills, spills, drains (and
//! contiguous runs, failures). Per lock (global, depot): acquisitions, contended acquisitions,
//! cycles waiting, longest hold, timed by the clock given to `set_clock`. Counters are cheap to
//! update, inexact to read while running: each has one writer at a time, so an update is a
//! plain load and store; readers sum them without stopping anyone.
//!
//! ## Magazine size
//! [`MAGAZINE_SIZE`] = 32, chosen by a sweep of 8 to 128 with `mm/benches/compare.rs`
//! (`MM_MAGAZINE_SIZE=<n> MM_BENCH_BASELINE=0 MM_BENCH_RUNS=9 cargo bench -p mm --bench
//! compare`, host with 2 vCPUs): at 8 the bulk and cross workloads overflow the caches and the
//! depot and keep taking the global lock (18 and 62 acquisitions per 1000 operations at 2
//! threads), at 16 cross still takes it 28 times per 1000; from 32 on the global lock drops
//! out (under 0.25 per 1000 at every thread count) and bulk and cross cost about 4 ns per
//! operation at 2 threads; 64 and 128 gain under 1 ns while parking twice or four times as
//! many frames. The full table is in the constant's documentation.
//!
//! ## Performance (host, 2 vCPUs, `cargo bench -p mm`, magazine size 32)
//! Wall time per operation over all threads, locks timed with the TSC; each cell is the median
//! of three invocations, each reporting the median of 5 runs:
//! ```text
//! workload threads  baseline ns/op  magazine ns/op  speedup
//! bulk           1            21.2             7.0     3.0x
//! bulk           2            79.1             4.3    18.4x
//! bulk           4           139.6             6.5    21.5x
//! bulk           8           239.4             5.3    45.2x
//! repeat         1            22.4             6.3     3.6x
//! repeat         2            81.8             3.1    26.4x
//! repeat         4           134.9             3.5    38.5x
//! repeat         8           246.2             3.6    68.4x
//! cross          1            25.1             7.2     3.5x
//! cross          2            65.3             4.6    14.2x
//! cross          4            81.7             5.9    13.8x
//! cross          8            95.6             5.9    16.2x
//! ```
//! Without lock timing (`MM_BENCH_CLOCK=0`) the 2-thread speedups were 16x, 20x to 23x and
//! 12x to 15x. The host is a shared VM and its state shifts: in two early invocations out of
//! about fifteen, the 2-thread cross baseline ran at 24 to 27 ns/op and magazine cross at 8 to
//! 10 ns/op, so cross at 2 threads fell to 2.8x and 2.9x (bulk and repeat at 2 threads stayed
//! at 5x or more); every later invocation gave 5x to 24x. The magazine mode's global lock
//! rate (under 0.25 acquisitions per 1000 operations) does not vary. At 4 and 8 threads the
//! two vCPUs are oversubscribed, which punishes the baseline's spin lock (a preempted holder
//! stalls everyone) more than a kernel CPU, never preempted holding it, would see.
//! Instructions per alloc+free pair served from a magazine (`cargo bench -p mm --bench
//! instructions` or `mm/benches/instructions.sh`, callgrind, loop overhead included): 50
//! without `checked`, 59 with it (`mm/benches/instructions.sh 100000 --features checked`).
//! Before the cache table (`raw::CacheTable`) replaced a `spin::Once`, they were 57 and 64.
//!
//! ## Unsafe code
//! Only `raw.rs`: the [`CpuGuard`] contract, the per-CPU cache lock (one `xchg` to take, a
//! plain store to release: two or three instructions per alloc+free pair fewer than
//! `spin::Mutex`) and the clock's function pointer cell. Every other module is
//! `#![deny(unsafe_code)]`.
//!
//! ## Testing
//! - `cargo test -p mm --features checked`: unit tests of every layer and error path, a
//!   proptest model-based test (`tests/model.rs`), the public contract at full size
//!   (`tests/api.rs`) and an 8-thread stress with duplicate and loss detection
//!   (`tests/stress.rs`); also passes without `checked` (the model test then skips).
//! - `RUSTFLAGS="--cfg loom" cargo test -p mm --features checked --release --test loom`: loom
//!   models of the depot exchange, remote drains racing the owner, exhaustion with frames
//!   spread over caches (one CPU, then two at once), a reclaim racing a depot drain and the
//!   switch to baseline mode (about 4 s in all).
#![no_std]
#![deny(unsafe_code)]

#[cfg(any(test, loom))]
extern crate std;

mod allocator;
mod cache;
mod checked;
mod depot;
mod engine;
mod error;
mod fastpath;
mod frame;
mod global;
mod lock;
mod magazine;
mod nodes;
mod numa;
mod ranges;
#[allow(unsafe_code)]
mod raw;
mod reclaim;
mod stats;
mod sync;
mod topology;

#[cfg(all(test, not(loom)))]
mod fastpath_tests;
#[cfg(all(test, not(loom)))]
mod reclaim_tests;
#[cfg(all(test, not(loom)))]
mod testutil;

pub use allocator::FrameAllocator;
pub use cache::{CpuCache, REMOTE_BATCH};
pub use depot::DEPOT_SLOTS;
pub use error::{
    AllocError, AttachError, FreeError, FreeErrorKind, LayoutError, MagazineSizeError,
};
pub use frame::{FRAME_SIZE, Frame, PhysRange, first_overlap};
pub use magazine::{DEFAULT_MAGAZINE_SIZE, MAGAZINE_SIZE, MAX_MAGAZINE_SIZE, MIN_MAGAZINE_SIZE};
pub use raw::CpuGuard;
pub use stats::{AddReport, CpuStats, LockStats, Mode, NodeStats, Stats};
pub use topology::{
    CpuAffinity, Distances, MAX_AFFINITY_RANGES, MAX_NODES, MemoryAffinity, NodeLayout,
    TopologyError,
};

/// The generic layers, exposed for loom models, which need a bitmap small enough to explore.
#[cfg(loom)]
pub mod model {
    pub use crate::checked::{FrameCheck, InUseMap, LimitCheck};
    pub use crate::engine::Engine;
    pub use bitmap_allocator::{BitAlloc16, BitAlloc256};
}
