//! Interrupts-off sections as RAII guards.
//!
//! [`IrqGuard`] is the proof token that interrupts are disabled on the current CPU: per-CPU
//! data and the local APIC are reachable only through functions that take `&IrqGuard`.
//! Guards nest: each restores the state it found, so only the outermost one re-enables.
//! Raw `cli`/`sti` stay private to this crate; outside it, interrupts are turned on once per
//! CPU by [`enable_local`] at the end of bring-up and are otherwise only restored by guards.
//!
//! # Implementation
//! A guard records `RFLAGS.IF` when created and disables interrupts if they were on. It is
//! `!Send` (a raw-pointer marker), so it cannot leave the CPU whose state it describes.

use core::marker::PhantomData;
use x86_64::instructions::interrupts;

/// Proof that interrupts are off on this CPU for as long as the guard lives.
#[must_use = "interrupts are restored as soon as the guard is dropped"]
pub struct IrqGuard {
    was_enabled: bool,
    _not_send: PhantomData<*mut ()>,
}

impl IrqGuard {
    /// Disables interrupts on this CPU (if they were on) until the guard is dropped.
    #[inline]
    pub fn new() -> Self {
        let was_enabled = interrupts::are_enabled();
        if was_enabled {
            interrupts::disable();
        }
        IrqGuard {
            was_enabled,
            _not_send: PhantomData,
        }
    }

    /// Atomically re-enables interrupts and halts until the next one (`sti; hlt`), so a
    /// wake-up interrupt that arrives after the caller's last check cannot be missed.
    ///
    /// Panics if this guard is nested inside another one: enabling interrupts would break
    /// the outer guard's proof.
    pub fn enable_and_wait(self) {
        assert!(
            self.was_enabled,
            "enable_and_wait inside another interrupts-off section"
        );
        core::mem::forget(self);
        interrupts::enable_and_hlt();
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    #[inline]
    fn drop(&mut self) {
        if self.was_enabled {
            interrupts::enable();
        }
    }
}

/// Whether interrupts are enabled on this CPU.
#[inline]
pub fn are_enabled() -> bool {
    interrupts::are_enabled()
}

/// Enables interrupts on this CPU: called once per CPU when its IDT, local APIC and per-CPU
/// area are ready.
///
/// # Safety
/// No [`IrqGuard`] may be alive on this CPU (enabling would falsify its proof), and the CPU's
/// IDT and local APIC must be set up so that every interrupt that can arrive is handled.
pub unsafe fn enable_local() {
    interrupts::enable();
}

/// Disables interrupts for good on this CPU: for paths that never return.
pub(crate) fn disable_forever() {
    interrupts::disable();
}
