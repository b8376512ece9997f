//! Host-side boot tests: run the kernel under QEMU through the in-tree loader and read serial.
//!
//! Every test builds a [`Boot`] (CPU count, memory size, CPU model, command line, timeout),
//! calls [`boot`], and asserts on the [`Outcome`]: how QEMU ended and what the kernel printed.
//!
//! # Implementation
//! QEMU is started the way `just run-smp` starts it (`-machine q35`, PVH entry through
//! `-kernel <loader> -initrd <kernel> -append <cmdline>`, serial on stdout, `isa-debug-exit` on
//! port 0xf4, `-no-reboot`). A reader thread collects serial output while the calling thread
//! polls for exit; past the timeout QEMU is killed and the outcome is [`Status::TimedOut`].
//! The exit status tells the kernel's verdict apart from a loader failure and from "unknown"
//! (a triple fault ends QEMU with status 0 under `-no-reboot`).
//!
//! Artifacts come from `KERNEL_ELF` and `LOADER_ELF`, defaulting to the workspace's
//! `target/x86_64-unknown-none/release/{kernel,loader}` (what `just build` produces).

pub mod numa;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// QEMU exit status when the kernel wrote its success code (0x10) to `isa-debug-exit`.
pub const EXIT_KERNEL_PASS: i32 = (0x10 << 1) | 1;
/// QEMU exit status when the kernel wrote its failure code (0x11).
pub const EXIT_KERNEL_FAIL: i32 = (0x11 << 1) | 1;
/// QEMU exit status when the loader wrote its failure code (0x12).
pub const EXIT_LOADER_FAIL: i32 = (0x12 << 1) | 1;

/// One QEMU run: what machine to emulate and what to boot.
#[derive(Clone, Debug)]
pub struct Boot<'a> {
    /// Number of CPUs (`-smp`).
    pub smp: u32,
    /// Memory size (`-m`), for example `"512M"` or `"6G"`.
    pub mem: &'a str,
    /// CPU model (`-cpu`), for example `"max"` (x2APIC) or `"qemu64"` (xAPIC only).
    pub cpu: &'a str,
    /// Kernel command line (`-append`).
    pub cmdline: &'a str,
    /// Wall-clock limit; QEMU is killed past it.
    pub timeout: Duration,
    /// The module passed as `-initrd` instead of the kernel ELF (for loader error tests).
    pub module: Option<PathBuf>,
    /// Boot with no `-initrd` at all (overrides `module`), for the loader's missing-module error.
    pub without_module: bool,
    /// Machine type and options (`-machine`), for example `"q35"` or `"pc,acpi=off"`.
    pub machine: &'a str,
    /// NUMA memory nodes (`-numa`, see [`numa`]); 0 for a machine without NUMA tables.
    pub numa_nodes: u32,
}

impl Default for Boot<'_> {
    fn default() -> Self {
        Boot {
            smp: 1,
            mem: "512M",
            cpu: "max",
            cmdline: "test=boot",
            timeout: Duration::from_secs(60),
            module: None,
            without_module: false,
            machine: "q35",
            numa_nodes: 0,
        }
    }
}

/// How a QEMU run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The kernel reported success (exit status 33).
    Passed,
    /// The kernel reported failure (exit status 35).
    Failed,
    /// The loader reported failure (exit status 37).
    LoaderFailed,
    /// Any other end: a triple fault (status 0), a QEMU error, a signal (`None`).
    Unknown(Option<i32>),
    /// QEMU was still running at the timeout and was killed.
    TimedOut,
}

impl Status {
    /// Maps QEMU's exit status (`None` for a signal) to how the run ended.
    pub fn from_exit_code(code: Option<i32>) -> Status {
        match code {
            Some(EXIT_KERNEL_PASS) => Status::Passed,
            Some(EXIT_KERNEL_FAIL) => Status::Failed,
            Some(EXIT_LOADER_FAIL) => Status::LoaderFailed,
            other => Status::Unknown(other),
        }
    }
}

/// The result of one run: its end and everything written to COM1.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How QEMU ended.
    pub status: Status,
    /// The serial output, lossily decoded as UTF-8.
    pub serial: String,
}

impl Outcome {
    /// Panics, showing the serial log, unless the kernel passed and printed `RESULT PASS` last.
    #[track_caller]
    pub fn assert_passed(&self) {
        self.assert_status(Status::Passed);
        let last = self.serial.lines().rev().find(|l| !l.trim().is_empty());
        assert_eq!(
            last.map(str::trim),
            Some("RESULT PASS"),
            "last line is not RESULT PASS\n{}",
            self.serial
        );
    }

    /// Panics, showing the serial log, unless QEMU ended with `status`.
    #[track_caller]
    pub fn assert_status(&self, status: Status) {
        assert_eq!(
            self.status, status,
            "unexpected end of QEMU; serial log:\n{}",
            self.serial
        );
    }

    /// Panics, showing the serial log, unless some line contains `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) {
        assert!(
            self.serial.contains(needle),
            "serial log lacks {needle:?}:\n{}",
            self.serial
        );
    }

    /// The lines that start with `prefix` (leading whitespace ignored).
    pub fn lines_with<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.serial
            .lines()
            .map(str::trim)
            .filter(move |l| l.starts_with(prefix))
    }

    /// The `key=value` words of every line that starts with `prefix`, for example `"STAT "`.
    pub fn records(&self, prefix: &str) -> Vec<BTreeMap<String, String>> {
        self.lines_with(prefix).map(parse_record).collect()
    }
}

/// Splits a line of `key=value` words into a map; words without `=` are skipped.
pub fn parse_record(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The workspace root (this crate sits in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn artifact(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        workspace_root()
            .join("target/x86_64-unknown-none/release")
            .join(name)
    });
    assert!(
        path.is_file(),
        "{} not found: run `just build` or set {var}",
        path.display()
    );
    path
}

/// The kernel command line of `limine.conf` (its `cmdline:` entry), shared by both boot paths.
pub fn limine_cmdline() -> String {
    let conf = workspace_root().join("limine.conf");
    let text = std::fs::read_to_string(&conf).expect("limine.conf is readable");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("cmdline:"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// The kernel ELF under test.
pub fn kernel_elf() -> PathBuf {
    artifact("KERNEL_ELF", "kernel")
}

/// The loader ELF under test.
pub fn loader_elf() -> PathBuf {
    artifact("LOADER_ELF", "loader")
}

/// The QEMU command for `b`, as `just run-smp` would build it.
pub fn qemu_command(b: &Boot) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        b.machine,
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .args(["-monitor", "none", "-nodefaults"])
    .arg("-smp")
    .arg(b.smp.to_string())
    .args(["-m", b.mem, "-cpu", b.cpu])
    .arg("-kernel")
    .arg(loader_elf())
    .args(["-append", b.cmdline]);
    if b.numa_nodes > 0 {
        cmd.args(numa::numa_args(b.numa_nodes, b.smp, b.mem).expect("valid NUMA machine"));
    }
    if !b.without_module {
        let module = b.module.clone().unwrap_or_else(kernel_elf);
        cmd.arg("-initrd").arg(module);
    }
    cmd
}

/// Boots QEMU as `b` says and waits for it to end or time out.
pub fn boot(b: &Boot) -> Outcome {
    run(qemu_command(b), b.timeout)
}

/// Runs the QEMU command `cmd` (for example [`qemu_command`] with extra arguments such as
/// `-numa`) and waits for it to end or time out, as [`boot`] does.
pub fn run(mut cmd: Command, timeout: Duration) -> Outcome {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 did not start: run `just setup`");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let serial = thread::spawn(move || read_all(stdout));
    let errors = thread::spawn(move || read_all(stderr));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(exit) = child.try_wait().expect("waiting for qemu") {
            break Status::from_exit_code(exit.code());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Status::TimedOut;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut serial = serial.join().expect("serial reader");
    let errors = errors.join().expect("stderr reader");
    if !errors.trim().is_empty() {
        serial.push_str("\n[qemu stderr]\n");
        serial.push_str(&errors);
    }
    Outcome { status, serial }
}

fn read_all(mut from: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = from.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn exit_codes_map_to_statuses() {
        assert_eq!(Status::from_exit_code(Some(33)), Status::Passed);
        assert_eq!(Status::from_exit_code(Some(35)), Status::Failed);
        assert_eq!(Status::from_exit_code(Some(37)), Status::LoaderFailed);
        assert_eq!(Status::from_exit_code(Some(0)), Status::Unknown(Some(0)));
        assert_eq!(Status::from_exit_code(None), Status::Unknown(None));
    }

    #[test]
    fn records_parse_key_value_words() {
        let out = Outcome {
            status: Status::Passed,
            serial: "x\nSTAT phase=bulk mode=magazine ops=10\n  STAT phase=cross\nRESULT PASS\n"
                .into(),
        };
        let recs = out.records("STAT ");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0]["phase"], "bulk");
        assert_eq!(recs[0]["ops"], "10");
        assert_eq!(recs[1]["phase"], "cross");
        out.assert_passed();
    }

    #[test]
    #[should_panic(expected = "last line is not RESULT PASS")]
    fn assert_passed_rejects_a_missing_verdict() {
        Outcome {
            status: Status::Passed,
            serial: "cpu 0 online\n".into(),
        }
        .assert_passed();
    }
}
