//! The PVH entry: from 32-bit protected mode to Rust in long mode.
//!
//! QEMU finds the entry through the `XEN_ELFNOTE_PHYS32_ENTRY` (18) note and enters it in 32-bit
//! protected mode, paging off, flat segments, with `ebx` = physical address of `hvm_start_info`
//! (Xen `arch-x86/hvm/start_info.h`, "PVH boot"). The stub zeroes `.bss`, identity maps the low
//! 4 GiB with 2 MiB pages, enables PAE, long mode (`EFER.LME`), paging and `CR0.WP`, loads the
//! loader's GDT and far-jumps to 64-bit code, which calls `loader_main(start_info)` on the
//! loader's own stack.
//!
//! The stack (128 KiB in `.bss`) has a guard page below it that the identity map leaves out
//! (the 2 MiB page holding it is split into 4 KiB pages, `boot_pt`), so an overflow faults
//! instead of running over the page tables below; [`stack_guard`] tells the exception handler
//! where it is.
//!
//! The GDT is the one the Limine protocol describes and the kernel receives at hand-off (null,
//! 16-bit code/data, 32-bit code/data, 64-bit code/data); the loader itself uses 0x28/0x30 and
//! the AP trampoline 0x18/0x20 on the way up. Past the protocol's limit the BSP's copy has one
//! more descriptor, its TSS at [`TSS_SELECTOR`] ([`load_tss`]): loaded with a longer limit on
//! the BSP only, it never shows in the GDTR the kernel or the APs receive.
//!
//! # Implementation
//! `boot_pml4` is the loader's address space; [`install_kernel_half`] later copies the kernel's
//! upper half into it so the loader (and the APs on their way up) can reach the HHDM alias of
//! the hand-off code while still identity mapped.

use super::cpu::{read_cr3, write_cr3};
use core::arch::global_asm;
use loader::descriptor::tss_descriptor;
use loader::hhdm::HHDM_OFFSET;

/// Selector of the 64-bit code segment.
pub const KERNEL_CS: u16 = 0x28;
/// Selector of the 64-bit data segment.
pub const KERNEL_DS: u16 = 0x30;
/// Selector of the BSP's TSS, just past the protocol GDT.
pub const TSS_SELECTOR: u16 = 0x38;
/// Descriptors in the protocol GDT.
const PROTOCOL_GDT_ENTRIES: usize = 7;
/// Quadwords in the loader's GDT: the protocol's, then the 16-byte TSS descriptor.
const LOADER_GDT_QUADS: usize = PROTOCOL_GDT_ENTRIES + 2;

global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .balign 4
    .long 4                     /* namesz: "Xen\0" */
    .long 4                     /* descsz */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4

    .section .data.boot_gdt, "aw", @progbits
    .balign 16
    .global boot_gdt
boot_gdt:
    .quad 0
    .quad 0x00009b000000ffff    /* 0x08: 16-bit code, base 0, limit 0xffff */
    .quad 0x000093000000ffff    /* 0x10: 16-bit data */
    .quad 0x00cf9b000000ffff    /* 0x18: 32-bit code, base 0, limit 4 GiB */
    .quad 0x00cf93000000ffff    /* 0x20: 32-bit data */
    .quad 0x00af9b000000ffff    /* 0x28: 64-bit code */
    .quad 0x00cf93000000ffff    /* 0x30: 64-bit data */
    .global boot_gdt_end
boot_gdt_end:                   /* the protocol GDT ends here; the loader's goes on: */
    .quad 0, 0                  /* 0x38: the BSP's TSS, filled by load_tss */
    .balign 8
boot_gdtr32:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot_page_tables, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
    .global boot_pd
boot_pd:
    .skip 4 * 4096
boot_pt:                        /* 4 KiB pages of the 2 MiB holding the guard page */
    .skip 4096
    .global loader_stack_guard
loader_stack_guard:             /* left unmapped: an overflow faults here */
    .skip 4096
loader_stack:
    .skip 0x20000
loader_stack_top:

    .section .text.pvh_start32, "ax", @progbits
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi             /* start_info, kept for loader_main */

    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    movl $boot_pdpt + 3, %eax   /* PML4[0] -> PDPT, present + writable */
    movl %eax, boot_pml4
    movl $boot_pd + 3, %eax     /* PDPT[0..4] -> the four page directories */
    movl $boot_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    loop 1b
    movl $0x83, %eax            /* 2 MiB pages: present + writable + PS */
    movl $boot_pd, %edi
    movl $2048, %ecx
2:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 2b

    movl $loader_stack_guard, %eax  /* boot_pt maps the guard's 2 MiB in 4 KiB pages... */
    andl $0xffe00000, %eax
    orl $3, %eax
    movl $boot_pt, %edi
    movl $512, %ecx
5:  movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    loop 5b
    movl $loader_stack_guard, %eax  /* ...but the guard page */
    shrl $12, %eax
    andl $511, %eax
    movl $0, boot_pt(,%eax,8)
    movl $loader_stack_guard, %eax
    shrl $21, %eax
    movl $boot_pt + 3, boot_pd(,%eax,8)

    movl %cr4, %eax
    orl $0x20, %eax             /* CR4.PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax            /* EFER.LME */
    wrmsr
    lgdt boot_gdtr32
    movl %cr0, %eax
    orl $0x80010001, %eax       /* CR0.PG | CR0.WP | CR0.PE */
    movl %eax, %cr0
    ljmp $0x28, $3f

    .code64
3:  movw $0x30, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movq $loader_stack_top, %rsp
    movl %esi, %edi
    call loader_main
4:  cli
    hlt
    jmp 4b
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The loader's PML4 (identity map of the low 4 GiB), set up by `pvh_start32`.
    static mut boot_pml4: [u64; 512];
    /// The four page directories of that identity map (2 MiB pages).
    static mut boot_pd: [u64; 2048];
    /// The GDT: the protocol's descriptors, then the BSP's TSS descriptor.
    static mut boot_gdt: [u64; LOADER_GDT_QUADS];
    /// The page under the loader's stack, left unmapped.
    static loader_stack_guard: u8;
    /// First byte of the loader image (linker script).
    static __loader_start: u8;
    /// One past the last byte of the loader image, page aligned (linker script).
    static __loader_end: u8;
}

/// Physical `[start, end)` of the loader image (identity mapped, so addresses are physical).
pub fn loader_image() -> (u64, u64) {
    (
        &raw const __loader_start as u64,
        &raw const __loader_end as u64,
    )
}

/// Physical address of the loader's PML4, the CR3 the APs start with.
pub fn boot_cr3() -> u64 {
    &raw const boot_pml4 as u64
}

/// Physical address and limit of the protocol GDT (what the kernel and the APs receive).
pub fn gdt() -> (u64, u16) {
    (
        &raw const boot_gdt as u64,
        (core::mem::size_of::<[u64; PROTOCOL_GDT_ENTRIES]>() - 1) as u16,
    )
}

/// The guard page under the loader's stack (identity address, unmapped).
pub fn stack_guard() -> u64 {
    &raw const loader_stack_guard as u64
}

/// A GDTR image for `lgdt`. `#[repr(C, packed)]`: read by the CPU (limit u16, base u64).
#[repr(C, packed)]
struct Gdtr {
    limit: u16,
    base: u64,
}

/// Writes the TSS descriptor for `tss`, loads the loader's GDT with it and loads the task
/// register, on this CPU.
///
/// # Safety
/// Call once, on the BSP, before any AP runs, on the identity map; `tss` must be the identity
/// address of a valid 64-bit TSS that stays in place while the loader runs.
pub unsafe fn load_tss(tss: u64) {
    let gdt = &raw mut boot_gdt;
    let gdtr = Gdtr {
        limit: (core::mem::size_of::<[u64; LOADER_GDT_QUADS]>() - 1) as u16,
        base: gdt as u64,
    };
    // SAFETY: (1) only the BSP runs, so nothing else touches the GDT's TSS slot, which no
    // loaded selector uses yet; (2) the new GDTR only extends the loaded table, so CS and the
    // data segments stay valid; (3) the descriptor describes the caller's valid TSS, not yet
    // busy, so LTR accepts it.
    unsafe {
        let [low, high] = tss_descriptor(tss);
        (*gdt)[PROTOCOL_GDT_ENTRIES] = low;
        (*gdt)[PROTOCOL_GDT_ENTRIES + 1] = high;
        core::arch::asm!("lgdt [{}]", in(reg) &raw const gdtr, options(readonly, nostack, preserves_flags));
        core::arch::asm!("ltr {:x}", in(reg) TSS_SELECTOR, options(nomem, nostack, preserves_flags));
    }
}

/// Makes the 2 MiB identity page holding `phys` uncacheable (PCD | PWT), for MMIO.
pub fn set_uncacheable(phys: u64) {
    let index = (phys >> 21) as usize;
    if index < 2048 {
        // SAFETY: `boot_pd` is the loader's page directory; only the BSP touches it, before any
        // AP starts, and changing cache attributes keeps the same mapping. The INVLPG below
        // drops the stale TLB entry.
        unsafe {
            let pd = &raw mut boot_pd;
            (*pd)[index] |= 0x18;
            core::arch::asm!("invlpg [{}]", in(reg) phys, options(nostack, preserves_flags));
        }
    }
}

/// Copies the kernel tables' upper half (HHDM and kernel image) into the loader's PML4, so the
/// HHDM alias of the loader exists in the loader's own address space too.
///
/// # Safety
/// `kernel_pml4` must be the physical address of the kernel's complete PML4, and the kernel's
/// upper half must map nothing the loader uses through its identity map differently.
pub unsafe fn install_kernel_half(kernel_pml4: u64) {
    let kernel = kernel_pml4 as *const u64;
    // SAFETY: the caller guarantees `kernel` is a valid PML4 (identity mapped below 4 GiB); the
    // loader's PML4 only uses entry 0, so entries 256..512 are free; reloading CR3 flushes them.
    unsafe {
        let ours = (&raw mut boot_pml4).cast::<u64>();
        core::ptr::copy_nonoverlapping(kernel.add(256), ours.add(256), 256);
        write_cr3(read_cr3());
    }
}

/// The HHDM alias of a loader address (the loader image is HHDM mapped as reclaimable memory).
pub fn hhdm_alias(phys: u64) -> u64 {
    HHDM_OFFSET + phys
}
