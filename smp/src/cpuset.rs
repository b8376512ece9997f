//! A set of CPU indices, sized at boot, safe to update from every CPU at once.
#![deny(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// A bitmap of CPU indices `0..len`.
pub struct CpuSet {
    words: Box<[AtomicU64]>,
    len: usize,
}

impl CpuSet {
    /// An empty set over `len` CPUs.
    pub fn new(len: usize) -> Self {
        let words = (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        CpuSet { words, len }
    }

    /// How many CPUs the set ranges over.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set ranges over no CPU.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `cpu`; returns whether it was absent. Panics if `cpu` is out of range.
    pub fn insert(&self, cpu: usize) -> bool {
        assert!(cpu < self.len, "cpu {cpu} out of range 0..{}", self.len);
        let bit = 1u64 << (cpu % 64);
        self.words[cpu / 64].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < self.len && self.words[cpu / 64].load(Ordering::Acquire) & (1u64 << (cpu % 64)) != 0
    }

    /// Number of CPUs in the set.
    pub fn count(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones() as usize)
            .sum()
    }

    /// The CPUs in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&cpu| self.contains(cpu))
    }

    /// The CPUs in `0..len` not in the set, ascending.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.len).filter(|&cpu| !self.contains(cpu)).collect()
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}
