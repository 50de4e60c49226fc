//! Reading uploads into [`RawListing`](resi_core::listing::RawListing) rows: Parquet (streamed
//! by row group) and epoch JSON.
//!
//! A reader yields rows in batches; a file-level problem is a [`Rejection`] with a stable
//! code, a row-level problem is left to [`resi_core::listing::normalise`]. The Parquet reader,
//! which reads the source as it goes, fails with an [`UploadError`]: a rejection, or a source
//! failure.

mod epoch_json;
mod parquet_file;

pub use epoch_json::read_epoch_json;
pub use parquet_file::ParquetUpload;

use crate::source::ReadError;
use std::fmt;

/// Why an object is refused as a whole. `code` is stable and machine-readable; the ledger's
/// `reason` is `"{code}: {detail}"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Rejection { code, detail: detail.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Rejection {}

/// Why reading an upload stopped: the file is refused ([`Rejection`]: reject the object), or
/// reading the source failed ([`ReadError`]: retry the object later).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Source(#[from] ReadError),
}
