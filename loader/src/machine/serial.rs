//! COM1 output (16550 UART at 0x3f8, 115200 8N1), every line prefixed `loader: `.
//!
//! The BSP prints its progress; an AP prints only its exception report, possibly while the BSP
//! prints, so each line is written under a spin lock ([`LineLock`]). The lock is re-entrant
//! per CPU: a CPU that faults in the middle of a line still prints its report instead of
//! deadlocking on itself. Transmission polls the line status register; a missing UART reads as
//! 0xff ("transmitter empty"), so output never blocks forever.

use super::cpu::{inb, initial_apic_id, outb};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

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

/// No CPU holds the line lock: the broadcast APIC ID, which no CPU has.
const NO_CPU: u32 = u32::MAX;
/// The APIC ID of the CPU printing a line, or [`NO_CPU`].
static LINE_OWNER: AtomicU32 = AtomicU32::new(NO_CPU);

/// One CPU's hold on COM1 for one line; released on drop unless it was re-entered.
struct LineLock {
    is_outermost: bool,
}

impl LineLock {
    /// Waits until no other CPU prints.
    fn acquire() -> LineLock {
        let me = initial_apic_id();
        loop {
            match LINE_OWNER.compare_exchange(NO_CPU, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return LineLock { is_outermost: true },
                Err(owner) if owner == me => {
                    return LineLock {
                        is_outermost: false,
                    };
                }
                Err(_) => core::hint::spin_loop(),
            }
        }
    }
}

impl Drop for LineLock {
    fn drop(&mut self) {
        if self.is_outermost {
            LINE_OWNER.store(NO_CPU, Ordering::Release);
        }
    }
}

/// Prints `loader: <args>` and a newline, as one line even when several CPUs print.
pub fn print_line(args: fmt::Arguments<'_>) {
    let _line = LineLock::acquire();
    let _ = writeln!(Com1, "loader: {args}");
}

/// Prints one `loader: ` line, `format!` style.
macro_rules! log {
    ($($arg:tt)*) => { $crate::machine::serial::print_line(format_args!($($arg)*)) };
}
pub(crate) use log;
