//! Multi-threaded host stress: threads play CPUs (more threads than cores on purpose). Every
//! frame handed out is claimed in an owner table, so a duplicate is caught the moment it is
//! handed out; after each phase nothing may be lost: `free + cached + allocated == managed`.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::thread;

use common::{HostCpu, Owners, caches, frames, host_clock, new_allocator};
use mm::{AllocError, Frame, FrameAllocator, Mode};

const THREADS: usize = 8;

struct Rig {
    a: Box<FrameAllocator>,
    owners: Owners,
    managed: u64,
}

/// An allocator over two ranges with a hole, frame 0 included (and skipped).
fn rig() -> Rig {
    let a = new_allocator();
    let report = a.add_ranges(&[frames(0, 12_000), frames(13_000, 25_000)]);
    a.attach_caches(caches(THREADS));
    a.set_clock(host_clock);
    Rig {
        a,
        owners: Owners::new(25_000),
        managed: report.added,
    }
}

impl Rig {
    fn alloc(&self, cpu: usize) -> Result<Frame, AllocError> {
        let f = self.a.alloc(&HostCpu(cpu))?;
        self.owners.claim(f, cpu);
        Ok(f)
    }

    fn free(&self, cpu: usize, f: Frame) {
        self.owners.release(f);
        self.a.free(&HostCpu(cpu), f).unwrap();
    }

    /// Runs `work(cpu)` on one thread per CPU.
    fn on_all_cpus(&self, work: impl Fn(usize) + Sync) {
        thread::scope(|s| {
            for cpu in 0..THREADS {
                let work = &work;
                s.spawn(move || work(cpu));
            }
        });
    }

    fn assert_no_loss(&self, allocated: u64) {
        let s = self.a.stats();
        assert!(s.is_balanced(), "{s:?}");
        assert_eq!((s.managed, s.allocated), (self.managed, allocated), "{s:?}");
        assert_eq!(self.a.in_use_frames().unwrap_or(allocated), allocated);
        assert_eq!(s.anomalies, 0);
    }
}

#[test]
fn bulk_allocs_then_frees() {
    let r = rig();
    for _ in 0..10 {
        r.on_all_cpus(|cpu| {
            let held: Vec<Frame> = (0..2_000).map(|_| r.alloc(cpu).unwrap()).collect();
            held.into_iter().for_each(|f| r.free(cpu, f));
        });
        r.assert_no_loss(0);
    }
}

#[test]
fn repeat_alloc_free_of_one_frame() {
    let r = rig();
    r.on_all_cpus(|cpu| {
        for _ in 0..400_000 {
            let f = r.alloc(cpu).unwrap();
            r.free(cpu, f);
        }
    });
    r.assert_no_loss(0);
    let s = r.a.stats().cpu;
    assert!(
        s.hits > 19 * (s.misses + 1),
        "magazines serve repeats: {s:?}"
    );
}

#[test]
fn cross_cpu_frees() {
    let r = rig();
    let slots: Vec<Mutex<Vec<Frame>>> = (0..THREADS).map(|_| Mutex::new(Vec::new())).collect();
    let barrier = Barrier::new(THREADS);
    for _ in 0..10 {
        r.on_all_cpus(|cpu| {
            let mine: Vec<Frame> = (0..1_500).map(|_| r.alloc(cpu).unwrap()).collect();
            *slots[cpu].lock().unwrap() = mine;
            barrier.wait();
            let theirs = std::mem::take(&mut *slots[(cpu + 1) % THREADS].lock().unwrap());
            theirs.into_iter().for_each(|f| r.free(cpu, f));
        });
        r.assert_no_loss(0);
    }
}

#[test]
fn concurrent_exhaustion_obtains_every_managed_frame() {
    let r = rig();
    // Park frames in every cache and the depot first.
    r.on_all_cpus(|cpu| {
        let held: Vec<Frame> = (0..300).map(|_| r.alloc(cpu).unwrap()).collect();
        held.into_iter().for_each(|f| r.free(cpu, f));
    });
    assert!(r.a.stats().depot_frames > 0);
    let got: Vec<Mutex<Vec<Frame>>> = (0..THREADS).map(|_| Mutex::new(Vec::new())).collect();
    r.on_all_cpus(|cpu| {
        let mine: Vec<Frame> = std::iter::from_fn(|| r.alloc(cpu).ok()).collect();
        *got[cpu].lock().unwrap() = mine;
    });
    let mut all: Vec<u64> = got
        .iter()
        .flat_map(|g| g.lock().unwrap().clone())
        .map(Frame::number)
        .collect();
    assert_eq!(
        all.len() as u64,
        r.managed,
        "every managed frame was obtained"
    );
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u64, r.managed, "no frame twice");
    r.assert_no_loss(r.managed);
    r.on_all_cpus(|cpu| {
        let theirs = std::mem::take(&mut *got[(cpu + 1) % THREADS].lock().unwrap());
        theirs.into_iter().for_each(|f| r.free(cpu, f));
    });
    r.assert_no_loss(0);
}

#[test]
fn remote_drains_and_mode_switches_race_the_owners() {
    let r = rig();
    let stop = AtomicBool::new(false);
    let running = AtomicUsize::new(THREADS);
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0usize;
            while !stop.load(Relaxed) {
                match i % 4 {
                    0 => {
                        r.a.drain_cpu(i % THREADS);
                    }
                    1 => {
                        r.a.drain_all();
                    }
                    2 => r.a.set_mode(Mode::Baseline),
                    _ => r.a.set_mode(Mode::Magazine),
                }
                i += 1;
                thread::yield_now();
            }
        });
        for cpu in 0..THREADS {
            let (r, stop, running) = (&r, &stop, &running);
            s.spawn(move || {
                let mut held = Vec::new();
                for i in 0..150_000usize {
                    if i % 3 == 2 || held.len() > 200 {
                        if let Some(f) = held.pop() {
                            r.free(cpu, f);
                        }
                    } else {
                        held.push(r.alloc(cpu).unwrap());
                    }
                }
                held.into_iter().for_each(|f| r.free(cpu, f));
                if running.fetch_sub(1, Relaxed) == 1 {
                    stop.store(true, Relaxed);
                }
            });
        }
    });
    r.assert_no_loss(0);
    r.a.set_mode(Mode::Baseline);
    assert_eq!(r.a.stats().cached, 0, "baseline leaves no frame in a cache");
}

#[test]
fn contiguous_and_single_allocations_mix() {
    let r = rig();
    r.on_all_cpus(|cpu| {
        for round in 0..3_000usize {
            let count = 1 + (round * 7 + cpu) % 24;
            let run =
                r.a.alloc_contiguous(&HostCpu(cpu), count, (round % 4) as u32)
                    .unwrap();
            for k in 0..count as u64 {
                r.owners.claim(Frame::from_number(run.number() + k), cpu);
            }
            let single = r.alloc(cpu).unwrap();
            for k in 0..count as u64 {
                r.owners.release(Frame::from_number(run.number() + k));
            }
            r.a.free_contiguous(&HostCpu(cpu), run, count).unwrap();
            r.free(cpu, single);
        }
    });
    r.assert_no_loss(0);
}
