//! The interrupt descriptor table and its entry stubs, written for stable Rust.
//!
//! One IDT serves every CPU. All 256 vectors enter through a `global_asm!` stub that pushes a
//! uniform [`TrapFrame`] and calls [`trap_dispatch`], which routes:
//! - exceptions (0-31) other than NMI to the fatal exception report,
//! - the NMI to the fatal path's stop handler,
//! - the APIC timer, error and spurious vectors to this crate,
//! - any other vector to the handler registered with [`set_handler`], then end-of-interrupt.
//!
//! The double fault, NMI and machine check run on their own IST stacks (see [`crate::gdt`]).
//!
//! # Implementation
//! Stubs are 16 bytes apart (`.org` rejects a stub that outgrows its slot at assembly time);
//! vectors without a CPU-pushed error code push a 0 so the frame layout never varies
//! (SDM Vol. 3A §6.13). The common path saves all 15 general registers, calls Rust with a
//! pointer to the frame and a 16-byte aligned stack, restores, drops vector and error code,
//! and `iretq`s. The kernel has no user mode and no SSE (soft-float target), so neither
//! `swapgs` nor FPU state is involved.

use core::arch::global_asm;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use crate::gdt::{self, KERNEL_CODE_SELECTOR};
use crate::irq::IrqGuard;
use crate::{apic, cpu_local, exceptions, fatal, vectors};

/// Registers and CPU-pushed state at interrupt entry. `#[repr(C)]`: built by the assembly
/// stubs below, in this order from the lowest address.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The vector number, pushed by the stub.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Distance between two entry stubs.
const STUB_STRIDE: u64 = 16;

global_asm!(
    r#"
    .pushsection .text.arch_isr_stubs, "ax"
    .balign 16
    .global arch_isr_stubs
arch_isr_stubs:
    .set vec, 0
    .rept 256
        .org arch_isr_stubs + vec * 16, 0xcc
        .if !((vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30))
            pushq $0
        .endif
        pushq $vec
        jmp arch_isr_common
        .set vec, vec + 1
    .endr

arch_isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call arch_trap_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// First of the 256 entry stubs emitted above.
    static arch_isr_stubs: u8;
}

/// A handler for an external vector; runs with interrupts off, before end-of-interrupt.
pub type Handler = fn(vector: u8);

/// Registered handlers for vectors 32-255.
static HANDLERS: [Once<Handler>; 256] = [const { Once::new() }; 256];

/// Registers `handler` for `vector` (32-253); panics if the vector is taken or reserved.
pub fn set_handler(vector: u8, handler: Handler) {
    assert!(
        (vectors::FIRST_EXTERNAL..vectors::APIC_ERROR).contains(&vector)
            && vector != vectors::APIC_TIMER,
        "vector {vector:#x} is reserved"
    );
    let mut fresh = false;
    HANDLERS[usize::from(vector)].call_once(|| {
        fresh = true;
        handler
    });
    assert!(fresh, "vector {vector:#x} already has a handler");
}

/// A 64-bit IDT gate descriptor (SDM Vol. 3A §6.14.1, Figure 6-8). `#[repr(C)]`: read by
/// the CPU.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

/// Present, DPL 0, type 0xE (64-bit interrupt gate: IF is cleared on entry).
const INTERRUPT_GATE_PRESENT: u8 = 0x8e;

impl Gate {
    fn new(handler: u64, ist_index: Option<u16>) -> Self {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE_SELECTOR.0,
            // Hardware IST numbers start at 1; 0 means "no stack switch".
            ist: ist_index.map_or(0, |i| i as u8 + 1),
            type_attributes: INTERRUPT_GATE_PRESENT,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// The IDT: one gate per vector.
#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

fn build_idt() -> Idt {
    let base = VirtAddr::from_ptr(&raw const arch_isr_stubs).as_u64();
    Idt(core::array::from_fn(|vector| {
        let ist = match vector as u8 {
            vectors::DOUBLE_FAULT => Some(gdt::DOUBLE_FAULT_IST_INDEX),
            vectors::NMI => Some(gdt::NMI_IST_INDEX),
            vectors::MACHINE_CHECK => Some(gdt::MACHINE_CHECK_IST_INDEX),
            _ => None,
        };
        Gate::new(base + vector as u64 * STUB_STRIDE, ist)
    }))
}

/// Loads the shared IDT on this CPU (building it on first use).
pub fn load() {
    let idt: &'static Idt = IDT.call_once(build_idt);
    let pointer = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the IDT is a static that never changes after it is built; every gate points at
    // a stub of the block above with our kernel code selector, which every CPU's GDT holds
    // (it is loaded before the IDT), and each IST index names a stack in every CPU's TSS.
    unsafe { lidt(&pointer) };
}

/// Rust side of every entry stub.
#[unsafe(no_mangle)]
extern "C" fn arch_trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        vectors::NMI => fatal::on_nmi(frame),
        0..vectors::FIRST_EXTERNAL => exceptions::report(frame),
        // Spurious interrupts get no EOI (SDM Vol. 3A §11.9).
        vectors::APIC_SPURIOUS => {}
        _ => dispatch_external(vector),
    }
}

fn dispatch_external(vector: u8) {
    let irq = IrqGuard::new();
    match vector {
        vectors::APIC_TIMER => {
            if let Some(cpu) = cpu_local::current() {
                cpu.count_tick();
            }
        }
        vectors::APIC_ERROR => {
            let status = apic::take_error_status();
            crate::println!(
                "apic error on cpu {}: status={status:#x}",
                cpu_local::current_index()
            );
        }
        _ => match HANDLERS[usize::from(vector)].get() {
            Some(handler) => handler(vector),
            None => exceptions::unexpected_vector(vector),
        },
    }
    apic::eoi(&irq);
}
