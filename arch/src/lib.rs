//! x86_64 hardware for the kernel: everything that touches a CPU register, a port or a
//! descriptor table lives here, so the crates above it (`smp`, `kernel`) stay almost free of
//! `unsafe`.
//!
//! What it offers, by module:
//! - [`serial`]: the COM1 console behind an interrupt-safe lock, and the `print!`/`println!`
//!   macros every CPU may use.
//! - [`irq`], [`lock`]: [`irq::IrqGuard`], the RAII proof that interrupts are off on this CPU,
//!   and [`lock::IrqSpinLock`], a spin lock whose holder always has interrupts off.
//! - [`cpu`], [`gdt`], [`idt`]: per-CPU GDT and TSS (with IST stacks for double fault, NMI and
//!   machine check) and the shared IDT whose entry stubs are plain `global_asm!`.
//! - [`cpu_local`]: the architecture part of each CPU's per-CPU area, reached through the GS
//!   base: CPU index, local APIC id, the local APIC handle, timer ticks.
//! - [`apic`], [`vectors`]: the local APIC through the `x2apic` crate (x2APIC or xAPIC, the
//!   latter mapped uncached by [`paging`]), IPIs, the periodic timer.
//! - [`tsc`], [`pit`]: time from the TSC, its frequency from CPUID or a PIT calibration.
//! - [`fatal`], [`exit`]: the one path every fatal event takes (panic, exception, unexpected
//!   NMI): stop the other CPUs with an NMI, report on serial, end QEMU with the failure code.
//!
//! `arch` knows nothing of allocation policy: whoever needs page-table frames passes an
//! `x86_64` [`FrameAllocator`](x86_64::structures::paging::FrameAllocator).
//!
//! # Implementation
//! Every CPU runs [`cpu::init_this_cpu`] with its own tables; the BSP's tables are static so
//! that exceptions are reported from the first instructions on, the APs' are allocated from
//! the kernel heap (this crate uses `alloc`, the kernel binary provides the allocator).
#![no_std]

extern crate alloc;

pub mod apic;
pub mod cpu;
pub mod cpu_local;
mod exceptions;
pub mod exit;
pub mod fatal;
pub mod gdt;
pub mod idt;
pub mod irq;
pub mod lock;
pub mod paging;
pub mod pit;
pub mod serial;
pub mod tsc;
pub mod vectors;
