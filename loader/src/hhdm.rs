//! Which physical ranges the higher half direct map (HHDM) covers, per base revision.
//!
//! The rules are Limine's (`common/protos/limine.c`, `build_pagemap`), which PROTOCOL.md
//! summarises under "Entry memory layout":
//! - revision 3: exactly the memory map entries of types usable, bootloader-reclaimable,
//!   executable-and-modules and framebuffer. Reserved, ACPI, MMIO and page 0 are not mapped;
//! - revisions 1 and 2: all of the low 4 GiB, plus every entry above it except reserved and bad;
//! - revision 0: all of the low 4 GiB plus every entry above it, and the same again identity
//!   mapped from 0x1000 (the only revision with an identity map).
//!
//! Ranges are widened to whole pages, sorted and coalesced, so the mapper can use large pages
//! wherever neighbouring entries are contiguous.

use crate::Error;
use crate::memmap::{EntryType, MAX_ENTRIES, MemoryMap};
use crate::phys::{FOUR_GIB, PAGE_SIZE, align_down, align_up};
use core::ops::Range;

/// The HHDM offset Limine uses for 4-level paging without KASLR.
pub const HHDM_OFFSET: u64 = 0xffff_8000_0000_0000;

/// A sorted list of disjoint, non-touching physical ranges.
#[derive(Clone)]
pub struct RangeList {
    items: [Range<u64>; MAX_ENTRIES + 1],
    len: usize,
}

impl RangeList {
    fn new() -> Self {
        RangeList {
            items: core::array::from_fn(|_| 0..0),
            len: 0,
        }
    }

    /// The ranges, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &Range<u64>> {
        self.items[..self.len].iter()
    }

    /// Adds `r` (which must not start below the last range), merging it with the last range
    /// when they touch or overlap.
    fn push(&mut self, r: Range<u64>) -> Result<(), Error> {
        if r.start >= r.end {
            return Ok(());
        }
        if let Some(last) = self.items[..self.len].last_mut()
            && r.start <= last.end
        {
            last.end = last.end.max(r.end);
            return Ok(());
        }
        *self
            .items
            .get_mut(self.len)
            .ok_or(Error::TooManyMemoryMapEntries)? = r;
        self.len += 1;
        Ok(())
    }
}

/// Whether base `revision` direct-maps entries of type `kind` (above 4 GiB for revisions < 3).
fn is_direct_mapped(kind: EntryType, revision: u64) -> bool {
    match revision {
        0 => true,
        1 | 2 => kind != EntryType::RESERVED && kind != EntryType::BAD_MEMORY,
        _ => matches!(
            kind,
            EntryType::USABLE
                | EntryType::BOOTLOADER_RECLAIMABLE
                | EntryType::EXECUTABLE_AND_MODULES
                | EntryType::FRAMEBUFFER
        ),
    }
}

/// The entries selected by `revision`, page aligned; below 4 GiB only from revision 3 on,
/// because older revisions map the low 4 GiB whole (starting at `low_start`).
fn ranges(map: &MemoryMap, revision: u64, low_start: u64) -> Result<RangeList, Error> {
    let mut list = RangeList::new();
    let floor = if revision >= 3 { 0 } else { FOUR_GIB };
    if revision < 3 {
        list.push(low_start..FOUR_GIB)?;
    }
    for e in map
        .entries()
        .iter()
        .filter(|e| is_direct_mapped(e.kind, revision))
    {
        let start = align_down(e.base.max(floor), PAGE_SIZE);
        let end = align_up(e.end(), PAGE_SIZE).unwrap_or(align_down(u64::MAX, PAGE_SIZE));
        list.push(start..end)?;
    }
    Ok(list)
}

/// Physical ranges mapped at [`HHDM_OFFSET`] under base `revision`.
pub fn direct_map_ranges(map: &MemoryMap, revision: u64) -> Result<RangeList, Error> {
    ranges(map, revision, 0)
}

/// Physical ranges identity mapped under base `revision` (empty unless revision 0).
pub fn identity_ranges(map: &MemoryMap, revision: u64) -> Result<RangeList, Error> {
    if revision == 0 {
        ranges(map, 0, PAGE_SIZE)
    } else {
        Ok(RangeList::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::E820Entry;
    use std::vec::Vec;

    fn map_512m_with_high_ram() -> MemoryMap {
        let e = |base, length, kind| E820Entry { base, length, kind };
        let raw = [
            e(0, 0x9fc00, 1),
            e(0x9fc00, 0x400, 2),
            e(0xf0000, 0x10000, 2),
            e(0x10_0000, 0x1fe0_0000, 1),
            e(0x1ff0_0000, 0x10_0000, 3),
            e(0xb000_0000, 0x1000_0000, 2),
            e(FOUR_GIB, 0x4000_0000, 1),
            e(FOUR_GIB + 0x4000_0000, 0x1000, 2),
        ];
        let mut map = MemoryMap::from_e820(&raw).unwrap();
        map.carve(0, PAGE_SIZE, EntryType::RESERVED).unwrap();
        map.carve(0x10_0000, 0x8000, EntryType::BOOTLOADER_RECLAIMABLE)
            .unwrap();
        map.carve(0x20_0000, 0x2_0000, EntryType::EXECUTABLE_AND_MODULES)
            .unwrap();
        map
    }

    fn collect(list: &RangeList) -> Vec<(u64, u64)> {
        list.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn revision_3_maps_only_ram_types_and_coalesces_them() {
        let r = collect(&direct_map_ranges(&map_512m_with_high_ram(), 3).unwrap());
        assert_eq!(
            r,
            [
                (0x1000, 0x9f000),
                (0x10_0000, 0x1ff0_0000),
                (FOUR_GIB, FOUR_GIB + 0x4000_0000),
            ]
        );
        assert!(collect(&identity_ranges(&map_512m_with_high_ram(), 3).unwrap()).is_empty());
    }

    #[test]
    fn revisions_1_and_2_map_low_4g_whole_and_skip_reserved_above() {
        for rev in [1, 2] {
            let r = collect(&direct_map_ranges(&map_512m_with_high_ram(), rev).unwrap());
            assert_eq!(r, [(0, FOUR_GIB + 0x4000_0000)], "revision {rev}");
        }
    }

    #[test]
    fn revision_0_maps_everything_and_identity_maps_from_page_1() {
        let map = map_512m_with_high_ram();
        let end = FOUR_GIB + 0x4000_1000;
        assert_eq!(collect(&direct_map_ranges(&map, 0).unwrap()), [(0, end)]);
        assert_eq!(collect(&identity_ranges(&map, 0).unwrap()), [(0x1000, end)]);
    }
}
