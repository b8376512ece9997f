//! The kernel's view of the page tables: the higher-half direct map (HHDM) and an MMIO
//! window.
//!
//! Under Limine base revision 3 the HHDM maps RAM only (usable, bootloader-reclaimable,
//! executable/modules and framebuffer entries): the local APIC page and other device memory
//! are absent, so the kernel maps them itself, uncached, into a window it owns:
//! PML4 slot 510, [`MMIO_WINDOW_START`]..[`MMIO_WINDOW_END`], just below the kernel image
//! (slot 511) and far above the HHDM. Kernel stacks get their own window
//! ([`STACK_WINDOW_START`], PML4 slot 509), each below an unmapped guard page, so an overflow
//! faults (and ends in a double-fault report) instead of corrupting a neighbour.
//!
//! [`build_kernel_tables`] and [`activate_kernel_tables`] replace the bootloader's hierarchy
//! with one the kernel owns (see `kernel_tables`), so bootloader-reclaimable memory can be
//! freed.
//!
//! # Implementation
//! The active PML4 (CR3) is edited through the `x86_64` crate's `OffsetPageTable`, which
//! reaches page-table frames through the HHDM; new table frames come from the caller's
//! `FrameAllocator` (the kernel passes one backed by `mm`). All edits happen under one
//! [`IrqSpinLock`]. Mappings are only ever added, before the APs start, and all CPUs share
//! the PML4, so no TLB shootdown is needed.

mod kernel_tables;

pub use kernel_tables::{
    ImageLocation, ImageRegion, activate as activate_kernel_tables, build as build_kernel_tables,
};

use core::convert::Infallible;

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, Translate};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::lock::IrqSpinLock;

/// First address of the MMIO window (PML4 slot 510).
pub const MMIO_WINDOW_START: u64 = 0xffff_ff00_0000_0000;
/// End (exclusive) of the MMIO window; the kernel image starts in the next PML4 slot.
pub const MMIO_WINDOW_END: u64 = 0xffff_ff80_0000_0000;
/// A page in the MMIO window that is never mapped: the target of the deliberate page fault.
pub const NEVER_MAPPED_PAGE: u64 = MMIO_WINDOW_END - PAGE_BYTES;
/// First address of the kernel-stack window (PML4 slot 509).
pub const STACK_WINDOW_START: u64 = 0xffff_fe80_0000_0000;
/// End (exclusive) of the kernel-stack window.
pub const STACK_WINDOW_END: u64 = MMIO_WINDOW_START;
/// Size of a page.
const PAGE_BYTES: u64 = 4096;

/// Page-table state: the HHDM offset and the next free address of each window.
struct Paging {
    hhdm_offset: u64,
    mmio_next: u64,
    stack_next: u64,
}

static PAGING: IrqSpinLock<Option<Paging>> = IrqSpinLock::new(None);

/// Why a mapping failed.
#[derive(Debug)]
pub enum MapError {
    /// [`init`] has not run.
    NotInitialized,
    /// The MMIO window is full.
    WindowFull,
    /// No frame for a page table.
    OutOfFrames,
    /// The page was already mapped (or covered by a huge page).
    AlreadyMapped,
}

/// Records the HHDM offset the bootloader reported.
///
/// # Safety
/// `hhdm_offset` must be the offset at which all RAM holding the active page tables is
/// mapped (the bootloader's HHDM), and must stay valid for as long as the kernel runs.
pub unsafe fn init(hhdm_offset: u64) {
    *PAGING.lock() = Some(Paging {
        hhdm_offset,
        mmio_next: MMIO_WINDOW_START,
        stack_next: STACK_WINDOW_START,
    });
}

/// The HHDM virtual address of physical address `phys` (RAM only under revision 3).
pub fn phys_to_virt(phys: u64) -> Option<VirtAddr> {
    let offset = PAGING.lock().as_ref()?.hhdm_offset;
    VirtAddr::try_new(offset.checked_add(phys)?).ok()
}

/// Runs `f` on the active page table.
fn with_page_table<R>(paging: &Paging, f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
    let (pml4_frame, _) = Cr3::read();
    let offset = VirtAddr::new(paging.hhdm_offset);
    let pml4_ptr: *mut PageTable = (offset + pml4_frame.start_address().as_u64()).as_mut_ptr();
    // SAFETY: `init`'s contract says the HHDM maps the page-table frames; the PAGING lock,
    // held by our caller, makes this the only reference to the live page tables.
    let mut table = unsafe { OffsetPageTable::new(&mut *pml4_ptr, offset) };
    f(&mut table)
}

/// Maps `size_bytes` of device memory at physical `phys` uncached into the MMIO window.
pub fn map_mmio(
    phys: PhysAddr,
    size_bytes: u64,
    frames: &mut impl FrameAllocator<Size4KiB>,
) -> Result<VirtAddr, MapError> {
    let mut guard = PAGING.lock();
    let paging = guard.as_mut().ok_or(MapError::NotInitialized)?;
    let first = PhysFrame::<Size4KiB>::containing_address(phys);
    let last = PhysFrame::<Size4KiB>::containing_address(phys + size_bytes.max(1) - 1u64);
    let pages = last - first + 1;
    let start = paging.mmio_next;
    let end = start + pages * PAGE_BYTES;
    if end > NEVER_MAPPED_PAGE {
        return Err(MapError::WindowFull);
    }
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH
        | PageTableFlags::NO_EXECUTE;
    with_page_table(paging, |table| {
        (0..pages).try_for_each(|i| {
            let page = Page::containing_address(VirtAddr::new(start + i * PAGE_BYTES));
            // SAFETY: the page lies in the MMIO window, which nothing else maps, and the frame
            // is device memory, so the new mapping aliases no Rust-visible memory.
            let flush = unsafe { table.map_to(page, first + i, flags, frames) };
            flush.map(|f| f.flush()).map_err(map_error)
        })
    })?;
    paging.mmio_next = end;
    Ok(VirtAddr::new(start + phys.as_u64() % PAGE_BYTES))
}

/// Maps a kernel stack of `size_bytes` (rounded up to pages) with fresh frames, below an
/// unmapped guard page; returns its top (16-byte aligned, exclusive).
pub fn map_kernel_stack(
    size_bytes: u64,
    frames: &mut impl FrameAllocator<Size4KiB>,
) -> Result<VirtAddr, MapError> {
    let mut guard = PAGING.lock();
    let paging = guard.as_mut().ok_or(MapError::NotInitialized)?;
    let pages = size_bytes.div_ceil(PAGE_BYTES).max(1);
    // Leave the first page of the slot unmapped: the guard.
    let bottom = paging.stack_next + PAGE_BYTES;
    let top = bottom + pages * PAGE_BYTES;
    if top > STACK_WINDOW_END {
        return Err(MapError::WindowFull);
    }
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    with_page_table(paging, |table| {
        (0..pages).try_for_each(|i| {
            let page = Page::containing_address(VirtAddr::new(bottom + i * PAGE_BYTES));
            let frame = frames.allocate_frame().ok_or(MapError::OutOfFrames)?;
            // SAFETY: the page lies in the stack window, which nothing else maps, and the
            // frame is fresh from the allocator, so the mapping aliases nothing.
            let flush = unsafe { table.map_to(page, frame, flags, frames) };
            flush.map(|f| f.flush()).map_err(map_error)
        })
    })?;
    paging.stack_next = top;
    Ok(VirtAddr::new(top))
}

fn map_error(e: MapToError<Size4KiB>) -> MapError {
    match e {
        MapToError::FrameAllocationFailed => MapError::OutOfFrames,
        MapToError::ParentEntryHugePage | MapToError::PageAlreadyMapped(_) => {
            MapError::AlreadyMapped
        }
    }
}

/// The physical address `virt` maps to, if any.
pub fn translate(virt: VirtAddr) -> Option<PhysAddr> {
    let guard = PAGING.lock();
    let paging = guard.as_ref()?;
    with_page_table(paging, |table| table.translate_addr(virt))
}

/// Reads [`NEVER_MAPPED_PAGE`], which page-faults: the exception handler reports the fault
/// and ends the run. Returns an error only if the page is mapped or the read did not fault.
pub fn read_never_mapped_page() -> Result<Infallible, &'static str> {
    let addr = VirtAddr::new(NEVER_MAPPED_PAGE);
    if translate(addr).is_some() {
        return Err("the never-mapped page is mapped");
    }
    // SAFETY: the address is canonical and unmapped (checked above), so the read cannot touch
    // memory: it raises #PF, whose handler never returns.
    let _ = unsafe { core::ptr::read_volatile(addr.as_ptr::<u64>()) };
    Err("reading an unmapped page did not fault")
}
