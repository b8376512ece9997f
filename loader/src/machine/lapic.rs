//! The BSP's local APIC: mode selection (xAPIC or x2APIC), its ID, and INIT/SIPI delivery.
//!
//! References: Intel SDM Vol. 3A chapter 11 ("Advanced Programmable Interrupt Controller"):
//! 11.4.4 (`IA32_APIC_BASE`: bit 11 EN global enable, bit 10 EXTD x2APIC mode), 11.6.1 (the
//! interrupt command register: delivery mode bits 8-10, level bit 14, delivery status bit 12,
//! destination in bits 56-63 in xAPIC mode), 11.12.10 (in x2APIC mode the ICR is MSR 0x830 with
//! a 32-bit destination in bits 32-63 and no delivery status), 11.12.5 (leaving x2APIC mode
//! requires disabling the APIC first).

use super::cpu::{IA32_APIC_BASE, has_x2apic, rdmsr, wrmsr};
use super::entry::set_uncacheable;
use super::timer::Tsc;
use loader::Error;

const APIC_BASE_EN: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// xAPIC register offsets (SDM table 11-1).
const XAPIC_ID: u64 = 0x20;
const XAPIC_ICR_LOW: u64 = 0x300;
const XAPIC_ICR_HIGH: u64 = 0x310;
/// x2APIC MSRs (SDM table 11-6).
const X2APIC_ID_MSR: u32 = 0x802;
const X2APIC_ICR_MSR: u32 = 0x830;
/// ICR: delivery status (xAPIC only).
const ICR_SEND_PENDING: u32 = 1 << 12;
/// ICR: INIT, level assert.
const ICR_INIT: u32 = 0x4500;
/// ICR: start-up, with the vector (page number of the trampoline) in bits 0-7.
const ICR_STARTUP: u32 = 0x4600;
/// How long an xAPIC may keep an IPI pending before the loader gives up.
const IPI_TIMEOUT_US: u64 = 100_000;

/// The BSP's local APIC in its chosen mode.
#[derive(Clone, Copy, Debug)]
pub enum Lapic {
    /// Memory-mapped registers at this physical (identity mapped) address.
    XApic(u64),
    /// MSR access.
    X2Apic,
}

impl Lapic {
    /// Puts the BSP's APIC in x2APIC mode if `want_x2apic` and the CPU has it; otherwise in
    /// xAPIC mode, turning off x2APIC if the firmware left it on (as Limine does).
    pub fn init(want_x2apic: bool) -> Lapic {
        // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
        let base = unsafe { rdmsr(IA32_APIC_BASE) };
        if want_x2apic && has_x2apic() {
            // SAFETY: x2APIC is supported; xAPIC -> x2APIC is a legal transition (SDM 11.12.5).
            unsafe { wrmsr(IA32_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD) };
            return Lapic::X2Apic;
        }
        if base & APIC_BASE_EXTD != 0 {
            // SAFETY: x2APIC -> disabled -> xAPIC is the legal way back (SDM 11.12.5); the loader
            // has no interrupts to lose.
            unsafe {
                wrmsr(IA32_APIC_BASE, base & !(APIC_BASE_EN | APIC_BASE_EXTD));
                wrmsr(IA32_APIC_BASE, (base & !APIC_BASE_EXTD) | APIC_BASE_EN);
            }
        }
        let mmio = base & APIC_BASE_ADDR_MASK;
        set_uncacheable(mmio);
        Lapic::XApic(mmio)
    }

    /// Whether the APIC is in x2APIC mode.
    pub fn is_x2apic(&self) -> bool {
        matches!(self, Lapic::X2Apic)
    }

    /// This CPU's APIC ID.
    pub fn id(&self) -> u32 {
        match *self {
            // SAFETY: in x2APIC mode the ID MSR exists and reading it has no side effect.
            Lapic::X2Apic => unsafe { rdmsr(X2APIC_ID_MSR) as u32 },
            Lapic::XApic(base) => self.read(base, XAPIC_ID) >> 24,
        }
    }

    /// Sends INIT (level assert) to APIC ID `dest`.
    pub fn send_init(&self, dest: u32, tsc: &Tsc) -> Result<(), Error> {
        self.send(dest, ICR_INIT, tsc)
    }

    /// Sends a start-up IPI with `vector` (the trampoline's page number) to `dest`.
    pub fn send_startup(&self, dest: u32, vector: u8, tsc: &Tsc) -> Result<(), Error> {
        self.send(dest, ICR_STARTUP | u32::from(vector), tsc)
    }

    fn send(&self, dest: u32, icr_low: u32, tsc: &Tsc) -> Result<(), Error> {
        match *self {
            Lapic::X2Apic => {
                // SAFETY: writing the x2APIC ICR sends the IPI; INIT/SIPI only affect `dest`,
                // which is an AP (never this CPU).
                unsafe { wrmsr(X2APIC_ICR_MSR, (u64::from(dest) << 32) | u64::from(icr_low)) };
                Ok(())
            }
            Lapic::XApic(base) => {
                self.wait_idle(base, dest, tsc)?;
                self.write(base, XAPIC_ICR_HIGH, dest << 24);
                self.write(base, XAPIC_ICR_LOW, icr_low);
                self.wait_idle(base, dest, tsc)
            }
        }
    }

    /// Waits until the xAPIC has delivered the last IPI.
    fn wait_idle(&self, base: u64, dest: u32, tsc: &Tsc) -> Result<(), Error> {
        let deadline = tsc.deadline_us(IPI_TIMEOUT_US);
        while self.read(base, XAPIC_ICR_LOW) & ICR_SEND_PENDING != 0 {
            if tsc.is_past(deadline) {
                return Err(Error::IpiStuck { lapic_id: dest });
            }
            core::hint::spin_loop();
        }
        Ok(())
    }

    fn read(&self, base: u64, reg: u64) -> u32 {
        // SAFETY: `base` is the xAPIC MMIO page from IA32_APIC_BASE, identity mapped and
        // uncacheable; register reads of ID and ICR have no side effects.
        unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
    }

    fn write(&self, base: u64, reg: u64, value: u32) {
        // SAFETY: as in `read`; the callers write only the ICR, to send INIT/SIPI to an AP.
        unsafe { core::ptr::write_volatile((base + reg) as *mut u32, value) }
    }
}
