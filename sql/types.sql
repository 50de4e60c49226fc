-- Types: the composite results of the SQL API (what the Rust functions and aggregates return).
-- Bootstrap: created before any Rust function, which needs them as result types.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

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

-- 0.5.0: resi.consensus_by_source(…): a listing's consensus with one vote per independent source.
CREATE TYPE resi.source_consensus AS (
    voting_groups integer,                -- sources whose vote has weight (trust > 0)
    listing       resi.consensus_listing  -- NULL when no field has a consensus
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

-- 0.5.0: one submission's verdict, what resi.judge_submissions applies: the rows of one miner,
-- ledger row, file and upload time in a fold, judged against the consensus they helped form.
CREATE TYPE resi.submission_verdict AS (
    miner_hotkey         text,
    ledger_id            bigint,           -- resi.ingest_ledger.id (NULL: not sent by a loader)
    s3_file_path         text,
    submission_timestamp timestamptz,
    quality              resi.quality_report,
    rows                 bigint,           -- staged rows
    fields_compared      bigint,           -- fields a corroborated consensus could judge
    fields_agreed        bigint,           -- of those, agreeing within the tolerance
    corroborated_rows    bigint,           -- rows with at least one field judged
    agreeing_rows        bigint            -- of those, agreeing in every judged field
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
    explanation          text,             -- the above as one sentence
    -- 0.5.0: what trust is earned from (resi.earned_trust), and the miner's group.
    audited_claims       bigint,           -- claims judged by audits and validations (resi.miner_trust)
    wrong_claims         bigint,           -- of those, found wrong
    group_hotkey         text,             -- resi.miner_groups: the group it votes with (NULL: alone)
    group_members        integer,          -- miners in that group (1 when alone)
    dependence           text              -- the evidence of resi.miner_dependence that involves the miner (the first three pairs)
);
