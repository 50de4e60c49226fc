-- Consensus aggregates, native edition: the Rust entry points of resi.consensus_mode,
-- resi.consensus_median, resi.consensus_listing and resi.consensus_by_source and the aggregates
-- themselves (resi_pg/src/consensus/). What they promise is in sql/consensus.sql, shared by both
-- editions; the portable edition declares the same aggregates in sql/portable/consensus.sql.
--
-- Part of the native install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- before sql/consensus.sql). A change here ships an upgrade delta in sql/upgrade/.

-- Internal state with combine/serial/deserial functions, so parallel query (and partition-wise
-- aggregation) can split them. SSPACE is the typical state size of a listing-sized group (a few
-- distinct values, ~10 claims): without it the planner assumes 8 kB per group and avoids hash
-- aggregation.

-- The support functions of consensus_mode and consensus_median: plain fmgr entry points in Rust
-- (resi_pg/src/consensus/mod.rs, fmgr_function!), declared here as pgrx declared them before.
CREATE FUNCTION resi.consensus_mode_transition("state" internal, "value" text, "weight" double precision)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_transition_wrapper';
CREATE FUNCTION resi.consensus_median_transition("state" internal, "value" double precision,
                                                 "weight" double precision, "tolerance" double precision)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_transition_wrapper';
CREATE FUNCTION resi.consensus_mode_combine("first" internal, "second" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_combine_wrapper';
CREATE FUNCTION resi.consensus_median_combine("first" internal, "second" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_combine_wrapper';
CREATE FUNCTION resi.consensus_mode_serialize("state" internal) RETURNS bytea
    IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_serialize_wrapper';
CREATE FUNCTION resi.consensus_median_serialize("state" internal) RETURNS bytea
    IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_serialize_wrapper';
CREATE FUNCTION resi.consensus_mode_deserialize("bytes" bytea, "_unused" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_deserialize_wrapper';
CREATE FUNCTION resi.consensus_median_deserialize("bytes" bytea, "_unused" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_deserialize_wrapper';
CREATE FUNCTION resi.consensus_mode_final("state" internal) RETURNS resi.consensus
    IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_final_wrapper';
CREATE FUNCTION resi.consensus_median_final("state" internal) RETURNS resi.numeric_consensus
    IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_final_wrapper';

CREATE AGGREGATE resi.consensus_mode(value text, weight double precision) (
    STYPE        = internal,
    SSPACE       = 128,
    SFUNC        = resi.consensus_mode_transition,
    COMBINEFUNC  = resi.consensus_mode_combine,
    SERIALFUNC   = resi.consensus_mode_serialize,
    DESERIALFUNC = resi.consensus_mode_deserialize,
    FINALFUNC    = resi.consensus_mode_final,
    PARALLEL     = SAFE
);

CREATE AGGREGATE resi.consensus_median(value double precision, weight double precision, tolerance double precision) (
    STYPE        = internal,
    SSPACE       = 256,
    SFUNC        = resi.consensus_median_transition,
    COMBINEFUNC  = resi.consensus_median_combine,
    SERIALFUNC   = resi.consensus_median_serialize,
    DESERIALFUNC = resi.consensus_median_deserialize,
    FINALFUNC    = resi.consensus_median_final,
    PARALLEL     = SAFE
);

-- The transition functions of the listing aggregates: plain fmgr entry points too (they read
-- their 16 or 20 arguments in place), declared as pgrx declared them before.
CREATE FUNCTION resi.consensus_listing_transition(
    "state" internal, "zpid" text, "uri" text, "price" bigint, "address" text, "bedrooms" integer,
    "bathrooms" double precision, "living_area" integer, "home_type" text, "home_status" text,
    "days_on_zillow" integer, "zip_code" text, "city" text, "state_code" text,
    "latitude" double precision, "longitude" double precision, "weight" double precision)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_listing_transition_wrapper';
CREATE FUNCTION resi.consensus_by_source_transition(
    "state" internal, "zpid" text, "uri" text, "price" bigint, "address" text, "bedrooms" integer,
    "bathrooms" double precision, "living_area" integer, "home_type" text, "home_status" text,
    "days_on_zillow" integer, "zip_code" text, "city" text, "state_code" text,
    "latitude" double precision, "longitude" double precision, "trust" double precision,
    "member" text, "miner_hotkey" text, "signature" bigint, "submitted_at" timestamp with time zone)
    RETURNS internal IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_by_source_transition_wrapper';

CREATE AGGREGATE resi.consensus_listing(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision, weight double precision) (
    STYPE        = internal,
    SSPACE       = 2048,
    SFUNC        = resi.consensus_listing_transition,
    COMBINEFUNC  = resi.consensus_listing_combine,
    SERIALFUNC   = resi.consensus_listing_serialize,
    DESERIALFUNC = resi.consensus_listing_deserialize,
    FINALFUNC    = resi.consensus_listing_final,
    PARALLEL     = SAFE
);

CREATE AGGREGATE resi.consensus_by_source(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    trust double precision, member text, miner_hotkey text, signature bigint, submitted_at timestamptz) (
    STYPE        = internal,
    SSPACE       = 4096,
    SFUNC        = resi.consensus_by_source_transition,
    FINALFUNC    = resi.consensus_by_source_final,
    PARALLEL     = SAFE
);
