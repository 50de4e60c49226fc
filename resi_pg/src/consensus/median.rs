//! Support functions of `resi.consensus_median(value double precision, weight double precision,
//! tolerance double precision) → resi.numeric_consensus`.
//!
//! Rows whose value is NULL, NaN or ±Infinity, or whose weight is NULL, NaN or ≤ 0, are
//! ignored; a weight above 1e15 raises 22003. `tolerance` NULL means 0; it must be finite,
//! ≥ 0 and the same on every row of a group, else 22023. The result is the lower weighted
//! median with the lower weighted 25th/75th percentiles; supporters are the voters with
//! |v − m| ≤ tolerance·|m|. No voting rows → NULL.

use super::{changed, combine_serialized, fmgr_function, null_result, pass_serialized, serialized, Args};
use crate::error::OrRaise;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts};
use resi_core::consensus::MedianState;

const NAME: &str = "resi.consensus_median";

crate::fmgr::fmgr_info_v1!(pg_finfo_consensus_median_transition_wrapper);

/// `resi.consensus_median_transition(state internal, value double precision, weight double
/// precision, tolerance double precision) → internal`: count one row (sql/consensus.sql
/// declares it).
///
/// Most rows of a many-group query only add a claim to a small group's state
/// (`MedianState::add_compact`, which calls nothing that can fail or panic): they are counted
/// here, outside the guard of `#[pg_guard]`, whose setjmp and bookkeeping were a quarter of
/// such a row's instructions. Every other row (a group's first, one that moves the state to
/// the heap, one that raises an error) goes through the guarded [`guarded_transition`].
///
/// SAFETY: PostgreSQL calls this with the aggregate's four arguments; the state is always a
/// MedianState of this aggregate.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn consensus_median_transition_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        if let Some(state) = args.datum(0) {
            // A change that leaves the state without heap memory: nothing for `changed` to do.
            if (*state.cast_mut_ptr::<MedianState>()).add_compact(args.f64(1), args.f64(2), args.f64(3)) {
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
    unsafe { ResultRows::of(fcinfo, &fields).form(&fields) }
}

/// A field of `resi.numeric_consensus`, in the order of its attributes.
#[derive(Clone, Copy)]
enum Field {
    Float8(f64),
    Int4(i32),
}

impl Field {
    /// The field as `heap_form_tuple` takes it (both types are passed by value).
    fn datum(self) -> pg_sys::Datum {
        match self {
            Field::Float8(value) => pg_sys::Datum::from(value.to_bits()),
            Field::Int4(value) => pg_sys::Datum::from(value),
        }
    }

    /// The field's bytes in a row, as `heap_fill_tuple` stores a by-value attribute (in the
    /// machine's byte order).
    fn bytes(self) -> ([u8; 8], usize) {
        match self {
            Field::Float8(value) => (value.to_ne_bytes(), 8),
            Field::Int4(value) => {
                let mut bytes = [0; 8];
                bytes[..4].copy_from_slice(&value.to_ne_bytes());
                (bytes, 4)
            }
        }
    }
}

/// Fields of `resi.numeric_consensus`.
const FIELDS: usize = 7;

/// How the final function forms its rows, kept in its `fn_extra` for the query.
///
/// A `numeric_consensus` row has seven fixed-width attributes and no NULL, so every row has
/// the same header and layout and differs only in the fields' bytes: the first row is formed
/// by `heap_form_tuple` (the header is the server's business) and kept, and every later one is
/// a copy of it with the fields written where that row holds them. `heap_form_tuple` per group
/// was a fifth of the final step's instructions (it walks the descriptor twice and zeroes the
/// row). Should the row type not have that layout, every row is formed by `heap_form_tuple`.
struct ResultRows {
    desc: pg_sys::TupleDesc,
    /// The first row (a composite datum: header and data), or null when rows are not copied.
    template: *mut u8,
    len: usize,
    /// Where each field lies in a row, from the row's start.
    offsets: [usize; FIELDS],
}

impl ResultRows {
    /// The call's row former, made on the first call (whose fields it is shown) in the
    /// function's memory context, which lives as long as `fn_extra` is read.
    ///
    /// SAFETY: `fcinfo` is the live call's, of the final function (or a call expression
    /// returning resi.numeric_consensus); `fn_extra` is only set here.
    unsafe fn of(fcinfo: pg_sys::FunctionCallInfo, fields: &[Field; FIELDS]) -> &'static ResultRows {
        unsafe {
            let flinfo = (*fcinfo).flinfo;
            if (*flinfo).fn_extra.is_null() {
                let rows = PgMemoryContexts::For((*flinfo).fn_mcxt).switch_to(|_| ResultRows::new(flinfo, fields));
                (*flinfo).fn_extra = rows as *mut std::ffi::c_void;
            }
            &*((*flinfo).fn_extra as *const ResultRows)
        }
    }

    /// SAFETY: `flinfo` is the final function's; called in its memory context.
    unsafe fn new(flinfo: *mut pg_sys::FmgrInfo, fields: &[Field; FIELDS]) -> *mut ResultRows {
        unsafe {
            // Without a call expression (Citus calls a final function through fmgr_info alone)
            // the function's declared result type.
            let mut row_type = pg_sys::get_fn_expr_rettype(flinfo);
            if row_type == pg_sys::InvalidOid {
                row_type = pg_sys::get_func_rettype((*flinfo).fn_oid);
            }
            let desc = pg_sys::lookup_rowtype_tupdesc_copy(row_type, -1);
            assert_eq!((*desc).natts as usize, FIELDS, "resi.numeric_consensus has {FIELDS} attributes");
            let rows = pg_sys::palloc(std::mem::size_of::<ResultRows>()) as *mut ResultRows;
            rows.write(ResultRows { desc, template: std::ptr::null_mut(), len: 0, offsets: [0; FIELDS] });
            let first = (*rows).formed(fields);
            if let Some(offsets) = Self::layout(desc, first, fields) {
                let len = (*first).t_len as usize;
                let template = pg_sys::palloc(len) as *mut u8;
                std::ptr::copy_nonoverlapping((*first).t_data as *const u8, template, len);
                (*rows).template = template;
                (*rows).len = len;
                (*rows).offsets = offsets;
            }
            pg_sys::heap_freetuple(first);
            rows
        }
    }

    /// Where `row` (formed from `fields`) holds each field, when every attribute is a live
    /// by-value attribute of its field's width and the row holds the fields' bytes there:
    /// `heap_fill_tuple`'s layout of a row without NULLs, each attribute at its alignment.
    ///
    /// SAFETY: `desc` describes `row`.
    unsafe fn layout(
        desc: pg_sys::TupleDesc,
        row: pg_sys::HeapTuple,
        fields: &[Field; FIELDS],
    ) -> Option<[usize; FIELDS]> {
        unsafe {
            let header = (*row).t_data;
            let data = (*header).t_hoff as usize;
            let bytes = std::slice::from_raw_parts(header as *const u8, (*row).t_len as usize);
            let attributes = (*desc).attrs.as_slice(FIELDS);
            let mut offsets = [0; FIELDS];
            let mut offset = data;
            for ((attribute, field), at) in attributes.iter().zip(fields).zip(&mut offsets) {
                let (field_bytes, width) = field.bytes();
                let align = match attribute.attalign as u8 {
                    b'd' => 8,
                    b'i' => 4,
                    _ => return None,
                };
                if attribute.attisdropped || !attribute.attbyval || attribute.attlen as usize != width {
                    return None;
                }
                offset = offset.next_multiple_of(align);
                if bytes.get(offset..offset + width)? != &field_bytes[..width] {
                    return None;
                }
                *at = offset;
                offset += width;
            }
            (offset == bytes.len()).then_some(offsets)
        }
    }

    /// A row of `fields` formed by `heap_form_tuple`, in the current memory context.
    ///
    /// SAFETY: `self.desc` is the row type's.
    unsafe fn formed(&self, fields: &[Field; FIELDS]) -> pg_sys::HeapTuple {
        let mut values = fields.map(Field::datum);
        let mut nulls = [false; FIELDS];
        unsafe { pg_sys::heap_form_tuple(self.desc, values.as_mut_ptr(), nulls.as_mut_ptr()) }
    }

    /// The row of `fields` as a composite datum, in the current memory context.
    ///
    /// SAFETY: called from the function this was made for.
    unsafe fn form(&self, fields: &[Field; FIELDS]) -> pg_sys::Datum {
        unsafe {
            if self.template.is_null() {
                return pg_sys::Datum::from((*self.formed(fields)).t_data);
            }
            let row = pg_sys::palloc(self.len) as *mut u8;
            std::ptr::copy_nonoverlapping(self.template, row, self.len);
            for (field, &offset) in fields.iter().zip(&self.offsets) {
                let (bytes, width) = field.bytes();
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), row.add(offset), width);
            }
            pg_sys::Datum::from(row)
        }
    }
}
