//! Direct local APIC register access, for what the `x2apic` crate cannot do.
//!
//! Three uses: masking LINT0/LINT1 (the crate's `enable` writes 0 to them, which leaves them
//! unmasked on vector 0), clearing and reading the error status register (which must be
//! written before it is read, SDM Vol. 3A §11.5.3), and sending the fatal path's NMIs without
//! touching the crate's per-CPU handle (which the interrupted code may be using).
//!
//! # Implementation
//! In x2APIC mode (IA32_APIC_BASE bit 10, read live on every call) register `offset` is MSR
//! `0x800 + offset / 16` and the ICR is one 64-bit MSR (SDM Vol. 3A §11.12.1, Table 11-6);
//! in xAPIC mode registers are 32-bit MMIO at `base + offset`, the ICR is split in two, and
//! the destination sits in bits 24-31 of the high half (SDM Vol. 3A §11.6.1).

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags, Msr};

/// Local APIC register offsets (xAPIC MMIO layout, SDM Vol. 3A §11.4.1, Table 11-1).
pub(crate) mod reg {
    /// Error Status Register.
    pub const ESR: u32 = 0x280;
    /// Interrupt Command Register, low half.
    pub const ICR_LOW: u32 = 0x300;
    /// Interrupt Command Register, high half (xAPIC only).
    pub const ICR_HIGH: u32 = 0x310;
    /// LVT LINT0.
    pub const LVT_LINT0: u32 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u32 = 0x360;
}

/// LVT mask bit (SDM Vol. 3A §11.5.1, Figure 11-8).
pub(crate) const LVT_MASKED: u32 = 1 << 16;
/// ICR delivery mode NMI (SDM Vol. 3A §11.6.1, Figure 11-12).
const ICR_DELIVERY_MODE_NMI: u32 = 0b100 << 8;
/// ICR level: assert (must be 1 for all modes but INIT de-assert).
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
/// ICR delivery status: send pending (xAPIC only).
const ICR_SEND_PENDING: u32 = 1 << 12;
/// First x2APIC MSR (SDM Vol. 3A §11.12.1).
const X2APIC_MSR_BASE: u32 = 0x800;
/// How long to wait for an xAPIC ICR to become idle before sending anyway.
const ICR_IDLE_SPINS: u32 = 1_000_000;

/// Virtual address of the xAPIC MMIO page, 0 until mapped.
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);

/// Records where the xAPIC register page is mapped.
pub(crate) fn set_xapic_virt(virt: u64) {
    XAPIC_VIRT.store(virt, Ordering::Release);
}

/// The mapped xAPIC register page, if any.
pub(crate) fn xapic_virt() -> Option<u64> {
    match XAPIC_VIRT.load(Ordering::Acquire) {
        0 => None,
        v => Some(v),
    }
}

/// Whether this CPU's local APIC is in x2APIC mode right now.
pub(crate) fn is_x2apic_now() -> bool {
    ApicBase::read().1.contains(ApicBaseFlags::X2APIC_ENABLE)
}

/// Writes a 32-bit register; false if the APIC is in xAPIC mode and not mapped yet.
pub(crate) fn write(offset: u32, value: u32) -> bool {
    if is_x2apic_now() {
        let mut msr = Msr::new(X2APIC_MSR_BASE + offset / 16);
        // SAFETY: in x2APIC mode this MSR is the local APIC register `offset`; the registers
        // written here (ESR, LVT, ICR) have no effect on memory.
        unsafe { msr.write(u64::from(value)) };
        return true;
    }
    let Some(base) = xapic_virt() else {
        return false;
    };
    // SAFETY: `base` maps the xAPIC register page (uncached); `offset` is a register in it.
    unsafe { core::ptr::write_volatile((base + u64::from(offset)) as *mut u32, value) };
    true
}

/// Reads a 32-bit register, if reachable.
pub(crate) fn read(offset: u32) -> Option<u32> {
    if is_x2apic_now() {
        let msr = Msr::new(X2APIC_MSR_BASE + offset / 16);
        // SAFETY: in x2APIC mode this MSR is the local APIC register `offset`.
        return Some(unsafe { msr.read() } as u32);
    }
    let base = xapic_virt()?;
    // SAFETY: `base` maps the xAPIC register page (uncached); `offset` is a register in it.
    Some(unsafe { core::ptr::read_volatile((base + u64::from(offset)) as *const u32) })
}

/// Reads the error status (after the write that latches it).
pub(crate) fn read_error_status() -> u32 {
    write(reg::ESR, 0);
    read(reg::ESR).unwrap_or(0)
}

/// Sends an NMI to the CPU with local APIC id `lapic_id`; false if the APIC is unreachable.
pub(crate) fn send_nmi(lapic_id: u32) -> bool {
    let low = ICR_DELIVERY_MODE_NMI | ICR_LEVEL_ASSERT;
    if is_x2apic_now() {
        let mut icr = Msr::new(X2APIC_MSR_BASE + reg::ICR_LOW / 16);
        // SAFETY: the x2APIC ICR MSR; sending an NMI has no effect on this CPU's memory.
        unsafe { icr.write((u64::from(lapic_id) << 32) | u64::from(low)) };
        return true;
    }
    if xapic_virt().is_none() {
        return false;
    }
    wait_icr_idle();
    write(reg::ICR_HIGH, lapic_id << 24);
    write(reg::ICR_LOW, low)
}

/// Waits (bounded) until an xAPIC has sent its previous IPI.
pub(crate) fn wait_icr_idle() {
    for _ in 0..ICR_IDLE_SPINS {
        if read(reg::ICR_LOW).is_none_or(|icr| icr & ICR_SEND_PENDING == 0) {
            return;
        }
        core::hint::spin_loop();
    }
}
