//! Why the kernel's affinity records were refused: [`TopologyError`], naming the offending
//! records so the kernel can print them before it falls back to one node.
#![deny(unsafe_code)]

use core::fmt;

use crate::topology::{MAX_AFFINITY_RANGES, MAX_NODES, MemoryAffinity};

/// Why an affinity description was refused. The kernel prints it and falls back to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// No memory affinity record with a non-zero length.
    Empty,
    /// More memory records than [`MAX_AFFINITY_RANGES`].
    TooManyRanges {
        /// Records given.
        count: usize,
    },
    /// More distinct memory domains than [`MAX_NODES`].
    TooManyNodes {
        /// The first domain that did not fit.
        domain: u32,
    },
    /// A memory record whose end wraps past 2^64.
    BadRange {
        /// The record.
        range: MemoryAffinity,
    },
    /// Two memory records overlap.
    Overlap {
        /// The record with the lower base.
        first: MemoryAffinity,
        /// The record that overlaps it.
        second: MemoryAffinity,
    },
    /// A present CPU that no CPU record places in a domain.
    CpuWithoutNode {
        /// Its hardware id.
        hw_id: u32,
    },
    /// A domain named by a CPU record that owns no memory.
    NodeWithoutMemory {
        /// The domain.
        domain: u32,
    },
    /// `cpu_nodes` is shorter than `cpu_hw_ids`.
    CpuSlots {
        /// CPUs present.
        cpus: usize,
        /// Slots given for their nodes.
        slots: usize,
    },
    /// The distance matrix does not hold `domains * domains` entries.
    DistanceSize {
        /// Its declared side.
        domains: usize,
        /// Entries given.
        len: usize,
    },
    /// A memory domain outside the distance matrix.
    DomainOutsideDistances {
        /// The domain.
        domain: u32,
        /// The matrix's side.
        domains: usize,
    },
    /// A distance below 10, or a local distance other than 10.
    BadDistance {
        /// From this domain.
        from: u32,
        /// To this domain.
        to: u32,
        /// The value found.
        distance: u8,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "no memory affinity range"),
            Self::TooManyRanges { count } => write!(
                f,
                "{count} memory affinity ranges, at most {MAX_AFFINITY_RANGES}"
            ),
            Self::TooManyNodes { domain } => {
                write!(f, "domain {domain} is one node more than {MAX_NODES}")
            }
            Self::BadRange { range } => write!(f, "memory range {range} wraps"),
            Self::Overlap { first, second } => {
                write!(f, "memory ranges {first} and {second} overlap")
            }
            Self::CpuWithoutNode { hw_id } => write!(f, "CPU hw id {hw_id} has no node"),
            Self::NodeWithoutMemory { domain } => {
                write!(f, "domain {domain} has CPUs but no memory")
            }
            Self::CpuSlots { cpus, slots } => {
                write!(f, "{cpus} CPUs but {slots} slots for their nodes")
            }
            Self::DistanceSize { domains, len } => write!(
                f,
                "distance matrix of {domains} domains has {len} entries, not {}",
                domains.saturating_mul(domains)
            ),
            Self::DomainOutsideDistances { domain, domains } => write!(
                f,
                "domain {domain} is outside the distance matrix of {domains} domains"
            ),
            Self::BadDistance { from, to, distance } => {
                write!(f, "distance {distance} from domain {from} to {to}")
            }
        }
    }
}

impl fmt::Display for MemoryAffinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.base.wrapping_add(self.length);
        write!(f, "{:#x}..{:#x} (domain {})", self.base, end, self.domain)
    }
}
