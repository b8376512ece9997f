//! Reading the SRAT's affinity entries and the SLIT's distance matrix from their bytes.
//!
//! The tables arrive validated by the `acpi` crate (signature, length, checksum; see
//! [`super::tables`]). What is left is the entry walk, with every offset from the ACPI 6.5
//! specification and every read bounds-checked: a malformed table (an entry shorter than its
//! type requires, or running past the table) is an error, never a panic or an endless loop.
//! Only enabled entries are kept; other entry types (GICC, ITS, generic initiators) are
//! skipped by their length.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mm::{CpuAffinity, MemoryAffinity};

/// SRAT: bytes before the first entry (the SDT header, 4 reserved bytes, 8 reserved bytes).
const SRAT_ENTRIES_OFFSET: usize = 48;
/// SRAT entry type 0: Processor Local APIC/SAPIC Affinity Structure (§5.2.16.1), 16 bytes.
const LOCAL_APIC_AFFINITY: u8 = 0;
/// SRAT entry type 1: Memory Affinity Structure (§5.2.16.2), 40 bytes.
const MEMORY_AFFINITY: u8 = 1;
/// SRAT entry type 2: Processor Local x2APIC Affinity Structure (§5.2.16.3), 24 bytes.
const LOCAL_X2APIC_AFFINITY: u8 = 2;
/// Flags bit 0 of all three entry types: the entry is enabled (otherwise ignore it).
const ENABLED: u32 = 1;
/// SLIT: offset of the number of localities (u64); the matrix follows it (§5.2.17).
const SLIT_LOCALITIES_OFFSET: usize = 36;
/// SLIT: offset of the first matrix byte.
const SLIT_MATRIX_OFFSET: usize = 44;

/// The SRAT's enabled CPU and memory affinity entries, in table order.
#[derive(Default)]
pub struct Affinity {
    /// Memory ranges with their proximity domain.
    pub memory: Vec<MemoryAffinity>,
    /// CPUs (local APIC or x2APIC ID) with their proximity domain.
    pub cpus: Vec<CpuAffinity>,
}

/// Little-endian reads at `at` within one entry; `None` past its end.
struct Entry<'a>(&'a [u8]);

impl Entry<'_> {
    fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let bytes = self.0.get(at..at + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }

    fn u64_halves(&self, low: usize, high: usize) -> Option<u64> {
        Some(u64::from(self.u32(low)?) | u64::from(self.u32(high)?) << 32)
    }
}

/// The enabled affinity entries of the SRAT in `table` (the whole table, header included).
pub fn parse_srat(table: &[u8]) -> Result<Affinity, String> {
    let mut affinity = Affinity::default();
    let mut at = SRAT_ENTRIES_OFFSET;
    while at < table.len() {
        let rest = &table[at..];
        let kind = rest[0];
        let length = usize::from(*rest.get(1).ok_or("SRAT ends inside an entry header")?);
        if length < 2 || length > rest.len() {
            return Err(format!(
                "SRAT entry at offset {at} (type {kind}) has length {length}, {} bytes remain",
                rest.len()
            ));
        }
        let entry = Entry(&rest[..length]);
        parse_entry(kind, &entry, &mut affinity).ok_or_else(|| {
            format!("SRAT entry at offset {at} (type {kind}) is too short: {length} bytes")
        })?;
        at += length;
    }
    Ok(affinity)
}

/// Adds one entry's record if it is an enabled CPU or memory entry; `None` if it is too short.
fn parse_entry(kind: u8, entry: &Entry<'_>, affinity: &mut Affinity) -> Option<()> {
    match kind {
        LOCAL_APIC_AFFINITY => {
            let high = entry.u32(8)? >> 8; // bytes 9..12: domain bits 31:8
            let domain = u32::from(entry.u8(2)?) | high << 8;
            let hw_id = u32::from(entry.u8(3)?);
            if entry.u32(4)? & ENABLED != 0 {
                affinity.cpus.push(CpuAffinity { hw_id, domain });
            }
        }
        MEMORY_AFFINITY => {
            let domain = entry.u32(2)?;
            let base = entry.u64_halves(8, 12)?;
            let length = entry.u64_halves(16, 20)?;
            if entry.u32(28)? & ENABLED != 0 && length > 0 {
                affinity.memory.push(MemoryAffinity {
                    domain,
                    base,
                    length,
                });
            }
        }
        LOCAL_X2APIC_AFFINITY => {
            let domain = entry.u32(4)?;
            let hw_id = entry.u32(8)?;
            if entry.u32(12)? & ENABLED != 0 {
                affinity.cpus.push(CpuAffinity { hw_id, domain });
            }
        }
        _ => {}
    }
    Some(())
}

/// The SLIT's locality count and its row-major distance matrix.
pub fn parse_slit(table: &[u8]) -> Result<(usize, &[u8]), String> {
    let count = table
        .get(SLIT_LOCALITIES_OFFSET..SLIT_MATRIX_OFFSET)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("SLIT shorter than its header")?;
    let cells = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(n))
        .filter(|&cells| {
            cells
                .checked_add(SLIT_MATRIX_OFFSET)
                .is_some_and(|end| end <= table.len())
        })
        .ok_or_else(|| {
            format!(
                "SLIT of {} bytes cannot hold {count}x{count} distances",
                table.len()
            )
        })?;
    Ok((
        count as usize,
        &table[SLIT_MATRIX_OFFSET..SLIT_MATRIX_OFFSET + cells],
    ))
}
