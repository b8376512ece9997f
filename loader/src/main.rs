//! mmloader: boots a Limine-protocol kernel under QEMU's PVH entry.
//!
//! QEMU starts this binary (`-kernel`) at its PVH entry with the kernel ELF as module 0
//! (`-initrd`) and the command line from `-append`. The loader does what Limine would do for a
//! base revision 3 kernel and jumps to it; the kernel cannot tell the two apart.
//!
//! # Implementation
//! [`loader_main`] first loads the BSP's IDT and TSS ([`machine::idt`]), so a CPU exception in
//! the loader, a stack overflow included, ends like any other failure; the APs get an IDT of
//! their own. [`boot`] is the whole sequence, one step per function;
//! every step returns `Result<_, loader::Error>` and any error ends in `loader: error: <what>`
//! and exit status 37 ([`machine::exit::fail`]):
//! 1. read `start_info` (and act on the test hook below) and build the memory map, carving out
//!    page 0, the loader image, the module and the firmware's structures;
//! 2. validate the kernel ELF, place it in physically contiguous memory, copy it, find its
//!    requests and answer the base revision tag ([`load_kernel`]);
//! 3. build the kernel's page tables (image at its link address, HHDM) and add their upper half
//!    to the loader's own, so the HHDM alias of the loader is reachable from here on;
//! 4. answer the fixed requests and allocate the BSP stack;
//! 5. choose the APIC mode, mask the PIC and I/O APICs, answer MP and start every AP
//!    ([`set_up_cpus`]); answer the memory map request last, when no allocation remains;
//! 6. hand off ([`machine::handoff`]).
//!
//! Without an ACPI RSDP the loader, like Limine, answers neither the RSDP nor the MP request and
//! boots the kernel on the BSP alone, logging `loader: no ACPI RSDP found: no RSDP response, no
//! MP response; booting on the BSP alone`; with an RSDP but no MADT it leaves only the MP
//! request unanswered: `loader: no ACPI MADT found: no MP response; booting on the BSP alone`.
//! The APIC then stays in xAPIC mode, as Limine enables x2APIC only once it found the MADT.
//!
//! # Test hooks
//! Command-line words for the boot tests (`tests/tests/loader.rs`, `tests/tests/boot.rs`);
//! normal command lines never contain them. Each is read with [`loader::pvh::word_values`]; an
//! unknown value is an error (`loader: error: unknown loader.<key>= value (expected ...)`).
//! - `loader.fault=page` makes the loader read an unmapped address
//!   ([`loader::exception::FAULT_ADDRESS`]) right after reading `start_info`, and
//!   `loader.fault=ud` makes it execute `ud2`: deliberate CPU exceptions that exercise the IDT.
//!   The run ends with exactly one line `loader: error: CPU exception 14 (page fault) error=0x0
//!   rip=<hex> cr2=0x1deadb000` (`6 (invalid opcode)` for `ud`) and exit status 37; the kernel
//!   never runs.
//! - `loader.fault=stack` recurses on the BSP until its stack runs into the unmapped guard page
//!   below it; the double fault that follows runs on an IST stack and the run ends with one line
//!   `loader: error: stack overflow into the guard page at <hex>: CPU exception 8 (double
//!   fault) error=0x0 rip=<hex> cr2=<hex in the guard page> rsp=<hex>` and status 37.
//! - `loader.fault=ap-page` makes every AP read [`loader::exception::FAULT_ADDRESS`] on the
//!   kernel's page tables just before it parks (the BSP logs `loader: test hook
//!   loader.fault=ap-page: every AP faults before it parks, on purpose`); the first AP started
//!   reports it through the APs' IDT (HHDM alias) and the run ends with one line `loader: error:
//!   AP with APIC ID <id>: CPU exception 14 (page fault) error=0x0 rip=<HHDM hex>
//!   cr2=0x1deadb000` and status 37. Any exception on an AP once its trampoline runs 64-bit code
//!   at the HHDM alias is reported this way, with the `AP with APIC ID <id>: ` prefix (a report
//!   without it comes from the BSP); exactly one CPU prints ([`machine::exit`]).
//! - `loader.corrupt=memmap` answers an overlapping memory map, `loader.corrupt=mp` lists a CPU
//!   that never comes online, and `loader.skip=<request>` leaves a request unanswered, for the
//!   kernel's checks (see [`answer`]); `loader.skip=mp` starts no AP either.
//! - `loader.hide=madt` and `loader.hide=srat` drop that ACPI table from the RSDT and XSDT
//!   (checksums fixed) before anything reads them, as if the firmware never built it; the loader
//!   logs `loader: test hook loader.hide=<madt|srat>: ACPI table <APIC|SRAT> at <hex> dropped
//!   from the RSDT/XSDT` (or `... no ACPI table <sig> to hide`). Without the MADT there is no MP
//!   response (see above).
//! - `loader.corrupt=srat-overlap`, `srat-cpu` and `srat-memless` rewrite QEMU's SRAT (`-numa`)
//!   in place, checksum fixed, so it parses but is wrong ([`loader::acpi::srat`]); the loader
//!   logs `loader: test hook loader.corrupt=srat-overlap: SRAT memory of domain <a> [<base>,
//!   <end>) overlaps domain <b> at <base>`, `loader: test hook loader.corrupt=srat-cpu: SRAT names
//!   APIC ID <new> (no such CPU) in domain <d> instead of APIC ID <old>, which has no domain` or
//!   `loader: test hook loader.corrupt=srat-memless: SRAT memory of domain <a> (<n> ranges) moved
//!   to domain <b>; domain <a> keeps its CPUs and has no memory`. On a machine without an SRAT
//!   they fail: `loader: error: loader.corrupt=srat-*: no ACPI SRAT on this machine (QEMU builds
//!   one with -numa)`.

#![no_std]
#![no_main]

mod machine;

use loader::Error;
use loader::acpi::edit::{self, Hidden};
use loader::acpi::{self, MAX_CPUS, Madt, Rsdp, srat};
use loader::answer::{self, Corruption, Facts, Kernel, MpSetup, Responder};
use loader::elf::{self, KernelElf};
use loader::exception::{self, Fault};
use loader::hhdm::HHDM_OFFSET;
use loader::memmap::{EntryType, MemoryMap};
use loader::paging::{self, KernelPlacement, PagingFeatures};
use loader::phys::{PAGE_SIZE, PhysMem};
use loader::protocol::{self, MP_FLAG_X2APIC};
use loader::pvh::{self, StartInfo};
use loader::requests;
use machine::handoff::Handoff;
use machine::idmem::IdentityMemory;
use machine::lapic::Lapic;
use machine::serial::log;
use machine::trampoline::TrampolineConfig;
use machine::{cpu, entry, exit, idt, legacy, smp};

/// The Rust entry point, called by `pvh_start32` in long mode with the `start_info` address.
#[unsafe(no_mangle)]
extern "C" fn loader_main(start_info: u32) -> ! {
    machine::serial::init();
    // SAFETY: the BSP, in long mode on the identity map and the loader's GDT; no AP runs yet.
    unsafe { idt::install() };
    log!("mmloader {}", env!("CARGO_PKG_VERSION"));
    // SAFETY: called once; the identity map is live, and the loader only reads firmware
    // structures, the module and memory it allocated from the memory map.
    let mut mem = unsafe { IdentityMemory::new() };
    match boot(&mut mem, u64::from(start_info)) {
        // SAFETY: `boot` built complete kernel tables (image, HHDM over every reclaimable range,
        // the stack included) and took the entry point from the validated ELF.
        Ok(handoff) => unsafe { machine::handoff::enter_kernel(&handoff) },
        Err(e) => exit::fail(&e),
    }
}

/// Steps 1-5 of the module docs; returns where to enter the kernel.
fn boot(mem: &mut IdentityMemory, start_info: u64) -> Result<Handoff, Error> {
    let info = pvh::read(mem, start_info)?;
    let Hooks {
        corrupt,
        skip,
        hidden,
        fault,
    } = read_hooks(info.cmdline())?;
    let mut map = initial_memory_map(&info)?;
    let features = enable_paging_features();
    let (elf, kernel, revision) = load_kernel(mem, &mut map, &info)?;
    let placement = KernelPlacement {
        elf: &elf,
        image_phys: kernel.image_phys,
    };
    let kernel_cr3 = paging::build_kernel_tables(mem, &mut map, placement, revision, features)?;
    // SAFETY: the tables are complete and their upper half (HHDM, kernel) is unused by the
    // loader's identity map.
    unsafe { entry::install_kernel_half(kernel_cr3) };
    let rsdp = find_acpi(mem, info.rsdp, hidden, corrupt.srat)?;
    let facts = Facts {
        revision,
        kernel_phys: kernel.image_phys,
        kernel_virt: elf.virtual_base(),
        cmdline: info.cmdline(),
        rsdp: rsdp.map(|r| r.addr),
    };
    let mut responder = Responder::new(mem, &mut map);
    let stack_size = answer::answer_fixed(&mut responder, &kernel, &facts)?;
    let stack = responder.map.allocate_reclaimable(stack_size, PAGE_SIZE)?;
    let config = TrampolineConfig {
        kernel_cr3,
        has_nx: features.has_nx,
        is_x2apic: false,
        is_faulting: fault == Some(Fault::ApPage),
    };
    let cpus = CpuSetup {
        stack_size,
        config,
        phantom_cpu: corrupt.mp,
        skips_mp: skip == Some(protocol::id::MP),
    };
    set_up_cpus(&mut responder, &kernel, rsdp, cpus)?;
    if corrupt.memmap {
        log!("test hook loader.corrupt=memmap: entry 0 overlaps entry 1 on purpose");
    }
    answer::answer_memmap(&mut responder, &kernel, corrupt.memmap)?;
    if let Some(id) = skip {
        log!("test hook loader.skip: one request left unanswered on purpose");
        kernel.unanswer(responder.mem, id)?;
    }
    log!("handing off to the kernel");
    let stack_top = HHDM_OFFSET + stack + stack_size;
    Ok(Handoff {
        kernel_cr3,
        entry: elf.entry,
        stack_top,
    })
}

/// The command line's test hooks (module docs).
struct Hooks {
    corrupt: Corruption,
    skip: Option<[u64; 2]>,
    hidden: Hidden,
    fault: Option<Fault>,
}

/// Reads every test hook of `cmdline`; raises a BSP fault hook right away.
fn read_hooks(cmdline: &[u8]) -> Result<Hooks, Error> {
    let hooks = Hooks {
        corrupt: answer::corrupt_hook(cmdline)?,
        skip: answer::skip_hook(cmdline)?,
        hidden: edit::hide_hook(cmdline)?,
        fault: exception::fault_hook(cmdline)?,
    };
    match hooks.fault {
        Some(Fault::ApPage) => {
            log!("test hook loader.fault=ap-page: every AP faults before it parks, on purpose")
        }
        Some(kind) => {
            log!("test hook loader.fault: raising {kind:?} on purpose");
            idt::fault(kind);
        }
        None => {}
    }
    Ok(hooks)
}

/// How [`set_up_cpus`] starts the APs.
struct CpuSetup {
    /// Each AP's stack size.
    stack_size: u64,
    /// The trampoline's settings (the APIC mode is set from the MADT).
    config: TrampolineConfig,
    /// The `loader.corrupt=mp` hook: the response lists a CPU that does not exist.
    phantom_cpu: bool,
    /// The `loader.skip=mp` hook: the MP request goes unanswered, so no AP starts either (as
    /// under a bootloader that gives no response: a parked AP would run in memory the kernel
    /// takes back at its reclaim point).
    skips_mp: bool,
}

/// Chooses the APIC mode, masks the legacy interrupt controllers and, if the kernel asks for
/// MP and the MADT lists the CPUs, answers it and starts every AP. Without a MADT there is no
/// MP response and the APIC stays in xAPIC mode, as under Limine.
fn set_up_cpus(
    r: &mut Responder<'_, IdentityMemory>,
    kernel: &Kernel,
    rsdp: Option<Rsdp>,
    cpus: CpuSetup,
) -> Result<(), Error> {
    let mp = if cpus.skips_mp {
        log!("test hook loader.skip=mp: no AP started, as without an MP response");
        None
    } else {
        answer::mp_request(r.mem, kernel)?
    };
    let wants_x2apic = mp.is_some_and(|(_, flags)| flags & MP_FLAG_X2APIC != 0);
    let (lapic, madt) = init_interrupt_controllers(r.mem, rsdp, wants_x2apic)?;
    let Some((req, _)) = mp else { return Ok(()) };
    let Some(madt) = madt else {
        if rsdp.is_some() {
            log!("no ACPI MADT found: no MP response; booting on the BSP alone");
        }
        return Ok(());
    };
    if madt.cpus().is_empty() {
        return Err(Error::NoCpus);
    }
    let is_x2apic = lapic.is_x2apic();
    let setup = MpSetup {
        cpus: madt.cpus(),
        bsp_lapic_id: lapic.id(),
        is_x2apic,
        stack_size: cpus.stack_size,
        phantom_cpu: cpus.phantom_cpu,
    };
    if cpus.phantom_cpu {
        log!("test hook loader.corrupt=mp: the MP response lists a CPU that does not exist");
    }
    let infos = answer::answer_mp(r, kernel, req, setup)?;
    let config = TrampolineConfig {
        is_x2apic,
        ..cpus.config
    };
    let started = smp::start_aps(r.mem, r.map, &lapic, madt.cpus(), infos, config)?;
    log!(
        "{} CPUs, {started} APs parked, BSP APIC ID {}, x2APIC {is_x2apic}",
        madt.cpus().len(),
        lapic.id()
    );
    Ok(())
}

/// Puts the BSP's APIC in its mode (x2APIC if `wants_x2apic` and there is a MADT, as Limine
/// enables it only once it found one), reads the MADT, and masks the PIC and every I/O APIC.
fn init_interrupt_controllers(
    mem: &IdentityMemory,
    rsdp: Option<Rsdp>,
    wants_x2apic: bool,
) -> Result<(Lapic, Option<Madt>), Error> {
    let madt_at = match rsdp {
        Some(rsdp) => acpi::find_table(mem, &rsdp, *b"APIC")?,
        None => None,
    };
    let lapic = Lapic::init(wants_x2apic && madt_at.is_some());
    let madt = match madt_at {
        Some((addr, len)) => Some(parse_madt(mem, addr, len, lapic.is_x2apic())?),
        None => None,
    };
    legacy::mask_pic();
    madt.iter()
        .flat_map(|m| m.ioapics())
        .for_each(|&a| legacy::mask_ioapic(a));
    Ok((lapic, madt))
}

/// The MADT of `len` bytes at `addr`, read for an APIC in x2APIC mode or not.
fn parse_madt(mem: &IdentityMemory, addr: u64, len: u32, is_x2apic: bool) -> Result<Madt, Error> {
    acpi::parse_madt(mem.bytes(addr, len as usize)?, is_x2apic)
}

/// The RSDP, once the `loader.hide=` and `loader.corrupt=srat-*` hooks have edited the tables.
/// `None` on a machine without ACPI: then, as under Limine, neither the RSDP nor the MP request
/// is answered and the kernel runs on the BSP alone.
fn find_acpi(
    mem: &mut IdentityMemory,
    hint: Option<u64>,
    hidden: Hidden,
    srat: Option<srat::Corruption>,
) -> Result<Option<Rsdp>, Error> {
    let Ok(rsdp) = acpi::find_rsdp(mem, hint) else {
        log!("no ACPI RSDP found: no RSDP response, no MP response; booting on the BSP alone");
        return match srat {
            Some(_) => Err(Error::SratHook("no ACPI tables on this machine")),
            None => Ok(None),
        };
    };
    for (name, signature) in hidden.tables() {
        let sig = core::str::from_utf8(&signature).unwrap_or("?");
        match edit::hide_table(mem, &rsdp, signature)? {
            Some(at) => log!(
                "test hook loader.hide={name}: ACPI table {sig} at {at:#x} dropped from the RSDT/XSDT"
            ),
            None => log!("test hook loader.hide={name}: no ACPI table {sig} to hide"),
        }
    }
    if let Some(what) = srat {
        corrupt_srat(mem, &rsdp, what)?;
    }
    Ok(Some(rsdp))
}

/// Applies a `loader.corrupt=srat-*` hook to the SRAT in place and logs what changed.
fn corrupt_srat(
    mem: &mut IdentityMemory,
    rsdp: &Rsdp,
    what: srat::Corruption,
) -> Result<(), Error> {
    let no_srat = Error::SratHook("no ACPI SRAT on this machine (QEMU builds one with -numa)");
    let (addr, len) = acpi::find_table(mem, rsdp, *b"SRAT")?.ok_or(no_srat)?;
    let mut present = [0u32; MAX_CPUS];
    let mut count = 0;
    if let Some((at, madt_len)) = acpi::find_table(mem, rsdp, *b"APIC")? {
        for (cpu, slot) in parse_madt(mem, at, madt_len, true)?
            .cpus()
            .iter()
            .zip(&mut present)
        {
            *slot = cpu.lapic_id;
            count += 1;
        }
    }
    let mut change = Err(no_srat);
    let written = edit::write_table(mem, addr, len, *b"SRAT", |t| {
        change = srat::corrupt(t, what, &present[..count]);
    });
    let change = change?;
    written?;
    log!("test hook {change}");
    Ok(())
}

/// The firmware's memory map with everything the loader must not hand out carved away.
fn initial_memory_map(info: &StartInfo) -> Result<MemoryMap, Error> {
    let mut map = MemoryMap::from_e820(info.e820())?;
    map.carve(0, PAGE_SIZE, EntryType::RESERVED)?;
    let (start, end) = entry::loader_image();
    map.carve(start, end - start, EntryType::BOOTLOADER_RECLAIMABLE)?;
    map.carve(
        info.module.paddr,
        info.module.size,
        EntryType::BOOTLOADER_RECLAIMABLE,
    )?;
    for (addr, len) in info.firmware_ranges {
        map.carve(addr, len, EntryType::BOOTLOADER_RECLAIMABLE)?;
    }
    Ok(map)
}

/// Probes NX and 1 GiB pages, and sets `EFER.NXE` when NX exists.
fn enable_paging_features() -> PagingFeatures {
    let features = PagingFeatures {
        has_nx: cpu::has_nx(),
        has_huge_pages: cpu::has_huge_pages(),
    };
    if features.has_nx {
        // SAFETY: NX is supported, so EFER.NXE may be set; it only makes the NX bit meaningful.
        unsafe { cpu::wrmsr(cpu::IA32_EFER, cpu::rdmsr(cpu::IA32_EFER) | cpu::EFER_NXE) };
    }
    features
}

/// Validates the module as the kernel, copies it into freshly allocated, physically
/// contiguous memory typed executable-and-modules, finds its requests and answers its base
/// revision tag. Returns the plan, the loaded kernel and the base revision.
fn load_kernel(
    mem: &mut IdentityMemory,
    map: &mut MemoryMap,
    info: &StartInfo,
) -> Result<(KernelElf, Kernel, u64), Error> {
    let module = info.module;
    let elf = elf::parse(mem.bytes(module.paddr, module.size as usize)?)?;
    let image_phys = elf.allocate_image(map)?;
    elf.load(mem, module.paddr, image_phys)?;
    let scan = requests::scan(mem.bytes(image_phys, elf.size_before_bss() as usize)?)?;
    let revision = requests::handshake(mem, image_phys, scan.base_revision)?;
    log!(
        "kernel: entry {:#x}, {:#x} bytes at {image_phys:#x}, {} requests, base revision {revision}",
        elf.entry,
        elf.image_size(),
        scan.requests().len(),
    );
    Ok((elf, Kernel { image_phys, scan }, revision))
}
