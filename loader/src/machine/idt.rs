//! The loader's IDTs: a CPU exception in the loader, on the BSP or on an AP before it parks,
//! becomes its one error line, not a triple fault.
//!
//! [`install`] builds two 32-gate tables (vectors 0-31) of DPL 0 interrupt gates through the
//! loader's 64-bit code segment to the same entry stubs, and loads the BSP's as soon as
//! `loader_main` runs in long mode:
//! - the BSP's reaches the stubs through the identity map the loader runs on; its double fault
//!   gate switches to an IST stack ([`DOUBLE_FAULT_IST`] in the BSP's TSS, [`entry::load_tss`]),
//!   so a stack overflow into the guard page below the loader's stack (whose page fault cannot
//!   push its frame) is still reported, as `stack overflow into the guard page ...`;
//! - the APs' ([`ap_idtr`]) reaches them through the HHDM alias, because an AP loads it in the
//!   trampoline's 64-bit code and then switches to the kernel's page tables, which have no
//!   identity map, before it parks. The APs have no TSS, so their gates use no IST; the
//!   trampoline gives each AP its own stack first.
//!
//! The common path switches to the loader's page tables (identity map plus the kernel's upper
//! half, so the HHDM alias it runs from and an AP's HHDM stack stay mapped), then calls
//! [`loader_exception`] at its identity address, which prints `loader: error: [AP with APIC ID
//! <id>: ]CPU exception <vector> (<name>) error=<hex> rip=<hex> cr2=<hex>`
//! ([`loader::exception::Report`]) and ends QEMU through [`exit::fail`] (status 37), as every
//! other loader failure does; `fail` lets exactly one CPU report. [`fault`] raises an exception
//! on purpose for the `loader.fault=` test hook (see the crate docs).
//!
//! Not covered: an AP before its trampoline reaches 64-bit code at the HHDM alias (a few
//! instructions in real and protected mode), which still shuts the machine down.
//!
//! Hand-off: [`unload`] loads an empty IDT just before the jump into the kernel, and each AP
//! loads one just before it jumps to its `goto_address`, so the kernel (which loads its own IDT
//! first thing) never receives a pointer into bootloader-reclaimable memory; it relies on no
//! bootloader IDT.
//!
//! # Implementation
//! The stubs are emitted by one `.rept` in `global_asm!`, [`STUB_STRIDE`] bytes apart (`.org`
//! rejects a stub that outgrows its slot at assembly time). A stub whose vector has no
//! CPU-pushed error code ([`loader::exception::ERROR_CODE_VECTORS`], passed to the assembler as
//! a `const` mask) pushes a 0 first, so the frame ([`ExceptionFrame`]) never varies; then it
//! pushes its vector and jumps (relative, so it stays in whichever alias it entered) to the
//! common path, which passes the frame's address to Rust on a 16-byte aligned stack. The
//! handler never returns, so no register is saved.

use super::cpu::{initial_apic_id, is_bsp, read_cr2};
use super::entry::{self, KERNEL_CS};
use super::exit;
use core::arch::{asm, global_asm};
use loader::descriptor::Tss;
use loader::exception::{
    DOUBLE_FAULT, DOUBLE_FAULT_IST, ERROR_CODE_VECTORS, FAULT_ADDRESS, Fault, Gate, Report, VECTORS,
};

/// Distance between two entry stubs.
const STUB_STRIDE: u64 = 16;
/// Size of the BSP's double fault stack: the report needs a few hundred bytes of formatting.
const IST_STACK_SIZE: usize = 0x4000;

global_asm!(
    r#"
    .section .text.loader_exception_stubs, "ax", @progbits
    .code64
    .balign 16
    .global loader_exception_stubs
loader_exception_stubs:
    .set vec, 0
    .rept {vectors}
        .org loader_exception_stubs + vec * {stride}, 0xcc
        .if ((({errmask}) >> vec) & 1) == 0
            pushq $0            /* no CPU-pushed error code: a dummy one */
        .endif
        pushq $vec
        jmp loader_exception_common
        .set vec, vec + 1
    .endr

loader_exception_common:        /* rsp = the ExceptionFrame */
    movq %rsp, %rdi
    andq $-16, %rsp
    cld
    movl $boot_pml4, %eax       /* the loader's tables: an AP may be on the kernel's */
    movq %rax, %cr3
    movabsq $loader_exception, %rax
    callq *%rax                 /* at its identity address */
1:  cli
    hlt
    jmp 1b
    "#,
    vectors = const VECTORS,
    stride = const STUB_STRIDE,
    errmask = const ERROR_CODE_VECTORS,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first of the [`VECTORS`] entry stubs emitted above, [`STUB_STRIDE`] bytes apart.
    static loader_exception_stubs: u8;
}

/// The stack at the common path, lowest address first: what the stub pushed, then what the CPU
/// pushed: error code (or the stub's 0), RIP, CS, RFLAGS, RSP, SS (SDM Vol. 3A 6.14.2,
/// Figure 6-9). `#[repr(C)]`: built by the assembly stubs above.
#[repr(C)]
struct ExceptionFrame {
    /// Pushed by the stub.
    vector: u64,
    /// Pushed by the CPU, or a 0 pushed by the stub.
    error_code: u64,
    rip: u64,
    /// CS and RFLAGS: part of the layout, not of the report.
    #[allow(dead_code)]
    cs_rflags: [u64; 2],
    rsp: u64,
    /// SS: part of the layout, not of the report.
    #[allow(dead_code)]
    ss: u64,
}

/// An IDT. `#[repr(C, align(16))]`: read by the CPU, gate `v` for vector `v`.
#[repr(C, align(16))]
struct Idt([Gate; VECTORS]);

/// The BSP's IDT (identity addresses). Written once by [`install`] on the BSP before it is
/// loaded; read by the CPU afterwards.
static mut BSP_IDT: Idt = Idt([Gate::MISSING; VECTORS]);
/// The APs' IDT (HHDM addresses). Written once by [`install`] before any AP starts.
static mut AP_IDT: Idt = Idt([Gate::MISSING; VECTORS]);

/// The BSP's double fault stack. `#[repr(C, align(16))]`: the CPU aligns an IST stack's top
/// down to 16 bytes anyway; this keeps all of it usable.
#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

/// Only the CPU writes it, on a double fault on the BSP.
static mut IST_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
/// The BSP's TSS; [`install`] sets IST1 before loading it. Read by the CPU.
static mut TSS: Tss = Tss::with_ist1(0);

/// An IDTR image for `lidt`. `#[repr(C, packed)]`: read by the CPU (limit u16, base u64).
#[repr(C, packed)]
struct Idtr {
    limit: u16,
    base: u64,
}

/// The limit of a full IDT.
const IDT_LIMIT: u16 = (core::mem::size_of::<Idt>() - 1) as u16;

/// Fills both IDTs, loads the TSS and the BSP's IDT on this CPU.
///
/// # Safety
/// Call once, on the BSP only, before any AP runs, in long mode on the loader's identity map
/// with the loader's GDT (64-bit code at [`KERNEL_CS`]) loaded.
pub unsafe fn install() {
    let base = &raw const loader_exception_stubs as u64;
    let (bsp, ap, tss) = (&raw mut BSP_IDT, &raw mut AP_IDT, &raw mut TSS);
    // SAFETY: only the BSP runs loader code and the caller guarantees no AP does yet, so
    // nothing else reads or writes the IDTs or the TSS; the CPU reads the IDT only once `lidt`
    // below loads it and the TSS once `load_tss` does.
    unsafe {
        for v in 0..VECTORS {
            let stub = base + v as u64 * STUB_STRIDE;
            let gate = Gate::interrupt(stub, KERNEL_CS);
            (*bsp).0[v] = match v as u64 {
                DOUBLE_FAULT => gate.with_ist(DOUBLE_FAULT_IST),
                _ => gate,
            };
            (*ap).0[v] = Gate::interrupt(entry::hhdm_alias(stub), KERNEL_CS);
        }
        let top = &raw const IST_STACK as u64 + IST_STACK_SIZE as u64;
        (*tss).ist[usize::from(DOUBLE_FAULT_IST) - 1] = top;
        entry::load_tss(tss as u64);
    }
    let idtr = Idtr {
        limit: IDT_LIMIT,
        base: bsp as u64,
    };
    // SAFETY: every gate is present and points at its stub in the loader's (identity mapped)
    // text through the loaded 64-bit code segment, the double fault's through the TSS just
    // loaded; `BSP_IDT` is a static, so it outlives every use until `unload`.
    unsafe { load(&idtr) };
}

/// The IDTR the APs load (limit, HHDM base): valid in the loader's and the kernel's tables.
pub fn ap_idtr() -> (u16, u64) {
    (IDT_LIMIT, entry::hhdm_alias(&raw const AP_IDT as u64))
}

/// Loads an empty IDT (limit 0) on this CPU: from here on an exception shuts the machine down,
/// the state the kernel is entered in.
pub fn unload() {
    // SAFETY: an empty IDT references no memory; it only changes what an exception does.
    unsafe { load(&Idtr { limit: 0, base: 0 }) };
}

/// Loads `idtr` into this CPU's IDTR.
///
/// # Safety
/// Every present gate of the table `idtr` describes must lead to a handler that copes with
/// any exception it receives, and the table must stay mapped and unchanged while loaded.
unsafe fn load(idtr: &Idtr) {
    // SAFETY: LIDT only reads the 10-byte image; the caller vouches for the table itself.
    unsafe {
        asm!("lidt [{}]", in(reg) idtr, options(readonly, nostack, preserves_flags));
    }
}

/// The common path's Rust half, on any CPU: reports the exception and ends the run.
///
/// # Safety
/// Only `loader_exception_common` calls this, on the loader's page tables, with `frame`
/// pointing at the [`ExceptionFrame`] it just built on the current stack.
#[unsafe(no_mangle)]
unsafe extern "C" fn loader_exception(frame: *const ExceptionFrame) -> ! {
    let cr2 = read_cr2();
    // SAFETY: the caller guarantees `frame` is the frame the stub and the CPU pushed on this
    // stack, which stays live because this function never returns.
    let frame = unsafe { &*frame };
    exit::fail(&Report {
        ap: (!is_bsp()).then(initial_apic_id),
        vector: frame.vector,
        error_code: frame.error_code,
        rip: frame.rip,
        cr2,
        rsp: frame.rsp,
        stack_guard: entry::stack_guard(),
    })
}

/// Raises the exception `kind` names on this CPU (the BSP), on purpose (the `loader.fault=`
/// test hook). `ApPage` belongs to the APs (the trampoline raises it); here it is a page fault.
pub fn fault(kind: Fault) -> ! {
    match kind {
        // SAFETY: reading `FAULT_ADDRESS`, which the loader's tables leave unmapped, raises a
        // page fault whose handler never returns; touches no memory of the loader. Should the
        // address be mapped after all, `ud2` still ends in a report.
        Fault::Page | Fault::ApPage => unsafe {
            asm!(
                "mov {0}, qword ptr [{0}]",
                "ud2",
                in(reg) FAULT_ADDRESS,
                options(noreturn, nostack)
            )
        },
        // SAFETY: `ud2` raises an invalid opcode exception whose handler never returns.
        Fault::InvalidOpcode => unsafe { asm!("ud2", options(noreturn, nomem, nostack)) },
        Fault::StackOverflow => {
            recurse(0);
            // SAFETY: as for `InvalidOpcode`; reached only if the recursion ever ended.
            unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
        }
    }
}

/// Recurses with a 256-byte frame until the stack runs into its guard page (the
/// `loader.fault=stack` hook). `black_box` keeps the frames on the stack and the condition
/// opaque, and the addition after the call rules out a tail call.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    if core::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[1])
}
