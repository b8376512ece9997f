//! The interrupt vector map: one place, so no two users collide.
//!
//! Vectors 0-31 are the architecture's exceptions (SDM Vol. 3A §6.3.1, "External Interrupts"
//! reserves 0-31). The local APIC ranks vectors by their upper nibble (the priority class,
//! SDM Vol. 3A §11.8.3.1), so inter-CPU calls sit above the timer.

/// Non-maskable interrupt (SDM Vol. 3A §6.15, "Interrupt 2").
pub const NMI: u8 = 2;
/// Double fault (`#DF`, SDM Vol. 3A §6.15, "Interrupt 8").
pub const DOUBLE_FAULT: u8 = 8;
/// Page fault (`#PF`, SDM Vol. 3A §6.15, "Interrupt 14").
pub const PAGE_FAULT: u8 = 14;
/// Machine check (`#MC`, SDM Vol. 3A §6.15, "Interrupt 18").
pub const MACHINE_CHECK: u8 = 18;
/// First vector free for software and devices.
pub const FIRST_EXTERNAL: u8 = 32;

/// The local APIC timer (LVT timer register).
pub const APIC_TIMER: u8 = 0x30;
/// Inter-processor calls (`smp::run_on`).
pub const SMP_CALL: u8 = 0xe0;
/// The kernel's IPI test (`test=ipi`).
pub const TEST_IPI: u8 = 0xe1;
/// Local APIC internal errors (LVT error register, SDM Vol. 3A §11.5.3).
pub const APIC_ERROR: u8 = 0xfe;
/// Local APIC spurious interrupts; bits 0-3 set as older APICs require (SDM Vol. 3A §11.9).
pub const APIC_SPURIOUS: u8 = 0xff;

/// Vectors below 32 that push an error code (SDM Vol. 3A §6.13, Table 6-1).
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}
