//! `qemu-run`: boots the kernel under QEMU with serial on the terminal; the entry point behind
//! `just run-smp N`.
//!
//! Usage: `qemu-run [--smp N] [--mem SIZE] [--cpu MODEL] [--numa NODES] [--cmdline "..."]
//! [--timeout SECS]`. `--numa NODES` spreads CPUs and memory over NODES nodes with a SLIT
//! (`tests::numa`), the machine behind `just run-numa`.
//! The timeout defaults to [`DEFAULT_TIMEOUT`] (`--timeout 0` waits for ever): a kernel that
//! neither passes nor fails in that time is stopped, and the run reported as timed out.
//! Without `--cmdline` the command line is the `cmdline:` of `limine.conf`, so both boot paths
//! run the same thing. The exit status is the kernel's verdict: 0 for `RESULT PASS`, 1 for a
//! kernel failure, 2 for a loader failure, 3 for anything else (triple fault, QEMU error,
//! timeout).

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use tests::{Boot, Status, limine_cmdline, qemu_command};

/// How long a run may take without `--timeout`: far beyond any stress run seen (an 8-CPU
/// run takes about 5 s here, a 64-CPU one about 2 minutes), short of a silent hang.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

struct Args {
    smp: u32,
    mem: String,
    cpu: String,
    numa: u32,
    cmdline: Option<String>,
    timeout: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        smp: 1,
        mem: "1G".into(),
        cpu: "max".into(),
        numa: 0,
        cmdline: None,
        timeout: Some(DEFAULT_TIMEOUT),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--smp" => args.smp = value.parse().map_err(|_| format!("bad --smp {value}"))?,
            "--mem" => args.mem = value,
            "--cpu" => args.cpu = value,
            "--numa" => args.numa = value.parse().map_err(|_| format!("bad --numa {value}"))?,
            "--cmdline" => args.cmdline = Some(value),
            "--timeout" => {
                let secs = value
                    .parse()
                    .map_err(|_| format!("bad --timeout {value}"))?;
                args.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.numa > 0 {
        tests::numa::numa_args(args.numa, args.smp, &args.mem)?;
    }
    Ok(args)
}

fn run(args: &Args) -> Status {
    let cmdline = args.cmdline.clone().unwrap_or_else(limine_cmdline);
    let b = Boot {
        smp: args.smp,
        mem: &args.mem,
        cpu: &args.cpu,
        cmdline: &cmdline,
        numa_nodes: args.numa,
        ..Boot::default()
    };
    let mut child = qemu_command(&b)
        .stdin(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 did not start: run `just setup`");
    let deadline = args.timeout.map(|t| Instant::now() + t);
    loop {
        if let Some(exit) = child.try_wait().expect("waiting for qemu") {
            return Status::from_exit_code(exit.code());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Status::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("qemu-run: {e}");
            return ExitCode::from(3);
        }
    };
    let status = run(&args);
    let code = match status {
        Status::Passed => 0,
        Status::Failed => 1,
        Status::LoaderFailed => 2,
        Status::Unknown(_) | Status::TimedOut => 3,
    };
    match (status, args.timeout) {
        (Status::TimedOut, Some(limit)) => eprintln!(
            "qemu-run: no verdict after {} s: QEMU stopped (--timeout SECS to change)",
            limit.as_secs()
        ),
        _ if code != 0 => eprintln!("qemu-run: {status:?}"),
        _ => {}
    }
    ExitCode::from(code)
}
