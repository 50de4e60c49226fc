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

// form_result writes short varlena and row length headers by hand, as SET_VARSIZE_SHORT and
// SET_VARSIZE do on a little-endian machine.
const _: () = assert!(cfg!(target_endian = "little"), "form_result's varlena headers assume little-endian");

/// One attribute's value for [`form_result`]: the types of the consensus aggregates' results.
#[derive(Clone, Copy)]
pub(crate) enum Field<'a> {
    /// A `text`, as its bytes in the database's encoding.
    Text(&'a [u8]),
    Float8(f64),
    Int4(i32),
}

/// The longest text a row holds with a one-byte header (`VARATT_SHORT_MAX` with the header).
const SHORT_TEXT: usize = pg_sys::VARATT_SHORT_MAX as usize - 1;

impl Field<'_> {
    /// The field as `heap_form_tuple` takes it: a text of up to [`SHORT_TEXT`] bytes as a short
    /// varlena written into `short` (it copies one as it is), a longer one allocated.
    fn datum(self, short: &mut [u8; SHORT_TEXT + 1]) -> pg_sys::Datum {
        match self {
            Field::Text(bytes) if bytes.len() <= SHORT_TEXT => {
                // SET_VARSIZE_SHORT on a little-endian machine: (length << 1) | 1.
                short[0] = ((bytes.len() as u8 + 1) << 1) | 1;
                short[1..=bytes.len()].copy_from_slice(bytes);
                pg_sys::Datum::from(short.as_ptr())
            }
            // SAFETY: the bytes are valid for their length; the copy is the server's.
            Field::Text(bytes) => pg_sys::Datum::from(unsafe {
                pg_sys::cstring_to_text_with_len(bytes.as_ptr() as *const std::ffi::c_char, bytes.len() as i32)
            }),
            Field::Float8(value) => pg_sys::Datum::from(value.to_bits()),
            Field::Int4(value) => pg_sys::Datum::from(value),
        }
    }
}

/// How a function forms its result rows, kept in its `fn_extra` for the query.
///
/// A row of the consensus results' types has no NULL, fixed-width attributes and texts; with
/// every text short (up to [`SHORT_TEXT`] bytes: one header byte, no alignment), it is the
/// same header followed by the fields' bytes, each fixed-width one at its alignment, the
/// padding zero. The first row is formed by `heap_form_tuple` (the header is the server's
/// business: it stamps the row type and its version); when the same fields written here give
/// exactly its bytes, its header is kept and later rows with short texts are written here,
/// only their length differing in the header (a row type without text: nothing but the fields,
/// written into a copy of the first row). Otherwise (another layout, a long text) a row is
/// formed by `heap_form_tuple`, which was a fifth of a consensus aggregate's final step.
struct RowFormer {
    desc: pg_sys::TupleDesc,
    /// The first row (header and data), when rows are written here: a copy in the function's
    /// memory context, freed with it (as is the former itself, which is never dropped).
    first: Option<&'static [u8]>,
    /// Its header's length (`t_hoff`).
    header_len: usize,
    /// For a row type without text, each field's offset in every row.
    fixed: Option<[usize; MAX_FIELDS]>,
}

/// The most attributes a row of [`form_result`] has.
const MAX_FIELDS: usize = 8;

impl RowFormer {
    /// A row of `fields` formed by `heap_form_tuple`, in the current memory context.
    ///
    /// SAFETY: `self.desc` has one attribute per field, each of the field's type.
    unsafe fn formed(&self, fields: &[Field<'_>]) -> pg_sys::HeapTuple {
        assert!(fields.len() <= MAX_FIELDS, "at most {MAX_FIELDS} fields");
        let mut shorts = [[0u8; SHORT_TEXT + 1]; MAX_FIELDS];
        let mut values = [pg_sys::Datum::from(0); MAX_FIELDS];
        for ((value, field), short) in values.iter_mut().zip(fields).zip(&mut shorts) {
            *value = field.datum(short);
        }
        let mut nulls = [false; MAX_FIELDS];
        // SAFETY: the caller's contract; the short texts outlive the call that copies them.
        unsafe { pg_sys::heap_form_tuple(self.desc, values.as_mut_ptr(), nulls.as_mut_ptr()) }
    }

    /// The length of the row of `fields` after `header` bytes of header, and each field's
    /// offset from the row's start, as `heap_fill_tuple` lays out a row without NULLs: a short
    /// text where the previous attribute ends, a fixed-width attribute at its alignment. `None`
    /// when an attribute is not the field's (dropped, of another width or storage, a text not
    /// short).
    fn layout(&self, header: usize, fields: &[Field<'_>], offsets: &mut [usize]) -> Option<usize> {
        // SAFETY: the descriptor has natts attributes (checked against the fields by the caller).
        let attributes = unsafe { (*self.desc).attrs.as_slice((*self.desc).natts as usize) };
        let mut end = header;
        for ((attribute, field), offset) in attributes.iter().zip(fields).zip(offsets) {
            if attribute.attisdropped {
                return None;
            }
            let (width, align) = match field {
                Field::Text(bytes) if bytes.len() <= SHORT_TEXT && attribute.attlen == -1 => (1 + bytes.len(), 1),
                Field::Float8(_) if attribute.attbyval && attribute.attlen == 8 && attribute.attalign as u8 == b'd' => {
                    (8, 8)
                }
                Field::Int4(_) if attribute.attbyval && attribute.attlen == 4 && attribute.attalign as u8 == b'i' => {
                    (4, 4)
                }
                _ => return None,
            };
            *offset = end.next_multiple_of(align);
            end = *offset + width;
        }
        Some(end)
    }

    /// The row of `fields` written here after `header` (see [`RowFormer`]), in the current
    /// memory context; `None` when its layout is not the one written here.
    ///
    /// SAFETY: `header` is a header of rows of `self.desc`.
    unsafe fn written(&self, header: &[u8], fields: &[Field<'_>]) -> Option<*mut u8> {
        let mut offsets = [0usize; MAX_FIELDS];
        let len = self.layout(header.len(), fields, &mut offsets)?;
        // SAFETY: the row is allocated with `len` bytes, zeroed (the padding), and every write
        // lies within it (the layout ends at `len`).
        unsafe {
            let row = pg_sys::palloc0(len) as *mut u8;
            std::ptr::copy_nonoverlapping(header.as_ptr(), row, header.len());
            // SET_VARSIZE on a little-endian machine: the datum's length << 2.
            (row as *mut u32).write_unaligned((len as u32) << 2);
            Self::write_fields(row, fields, &offsets);
            Some(row)
        }
    }

    /// Each field's bytes at its offset in `row`.
    ///
    /// SAFETY: `row` holds every field at its offset (a layout of these fields).
    unsafe fn write_fields(row: *mut u8, fields: &[Field<'_>], offsets: &[usize]) {
        for (field, &at) in fields.iter().zip(offsets) {
            // SAFETY: the caller's contract.
            unsafe {
                match *field {
                    Field::Text(bytes) => {
                        *row.add(at) = ((bytes.len() as u8 + 1) << 1) | 1;
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), row.add(at + 1), bytes.len());
                    }
                    Field::Float8(value) => std::ptr::copy_nonoverlapping(value.to_ne_bytes().as_ptr(), row.add(at), 8),
                    Field::Int4(value) => std::ptr::copy_nonoverlapping(value.to_ne_bytes().as_ptr(), row.add(at), 4),
                }
            }
        }
    }

    /// The row of `fields` as a composite datum, written here when the first row was (see
    /// [`RowFormer`]), else `None`.
    ///
    /// SAFETY: `fields` are of the types of the first row's.
    unsafe fn row(&self, fields: &[Field<'_>]) -> Option<pg_sys::Datum> {
        let first = self.first?;
        // SAFETY: a row type without text has the first row's layout: a copy of it holds every
        // field at its offset; otherwise the header is the first row's.
        unsafe {
            if let Some(offsets) = &self.fixed {
                let row = pg_sys::palloc(first.len()) as *mut u8;
                std::ptr::copy_nonoverlapping(first.as_ptr(), row, first.len());
                Self::write_fields(row, fields, offsets);
                return Some(pg_sys::Datum::from(row));
            }
            self.written(&first[..self.header_len], fields).map(pg_sys::Datum::from)
        }
    }

    /// The former of the function `flinfo` calls, made on its first row (`fields`) in the
    /// function's memory context, which lives as long as `fn_extra` is read.
    ///
    /// SAFETY: `flinfo` is the live call's; `fn_extra` is only set here.
    unsafe fn of(flinfo: *mut pg_sys::FmgrInfo, fields: &[Field<'_>]) -> &'static RowFormer {
        unsafe {
            if (*flinfo).fn_extra.is_null() {
                let former = PgMemoryContexts::For((*flinfo).fn_mcxt).switch_to(|_| {
                    // Without a call expression (Citus calls a final function through
                    // fmgr_info alone) the function's declared result type.
                    let mut row_type = pg_sys::get_fn_expr_rettype(flinfo);
                    if row_type == pg_sys::InvalidOid {
                        row_type = pg_sys::get_func_rettype((*flinfo).fn_oid);
                    }
                    let desc = pg_sys::lookup_rowtype_tupdesc_copy(row_type, -1);
                    assert_eq!((*desc).natts as usize, fields.len(), "the row type has one attribute per field");
                    let mut former = RowFormer { desc, first: None, header_len: 0, fixed: None };
                    // The first row both ways: written here only if it comes out the same.
                    let first = former.formed(fields);
                    let header_len = (*(*first).t_data).t_hoff as usize;
                    let formed = std::slice::from_raw_parts((*first).t_data as *const u8, (*first).t_len as usize);
                    let header = &formed[..header_len];
                    if let Some(row) = former.written(header, fields) {
                        // The row's length is in its first four bytes (SET_VARSIZE).
                        let len = ((row as *const u32).read_unaligned() >> 2) as usize;
                        if len == formed.len() && std::slice::from_raw_parts(row, len) == formed {
                            let copy = pg_sys::palloc(len) as *mut u8;
                            std::ptr::copy_nonoverlapping(formed.as_ptr(), copy, len);
                            former.first = Some(std::slice::from_raw_parts(copy, len));
                            former.header_len = header_len;
                            if !fields.iter().any(|f| matches!(f, Field::Text(_))) {
                                let mut offsets = [0; MAX_FIELDS];
                                former.layout(header_len, fields, &mut offsets);
                                former.fixed = Some(offsets);
                            }
                        }
                        pg_sys::pfree(row as *mut std::ffi::c_void);
                    }
                    pg_sys::heap_freetuple(first);
                    let place = pg_sys::palloc(std::mem::size_of::<RowFormer>()) as *mut RowFormer;
                    place.write(former);
                    place
                });
                (*flinfo).fn_extra = former as *mut std::ffi::c_void;
            }
            &*((*flinfo).fn_extra as *const RowFormer)
        }
    }
}

/// A composite value of the calling function's declared row type, with no NULL attribute,
/// formed from one [`Field`] per attribute (at most 8), for a function called once per group
/// (an aggregate's final function): how its rows are formed is settled on the first call and
/// kept in the call's `fn_extra` for the rest of the query ([`RowFormer`]). The row is
/// allocated in the current memory context. The same bytes as `heap_form_tuple`'s.
///
/// SAFETY: `fcinfo` is the live call's, of a function (or a call expression) whose result is a
/// composite type with one attribute per field, each of the field's type; the same function
/// always passes fields of the same types.
pub(crate) unsafe fn form_result(fcinfo: pg_sys::FunctionCallInfo, fields: &[Field<'_>]) -> pg_sys::Datum {
    unsafe {
        let former = RowFormer::of((*fcinfo).flinfo, fields);
        match former.row(fields) {
            Some(row) => row,
            None => pg_sys::Datum::from((*former.formed(fields)).t_data),
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// A consensus row written by [`super::form_result`] reads back field by field whatever its
    /// text: groups (hash aggregated, so the first row may be any) whose winner has 0 to 140
    /// bytes, short texts and long ones (over 126 bytes: formed by `heap_form_tuple`), one and
    /// two bytes per character; and the text of the row is the text of the same fields formed by
    /// PostgreSQL itself.
    #[pg_test]
    fn consensus_rows_read_back_whatever_the_length_of_their_text() {
        let wrong = Spi::get_one::<i64>(
            "WITH votes AS (
                 SELECT n, c, repeat(c, n) AS v, w
                   FROM generate_series(0, 140) n, (VALUES ('x'), ('é')) ch(c),
                        LATERAL (VALUES (1::float8), (1)) a(w)
                 UNION ALL
                 SELECT n, c, 'other', 0.5 FROM generate_series(0, 140) n, (VALUES ('x'), ('é')) ch(c)
             ), results AS (
                 SELECT n, c, resi.consensus_mode(v, w) AS r FROM votes GROUP BY n, c
             )
             SELECT count(*) FROM results
              WHERE (r).value IS DISTINCT FROM repeat(c, n)
                 OR ((r).confidence, (r).agreement, (r).supporters, (r).voters, (r).support_weight, (r).total_weight)
                    IS DISTINCT FROM (0.8::float8, 2 / 3.0::float8, 2, 3, 2::float8, 2.5::float8)
                 OR r::text IS DISTINCT FROM ROW((r).value, (r).confidence, (r).agreement, (r).supporters, (r).voters,
                                                 (r).support_weight, (r).total_weight)::resi.consensus::text",
        )
        .unwrap();
        assert_eq!(wrong, Some(0));
        let groups = Spi::get_one::<i64>(
            "SELECT count(DISTINCT (r).value) FROM (SELECT n, resi.consensus_mode(repeat('x', n), 1) AS r
                                                    FROM generate_series(0, 140) n GROUP BY n) s",
        )
        .unwrap();
        assert_eq!(groups, Some(141));
    }
}
