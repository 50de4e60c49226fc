//! Support functions of `resi.consensus_mode(value text, weight double precision) → resi.consensus`.
//!
//! Rows whose value is NULL, or whose weight is NULL, NaN or ≤ 0, are ignored; a weight above
//! 1e15 (or +Infinity) raises 22003. The result value has the greatest summed weight; ties go
//! to more supporters, then to the smallest value in byte order. No voting rows → NULL.
//! Weights are summed exactly (fixed point, 2^-52), so serial and parallel plans agree bit for bit.

use super::{combine_serialized, fmgr_function, form_vote, null_result, pass_serialized, serialized, Args};
use pgrx::pg_sys;
use pgrx::prelude::*;
use resi_core::consensus::ModeState;

const NAME: &str = "resi.consensus_mode";

crate::fmgr::fmgr_info_v1!(pg_finfo_consensus_mode_transition_wrapper);

/// `resi.consensus_mode_transition(state internal, value text, weight double precision)
/// → internal`: count one row (sql/consensus.sql declares it).
///
/// Most rows only add a vote to a small group's state, or to a value a large group's state
/// counts already, or are ignored (`ModeState::add_in_place`, which calls nothing that can
/// fail, panic or allocate, over a value read where it lies): they are counted here, outside
/// the guard of `#[pg_guard]`. Every other row (a group's first, one that moves the state to
/// the heap, a large group's new value, one that raises an error, a value to detoast) goes
/// through the guarded [`guarded_transition`].
///
/// SAFETY: PostgreSQL calls this with the aggregate's three arguments; the state is always a
/// ModeState of this aggregate, and the value's bytes live for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn consensus_mode_transition_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        if let (Some(state), Some(value)) = (args.datum(0), args.bytes_in_line(1)) {
            // A change that leaves the state without heap memory: nothing for `changed` to do.
            if (*state.cast_mut_ptr::<ModeState>()).add_in_place(value, args.f64(2)) {
                return state;
            }
        }
        guarded_transition(fcinfo)
    }
}

/// SAFETY: as [`consensus_mode_transition_wrapper`]'s.
#[pg_guard]
unsafe extern "C-unwind" fn guarded_transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let (value, weight) = (args.bytes(1), args.f64(2));
        args.change_group_state(NAME, |tallies: &mut ModeState| tallies.add_bytes(value, weight))
    }
}

fmgr_function!(
    /// `resi.consensus_mode_combine(first internal, second internal) → internal`: merge a
    /// worker's serialized partial state into the group's (sql/consensus.sql declares it).
    consensus_mode_combine_wrapper,
    pg_finfo_consensus_mode_combine_wrapper,
    combine
);

/// SAFETY: PostgreSQL calls this with the group's state (NULL or a ModeState of this aggregate)
/// and the output of consensus_mode_deserialize (NULL or a bytea).
unsafe fn combine(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { combine_serialized::<ModeState>(fcinfo, ModeState::merge_serialized, NAME) }
}

fmgr_function!(
    /// `resi.consensus_mode_serialize(state internal) → bytea`: a worker's partial state in its
    /// binary form (sql/native/consensus.sql declares it); NULL for no state.
    consensus_mode_serialize_wrapper,
    pg_finfo_consensus_mode_serialize_wrapper,
    serialize
);

/// SAFETY: PostgreSQL calls this with the aggregate's state (NULL or a ModeState of this
/// aggregate).
unsafe fn serialize(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { serialized(fcinfo, |tallies: &mut ModeState| tallies.serialize()) }
}

fmgr_function!(
    /// `resi.consensus_mode_deserialize(bytes bytea, _unused internal) → internal`: the
    /// serialized state, passed on for the combine function to read (sql/consensus.sql
    /// declares it).
    consensus_mode_deserialize_wrapper,
    pg_finfo_consensus_mode_deserialize_wrapper,
    pass_serialized
);

fmgr_function!(
    /// `resi.consensus_mode_final(state internal) → resi.consensus`, once per group
    /// (sql/consensus.sql declares it): NULL when no row voted.
    consensus_mode_final_wrapper,
    pg_finfo_consensus_mode_final_wrapper,
    final_result
);

/// SAFETY: PostgreSQL calls this with the aggregate's state (NULL or a ModeState of this
/// aggregate), from a call expression returning resi.consensus.
unsafe fn final_result(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        match Args::of(fcinfo).state_if_any::<ModeState>() {
            Some(tallies) => form_vote(fcinfo, tallies, NAME),
            None => null_result(fcinfo),
        }
    }
}
