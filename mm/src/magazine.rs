//! A magazine: a fixed array of frames plus a count and a capacity, used as a stack.
//!
//! Magazines are values: a CPU cache holds two inline, a depot slot holds one, and moving a
//! magazine between them copies its array. That copy happens once per magazine of
//! operations at most, under a lock the mover holds anyway, and keeps the design free of
//! pointers between CPUs (and of `unsafe`). The array is always [`MAX_MAGAZINE_SIZE`] long;
//! the capacity in use is a run-time value that each node's depot adapts (Bonwick's
//! magazine resizing), between [`MIN_MAGAZINE_SIZE`] and [`MAX_MAGAZINE_SIZE`], starting at
//! [`DEFAULT_MAGAZINE_SIZE`].
#![deny(unsafe_code)]

use crate::frame::Frame;

/// The magazine size a depot starts with (and the size [`MAGAZINE_SIZE`] names): 32.
///
/// Chosen by sweeping fixed sizes 8, 16, 32, 64 and 128 with `mm/benches/compare.rs`
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
/// visited once per 32 operations. Adaptive depots start here and grow only when their lock
/// is contended (see [`crate::depot`]). Override it at build time with `MM_MAGAZINE_SIZE`
/// (a power of two from 8 to 256); loom builds default to 2 so their models stay small.
pub const DEFAULT_MAGAZINE_SIZE: usize = match option_env!("MM_MAGAZINE_SIZE") {
    Some(text) => parse_magazine_size(text),
    None if cfg!(loom) => 2,
    None => 32,
};

/// The starting magazine size, under its old name (the kernel prints it). A depot's size in
/// force is in [`crate::NodeStats::magazine_size`].
pub const MAGAZINE_SIZE: usize = DEFAULT_MAGAZINE_SIZE;

/// The largest magazine: 256 frames. Every magazine's array is this long (2 KiB), so a depot
/// can grow its size at run time without reallocating anything. Bonwick's kmem grows to
/// whatever the contention asks for; 256 bounds what two magazines per CPU and a full depot
/// can park (64 depot slots of 256 frames = 64 MiB per node) while already taking the depot
/// lock only once per 256 operations. Loom builds use 2.
pub const MAX_MAGAZINE_SIZE: usize = if cfg!(loom) { 2 } else { 256 };

/// The smallest magazine an adaptive depot shrinks to: 8 frames (under memory pressure a
/// small magazine strands few frames; below 8 the depot lock would be taken every few
/// operations, 123 times per 1000 already at 8 in the sweep above). Loom builds use 1.
pub const MIN_MAGAZINE_SIZE: usize = if cfg!(loom) { 1 } else { 8 };

const _: () = assert!(MAX_MAGAZINE_SIZE.is_power_of_two());
const _: () = assert!(MIN_MAGAZINE_SIZE <= DEFAULT_MAGAZINE_SIZE);
const _: () = assert!(DEFAULT_MAGAZINE_SIZE <= MAX_MAGAZINE_SIZE);

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

/// A magazine as depots and CPUs use it: room for [`MAX_MAGAZINE_SIZE`] frames, of which its
/// capacity is in use.
pub(crate) type Magazine = Stack<MAX_MAGAZINE_SIZE>;

/// A stack of at most `cap` frames in an array of `N` (`cap <= N`, `N` a power of two).
///
/// The capacity is a run-time value so a depot can change its magazine size: a magazine keeps
/// the capacity it was armed with until it is empty and armed again ([`Stack::arm`]).
#[derive(Clone, Copy)]
pub(crate) struct Stack<const N: usize> {
    count: usize,
    cap: usize,
    frames: [Frame; N],
}

impl<const N: usize> Stack<N> {
    /// An empty stack of capacity `N`.
    #[cfg(test)]
    pub(crate) const fn new() -> Self {
        Self::with_cap(N)
    }

    /// An empty stack of capacity `cap` (clamped to `1..=N`).
    pub(crate) const fn with_cap(cap: usize) -> Self {
        let cap = if cap == 0 {
            1
        } else if cap > N {
            N
        } else {
            cap
        };
        Self {
            count: 0,
            cap,
            frames: [Frame::from_number(0); N],
        }
    }

    /// An empty stack of capacity 0, all zero bytes (depot slots, so that a `static`
    /// allocator stays in `.bss`); armed before use.
    pub(crate) const fn zeroed() -> Self {
        Self {
            count: 0,
            cap: 0,
            frames: [Frame::from_number(0); N],
        }
    }

    /// Frames it holds.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Frames it may hold.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Sets the capacity of an empty stack (clamped to `1..=N`).
    pub(crate) fn arm(&mut self, cap: usize) {
        debug_assert!(self.is_empty(), "only an empty magazine changes size");
        self.cap = cap.clamp(1, N);
    }

    /// Whether it holds no frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether it holds as many frames as its capacity (a capacity-0 stack, all-zero bytes,
    /// is never full: it is armed before use).
    pub(crate) fn is_full(&self) -> bool {
        self.count > 0 && self.count >= self.cap
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

    /// Adds a frame; gives it back if the stack is at its capacity.
    #[inline]
    pub(crate) fn push(&mut self, frame: Frame) -> Result<(), Frame> {
        if self.count >= self.cap {
            return Err(frame);
        }
        // `count < cap <= N` and `N` is a power of two: the mask is the identity here and
        // replaces a second bounds check.
        self.frames[self.count & (N - 1)] = frame;
        self.count += 1;
        Ok(())
    }

    /// Moves this stack's frames and capacity into `to` (whose frames are overwritten),
    /// leaving this one empty. Copies only the frames held, not the whole array: a depot
    /// exchange at size 32 moves 256 bytes, not 2 KiB.
    #[inline]
    pub(crate) fn move_to(&mut self, to: &mut Self) {
        let n = self.count;
        to.frames[..n].copy_from_slice(&self.frames[..n]);
        to.count = n;
        to.cap = self.cap;
        self.count = 0;
    }

    /// Empties the stack, returning what it held; it keeps its capacity.
    #[cfg(test)]
    pub(crate) fn take(&mut self) -> Self {
        core::mem::replace(self, Self::with_cap(self.cap))
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
        m.arm(MAGAZINE_SIZE);
        for n in 0..MAGAZINE_SIZE as u64 {
            m.push(f(n + 1)).unwrap();
        }
        assert!(m.is_full());
        assert_eq!(m.push(f(999)), Err(f(999)));
        assert_eq!(m.len(), MAGAZINE_SIZE);
        assert_eq!(m.take().cap(), MAGAZINE_SIZE);
        assert!(m.is_empty());
    }

    #[test]
    fn capacity_is_armed_when_empty_and_clamped() {
        let mut m = Magazine::with_cap(0);
        assert_eq!(m.cap(), 1);
        m.arm(1000);
        assert_eq!(m.cap(), MAX_MAGAZINE_SIZE);
        m.arm(3);
        for n in 0..3 {
            m.push(f(n + 1)).unwrap();
        }
        assert!(m.is_full());
        assert_eq!(m.push(f(9)), Err(f(9)));
        let zeroed = Stack::<4> {
            count: 0,
            cap: 0,
            frames: [f(0); 4],
        };
        assert!(
            !zeroed.is_full(),
            "all-zero bytes are an empty magazine to arm"
        );
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
