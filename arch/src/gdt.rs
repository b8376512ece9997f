//! Per-CPU GDT and TSS, with a separate IST stack for each exception that must not run on a
//! possibly broken stack.
//!
//! Every CPU owns a [`CpuTables`]: a GDT with a flat 64-bit kernel code and data segment and
//! a TSS descriptor, and the TSS itself, whose Interrupt Stack Table gives the double fault,
//! the NMI and the machine check each its own stack (SDM Vol. 3A §6.14.5, "Interrupt Stack
//! Table"). A stack overflow therefore ends in a readable double-fault report, and an NMI
//! that hits a CPU in the middle of an exception still has a good stack.
//!
//! # Implementation
//! The layout is fixed (index 1 code, 2 data, 3-4 TSS) so the IDT, built once and shared by
//! every CPU, can name the code selector as a constant. The BSP's tables and IST stacks are
//! statics (usable before the heap exists); the APs' come from the heap.

use alloc::boxed::Box;
use alloc::vec;
use core::cell::UnsafeCell;

use x86_64::PrivilegeLevel;
use x86_64::VirtAddr;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot of the double-fault handler (the `x86_64` crate's 0-based index: hardware IST1).
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// IST slot of the NMI handler (hardware IST2).
pub const NMI_IST_INDEX: u16 = 1;
/// IST slot of the machine-check handler (hardware IST3).
pub const MACHINE_CHECK_IST_INDEX: u16 = 2;
/// Number of IST stacks each CPU owns.
pub const IST_STACK_COUNT: usize = 3;
/// Size of each IST stack: the handlers only format a report, 16 KiB is ample.
pub const IST_STACK_BYTES: usize = 16 * 1024;

/// Kernel code segment selector (GDT index 1, RPL 0).
pub const KERNEL_CODE_SELECTOR: SegmentSelector = SegmentSelector::new(1, PrivilegeLevel::Ring0);
/// Kernel data segment selector (GDT index 2, RPL 0).
pub const KERNEL_DATA_SELECTOR: SegmentSelector = SegmentSelector::new(2, PrivilegeLevel::Ring0);
/// TSS selector (GDT indices 3-4, RPL 0).
pub const TSS_SELECTOR: SegmentSelector = SegmentSelector::new(3, PrivilegeLevel::Ring0);

/// One CPU's GDT and TSS.
pub struct CpuTables {
    pub(crate) gdt: GlobalDescriptorTable,
    tss: &'static TaskStateSegment,
}

impl CpuTables {
    /// Builds the tables around a TSS whose IST entries are already set.
    fn new(tss: &'static TaskStateSegment) -> Self {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        debug_assert_eq!(code, KERNEL_CODE_SELECTOR);
        debug_assert_eq!(data, KERNEL_DATA_SELECTOR);
        debug_assert_eq!(tss_sel, TSS_SELECTOR);
        CpuTables { gdt, tss }
    }

    /// Allocates an AP's tables and IST stacks from the heap; they live forever.
    pub fn allocate() -> &'static CpuTables {
        let stacks: &'static mut [u8] = vec![0u8; IST_STACK_COUNT * IST_STACK_BYTES].leak();
        let base = VirtAddr::from_ptr(stacks.as_ptr());
        let tss = Box::leak(Box::new(tss_with_ists(base)));
        Box::leak(Box::new(CpuTables::new(tss)))
    }

    /// The BSP's tables, built on first use from static storage.
    pub fn bsp() -> &'static CpuTables {
        static BSP_TSS: spin::Once<TaskStateSegment> = spin::Once::new();
        static BSP_TABLES: spin::Once<CpuTables> = spin::Once::new();
        let tss = BSP_TSS.call_once(|| tss_with_ists(VirtAddr::from_ptr(BSP_IST.0.get())));
        BSP_TABLES.call_once(|| CpuTables::new(tss))
    }

    /// The TSS these tables describe.
    pub fn tss(&self) -> &'static TaskStateSegment {
        self.tss
    }
}

/// A TSS whose IST entries point at the tops of the stacks that start at `base`.
fn tss_with_ists(base: VirtAddr) -> TaskStateSegment {
    let mut tss = TaskStateSegment::new();
    for (slot, index) in [
        DOUBLE_FAULT_IST_INDEX,
        NMI_IST_INDEX,
        MACHINE_CHECK_IST_INDEX,
    ]
    .into_iter()
    .enumerate()
    {
        let top = base + ((slot + 1) * IST_STACK_BYTES) as u64;
        // Stacks grow down; keep the 16-byte alignment the ABI expects.
        tss.interrupt_stack_table[index as usize] = top.align_down(16u64);
    }
    tss
}

/// Static storage for the BSP's IST stacks.
#[repr(C, align(16))]
struct BspIstStacks(UnsafeCell<[u8; IST_STACK_COUNT * IST_STACK_BYTES]>);

// SAFETY: the bytes are never accessed through this static: only the BSP's CPU uses them, as
// stacks, through the addresses stored in its TSS.
unsafe impl Sync for BspIstStacks {}

static BSP_IST: BspIstStacks =
    BspIstStacks(UnsafeCell::new([0; IST_STACK_COUNT * IST_STACK_BYTES]));
