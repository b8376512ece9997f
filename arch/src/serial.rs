//! The COM1 serial console, shared by every CPU.
//!
//! [`print!`](crate::print) and [`println!`](crate::println) format into the UART under an
//! [`IrqSpinLock`], one lock hold per call, so lines from different CPUs never interleave and
//! an interrupt handler that prints cannot deadlock against the code it interrupted.
//! The fatal path never takes this lock: it stops the other CPUs first and then writes
//! through its own [`EmergencyWriter`], so a CPU that died holding the lock cannot block the
//! report.
//!
//! # Implementation
//! `uart_16550::SerialPort` at the standard COM1 base; [`init`] programs it once on the BSP.

use core::fmt::{self, Write};

use uart_16550::SerialPort;

use crate::lock::IrqSpinLock;

/// I/O base of COM1, the first PC serial port.
pub const COM1_BASE: u16 = 0x3f8;

// SAFETY: COM1_BASE is the standard COM1 port range, which only this module drives (the
// emergency writer below only writes while every other user is stopped).
static COM1: IrqSpinLock<SerialPort> = IrqSpinLock::new(unsafe { SerialPort::new(COM1_BASE) });

/// Programs the UART (8N1, FIFO on). Call once on the BSP before printing.
pub fn init() {
    COM1.lock().init();
}

/// Writes formatted text under the console lock; used by the macros.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    // The UART never reports an error; a failing Display impl just cuts the line short.
    let _ = COM1.lock().write_fmt(args);
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::_print(format_args!($($arg)*)) };
}

/// Prints a line to the serial console, in one lock hold.
#[macro_export]
macro_rules! println {
    () => { $crate::serial::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::serial::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// A lock-free writer to COM1 for the fatal path.
pub(crate) struct EmergencyWriter {
    port: SerialPort,
}

impl EmergencyWriter {
    /// A writer that bypasses the console lock.
    ///
    /// # Safety
    /// Only one CPU may use it, and only once the other CPUs have been stopped or can no
    /// longer reach the port (the fatal path guarantees both).
    pub(crate) unsafe fn new() -> Self {
        EmergencyWriter {
            // SAFETY: the caller guarantees exclusive use of COM1 from now on.
            port: unsafe { SerialPort::new(COM1_BASE) },
        }
    }
}

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.port.write_str(s)
    }
}
