//! The long loops over a consensus state call the interrupt hook often enough, and a hook that
//! raises (PostgreSQL's does, as an ERROR that unwinds) stops them: checked here without
//! PostgreSQL, with a hook that counts calls and panics on demand (per thread, so the tests of
//! this binary do not see each other's calls).

use resi_core::consensus::{ListingState, MedianState, ModeState};
use resi_core::interrupt::{set_hook, STRIDE};
use std::cell::Cell;

thread_local! {
    static CALLS: Cell<usize> = const { Cell::new(0) };
    static RAISE_AT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn hook() {
    let calls = CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if calls >= RAISE_AT.with(Cell::get) {
        panic!("canceling statement due to user request");
    }
}

/// Calls of the hook while `f` runs.
fn calls_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    set_hook(hook);
    CALLS.with(|c| c.set(0));
    let out = f();
    (out, CALLS.with(Cell::get))
}

const N: usize = 200_000;

fn big_median() -> MedianState {
    let mut state = MedianState::default();
    for i in 0..N {
        state.add(Some((i * 7919 % N) as f64), Some(1.0), Some(0.01)).unwrap();
    }
    state
}

fn big_mode() -> ModeState {
    let mut state = ModeState::default();
    for i in 0..N {
        state.add(Some(&format!("value {i}")), Some(1.0)).unwrap();
    }
    state
}

#[test]
fn median_loops_check_once_per_stride() {
    let at_least = N / STRIDE;
    let mut state = big_median();
    let (result, calls) = calls_during(|| state.result().unwrap().unwrap());
    assert_eq!(result.value, (N / 2 - 1) as f64);
    // Weights and support walk every value; the quantile walk stops at the 75th percentile.
    assert!(calls >= 2 * at_least + at_least / 2, "result: {calls} checks for {N} values");
    let (bytes, calls) = calls_during(|| state.serialize().unwrap());
    assert!(calls >= at_least, "serialize: {calls}");
    let (copy, calls) = calls_during(|| MedianState::deserialize(&bytes).unwrap());
    assert!(calls >= at_least, "deserialize: {calls}");
    // Merging runs into runs walks both.
    state.collapse().unwrap();
    let (_, calls) = calls_during(|| state.merge(copy).unwrap());
    assert!(calls >= at_least, "merge: {calls}");
}

#[test]
fn mode_loops_check_once_per_stride() {
    let at_least = N / STRIDE;
    let mut state = big_mode();
    let (_, calls) = calls_during(|| state.result().unwrap().unwrap());
    assert!(calls >= at_least, "result: {calls} checks for {N} values");
    let (bytes, calls) = calls_during(|| state.serialize());
    assert!(calls >= at_least, "serialize: {calls}");
    let (copy, calls) = calls_during(|| ModeState::deserialize(&bytes).unwrap());
    assert!(calls >= at_least, "deserialize: {calls}");
    let (_, calls) = calls_during(|| state.merge(copy).unwrap());
    assert!(calls >= at_least, "merge: {calls}");
}

#[test]
fn a_raising_hook_stops_the_loop_early() {
    let mut state = big_median();
    set_hook(hook);
    CALLS.with(|c| c.set(0));
    RAISE_AT.with(|r| r.set(3));
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.result()));
    RAISE_AT.with(|r| r.set(usize::MAX));
    assert!(stopped.is_err(), "the loop ran to its end");
    assert_eq!(CALLS.with(Cell::get), 3, "stopped at the check that raised");
    // The state is still a state (PostgreSQL drops it with the aggregate's memory context).
    assert_eq!(state.len(), N);
}

#[test]
fn a_listing_state_checks_through_its_fields() {
    // One listing with many claims: its fields' states are mode and median states.
    let mut state = ListingState::default();
    let zpid = "1";
    for i in 0..N {
        let price = 100_000 + (i % 1000) as i64;
        let claim = resi_core::consensus::Claim { zpid: Some(zpid), price: Some(price), ..Default::default() };
        state.add(&claim, Some(1.0)).unwrap();
    }
    let (_, calls) = calls_during(|| state.result().unwrap().unwrap());
    assert!(calls >= N / STRIDE, "result: {calls}");
}
