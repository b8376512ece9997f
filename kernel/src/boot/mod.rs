//! Everything the kernel learns from the bootloader.
//!
//! - `requests`: the Limine request statics.
//! - [`responses`]: checked access to the responses (bootloader-reclaimable memory).
//! - [`info`]: [`BootInfo`], the kernel-owned copy of what the kernel keeps using after the
//!   reclaim point, and the boot summary printed on serial.

pub mod info;
mod requests;
pub mod responses;

pub use info::BootInfo;
