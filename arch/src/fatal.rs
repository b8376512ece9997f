//! The single path for fatal events: panic, exception, unexpected NMI or interrupt.
//!
//! [`begin`] makes the calling CPU the only reporter, stops every other CPU with an NMI, and
//! returns a [`FatalReport`] that writes to COM1 without the console lock; [`FatalReport::fail`]
//! prints `RESULT FAIL <reason>` and ends QEMU with the failure code.
//!
//! Rules that keep it from deadlocking or hanging:
//! - The first CPU to enter wins; a second CPU that fails at the same time halts (the
//!   winner's NMI then counts it as stopped). A CPU that fails again while reporting (a
//!   fault inside the report) writes one line and exits at once.
//! - NMIs go only to CPUs that registered as able to take one (their IDT is loaded), so a
//!   CPU still parked in the bootloader never sees an NMI it cannot handle.
//! - Stopped CPUs acknowledge; the reporter waits for the acknowledgements only for
//!   [`STOP_WAIT`] and says how many it got.
//! - The console lock may be held by a stopped CPU, so the report bypasses it.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use crate::exit::{ExitCode, exit_qemu, halt_forever};
use crate::idt::TrapFrame;
use crate::serial::EmergencyWriter;
use crate::{apic, cpu_local, irq, tsc};

/// How long the reporter waits for stopped CPUs to acknowledge.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// Spin count used instead of [`STOP_WAIT`] before the TSC is calibrated.
const STOP_WAIT_SPINS: u64 = 100_000_000;
/// `REPORTER` value while nobody reports.
const NOBODY: usize = usize::MAX;

/// CPU index of the reporting CPU, or [`NOBODY`].
static REPORTER: AtomicUsize = AtomicUsize::new(NOBODY);
/// CPUs that took the stop NMI.
static STOPPED: AtomicUsize = AtomicUsize::new(0);

/// The reporter's handle: a lock-free writer to COM1.
pub struct FatalReport {
    out: EmergencyWriter,
}

/// Becomes the reporting CPU and stops the others. Never returns on a CPU that loses the race.
pub fn begin() -> FatalReport {
    irq::disable_forever();
    let me = cpu_local::current_index();
    if let Err(reporter) =
        REPORTER.compare_exchange(NOBODY, me, Ordering::AcqRel, Ordering::Acquire)
    {
        if reporter == me {
            // SAFETY: we are the reporter: the other CPUs are stopped or being stopped.
            let mut out = unsafe { EmergencyWriter::new() };
            let _ = writeln!(
                out,
                "\nfatal: recursive failure on cpu {me}\nRESULT FAIL recursive failure"
            );
            exit_qemu(ExitCode::Fail);
        }
        halt_forever();
    }
    let (sent, acked) = stop_other_cpus(me);
    // SAFETY: this CPU won the REPORTER race, so it is the only user of the emergency writer,
    // and the other CPUs have been stopped (or failed to acknowledge, which we report).
    let mut out = unsafe { EmergencyWriter::new() };
    let _ = writeln!(
        out,
        "\nfatal on cpu {me}: stopped {acked} of {sent} other cpus"
    );
    FatalReport { out }
}

/// Sends the stop NMI to every other NMI-ready CPU; returns (sent, acknowledged).
fn stop_other_cpus(me: usize) -> (usize, usize) {
    let mut sent = 0;
    cpu_local::for_each_nmi_ready(|cpu| {
        if cpu.index() != me && apic::send_nmi_raw(cpu.lapic_id()) {
            sent += 1;
        }
    });
    let deadline = tsc::hz().map(|_| tsc::Deadline::after(STOP_WAIT));
    let mut spins = 0u64;
    while STOPPED.load(Ordering::Acquire) < sent {
        spins += 1;
        let late = match deadline {
            Some(d) => d.is_past(),
            None => spins > STOP_WAIT_SPINS,
        };
        if late {
            break;
        }
        core::hint::spin_loop();
    }
    (sent, STOPPED.load(Ordering::Acquire))
}

impl FatalReport {
    /// Prints `RESULT FAIL <reason>` and ends QEMU with the failure code.
    pub fn fail(mut self, reason: fmt::Arguments) -> ! {
        let _ = writeln!(self.out, "RESULT FAIL {reason}");
        exit_qemu(ExitCode::Fail)
    }
}

impl Write for FatalReport {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.write_str(s)
    }
}

/// The NMI handler: a stop request while another CPU reports, otherwise a fatal event.
pub(crate) fn on_nmi(frame: &TrapFrame) {
    let reporter = REPORTER.load(Ordering::Acquire);
    if reporter != NOBODY && reporter != cpu_local::current_index() {
        STOPPED.fetch_add(1, Ordering::AcqRel);
        halt_forever();
    }
    let mut out = begin();
    let _ = writeln!(
        out,
        "unexpected NMI on cpu {}: rip={:#x}",
        cpu_local::current_index(),
        frame.rip
    );
    out.fail(format_args!("unexpected nmi"))
}
