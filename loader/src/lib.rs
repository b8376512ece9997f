//! mmloader: the firmware's side of the Limine boot protocol, booted by QEMU through PVH.
//!
//! Real Limine cannot be installed here, so this loader stands in for it under QEMU: QEMU
//! starts the loader binary (`-kernel`) at its PVH entry, with the kernel ELF as module 0
//! (`-initrd`) and the kernel command line (`-append`). The loader does what Limine 10 does for
//! a base revision 3 kernel, and gives the kernel nothing Limine would not: the same memory map
//! rules, the same HHDM coverage (no identity map), the same responses with HHDM pointers in
//! bootloader-reclaimable memory, the same MP info and AP parking protocol, the same machine
//! state at entry. A kernel that boots here boots under real Limine (BIOS or UEFI) unchanged.
//!
//! The crate has two halves:
//! - this library: every decision the loader makes, written against [`phys::PhysMem`] so it
//!   runs, and is unit tested, on the host: [`pvh`] (reading `start_info`), [`memmap`] (the
//!   memory map and the physical allocator carved out of it), [`elf`] (validating the kernel and
//!   planning its placement), [`paging`] and [`hhdm`] (the kernel's page tables), [`requests`]
//!   (finding requests, the base revision handshake), [`answer`] (writing responses), [`acpi`]
//!   (RSDP, XSDT, MADT), [`protocol`] (magic numbers and layouts, checked against the `limine`
//!   crate in tests), [`exception`] (the loader's own IDT: vector names, gate encoding, the
//!   exception report line, the `loader.fault=` test hook), [`descriptor`] (the BSP's TSS and
//!   its GDT descriptor, for the double fault's IST stack);
//! - the binary (`src/main.rs`, `src/machine/`): the PVH entry and long mode switch, COM1,
//!   the IDT and its entry stubs, identity-mapped physical memory, the local APIC, the
//!   PIT-calibrated TSC, the AP trampoline and the final jump. It holds all of the loader's
//!   `unsafe` code.
//!
//! # Implementation
//! The library carries `#![deny(unsafe_code)]` (tests excepted, to view `limine` crate
//! structures as bytes). Nothing in it panics on bad input: every failure is an [`Error`], which
//! the binary prints as one `loader: error: <what>` line before exiting QEMU with status 37.
//! Fixed-capacity arrays replace heap allocation throughout (there is no allocator).

#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod acpi;
pub mod answer;
pub mod descriptor;
pub mod elf;
pub mod error;
pub mod exception;
pub mod hhdm;
pub mod memmap;
pub mod paging;
pub mod phys;
pub mod protocol;
pub mod pvh;
pub mod requests;
#[cfg(test)]
mod testutil;

pub use error::Error;
