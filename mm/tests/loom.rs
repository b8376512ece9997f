//! Loom models of the allocator's concurrency, on a 16-frame bitmap with 2-frame magazines
//! (adaptive between 1 and 2), 2-slot depots and at most 2 nodes (the loom build's sizes). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mm --features checked --release --test loom`.
#![cfg(loom)]
#![allow(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use mm::model::{BitAlloc16, Engine, InUseMap};
use mm::{CpuCache, CpuGuard, FRAME_SIZE, Frame, MAGAZINE_SIZE, Mode, PhysRange};

type Model = Engine<BitAlloc16, InUseMap<1>>;

/// Preemption bound of the largest model (two CPUs reclaiming at once).
const PREEMPTIONS: usize = 5;

struct Cpu(usize);

// SAFETY: each model thread plays its own CPU number; the main thread uses a CPU only before
// spawning or after joining the thread that plays it.
unsafe impl CpuGuard for Cpu {
    fn cpu(&self) -> usize {
        self.0
    }
}

/// An engine managing frames `1..=frames`, with `cpus` caches.
fn engine(frames: u64, cpus: usize) -> Arc<Model> {
    assert_eq!(MAGAZINE_SIZE, 2, "loom builds use 2-frame magazines");
    let e = Model::new();
    e.add_ranges(&[PhysRange::new(FRAME_SIZE, (frames + 1) * FRAME_SIZE)]);
    let caches: Vec<&'static CpuCache> = (0..cpus)
        .map(|_| &*Box::leak(Box::new(CpuCache::new())))
        .collect();
    e.try_attach_caches(Box::leak(caches.into_boxed_slice()))
        .unwrap();
    Arc::new(e)
}

/// Runs `f` under loom, exploring every interleaving (these models are small enough for that).
fn model(f: impl Fn() + Sync + Send + 'static) {
    bounded_model(None, f);
}

/// Runs `f` under loom with at most `preemptions` forced thread switches per execution, for
/// models whose full state space would take too long.
fn bounded_model(preemptions: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemptions;
    builder.check(f);
}

fn assert_all_free(e: &Model, managed: u64) {
    e.drain_all();
    let s = e.stats();
    assert!(s.is_balanced(), "{s:?}");
    assert_eq!((s.free, s.allocated, s.managed), (managed, 0, managed));
    assert_eq!(e.in_use_frames(), Some(0));
}

/// CPU 0 takes all 8 frames of `e`, then frees six of them on another thread (filling its
/// magazines and exchanging full ones with the depot); returns that thread and the two kept.
fn cpu0_frees_six_of_eight(e: &Arc<Model>) -> (thread::JoinHandle<()>, Vec<Frame>) {
    let mut held: Vec<Frame> = (0..8).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
    let kept = held.split_off(6);
    let e = e.clone();
    let producer =
        thread::spawn(move || held.into_iter().for_each(|f| e.free(&Cpu(0), f).unwrap()));
    (producer, kept)
}

/// CPU 0 holds every frame and frees six: its two magazines fill and full magazines go to
/// the depot, while CPU 1 allocates and takes them from the depot (or, if it comes first,
/// reclaims them from CPU 0's cache, or fails because nothing is free yet).
#[test]
fn magazine_exchange_with_the_depot() {
    model(|| {
        let e = engine(8, 2);
        let (producer, kept) = cpu0_frees_six_of_eight(&e);
        let taken: Vec<Frame> = (0..2).filter_map(|_| e.alloc(&Cpu(1)).ok()).collect();
        producer.join().unwrap();
        let s = e.stats();
        assert!(s.is_balanced(), "{s:?}");
        assert_eq!(s.allocated, (kept.len() + taken.len()) as u64);
        assert!(taken.iter().all(|f| !kept.contains(f)), "no frame twice");
        for f in kept.into_iter().chain(taken) {
            e.free(&Cpu(1), f).unwrap();
        }
        assert_all_free(&e, 8);
    });
}

/// Remote drains of CPU 0 race CPU 0's own allocs and frees, which cross magazine edges
/// (swaps, refills, depot puts).
#[test]
fn remote_drain_races_the_owner() {
    model(|| {
        let e = engine(6, 1);
        let first = e.alloc(&Cpu(0)).unwrap();
        let owner = {
            let e = e.clone();
            thread::spawn(move || {
                e.free(&Cpu(0), first).unwrap();
                let held: Vec<Frame> = (0..3).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
                held.into_iter().for_each(|f| e.free(&Cpu(0), f).unwrap());
            })
        };
        e.drain_cpu(0);
        e.drain_all();
        owner.join().unwrap();
        assert_all_free(&e, 6);
    });
}

/// Frames sit in both CPUs' caches and the bitmap is empty; CPU 0 asks for all four frames
/// while CPU 1 takes one. Every frame must be handed out exactly once and CPU 0 may not fail
/// while a frame waits in some cache: were CPU 1 allowed to refill a whole magazine from
/// frames CPU 0's reclaim had just drained, one would be stranded in CPU 1's cache.
#[test]
fn exhaustion_with_frames_spread_over_caches() {
    model(|| {
        let e = engine(4, 2);
        // Each CPU refills a 2-frame magazine and keeps one of the two.
        let a0 = e.alloc(&Cpu(0)).unwrap();
        let b0 = e.alloc(&Cpu(1)).unwrap();
        e.free(&Cpu(0), a0).unwrap();
        e.free(&Cpu(1), b0).unwrap();
        assert_eq!(e.stats().free, 0);
        let other = {
            let e = e.clone();
            thread::spawn(move || e.alloc(&Cpu(1)).ok())
        };
        let mut got: Vec<Frame> = (0..4).map_while(|_| e.alloc(&Cpu(0)).ok()).collect();
        got.extend(other.join().unwrap());
        // Five requests for four frames: exactly one fails, whoever loses the race.
        assert_eq!(got.len(), 4, "every frame obtained: {got:?}");
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 4, "no frame twice");
        let s = e.stats();
        assert_eq!((s.free, s.cached, s.allocated), (0, 0, 4));
    });
}

/// While CPU 0 frees into its cache, another thread switches to baseline mode: once the
/// switch returns, no frame may remain in (or later enter) a cache.
#[test]
fn switch_to_baseline_leaves_no_frame_cached() {
    model(|| {
        let e = engine(4, 1);
        let held: Vec<Frame> = (0..2).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
        e.drain_all();
        let owner = {
            let e = e.clone();
            thread::spawn(move || held.into_iter().for_each(|f| e.free(&Cpu(0), f).unwrap()))
        };
        e.set_mode(Mode::Baseline);
        owner.join().unwrap();
        assert_eq!(e.stats().cached, 0);
        assert_all_free(&e, 4);
    });
}

/// Both CPUs run out at once, each reclaiming the other's cache. Each stops at its first
/// failure, and a failure is only allowed once every frame has been handed out.
#[test]
fn simultaneous_exhaustion_on_both_cpus() {
    bounded_model(Some(PREEMPTIONS), || {
        let e = engine(4, 2);
        let a0 = e.alloc(&Cpu(0)).unwrap();
        let b0 = e.alloc(&Cpu(1)).unwrap();
        e.free(&Cpu(0), a0).unwrap();
        e.free(&Cpu(1), b0).unwrap();
        let other = {
            let e = e.clone();
            thread::spawn(move || {
                (0..4)
                    .map_while(|_| e.alloc(&Cpu(1)).ok())
                    .collect::<Vec<_>>()
            })
        };
        let mut got: Vec<Frame> = (0..4).map_while(|_| e.alloc(&Cpu(0)).ok()).collect();
        got.extend(other.join().unwrap());
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 4, "every frame obtained once: {got:?}");
    });
}

/// The only free frames sit in the depot while one thread drains it and another needs a
/// contiguous run, which only the bitmap serves: the requester's reclaim must not miss frames
/// the drainer has taken out of the depot but not yet put into the bitmap.
#[test]
fn reclaim_races_a_depot_drain() {
    model(|| {
        let e = engine(6, 1);
        // CPU 0 frees 6 frames: two full magazines stay in its cache, one goes to the depot.
        let held: Vec<Frame> = (0..6).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
        held.into_iter().for_each(|f| e.free(&Cpu(0), f).unwrap());
        let taken: Vec<Frame> = (0..4).map(|_| e.alloc(&Cpu(0)).unwrap()).collect();
        assert_eq!((e.stats().free, e.stats().depot_frames), (0, 2));
        let drainer = {
            let e = e.clone();
            thread::spawn(move || {
                e.drain_all();
            })
        };
        let run = e.alloc_contiguous(&Cpu(0), 1, 0);
        drainer.join().unwrap();
        assert!(run.is_ok(), "a depot frame was in transit: {run:?}");
        drop(taken);
    });
}

/// CPU 0 frees six frames (filling its magazines and exchanging full ones with the depot)
/// while another thread pins the magazine size from 2 to 1, which drains every magazine.
/// No frame may be lost or handed out twice, and after the next drain every magazine has the
/// new size.
#[test]
fn resize_races_a_magazine_exchange() {
    model(|| {
        let e = engine(8, 2);
        let (producer, kept) = cpu0_frees_six_of_eight(&e);
        assert_eq!(e.set_magazine_size(Some(1)), Ok(1));
        producer.join().unwrap();
        let s = e.stats();
        assert!(s.is_balanced(), "{s:?}");
        assert_eq!(s.allocated, 2);
        e.drain_all();
        let f = e.alloc(&Cpu(1)).unwrap();
        assert_eq!(
            e.stats().cached,
            0,
            "a refill after the pin takes one frame"
        );
        for f in kept.into_iter().chain([f]) {
            e.free(&Cpu(1), f).unwrap();
        }
        assert_all_free(&e, 8);
    });
}
