//! The kernel heap: `Box`, `Vec` and friends on every CPU.
//!
//! One contiguous run of frames from `mm`, taken at boot and reached through the HHDM, is
//! handed to `linked_list_allocator`'s first-fit [`Heap`]. The heap sits behind an
//! [`IrqSpinLock`], so an allocation in an interrupt handler cannot deadlock against the code
//! it interrupted.
//!
//! Size: [`BASE_BYTES`] plus [`PER_CPU_BYTES`] for every CPU, because per-CPU boot data (GDT,
//! TSS, IST stacks, per-CPU areas, call queues) grows with the CPU count.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use arch::lock::IrqSpinLock;
use linked_list_allocator::Heap;
use mm::FRAME_SIZE;

use super::{FRAMES, pin};

/// Heap bytes independent of the CPU count.
pub const BASE_BYTES: u64 = 4 << 20;
/// Heap bytes per CPU: 48 KiB of IST stacks plus tables and per-CPU structures, with room
/// to spare.
pub const PER_CPU_BYTES: u64 = 128 << 10;
/// Alignment of the heap's first frame (2 MiB: keeps the run inside large HHDM pages).
const HEAP_ALIGN_LOG2: u32 = 9;

/// The global allocator.
struct KernelHeap(IrqSpinLock<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqSpinLock::new(Heap::empty()));

// SAFETY: allocation and deallocation go through `linked_list_allocator::Heap`, which
// returns blocks that fit `layout` and never overlap; the lock serializes all access.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(ptr) = NonNull::new(ptr) else { return };
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe { self.0.lock().deallocate(ptr, layout) };
    }
}

/// Heap bytes free right now (fragmentation aside: one allocation of this size may fail).
pub fn free_bytes() -> usize {
    HEAP.0.lock().free()
}

/// Takes the heap's frames from `mm` and hands them to the allocator; returns its size in
/// bytes. Once, on the BSP, after `memory::init` and `arch::paging::init`.
pub fn init(cpu_count: usize) -> u64 {
    let bytes = BASE_BYTES + PER_CPU_BYTES * cpu_count as u64;
    let frames = bytes.div_ceil(FRAME_SIZE) as usize;
    let first = FRAMES
        .alloc_contiguous(&pin(), frames, HEAP_ALIGN_LOG2)
        .unwrap_or_else(|e| panic!("no {bytes} contiguous bytes for the kernel heap: {e:?}"));
    let start = arch::paging::phys_to_virt(first.start_address())
        .expect("the heap's frames are outside the HHDM");
    let mut heap = HEAP.0.lock();
    assert!(heap.size() == 0, "heap::init called twice");
    // SAFETY: the frames were just allocated from `FRAMES` for the heap alone and are never
    // freed; usable RAM is mapped writable in the HHDM, where `start` points.
    unsafe { heap.init(start.as_mut_ptr(), bytes as usize) };
    bytes
}
