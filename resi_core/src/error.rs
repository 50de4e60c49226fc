//! One error type for the whole core. Each error has a [`ErrorKind`] that the extension maps to
//! a PostgreSQL SQLSTATE, so callers in SQL can tell a bad argument from an overflow.

use std::fmt;

/// What went wrong, in the categories PostgreSQL's SQLSTATEs draw.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An argument is outside what the function accepts (SQLSTATE 22023).
    InvalidParameter,
    /// A number does not fit what the function can represent (SQLSTATE 22003).
    OutOfRange,
    /// Input text is not valid JSON (SQLSTATE 22P02).
    InvalidText,
    /// A serialised aggregate state is malformed (SQLSTATE XX001, data corrupted).
    CorruptState,
}

/// An error with a message a DBA can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::InvalidParameter, message: message.into() }
    }
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::OutOfRange, message: message.into() }
    }
    pub fn invalid_text(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::InvalidText, message: message.into() }
    }
    pub fn corrupt_state(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::CorruptState, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
