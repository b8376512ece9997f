//! Physical memory as the loader's logic sees it: the [`PhysMem`] trait.
//!
//! Everything the loader decides (memory map, page tables, responses, ACPI parsing) reads and
//! writes physical memory only through `PhysMem`. On the machine the binary implements it over
//! its identity map of the low 4 GiB; host tests implement it over a `Vec` (`TestMemory`), so
//! the same code is tested without hardware.
//!
//! # Implementation
//! The trait has two required methods, byte slices in and out, and little-endian word helpers
//! built on them. Accesses are bounds-checked by the implementation and fail with
//! [`Error::PhysOutOfRange`], never by faulting.

use crate::Error;

/// Size of a small page, the granule of every allocation and mapping.
pub const PAGE_SIZE: u64 = 0x1000;
/// Size of a large (2 MiB) page.
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Size of a huge (1 GiB) page.
pub const HUGE_PAGE_SIZE: u64 = 0x4000_0000;
/// The first byte above the low 4 GiB, the part of memory the loader itself can reach.
pub const FOUR_GIB: u64 = 0x1_0000_0000;

/// Rounds `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Rounds `x` up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Byte-level access to physical memory.
pub trait PhysMem {
    /// Borrows `len` bytes at physical address `addr`.
    fn bytes(&self, addr: u64, len: usize) -> Result<&[u8], Error>;

    /// Borrows `len` bytes at physical address `addr` for writing.
    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Error>;

    /// Copies `len` bytes from `src` to `dst` (the ranges may overlap).
    fn copy(&mut self, dst: u64, src: u64, len: usize) -> Result<(), Error>;

    /// Reads a little-endian `u8`.
    fn read_u8(&self, addr: u64) -> Result<u8, Error> {
        Ok(self.bytes(addr, 1)?[0])
    }

    /// Reads a little-endian `u16`.
    fn read_u16(&self, addr: u64) -> Result<u16, Error> {
        let b = self.bytes(addr, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, addr: u64) -> Result<u32, Error> {
        let mut w = [0; 4];
        w.copy_from_slice(self.bytes(addr, 4)?);
        Ok(u32::from_le_bytes(w))
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, addr: u64) -> Result<u64, Error> {
        let mut w = [0; 8];
        w.copy_from_slice(self.bytes(addr, 8)?);
        Ok(u64::from_le_bytes(w))
    }

    /// Writes a little-endian `u32`.
    fn write_u32(&mut self, addr: u64, value: u32) -> Result<(), Error> {
        self.bytes_mut(addr, 4)?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    /// Writes a little-endian `u64`.
    fn write_u64(&mut self, addr: u64, value: u64) -> Result<(), Error> {
        self.bytes_mut(addr, 8)?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    /// Writes consecutive little-endian `u64` words starting at `addr`.
    fn write_words(&mut self, addr: u64, words: &[u64]) -> Result<(), Error> {
        for (i, w) in words.iter().enumerate() {
            self.write_u64(addr + 8 * i as u64, *w)?;
        }
        Ok(())
    }

    /// Zeroes `len` bytes at `addr`.
    fn zero(&mut self, addr: u64, len: usize) -> Result<(), Error> {
        self.bytes_mut(addr, len)?.fill(0);
        Ok(())
    }
}

/// Physical memory for host tests: `bytes.len()` bytes starting at physical address `base`.
#[cfg(test)]
pub struct TestMemory {
    /// Physical address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: std::vec::Vec<u8>,
}

#[cfg(test)]
impl TestMemory {
    /// Zeroed memory covering `[base, base + len)`.
    pub fn new(base: u64, len: usize) -> Self {
        TestMemory {
            base,
            bytes: std::vec![0; len],
        }
    }

    fn range(&self, addr: u64, len: usize) -> Result<core::ops::Range<usize>, Error> {
        let err = Error::PhysOutOfRange {
            addr,
            len: len as u64,
        };
        let start = addr.checked_sub(self.base).ok_or(err)? as usize;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() {
            return Err(err);
        }
        Ok(start..end)
    }
}

#[cfg(test)]
impl PhysMem for TestMemory {
    fn bytes(&self, addr: u64, len: usize) -> Result<&[u8], Error> {
        let r = self.range(addr, len)?;
        Ok(&self.bytes[r])
    }

    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Error> {
        let r = self.range(addr, len)?;
        Ok(&mut self.bytes[r])
    }

    fn copy(&mut self, dst: u64, src: u64, len: usize) -> Result<(), Error> {
        let s = self.range(src, len)?;
        let d = self.range(dst, len)?;
        self.bytes.copy_within(s, d.start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(0x1fff, PAGE_SIZE), 0x1000);
        assert_eq!(align_up(0x1001, PAGE_SIZE), Some(0x2000));
        assert_eq!(align_up(0x2000, PAGE_SIZE), Some(0x2000));
        assert_eq!(align_up(u64::MAX - 5, PAGE_SIZE), None);
    }

    #[test]
    fn test_memory_checks_bounds_and_endianness() {
        let mut m = TestMemory::new(0x1000, 0x100);
        m.write_u64(0x1008, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u32(0x1008).unwrap(), 0x5566_7788);
        assert_eq!(m.read_u8(0x100f).unwrap(), 0x11);
        assert!(m.read_u64(0x10f9).is_err());
        assert!(m.read_u8(0xfff).is_err());
        m.copy(0x1010, 0x1008, 8).unwrap();
        assert_eq!(m.read_u64(0x1010).unwrap(), 0x1122_3344_5566_7788);
    }
}
