//! The kernel's own page tables, so the bootloader's can be reclaimed.
//!
//! The bootloader's page-table hierarchy lives in bootloader-reclaimable memory. Before that
//! memory goes back to the frame allocator, every CPU must run on tables the kernel built
//! from its own frames. [`build`] creates them on the BSP:
//! - the kernel image, page by page with each region's permissions (W^X),
//! - the HHDM for the RAM ranges the caller lists (2 MiB pages where alignment allows),
//! - the kernel-stack and MMIO windows, shared with the current tables by copying their
//!   PML4 entries (their lower levels were built by the kernel from `mm` frames already).
//!
//! [`activate`] then loads them on the calling CPU (the BSP right after [`build`], each AP
//! first thing on its kernel stack).
//!
//! # Implementation
//! The new PML4 is edited through an `OffsetPageTable` while inactive (flushes are
//! skipped). Activation reloads CR3 and, if global pages are enabled, toggles CR4.PGE so no
//! stale global translation of the bootloader's tables survives.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size2MiB,
    Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::{MMIO_WINDOW_START, MapError, PAGE_BYTES, PAGING, STACK_WINDOW_START, map_error};

/// Bytes in a 2 MiB page.
const HUGE_PAGE_BYTES: u64 = 2 << 20;

/// Physical address of the kernel's PML4, 0 until [`build`] ran.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// A page-aligned range of the kernel image and its permissions.
#[derive(Clone, Copy, Debug)]
pub struct ImageRegion {
    /// First virtual address (page aligned).
    pub virt_start: u64,
    /// End virtual address (exclusive, page aligned).
    pub virt_end: u64,
    /// Whether the region is writable.
    pub writable: bool,
    /// Whether the region holds code.
    pub executable: bool,
}

/// Where the kernel image lives.
#[derive(Clone, Copy, Debug)]
pub struct ImageLocation {
    /// Virtual address of the image's first byte.
    pub virt_base: u64,
    /// Physical address of the image's first byte (the image is physically contiguous).
    pub phys_base: u64,
}

/// Builds the kernel's page tables from `frames`; [`activate`] loads them.
pub fn build(
    image: ImageLocation,
    regions: &[ImageRegion],
    ram: &[(u64, u64)],
    frames: &mut impl FrameAllocator<Size4KiB>,
) -> Result<PhysFrame, MapError> {
    let guard = PAGING.lock();
    let paging = guard.as_ref().ok_or(MapError::NotInitialized)?;
    let offset = VirtAddr::new(paging.hhdm_offset);
    let root = frames.allocate_frame().ok_or(MapError::OutOfFrames)?;
    let root_ptr: *mut PageTable = (offset + root.start_address().as_u64()).as_mut_ptr();
    let current_ptr: *const PageTable = (offset + Cr3::read().0.start_address().as_u64()).as_ptr();
    // SAFETY: `root` is a fresh frame, reached through the HHDM (`init`'s contract), so this
    // is the only reference to it; the current PML4 is only read, under the PAGING lock.
    let (new, current) = unsafe { (&mut *root_ptr, &*current_ptr) };
    new.zero();
    for window in [STACK_WINDOW_START, MMIO_WINDOW_START] {
        let slot = VirtAddr::new(window).p4_index();
        new[slot] = current[slot].clone();
    }
    // SAFETY: the HHDM maps every frame of the new hierarchy (fresh `frames` of RAM).
    let mut table = unsafe { OffsetPageTable::new(new, offset) };
    for region in regions {
        map_image_region(&mut table, image, region, frames)?;
    }
    for &(start, end) in ram {
        map_hhdm_range(&mut table, paging.hhdm_offset, start, end, frames)?;
    }
    KERNEL_ROOT.store(root.start_address().as_u64(), Ordering::Release);
    Ok(root)
}

fn map_image_region(
    table: &mut OffsetPageTable<'_>,
    image: ImageLocation,
    region: &ImageRegion,
    frames: &mut impl FrameAllocator<Size4KiB>,
) -> Result<(), MapError> {
    let mut flags = PageTableFlags::PRESENT;
    if region.writable {
        flags |= PageTableFlags::WRITABLE;
    }
    if !region.executable {
        flags |= PageTableFlags::NO_EXECUTE;
    }
    let mut virt = region.virt_start;
    while virt < region.virt_end {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
        let phys = image.phys_base + (virt - image.virt_base);
        let frame = PhysFrame::containing_address(PhysAddr::new(phys));
        // SAFETY: the tables are not active yet; the frame holds the kernel image at this
        // very virtual address in the current tables, so the mapping adds no alias.
        let flush = unsafe { table.map_to(page, frame, flags, frames) }.map_err(map_error)?;
        flush.ignore();
        virt += PAGE_BYTES;
    }
    Ok(())
}

fn map_hhdm_range(
    table: &mut OffsetPageTable<'_>,
    hhdm_offset: u64,
    start: u64,
    end: u64,
    frames: &mut impl FrameAllocator<Size4KiB>,
) -> Result<(), MapError> {
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let mut phys = start & !(PAGE_BYTES - 1);
    while phys < end {
        let virt = VirtAddr::new(hhdm_offset + phys);
        let huge = phys.is_multiple_of(HUGE_PAGE_BYTES) && end - phys >= HUGE_PAGE_BYTES;
        let result = if huge {
            let page = Page::<Size2MiB>::containing_address(virt);
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys));
            // SAFETY: the tables are not active yet; the HHDM is the kernel's one linear view
            // of RAM, the same mapping the bootloader's tables provide.
            unsafe { table.map_to(page, frame, flags, frames) }
                .map(|f| f.ignore())
                .map_err(|_| MapError::AlreadyMapped)
        } else {
            let page = Page::<Size4KiB>::containing_address(virt);
            let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(phys));
            // SAFETY: as above, for a 4 KiB page at an unaligned edge of the range.
            unsafe { table.map_to(page, frame, flags, frames) }
                .map(|f| f.ignore())
                .map_err(map_error)
        };
        result?;
        phys += if huge { HUGE_PAGE_BYTES } else { PAGE_BYTES };
    }
    Ok(())
}

/// Loads the kernel's page tables on this CPU; does nothing before [`build`].
///
/// # Safety
/// Everything this CPU is about to touch must be mapped by the kernel's tables: its code
/// and data (image), its stack (stack window), the memory it reaches through the HHDM.
pub unsafe fn activate() -> bool {
    let root = KERNEL_ROOT.load(Ordering::Acquire);
    if root == 0 {
        return false;
    }
    let (_, cr3_flags) = Cr3::read();
    let frame = PhysFrame::containing_address(PhysAddr::new(root));
    // SAFETY: the caller guarantees the new tables map everything in use.
    unsafe { Cr3::write(frame, cr3_flags) };
    flush_global_translations();
    true
}

/// Toggles CR4.PGE, which flushes global TLB entries too (SDM Vol. 3A §4.10.4.1).
fn flush_global_translations() {
    let flags = Cr4::read();
    if flags.contains(Cr4Flags::PAGE_GLOBAL) {
        // SAFETY: clearing and restoring PGE changes no mapping, it only flushes the TLB.
        unsafe {
            Cr4::write(flags - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(flags);
        }
    }
}
