//! COM1 output (16550 UART at 0x3f8, 115200 8N1), every line prefixed `loader: `.
//!
//! Only the BSP prints, and only before hand-off, so there is no locking. Transmission polls the
//! line status register; a missing UART reads as 0xff ("transmitter empty"), so output never
//! blocks forever.

use super::cpu::{inb, outb};
use core::fmt::{self, Write};

const COM1: u16 = 0x3f8;
/// Line status register: transmitter holding register empty.
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Programs COM1 for 115200 baud, 8 data bits, no parity, 1 stop bit, FIFOs on, no interrupts.
pub fn init() {
    let setup = [
        (1, 0x00),
        (3, 0x80),
        (0, 0x01),
        (1, 0x00),
        (3, 0x03),
        (2, 0xc7),
        (4, 0x03),
    ];
    for (reg, value) in setup {
        // SAFETY: these are the standard 16550 registers at COM1; programming them only changes
        // the UART's line settings.
        unsafe { outb(COM1 + reg, value) };
    }
}

struct Com1;

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: reading LSR and writing THR of COM1 only transmits the byte.
            unsafe {
                while inb(COM1 + 5) & LSR_THR_EMPTY == 0 {}
                outb(COM1, b);
            }
        }
        Ok(())
    }
}

/// Prints `loader: <args>` and a newline.
pub fn print_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(Com1, "loader: {args}");
}

/// Prints one `loader: ` line, `format!` style.
macro_rules! log {
    ($($arg:tt)*) => { $crate::machine::serial::print_line(format_args!($($arg)*)) };
}
pub(crate) use log;
