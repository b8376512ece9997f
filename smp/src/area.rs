//! Per-CPU areas: one [`CpuArea`] per CPU, found through the GS base.
//!
//! [`init_bsp`] allocates an area for every CPU the kernel lists (no fixed cap: the slice is
//! sized at boot) and installs the BSP's; each AP installs its own with [`enter_ap`] from the
//! boot argument the kernel passed it (the Limine MP `extra_argument`).
//!
//! # Implementation
//! An area embeds the CPU's [`ArchCpu`], whose address is what the GS base holds; `arch`
//! reads the CPU index from it in one instruction, and the area is then `AREAS[index]`, so
//! no pointer is ever cast back. Areas are 64-byte aligned so two CPUs' hot fields never
//! share a cache line.

use alloc::vec::Vec;

use arch::cpu_local::{self, ArchCpu};
use spin::Once;

use crate::bringup;
use crate::call::CallQueue;

/// What the kernel knows about a CPU before it starts.
#[derive(Clone, Copy, Debug)]
pub struct CpuDesc {
    /// Its local APIC id.
    pub lapic_id: u32,
    /// Top of the kernel stack it switches to on entry.
    pub stack_top: u64,
}

/// One CPU's per-CPU area.
#[repr(C, align(64))]
pub struct CpuArea {
    arch: ArchCpu,
    stack_top: u64,
    pub(crate) calls: CallQueue,
}

impl CpuArea {
    fn new(index: usize, desc: &CpuDesc) -> Self {
        CpuArea {
            arch: ArchCpu::new(index, desc.lapic_id),
            stack_top: desc.stack_top,
            calls: CallQueue::new(),
        }
    }

    /// The CPU's index (0 = BSP).
    pub fn index(&self) -> usize {
        self.arch.index()
    }

    /// The CPU's local APIC id.
    pub fn lapic_id(&self) -> u32 {
        self.arch.lapic_id()
    }

    /// Top of the CPU's kernel stack.
    pub fn stack_top(&self) -> u64 {
        self.stack_top
    }

    /// Timer interrupts the CPU has taken.
    pub fn ticks(&self) -> u64 {
        self.arch.ticks()
    }

    /// The hardware part of the area.
    pub fn arch(&self) -> &ArchCpu {
        &self.arch
    }
}

static AREAS: Once<&'static [CpuArea]> = Once::new();

/// Creates every CPU's area (`cpus[0]` is the BSP) and installs the BSP's.
///
/// Panics on an empty list or a repeated local APIC id.
///
/// # Safety
/// Call once, on the BSP, after `arch::cpu::init_bsp_early` and the heap, before any AP
/// starts.
pub unsafe fn init_bsp(cpus: &[CpuDesc]) -> &'static CpuArea {
    assert!(!cpus.is_empty(), "smp::init_bsp: no CPUs listed");
    check_unique_ids(cpus);
    let areas: Vec<CpuArea> = cpus
        .iter()
        .enumerate()
        .map(|(index, desc)| CpuArea::new(index, desc))
        .collect();
    let areas: &'static [CpuArea] = areas.leak();
    assert!(AREAS.get().is_none(), "smp::init_bsp called twice");
    AREAS.call_once(|| areas);
    // SAFETY: we are on the BSP (caller's contract) and area 0 is the BSP's; no other CPU
    // runs yet.
    unsafe { cpu_local::install(&areas[0].arch) };
    bringup::init_online(areas.len());
    &areas[0]
}

fn check_unique_ids(cpus: &[CpuDesc]) {
    for (i, a) in cpus.iter().enumerate() {
        if let Some(j) = cpus[..i].iter().position(|b| b.lapic_id == a.lapic_id) {
            panic!("cpus {j} and {i} share local APIC id {}", a.lapic_id);
        }
    }
}

/// Number of CPUs with an area (1 before [`init_bsp`]).
pub fn cpu_count() -> usize {
    AREAS.get().map_or(1, |a| a.len())
}

/// Every CPU's area, in index order (empty before [`init_bsp`]).
pub fn areas() -> &'static [CpuArea] {
    AREAS.get().copied().unwrap_or(&[])
}

/// The area of CPU `cpu`.
pub fn area(cpu: usize) -> Option<&'static CpuArea> {
    areas().get(cpu)
}

/// The value to pass an AP as its boot argument: the address of its area.
pub fn boot_argument(cpu: usize) -> Option<u64> {
    area(cpu).map(|a| core::ptr::from_ref(a) as u64)
}

/// Installs the area named by `boot_argument` on this AP and returns it.
///
/// Panics if the argument is not the address of an AP's area.
///
/// # Safety
/// Call first thing on the AP that `boot_argument` was given to, once.
pub unsafe fn enter_ap(boot_argument: u64) -> &'static CpuArea {
    let area = areas()
        .iter()
        .skip(1)
        .find(|a| core::ptr::from_ref(*a) as u64 == boot_argument)
        .expect("AP boot argument names no AP's per-CPU area");
    // SAFETY: the caller runs on the AP this area belongs to, once (each AP gets a
    // distinct argument).
    unsafe { cpu_local::install(&area.arch) };
    area
}
