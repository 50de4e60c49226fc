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
--
-- Their COSTs tell the planner what a partial state costs against a row (issue 16), in its unit
-- cpu_operator_cost: what it charges a built-in operator such as float8pl, about 8 ns where
-- these were measured (operators added to a filter: ~9 ns each; scans and sum(): 5.5-10 ns per
-- cpu_operator_cost of their estimate). PostgreSQL 15 charges the transition function per input
-- row; in a parallel plan the serial function per partial group (Partial Aggregate, in each
-- worker), the deserial and combine functions per partial state the leader receives and the
-- final function per group (Finalize Aggregate); in the serial plan the final function per
-- group. It has no other charge per state or group, so the serial and final functions also
-- carry the creation of the state they end. With every COST at 1 a partial state cost no more
-- than a row, and at the default work_mem the planner split groups of 10 rows over workers:
-- each group then reaches the leader as two or three partial states, and the plan was slower
-- than the serial one. Measured per call over 1M rows (EXPLAIN ANALYZE against the same plan
-- with sum(w); groups of 10 and of 10,000; 2 workers), mode / median:
--   transition   ~40 ns / ~40 ns a row more than float8pl                          6 / 6
--   serialize    create a group's state ~0.6 / ~0.4 us, write it ~0.4 / ~0.85 us  125 / 150
--   deserialize  passes the bytes on (the combine function reads them)             1 / 1
--   combine      merge a partial state's bytes ~0.35 / ~0.7 us                    45 / 85
--   final        create a group's state ~0.6 / ~0.4 us, the result ~0.45 / ~0.55 us 130 / 120
-- With them the planner aggregates many small groups serially and few large groups in parallel,
-- at the default settings and with a large work_mem (tests/tests/consensus.rs).
CREATE FUNCTION resi.consensus_mode_transition("state" internal, "value" text, "weight" double precision)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 6
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_transition_wrapper';
CREATE FUNCTION resi.consensus_median_transition("state" internal, "value" double precision,
                                                 "weight" double precision, "tolerance" double precision)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 6
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_transition_wrapper';
CREATE FUNCTION resi.consensus_mode_combine("first" internal, "second" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 45
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_combine_wrapper';
CREATE FUNCTION resi.consensus_median_combine("first" internal, "second" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 85
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_combine_wrapper';
CREATE FUNCTION resi.consensus_mode_serialize("state" internal) RETURNS bytea
    IMMUTABLE PARALLEL SAFE COST 125
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_serialize_wrapper';
CREATE FUNCTION resi.consensus_median_serialize("state" internal) RETURNS bytea
    IMMUTABLE PARALLEL SAFE COST 150
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_serialize_wrapper';
CREATE FUNCTION resi.consensus_mode_deserialize("bytes" bytea, "_unused" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 1
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_deserialize_wrapper';
CREATE FUNCTION resi.consensus_median_deserialize("bytes" bytea, "_unused" internal)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 1
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_deserialize_wrapper';
CREATE FUNCTION resi.consensus_mode_final("state" internal) RETURNS resi.consensus
    IMMUTABLE PARALLEL SAFE COST 130
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_final_wrapper';
CREATE FUNCTION resi.consensus_median_final("state" internal) RETURNS resi.numeric_consensus
    IMMUTABLE PARALLEL SAFE COST 120
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

-- The same two aggregates with a state of a concrete type, which Citus can split over its
-- workers (resi_pg/src/consensus/tally.rs): resi.distributed_consensus_mode and
-- resi.distributed_consensus_median. The state is an expanded object while a group is
-- aggregated; its flat and text forms are the binary form the serial functions above write
-- (text: `\x` and hex). The support functions are callable from SQL (their types are real), so
-- the transition and combine functions check that an aggregate calls them (0A000) and every
-- flat input is validated.
CREATE TYPE resi.consensus_mode_tally;
CREATE FUNCTION resi.consensus_mode_tally_in("text" cstring) RETURNS resi.consensus_mode_tally
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_in_wrapper';
CREATE FUNCTION resi.consensus_mode_tally_out("tally" resi.consensus_mode_tally) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_out_wrapper';
CREATE TYPE resi.consensus_mode_tally (
    INPUT          = resi.consensus_mode_tally_in,
    OUTPUT         = resi.consensus_mode_tally_out,
    INTERNALLENGTH = VARIABLE,
    STORAGE        = extended
);
COMMENT ON TYPE resi.consensus_mode_tally IS
    'The state of resi.distributed_consensus_mode: each distinct value with its summed weight and supporters.';

CREATE TYPE resi.consensus_median_tally;
CREATE FUNCTION resi.consensus_median_tally_in("text" cstring) RETURNS resi.consensus_median_tally
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_in_wrapper';
CREATE FUNCTION resi.consensus_median_tally_out("tally" resi.consensus_median_tally) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_out_wrapper';
CREATE TYPE resi.consensus_median_tally (
    INPUT          = resi.consensus_median_tally_in,
    OUTPUT         = resi.consensus_median_tally_out,
    INTERNALLENGTH = VARIABLE,
    STORAGE        = extended
);
COMMENT ON TYPE resi.consensus_median_tally IS
    'The state of resi.distributed_consensus_median: the tolerance and each distinct value with its summed weight and count.';

CREATE FUNCTION resi.consensus_mode_tally_transition("state" resi.consensus_mode_tally, "value" text, "weight" double precision)
    RETURNS resi.consensus_mode_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_transition_wrapper';
CREATE FUNCTION resi.consensus_median_tally_transition("state" resi.consensus_median_tally, "value" double precision,
                                                "weight" double precision, "tolerance" double precision)
    RETURNS resi.consensus_median_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_transition_wrapper';
CREATE FUNCTION resi.consensus_mode_tally_combine("first" resi.consensus_mode_tally, "second" resi.consensus_mode_tally)
    RETURNS resi.consensus_mode_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_combine_wrapper';
CREATE FUNCTION resi.consensus_median_tally_combine("first" resi.consensus_median_tally, "second" resi.consensus_median_tally)
    RETURNS resi.consensus_median_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_combine_wrapper';
CREATE FUNCTION resi.consensus_mode_tally_final("state" resi.consensus_mode_tally) RETURNS resi.consensus
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_final_wrapper';
CREATE FUNCTION resi.consensus_median_tally_final("state" resi.consensus_median_tally) RETURNS resi.numeric_consensus
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_final_wrapper';

CREATE AGGREGATE resi.distributed_consensus_mode(value text, weight double precision) (
    STYPE       = resi.consensus_mode_tally,
    SFUNC       = resi.consensus_mode_tally_transition,
    COMBINEFUNC = resi.consensus_mode_tally_combine,
    FINALFUNC   = resi.consensus_mode_tally_final,
    PARALLEL    = SAFE
);

CREATE AGGREGATE resi.distributed_consensus_median(value double precision, weight double precision, tolerance double precision) (
    STYPE       = resi.consensus_median_tally,
    SFUNC       = resi.consensus_median_tally_transition,
    COMBINEFUNC = resi.consensus_median_tally_combine,
    FINALFUNC   = resi.consensus_median_tally_final,
    PARALLEL    = SAFE
);

-- The transition functions of the listing aggregates: plain fmgr entry points too (they read
-- their 16 or 20 arguments in place), declared as pgrx declared them before. consensus_listing's
-- support functions have COSTs measured as above (resi_pg/src/consensus/listing.rs declares the
-- other four): per row ~1.1 us (135), per partial state ~15 us to create and write it (1,800),
-- ~4 us to read and merge it (combine and deserialize, 250 each), per group ~59 us (7,400); so
-- over listings of ~10 claims the planner aggregates serially (a parallel plan was 0.57x).
CREATE FUNCTION resi.consensus_listing_transition(
    "state" internal, "zpid" text, "uri" text, "price" bigint, "address" text, "bedrooms" integer,
    "bathrooms" double precision, "living_area" integer, "home_type" text, "home_status" text,
    "days_on_zillow" integer, "zip_code" text, "city" text, "state_code" text,
    "latitude" double precision, "longitude" double precision, "weight" double precision)
    RETURNS internal IMMUTABLE PARALLEL SAFE COST 135
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
