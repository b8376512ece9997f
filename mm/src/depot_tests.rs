//! Tests of the depot: exchanges, the cap, and magazine resizing.

use super::*;
use crate::frame::Frame;
use crate::magazine::MAGAZINE_SIZE;

const M: u64 = MAGAZINE_SIZE as u64;

fn full_magazine(first: u64) -> Magazine {
    let mut m = Magazine::with_cap(MAGAZINE_SIZE);
    for n in 0..MAGAZINE_SIZE as u64 {
        m.push(Frame::from_number(first + n)).unwrap();
    }
    m
}

#[test]
fn put_then_get_moves_a_magazine() {
    let clock = Clock::new();
    let depot = Depot::new();
    let mut m = full_magazine(100);
    assert!(depot.put(&clock, &mut m));
    assert!(m.is_empty());
    assert_eq!(depot.frames(), MAGAZINE_SIZE as u64);
    let mut out = Magazine::new();
    assert!(depot.get(&clock, &mut out));
    assert_eq!(out.frames(), full_magazine(100).frames());
    assert_eq!(depot.frames(), 0);
    assert!(!depot.get(&clock, &mut Magazine::new()));
    assert_eq!(depot.lock_stats().acquisitions, 3);
}

#[test]
fn cap_bounds_the_depot() {
    let clock = Clock::new();
    let depot = Depot::new();
    assert_eq!(
        depot.set_cap(&clock, 2 * MAGAZINE_SIZE + 1),
        2 * MAGAZINE_SIZE
    );
    assert!(depot.put(&clock, &mut full_magazine(0)));
    assert!(depot.put(&clock, &mut full_magazine(100)));
    let mut third = full_magazine(200);
    assert!(!depot.put(&clock, &mut third));
    assert!(third.is_full(), "a refused magazine stays with its owner");
    assert_eq!(depot.set_cap(&clock, MAGAZINE_SIZE), MAGAZINE_SIZE);
    let mut spilled = 0;
    assert_eq!(
        depot.spill_one(&clock, true, |m| spilled += m.len()),
        Some(M)
    );
    assert_eq!(
        depot.spill_one(&clock, true, |_| unreachable!()),
        None,
        "at the cap"
    );
    assert_eq!(spilled, MAGAZINE_SIZE);
    assert_eq!(depot.frames(), M);
    assert_eq!(
        depot.set_cap(&clock, usize::MAX),
        DEPOT_SLOTS * MAGAZINE_SIZE
    );
}

#[test]
fn spill_one_empties_the_depot() {
    let clock = Clock::new();
    let depot = Depot::new();
    depot.put(&clock, &mut full_magazine(0));
    let mut seen = None;
    assert_eq!(depot.spill_one(&clock, false, |m| seen = m.pop()), Some(M));
    assert_eq!(seen, Some(Frame::from_number(MAGAZINE_SIZE as u64 - 1)));
    assert_eq!(depot.spill_one(&clock, false, |_| unreachable!()), None);
    depot.reset_lock_stats();
    assert_eq!(depot.lock_stats(), LockStats::default());
}

static TICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// A clock that moves one cycle per reading, and [`idle`] moves on a lot.
fn tick() -> u64 {
    TICKS.fetch_add(1, Relaxed)
}

/// Time passing away from the depot: with it after every exchange, the depot lock is held a
/// tiny share of the window, so only contention counts.
fn idle() {
    TICKS.fetch_add(1000 * GROW_BUSY_SHARE, Relaxed);
}

/// An exchange, then a long while away from the depot.
fn idle_get(depot: &Depot, clock: &Clock) {
    depot.get(clock, &mut Magazine::zeroed());
    idle();
}

/// Takes the depot lock on another thread while this one holds it, so that acquisition
/// is contended (the waiter reads the clock only once its first try fails).
fn contended_get(depot: &Depot, clock: &Clock) {
    std::thread::scope(|s| {
        let held = depot.shelf.lock(clock);
        let before = TICKS.load(Relaxed);
        s.spawn(|| depot.get(clock, &mut Magazine::zeroed()));
        while TICKS.load(Relaxed) == before {
            std::thread::yield_now();
        }
        drop(held);
    });
}

#[test]
fn contention_grows_the_magazines_pins_and_shortage_shrink_them() {
    let clock = Clock::new();
    clock.set(tick);
    let depot = Depot::new();
    // A window with one contended acquisition too few keeps the size.
    for _ in 0..GROW_CONTENDED - 1 {
        contended_get(&depot, &clock);
        idle();
    }
    let taken = depot.lock_stats().acquisitions;
    for _ in taken..u64::from(GROW_WINDOW) {
        idle_get(&depot, &clock);
    }
    assert_eq!(depot.size(), MAGAZINE_SIZE);
    // A window with enough doubles it.
    for _ in 0..GROW_CONTENDED {
        contended_get(&depot, &clock);
        idle();
    }
    for _ in GROW_CONTENDED..GROW_WINDOW {
        idle_get(&depot, &clock);
    }
    assert_eq!(depot.size(), 2 * MAGAZINE_SIZE);
    assert_eq!(depot.resizes(), (1, 0));
    // Shortage halves it, down to the minimum, and a pin stops that.
    assert_eq!(depot.shrink(&clock), Resize::To(MAGAZINE_SIZE));
    while depot.shrink(&clock) != Resize::Kept {}
    assert_eq!(depot.size(), MIN_MAGAZINE_SIZE);
    assert_eq!(depot.pin(&clock, Some(128)), 128);
    assert_eq!(depot.shrink(&clock), Resize::Kept);
    assert!(depot.is_pinned());
    assert_eq!(depot.pin(&clock, None), 128);
    assert!(!depot.is_pinned());
}

#[test]
fn a_shrink_drains_magazines_bigger_than_the_new_size() {
    let clock = Clock::new();
    let depot = Depot::new();
    depot.put(&clock, &mut full_magazine(0));
    let mut small = Magazine::with_cap(4);
    small.push(Frame::from_number(500)).unwrap();
    depot.put(&clock, &mut small);
    depot.pin(&clock, Some(MIN_MAGAZINE_SIZE));
    let mut spilled = 0;
    while let Some(n) = depot.spill_oversize(&clock, |m| spilled += m.len()) {
        assert_eq!(n, M);
    }
    assert_eq!(spilled, MAGAZINE_SIZE, "only the oversize magazine");
    assert_eq!(depot.frames(), 1, "the small one stays");
}

#[test]
fn the_cap_bounds_frames_whatever_the_size() {
    let clock = Clock::new();
    let depot = Depot::new();
    assert_eq!(depot.set_cap(&clock, 3 * MAGAZINE_SIZE), 3 * MAGAZINE_SIZE);
    depot.pin(&clock, Some(2 * MAGAZINE_SIZE));
    assert!(depot.put(&clock, &mut full_magazine(0)));
    assert!(depot.put(&clock, &mut full_magazine(100)));
    assert!(depot.put(&clock, &mut full_magazine(200)));
    assert!(
        !depot.put(&clock, &mut full_magazine(300)),
        "cap in frames holds"
    );
    assert_eq!(depot.frames(), 3 * M);
}

static FAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
fn fast_tick() -> u64 {
    FAST.fetch_add(1, Relaxed)
}

#[test]
fn a_busy_window_grows_the_magazines_and_no_clock_never_does() {
    let clock = Clock::new();
    let depot = Depot::new();
    for _ in 0..4 * GROW_WINDOW {
        depot.get(&clock, &mut Magazine::zeroed());
    }
    assert_eq!(
        depot.size(),
        MAGAZINE_SIZE,
        "without a clock, rate is unknown"
    );
    clock.set(fast_tick);
    for _ in 0..GROW_WINDOW {
        depot.get(&clock, &mut Magazine::zeroed());
    }
    assert_eq!(depot.size(), 2 * MAGAZINE_SIZE);
    for _ in 0..8 * GROW_WINDOW {
        depot.get(&clock, &mut Magazine::zeroed());
    }
    assert_eq!(
        depot.size(),
        MAX_MAGAZINE_SIZE,
        "grows up to the maximum only"
    );
}
