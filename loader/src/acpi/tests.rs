use super::*;
use crate::phys::TestMemory;
use std::vec::Vec;

/// An ACPI table: header with `signature`, length and a fixed-up checksum, then `body`.
fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = std::vec![0u8; 36];
    t[..4].copy_from_slice(signature);
    t.extend_from_slice(body);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t[8] = 1;
    fix_checksum(&mut t, 9);
    t
}

fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    bytes[at] = 0u8.wrapping_sub(sum);
}

fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = std::vec![0u8; 36];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[15] = revision;
    r[16..20].copy_from_slice(&rsdt.to_le_bytes());
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    fix_checksum(&mut r[..20], 8);
    fix_checksum(&mut r, 32);
    r
}

fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
    let mut e = std::vec![0, 8, uid, id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

fn x2apic(id: u32, flags: u32, uid: u32) -> Vec<u8> {
    let mut e = std::vec![9, 16, 0, 0];
    for w in [id, flags, uid] {
        e.extend_from_slice(&w.to_le_bytes());
    }
    e
}

fn ioapic(addr: u32) -> Vec<u8> {
    let mut e = std::vec![1, 12, 0, 0];
    e.extend_from_slice(&addr.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e
}

fn madt(structures: &[Vec<u8>]) -> Vec<u8> {
    let mut body = std::vec![0x00, 0x00, 0xe0, 0xfe, 1, 0, 0, 0];
    for s in structures {
        body.extend_from_slice(s);
    }
    table(b"APIC", &body)
}

const XSDT: u64 = 0x8000;
const RSDT: u64 = 0x9000;
const FACP: u64 = 0xa000;
const APIC: u64 = 0xb000;

/// Firmware with an RSDP at `rsdp_at` (revision `rev`), an XSDT and RSDT listing a FACP and
/// the MADT `apic`.
fn firmware(rsdp_at: u64, rev: u8, apic: &[u8]) -> TestMemory {
    let mut m = TestMemory::new(0, 0x10_0000);
    let put = |m: &mut TestMemory, at: u64, b: &[u8]| {
        m.bytes_mut(at, b.len()).unwrap().copy_from_slice(b)
    };
    put(
        &mut m,
        rsdp_at,
        &rsdp(rev, RSDT as u32, if rev >= 2 { XSDT } else { 0 }),
    );
    let xsdt: Vec<u8> = [FACP, APIC].iter().flat_map(|a| a.to_le_bytes()).collect();
    put(&mut m, XSDT, &table(b"XSDT", &xsdt));
    let rsdt: Vec<u8> = [FACP as u32, APIC as u32]
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .collect();
    put(&mut m, RSDT, &table(b"RSDT", &rsdt));
    put(&mut m, FACP, &table(b"FACP", &[0; 8]));
    put(&mut m, APIC, apic);
    m
}

fn qemu_madt(n: u8) -> Vec<u8> {
    let mut s: Vec<Vec<u8>> = (0..n).map(|i| lapic(i, i, 1)).collect();
    s.push(ioapic(0xfec0_0000));
    madt(&s)
}

#[test]
fn rsdp_from_the_hint_the_bios_area_or_the_ebda() {
    let m = firmware(0xf5250, 2, &qemu_madt(2));
    let found = find_rsdp(&m, Some(0xf5250)).unwrap();
    assert_eq!(
        found,
        Rsdp {
            addr: 0xf5250,
            revision: 2,
            rsdt: RSDT as u32,
            xsdt: XSDT
        }
    );
    assert_eq!(
        find_rsdp(&m, None).unwrap().addr,
        0xf5250,
        "found by scanning 0xE0000-0xFFFFF"
    );
    assert_eq!(
        find_rsdp(&m, Some(0x1234)).unwrap().addr,
        0xf5250,
        "a bad hint falls back to the scan"
    );
    let mut m = firmware(0x9fc40, 2, &qemu_madt(2));
    m.write_u32(0x40e, 0x9fc0).unwrap();
    assert_eq!(
        find_rsdp(&m, None).unwrap().addr,
        0x9fc40,
        "found in the EBDA"
    );
}

#[test]
fn a_corrupt_rsdp_is_not_found() {
    let mut m = firmware(0xf5250, 2, &qemu_madt(2));
    m.bytes[0xf5250 + 10] ^= 1;
    assert_eq!(find_rsdp(&m, Some(0xf5250)), Err(Error::NoRsdp));
}

#[test]
fn madt_through_the_xsdt_or_the_rsdt() {
    let apic = qemu_madt(4);
    for rev in [2, 0] {
        let m = firmware(0xf5250, rev, &apic);
        let r = find_rsdp(&m, None).unwrap();
        assert_eq!(
            find_table(&m, &r, *b"APIC"),
            Ok(Some((APIC, apic.len() as u32))),
            "revision {rev}"
        );
        assert_eq!(find_table(&m, &r, *b"HPET"), Ok(None));
    }
}

#[test]
fn a_corrupt_madt_is_an_error_naming_it() {
    let mut m = firmware(0xf5250, 2, &qemu_madt(4));
    m.bytes[APIC as usize + 50] ^= 0x40;
    let r = find_rsdp(&m, None).unwrap();
    assert_eq!(
        find_table(&m, &r, *b"APIC"),
        Err(Error::BadAcpiTable {
            signature: *b"APIC",
            addr: APIC
        })
    );
}

fn cpus(madt_bytes: &[u8], is_x2apic: bool) -> Vec<(u32, u32)> {
    parse_madt(madt_bytes, is_x2apic)
        .unwrap()
        .cpus()
        .iter()
        .map(|c| (c.uid, c.lapic_id))
        .collect()
}

#[test]
fn qemu_madt_lists_cpus_in_order_and_the_ioapic() {
    let m = parse_madt(&qemu_madt(4), false).unwrap();
    assert_eq!(cpus(&qemu_madt(4), false), [(0, 0), (1, 1), (2, 2), (3, 3)]);
    assert_eq!(m.ioapics(), &[0xfec0_0000]);
}

#[test]
fn disabled_online_capable_and_broadcast_entries_are_skipped() {
    let t = madt(&[
        lapic(0, 0, 1),
        lapic(1, 1, 0),
        lapic(2, 2, 2),
        lapic(3, 0xff, 1),
        lapic(4, 4, 1),
        lapic(5, 4, 1),
    ]);
    assert_eq!(cpus(&t, false), [(0, 0), (4, 4)]);
}

#[test]
fn x2apic_entries_replace_lapic_entries_and_need_x2apic_above_254() {
    let t = madt(&[
        lapic(0, 0, 1),
        lapic(1, 1, 1),
        x2apic(1, 1, 101),
        x2apic(300, 1, 300),
        x2apic(u32::MAX, 1, 7),
    ]);
    assert_eq!(cpus(&t, true), [(0, 0), (101, 1), (300, 300)]);
    assert_eq!(cpus(&t, false), [(0, 0), (101, 1)]);
}

#[test]
fn a_malformed_structure_ends_the_list() {
    let mut broken = lapic(1, 1, 1);
    broken[1] = 0;
    assert_eq!(
        cpus(&madt(&[lapic(0, 0, 1), broken, lapic(2, 2, 1)]), false),
        [(0, 0)]
    );
    let mut overrun = lapic(1, 1, 1);
    overrun[1] = 200;
    assert_eq!(cpus(&madt(&[lapic(0, 0, 1), overrun]), false), [(0, 0)]);
}

#[test]
fn too_many_cpus_is_an_error() {
    let s: Vec<Vec<u8>> = (0..=MAX_CPUS as u32).map(|i| x2apic(i, 1, i)).collect();
    assert!(matches!(
        parse_madt(&madt(&s), true),
        Err(Error::TooManyCpus)
    ));
}

#[test]
fn hiding_a_table_drops_it_from_both_root_tables() {
    for rev in [2, 0] {
        let mut m = firmware(0xf5250, rev, &qemu_madt(2));
        let r = find_rsdp(&m, None).unwrap();
        assert_eq!(edit::hide_table(&mut m, &r, *b"APIC"), Ok(Some(APIC)));
        assert_eq!(find_table(&m, &r, *b"APIC"), Ok(None), "revision {rev}");
        assert_eq!(find_table(&m, &r, *b"FACP"), Ok(Some((FACP, 44))));
        let rsdt_only = Rsdp { xsdt: 0, ..r };
        assert_eq!(find_table(&m, &rsdt_only, *b"APIC"), Ok(None), "RSDT too");
        assert_eq!(m.read_u32(RSDT + 4), Ok(40), "one 4-byte entry left");
        assert_eq!(edit::hide_table(&mut m, &r, *b"SRAT"), Ok(None));
    }
}

#[test]
fn removing_root_entries_keeps_order_and_checksum() {
    let body: Vec<u8> = [1u64, 2, 1, 3]
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .collect();
    let mut t = table(b"XSDT", &body);
    assert_eq!(edit::remove_from_root(&mut t, 8, 1), 2);
    let len = u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize;
    assert_eq!(len, 36 + 16);
    assert!(checksum_ok(&t[..len]));
    assert_eq!(&t[36..52], [2u64, 3].map(u64::to_le_bytes).concat());
}

#[test]
fn the_hide_hook_is_read_from_the_command_line() {
    use edit::{Hidden, hide_hook};
    assert_eq!(hide_hook(b"test=boot"), Ok(Hidden::default()));
    let both = hide_hook(b"loader.hide=madt loader.hide=srat").unwrap();
    assert_eq!(
        both,
        Hidden {
            madt: true,
            srat: true
        }
    );
    assert_eq!(
        both.tables().collect::<Vec<_>>(),
        [("madt", *b"APIC"), ("srat", *b"SRAT")]
    );
    assert_eq!(hide_hook(b"loader.hide=apic"), Err(Error::UnknownHideHook));
}

/// Memory that ignores writes, like ROM: `bytes_mut` hands out a scratch copy.
struct Rom {
    mem: TestMemory,
    scratch: Vec<u8>,
}

impl PhysMem for Rom {
    fn bytes(&self, addr: u64, len: usize) -> Result<&[u8], Error> {
        self.mem.bytes(addr, len)
    }
    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Error> {
        self.scratch = self.mem.bytes(addr, len)?.to_vec();
        Ok(&mut self.scratch)
    }
    fn copy(&mut self, _: u64, _: u64, _: usize) -> Result<(), Error> {
        Ok(())
    }
}

#[test]
fn a_table_in_rom_is_an_error_not_a_silent_no_op() {
    let mem = firmware(0xf5250, 2, &qemu_madt(2));
    let r = find_rsdp(&mem, None).unwrap();
    let mut rom = Rom {
        mem,
        scratch: Vec::new(),
    };
    assert_eq!(
        edit::hide_table(&mut rom, &r, *b"APIC"),
        Err(Error::AcpiReadOnly {
            signature: *b"RSDT",
            addr: RSDT
        })
    );
}
