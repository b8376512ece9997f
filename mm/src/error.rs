//! Errors of the allocator: values with a `Display`, never panics.
//!
//! Every failed call leaves the allocator as it was. A [`FreeError`] names the frame and the
//! CPU, so a double free is reported where it happens, not when a corrupted magazine later
//! hands the same frame out twice.
#![deny(unsafe_code)]

use core::fmt;

use crate::frame::Frame;

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// No free frame (or no free run of the requested size and alignment) exists on any layer:
    /// the per-CPU caches and the depot were drained into the global bitmap before giving up.
    OutOfMemory {
        /// The CPU that asked.
        cpu: usize,
    },
    /// The guard names a CPU that has no cache in the slice given to `attach_caches`.
    UnknownCpu {
        /// The CPU the guard named.
        cpu: usize,
    },
    /// A contiguous request for zero frames, or for more frames than the bitmap can hold.
    BadCount {
        /// The requested number of frames.
        count: usize,
    },
    /// A contiguous request aligned to more than the bitmap's reach.
    BadAlignment {
        /// The requested log2 alignment in frames.
        align_log2: u32,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfMemory { cpu } => write!(
                f,
                "out of memory on CPU {cpu}: no free frame left after draining every cache"
            ),
            Self::UnknownCpu { cpu } => write!(f, "CPU {cpu} has no attached frame cache"),
            Self::BadCount { count } => {
                write!(f, "cannot allocate a run of {count} frames")
            }
            Self::BadAlignment { align_log2 } => {
                write!(f, "alignment of 2^{align_log2} frames is beyond the bitmap")
            }
        }
    }
}

/// What was wrong with a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeErrorKind {
    /// The frame is managed but not allocated: a double free or a frame never handed out
    /// (detected in checked mode; the two look the same without a history of the frame).
    NotAllocated,
    /// The frame is not managed memory (outside every range given to `add_ranges`, frame 0,
    /// or beyond the bitmap's reach).
    OutsideManaged,
    /// The guard names a CPU that has no cache in the slice given to `attach_caches`.
    UnknownCpu,
    /// A contiguous free of zero frames, or of a run that wraps around.
    BadCount,
}

/// A rejected free: what was wrong, the offending frame and the CPU that freed it. The
/// allocator's state is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeError {
    /// What was wrong.
    pub kind: FreeErrorKind,
    /// The first offending frame (for a contiguous free, the first frame of the run that was
    /// not allocated or not managed).
    pub frame: Frame,
    /// The CPU that tried to free it.
    pub cpu: usize,
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FreeErrorKind::NotAllocated => "is not allocated (double free or never handed out)",
            FreeErrorKind::OutsideManaged => "is outside managed memory",
            FreeErrorKind::UnknownCpu => "comes from a CPU without an attached cache",
            FreeErrorKind::BadCount => "starts a run of invalid length",
        };
        write!(
            f,
            "free of {} on CPU {} rejected: it {what}",
            self.frame, self.cpu
        )
    }
}

/// Why `attach_caches` refused the caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Caches were attached before; they stay (frames may already live in them).
    AlreadyAttached,
    /// The slice holds no cache.
    Empty,
    /// The same cache appears at two CPU numbers: each CPU needs its own.
    Duplicate {
        /// The first CPU number naming it.
        first: usize,
        /// The second CPU number naming it.
        second: usize,
    },
    /// A cache's node is not a node of the layout in force (see
    /// [`crate::FrameAllocator::set_layout`], which must come first).
    UnknownNode {
        /// The CPU number.
        cpu: usize,
        /// Its cache's node.
        node: usize,
        /// Nodes in the layout.
        nodes: usize,
    },
}

/// Why `set_layout` refused a node table (the allocator is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A layout was set before.
    AlreadySet,
    /// Per-CPU caches are attached: frames may sit in magazines of the wrong node.
    CachesAttached,
    /// Node `node`'s table of managed spans cannot record its share of memory (more than
    /// `ranges::MAX_SPANS` pieces).
    SpanTableFull {
        /// The node.
        node: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadySet => write!(f, "a node layout is already set"),
            Self::CachesAttached => write!(f, "per-CPU caches are attached already"),
            Self::SpanTableFull { node } => {
                write!(f, "node {node}'s table of managed spans is full")
            }
        }
    }
}

/// A magazine size outside the bounds `set_magazine_size` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MagazineSizeError {
    /// The size asked for.
    pub size: usize,
}

impl fmt::Display for MagazineSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::magazine::{MAX_MAGAZINE_SIZE, MIN_MAGAZINE_SIZE};
        write!(
            f,
            "magazine size {} is outside {MIN_MAGAZINE_SIZE}..={MAX_MAGAZINE_SIZE}",
            self.size
        )
    }
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyAttached => write!(f, "per-CPU caches are already attached"),
            Self::Empty => write!(f, "no per-CPU cache given to attach"),
            Self::Duplicate { first, second } => {
                write!(f, "CPUs {first} and {second} were given the same cache")
            }
            Self::UnknownNode { cpu, node, nodes } => write!(
                f,
                "CPU {cpu}'s cache is on node {node}, but the layout has {nodes} node(s)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn free_error_names_frame_and_cpu() {
        let e = FreeError {
            kind: FreeErrorKind::NotAllocated,
            frame: Frame::from_number(0x42),
            cpu: 3,
        };
        let text = e.to_string();
        assert!(text.contains("frame 0x42"), "{text}");
        assert!(text.contains("CPU 3"), "{text}");
        assert!(text.contains("double free"), "{text}");
    }

    #[test]
    fn alloc_error_display_names_cpu() {
        let text = AllocError::OutOfMemory { cpu: 5 }.to_string();
        assert!(text.contains("CPU 5"), "{text}");
        assert!(AttachError::Empty.to_string().contains("no per-CPU cache"));
    }

    #[test]
    fn every_error_displays_its_values() {
        let cases = [
            (AllocError::UnknownCpu { cpu: 7 }.to_string(), "CPU 7"),
            (
                AllocError::BadCount { count: 0 }.to_string(),
                "run of 0 frames",
            ),
            (
                AllocError::BadAlignment { align_log2: 40 }.to_string(),
                "2^40 frames",
            ),
            (AttachError::AlreadyAttached.to_string(), "already attached"),
            (
                AttachError::Duplicate {
                    first: 1,
                    second: 4,
                }
                .to_string(),
                "CPUs 1 and 4",
            ),
        ];
        for (text, part) in cases {
            assert!(text.contains(part), "{text:?} lacks {part:?}");
        }
        for (kind, part) in [
            (FreeErrorKind::OutsideManaged, "outside managed memory"),
            (FreeErrorKind::UnknownCpu, "without an attached cache"),
            (FreeErrorKind::BadCount, "invalid length"),
        ] {
            let frame = Frame::from_number(9);
            let text = FreeError {
                kind,
                frame,
                cpu: 2,
            }
            .to_string();
            assert!(text.contains(part) && text.contains("frame 0x9"), "{text}");
            assert!(text.contains("CPU 2"), "{text}");
        }
    }
}
