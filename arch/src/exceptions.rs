//! Reports for CPU exceptions and unexpected interrupts. Every exception is fatal in this
//! kernel: the report names the exception, its vector, error code, RIP, CR2 for page faults,
//! and the CPU, then the fatal path stops the other CPUs and ends the run with failure.

use core::fmt::Write;

use x86_64::registers::control::Cr2;

use crate::idt::TrapFrame;
use crate::{cpu_local, fatal, vectors};

/// Exception names by vector (SDM Vol. 3A §6.15, "Exception and Interrupt Reference").
const NAMES: [&str; 32] = [
    "divide-error",
    "debug",
    "nmi",
    "breakpoint",
    "overflow",
    "bound-range-exceeded",
    "invalid-opcode",
    "device-not-available",
    "double-fault",
    "coprocessor-segment-overrun",
    "invalid-tss",
    "segment-not-present",
    "stack-segment-fault",
    "general-protection",
    "page-fault",
    "reserved-15",
    "x87-floating-point",
    "alignment-check",
    "machine-check",
    "simd-floating-point",
    "virtualization",
    "control-protection",
    "reserved-22",
    "reserved-23",
    "reserved-24",
    "reserved-25",
    "reserved-26",
    "reserved-27",
    "hypervisor-injection",
    "vmm-communication",
    "security",
    "reserved-31",
];

/// The name of exception `vector` (0-31).
pub fn name(vector: u8) -> &'static str {
    NAMES
        .get(usize::from(vector))
        .copied()
        .unwrap_or("external")
}

/// Reports the exception in `frame` and ends the run.
pub(crate) fn report(frame: &TrapFrame) -> ! {
    let vector = frame.vector as u8;
    // Read CR2 before anything else can fault and overwrite it.
    let cr2 = (vector == vectors::PAGE_FAULT).then(Cr2::read_raw);
    let mut out = fatal::begin();
    let name = name(vector);
    let _ = writeln!(
        out,
        "EXCEPTION {name} (vector {vector}) on cpu {}: error={:#x} rip={:#x} rsp={:#x} rflags={:#x}",
        cpu_local::current_index(),
        frame.error_code,
        frame.rip,
        frame.rsp,
        frame.rflags
    );
    if let Some(cr2) = cr2 {
        let _ = writeln!(
            out,
            "  cr2={cr2:#x} ({})",
            page_fault_cause(frame.error_code)
        );
    }
    out.fail(format_args!("exception {name}"))
}

/// Decodes a page-fault error code (SDM Vol. 3A §4.7, Figure 4-12).
fn page_fault_cause(error: u64) -> &'static str {
    match (error & 1 != 0, error & 2 != 0, error & 16 != 0) {
        (_, _, true) => "instruction fetch",
        (false, false, _) => "read of a non-present page",
        (false, true, _) => "write to a non-present page",
        (true, false, _) => "protection violation on read",
        (true, true, _) => "protection violation on write",
    }
}

/// Reports an interrupt on a vector nobody registered, and ends the run.
pub(crate) fn unexpected_vector(vector: u8) -> ! {
    let mut out = fatal::begin();
    let _ = writeln!(
        out,
        "unexpected interrupt vector {vector:#x} on cpu {}",
        cpu_local::current_index()
    );
    out.fail(format_args!("unexpected interrupt {vector:#x}"))
}
