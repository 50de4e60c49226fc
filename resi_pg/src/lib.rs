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
mod guc;
mod hash;
mod keys;
mod quality;
mod rate_limit;
mod settings;
mod tile;
mod trust;

::pgrx::pg_module_magic!();

// Types and tables, before any Rust function (the composite types are their result types).
extension_sql_file!("../../sql/resi_pg_schema.sql", name = "schema", bootstrap);

// The read API (schema `api`), consensus history, monitoring views and the storage budget.
extension_sql_file!(
    "../../sql/resi_pg_api.sql",
    name = "api",
    requires =
        [settings::database_budget_bytes, tile::tile_bounds, tile::listing_tile_transition, tile::listing_tile_final]
);

// Aggregates and SQL-language functions over the Rust functions, at the end of the script.
extension_sql_file!("../../sql/resi_pg_functions.sql", name = "functions", finalize);

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
