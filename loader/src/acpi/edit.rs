//! Rewriting ACPI tables in place for the test hooks: checksums and the root table's list.
//!
//! The `loader.hide=<table>` hook ([`hide_hook`]) drops a table from the RSDT and the XSDT, as
//! on a machine whose firmware never built it: the loader itself then finds no such table, and
//! neither does the kernel through the RSDP response. The SRAT hooks ([`super::srat`]) change a
//! table's contents. Either way the edited table keeps a valid checksum ([`fix_checksum`]), so
//! it stays parseable and only its meaning is wrong.
//!
//! # Implementation
//! QEMU's firmware builds the tables in RAM below 4 GiB (the E820 marks it reserved), which the
//! loader's identity map reaches. Should a table sit in memory that ignores writes (ROM), the
//! edit is detected by reading the table back ([`write_table`]) and reported as an error
//! instead of silently booting an unchanged machine.

use super::{Rsdp, SDT_HEADER_LEN, check_table, find_table};
use crate::Error;
use crate::phys::PhysMem;

/// Offset of the checksum byte in every ACPI table header.
const CHECKSUM: usize = 9;

/// Which tables the `loader.hide=` hook drops from the root tables (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hidden {
    /// `madt`: no MADT, so no MP response (the kernel runs on the BSP alone).
    pub madt: bool,
    /// `srat`: no SRAT, so no NUMA information.
    pub srat: bool,
}

impl Hidden {
    /// The hidden tables: the hook's name for each and its signature.
    pub fn tables(self) -> impl Iterator<Item = (&'static str, [u8; 4])> {
        let madt = self.madt.then_some(("madt", *b"APIC"));
        madt.into_iter()
            .chain(self.srat.then_some(("srat", *b"SRAT")))
    }
}

/// The `loader.hide=<table>` words of the command line: `madt`, `srat` (module docs).
pub fn hide_hook(cmdline: &[u8]) -> Result<Hidden, Error> {
    let mut hidden = Hidden::default();
    for what in crate::pvh::word_values(cmdline, b"loader.hide") {
        match what {
            b"madt" => hidden.madt = true,
            b"srat" => hidden.srat = true,
            _ => return Err(Error::UnknownHideHook),
        }
    }
    Ok(hidden)
}

/// Sets the checksum byte of `table` (a whole table, header included) so its bytes sum to 0.
pub fn fix_checksum(table: &mut [u8]) {
    table[CHECKSUM] = 0;
    let sum = table.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    table[CHECKSUM] = 0u8.wrapping_sub(sum);
}

/// Removes every entry equal to `target` from the root table `root` (an RSDT with 4-byte or
/// an XSDT with 8-byte entries, `width`), shrinking its length and fixing its checksum.
/// Returns how many entries it removed.
pub fn remove_from_root(root: &mut [u8], width: usize, target: u64) -> usize {
    let header = SDT_HEADER_LEN as usize;
    let count = (root.len() - header) / width;
    let entry = |root: &[u8], i: usize| {
        let mut word = [0u8; 8];
        word[..width].copy_from_slice(&root[header + i * width..][..width]);
        u64::from_le_bytes(word)
    };
    let mut kept = 0;
    for i in 0..count {
        if entry(root, i) != target {
            root.copy_within(
                header + i * width..header + (i + 1) * width,
                header + kept * width,
            );
            kept += 1;
        }
    }
    let len = (header + kept * width) as u32;
    root[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut root[..len as usize]);
    count - kept
}

/// Drops the table with `signature` from the RSDT and the XSDT. Returns its physical address,
/// or `None` if no root table lists it.
pub fn hide_table(
    mem: &mut impl PhysMem,
    rsdp: &Rsdp,
    signature: [u8; 4],
) -> Result<Option<u64>, Error> {
    let Some((addr, _)) = find_table(mem, rsdp, signature)? else {
        return Ok(None);
    };
    let roots = [
        (u64::from(rsdp.rsdt), 4, *b"RSDT"),
        (rsdp.xsdt, 8, *b"XSDT"),
    ];
    for (root, width, root_sig) in roots.into_iter().filter(|r| r.0 != 0) {
        let len = check_table(mem, root, root_sig)?;
        write_table(mem, root, len, root_sig, |t| {
            remove_from_root(t, width, addr);
        })?;
    }
    Ok(Some(addr))
}

/// Applies `edit` to the table at `addr` of `len` bytes, then checks that it reads back
/// changed and with a valid checksum: a table in memory that ignores writes is
/// [`Error::AcpiReadOnly`].
pub fn write_table(
    mem: &mut impl PhysMem,
    addr: u64,
    len: u32,
    signature: [u8; 4],
    edit: impl FnOnce(&mut [u8]),
) -> Result<(), Error> {
    let before = fingerprint(mem.bytes(addr, len as usize)?);
    edit(mem.bytes_mut(addr, len as usize)?);
    let new_len = check_table(mem, addr, signature)?;
    if fingerprint(mem.bytes(addr, len as usize)?) == before && new_len == len {
        return Err(Error::AcpiReadOnly { signature, addr });
    }
    Ok(())
}

/// A 64-bit FNV-1a hash of `bytes`: tells an edited table from an unchanged one.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
