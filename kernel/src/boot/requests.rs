//! The Limine requests, placed where the bootloader looks for them.
//!
//! Each request is a `#[used]` static in `.limine_requests`, between the start and end
//! markers, which `linker.ld` keeps; the bootloader fills in the response pointers before the
//! kernel runs. Read them only through [`super::responses`], and only before the reclaim point
//! (see the crate docs): responses live in bootloader-reclaimable memory.

use limine::BaseRevision;
use limine::mp::RequestFlags;
use limine::request::{
    BootloaderInfoRequest, ExecutableAddressRequest, ExecutableCmdlineRequest, HhdmRequest,
    MemoryMapRequest, MpRequest, RequestsEndMarker, RequestsStartMarker, RsdpRequest,
    StackSizeRequest,
};

/// Stack size asked for the BSP's entry: enough for bring-up until the kernel switches to
/// its own stack.
pub const ENTRY_STACK_BYTES: u64 = 256 * 1024;

#[used]
#[unsafe(link_section = ".limine_requests_start")]
static START_MARKER: RequestsStartMarker = RequestsStartMarker::new();

/// Base revision 3 (`limine` 0.5's default).
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static BASE_REVISION: BaseRevision = BaseRevision::new();

/// The bootloader's name and version.
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static BOOTLOADER_INFO: BootloaderInfoRequest = BootloaderInfoRequest::new();

/// The higher-half direct map offset.
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static HHDM: HhdmRequest = HhdmRequest::new();

/// The physical memory map.
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();

/// MP with x2APIC enabled where possible.
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static MP: MpRequest = MpRequest::new().with_flags(RequestFlags::X2APIC);

/// The ACPI RSDP (a physical address under revision 3).
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static RSDP: RsdpRequest = RsdpRequest::new();

/// Where the kernel image was loaded, physically and virtually.
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static EXECUTABLE_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();

/// The kernel command line.
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static EXECUTABLE_CMDLINE: ExecutableCmdlineRequest = ExecutableCmdlineRequest::new();

/// The BSP entry stack size ([`ENTRY_STACK_BYTES`]).
#[used]
#[unsafe(link_section = ".limine_requests")]
pub static STACK_SIZE: StackSizeRequest = StackSizeRequest::new().with_size(ENTRY_STACK_BYTES);

#[used]
#[unsafe(link_section = ".limine_requests_end")]
static END_MARKER: RequestsEndMarker = RequestsEndMarker::new();
