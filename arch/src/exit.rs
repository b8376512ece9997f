//! Ending a QEMU run with a verdict through the `isa-debug-exit` device.
//!
//! QEMU runs with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: writing `v` to port 0xf4
//! ends QEMU with status `(v << 1) | 1`. The kernel writes [`ExitCode::Pass`] (status 33) or
//! [`ExitCode::Fail`] (status 35); the loader uses 0x12 (status 37). On a machine without the
//! device the write is ignored and the CPU halts.

use x86_64::instructions::{hlt, port::Port};

/// I/O port of QEMU's `isa-debug-exit` device (`iobase=0xf4`).
pub const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

/// The kernel's verdicts, as written to [`ISA_DEBUG_EXIT_PORT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The run passed: QEMU exits with status 33.
    Pass = 0x10,
    /// The run failed: QEMU exits with status 35.
    Fail = 0x11,
}

/// Ends QEMU with `code`; halts this CPU if the device is absent.
pub fn exit_qemu(code: ExitCode) -> ! {
    let mut port = Port::<u32>::new(ISA_DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 belongs to isa-debug-exit in our QEMU configuration and is unused on
    // PC hardware otherwise; writing it has no effect on memory.
    unsafe { port.write(code as u32) };
    halt_forever()
}

/// Stops this CPU for good: interrupts off, `hlt` in a loop (an NMI may still wake it, and
/// the loop puts it back to sleep).
pub fn halt_forever() -> ! {
    crate::irq::disable_forever();
    loop {
        hlt();
    }
}
