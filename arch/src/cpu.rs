//! Per-CPU bring-up of the descriptor tables, in the order the hardware needs.
//!
//! - [`init_bsp_early`]: the BSP's first call. Static GDT/TSS, the IDT, the GS boot sentinel,
//!   no-execute paging, legacy PIC masked. From here on exceptions are reported.
//! - [`init_ap`]: an AP's first call after it installed its per-CPU state: heap-allocated
//!   GDT/TSS and IST stacks, the shared IDT, no-execute paging.
//! - [`mark_nmi_ready`]: once the CPU's per-CPU state is installed, it may receive the fatal
//!   path's stop NMI.

use core::arch::asm;

use x86_64::VirtAddr;
use x86_64::instructions::port::Port;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::model_specific::{Efer, EferFlags};

use crate::gdt::{CpuTables, KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR, TSS_SELECTOR};
use crate::{cpu_local, idt};

/// Data ports of the two 8259 PICs (IBM PC/AT wiring).
const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;

/// The BSP's first initialization step.
///
/// # Safety
/// Call once, first thing on the BSP, before any AP starts.
pub unsafe fn init_bsp_early() {
    load_tables(CpuTables::bsp());
    idt::load();
    // SAFETY: first thing on the BSP, as our caller promises.
    unsafe { cpu_local::install_boot_sentinel() };
    enable_no_execute();
    mask_legacy_pic();
}

/// An AP's descriptor tables, IST stacks and IDT. Needs the heap.
pub fn init_ap() {
    load_tables(CpuTables::allocate());
    idt::load();
    enable_no_execute();
}

/// Lets the fatal path stop this CPU with an NMI. Call once its per-CPU state is installed.
pub fn mark_nmi_ready() {
    let cpu = cpu_local::current().expect("mark_nmi_ready before the per-CPU state is installed");
    cpu_local::mark_nmi_ready(cpu);
}

/// Loads `tables` and reloads every segment register that refers to the GDT (not FS/GS,
/// whose selector loads would clear the GS base).
fn load_tables(tables: &'static CpuTables) {
    tables.gdt.load();
    // SAFETY: the GDT just loaded holds a 64-bit code segment, a data segment and this
    // CPU's TSS at the selectors used (fixed layout, see `gdt`); the TSS is not busy as no
    // other CPU loaded it.
    unsafe {
        CS::set_reg(KERNEL_CODE_SELECTOR);
        SS::set_reg(KERNEL_DATA_SELECTOR);
        DS::set_reg(KERNEL_DATA_SELECTOR);
        ES::set_reg(KERNEL_DATA_SELECTOR);
        load_tss(TSS_SELECTOR);
    }
}

/// Sets EFER.NXE so page-table entries may carry the no-execute bit.
fn enable_no_execute() {
    // SAFETY: setting NXE only makes bit 63 of page-table entries meaningful; no existing
    // entry the kernel relies on sets it without meaning no-execute.
    unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
}

/// Masks every line of both 8259 PICs: the kernel uses the local APIC only, and a stray PIC
/// interrupt would arrive on an exception vector.
fn mask_legacy_pic() {
    // SAFETY: writing the PIC data ports sets their interrupt masks; no memory effects.
    unsafe {
        Port::<u8>::new(PIC1_DATA).write(0xff);
        Port::<u8>::new(PIC2_DATA).write(0xff);
    }
}

/// Switches this CPU to the stack ending at `top` and calls `entry(arg)` there.
///
/// # Safety
/// `top` must be the 16-byte aligned top of a mapped stack that nothing else uses, big enough
/// for `entry`; nothing on the current stack may be referenced afterwards (it is abandoned).
pub unsafe fn run_on_stack(top: VirtAddr, entry: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: the caller guarantees the new stack; `call` leaves it ABI-aligned (top is
    // 16-byte aligned, the return address makes it 8 mod 16 on entry) and `entry` never
    // returns (the `ud2` traps if it did).
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {entry}",
            "ud2",
            top = in(reg) top.as_u64(),
            entry = in(reg) entry,
            in("rdi") arg,
            options(noreturn),
        )
    }
}
