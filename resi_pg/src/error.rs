//! `resi_core` errors as PostgreSQL errors with a SQLSTATE.

use pgrx::pg_sys::elog::PgLogLevel;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use resi_core::{Error, ErrorKind};

/// Raise `error` as an ERROR:
/// invalid parameter → 22023, out of range → 22003, invalid JSON text → 22P02,
/// corrupt aggregate state → XX001.
pub(crate) fn raise(error: Error, function: &'static str) -> ! {
    let code = match error.kind {
        ErrorKind::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::OutOfRange => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        ErrorKind::InvalidText => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        ErrorKind::CorruptState => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
    };
    raise_code(code, function, &error.message)
}

/// Raise an ERROR with this SQLSTATE, its message prefixed with the function's name
/// (`resi.f: message`), as every error of the extension reads.
pub(crate) fn raise_code(code: PgSqlErrorCode, function: &'static str, message: &str) -> ! {
    ErrorReport::new(code, format!("{function}: {message}"), function).report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// `result.or_raise("resi.f")`: the value, or the error raised with the SQL function's name.
pub(crate) trait OrRaise<T> {
    fn or_raise(self, function: &'static str) -> T;
}

impl<T> OrRaise<T> for resi_core::error::Result<T> {
    #[inline]
    fn or_raise(self, function: &'static str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => raise(error, function),
        }
    }
}
