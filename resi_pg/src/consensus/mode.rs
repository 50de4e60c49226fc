//! Support functions of `resi.consensus_mode(value text, weight double precision) → resi.consensus`.
//!
//! Rows whose value is NULL, or whose weight is NULL, NaN or ≤ 0, are ignored; a weight above
//! 1e15 (or +Infinity) raises 22003. The result value has the greatest summed weight; ties go
//! to more supporters, then to the smallest value in byte order. No voting rows → NULL.
//! Weights are summed exactly (fixed point, 2^-52), so serial and parallel plans agree bit for bit.

use super::{per_row_function, state_mut, take, Args};
use crate::composite::composite;
use crate::error::OrRaise;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum};
use resi_core::consensus::ModeState;

const NAME: &str = "resi.consensus_mode";

per_row_function!(
    /// `resi.consensus_mode_transition(state internal, value text, weight double precision)
    /// → internal`: count one row (sql/consensus.sql declares it).
    consensus_mode_transition_wrapper,
    pg_finfo_consensus_mode_transition_wrapper,
    transition
);

/// SAFETY: PostgreSQL calls this with the aggregate's three arguments; the state is always a
/// ModeState of this aggregate, and the value's bytes live for this call.
#[inline(always)]
unsafe fn transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let tallies = args.state::<ModeState>();
        (*tallies).add_bytes(args.text(1), args.f64(2)).or_raise(NAME);
        pg_sys::Datum::from(tallies)
    }
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_mode_combine(mut first: Internal, mut second: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: both are ModeStates of this aggregate.
    unsafe {
        if let Some(other) = take::<ModeState>(&mut second) {
            state_mut::<ModeState>(&mut first, fcinfo).merge(other).or_raise(NAME);
        }
    }
    first
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_mode_serialize(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: a ModeState of this aggregate.
    unsafe { state.get::<ModeState>() }.map(ModeState::serialize)
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_mode_deserialize(bytes: Option<&[u8]>, _unused: Internal) -> Internal {
    match bytes {
        Some(bytes) => Internal::new(ModeState::deserialize(bytes).or_raise(NAME)),
        None => Internal::default(),
    }
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_mode_final(
    state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.consensus")> {
    // SAFETY: a ModeState of this aggregate.
    let c = unsafe { state.get::<ModeState>() }?.winner().or_raise(NAME)?;
    // SAFETY: the bytes are a text value this aggregate was given, copied into a new text.
    let value =
        unsafe { pg_sys::cstring_to_text_with_len(c.value.as_ptr() as *const std::ffi::c_char, c.value.len() as i32) };
    Some(composite(
        fcinfo,
        "resi.consensus",
        &[
            Some(pg_sys::Datum::from(value)),
            c.confidence.into_datum(),
            c.agreement.into_datum(),
            c.supporters.into_datum(),
            c.voters.into_datum(),
            c.support_weight.into_datum(),
            c.total_weight.into_datum(),
        ],
    ))
}
