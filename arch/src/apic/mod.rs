//! The local APIC: x2APIC where the bootloader enabled it, xAPIC otherwise.
//!
//! [`init_bsp`] decides the mode once (and maps the xAPIC register page uncached if needed);
//! [`init_this_cpu`] then enables the local APIC on each CPU and stores its handle in the
//! CPU's [`ArchCpu`](crate::cpu_local::ArchCpu). Afterwards code sends IPIs with
//! [`send_ipi`] and the interrupt dispatcher signals end-of-interrupt with [`eoi`]; both need
//! an [`IrqGuard`], since the handle belongs to the current CPU.
//!
//! # Implementation
//! The handle is the `x2apic` crate's `LocalApic`, wrapped to fix its xAPIC mistakes: it
//! returns the raw ID register (the xAPIC ID is in bits 24-31, SDM Vol. 3A §11.4.6) and puts
//! ICR destinations in bits 32-39 (xAPIC wants bits 56-63, SDM Vol. 3A §11.6.1); we shift
//! both. The crate's builder picks x2APIC whenever CPUID offers it; if the bootloader left the
//! APIC in xAPIC mode on such a CPU, the crate's `enable` switches it to x2APIC (a legal
//! transition, SDM Vol. 3A §11.12.5) and [`ApicSetup::switched_to_x2apic`] says so.

mod raw;
mod timer;

pub use timer::{TIMER_HZ, calibrate_timer, start_timer};

use core::fmt;

use raw_cpuid::CpuId;
use spin::Once;
use x2apic::lapic::{LocalApicBuilder, TimerDivide, TimerMode, xapic_base};
use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, Size4KiB};

use crate::cpu_local;
use crate::irq::IrqGuard;
use crate::paging::{self, MapError};
use crate::vectors;

/// How the local APICs are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    /// x2APIC: registers are MSRs, 32-bit IDs.
    X2Apic,
    /// xAPIC: registers are MMIO, 8-bit IDs.
    XApic,
}

impl fmt::Display for ApicMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApicMode::X2Apic => "x2apic",
            ApicMode::XApic => "xapic",
        })
    }
}

/// What [`init_bsp`] found and did.
#[derive(Clone, Copy, Debug)]
pub struct ApicSetup {
    /// The mode every CPU will use.
    pub mode: ApicMode,
    /// The bootloader left xAPIC mode on an x2APIC-capable CPU; the kernel switches.
    pub switched_to_x2apic: bool,
}

/// Why the local APIC could not be set up.
#[derive(Debug)]
pub enum ApicError {
    /// The bootloader reported x2APIC mode but CPUID says the CPU has no x2APIC.
    X2ApicClaimedButAbsent,
    /// The xAPIC register page could not be mapped.
    Map(MapError),
    /// The `x2apic` crate refused the configuration.
    Builder(&'static str),
}

static MODE: Once<ApicMode> = Once::new();

/// The mode chosen by [`init_bsp`], if it ran.
pub fn mode() -> Option<ApicMode> {
    MODE.get().copied()
}

/// Chooses the APIC mode for every CPU and maps the xAPIC page if needed. BSP, once.
pub fn init_bsp(
    loader_enabled_x2apic: bool,
    frames: &mut impl FrameAllocator<Size4KiB>,
) -> Result<ApicSetup, ApicError> {
    let cpu_has_x2apic = CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_x2apic());
    if loader_enabled_x2apic && !cpu_has_x2apic {
        return Err(ApicError::X2ApicClaimedButAbsent);
    }
    let mode = if cpu_has_x2apic {
        ApicMode::X2Apic
    } else {
        // SAFETY: reading IA32_APIC_BASE has no side effects.
        let phys = unsafe { xapic_base() };
        let virt = paging::map_mmio(PhysAddr::new(phys), 4096, frames).map_err(ApicError::Map)?;
        raw::set_xapic_virt(virt.as_u64());
        ApicMode::XApic
    };
    MODE.call_once(|| mode);
    Ok(ApicSetup {
        mode,
        switched_to_x2apic: cpu_has_x2apic && !loader_enabled_x2apic,
    })
}

/// This CPU's local APIC ID as [`init_this_cpu`] will read it, from CPUID alone: the x2APIC ID
/// (leaf 0Bh, EDX) on a CPU with x2APIC, which [`init_bsp`] then always enables; otherwise the
/// initial APIC ID (leaf 01h, EBX bits 31:24). For a BSP that no MP response describes.
pub fn cpuid_apic_id() -> u32 {
    let cpuid = CpuId::new();
    let features = cpuid.get_feature_info();
    let x2apic_id = cpuid
        .get_extended_topology_info()
        .and_then(|mut levels| levels.next())
        .map(|level| level.x2apic_id());
    match (features.as_ref().is_some_and(|f| f.has_x2apic()), x2apic_id) {
        (true, Some(id)) => id,
        _ => features.map_or(0, |f| u32::from(f.initial_local_apic_id())),
    }
}

/// Enables this CPU's local APIC (timer stopped) and stores its handle; returns its ID.
pub fn init_this_cpu(irq: &IrqGuard) -> Result<u32, ApicError> {
    let mode = mode().expect("apic::init_this_cpu before apic::init_bsp");
    let mut builder = LocalApicBuilder::new();
    builder
        .timer_vector(usize::from(vectors::APIC_TIMER))
        .error_vector(usize::from(vectors::APIC_ERROR))
        .spurious_vector(usize::from(vectors::APIC_SPURIOUS))
        .timer_mode(TimerMode::Periodic)
        .timer_divide(TimerDivide::Div16)
        // An initial count of 0 keeps the timer stopped until `start_timer`.
        .timer_initial(0);
    if let Some(base) = raw::xapic_virt() {
        builder.set_xapic_base(base);
    }
    let mut inner = builder.build().map_err(ApicError::Builder)?;
    // SAFETY: the IDT has handlers for the timer, error and spurious vectors; the register
    // page (xAPIC) is mapped; this CPU owns its local APIC.
    unsafe { inner.enable() };
    raw::write(raw::reg::LVT_LINT0, raw::LVT_MASKED);
    raw::write(raw::reg::LVT_LINT1, raw::LVT_MASKED);
    raw::read_error_status();
    let lapic = LocalApic { inner, mode };
    let id = lapic.id();
    cpu_local::set_local_apic(irq, lapic);
    Ok(id)
}

/// This CPU's local APIC handle (the `x2apic` crate's, with the xAPIC fixes).
pub struct LocalApic {
    inner: x2apic::lapic::LocalApic,
    mode: ApicMode,
}

impl LocalApic {
    /// The local APIC ID, from the hardware register.
    pub fn id(&self) -> u32 {
        // SAFETY: reading the ID register has no side effects.
        let raw = unsafe { self.inner.id() };
        match self.mode {
            ApicMode::X2Apic => raw,
            ApicMode::XApic => raw >> 24,
        }
    }

    /// Sends a fixed interrupt with `vector` to the CPU whose APIC ID is `dest`.
    fn send_ipi(&mut self, vector: u8, dest: u32) {
        let dest = match self.mode {
            ApicMode::X2Apic => dest,
            ApicMode::XApic => {
                raw::wait_icr_idle();
                dest << 24
            }
        };
        // SAFETY: a fixed IPI to a vector the IDT handles; no memory effect on this CPU.
        unsafe { self.inner.send_ipi(vector, dest) };
    }

    fn end_of_interrupt(&mut self) {
        // SAFETY: called at the end of a handler for an APIC-delivered vector.
        unsafe { self.inner.end_of_interrupt() };
    }

    pub(crate) fn inner_mut(&mut self) -> &mut x2apic::lapic::LocalApic {
        &mut self.inner
    }
}

/// This CPU's local APIC ID, read from the hardware.
pub fn local_id(irq: &IrqGuard) -> Option<u32> {
    cpu_local::with_local_apic(irq, |l| l.id())
}

/// Sends a fixed IPI with `vector` to the CPU whose local APIC ID is `lapic_id`.
///
/// Panics if this CPU's local APIC is not set up.
pub fn send_ipi(irq: &IrqGuard, vector: u8, lapic_id: u32) {
    cpu_local::with_local_apic(irq, |l| l.send_ipi(vector, lapic_id))
        .expect("send_ipi before this CPU's local APIC was set up");
}

/// Signals end-of-interrupt to this CPU's local APIC.
pub(crate) fn eoi(irq: &IrqGuard) {
    cpu_local::with_local_apic(irq, |l| l.end_of_interrupt());
}

/// Reads and clears the error status register (for the error interrupt).
pub(crate) fn take_error_status() -> u32 {
    raw::read_error_status()
}

/// Sends an NMI without the per-CPU handle (fatal path); false if the APIC is unreachable.
pub(crate) fn send_nmi_raw(lapic_id: u32) -> bool {
    raw::send_nmi(lapic_id)
}
