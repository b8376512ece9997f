//! CPU primitives: port I/O, MSRs, CPUID, control registers, the TSC.
//!
//! Thin wrappers over single instructions. The ones that can break memory safety or the
//! machine's state (port and MSR writes, CR3) are `unsafe fn`; reads without side effects are
//! safe.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc};

/// `IA32_APIC_BASE` (Intel SDM Vol. 3A, 11.4.4).
pub const IA32_APIC_BASE: u32 = 0x1b;
/// `IA32_PAT` (Intel SDM Vol. 3A, 12.12.2).
pub const IA32_PAT: u32 = 0x277;
/// `IA32_EFER` (Intel SDM Vol. 3A, 2.2.1).
pub const IA32_EFER: u32 = 0xc000_0080;
/// `IA32_EFER.NXE`.
pub const EFER_NXE: u64 = 1 << 11;
/// The PAT layout the Limine protocol specifies: PAT0 WB, PAT1 WT, PAT2 UC-, PAT3 UC, PAT4 WP,
/// PAT5 WC (PAT6/7 unspecified, left at UC-/UC as after reset).
pub const LIMINE_PAT: u64 = 0x0000_0105_0007_0406;

/// `cpuid` leaf `leaf`, subleaf 0: `(eax, ebx, ecx, edx)`.
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = __cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Whether extended leaf `leaf` exists.
fn has_extended_leaf(leaf: u32) -> bool {
    cpuid(0x8000_0000).0 >= leaf
}

/// NX pages (CPUID 0x8000_0001 EDX bit 20).
pub fn has_nx() -> bool {
    has_extended_leaf(0x8000_0001) && cpuid(0x8000_0001).3 & (1 << 20) != 0
}

/// 1 GiB pages (CPUID 0x8000_0001 EDX bit 26).
pub fn has_huge_pages() -> bool {
    has_extended_leaf(0x8000_0001) && cpuid(0x8000_0001).3 & (1 << 26) != 0
}

/// x2APIC (CPUID 1 ECX bit 21).
pub fn has_x2apic() -> bool {
    cpuid(1).2 & (1 << 21) != 0
}

/// This CPU's initial APIC ID, which the firmware's MADT lists: the 32-bit x2APIC ID of CPUID
/// leaf 0xB (EDX) where that leaf exists, else the 8-bit ID of leaf 1 (EBX bits 31:24). Needs
/// no memory, so it works in any address space (SDM Vol. 3A 11.4.6, 11.12.8).
pub fn initial_apic_id() -> u32 {
    if cpuid(0).0 >= 0xb && cpuid(0xb).1 != 0 {
        cpuid(0xb).3
    } else {
        cpuid(1).1 >> 24
    }
}

/// `IA32_APIC_BASE.BSP`: set on the bootstrap processor only (SDM Vol. 3A 11.4.4).
const APIC_BASE_BSP: u64 = 1 << 8;

/// Whether this CPU is the bootstrap processor.
pub fn is_bsp() -> bool {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no side effect.
    unsafe { rdmsr(IA32_APIC_BASE) & APIC_BASE_BSP != 0 }
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU (CR4.TSD is clear) and has no side effects.
    unsafe { _rdtsc() }
}

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist on this CPU (else #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; RDMSR only reads it.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes `value` to MSR `msr`.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it and keep the machine state the loader
/// relies on (paging, long mode).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and harmless to the loader.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// Reads a byte from I/O port `port`.
///
/// # Safety
/// Reading the port must have no side effect the loader does not expect.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller guarantees the read is harmless.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a byte to I/O port `port`.
///
/// # Safety
/// The write must be valid for the device at `port`.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the write is valid.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a double word to I/O port `port`.
///
/// # Safety
/// The write must be valid for the device at `port`.
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller guarantees the write is valid.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// The current CR3.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The current CR2: the linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Loads CR3 (flushing non-global TLB entries).
///
/// # Safety
/// `value` must point to page tables that map the currently executing code, stack and data the
/// same way as the current ones.
pub unsafe fn write_cr3(value: u64) {
    // SAFETY: the caller guarantees the new tables keep the loader mapped.
    unsafe { asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: interrupts are off in the loader; HLT just idles until an NMI, then we halt again.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}
