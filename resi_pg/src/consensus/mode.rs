//! Support functions of `resi.consensus_mode(value text, weight double precision) → resi.consensus`.
//!
//! Rows whose value is NULL, or whose weight is NULL, NaN or ≤ 0, are ignored; a weight above
//! 1e15 (or +Infinity) raises 22003. The result value has the greatest summed weight; ties go
//! to more supporters, then to the smallest value in byte order. No voting rows → NULL.
//! Weights are summed exactly (fixed point, 2^-52), so serial and parallel plans agree bit for bit.

use super::{state_mut, take};
use crate::composite::composite;
use crate::error::OrRaise;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum};
use resi_core::consensus::ModeState;

const NAME: &str = "resi.consensus_mode";

#[pg_extern(immutable, parallel_safe)]
fn consensus_mode_transition(
    mut state: Internal,
    value: Option<&str>,
    weight: Option<f64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    // SAFETY: the transition value of consensus_mode is always a ModeState.
    let tallies = unsafe { state_mut::<ModeState>(&mut state, fcinfo) };
    tallies.add(value, weight).or_raise(NAME);
    state
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
    let c = unsafe { state.get::<ModeState>() }?.result().or_raise(NAME)?;
    Some(composite(
        fcinfo,
        "resi.consensus",
        &[
            c.value.into_datum(),
            c.confidence.into_datum(),
            c.agreement.into_datum(),
            c.supporters.into_datum(),
            c.voters.into_datum(),
            c.support_weight.into_datum(),
            c.total_weight.into_datum(),
        ],
    ))
}
