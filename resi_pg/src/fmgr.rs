//! Plain version-1 fmgr functions, for the few entry points where pgrx's per-call wrapper
//! costs more than the work (the consensus aggregates' support functions, run once per row or
//! group, and the rate-limit check, run once per row of a query): [`fmgr_function!`] defines
//! one, [`Args`] reads its arguments in place, and their SQL declares them in sql/*.sql.

use pgrx::pg_sys;

/// Define `$symbol` as a version-1 fmgr function, what `PG_FUNCTION_INFO_V1` declares in C:
/// `pg_finfo_$symbol`, and the entry point itself, which calls `$body(fcinfo)`. A Rust panic
/// or PostgreSQL error inside is raised as an ERROR (`#[pg_guard]`).
macro_rules! fmgr_function {
    ($(#[$doc:meta])* $symbol:ident, $finfo:ident, $body:path) => {
        $crate::fmgr::fmgr_info_v1!($finfo);

        $(#[$doc])*
        #[unsafe(no_mangle)]
        #[pg_guard]
        pub unsafe extern "C-unwind" fn $symbol(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: fmgr calls this with a live fcinfo, which is all $body needs.
            unsafe { $body(fcinfo) }
        }
    };
}
pub(crate) use fmgr_function;

/// Define `$finfo`, what `PG_FUNCTION_INFO_V1` declares in C for an fmgr function: that it
/// uses the version-1 calling convention. [`fmgr_function!`] defines it with its function; an
/// entry point written by hand (one that guards only some of its calls) uses this alone.
macro_rules! fmgr_info_v1 {
    ($finfo:ident) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}
pub(crate) use fmgr_info_v1;

/// Return SQL NULL from an fmgr call.
///
/// SAFETY: `fcinfo` is the live call's.
pub(crate) unsafe fn null_result(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { (*fcinfo).isnull = true };
    pg_sys::Datum::from(0)
}

/// The arguments of an fmgr call, read in place.
pub(crate) struct Args(pg_sys::FunctionCallInfo);

impl Args {
    /// SAFETY: `fcinfo` is the live call's.
    #[inline(always)]
    pub(crate) unsafe fn of(fcinfo: pg_sys::FunctionCallInfo) -> Args {
        Args(fcinfo)
    }

    /// Argument `i`, or `None` when it is NULL.
    ///
    /// SAFETY: the call has more than `i` arguments.
    #[inline(always)]
    pub(crate) unsafe fn datum(&self, i: usize) -> Option<pg_sys::Datum> {
        // SAFETY: the caller's contract; fmgr fills `nargs` NullableDatums.
        let arg = unsafe { &*(*self.0).args.as_ptr().add(i) };
        (!arg.isnull).then_some(arg.value)
    }

    /// A `double precision` argument (passed by value).
    ///
    /// SAFETY: argument `i` exists and is a float8.
    #[inline(always)]
    pub(crate) unsafe fn f64(&self, i: usize) -> Option<f64> {
        unsafe { self.datum(i) }.map(|d| f64::from_bits(d.value() as u64))
    }

    /// An `integer` argument (passed by value).
    ///
    /// SAFETY: argument `i` exists and is an int4.
    #[inline(always)]
    pub(crate) unsafe fn i32(&self, i: usize) -> Option<i32> {
        unsafe { self.datum(i) }.map(|d| d.value() as i32)
    }

    /// A `bigint` or `timestamptz` argument (passed by value; a timestamptz is microseconds
    /// since 2000-01-01 UTC).
    ///
    /// SAFETY: argument `i` exists and is an int8 or timestamptz.
    #[inline(always)]
    pub(crate) unsafe fn i64(&self, i: usize) -> Option<i64> {
        unsafe { self.datum(i) }.map(|d| d.value() as i64)
    }

    /// A `text` argument as a string, read in place as [`Args::bytes`]. In a UTF-8 database the
    /// server has already validated it; in any other encoding it must be valid UTF-8 (22021
    /// otherwise), since the Rust code compares and stores strings.
    ///
    /// SAFETY: argument `i` exists and is a text; the string lives until the call returns.
    #[inline(always)]
    pub(crate) unsafe fn str<'a>(&self, i: usize) -> Option<&'a str> {
        let bytes = unsafe { self.bytes(i) }?;
        if database_is_utf8() {
            // SAFETY: text in a UTF-8 database is valid UTF-8 (the server checks every input).
            return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => crate::error::raise_code(
                pgrx::PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                "resi",
                "text arguments must be valid UTF-8 in a database whose encoding is not UTF-8",
            ),
        }
    }

    /// A `text` or `bytea` argument's bytes. A short or plain value is read where it lies; a
    /// compressed or out-of-line one is detoasted into the current memory context first.
    ///
    /// SAFETY: argument `i` exists and is a varlena (text, bytea); the bytes live until the
    /// call returns.
    #[inline(always)]
    pub(crate) unsafe fn bytes<'a>(&self, i: usize) -> Option<&'a [u8]> {
        use pgrx::varlena::{vardata_any, varsize_any_exhdr};
        // SAFETY: the caller's contract.
        if let Some(bytes) = unsafe { self.bytes_in_line(i) } {
            return bytes;
        }
        // SAFETY: a text datum is a valid varlena, here compressed or out of line.
        unsafe {
            let ptr = pg_sys::pg_detoast_datum_packed(self.datum(i)?.cast_mut_ptr::<pg_sys::varlena>());
            Some(std::slice::from_raw_parts(vardata_any(ptr) as *const u8, varsize_any_exhdr(ptr)))
        }
    }

    /// A `text` or `bytea` argument's bytes when they are read without calling the server (so
    /// without an error to guard against): `Some(None)` for NULL, `Some(Some(bytes))` for a
    /// short or plain value where it lies; `None` for a compressed or out-of-line one, which
    /// [`Args::bytes`] detoasts.
    ///
    /// SAFETY: as [`Args::bytes`].
    #[inline(always)]
    pub(crate) unsafe fn bytes_in_line<'a>(&self, i: usize) -> Option<Option<&'a [u8]>> {
        use pgrx::varlena::{varatt_is_1b, varatt_is_1b_e, varatt_is_4b_u, vardata_any, varsize_any_exhdr};
        let Some(datum) = (unsafe { self.datum(i) }) else { return Some(None) };
        let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
        // SAFETY: a text datum is a valid varlena; its header says whether it is in line.
        unsafe {
            let in_line = varatt_is_4b_u(ptr) || (varatt_is_1b(ptr) && !varatt_is_1b_e(ptr));
            in_line.then(|| Some(std::slice::from_raw_parts(vardata_any(ptr) as *const u8, varsize_any_exhdr(ptr))))
        }
    }

    /// The call's fcinfo.
    #[inline(always)]
    pub(crate) fn fcinfo(&self) -> pg_sys::FunctionCallInfo {
        self.0
    }
}

/// Whether the current database's encoding is UTF-8 (fixed for the life of a backend).
fn database_is_utf8() -> bool {
    static UTF8: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: a backend connected to its database (this runs inside a function call).
    *UTF8.get_or_init(|| unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_UTF8 as i32)
}
