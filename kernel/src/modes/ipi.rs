//! `test=ipi`: every CPU sends an IPI to every other CPU, in [`ROUNDS`] rounds that start
//! together on an [`smp::Barrier`]; all `ROUNDS * N * (N-1)` deliveries must be seen.
//!
//! Fixed IPIs with the same vector to the same CPU coalesce while the first is still pending
//! (one IRR bit per vector, SDM Vol. 3A §11.8.4), so counting interrupts would under-count
//! correct hardware. Instead each sender bumps a counter for its (sender, receiver) pair and
//! then sends the IPI; the receiver's handler takes every non-zero counter of its column. A
//! delivery is a taken count: each pair must deliver exactly [`ROUNDS`], which fails if an
//! IPI is lost (a count never taken before the timeout) or misdirected (taken by no one:
//! a CPU's handler only looks at its own column).
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use arch::tsc::Deadline;
use arch::vectors::TEST_IPI;
use spin::Once;

/// How long all deliveries may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Rounds of all-to-all sends; more than one exercises the barrier's reuse.
const ROUNDS: u32 = 3;

/// The test's shared state, sized for the CPU count.
struct IpiTest {
    cpus: usize,
    /// `pending[sender * cpus + receiver]`: bumped by the sender, taken by the receiver.
    pending: Vec<AtomicU32>,
    /// `delivered[sender * cpus + receiver]`: times the receiver consumed the pair's flag.
    delivered: Vec<AtomicU32>,
    /// Interrupts each CPU took on [`TEST_IPI`].
    interrupts: Vec<AtomicU64>,
}

static STATE: Once<IpiTest> = Once::new();

/// Registers the handler (BSP, before APs start).
pub fn init() {
    arch::idt::set_handler(TEST_IPI, on_test_ipi);
}

fn on_test_ipi(_vector: u8) {
    let Some(t) = STATE.get() else { return };
    let me = arch::cpu_local::current_index();
    t.interrupts[me].fetch_add(1, Ordering::Relaxed);
    for sender in 0..t.cpus {
        let taken = t.pending[sender * t.cpus + me].swap(0, Ordering::AcqRel);
        if taken != 0 {
            t.delivered[sender * t.cpus + me].fetch_add(taken, Ordering::AcqRel);
        }
    }
}

/// Runs the all-to-all IPI exchange and checks every pair.
pub fn run() -> Result<(), String> {
    let cpus = smp::cpu_count();
    let t = STATE.call_once(|| IpiTest {
        cpus,
        pending: (0..cpus * cpus).map(|_| AtomicU32::new(0)).collect(),
        delivered: (0..cpus * cpus).map(|_| AtomicU32::new(0)).collect(),
        interrupts: (0..cpus).map(|_| AtomicU64::new(0)).collect(),
    });
    let barrier = smp::Barrier::for_online_cpus();
    smp::run_on_all(|| {
        for _ in 0..ROUNDS {
            barrier.wait();
            send_to_all_others(t);
        }
    });
    let expected = u64::from(ROUNDS) * (cpus * (cpus - 1)) as u64;
    let deadline = Deadline::after(TIMEOUT);
    while total_delivered(t) < expected && !deadline.is_past() {
        core::hint::spin_loop();
    }
    report(t, expected)
}

fn send_to_all_others(t: &IpiTest) {
    let pin = smp::pin();
    let me = pin.cpu_id();
    for area in smp::area::areas().iter().filter(|a| a.index() != me) {
        t.pending[me * t.cpus + area.index()].fetch_add(1, Ordering::AcqRel);
        arch::apic::send_ipi(pin.irq_guard(), TEST_IPI, area.lapic_id());
    }
}

fn total_delivered(t: &IpiTest) -> u64 {
    t.delivered
        .iter()
        .map(|d| u64::from(d.load(Ordering::Acquire)))
        .sum()
}

fn report(t: &IpiTest, expected: u64) -> Result<(), String> {
    let delivered = total_delivered(t);
    let interrupts: u64 = t.interrupts.iter().map(|i| i.load(Ordering::Relaxed)).sum();
    arch::println!(
        "IPI cpus={} rounds={ROUNDS} deliveries={delivered} expected={expected} interrupts={interrupts}",
        t.cpus
    );
    let wrong: Vec<(usize, usize, u32)> = (0..t.cpus * t.cpus)
        .filter(|i| i / t.cpus != i % t.cpus)
        .map(|i| {
            (
                i / t.cpus,
                i % t.cpus,
                t.delivered[i].load(Ordering::Acquire),
            )
        })
        .filter(|&(_, _, n)| n != ROUNDS)
        .collect();
    match wrong.first() {
        None if delivered == expected => Ok(()),
        None => Err(format!("{delivered} deliveries, expected {expected}")),
        Some(_) => Err(format!(
            "{} pairs not delivered exactly {ROUNDS} times, first (sender, receiver, count): {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(8)]
        )),
    }
}
