//! The architecture part of each CPU's per-CPU area, reached through the GS base.
//!
//! [`ArchCpu`] holds what the hardware layer needs per CPU: its index, its local APIC id, the
//! local APIC handle, a timer tick counter, and a link in the list of CPUs that can take an
//! NMI (used by the fatal path). `smp` embeds one in every CPU's area and calls [`install`]
//! on that CPU; from then on `gs:[0]` points at the CPU's own [`ArchCpu`] and `gs:[8]` holds
//! its index, so reading the current CPU is one instruction.
//!
//! # Implementation
//! The BSP's GS base points at a static boot sentinel (index 0, no self pointer) from its
//! first instructions on ([`install_boot_sentinel`]), so the index is readable even before the
//! per-CPU areas exist; every AP installs its real area before anything else. The local APIC
//! handle is `!Send`: it sits in an `UnsafeCell` that only its own CPU touches, with interrupts
//! off and a reentrancy flag, which is what makes [`ArchCpu`] shareable.

use core::arch::asm;
use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

use crate::apic::LocalApic;
use crate::irq::IrqGuard;

/// One CPU's hardware state. `#[repr(C)]`: the first two fields are read through `gs:[0]`
/// and `gs:[8]`.
#[repr(C)]
pub struct ArchCpu {
    /// Points at this structure once installed; null in the boot sentinel.
    self_ptr: AtomicPtr<ArchCpu>,
    /// The kernel's CPU index (0 = BSP).
    index: usize,
    /// The local APIC id, as the bootloader reported it.
    lapic_id: u32,
    /// Local APIC timer interrupts taken on this CPU.
    ticks: AtomicU64,
    /// The local APIC handle; only this CPU touches it, with interrupts off.
    lapic: UnsafeCell<Option<LocalApic>>,
    /// Set while [`with_local_apic`] runs, to catch reentrant use.
    lapic_busy: Cell<bool>,
    /// Next CPU in the list of CPUs ready to take an NMI.
    next_nmi_ready: AtomicPtr<ArchCpu>,
}

// SAFETY: the fields shared across CPUs are immutable or atomic. `lapic` and `lapic_busy` are
// only touched through `with_local_apic`/`set_local_apic`, which reach the structure through
// this CPU's own GS base (never another CPU's) and with interrupts off.
unsafe impl Sync for ArchCpu {}

impl ArchCpu {
    /// The state of CPU `index` with local APIC id `lapic_id`, not yet installed.
    pub const fn new(index: usize, lapic_id: u32) -> Self {
        ArchCpu {
            self_ptr: AtomicPtr::new(ptr::null_mut()),
            index,
            lapic_id,
            ticks: AtomicU64::new(0),
            lapic: UnsafeCell::new(None),
            lapic_busy: Cell::new(false),
            next_nmi_ready: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The kernel's index of this CPU (0 = BSP).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The local APIC id of this CPU.
    pub fn lapic_id(&self) -> u32 {
        self.lapic_id
    }

    /// Timer interrupts this CPU has taken; readable from any CPU.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    pub(crate) fn count_tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

/// The BSP's GS target until its real per-CPU area exists.
static BOOT_SENTINEL: ArchCpu = ArchCpu::new(0, 0);

/// Points the BSP's GS base at the boot sentinel, so [`current_index`] reads 0.
///
/// # Safety
/// Call once, on the BSP, before anything reads the current CPU and before any AP starts.
pub unsafe fn install_boot_sentinel() {
    GsBase::write(VirtAddr::from_ptr(&BOOT_SENTINEL));
}

/// Makes `cpu` the current CPU's per-CPU state: writes its self pointer and the GS base.
///
/// # Safety
/// Must run on the CPU that `cpu` describes, once, before it reads its per-CPU state, and
/// `cpu` must not be installed on any other CPU.
pub unsafe fn install(cpu: &'static ArchCpu) {
    cpu.self_ptr
        .store(ptr::from_ref(cpu).cast_mut(), Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(cpu));
}

/// The current CPU's index (0 = BSP), from `gs:[8]`.
#[inline]
pub fn current_index() -> usize {
    let index: usize;
    // SAFETY: the GS base always points at a live `ArchCpu` (the boot sentinel on the BSP
    // from its first instructions, the CPU's own area on an AP from its entry on), whose
    // `index` field sits at offset 8 (`#[repr(C)]`: a pointer-sized field precedes it).
    unsafe {
        asm!("mov {}, gs:[8]", out(reg) index, options(nostack, readonly, preserves_flags));
    }
    index
}

/// The current CPU's installed state, or `None` on the BSP before its area exists.
#[inline]
pub fn current() -> Option<&'static ArchCpu> {
    let this: *const ArchCpu;
    // SAFETY: as in `current_index`: GS points at a live `ArchCpu`, whose first field is the
    // self pointer.
    unsafe {
        asm!("mov {}, gs:[0]", out(reg) this, options(nostack, readonly, preserves_flags));
    }
    // SAFETY: a non-null self pointer was stored by `install` from a `&'static ArchCpu`.
    unsafe { this.as_ref() }
}

/// Stores this CPU's local APIC handle.
pub(crate) fn set_local_apic(_irq: &IrqGuard, lapic: LocalApic) {
    let cpu = current().expect("local APIC set up before this CPU's per-CPU area");
    assert!(!cpu.lapic_busy.get(), "local APIC replaced while in use");
    // SAFETY: `cpu` is this CPU's own state (reached through its GS base), interrupts are
    // off (`_irq`), and `lapic_busy` is clear, so no other reference to the cell exists.
    unsafe { *cpu.lapic.get() = Some(lapic) };
}

/// Runs `f` with this CPU's local APIC; `None` if it is not set up yet.
pub(crate) fn with_local_apic<R>(
    _irq: &IrqGuard,
    f: impl FnOnce(&mut LocalApic) -> R,
) -> Option<R> {
    let cpu = current()?;
    assert!(!cpu.lapic_busy.replace(true), "reentrant local APIC use");
    // SAFETY: `cpu` is this CPU's own state, interrupts are off (`_irq`), and `lapic_busy`
    // was clear, so this is the only reference to the cell until we clear it again.
    let result = unsafe { (*cpu.lapic.get()).as_mut().map(f) };
    cpu.lapic_busy.set(false);
    result
}

/// Head of the list of CPUs whose IDT is loaded and that can therefore take an NMI.
static NMI_READY: AtomicPtr<ArchCpu> = AtomicPtr::new(ptr::null_mut());

/// Adds the current CPU to the NMI-ready list (after its IDT and per-CPU state are set up).
pub(crate) fn mark_nmi_ready(cpu: &'static ArchCpu) {
    let this = ptr::from_ref(cpu).cast_mut();
    let mut head = NMI_READY.load(Ordering::Acquire);
    loop {
        cpu.next_nmi_ready.store(head, Ordering::Relaxed);
        match NMI_READY.compare_exchange_weak(head, this, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// Calls `f` for every CPU that can take an NMI.
pub(crate) fn for_each_nmi_ready(mut f: impl FnMut(&'static ArchCpu)) {
    let mut next = NMI_READY.load(Ordering::Acquire);
    // SAFETY: the list only ever holds `&'static ArchCpu` pushed by `mark_nmi_ready`, and
    // entries are never removed.
    while let Some(cpu) = unsafe { next.as_ref() } {
        f(cpu);
        next = cpu.next_nmi_ready.load(Ordering::Acquire);
    }
}
