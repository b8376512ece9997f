//! Pinning the current CPU.
//!
//! [`PinnedCpu`] is the proof that code runs on one known CPU and cannot be interrupted by
//! code that would touch the same per-CPU data: it holds interrupts off for its lifetime
//! (there is no preemption or migration in this kernel besides interrupts). Only through it
//! can code learn the current CPU id or reach its area.

use arch::irq::IrqGuard;

use crate::area::{self, CpuArea};

/// The current CPU, pinned: interrupts stay off while this lives. `!Send`.
#[must_use = "the CPU is unpinned as soon as the guard is dropped"]
pub struct PinnedCpu {
    irq: IrqGuard,
    cpu: usize,
}

/// Pins the current CPU.
pub fn pin() -> PinnedCpu {
    let irq = IrqGuard::new();
    let cpu = arch::cpu_local::current_index();
    PinnedCpu { irq, cpu }
}

impl PinnedCpu {
    /// The current CPU's index (0 = BSP).
    pub fn cpu_id(&self) -> usize {
        self.cpu
    }

    /// The current CPU's area; `None` on the BSP before `init_bsp`.
    pub fn area(&self) -> Option<&'static CpuArea> {
        area::area(self.cpu)
    }

    /// The interrupts-off proof this pin carries.
    pub fn irq_guard(&self) -> &IrqGuard {
        &self.irq
    }
}
