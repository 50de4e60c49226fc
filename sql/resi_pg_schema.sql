-- resi_pg schema, version 0.4.0: types and tables of the `resi` schema.
--
-- Every change to this file ships an upgrade script sql/resi_pg--OLD--NEW.sql that brings an
-- installed database to the same state (new columns go at the end of their table, so a fresh
-- install and an upgraded one are identical; tests/tests/upgrade.rs compares them).
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

-- resi.consensus_listing(zpid, uri, price, …, longitude, weight): every field of a listing at
-- once, typed as in resi.listings, with the per-field detail as resi.listings.field_consensus.
CREATE TYPE resi.consensus_listing AS (
    uri             text,
    price           bigint,
    address         text,
    bedrooms        integer,
    bathrooms       numeric(3,1),
    living_area     integer,
    home_type       text,
    home_status     text,
    days_on_zillow  integer,
    zip_code        text,
    city            text,
    state           text,
    latitude        double precision,
    longitude       double precision,
    consensus_score real,  -- mean confidence of the fields that have a consensus
    field_consensus jsonb  -- per field: the members of its resi.consensus / resi.numeric_consensus
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

-- resi.submission_quality(zpid text, price double precision, zip_code text)
CREATE TYPE resi.quality_report AS (
    score           double precision, -- 1.0 times the factor of every issue found
    issues          text[],           -- issue codes, in a fixed order (empty: none)
    rows            integer,          -- rows aggregated
    duplicate_zpids integer,          -- rows whose zpid already appeared earlier in the submission
    distinct_zips   integer           -- distinct non-NULL zip codes
);

-- resi.ingest_settings(): the ingest and penalty settings in effect, typed
CREATE TYPE resi.ingest_settings AS (
    max_submission_rows        integer,  -- resi.max_submission_rows: larger objects are rejected (too_large)
    over_limit_strike_attempts integer,  -- resi.over_limit_strike_attempts: over-limit objects in a UTC day that earn a strike
    strikes_per_ban            integer,  -- resi.strikes_per_ban
    ban_duration               interval, -- resi.ban_duration: the first ban; each later ban lasts twice the one before
    max_ban_duration           interval  -- resi.max_ban_duration: the cap of that doubling
);

-- resi.miner_status(hotkey text)
CREATE TYPE resi.miner_status AS (
    miner_hotkey         text,
    known                boolean,          -- has a row in resi.miner_trust
    trust_score          double precision, -- resi.initial_trust() when unknown
    accuracy_score       double precision,
    duplicate_rate       double precision,
    total_submissions    bigint,
    daily_allowance      integer,          -- resi.rate_limit_for(trust_score)
    submissions_today    integer,          -- on the current UTC day
    remaining_today      integer,
    strikes              integer,          -- since the last ban
    strikes_until_ban    integer,
    bans                 integer,          -- bans so far; the next one lasts longer
    banned_until         timestamptz,      -- NULL when not banned now
    ban_reason           text,
    explanation          text              -- the above as one sentence
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
    field_consensus     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- 0.2.0: miners whose claim carries weight (trust > 0); a listing is corroborated when >= 2.
    voting_miners       integer NOT NULL DEFAULT 0 CHECK (voting_miners >= 0),
    -- 0.2.0: the miners and trusts the consensus was computed with (resi.trust_fingerprint);
    -- when it differs from theirs now, the listing is stale (resi.refresh_stale_consensus).
    trust_fingerprint   bigint
) WITH (fillfactor = 80); -- 0.3.0: room on the page, so a refresh that changes no indexed value is a HOT update
COMMENT ON TABLE resi.listings IS 'One row per property (zpid): the trust-weighted consensus of all miners'' attestations.';
COMMENT ON COLUMN resi.listings.consensus_score IS 'Overall confidence in the listing, 0..1.';
COMMENT ON COLUMN resi.listings.field_consensus IS 'Per field: value, confidence, agreement, supporters, voters.';
COMMENT ON COLUMN resi.listings.last_updated_at IS 'When a consensus value last changed (or the listing appeared); a refresh that only moves confidences or counts keeps it.';

-- 0.3.0: field_consensus is rewritten by every refresh; LZ4 compresses it several times faster
-- than the default pglz. Only where the server was built with LZ4 (Debian's and most are).
DO $$
BEGIN
    IF 'lz4' = ANY ((SELECT enumvals FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression')::text[]) THEN
        ALTER TABLE resi.listings ALTER COLUMN field_consensus SET COMPRESSION lz4;
    END IF;
END
$$;

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
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- 0.2.0: the counters behind the rates above, bans, and when trust last moved.
    validations_failed    bigint NOT NULL DEFAULT 0 CHECK (validations_failed >= 0),
    rows_submitted        bigint NOT NULL DEFAULT 0 CHECK (rows_submitted >= 0),
    duplicate_rows        bigint NOT NULL DEFAULT 0 CHECK (duplicate_rows >= 0),
    fields_compared       bigint NOT NULL DEFAULT 0 CHECK (fields_compared >= 0),
    fields_agreed         bigint NOT NULL DEFAULT 0 CHECK (fields_agreed >= 0),
    bans                  integer NOT NULL DEFAULT 0 CHECK (bans >= 0),
    trust_changed_at      timestamptz -- when trust_score last changed
);
COMMENT ON TABLE resi.miner_trust IS 'Per miner: trust score (consensus weight), submission counters, rate-limit and ban state.';
COMMENT ON COLUMN resi.miner_trust.duplicate_rate IS 'duplicate_rows / rows_submitted: rows whose zpid the same submission already had.';
COMMENT ON COLUMN resi.miner_trust.accuracy_score IS 'fields_agreed / fields_compared: the share of the miner''s field values that agreed with the resulting consensus, on listings another miner also claims.';
COMMENT ON COLUMN resi.miner_trust.banned_until IS 'The miner is banned while now() < banned_until (''infinity'' for good).';

-- Submissions per miner per UTC day: what resi.check_miner_rate_limit counts against, kept per
-- day so a backfill of history is judged day by day.
CREATE TABLE resi.miner_submission_days (
    miner_hotkey text NOT NULL,
    day          date NOT NULL,
    submissions  integer NOT NULL CHECK (submissions >= 0),
    PRIMARY KEY (miner_hotkey, day),
    -- 0.2.0: objects refused for being over the day's allowance (each counted once).
    over_limit_attempts integer NOT NULL DEFAULT 0 CHECK (over_limit_attempts >= 0)
);
COMMENT ON TABLE resi.miner_submission_days IS 'Submissions (uploaded objects) per miner per UTC day, for rate limiting.';

-- Strikes and bans, newest last: what resi.miner_status explains.
CREATE TABLE resi.miner_penalties (
    id           bigserial PRIMARY KEY,
    miner_hotkey text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('strike', 'ban')),
    reason       text NOT NULL,
    banned_until timestamptz -- kind = 'ban'
);
COMMENT ON TABLE resi.miner_penalties IS 'Every strike and ban given to a miner, with its reason.';
CREATE INDEX miner_penalties_miner_hotkey_idx ON resi.miner_penalties (miner_hotkey, at);

-- Values no submission may contain: a match costs the submission's quality (issue `blacklisted`).
CREATE TABLE resi.blacklist (
    id       bigserial PRIMARY KEY,
    field    text NOT NULL CHECK (field IN ('zpid', 'zip_code')),
    match    text NOT NULL CHECK (match IN ('exact', 'pattern')), -- pattern: a POSIX regular expression (~)
    value    text NOT NULL,
    reason   text NOT NULL,
    added_by text NOT NULL DEFAULT current_user,
    added_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (field, match, value)
);
COMMENT ON TABLE resi.blacklist IS 'Known-bad zpids and zip codes (exact or POSIX pattern); see resi.add_blacklist_entry.';

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
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    -- 0.4.0: the loader's backend; a run still 'running' whose backend is gone was interrupted.
    backend_pid integer DEFAULT pg_catalog.pg_backend_pid()
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
SELECT pg_catalog.pg_extension_config_dump('resi.miner_penalties', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_penalties_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.blacklist', '');
SELECT pg_catalog.pg_extension_config_dump('resi.blacklist_id_seq', '');
