//! Pure-Rust core of resi, shared by the `resi_pg` extension and the `resi-loader` binary.
//!
//! Nothing here links against PostgreSQL, so all of it is unit-tested with plain `cargo test`:
//!
//! - [`consensus`]: transition states of the trust-weighted consensus aggregates, with exact
//!   (order-independent) weight sums and a compact binary form for parallel aggregation;
//! - [`fields`]: the listing's fields, their SQL types and consensus tolerances, defined once,
//!   and how a report agrees with a consensus;
//! - [`interrupt`]: the cancellation check that long loops call (PostgreSQL's, in the extension);
//! - [`hash`]: SHA-256 helpers and the canonical form behind `resi.listing_hash`;
//! - [`keys`]: the S3 key layout of miners' uploads;
//! - [`listing`]: normalising one reported listing row (the loader's rules);
//! - [`quality`]: the checks behind a submission's quality score;
//! - [`truth`]: truth discovery for any claims: each item's value and each source's accuracy
//!   from conflicting claims, audits and groups of dependent sources;
//! - [`trust`]: how a miner's trust moves after a submission or a validation;
//! - [`rate_limit`]: daily submission limits by trust tier;
//! - [`tile`]: web-mercator tiles and the Mapbox Vector Tile encoding of listings.

#![forbid(unsafe_code)]

pub mod consensus;
pub mod error;
pub mod fields;
pub mod hash;
pub mod interrupt;
pub mod keys;
pub mod listing;
pub mod quality;
pub mod rate_limit;
pub mod tile;
pub mod trust;
pub mod truth;

pub use error::{Error, ErrorKind};
