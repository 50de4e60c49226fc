-- Ingest: the loader's runs, the ledger of every upload seen (once per key and ETag), and the
-- staging table whose INSERT/COPY statements the fold (fold.sql) turns into attestations.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Ingest: the ledger of uploads, loader runs, and the staging table the fold reads
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.ingest_runs (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    objects_seen     integer NOT NULL DEFAULT 0,
    objects_loaded   integer NOT NULL DEFAULT 0,
    objects_rejected integer NOT NULL DEFAULT 0,
    objects_deferred integer NOT NULL DEFAULT 0,
    objects_skipped  integer NOT NULL DEFAULT 0,  -- already in the ledger, or claimed by another loader
    rows_attested    bigint NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    -- 0.4.0: the loader's backend; a run still 'running' whose backend is gone was interrupted.
    backend_pid integer DEFAULT pg_catalog.pg_backend_pid(),
    -- 0.5.0: where the pass's time went, in seconds per stage, and the batches it folded
    -- (resi-loader: list, read, waiting_for_reads, admit, copy, attest_and_claim, consensus,
    -- judgement, commit, batches; docs/loader.md).
    stage_seconds jsonb
);
COMMENT ON TABLE resi.ingest_runs IS 'One row per loader pass: when, from where, and what it did.';

-- One row per (object key, ETag): an object whose key and ETag are here is not loaded again;
-- the same key with a new ETag (the miner overwrote it) is a new submission. A row is written
-- in the same transaction as the object's attestations: all of an object or none of it.
CREATE TABLE resi.ingest_ledger (
    id             bigserial PRIMARY KEY,
    object_key     text NOT NULL,
    etag           text NOT NULL,
    size           bigint CHECK (size >= 0),
    last_modified  timestamptz,
    kind           text CHECK (kind IN ('parquet', 'epoch_json')), -- NULL: the key does not follow the layout
    miner_hotkey   text,
    job_id         text,
    declared_rows  integer,           -- the row count claimed in the file name
    rows_read      bigint NOT NULL DEFAULT 0,
    rows_attested  bigint NOT NULL DEFAULT 0,
    rows_dropped   bigint NOT NULL DEFAULT 0, -- rows without a recoverable zpid
    row_issues     jsonb NOT NULL DEFAULT '{}'::jsonb, -- {"issue_code": count, ...}
    status         text NOT NULL CHECK (status IN ('loaded', 'rejected', 'deferred')),
    reason         text,              -- rejected/deferred: "code: detail"
    run_id         bigint REFERENCES resi.ingest_runs (id),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (object_key, etag),
    -- 0.2.0: the fold's verdict on a loaded submission.
    quality_score      double precision,  -- resi.submission_quality(...).score
    quality_issues     text[],
    duplicate_zpids    integer,
    distinct_zip_codes integer,
    accuracy           double precision,  -- share of field values agreeing with the resulting consensus
    row_agreement      double precision,  -- share of corroborated rows agreeing in every field
    trust_score        double precision   -- the miner's trust after this submission
);
COMMENT ON TABLE resi.ingest_ledger IS 'Every upload seen, once per (key, ETag): loaded, rejected (with reason) or deferred.';
CREATE INDEX ingest_ledger_miner_hotkey_idx ON resi.ingest_ledger (miner_hotkey);
CREATE INDEX ingest_ledger_status_idx ON resi.ingest_ledger (status) WHERE status <> 'loaded';

-- Rows to fold. COPY or INSERT here from any client: the statement-level trigger
-- resi.fold_staged_listings folds each statement's rows into attestations, claims and listings.
-- UNLOGGED and without row triggers so COPY stays a bulk load; its rows are only the input of
-- the fold and are truncated by resi.clear_staging() (the loader calls it between runs).
CREATE UNLOGGED TABLE resi.staging_listings (
    ledger_id            bigint,      -- resi.ingest_ledger.id of the upload, when a loader sends it
    miner_hotkey         text NOT NULL,
    submission_timestamp timestamptz NOT NULL,
    job_id               text,
    s3_file_path         text,
    record_count         integer,
    zpid                 text NOT NULL,
    uri                  text,
    price                bigint,
    address              text,
    bedrooms             integer,
    bathrooms            double precision,
    living_area          integer,
    home_type            text,
    home_status          text,
    days_on_zillow       integer,
    zip_code             text,
    city                 text,
    state                text,
    latitude             double precision,
    longitude            double precision,
    scraped_at           timestamptz,
    data_hash            text
);
COMMENT ON TABLE resi.staging_listings IS 'Input of the fold: INSERT or COPY reported listings here; a statement trigger folds them into attestations, claims and listings.';

-- pg_dump keeps the rows of these tables (an extension's tables are otherwise dumped empty).
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_runs', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_ledger', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_ledger_id_seq', '');

-- Empty the staging table (its rows were folded when they were inserted). Skips, returning
-- false, when another session is writing to it.
CREATE FUNCTION resi.clear_staging() RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE resi.staging_listings IN ACCESS EXCLUSIVE MODE NOWAIT;
    TRUNCATE resi.staging_listings;
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END
$$;

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.clear_staging() IS
    'Empty the staging table (its rows were folded when they were inserted); false, doing nothing, when another session is writing to it.';
