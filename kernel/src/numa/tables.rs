//! Finding ACPI tables through the RSDP with the `acpi` crate: the handler that maps them, and
//! the SRAT and SLIT as validated byte slices.
//!
//! The `acpi` crate (5.2) checks the RSDP, walks the RSDT or XSDT and validates each table's
//! signature, length and checksum before handing it out. Its table lookup is all this module
//! uses: the SRAT and SLIT entry layouts of `acpi` 6.1 and 7.0-pre are wrong (a 16-bit entry
//! length where ACPI has 8 bits, so every field after it is read one byte late; memory
//! lengths built from the base's high half; a SLIT size check of N^4 bytes that rejects every
//! table with two or more domains), so [`super::srat`] reads the entries itself, from the
//! slices returned here.
//!
//! # Implementation
//! Under Limine base revision 3 the HHDM does not map ACPI memory, so [`Mapper`] maps each
//! requested region into `arch`'s MMIO window. Mappings are never removed (`arch` only adds
//! mappings, and the window is 512 GiB): the SRAT and SLIT are read once at boot, a few pages.

use core::ptr::NonNull;

use acpi::sdt::{SdtHeader, Signature};
use acpi::{AcpiError, AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
use x86_64::PhysAddr;

use crate::memory::{PageTableFrames, pin};

/// Maps physical ACPI memory for the `acpi` crate.
#[derive(Clone, Copy)]
pub struct Mapper;

impl AcpiHandler for Mapper {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let cpu = pin();
        let virt = arch::paging::map_mmio(
            PhysAddr::new(phys as u64),
            size as u64,
            &mut PageTableFrames::new(&cpu),
        )
        .unwrap_or_else(|e| panic!("cannot map ACPI memory at {phys:#x}+{size:#x}: {e:?}"));
        let start = NonNull::new(virt.as_mut_ptr::<T>()).expect("the MMIO window is not at 0");
        // SAFETY: `map_mmio` mapped every page of `phys..phys+size` at `virt` (rounded out to
        // whole pages) and never unmaps it, so `size` bytes at `start` stay readable; the
        // caller of this method guarantees that they hold a `T`.
        unsafe { PhysicalMapping::new(phys, start, size, size, Self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {
        // Mappings stay: see the module docs.
    }
}

/// The header of an ACPI table whose body is read as bytes ([`table_bytes`]).
#[repr(C, packed)]
pub struct RawTable<const SIG: u32> {
    header: SdtHeader,
}

/// [`RawTable`] parameter of the SRAT (ACPI 6.5 §5.2.16).
pub const SRAT: u32 = u32::from_le_bytes(*b"SRAT");
/// [`RawTable`] parameter of the SLIT (ACPI 6.5 §5.2.17).
pub const SLIT: u32 = u32::from_le_bytes(*b"SLIT");

// SAFETY: `RawTable` is `repr(C)` and starts with the SDT header, which is all the `acpi` crate
// reads through this trait; `SIGNATURE` is the table's.
unsafe impl<const SIG: u32> AcpiTable for RawTable<SIG> {
    const SIGNATURE: Signature = match SIG.to_le_bytes() {
        [b'S', b'R', b'A', b'T'] => Signature::SRAT,
        [b'S', b'L', b'I', b'T'] => Signature::SLIT,
        _ => panic!("RawTable is only instantiated for SRAT and SLIT"),
    };

    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

/// The ACPI tables behind the RSDP at physical `rsdp`.
pub fn open(rsdp: u64) -> Result<AcpiTables<Mapper>, AcpiError> {
    // SAFETY: `rsdp` is the bootloader's RSDP response, the physical address of the firmware's
    // RSDP; the crate validates its signature and checksum before following it.
    unsafe { AcpiTables::from_rsdp(Mapper, rsdp as usize) }
}

/// The whole table `T` (header included) as bytes, once the crate has validated its
/// signature, length and checksum; `Ok(None)` if the machine has no such table.
pub fn table_bytes<const SIG: u32>(
    tables: &AcpiTables<Mapper>,
) -> Result<Option<&'static [u8]>, AcpiError> {
    let mapping = match tables.find_table::<RawTable<SIG>>() {
        Ok(mapping) => mapping,
        Err(AcpiError::TableMissing(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let length = mapping.region_length();
    let start = mapping.virtual_start().as_ptr().cast::<u8>();
    // The mapping is never undone (see `Mapper::unmap_physical_region`), so the bytes outlive it.
    drop(mapping);
    // SAFETY: `find_table` mapped the whole table (`region_length` = the header's length,
    // validated against the checksum over exactly those bytes) and the mapping lives for the
    // rest of the kernel's life; firmware tables are not written while the kernel runs.
    Ok(Some(unsafe { core::slice::from_raw_parts(start, length) }))
}
