-- resi_pg 0.2.0 → 0.3.0: a listing's consensus in one aggregate; cheaper refreshes.
--
-- Brings a 0.2.0 database to exactly what CREATE EXTENSION resi_pg VERSION '0.3.0' creates
-- (tests/tests/upgrade.rs compares the two catalogues). Released upgrade scripts are never edited.
--
-- New: resi.consensus_listing (aggregate and result type): every field of a listing from its
-- claims in one pass, with consensus_score and field_consensus built in Rust. resi.listing_consensus
-- now returns typed values (as resi.listings has them) plus field_consensus; resi.refresh_consensus
-- writes only listings whose consensus changed and moves last_updated_at only when a value did.
-- resi.listings gets fillfactor 80 (HOT updates) and LZ4 compression of field_consensus.
-- Existing rows are kept as they are; nothing needs a refresh.

\echo Use "ALTER EXTENSION resi_pg UPDATE TO '0.3.0'" to load this file. \quit

-- Types ------------------------------------------------------------------------------------------
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

-- Rust support functions of resi.consensus_listing -------------------------------------------
CREATE FUNCTION resi.consensus_listing_transition(
	"state" internal, /* Internal */
	"zpid" TEXT, /* Option < & str > */
	"uri" TEXT, /* Option < & str > */
	"price" bigint, /* Option < i64 > */
	"address" TEXT, /* Option < & str > */
	"bedrooms" INT, /* Option < i32 > */
	"bathrooms" double precision, /* Option < f64 > */
	"living_area" INT, /* Option < i32 > */
	"home_type" TEXT, /* Option < & str > */
	"home_status" TEXT, /* Option < & str > */
	"days_on_zillow" INT, /* Option < i32 > */
	"zip_code" TEXT, /* Option < & str > */
	"city" TEXT, /* Option < & str > */
	"state_code" TEXT, /* Option < & str > */
	"latitude" double precision, /* Option < f64 > */
	"longitude" double precision, /* Option < f64 > */
	"weight" double precision /* Option < f64 > */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_listing_transition_wrapper';

CREATE FUNCTION resi.consensus_listing_combine(
	"first" internal, /* Internal */
	"second" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_listing_combine_wrapper';

CREATE FUNCTION resi.consensus_listing_serialize(
	"state" internal /* Internal */
) RETURNS bytea /* :: std :: option :: Option < Vec < u8 > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_listing_serialize_wrapper';

CREATE FUNCTION resi.consensus_listing_deserialize(
	"bytes" bytea, /* Option < & [u8] > */
	"_unused" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_listing_deserialize_wrapper';

CREATE FUNCTION resi.consensus_listing_final(
	"state" internal /* Internal */
) RETURNS resi.consensus_listing /* Option < :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox ::
AllocatedByRust > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_listing_final_wrapper';

-- Aggregate -------------------------------------------------------------------------------------
-- Every field of one listing at once (resi_pg/src/consensus/listing.rs): per field exactly what
-- resi.consensus_mode / resi.consensus_median give (tolerances: price 0.01, living_area 0.02,
-- days_on_zillow 0.1, latitude/longitude 1e-6), in one call per claim; what resi.listing_consensus
-- and resi.refresh_consensus use.
CREATE AGGREGATE resi.consensus_listing(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision, weight double precision) (
    STYPE        = internal,
    SFUNC        = resi.consensus_listing_transition,
    COMBINEFUNC  = resi.consensus_listing_combine,
    SERIALFUNC   = resi.consensus_listing_serialize,
    DESERIALFUNC = resi.consensus_listing_deserialize,
    FINALFUNC    = resi.consensus_listing_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_listing(text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision) IS
    'A listing''s consensus from its claims (one row per miner, weighted by trust): every field as resi.consensus_mode / resi.consensus_median give it, a uri only when it names the zpid, bathrooms rounded to 0.1 within 0..99.9; with consensus_score and the per-field field_consensus jsonb. NULL when no claim has a voting weight.';

-- resi.listings: HOT-friendly updates, LZ4 field_consensus, last_updated_at's meaning ------------
ALTER TABLE resi.listings SET (fillfactor = 80);
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

-- The view now returns typed values and field_consensus (its column types change) -----------
DROP VIEW resi.listing_consensus;

-- One row per zpid with a claim: every field's trust-weighted consensus. Numbers use the
-- weighted median with a relative tolerance (price 1%, living_area 2%, days_on_zillow 10%,
-- latitude/longitude 1e-6, about 3-10 m); categories use the weighted vote. A miner's weight
-- is its trust (resi.initial_trust() when unknown). A uri only votes when it names the zpid
-- it is reported for, so one listing can never take another's uri. consensus_score is the
-- mean confidence of the fields that have a consensus.
CREATE VIEW resi.listing_consensus AS
SELECT zpid,
       first_seen_at,
       total_attestations,
       unique_miners_count,
       (c).consensus_score,
       (c).uri, (c).price, (c).address, (c).bedrooms, (c).bathrooms, (c).living_area, (c).home_type,
       (c).home_status, (c).days_on_zillow, (c).zip_code, (c).city, (c).state, (c).latitude, (c).longitude,
       voting_miners,
       trust_fingerprint,
       (c).field_consensus
  FROM (SELECT c.zpid,
               min(c.first_seen_at) AS first_seen_at,
               sum(c.attestations)::integer AS total_attestations,
               count(*)::integer AS unique_miners_count,
               count(*) FILTER (WHERE w.trust > 0)::integer AS voting_miners,
               bit_xor(resi.trust_fingerprint(c.miner_hotkey, w.trust)) AS trust_fingerprint,
               resi.consensus_listing(c.zpid, c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area,
                                      c.home_type, c.home_status, c.days_on_zillow, c.zip_code, c.city, c.state,
                                      c.latitude, c.longitude, w.trust) AS c
          FROM resi.miner_claims c
          LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.miner_hotkey
         CROSS JOIN LATERAL (SELECT coalesce(t.trust_score, resi.initial_trust()) AS trust) w
         GROUP BY c.zpid) per_listing;
COMMENT ON VIEW resi.listing_consensus IS
    'Trust-weighted consensus of every listing, computed from resi.miner_claims (what resi.refresh_consensus writes into resi.listings).';

-- refresh_consensus: one aggregate per listing, unchanged rows skipped -------------------------
-- Write the consensus of `zpids` (all listings with claims when NULL) into resi.listings.
-- Rows are locked in zpid order first, so concurrent folds of overlapping listings queue
-- instead of overwriting each other with a consensus that misses the other's claims.
CREATE OR REPLACE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    refreshed integer;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'resi.refresh_consensus needs READ COMMITTED isolation, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Each statement must see the claims other loaders committed while it waited for the listing locks.';
    END IF;
    -- Placeholders for new listings, then row locks in a fixed order.
    INSERT INTO resi.listings (zpid)
    SELECT DISTINCT c.zpid FROM resi.miner_claims c WHERE c.zpid = ANY (zpids) ORDER BY 1
    ON CONFLICT (zpid) DO NOTHING;
    IF zpids IS NULL THEN
        PERFORM 1 FROM resi.listings ORDER BY zpid FOR UPDATE;
    ELSE
        PERFORM 1 FROM resi.listings WHERE zpid = ANY (zpids) ORDER BY zpid FOR UPDATE;
    END IF;

    -- A new statement: its snapshot includes every claim committed before the locks were granted.
    -- Only rows whose consensus changed are written, and last_updated_at moves only when a value
    -- did: a refresh that changes confidences or counts alone touches no indexed column and can
    -- be a HOT update (resi.listings has fillfactor 80).
    WITH fresh AS MATERIALIZED (
        SELECT * FROM resi.listing_consensus WHERE zpids IS NULL OR zpid = ANY (zpids)
    ), written AS (
        UPDATE resi.listings l SET
            (uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
             zip_code, city, state, latitude, longitude) =
            (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type, f.home_status,
             f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude),
            last_updated_at     = CASE WHEN (l.uri, l.price, l.address, l.bedrooms, l.bathrooms, l.living_area,
                                             l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                                             l.state, l.latitude, l.longitude)
                                        IS DISTINCT FROM
                                            (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area,
                                             f.home_type, f.home_status, f.days_on_zillow, f.zip_code, f.city,
                                             f.state, f.latitude, f.longitude)
                                       THEN now() ELSE l.last_updated_at END,
            first_seen_at       = least(l.first_seen_at, f.first_seen_at),
            consensus_score     = f.consensus_score,
            total_attestations  = f.total_attestations,
            unique_miners_count = f.unique_miners_count,
            voting_miners       = f.voting_miners,
            trust_fingerprint   = f.trust_fingerprint,
            field_consensus     = coalesce(f.field_consensus, '{}')
          FROM fresh f
         WHERE l.zpid = f.zpid
           AND (l.uri, l.price, l.address, l.bedrooms, l.bathrooms, l.living_area, l.home_type, l.home_status,
                l.days_on_zillow, l.zip_code, l.city, l.state, l.latitude, l.longitude,
                least(l.first_seen_at, f.first_seen_at), l.consensus_score, l.total_attestations,
                l.unique_miners_count, l.voting_miners, l.trust_fingerprint, l.field_consensus)
               IS DISTINCT FROM
               (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type, f.home_status,
                f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude,
                l.first_seen_at, f.consensus_score, f.total_attestations,
                f.unique_miners_count, f.voting_miners, f.trust_fingerprint, coalesce(f.field_consensus, '{}'))
    )
    SELECT count(*) INTO refreshed FROM fresh;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus(text[]) IS
    'Recompute the consensus of the given listings (all when NULL) from resi.miner_claims into resi.listings, e.g. after trust changes; rows whose consensus did not change are not rewritten. Returns the number of listings recomputed.';
