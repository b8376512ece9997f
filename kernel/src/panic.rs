//! The panic handler: stop every other CPU, report, end the run with failure.
//!
//! Prints `panic on cpu <n>: <message> at <file>:<line>` and `RESULT FAIL panic` through
//! `arch::fatal`, which first stops the other CPUs with an NMI and then writes without the
//! console lock, so a CPU that died holding it cannot block the report.
#![deny(unsafe_code)]

use core::fmt::Write;
use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut report = arch::fatal::begin();
    let cpu = arch::cpu_local::current_index();
    let _ = match info.location() {
        Some(at) => writeln!(
            report,
            "panic on cpu {cpu}: {} at {}:{}",
            info.message(),
            at.file(),
            at.line()
        ),
        None => writeln!(report, "panic on cpu {cpu}: {}", info.message()),
    };
    report.fail(format_args!("panic"))
}
