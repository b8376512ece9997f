//! A magazine: a fixed array of frames plus a count, used as a stack.
//!
//! Magazines are values: a CPU cache holds two inline, a depot slot holds one, and moving a
//! magazine between them copies at most [`MAGAZINE_SIZE`] frame numbers. That copy happens
//! once per [`MAGAZINE_SIZE`] operations at most, under a lock the mover holds anyway, and
//! keeps the design free of pointers between CPUs (and of `unsafe`).
#![deny(unsafe_code)]

use crate::frame::Frame;

/// Frames per magazine: 32.
///
/// Chosen by sweeping 8, 16, 32, 64 and 128 with `mm/benches/compare.rs`
/// (`MM_MAGAZINE_SIZE=<n> MM_BENCH_BASELINE=0 MM_BENCH_RUNS=9 cargo bench -p mm --bench
/// compare`; host with 2 vCPUs, magazine mode, median of 9 runs, ns per operation at 1/2/4/8
/// threads; "global" is global lock acquisitions per 1000 operations in the 2-thread cross
/// workload, "depot/kop" depot lock acquisitions per 1000 operations):
///
/// | size | bulk ns/op          | cross ns/op           | global | depot/kop |
/// |------|---------------------|-----------------------|--------|-----------|
/// | 8    | 12.6 14.0 52.1 84.4 | 12.9 51.4 36.1 46.2   | 62     | 123       |
/// | 16   | 7.3 6.4 8.2 6.6     | 7.2 12.6 9.4 7.1      | 28     | 61        |
/// | 32   | 6.4 4.0 5.2 4.6     | 6.7 4.1 4.7 4.4       | 0.03   | 29        |
/// | 64   | 6.6 3.5 4.0 4.3     | 6.5 3.7 4.5 4.3       | 0.02   | 14        |
/// | 128  | 6.2 4.1 4.8 4.3     | 6.6 3.3 3.6 3.5       | 0.01   | 6         |
///
/// (`repeat` hits the loaded magazine at every size: 3 to 6 ns/op.) 32 is the knee: the
/// smallest size at which the global lock drops out of the steady state and the depot is
/// visited once per 32 operations; larger sizes gain under 1 ns/op while doubling the
/// frames parked per CPU (two magazines) and in the depot ([`crate::DEPOT_SLOTS`] magazines).
/// Override it at build time with `MM_MAGAZINE_SIZE` (2 to 1024) for another sweep; loom
/// builds default to 2 so their models stay small.
pub const MAGAZINE_SIZE: usize = match option_env!("MM_MAGAZINE_SIZE") {
    Some(text) => parse_magazine_size(text),
    None if cfg!(loom) => 2,
    None => 32,
};

/// Parses `MM_MAGAZINE_SIZE` at compile time; a bad value fails the build with a message.
const fn parse_magazine_size(text: &str) -> usize {
    let bytes = text.as_bytes();
    assert!(!bytes.is_empty(), "MM_MAGAZINE_SIZE is empty");
    let mut value = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i];
        assert!(digit.is_ascii_digit(), "MM_MAGAZINE_SIZE is not a number");
        value = value * 10 + (digit - b'0') as usize;
        assert!(value <= 1024, "MM_MAGAZINE_SIZE must be at most 1024");
        i += 1;
    }
    assert!(value >= 2, "MM_MAGAZINE_SIZE must be at least 2");
    value
}

/// A stack of up to [`MAGAZINE_SIZE`] frames.
#[derive(Clone, Copy)]
pub(crate) struct Magazine {
    count: usize,
    frames: [Frame; MAGAZINE_SIZE],
}

impl Magazine {
    /// An empty magazine.
    pub(crate) const fn new() -> Self {
        Self {
            count: 0,
            frames: [Frame::from_number(0); MAGAZINE_SIZE],
        }
    }

    /// Frames it holds.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds no frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether it holds [`MAGAZINE_SIZE`] frames.
    pub(crate) fn is_full(&self) -> bool {
        self.count == MAGAZINE_SIZE
    }

    /// Takes the most recently pushed frame (the cache-warmest one).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        // One comparison covers both "empty" (the index wraps to usize::MAX) and the bounds.
        let top = self.count.wrapping_sub(1);
        let frame = *self.frames.get(top)?;
        self.count = top;
        Some(frame)
    }

    /// Adds a frame; gives it back if the magazine is full.
    #[inline]
    pub(crate) fn push(&mut self, frame: Frame) -> Result<(), Frame> {
        let Some(slot) = self.frames.get_mut(self.count) else {
            return Err(frame);
        };
        *slot = frame;
        self.count += 1;
        Ok(())
    }

    /// Empties the magazine, returning what it held.
    pub(crate) fn take(&mut self) -> Magazine {
        core::mem::replace(self, Magazine::new())
    }

    /// The frames it holds, oldest first.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> &[Frame] {
        &self.frames[..self.count]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u64) -> Frame {
        Frame::from_number(n)
    }

    #[test]
    fn pushes_and_pops_in_stack_order() {
        let mut m = Magazine::new();
        assert!(m.is_empty());
        assert_eq!(m.pop(), None);
        m.push(f(1)).unwrap();
        m.push(f(2)).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.frames(), &[f(1), f(2)]);
        assert_eq!(m.pop(), Some(f(2)));
        assert_eq!(m.pop(), Some(f(1)));
        assert_eq!(m.pop(), None);
        assert!(m.is_empty());
    }

    #[test]
    fn full_magazine_refuses_a_push() {
        let mut m = Magazine::new();
        for n in 0..MAGAZINE_SIZE as u64 {
            m.push(f(n + 1)).unwrap();
        }
        assert!(m.is_full());
        assert_eq!(m.push(f(999)), Err(f(999)));
        assert_eq!(m.len(), MAGAZINE_SIZE);
        let taken = m.take();
        assert!(m.is_empty());
        assert!(taken.is_full());
    }

    #[test]
    fn parses_sizes_and_rejects_nothing_valid() {
        assert_eq!(parse_magazine_size("2"), 2);
        assert_eq!(parse_magazine_size("64"), 64);
        assert_eq!(parse_magazine_size("1024"), 1024);
        assert!(std::panic::catch_unwind(|| parse_magazine_size("1")).is_err());
        assert!(std::panic::catch_unwind(|| parse_magazine_size("x")).is_err());
        assert!(std::panic::catch_unwind(|| parse_magazine_size("2000")).is_err());
        assert!(std::panic::catch_unwind(|| parse_magazine_size("")).is_err());
    }
}
