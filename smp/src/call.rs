//! Cross-CPU calls: run a closure on other CPUs and wait until it finished there.
//!
//! [`run_on`] runs `f` on one CPU, [`run_on_all`] on every online CPU including the caller
//! (which runs its share directly, concurrently with the others, so `f` may use a
//! [`Barrier`](crate::Barrier)). Both return when every target has finished `f`.
//!
//! A target runs calls in thread context with interrupts as they were: in its idle loop
//! ([`idle_loop`], where APs wait after bring-up) or while it waits in `run_on`/`run_on_all`
//! itself, so two CPUs calling each other cannot deadlock. A target that does not pick a call
//! up within [`PICKUP_TIMEOUT`] is a bug (it is stuck or busy forever): the caller panics and
//! names it. Once picked up, `f` may run as long as it needs.
//!
//! # Implementation
//! The caller posts a [`Call`] to each target's queue (in its [`CpuArea`]) and sends it the
//! [`SMP_CALL`](arch::vectors::SMP_CALL) IPI, whose handler does nothing but wake the CPU from
//! `hlt`. The call points at `f` and at a per-target [`Slot`] on the caller's stack and heap;
//! the caller does not return before every slot says done, and a panic never unwinds
//! (`panic = "abort"`: the fatal path stops all CPUs), so the pointers stay valid for as long
//! as a target can use them.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use arch::irq::IrqGuard;
use arch::lock::IrqSpinLock;
use arch::tsc::Deadline;
use arch::vectors::SMP_CALL;

use crate::area::{CpuArea, area};
use crate::bringup::online;
use crate::pin::pin;

/// How long a target may take to start a posted call.
pub const PICKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Progress of one call on one target.
struct Slot {
    cpu: usize,
    started: AtomicBool,
    done: AtomicBool,
}

/// A posted call: pointers to the closure and to the target's slot.
pub(crate) struct Call {
    func: *const (dyn Fn() + Sync),
    slot: *const Slot,
}

// SAFETY: a `Call` only travels to the target's queue; the closure it points at is `Sync`,
// and the slot holds atomics. Both outlive the call (see the module docs).
unsafe impl Send for Call {}

impl Call {
    /// Runs the call and reports completion; the pointers are not used afterwards.
    fn run(self) {
        // SAFETY: the caller keeps `slot` and `func` alive until `done` is set (module docs).
        let slot = unsafe { &*self.slot };
        slot.started.store(true, Ordering::Release);
        // SAFETY: as above.
        unsafe { (*self.func)() };
        slot.done.store(true, Ordering::Release);
    }
}

/// A CPU's queue of posted calls.
pub(crate) struct CallQueue {
    calls: IrqSpinLock<VecDeque<Call>>,
}

impl CallQueue {
    pub(crate) const fn new() -> Self {
        CallQueue {
            calls: IrqSpinLock::new(VecDeque::new()),
        }
    }

    fn push(&self, call: Call) {
        self.calls.lock().push_back(call);
    }

    fn pop(&self) -> Option<Call> {
        self.calls.lock().pop_front()
    }

    fn is_empty(&self) -> bool {
        self.calls.lock().is_empty()
    }
}

/// Registers the call IPI's handler. BSP, once, before any AP starts.
pub fn init() {
    // The IPI only wakes the target from `hlt`; the call runs in its idle or wait loop.
    arch::idt::set_handler(SMP_CALL, |_| {});
}

/// Wakes CPU `cpu` from `hlt` without posting a call (the call IPI, whose handler does
/// nothing): for code that halts until another CPU has work for it. A CPU without a
/// per-CPU area (not started) is left alone.
pub fn wake(cpu: usize) {
    if let Some(target) = area(cpu) {
        let pin = pin();
        arch::apic::send_ipi(pin.irq_guard(), SMP_CALL, target.lapic_id());
    }
}

/// Runs `f` on CPU `cpu` (directly if it is the current CPU) and waits until it finished.
///
/// Panics if `cpu` is not online or does not pick the call up in time.
pub fn run_on(cpu: usize, f: impl Fn() + Sync) {
    let me = pin().cpu_id();
    if cpu == me {
        f();
        return;
    }
    run_on_cpus(&[cpu], None, &f);
}

/// Runs `f` on every online CPU, the caller included, and waits until all finished.
pub fn run_on_all(f: impl Fn() + Sync) {
    let me = pin().cpu_id();
    let others: Vec<usize> = online().iter().filter(|&c| c != me).collect();
    run_on_cpus(&others, Some(&f), &f);
}

/// Posts `f` to `targets`, runs `local` here if given, and waits for the targets.
fn run_on_cpus(targets: &[usize], local: Option<&(dyn Fn() + Sync)>, f: &(dyn Fn() + Sync)) {
    let slots: Vec<Slot> = targets.iter().map(|&cpu| new_slot(cpu)).collect();
    // SAFETY: only the lifetime is erased; `f` outlives every use because we return only
    // after all targets reported done, and panics never unwind (module docs).
    let func: &'static (dyn Fn() + Sync) =
        unsafe { core::mem::transmute::<&(dyn Fn() + Sync), &'static (dyn Fn() + Sync)>(f) };
    {
        let pin = pin();
        for slot in &slots {
            let target = area(slot.cpu).expect("checked in new_slot");
            target.calls.push(Call {
                func,
                slot: slot as *const Slot,
            });
            arch::apic::send_ipi(pin.irq_guard(), SMP_CALL, target.lapic_id());
        }
    }
    if let Some(local) = local {
        local();
    }
    wait_for(&slots);
}

fn new_slot(cpu: usize) -> Slot {
    assert!(
        area(cpu).is_some() && online().contains(cpu),
        "run_on: cpu {cpu} is not online"
    );
    Slot {
        cpu,
        started: AtomicBool::new(false),
        done: AtomicBool::new(false),
    }
}

/// Waits until every slot is done, serving this CPU's own calls meanwhile.
fn wait_for(slots: &[Slot]) {
    let my_area = pin().area();
    let pickup = Deadline::after(PICKUP_TIMEOUT);
    while !slots.iter().all(|s| s.done.load(Ordering::Acquire)) {
        if let Some(area) = my_area {
            serve_pending(area);
        }
        if pickup.is_past()
            && let Some(stuck) = slots.iter().find(|s| !s.started.load(Ordering::Acquire))
        {
            panic!(
                "run_on: cpu {} did not pick up a call within {PICKUP_TIMEOUT:?}",
                stuck.cpu
            );
        }
        core::hint::spin_loop();
    }
}

/// Runs every call queued for `area`'s CPU. Call on that CPU only.
fn serve_pending(area: &CpuArea) {
    while let Some(call) = area.calls.pop() {
        call.run();
    }
}

/// An AP's life after bring-up: run posted calls, sleep until the next interrupt.
///
/// Needs interrupts enabled on entry (the CPU finished bring-up).
pub fn idle_loop() -> ! {
    let area = pin()
        .area()
        .expect("idle_loop before the per-CPU area exists");
    loop {
        let irq = IrqGuard::new();
        if area.calls.is_empty() {
            // `sti; hlt` atomically: a call posted after the check still wakes us.
            irq.enable_and_wait();
        } else {
            drop(irq);
            serve_pending(area);
        }
    }
}
