//! Masking legacy interrupt sources before hand-off, as the protocol promises: the 8259 PICs
//! entirely, and the I/O APIC redirection entries with fixed or lowest-priority delivery.

use super::cpu::outb;

/// Masks all 16 IRQs of the master and slave 8259 PICs (OCW1 = 0xff on ports 0x21 and 0xa1).
pub fn mask_pic() {
    // SAFETY: writing OCW1 to the PIC data ports only sets the interrupt masks.
    unsafe {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}

/// I/O APIC register select (IOREGSEL) and data window (IOWIN) offsets (82093AA datasheet 3.1).
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// IOAPICVER register: bits 16-23 hold the index of the last redirection entry.
const IOAPICVER: u32 = 0x01;
/// First redirection table register; entry `n` is registers `0x10 + 2n` (low) and `+1` (high).
const IOREDTBL: u32 = 0x10;
/// Redirection entry: interrupt mask bit.
const REDIR_MASKED: u32 = 1 << 16;

/// Masks the redirection entries with fixed (000) or lowest-priority (001) delivery of the
/// I/O APIC at physical `base` (below 4 GiB, as the MADT gives it).
pub fn mask_ioapic(base: u64) {
    super::entry::set_uncacheable(base);
    let last = ioapic_read(base, IOAPICVER) >> 16 & 0xff;
    for n in 0..=last {
        let reg = IOREDTBL + 2 * n;
        let low = ioapic_read(base, reg);
        if (low >> 8) & 0b111 <= 1 {
            ioapic_write(base, reg, low | REDIR_MASKED);
        }
    }
}

fn ioapic_read(base: u64, reg: u32) -> u32 {
    // SAFETY: `base` is an I/O APIC from the MADT, identity mapped and uncacheable; selecting
    // a register and reading the window has no other effect.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, reg);
        core::ptr::read_volatile((base + IOWIN) as *const u32)
    }
}

fn ioapic_write(base: u64, reg: u32, value: u32) {
    // SAFETY: as in `ioapic_read`; the only value written is a redirection entry with its mask
    // bit set.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, reg);
        core::ptr::write_volatile((base + IOWIN) as *mut u32, value);
    }
}
