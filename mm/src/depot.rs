//! The depot: full magazines shared by all CPUs, under their own lock, bounded by a cap.
//!
//! A CPU whose two magazines are both empty takes a full one here before it bothers the global
//! bitmap; a CPU whose two magazines are both full leaves one here. The depot is what turns a
//! producer CPU's frees into a consumer CPU's allocations without touching the global lock.
//! Past its cap (in frames, rounded down to whole magazines) a CPU spills to the global layer
//! instead, so cached frames cannot grow without limit.
//!
//! Each node has one depot, and each depot owns its node's magazine size (Bonwick's
//! magazine resizing): it counts its lock's contended acquisitions over windows of
//! [`GROW_WINDOW`] acquisitions and doubles the size (up to [`MAX_MAGAZINE_SIZE`]) after a
//! window with [`GROW_CONTENDED`] or more, or one in which the lock was held at least a
//! [`GROW_BUSY_SHARE`]th of the time;
//! the engine halves it (down to [`MIN_MAGAZINE_SIZE`]) when the node runs out of frames
//! ([`Depot::shrink`]), and `set_magazine_size` pins it ([`Depot::pin`]). CPUs read the
//! size without the lock when they arm an empty magazine.
//!
//! # Implementation
//! Bonwick's depot keeps a list of full and a list of empty magazines because his magazines
//! are separately allocated objects that CPUs exchange by pointer. Here a magazine is an
//! inline array copied in and out (see [`crate::magazine`]), so an "empty magazine" is just
//! a free slot: `slots[..full]` is the stack of full magazines, `slots[full..cap]` the stack of
//! empty ones. A get or a put copies one magazine under one lock hold.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::lock::TimedLock;
use crate::magazine::{DEFAULT_MAGAZINE_SIZE, MAX_MAGAZINE_SIZE, MIN_MAGAZINE_SIZE, Magazine};
use crate::raw::Clock;
use crate::stats::LockStats;
use crate::sync::const_unless_loom;

/// Magazine slots in the depot: 64 slots (8 MiB of frames at the starting 32 per magazine)
/// lets eight CPUs each park several magazines between bursts, while the cap can only lower
/// it (`set_depot_cap`). Loom models use 2 slots to keep their state small.
pub const DEPOT_SLOTS: usize = if cfg!(loom) { 2 } else { 64 };

/// Depot lock acquisitions per contention window: 64, eight exchanges per CPU of an 8-CPU
/// node, so a window closes within a few thousand operations under load and a single burst
/// cannot grow the magazines on its own. Not swept: with the busy rule below, every bulk and
/// cross row of `benches/compare.rs` reaches 256 within its first run either way.
pub(crate) const GROW_WINDOW: u32 = 64;

/// Contended acquisitions within one window that double the magazine size: 4 (one in 16).
/// Bonwick grows when contention exceeds a threshold per interval (kmem's default is 3 per
/// 15-second update); at one in 16 a depot that CPUs hit back to back grows, while one whose
/// CPUs collide now and then keeps its size. Not swept (see [`GROW_WINDOW`]); the unit tests
/// check that 3 in a window keep the size and 4 double it.
pub(crate) const GROW_CONTENDED: u32 = 4;

/// A window counts as busy when the depot lock was held at least 1/16 of its duration
/// (summed hold cycles over the window's clock span). That share is the lock's utilisation:
/// the chance that an acquisition arriving at a random moment finds the lock taken, so the
/// busy rule asks for what the contention rule asks ([`GROW_CONTENDED`] in [`GROW_WINDOW`],
/// also 1 in 16) before it happens, and also where it cannot happen: one CPU alone spends
/// 1/16 of its time in depot exchanges, a cost bigger magazines divide. The contention rule
/// alone never fired on one CPU, yet `benches/compare.rs` ran bulk and cross at one thread
/// twice as fast at size 128 as at 32. The rule is a ratio of two clock spans, so it holds
/// at any clock rate: an earlier absolute bound (a window under 128000 cycles) grew the
/// magazines on the host but never in the kernel under QEMU, where an exchange takes far
/// more cycles (kbench: bulk at 2 nodes ran 2x slower than at a pinned 128). Without a clock
/// (reads 0) only contention grows magazines.
pub(crate) const GROW_BUSY_SHARE: u64 = 16;

/// The magazines, the cap and the resizing state, guarded by the depot lock.
struct Shelf {
    slots: [Magazine; DEPOT_SLOTS],
    /// `slots[..full]` hold full magazines.
    full: usize,
    /// Frames in `slots[..full]`.
    frames: u64,
    /// Whether `cap_frames` applies (all-zero bytes: no cap beyond the slots).
    capped: bool,
    /// The most frames the depot may hold, when `capped`.
    cap_frames: u64,
    /// Whether the size is pinned (`set_magazine_size(Some(_))`): no adaptation.
    pinned: bool,
    /// Acquisitions and contended acquisitions in the current window.
    window: u32,
    window_contended: u32,
    /// Clock reading at the window's first acquisition.
    window_start: u64,
    /// The lock's summed hold cycles when the window opened.
    window_held_start: u64,
    /// Times the size grew and shrank.
    grows: u64,
    shrinks: u64,
}

impl Shelf {
    /// Whether one more magazine of `frames` frames fits.
    fn has_room(&self, frames: usize) -> bool {
        self.full < DEPOT_SLOTS && (!self.capped || self.frames + frames as u64 <= self.cap_frames)
    }

    /// Whether the depot holds more than its cap allows.
    fn over_cap(&self) -> bool {
        self.capped && self.frames > self.cap_frames
    }

    /// Takes the top full magazine off the stack; it stays in its slot (now a free one)
    /// for the caller to empty under the same lock hold.
    fn pop(&mut self) -> Option<&mut Magazine> {
        self.full = self.full.checked_sub(1)?;
        let magazine = &mut self.slots[self.full];
        self.frames -= magazine.len() as u64;
        Some(magazine)
    }

    /// Takes the first magazine holding more than `size` frames off the stack, as `pop`.
    fn remove_oversize(&mut self, size: usize) -> Option<&mut Magazine> {
        let i = self.slots[..self.full]
            .iter()
            .position(|m| m.len() > size)?;
        let last = self.full - 1;
        self.slots.swap(i, last);
        self.pop()
    }
}

/// What a resize did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resize {
    /// The size did not change (pinned, or already at its bound).
    Kept,
    /// The size changed to this.
    To(usize),
}

/// The shared stock of full magazines of one node, and the node's magazine size.
pub(crate) struct Depot {
    shelf: TimedLock<Shelf>,
    /// The magazine size in force; 0 (all-zero bytes) means [`DEFAULT_MAGAZINE_SIZE`]. Written
    /// under the depot lock, read without it: a CPU arming a magazine with a stale size only
    /// gets a magazine of the previous size, which is valid.
    size: AtomicUsize,
}

impl Depot {
    const_unless_loom! {
        /// An empty depot with the default cap of [`DEPOT_SLOTS`] magazines.
        pub(crate) fn new() -> Self {
            Self {
                shelf: TimedLock::new(Shelf {
                    slots: [Magazine::zeroed(); DEPOT_SLOTS],
                    full: 0,
                    frames: 0,
                    capped: false,
                    cap_frames: 0,
                    pinned: false,
                    window: 0,
                    window_contended: 0,
                    window_start: 0,
                    window_held_start: 0,
                    grows: 0,
                    shrinks: 0,
                }),
                size: AtomicUsize::new(0),
            }
        }
    }

    /// The magazine size in force: CPUs arm empty magazines with it.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        match self.size.load(Relaxed) {
            0 => DEFAULT_MAGAZINE_SIZE,
            size => size,
        }
    }

    /// Takes the depot lock, feeding its contention and its utilisation into the resizing
    /// window. Bonwick grows the magazines when the depot lock is contended; here also when
    /// it was held at least a [`GROW_BUSY_SHARE`]th of the window.
    fn lock<'a>(&'a self, clock: &'a Clock) -> crate::lock::TimedGuard<'a, Shelf> {
        let mut shelf = self.shelf.lock(clock);
        let contended = shelf.was_contended();
        let now = shelf.acquired_at();
        let held = shelf.held_cycles_before();
        if shelf.window == 0 {
            shelf.window_start = now;
            shelf.window_held_start = held;
        }
        shelf.window += 1;
        shelf.window_contended += u32::from(contended);
        if shelf.window >= GROW_WINDOW {
            let span = now.saturating_sub(shelf.window_start);
            let held = held.saturating_sub(shelf.window_held_start);
            let busy = span != 0 && held.saturating_mul(GROW_BUSY_SHARE) >= span;
            if (shelf.window_contended >= GROW_CONTENDED || busy) && !shelf.pinned {
                let size = self.size();
                if size < MAX_MAGAZINE_SIZE {
                    self.size.store(size * 2, Relaxed);
                    shelf.grows += 1;
                }
            }
            shelf.window = 0;
            shelf.window_contended = 0;
        }
        shelf
    }

    /// Moves a full magazine into `into`, which must be empty. False if the depot has none.
    pub(crate) fn get(&self, clock: &Clock, into: &mut Magazine) -> bool {
        debug_assert!(into.is_empty());
        match self.lock(clock).pop() {
            Some(magazine) => {
                magazine.move_to(into);
                true
            }
            None => false,
        }
    }

    /// Moves the magazine `from` into the depot, leaving it empty. False (and `from`
    /// untouched) if the depot is at its cap.
    pub(crate) fn put(&self, clock: &Clock, from: &mut Magazine) -> bool {
        let mut shelf = self.lock(clock);
        if !shelf.has_room(from.len()) {
            return false;
        }
        let slot = shelf.full;
        shelf.frames += from.len() as u64;
        from.move_to(&mut shelf.slots[slot]);
        shelf.full += 1;
        true
    }

    /// Takes one magazine out (when `excess_only`, only while the depot is over its cap) and
    /// hands it to `spill` while the depot lock is still held, so a concurrent reclaim that
    /// finds the depot empty cannot miss frames on their way to the global layer. Returns the
    /// frames moved, or `None` if there was nothing to take.
    pub(crate) fn spill_one(
        &self,
        clock: &Clock,
        excess_only: bool,
        spill: impl FnOnce(&mut Magazine),
    ) -> Option<u64> {
        let mut shelf = self.shelf.lock(clock);
        if excess_only && !shelf.over_cap() {
            return None;
        }
        let magazine = shelf.pop()?;
        let frames = magazine.len() as u64;
        spill(magazine);
        Some(frames)
    }

    /// Takes one magazine holding more frames than the size in force (left from before a
    /// shrink) and hands it to `spill` under the depot lock, as [`Depot::spill_one`].
    pub(crate) fn spill_oversize(
        &self,
        clock: &Clock,
        spill: impl FnOnce(&mut Magazine),
    ) -> Option<u64> {
        let mut shelf = self.shelf.lock(clock);
        let magazine = shelf.remove_oversize(self.size())?;
        let frames = magazine.len() as u64;
        spill(magazine);
        Some(frames)
    }

    /// Caps the depot at `max_frames` cached frames, rounded down to whole magazines of the
    /// size in force and clamped to [`DEPOT_SLOTS`] magazines; a cap of
    /// `DEPOT_SLOTS * MAX_MAGAZINE_SIZE` frames or more removes it. Returns the cap in frames
    /// now in force; the caller spills the excess with [`Depot::spill_one`].
    pub(crate) fn set_cap(&self, clock: &Clock, max_frames: usize) -> usize {
        let mut shelf = self.shelf.lock(clock);
        let size = self.size();
        let cap = (max_frames / size).min(DEPOT_SLOTS) * size;
        shelf.capped = max_frames < DEPOT_SLOTS * MAX_MAGAZINE_SIZE;
        shelf.cap_frames = cap as u64;
        cap
    }

    /// Pins the magazine size (`Some`, clamped to the bounds by the caller) or returns it to
    /// adaptation (`None`). The caller drains magazines bigger than the new size.
    pub(crate) fn pin(&self, clock: &Clock, size: Option<usize>) -> usize {
        let mut shelf = self.shelf.lock(clock);
        shelf.pinned = size.is_some();
        if let Some(size) = size {
            self.size.store(size, Relaxed);
        }
        shelf.window = 0;
        shelf.window_contended = 0;
        self.size()
    }

    /// Memory is short on this node: halve the magazine size, down to [`MIN_MAGAZINE_SIZE`]
    /// (unless pinned), so fewer frames sit in magazines. The caller drains magazines bigger
    /// than the new size.
    pub(crate) fn shrink(&self, clock: &Clock) -> Resize {
        let mut shelf = self.shelf.lock(clock);
        let size = self.size();
        if shelf.pinned || size <= MIN_MAGAZINE_SIZE {
            return Resize::Kept;
        }
        let smaller = (size / 2).max(MIN_MAGAZINE_SIZE);
        self.size.store(smaller, Relaxed);
        shelf.shrinks += 1;
        shelf.window = 0;
        shelf.window_contended = 0;
        Resize::To(smaller)
    }

    /// Whether the size is pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.shelf.lock_quietly().pinned
    }

    /// Times the size grew and shrank.
    pub(crate) fn resizes(&self) -> (u64, u64) {
        let shelf = self.shelf.lock_quietly();
        (shelf.grows, shelf.shrinks)
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
#[path = "depot_tests.rs"]
mod tests;
