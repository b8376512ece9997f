//! Sleeping and waking CPUs that wait on their peers in a phase (`cross`, `exhaust`).
//!
//! Under TCG every vCPU is a host thread: a CPU that spins while it waits takes a host core
//! from the vCPUs that have work (8 vCPUs on 2 host cores in `just run-smp 8`), and one that
//! halts until its next timer tick (10 ms) throttles the phase to the tick. So a waiting CPU
//! marks itself asleep and halts; a peer that gives it something to do (a batch pushed to its
//! inbox, room made in a queue it fills) wakes it with an IPI. The timer tick stays the
//! fallback: a lost wake-up costs at most one tick, never a hang.
//!
//! # Implementation
//! The wake-up IPI is `smp`'s ([`smp::call::wake`]): the call IPI with no call posted, whose
//! handler does nothing but end the `hlt`; the woken CPU is in our wait loop, not in `smp`'s,
//! so no call is looked for. The sleeper disables interrupts, marks itself asleep, looks for
//! work once more and halts with `sti; hlt` (atomic: an IPI sent after the look wakes it).
//! A waker publishes its work, then reads the mark; a `SeqCst` fence on each side orders the
//! mark before the look and the work before the read, so one of them sees the other.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering, fence};

use arch::irq::IrqGuard;

/// One CPU's asleep mark, on its own cache line (wakers read it at every queue operation).
#[repr(align(64))]
#[derive(Default)]
struct Mark(AtomicBool);

/// The asleep marks of every CPU of a phase run.
pub struct Sleepers {
    marks: Vec<Mark>,
}

impl Sleepers {
    /// Marks for `cpus` CPUs, all awake.
    pub fn new(cpus: usize) -> Self {
        Sleepers {
            marks: (0..cpus).map(|_| Mark::default()).collect(),
        }
    }

    /// Halts `cpu` (the current CPU) until an interrupt, unless `has_work` says there is
    /// something to do once it is marked asleep. Spins once instead if interrupts are off.
    pub fn sleep(&self, cpu: usize, has_work: impl Fn() -> bool) {
        if !arch::irq::are_enabled() {
            core::hint::spin_loop();
            return;
        }
        let irq = IrqGuard::new();
        let mark = &self.marks[cpu].0;
        mark.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if has_work() {
            mark.store(false, Ordering::Relaxed);
            return;
        }
        irq.enable_and_wait();
        mark.store(false, Ordering::Relaxed);
    }

    /// Wakes `cpu` if it is asleep. Call after publishing the work it waits for.
    pub fn wake(&self, cpu: usize) {
        fence(Ordering::SeqCst);
        let mark = &self.marks[cpu].0;
        if mark.load(Ordering::Relaxed) && mark.swap(false, Ordering::AcqRel) {
            smp::call::wake(cpu);
        }
    }

    /// Wakes every CPU that is asleep.
    pub fn wake_all(&self) {
        for cpu in 0..self.marks.len() {
            self.wake(cpu);
        }
    }
}
