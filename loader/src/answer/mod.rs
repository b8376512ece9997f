//! Writing the responses to the kernel's requests.
//!
//! Each answered request gets a response structure in bootloader-reclaimable memory, and its
//! `response` field is set to the response's HHDM address, as real Limine does. Strings and
//! arrays the responses point to live there too, also referenced by HHDM address. Requests this
//! loader does not implement keep their NULL response.
//!
//! Answered: bootloader info, firmware type (x86 BIOS), stack size, HHDM, paging mode (4-level),
//! executable address, executable command line, RSDP ([`answer_fixed`], only when the machine
//! has one); MP ([`answer_mp`], once the CPUs are known, only when the MADT lists them); memory map ([`answer_memmap`], last, after every allocation, so
//! the map it reports is final).
//!
//! Test hooks, for the boot tests of the kernel's checks (normal command lines never hold
//! them): with `loader.corrupt=memmap` ([`corrupt_hook`]) the memory map response breaks the
//! protocol on purpose: its first entry is stretched a page into the second; with
//! `loader.corrupt=mp` the MP response lists a CPU that does not exist ([`MpSetup`]); with
//! `loader.skip=<request>` ([`skip_hook`], [`Kernel::unanswer`]) that request keeps a NULL
//! response, as from a bootloader that does not support it.
//!
//! # Implementation
//! [`Arena`] packs the small structures into 64 KiB chunks taken from the memory map, so the
//! responses add one or two reclaimable entries, not one per structure. Revision-dependent
//! answers follow Limine's `limine_load`: the RSDP address is physical under base revision 3 and
//! an HHDM address before it.

use crate::Error;
use crate::acpi::srat;
use crate::hhdm::HHDM_OFFSET;
use crate::memmap::{MAX_ENTRIES, MemoryMap};
use crate::phys::{PAGE_SIZE, PhysMem, align_up};
use crate::protocol::{self, id, mp_info, mp_response};
use crate::requests::{self, FoundRequest, Scan};

#[cfg(test)]
mod tests;

/// The `name` in the bootloader info response.
pub const BOOTLOADER_NAME: &[u8] = b"mmloader";
/// The `version` in the bootloader info response: the crate version.
pub const BOOTLOADER_VERSION: &[u8] = env!("CARGO_PKG_VERSION").as_bytes();
/// Stack size when the kernel asks for none or less: the protocol's 64 KiB minimum.
pub const DEFAULT_STACK_SIZE: u64 = 0x1_0000;

/// Packs response structures into reclaimable chunks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Arena {
    next: u64,
    end: u64,
}

impl Arena {
    /// Size of the chunks taken from the memory map.
    pub const CHUNK: u64 = 0x1_0000;
}

/// Where responses are written: physical memory, the memory map and the response arena.
pub struct Responder<'a, M: PhysMem> {
    /// Physical memory.
    pub mem: &'a mut M,
    /// The memory map allocations come from.
    pub map: &'a mut MemoryMap,
    arena: Arena,
}

impl<'a, M: PhysMem> Responder<'a, M> {
    /// A responder with an empty arena.
    pub fn new(mem: &'a mut M, map: &'a mut MemoryMap) -> Self {
        Responder {
            mem,
            map,
            arena: Arena::default(),
        }
    }

    /// `size` zeroed bytes, 16-byte aligned, in reclaimable memory; returns the physical address.
    pub fn alloc(&mut self, size: u64) -> Result<u64, Error> {
        let oom = Error::OutOfMemory { bytes: size };
        let start = align_up(self.arena.next, 16).ok_or(oom)?;
        let end = start.checked_add(size).ok_or(oom)?;
        if self.arena.end != 0 && end <= self.arena.end {
            self.arena.next = end;
            return Ok(start);
        }
        let chunk = align_up(size, PAGE_SIZE).ok_or(oom)?.max(Arena::CHUNK);
        let base = self.map.allocate_reclaimable(chunk, PAGE_SIZE)?;
        self.mem.zero(base, chunk as usize)?;
        self.arena = Arena {
            next: base + size,
            end: base + chunk,
        };
        Ok(base)
    }

    /// A NUL-terminated copy of `s`; returns its HHDM address.
    pub fn string(&mut self, s: &[u8]) -> Result<u64, Error> {
        let at = self.alloc(s.len() as u64 + 1)?;
        self.mem.bytes_mut(at, s.len())?.copy_from_slice(s);
        Ok(HHDM_OFFSET + at)
    }

    /// Writes a response made of `words` and points the request at it.
    fn respond_words(
        &mut self,
        kernel: &Kernel,
        req: FoundRequest,
        words: &[u64],
    ) -> Result<(), Error> {
        let at = self.alloc(8 * words.len() as u64)?;
        self.mem.write_words(at, words)?;
        kernel.respond(self.mem, req, at)
    }
}

/// The loaded kernel as far as requests go: where its image is and what the scan found.
pub struct Kernel {
    /// Physical address of the image (`virtual_base` maps here).
    pub image_phys: u64,
    /// The requests and base revision tag found in it.
    pub scan: Scan,
}

impl Kernel {
    /// The request with `id` if the kernel has one that fits in `size` bytes.
    pub fn find(&self, id: [u64; 2], size: u64) -> Option<FoundRequest> {
        self.scan.find(id, size)
    }

    /// Reads the 64-bit field at byte `offset` of request `req`.
    pub fn field(&self, mem: &impl PhysMem, req: FoundRequest, offset: u64) -> Result<u64, Error> {
        mem.read_u64(self.image_phys + req.offset + offset)
    }

    /// Clears the response of request `id`, if the kernel has one: it reads as unanswered.
    pub fn unanswer(&self, mem: &mut impl PhysMem, id: [u64; 2]) -> Result<(), Error> {
        match self.find(id, protocol::REQUEST_SIZE) {
            Some(req) => requests::set_response(mem, self.image_phys, req, 0),
            None => Ok(()),
        }
    }

    /// Points `req` at the response at physical address `response_phys`.
    pub fn respond(
        &self,
        mem: &mut impl PhysMem,
        req: FoundRequest,
        response_phys: u64,
    ) -> Result<(), Error> {
        requests::set_response(mem, self.image_phys, req, HHDM_OFFSET + response_phys)
    }
}

/// What the fixed responses report.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The base revision the kernel is loaded with.
    pub revision: u64,
    /// Physical address of the kernel image.
    pub kernel_phys: u64,
    /// Virtual address of the kernel image.
    pub kernel_virt: u64,
    /// The kernel command line.
    pub cmdline: &'a [u8],
    /// Physical address of the ACPI RSDP, if found; without one the RSDP request stays
    /// unanswered, as under Limine.
    pub rsdp: Option<u64>,
}

/// Answers every request that does not depend on the CPUs or the final memory map. Returns
/// the stack size for the BSP and every AP.
pub fn answer_fixed<M: PhysMem>(
    r: &mut Responder<'_, M>,
    k: &Kernel,
    facts: &Facts<'_>,
) -> Result<u64, Error> {
    let base = protocol::REQUEST_SIZE;
    if let Some(req) = k.find(id::BOOTLOADER_INFO, base) {
        let (name, version) = (r.string(BOOTLOADER_NAME)?, r.string(BOOTLOADER_VERSION)?);
        r.respond_words(k, req, &[0, name, version])?;
    }
    if let Some(req) = k.find(id::FIRMWARE_TYPE, base) {
        r.respond_words(k, req, &[0, protocol::FIRMWARE_X86_BIOS])?;
    }
    if let Some(req) = k.find(id::HHDM, base) {
        r.respond_words(k, req, &[0, HHDM_OFFSET])?;
    }
    if let Some(req) = k.find(id::EXECUTABLE_ADDRESS, base) {
        r.respond_words(k, req, &[0, facts.kernel_phys, facts.kernel_virt])?;
    }
    if let Some(req) = k.find(id::EXECUTABLE_CMDLINE, base) {
        let cmdline = r.string(facts.cmdline)?;
        r.respond_words(k, req, &[0, cmdline])?;
    }
    if let (Some(req), Some(rsdp)) = (k.find(id::RSDP, base), facts.rsdp) {
        let address = if facts.revision == 3 {
            rsdp
        } else {
            HHDM_OFFSET + rsdp
        };
        r.respond_words(k, req, &[0, address])?;
    }
    answer_paging_mode(r, k)?;
    answer_stack_size(r, k)
}

/// Paging mode: always 4-level; a kernel whose minimum mode is above that cannot be booted.
fn answer_paging_mode<M: PhysMem>(r: &mut Responder<'_, M>, k: &Kernel) -> Result<(), Error> {
    let Some(req) = k.find(id::PAGING_MODE, protocol::REQUEST_FIELDS + 8) else {
        return Ok(());
    };
    let has_min_mode = k.field(r.mem, req, protocol::REQUEST_REVISION)? >= 1
        && req.available >= protocol::REQUEST_FIELDS + 24;
    if has_min_mode
        && k.field(r.mem, req, protocol::REQUEST_FIELDS + 16)? > protocol::PAGING_MODE_4LEVEL
    {
        return Err(Error::UnsupportedPagingMode);
    }
    r.respond_words(k, req, &[0, protocol::PAGING_MODE_4LEVEL])
}

/// Stack size: the larger of the request and 64 KiB, rounded up to 16 bytes.
fn answer_stack_size<M: PhysMem>(r: &mut Responder<'_, M>, k: &Kernel) -> Result<u64, Error> {
    let Some(req) = k.find(id::STACK_SIZE, protocol::REQUEST_FIELDS + 8) else {
        return Ok(DEFAULT_STACK_SIZE);
    };
    let requested = k.field(r.mem, req, protocol::REQUEST_FIELDS)?;
    r.respond_words(k, req, &[0])?;
    align_up(requested.max(DEFAULT_STACK_SIZE), 16).ok_or(Error::OutOfMemory { bytes: requested })
}

/// A CPU for the MP response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MpCpu {
    /// ACPI processor UID (`processor_id`).
    pub uid: u32,
    /// Local APIC ID.
    pub lapic_id: u32,
}

/// The kernel's MP request and its flags, if it has one.
pub fn mp_request(mem: &impl PhysMem, k: &Kernel) -> Result<Option<(FoundRequest, u64)>, Error> {
    match k.find(id::MP, protocol::REQUEST_FIELDS + 8) {
        Some(req) => Ok(Some((req, k.field(mem, req, protocol::REQUEST_FIELDS)?))),
        None => Ok(None),
    }
}

/// What the MP answer looks like on the machine.
#[derive(Clone, Copy, Debug)]
pub struct MpSetup<'c> {
    /// The CPUs, in MADT order, BSP included.
    pub cpus: &'c [MpCpu],
    /// The BSP's APIC ID.
    pub bsp_lapic_id: u32,
    /// Whether x2APIC is enabled (response flag bit 0).
    pub is_x2apic: bool,
    /// Stack size for every AP.
    pub stack_size: u64,
    /// The `loader.corrupt=mp` test hook: list one CPU more than exists, after the real ones,
    /// with the next free processor UID and APIC ID. Nothing starts it, so it never comes
    /// online.
    pub phantom_cpu: bool,
}

impl MpSetup<'_> {
    /// The CPUs the response lists: the real ones, then the phantom if the hook asks for one.
    fn listed(&self) -> impl Iterator<Item = MpCpu> + '_ {
        let next = |f: fn(&MpCpu) -> u32| self.cpus.iter().map(f).max().map_or(0, |m| m + 1);
        let phantom = MpCpu {
            uid: next(|c| c.uid),
            lapic_id: next(|c| c.lapic_id),
        };
        let phantom = self.phantom_cpu.then_some(phantom);
        self.cpus.iter().copied().chain(phantom)
    }
}

/// Writes the MP response: one `limine_mp_info` per CPU, each AP with its own stack (top
/// stored in the reserved field, as Limine does). Returns the physical address of the info
/// array; info `i` is at `+ 32 * i`.
pub fn answer_mp<M: PhysMem>(
    r: &mut Responder<'_, M>,
    k: &Kernel,
    req: FoundRequest,
    mp: MpSetup<'_>,
) -> Result<u64, Error> {
    let n = mp.listed().count() as u64;
    let infos = r.alloc(mp_info::SIZE * n)?;
    let pointers = r.alloc(8 * n)?;
    for (i, cpu) in mp.listed().enumerate() {
        let info = infos + mp_info::SIZE * i as u64;
        r.mem.write_u32(info + mp_info::PROCESSOR_ID, cpu.uid)?;
        r.mem.write_u32(info + mp_info::LAPIC_ID, cpu.lapic_id)?;
        if cpu.lapic_id != mp.bsp_lapic_id {
            let stack = r.map.allocate_reclaimable(mp.stack_size, PAGE_SIZE)?;
            r.mem.write_u64(
                info + mp_info::STACK_TOP,
                HHDM_OFFSET + stack + mp.stack_size,
            )?;
        }
        r.mem
            .write_u64(pointers + 8 * i as u64, HHDM_OFFSET + info)?;
    }
    let response = r.alloc(mp_response::SIZE)?;
    let flags = if mp.is_x2apic {
        protocol::MP_FLAG_X2APIC as u32
    } else {
        0
    };
    r.mem.write_u32(response + mp_response::FLAGS, flags)?;
    r.mem
        .write_u32(response + mp_response::BSP_LAPIC_ID, mp.bsp_lapic_id)?;
    r.mem.write_words(
        response + mp_response::CPU_COUNT,
        &[n, HHDM_OFFSET + pointers],
    )?;
    k.respond(r.mem, req, response)?;
    Ok(infos)
}

/// The requests the `loader.skip=` test hook can leave unanswered, by the hook's name.
const SKIPPABLE: [(&[u8], [u64; 2]); 8] = [
    (b"hhdm", id::HHDM),
    (b"memmap", id::MEMORY_MAP),
    (b"mp", id::MP),
    (b"rsdp", id::RSDP),
    (b"bootloader-info", id::BOOTLOADER_INFO),
    (b"executable-address", id::EXECUTABLE_ADDRESS),
    (b"executable-cmdline", id::EXECUTABLE_CMDLINE),
    (b"stack-size", id::STACK_SIZE),
];

/// The request a `loader.skip=<name>` word on the command line names, if any (module docs).
pub fn skip_hook(cmdline: &[u8]) -> Result<Option<[u64; 2]>, Error> {
    let mut skipped = None;
    for name in crate::pvh::word_values(cmdline, b"loader.skip") {
        let (_, id) = SKIPPABLE
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or(Error::UnknownSkipHook)?;
        skipped = Some(*id);
    }
    Ok(skipped)
}

/// What the `loader.corrupt=` test hook breaks (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Corruption {
    /// `memmap`: entry 0 of the memory map overlaps entry 1.
    pub memmap: bool,
    /// `mp`: the MP response lists a CPU that does not exist.
    pub mp: bool,
    /// `srat-overlap`, `srat-cpu`, `srat-memless`: the SRAT is rewritten
    /// ([`crate::acpi::srat`]); the last such word wins.
    pub srat: Option<srat::Corruption>,
}

/// The `loader.corrupt=<what>` words of the command line (module docs).
pub fn corrupt_hook(cmdline: &[u8]) -> Result<Corruption, Error> {
    let mut corrupt = Corruption::default();
    for what in crate::pvh::word_values(cmdline, b"loader.corrupt") {
        match what {
            b"memmap" => corrupt.memmap = true,
            b"mp" => corrupt.mp = true,
            _ => {
                let srat = srat::Corruption::from_name(what);
                corrupt.srat = Some(srat.ok_or(Error::UnknownCorruptHook)?);
            }
        }
    }
    Ok(corrupt)
}

/// Writes the memory map response. Call it last: it reports the map as it is now. With
/// `overlap` (the test hook), entry 0 reaches one page into entry 1.
pub fn answer_memmap<M: PhysMem>(
    r: &mut Responder<'_, M>,
    k: &Kernel,
    overlap: bool,
) -> Result<(), Error> {
    let Some(req) = k.find(id::MEMORY_MAP, protocol::REQUEST_SIZE) else {
        return Ok(());
    };
    let cap = MAX_ENTRIES as u64;
    let (response, entries, pointers) = (
        r.alloc(24)?,
        r.alloc(protocol::MEMMAP_ENTRY_SIZE * cap)?,
        r.alloc(8 * cap)?,
    );
    let count = r.map.entries().len();
    for i in 0..count {
        let e = r.map.entries()[i];
        let length = match r.map.entries().get(1) {
            Some(next) if overlap && i == 0 => next.base + PAGE_SIZE - e.base,
            _ => e.length,
        };
        let at = entries + protocol::MEMMAP_ENTRY_SIZE * i as u64;
        r.mem.write_words(at, &[e.base, length, e.kind.0])?;
        r.mem.write_u64(pointers + 8 * i as u64, HHDM_OFFSET + at)?;
    }
    r.mem
        .write_words(response, &[0, count as u64, HHDM_OFFSET + pointers])?;
    k.respond(r.mem, req, response)
}
