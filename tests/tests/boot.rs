//! Boot tests (issue 2, kernel side): the kernel reaches `RESULT PASS` in `test=boot` at
//! several CPU counts, memory sizes and APIC modes, every CPU reports online exactly once,
//! and the log shows the boot facts (bootloader, HHDM, memory map, TSC, APIC mode, ticks); a
//! corrupt memory map is refused before any frame is managed, a missing response the
//! kernel needs is named in its panic, no MP response (no MADT) runs on the BSP alone, as is a listed CPU that never comes online (the
//! loader's `loader.skip=` and `loader.corrupt=` test hooks).

use std::collections::BTreeSet;
use std::time::Duration;

use tests::{Boot, Outcome, Status, boot};

/// Wall-clock limit per boot: TCG on two host cores, tests running in parallel.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Boots `cmdline` on `smp` CPUs of the default machine.
fn run_cmdline(smp: u32, cmdline: &str) -> Outcome {
    boot(&Boot {
        smp,
        cmdline,
        timeout: TIMEOUT,
        ..Default::default()
    })
}

fn run(smp: u32, mem: &str, cpu: &str) -> Outcome {
    boot(&Boot {
        smp,
        mem,
        cpu,
        cmdline: "test=boot",
        timeout: TIMEOUT,
        ..Default::default()
    })
}

/// The `cpu <index> online lapic=<id> apic=<mode>` lines, parsed.
fn online_lines(out: &Outcome) -> Vec<(usize, u32, String)> {
    out.lines_with("cpu ")
        .filter(|l| l.contains(" online "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let index = words[1].parse().expect("cpu index");
            let rec = tests::parse_record(l);
            let lapic = rec["lapic"].parse().expect("lapic id");
            (index, lapic, rec["apic"].clone())
        })
        .collect()
}

/// Asserts a passing boot with `smp` distinct CPUs online, all in APIC mode `apic`.
fn assert_booted(out: &Outcome, smp: u32, apic: &str) {
    out.assert_passed();
    let online = online_lines(out);
    assert_eq!(online.len(), smp as usize, "online lines:\n{}", out.serial);
    let indices: BTreeSet<usize> = online.iter().map(|o| o.0).collect();
    assert_eq!(
        indices,
        (0..smp as usize).collect(),
        "cpu indices:\n{}",
        out.serial
    );
    let lapics: BTreeSet<u32> = online.iter().map(|o| o.1).collect();
    assert_eq!(
        lapics.len(),
        smp as usize,
        "duplicate lapic ids:\n{}",
        out.serial
    );
    assert!(
        online.iter().all(|o| o.2 == apic),
        "expected apic={apic} on every cpu:\n{}",
        out.serial
    );
    for fact in [
        "bootloader: ",
        "hhdm offset: 0x",
        "memory map: ",
        "usable memory: ",
        "tsc: ",
        "timer ticks: min=",
    ] {
        out.assert_contains(fact);
    }
    out.assert_contains(&format!("cpus: {smp} "));
}

#[test]
fn boots_one_cpu() {
    assert_booted(&run(1, "512M", "max"), 1, "x2apic");
}

#[test]
fn boots_two_cpus() {
    assert_booted(&run(2, "512M", "max"), 2, "x2apic");
}

#[test]
fn boots_four_cpus() {
    assert_booted(&run(4, "512M", "max"), 4, "x2apic");
}

#[test]
fn boots_eight_cpus() {
    assert_booted(&run(8, "512M", "max"), 8, "x2apic");
}

#[test]
fn boots_with_128m() {
    let out = run(2, "128M", "max");
    assert_booted(&out, 2, "x2apic");
    let mib = usable_mib(&out);
    assert!((64..128).contains(&mib), "usable {mib} MiB at -m 128M");
}

#[test]
fn boots_with_1g() {
    let out = run(2, "1G", "max");
    assert_booted(&out, 2, "x2apic");
    let mib = usable_mib(&out);
    assert!((900..1024).contains(&mib), "usable {mib} MiB at -m 1G");
}

#[test]
fn boots_with_6g_above_4g() {
    let out = run(2, "6G", "max");
    assert_booted(&out, 2, "x2apic");
    let mib = usable_mib(&out);
    assert!((5800..6144).contains(&mib), "usable {mib} MiB at -m 6G");
}

#[test]
fn boots_xapic_only_cpu() {
    assert_booted(&run(4, "512M", "qemu64"), 4, "xapic");
}

#[test]
fn boots_max_without_x2apic() {
    assert_booted(&run(4, "512M", "max,-x2apic"), 4, "xapic");
}

#[test]
fn unknown_mode_fails_with_its_name() {
    let out = run_cmdline(1, "test=no-such-mode");
    out.assert_status(Status::Failed);
    out.assert_contains("RESULT FAIL unknown test mode 'no-such-mode'");
}

#[test]
fn a_corrupt_memory_map_is_refused_naming_the_entries() {
    // The loader's test hook stretches entry 0 a page into entry 1 (loader/src/answer).
    let out = run_cmdline(2, "test=boot loader.corrupt=memmap");
    out.assert_status(Status::Failed);
    out.assert_contains("panic on cpu 0: the memory map is corrupt: entry 0 (");
    out.assert_contains(") overlaps entry 1 (");
    assert!(
        out.lines_with("frames: ").next().is_none(),
        "no frame may be managed from a corrupt map:\n{}",
        out.serial
    );
}

#[test]
fn a_cpu_that_never_comes_online_is_named() {
    // The loader's test hook lists a third CPU that does not exist (loader/src/answer).
    let out = run_cmdline(2, "test=boot loader.corrupt=mp");
    out.assert_status(Status::Failed);
    out.assert_contains("cpus: 3 ");
    out.assert_contains("RESULT FAIL cpus [2] (lapic ids [2]) did not come online within ");
}

/// Boots with the loader's test hook leaving request `skip` unanswered.
fn boot_without(skip: &str) -> Outcome {
    run_cmdline(2, &format!("test=boot loader.skip={skip}"))
}

#[test]
fn a_missing_response_the_kernel_needs_is_named_in_its_panic() {
    let needed = [
        ("hhdm", "HHDM"),
        ("memmap", "memory map"),
        ("bootloader-info", "bootloader info"),
        ("executable-address", "executable address"),
        ("executable-cmdline", "executable cmdline"),
        ("stack-size", "stack size"),
    ];
    for (skip, name) in needed {
        let out = boot_without(skip);
        out.assert_status(Status::Failed);
        out.assert_contains(&format!(
            "panic on cpu 0: the bootloader did not answer the {name} request"
        ));
    }
}

/// Asserts a passing run on the BSP alone, announced as such.
fn assert_bsp_alone(out: &Outcome) {
    out.assert_passed();
    out.assert_contains(
        "cpus: 1 (no MP response: the bootloader found no MADT; running on the BSP alone",
    );
    assert_eq!(online_lines(out).len(), 1, "{}", out.serial);
    for stat in out.records("STAT ") {
        assert_eq!(stat["cpus"], "1", "{stat:?}");
    }
}

#[test]
fn no_madt_runs_the_stress_suite_on_the_bsp_alone() {
    // Limine gives no MP response on a machine without a MADT: the kernel must not panic.
    // `loader.hide=madt` drops the MADT from the RSDT/XSDT; `loader.skip=mp` only withholds
    // the response.
    for hook in ["loader.hide=madt", "loader.skip=mp"] {
        let out = run_cmdline(2, &format!("test=stress {hook}"));
        assert_bsp_alone(&out);
        assert!(out.records("STAT ").len() >= 10, "{}", out.serial);
    }
}

#[test]
fn a_machine_without_acpi_boots_on_the_bsp_alone() {
    let out = boot(&Boot {
        smp: 2,
        machine: "pc,acpi=off",
        cmdline: "test=boot",
        timeout: TIMEOUT,
        ..Default::default()
    });
    assert_bsp_alone(&out);
    out.assert_contains("rsdp: none");
}

#[test]
fn no_rsdp_is_fine() {
    let out = boot_without("rsdp");
    assert_booted(&out, 2, "x2apic");
    out.assert_contains("rsdp: none");
}

/// The `usable memory: <n> MiB` figure.
fn usable_mib(out: &Outcome) -> u64 {
    let line = out
        .lines_with("usable memory: ")
        .next()
        .expect("usable memory line");
    line.trim_start_matches("usable memory: ")
        .trim_end_matches(" MiB")
        .parse()
        .expect("usable MiB")
}
