-- resi_pg 0.2.0 → 0.3.0: a listing's consensus in one aggregate; cheaper refreshes and folds.
--
-- Brings a 0.2.0 database to exactly what CREATE EXTENSION resi_pg VERSION '0.3.0' creates
-- (tests/tests/upgrade.rs compares the two catalogues). Released upgrade scripts are never edited.
--
-- New: resi.consensus_listing (aggregate and result type): every field of a listing from its
-- claims in one pass, with consensus_score and field_consensus built in Rust. resi.listing_consensus
-- now returns typed values (as resi.listings has them) plus field_consensus; resi.refresh_consensus
-- writes only listings whose consensus changed and moves last_updated_at only when a value did;
-- the fold looks each staged row's listing up by primary key whatever the statistics say.
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
    SSPACE       = 2048,
    SFUNC        = resi.consensus_listing_transition,
    COMBINEFUNC  = resi.consensus_listing_combine,
    SERIALFUNC   = resi.consensus_listing_serialize,
    DESERIALFUNC = resi.consensus_listing_deserialize,
    FINALFUNC    = resi.consensus_listing_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_listing(text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision) IS
    'A listing''s consensus from its claims (one row per miner, weighted by trust): every field as resi.consensus_mode / resi.consensus_median give it, a uri only when it names the zpid, bathrooms rounded to 0.1 within 0..99.9; with consensus_score and the per-field field_consensus jsonb. NULL when no claim has a voting weight.';

-- The state size estimates (SSPACE) of the consensus aggregates, so the planner considers hash
-- aggregation. CREATE AGGREGATE cannot change it and DROP would fail on the users' views that
-- use the aggregates, so the catalogue row is updated in place (the extension is superuser-only).
UPDATE pg_catalog.pg_aggregate SET aggtransspace = 128
 WHERE aggfnoid = 'resi.consensus_mode(text, double precision)'::pg_catalog.regprocedure;
UPDATE pg_catalog.pg_aggregate SET aggtransspace = 256
 WHERE aggfnoid = 'resi.consensus_median(double precision, double precision, double precision)'::pg_catalog.regprocedure;

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
           -- Cheap columns first: the comparison stops at the first difference.
           AND (l.total_attestations, l.unique_miners_count, l.voting_miners, l.trust_fingerprint,
                l.consensus_score, least(l.first_seen_at, f.first_seen_at), l.uri, l.price, l.address, l.bedrooms,
                l.bathrooms, l.living_area, l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                l.state, l.latitude, l.longitude, l.field_consensus)
               IS DISTINCT FROM
               (f.total_attestations, f.unique_miners_count, f.voting_miners, f.trust_fingerprint,
                f.consensus_score, l.first_seen_at, f.uri, f.price, f.address, f.bedrooms,
                f.bathrooms, f.living_area, f.home_type, f.home_status, f.days_on_zillow, f.zip_code, f.city,
                f.state, f.latitude, f.longitude, coalesce(f.field_consensus, '{}'))
    )
    SELECT count(*) INTO refreshed FROM fresh;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus(text[]) IS
    'Recompute the consensus of the given listings (all when NULL) from resi.miner_claims into resi.listings, e.g. after trust changes; rows whose consensus did not change are not rewritten. Returns the number of listings recomputed.';

-- The fold: primary-key lookups of the staged rows' listings --------------------------------
CREATE OR REPLACE FUNCTION resi.fold_staged_listings() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub         record;
    trust_after double precision;
BEGIN
    -- History: every reported row is an attestation. Then each miner's newest report per
    -- listing becomes (or stays) its claim; an older upload loaded late does not override a
    -- newer claim, but still counts as an attestation.
    WITH attested AS (
        INSERT INTO resi.miner_attestations
            (miner_hotkey, zpid, submission_timestamp, job_id, s3_file_path, record_count, data_hash,
             uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
             days_on_zillow, zip_code, city, state, latitude, longitude, scraped_at)
        SELECT miner_hotkey, zpid, submission_timestamp, job_id, s3_file_path, record_count, data_hash,
               uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
               days_on_zillow, zip_code, city, state, latitude, longitude, scraped_at
          FROM staged
        RETURNING *
    )
    INSERT INTO resi.miner_claims AS c
    SELECT DISTINCT ON (a.zpid, a.miner_hotkey)
           a.zpid, a.miner_hotkey, a.id, a.submission_timestamp,
           min(a.submission_timestamp) OVER w, count(*) OVER w,
           a.uri, a.price, a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status,
           a.days_on_zillow, a.zip_code, a.city, a.state, a.latitude, a.longitude
      FROM attested a
    WINDOW w AS (PARTITION BY a.zpid, a.miner_hotkey)
     ORDER BY a.zpid, a.miner_hotkey, a.submission_timestamp DESC, a.id DESC
    ON CONFLICT (zpid, miner_hotkey) DO UPDATE SET
        attestations  = c.attestations + excluded.attestations,
        first_seen_at = least(c.first_seen_at, excluded.first_seen_at),
        (attestation_id, submission_timestamp, uri, price, address, bedrooms, bathrooms, living_area,
         home_type, home_status, days_on_zillow, zip_code, city, state, latitude, longitude) =
        (SELECT CASE WHEN newer THEN x.attestation_id ELSE c.attestation_id END,
                CASE WHEN newer THEN x.submission_timestamp ELSE c.submission_timestamp END,
                CASE WHEN newer THEN x.uri ELSE c.uri END,
                CASE WHEN newer THEN x.price ELSE c.price END,
                CASE WHEN newer THEN x.address ELSE c.address END,
                CASE WHEN newer THEN x.bedrooms ELSE c.bedrooms END,
                CASE WHEN newer THEN x.bathrooms ELSE c.bathrooms END,
                CASE WHEN newer THEN x.living_area ELSE c.living_area END,
                CASE WHEN newer THEN x.home_type ELSE c.home_type END,
                CASE WHEN newer THEN x.home_status ELSE c.home_status END,
                CASE WHEN newer THEN x.days_on_zillow ELSE c.days_on_zillow END,
                CASE WHEN newer THEN x.zip_code ELSE c.zip_code END,
                CASE WHEN newer THEN x.city ELSE c.city END,
                CASE WHEN newer THEN x.state ELSE c.state END,
                CASE WHEN newer THEN x.latitude ELSE c.latitude END,
                CASE WHEN newer THEN x.longitude ELSE c.longitude END
           FROM (SELECT excluded.*, (excluded.submission_timestamp, excluded.attestation_id)
                                    >= (c.submission_timestamp, c.attestation_id) AS newer) x);

    PERFORM resi.refresh_consensus(ARRAY(SELECT DISTINCT zpid FROM staged ORDER BY 1));

    -- Each submission's verdict, against the consensus it helped form: quality report, agreement,
    -- then trust, counters, strikes, and the ledger row. A submission is the rows of this
    -- statement with one miner, ledger row, file and submission time (one loader object).
    -- Submissions of one miner are applied oldest first; miners in hotkey order (lock order).
    FOR sub IN
        SELECT s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp,
               resi.submission_quality(s.zpid, s.price, s.zip_code) AS quality,
               count(*) AS rows,
               coalesce(sum(v.compared), 0) AS fields_compared,
               coalesce(sum(v.agreed), 0) AS fields_agreed,
               count(*) FILTER (WHERE v.compared > 0) AS corroborated_rows,
               count(*) FILTER (WHERE v.compared > 0 AND v.agreed = v.compared) AS agreeing_rows
          FROM staged s
          -- One primary-key lookup per staged row, whatever the statistics say (OFFSET 0 keeps
          -- the planner from turning it into a join it may misestimate while the table grows).
          LEFT JOIN LATERAL (SELECT l FROM resi.listings l
                              WHERE l.zpid = s.zpid AND l.voting_miners >= 2 OFFSET 0) corroborated ON true
         CROSS JOIN LATERAL resi.consensus_agreement(
                 s.uri, s.price, s.address, s.bedrooms, s.bathrooms, s.living_area, s.home_type, s.home_status,
                 s.days_on_zillow, s.zip_code, s.city, s.state, s.latitude, s.longitude, corroborated.l) v
         GROUP BY s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp
         ORDER BY s.miner_hotkey, s.submission_timestamp, s.ledger_id
    LOOP
        PERFORM resi.record_miner_submission(sub.miner_hotkey, 1, sub.submission_timestamp);
        UPDATE resi.miner_trust t SET
            trust_score      = n.trust,
            trust_changed_at = CASE WHEN n.trust <> t.trust_score THEN clock_timestamp() ELSE t.trust_changed_at END,
            rows_submitted   = t.rows_submitted + sub.rows,
            duplicate_rows   = t.duplicate_rows + (sub.quality).duplicate_zpids,
            duplicate_rate   = (t.duplicate_rows + (sub.quality).duplicate_zpids)::float8 / (t.rows_submitted + sub.rows),
            fields_compared  = t.fields_compared + sub.fields_compared,
            fields_agreed    = t.fields_agreed + sub.fields_agreed,
            accuracy_score   = (t.fields_agreed + sub.fields_agreed)::float8 / nullif(t.fields_compared + sub.fields_compared, 0),
            updated_at       = now()
          FROM (SELECT resi.next_trust(t2.trust_score, resi.submission_trust_quality(
                           (sub.quality).score, sub.rows, sub.corroborated_rows, sub.agreeing_rows)) AS trust
                  FROM resi.miner_trust t2 WHERE t2.miner_hotkey = sub.miner_hotkey) n
         WHERE t.miner_hotkey = sub.miner_hotkey
        RETURNING t.trust_score INTO trust_after;

        IF (sub.quality).score < 0.3 THEN
            PERFORM resi.add_strike(sub.miner_hotkey, format('low_quality: %s scored %s (%s)',
                coalesce(sub.s3_file_path, 'a submission'), round((sub.quality).score::numeric, 3),
                array_to_string((sub.quality).issues, ', ')));
        END IF;

        UPDATE resi.ingest_ledger g SET
            quality_score      = (sub.quality).score,
            quality_issues     = (sub.quality).issues,
            duplicate_zpids    = (sub.quality).duplicate_zpids,
            distinct_zip_codes = (sub.quality).distinct_zips,
            accuracy           = sub.fields_agreed::float8 / nullif(sub.fields_compared, 0),
            row_agreement      = sub.agreeing_rows::float8 / nullif(sub.corroborated_rows, 0),
            trust_score        = trust_after
         WHERE g.id = sub.ledger_id;
    END LOOP;
    RETURN NULL;
END
$$;
