//! `test=double-free`: an injected double free is caught at the call site.
//!
//! In each allocator mode (baseline, then magazine) the BSP allocates a frame and frees it;
//! then the last CPU (another one whenever there are several: frames have no home CPU) frees
//! it again. Checked mode must refuse the second free with [`FreeErrorKind::NotAllocated`],
//! naming the frame and the CPU, before the frame reaches any magazine: the allocator's books
//! are the same before and after the bad free, and no frame can be handed out twice.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;

use mm::{Frame, FreeError, FreeErrorKind, Mode, Stats};
use spin::Mutex;

use crate::memory::{FRAMES, pin};

/// The allocator's frame accounting: `(free, cached, allocated, managed)`.
type Books = (u64, u64, u64, u64);

/// The second free, as the victim CPU saw it.
struct Attempt {
    before: Books,
    result: Result<(), FreeError>,
    after: Books,
}

/// Runs the injection in both modes; `Err` says what went wrong.
pub fn run() -> Result<(), String> {
    for mode in [Mode::Baseline, Mode::Magazine] {
        inject(mode)?;
    }
    Ok(())
}

/// Allocates and frees a frame on the BSP, frees it again on the last CPU, and checks that
/// the second free was refused with nothing changed.
fn inject(mode: Mode) -> Result<(), String> {
    let frame = {
        let cpu = pin();
        FRAMES.set_mode(mode);
        let frame = FRAMES.alloc(&cpu).map_err(|e| format!("{e}"))?;
        FRAMES
            .free(&cpu, frame)
            .map_err(|e| format!("first free refused: {e}"))?;
        frame
    };
    let victim = smp::cpu_count() - 1;
    let attempt: Mutex<Option<Attempt>> = Mutex::new(None);
    smp::run_on(victim, || {
        let cpu = pin();
        let before = books(&FRAMES.stats());
        let result = FRAMES.free(&cpu, frame);
        let after = books(&FRAMES.stats());
        *attempt.lock() = Some(Attempt {
            before,
            result,
            after,
        });
    });
    let attempt = attempt.into_inner().ok_or("the victim cpu never ran")?;
    let error = expect_refusal(attempt.result, frame, victim)?;
    arch::println!("double-free: mode={mode:?} caught: {error}");
    if attempt.before != attempt.after {
        return Err(format!(
            "the refused free changed (free, cached, allocated, managed) from {:?} to {:?}",
            attempt.before, attempt.after
        ));
    }
    Ok(())
}

/// The error of a refused double free, if it names the right kind, frame and CPU.
fn expect_refusal(
    result: Result<(), FreeError>,
    frame: Frame,
    cpu: usize,
) -> Result<FreeError, String> {
    match result {
        Ok(()) => Err(format!(
            "double free of {frame:?} on cpu {cpu} was accepted"
        )),
        Err(e) if e.kind == FreeErrorKind::NotAllocated && e.frame == frame && e.cpu == cpu => {
            Ok(e)
        }
        Err(e) => Err(format!("double free refused with the wrong report: {e}")),
    }
}

fn books(s: &Stats) -> Books {
    (s.free, s.cached, s.allocated, s.managed)
}
