//! CPU exceptions in the loader: vector names, the IDT gate encoding, the one-line report, and
//! the `loader.fault=` test hook.
//!
//! The BSP's gates enter the handler through the identity map, its double fault on an IST
//! stack (see [`crate::descriptor`]); the APs' gates enter it through the HHDM alias, which
//! both the loader's and the kernel's page tables map, on the AP's own stack.
//!
//! The binary installs a 32-gate IDT on the BSP as soon as it runs in long mode; every gate
//! enters a stub that ends in [`Report`] printed as the loader's error line (exit status 37),
//! where without an IDT the machine would triple-fault silently. The decisions live here so
//! they are host tested: which vectors get a CPU-pushed error code ([`ERROR_CODE_VECTORS`],
//! the assembly stubs read the mask), what the gates look like ([`Gate`]), what the line says
//! ([`Report`]), and which deliberate fault the command line asks for ([`fault_hook`]).
//!
//! Vector numbers, names and error codes follow the Intel SDM Vol. 3A, Table 6-1 ("Protected-
//! Mode Exceptions and Interrupts"), plus AMD's 28-30 (APM Vol. 2, 8.2).

use crate::Error;
use crate::phys::PAGE_SIZE;
use core::fmt;

/// Number of exception vectors the loader's IDT covers (0-31, the architecturally defined ones).
pub const VECTORS: usize = 32;

/// Bit `v` is set when the CPU pushes an error code for exception `v`: #DF (8), #TS (10),
/// #NP (11), #SS (12), #GP (13), #PF (14), #AC (17), #CP (21), #VC (29), #SX (30). The entry
/// stubs push a 0 for every other vector, so the frame layout never varies.
pub const ERROR_CODE_VECTORS: u32 = mask(&[8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

/// The set of `vectors` as a bit mask.
const fn mask(vectors: &[u8]) -> u32 {
    let (mut bits, mut i) = (0, 0);
    while i < vectors.len() {
        bits |= 1 << vectors[i];
        i += 1;
    }
    bits
}

/// Vector of the page fault (#PF).
pub const PAGE_FAULT: u8 = 14;
/// Vector of the invalid opcode exception (#UD).
pub const INVALID_OPCODE: u8 = 6;
/// Vector of the double fault (#DF).
pub const DOUBLE_FAULT: u64 = 8;
/// The interrupt stack (IST index in the TSS) the BSP's double fault gate switches to.
pub const DOUBLE_FAULT_IST: u8 = 1;

/// The name of every exception vector, as the report line prints it.
const NAMES: [&str; VECTORS] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point exception",
    "virtualization exception",
    "control protection exception",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection exception",
    "VMM communication exception",
    "security exception",
    "reserved",
];

/// The name of exception `vector`, or `"unknown vector"` past 31.
pub fn name(vector: u64) -> &'static str {
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("unknown vector")
}

/// Whether the CPU pushes an error code for `vector`.
pub fn has_error_code(vector: u8) -> bool {
    usize::from(vector) < VECTORS && ERROR_CODE_VECTORS & (1 << vector) != 0
}

/// A 64-bit IDT gate descriptor (SDM Vol. 3A 6.14.1, Figure 6-8), as the two little-endian
/// quadwords the CPU reads. `#[repr(transparent)]` over `[u64; 2]`: the binary's IDT is an
/// array of these read by the CPU.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate([u64; 2]);

/// Type/attributes byte: present, DPL 0, type 0xE (64-bit interrupt gate, IF cleared on entry).
const INTERRUPT_GATE_PRESENT: u64 = 0x8e;

impl Gate {
    /// A not-present gate: the CPU raises #GP (then #DF) through it.
    pub const MISSING: Gate = Gate([0; 2]);

    /// This gate switching to interrupt stack `ist` (1-7; 0 keeps the current stack) on entry.
    pub const fn with_ist(self, ist: u8) -> Gate {
        Gate([self.0[0] | ((ist & 7) as u64) << 32, self.0[1]])
    }

    /// A present DPL 0 interrupt gate to `handler` through code segment `selector`, no IST.
    pub const fn interrupt(handler: u64, selector: u16) -> Gate {
        let low = (handler & 0xffff)
            | (selector as u64) << 16
            | INTERRUPT_GATE_PRESENT << 40
            | ((handler >> 16) & 0xffff) << 48;
        Gate([low, handler >> 32])
    }

    /// The descriptor's 16 bytes in memory order.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.0[0].to_le_bytes());
        bytes[8..].copy_from_slice(&self.0[1].to_le_bytes());
        bytes
    }
}

/// What the loader reports about an exception, one line (printed after `loader: error: `):
/// `[AP with APIC ID <id>: ][stack overflow into the guard page at <hex>: ]CPU exception
/// <vector> (<name>) error=<hex> rip=<hex> cr2=<hex>[ rsp=<hex>]`. The first part names an AP
/// (a line without it comes from the BSP); the second, with the interrupted `rsp` at the end,
/// appears when the fault hit the BSP stack's guard page ([`Report::is_stack_overflow`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The APIC ID of the AP that took the exception; `None` on the BSP.
    pub ap: Option<u32>,
    /// The vector (0-31).
    pub vector: u64,
    /// The CPU's error code, 0 where the CPU pushes none.
    pub error_code: u64,
    /// The saved instruction pointer: the faulting instruction for faults, the next one for
    /// traps.
    pub rip: u64,
    /// CR2 when the handler ran: the faulting linear address for a page fault, stale otherwise.
    pub cr2: u64,
    /// The saved stack pointer: where the stack was when the exception struck.
    pub rsp: u64,
    /// The page below the BSP's stack that is left unmapped, so an overflow faults.
    pub stack_guard: u64,
}

impl Report {
    /// Whether this is the BSP's stack running into its guard page: a page fault (or the double
    /// fault it turns into, when its frame cannot be pushed) at an address in the guard page.
    pub fn is_stack_overflow(&self) -> bool {
        let in_guard = (self.stack_guard..self.stack_guard + PAGE_SIZE).contains(&self.cr2);
        let is_fault = self.vector == u64::from(PAGE_FAULT) || self.vector == DOUBLE_FAULT;
        self.ap.is_none() && self.stack_guard != 0 && in_guard && is_fault
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = self.ap {
            write!(f, "AP with APIC ID {id}: ")?;
        }
        let overflow = self.is_stack_overflow();
        if overflow {
            let guard = self.stack_guard;
            write!(f, "stack overflow into the guard page at {guard:#x}: ")?;
        }
        write!(
            f,
            "CPU exception {} ({}) error={:#x} rip={:#x} cr2={:#x}",
            self.vector,
            name(self.vector),
            self.error_code,
            self.rip,
            self.cr2
        )?;
        if overflow {
            write!(f, " rsp={:#x}", self.rsp)?;
        }
        Ok(())
    }
}

/// The deliberate fault a `loader.fault=<kind>` command-line word asks for (a test hook).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `loader.fault=page`: read the unmapped [`FAULT_ADDRESS`], a page fault with error code 0
    /// (not present, read, supervisor).
    Page,
    /// `loader.fault=ud`: execute `ud2`, an invalid opcode (a vector without an error code).
    InvalidOpcode,
    /// `loader.fault=stack`: recurse on the BSP until the stack runs into its guard page.
    StackOverflow,
    /// `loader.fault=ap-page`: every AP reads [`FAULT_ADDRESS`] on the kernel's page tables,
    /// just before it would park; the first AP started reports it.
    ApPage,
}

/// The address `loader.fault=page` reads: canonical, in the lower half, above the loader's
/// 4 GiB identity map (PML4 entry 0, PDPT entry 7, not present) and below the kernel's half.
pub const FAULT_ADDRESS: u64 = 0x1_dead_b000;
const _: () = assert!(
    FAULT_ADDRESS >= crate::phys::FOUR_GIB && FAULT_ADDRESS >> 39 == 0,
    "the fault address must be under PML4 entry 0 but above the identity map"
);

/// The command-line key of the test hook (`loader.fault=<kind>`).
const FAULT_KEY: &[u8] = b"loader.fault";

/// The fault the command line asks for, if any: the last `loader.fault=<kind>` word (words
/// are separated by ASCII whitespace), `kind` being `page`, `ud`, `stack` or `ap-page`.
pub fn fault_hook(cmdline: &[u8]) -> Result<Option<Fault>, Error> {
    let mut hook = None;
    for kind in crate::pvh::word_values(cmdline, FAULT_KEY) {
        hook = Some(match kind {
            b"page" => Fault::Page,
            b"ud" => Fault::InvalidOpcode,
            b"stack" => Fault::StackOverflow,
            b"ap-page" => Fault::ApPage,
            _ => return Err(Error::UnknownFaultHook),
        });
    }
    Ok(hook)
}

#[cfg(test)]
mod tests;
