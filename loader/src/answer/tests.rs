use super::*;
use crate::acpi::srat;
use crate::memmap::{E820Entry, EntryType};
use crate::phys::TestMemory;
use crate::requests::scan;
use crate::testutil::as_bytes;
use limine::paging::Mode;
use limine::request::{
    BootloaderInfoRequest, ExecutableAddressRequest, ExecutableCmdlineRequest, FirmwareTypeRequest,
    FramebufferRequest, HhdmRequest, MemoryMapRequest, MpRequest, PagingModeRequest, RsdpRequest,
    StackSizeRequest,
};
use std::vec::Vec;

const MIB: u64 = 0x10_0000;
const IMAGE: u64 = 2 * MIB;

/// 16 MiB of memory, a memory map over it, and a "kernel image" at 2 MiB holding `pieces`
/// (8-byte aligned, in order). Returns the memory, map and each piece's request.
fn setup(pieces: &[&[u8]]) -> (TestMemory, MemoryMap, Kernel) {
    let mut mem = TestMemory::new(0, 16 * MIB as usize);
    let raw = [
        E820Entry {
            base: 0,
            length: 0x9fc00,
            kind: 1,
        },
        E820Entry {
            base: MIB,
            length: 15 * MIB,
            kind: 1,
        },
    ];
    let mut map = MemoryMap::from_e820(&raw).unwrap();
    map.carve(IMAGE, MIB, EntryType::EXECUTABLE_AND_MODULES)
        .unwrap();
    let mut at = IMAGE;
    for p in pieces {
        mem.bytes_mut(at, p.len()).unwrap().copy_from_slice(p);
        at = align_up(at + p.len() as u64, 8).unwrap();
    }
    let scan = scan(mem.bytes(IMAGE, (at - IMAGE) as usize).unwrap()).unwrap();
    (
        mem,
        map,
        Kernel {
            image_phys: IMAGE,
            scan,
        },
    )
}

/// The physical address of the response of the request with `id`, or `None` if NULL.
fn response(mem: &TestMemory, k: &Kernel, id: [u64; 2]) -> Option<u64> {
    let req = k.find(id, 48).unwrap();
    let ptr = mem.read_u64(IMAGE + req.offset + 40).unwrap();
    (ptr != 0).then(|| ptr - HHDM_OFFSET)
}

fn c_string(mem: &TestMemory, hhdm_ptr: u64) -> Vec<u8> {
    let start = hhdm_ptr - HHDM_OFFSET;
    (start..)
        .map(|a| mem.read_u8(a).unwrap())
        .take_while(|&b| b != 0)
        .collect()
}

fn is_reclaimable(map: &MemoryMap, phys: u64) -> bool {
    map.entries()
        .iter()
        .any(|e| e.kind == EntryType::BOOTLOADER_RECLAIMABLE && (e.base..e.end()).contains(&phys))
}

fn facts(revision: u64) -> Facts<'static> {
    Facts {
        revision,
        kernel_phys: IMAGE,
        kernel_virt: 0xffff_ffff_8000_0000,
        cmdline: b"test=boot",
        rsdp: Some(0xf5a40),
    }
}

#[test]
fn fixed_responses_carry_the_facts() {
    let (info, fw, hhdm) = (
        BootloaderInfoRequest::new(),
        FirmwareTypeRequest::new(),
        HhdmRequest::new(),
    );
    let (addr, cmdline, rsdp) = (
        ExecutableAddressRequest::new(),
        ExecutableCmdlineRequest::new(),
        RsdpRequest::new(),
    );
    let (paging, fb) = (PagingModeRequest::new(), FramebufferRequest::new());
    let pieces = [
        as_bytes(&info),
        as_bytes(&fw),
        as_bytes(&hhdm),
        as_bytes(&addr),
        as_bytes(&cmdline),
        as_bytes(&rsdp),
        as_bytes(&paging),
        as_bytes(&fb),
    ];
    let (mut mem, mut map, k) = setup(&pieces);
    let stack = answer_fixed(&mut Responder::new(&mut mem, &mut map), &k, &facts(3)).unwrap();
    assert_eq!(stack, DEFAULT_STACK_SIZE, "no stack size request");

    let r = response(&mem, &k, id::BOOTLOADER_INFO).unwrap();
    assert_eq!(c_string(&mem, mem.read_u64(r + 8).unwrap()), b"mmloader");
    assert_eq!(
        c_string(&mem, mem.read_u64(r + 16).unwrap()),
        env!("CARGO_PKG_VERSION").as_bytes()
    );
    assert_eq!(
        mem.read_u64(response(&mem, &k, id::FIRMWARE_TYPE).unwrap() + 8),
        Ok(0)
    );
    assert_eq!(
        mem.read_u64(response(&mem, &k, id::HHDM).unwrap() + 8),
        Ok(HHDM_OFFSET)
    );
    let a = response(&mem, &k, id::EXECUTABLE_ADDRESS).unwrap();
    assert_eq!(
        (mem.read_u64(a + 8), mem.read_u64(a + 16)),
        (Ok(IMAGE), Ok(0xffff_ffff_8000_0000))
    );
    let c = response(&mem, &k, id::EXECUTABLE_CMDLINE).unwrap();
    assert_eq!(c_string(&mem, mem.read_u64(c + 8).unwrap()), b"test=boot");
    assert_eq!(
        mem.read_u64(response(&mem, &k, id::RSDP).unwrap() + 8),
        Ok(0xf5a40),
        "physical under revision 3"
    );
    assert_eq!(
        mem.read_u64(response(&mem, &k, id::PAGING_MODE).unwrap() + 8),
        Ok(0)
    );
    let fb_id = [
        FramebufferRequest::new().id()[2],
        FramebufferRequest::new().id()[3],
    ];
    assert_eq!(
        response(&mem, &k, fb_id),
        None,
        "unimplemented requests stay NULL"
    );
    for id in [
        id::BOOTLOADER_INFO,
        id::HHDM,
        id::RSDP,
        id::EXECUTABLE_CMDLINE,
    ] {
        assert!(is_reclaimable(&map, response(&mem, &k, id).unwrap()));
    }
}

#[test]
fn rsdp_is_an_hhdm_address_before_revision_3_and_unanswered_without_one() {
    let rsdp = RsdpRequest::new();
    let (mut mem, mut map, k) = setup(&[as_bytes(&rsdp)]);
    answer_fixed(&mut Responder::new(&mut mem, &mut map), &k, &facts(2)).unwrap();
    assert_eq!(
        mem.read_u64(response(&mem, &k, id::RSDP).unwrap() + 8),
        Ok(HHDM_OFFSET + 0xf5a40)
    );
    let (mut mem, mut map, k) = setup(&[as_bytes(&rsdp)]);
    let no_rsdp = Facts {
        rsdp: None,
        ..facts(3)
    };
    answer_fixed(&mut Responder::new(&mut mem, &mut map), &k, &no_rsdp).unwrap();
    assert_eq!(
        response(&mem, &k, id::RSDP),
        None,
        "no RSDP response, as under Limine"
    );
}

#[test]
fn stack_size_is_at_least_64k() {
    for (asked, got) in [(0x4000, DEFAULT_STACK_SIZE), (0x10_0001, 0x10_0010)] {
        let req = StackSizeRequest::new().with_size(asked);
        let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
        assert_eq!(
            answer_fixed(&mut Responder::new(&mut mem, &mut map), &k, &facts(3)),
            Ok(got)
        );
        assert!(response(&mem, &k, id::STACK_SIZE).is_some());
    }
}

#[test]
fn a_kernel_that_needs_5_level_paging_is_refused() {
    let req = PagingModeRequest::new()
        .with_mode(Mode::FIVE_LEVEL)
        .with_min_mode(Mode::FIVE_LEVEL);
    let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
    let result = answer_fixed(&mut Responder::new(&mut mem, &mut map), &k, &facts(3));
    assert_eq!(result, Err(Error::UnsupportedPagingMode));
    let prefers_5 = PagingModeRequest::new()
        .with_mode(Mode::FIVE_LEVEL)
        .with_max_mode(Mode::FIVE_LEVEL);
    let (mut mem, mut map, k) = setup(&[as_bytes(&prefers_5)]);
    answer_fixed(&mut Responder::new(&mut mem, &mut map), &k, &facts(3)).unwrap();
    assert_eq!(
        mem.read_u64(response(&mem, &k, id::PAGING_MODE).unwrap() + 8),
        Ok(0),
        "4-level is what it gets"
    );
}

/// CPUs with UIDs 0 to 2 and APIC IDs 0, 1 and 4; the BSP is APIC ID 1.
const THREE_CPUS: [MpCpu; 3] = [
    MpCpu {
        uid: 0,
        lapic_id: 0,
    },
    MpCpu {
        uid: 1,
        lapic_id: 1,
    },
    MpCpu {
        uid: 2,
        lapic_id: 4,
    },
];

/// Answers `found` (an MP request) for [`THREE_CPUS`] in x2APIC mode; returns the info array.
fn answer_three_cpus(
    mem: &mut TestMemory,
    map: &mut MemoryMap,
    k: &Kernel,
    found: FoundRequest,
    phantom_cpu: bool,
) -> u64 {
    let setup = MpSetup {
        cpus: &THREE_CPUS,
        bsp_lapic_id: 1,
        is_x2apic: true,
        stack_size: 0x1_0000,
        phantom_cpu,
    };
    answer_mp(&mut Responder::new(mem, map), k, found, setup).unwrap()
}

#[test]
fn mp_response_lists_every_cpu_with_its_own_stack() {
    let req = MpRequest::new().with_flags(limine::mp::RequestFlags::X2APIC);
    let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
    let (found, flags) = mp_request(&mem, &k).unwrap().unwrap();
    assert_eq!(flags, protocol::MP_FLAG_X2APIC);
    let cpus = THREE_CPUS;
    let infos = answer_three_cpus(&mut mem, &mut map, &k, found, false);

    let r = response(&mem, &k, id::MP).unwrap();
    assert_eq!(mem.read_u32(r + mp_response::FLAGS), Ok(1));
    assert_eq!(mem.read_u32(r + mp_response::BSP_LAPIC_ID), Ok(1));
    assert_eq!(mem.read_u64(r + mp_response::CPU_COUNT), Ok(3));
    let pointers = mem.read_u64(r + mp_response::CPUS).unwrap() - HHDM_OFFSET;
    let mut stacks = Vec::new();
    for (i, cpu) in cpus.iter().enumerate() {
        let info = mem.read_u64(pointers + 8 * i as u64).unwrap() - HHDM_OFFSET;
        assert_eq!(info, infos + 32 * i as u64);
        assert_eq!(mem.read_u32(info + mp_info::PROCESSOR_ID), Ok(cpu.uid));
        assert_eq!(mem.read_u32(info + mp_info::LAPIC_ID), Ok(cpu.lapic_id));
        assert_eq!(mem.read_u64(info + mp_info::GOTO_ADDRESS), Ok(0));
        let top = mem.read_u64(info + mp_info::STACK_TOP).unwrap();
        if cpu.lapic_id == 1 {
            assert_eq!(top, 0, "the BSP keeps the hand-off stack");
        } else {
            assert!(is_reclaimable(&map, top - HHDM_OFFSET - 1));
            assert_eq!(top % 16, 0);
            stacks.push(top);
        }
    }
    assert!(
        stacks[0].abs_diff(stacks[1]) >= 0x1_0000,
        "AP stacks do not overlap"
    );
}

#[test]
fn memory_map_response_is_the_final_map() {
    let req = MemoryMapRequest::new();
    let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
    let mut r = Responder::new(&mut mem, &mut map);
    r.alloc(0x100).unwrap();
    answer_memmap(&mut r, &k, false).unwrap();
    let resp = response(&mem, &k, id::MEMORY_MAP).unwrap();
    let count = mem.read_u64(resp + 8).unwrap() as usize;
    let pointers = mem.read_u64(resp + 16).unwrap() - HHDM_OFFSET;
    assert_eq!(count, map.entries().len());
    for (i, e) in map.entries().iter().enumerate() {
        let at = mem.read_u64(pointers + 8 * i as u64).unwrap() - HHDM_OFFSET;
        let words = [
            mem.read_u64(at).unwrap(),
            mem.read_u64(at + 8).unwrap(),
            mem.read_u64(at + 16).unwrap(),
        ];
        assert_eq!(words, [e.base, e.length, e.kind.0]);
    }
    assert!(
        is_reclaimable(&map, resp),
        "the response is accounted for in the map it reports"
    );
}

#[test]
fn the_arena_packs_small_structures_and_gives_big_ones_a_chunk_of_their_own() {
    let (mut mem, mut map, _) = setup(&[]);
    let mut r = Responder::new(&mut mem, &mut map);
    let a = r.alloc(24).unwrap();
    assert_eq!(r.alloc(8).unwrap(), a + 32, "packed at 16-byte alignment");
    let big = r.alloc(Arena::CHUNK + 1).unwrap();
    assert_eq!(big % PAGE_SIZE, 0);
    assert!(
        big >= a + Arena::CHUNK || big + Arena::CHUNK < a,
        "a new chunk, apart from the first"
    );
    assert_eq!(
        r.alloc(8).unwrap(),
        align_up(big + Arena::CHUNK + 1, 16).unwrap(),
        "the rest of it is used"
    );
    r.mem.write_u64(big + Arena::CHUNK - 8, 1).unwrap();
    assert!(is_reclaimable(&map, a) && is_reclaimable(&map, big + Arena::CHUNK));
}

#[test]
fn the_corrupt_memmap_hook_stretches_entry_0_into_entry_1() {
    let hook = |line: &[u8]| corrupt_hook(line);
    assert_eq!(
        hook(b"test=boot loader.corrupt=memmap").map(|c| c.memmap),
        Ok(true)
    );
    assert_eq!(
        hook(b"loader.corrupt=mp").map(|c| (c.memmap, c.mp)),
        Ok((false, true))
    );
    assert_eq!(
        hook(b"loader.corrupt=memmapx"),
        Err(Error::UnknownCorruptHook)
    );
    assert_eq!(hook(b""), Ok(Corruption::default()));
    assert_eq!(
        hook(b"loader.corrupt=srat-cpu loader.corrupt=srat-overlap").map(|c| c.srat),
        Ok(Some(srat::Corruption::Overlap)),
        "the last SRAT word wins"
    );
    assert_eq!(
        hook(b"loader.corrupt=srat-memless loader.corrupt=mp").map(|c| (c.mp, c.srat)),
        Ok((true, Some(srat::Corruption::Memless)))
    );
    assert_eq!(hook(b"loader.corrupt=srat"), Err(Error::UnknownCorruptHook));
    let req = MemoryMapRequest::new();
    let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
    let mut r = Responder::new(&mut mem, &mut map);
    answer_memmap(&mut r, &k, true).unwrap();
    let resp = response(&mem, &k, id::MEMORY_MAP).unwrap();
    let pointers = mem.read_u64(resp + 16).unwrap() - HHDM_OFFSET;
    let entry = |i: u64| {
        let at = mem.read_u64(pointers + 8 * i).unwrap() - HHDM_OFFSET;
        (mem.read_u64(at).unwrap(), mem.read_u64(at + 8).unwrap())
    };
    let ((base0, len0), (base1, len1)) = (entry(0), entry(1));
    assert_eq!(base0 + len0, base1 + PAGE_SIZE, "one page into entry 1");
    assert_eq!(len1, map.entries()[1].length, "entry 1 itself is unchanged");
}

#[test]
fn the_skip_hook_names_a_request_and_unanswer_clears_it() {
    assert_eq!(skip_hook(b"test=boot").unwrap(), None);
    assert_eq!(
        skip_hook(b"loader.skip=mp test=boot").unwrap(),
        Some(id::MP)
    );
    assert_eq!(skip_hook(b"loader.skip=nope"), Err(Error::UnknownSkipHook));
    let req = MemoryMapRequest::new();
    let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
    let mut r = Responder::new(&mut mem, &mut map);
    answer_memmap(&mut r, &k, false).unwrap();
    assert!(response(&mem, &k, id::MEMORY_MAP).is_some());
    k.unanswer(&mut mem, id::MEMORY_MAP).unwrap();
    assert!(response(&mem, &k, id::MEMORY_MAP).is_none());
    k.unanswer(&mut mem, id::HHDM).unwrap();
}

#[test]
fn the_corrupt_mp_hook_lists_one_cpu_that_does_not_exist() {
    let req = MpRequest::new();
    let (mut mem, mut map, k) = setup(&[as_bytes(&req)]);
    let (found, _) = mp_request(&mem, &k).unwrap().unwrap();
    let infos = answer_three_cpus(&mut mem, &mut map, &k, found, true);
    let r = response(&mem, &k, id::MP).unwrap();
    assert_eq!(mem.read_u64(r + mp_response::CPU_COUNT), Ok(4));
    let phantom = infos + 3 * mp_info::SIZE;
    assert_eq!(mem.read_u32(phantom + mp_info::PROCESSOR_ID), Ok(3));
    assert_eq!(
        mem.read_u32(phantom + mp_info::LAPIC_ID),
        Ok(5),
        "a free APIC ID"
    );
}
