//! Shared helpers for host tests: building ELF files and memory maps.

use crate::elf::{EM_X86_64, ET_EXEC, HIGHER_HALF, PHDR_SIZE, PT_LOAD};
use std::vec::Vec;

/// Read-only segment flags.
pub const R: u32 = 4;
/// Read + execute.
pub const RX: u32 = 5;
/// Read + write.
pub const RW: u32 = 6;

/// One program header to put in a test ELF.
#[derive(Clone, Copy)]
pub struct Ph {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

pub fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
    Ph {
        kind: PT_LOAD,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
    }
}

/// An ELF64 x86_64 ET_EXEC file of `size` bytes with `phs` at offset 64; byte i of the body is
/// `i as u8` so copies can be checked.
pub fn elf(entry: u64, phs: &[Ph], size: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..size).map(|i| i as u8).collect();
    f[..64].fill(0);
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    for (i, p) in phs.iter().enumerate() {
        let at = 64 + i * PHDR_SIZE;
        let words = [p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, 0x1000];
        f[at..at + 4].copy_from_slice(&p.kind.to_le_bytes());
        f[at + 4..at + 8].copy_from_slice(&p.flags.to_le_bytes());
        for (j, w) in words.iter().enumerate() {
            f[at + 8 + 8 * j..at + 16 + 8 * j].copy_from_slice(&w.to_le_bytes());
        }
    }
    f
}

/// A three-segment kernel at the higher half base: text (entry at +0x10), rodata, data + bss.
/// Returns the file; it is 0x4000 bytes, the image 0x8000.
pub fn small_kernel() -> Vec<u8> {
    let base = HIGHER_HALF;
    let phs = [
        load(RW, 0x3000, base + 0x3000, 0x800, 0x5000),
        load(RX, 0x1000, base, 0x1800, 0x1800),
        load(R, 0x2800, base + 0x2000, 0x400, 0x400),
    ];
    elf(base + 0x10, &phs, 0x4000)
}

/// The bytes of `value` as laid out in memory (used to embed `limine` crate requests in test
/// kernel images exactly as the kernel's statics are laid out).
#[allow(unsafe_code)]
pub fn as_bytes<T>(value: &T) -> &[u8] {
    // SAFETY: `value` is a valid reference, so `size_of::<T>()` bytes at it are readable for the
    // returned borrow; the limine types read here contain no padding, so every byte is initialised.
    unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    }
}

/// Reads a `limine::BaseRevision` back from the 24 bytes of a tag, to ask the `limine` crate
/// itself what the kernel will conclude from the loader's handshake.
#[allow(unsafe_code)]
pub fn base_revision_from_bytes(bytes: &[u8]) -> limine::BaseRevision {
    assert_eq!(bytes.len(), core::mem::size_of::<limine::BaseRevision>());
    // SAFETY: the length matches, `read_unaligned` has no alignment requirement, and
    // `BaseRevision` is three `u64`s (two in `UnsafeCell`), valid for any bit pattern.
    unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<limine::BaseRevision>()) }
}
