//! The invariants checked after every phase run, at a quiescent point.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;

use super::PhaseRun;
use super::phases::Phase;
use super::report::mode_name;

/// `Ok` when `run` kept every invariant; `Err` names the first broken one.
pub fn phase(run: &PhaseRun) -> Result<(), String> {
    let at = format!("{} ({})", run.phase.name(), mode_name(run.mode));
    no_worker_errors(run).map_err(|e| format!("{at}: {e}"))?;
    books_balance(run).map_err(|e| format!("{at}: {e}"))?;
    counters_agree(run).map_err(|e| format!("{at}: {e}"))?;
    if run.phase == Phase::Exhaust {
        everything_obtained(run).map_err(|e| format!("{at}: {e}"))?;
    }
    Ok(())
}

fn no_worker_errors(run: &PhaseRun) -> Result<(), String> {
    let errors: u64 = run.cpus.iter().map(|c| c.errors).sum();
    match run.cpus.iter().find_map(|c| c.first_error.as_ref()) {
        Some(first) => Err(format!("{errors} errors, first: {first}")),
        None => Ok(()),
    }
}

/// No frame lost or invented: the books balance, the phase gave back all it took, and the
/// checked in-use map agrees.
fn books_balance(run: &PhaseRun) -> Result<(), String> {
    let (b, a) = (&run.before, &run.after);
    if !a.is_balanced() {
        return Err(format!(
            "free {} + cached {} + allocated {} != managed {}",
            a.free, a.cached, a.allocated, a.managed
        ));
    }
    if a.allocated != b.allocated {
        return Err(format!(
            "allocated {} before, {} after: frames lost",
            b.allocated, a.allocated
        ));
    }
    if a.anomalies != b.anomalies {
        return Err(format!(
            "{} new bitmap anomalies",
            a.anomalies - b.anomalies
        ));
    }
    match run.in_use {
        Some(in_use) if in_use != a.allocated => Err(format!(
            "checked map marks {in_use} frames in use, books say {}",
            a.allocated
        )),
        _ => Ok(()),
    }
}

/// The allocator counted exactly what the workers did, and classified every operation.
fn counters_agree(run: &PhaseRun) -> Result<(), String> {
    for (cpu, c) in run.cpus.iter().enumerate() {
        let k = &c.counters;
        let counted = k.allocs + k.frees + k.contig_allocs + k.contig_frees;
        if counted != c.ops {
            return Err(format!(
                "cpu {cpu}: did {} operations, allocator counted {counted}",
                c.ops
            ));
        }
        if c.foreign_allocs != k.remote_allocs {
            return Err(format!(
                "cpu {cpu}: got {} frames of other nodes, allocator counted {} remote",
                c.foreign_allocs, k.remote_allocs
            ));
        }
        // Baseline frees go straight to the home bitmap: only magazine mode batches (and
        // counts) frees of other nodes' frames.
        if run.mode == mm::Mode::Magazine && c.foreign_frees != k.remote_frees {
            return Err(format!(
                "cpu {cpu}: freed {} frames of other nodes, allocator counted {} remote",
                c.foreign_frees, k.remote_frees
            ));
        }
        if k.hits + k.misses + k.direct != k.allocs + k.frees + k.alloc_failures {
            return Err(format!(
                "cpu {cpu}: hits {} + misses {} + direct {} != allocs {} + frees {} + failures {}",
                k.hits, k.misses, k.direct, k.allocs, k.frees, k.alloc_failures
            ));
        }
    }
    Ok(())
}

/// `exhaust` obtained every frame that was free or cached when it started: nothing stranded.
fn everything_obtained(run: &PhaseRun) -> Result<(), String> {
    let available = run.before.free + run.before.cached;
    if run.exhausted != available {
        return Err(format!(
            "obtained {} frames of {available} available",
            run.exhausted
        ));
    }
    Ok(())
}
