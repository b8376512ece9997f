//! [`PhysMem`] over the loader's identity map of the low 4 GiB.
//!
//! Physical address = virtual address below 4 GiB (see `entry.rs`), so a physical range becomes
//! a slice directly. Ranges above 4 GiB, wrapping, or starting at address 0 are refused with
//! [`Error::PhysOutOfRange`] rather than faulting.

use loader::Error;
use loader::phys::{FOUR_GIB, PhysMem};

/// The low 4 GiB, identity mapped.
pub struct IdentityMemory {
    _private: (),
}

impl IdentityMemory {
    /// Access to physical memory through the identity map.
    ///
    /// # Safety
    /// Call once. The loader's identity map must be live, and the caller must only ask for RAM
    /// that no Rust object of the loader lives in (firmware structures, the module, memory the
    /// loader allocated from the memory map, the kernel image).
    pub unsafe fn new() -> Self {
        IdentityMemory { _private: () }
    }

    fn check(addr: u64, len: usize) -> Result<(), Error> {
        let err = Error::PhysOutOfRange {
            addr,
            len: len as u64,
        };
        let end = addr.checked_add(len as u64).ok_or(err)?;
        if addr == 0 || end > FOUR_GIB {
            return Err(err);
        }
        Ok(())
    }
}

impl PhysMem for IdentityMemory {
    fn bytes(&self, addr: u64, len: usize) -> Result<&[u8], Error> {
        if len == 0 {
            return Ok(&[]);
        }
        Self::check(addr, len)?;
        // SAFETY: the range is non-null and below 4 GiB, hence identity mapped; `new`'s contract
        // keeps Rust objects out of it, and `&self` excludes a concurrent `bytes_mut`.
        Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }

    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Error> {
        if len == 0 {
            return Ok(&mut []);
        }
        Self::check(addr, len)?;
        // SAFETY: as in `bytes`; `&mut self` makes this the only live slice from this memory.
        Ok(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) })
    }

    fn copy(&mut self, dst: u64, src: u64, len: usize) -> Result<(), Error> {
        if len == 0 {
            return Ok(());
        }
        Self::check(dst, len)?;
        Self::check(src, len)?;
        // SAFETY: both ranges are identity mapped RAM per `new`'s contract; `copy` allows overlap.
        unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, len) };
        Ok(())
    }
}
