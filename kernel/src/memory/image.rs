//! The kernel image's regions and their permissions, from the linker script's symbols, for
//! building the kernel's own page tables.

use arch::paging::ImageRegion;

// Declaring the linker's symbols is the only `unsafe` here; only their addresses are used.
unsafe extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

/// The image's regions: requests (RW), text (RX), rodata (R), data and bss (RW).
pub fn regions() -> [ImageRegion; 4] {
    let kernel_start = (&raw const __kernel_start) as u64;
    let text = (&raw const __text_start) as u64;
    let rodata = (&raw const __rodata_start) as u64;
    let data = (&raw const __data_start) as u64;
    let kernel_end = (&raw const __kernel_end) as u64;
    let region = |virt_start, virt_end, writable, executable| ImageRegion {
        virt_start,
        virt_end,
        writable,
        executable,
    };
    [
        region(kernel_start, text, true, false),
        region(text, rodata, false, true),
        region(rodata, data, false, false),
        region(data, kernel_end, true, false),
    ]
}
