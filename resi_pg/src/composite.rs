//! Building composite results (`resi.consensus`, `resi.s3_key`, ...) from Rust values.

use pgrx::prelude::*;
use pgrx::{pg_sys, AllocatedByRust, PgMemoryContexts, PgTupleDesc};

/// A composite value of the calling function's declared result type, from one datum per
/// attribute (`None` is NULL).
pub(crate) fn composite(
    fcinfo: pg_sys::FunctionCallInfo,
    type_name: &str,
    datums: &[Option<pg_sys::Datum>],
) -> PgHeapTuple<'static, AllocatedByRust> {
    tuple(result_tuple_desc(fcinfo, type_name), type_name, datums)
}

/// The row type the calling function returns. The type comes from the call expression
/// (`get_fn_expr_rettype`, a cheap lookup that also works for an aggregate's final function);
/// `type_name` is only the fallback for a direct call without an expression.
pub(crate) fn result_tuple_desc(fcinfo: pg_sys::FunctionCallInfo, type_name: &str) -> PgTupleDesc<'static> {
    // SAFETY: fcinfo is the live call's, checked for NULL before use.
    let oid = unsafe {
        if fcinfo.is_null() || (*fcinfo).flinfo.is_null() {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_fn_expr_rettype((*fcinfo).flinfo)
        }
    };
    if oid != pg_sys::InvalidOid {
        PgTupleDesc::for_composite_type_by_oid(oid)
    } else {
        PgTupleDesc::for_composite_type(type_name)
    }
    .unwrap_or_else(|| error!("composite type {type_name} does not exist: is the resi_pg extension installed?"))
}

/// A composite value of `tupdesc` (the row type `type_name`, named in errors), from one datum
/// per attribute (`None` is NULL).
pub(crate) fn tuple(
    tupdesc: PgTupleDesc<'static>,
    type_name: &str,
    datums: &[Option<pg_sys::Datum>],
) -> PgHeapTuple<'static, AllocatedByRust> {
    // SAFETY: the datums were made by IntoDatum for the attribute types of `type_name`, in order.
    unsafe { PgHeapTuple::from_datums(tupdesc, datums.iter().copied()) }
        .unwrap_or_else(|e| error!("cannot build {type_name}: {e}"))
}

// form_result writes a short varlena's header by hand, as SET_VARSIZE_SHORT does on a
// little-endian machine.
const _: () = assert!(cfg!(target_endian = "little"), "form_result's short text header assumes little-endian");

/// One attribute's value for [`form_result`]: the types of the consensus aggregates' results.
#[derive(Clone, Copy)]
pub(crate) enum Field<'a> {
    /// A `text`, as its bytes in the database's encoding.
    Text(&'a [u8]),
    Float8(f64),
    Int4(i32),
}

/// A composite value of the calling function's declared row type, with no NULL attribute,
/// formed from one [`Field`] per attribute, for a function called once per group (an
/// aggregate's final function): the row type's descriptor is looked up on the first call and
/// kept in the call's `fn_extra` for the rest of the query.
///
/// `heap_form_tuple` forms the row (its header is the server's own business: this server
/// stamps a row type version in it); a text of up to 126 bytes is handed to it as a short
/// varlena on the stack, which it copies as it is, instead of a text datum allocated first
/// (the first such text of a row; any other is allocated).
///
/// SAFETY: `fcinfo` is the live call's, of a function (or a call expression) whose result is a
/// composite type with one attribute per field, each of the field's type.
pub(crate) unsafe fn form_result(fcinfo: pg_sys::FunctionCallInfo, fields: &[Field<'_>]) -> pg_sys::Datum {
    const MAX_FIELDS: usize = 8;
    const SHORT: usize = pg_sys::VARATT_SHORT_MAX as usize;
    assert!(fields.len() <= MAX_FIELDS, "at most {MAX_FIELDS} fields");
    // SAFETY: the caller's contract; the descriptor is copied into the function's own memory
    // context, which lives as long as fn_extra is read; the short text outlives the call that
    // copies it.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            // Without a call expression (Citus calls a final function through fmgr_info
            // alone) the function's declared result type.
            let mut row_type = pg_sys::get_fn_expr_rettype(flinfo);
            if row_type == pg_sys::InvalidOid {
                row_type = pg_sys::get_func_rettype((*flinfo).fn_oid);
            }
            let desc = PgMemoryContexts::For((*flinfo).fn_mcxt)
                .switch_to(|_| pg_sys::lookup_rowtype_tupdesc_copy(row_type, -1));
            (*flinfo).fn_extra = desc as *mut std::ffi::c_void;
        }
        let desc = (*flinfo).fn_extra as pg_sys::TupleDesc;
        assert_eq!((*desc).natts as usize, fields.len(), "the row type has one attribute per field");
        let mut short_text = [0u8; SHORT];
        let mut short_text_used = false;
        let mut values = [pg_sys::Datum::from(0); MAX_FIELDS];
        for (value, field) in values.iter_mut().zip(fields) {
            *value = match *field {
                Field::Text(bytes) if bytes.len() < SHORT && !short_text_used => {
                    short_text_used = true;
                    // SET_VARSIZE_SHORT on a little-endian machine: (length << 1) | 1.
                    short_text[0] = ((bytes.len() as u8 + 1) << 1) | 1;
                    short_text[1..=bytes.len()].copy_from_slice(bytes);
                    pg_sys::Datum::from(short_text.as_ptr())
                }
                Field::Text(bytes) => pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
                    bytes.as_ptr() as *const std::ffi::c_char,
                    bytes.len() as i32,
                )),
                Field::Float8(value) => pg_sys::Datum::from(value.to_bits()),
                Field::Int4(value) => pg_sys::Datum::from(value),
            };
        }
        let mut nulls = [false; MAX_FIELDS];
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::Datum::from((*tuple).t_data)
    }
}
