//! Checked access to the Limine responses.
//!
//! [`check`] verifies the base revision and that every response the kernel needs is present,
//! panicking with the name of the first missing one; afterwards the accessors return them.
//! All of this memory is bootloader-reclaimable: use it only before the reclaim point.
#![deny(unsafe_code)]

use limine::memory_map::Entry;
use limine::mp::Cpu;
use limine::response::{
    BootloaderInfoResponse, ExecutableAddressResponse, ExecutableCmdlineResponse, HhdmResponse,
    MemoryMapResponse, MpResponse, RsdpResponse,
};
use mm::PhysRange;

use super::requests::{
    BASE_REVISION, BOOTLOADER_INFO, EXECUTABLE_ADDRESS, EXECUTABLE_CMDLINE, HHDM, MEMORY_MAP, MP,
    RSDP, STACK_SIZE,
};

/// Panics unless the bootloader accepted base revision 3 and answered every request the
/// kernel needs (all but RSDP and MP: a machine without ACPI, or without a MADT, has neither,
/// and the kernel then runs on the BSP alone).
pub fn check() {
    assert!(
        BASE_REVISION.is_supported(),
        "the bootloader does not support Limine base revision 3"
    );
    bootloader_info();
    hhdm();
    check_memory_map(memory_map_entries());
    executable_address();
    executable_cmdline();
    require(STACK_SIZE.get_response(), "stack size");
}

fn require<T>(response: Option<&'static T>, name: &str) -> &'static T {
    response.unwrap_or_else(|| panic!("the bootloader did not answer the {name} request"))
}

/// The bootloader's name and version.
pub fn bootloader_info() -> &'static BootloaderInfoResponse {
    require(BOOTLOADER_INFO.get_response(), "bootloader info")
}

/// The HHDM offset.
pub fn hhdm() -> &'static HhdmResponse {
    require(HHDM.get_response(), "HHDM")
}

/// The memory map.
pub fn memory_map() -> &'static MemoryMapResponse {
    require(MEMORY_MAP.get_response(), "memory map")
}

/// Panics, naming the entries, unless the memory map is sane: no entry wraps around the
/// address space and no two share a byte (a usable entry overlapping the kernel image or
/// firmware data would hand those out as free frames). The order is not checked: the
/// protocol promises it, and nothing here depends on it.
fn check_memory_map(entries: &[&Entry]) {
    let wraps = |i: usize| entries[i].base.checked_add(entries[i].length).is_none();
    if let Some(i) = (0..entries.len()).find(|&i| wraps(i)) {
        panic!(
            "the memory map is corrupt: entry {i} ({}) wraps around",
            Described(entries[i])
        );
    }
    let range = |i: usize| PhysRange::new(entries[i].base, entries[i].base + entries[i].length);
    if let Some((i, j)) = mm::first_overlap(entries.len(), range) {
        panic!(
            "the memory map is corrupt: entry {i} ({}) overlaps entry {j} ({})",
            Described(entries[i]),
            Described(entries[j])
        );
    }
}

/// A memory-map entry as `<type> <base>+<length>`, formatted without the heap (there is none
/// yet when the map is checked).
struct Described<'a>(&'a Entry);

impl core::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = super::info::entry_type_name(self.0.entry_type);
        write!(f, "{kind} {:#x}+{:#x}", self.0.base, self.0.length)
    }
}

/// The memory map entries.
pub fn memory_map_entries() -> &'static [&'static Entry] {
    memory_map().entries()
}

/// The MP response: absent when the bootloader found no MADT (Limine gives none then, and
/// none without ACPI), in which case the kernel runs on the BSP alone.
pub fn mp() -> Option<&'static MpResponse> {
    MP.get_response()
}

/// CPUs the kernel will run: the MP response's, or the BSP alone without one.
pub fn cpu_count() -> usize {
    mp().map_or(1, |mp| mp.cpus().len())
}

/// The MP response's CPUs, the BSP first, then the APs in the bootloader's order (nothing
/// without an MP response).
pub fn cpus_bsp_first() -> impl Iterator<Item = &'static Cpu> {
    let cpus = mp().map_or(&[][..], |mp| mp.cpus());
    let bsp = mp().map_or(0, |mp| mp.bsp_lapic_id());
    let first = cpus.iter().filter(move |c| c.lapic_id == bsp);
    first
        .chain(cpus.iter().filter(move |c| c.lapic_id != bsp))
        .copied()
}

/// The RSDP response: optional, since the kernel reads no ACPI table itself (the bootloader
/// found the CPUs in the MADT), and a machine without ACPI has none.
pub fn rsdp() -> Option<&'static RsdpResponse> {
    RSDP.get_response()
}

/// The kernel image's load addresses.
pub fn executable_address() -> &'static ExecutableAddressResponse {
    require(EXECUTABLE_ADDRESS.get_response(), "executable address")
}

/// The kernel command line.
pub fn executable_cmdline() -> &'static ExecutableCmdlineResponse {
    require(EXECUTABLE_CMDLINE.get_response(), "executable cmdline")
}
