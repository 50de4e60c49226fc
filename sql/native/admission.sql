-- Admission, native edition: the aggregate resi.submission_quality over its Rust transition and
-- final functions (resi_pg/src/quality.rs), and resi.check_miner_rate_limit in Rust
-- (resi_pg/src/rate_limit.rs: two primary-key reads with the statement's snapshot, without
-- starting an executor per call as PL/pgSQL did). What they promise is in sql/admission.sql,
-- shared by both editions; the portable edition declares the same in sql/portable/quality.sql
-- and sql/portable/rate_limit.sql.
--
-- Part of the native install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- before sql/admission.sql). A change here ships an upgrade delta in sql/upgrade/.

CREATE AGGREGATE resi.submission_quality(zpid text, price double precision, zip_code text) (
    STYPE     = internal,
    SFUNC     = resi.submission_quality_transition,
    FINALFUNC = resi.submission_quality_final,
    PARALLEL  = SAFE
);

CREATE FUNCTION resi.check_miner_rate_limit(
    hotkey      text,
    submissions integer DEFAULT 1,
    on_day      date    DEFAULT (now() AT TIME ZONE 'UTC')::date
) RETURNS boolean
    LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'check_miner_rate_limit_wrapper';
