//! [`BootInfo`]: the kernel's own copy of the boot facts, and the boot summary.
//!
//! Built once on the BSP after the heap exists, from the Limine responses; from then on the
//! kernel reads this copy, so the responses' memory can be reclaimed.
#![deny(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use limine::memory_map::{Entry, EntryType};
use limine::mp::ResponseFlags;
use mm::PhysRange;
use spin::Once;

use super::responses;

/// Memory-map entry types in Limine's numbering, with the names printed in the summary.
const ENTRY_TYPES: [(EntryType, &str); 8] = [
    (EntryType::USABLE, "usable"),
    (EntryType::RESERVED, "reserved"),
    (EntryType::ACPI_RECLAIMABLE, "acpi-reclaimable"),
    (EntryType::ACPI_NVS, "acpi-nvs"),
    (EntryType::BAD_MEMORY, "bad-memory"),
    (EntryType::BOOTLOADER_RECLAIMABLE, "bootloader-reclaimable"),
    (EntryType::EXECUTABLE_AND_MODULES, "executable-and-modules"),
    (EntryType::FRAMEBUFFER, "framebuffer"),
];

/// The summary's name of a memory-map entry type (`unknown` for types Limine does not define).
pub fn entry_type_name(entry_type: EntryType) -> &'static str {
    ENTRY_TYPES
        .iter()
        .find(|(t, _)| *t == entry_type)
        .map_or("unknown", |(_, name)| name)
}

/// The entry types the HHDM maps under base revision 3.
const HHDM_TYPES: [EntryType; 4] = [
    EntryType::USABLE,
    EntryType::BOOTLOADER_RECLAIMABLE,
    EntryType::EXECUTABLE_AND_MODULES,
    EntryType::FRAMEBUFFER,
];

/// Entries and bytes of one memory-map type.
#[derive(Clone, Copy, Debug, Default)]
pub struct TypeTotal {
    /// Number of entries.
    pub entries: usize,
    /// Sum of their lengths.
    pub bytes: u64,
}

/// What the kernel keeps from the bootloader.
#[derive(Debug)]
pub struct BootInfo {
    /// Bootloader name.
    pub bootloader_name: String,
    /// Bootloader version.
    pub bootloader_version: String,
    /// Higher-half direct map offset.
    pub hhdm_offset: u64,
    /// Whether the bootloader put the local APICs in x2APIC mode.
    pub x2apic: bool,
    /// Whether the bootloader gave an MP response (without one the BSP runs alone).
    pub has_mp: bool,
    /// Local APIC ids in kernel CPU order: the BSP first.
    pub lapic_ids: Vec<u32>,
    /// The kernel command line.
    pub cmdline: String,
    /// Physical address of the ACPI RSDP, if the machine has ACPI.
    pub rsdp_phys: Option<u64>,
    /// Physical and virtual base of the kernel image.
    pub kernel_phys_base: u64,
    /// Virtual base of the kernel image.
    pub kernel_virt_base: u64,
    /// Number of memory-map entries.
    pub memory_map_entries: usize,
    /// Per-type totals, indexed like `ENTRY_TYPES`; unknown types are not counted.
    pub memory_by_type: [TypeTotal; 8],
    /// Usable ranges: what `memory::init` hands to `mm` at boot.
    pub usable: Vec<PhysRange>,
    /// Bootloader-reclaimable ranges: to be handed to `mm` once the kernel no longer needs
    /// the bootloader's data (see the crate docs on the reclaim point).
    pub bootloader_reclaimable: Vec<PhysRange>,
    /// The RAM the HHDM maps under base revision 3 (usable, bootloader-reclaimable,
    /// executable-and-modules, framebuffer entries): what the kernel's own tables map.
    pub hhdm_ranges: Vec<PhysRange>,
}

static BOOT_INFO: Once<BootInfo> = Once::new();

impl BootInfo {
    /// Copies the boot facts out of the Limine responses. Once, on the BSP, after the heap.
    pub fn capture() -> &'static BootInfo {
        BOOT_INFO.call_once(Self::from_limine)
    }

    /// The captured boot facts. Panics before [`BootInfo::capture`].
    pub fn get() -> &'static BootInfo {
        BOOT_INFO.get().expect("BootInfo used before capture")
    }

    fn from_limine() -> BootInfo {
        let loader = responses::bootloader_info();
        let exe = responses::executable_address();
        let entries = responses::memory_map_entries();
        BootInfo {
            bootloader_name: loader.name().to_string(),
            bootloader_version: loader.version().to_string(),
            hhdm_offset: responses::hhdm().offset(),
            x2apic: responses::mp().is_some_and(|mp| mp.flags().contains(ResponseFlags::X2APIC)),
            has_mp: responses::mp().is_some(),
            lapic_ids: lapic_ids(),
            cmdline: responses::executable_cmdline()
                .cmdline()
                .to_string_lossy()
                .into_owned(),
            rsdp_phys: responses::rsdp().map(|r| r.address() as u64),
            kernel_phys_base: exe.physical_base(),
            kernel_virt_base: exe.virtual_base(),
            memory_map_entries: entries.len(),
            memory_by_type: totals_by_type(),
            usable: ranges_of(entries, &[EntryType::USABLE]),
            bootloader_reclaimable: ranges_of(entries, &[EntryType::BOOTLOADER_RECLAIMABLE]),
            hhdm_ranges: ranges_of(entries, &HHDM_TYPES),
        }
    }

    /// The ranges `mm` manages: usable and bootloader-reclaimable memory.
    pub fn managed_ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.usable
            .iter()
            .chain(&self.bootloader_reclaimable)
            .copied()
    }

    /// Usable memory in bytes.
    pub fn usable_bytes(&self) -> u64 {
        self.memory_by_type[0].bytes
    }

    /// Prints the boot summary: bootloader, HHDM, memory map by type, CPUs.
    pub fn print_summary(&self) {
        arch::println!(
            "bootloader: {} {}",
            self.bootloader_name,
            self.bootloader_version
        );
        arch::println!("hhdm offset: {:#x}", self.hhdm_offset);
        arch::println!(
            "kernel image: phys={:#x} virt={:#x}",
            self.kernel_phys_base,
            self.kernel_virt_base
        );
        match self.rsdp_phys {
            Some(phys) => arch::println!("rsdp: phys={phys:#x}"),
            None => arch::println!("rsdp: none (no ACPI; the kernel does not need it)"),
        }
        arch::println!("memory map: {} entries", self.memory_map_entries);
        for ((_, name), total) in ENTRY_TYPES.iter().zip(&self.memory_by_type) {
            if total.entries > 0 {
                arch::println!(
                    "  {name:<24} {:>4} entries {:>10} KiB",
                    total.entries,
                    total.bytes / 1024
                );
            }
        }
        arch::println!("usable memory: {} MiB", self.usable_bytes() >> 20);
        arch::println!(
            "bootloader-reclaimable: {} ranges kept for release after the reclaim point",
            self.bootloader_reclaimable.len()
        );
        if self.has_mp {
            arch::println!(
                "cpus: {} (bsp lapic={}, loader x2apic={})",
                self.lapic_ids.len(),
                self.lapic_ids[0],
                self.x2apic
            );
        } else {
            arch::println!(
                "cpus: 1 (no MP response: the bootloader found no MADT; running on the BSP \
                 alone, lapic={} from CPUID)",
                self.lapic_ids[0]
            );
        }
        arch::println!("cmdline: {:?}", self.cmdline);
    }
}

/// Local APIC ids, the BSP first. Panics unless the MP response lists the BSP exactly once.
/// Without an MP response, the BSP's own ID from CPUID.
fn lapic_ids() -> Vec<u32> {
    let Some(mp) = responses::mp() else {
        return alloc::vec![arch::apic::cpuid_apic_id()];
    };
    let bsp = mp.bsp_lapic_id();
    let bsp_entries = mp.cpus().iter().filter(|c| c.lapic_id == bsp).count();
    assert!(
        bsp_entries == 1,
        "the MP response lists the BSP (lapic {bsp}) {bsp_entries} times, expected once"
    );
    responses::cpus_bsp_first().map(|c| c.lapic_id).collect()
}

fn totals_by_type() -> [TypeTotal; 8] {
    let mut totals = [TypeTotal::default(); 8];
    for entry in responses::memory_map_entries() {
        if let Some(i) = ENTRY_TYPES.iter().position(|(t, _)| *t == entry.entry_type) {
            totals[i].entries += 1;
            totals[i].bytes += entry.length;
        }
    }
    totals
}

/// The ranges of the memory-map entries whose type is one of `types`.
fn ranges_of(entries: &[&Entry], types: &[EntryType]) -> Vec<PhysRange> {
    entries
        .iter()
        .filter(|e| types.contains(&e.entry_type))
        .map(|e| PhysRange::new(e.base, e.base + e.length))
        .collect()
}
