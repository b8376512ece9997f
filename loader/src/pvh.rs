//! Reading the PVH `hvm_start_info` QEMU passes in `ebx`.
//!
//! Layouts are Xen's `xen/include/public/arch-x86/hvm/start_info.h` (version 1): `start_info`
//! (magic, version, flags, nr_modules, modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr,
//! memmap_entries), `hvm_modlist_entry` (paddr, size, cmdline_paddr) and
//! `hvm_memmap_table_entry` (addr, size, type). QEMU's PVH option ROM builds them: the E820
//! table from the BIOS, the command line from `-append`, module 0 from `-initrd`.
//!
//! # Implementation
//! [`read`] copies everything it needs into a [`StartInfo`] before the loader allocates any
//! memory, so firmware-owned bytes are never needed again; it also records where they were so
//! the loader can keep them out of its allocations all the same.

use crate::Error;
use crate::memmap::{E820Entry, MAX_E820};
use crate::phys::PhysMem;

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Longest command line kept, terminating NUL included (QEMU's option ROM buffer size).
pub const MAX_CMDLINE: usize = 4096;

const START_INFO_SIZE: u64 = 56;
const MODLIST_ENTRY_SIZE: u64 = 32;
const MEMMAP_ENTRY_SIZE: u64 = 24;

/// A module passed by the firmware (`-initrd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// Physical address of its first byte.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// What the loader keeps of `start_info`.
#[derive(Clone, Debug)]
pub struct StartInfo {
    e820: [E820Entry; MAX_E820],
    e820_len: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// `rsdp_paddr`, if the firmware set it.
    pub rsdp: Option<u64>,
    /// Module 0: the kernel ELF.
    pub module: Module,
    /// `(address, length)` of the firmware's structures: start_info, the module list, the E820
    /// table and the command line.
    pub firmware_ranges: [(u64, u64); 4],
}

impl StartInfo {
    /// The E820 table.
    pub fn e820(&self) -> &[E820Entry] {
        &self.e820[..self.e820_len]
    }

    /// The command line, without its NUL.
    pub fn cmdline(&self) -> &[u8] {
        &self.cmdline[..self.cmdline_len]
    }
}

/// The values of the command-line words `key=<value>` (words are separated by ASCII
/// whitespace), in order: how the loader's test hooks read their switches.
pub fn word_values<'a>(cmdline: &'a [u8], key: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    cmdline
        .split(u8::is_ascii_whitespace)
        .filter_map(move |word| word.strip_prefix(key)?.strip_prefix(b"="))
}

/// Reads and copies the `start_info` at physical address `paddr`.
pub fn read(mem: &impl PhysMem, paddr: u64) -> Result<StartInfo, Error> {
    let magic = mem.read_u32(paddr)?;
    if magic != START_INFO_MAGIC {
        return Err(Error::BadStartInfoMagic(magic));
    }
    if mem.read_u32(paddr + 4)? < 1 {
        return Err(Error::NoMemoryMap);
    }
    let (nr_modules, modlist) = (mem.read_u32(paddr + 12)?, mem.read_u64(paddr + 16)?);
    let (cmdline_paddr, rsdp) = (mem.read_u64(paddr + 24)?, mem.read_u64(paddr + 32)?);
    let (memmap, memmap_entries) = (mem.read_u64(paddr + 40)?, mem.read_u32(paddr + 48)?);
    if nr_modules == 0 || modlist == 0 {
        return Err(Error::NoModule);
    }
    let module = Module {
        paddr: mem.read_u64(modlist)?,
        size: mem.read_u64(modlist + 8)?,
    };
    if module.size == 0 {
        return Err(Error::NoModule);
    }
    let mut info = StartInfo {
        e820: [E820Entry::default(); MAX_E820],
        e820_len: 0,
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: 0,
        rsdp: (rsdp != 0).then_some(rsdp),
        module,
        firmware_ranges: [
            (paddr, START_INFO_SIZE),
            (modlist, MODLIST_ENTRY_SIZE * u64::from(nr_modules)),
            (memmap, MEMMAP_ENTRY_SIZE * u64::from(memmap_entries)),
            (cmdline_paddr, 0),
        ],
    };
    read_e820(mem, memmap, memmap_entries, &mut info)?;
    if cmdline_paddr != 0 {
        read_cmdline(mem, cmdline_paddr, &mut info)?;
        info.firmware_ranges[3].1 = info.cmdline_len as u64 + 1;
    }
    Ok(info)
}

fn read_e820(
    mem: &impl PhysMem,
    table: u64,
    count: u32,
    info: &mut StartInfo,
) -> Result<(), Error> {
    if count as usize > MAX_E820 {
        return Err(Error::TooManyE820Entries(count));
    }
    if count == 0 {
        return Err(Error::NoMemoryMap);
    }
    for (i, slot) in info.e820[..count as usize].iter_mut().enumerate() {
        let at = table + MEMMAP_ENTRY_SIZE * i as u64;
        *slot = E820Entry {
            base: mem.read_u64(at)?,
            length: mem.read_u64(at + 8)?,
            kind: mem.read_u32(at + 16)?,
        };
    }
    info.e820_len = count as usize;
    Ok(())
}

fn read_cmdline(mem: &impl PhysMem, at: u64, info: &mut StartInfo) -> Result<(), Error> {
    for i in 0..MAX_CMDLINE {
        let b = mem.read_u8(at + i as u64)?;
        if b == 0 {
            info.cmdline_len = i;
            return Ok(());
        }
        info.cmdline[i] = b;
    }
    Err(Error::CmdlineTooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_values_match_whole_keys_only() {
        let line = b"test=boot loader.skip=mp  loader.skipper=x loader.skip=hhdm loader.skip";
        let values: std::vec::Vec<&[u8]> = word_values(line, b"loader.skip").collect();
        assert_eq!(values, [b"mp".as_slice(), b"hhdm"]);
        assert_eq!(word_values(b"", b"loader.skip").count(), 0);
    }
    use crate::phys::TestMemory;

    const INFO: u64 = 0x1000;
    const MODLIST: u64 = 0x1100;
    const MEMMAP: u64 = 0x1200;
    const CMDLINE: u64 = 0x2000;

    /// QEMU-like start_info with two E820 entries, one module and `cmdline`.
    fn firmware(cmdline: &[u8]) -> TestMemory {
        let mut m = TestMemory::new(0, 0x4000);
        m.write_u32(INFO, START_INFO_MAGIC).unwrap();
        m.write_u32(INFO + 4, 1).unwrap();
        m.write_u32(INFO + 12, 1).unwrap();
        m.write_words(INFO + 16, &[MODLIST, CMDLINE, 0xf5a40, MEMMAP])
            .unwrap();
        m.write_u32(INFO + 48, 2).unwrap();
        m.write_words(MODLIST, &[0x1fe0_0000, 0x12345, 0, 0])
            .unwrap();
        m.write_words(MEMMAP, &[0, 0x9fc00, 1, 0x10_0000, 0x1000_0000, 1])
            .unwrap();
        m.bytes_mut(CMDLINE, cmdline.len())
            .unwrap()
            .copy_from_slice(cmdline);
        m
    }

    #[test]
    fn reads_everything_qemu_passes() {
        let info = read(&firmware(b"test=boot smp=4\0"), INFO).unwrap();
        assert_eq!(info.cmdline(), b"test=boot smp=4");
        assert_eq!(info.rsdp, Some(0xf5a40));
        assert_eq!(
            info.module,
            Module {
                paddr: 0x1fe0_0000,
                size: 0x12345
            }
        );
        let e820 = info.e820();
        assert_eq!(
            e820,
            &[
                E820Entry {
                    base: 0,
                    length: 0x9fc00,
                    kind: 1
                },
                E820Entry {
                    base: 0x10_0000,
                    length: 0x1000_0000,
                    kind: 1
                }
            ]
        );
        assert_eq!(
            info.firmware_ranges,
            [(INFO, 56), (MODLIST, 32), (MEMMAP, 48), (CMDLINE, 16)]
        );
    }

    #[test]
    fn missing_pieces_are_errors() {
        let mut m = firmware(b"\0");
        assert_eq!(read(&m, INFO).unwrap().cmdline(), b"");
        m.write_u32(INFO + 12, 0).unwrap();
        assert_eq!(read(&m, INFO).unwrap_err(), Error::NoModule);
        let mut m = firmware(b"\0");
        m.write_u64(MODLIST + 8, 0).unwrap();
        assert_eq!(
            read(&m, INFO).unwrap_err(),
            Error::NoModule,
            "an empty module"
        );
        let mut m = firmware(b"\0");
        m.write_u32(INFO + 4, 0).unwrap();
        assert_eq!(read(&m, INFO).unwrap_err(), Error::NoMemoryMap);
        let mut m = firmware(b"\0");
        m.write_u32(INFO, 0x2bad_b002).unwrap();
        assert_eq!(
            read(&m, INFO).unwrap_err(),
            Error::BadStartInfoMagic(0x2bad_b002)
        );
        let mut m = firmware(b"\0");
        m.write_u32(INFO + 48, MAX_E820 as u32 + 1).unwrap();
        assert_eq!(
            read(&m, INFO).unwrap_err(),
            Error::TooManyE820Entries(MAX_E820 as u32 + 1)
        );
    }

    #[test]
    fn an_unterminated_command_line_is_an_error() {
        let m = firmware(&[b'x'; MAX_CMDLINE]);
        assert_eq!(read(&m, INFO).unwrap_err(), Error::CmdlineTooLong);
        let mut ok = [b'y'; MAX_CMDLINE];
        ok[MAX_CMDLINE - 1] = 0;
        assert_eq!(
            read(&firmware(&ok), INFO).unwrap().cmdline().len(),
            MAX_CMDLINE - 1
        );
    }
}
