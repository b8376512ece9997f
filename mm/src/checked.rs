//! Free validation: the atomic in-use bitmap of checked mode, or a cheap bounds check.
//!
//! With the `checked` feature every frame handed out has its bit set in an [`InUseMap`] and
//! every free clears it; a free whose bit is already clear is a double free or a frame never
//! handed out, and is refused at the call site, naming frame and CPU, before the frame can
//! reach a magazine (where the allocator could no longer tell). Without the feature,
//! [`LimitCheck`] only refuses frame 0 and frames past the highest managed one: a double free
//! then goes unnoticed until a spill finds the frame already free (an anomaly in the stats).
//!
//! # Implementation
//! One bit per frame in `AtomicU64` words: 2 MiB for the 16M frames a `BitAlloc16M` reaches,
//! all zero at start, so it sits in `.bss` inside the `static` allocator. Claims and releases
//! are `fetch_or`/`fetch_and` per word; a multi-word release that finds a clear bit puts back
//! the bits it already cleared, so a refused free leaves the map as it was.
#![deny(unsafe_code)]
// Unchecked kernel builds use only `LimitCheck`; loom models and tests use both checks.
#![cfg_attr(not(feature = "checked"), allow(dead_code))]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::FreeErrorKind;
use crate::frame::Frame;

/// How the allocator validates frees. Implemented by [`InUseMap`] and [`LimitCheck`].
pub trait FrameCheck {
    /// The initial state (nothing in use, nothing managed); all-zero bytes.
    // Used only by value, as the initialiser of a new allocator, like a `static`'s initialiser.
    #[allow(clippy::declare_interior_mutable_const)]
    const NEW: Self;
    /// Frame numbers from this one up cannot be tracked, so are never managed.
    const REACH: u64;
    /// Told the new end of managed memory after `add_ranges`.
    fn note_managed_end(&self, end: u64);
    /// Marks the run `first..first+count` in use after it was allocated.
    fn claim(&self, first: Frame, count: u64);
    /// Marks the run free before it is freed; on error nothing changes and the first
    /// offending frame is named. `NotAllocated` may still be unmanaged memory: the caller
    /// refines it with the managed spans.
    fn release(&self, first: Frame, count: u64) -> Result<(), (FreeErrorKind, Frame)>;
    /// Frames marked in use, if this check tracks them.
    fn in_use(&self) -> Option<u64>;
}

/// Checked mode: one atomic in-use bit per frame, `WORDS * 64` frames.
pub struct InUseMap<const WORDS: usize> {
    words: [AtomicU64; WORDS],
}

/// The word index and bit mask of each word the run `first..first+count` touches.
fn word_masks(first: u64, count: u64) -> impl Iterator<Item = (usize, u64)> {
    let end = first + count;
    let mut at = first;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let bit = at % 64;
        let bits = (64 - bit).min(end - at);
        let mask = if bits == 64 {
            u64::MAX
        } else {
            ((1u64 << bits) - 1) << bit
        };
        let word = (at / 64) as usize;
        at += bits;
        Some((word, mask))
    })
}

impl<const WORDS: usize> InUseMap<WORDS> {
    /// Puts back bits of `first..` cleared by a release that then failed, up to `word`.
    fn restore(&self, first: u64, count: u64, upto_word: usize) {
        for (word, mask) in word_masks(first, count).take_while(|&(w, _)| w < upto_word) {
            self.words[word].fetch_or(mask, Relaxed);
        }
    }
}

impl<const WORDS: usize> FrameCheck for InUseMap<WORDS> {
    #[allow(clippy::declare_interior_mutable_const)]
    const NEW: Self = Self {
        words: [const { AtomicU64::new(0) }; WORDS],
    };
    const REACH: u64 = WORDS as u64 * 64;

    fn note_managed_end(&self, _end: u64) {}

    #[inline]
    fn claim(&self, first: Frame, count: u64) {
        if count == 1 {
            // The fast path's case: one word, one bit.
            let n = first.number();
            let before = self.words[(n / 64) as usize].fetch_or(1 << (n % 64), Relaxed);
            debug_assert_eq!(before & 1 << (n % 64), 0, "{first} handed out while in use");
            return;
        }
        for (word, mask) in word_masks(first.number(), count) {
            let before = self.words[word].fetch_or(mask, Relaxed);
            debug_assert_eq!(before & mask, 0, "{first}+{count} handed out while in use");
        }
    }

    #[inline]
    fn release(&self, first: Frame, count: u64) -> Result<(), (FreeErrorKind, Frame)> {
        let start = first.number();
        if start >= Self::REACH || count > Self::REACH - start {
            let bad = start.max(Self::REACH);
            return Err((FreeErrorKind::OutsideManaged, Frame::from_number(bad)));
        }
        if count == 1 {
            // The fast path's case: clear one bit; if it was clear already, nothing changed.
            let bit = 1 << (start % 64);
            let before = self.words[(start / 64) as usize].fetch_and(!bit, Relaxed);
            if before & bit == 0 {
                return Err((FreeErrorKind::NotAllocated, first));
            }
            return Ok(());
        }
        for (word, mask) in word_masks(start, count) {
            let before = self.words[word].fetch_and(!mask, Relaxed);
            let missing = mask & !before;
            if missing != 0 {
                // Put back what this word had and what earlier words lost.
                self.words[word].fetch_or(before & mask, Relaxed);
                self.restore(start, count, word);
                let bad = word as u64 * 64 + u64::from(missing.trailing_zeros());
                return Err((FreeErrorKind::NotAllocated, Frame::from_number(bad)));
            }
        }
        Ok(())
    }

    fn in_use(&self) -> Option<u64> {
        Some(
            self.words
                .iter()
                .map(|w| u64::from(w.load(Relaxed).count_ones()))
                .sum(),
        )
    }
}

/// Unchecked mode: frees are only bounds-checked against managed memory.
#[cfg_attr(feature = "checked", allow(dead_code))]
pub struct LimitCheck {
    /// The highest managed frame number, 0 while nothing is managed (frame 0 never is, so 0
    /// is free to mean that). Keeping the last frame rather than the end lets one wrapping
    /// comparison refuse both frame 0 and frames past the end.
    last: AtomicU64,
}

impl FrameCheck for LimitCheck {
    #[allow(clippy::declare_interior_mutable_const)]
    const NEW: Self = Self {
        last: AtomicU64::new(0),
    };
    const REACH: u64 = u64::MAX;

    fn note_managed_end(&self, end: u64) {
        self.last.fetch_max(end.saturating_sub(1), Relaxed);
    }

    fn claim(&self, _first: Frame, _count: u64) {}

    #[inline]
    fn release(&self, first: Frame, count: u64) -> Result<(), (FreeErrorKind, Frame)> {
        let (start, last) = (first.number(), self.last.load(Relaxed));
        // `start - 1 < last` holds exactly for 1 <= start <= last (0 wraps to the maximum).
        if start.wrapping_sub(1) >= last {
            return Err((FreeErrorKind::OutsideManaged, first));
        }
        // Callers pass `count >= 1`; for a single frame this test folds away.
        if count - 1 > last - start {
            return Err((FreeErrorKind::OutsideManaged, Frame::from_number(last + 1)));
        }
        Ok(())
    }

    fn in_use(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    type Map = InUseMap<4>;

    fn f(n: u64) -> Frame {
        Frame::from_number(n)
    }

    #[test]
    fn word_masks_split_runs_at_word_edges() {
        let masks: Vec<_> = word_masks(60, 70).collect();
        assert_eq!(masks, std::vec![(0, 0xf << 60), (1, u64::MAX), (2, 0b11)]);
        assert_eq!(word_masks(5, 0).count(), 0);
    }

    #[test]
    fn claim_then_release_round_trips() {
        let map = Map::NEW;
        map.claim(f(3), 1);
        map.claim(f(60), 70);
        assert_eq!(map.in_use(), Some(71));
        map.release(f(3), 1).unwrap();
        map.release(f(60), 70).unwrap();
        assert_eq!(map.in_use(), Some(0));
    }

    #[test]
    fn double_release_is_refused() {
        let map = Map::NEW;
        map.claim(f(9), 1);
        map.release(f(9), 1).unwrap();
        assert_eq!(
            map.release(f(9), 1),
            Err((FreeErrorKind::NotAllocated, f(9)))
        );
        assert_eq!(
            map.release(f(10), 1),
            Err((FreeErrorKind::NotAllocated, f(10)))
        );
    }

    #[test]
    fn failed_run_release_changes_nothing() {
        let map = Map::NEW;
        map.claim(f(50), 100);
        map.release(f(140), 1).unwrap();
        assert_eq!(
            map.release(f(50), 100),
            Err((FreeErrorKind::NotAllocated, f(140)))
        );
        assert_eq!(map.in_use(), Some(99));
        map.claim(f(140), 1);
        map.release(f(50), 100).unwrap();
        assert_eq!(map.in_use(), Some(0));
    }

    #[test]
    fn release_beyond_reach_is_outside_managed() {
        let map = Map::NEW;
        assert_eq!(
            map.release(f(256), 1),
            Err((FreeErrorKind::OutsideManaged, f(256)))
        );
        assert_eq!(
            map.release(f(250), 10),
            Err((FreeErrorKind::OutsideManaged, f(256)))
        );
        assert_eq!(
            map.release(f(u64::MAX), 1).unwrap_err().0,
            FreeErrorKind::OutsideManaged
        );
    }

    #[test]
    fn limit_check_refuses_frame_zero_and_past_the_end() {
        let check = LimitCheck::NEW;
        assert!(check.release(f(1), 1).is_err(), "nothing managed yet");
        check.note_managed_end(100);
        check.note_managed_end(50);
        assert_eq!(
            check.release(f(0), 1),
            Err((FreeErrorKind::OutsideManaged, f(0)))
        );
        assert_eq!(
            check.release(f(100), 1),
            Err((FreeErrorKind::OutsideManaged, f(100)))
        );
        assert_eq!(
            check.release(f(98), 5),
            Err((FreeErrorKind::OutsideManaged, f(100)))
        );
        assert!(check.release(f(99), 1).is_ok());
        assert_eq!(check.in_use(), None);
    }
}
