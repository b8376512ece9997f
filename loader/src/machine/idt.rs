//! The BSP's IDT: a CPU exception in the loader becomes its one error line, not a triple fault.
//!
//! [`install`] loads a 32-gate IDT (vectors 0-31) on the BSP as soon as `loader_main` runs in
//! long mode. Every gate is a DPL 0 interrupt gate through the loader's 64-bit code segment to
//! an entry stub; the common path hands the frame to [`loader_exception`], which prints
//! `loader: error: CPU exception <vector> (<name>) error=<hex> rip=<hex> cr2=<hex>`
//! ([`loader::exception::Report`]) and ends QEMU through [`exit::fail`] (status 37), as every
//! other loader failure does. [`fault`] raises an exception on purpose for the
//! `loader.fault=` test hook (see the crate docs).
//!
//! Not covered: the APs, which keep the empty IDT the trampoline loads (limit 0: an exception
//! shuts the machine down). They have no stack in the trampoline and switch to the kernel's
//! page tables, which have no identity map, before they park, so this identity-mapped IDT
//! and handler would be unreachable where they spend nearly all their time. Nor does a fault
//! that cannot push its frame (a loader stack overflow) get reported: that would need an IST
//! stack and so a TSS in the protocol GDT the kernel receives.
//!
//! Hand-off: [`unload`] loads an empty IDT just before the jump into the kernel, so the kernel
//! (which loads its own IDT first thing) never receives a pointer into bootloader-reclaimable
//! memory; it relies on no bootloader IDT.
//!
//! # Implementation
//! The stubs are emitted by one `.rept` in `global_asm!`, [`STUB_STRIDE`] bytes apart (`.org`
//! rejects a stub that outgrows its slot at assembly time). A stub whose vector has no
//! CPU-pushed error code ([`loader::exception::ERROR_CODE_VECTORS`], passed to the assembler as
//! a `const` mask) pushes a 0 first, so the frame ([`ExceptionFrame`]) never varies; then it
//! pushes its vector and jumps to the common path, which passes the frame's address to Rust on
//! a 16-byte aligned stack. The handler never returns, so no register is saved. Should the
//! handler itself fault (it formats and writes COM1), the nested entry skips the report and
//! exits at once.

use super::cpu::read_cr2;
use super::entry::KERNEL_CS;
use super::exit;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};
use loader::exception::{ERROR_CODE_VECTORS, FAULT_ADDRESS, Fault, Gate, Report, VECTORS};

/// Distance between two entry stubs.
const STUB_STRIDE: u64 = 16;

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
    call loader_exception
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
    /// The rest of the CPU's frame: part of the layout, not of the report.
    #[allow(dead_code)]
    interrupted: [u64; 4],
}

/// The IDT. `#[repr(C, align(16))]`: read by the CPU, gate `v` for vector `v`.
#[repr(C, align(16))]
struct Idt([Gate; VECTORS]);

/// Written once by [`install`] on the BSP, before it is loaded; read by the CPU afterwards.
static mut IDT: Idt = Idt([Gate::MISSING; VECTORS]);

/// Set by the first exception, so a second one (a fault in the handler) only exits.
static HANDLING: AtomicBool = AtomicBool::new(false);

/// An IDTR image for `lidt`. `#[repr(C, packed)]`: read by the CPU (limit u16, base u64).
#[repr(C, packed)]
struct Idtr {
    limit: u16,
    base: u64,
}

/// Fills the IDT and loads it on this CPU.
///
/// # Safety
/// Call on the BSP only, before any AP runs, in long mode on the loader's identity map with
/// the loader's GDT (64-bit code at [`KERNEL_CS`]) loaded, and not while an exception is
/// being handled.
pub unsafe fn install() {
    let base = &raw const loader_exception_stubs as u64;
    let idt = &raw mut IDT;
    // SAFETY: only the BSP runs loader code and the caller guarantees no AP does yet, so
    // nothing else reads or writes `IDT`; the CPU only reads it once `lidt` below loads it.
    unsafe {
        for (v, gate) in (*idt).0.iter_mut().enumerate() {
            *gate = Gate::interrupt(base + v as u64 * STUB_STRIDE, KERNEL_CS);
        }
    }
    let idtr = Idtr {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: idt as u64,
    };
    // SAFETY: every gate is present and points at its stub in the loader's (identity mapped)
    // text through the loaded 64-bit code segment; `IDT` is a static, so it outlives every
    // use until `unload` or the kernel replaces it.
    unsafe { load(&idtr) };
}

/// Loads an empty IDT (limit 0) on this CPU: from here on an exception shuts the machine down,
/// the state the kernel is entered in (and the APs run in).
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

/// The common path's Rust half: reports the exception and ends the run.
///
/// # Safety
/// Only `loader_exception_common` calls this, with `frame` pointing at the
/// [`ExceptionFrame`] it just built on the current stack.
#[unsafe(no_mangle)]
unsafe extern "C" fn loader_exception(frame: *const ExceptionFrame) -> ! {
    let cr2 = read_cr2();
    if HANDLING.swap(true, Ordering::Relaxed) {
        exit::exit_now();
    }
    // SAFETY: the caller guarantees `frame` is the frame the stub and the CPU pushed on this
    // stack, which stays live because this function never returns.
    let frame = unsafe { &*frame };
    exit::fail(&Report {
        vector: frame.vector,
        error_code: frame.error_code,
        rip: frame.rip,
        cr2,
    })
}

/// Raises the exception `kind` names, on purpose (the `loader.fault=` test hook).
pub fn fault(kind: Fault) -> ! {
    match kind {
        // SAFETY: reading `FAULT_ADDRESS`, which the loader's tables leave unmapped, raises a
        // page fault whose handler never returns; touches no memory of the loader. Should the
        // address be mapped after all, `ud2` still ends in a report.
        Fault::Page => unsafe {
            asm!(
                "mov {0}, qword ptr [{0}]",
                "ud2",
                in(reg) FAULT_ADDRESS,
                options(noreturn, nostack)
            )
        },
        // SAFETY: `ud2` raises an invalid opcode exception whose handler never returns.
        Fault::InvalidOpcode => unsafe { asm!("ud2", options(noreturn, nomem, nostack)) },
    }
}
