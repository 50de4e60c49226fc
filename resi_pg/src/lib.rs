//! `resi_pg`: the PostgreSQL extension that owns the `resi` schema.
//!
//! Every SQL-facing function here is a thin shell over `resi_core` (plain Rust, unit-tested
//! without PostgreSQL); this crate adds what only a database can: argument and result
//! conversion, SQLSTATEs, GUCs, aggregate memory contexts, and `#[pg_test]`s of the behaviour
//! inside a backend. The schema itself is reviewed SQL in the repository's top-level `sql/`.

use pgrx::prelude::*;

mod composite;
mod consensus;
mod error;
mod fmgr;
mod guc;
mod hash;
mod independence;
mod jsonb;
mod keys;
mod quality;
mod rate_limit;
mod settings;
mod tile;
mod trust;
mod truth;

::pgrx::pg_module_magic!();

// The schema, one file per concept in the repository's sql/ (docs/development.md), ordered by
// `requires`: a file comes after the files and Rust functions it uses. Types first (the Rust
// functions return them), roles last (they grant on everything). sql/native/ declares what
// this edition implements in Rust by hand (fmgr entry points, aggregates with internal state);
// the portable edition (sql/portable/, package/) replaces it and the #[pg_extern] functions, and
// takes the shared files in the order they appear here.
extension_sql_file!("../../sql/types.sql", name = "types", bootstrap);
extension_sql_file!("../../sql/native/edition.sql", name = "native_edition");
extension_sql_file!(
    "../../sql/listings.sql",
    name = "listings",
    requires = [hash::listing_hash_text, hash::canonical_listing_text, hash::sha256_hex_bytea, hash::sha256_hex_text]
);
extension_sql_file!("../../sql/ingest.sql", name = "ingest", requires = ["listings"]);
extension_sql_file!(
    "../../sql/independence.sql",
    name = "independence",
    requires = ["listings", consensus::agreement::claim_differences]
);
extension_sql_file!(
    "../../sql/trust.sql",
    name = "trust",
    requires = [
        "listings",
        "independence",
        trust::initial_trust,
        trust::earned_trust,
        settings::ingest_settings,
        rate_limit::rate_limit_for
    ]
);
extension_sql_file!(
    "../../sql/native/admission.sql",
    name = "native_admission",
    requires = ["trust", quality::submission_quality_transition, quality::submission_quality_final]
);
extension_sql_file!(
    "../../sql/admission.sql",
    name = "admission",
    requires = [
        "native_admission",
        rate_limit::rate_limit_for,
        settings::ingest_settings,
        keys::parse_s3_key,
        quality::submission_quality_of
    ]
);
extension_sql_file!(
    "../../sql/audit.sql",
    name = "audit",
    requires = ["listings", "trust", consensus::agreement::consensus_agreement, consensus::agreement::claim_errors]
);
extension_sql_file!(
    "../../sql/native/consensus.sql",
    name = "native_consensus",
    requires = [
        "types",
        settings::claim_half_life_seconds,
        trust::claim_recency,
        consensus::listing::consensus_listing_combine,
        consensus::listing::consensus_listing_serialize,
        consensus::listing::consensus_listing_deserialize,
        consensus::listing::consensus_listing_final,
        consensus::listing::consensus_by_source_final
    ]
);
extension_sql_file!(
    "../../sql/consensus.sql",
    name = "consensus",
    requires = [
        "listings",
        "trust",
        "independence",
        "audit",
        "native_consensus",
        trust::initial_trust,
        settings::claim_half_life_seconds,
        trust::claim_recency,
        consensus::agreement::consensus_agreement,
        consensus::agreement::corroborated_agreement,
        consensus::agreement::corroborated_fields
    ]
);
extension_sql_file!(
    "../../sql/fold.sql",
    name = "fold",
    requires = ["ingest", "admission", "consensus", independence::claim_signature]
);

extension_sql_file!("../../sql/history.sql", name = "history", requires = ["listings"]);
extension_sql_file!("../../sql/api.sql", name = "api", requires = ["history", "consensus"]);
extension_sql_file!(
    "../../sql/monitoring.sql",
    name = "monitoring",
    requires = ["ingest", "consensus", settings::database_budget_bytes]
);
extension_sql_file!(
    "../../sql/native/tiles.sql",
    name = "native_tiles",
    requires = ["types", tile::listing_tile_transition, tile::listing_tile_final]
);
extension_sql_file!(
    "../../sql/tiles.sql",
    name = "tiles",
    requires = ["listings", "native_tiles", tile::tile_bounds, tile::listing_tile_layer_of]
);
extension_sql_file!("../../sql/archive.sql", name = "archive", requires = ["listings"]);
extension_sql_file!(
    "../../sql/native/truth.sql",
    name = "native_truth",
    requires = ["types", truth::discover_truth_transition, truth::discover_truth_final]
);
extension_sql_file!("../../sql/truth.sql", name = "truth", requires = ["native_truth"]);
extension_sql_file!(
    "../../sql/distribute.sql",
    name = "distribute",
    requires = ["listings", "ingest", "independence", "trust", "admission", "audit", "history", "archive"]
);
extension_sql_file!("../../sql/roles.sql", name = "roles", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    resi_core::interrupt::set_hook(check_for_interrupts);
}

/// PostgreSQL's `CHECK_FOR_INTERRUPTS()`, the hook of `resi_core`'s long loops: a statement
/// timeout or a cancel request raises its ERROR (57014) from inside them.
fn check_for_interrupts() {
    pg_sys::check_for_interrupts!();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
