//! Test modes, selected by `test=<mode>` on the command line (default `stress`).
//!
//! Each mode is a function that runs on the BSP after every CPU is online and returns
//! `Ok(())` or `Err(reason)`; [`finish`] turns that into `RESULT PASS` / `RESULT FAIL <reason>`
//! and the QEMU exit code. Modes that end the run themselves (a deliberate fault or panic)
//! never return. The allocator stress suite lives in `kernel/src/stress/`. To add a mode, add
//! its line to [`MODES`].
#![deny(unsafe_code)]

mod boot;
mod double_free;
mod faults;
mod ipi;
mod timer;

use alloc::format;
use alloc::string::String;

use arch::exit::{ExitCode, exit_qemu};

use crate::cmdline::Cmdline;

/// A test mode: runs on the BSP, returns the verdict.
type Mode = fn() -> Result<(), String>;

/// Every mode, by its `test=` name.
const MODES: &[(&str, Mode)] = &[
    ("stress", crate::stress::run),
    ("boot", boot::run),
    ("double-free", double_free::run),
    ("ipi", ipi::run),
    ("timer", timer::run),
    ("pagefault", faults::page_fault),
    ("panic-ap", faults::panic_ap),
    ("stack-overflow", faults::stack_overflow),
];

/// The mode used when the command line names none.
const DEFAULT_MODE: &str = "stress";

/// Registers the modes' interrupt handlers. BSP, before the APs start.
pub fn init() {
    ipi::init();
}

/// Runs the mode the command line selects and ends the run.
pub fn run(cmdline: &Cmdline) -> ! {
    if let Some(word) = cmdline.malformed().next() {
        finish(Err(format!(
            "malformed command-line word '{word}' (expected key=value)"
        )));
    }
    let name = cmdline.get("test").unwrap_or(DEFAULT_MODE);
    let Some((_, mode)) = MODES.iter().find(|(n, _)| *n == name) else {
        let known: alloc::vec::Vec<&str> = MODES.iter().map(|(n, _)| *n).collect();
        finish(Err(format!(
            "unknown test mode '{name}' (known: {})",
            known.join(", ")
        )));
    };
    arch::println!("test mode: {name}");
    finish(mode())
}

/// Prints the verdict and ends QEMU with the matching exit code.
pub fn finish(result: Result<(), String>) -> ! {
    match result {
        Ok(()) => {
            arch::println!("RESULT PASS");
            exit_qemu(ExitCode::Pass)
        }
        Err(reason) => {
            arch::println!("RESULT FAIL {reason}");
            exit_qemu(ExitCode::Fail)
        }
    }
}
