//! Support functions of `resi.consensus_median(value double precision, weight double precision,
//! tolerance double precision) → resi.numeric_consensus`.
//!
//! Rows whose value is NULL, NaN or ±Infinity, or whose weight is NULL, NaN or ≤ 0, are
//! ignored; a weight above 1e15 raises 22003. `tolerance` NULL means 0; it must be finite,
//! ≥ 0 and the same on every row of a group, else 22023. The result is the lower weighted
//! median with the lower weighted 25th/75th percentiles; supporters are the voters with
//! |v − m| ≤ tolerance·|m|. No voting rows → NULL.

use super::{per_row_function, state_mut, take, Args};
use crate::composite::composite;
use crate::error::OrRaise;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum};
use resi_core::consensus::MedianState;

const NAME: &str = "resi.consensus_median";

per_row_function!(
    /// `resi.consensus_median_transition(state internal, value double precision, weight double
    /// precision, tolerance double precision) → internal`: count one row (sql/consensus.sql
    /// declares it).
    consensus_median_transition_wrapper,
    pg_finfo_consensus_median_transition_wrapper,
    transition
);

/// SAFETY: PostgreSQL calls this with the aggregate's four arguments; the state is always a
/// MedianState of this aggregate.
#[inline(always)]
unsafe fn transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let claims = args.state::<MedianState>();
        (*claims).add(args.f64(1), args.f64(2), args.f64(3)).or_raise(NAME);
        pg_sys::Datum::from(claims)
    }
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_median_combine(mut first: Internal, mut second: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: both are MedianStates of this aggregate.
    unsafe {
        if let Some(other) = take::<MedianState>(&mut second) {
            state_mut::<MedianState>(&mut first, fcinfo).merge(other).or_raise(NAME);
        }
    }
    first
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_median_serialize(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: a MedianState of this aggregate.
    unsafe { state.get::<MedianState>() }.map(MedianState::serialize)
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_median_deserialize(bytes: Option<&[u8]>, _unused: Internal) -> Internal {
    match bytes {
        Some(bytes) => Internal::new(MedianState::deserialize(bytes).or_raise(NAME)),
        None => Internal::default(),
    }
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_median_final(
    mut state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.numeric_consensus")> {
    // SAFETY: a MedianState of this aggregate. result() sorts the claims in place, which
    // leaves the same multiset: a later transition or final call sees an equivalent state.
    let c = unsafe { state.get_mut::<MedianState>() }?.result().or_raise(NAME)?;
    Some(composite(
        fcinfo,
        "resi.numeric_consensus",
        &[
            c.value.into_datum(),
            c.confidence.into_datum(),
            c.agreement.into_datum(),
            c.supporters.into_datum(),
            c.voters.into_datum(),
            c.low.into_datum(),
            c.high.into_datum(),
        ],
    ))
}
