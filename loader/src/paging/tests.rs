use super::*;
use crate::elf::{self, HIGHER_HALF};
use crate::hhdm::HHDM_OFFSET;
use crate::memmap::{E820Entry, EntryType};
use crate::phys::{FOUR_GIB, TestMemory};
use crate::testutil::small_kernel;

const MIB: u64 = 0x10_0000;
const RWX: PagePerms = PagePerms {
    is_writable: true,
    is_executable: true,
};
const RO: PagePerms = PagePerms {
    is_writable: false,
    is_executable: false,
};
const ALL: PagingFeatures = PagingFeatures {
    has_nx: true,
    has_huge_pages: true,
};

/// Hands out consecutive frames from `next`.
struct Bump {
    next: u64,
}

impl FrameSource for Bump {
    fn alloc_table(&mut self) -> Result<u64, Error> {
        self.next += PAGE_SIZE;
        Ok(self.next - PAGE_SIZE)
    }
}

fn fresh() -> (TestMemory, Bump) {
    (TestMemory::new(0, 0x40_0000), Bump { next: 0x10_0000 })
}

#[test]
fn large_pages_follow_alignment() {
    let (mut mem, mut frames) = fresh();
    let mut m = Mapper::new(&mut mem, &mut frames, ALL).unwrap();
    m.map(HHDM_OFFSET + 0x1000, 0x1000, 0x4020_0000 - 0x1000, RWX)
        .unwrap();
    let root = m.root();
    let at = |v: u64| translate(&mem, root, HHDM_OFFSET + v);
    assert_eq!(at(0), None, "page 0 stays unmapped");
    assert_eq!(
        at(0x1234).map(|t| (t.phys, t.page_size)),
        Some((0x1234, PAGE_SIZE))
    );
    assert_eq!(at(0x1f_f000).unwrap().page_size, PAGE_SIZE);
    assert_eq!(
        at(0x20_0000).map(|t| (t.phys, t.page_size)),
        Some((0x20_0000, LARGE_PAGE_SIZE))
    );
    assert_eq!(at(0x3fff_ffff).unwrap().page_size, LARGE_PAGE_SIZE);
    assert_eq!(
        at(0x4010_0000).map(|t| (t.phys, t.page_size)),
        Some((0x4010_0000, LARGE_PAGE_SIZE))
    );
    assert_eq!(at(0x4020_0000), None);
}

#[test]
fn huge_pages_only_when_the_cpu_has_them() {
    for (has_huge_pages, size) in [(true, HUGE_PAGE_SIZE), (false, LARGE_PAGE_SIZE)] {
        let (mut mem, mut frames) = fresh();
        let features = PagingFeatures {
            has_nx: true,
            has_huge_pages,
        };
        let mut m = Mapper::new(&mut mem, &mut frames, features).unwrap();
        m.map(HHDM_OFFSET, 0, FOUR_GIB, RWX).unwrap();
        let root = m.root();
        let t = translate(&mem, root, HHDM_OFFSET + 0xfee0_0123).unwrap();
        assert_eq!((t.phys, t.page_size), (0xfee0_0123, size));
    }
}

#[test]
fn rights_and_nx_bits() {
    let (mut mem, mut frames) = fresh();
    let mut m = Mapper::new(&mut mem, &mut frames, ALL).unwrap();
    m.map(HIGHER_HALF, 0x20_0000, PAGE_SIZE, RO).unwrap();
    m.map(HIGHER_HALF + PAGE_SIZE, 0x20_1000, PAGE_SIZE, RWX)
        .unwrap();
    let root = m.root();
    assert_eq!(translate(&mem, root, HIGHER_HALF).unwrap().perms, RO);
    assert_eq!(
        translate(&mem, root, HIGHER_HALF + PAGE_SIZE)
            .unwrap()
            .perms,
        RWX
    );
    // Without NX support no entry may carry bit 63 (it would be a reserved-bit fault).
    let (mut mem, mut frames) = fresh();
    let features = PagingFeatures {
        has_nx: false,
        has_huge_pages: false,
    };
    let mut m = Mapper::new(&mut mem, &mut frames, features).unwrap();
    m.map(HIGHER_HALF, 0x20_0000, PAGE_SIZE, RO).unwrap();
    let root = m.root();
    assert!(
        translate(&mem, root, HIGHER_HALF)
            .unwrap()
            .perms
            .is_executable
    );
}

#[test]
fn mapping_twice_is_a_conflict() {
    let (mut mem, mut frames) = fresh();
    let mut m = Mapper::new(&mut mem, &mut frames, ALL).unwrap();
    m.map(HHDM_OFFSET, 0, LARGE_PAGE_SIZE, RWX).unwrap();
    let inside = HHDM_OFFSET + 0x5000;
    assert_eq!(
        m.map(inside, 0x5000, PAGE_SIZE, RWX),
        Err(Error::MappingConflict { virt: inside })
    );
    m.map(HIGHER_HALF, 0, PAGE_SIZE, RWX).unwrap();
    assert_eq!(
        m.map(HIGHER_HALF, 0x1000, PAGE_SIZE, RO),
        Err(Error::MappingConflict { virt: HIGHER_HALF })
    );
}

/// 64 MiB of backed memory with the usual PC holes, plus 1 GiB of (unbacked) RAM above 4 GiB.
fn machine() -> (TestMemory, MemoryMap) {
    let e = |base, length, kind| E820Entry { base, length, kind };
    let raw = [
        e(0, 0x9fc00, 1),
        e(0xf0000, 0x10000, 2),
        e(MIB, 63 * MIB, 1),
        e(64 * MIB, MIB, 3),
        e(0xfec0_0000, 0x1000, 2),
        e(FOUR_GIB, 0x4000_0000, 1),
    ];
    let mut map = MemoryMap::from_e820(&raw).unwrap();
    map.carve(0, PAGE_SIZE, EntryType::RESERVED).unwrap();
    (TestMemory::new(0, 65 * MIB as usize), map)
}

#[test]
fn kernel_address_space_for_revision_3() {
    let (mut mem, mut map) = machine();
    let elf = elf::parse(&small_kernel()).unwrap();
    let kind = EntryType::EXECUTABLE_AND_MODULES;
    let image_phys = map
        .allocate(elf.image_size(), elf.alignment(), kind, MIB, FOUR_GIB)
        .unwrap();
    let placement = KernelPlacement {
        elf: &elf,
        image_phys,
    };
    let root = build_kernel_tables(&mut mem, &mut map, placement, 3, ALL).unwrap();
    let at = |v: u64| translate(&mem, root, v);

    let text = at(HIGHER_HALF + 0x10).unwrap();
    assert_eq!(
        (text.phys, text.perms),
        (
            image_phys + 0x10,
            PagePerms {
                is_writable: false,
                is_executable: true
            }
        )
    );
    assert_eq!(at(HIGHER_HALF + 0x2000).unwrap().perms, RO);
    let bss = at(HIGHER_HALF + 0x7fff).unwrap();
    assert_eq!(
        (bss.phys, bss.perms),
        (
            image_phys + 0x7fff,
            PagePerms {
                is_writable: true,
                is_executable: false
            }
        )
    );
    assert_eq!(at(HIGHER_HALF + 0x8000), None);

    assert_eq!(at(HHDM_OFFSET + 0x1000).unwrap().phys, 0x1000);
    assert_eq!(
        at(HHDM_OFFSET + image_phys).unwrap().phys,
        image_phys,
        "kernel image is in the HHDM"
    );
    assert_eq!(
        at(HHDM_OFFSET + root).unwrap().phys,
        root,
        "page tables are in the HHDM"
    );
    assert_eq!(
        at(HHDM_OFFSET + FOUR_GIB + 5).unwrap().page_size,
        HUGE_PAGE_SIZE
    );
    for unmapped in [
        0,
        0xf0000,
        64 * MIB,
        0xfec0_0000,
        0xfee0_0000,
        FOUR_GIB + 0x4000_0000,
    ] {
        assert_eq!(
            at(HHDM_OFFSET + unmapped),
            None,
            "{unmapped:#x} must not be in the HHDM"
        );
    }
    for low in [0x1000, MIB, image_phys] {
        assert_eq!(at(low), None, "no identity map under revision 3");
    }
    let table_frames = map
        .entries()
        .iter()
        .filter(|e| e.kind == EntryType::BOOTLOADER_RECLAIMABLE);
    assert!(
        table_frames
            .clone()
            .any(|e| (e.base..e.end()).contains(&root)),
        "tables are reclaimable"
    );
}

#[test]
fn revision_0_adds_the_identity_map() {
    let (mut mem, mut map) = machine();
    let elf = elf::parse(&small_kernel()).unwrap();
    let placement = KernelPlacement {
        elf: &elf,
        image_phys: 2 * MIB,
    };
    map.carve(2 * MIB, elf.image_size(), EntryType::EXECUTABLE_AND_MODULES)
        .unwrap();
    let root = build_kernel_tables(&mut mem, &mut map, placement, 0, ALL).unwrap();
    assert_eq!(translate(&mem, root, 0x1000).unwrap().phys, 0x1000);
    assert_eq!(translate(&mem, root, 0), None);
    assert_eq!(
        translate(&mem, root, HHDM_OFFSET + 0xfee0_0000)
            .unwrap()
            .phys,
        0xfee0_0000
    );
}
