//! The jump into the kernel on the BSP.
//!
//! Machine state at entry is PROTOCOL.md's "Machine state at entry, x86-64": the kernel's page
//! tables in CR3, the protocol GDT (through its HHDM address) with CS = 0x28 and the data
//! segments = 0x30, interrupts and the direction flag clear, `rsp` at the top of the BSP stack
//! (an HHDM address) with a return address of 0 pushed, every other general register zero,
//! PAT in the protocol layout, `EFER.NXE` set when available, `CR0.WP` set. The IDT is empty
//! (limit 0), as on the APs: the kernel relies on no bootloader IDT (it loads its own first
//! thing), and nothing it receives points into the loader's. The task register still holds the
//! loader's TSS (selector 0x38, past the limit of the GDT the kernel receives): the protocol
//! leaves TR undefined, and a kernel loads its own before it could use one.
//!
//! # Implementation
//! The kernel's tables have no identity map, so the last instructions cannot run at the
//! loader's identity address. Once the kernel's tables are built, the loader copies their upper
//! half into its own PML4 (so both the identity map and the HHDM are live; the APs rely on it
//! too); at hand-off it jumps to the HHDM alias of `handoff_stub`, and the stub, running from
//! memory both address spaces map alike, loads the kernel's CR3 and enters the kernel.

use super::cpu::{IA32_PAT, LIMINE_PAT, wrmsr};
use super::entry::{self, KERNEL_CS, KERNEL_DS};
use super::idt;
use core::arch::{asm, global_asm};

global_asm!(
    r#"
    .section .text.handoff, "ax", @progbits
    .code64
    .global handoff_stub
handoff_stub:                   /* rdi = kernel CR3, rsi = entry, rdx = stack top */
    movq %rdi, %cr3
    movq %rdx, %rsp
    pushq ${cs}
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:  movl ${ds}, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    pushq $0                    /* the invalid return address */
    pushq %rsi
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    xorl %r8d, %r8d
    xorl %r9d, %r9d
    xorl %r10d, %r10d
    xorl %r11d, %r11d
    xorl %r12d, %r12d
    xorl %r13d, %r13d
    xorl %r14d, %r14d
    xorl %r15d, %r15d
    cld
    ret
    "#,
    cs = const KERNEL_CS,
    ds = const KERNEL_DS,
    options(att_syntax)
);

unsafe extern "C" {
    fn handoff_stub() -> !;
}

/// Where the BSP enters the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Handoff {
    /// Physical address of the kernel's PML4.
    pub kernel_cr3: u64,
    /// The ELF entry point.
    pub entry: u64,
    /// Top of the BSP stack, as an HHDM address.
    pub stack_top: u64,
}

/// A GDTR image for `lgdt`.
#[repr(C, packed)]
struct Gdtr {
    limit: u16,
    base: u64,
}

/// Enters the kernel. Call last, on the BSP.
///
/// # Safety
/// `h.kernel_cr3` must be complete page tables that map the kernel, the HHDM of every
/// bootloader-reclaimable range (the loader image, `h.stack_top`) and nothing the loader relies
/// on differently, and their upper half must already be installed in the loader's PML4
/// ([`entry::install_kernel_half`]); `h.entry` must be the kernel's entry point.
pub unsafe fn enter_kernel(h: &Handoff) -> ! {
    let (gdt, limit) = entry::gdt();
    let gdtr = Gdtr {
        limit,
        base: entry::hhdm_alias(gdt),
    };
    let stub = entry::hhdm_alias(handoff_stub as *const () as u64);
    // SAFETY: (1) the PAT value is the protocol's and the loader maps everything write-back, so
    // nothing changes for it; (2) the caller guarantees the kernel's upper half is in the
    // loader's PML4, so the GDT's and the stub's HHDM aliases are mapped before `lgdt` and the
    // jump; (3) the stub switches to the kernel's CR3 while running from its HHDM alias, mapped
    // in both address spaces, and never returns.
    unsafe {
        wrmsr(IA32_PAT, LIMINE_PAT);
        asm!("lgdt [{}]", in(reg) &raw const gdtr, options(readonly, nostack, preserves_flags));
        idt::unload();
        asm!(
            "cli",
            "jmp {stub}",
            stub = in(reg) stub,
            in("rdi") h.kernel_cr3,
            in("rsi") h.entry,
            in("rdx") h.stack_top,
            options(noreturn)
        )
    }
}
