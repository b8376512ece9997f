//! Physical memory for the kernel: the frame allocator, the CPU guard it needs, page-table
//! frames, kernel stacks and the heap.
//!
//! - [`FRAMES`]: the `mm` frame allocator, fed every USABLE memory-map entry by [`init`].
//!   Bootloader-reclaimable memory joins it later, through [`release_bootloader_memory`], at
//!   the reclaim point (once every CPU runs on the kernel's stacks and tables).
//! - [`KernelCpu`]: the kernel's CPU-pinning, interrupts-off guard, the proof `mm` needs.
//! - [`PageTableFrames`]: an `x86_64` frame allocator backed by [`FRAMES`], for `arch`'s
//!   page-table edits (MMIO, stack mappings).
//! - [`CPU_CACHES`]: the allocator's per-CPU magazine caches, one per CPU in an
//!   [`smp::PerCpu`], attached by [`attach_cpu_caches`] once the per-CPU areas exist.
//! - [`heap`]: the global allocator.
//! - [`switch_to_kernel_page_tables`]: replaces the bootloader's page tables with the
//!   kernel's own (image with W^X permissions, HHDM of RAM, stack and MMIO windows).

pub mod heap;
mod image;

use alloc::vec::Vec;

use arch::paging::ImageLocation;
use limine::memory_map::{Entry, EntryType};
use mm::{AddReport, CpuCache, CpuGuard, FrameAllocator, PhysRange};
use x86_64::PhysAddr;

use crate::boot::BootInfo;
use crate::cmdline::Cmdline;
use alloc::format;
use alloc::string::String;
use x86_64::structures::paging::{FrameAllocator as PageFrameAllocator, PhysFrame, Size4KiB};

/// The frame allocator of the whole machine.
pub static FRAMES: FrameAllocator = FrameAllocator::new();

/// Every CPU's frame cache (magazines), reached only through a pinned CPU.
pub static CPU_CACHES: smp::PerCpu<CpuCache> = smp::PerCpu::new();

/// Size of kernel stacks (the BSP's and every AP's), mapped below a guard page.
pub const KERNEL_STACK_BYTES: u64 = 128 * 1024;

/// The current CPU, pinned with interrupts off: the guard `mm` requires.
pub struct KernelCpu(smp::PinnedCpu);

/// Pins the current CPU for frame allocation.
pub fn pin() -> KernelCpu {
    KernelCpu(smp::pin())
}

// SAFETY: a `PinnedCpu` keeps interrupts off on the current CPU for its whole life and is
// `!Send`, so while it exists nothing else runs as `cpu_id()`: no other CPU (each has its
// own index), and no interrupt handler on this one.
unsafe impl CpuGuard for KernelCpu {
    fn cpu(&self) -> usize {
        self.0.cpu_id()
    }
}

/// Feeds every USABLE memory-map entry to [`FRAMES`] (in chunks: no heap yet).
pub fn init(entries: &[&Entry]) -> AddReport {
    FRAMES.set_clock(arch::tsc::now);
    const CHUNK: usize = 64;
    let mut total = AddReport::default();
    let mut usable = entries.iter().filter(|e| e.entry_type == EntryType::USABLE);
    loop {
        let mut chunk = [PhysRange::new(0, 0); CHUNK];
        let mut n = 0;
        for (slot, entry) in chunk.iter_mut().zip(usable.by_ref()) {
            *slot = PhysRange::new(entry.base, entry.base + entry.length);
            n += 1;
        }
        if n == 0 {
            return total;
        }
        total.accumulate(&FRAMES.add_ranges(&chunk[..n]));
    }
}

/// Creates a frame cache per CPU and attaches them to [`FRAMES`]: from now on most frames
/// move through per-CPU magazines. Once, on the BSP, after `smp::init_bsp`.
pub fn attach_cpu_caches() -> usize {
    let nodes = &crate::numa::topology().cpu_nodes;
    CPU_CACHES.init(|cpu| CpuCache::on_node(usize::from(nodes[cpu])));
    let caches: Vec<&'static CpuCache> = CPU_CACHES.iter().collect();
    let count = caches.len();
    FRAMES.attach_caches(caches.leak());
    count
}

/// Hands the bootloader-reclaimable ranges to [`FRAMES`]. Once, on the BSP, at the reclaim
/// point (see the crate docs): every CPU is online and nothing of the bootloader's is in use.
pub fn release_bootloader_memory(boot: &BootInfo) -> AddReport {
    // The allocator's management calls need interrupts off (mm's interrupt rules).
    let _cpu = pin();
    FRAMES.add_ranges(&boot.bootloader_reclaimable)
}

/// Applies the `mag=<frames>` command-line key: every depot hands out magazines of that size
/// and stops adapting (for benchmarks); without it the depots size their magazines
/// themselves. Prints the policy in force.
pub fn configure_magazines(cmdline: &Cmdline<'_>) -> Result<(), String> {
    let pinned = match cmdline.get("mag") {
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| format!("mag={text} is not a number of frames"))?,
        ),
        None => None,
    };
    let _cpu = pin();
    let size = FRAMES
        .set_magazine_size(pinned)
        .map_err(|e| format!("mag={}: {e}", e.size))?;
    match pinned {
        Some(_) => arch::println!("frames: magazine size pinned at {size} (mag=)"),
        None => arch::println!("frames: adaptive magazine size, starting at {size}"),
    }
    Ok(())
}

/// Page-table frames from [`FRAMES`], for `arch::paging`.
pub struct PageTableFrames<'g> {
    cpu: &'g KernelCpu,
}

impl<'g> PageTableFrames<'g> {
    /// Frames allocated as `cpu`.
    pub fn new(cpu: &'g KernelCpu) -> Self {
        PageTableFrames { cpu }
    }
}

// SAFETY: each frame comes from `FRAMES`, which hands a frame to one owner only, and is
// never freed while mapped (page tables and stacks live forever).
unsafe impl PageFrameAllocator<Size4KiB> for PageTableFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let frame = FRAMES.alloc(self.cpu).ok()?;
        Some(PhysFrame::containing_address(PhysAddr::new(
            frame.start_address(),
        )))
    }
}

/// Maps a fresh kernel stack of [`KERNEL_STACK_BYTES`]; returns its top. Panics when out of
/// memory or address space (boot cannot continue without it).
pub fn new_kernel_stack() -> u64 {
    let cpu = pin();
    let top = arch::paging::map_kernel_stack(KERNEL_STACK_BYTES, &mut PageTableFrames::new(&cpu))
        .unwrap_or_else(|e| panic!("cannot map a kernel stack: {e:?}"));
    top.as_u64()
}

/// Builds the kernel's own page tables and loads them on the BSP; returns the root's
/// physical address. Once, on the BSP, after every kernel stack is mapped and before the
/// APs start (each AP loads them with `arch::paging::activate_kernel_tables`).
pub fn switch_to_kernel_page_tables(boot: &BootInfo) -> u64 {
    let cpu = pin();
    let image = ImageLocation {
        virt_base: boot.kernel_virt_base,
        phys_base: boot.kernel_phys_base,
    };
    let ram: Vec<(u64, u64)> = boot.hhdm_ranges.iter().map(|r| (r.start, r.end)).collect();
    let root = arch::paging::build_kernel_tables(
        image,
        &image::regions(),
        &ram,
        &mut PageTableFrames::new(&cpu),
    )
    .unwrap_or_else(|e| panic!("cannot build the kernel page tables: {e:?}"));
    // SAFETY: the new tables map the kernel image, the HHDM of all RAM (heap, per-CPU
    // areas, page tables, the bootloader's responses), and share the stack and MMIO windows
    // with the current ones: everything the BSP uses.
    unsafe { arch::paging::activate_kernel_tables() };
    root.start_address().as_u64()
}
