//! Magazine resizing while 8 threads allocate and free (more threads than cores on purpose),
//! on one node and on two: pins to other sizes (each draining every magazine), returns to
//! adaptation, and memory pressure (which shrinks a node's magazines) all race the fast and
//! slow paths. Every frame handed out is claimed in an owner table, so a duplicate is caught
//! when it is handed out; at the end no frame may be lost.
#![cfg(not(loom))]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;

use common::{HostCpu, Owners, frames, host_clock, new_allocator};
use mm::{CpuCache, FRAME_SIZE, Frame, FrameAllocator, MemoryAffinity, NodeLayout};

const THREADS: usize = 8;
/// Frames managed: few enough that the threads run nodes dry now and then.
const END: u64 = 3_001;

fn rig(nodes: usize) -> Box<FrameAllocator> {
    let a = new_allocator();
    a.add_ranges(&[frames(1, END)]);
    let cpu_nodes: Vec<usize> = (0..THREADS).map(|cpu| cpu % nodes).collect();
    if nodes > 1 {
        let half = END / 2;
        let memory = [
            MemoryAffinity {
                domain: 0,
                base: 0,
                length: half * FRAME_SIZE,
            },
            MemoryAffinity {
                domain: 1,
                base: half * FRAME_SIZE,
                length: (END - half) * FRAME_SIZE,
            },
        ];
        let layout = NodeLayout::from_affinity(&memory, &[], None, &[], &mut []).unwrap();
        a.set_layout(&layout).unwrap();
    }
    let caches: Vec<&'static CpuCache> = cpu_nodes
        .iter()
        .map(|&n| &*Box::leak(Box::new(CpuCache::on_node(n))))
        .collect();
    a.attach_caches(Box::leak(caches.into_boxed_slice()));
    a.set_clock(host_clock);
    a
}

/// One worker: allocate a batch (up to what is free), free part of it here and hand the
/// rest to the next CPU, free what the previous CPU handed over.
fn worker(a: &FrameAllocator, owners: &Owners, slots: &[Mutex<Vec<Frame>>], cpu: usize) {
    for round in 0..1000 {
        let want = 50 + (round * 37 + cpu * 11) % 400;
        let mut mine = Vec::with_capacity(want);
        for _ in 0..want {
            match a.alloc(&HostCpu(cpu)) {
                Ok(f) => {
                    owners.claim(f, cpu);
                    mine.push(f);
                }
                Err(_) => break,
            }
        }
        let passed = mine.split_off(mine.len() / 2);
        for f in mine {
            owners.release(f);
            a.free(&HostCpu(cpu), f).unwrap();
        }
        slots[(cpu + 1) % THREADS].lock().unwrap().extend(passed);
        let theirs = std::mem::take(&mut *slots[cpu].lock().unwrap());
        for f in theirs {
            owners.release(f);
            a.free(&HostCpu(cpu), f).unwrap();
        }
    }
}

fn resize_while_running(nodes: usize) {
    let a = rig(nodes);
    let managed = a.stats().managed;
    let owners = Owners::new(END);
    let slots: Vec<Mutex<Vec<Frame>>> = (0..THREADS).map(|_| Mutex::new(Vec::new())).collect();
    let stop = AtomicBool::new(false);
    let mut pins = 0;
    thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|cpu| {
                let (a, owners, slots) = (&*a, &owners, &slots);
                s.spawn(move || worker(a, owners, slots, cpu))
            })
            .collect();
        let resizer = s.spawn(|| {
            let sizes = [Some(8), Some(256), None, Some(64), None, Some(16)];
            while !stop.load(Relaxed) {
                for size in sizes {
                    a.set_magazine_size(size).unwrap();
                    pins += 1;
                    thread::yield_now();
                }
            }
        });
        workers.into_iter().for_each(|w| w.join().unwrap());
        stop.store(true, Relaxed);
        resizer.join().unwrap();
    });
    assert!(pins >= 6, "the resizer ran");
    assert!(a.stats().cpu.alloc_failures > 0, "memory ran short");
    for (cpu, slot) in slots.iter().enumerate() {
        for f in std::mem::take(&mut *slot.lock().unwrap()) {
            owners.release(f);
            a.free(&HostCpu(cpu), f).unwrap();
        }
    }
    let s = a.stats();
    assert!(s.is_balanced(), "{s:?}");
    assert_eq!((s.managed, s.allocated, s.anomalies), (managed, 0, 0));
    assert_eq!(a.in_use_frames().unwrap_or(0), 0);
    // With the size pinned small, nothing cached exceeds it, and every frame comes back once.
    a.set_magazine_size(Some(8)).unwrap();
    assert_eq!(a.stats().cached, 0);
    let mut all: Vec<u64> = std::iter::from_fn(|| a.alloc(&HostCpu(0)).ok())
        .map(Frame::number)
        .collect();
    assert_eq!(all.len() as u64, managed, "every managed frame obtained");
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u64, managed, "no frame twice");
}

#[test]
fn resize_races_eight_cpus_on_one_node() {
    resize_while_running(1);
}

#[test]
fn resize_races_eight_cpus_on_two_nodes() {
    resize_while_running(2);
}
