-- Truth discovery, native edition: the aggregate resi.discover_truth over its Rust transition and
-- final functions (resi_pg/src/truth.rs). What it promises is in sql/truth.sql, shared by both
-- editions; the portable edition declares it in sql/portable/truth.sql.
--
-- Part of the native install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- before sql/truth.sql). A change here ships an upgrade delta in sql/upgrade/.

CREATE AGGREGATE resi.discover_truth(object text, property text, source text, value text, source_group text) (
    STYPE     = internal,
    SFUNC     = resi.discover_truth_transition,
    FINALFUNC = resi.discover_truth_final,
    PARALLEL  = SAFE
);
