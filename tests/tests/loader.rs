//! Loader failure tests (issue "Boot", loader side): every way the loader refuses to boot ends
//! QEMU with the loader-failure status (37, `qemu-run` exit code 2) right after exactly one
//! `loader: error: <what>` line naming the problem; it never hangs and never enters the kernel.
//!
//! Covered: no module (no `-initrd`) and an empty one; bytes that are not ELF at all; a kernel
//! ELF with its magic, `e_machine`, `e_type` or `e_entry` clobbered; one cut short in the middle
//! of a segment; one with a segment moved below the higher half or onto its neighbour; one whose
//! image cannot fit in RAM. CPU exceptions in the loader itself, raised through its
//! `loader.fault=` test hook: a page fault (a vector with a CPU error code) and an invalid
//! opcode (one without), each reported by the loader's IDT as one error line instead of a
//! silent triple fault; a page fault on an AP at -smp 4, on the kernel's page tables before it
//! parks, reported once and naming the AP; a stack overflow into the guard page, reported from
//! the double fault's IST stack; an unknown hook value.
//!
//! Also the loader's side of machines that boot on the BSP alone (no ACPI at all, or the MADT
//! hidden with `loader.hide=madt`): it logs that it gives no RSDP/MP response and enters the
//! kernel. And its SRAT hooks on QEMU's two-node NUMA machine (`loader.corrupt=srat-overlap`,
//! `srat-cpu`, `srat-memless`, `loader.hide=srat`): each logs its one line and hands off; the
//! kernel's reaction is tested with the kernel.
//!
//! # Implementation
//! Bad modules are derived at run time from the kernel ELF under test (`KERNEL_ELF`, by default
//! what `just build` produced), so the tests follow the kernel's real layout. Each is written to
//! its own file under `target/loader-tests/` for the one boot that uses it, then removed.

use std::path::PathBuf;
use std::time::Duration;

use tests::{Boot, Outcome, Status, boot, kernel_elf, loader_elf, workspace_root};

/// Wall-clock limit per boot; the loader fails within a second, so this only catches hangs.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How the loader's one failure line starts.
const ERROR_PREFIX: &str = "loader: error: ";
/// The line the loader prints just before entering the kernel.
const HANDOFF: &str = "loader: handing off to the kernel";
/// How the loader words every ELF header rejection.
const NOT_EXEC: &str = "module is not an x86_64 ELF64 executable: ";

/// ELF64 header field offsets (System V gABI, "ELF Header").
const E_TYPE: usize = 16;
const E_MACHINE: usize = 18;
const E_ENTRY: usize = 24;
const E_PHOFF: usize = 32;
const E_PHNUM: usize = 56;
/// Program header size and field offsets (gABI, "Program Header").
const PHDR_SIZE: usize = 56;
const P_OFFSET: usize = 8;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;
const PT_LOAD: u32 = 1;
const ET_DYN: u16 = 3;
const EM_AARCH64: u16 = 183;
const PAGE_SIZE: u64 = 0x1000;

/// One non-empty `PT_LOAD` program header of an ELF file.
#[derive(Clone, Copy, Debug)]
struct Load {
    /// Index in the program header table (what the loader's messages count).
    index: usize,
    /// File offset of the header itself.
    at: usize,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn field<const N: usize>(file: &[u8], at: usize) -> [u8; N] {
    file[at..at + N].try_into().expect("field inside the file")
}

fn u64_at(file: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(field(file, at))
}

/// Overwrites the bytes at `at` of `file`.
fn put(file: &mut [u8], at: usize, bytes: &[u8]) {
    file[at..at + bytes.len()].copy_from_slice(bytes);
}

fn kernel_bytes() -> Vec<u8> {
    std::fs::read(kernel_elf()).expect("the kernel ELF is readable")
}

/// The kernel ELF with `bytes` written at offset `at`.
fn patched_kernel(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut file = kernel_bytes();
    put(&mut file, at, bytes);
    file
}

/// The non-empty `PT_LOAD` headers of `file`, in table order.
fn loads(file: &[u8]) -> Vec<Load> {
    let phoff = usize::try_from(u64_at(file, E_PHOFF)).expect("e_phoff fits usize");
    let phnum = usize::from(u16::from_le_bytes(field(file, E_PHNUM)));
    (0..phnum)
        .map(|index| (index, phoff + index * PHDR_SIZE))
        .filter(|&(_, at)| u32::from_le_bytes(field(file, at)) == PT_LOAD)
        .map(|(index, at)| Load {
            index,
            at,
            offset: u64_at(file, at + P_OFFSET),
            vaddr: u64_at(file, at + P_VADDR),
            filesz: u64_at(file, at + P_FILESZ),
            memsz: u64_at(file, at + P_MEMSZ),
        })
        .filter(|l| l.memsz != 0)
        .collect()
}

/// The `PT_LOAD` headers of `file` sorted by virtual address; at least two, as in any kernel.
fn loads_by_address(file: &[u8]) -> Vec<Load> {
    let mut loads = loads(file);
    loads.sort_by_key(|l| l.vaddr);
    assert!(loads.len() >= 2, "the kernel has fewer than two segments");
    loads
}

/// `len` bytes of a fixed xorshift64 sequence: deterministic noise that is not an ELF file.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A path under `target/loader-tests/` unique to this test and process.
fn scratch_path(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/loader-tests");
    std::fs::create_dir_all(&dir).expect("target/loader-tests can be created");
    dir.join(format!("{name}-{}.bin", std::process::id()))
}

/// Boots with `module` (written to a scratch file called after `name`) as the `-initrd`.
fn boot_module(name: &str, module: &[u8]) -> Outcome {
    let path = scratch_path(name);
    std::fs::write(&path, module).expect("the scratch module can be written");
    let out = boot(&Boot {
        module: Some(path.clone()),
        timeout: TIMEOUT,
        ..Default::default()
    });
    let _ = std::fs::remove_file(&path);
    out
}

/// Asserts a loader failure with exactly one error line and no kernel output; returns the
/// error text after [`ERROR_PREFIX`].
#[track_caller]
fn loader_error(out: &Outcome) -> String {
    out.assert_status(Status::LoaderFailed);
    let errors: Vec<&str> = out.lines_with(ERROR_PREFIX).collect();
    assert_eq!(errors.len(), 1, "expected one error line:\n{}", out.serial);
    assert!(
        out.lines_with(HANDOFF).next().is_none() && !out.serial.contains("RESULT "),
        "the kernel ran:\n{}",
        out.serial
    );
    errors[0][ERROR_PREFIX.len()..].to_owned()
}

/// Boots `module` and returns the loader's error text (see [`loader_error`]).
#[track_caller]
fn rejection(name: &str, module: &[u8]) -> String {
    loader_error(&boot_module(name, module))
}

#[test]
fn no_module_is_reported() {
    let out = boot(&Boot {
        without_module: true,
        timeout: TIMEOUT,
        ..Default::default()
    });
    assert_eq!(
        loader_error(&out),
        "no module, or an empty one: pass the kernel ELF with -initrd"
    );
}

#[test]
fn empty_module_is_reported() {
    assert_eq!(
        rejection("empty", &[]),
        "no module, or an empty one: pass the kernel ELF with -initrd"
    );
}

#[test]
fn random_bytes_are_not_an_elf() {
    let bytes = noise(64 * 1024);
    assert!(!bytes.starts_with(b"\x7fELF"));
    assert_eq!(
        rejection("noise", &bytes),
        format!("{NOT_EXEC}no ELF magic")
    );
}

#[test]
fn clobbered_magic_is_rejected() {
    let module = patched_kernel(0, &[0; 4]);
    assert_eq!(
        rejection("no-magic", &module),
        format!("{NOT_EXEC}no ELF magic")
    );
}

#[test]
fn foreign_machine_is_rejected() {
    let module = patched_kernel(E_MACHINE, &EM_AARCH64.to_le_bytes());
    assert_eq!(
        rejection("aarch64", &module),
        format!("{NOT_EXEC}not x86_64 (e_machine)")
    );
}

#[test]
fn position_independent_kernel_is_rejected() {
    let module = patched_kernel(E_TYPE, &ET_DYN.to_le_bytes());
    assert_eq!(
        rejection("et-dyn", &module),
        format!("{NOT_EXEC}position-independent (ET_DYN), only ET_EXEC is supported")
    );
}

#[test]
fn entry_outside_code_is_rejected() {
    let module = patched_kernel(E_ENTRY, &0u64.to_le_bytes());
    assert_eq!(
        rejection("entry", &module),
        "entry point 0x0 is not in an executable segment"
    );
}

#[test]
fn truncation_in_a_segment_is_rejected() {
    let mut module = kernel_bytes();
    let loads = loads(&module);
    let largest = loads.iter().max_by_key(|l| l.filesz).expect("a segment");
    let cut = largest.offset + largest.filesz / 2;
    // The loader names the first header, in table order, whose bytes the cut removes.
    let first_cut = loads
        .iter()
        .find(|l| l.offset + l.filesz > cut)
        .expect("the cut segment");
    module.truncate(cut as usize);
    assert_eq!(
        rejection("truncated", &module),
        format!(
            "program header {}: segment bytes outside the module",
            first_cut.index
        )
    );
}

#[test]
fn segment_below_the_higher_half_is_rejected() {
    let mut module = kernel_bytes();
    let lowest = loads_by_address(&module)[0];
    put(
        &mut module,
        lowest.at + P_VADDR,
        &0x10_0000u64.to_le_bytes(),
    );
    assert_eq!(
        rejection("low-segment", &module),
        "segment at 0x100000 is below the higher half 0xffffffff80000000"
    );
}

#[test]
fn overlapping_segments_are_rejected() {
    let mut module = kernel_bytes();
    let loads = loads_by_address(&module);
    let (first, second) = (loads[0], loads[1]);
    let moved = first.vaddr + first.memsz / 2;
    put(&mut module, second.at + P_VADDR, &moved.to_le_bytes());
    assert_eq!(
        rejection("overlap", &module),
        format!("segments at {:#x} and {moved:#x} overlap", first.vaddr)
    );
}

#[test]
fn image_larger_than_memory_is_rejected() {
    let mut module = kernel_bytes();
    let loads = loads_by_address(&module);
    let last = loads[loads.len() - 1];
    let memsz = 0x4000_0000u64; // 1 GiB of bss; the machine has 512 MiB
    put(&mut module, last.at + P_MEMSZ, &memsz.to_le_bytes());
    let base = loads[0].vaddr & !(PAGE_SIZE - 1);
    let size = (last.vaddr + memsz).next_multiple_of(PAGE_SIZE) - base;
    let error = rejection("huge-bss", &module);
    assert!(
        error.starts_with(&format!("kernel image of {size:#x} bytes "))
            && error.ends_with(" does not fit in usable memory below 4 GiB"),
        "unexpected error: {error}"
    );
}

/// The kernel's first line: the loader handed off and the kernel runs.
const KERNEL_FIRST_LINE: &str = "kernel: early init on the BSP";
/// The loader's line on a machine without ACPI.
const NO_RSDP: &str =
    "loader: no ACPI RSDP found: no RSDP response, no MP response; booting on the BSP alone";
/// The loader's line when the RSDT/XSDT lists no MADT.
const NO_MADT: &str = "loader: no ACPI MADT found: no MP response; booting on the BSP alone";

/// Asserts that the loader printed `line` exactly once, reported no error and entered the
/// kernel. The kernel's own verdict is not the loader's business here.
#[track_caller]
fn handed_off_after(out: &Outcome, line: &str) {
    assert_eq!(
        out.lines_with(line).count(),
        1,
        "expected one {line:?}:\n{}",
        out.serial
    );
    assert!(
        out.lines_with(ERROR_PREFIX).next().is_none(),
        "the loader failed:\n{}",
        out.serial
    );
    out.assert_contains(HANDOFF);
    out.assert_contains(KERNEL_FIRST_LINE);
}

#[test]
fn machine_without_acpi_boots_on_the_bsp_alone() {
    // `pc` without ACPI tables: SeaBIOS builds none either. Like Limine, the loader answers
    // neither the RSDP nor the MP request and enters the kernel on the BSP.
    let out = boot(&Boot {
        smp: 2,
        machine: "pc,acpi=off",
        timeout: TIMEOUT,
        ..Default::default()
    });
    handed_off_after(&out, NO_RSDP);
    assert!(out.lines_with("loader: test hook").next().is_none());
}

#[test]
fn hidden_madt_leaves_the_mp_request_unanswered() {
    let out = boot(&Boot {
        smp: 2,
        cmdline: "test=boot loader.hide=madt",
        timeout: TIMEOUT,
        ..Default::default()
    });
    let hide = out
        .lines_with("loader: test hook loader.hide=madt: ACPI table APIC at 0x")
        .next()
        .unwrap_or_else(|| panic!("no hide line:\n{}", out.serial));
    assert!(hide.ends_with(" dropped from the RSDT/XSDT"), "{hide}");
    handed_off_after(&out, NO_MADT);
    assert!(
        out.lines_with("loader: 2 CPUs").next().is_none(),
        "APs started"
    );
}

#[test]
fn unknown_hide_hook_is_rejected() {
    assert_eq!(
        hooked_error("loader.hide=apic"),
        "unknown loader.hide= value (expected madt or srat)"
    );
}

/// QEMU's two-node NUMA machine: CPUs 0-1 and 512 MiB in node 0, CPUs 2-3 and 512 MiB in
/// node 1, distance 21; the firmware builds an SRAT and a SLIT for it.
const NUMA: [&str; 14] = [
    "-object",
    "memory-backend-ram,id=m0,size=512M",
    "-object",
    "memory-backend-ram,id=m1,size=512M",
    "-numa",
    "node,nodeid=0,cpus=0-1,memdev=m0",
    "-numa",
    "node,nodeid=1,cpus=2-3,memdev=m1",
    "-numa",
    "dist,src=0,dst=1,val=21",
    "-smp",
    "4",
    "-m",
    "1G",
];

/// Boots the two-node NUMA machine with `hook` on the command line.
fn boot_numa(hook: &str) -> Outcome {
    let cmdline = format!("test=boot {hook}");
    let b = Boot {
        cmdline: &cmdline,
        timeout: TIMEOUT,
        ..Default::default()
    };
    // The later -smp and -m override the defaults `qemu_command` passes.
    let mut cmd = tests::qemu_command(&b);
    cmd.args(NUMA);
    tests::run(cmd, TIMEOUT)
}

/// Boots the NUMA machine with `hook` and returns the loader's one `loader: test hook <hook>`
/// line (after the prefix), once it handed off.
#[track_caller]
fn numa_hook_line(hook: &str) -> String {
    let out = boot_numa(hook);
    let prefix = format!("loader: test hook {hook}: ");
    let lines: Vec<&str> = out.lines_with(&prefix).collect();
    assert_eq!(lines.len(), 1, "expected one {prefix:?}:\n{}", out.serial);
    handed_off_after(&out, lines[0]);
    out.assert_contains("loader: 4 CPUs, 3 APs parked");
    lines[0][prefix.len()..].to_owned()
}

#[test]
fn srat_overlap_hook_overlaps_two_domains() {
    // Node 0's RAM above 1 MiB now reaches one page into node 1's, which starts at 512 MiB.
    assert_eq!(
        numa_hook_line("loader.corrupt=srat-overlap"),
        "SRAT memory of domain 0 [0x100000, 0x20001000) overlaps domain 1 at 0x20000000"
    );
}

#[test]
fn srat_cpu_hook_leaves_a_cpu_without_a_domain() {
    assert_eq!(
        numa_hook_line("loader.corrupt=srat-cpu"),
        "SRAT names APIC ID 4 (no such CPU) in domain 1 instead of APIC ID 3, which has no domain"
    );
}

#[test]
fn srat_memless_hook_empties_a_domain_with_cpus() {
    let line = numa_hook_line("loader.corrupt=srat-memless");
    assert!(
        line.starts_with("SRAT memory of domain 1 (")
            && line.ends_with(" moved to domain 0; domain 1 keeps its CPUs and has no memory"),
        "{line}"
    );
}

#[test]
fn srat_hide_hook_drops_the_srat() {
    let line = numa_hook_line("loader.hide=srat");
    assert!(
        line.starts_with("ACPI table SRAT at 0x") && line.ends_with(" dropped from the RSDT/XSDT"),
        "{line}"
    );
}

#[test]
fn srat_hook_without_numa_is_an_error() {
    assert_eq!(
        hooked_error("loader.corrupt=srat-cpu"),
        "loader.corrupt=srat-*: no ACPI SRAT on this machine (QEMU builds one with -numa)"
    );
}

/// The unmapped address `loader.fault=page` reads (`loader::exception::FAULT_ADDRESS`).
const FAULT_ADDRESS: u64 = 0x1_dead_b000;

/// Boots the real kernel with `hook` added to the command line; returns the loader's error.
#[track_caller]
fn hooked_error(hook: &str) -> String {
    let cmdline = format!("test=boot {hook}");
    loader_error(&boot(&Boot {
        smp: 2,
        cmdline: &cmdline,
        timeout: TIMEOUT,
        ..Default::default()
    }))
}

/// The `key=<hex>` value of an exception report.
#[track_caller]
fn hex_field(report: &str, key: &str) -> u64 {
    let value = report
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {report:?}"));
    let digits = value
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("{key}={value} is not 0x-prefixed hex"));
    u64::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("{key}={value}: {e}"))
}

/// Asserts that `rip` lies in one of the loader ELF's segments: the handler read the frame at
/// the right offsets.
#[track_caller]
fn assert_in_loader(rip: u64) {
    let loader = std::fs::read(loader_elf()).expect("the loader ELF is readable");
    assert!(
        loads(&loader)
            .iter()
            .any(|l| (l.vaddr..l.vaddr + l.memsz).contains(&rip)),
        "rip {rip:#x} is outside the loader image"
    );
}

#[test]
fn page_fault_in_the_loader_is_reported() {
    let error = hooked_error("loader.fault=page");
    assert!(
        error.starts_with("CPU exception 14 (page fault) error=0x0 rip=0x"),
        "unexpected error: {error}"
    );
    assert_eq!(hex_field(&error, "cr2"), FAULT_ADDRESS, "{error}");
    assert_eq!(hex_field(&error, "error"), 0, "a not-present read: {error}");
    assert_in_loader(hex_field(&error, "rip"));
}

#[test]
fn exception_without_error_code_is_reported() {
    // #UD pushes no error code, so the stub's dummy 0 keeps RIP where the handler reads it.
    let error = hooked_error("loader.fault=ud");
    assert!(
        error.starts_with("CPU exception 6 (invalid opcode) error=0x0 rip=0x"),
        "unexpected error: {error}"
    );
    assert_in_loader(hex_field(&error, "rip"));
}

#[test]
fn unknown_fault_hook_is_rejected() {
    assert_eq!(
        hooked_error("loader.fault=bogus"),
        "unknown loader.fault= value (expected page, ud, stack or ap-page)"
    );
}

/// Where the loader's HHDM starts: the APs' trampoline runs at its alias there.
const HHDM_OFFSET: u64 = 0xffff_8000_0000_0000;

#[test]
fn page_fault_on_an_ap_names_the_ap() {
    // Every AP faults on the kernel's page tables just before it parks; the first one started
    // reports, and the BSP (waiting for it) stays silent.
    let cmdline = "test=boot loader.fault=ap-page";
    let error = loader_error(&boot(&Boot {
        smp: 4,
        cmdline,
        timeout: TIMEOUT,
        ..Default::default()
    }));
    let (cpu, report) = error
        .strip_prefix("AP with APIC ID ")
        .and_then(|rest| rest.split_once(": "))
        .unwrap_or_else(|| panic!("the error names no AP: {error}"));
    let apic_id: u32 = cpu.parse().unwrap_or_else(|e| panic!("{cpu}: {e}"));
    assert!((1..4).contains(&apic_id), "not an AP of -smp 4: {error}");
    assert!(
        report.starts_with("CPU exception 14 (page fault) error=0x0 rip=0x"),
        "unexpected error: {error}"
    );
    assert_eq!(hex_field(report, "cr2"), FAULT_ADDRESS, "{error}");
    assert!(
        hex_field(report, "rip") >= HHDM_OFFSET,
        "the trampoline runs at its HHDM alias: {error}"
    );
}

#[test]
fn stack_overflow_in_the_loader_is_reported() {
    // Endless recursion runs into the guard page under the loader's stack; the page fault
    // cannot push its frame there, so it becomes a double fault, handled on an IST stack.
    let error = hooked_error("loader.fault=stack");
    let guard = error
        .strip_prefix("stack overflow into the guard page at ")
        .and_then(|rest| rest.split_once(": CPU exception 8 (double fault) error=0x0 rip=0x"))
        .map(|(guard, _)| hex_field(&format!("guard={guard}"), "guard"))
        .unwrap_or_else(|| panic!("unexpected error: {error}"));
    assert_eq!(guard % PAGE_SIZE, 0, "{error}");
    let (cr2, rsp) = (hex_field(&error, "cr2"), hex_field(&error, "rsp"));
    assert!((guard..guard + PAGE_SIZE).contains(&cr2), "{error}");
    assert!(
        (guard..guard + 2 * PAGE_SIZE).contains(&rsp),
        "rsp is near the stack's bottom: {error}"
    );
    assert_in_loader(hex_field(&error, "rip"));
    assert_in_loader(guard);
}
