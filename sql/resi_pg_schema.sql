-- resi_pg schema, version 0.1.0: types and tables of the `resi` schema.
--
-- Included into the generated install script by resi_pg/src/lib.rs (extension_sql_file!, before
-- any Rust function); the SQL-language functions that need Rust functions live in
-- sql/resi_pg_functions.sql (run at the end of the script). CREATE EXTENSION runs this with
-- search_path set to the extension's schema `resi`; every name is still schema-qualified so
-- the file reads the same anywhere.

-- ---------------------------------------------------------------------------------------------
-- Composite results of the SQL API
-- ---------------------------------------------------------------------------------------------

-- resi.consensus_mode(value text, weight double precision)
CREATE TYPE resi.consensus AS (
    value          text,             -- the value with the greatest summed weight
    confidence     double precision, -- support_weight / total_weight
    agreement      double precision, -- supporters / voters
    supporters     integer,          -- rows that voted for value
    voters         integer,          -- rows that voted
    support_weight double precision,
    total_weight   double precision
);

-- resi.consensus_median(value double precision, weight double precision, tolerance double precision)
CREATE TYPE resi.numeric_consensus AS (
    value      double precision, -- lower weighted median
    confidence double precision, -- weight share of the supporters
    agreement  double precision, -- supporters / voters
    supporters integer,          -- voters with |v - value| <= tolerance * |value|
    voters     integer,
    low        double precision, -- lower weighted 25th percentile
    high       double precision  -- lower weighted 75th percentile
);

-- resi.parse_s3_key(key text)
CREATE TYPE resi.s3_key AS (
    kind           text,      -- 'parquet' or 'epoch_json'
    miner_hotkey   text,
    job_id         text,
    epoch          text,      -- epoch uploads: the epoch folder as written, e.g. 2025-10-07T12-00-00
    zipcode        text,      -- epoch uploads
    file_timestamp timestamp, -- from the file name: the miner host's clock, no time zone
    declared_rows  integer    -- Parquet uploads: the row count claimed in the file name
);

-- ---------------------------------------------------------------------------------------------
-- Listings: one row per property, holding the consensus of every miner's attestations
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.listings (
    zpid                text PRIMARY KEY,
    uri                 text UNIQUE,
    price               bigint,
    address             text,
    bedrooms            integer,
    bathrooms           numeric(3,1),
    living_area         integer,
    home_type           text,
    home_status         text,
    days_on_zillow      integer,
    zip_code            text,
    city                text,
    state               text,
    latitude            double precision,
    longitude           double precision,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    last_updated_at     timestamptz NOT NULL DEFAULT now(),
    consensus_score     real CHECK (consensus_score BETWEEN 0 AND 1),
    total_attestations  integer NOT NULL DEFAULT 0 CHECK (total_attestations >= 0),
    unique_miners_count integer NOT NULL DEFAULT 0 CHECK (unique_miners_count >= 0),
    -- per field: {"price": {"value": ..., "confidence": ..., "agreement": ..., "supporters": ..., "voters": ...}, ...}
    field_consensus     jsonb NOT NULL DEFAULT '{}'::jsonb
);
COMMENT ON TABLE resi.listings IS 'One row per property (zpid): the trust-weighted consensus of all miners'' attestations.';
COMMENT ON COLUMN resi.listings.consensus_score IS 'Overall confidence in the listing, 0..1.';
COMMENT ON COLUMN resi.listings.field_consensus IS 'Per field: value, confidence, agreement, supporters, voters.';

CREATE INDEX listings_zip_code_idx       ON resi.listings (zip_code);
CREATE INDEX listings_price_idx          ON resi.listings (price);
CREATE INDEX listings_location_idx       ON resi.listings (latitude, longitude);
CREATE INDEX listings_last_updated_at_idx ON resi.listings (last_updated_at);
CREATE INDEX listings_home_status_idx    ON resi.listings (home_status);

-- ---------------------------------------------------------------------------------------------
-- Miner attestations: what each miner reported about a listing, in which upload
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.miner_attestations (
    id                   bigserial PRIMARY KEY,
    miner_hotkey         text NOT NULL,
    miner_uid            integer,
    zpid                 text NOT NULL,
    submission_timestamp timestamptz NOT NULL,
    job_id               text,
    s3_file_path         text,
    record_count         integer CHECK (record_count >= 0),
    data_hash            text CHECK (data_hash ~ '^[0-9a-f]{64}$'), -- resi.listing_hash of the reported row
    is_validated         boolean NOT NULL DEFAULT false,
    validation_timestamp timestamptz,
    validation_score     double precision,
    -- The field values as the miner reported them, so consensus can be recomputed from
    -- attestations alone. bathrooms is double precision here (listings keep numeric(3,1)) so
    -- an absurd report is stored as reported, not rejected by the column type.
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
    scraped_at           timestamptz -- the row's own scrape time (the Parquet `datetime` column)
);
COMMENT ON TABLE resi.miner_attestations IS 'Each miner''s report of a listing in one upload; consensus is recomputable from these rows alone.';

CREATE INDEX miner_attestations_miner_hotkey_idx         ON resi.miner_attestations (miner_hotkey);
CREATE INDEX miner_attestations_submission_timestamp_idx ON resi.miner_attestations (submission_timestamp);
CREATE INDEX miner_attestations_zpid_idx                 ON resi.miner_attestations (zpid);

-- ---------------------------------------------------------------------------------------------
-- Miner trust: how much each miner's word counts, and what limits it
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.miner_trust (
    miner_hotkey          text PRIMARY KEY,
    miner_uid             integer,
    trust_score           double precision NOT NULL CHECK (trust_score BETWEEN 0 AND 1),
    total_submissions     bigint NOT NULL DEFAULT 0 CHECK (total_submissions >= 0),
    validated_submissions bigint NOT NULL DEFAULT 0 CHECK (validated_submissions >= 0),
    last_submission       timestamptz,
    submissions_today     integer NOT NULL DEFAULT 0 CHECK (submissions_today >= 0), -- on last_submission_date (UTC)
    last_submission_date  date,
    duplicate_rate        double precision NOT NULL DEFAULT 0 CHECK (duplicate_rate BETWEEN 0 AND 1),
    accuracy_score        double precision CHECK (accuracy_score BETWEEN 0 AND 1),
    strikes               integer NOT NULL DEFAULT 0 CHECK (strikes >= 0),
    banned_until          timestamptz, -- NULL: not banned; 'infinity': banned for good
    ban_reason            text,
    first_seen_at         timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE resi.miner_trust IS 'Per miner: trust score (consensus weight), submission counters, rate-limit and ban state.';
COMMENT ON COLUMN resi.miner_trust.banned_until IS 'The miner is banned while now() < banned_until (''infinity'' for good).';

-- Submissions per miner per UTC day: what resi.check_miner_rate_limit counts against, kept per
-- day so a backfill of history is judged day by day.
CREATE TABLE resi.miner_submission_days (
    miner_hotkey text NOT NULL,
    day          date NOT NULL,
    submissions  integer NOT NULL CHECK (submissions >= 0),
    PRIMARY KEY (miner_hotkey, day)
);
COMMENT ON TABLE resi.miner_submission_days IS 'Submissions (uploaded objects) per miner per UTC day, for rate limiting.';

-- ---------------------------------------------------------------------------------------------
-- Current claims: each miner's latest report per listing, the votes consensus counts
-- ---------------------------------------------------------------------------------------------
-- One row per (listing, miner): a miner repeating a claim does not gain votes. Derived from
-- resi.miner_attestations (the newest attestation per miner and zpid), maintained by the fold.
CREATE TABLE resi.miner_claims (
    zpid                 text NOT NULL,
    miner_hotkey         text NOT NULL,
    attestation_id       bigint NOT NULL,            -- the attestation this claim comes from
    submission_timestamp timestamptz NOT NULL,
    first_seen_at        timestamptz NOT NULL,       -- this miner's first attestation of the listing
    attestations         integer NOT NULL CHECK (attestations > 0), -- how many times this miner attested it
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
    PRIMARY KEY (zpid, miner_hotkey)
);
COMMENT ON TABLE resi.miner_claims IS 'Each miner''s newest report per listing: the votes of the consensus (derived from resi.miner_attestations).';
CREATE INDEX miner_claims_miner_hotkey_idx ON resi.miner_claims (miner_hotkey);

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
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'interrupted'))
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
    UNIQUE (object_key, etag)
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
SELECT pg_catalog.pg_extension_config_dump('resi.listings', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_attestations', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_attestations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_trust', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_submission_days', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_claims', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_runs', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_ledger', '');
SELECT pg_catalog.pg_extension_config_dump('resi.ingest_ledger_id_seq', '');
