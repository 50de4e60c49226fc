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

/// A composite value of the calling function's declared row type, formed from one datum and
/// one null flag per attribute, for a function called once per group (an aggregate's final
/// function): the row type's descriptor is looked up on the first call and kept in the call's
/// `fn_extra` for the rest of the query.
///
/// SAFETY: `fcinfo` is the live call's, made from a call expression whose result is a composite
/// type with `values.len()` attributes, and `values` hold datums of those attributes' types.
pub(crate) unsafe fn form_result(
    fcinfo: pg_sys::FunctionCallInfo,
    values: &mut [pg_sys::Datum],
    nulls: &mut [bool],
) -> pg_sys::Datum {
    // SAFETY: the caller's contract; the descriptor is copied into the function's own memory
    // context, which lives as long as fn_extra is read.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            let desc = PgMemoryContexts::For((*flinfo).fn_mcxt)
                .switch_to(|_| pg_sys::lookup_rowtype_tupdesc_copy(pg_sys::get_fn_expr_rettype(flinfo), -1));
            (*flinfo).fn_extra = desc as *mut std::ffi::c_void;
        }
        let desc = (*flinfo).fn_extra as pg_sys::TupleDesc;
        assert_eq!((*desc).natts as usize, values.len(), "the row type has one attribute per value");
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::Datum::from((*tuple).t_data)
    }
}
