//! The loader's hardware side: everything that touches the machine directly.
//!
//! The library makes the decisions; these modules carry them out: the PVH entry and early page
//! tables ([`entry`]), COM1 ([`serial`]), the failure exit ([`exit`]), the BSP's exception
//! handlers ([`idt`]), physical memory through the identity map ([`idmem`]), CPU primitives
//! ([`cpu`]), legacy interrupt controllers ([`legacy`]), the local APIC ([`lapic`]), the
//! PIT-calibrated TSC ([`timer`]), AP start-up ([`smp`], [`trampoline`]), and the final jump
//! into the kernel ([`handoff`]).

pub mod cpu;
pub mod entry;
pub mod exit;
pub mod handoff;
pub mod idmem;
pub mod idt;
pub mod lapic;
pub mod legacy;
pub mod serial;
pub mod smp;
pub mod timer;
pub mod trampoline;
