//! The loader as a library (the binary and the tests use it).
//!
//! A pass flows [`pass`] → [`batch`] → [`staging`]: list the source and pick what the ledger
//! has not settled; read objects ahead and group them into batches; fold each batch in one
//! transaction (per object: claim, ledger, admission; then one COPY of their rows into staging,
//! where the extension folds them). An object too large for a batch is streamed alone
//! ([`object`]). Rows are read by [`read`] from a [`source`]. [`progress`] and [`status`] report; [`archive`] and [`export`]
//! write Parquet out of the database (their columns in `columns`).

#![forbid(unsafe_code)]

pub mod archive;
pub mod batch;
mod columns;
pub mod db;
pub mod export;
pub mod object;
pub mod pass;
pub mod progress;
pub mod read;
pub mod source;
pub mod staging;
pub mod status;

/// The paths of the load step from before it was split into [`pass`], [`object`] and
/// [`staging`], kept so `resi_loader::load::…` still resolves.
pub mod load {
    pub use crate::object::{load_object, Outcome};
    pub use crate::pass::{run_pass, PassOptions, PassSummary, Progress};
    pub use crate::staging::{Limits, MAX_JSON_BYTES};
}
