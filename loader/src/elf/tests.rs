use super::*;
use crate::memmap::E820Entry;
use crate::phys::TestMemory;
use crate::testutil::{Ph, R, RW, RX, elf, load};
use std::vec::Vec;

const BASE: u64 = HIGHER_HALF;

fn kernel() -> Vec<u8> {
    crate::testutil::small_kernel()
}

fn err(file: &[u8]) -> Error {
    parse(file).unwrap_err()
}

#[test]
fn plan_of_a_typical_kernel() {
    let k = parse(&kernel()).unwrap();
    assert_eq!(k.entry, BASE + 0x10);
    let vaddrs: Vec<u64> = k.segments().iter().map(|s| s.vaddr).collect();
    assert_eq!(vaddrs, [BASE, BASE + 0x2000, BASE + 0x3000]);
    assert_eq!(k.virtual_base(), BASE);
    assert_eq!(k.image_size(), 0x8000);
    assert_eq!(k.size_before_bss(), 0x3800);
    assert_eq!(k.alignment(), PAGE_SIZE);
}

#[test]
fn page_permissions_follow_p_flags() {
    let k = parse(&kernel()).unwrap();
    let rx = PagePerms {
        is_writable: false,
        is_executable: true,
    };
    let ro = PagePerms {
        is_writable: false,
        is_executable: false,
    };
    let rw = PagePerms {
        is_writable: true,
        is_executable: false,
    };
    assert_eq!(k.page_perms(BASE), Some(rx));
    assert_eq!(k.page_perms(BASE + 0x1000), Some(rx));
    assert_eq!(k.page_perms(BASE + 0x2000), Some(ro));
    assert_eq!(k.page_perms(BASE + 0x3000), Some(rw));
    assert_eq!(
        k.page_perms(BASE + 0x7000),
        Some(rw),
        "bss pages are mapped"
    );
    assert_eq!(k.page_perms(BASE + 0x8000), None);
}

#[test]
fn a_page_shared_by_two_segments_gets_both_rights() {
    let phs = [
        load(RX, 0x1000, BASE, 0x800, 0x800),
        load(RW, 0x1800, BASE + 0x800, 0x100, 0x100),
    ];
    let k = parse(&elf(BASE, &phs, 0x2000)).unwrap();
    assert_eq!(
        k.page_perms(BASE),
        Some(PagePerms {
            is_writable: true,
            is_executable: true
        })
    );
    assert_eq!(k.image_size(), PAGE_SIZE);
}

#[test]
fn loading_copies_file_bytes_and_zeroes_bss_and_gaps() {
    let file = kernel();
    let (file_phys, image_phys) = (0x10_0000u64, 0x20_0000u64);
    let mut mem = TestMemory::new(file_phys, 0x20_0000);
    mem.bytes[..file.len()].copy_from_slice(&file);
    mem.bytes[0x10_0000..].fill(0xaa);
    let k = parse(&file).unwrap();
    k.load(&mut mem, file_phys, image_phys).unwrap();
    let image = mem.bytes(image_phys, k.image_size() as usize).unwrap();
    assert_eq!(&image[..0x1800], &file[0x1000..0x2800], "text");
    assert!(
        image[0x1800..0x2000].iter().all(|&b| b == 0),
        "gap after text"
    );
    assert_eq!(&image[0x2000..0x2400], &file[0x2800..0x2c00], "rodata");
    assert_eq!(&image[0x3000..0x3800], &file[0x3000..0x3800], "data");
    assert!(image[0x3800..0x8000].iter().all(|&b| b == 0), "bss");
    assert_eq!(
        mem.bytes[0x10_0000 + 0x8000],
        0xaa,
        "nothing written past the image"
    );
}

#[test]
fn header_errors_say_what_is_wrong() {
    assert_eq!(
        err(b"myhost\n"),
        Error::NotAnExecutable("shorter than an ELF64 header")
    );
    let mut text = std::vec![b'#'; 200];
    text[..4].copy_from_slice(b"#!/b");
    assert_eq!(err(&text), Error::NotAnExecutable("no ELF magic"));
    let good = kernel();
    let patched = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        err(&f)
    };
    assert_eq!(patched(4, &[1]), Error::NotAnExecutable("not ELF64"));
    assert_eq!(
        patched(5, &[2]),
        Error::NotAnExecutable("not little-endian")
    );
    assert!(
        matches!(patched(16, &3u16.to_le_bytes()), Error::NotAnExecutable(m) if m.contains("ET_DYN"))
    );
    assert_eq!(
        patched(16, &1u16.to_le_bytes()),
        Error::NotAnExecutable("not an executable (e_type)")
    );
    assert_eq!(
        patched(18, &3u16.to_le_bytes()),
        Error::NotAnExecutable("not x86_64 (e_machine)")
    );
    assert_eq!(
        patched(56, &400u16.to_le_bytes()),
        Error::NotAnExecutable("program headers outside the file")
    );
    assert_eq!(
        patched(32, &u64::MAX.to_le_bytes()),
        Error::NotAnExecutable("program headers outside the file")
    );
}

#[test]
fn segment_errors() {
    let one = |p: Ph| err(&elf(BASE, &[p], 0x2000));
    assert_eq!(
        one(load(RX, 0x1000, BASE, 0x2000, 0x2000)),
        Error::SegmentOutsideFile { index: 0 }
    );
    assert_eq!(
        one(load(RX, 0x1000, BASE, 0x200, 0x100)),
        Error::SegmentOutsideFile { index: 0 }
    );
    assert_eq!(
        one(load(RX, u64::MAX, BASE, 0x2, 0x2)),
        Error::SegmentOutsideFile { index: 0 }
    );
    assert_eq!(
        one(load(RX, 0x1000, 0x40_0000, 0x100, 0x100)),
        Error::SegmentNotHigherHalf { vaddr: 0x40_0000 }
    );
    let wrap = one(load(RX, 0x1000, u64::MAX - 0x10, 0x1, 0x100));
    assert_eq!(
        wrap,
        Error::NotAnExecutable("segment wraps around the address space")
    );
    let overlapping = [
        load(RX, 0x1000, BASE, 0x100, 0x2000),
        load(RW, 0x1000, BASE + 0x1000, 0x100, 0x100),
    ];
    assert_eq!(
        err(&elf(BASE, &overlapping, 0x2000)),
        Error::SegmentsOverlap {
            first: BASE,
            second: BASE + 0x1000
        }
    );
}

#[test]
fn no_load_segment_or_too_many_or_bad_entry() {
    let note = Ph {
        kind: 4,
        flags: R,
        offset: 0x1000,
        vaddr: 0,
        filesz: 0x10,
        memsz: 0x10,
    };
    assert_eq!(
        err(&elf(BASE, &[note], 0x2000)),
        Error::NotAnExecutable("no PT_LOAD segment")
    );
    let empty_load = load(RW, 0x1000, BASE, 0, 0);
    assert_eq!(
        err(&elf(BASE, &[empty_load], 0x2000)),
        Error::NotAnExecutable("no PT_LOAD segment")
    );
    let many: Vec<Ph> = (0..MAX_SEGMENTS as u64 + 1)
        .map(|i| load(RX, 0x1000, BASE + i * 0x1000, 0x10, 0x10))
        .collect();
    assert_eq!(err(&elf(BASE, &many, 0x2000)), Error::TooManySegments);
    let data_only = [load(RW, 0x1000, BASE, 0x10, 0x10)];
    assert_eq!(
        err(&elf(BASE, &data_only, 0x2000)),
        Error::EntryOutsideSegments(BASE)
    );
    let text = [load(RX, 0x1000, BASE, 0x10, 0x10)];
    assert_eq!(
        err(&elf(BASE + 0x10, &text, 0x2000)),
        Error::EntryOutsideSegments(BASE + 0x10)
    );
}

/// `kernel()` with `p_align` of its first program header set to `align`.
fn with_first_align(align: u64) -> Vec<u8> {
    let mut f = kernel();
    let at = 64 + 48; // the first program header's p_align
    f[at..at + 8].copy_from_slice(&align.to_le_bytes());
    f
}

#[test]
fn alignment_is_clamped_for_any_p_align() {
    let align = |a: u64| parse(&with_first_align(a)).unwrap().alignment();
    assert_eq!(align(0), PAGE_SIZE);
    assert_eq!(align(0x20_0000), 0x20_0000);
    assert_eq!(align(0x30_0000), 0x40_0000, "rounded up to a power of two");
    assert_eq!(align(1 << 40), HUGE_PAGE_SIZE);
    assert_eq!(
        align(u64::MAX),
        HUGE_PAGE_SIZE,
        "no overflow past the largest power of two"
    );
}

#[test]
fn the_image_is_allocated_contiguously_or_reported_too_large() {
    let k = parse(&kernel()).unwrap();
    let usable = |len: u64| {
        let raw = [E820Entry {
            base: 0x10_0000,
            length: len,
            kind: 1,
        }];
        MemoryMap::from_e820(&raw).unwrap()
    };
    let mut map = usable(0x10_0000);
    let base = k.allocate_image(&mut map).unwrap();
    assert_eq!(base, 0x10_0000);
    let taken = map.entries().iter().find(|e| e.base == base).unwrap();
    assert_eq!(taken.kind, EntryType::EXECUTABLE_AND_MODULES);
    assert_eq!(taken.length, k.image_size());
    let mut small = usable(k.image_size() - PAGE_SIZE);
    assert_eq!(
        k.allocate_image(&mut small).unwrap_err(),
        Error::KernelDoesNotFit {
            bytes: 0x8000,
            align: PAGE_SIZE
        }
    );
}
