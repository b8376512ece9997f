//! Time from the TSC: its frequency, instants, durations and deadlines.
//!
//! [`init`] finds the TSC frequency once on the BSP, from the first source that states it:
//! CPUID leaf 0x15 (TSC/crystal ratio times crystal clock), leaf 0x16 (base frequency), or the
//! hypervisor leaf 0x40000010 (TSC kHz); otherwise it calibrates against the PIT. A stated
//! value is cross-checked against a short PIT measurement, so a wrong CPUID value (an emulator
//! that reports a nominal frequency its TSC does not run at) cannot skew every timeout.
//! Afterwards [`Instant`], [`Deadline`] and [`spin_for`] work on every CPU; the TSC is
//! assumed synchronised across CPUs (true of QEMU and of invariant-TSC hardware, SDM Vol. 3B
//! §18.17.1).

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use raw_cpuid::CpuId;

use crate::pit;

/// TSC frequency in Hz; 0 until [`init`] ran.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// A stated frequency further than this (percent) from the measured one is rejected.
const MAX_DISAGREEMENT_PERCENT: u64 = 10;

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID leaf 0x15.
    CpuidLeaf15,
    /// CPUID leaf 0x16.
    CpuidLeaf16,
    /// The hypervisor leaf 0x40000010.
    HypervisorLeaf,
    /// Measured against the PIT.
    PitCalibration,
}

/// The result of [`init`].
#[derive(Clone, Copy, Debug)]
pub struct TscInfo {
    /// The frequency in use, in Hz.
    pub hz: u64,
    /// Its source.
    pub source: TscSource,
    /// A CPUID value that disagreed with the PIT and was overruled, in Hz.
    pub rejected_hz: Option<u64>,
}

/// Reads the time-stamp counter.
#[inline]
pub fn now() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and only reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC frequency in Hz, once [`init`] ran.
pub fn hz() -> Option<u64> {
    match TSC_HZ.load(Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// Finds the TSC frequency. BSP, once, before any timeout is measured.
pub fn init() -> Result<TscInfo, &'static str> {
    let measured = calibrate_with_pit()?;
    let info = match stated_frequency() {
        Some((hz, source)) if agrees(hz, measured) => TscInfo {
            hz,
            source,
            rejected_hz: None,
        },
        stated => TscInfo {
            hz: measured,
            source: TscSource::PitCalibration,
            rejected_hz: stated.map(|(hz, _)| hz),
        },
    };
    TSC_HZ.store(info.hz, Ordering::Relaxed);
    Ok(info)
}

fn agrees(stated: u64, measured: u64) -> bool {
    stated.abs_diff(measured) * 100 <= measured * MAX_DISAGREEMENT_PERCENT
}

/// The frequency CPUID states, if any leaf does.
fn stated_frequency() -> Option<(u64, TscSource)> {
    let cpuid = CpuId::new();
    if let Some(hz) = cpuid.get_tsc_info().and_then(|t| t.tsc_frequency()) {
        return Some((hz, TscSource::CpuidLeaf15));
    }
    if let Some(mhz) = cpuid
        .get_processor_frequency_info()
        .map(|f| f.processor_base_frequency())
        .filter(|&mhz| mhz != 0)
    {
        return Some((u64::from(mhz) * 1_000_000, TscSource::CpuidLeaf16));
    }
    cpuid
        .get_hypervisor_info()
        .and_then(|h| h.tsc_frequency())
        .filter(|&khz| khz != 0)
        .map(|khz| (u64::from(khz) * 1000, TscSource::HypervisorLeaf))
}

/// The TSC frequency measured against the PIT, in Hz.
fn calibrate_with_pit() -> Result<u64, &'static str> {
    match pit::measure_tsc_hz()? {
        0 => Err("the TSC does not advance"),
        hz => Ok(hz),
    }
}

/// TSC cycles in `d` (saturating); panics if the frequency is not known yet.
pub fn cycles_in(d: Duration) -> u64 {
    let hz = hz().expect("TSC frequency used before tsc::init");
    let cycles = d.as_nanos().saturating_mul(u128::from(hz)) / 1_000_000_000;
    u64::try_from(cycles).unwrap_or(u64::MAX)
}

/// The duration of `cycles` TSC cycles; panics if the frequency is not known yet.
pub fn duration_of(cycles: u64) -> Duration {
    let hz = hz().expect("TSC frequency used before tsc::init");
    let nanos = u128::from(cycles) * 1_000_000_000 / u128::from(hz);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A TSC reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Instant(now())
    }

    /// Time since this instant.
    pub fn elapsed(self) -> Duration {
        duration_of(now().saturating_sub(self.0))
    }

    /// The raw TSC value.
    pub fn cycles(self) -> u64 {
        self.0
    }
}

/// A point in time after which something counts as late.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    end: u64,
}

impl Deadline {
    /// The deadline `d` from now.
    pub fn after(d: Duration) -> Self {
        Deadline {
            end: now().saturating_add(cycles_in(d)),
        }
    }

    /// Whether the deadline has passed.
    pub fn is_past(&self) -> bool {
        now() >= self.end
    }
}

/// Busy-waits for `d`; returns the time actually waited.
pub fn spin_for(d: Duration) -> Duration {
    let start = Instant::now();
    let deadline = Deadline::after(d);
    while !deadline.is_past() {
        core::hint::spin_loop();
    }
    start.elapsed()
}
