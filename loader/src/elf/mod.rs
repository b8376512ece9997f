//! The kernel ELF: validation and the loading plan.
//!
//! [`parse`] checks the module is what the Limine protocol loads (ELF64, little-endian, x86_64,
//! `ET_EXEC`, every `PT_LOAD` in the higher half at or above `0xffffffff80000000`, segments inside
//! the file and not overlapping, entry point inside an executable segment) and keeps the
//! `PT_LOAD` headers sorted by address. The result, [`KernelElf`], is the plan: the image spans
//! `[virtual_base, virtual_base + image_size)`, is placed physically contiguous (as Limine
//! guarantees, [`KernelElf::allocate_image`]), and every page gets the permissions of the
//! segments on it ([`KernelElf::page_perms`]).
//! [`KernelElf::load`] copies the file bytes into the placed image and zeroes the rest (bss and
//! any gaps).
//!
//! # Implementation
//! Hand-written field reads at the ELF64 offsets (System V gABI, "ELF Header" and "Program
//! Header"); the header and program headers are copied out, so the plan does not borrow the
//! module and the caller can write physical memory while holding it.

use crate::Error;
use crate::memmap::{EntryType, LOADER_MAX_END, LOADER_MIN_ADDR, MemoryMap};
use crate::phys::{HUGE_PAGE_SIZE, PAGE_SIZE, PhysMem, align_down, align_up};

#[cfg(test)]
mod tests;

/// The lowest virtual address the protocol lets a kernel load at.
pub const HIGHER_HALF: u64 = 0xffff_ffff_8000_0000;
/// How many `PT_LOAD` segments the loader keeps (a kernel has three or four).
pub const MAX_SEGMENTS: usize = 16;

pub(crate) const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
pub(crate) const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
pub(crate) const EM_X86_64: u16 = 62;
pub(crate) const PHDR_SIZE: usize = 56;

/// One `PT_LOAD` program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// Offset of the file bytes in the module.
    pub offset: u64,
    /// Number of file bytes (the rest up to `memsz` is zeroed).
    pub filesz: u64,
    /// `p_flags` (`PF_X` = 1, `PF_W` = 2, `PF_R` = 4).
    pub flags: u32,
    /// `p_align`.
    pub align: u64,
}

impl Segment {
    /// One past the last virtual byte.
    pub fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }
}

/// Access rights of one kernel page (always present, supervisor, readable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagePerms {
    /// Mapped writable (some segment on the page has `PF_W`).
    pub is_writable: bool,
    /// Mapped executable (some segment on the page has `PF_X`); otherwise NX.
    pub is_executable: bool,
}

/// A validated kernel ELF: entry point and sorted `PT_LOAD` segments.
#[derive(Clone, Debug)]
pub struct KernelElf {
    /// The entry point (`e_entry`).
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

fn not_exec(why: &'static str) -> Error {
    Error::NotAnExecutable(why)
}

fn read<const N: usize>(file: &[u8], at: usize) -> [u8; N] {
    let mut b = [0; N];
    b.copy_from_slice(&file[at..at + N]);
    b
}

fn u16_at(file: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(read(file, at))
}

fn u32_at(file: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(read(file, at))
}

fn u64_at(file: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(read(file, at))
}

/// Validates the ELF header of `file` and returns the program header table's byte range.
fn check_header(file: &[u8]) -> Result<core::ops::Range<usize>, Error> {
    if file.len() < 64 {
        return Err(not_exec("shorter than an ELF64 header"));
    }
    if file[..4] != *b"\x7fELF" {
        return Err(not_exec("no ELF magic"));
    }
    if file[4] != 2 {
        return Err(not_exec("not ELF64"));
    }
    if file[5] != 1 {
        return Err(not_exec("not little-endian"));
    }
    match u16_at(file, 16) {
        ET_EXEC => {}
        ET_DYN => {
            return Err(not_exec(
                "position-independent (ET_DYN), only ET_EXEC is supported",
            ));
        }
        _ => return Err(not_exec("not an executable (e_type)")),
    }
    if u16_at(file, 18) != EM_X86_64 {
        return Err(not_exec("not x86_64 (e_machine)"));
    }
    if u16_at(file, 54) as usize != PHDR_SIZE {
        return Err(not_exec("unexpected program header size"));
    }
    let start = usize::try_from(u64_at(file, 32))
        .map_err(|_| not_exec("program headers outside the file"))?;
    let end = (u16_at(file, 56) as usize)
        .checked_mul(PHDR_SIZE)
        .and_then(|n| n.checked_add(start))
        .filter(|&end| end <= file.len())
        .ok_or(not_exec("program headers outside the file"))?;
    Ok(start..end)
}

/// Reads and checks program header `index` at `at`; `None` if it is not a non-empty `PT_LOAD`.
fn read_segment(file: &[u8], at: usize, index: usize) -> Result<Option<Segment>, Error> {
    let seg = Segment {
        flags: u32_at(file, at + 4),
        offset: u64_at(file, at + 8),
        vaddr: u64_at(file, at + 16),
        filesz: u64_at(file, at + 32),
        memsz: u64_at(file, at + 40),
        align: u64_at(file, at + 48),
    };
    if u32_at(file, at) != PT_LOAD || seg.memsz == 0 {
        return Ok(None);
    }
    let file_end = seg.offset.checked_add(seg.filesz);
    if seg.filesz > seg.memsz || file_end.is_none_or(|end| end > file.len() as u64) {
        return Err(Error::SegmentOutsideFile { index });
    }
    if seg.vaddr < HIGHER_HALF {
        return Err(Error::SegmentNotHigherHalf { vaddr: seg.vaddr });
    }
    if seg
        .vaddr
        .checked_add(seg.memsz)
        .and_then(|end| align_up(end, PAGE_SIZE))
        .is_none()
    {
        return Err(not_exec("segment wraps around the address space"));
    }
    Ok(Some(seg))
}

/// Validates `file` as a Limine kernel and returns its loading plan.
pub fn parse(file: &[u8]) -> Result<KernelElf, Error> {
    let table = check_header(file)?;
    let mut elf = KernelElf {
        entry: u64_at(file, 24),
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    for (index, at) in table.step_by(PHDR_SIZE).enumerate() {
        if let Some(seg) = read_segment(file, at, index)? {
            *elf.segments
                .get_mut(elf.count)
                .ok_or(Error::TooManySegments)? = seg;
            elf.count += 1;
        }
    }
    if elf.count == 0 {
        return Err(not_exec("no PT_LOAD segment"));
    }
    elf.segments[..elf.count].sort_unstable_by_key(|s| s.vaddr);
    for w in elf.segments().windows(2) {
        if w[0].end() > w[1].vaddr {
            return Err(Error::SegmentsOverlap {
                first: w[0].vaddr,
                second: w[1].vaddr,
            });
        }
    }
    let entry = elf.entry;
    if !elf
        .segments()
        .iter()
        .any(|s| s.flags & PF_X != 0 && (s.vaddr..s.end()).contains(&entry))
    {
        return Err(Error::EntryOutsideSegments(entry));
    }
    Ok(elf)
}

impl KernelElf {
    /// The `PT_LOAD` segments, sorted by virtual address.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// Virtual address of the image start (the lowest segment's page).
    pub fn virtual_base(&self) -> u64 {
        align_down(self.segments[0].vaddr, PAGE_SIZE)
    }

    /// Bytes from `virtual_base` to the end of the last segment's last page.
    pub fn image_size(&self) -> u64 {
        let end = self.segments().iter().map(Segment::end).max().unwrap_or(0);
        // parse() rejected segments whose end cannot be rounded up.
        align_up(end, PAGE_SIZE).unwrap_or(end) - self.virtual_base()
    }

    /// Bytes from `virtual_base` to the end of the last file-backed byte: where Limine looks for
    /// requests (they are initialised data, never bss).
    pub fn size_before_bss(&self) -> u64 {
        let end = self
            .segments()
            .iter()
            .map(|s| s.vaddr + s.filesz)
            .max()
            .unwrap_or(0);
        end - self.virtual_base()
    }

    /// Physical alignment for the image: the largest `p_align`, at least a page, at most 1 GiB
    /// (a `p_align` too large to round up to a power of two counts as more than 1 GiB).
    pub fn alignment(&self) -> u64 {
        let max = self.segments().iter().map(|s| s.align).max().unwrap_or(0);
        max.checked_next_power_of_two()
            .unwrap_or(HUGE_PAGE_SIZE)
            .clamp(PAGE_SIZE, HUGE_PAGE_SIZE)
    }

    /// Takes physically contiguous memory for the image from `map`, below 4 GiB and typed
    /// executable-and-modules, and returns its base. A kernel that does not fit is
    /// [`Error::KernelDoesNotFit`], not a bare out-of-memory.
    pub fn allocate_image(&self, map: &mut MemoryMap) -> Result<u64, Error> {
        let (bytes, align) = (self.image_size(), self.alignment());
        let kind = EntryType::EXECUTABLE_AND_MODULES;
        map.allocate(bytes, align, kind, LOADER_MIN_ADDR, LOADER_MAX_END)
            .map_err(|e| match e {
                Error::OutOfMemory { .. } => Error::KernelDoesNotFit { bytes, align },
                other => other,
            })
    }

    /// The rights of the page at `page` (page aligned): the union over the segments on it, or
    /// `None` if no segment touches it.
    pub fn page_perms(&self, page: u64) -> Option<PagePerms> {
        let on_page = |s: &&Segment| s.vaddr < page + PAGE_SIZE && s.end() > page;
        self.segments()
            .iter()
            .filter(on_page)
            .fold(None, |acc: Option<PagePerms>, s| {
                let acc = acc.unwrap_or_default();
                Some(PagePerms {
                    is_writable: acc.is_writable || s.flags & PF_W != 0,
                    is_executable: acc.is_executable || s.flags & PF_X != 0,
                })
            })
    }

    /// Copies the segments from the module at `file_phys` into the image at `image_phys` (which
    /// must have room for [`image_size`](Self::image_size) bytes) and zeroes everything else.
    pub fn load(
        &self,
        mem: &mut impl PhysMem,
        file_phys: u64,
        image_phys: u64,
    ) -> Result<(), Error> {
        mem.zero(image_phys, self.image_size() as usize)?;
        for s in self.segments() {
            let dst = image_phys + (s.vaddr - self.virtual_base());
            mem.copy(dst, file_phys + s.offset, s.filesz as usize)?;
        }
        Ok(())
    }
}
