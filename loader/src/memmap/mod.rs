//! The memory map handed to the kernel, and the loader's physical allocator carved out of it.
//!
//! [`MemoryMap::from_e820`] turns the firmware's E820 table (as PVH passes it) into the map the
//! Limine protocol promises: entries sorted by base, non-overlapping, usable entries aligned to
//! 4 KiB (shrunk inward), zero-length entries dropped. Where E820 entries overlap, the more
//! restrictive type wins (reserved over ACPI over usable), so no byte is ever reported usable
//! while firmware claims it.
//!
//! Every byte the loader takes for itself is then *carved* out of the usable entries and retyped:
//! its own image, the module, the page tables and responses become `BOOTLOADER_RECLAIMABLE`, the
//! kernel image `EXECUTABLE_AND_MODULES`, page 0 `RESERVED`. [`MemoryMap::allocate`] is a
//! first-fit allocator over the usable entries that carves what it returns, so the map the kernel
//! receives accounts for every allocation and nothing the loader uses is ever reported usable.
//!
//! # Implementation
//! A fixed array of [`MAX_ENTRIES`] entries (no heap). E820 overlap resolution splits the address
//! space at every entry boundary and gives each elementary interval the highest-ranked type that
//! covers it. Carving replaces one usable entry by up to three pieces, then merges neighbours of
//! equal type, so repeated allocations do not grow the map.

use crate::Error;
use crate::paging::FrameSource;
use crate::phys::{FOUR_GIB, PAGE_SIZE, align_down, align_up};

#[cfg(test)]
mod tests;

/// A Limine memory map entry type (the `type` field of `struct limine_memmap_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryType(pub u64);

impl EntryType {
    /// Free RAM the kernel may use.
    pub const USABLE: Self = Self(0);
    /// Firmware-reserved, MMIO or otherwise unavailable.
    pub const RESERVED: Self = Self(1);
    /// ACPI tables, reclaimable after the kernel has read them.
    pub const ACPI_RECLAIMABLE: Self = Self(2);
    /// ACPI non-volatile storage.
    pub const ACPI_NVS: Self = Self(3);
    /// Defective RAM.
    pub const BAD_MEMORY: Self = Self(4);
    /// Loader data (page tables, stacks, responses): reclaimable once the kernel is done with it.
    pub const BOOTLOADER_RECLAIMABLE: Self = Self(5);
    /// The loaded kernel image and modules.
    pub const EXECUTABLE_AND_MODULES: Self = Self(6);
    /// A framebuffer.
    pub const FRAMEBUFFER: Self = Self(7);

    /// The Limine type for an E820 type (ACPI 6.5 table 15.1; unknown types are reserved).
    pub fn from_e820(e820_type: u32) -> Self {
        match e820_type {
            1 => Self::USABLE,
            3 => Self::ACPI_RECLAIMABLE,
            4 => Self::ACPI_NVS,
            5 => Self::BAD_MEMORY,
            _ => Self::RESERVED,
        }
    }

    /// Which type wins where firmware entries overlap: higher ranks are more restrictive.
    fn overlap_rank(self) -> u8 {
        match self {
            Self::USABLE => 0,
            Self::ACPI_RECLAIMABLE => 1,
            Self::ACPI_NVS => 2,
            Self::RESERVED => 3,
            _ => 4,
        }
    }

    /// A short name for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::USABLE => "usable",
            Self::RESERVED => "reserved",
            Self::ACPI_RECLAIMABLE => "acpi-reclaimable",
            Self::ACPI_NVS => "acpi-nvs",
            Self::BAD_MEMORY => "bad",
            Self::BOOTLOADER_RECLAIMABLE => "bootloader-reclaimable",
            Self::EXECUTABLE_AND_MODULES => "executable-and-modules",
            Self::FRAMEBUFFER => "framebuffer",
            _ => "unknown",
        }
    }
}

/// One memory map entry: `[base, base + length)` of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First byte.
    pub base: u64,
    /// Length in bytes (never zero in a [`MemoryMap`]).
    pub length: u64,
    /// What the range is.
    pub kind: EntryType,
}

impl Entry {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base + self.length
    }
}

/// One raw firmware entry (`struct hvm_memmap_table_entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// E820 type (1 = RAM, 2 = reserved, 3 = ACPI, 4 = NVS, 5 = unusable).
    pub kind: u32,
}

/// How many E820 entries the loader accepts (QEMU's PVH option ROM passes at most 128).
pub const MAX_E820: usize = 128;
/// How many entries a [`MemoryMap`] holds; far above the ~20 a PC firmware map has.
pub const MAX_ENTRIES: usize = 256;

/// Loader allocations start at 1 MiB: the low megabyte is left to firmware and the AP trampoline.
pub const LOADER_MIN_ADDR: u64 = 0x10_0000;
/// Loader allocations end below 4 GiB: the loader reaches memory through its identity map of
/// the low 4 GiB, and the AP trampoline loads the boot CR3 in 32-bit mode.
pub const LOADER_MAX_END: u64 = FOUR_GIB;

/// The sorted, non-overlapping memory map (see the module docs).
#[derive(Clone)]
pub struct MemoryMap {
    entries: [Entry; MAX_ENTRIES],
    len: usize,
}

const EMPTY: Entry = Entry {
    base: 0,
    length: 0,
    kind: EntryType::RESERVED,
};

impl MemoryMap {
    /// Builds the map from a raw E820 table (any order, overlaps allowed).
    pub fn from_e820(raw: &[E820Entry]) -> Result<Self, Error> {
        if raw.len() > MAX_E820 {
            return Err(Error::TooManyE820Entries(raw.len() as u32));
        }
        let mut bounds = [0u64; 2 * MAX_E820];
        let mut n = 0;
        for e in raw.iter().filter(|e| e.length != 0) {
            bounds[n] = e.base;
            bounds[n + 1] = e.base.saturating_add(e.length);
            n += 2;
        }
        let bounds = &mut bounds[..n];
        bounds.sort_unstable();
        let mut map = MemoryMap {
            entries: [EMPTY; MAX_ENTRIES],
            len: 0,
        };
        for w in bounds.windows(2).filter(|w| w[0] < w[1]) {
            if let Some(kind) = covering_type(raw, w[0], w[1]) {
                map.push_merged(Entry {
                    base: w[0],
                    length: w[1] - w[0],
                    kind,
                })?;
            }
        }
        map.align_usable();
        Ok(map)
    }

    /// The entries, sorted by base.
    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// Retypes the usable bytes of `[base, base + len)`, widened to whole pages, as `kind`.
    /// Bytes that are not usable (holes, firmware ranges, earlier carvings) are left alone.
    pub fn carve(&mut self, base: u64, len: u64, kind: EntryType) -> Result<(), Error> {
        if len == 0 {
            return Ok(());
        }
        let start = align_down(base, PAGE_SIZE);
        let end = align_up(base.saturating_add(len), PAGE_SIZE)
            .unwrap_or(align_down(u64::MAX, PAGE_SIZE));
        let mut i = 0;
        while i < self.len {
            let e = self.entries[i];
            if e.kind != EntryType::USABLE || e.end() <= start || e.base >= end {
                i += 1;
                continue;
            }
            let (lo, hi) = (e.base.max(start), e.end().min(end));
            let pieces = [
                Entry {
                    base: e.base,
                    length: lo - e.base,
                    kind: EntryType::USABLE,
                },
                Entry {
                    base: lo,
                    length: hi - lo,
                    kind,
                },
                Entry {
                    base: hi,
                    length: e.end() - hi,
                    kind: EntryType::USABLE,
                },
            ];
            i += self.replace(i, &pieces)?;
        }
        self.merge_neighbours();
        Ok(())
    }

    /// Takes `len` bytes (rounded up to pages) aligned to `align` from the lowest usable memory
    /// in `[min_addr, max_end)`, retypes them as `kind` and returns their base.
    pub fn allocate(
        &mut self,
        len: u64,
        align: u64,
        kind: EntryType,
        min_addr: u64,
        max_end: u64,
    ) -> Result<u64, Error> {
        let oom = Error::OutOfMemory { bytes: len };
        let size = align_up(len.max(1), PAGE_SIZE).ok_or(oom)?;
        let align = align.max(PAGE_SIZE);
        let found = self
            .entries()
            .iter()
            .filter(|e| e.kind == EntryType::USABLE)
            .find_map(|e| {
                let start = align_up(e.base.max(min_addr), align)?;
                let end = start.checked_add(size)?;
                (end <= e.end() && end <= max_end).then_some(start)
            });
        let start = found.ok_or(oom)?;
        self.carve(start, size, kind)?;
        Ok(start)
    }

    /// [`allocate`](Self::allocate) in the loader's window, as bootloader-reclaimable memory.
    pub fn allocate_reclaimable(&mut self, len: u64, align: u64) -> Result<u64, Error> {
        let kind = EntryType::BOOTLOADER_RECLAIMABLE;
        self.allocate(len, align, kind, LOADER_MIN_ADDR, LOADER_MAX_END)
    }

    /// Appends `e`, extending the last entry instead when it has the same type and touches it.
    fn push_merged(&mut self, e: Entry) -> Result<(), Error> {
        if let Some(last) = self.entries[..self.len].last_mut()
            && last.kind == e.kind
            && last.end() == e.base
        {
            last.length += e.length;
            return Ok(());
        }
        if self.len == MAX_ENTRIES {
            return Err(Error::TooManyMemoryMapEntries);
        }
        self.entries[self.len] = e;
        self.len += 1;
        Ok(())
    }

    /// Shrinks usable entries inward to page boundaries, dropping those left empty.
    fn align_usable(&mut self) {
        for e in self.entries[..self.len]
            .iter_mut()
            .filter(|e| e.kind == EntryType::USABLE)
        {
            let start = align_up(e.base, PAGE_SIZE).unwrap_or(u64::MAX);
            let end = align_down(e.end(), PAGE_SIZE);
            e.base = start.min(end);
            e.length = end.saturating_sub(start);
        }
        self.retain_nonempty();
    }

    /// Replaces entry `i` by the non-empty `pieces`; returns how many were inserted.
    fn replace(&mut self, i: usize, pieces: &[Entry]) -> Result<usize, Error> {
        let count = pieces.iter().filter(|p| p.length != 0).count();
        if self.len - 1 + count > MAX_ENTRIES {
            return Err(Error::TooManyMemoryMapEntries);
        }
        self.entries.copy_within(i + 1..self.len, i + count);
        self.len = self.len - 1 + count;
        for (slot, p) in self.entries[i..i + count]
            .iter_mut()
            .zip(pieces.iter().filter(|p| p.length != 0))
        {
            *slot = *p;
        }
        Ok(count)
    }

    /// Merges touching neighbours of equal type.
    fn merge_neighbours(&mut self) {
        let mut out = 0;
        for i in 0..self.len {
            let e = self.entries[i];
            if out > 0
                && self.entries[out - 1].kind == e.kind
                && self.entries[out - 1].end() == e.base
            {
                self.entries[out - 1].length += e.length;
            } else {
                self.entries[out] = e;
                out += 1;
            }
        }
        self.len = out;
    }

    fn retain_nonempty(&mut self) {
        let mut out = 0;
        for i in 0..self.len {
            if self.entries[i].length != 0 {
                self.entries[out] = self.entries[i];
                out += 1;
            }
        }
        self.len = out;
    }
}

impl FrameSource for MemoryMap {
    fn alloc_table(&mut self) -> Result<u64, Error> {
        self.allocate_reclaimable(PAGE_SIZE, PAGE_SIZE)
    }
}

/// The most restrictive type among the raw entries covering all of `[start, end)`.
fn covering_type(raw: &[E820Entry], start: u64, end: u64) -> Option<EntryType> {
    raw.iter()
        .filter(|e| e.length != 0 && e.base <= start && e.base.saturating_add(e.length) >= end)
        .map(|e| EntryType::from_e820(e.kind))
        .max_by_key(|t| t.overlap_rank())
}
