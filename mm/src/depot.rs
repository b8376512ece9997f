//! The depot: full magazines shared by all CPUs, under their own lock, bounded by a cap.
//!
//! A CPU whose two magazines are both empty takes a full one here before it bothers the global
//! bitmap; a CPU whose two magazines are both full leaves one here. The depot is what turns a
//! producer CPU's frees into a consumer CPU's allocations without touching the global lock.
//! Past its cap (in frames, rounded down to whole magazines) a CPU spills to the global layer
//! instead, so cached frames cannot grow without limit.
//!
//! # Implementation
//! Bonwick's depot keeps a list of full and a list of empty magazines because his magazines
//! are separately allocated objects that CPUs exchange by pointer. Here a magazine is an
//! inline array copied in and out (see [`crate::magazine`]), so an "empty magazine" is just
//! a free slot: `slots[..full]` is the stack of full magazines, `slots[full..cap]` the stack of
//! empty ones. A get or a put copies one magazine under one lock hold.
#![deny(unsafe_code)]

use crate::lock::TimedLock;
use crate::magazine::{MAGAZINE_SIZE, Magazine};
use crate::raw::Clock;
use crate::stats::LockStats;
use crate::sync::const_unless_loom;

/// Magazine slots in the depot: 64 slots of [`MAGAZINE_SIZE`] frames (8 MiB of frames at 32
/// per magazine) lets eight CPUs each park several magazines between bursts, while the cap can
/// only lower it (`set_depot_cap`). Loom models use 2 slots to keep their state small.
pub const DEPOT_SLOTS: usize = if cfg!(loom) { 2 } else { 64 };

/// The magazines and the cap, guarded by the depot lock.
struct Shelf {
    slots: [Magazine; DEPOT_SLOTS],
    /// `slots[..full]` hold full magazines.
    full: usize,
    /// Frames in `slots[..full]`.
    frames: u64,
    /// Slots withheld by the cap: the cap is `DEPOT_SLOTS - withheld` magazines. Stored this
    /// way round so that all-zero bytes mean the default cap.
    withheld: usize,
}

impl Shelf {
    fn cap(&self) -> usize {
        DEPOT_SLOTS - self.withheld
    }

    fn pop(&mut self) -> Option<Magazine> {
        self.full = self.full.checked_sub(1)?;
        let magazine = self.slots[self.full].take();
        self.frames -= magazine.len() as u64;
        Some(magazine)
    }
}

/// The shared stock of full magazines.
pub(crate) struct Depot {
    shelf: TimedLock<Shelf>,
}

impl Depot {
    const_unless_loom! {
        /// An empty depot with the default cap of [`DEPOT_SLOTS`] magazines.
        pub(crate) fn new() -> Self {
            Self {
                shelf: TimedLock::new(Shelf {
                    slots: [Magazine::new(); DEPOT_SLOTS],
                    full: 0,
                    frames: 0,
                    withheld: 0,
                }),
            }
        }
    }

    /// Moves a full magazine into `into`, which must be empty. False if the depot has none.
    pub(crate) fn get(&self, clock: &Clock, into: &mut Magazine) -> bool {
        debug_assert!(into.is_empty());
        match self.shelf.lock(clock).pop() {
            Some(magazine) => {
                *into = magazine;
                true
            }
            None => false,
        }
    }

    /// Moves the magazine `from` into the depot, leaving it empty. False (and `from`
    /// untouched) if the depot is at its cap.
    pub(crate) fn put(&self, clock: &Clock, from: &mut Magazine) -> bool {
        let mut shelf = self.shelf.lock(clock);
        if shelf.full >= shelf.cap() {
            return false;
        }
        let slot = shelf.full;
        shelf.frames += from.len() as u64;
        shelf.slots[slot] = from.take();
        shelf.full += 1;
        true
    }

    /// Takes one magazine out (when `excess_only`, only one beyond the cap) and hands it to
    /// `spill` while the depot lock is still held, so a concurrent reclaim that finds the
    /// depot empty cannot miss frames on their way to the global layer. Returns the frames
    /// moved, or `None` if there was nothing to take.
    pub(crate) fn spill_one(
        &self,
        clock: &Clock,
        excess_only: bool,
        spill: impl FnOnce(&mut Magazine),
    ) -> Option<u64> {
        let mut shelf = self.shelf.lock(clock);
        if excess_only && shelf.full <= shelf.cap() {
            return None;
        }
        let mut magazine = shelf.pop()?;
        let frames = magazine.len() as u64;
        spill(&mut magazine);
        Some(frames)
    }

    /// Caps the depot at `max_frames` cached frames, rounded down to whole magazines and
    /// clamped to [`DEPOT_SLOTS`] magazines. Returns the cap in frames now in force; the caller
    /// spills the excess with [`Depot::spill_one`].
    pub(crate) fn set_cap(&self, clock: &Clock, max_frames: usize) -> usize {
        let magazines = (max_frames / MAGAZINE_SIZE).min(DEPOT_SLOTS);
        self.shelf.lock(clock).withheld = DEPOT_SLOTS - magazines;
        magazines * MAGAZINE_SIZE
    }

    /// Frames held, read under the lock without counting the acquisition.
    pub(crate) fn frames(&self) -> u64 {
        self.shelf.lock_quietly().frames
    }

    /// The depot lock's counters.
    pub(crate) fn lock_stats(&self) -> LockStats {
        self.shelf.stats()
    }

    /// Zeroes the depot lock's counters.
    pub(crate) fn reset_lock_stats(&self) {
        self.shelf.reset_stats();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::frame::Frame;

    const M: u64 = MAGAZINE_SIZE as u64;

    fn full_magazine(first: u64) -> Magazine {
        let mut m = Magazine::new();
        for n in 0..MAGAZINE_SIZE as u64 {
            m.push(Frame::from_number(first + n)).unwrap();
        }
        m
    }

    #[test]
    fn put_then_get_moves_a_magazine() {
        let clock = Clock::new();
        let depot = Depot::new();
        let mut m = full_magazine(100);
        assert!(depot.put(&clock, &mut m));
        assert!(m.is_empty());
        assert_eq!(depot.frames(), MAGAZINE_SIZE as u64);
        let mut out = Magazine::new();
        assert!(depot.get(&clock, &mut out));
        assert_eq!(out.frames(), full_magazine(100).frames());
        assert_eq!(depot.frames(), 0);
        assert!(!depot.get(&clock, &mut Magazine::new()));
        assert_eq!(depot.lock_stats().acquisitions, 3);
    }

    #[test]
    fn cap_bounds_the_depot() {
        let clock = Clock::new();
        let depot = Depot::new();
        assert_eq!(
            depot.set_cap(&clock, 2 * MAGAZINE_SIZE + 1),
            2 * MAGAZINE_SIZE
        );
        assert!(depot.put(&clock, &mut full_magazine(0)));
        assert!(depot.put(&clock, &mut full_magazine(100)));
        let mut third = full_magazine(200);
        assert!(!depot.put(&clock, &mut third));
        assert!(third.is_full(), "a refused magazine stays with its owner");
        assert_eq!(depot.set_cap(&clock, MAGAZINE_SIZE), MAGAZINE_SIZE);
        let mut spilled = 0;
        assert_eq!(
            depot.spill_one(&clock, true, |m| spilled += m.len()),
            Some(M)
        );
        assert_eq!(
            depot.spill_one(&clock, true, |_| unreachable!()),
            None,
            "at the cap"
        );
        assert_eq!(spilled, MAGAZINE_SIZE);
        assert_eq!(depot.frames(), M);
        assert_eq!(
            depot.set_cap(&clock, usize::MAX),
            DEPOT_SLOTS * MAGAZINE_SIZE
        );
    }

    #[test]
    fn spill_one_empties_the_depot() {
        let clock = Clock::new();
        let depot = Depot::new();
        depot.put(&clock, &mut full_magazine(0));
        let mut seen = None;
        assert_eq!(depot.spill_one(&clock, false, |m| seen = m.pop()), Some(M));
        assert_eq!(seen, Some(Frame::from_number(MAGAZINE_SIZE as u64 - 1)));
        assert_eq!(depot.spill_one(&clock, false, |_| unreachable!()), None);
        depot.reset_lock_stats();
        assert_eq!(depot.lock_stats(), LockStats::default());
    }
}
