use super::*;
use crate::phys::FOUR_GIB;

const MIB: u64 = 0x10_0000;

fn e820(base: u64, length: u64, kind: u32) -> E820Entry {
    E820Entry { base, length, kind }
}

fn entry(base: u64, end: u64, kind: EntryType) -> Entry {
    Entry {
        base,
        length: end - base,
        kind,
    }
}

/// The map SeaBIOS gives QEMU q35 with `-m 512M`, in firmware order.
fn seabios_512m() -> [E820Entry; 7] {
    [
        e820(0, 0x9fc00, 1),
        e820(0x9fc00, 0x400, 2),
        e820(0xf0000, 0x10000, 2),
        e820(MIB, 0x1ffe_0000 - MIB, 1),
        e820(0x1ffe_0000, 0x20000, 2),
        e820(0xb000_0000, 0x1000_0000, 2),
        e820(0xfffc_0000, 0x40000, 2),
    ]
}

/// The protocol's guarantees: sorted, non-overlapping, no empty entries, usable and
/// bootloader-reclaimable entries page aligned.
fn assert_well_formed(map: &MemoryMap) {
    let e = map.entries();
    for w in e.windows(2) {
        assert!(w[0].end() <= w[1].base, "overlap or disorder: {:x?}", w);
    }
    for x in e {
        assert_ne!(x.length, 0);
        if x.kind == EntryType::USABLE || x.kind == EntryType::BOOTLOADER_RECLAIMABLE {
            assert_eq!(x.base % PAGE_SIZE, 0, "{x:x?}");
            assert_eq!(x.length % PAGE_SIZE, 0, "{x:x?}");
        }
    }
}

fn total(map: &MemoryMap, kind: EntryType) -> u64 {
    map.entries()
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.length)
        .sum()
}

#[test]
fn seabios_map_is_kept_with_usable_edges_shrunk() {
    let map = MemoryMap::from_e820(&seabios_512m()).unwrap();
    assert_well_formed(&map);
    let r = EntryType::RESERVED;
    assert_eq!(
        map.entries(),
        &[
            entry(0, 0x9f000, EntryType::USABLE),
            entry(0x9fc00, 0xa0000, r),
            entry(0xf0000, MIB, r),
            entry(MIB, 0x1ffe_0000, EntryType::USABLE),
            entry(0x1ffe_0000, 0x2000_0000, r),
            entry(0xb000_0000, 0xc000_0000, r),
            entry(0xfffc_0000, FOUR_GIB, r),
        ]
    );
}

#[test]
fn unsorted_input_gives_sorted_output() {
    let mut raw = seabios_512m();
    raw.reverse();
    let a = MemoryMap::from_e820(&raw).unwrap();
    let b = MemoryMap::from_e820(&seabios_512m()).unwrap();
    assert_eq!(a.entries(), b.entries());
}

#[test]
fn reserved_wins_over_overlapping_ram() {
    let raw = [
        e820(0, 0x100_0000, 1),
        e820(0x5800, 0x1000, 2),
        e820(0x20_0000, 0x1000, 3),
    ];
    let map = MemoryMap::from_e820(&raw).unwrap();
    assert_well_formed(&map);
    assert_eq!(
        map.entries(),
        &[
            entry(0, 0x5000, EntryType::USABLE),
            entry(0x5800, 0x6800, EntryType::RESERVED),
            entry(0x7000, 0x20_0000, EntryType::USABLE),
            entry(0x20_0000, 0x20_1000, EntryType::ACPI_RECLAIMABLE),
            entry(0x20_1000, 0x100_0000, EntryType::USABLE),
        ]
    );
}

#[test]
fn unaligned_usable_shrinks_inward_and_tiny_entries_vanish() {
    let raw = [
        e820(0x1234, 0x4444, 1),
        e820(0x10_0010, 0x800, 1),
        e820(0x20_0000, 0, 1),
    ];
    let map = MemoryMap::from_e820(&raw).unwrap();
    assert_eq!(map.entries(), &[entry(0x2000, 0x5000, EntryType::USABLE)]);
}

#[test]
fn holes_and_ram_above_4g_are_kept() {
    let raw = [
        e820(MIB, 0x7ff0_0000, 1),
        e820(FOUR_GIB, 0x1_0000_0000, 1),
        e820(0xfeff_c000, 0x4000, 2),
    ];
    let map = MemoryMap::from_e820(&raw).unwrap();
    assert_well_formed(&map);
    assert_eq!(map.entries().len(), 3);
    assert_eq!(
        map.entries()[2],
        entry(FOUR_GIB, 2 * FOUR_GIB, EntryType::USABLE)
    );
}

#[test]
fn adjacent_ram_entries_merge() {
    let raw = [e820(MIB, MIB, 1), e820(2 * MIB, MIB, 1)];
    let map = MemoryMap::from_e820(&raw).unwrap();
    assert_eq!(map.entries(), &[entry(MIB, 3 * MIB, EntryType::USABLE)]);
}

#[test]
fn too_many_e820_entries_is_an_error() {
    let raw = [e820(0, 0x1000, 1); MAX_E820 + 1];
    assert!(matches!(
        MemoryMap::from_e820(&raw),
        Err(Error::TooManyE820Entries(_))
    ));
}

#[test]
fn carving_splits_usable_and_widens_to_pages() {
    let mut map = MemoryMap::from_e820(&seabios_512m()).unwrap();
    let before = total(&map, EntryType::USABLE);
    map.carve(0x200_0123, 0x1_0000, EntryType::BOOTLOADER_RECLAIMABLE)
        .unwrap();
    assert_well_formed(&map);
    let carved = entry(0x200_0000, 0x201_1000, EntryType::BOOTLOADER_RECLAIMABLE);
    assert!(map.entries().contains(&carved), "{:x?}", map.entries());
    assert_eq!(total(&map, EntryType::USABLE), before - carved.length);
}

#[test]
fn carving_ignores_non_usable_bytes() {
    let mut map = MemoryMap::from_e820(&seabios_512m()).unwrap();
    let before: std::vec::Vec<Entry> = map.entries().to_vec();
    map.carve(0xa0000, 0x40000, EntryType::BOOTLOADER_RECLAIMABLE)
        .unwrap();
    assert_eq!(map.entries(), &before[..]);
    // A range straddling a reserved entry and a hole only takes the usable part.
    map.carve(0x9e000, 0x10_0000, EntryType::EXECUTABLE_AND_MODULES)
        .unwrap();
    assert_well_formed(&map);
    assert_eq!(map.entries()[0], entry(0, 0x9e000, EntryType::USABLE));
    assert_eq!(
        map.entries()[1],
        entry(0x9e000, 0x9f000, EntryType::EXECUTABLE_AND_MODULES)
    );
    assert_eq!(map.entries()[2].kind, EntryType::RESERVED);
    assert_eq!(
        map.entries()[4],
        entry(MIB, 0x19e000, EntryType::EXECUTABLE_AND_MODULES)
    );
}

#[test]
fn allocations_are_aligned_bounded_carved_and_disjoint() {
    let mut map = MemoryMap::from_e820(&seabios_512m()).unwrap();
    map.carve(MIB, 0x5000, EntryType::BOOTLOADER_RECLAIMABLE)
        .unwrap();
    let rec = EntryType::BOOTLOADER_RECLAIMABLE;
    let a = map.allocate(0x100, PAGE_SIZE, rec, MIB, FOUR_GIB).unwrap();
    assert_eq!(a, MIB + 0x5000, "first fit after the carved loader image");
    let b = map
        .allocate(
            0x3000,
            0x20_0000,
            EntryType::EXECUTABLE_AND_MODULES,
            MIB,
            FOUR_GIB,
        )
        .unwrap();
    assert_eq!(b, 0x20_0000);
    let c = map.allocate(0x1000, PAGE_SIZE, rec, MIB, FOUR_GIB).unwrap();
    assert_eq!(c, MIB + 0x6000);
    let low = map.allocate(0x2000, PAGE_SIZE, rec, 0x1000, MIB).unwrap();
    assert_eq!(low, 0x1000);
    assert_well_formed(&map);
    // The loader image and the two small allocations merged into one reclaimable entry.
    assert!(
        map.entries().contains(&entry(MIB, MIB + 0x7000, rec)),
        "{:x?}",
        map.entries()
    );
    assert!(
        map.entries()
            .contains(&entry(b, b + 0x3000, EntryType::EXECUTABLE_AND_MODULES))
    );
}

#[test]
fn allocation_failure_reports_the_size() {
    let mut map = MemoryMap::from_e820(&[e820(MIB, 0x4000, 1)]).unwrap();
    let rec = EntryType::BOOTLOADER_RECLAIMABLE;
    assert_eq!(
        map.allocate(0x5000, PAGE_SIZE, rec, 0, FOUR_GIB),
        Err(Error::OutOfMemory { bytes: 0x5000 })
    );
    assert!(
        map.allocate(0x1000, PAGE_SIZE, rec, 0, MIB).is_err(),
        "max_end is honoured"
    );
    assert_eq!(map.allocate(0x4000, PAGE_SIZE, rec, 0, FOUR_GIB), Ok(MIB));
    assert!(
        map.allocate(1, PAGE_SIZE, rec, 0, FOUR_GIB).is_err(),
        "everything is taken"
    );
    assert_eq!(total(&map, EntryType::USABLE), 0);
}

#[test]
fn many_scattered_carvings_fill_the_map_with_an_error_not_a_panic() {
    let mut map = MemoryMap::from_e820(&[e820(0, 0x1000_0000, 1)]).unwrap();
    let mut result = Ok(());
    for i in 0..MAX_ENTRIES as u64 {
        result = map.carve(i * 0x2000, 0x1000, EntryType::BOOTLOADER_RECLAIMABLE);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::TooManyMemoryMapEntries));
    assert_well_formed(&map);
}
