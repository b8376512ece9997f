//! Typed physical frames and byte ranges of physical memory.
//!
//! A [`Frame`] is a 4 KiB frame number, never a bare integer, so a byte address cannot be
//! passed where a frame is meant. A [`PhysRange`] is what a memory map describes: a half-open
//! byte range whose edges need not be frame-aligned; [`PhysRange::frames`] trims it to the
//! whole frames it contains.
#![deny(unsafe_code)]

use core::fmt;
use core::ops::Range;

/// Size of a frame in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// log2 of [`FRAME_SIZE`].
const FRAME_SHIFT: u32 = FRAME_SIZE.trailing_zeros();

/// A 4 KiB physical frame number.
///
/// Frame numbers of 2^52 and above name no x86_64 physical address: the allocator never hands
/// them out and rejects them on free, and [`Frame::start_address`] of one wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Frame(u64);

impl Frame {
    /// The frame with number `n`.
    pub const fn from_number(n: u64) -> Frame {
        Frame(n)
    }

    /// This frame's number.
    pub const fn number(self) -> u64 {
        self.0
    }

    /// The physical byte address of the frame's first byte.
    pub const fn start_address(self) -> u64 {
        self.0 << FRAME_SHIFT
    }

    /// The frame that contains physical byte address `phys`.
    pub const fn containing_address(phys: u64) -> Frame {
        Frame(phys >> FRAME_SHIFT)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {:#x} (phys {:#x})", self.0, self.start_address())
    }
}

/// A half-open byte range of usable physical memory, edges possibly unaligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
}

impl PhysRange {
    /// The range `start..end` in bytes.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// The numbers of the whole frames inside the range: the start rounded up, the end rounded
    /// down. Empty when the range holds no whole frame (including `end <= start`).
    pub const fn frames(&self) -> Range<u64> {
        let first = self.start.div_ceil(FRAME_SIZE);
        let end = self.end / FRAME_SIZE;
        if end > first {
            first..end
        } else {
            first..first
        }
    }

    /// Bytes of the range that lie outside its whole frames (the trimmed, unaligned edges).
    pub const fn unaligned_bytes(&self) -> u64 {
        let frames = self.frames();
        let bytes = self.end.saturating_sub(self.start);
        bytes - (frames.end - frames.start) * FRAME_SIZE
    }

    /// Whether the two ranges share a byte (empty ranges share none).
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end && !self.is_empty() && !other.is_empty()
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The first pair `(i, j)`, `i < j`, of the ranges `range(0)..range(n)` that share a byte, if
/// any: the check a memory map must pass before any of it is trusted (a usable entry that
/// overlaps the kernel image or firmware data would hand those out as free frames).
///
/// Quadratic, and allocation-free, so it runs before there is a heap; memory maps have tens
/// to a few hundred entries.
pub fn first_overlap(n: usize, range: impl Fn(usize) -> PhysRange) -> Option<(usize, usize)> {
    (0..n).find_map(|i| {
        let a = range(i);
        (i + 1..n).find(|&j| a.overlaps(&range(j))).map(|j| (i, j))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_needs_a_shared_byte() {
        let r = PhysRange::new;
        assert!(r(0, 10).overlaps(&r(9, 20)));
        assert!(r(9, 20).overlaps(&r(0, 10)));
        assert!(r(0, 30).overlaps(&r(10, 20)), "containment");
        assert!(
            !r(0, 10).overlaps(&r(10, 20)),
            "adjacent ranges share no byte"
        );
        assert!(
            !r(5, 5).overlaps(&r(0, 10)),
            "an empty range overlaps nothing"
        );
        assert!(!r(8, 2).overlaps(&r(0, 10)), "nor does an inverted one");
    }

    #[test]
    fn first_overlap_finds_the_first_pair_in_any_order() {
        let map = [
            PhysRange::new(0x10_0000, 0x20_0000),
            PhysRange::new(0, 0x1000),
            PhysRange::new(0x1000, 0x9_f000),
            PhysRange::new(0x1f_f000, 0x30_0000),
            PhysRange::new(0x2000, 0x3000),
        ];
        assert_eq!(first_overlap(map.len(), |i| map[i]), Some((0, 3)));
        assert_eq!(
            first_overlap(3, |i| map[i]),
            None,
            "sorted or not, disjoint passes"
        );
        assert_eq!(first_overlap(0, |i| map[i]), None);
    }

    #[test]
    fn frame_address_round_trip() {
        let f = Frame::containing_address(0x1234_5678);
        assert_eq!(f.number(), 0x12345);
        assert_eq!(f.start_address(), 0x1234_5000);
        assert_eq!(Frame::from_number(7).start_address(), 7 * FRAME_SIZE);
        assert!(Frame::from_number(1) < Frame::from_number(2));
    }

    #[test]
    fn ranges_trim_unaligned_edges() {
        let r = PhysRange::new(0x1001, 0x5fff);
        assert_eq!(r.frames(), 2..5);
        assert_eq!(r.unaligned_bytes(), (0x2000 - 0x1001) + (0x5fff - 0x5000));
        let aligned = PhysRange::new(0x1000, 0x3000);
        assert_eq!(aligned.frames(), 1..3);
        assert_eq!(aligned.unaligned_bytes(), 0);
    }

    #[test]
    fn ranges_without_a_whole_frame_are_empty() {
        assert!(PhysRange::new(0x1001, 0x1fff).frames().is_empty());
        assert!(PhysRange::new(0x5000, 0x1000).frames().is_empty());
        assert_eq!(PhysRange::new(0x5000, 0x1000).unaligned_bytes(), 0);
        assert!(PhysRange::new(u64::MAX - 10, u64::MAX).frames().is_empty());
        assert_eq!(PhysRange::new(0x1001, 0x1fff).unaligned_bytes(), 0xffe);
    }

    #[test]
    fn frame_display_names_number_and_address() {
        let text = std::format!("{}", Frame::from_number(0x10));
        assert_eq!(text, "frame 0x10 (phys 0x10000)");
    }
}
