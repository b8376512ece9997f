//! Symmetric multiprocessing: per-CPU areas, CPU bring-up bookkeeping, the online mask,
//! barriers and cross-CPU calls.
//!
//! - [`area`]: one [`CpuArea`] per CPU, allocated at boot for however many CPUs the
//!   bootloader reports, reached through the GS base; [`init_bsp`] creates them.
//! - [`pin`]: [`PinnedCpu`], the guard that pins the current CPU (interrupts off) and is the
//!   only way to learn the current CPU id or reach its data.
//! - [`percpu`]: [`PerCpu<T>`], a per-CPU variable for any `T` (the kernel keeps the frame
//!   allocator's per-CPU caches in one), reached with a [`PinnedCpu`].
//! - [`bringup`]: what an AP does to enter its area, the online mask, and the BSP's wait for
//!   every AP with a timeout that names the missing ones.
//! - [`barrier`]: a reusable barrier over the online CPUs.
//! - [`call`]: [`run_on`] and [`run_on_all`], running a closure on other CPUs through IPIs
//!   and waiting for completion.
//!
//! `smp` knows the hardware only through `arch`, and the bootloader not at all: the kernel
//! turns the Limine MP response into a list of local APIC ids and stack tops.
//!
//! # Implementation
//! CPU index 0 is always the BSP; APs are numbered in the order the kernel lists them.
//! `unsafe` lives in two places: installing the GS base (`area`) and handing a closure that
//! lives on the caller's stack to another CPU (`call`).
#![no_std]

extern crate alloc;

pub mod area;
pub mod barrier;
pub mod bringup;
pub mod call;
pub mod cpuset;
pub mod percpu;
pub mod pin;

pub use area::{CpuArea, CpuDesc, cpu_count, init_bsp};
pub use barrier::Barrier;
pub use call::{run_on, run_on_all};
pub use cpuset::CpuSet;
pub use percpu::PerCpu;
pub use pin::{PinnedCpu, pin};
