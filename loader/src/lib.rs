//! The loader as a library (the binary and the tests use it).
//!
//! A pass flows [`pass`] → [`object`] → [`staging`]: list the source and pick what the ledger
//! has not settled; load each object in its own transaction (claim, ledger, admission,
//! savepoint); read its rows ([`read`], from a [`source`]) and COPY them into staging, where
//! the extension folds them. [`progress`] and [`status`] report; [`archive`] and [`export`]
//! write Parquet out of the database (their columns in `columns`).

#![forbid(unsafe_code)]

pub mod archive;
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
