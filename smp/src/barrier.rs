//! A reusable barrier for a fixed number of CPUs.
//!
//! [`Barrier::for_online_cpus`] sizes it to the CPUs online now; every participant calls
//! [`Barrier::wait`] and all leave together. The same barrier serves any number of rounds.
//! A round that does not complete within the timeout panics, naming how many arrived.
//!
//! # Implementation
//! A counter and a generation number: the last arrival resets the counter and then bumps the
//! generation (release), the others spin until the generation changes (acquire). A fast CPU
//! entering the next round therefore always sees the reset counter.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use arch::tsc::Deadline;

use crate::bringup::online_count;

/// Default limit on how long one round may wait for the last participant: far above any skew
/// between CPUs a correct test produces, even under TCG at 64 CPUs on two host cores.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A reusable barrier.
pub struct Barrier {
    participants: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl Barrier {
    /// A barrier for `participants` CPUs. Panics if `participants` is 0.
    pub fn new(participants: usize) -> Self {
        assert!(participants > 0, "a barrier needs at least one participant");
        Barrier {
            participants,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// A barrier for every CPU online now.
    pub fn for_online_cpus() -> Self {
        Self::new(online_count())
    }

    /// How many CPUs each round waits for.
    pub fn participants(&self) -> usize {
        self.participants
    }

    /// Waits for all participants, with [`DEFAULT_TIMEOUT`].
    pub fn wait(&self) {
        self.wait_timeout(DEFAULT_TIMEOUT);
    }

    /// Waits for all participants; panics if they do not all arrive within `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) {
        let generation = self.generation.load(Ordering::Acquire);
        let arrived = self.arrived.fetch_add(1, Ordering::AcqRel) + 1;
        assert!(
            arrived <= self.participants,
            "barrier for {} CPUs entered by more",
            self.participants
        );
        if arrived == self.participants {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let deadline = Deadline::after(timeout);
        while self.generation.load(Ordering::Acquire) == generation {
            if deadline.is_past() {
                panic!(
                    "barrier timed out after {timeout:?}: {} of {} CPUs arrived",
                    self.arrived.load(Ordering::Relaxed),
                    self.participants
                );
            }
            core::hint::spin_loop();
        }
    }
}
