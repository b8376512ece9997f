//! A spin lock whose interrupt rule is part of its type.
//!
//! [`IrqSpinLock`] disables interrupts on the locking CPU before it spins and restores them
//! after unlocking, so an interrupt handler on the same CPU can never spin on a lock that the
//! code it interrupted holds. Use it for every lock that an interrupt handler or the panic
//! path might also want (serial console, heap, page tables).
//!
//! # Implementation
//! A `spin::Mutex` plus an [`IrqGuard`] stored in the lock guard. Field order matters: the
//! mutex guard is declared first, so it is dropped (unlocked) before interrupts come back.

use core::ops::{Deref, DerefMut};

use crate::irq::IrqGuard;

/// A spin lock that is only ever held with interrupts off.
pub struct IrqSpinLock<T: ?Sized> {
    inner: spin::Mutex<T>,
}

/// Access to the data of an [`IrqSpinLock`]; interrupts stay off while it lives.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct IrqSpinLockGuard<'a, T: ?Sized> {
    guard: spin::MutexGuard<'a, T>,
    irq: IrqGuard,
}

impl<T> IrqSpinLock<T> {
    /// A new, unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        IrqSpinLock {
            inner: spin::Mutex::new(value),
        }
    }
}

impl<T: ?Sized> IrqSpinLock<T> {
    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let irq = IrqGuard::new();
        let guard = self.inner.lock();
        IrqSpinLockGuard { guard, irq }
    }

    /// Takes the lock if it is free, without spinning.
    pub fn try_lock(&self) -> Option<IrqSpinLockGuard<'_, T>> {
        let irq = IrqGuard::new();
        let guard = self.inner.try_lock()?;
        Some(IrqSpinLockGuard { guard, irq })
    }
}

impl<T: ?Sized> IrqSpinLockGuard<'_, T> {
    /// The interrupts-off proof this lock guard carries.
    pub fn irq_guard(&self) -> &IrqGuard {
        &self.irq
    }
}

impl<T: ?Sized> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
