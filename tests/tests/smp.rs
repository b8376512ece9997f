//! SMP tests (issue 3): IPIs, timer ticks, fatal paths (page fault, panic on an AP) at
//! -smp 1, 4 and 8 in x2APIC (`-cpu max`) and xAPIC (`-cpu qemu64`) mode, a kernel stack
//! overflow (guard page, double fault on its IST stack), and a 64-CPU boot.

use std::time::Duration;

use tests::{Boot, Outcome, Status, boot};

/// Wall-clock limit per boot of up to 8 CPUs.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Wall-clock limit for the 64-CPU boot (TCG on two host cores).
const SCALE_TIMEOUT: Duration = Duration::from_secs(300);

fn run(mode: &str, smp: u32, cpu: &str) -> Outcome {
    let cmdline = format!("test={mode}");
    boot(&Boot {
        smp,
        cpu,
        cmdline: &cmdline,
        timeout: TIMEOUT,
        ..Default::default()
    })
}

fn ipi(smp: u32, cpu: &str) {
    let out = run("ipi", smp, cpu);
    out.assert_passed();
    let rec = out.records("IPI ");
    assert_eq!(rec.len(), 1, "{}", out.serial);
    let rounds: u32 = rec[0]["rounds"].parse().expect("rounds");
    assert!(rounds >= 2, "the barrier must be reused: {rounds} rounds");
    let expected = (rounds * smp * (smp - 1)).to_string();
    assert_eq!(rec[0]["cpus"], smp.to_string());
    assert_eq!(rec[0]["deliveries"], expected, "{}", out.serial);
    assert_eq!(rec[0]["expected"], expected);
}

fn timer(smp: u32, cpu: &str) {
    let out = run("timer", smp, cpu);
    out.assert_passed();
    let rec = out.records("TIMER ");
    let cpus: Vec<String> = rec.iter().map(|r| r["cpu"].clone()).collect();
    let want: Vec<String> = (0..smp).map(|c| c.to_string()).collect();
    assert_eq!(cpus, want, "{}", out.serial);
    for r in &rec {
        let ticks: u64 = r["ticks"].parse().unwrap();
        assert!(ticks > 0, "cpu {} took no tick:\n{}", r["cpu"], out.serial);
    }
    let mhz = apic_bus_mhz(&out);
    assert!(
        (980..=1020).contains(&mhz),
        "calibrated APIC clock {mhz} MHz, QEMU's is 1000:\n{}",
        out.serial
    );
}

/// The APIC timer input frequency the kernel calibrated, from `apic timer: bus <n> MHz`.
fn apic_bus_mhz(out: &Outcome) -> u64 {
    let line = out
        .lines_with("apic timer: bus ")
        .next()
        .expect("apic timer line");
    line.split_whitespace()
        .nth(3)
        .and_then(|w| w.parse().ok())
        .expect("bus MHz")
}

/// Asserts the fatal path ran on the last CPU and stopped all the others.
fn assert_fatal_on_last_cpu(out: &Outcome, smp: u32, reason: &str) {
    out.assert_status(Status::Failed);
    let last = smp - 1;
    let others = smp - 1;
    out.assert_contains(&format!(
        "fatal on cpu {last}: stopped {others} of {others} other cpus"
    ));
    let verdict = out.serial.lines().rev().find(|l| !l.trim().is_empty());
    assert_eq!(verdict.map(str::trim), Some(reason), "{}", out.serial);
}

fn pagefault(smp: u32, cpu: &str) {
    let out = run("pagefault", smp, cpu);
    assert_fatal_on_last_cpu(&out, smp, "RESULT FAIL exception page-fault");
    out.assert_contains(&format!(
        "EXCEPTION page-fault (vector 14) on cpu {}: error=0x0 rip=0x",
        smp - 1
    ));
    out.assert_contains("cr2=0xffffff7ffffff000 (read of a non-present page)");
}

fn panic_ap(smp: u32, cpu: &str) {
    let out = run("panic-ap", smp, cpu);
    assert_fatal_on_last_cpu(&out, smp, "RESULT FAIL panic");
    out.assert_contains(&format!(
        "panic on cpu {}: deliberate panic (test=panic-ap) at kernel/src/modes/faults.rs:",
        smp - 1
    ));
}

fn stack_overflow(smp: u32, cpu: &str) {
    let out = run("stack-overflow", smp, cpu);
    assert_fatal_on_last_cpu(&out, smp, "RESULT FAIL exception double-fault");
    out.assert_contains(&format!(
        "EXCEPTION double-fault (vector 8) on cpu {}: error=0x0",
        smp - 1
    ));
}

macro_rules! matrix {
    ($($name:ident: $check:ident($smp:expr, $cpu:expr);)*) => {
        $(#[test] fn $name() { $check($smp, $cpu) })*
    };
}

matrix! {
    ipi_1_x2apic: ipi(1, "max");
    ipi_4_x2apic: ipi(4, "max");
    ipi_8_x2apic: ipi(8, "max");
    ipi_1_xapic: ipi(1, "qemu64");
    ipi_4_xapic: ipi(4, "qemu64");
    ipi_8_xapic: ipi(8, "qemu64");
    timer_1_x2apic: timer(1, "max");
    timer_4_x2apic: timer(4, "max");
    timer_8_x2apic: timer(8, "max");
    timer_1_xapic: timer(1, "qemu64");
    timer_4_xapic: timer(4, "qemu64");
    timer_8_xapic: timer(8, "qemu64");
    pagefault_1_x2apic: pagefault(1, "max");
    pagefault_4_x2apic: pagefault(4, "max");
    pagefault_8_x2apic: pagefault(8, "max");
    pagefault_1_xapic: pagefault(1, "qemu64");
    pagefault_4_xapic: pagefault(4, "qemu64");
    pagefault_8_xapic: pagefault(8, "qemu64");
    panic_ap_1_x2apic: panic_ap(1, "max");
    panic_ap_4_x2apic: panic_ap(4, "max");
    panic_ap_8_x2apic: panic_ap(8, "max");
    panic_ap_1_xapic: panic_ap(1, "qemu64");
    panic_ap_4_xapic: panic_ap(4, "qemu64");
    panic_ap_8_xapic: panic_ap(8, "qemu64");
    stack_overflow_4_x2apic: stack_overflow(4, "max");
    stack_overflow_4_xapic: stack_overflow(4, "qemu64");
}

#[test]
fn scale_boot_64_cpus() {
    let out = boot(&Boot {
        smp: 64,
        cmdline: "test=boot",
        timeout: SCALE_TIMEOUT,
        ..Default::default()
    });
    out.assert_passed();
    let online = out
        .lines_with("cpu ")
        .filter(|l| l.contains(" online "))
        .count();
    assert_eq!(online, 64, "{}", out.serial);
    out.assert_contains("all 64 cpus online after ");
}
