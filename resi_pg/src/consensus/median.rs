//! Support functions of `resi.consensus_median(value double precision, weight double precision,
//! tolerance double precision) → resi.numeric_consensus`.
//!
//! Rows whose value is NULL, NaN or ±Infinity, or whose weight is NULL, NaN or ≤ 0, are
//! ignored; a weight above 1e15 raises 22003. `tolerance` NULL means 0; it must be finite,
//! ≥ 0 and the same on every row of a group, else 22023. The result is the lower weighted
//! median with the lower weighted 25th/75th percentiles; supporters are the voters with
//! |v − m| ≤ tolerance·|m|. No voting rows → NULL.

use super::{changed, combine_serialized, fmgr_function, null_result, pass_serialized, serialized, Args};
use crate::composite::{form_result, Field};
use crate::error::OrRaise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use resi_core::consensus::MedianState;

const NAME: &str = "resi.consensus_median";

crate::fmgr::fmgr_info_v1!(pg_finfo_consensus_median_transition_wrapper);

/// `resi.consensus_median_transition(state internal, value double precision, weight double
/// precision, tolerance double precision) → internal`: count one row (sql/consensus.sql
/// declares it).
///
/// Most rows only add a claim to a small group's state, or to the rows a large group's keeps
/// as they came until it sums a chunk of them (`MedianState::add_in_place`, which calls
/// nothing that can fail, panic or allocate): they are counted here, outside the guard of
/// `#[pg_guard]`, whose setjmp and bookkeeping were a quarter of a small group's row's
/// instructions. Every other row (a group's first, one that moves the state to the heap or
/// grows it, one that sums a chunk, one that raises an error) goes through the guarded
/// [`guarded_transition`].
///
/// SAFETY: PostgreSQL calls this with the aggregate's four arguments; the state is always a
/// MedianState of this aggregate.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn consensus_median_transition_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        if let Some(state) = args.datum(0) {
            // A change that leaves the state without heap memory: nothing for `changed` to do.
            if (*state.cast_mut_ptr::<MedianState>()).add_in_place(args.f64(1), args.f64(2), args.f64(3)) {
                return state;
            }
        }
        guarded_transition(fcinfo)
    }
}

/// SAFETY: as [`consensus_median_transition_wrapper`]'s.
#[pg_guard]
unsafe extern "C-unwind" fn guarded_transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let (value, weight, tolerance) = (args.f64(1), args.f64(2), args.f64(3));
        args.change_group_state(NAME, |claims: &mut MedianState| claims.add(value, weight, tolerance))
    }
}

fmgr_function!(
    /// `resi.consensus_median_combine(first internal, second internal) → internal`: merge a
    /// worker's serialized partial state into the group's (sql/consensus.sql declares it).
    consensus_median_combine_wrapper,
    pg_finfo_consensus_median_combine_wrapper,
    combine
);

/// SAFETY: PostgreSQL calls this with the group's state (NULL or a MedianState of this aggregate)
/// and the output of consensus_median_deserialize (NULL or a bytea).
unsafe fn combine(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { combine_serialized::<MedianState>(fcinfo, MedianState::merge_serialized, NAME) }
}

fmgr_function!(
    /// `resi.consensus_median_serialize(state internal) → bytea`: a worker's partial state in
    /// its binary form (sql/native/consensus.sql declares it); NULL for no state.
    consensus_median_serialize_wrapper,
    pg_finfo_consensus_median_serialize_wrapper,
    serialize
);

/// SAFETY: PostgreSQL calls this with the aggregate's state (NULL or a MedianState of this
/// aggregate). Collapsing it here, in the worker, into one run per distinct value leaves the
/// same claims, makes the bytes sent as small as the distinct values, and leaves the leader's
/// final step only sorted runs to merge (MedianState::collapse). The runs are written in as
/// few bytes as they need (MedianState::serialize_partial): each worker copies them to sort
/// them by group, and sends them through its queue to the leader.
unsafe fn serialize(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        serialized(fcinfo, |claims: &mut MedianState| {
            claims.collapse().or_raise(NAME);
            claims.serialize_partial().or_raise(NAME)
        })
    }
}

fmgr_function!(
    /// `resi.consensus_median_deserialize(bytes bytea, _unused internal) → internal`: the
    /// serialized state, passed on for the combine function to read (sql/consensus.sql
    /// declares it).
    consensus_median_deserialize_wrapper,
    pg_finfo_consensus_median_deserialize_wrapper,
    pass_serialized
);

fmgr_function!(
    /// `resi.consensus_median_final(state internal) → resi.numeric_consensus`, once per group
    /// (sql/consensus.sql declares it): NULL when no row voted.
    consensus_median_final_wrapper,
    pg_finfo_consensus_median_final_wrapper,
    final_result
);

/// SAFETY: PostgreSQL calls this with the aggregate's state (NULL or a MedianState of this
/// aggregate), from a call expression returning resi.numeric_consensus. result() collapses the
/// claims in place into runs (the same claims, summed per value): a later transition or final
/// call (a window aggregate) sees an equivalent state.
unsafe fn final_result(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let Some(claims) = Args::of(fcinfo).datum(0) else {
            return null_result(fcinfo);
        };
        let result = changed(fcinfo, claims.cast_mut_ptr::<MedianState>(), MedianState::result);
        form_numeric_consensus(fcinfo, result.or_raise(NAME))
    }
}

/// A median's result as the calling final function's row type (`resi.numeric_consensus`), or
/// NULL for `None` (no row voted): what the final functions of `resi.consensus_median` and
/// `resi.distributed_consensus_median` return.
///
/// SAFETY: `fcinfo` is the live call's, of a final function returning resi.numeric_consensus.
pub(super) unsafe fn form_numeric_consensus(
    fcinfo: pg_sys::FunctionCallInfo,
    result: Option<resi_core::consensus::NumericConsensus>,
) -> pg_sys::Datum {
    let Some(c) = result else {
        // SAFETY: the caller's contract.
        return unsafe { null_result(fcinfo) };
    };
    let fields = [
        Field::Float8(c.value),
        Field::Float8(c.confidence),
        Field::Float8(c.agreement),
        Field::Int4(c.supporters),
        Field::Int4(c.voters),
        Field::Float8(c.low),
        Field::Float8(c.high),
    ];
    // SAFETY: the caller's contract.
    unsafe { form_result(fcinfo, &fields) }
}
