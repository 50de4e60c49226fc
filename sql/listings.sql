-- Listings: one row per property with its consensus, every miner's report of it
-- (attestations) and each miner's newest report per listing (claims, the votes of the
-- consensus); the canonical form and hash of a listing as jsonb.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

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
    trust_fingerprint   bigint,
    -- 0.5.0: independent sources with weight (resi.listing_consensus): a value backed by one
    -- source is not corroborated however many hotkeys report it.
    voting_groups       integer NOT NULL DEFAULT 0 CHECK (voting_groups >= 0),
    -- 0.5.0: when the validator saw the listing whose values these are (resi.record_audit);
    -- NULL when they are the miners' consensus.
    audited_at          timestamptz
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
    scraped_at           timestamptz, -- the row's own scrape time (the Parquet `datetime` column)
    -- 0.5.0: resi.claim_signature of the row, shared exactly by byte copies; NULL without a
    -- scrape time (reports without one are not told apart from independent ones by it).
    signature            bigint,
    -- 0.5.0: the verdict of resi.record_validation (NULL: not validated, or validated before
    -- 0.5.0 kept it); failed reports that repeat each other's values are evidence of dependence.
    validation_passed    boolean
);
COMMENT ON TABLE resi.miner_attestations IS 'Each miner''s report of a listing in one upload; consensus is recomputable from these rows alone.';

CREATE INDEX miner_attestations_miner_hotkey_idx         ON resi.miner_attestations (miner_hotkey);
CREATE INDEX miner_attestations_submission_timestamp_idx ON resi.miner_attestations (submission_timestamp);
CREATE INDEX miner_attestations_zpid_idx                 ON resi.miner_attestations (zpid);
-- The validated reports by when (resi.validation_verdicts_between), which resi.find_dependent_miners
-- reads after every loader pass: few.
CREATE INDEX miner_attestations_validated_idx ON resi.miner_attestations (validation_timestamp)
    WHERE validation_passed IS NOT NULL;

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
    signature            bigint,                    -- 0.5.0: the attestation's signature
    PRIMARY KEY (zpid, miner_hotkey)
);
COMMENT ON TABLE resi.miner_claims IS 'Each miner''s newest report per listing: the votes of the consensus (derived from resi.miner_attestations).';
CREATE INDEX miner_claims_miner_hotkey_idx ON resi.miner_claims (miner_hotkey);

-- pg_dump keeps the rows of these tables (an extension's tables are otherwise dumped empty).
SELECT pg_catalog.pg_extension_config_dump('resi.listings', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_attestations', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_attestations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_claims', '');

-- ---------------------------------------------------------------------------------------------
-- Canonical listing hash over jsonb (inlined; the Rust text form does the work).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.listing_hash(listing jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN resi.listing_hash(listing::text);
COMMENT ON FUNCTION resi.listing_hash(jsonb) IS
    'SHA-256 hex of the canonical form of a listing: keys sorted, null members dropped, strings trimmed and NFC, numbers as shortest round-trip doubles.';

CREATE FUNCTION resi.canonical_listing(listing jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN resi.canonical_listing(listing::text);
COMMENT ON FUNCTION resi.canonical_listing(jsonb) IS 'The canonical JSON text that resi.listing_hash hashes.';

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.listing_hash(text) IS
    'SHA-256 hex of the canonical form of a JSON text (keys sorted, null members dropped, strings trimmed and NFC, numbers as shortest round-trip doubles). Errors: not JSON or nested deeper than 128 levels 22P02; a number outside the double range 22003.';
COMMENT ON FUNCTION resi.canonical_listing(text) IS
    'The canonical JSON text of a JSON text that resi.listing_hash hashes; errors as resi.listing_hash.';
COMMENT ON FUNCTION resi.sha256_hex(bytea) IS
    'Lower-case hex SHA-256 of the bytes.';
COMMENT ON FUNCTION resi.sha256_hex(text) IS
    'Lower-case hex SHA-256 of the text''s UTF-8 bytes.';
