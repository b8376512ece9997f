//! The AP trampoline: real mode -> long mode on the kernel's page tables -> parked on
//! `goto_address`.
//!
//! A start-up IPI starts an AP in real mode at `vector << 12` (Intel SDM Vol. 3A 9.4.4). The
//! trampoline occupies two pages below 1 MiB, allocated from usable memory and so typed
//! bootloader-reclaimable: the code page (a copy of `ap_trampoline_start..ap_trampoline_end`)
//! and the data page right after it, which the BSP fills per AP ([`Trampoline::arm`]).
//! Code and data are apart so the BSP's writes never touch a page the parked APs execute from.
//!
//! The AP: loads the GDT (physical base) and an empty IDT, enters 32-bit protected mode with
//! caching enabled (`CR0` = PE | ET, as Limine does: INIT leaves `CD` and `NW` set), sets
//! the protocol's PAT, enables x2APIC if the BSP did, sets `CR4.PAE`, `EFER.LME` (and `NXE`),
//! loads the loader's CR3 (identity map + the kernel's upper half), enables paging with
//! `CR0.WP` and far-jumps to 64-bit code. From there it jumps to the HHDM alias of the parking
//! code, takes its `limine_mp_info` address and moves to its own stack (`reserved` field), loads
//! the loader's AP IDT through its HHDM address ([`super::idt`]: an exception from here on is
//! reported, naming the AP), reloads the GDTR with the GDT's HHDM address, switches to the
//! kernel's CR3 (identical to the BSP's at hand-off), reports in (`booted` = 1) and spins with
//! `pause` until `goto_address` is non-zero. Then, as the protocol says, it loads an empty IDT
//! and jumps there with `rdi` = its info (HHDM address), `rsp` = its own stack with a zero
//! return address pushed, and every other general register zero. With the `loader.fault=
//! ap-page` hook it reads an address the kernel's tables leave unmapped before reporting in.
//!
//! # Implementation
//! The code is position independent: real-mode and 32-bit code address the data page relative
//! to the code's physical base (`cs << 4`, kept in `ebx`), 64-bit code relative to its HHDM
//! alias. The data page layout ([`off`]) is shared with the assembly through `const` operands.

use super::entry::{self, KERNEL_CS, KERNEL_DS};
use super::idt;
use core::arch::global_asm;
use loader::Error;
use loader::hhdm::HHDM_OFFSET;
use loader::memmap::{EntryType, MemoryMap};
use loader::phys::{PAGE_SIZE, PhysMem};
use loader::protocol::mp_info;

/// Offset of the data page from the code page.
const DATA: u64 = PAGE_SIZE;

/// Byte offsets in the data page. The trampoline reads them; the BSP writes them.
mod off {
    /// GDTR for 16/32-bit mode: limit u16, base u32 (physical).
    pub const GDTR32: u64 = 0x00;
    /// An empty IDTR (limit 0): an exception in real or protected mode shuts the AP down.
    pub const IDTR: u64 = 0x08;
    /// GDTR for 64-bit mode: limit u16, base u64 (HHDM address).
    pub const GDTR64: u64 = 0x10;
    /// Far pointer to the 32-bit code: offset u32, selector u16 (written by the AP).
    pub const FAR32: u64 = 0x20;
    /// Far pointer to the 64-bit code: offset u32, selector u16 (written by the AP).
    pub const FAR64: u64 = 0x28;
    /// Flags ([`super::FLAG_X2APIC`], [`super::FLAG_NX`]), u32.
    pub const FLAGS: u64 = 0x30;
    /// Set to 1 by the AP once it runs on the kernel's tables, u32.
    pub const BOOTED: u64 = 0x34;
    /// The loader's CR3, u32 (below 4 GiB).
    pub const BOOT_CR3: u64 = 0x38;
    /// The kernel's CR3, u64.
    pub const KERNEL_CR3: u64 = 0x40;
    /// The HHDM offset, u64.
    pub const HHDM: u64 = 0x48;
    /// HHDM address of this AP's `limine_mp_info`, u64.
    pub const INFO: u64 = 0x50;
    /// IDTR for 64-bit mode: limit u16, base u64 (HHDM address of the loader's AP IDT).
    pub const IDTR64: u64 = 0x58;
}

/// Data flag: enable x2APIC.
const FLAG_X2APIC: u32 = 1;
/// Data flag: set `EFER.NXE`.
const FLAG_NX: u32 = 2;
/// Data flag: fault on the kernel's tables before parking (`loader.fault=ap-page`).
const FLAG_FAULT: u32 = 4;

global_asm!(
    r#"
    .section .text.ap_trampoline, "ax", @progbits
    .global ap_trampoline_start
    .global ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xorl %ebx, %ebx
    movw %cs, %bx
    shll $4, %ebx
    lidtl %cs:{d}+{idtr}
    lgdtl %cs:{d}+{gdtr32}
    leal (2f - ap_trampoline_start)(%ebx), %eax
    movl %eax, %cs:{d}+{far32}
    movw ${cs32}, %cs:{d}+{far32}+4
    movl $0x11, %eax            /* CR0 = PE | ET: INIT left CD and NW set, caching goes on */
    movl %eax, %cr0
    ljmpl *%cs:{d}+{far32}

    .code32
2:  movw ${ds32}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl $0x277, %ecx
    movl ${pat_lo}, %eax
    movl ${pat_hi}, %edx
    wrmsr
    testl ${x2apic}, {d}+{flags}(%ebx)
    jz 3f
    movl $0x1b, %ecx
    rdmsr
    orl $0xc00, %eax
    wrmsr
3:  movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    testl ${nx}, {d}+{flags}(%ebx)
    jz 4f
    orl $0x800, %eax
4:  wrmsr
    movl {d}+{boot_cr3}(%ebx), %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    leal (5f - ap_trampoline_start)(%ebx), %eax
    movl %eax, {d}+{far64}(%ebx)
    movw ${cs64}, {d}+{far64}+4(%ebx)
    ljmpl *{d}+{far64}(%ebx)

    .code64
5:  movw ${ds64}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl %ebx, %ebx
    addq {d}+{hhdm}(%rbx), %rbx
    leaq (6f - ap_trampoline_start)(%rbx), %rax
    jmpq *%rax

6:  movq {d}+{info}(%rbx), %rdi
    movq {stack}(%rdi), %rsp    /* its own stack, so an exception has one */
    lidtq {d}+{idtr64}(%rbx)    /* the loader's AP IDT, through the HHDM */
    lgdtq {d}+{gdtr64}(%rbx)
    movq {d}+{kernel_cr3}(%rbx), %rax
    movq %rax, %cr3
    testl ${fault}, {d}+{flags}(%rbx)
    jz 7f
    movabsq ${fault_address}, %rax
    movq (%rax), %rax           /* loader.fault=ap-page: unmapped in the kernel's tables */
7:  movl $1, %eax
    xchgl %eax, {d}+{booted}(%rbx)
8:  movq {goto}(%rdi), %rax
    testq %rax, %rax
    jnz 9f
    pause
    jmp 8b
9:  movq {stack}(%rdi), %rsp
    pushq $0
    pushq $0
    lidtq (%rsp)                /* an empty IDT (limit 0), as the BSP enters the kernel */
    popq %rcx
    pushq %rax
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %ebp, %ebp
    xorl %r8d, %r8d
    xorl %r9d, %r9d
    xorl %r10d, %r10d
    xorl %r11d, %r11d
    xorl %r12d, %r12d
    xorl %r13d, %r13d
    xorl %r14d, %r14d
    xorl %r15d, %r15d
    ret
ap_trampoline_end:
    "#,
    d = const DATA,
    idtr = const off::IDTR,
    gdtr32 = const off::GDTR32,
    gdtr64 = const off::GDTR64,
    far32 = const off::FAR32,
    far64 = const off::FAR64,
    flags = const off::FLAGS,
    booted = const off::BOOTED,
    boot_cr3 = const off::BOOT_CR3,
    kernel_cr3 = const off::KERNEL_CR3,
    idtr64 = const off::IDTR64,
    fault = const FLAG_FAULT,
    fault_address = const loader::exception::FAULT_ADDRESS,
    hhdm = const off::HHDM,
    info = const off::INFO,
    cs32 = const 0x18,
    ds32 = const 0x20,
    cs64 = const KERNEL_CS,
    ds64 = const KERNEL_DS,
    pat_lo = const super::cpu::LIMINE_PAT as u32,
    pat_hi = const (super::cpu::LIMINE_PAT >> 32) as u32,
    x2apic = const FLAG_X2APIC,
    nx = const FLAG_NX,
    goto = const mp_info::GOTO_ADDRESS,
    stack = const mp_info::STACK_TOP,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
}

/// What every AP needs to know, whoever it is.
#[derive(Clone, Copy, Debug)]
pub struct TrampolineConfig {
    /// The kernel's CR3.
    pub kernel_cr3: u64,
    /// Whether to set `EFER.NXE`.
    pub has_nx: bool,
    /// Whether to enable x2APIC.
    pub is_x2apic: bool,
    /// Whether every AP faults just before it parks (the `loader.fault=ap-page` test hook).
    pub is_faulting: bool,
}

/// The installed trampoline.
pub struct Trampoline {
    code: u64,
}

impl Trampoline {
    /// Allocates the two low pages, copies the code and fills the data every AP shares.
    pub fn install(
        mem: &mut impl PhysMem,
        map: &mut MemoryMap,
        config: TrampolineConfig,
    ) -> Result<Trampoline, Error> {
        let kind = EntryType::BOOTLOADER_RECLAIMABLE;
        let code = map.allocate(2 * PAGE_SIZE, PAGE_SIZE, kind, PAGE_SIZE, 0x10_0000)?;
        let start = &raw const ap_trampoline_start as u64;
        let len = &raw const ap_trampoline_end as u64 - start;
        assert!(len <= PAGE_SIZE, "AP trampoline larger than a page");
        mem.zero(code, 2 * PAGE_SIZE as usize)?;
        mem.copy(code, start, len as usize)?;
        let (gdt, limit) = entry::gdt();
        let data = code + DATA;
        mem.bytes_mut(data + off::GDTR32, 2)?
            .copy_from_slice(&limit.to_le_bytes());
        mem.write_u32(data + off::GDTR32 + 2, gdt as u32)?;
        mem.bytes_mut(data + off::GDTR64, 2)?
            .copy_from_slice(&limit.to_le_bytes());
        mem.write_u64(data + off::GDTR64 + 2, entry::hhdm_alias(gdt))?;
        let flags = if config.is_x2apic { FLAG_X2APIC } else { 0 }
            | if config.has_nx { FLAG_NX } else { 0 }
            | if config.is_faulting { FLAG_FAULT } else { 0 };
        let (idt_limit, idt) = idt::ap_idtr();
        mem.bytes_mut(data + off::IDTR64, 2)?
            .copy_from_slice(&idt_limit.to_le_bytes());
        mem.write_u64(data + off::IDTR64 + 2, idt)?;
        mem.write_u32(data + off::FLAGS, flags)?;
        mem.write_u32(data + off::BOOT_CR3, entry::boot_cr3() as u32)?;
        mem.write_u64(data + off::KERNEL_CR3, config.kernel_cr3)?;
        mem.write_u64(data + off::HHDM, HHDM_OFFSET)?;
        Ok(Trampoline { code })
    }

    /// The start-up IPI vector: the code page's number.
    pub fn vector(&self) -> u8 {
        (self.code >> 12) as u8
    }

    /// Prepares the trampoline for the next AP, whose info structure is at physical `info`.
    pub fn arm(&self, mem: &mut impl PhysMem, info: u64) -> Result<(), Error> {
        mem.write_u64(self.code + DATA + off::INFO, HHDM_OFFSET + info)?;
        mem.write_u32(self.code + DATA + off::BOOTED, 0)
    }

    /// Whether the armed AP has reached its parking loop.
    pub fn has_booted(&self) -> bool {
        let flag = (self.code + DATA + off::BOOTED) as *const u32;
        // SAFETY: the data page is identity mapped RAM the loader allocated; the AP writes the
        // flag concurrently, hence the volatile read of an aligned u32.
        unsafe { core::ptr::read_volatile(flag) == 1 }
    }
}
