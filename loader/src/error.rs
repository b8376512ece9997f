//! Everything that can stop the loader, each with the one-line message printed after
//! `loader: error: ` on COM1.
//!
//! The loader has exactly one failure path: `main` prints the [`Error`] and exits QEMU with the
//! loader failure code (0x12, exit status 37). Library code therefore never panics on bad input;
//! it returns an `Error` that says what was wrong and, where it helps, where.

use core::fmt;

/// Why the loader cannot hand off to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `start_info` does not carry the PVH magic: not booted through PVH.
    BadStartInfoMagic(u32),
    /// `start_info` is older than version 1, which first carries the E820 memory map.
    NoMemoryMap,
    /// The E820 table has more entries than the loader keeps.
    TooManyE820Entries(u32),
    /// No module, or an empty one: the kernel ELF must be passed with `-initrd`.
    NoModule,
    /// The command line is longer than the loader's copy of it.
    CmdlineTooLong,
    /// A `loader.fault=` word names no fault the test hook knows (`page`, `ud`, `stack`,
    /// `ap-page`).
    UnknownFaultHook,
    /// A `loader.skip=` word names no request the test hook can leave unanswered.
    UnknownSkipHook,
    /// A `loader.corrupt=` word names nothing the test hook can corrupt (`memmap`, `mp`).
    UnknownCorruptHook,
    /// The module is not an x86_64 ELF64 executable; the text says which check failed.
    NotAnExecutable(&'static str),
    /// A PT_LOAD segment lies below the higher half (`0xffffffff80000000`).
    SegmentNotHigherHalf {
        /// The segment's virtual address.
        vaddr: u64,
    },
    /// A PT_LOAD segment's file bytes lie outside the module or its sizes are inconsistent.
    SegmentOutsideFile {
        /// Index of the program header.
        index: usize,
    },
    /// Two PT_LOAD segments overlap in virtual memory.
    SegmentsOverlap {
        /// Virtual address of the first segment.
        first: u64,
        /// Virtual address of the segment that overlaps it.
        second: u64,
    },
    /// The ELF has more PT_LOAD segments than the loader keeps.
    TooManySegments,
    /// The entry point is not inside an executable segment.
    EntryOutsideSegments(u64),
    /// The kernel image needs more physically contiguous usable memory below 4 GiB than there is.
    KernelDoesNotFit {
        /// Size of the image (`virtual_base` to the end of its last page).
        bytes: u64,
        /// Physical alignment it needs.
        align: u64,
    },
    /// No usable memory left for an allocation of this many bytes.
    OutOfMemory {
        /// Size of the failed allocation.
        bytes: u64,
    },
    /// The memory map would need more entries than the loader keeps.
    TooManyMemoryMapEntries,
    /// A physical access outside what the loader can reach.
    PhysOutOfRange {
        /// First byte of the access.
        addr: u64,
        /// Length of the access.
        len: u64,
    },
    /// The page tables already map this virtual address (a loader bug or overlapping ranges).
    MappingConflict {
        /// The virtual address mapped twice.
        virt: u64,
    },
    /// Two requests with the same ID in the kernel image.
    DuplicateRequest {
        /// Third word of the ID.
        id: u64,
    },
    /// Two base revision tags in the kernel image.
    DuplicateBaseRevision,
    /// More requests than the loader keeps.
    TooManyRequests,
    /// The kernel asks for a paging mode this loader does not provide (only 4-level).
    UnsupportedPagingMode,
    /// No valid ACPI RSDP in `start_info`, the EBDA or 0xE0000-0xFFFFF.
    NoRsdp,
    /// A `loader.hide=` word names no table the test hook can hide (`madt`, `srat`).
    UnknownHideHook,
    /// A `loader.corrupt=srat-*` test hook cannot do what it says on this machine.
    SratHook(&'static str),
    /// An ACPI table a test hook rewrote reads back unchanged: it is not in writable memory.
    AcpiReadOnly {
        /// The table signature.
        signature: [u8; 4],
        /// Its physical address.
        addr: u64,
    },
    /// An ACPI table fails its checksum or length checks.
    BadAcpiTable {
        /// The table signature.
        signature: [u8; 4],
        /// Its physical address.
        addr: u64,
    },
    /// The MADT lists more CPUs than the loader keeps.
    TooManyCpus,
    /// The MADT lists no enabled CPU.
    NoCpus,
    /// The PIT never counted down, so no time base for the AP timeouts.
    NoTimer,
    /// The local APIC never accepted an IPI.
    IpiStuck {
        /// Target APIC ID.
        lapic_id: u32,
    },
    /// An AP did not reach its parking loop in time.
    ApTimeout {
        /// The AP's APIC ID.
        lapic_id: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            BadStartInfoMagic(m) => {
                write!(f, "bad PVH start_info magic {m:#x} (expected 0x336ec578)")
            }
            NoMemoryMap => write!(f, "PVH start_info version 0 has no memory map"),
            TooManyE820Entries(n) => write!(f, "{n} E820 entries, more than the loader keeps"),
            NoModule => write!(
                f,
                "no module, or an empty one: pass the kernel ELF with -initrd"
            ),
            CmdlineTooLong => write!(f, "command line too long"),
            UnknownFaultHook => write!(
                f,
                "unknown loader.fault= value (expected page, ud, stack or ap-page)"
            ),
            UnknownCorruptHook => write!(
                f,
                "unknown loader.corrupt= value (expected memmap, mp, srat-overlap, srat-cpu or \
                 srat-memless)"
            ),
            UnknownHideHook => write!(f, "unknown loader.hide= value (expected madt or srat)"),
            SratHook(why) => write!(f, "loader.corrupt=srat-*: {why}"),
            AcpiReadOnly { signature, addr } => {
                let sig = core::str::from_utf8(&signature).unwrap_or("????");
                write!(f, "ACPI table {sig} at {addr:#x} is not writable")
            }
            UnknownSkipHook => write!(
                f,
                "unknown loader.skip= value (expected hhdm, memmap, mp, rsdp, bootloader-info, \
                 executable-address, executable-cmdline or stack-size)"
            ),
            NotAnExecutable(why) => write!(f, "module is not an x86_64 ELF64 executable: {why}"),
            SegmentNotHigherHalf { vaddr } => {
                write!(
                    f,
                    "segment at {vaddr:#x} is below the higher half 0xffffffff80000000"
                )
            }
            SegmentOutsideFile { index } => {
                write!(
                    f,
                    "program header {index}: segment bytes outside the module"
                )
            }
            SegmentsOverlap { first, second } => {
                write!(f, "segments at {first:#x} and {second:#x} overlap")
            }
            TooManySegments => write!(f, "too many PT_LOAD segments"),
            EntryOutsideSegments(e) => {
                write!(f, "entry point {e:#x} is not in an executable segment")
            }
            KernelDoesNotFit { bytes, align } => write!(
                f,
                "kernel image of {bytes:#x} bytes (aligned to {align:#x}) does not fit in usable \
                 memory below 4 GiB"
            ),
            OutOfMemory { bytes } => write!(f, "out of memory allocating {bytes:#x} bytes"),
            TooManyMemoryMapEntries => write!(f, "memory map has too many entries"),
            PhysOutOfRange { addr, len } => {
                write!(
                    f,
                    "physical range {addr:#x}+{len:#x} is outside reachable memory"
                )
            }
            MappingConflict { virt } => write!(f, "virtual address {virt:#x} mapped twice"),
            DuplicateRequest { id } => write!(f, "duplicate Limine request with ID word {id:#x}"),
            DuplicateBaseRevision => write!(f, "duplicate base revision tag"),
            TooManyRequests => write!(f, "too many Limine requests"),
            UnsupportedPagingMode => write!(f, "kernel requires a paging mode other than 4-level"),
            NoRsdp => write!(f, "no ACPI RSDP found"),
            BadAcpiTable { signature, addr } => {
                let sig = core::str::from_utf8(&signature).unwrap_or("????");
                write!(
                    f,
                    "ACPI table {sig} at {addr:#x} fails its checksum or length check"
                )
            }
            TooManyCpus => write!(f, "MADT lists more CPUs than the loader supports"),
            NoCpus => write!(f, "MADT lists no enabled CPU"),
            NoTimer => write!(f, "PIT channel 2 does not count: no time base"),
            IpiStuck { lapic_id } => {
                write!(f, "IPI to APIC ID {lapic_id} never left the local APIC")
            }
            ApTimeout { lapic_id } => {
                write!(
                    f,
                    "AP with APIC ID {lapic_id} did not reach its parking loop in time"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error::{self, *};
    use std::string::ToString;

    /// One value of every variant, plus an ACPI signature that is not UTF-8.
    const ALL: [Error; 34] = [
        BadStartInfoMagic(0x2bad_b002),
        NoMemoryMap,
        TooManyE820Entries(129),
        NoModule,
        CmdlineTooLong,
        UnknownFaultHook,
        UnknownSkipHook,
        UnknownCorruptHook,
        NotAnExecutable("no ELF magic"),
        SegmentNotHigherHalf { vaddr: 0x40_0000 },
        SegmentOutsideFile { index: 1 },
        SegmentsOverlap {
            first: 0xffff_ffff_8000_0000,
            second: 0xffff_ffff_8000_1000,
        },
        TooManySegments,
        EntryOutsideSegments(0),
        KernelDoesNotFit {
            bytes: 0x4000_0000,
            align: 0x1000,
        },
        OutOfMemory { bytes: 0x1000 },
        TooManyMemoryMapEntries,
        PhysOutOfRange { addr: 0, len: 8 },
        MappingConflict {
            virt: 0xffff_8000_0000_0000,
        },
        DuplicateRequest { id: 0x1234 },
        DuplicateBaseRevision,
        TooManyRequests,
        UnsupportedPagingMode,
        NoRsdp,
        UnknownHideHook,
        SratHook("no enabled CPU affinity entry"),
        AcpiReadOnly {
            signature: *b"SRAT",
            addr: 0x7ffe_0000,
        },
        BadAcpiTable {
            signature: *b"APIC",
            addr: 0xf_5250,
        },
        TooManyCpus,
        NoCpus,
        NoTimer,
        IpiStuck { lapic_id: 3 },
        ApTimeout { lapic_id: 7 },
        BadAcpiTable {
            signature: [0xff; 4],
            addr: 0,
        },
    ];

    #[test]
    fn every_message_is_one_nonempty_line() {
        for e in ALL {
            let text = e.to_string();
            assert!(!text.trim().is_empty(), "{e:?} has an empty message");
            assert!(!text.contains(['\n', '\r']), "{e:?} spans lines: {text:?}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            KernelDoesNotFit {
                bytes: 0x4000_0000,
                align: 0x1000
            }
            .to_string(),
            "kernel image of 0x40000000 bytes (aligned to 0x1000) does not fit in usable memory \
             below 4 GiB"
        );
        assert!(NoModule.to_string().contains("-initrd"));
        assert!(ApTimeout { lapic_id: 7 }.to_string().contains("APIC ID 7"));
    }
}
