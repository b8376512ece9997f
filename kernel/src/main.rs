//! The kernel: boots every CPU the bootloader reports, then runs the test mode the command
//! line selects (`test=<mode>`), reports `RESULT PASS` or `RESULT FAIL <reason>` on serial,
//! and ends QEMU through `isa-debug-exit`.
//!
//! # Boot flow
//! Bring-up is two flat lists of `subsystem::init()` calls: [`kernel_main`] then [`bsp_main`]
//! on the BSP, [`ap_main`] on every AP.
//! 1. BSP, on the bootloader's stack: descriptor tables and IDT, serial, Limine checks, TSC,
//!    page-table access through the HHDM, frames for `mm` (every USABLE entry), the heap, the
//!    kernel's copy of the boot facts ([`boot::BootInfo`]); then a switch to a kernel stack.
//! 2. BSP, on its own stack: per-CPU areas (and kernel stacks) for every CPU, frame caches,
//!    inter-CPU calls, local APIC mode (x2APIC or xAPIC), the kernel's own page tables, the
//!    local APIC and its timer, interrupts on; then every AP is sent to its entry and the BSP
//!    waits for all of them (timeout names the missing ones).
//! 3. AP: installs its per-CPU area from the MP `extra_argument`, moves to its kernel stack,
//!    loads the kernel's page tables and its own GDT/TSS/IDT, enables its local APIC and timer, reports
//!    `cpu <index> online lapic=<id> apic=<mode>`, and idles serving cross-CPU calls.
//! 4. BSP: the reclaim point (below): bootloader-reclaimable memory goes to `mm`.
//! 5. [`modes::run`] runs the selected mode on the BSP.
//!
//! # Reclaim point
//! After step 2 (once [`cpus::wait_for_aps`] returned) nothing of the bootloader's is in use:
//! every fact the kernel keeps is in [`boot::BootInfo`], and every CPU runs on a kernel stack,
//! with the kernel's GDT/TSS/IDT and the kernel's own page tables (built from `mm` frames in
//! step 2, loaded by each AP first thing). So the BSP hands the bootloader-reclaimable ranges
//! ([`boot::BootInfo::bootloader_reclaimable`]) to `mm` there; Limine responses must not be
//! read after that.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod cmdline;
mod cpus;
mod memory;
mod modes;
mod numa;
mod panic;
mod stress;

use x86_64::VirtAddr;

use crate::boot::BootInfo;
use crate::cmdline::Cmdline;
use crate::memory::{PageTableFrames, pin};

/// The kernel's entry point (the ELF entry), on the BSP.
#[unsafe(no_mangle)]
extern "C" fn kernel_main() -> ! {
    // SAFETY: the very first code on the BSP; no AP runs yet.
    unsafe { arch::cpu::init_bsp_early() };
    arch::serial::init();
    arch::println!("kernel: early init on the BSP");
    boot::responses::check();
    init_tsc();
    // SAFETY: the bootloader maps all RAM, page tables included, at the HHDM offset, for as
    // long as its page tables are in use.
    unsafe { arch::paging::init(boot::responses::hhdm().offset()) };
    init_frames();
    init_heap();
    BootInfo::capture().print_summary();
    let stack = memory::new_kernel_stack();
    // SAFETY: a fresh kernel stack mapped for the BSP alone; nothing on the bootloader's
    // stack is used after the switch.
    unsafe { arch::cpu::run_on_stack(VirtAddr::new(stack), bsp_main, 0) }
}

/// The BSP's bring-up on its own stack, then the selected test mode.
extern "C" fn bsp_main(_: usize) -> ! {
    let boot = BootInfo::get();
    cpus::init_areas(boot);
    arch::cpu::mark_nmi_ready();
    numa::init(boot);
    init_frame_caches();
    numa::print_nodes();
    smp::call::init();
    modes::init();
    init_apic_bsp(boot);
    init_kernel_page_tables(boot);
    init_local_apic_and_timer(true);
    // SAFETY: no guard is alive; the IDT, local APIC and per-CPU area are ready.
    unsafe { arch::irq::enable_local() };
    cpus::start_aps();
    match cpus::wait_for_aps(boot) {
        Ok(took) => arch::println!(
            "all {} cpus online after {} ms",
            smp::cpu_count(),
            took.as_millis()
        ),
        Err(why) => modes::finish(Err(why)),
    }
    release_bootloader_memory(boot);
    let cmdline = Cmdline::new(&boot.cmdline);
    if let Err(why) = memory::configure_magazines(&cmdline) {
        modes::finish(Err(why));
    }
    modes::run(&cmdline)
}

/// An AP's bring-up on its own stack, then its idle loop.
pub(crate) fn ap_main() -> ! {
    // SAFETY: the kernel's tables map this CPU's code, data, stack and heap (built by the
    // BSP before it started any AP).
    unsafe { arch::paging::activate_kernel_tables() };
    arch::cpu::init_ap();
    arch::cpu::mark_nmi_ready();
    init_local_apic_and_timer(false);
    smp::bringup::mark_online(&smp::pin());
    // SAFETY: no guard is alive; the IDT, local APIC and per-CPU area are ready.
    unsafe { arch::irq::enable_local() };
    smp::call::idle_loop()
}

fn init_tsc() {
    let tsc = arch::tsc::init().unwrap_or_else(|e| panic!("TSC: {e}"));
    arch::println!(
        "tsc: {} MHz (source {:?}{})",
        tsc.hz / 1_000_000,
        tsc.source,
        tsc.rejected_hz
            .map_or(alloc::string::String::new(), |hz| alloc::format!(
                ", CPUID said {} MHz",
                hz / 1_000_000
            ))
    );
}

fn init_frames() {
    let report = memory::init(boot::responses::memory_map_entries());
    arch::println!(
        "frames: {} managed ({} MiB), {} beyond reach, {} dropped",
        report.added,
        (report.added * mm::FRAME_SIZE) >> 20,
        report.beyond_reach,
        report.table_full
    );
}

/// The reclaim point: see the crate docs.
fn release_bootloader_memory(boot: &BootInfo) {
    let report = memory::release_bootloader_memory(boot);
    arch::println!(
        "frames: {} bootloader-reclaimable frames released ({} KiB)",
        report.added,
        (report.added * mm::FRAME_SIZE) >> 10
    );
}

fn init_heap() {
    let bytes = memory::heap::init(boot::responses::cpu_count());
    arch::println!("heap: {} KiB", bytes >> 10);
}

fn init_frame_caches() {
    let count = memory::attach_cpu_caches();
    arch::println!("frames: {count} per-CPU magazine caches attached");
}

fn init_kernel_page_tables(boot: &BootInfo) {
    let root = memory::switch_to_kernel_page_tables(boot);
    arch::println!("paging: kernel page tables active (pml4 at {root:#x})");
}

fn init_apic_bsp(boot: &BootInfo) {
    let cpu = pin();
    let setup = arch::apic::init_bsp(boot.x2apic, &mut PageTableFrames::new(&cpu))
        .unwrap_or_else(|e| panic!("local APIC: {e:?}"));
    arch::println!(
        "apic: {} mode{}",
        setup.mode,
        if setup.switched_to_x2apic {
            " (switched from xapic by the kernel)"
        } else {
            ""
        }
    );
}

/// Enables this CPU's local APIC (checking its ID against the bootloader's), calibrates the
/// timer on the BSP, starts it, and prints the CPU's online line.
fn init_local_apic_and_timer(is_bsp: bool) {
    let pin = smp::pin();
    let irq = pin.irq_guard();
    let area = pin
        .area()
        .expect("per-CPU area installed before the local APIC");
    let id = arch::apic::init_this_cpu(irq).unwrap_or_else(|e| panic!("local APIC: {e:?}"));
    assert_eq!(
        id,
        area.lapic_id(),
        "local APIC ID differs from the bootloader's"
    );
    if is_bsp {
        let bus_hz = arch::apic::calibrate_timer(irq).unwrap_or_else(|e| panic!("{e}"));
        arch::println!(
            "apic timer: bus {} MHz, {} Hz tick",
            bus_hz / 1_000_000,
            arch::apic::TIMER_HZ
        );
    }
    arch::apic::start_timer(irq).unwrap_or_else(|e| panic!("{e}"));
    let mode = arch::apic::mode().expect("mode chosen on the BSP");
    arch::println!("cpu {} online lapic={id} apic={mode}", pin.cpu_id());
}
