use super::*;
use std::string::ToString;
use std::vec::Vec;

/// A QEMU-like SRAT: CPUs 0-1 in domain 0, 2-3 in domain 1 (APIC type 0), memory 0-640K and
/// 1M-512M in domain 0, 512M-1G in domain 1, one disabled empty slot, checksum fixed.
fn qemu_srat() -> Vec<u8> {
    let mut t = std::vec![0u8; FIRST_ENTRY];
    t[..4].copy_from_slice(b"SRAT");
    for (id, domain) in [(0u8, 0u8), (1, 0), (2, 1), (3, 1)] {
        t.extend_from_slice(&[CPU_APIC, 16, domain, id, 1, 0, 0, 0]);
        t.extend_from_slice(&[0; 8]);
    }
    for (domain, base, len, flags) in [
        (0u32, 0u64, 0xa_0000u64, 1u32),
        (0, 0x10_0000, 0x1ff0_0000, 1),
        (1, 0x2000_0000, 0x2000_0000, 1),
        (0, 0, 0, 0),
    ] {
        t.extend_from_slice(&memory_entry(domain, base, len, flags));
    }
    finish(t)
}

fn memory_entry(domain: u32, base: u64, len: u64, flags: u32) -> Vec<u8> {
    let mut e = std::vec![MEMORY, 40];
    e.extend_from_slice(&domain.to_le_bytes());
    e.extend_from_slice(&[0; 2]);
    e.extend_from_slice(&base.to_le_bytes());
    e.extend_from_slice(&len.to_le_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&[0; 8]);
    e
}

fn x2apic_entry(domain: u32, id: u32, flags: u32) -> Vec<u8> {
    let mut e = std::vec![CPU_X2APIC, 24, 0, 0];
    for w in [domain, id, flags, 0, 0] {
        e.extend_from_slice(&w.to_le_bytes());
    }
    e
}

fn finish(mut t: Vec<u8>) -> Vec<u8> {
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut t);
    t
}

fn sums_to_zero(t: &[u8]) -> bool {
    t.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

/// `(domain, base, end)` of every enabled memory range.
fn ranges(t: &[u8]) -> Vec<(u32, u64, u64)> {
    memory(t)
        .map(|m| (m.domain, m.id_or_base, m.id_or_base + m.len))
        .collect()
}

fn cpu_ids(t: &[u8]) -> Vec<(u32, u64)> {
    cpus(t).map(|c| (c.domain, c.id_or_base)).collect()
}

#[test]
fn the_synthetic_table_reads_like_qemus() {
    let t = qemu_srat();
    assert!(sums_to_zero(&t));
    assert_eq!(cpu_ids(&t), [(0, 0), (0, 1), (1, 2), (1, 3)]);
    assert_eq!(
        ranges(&t),
        [
            (0, 0, 0xa_0000),
            (0, 0x10_0000, 0x2000_0000),
            (1, 0x2000_0000, 0x4000_0000)
        ]
    );
}

#[test]
fn overlap_stretches_a_range_into_another_domain() {
    let mut t = qemu_srat();
    let edit = corrupt(&mut t, Corruption::Overlap, &[0, 1, 2, 3]).unwrap();
    assert!(sums_to_zero(&t), "checksum fixed");
    assert_eq!(
        edit,
        Edit::Overlap {
            low_domain: 0,
            low_base: 0x10_0000,
            low_end: 0x2000_1000,
            high_domain: 1,
            high_base: 0x2000_0000
        }
    );
    let r = ranges(&t);
    let overlapping = r
        .iter()
        .any(|a| r.iter().any(|b| a.0 != b.0 && a.1 < b.2 && b.1 < a.2));
    assert!(overlapping, "{r:x?}");
    assert_eq!(
        edit.to_string(),
        "loader.corrupt=srat-overlap: SRAT memory of domain 0 [0x100000, 0x20001000) \
         overlaps domain 1 at 0x20000000"
    );
}

#[test]
fn cpu_names_an_apic_id_no_cpu_has() {
    let mut t = qemu_srat();
    let edit = corrupt(&mut t, Corruption::Cpu, &[0, 1, 2, 3]).unwrap();
    assert!(sums_to_zero(&t));
    assert_eq!(
        edit,
        Edit::Cpu {
            old: 3,
            new: 4,
            domain: 1
        }
    );
    assert_eq!(cpu_ids(&t), [(0, 0), (0, 1), (1, 2), (1, 4)]);
    assert_eq!(
        edit.to_string(),
        "loader.corrupt=srat-cpu: SRAT names APIC ID 4 (no such CPU) in domain 1 instead of \
         APIC ID 3, which has no domain"
    );
    // IDs the MADT lists are avoided too, and x2APIC entries are rewritten in their own field.
    let mut t = qemu_srat();
    t.truncate(FIRST_ENTRY);
    t.extend_from_slice(&x2apic_entry(7, 0x100, 1));
    t.extend_from_slice(&x2apic_entry(7, 0x101, 0));
    let mut t = finish(t);
    let edit = corrupt(&mut t, Corruption::Cpu, &[0, 1, 0x100]).unwrap();
    assert_eq!(
        edit,
        Edit::Cpu {
            old: 0x100,
            new: 2,
            domain: 7
        }
    );
    assert_eq!(cpu_ids(&t), [(7, 2)]);
}

#[test]
fn cpu_picks_a_present_cpu_over_a_hotplug_slot() {
    // `-smp 4,maxcpus=8`: the SRAT lists eight CPUs, the MADT enables four.
    let mut t = qemu_srat();
    t.truncate(FIRST_ENTRY);
    for id in 0..8u8 {
        t.extend_from_slice(&[CPU_APIC, 16, id / 4, id, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    let mut t = finish(t);
    let edit = corrupt(&mut t, Corruption::Cpu, &[0, 1, 2, 3]).unwrap();
    assert_eq!(
        edit,
        Edit::Cpu {
            old: 3,
            new: 8,
            domain: 0
        }
    );
}

#[test]
fn overlap_picks_the_closest_range_below() {
    let mut t = qemu_srat();
    t.truncate(FIRST_ENTRY);
    for (domain, base) in [
        (1u32, 0x4000_0000u64),
        (0, 0),
        (0, 0x1000_0000),
        (1, 0x2000_0000),
    ] {
        t.extend_from_slice(&memory_entry(domain, base, 0x1000_0000, 1));
    }
    let mut t = finish(t);
    let edit = corrupt(&mut t, Corruption::Overlap, &[]).unwrap();
    assert_eq!(
        edit,
        Edit::Overlap {
            low_domain: 0,
            low_base: 0x1000_0000,
            low_end: 0x4000_1000,
            high_domain: 1,
            high_base: 0x4000_0000
        }
    );
}

#[test]
fn memless_moves_a_cpu_domains_memory_away() {
    let mut t = qemu_srat();
    let edit = corrupt(&mut t, Corruption::Memless, &[]).unwrap();
    assert!(sums_to_zero(&t));
    assert_eq!(
        edit,
        Edit::Memless {
            from: 1,
            to: 0,
            ranges: 1
        }
    );
    assert!(ranges(&t).iter().all(|r| r.0 == 0));
    assert!(
        cpu_ids(&t).iter().any(|c| c.0 == 1),
        "domain 1 keeps its CPUs"
    );
    assert_eq!(
        edit.to_string(),
        "loader.corrupt=srat-memless: SRAT memory of domain 1 (1 ranges) moved to domain 0; \
         domain 1 keeps its CPUs and has no memory"
    );
}

#[test]
fn a_single_domain_cannot_be_corrupted() {
    let mut t = std::vec![0u8; FIRST_ENTRY];
    t[..4].copy_from_slice(b"SRAT");
    t.extend_from_slice(&[CPU_APIC, 16, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    t.extend_from_slice(&memory_entry(0, 0, 0x1000_0000, 1));
    let t = finish(t);
    for what in [Corruption::Overlap, Corruption::Memless] {
        let mut copy = t.clone();
        assert!(matches!(
            corrupt(&mut copy, what, &[0]),
            Err(Error::SratHook(_))
        ));
        assert_eq!(copy, t, "{what:?} left the table alone");
    }
    let mut empty = finish(std::vec![0u8; FIRST_ENTRY]);
    assert!(corrupt(&mut empty, Corruption::Cpu, &[]).is_err());
}

#[test]
fn hook_names() {
    assert_eq!(
        Corruption::from_name(b"srat-overlap"),
        Some(Corruption::Overlap)
    );
    assert_eq!(Corruption::from_name(b"srat-cpu"), Some(Corruption::Cpu));
    assert_eq!(
        Corruption::from_name(b"srat-memless"),
        Some(Corruption::Memless)
    );
    assert_eq!(Corruption::from_name(b"srat"), None);
}

#[test]
fn domains_above_255_are_read_from_both_fields() {
    let mut t = std::vec![0u8; FIRST_ENTRY];
    t.extend_from_slice(&[CPU_APIC, 16, 0x34, 5, 1, 0, 0, 0, 0, 0x12, 0, 0, 0, 0, 0, 0]);
    assert_eq!(cpu_ids(&finish(t)), [(0x1234, 5)]);
}
