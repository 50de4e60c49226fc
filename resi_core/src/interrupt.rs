//! Cooperative cancellation of long loops.
//!
//! A consensus state can hold millions of values in one group (a `GROUP BY` over few keys, a
//! parallel plan's partial states); the loops over them (result, merge, serialise, deserialise)
//! call [`check_every`] once per value. The extension installs PostgreSQL's
//! `CHECK_FOR_INTERRUPTS` as the hook when its library loads, so a statement timeout or a cancel
//! request stops such a loop within [`STRIDE`] values, as an ERROR raised from inside it (the
//! Rust frames unwind; the aggregate's state is dropped with its memory context). Without a
//! hook (the loader, unit tests) a check does nothing. The one stretch without checks is the
//! sort of one group's values in [`crate::consensus::MedianState::result`] (about 80 ms per
//! million values on a 2-core VM).

use std::sync::OnceLock;

/// Values between two checks: a few microseconds of work.
pub const STRIDE: usize = 1 << 12;

static HOOK: OnceLock<fn()> = OnceLock::new();

/// Install the check (once per process; later calls are ignored and return false).
pub fn set_hook(hook: fn()) -> bool {
    HOOK.set(hook).is_ok()
}

/// Run the installed check now (it may not return: PostgreSQL raises the pending error).
#[inline]
pub fn check() {
    if let Some(hook) = HOOK.get() {
        hook()
    }
}

/// [`check`] when `i` is a multiple of [`STRIDE`]: call it with a loop's index.
#[inline]
pub fn check_every(i: usize) {
    if i.is_multiple_of(STRIDE) {
        check()
    }
}
