//! `test=pagefault`, `test=panic-ap` and `test=stack-overflow`: deliberate fatal events on
//! the highest-numbered CPU (an AP whenever there is more than one CPU). The stack overflow
//! runs into the guard page below the kernel stack; the CPU cannot push the page-fault frame
//! there either, so it raises a double fault, which runs on its own IST stack and reports. Both must end the run through the fatal path:
//! the report names the CPU, every other CPU is stopped by NMI, the run ends with status 35.
//! If the event does not happen, the mode fails normally with a reason.
#![deny(unsafe_code)]

use alloc::string::{String, ToString};

use spin::Mutex;

/// The CPU that takes the fault: the last one.
fn victim() -> usize {
    smp::cpu_count() - 1
}

/// Reads an unmapped page on the victim CPU; the page-fault report ends the run.
pub fn page_fault() -> Result<(), String> {
    let failure: Mutex<Option<&'static str>> = Mutex::new(None);
    let cpu = victim();
    arch::println!("pagefault: reading an unmapped page on cpu {cpu}");
    smp::run_on(cpu, || {
        let Err(why) = arch::paging::read_never_mapped_page();
        *failure.lock() = Some(why);
    });
    Err(failure.into_inner().unwrap_or("no page fault").to_string())
}

/// Panics on the victim CPU; the panic report ends the run.
pub fn panic_ap() -> Result<(), String> {
    let cpu = victim();
    arch::println!("panic-ap: panicking on cpu {cpu}");
    smp::run_on(cpu, || panic!("deliberate panic (test=panic-ap)"));
    Err("the panic returned".to_string())
}

/// Recurses on the victim CPU until its kernel stack overflows into the guard page; the
/// double-fault report ends the run.
pub fn stack_overflow() -> Result<(), String> {
    let cpu = victim();
    arch::println!("stack-overflow: recursing without bound on cpu {cpu}");
    smp::run_on(cpu, || {
        core::hint::black_box(recurse(0));
    });
    Err("the stack never overflowed".to_string())
}

/// Uses a kilobyte of stack per level; stops only at a depth no stack reaches.
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 128]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(core::hint::black_box(frame[7]))
}
