//! The kernel's 4-level page tables.
//!
//! [`Mapper`] writes x86_64 4-level tables (Intel SDM Vol. 3A, 4.5) into physical memory through
//! [`PhysMem`], taking table frames from a [`FrameSource`] (the memory map, so every table is
//! `BOOTLOADER_RECLAIMABLE`, as the protocol requires). [`Mapper::map`] covers a range with the
//! largest pages that fit its alignment: 1 GiB where the CPU supports them, then 2 MiB, then
//! 4 KiB. It never overwrites a mapping: mapping a page twice is a [`Error::MappingConflict`],
//! which turns a loader bug into a clear error instead of a kernel that sees the wrong memory.
//!
//! [`build_kernel_tables`] is the whole address space handed to the kernel: the kernel image at
//! its link address, page by page with the rights of its segments (NX where not executable), and
//! the higher half direct map over exactly the ranges [`crate::hhdm`] selects for the base
//! revision. Nothing else is mapped; in particular there is no identity map under revision 3.
//!
//! # Implementation
//! Intermediate entries are present + writable + supervisor; the leaf carries the rights (the
//! effective rights are the intersection along the walk). [`translate`] walks the tables back
//! for tests and log lines.

use crate::Error;
use crate::elf::{KernelElf, PagePerms};
use crate::hhdm;
use crate::memmap::MemoryMap;
use crate::phys::{HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE, PhysMem};

#[cfg(test)]
mod tests;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Index shifts of the four levels, PML4 first.
const SHIFTS: [u32; 4] = [39, 30, 21, 12];

/// Where page-table frames come from.
pub trait FrameSource {
    /// Returns the physical address of a fresh 4 KiB frame (the caller zeroes it).
    fn alloc_table(&mut self) -> Result<u64, Error>;
}

/// Which paging features the CPU has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingFeatures {
    /// `EFER.NXE` can be set (CPUID 0x8000_0001 EDX bit 20): non-executable pages get NX.
    pub has_nx: bool,
    /// 1 GiB pages exist (CPUID 0x8000_0001 EDX bit 26).
    pub has_huge_pages: bool,
}

/// Writes mappings into one set of 4-level tables.
pub struct Mapper<'a, M: PhysMem, F: FrameSource> {
    mem: &'a mut M,
    frames: &'a mut F,
    root: u64,
    features: PagingFeatures,
}

/// What one virtual address maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address.
    pub phys: u64,
    /// Size of the page holding it (4 KiB, 2 MiB or 1 GiB).
    pub page_size: u64,
    /// Its rights.
    pub perms: PagePerms,
}

impl<'a, M: PhysMem, F: FrameSource> Mapper<'a, M, F> {
    /// Starts empty tables (a fresh, zeroed PML4).
    pub fn new(mem: &'a mut M, frames: &'a mut F, features: PagingFeatures) -> Result<Self, Error> {
        let root = frames.alloc_table()?;
        mem.zero(root, PAGE_SIZE as usize)?;
        Ok(Mapper {
            mem,
            frames,
            root,
            features,
        })
    }

    /// Physical address of the PML4 (the CR3 value).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[virt, virt + len)` to `[phys, phys + len)` (all page aligned) with `perms`,
    /// using the largest pages the alignment of both addresses allows.
    pub fn map(&mut self, virt: u64, phys: u64, len: u64, perms: PagePerms) -> Result<(), Error> {
        let mut done = 0;
        while done < len {
            let (v, p, left) = (virt + done, phys + done, len - done);
            let fits = |size: u64| v % size == 0 && p % size == 0 && left >= size;
            let size = if self.features.has_huge_pages && fits(HUGE_PAGE_SIZE) {
                HUGE_PAGE_SIZE
            } else if fits(LARGE_PAGE_SIZE) {
                LARGE_PAGE_SIZE
            } else {
                PAGE_SIZE
            };
            self.map_page(v, p, size, perms)?;
            done += size;
        }
        Ok(())
    }

    /// Maps one page of `size` bytes.
    fn map_page(&mut self, virt: u64, phys: u64, size: u64, perms: PagePerms) -> Result<(), Error> {
        let mut table = self.root;
        for shift in SHIFTS {
            let slot = table + ((virt >> shift) & 511) * 8;
            let entry = self.mem.read_u64(slot)?;
            if 1u64 << shift == size {
                if entry & PRESENT != 0 {
                    return Err(Error::MappingConflict { virt });
                }
                return self
                    .mem
                    .write_u64(slot, phys | self.leaf_flags(size, perms));
            }
            table = self.descend(slot, entry, virt)?;
        }
        Err(Error::MappingConflict { virt })
    }

    /// Follows the non-leaf entry `entry` at `slot`, creating its table if absent.
    fn descend(&mut self, slot: u64, entry: u64, virt: u64) -> Result<u64, Error> {
        if entry & PRESENT == 0 {
            let table = self.frames.alloc_table()?;
            self.mem.zero(table, PAGE_SIZE as usize)?;
            self.mem.write_u64(slot, table | PRESENT | WRITABLE)?;
            return Ok(table);
        }
        if entry & HUGE != 0 {
            return Err(Error::MappingConflict { virt });
        }
        Ok(entry & ADDR_MASK)
    }

    fn leaf_flags(&self, size: u64, perms: PagePerms) -> u64 {
        let mut flags = PRESENT;
        if perms.is_writable {
            flags |= WRITABLE;
        }
        if size != PAGE_SIZE {
            flags |= HUGE;
        }
        if !perms.is_executable && self.features.has_nx {
            flags |= NO_EXECUTE;
        }
        flags
    }
}

/// Walks the tables at `root` for `virt`; `None` where nothing is mapped.
pub fn translate(mem: &impl PhysMem, root: u64, virt: u64) -> Option<Translation> {
    let mut table = root;
    for (level, shift) in SHIFTS.into_iter().enumerate() {
        let entry = mem.read_u64(table + ((virt >> shift) & 511) * 8).ok()?;
        if entry & PRESENT == 0 {
            return None;
        }
        let is_leaf = level == 3 || (level > 0 && entry & HUGE != 0);
        if is_leaf {
            let page_size = 1u64 << shift;
            let perms = PagePerms {
                is_writable: entry & WRITABLE != 0,
                is_executable: entry & NO_EXECUTE == 0,
            };
            let phys = (entry & ADDR_MASK & !(page_size - 1)) | (virt & (page_size - 1));
            return Some(Translation {
                phys,
                page_size,
                perms,
            });
        }
        table = entry & ADDR_MASK;
    }
    None
}

/// Everything the kernel's address space needs to know about the loaded image.
#[derive(Clone, Copy, Debug)]
pub struct KernelPlacement<'a> {
    /// The validated ELF.
    pub elf: &'a KernelElf,
    /// Physical address of the image's first byte (`virtual_base` maps here).
    pub image_phys: u64,
}

/// Builds the tables handed to the kernel: the image at its link address and the HHDM for
/// base `revision` (plus the revision 0 identity map). Returns the PML4's physical address.
pub fn build_kernel_tables(
    mem: &mut impl PhysMem,
    map: &mut MemoryMap,
    kernel: KernelPlacement<'_>,
    revision: u64,
    features: PagingFeatures,
) -> Result<u64, Error> {
    // Taking table frames only retypes usable memory as reclaimable, which every revision maps
    // alike, so the ranges chosen now still match the final memory map.
    let direct = hhdm::direct_map_ranges(map, revision)?;
    let identity = hhdm::identity_ranges(map, revision)?;
    let mut mapper = Mapper::new(mem, map, features)?;
    let vbase = kernel.elf.virtual_base();
    for page in (vbase..vbase + kernel.elf.image_size()).step_by(PAGE_SIZE as usize) {
        if let Some(perms) = kernel.elf.page_perms(page) {
            mapper.map(page, kernel.image_phys + (page - vbase), PAGE_SIZE, perms)?;
        }
    }
    let rwx = PagePerms {
        is_writable: true,
        is_executable: true,
    };
    for r in direct.iter() {
        mapper.map(hhdm::HHDM_OFFSET + r.start, r.start, r.end - r.start, rwx)?;
    }
    for r in identity.iter() {
        mapper.map(r.start, r.start, r.end - r.start, rwx)?;
    }
    Ok(mapper.root())
}
