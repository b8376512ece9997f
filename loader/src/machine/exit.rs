//! The loader's only failure path: one `loader: error: <what>` line, then QEMU exits through
//! `isa-debug-exit` with the loader failure code, then the CPU halts (should the device be
//! missing, the machine stops instead of running on).
//!
//! Exactly one CPU reports: the first to fail claims the report ([`FAILING`]); any other CPU
//! that fails meanwhile (the BSP timing out on an AP that is reporting its exception, say)
//! halts silently, and the claiming CPU failing again while it prints (a fault in the handler)
//! exits at once.

use super::cpu::{halt_forever, initial_apic_id, outl};
use super::serial::log;
use core::fmt::Display;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};

/// No CPU is failing: the broadcast APIC ID, which no CPU has.
const NO_CPU: u32 = u32::MAX;
/// The APIC ID of the CPU printing the error line, or [`NO_CPU`].
static FAILING: AtomicU32 = AtomicU32::new(NO_CPU);

/// `isa-debug-exit` I/O port (QEMU `-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Loader failure: QEMU exits with status (0x12 << 1) | 1 = 37.
const LOADER_FAILURE: u32 = 0x12;

/// Reports `what` as the loader's error and ends the run (module docs: one CPU reports).
pub fn fail(what: &dyn Display) -> ! {
    let me = initial_apic_id();
    match FAILING.compare_exchange(NO_CPU, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            log!("error: {what}");
            exit_now()
        }
        Err(owner) if owner == me => exit_now(),
        Err(_) => halt_forever(),
    }
}

/// Ends the run with the loader failure code without printing anything (for a failure while
/// the error line is being printed).
pub fn exit_now() -> ! {
    // SAFETY: writing the debug-exit port ends QEMU; on a machine without the device the write
    // goes nowhere and we halt below.
    unsafe { outl(DEBUG_EXIT_PORT, LOADER_FAILURE) };
    halt_forever()
}

/// A panic in the loader is a loader failure like any other, reported on one line.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    struct Where<'a>(&'a PanicInfo<'a>);
    impl Display for Where<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0.location() {
                Some(l) => write!(
                    f,
                    "panic at {}:{}: {}",
                    l.file(),
                    l.line(),
                    self.0.message()
                ),
                None => write!(f, "panic: {}", self.0.message()),
            }
        }
    }
    fail(&Where(info))
}
