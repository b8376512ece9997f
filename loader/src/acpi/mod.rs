//! ACPI: finding the RSDP, walking the RSDT/XSDT, and reading the CPUs out of the MADT.
//!
//! [`find_rsdp`] takes the address the firmware passed (PVH `rsdp_paddr`) and otherwise
//! searches where ACPI 6.5 section 5.2.5.1 says a BIOS puts it: the first KiB of the EBDA and
//! 0xE0000-0xFFFFF, on 16-byte boundaries. Every table is checked (signature, length, checksum)
//! before use; a bad one is an error naming it.
//!
//! [`parse_madt`] lists the CPUs the way Limine's `init_smp` does, so the MP response is the
//! same: enabled Processor Local APIC (type 0) and Local x2APIC (type 9) entries in MADT order;
//! a type 0 entry is skipped when a type 9 entry describes the same APIC ID; broadcast IDs
//! (0xff, 0xffffffff) are skipped; without x2APIC, IDs of 0xff and above cannot be addressed and
//! are skipped; duplicates are dropped. "Online capable" but disabled entries are hot-pluggable
//! CPUs that are not there at boot, so they are not started (Limine does the same). It also
//! collects the I/O APIC addresses (type 1), which the loader masks before hand-off.

use crate::Error;
use crate::answer::MpCpu;
use crate::phys::PhysMem;

pub mod edit;
pub mod srat;
#[cfg(test)]
mod tests;

/// How many CPUs the loader handles (QEMU q35 allows up to 4096 with x2APIC; 1024 is plenty).
pub const MAX_CPUS: usize = 1024;
/// How many I/O APICs the loader masks.
pub const MAX_IOAPICS: usize = 16;
/// Largest table the loader reads (a MADT for 1024 x2APIC CPUs is about 16 KiB).
const MAX_TABLE_LEN: u32 = 0x10_0000;
/// Length of the header every ACPI table starts with.
const SDT_HEADER_LEN: u32 = 36;
const MADT_ENABLED: u32 = 1;

/// A validated RSDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsdp {
    /// Its physical address.
    pub addr: u64,
    /// ACPI revision (0 = ACPI 1.0, RSDT only; 2+ = has the XSDT).
    pub revision: u8,
    /// Physical address of the RSDT.
    pub rsdt: u32,
    /// Physical address of the XSDT (0 if none).
    pub xsdt: u64,
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

/// The RSDP at `addr`, if one with valid checksums is there.
pub fn parse_rsdp(mem: &impl PhysMem, addr: u64) -> Option<Rsdp> {
    let v1 = mem.bytes(addr, 20).ok()?;
    if &v1[..8] != b"RSD PTR " || !checksum_ok(v1) {
        return None;
    }
    let revision = v1[15];
    let rsdt = mem.read_u32(addr + 16).ok()?;
    if revision < 2 {
        return Some(Rsdp {
            addr,
            revision,
            rsdt,
            xsdt: 0,
        });
    }
    let length = mem.read_u32(addr + 20).ok()?;
    if !(36..=4096).contains(&length) || !checksum_ok(mem.bytes(addr, length as usize).ok()?) {
        return None;
    }
    Some(Rsdp {
        addr,
        revision,
        rsdt,
        xsdt: mem.read_u64(addr + 24).ok()?,
    })
}

/// The RSDP: at `hint` if valid, else in the EBDA's first KiB, else in 0xE0000-0xFFFFF.
pub fn find_rsdp(mem: &impl PhysMem, hint: Option<u64>) -> Result<Rsdp, Error> {
    if let Some(rsdp) = hint.and_then(|h| parse_rsdp(mem, h)) {
        return Ok(rsdp);
    }
    let ebda = u64::from(mem.read_u16(0x40e).unwrap_or(0)) << 4;
    let ebda_area = if ebda >= 0x400 {
        ebda..ebda + 0x400
    } else {
        0..0
    };
    ebda_area
        .step_by(16)
        .chain((0xe_0000..0x10_0000).step_by(16))
        .find_map(|a| parse_rsdp(mem, a))
        .ok_or(Error::NoRsdp)
}

/// Validates the table at `addr` with the expected `signature`; returns its length.
fn check_table(mem: &impl PhysMem, addr: u64, signature: [u8; 4]) -> Result<u32, Error> {
    let bad = Error::BadAcpiTable { signature, addr };
    let length = mem.read_u32(addr + 4).map_err(|_| bad)?;
    if !(SDT_HEADER_LEN..=MAX_TABLE_LEN).contains(&length) {
        return Err(bad);
    }
    let bytes = mem.bytes(addr, length as usize).map_err(|_| bad)?;
    if bytes[..4] != signature || !checksum_ok(bytes) {
        return Err(bad);
    }
    Ok(length)
}

/// Physical address and length of the table with `signature` listed in the XSDT (or, for
/// ACPI 1.0, the RSDT); `None` if no table has it.
pub fn find_table(
    mem: &impl PhysMem,
    rsdp: &Rsdp,
    signature: [u8; 4],
) -> Result<Option<(u64, u32)>, Error> {
    let (root, width, root_sig) = match rsdp.xsdt {
        0 => (u64::from(rsdp.rsdt), 4, *b"RSDT"),
        xsdt => (xsdt, 8, *b"XSDT"),
    };
    let length = check_table(mem, root, root_sig)?;
    let count = (length - SDT_HEADER_LEN) / width;
    for i in 0..u64::from(count) {
        let at = root + u64::from(SDT_HEADER_LEN) + i * u64::from(width);
        let table = if width == 8 {
            mem.read_u64(at)?
        } else {
            u64::from(mem.read_u32(at)?)
        };
        if mem.bytes(table, 4).is_ok_and(|s| s == signature) {
            return Ok(Some((table, check_table(mem, table, signature)?)));
        }
    }
    Ok(None)
}

/// What the loader needs from the MADT.
#[derive(Clone, Debug)]
pub struct Madt {
    cpus: [MpCpu; MAX_CPUS],
    cpu_count: usize,
    ioapics: [u64; MAX_IOAPICS],
    ioapic_count: usize,
}

impl Madt {
    /// The CPUs to report and start, in MADT order (the BSP among them).
    pub fn cpus(&self) -> &[MpCpu] {
        &self.cpus[..self.cpu_count]
    }

    /// Physical addresses of the I/O APICs.
    pub fn ioapics(&self) -> &[u64] {
        &self.ioapics[..self.ioapic_count]
    }

    fn add_cpu(&mut self, cpu: MpCpu) -> Result<(), Error> {
        if self.cpus().iter().any(|c| c.lapic_id == cpu.lapic_id) {
            return Ok(());
        }
        *self
            .cpus
            .get_mut(self.cpu_count)
            .ok_or(Error::TooManyCpus)? = cpu;
        self.cpu_count += 1;
        Ok(())
    }
}

/// The MADT's interrupt controller structures as `(type, bytes)`, stopping at a malformed one.
fn structures(madt: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = madt.get(44..).unwrap_or(&[]);
    core::iter::from_fn(move || {
        let len = *rest.get(1)? as usize;
        if len < 2 || len > rest.len() {
            return None;
        }
        let (this, next) = rest.split_at(len);
        rest = next;
        Some((this[0], this))
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether an enabled type 9 entry describes APIC ID `id`.
fn has_x2apic_entry(madt: &[u8], id: u32) -> bool {
    structures(madt).any(|(t, e)| {
        t == 9 && e.len() >= 16 && u32_at(e, 4) == id && u32_at(e, 8) & MADT_ENABLED != 0
    })
}

/// Lists CPUs and I/O APICs of the MADT `madt` (the whole table); `is_x2apic` says whether the
/// APs will run in x2APIC mode (see the module docs).
pub fn parse_madt(madt: &[u8], is_x2apic: bool) -> Result<Madt, Error> {
    let mut out = Madt {
        cpus: [MpCpu::default(); MAX_CPUS],
        cpu_count: 0,
        ioapics: [0; MAX_IOAPICS],
        ioapic_count: 0,
    };
    for (kind, e) in structures(madt) {
        match kind {
            0 if e.len() >= 8 => {
                let (uid, id, flags) = (u32::from(e[2]), u32::from(e[3]), u32_at(e, 4));
                if id != 0xff && flags & MADT_ENABLED != 0 && !has_x2apic_entry(madt, id) {
                    out.add_cpu(MpCpu { uid, lapic_id: id })?;
                }
            }
            9 if e.len() >= 16 => {
                let (id, flags, uid) = (u32_at(e, 4), u32_at(e, 8), u32_at(e, 12));
                let addressable = is_x2apic || id < 0xff;
                if id != u32::MAX && addressable && flags & MADT_ENABLED != 0 {
                    out.add_cpu(MpCpu { uid, lapic_id: id })?;
                }
            }
            1 if e.len() >= 12 && out.ioapic_count < MAX_IOAPICS => {
                out.ioapics[out.ioapic_count] = u64::from(u32_at(e, 4));
                out.ioapic_count += 1;
            }
            _ => {}
        }
    }
    Ok(out)
}
