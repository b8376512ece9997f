//! Limine protocol constants: magic numbers, request IDs and structure layouts.
//!
//! Values are from the Limine PROTOCOL.md / `limine.h` and the `limine` crate 0.5 the kernel
//! uses; the tests below check every ID, size and offset against that crate, so a typo here
//! cannot go unnoticed.
//!
//! # Implementation
//! All structures are little-endian and every field is 64-bit unless noted, so layouts are
//! described by byte offsets and written with [`crate::phys::PhysMem`] word writes.

/// First two words of every request ID.
pub const COMMON_MAGIC: [u64; 2] = [0xc7b1_dd30_df4c_8b88, 0x0a82_e883_a194_f07b];
/// First two words of the base revision tag `{ magic0, magic1, revision }`.
pub const BASE_REVISION_MAGIC: [u64; 2] = [0xf956_2b2d_5c95_a6c8, 0x6a7b_3849_4453_6bdc];
/// The requests start marker.
pub const REQUESTS_START_MARKER: [u64; 4] = [
    0xf6b8_f4b3_9de7_d1ae,
    0xfab9_1a69_40fc_b9cf,
    0x785c_6ed0_15d3_e316,
    0x181e_920a_7852_b9d9,
];
/// The requests end marker.
pub const REQUESTS_END_MARKER: [u64; 2] = [0xadc0_e053_1bb1_0d03, 0x9572_709f_3176_4c62];
/// The highest base revision this loader implements (the `limine` 0.5 crate asks for 3).
pub const SUPPORTED_BASE_REVISION: u64 = 3;

/// Last two words of the request IDs this loader answers.
pub mod id {
    /// Bootloader info.
    pub const BOOTLOADER_INFO: [u64; 2] = [0xf550_38d8_e2a1_202f, 0x2794_26fc_f5f5_9740];
    /// Firmware type.
    pub const FIRMWARE_TYPE: [u64; 2] = [0x8c2f_75d9_0bef_28a8, 0x7045_a468_8eac_00c3];
    /// Stack size.
    pub const STACK_SIZE: [u64; 2] = [0x224e_f046_0a8e_8926, 0xe1cb_0fc2_5f46_ea3d];
    /// Higher half direct map.
    pub const HHDM: [u64; 2] = [0x48dc_f1cb_8ad2_b852, 0x6398_4e95_9a98_244b];
    /// Paging mode.
    pub const PAGING_MODE: [u64; 2] = [0x95c1_a0ed_ab09_44cb, 0xa4e5_cb38_42f7_488a];
    /// Multiprocessor.
    pub const MP: [u64; 2] = [0x95a6_7b81_9a1b_857e, 0xa0b6_1b72_3b6a_73e0];
    /// Memory map.
    pub const MEMORY_MAP: [u64; 2] = [0x67cf_3d9d_378a_806f, 0xe304_acdf_c50c_3c62];
    /// Executable (kernel) address.
    pub const EXECUTABLE_ADDRESS: [u64; 2] = [0x71ba_7686_3cc5_5f63, 0xb264_4a48_c516_a487];
    /// Executable (kernel) command line.
    pub const EXECUTABLE_CMDLINE: [u64; 2] = [0x4b16_1536_e598_651e, 0xb390_ad4a_2f1f_303a];
    /// ACPI RSDP.
    pub const RSDP: [u64; 2] = [0xc5e7_7b6b_397e_7b43, 0x2763_7845_accd_cf3c];
}

/// Offset of `revision` in every request.
pub const REQUEST_REVISION: u64 = 32;
/// Offset of the `response` pointer in every request.
pub const REQUEST_RESPONSE: u64 = 40;
/// Offset of the first request-specific field (stack size, MP flags, paging mode).
pub const REQUEST_FIELDS: u64 = 48;
/// Size of a request with no fields of its own.
pub const REQUEST_SIZE: u64 = 48;

/// `firmware_type` for x86 BIOS.
pub const FIRMWARE_X86_BIOS: u64 = 0;
/// Paging mode value for 4-level paging.
pub const PAGING_MODE_4LEVEL: u64 = 0;
/// Request and response flag: x2APIC.
pub const MP_FLAG_X2APIC: u64 = 1;

/// `struct limine_mp_response` (x86_64): revision u64, flags u32, bsp_lapic_id u32,
/// cpu_count u64, cpus pointer.
pub mod mp_response {
    /// `flags` (u32).
    pub const FLAGS: u64 = 8;
    /// `bsp_lapic_id` (u32).
    pub const BSP_LAPIC_ID: u64 = 12;
    /// `cpu_count`.
    pub const CPU_COUNT: u64 = 16;
    /// `cpus` (pointer to an array of pointers).
    pub const CPUS: u64 = 24;
    /// Size of the response.
    pub const SIZE: u64 = 32;
}

/// `struct limine_mp_info` (x86_64): processor_id u32, lapic_id u32, reserved u64,
/// goto_address u64, extra_argument u64.
pub mod mp_info {
    /// `processor_id` (u32): the ACPI processor UID.
    pub const PROCESSOR_ID: u64 = 0;
    /// `lapic_id` (u32).
    pub const LAPIC_ID: u64 = 4;
    /// `reserved`: Limine keeps the AP's stack top here; so does this loader.
    pub const STACK_TOP: u64 = 8;
    /// `goto_address`: the parked AP jumps here once it is non-zero.
    pub const GOTO_ADDRESS: u64 = 16;
    /// `extra_argument`.
    pub const EXTRA_ARGUMENT: u64 = 24;
    /// Size of the structure.
    pub const SIZE: u64 = 32;
}

/// Size of `struct limine_memmap_entry` (base, length, type).
pub const MEMMAP_ENTRY_SIZE: u64 = 24;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::as_bytes;
    use core::mem::{offset_of, size_of};
    use limine::request as lr;

    fn ours(tail: [u64; 2]) -> [u64; 4] {
        [COMMON_MAGIC[0], COMMON_MAGIC[1], tail[0], tail[1]]
    }

    #[test]
    fn request_ids_match_the_limine_crate() {
        assert_eq!(
            lr::BootloaderInfoRequest::new().id(),
            &ours(id::BOOTLOADER_INFO)
        );
        assert_eq!(
            lr::FirmwareTypeRequest::new().id(),
            &ours(id::FIRMWARE_TYPE)
        );
        assert_eq!(lr::StackSizeRequest::new().id(), &ours(id::STACK_SIZE));
        assert_eq!(lr::HhdmRequest::new().id(), &ours(id::HHDM));
        assert_eq!(lr::PagingModeRequest::new().id(), &ours(id::PAGING_MODE));
        assert_eq!(lr::MpRequest::new().id(), &ours(id::MP));
        assert_eq!(lr::MemoryMapRequest::new().id(), &ours(id::MEMORY_MAP));
        assert_eq!(
            lr::ExecutableAddressRequest::new().id(),
            &ours(id::EXECUTABLE_ADDRESS)
        );
        assert_eq!(
            lr::ExecutableCmdlineRequest::new().id(),
            &ours(id::EXECUTABLE_CMDLINE)
        );
        assert_eq!(lr::RsdpRequest::new().id(), &ours(id::RSDP));
    }

    #[test]
    fn structure_layouts_match_the_limine_crate() {
        use limine::{memory_map, mp, response};
        assert_eq!(size_of::<lr::HhdmRequest>() as u64, REQUEST_SIZE);
        assert_eq!(size_of::<lr::StackSizeRequest>() as u64, REQUEST_FIELDS + 8);
        assert_eq!(size_of::<lr::MpRequest>() as u64, REQUEST_FIELDS + 8);
        assert_eq!(
            size_of::<lr::PagingModeRequest>() as u64,
            REQUEST_FIELDS + 24
        );
        assert_eq!(size_of::<response::MpResponse>() as u64, mp_response::SIZE);
        assert_eq!(size_of::<mp::Cpu>() as u64, mp_info::SIZE);
        assert_eq!(offset_of!(mp::Cpu, id) as u64, mp_info::PROCESSOR_ID);
        assert_eq!(offset_of!(mp::Cpu, lapic_id) as u64, mp_info::LAPIC_ID);
        assert_eq!(
            offset_of!(mp::Cpu, goto_address) as u64,
            mp_info::GOTO_ADDRESS
        );
        assert_eq!(offset_of!(mp::Cpu, extra) as u64, mp_info::EXTRA_ARGUMENT);
        assert_eq!(size_of::<memory_map::Entry>() as u64, MEMMAP_ENTRY_SIZE);
        assert_eq!(offset_of!(memory_map::Entry, entry_type), 16);
        assert_eq!(size_of::<response::ExecutableAddressResponse>(), 24);
        assert_eq!(size_of::<response::BootloaderInfoResponse>(), 24);
        assert_eq!(size_of::<response::HhdmResponse>(), 16);
        assert_eq!(size_of::<response::RsdpResponse>(), 16);
        assert_eq!(size_of::<response::ExecutableCmdlineResponse>(), 16);
        assert_eq!(size_of::<response::FirmwareTypeResponse>(), 16);
        assert_eq!(size_of::<response::PagingModeResponse>(), 16);
        assert_eq!(size_of::<response::MemoryMapResponse>(), 24);
        let bios = limine::firmware_type::FirmwareType::X86_BIOS;
        assert_eq!(as_bytes(&bios), FIRMWARE_X86_BIOS.to_le_bytes());
        let four_level = limine::paging::Mode::FOUR_LEVEL;
        assert_eq!(as_bytes(&four_level), PAGING_MODE_4LEVEL.to_le_bytes());
        assert_eq!(mp::RequestFlags::X2APIC.bits(), MP_FLAG_X2APIC);
        assert_eq!(u64::from(mp::ResponseFlags::X2APIC.bits()), MP_FLAG_X2APIC);
    }

    #[test]
    fn markers_and_base_revision_match_the_limine_crate() {
        let words = |w: &[u64]| {
            w.iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<std::vec::Vec<u8>>()
        };
        assert_eq!(
            as_bytes(&lr::RequestsStartMarker::new()),
            words(&REQUESTS_START_MARKER)
        );
        assert_eq!(
            as_bytes(&lr::RequestsEndMarker::new()),
            words(&REQUESTS_END_MARKER)
        );
        let tag = limine::BaseRevision::new();
        let expected = [
            BASE_REVISION_MAGIC[0],
            BASE_REVISION_MAGIC[1],
            SUPPORTED_BASE_REVISION,
        ];
        assert_eq!(as_bytes(&tag), words(&expected));
    }
}
