-- resi_pg 0.3.0 → 0.4.0: least privilege.
--
-- * Every function that writes runs as its owner (SECURITY DEFINER; search_path was already
--   pinned to pg_catalog, pg_temp and is now pinned on record_miner_submission too) and is no
--   longer executable by PUBLIC. resi.ban_miner and resi.add_blacklist_entry record the caller
--   as session_user (current_user is the owner inside them).
-- * resi.setup_roles(): the NOLOGIN roles resi_loader, resi_reader, resi_validator, resi_admin
--   and their grants.
-- * The resi.* settings are SUSET from this version's library on (no SQL here): only a
--   superuser or a role granted SET on them (resi_admin) may change them. New setting
--   resi.database_budget (8 GB).
-- * The read API (schema api), resi.listing_history and its trigger, the monitoring views and
--   resi.database_budget(), the map tiles (resi.tile_bounds, resi.listing_tile_layer,
--   resi.listing_tile): sql/resi_pg_api.sql 0.4.0, whole (all of it is new), after the Rust
--   functions it needs.
--
-- The function definitions below are those of sql/resi_pg_functions.sql 0.4.0; CREATE OR
-- REPLACE keeps each function's comment and its dependants (the staging trigger).

-- A run remembers its loader's backend: a run left 'running' by a killed loader is marked
-- interrupted by the next pass (existing rows: NULL, treated as gone).
ALTER TABLE resi.ingest_runs ADD COLUMN backend_pid integer;
ALTER TABLE resi.ingest_runs ALTER COLUMN backend_pid SET DEFAULT pg_catalog.pg_backend_pid();

-- New Rust functions (as pgrx generates them for the install script).
-- resi_pg::settings::database_budget_bytes
CREATE FUNCTION resi."database_budget_bytes"() RETURNS bigint /* i64 */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'database_budget_bytes_wrapper';

-- resi_pg::tile::tile_bounds
CREATE FUNCTION resi."tile_bounds"(
	"z" INT, /* i32 */
	"x" INT, /* i32 */
	"y" INT /* i32 */
) RETURNS TABLE (
	"min_longitude" double precision,  /* f64 */
	"min_latitude" double precision,  /* f64 */
	"max_longitude" double precision,  /* f64 */
	"max_latitude" double precision  /* f64 */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'tile_bounds_wrapper';

-- resi_pg::tile::listing_tile_transition
CREATE FUNCTION resi."listing_tile_transition"(
	"state" internal, /* Internal */
	"zpid" TEXT, /* Option < & str > */
	"longitude" double precision, /* Option < f64 > */
	"latitude" double precision, /* Option < f64 > */
	"price" bigint, /* Option < i64 > */
	"bedrooms" INT, /* Option < i32 > */
	"confidence" real, /* Option < f32 > */
	"z" INT, /* Option < i32 > */
	"x" INT, /* Option < i32 > */
	"y" INT /* Option < i32 > */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'listing_tile_transition_wrapper';

-- resi_pg::tile::listing_tile_final
CREATE FUNCTION resi."listing_tile_final"(
	"state" internal /* Internal */
) RETURNS bytea /* :: std :: option :: Option < Vec < u8 > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'listing_tile_final_wrapper';

-- resi_pg read API, history, monitoring and archive, version 0.4.0.
--
-- Included into the generated install script by resi_pg/src/lib.rs (extension_sql_file!, after
-- the schema, before sql/resi_pg_functions.sql, whose resi.setup_roles() grants these objects).
--
-- * resi.listing_history: how each listing's consensus price and status changed over time,
--   kept by a trigger on resi.listings (so every writer of the consensus keeps it: the fold,
--   refreshes, rebuilds).
-- * Schema `api`: what a REST layer (PostgREST, Supabase) exposes as-is to resi_reader — views
--   and functions over the consensus, every query served by an index (tests/tests/api.rs
--   checks the plans at 2M listings).
-- * Monitoring views for operators, and resi.database_budget().

-- ---------------------------------------------------------------------------------------------
-- Consensus history
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.listing_history (
    id              bigserial PRIMARY KEY,
    zpid            text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(), -- the time of the transaction that changed it
    price           bigint, -- the consensus after the change
    home_status     text,
    consensus_score real,
    previous_price       bigint, -- and before it (NULL: the listing's first consensus)
    previous_home_status text
);
COMMENT ON TABLE resi.listing_history IS 'Every change of a listing''s consensus price or status (the first consensus included), with the values before and after.';
CREATE INDEX listing_history_zpid_idx ON resi.listing_history (zpid, changed_at);
SELECT pg_catalog.pg_extension_config_dump('resi.listing_history', '');
SELECT pg_catalog.pg_extension_config_dump('resi.listing_history_id_seq', '');

CREATE FUNCTION resi.record_listing_history() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO resi.listing_history (zpid, price, home_status, consensus_score, previous_price, previous_home_status)
    VALUES (NEW.zpid, NEW.price, NEW.home_status, NEW.consensus_score, OLD.price, OLD.home_status);
    RETURN NULL;
END
$$;

-- Only rows whose price or status really changed fire it (the WHEN clause is checked per row
-- before any call), so refreshes that move confidences alone cost nothing here.
CREATE TRIGGER record_listing_history
    AFTER UPDATE OF price, home_status ON resi.listings
    FOR EACH ROW
    WHEN (OLD.price IS DISTINCT FROM NEW.price OR OLD.home_status IS DISTINCT FROM NEW.home_status)
    EXECUTE FUNCTION resi.record_listing_history();

-- Keyset pagination and zip-code statistics read these.
CREATE INDEX listings_zip_code_price_idx ON resi.listings (zip_code, price);

-- ---------------------------------------------------------------------------------------------
-- Schema api: the read API (PostgREST: db-schemas = 'api', db-anon-role = 'resi_reader')
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA api;
COMMENT ON SCHEMA api IS 'Read API over the resi consensus, ready for PostgREST/Supabase; resi.setup_roles() grants it to resi_reader.';

-- The listings that have a consensus (at least one miner with voting weight).
CREATE VIEW api.listings AS
SELECT l.zpid, l.uri, l.address, l.city, l.state, l.zip_code, l.price, l.bedrooms, l.bathrooms,
       l.living_area, l.home_type, l.home_status, l.days_on_zillow, l.latitude, l.longitude,
       l.consensus_score AS confidence,
       l.unique_miners_count AS miners,
       l.total_attestations AS attestations,
       l.first_seen_at,
       l.last_updated_at
  FROM resi.listings l
 WHERE l.consensus_score IS NOT NULL;
COMMENT ON VIEW api.listings IS 'Consensus listings with their confidence (0..1), miner and attestation counts.';

-- Filtered listings, `limit` at a time in zpid order: pass the last zpid of a page as `after`
-- for the next (keyset pagination: every page costs the same). NULL filters are ignored; bbox
-- is {min_longitude, min_latitude, max_longitude, max_latitude}; `limit` is clamped to 1..1000.
-- A one-SELECT SQL function, so the planner inlines it and plans the filters actually given.
CREATE FUNCTION api.search_listings(
    zip_code       text             DEFAULT NULL,
    min_price      bigint           DEFAULT NULL,
    max_price      bigint           DEFAULT NULL,
    home_status    text             DEFAULT NULL,
    min_confidence real             DEFAULT NULL,
    bbox           double precision[] DEFAULT NULL,
    updated_since  timestamptz      DEFAULT NULL,
    "limit"        integer          DEFAULT 100,
    after          text             DEFAULT NULL)
    RETURNS SETOF api.listings
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT l.*
      FROM api.listings l
     WHERE (search_listings.zip_code IS NULL OR l.zip_code = search_listings.zip_code)
       AND (search_listings.min_price IS NULL OR l.price >= search_listings.min_price)
       AND (search_listings.max_price IS NULL OR l.price <= search_listings.max_price)
       AND (search_listings.home_status IS NULL OR l.home_status = search_listings.home_status)
       AND (search_listings.min_confidence IS NULL OR l.confidence >= search_listings.min_confidence)
       AND (search_listings.bbox IS NULL
            OR (l.latitude BETWEEN search_listings.bbox[2] AND search_listings.bbox[4]
                AND l.longitude BETWEEN search_listings.bbox[1] AND search_listings.bbox[3]))
       AND (search_listings.updated_since IS NULL OR l.last_updated_at >= search_listings.updated_since)
       AND (search_listings.after IS NULL OR l.zpid > search_listings.after)
     ORDER BY l.zpid
     LIMIT least(greatest(coalesce(search_listings."limit", 100), 1), 1000)
$$;
COMMENT ON FUNCTION api.search_listings(text, bigint, bigint, text, real, double precision[], timestamptz, integer, text) IS
    'Listings matching the given filters (NULL: any), in zpid order, `limit` (1..1000) after the zpid `after` (keyset pagination).';

-- One listing with its per-field consensus and, per miner that reported it, the attestation
-- summary. No row for an unknown zpid or a listing without consensus.
CREATE FUNCTION api.listing(zpid text)
    RETURNS TABLE (zpid text, uri text, address text, city text, state text, zip_code text, price bigint,
                   bedrooms integer, bathrooms numeric(3,1), living_area integer, home_type text, home_status text,
                   days_on_zillow integer, latitude double precision, longitude double precision,
                   confidence real, miners integer, attestations integer, first_seen_at timestamptz,
                   last_updated_at timestamptz, field_consensus jsonb, reports jsonb)
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SECURITY DEFINER -- reads the claims and attestations, which resi_reader cannot
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT l.zpid, l.uri, l.address, l.city, l.state, l.zip_code, l.price, l.bedrooms, l.bathrooms, l.living_area,
           l.home_type, l.home_status, l.days_on_zillow, l.latitude, l.longitude, l.consensus_score,
           l.unique_miners_count, l.total_attestations, l.first_seen_at, l.last_updated_at, l.field_consensus,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'miner', c.miner_hotkey,
                       'first_seen_at', c.first_seen_at,
                       'last_seen_at', c.submission_timestamp,
                       'attestations', c.attestations,
                       'validated', EXISTS (SELECT FROM resi.miner_attestations a
                                             WHERE a.zpid = c.zpid AND a.miner_hotkey = c.miner_hotkey
                                               AND a.is_validated))
                       ORDER BY c.miner_hotkey), '[]'::jsonb)
              FROM resi.miner_claims c WHERE c.zpid = l.zpid)
      FROM resi.listings l
     WHERE l.zpid = listing.zpid AND l.consensus_score IS NOT NULL;
END;
COMMENT ON FUNCTION api.listing(text) IS
    'One listing: consensus values, field_consensus (per field value, confidence, agreement, supporters, voters) and reports (per miner: first/last seen, attestations, validated).';

-- How a listing's consensus price and status changed, oldest first (its first consensus included).
CREATE FUNCTION api.listing_history(zpid text)
    RETURNS TABLE (changed_at timestamptz, price bigint, home_status text, confidence real,
                   previous_price bigint, previous_home_status text)
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SECURITY DEFINER -- reads resi.listing_history, which resi_reader cannot
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT h.changed_at, h.price, h.home_status, h.consensus_score, h.previous_price, h.previous_home_status
      FROM resi.listing_history h
     WHERE h.zpid = listing_history.zpid
     ORDER BY h.changed_at, h.id;
END;
COMMENT ON FUNCTION api.listing_history(text) IS
    'The changes of a listing''s consensus price and status over time, oldest first.';

-- Counts, prices and confidence of one zip code's listings. Confidence bands: high >= 0.8,
-- medium >= 0.5, low below.
CREATE FUNCTION api.zip_stats(zip_code text)
    RETURNS TABLE (zip_code text, listings bigint, median_price double precision, min_price bigint,
                   max_price bigint, mean_confidence double precision, high_confidence bigint,
                   medium_confidence bigint, low_confidence bigint, last_updated_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE -- not STRICT: a STRICT set-returning function is never inlined
AS $$
    SELECT l.zip_code, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY l.price), min(l.price), max(l.price),
           avg(l.confidence), count(*) FILTER (WHERE l.confidence >= 0.8),
           count(*) FILTER (WHERE l.confidence >= 0.5 AND l.confidence < 0.8),
           count(*) FILTER (WHERE l.confidence < 0.5), max(l.last_updated_at)
      FROM api.listings l
     WHERE l.zip_code = zip_stats.zip_code
     GROUP BY l.zip_code
$$;
COMMENT ON FUNCTION api.zip_stats(text) IS
    'One zip code: listings with consensus, median/min/max price, mean confidence and listings per confidence band (high >= 0.8, medium >= 0.5, low).';

-- ---------------------------------------------------------------------------------------------
-- Monitoring (operators: resi_admin reads them; resi_loader too, for `resi-loader status`)
-- ---------------------------------------------------------------------------------------------
-- Per loader pass: its counters and the reasons its objects were rejected or deferred.
CREATE VIEW resi.ingest_by_run AS
SELECT r.id AS run_id, r.source, r.started_at, r.finished_at, r.status,
       r.objects_seen, r.objects_loaded, r.objects_rejected, r.objects_deferred, r.objects_skipped, r.rows_attested,
       coalesce((SELECT jsonb_object_agg(x.code, x.objects) FROM (
                   SELECT split_part(g.reason, ':', 1) AS code, count(*) AS objects
                     FROM resi.ingest_ledger g WHERE g.run_id = r.id AND g.status <> 'loaded'
                    GROUP BY 1) x), '{}'::jsonb) AS not_loaded_by_reason
  FROM resi.ingest_runs r;
COMMENT ON VIEW resi.ingest_by_run IS 'Per loader pass: objects and rows, and its rejected/deferred objects by reason code.';

-- Per miner: what its uploads came to in the ledger.
CREATE VIEW resi.ingest_by_miner AS
SELECT g.miner_hotkey,
       count(*) FILTER (WHERE g.status = 'loaded') AS objects_loaded,
       count(*) FILTER (WHERE g.status = 'rejected') AS objects_rejected,
       count(*) FILTER (WHERE g.status = 'deferred') AS objects_deferred,
       sum(g.rows_attested) AS rows_attested,
       sum(g.rows_dropped) AS rows_dropped,
       coalesce((SELECT jsonb_object_agg(x.code, x.objects) FROM (
                   SELECT split_part(h.reason, ':', 1) AS code, count(*) AS objects
                     FROM resi.ingest_ledger h WHERE h.miner_hotkey IS NOT DISTINCT FROM g.miner_hotkey
                      AND h.status <> 'loaded' GROUP BY 1) x), '{}'::jsonb) AS not_loaded_by_reason,
       max(g.finished_at) AS last_object_at
  FROM resi.ingest_ledger g
 GROUP BY g.miner_hotkey;
COMMENT ON VIEW resi.ingest_by_miner IS 'Per miner hotkey (NULL: keys outside the layout): objects loaded/rejected/deferred, rows, reasons, last object.';

-- Miners by trust, with what trust is made of.
CREATE VIEW resi.miner_leaderboard AS
SELECT rank() OVER (ORDER BY t.trust_score DESC) AS rank,
       t.miner_hotkey, t.trust_score, t.accuracy_score, t.duplicate_rate, t.total_submissions,
       t.rows_submitted, t.validated_submissions, t.validations_failed, t.strikes, t.bans,
       CASE WHEN t.banned_until > now() THEN t.banned_until END AS banned_until,
       t.last_submission
  FROM resi.miner_trust t;
COMMENT ON VIEW resi.miner_leaderboard IS 'Miners ranked by trust, with accuracy, duplicate rate, validations, strikes and bans.';

-- Share of listings per confidence band.
CREATE VIEW resi.consensus_health AS
SELECT b.band, count(l.zpid) AS listings,
       round(count(l.zpid) * 1.0 / nullif(sum(count(l.zpid)) OVER (), 0), 4) AS share
  FROM (VALUES ('high', 0.8::real, 2::real), ('medium', 0.5, 0.8), ('low', 0, 0.5), ('none', NULL, NULL)) b (band, low, high)
  LEFT JOIN resi.listings l
    ON CASE WHEN b.low IS NULL THEN l.consensus_score IS NULL
            ELSE l.consensus_score >= b.low AND l.consensus_score < b.high END
 GROUP BY b.band, b.low
 ORDER BY b.low DESC NULLS LAST;
COMMENT ON VIEW resi.consensus_health IS 'Listings per confidence band (high >= 0.8, medium >= 0.5, low, none: no voting claim) and their share.';

-- The fields miners disagree on most: per field, listings with two or more voters, how many
-- of them are not unanimous, and the mean agreement.
CREATE VIEW resi.field_disagreement AS
SELECT f.key AS field,
       count(*) AS contested_listings,
       count(*) FILTER (WHERE (f.value ->> 'agreement')::float8 < 1) AS disagreeing_listings,
       avg((f.value ->> 'agreement')::float8) AS mean_agreement
  FROM resi.listings l
 CROSS JOIN LATERAL jsonb_each(l.field_consensus) f
 WHERE (f.value ->> 'voters')::integer >= 2
 GROUP BY f.key
 ORDER BY count(*) FILTER (WHERE (f.value ->> 'agreement')::float8 < 1) DESC, f.key;
COMMENT ON VIEW resi.field_disagreement IS 'Per field: listings with >= 2 voters, how many are not unanimous, and the mean agreement.';

-- How fresh each zip code's data is.
CREATE VIEW resi.zip_freshness AS
SELECT l.zip_code, count(*) AS listings,
       max(l.last_updated_at) AS last_updated_at,
       min(l.last_updated_at) AS stalest_updated_at,
       max(l.first_seen_at) AS newest_listing_at
  FROM resi.listings l
 GROUP BY l.zip_code;
COMMENT ON VIEW resi.zip_freshness IS 'Per zip code: listings, the newest and oldest consensus change, the newest listing.';

-- ---------------------------------------------------------------------------------------------
-- Storage budget
-- ---------------------------------------------------------------------------------------------
-- Each resi table's size (with its indexes and TOAST) against resi.database_budget (default
-- 8 GB), then the whole database: its share_of_budget is what is used, 1 - it the headroom.
CREATE FUNCTION resi.database_budget()
    RETURNS TABLE (relation text, bytes bigint, size text, share_of_budget double precision)
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT x.relation, x.bytes, pg_size_pretty(x.bytes), x.bytes::float8 / resi.database_budget_bytes()
      FROM (SELECT c.oid::regclass::text AS relation, pg_total_relation_size(c.oid) AS bytes, 0 AS part
              FROM pg_class c
             WHERE c.relnamespace = 'resi'::regnamespace AND c.relkind = 'r'
            UNION ALL
            SELECT 'database ' || current_database(), pg_database_size(current_database()), 1) x
     ORDER BY x.part, x.bytes DESC, x.relation;
END;
COMMENT ON FUNCTION resi.database_budget() IS
    'Size of each resi table (indexes and TOAST included) and of the whole database, in bytes and as a share of resi.database_budget (default 8 GB); the last row is the database.';

-- ---------------------------------------------------------------------------------------------
-- Map tiles
-- ---------------------------------------------------------------------------------------------
-- Listings of one tile as one Mapbox Vector Tile layer (resi_pg/src/tile.rs).
CREATE AGGREGATE resi.listing_tile_layer(
    zpid text, longitude double precision, latitude double precision, price bigint, bedrooms integer,
    confidence real, z integer, x integer, y integer) (
    STYPE     = internal,
    SFUNC     = resi.listing_tile_transition,
    FINALFUNC = resi.listing_tile_final,
    PARALLEL  = SAFE
);
COMMENT ON AGGREGATE resi.listing_tile_layer(text, double precision, double precision, bigint, integer, real, integer, integer, integer) IS
    'A Mapbox Vector Tile (layer listings, extent 4096) of the rows as point features of tile z/x/y, with properties zpid, price, bedrooms, confidence.';

-- The tile function map servers call: Martin and pg_tileserv serve a function with exactly this
-- signature as /{z}/{x}/{y}. Web mercator, XYZ numbering, layer `listings`, point features
-- with zpid, price, bedrooms, confidence (the feature id is the zpid). At most 50,000 listings
-- per tile, the most confident first (a low-zoom tile of a big database is a sample). An
-- empty bytea for a tile without listings.
CREATE FUNCTION resi.listing_tile(z integer, x integer, y integer) RETURNS bytea
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    -- Planned for this tile's bounds, so the location index serves it (a generic plan cannot
    -- tell a city tile from the whole world).
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    b    record;
    tile bytea;
BEGIN
    SELECT * INTO b FROM resi.tile_bounds(z, x, y);
    SELECT resi.listing_tile_layer(t.zpid, t.longitude, t.latitude, t.price, t.bedrooms, t.consensus_score, z, x, y)
      INTO tile
      FROM (SELECT l.zpid, l.longitude, l.latitude, l.price, l.bedrooms, l.consensus_score
              FROM resi.listings l
             WHERE l.latitude >= b.min_latitude AND l.latitude < b.max_latitude
               AND l.longitude >= b.min_longitude AND l.longitude < b.max_longitude
               AND l.consensus_score IS NOT NULL
             ORDER BY l.consensus_score DESC, l.zpid
             LIMIT 50000) t;
    RETURN coalesce(tile, '\x'::bytea);
END
$$;
COMMENT ON FUNCTION resi.listing_tile(integer, integer, integer) IS
    'Mapbox Vector Tile of the consensus listings in XYZ tile z/x/y (web mercator, layer listings, points with zpid, price, bedrooms, confidence); at most 50,000, most confident first.';

-- ---------------------------------------------------------------------------------------------
-- Archive: rows that left the active window, moved to Parquet by `resi-loader archive`
-- ---------------------------------------------------------------------------------------------
-- One row per archive file. A batch is written (status writing), read back and checked
-- (verified: rows and SHA-256 of the bytes recorded), and only then are exactly the rows in
-- the file deleted, in the same transaction that marks it deleted. A crash before that leaves
-- the rows in the database and the batch to redo (its file is rewritten or re-checked); after
-- it, the rows are in the file only: nothing lost, nothing twice.
CREATE TABLE resi.archive_batches (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('listings', 'attestations')),
    month       date NOT NULL,        -- the month the rows belong to (first day)
    cutoff      timestamptz NOT NULL, -- the start of the active window when the batch began
    object_key  text NOT NULL UNIQUE, -- relative to the archive's destination
    rows        bigint CHECK (rows >= 0),
    sha256      text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status      text NOT NULL DEFAULT 'writing' CHECK (status IN ('writing', 'verified', 'deleted')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
COMMENT ON TABLE resi.archive_batches IS 'Every archive file of resi-loader archive: what it holds and whether its rows have left the database.';
SELECT pg_catalog.pg_extension_config_dump('resi.archive_batches', '');
SELECT pg_catalog.pg_extension_config_dump('resi.archive_batches_id_seq', '');

-- Listings out of the window: no miner reported them since `cutoff`. Their month is that of
-- their last report.
CREATE FUNCTION resi.archivable_listings(cutoff timestamptz)
    RETURNS TABLE (zpid text, month date)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT l.zpid, date_trunc('month', coalesce(r.last_reported_at, l.last_updated_at) AT TIME ZONE 'UTC')::date
      FROM resi.listings l
      LEFT JOIN LATERAL (SELECT max(c.submission_timestamp) AS last_reported_at
                           FROM resi.miner_claims c WHERE c.zpid = l.zpid) r ON true
     WHERE r.last_reported_at IS NULL OR r.last_reported_at < archivable_listings.cutoff;
END;
COMMENT ON FUNCTION resi.archivable_listings(timestamptz) IS
    'Listings no miner has reported since cutoff, with the month (UTC) of their last report: what resi-loader archive moves out.';

-- Attestations out of the window: submitted before `cutoff` and not the one behind a current
-- claim (a claim keeps its attestation until its listing is archived).
CREATE FUNCTION resi.archivable_attestations(cutoff timestamptz)
    RETURNS TABLE (id bigint, month date)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT a.id, date_trunc('month', a.submission_timestamp AT TIME ZONE 'UTC')::date
      FROM resi.miner_attestations a
     WHERE a.submission_timestamp < archivable_attestations.cutoff
       AND NOT EXISTS (SELECT FROM resi.miner_claims c WHERE c.attestation_id = a.id);
END;
COMMENT ON FUNCTION resi.archivable_attestations(timestamptz) IS
    'Attestations submitted before cutoff that back no current claim, with their month (UTC): what resi-loader archive moves out.';

-- Start a batch; returns its id and object key.
CREATE FUNCTION resi.archive_batch_begin(kind text, month date, cutoff timestamptz)
    RETURNS TABLE (batch bigint, object_key text)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO resi.archive_batches (id, kind, month, cutoff, object_key)
    SELECT n.id, archive_batch_begin.kind, archive_batch_begin.month, archive_batch_begin.cutoff,
           format('archive/%s/month=%s/batch-%s.parquet', archive_batch_begin.kind,
                  to_char(archive_batch_begin.month, 'YYYY-MM'), lpad(n.id::text, 8, '0'))
      FROM (SELECT nextval('resi.archive_batches_id_seq') AS id) n
    RETURNING id, object_key;
END;

-- The batch's file is written and read back: `rows` rows, these bytes' SHA-256.
CREATE FUNCTION resi.archive_batch_verified(batch bigint, rows bigint, sha256 text) RETURNS void
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE resi.archive_batches b SET status = 'verified', rows = archive_batch_verified.rows,
           sha256 = archive_batch_verified.sha256
     WHERE b.id = archive_batch_verified.batch AND b.status IN ('writing', 'verified');
END;

-- Drop a batch that found no rows (nothing was written for it).
CREATE FUNCTION resi.archive_batch_discard(batch bigint) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (DELETE FROM resi.archive_batches b
                   WHERE b.id = archive_batch_discard.batch AND b.status = 'writing' RETURNING 1)
    SELECT count(*) > 0 FROM gone;
END;

-- Delete exactly the rows of a verified batch (the keys read back from its file) and mark it
-- deleted, in one transaction; returns the rows deleted. When a row is no longer archivable (a
-- listing reported again meanwhile) or missing, deletes nothing, puts the batch back to
-- `writing` (its file is to be written anew) and returns NULL.
CREATE FUNCTION resi.archive_batch_delete(batch bigint, zpids text[], attestation_ids bigint[]) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b       resi.archive_batches;
    wanted  bigint;
    deleted bigint;
BEGIN
    SELECT * INTO b FROM resi.archive_batches WHERE id = batch FOR UPDATE;
    IF NOT FOUND OR b.status <> 'verified' THEN
        RAISE EXCEPTION 'resi.archive_batch_delete: batch % is not verified (%)', batch, coalesce(b.status, 'missing');
    END IF;
    IF b.kind = 'listings' THEN
        wanted := coalesce(cardinality(zpids), 0);
        PERFORM 1 FROM resi.listings l WHERE l.zpid = ANY (zpids) ORDER BY l.zpid FOR UPDATE;
        SELECT count(*) INTO deleted FROM resi.archivable_listings(b.cutoff) a WHERE a.zpid = ANY (zpids);
        IF deleted <> wanted OR wanted <> b.rows THEN
            UPDATE resi.archive_batches SET status = 'writing', rows = NULL, sha256 = NULL WHERE id = batch;
            RETURN NULL;
        END IF;
        DELETE FROM resi.miner_claims c WHERE c.zpid = ANY (zpids);
        DELETE FROM resi.listings l WHERE l.zpid = ANY (zpids);
    ELSE
        wanted := coalesce(cardinality(attestation_ids), 0);
        SELECT count(*) INTO deleted FROM resi.archivable_attestations(b.cutoff) a WHERE a.id = ANY (attestation_ids);
        IF deleted <> wanted OR wanted <> b.rows THEN
            UPDATE resi.archive_batches SET status = 'writing', rows = NULL, sha256 = NULL WHERE id = batch;
            RETURN NULL;
        END IF;
        DELETE FROM resi.miner_attestations a WHERE a.id = ANY (attestation_ids);
    END IF;
    UPDATE resi.archive_batches SET status = 'deleted', finished_at = clock_timestamp() WHERE id = batch;
    RETURN deleted;
END
$$;
COMMENT ON FUNCTION resi.archive_batch_delete(bigint, text[], bigint[]) IS
    'Delete the rows of a verified archive batch (the keys read back from its file) and mark it deleted, in one transaction; NULL (nothing deleted, batch back to writing) when a row is no longer archivable.';

CREATE OR REPLACE FUNCTION resi.record_miner_submission(
    hotkey      text,
    submissions integer     DEFAULT 1,
    at          timestamptz DEFAULT now()
) RETURNS integer
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    utc_day   date := (at AT TIME ZONE 'UTC')::date;
    day_total integer;
BEGIN
    IF submissions < 0 THEN
        RAISE EXCEPTION 'resi.record_miner_submission: submissions must be >= 0, got %', submissions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO resi.miner_submission_days AS d (miner_hotkey, day, submissions)
    VALUES (hotkey, utc_day, submissions)
    ON CONFLICT (miner_hotkey, day) DO UPDATE SET submissions = d.submissions + excluded.submissions
    RETURNING d.submissions INTO day_total;

    INSERT INTO resi.miner_trust AS t (miner_hotkey, trust_score, total_submissions, last_submission,
                                       submissions_today, last_submission_date)
    VALUES (hotkey, resi.initial_trust(), submissions, at, day_total, utc_day)
    ON CONFLICT (miner_hotkey) DO UPDATE SET
        total_submissions    = t.total_submissions + excluded.total_submissions,
        last_submission      = greatest(t.last_submission, excluded.last_submission),
        -- A backfill of an earlier day does not move "today".
        submissions_today    = CASE WHEN t.last_submission_date IS NULL OR excluded.last_submission_date >= t.last_submission_date
                                    THEN excluded.submissions_today ELSE t.submissions_today END,
        last_submission_date = greatest(t.last_submission_date, excluded.last_submission_date),
        updated_at           = now();
    RETURN day_total;
END
$$;

CREATE OR REPLACE FUNCTION resi.add_strike(hotkey text, reason text) RETURNS timestamptz
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    settings   resi.ingest_settings := resi.ingest_settings();
    n_strikes  integer;
    n_bans     integer;
    ban_length interval;
    until      timestamptz;
BEGIN
    INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES (hotkey, resi.initial_trust())
    ON CONFLICT (miner_hotkey) DO NOTHING;
    UPDATE resi.miner_trust t SET strikes = t.strikes + 1, updated_at = now()
     WHERE t.miner_hotkey = hotkey
    RETURNING t.strikes, t.bans INTO n_strikes, n_bans;
    INSERT INTO resi.miner_penalties (miner_hotkey, kind, reason) VALUES (hotkey, 'strike', reason);
    IF n_strikes < settings.strikes_per_ban THEN
        RETURN NULL;
    END IF;
    ban_length := least(settings.ban_duration * power(2, least(n_bans, 30)), settings.max_ban_duration);
    until := now() + ban_length;
    UPDATE resi.miner_trust t SET
        strikes      = 0,
        bans         = t.bans + 1,
        banned_until = greatest(until, t.banned_until),
        ban_reason   = format('%s strikes, the last: %s', n_strikes, reason),
        updated_at   = now()
     WHERE t.miner_hotkey = hotkey
    RETURNING t.banned_until INTO until;
    INSERT INTO resi.miner_penalties (miner_hotkey, kind, reason, banned_until)
    VALUES (hotkey, 'ban', format('ban %s for %s after %s strikes', n_bans + 1, ban_length, n_strikes), until);
    RETURN until;
END
$$;

CREATE OR REPLACE FUNCTION resi.ban_miner(hotkey text, reason text, duration interval DEFAULT NULL) RETURNS timestamptz
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    until timestamptz := coalesce(now() + duration, 'infinity');
BEGIN
    IF hotkey IS NULL OR reason IS NULL THEN
        RAISE EXCEPTION 'resi.ban_miner: hotkey and reason are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF duration <= interval '0' THEN
        RAISE EXCEPTION 'resi.ban_miner: the duration must be positive, got %', duration
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO resi.miner_trust AS t (miner_hotkey, trust_score, bans, banned_until, ban_reason)
    VALUES (hotkey, resi.initial_trust(), 1, until, reason)
    ON CONFLICT (miner_hotkey) DO UPDATE SET
        bans = t.bans + 1, banned_until = excluded.banned_until, ban_reason = excluded.ban_reason, updated_at = now();
    INSERT INTO resi.miner_penalties (miner_hotkey, kind, reason, banned_until)
    VALUES (hotkey, 'ban', format('by %s: %s', session_user, reason), until); -- the caller, not the definer
    RETURN until;
END
$$;

CREATE OR REPLACE FUNCTION resi.unban_miner(hotkey text) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE resi.miner_trust t SET banned_until = NULL, ban_reason = NULL, strikes = 0, updated_at = now()
     WHERE t.miner_hotkey = hotkey AND t.banned_until > now()
    RETURNING true;
END;

CREATE OR REPLACE FUNCTION resi.admit_submission(hotkey text, submitted_at timestamptz, first_attempt boolean DEFAULT true)
    RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    utc_day   date := (submitted_at AT TIME ZONE 'UTC')::date;
    miner     record;
    used      integer;
    attempts  integer;
    allowance integer;
BEGIN
    INSERT INTO resi.miner_submission_days AS d (miner_hotkey, day, submissions) VALUES (hotkey, utc_day, 0)
    ON CONFLICT (miner_hotkey, day) DO UPDATE SET submissions = d.submissions
    RETURNING d.submissions INTO used;

    SELECT t.trust_score, t.banned_until, t.ban_reason INTO miner FROM resi.miner_trust t WHERE t.miner_hotkey = hotkey;
    IF miner.banned_until > now() THEN
        RETURN format('banned: until %s (%s)', miner.banned_until, miner.ban_reason);
    END IF;
    IF resi.check_miner_rate_limit(hotkey, 1, utc_day) THEN
        RETURN NULL;
    END IF;
    allowance := resi.rate_limit_for(coalesce(miner.trust_score, resi.initial_trust()));
    IF first_attempt THEN
        UPDATE resi.miner_submission_days d SET over_limit_attempts = d.over_limit_attempts + 1
         WHERE d.miner_hotkey = hotkey AND d.day = utc_day
        RETURNING d.over_limit_attempts INTO attempts;
        IF attempts = (resi.ingest_settings()).over_limit_strike_attempts THEN
            PERFORM resi.add_strike(hotkey, format('over_limit: %s objects over the allowance of %s on %s',
                                                   attempts, allowance, utc_day));
        END IF;
    END IF;
    RETURN format('rate_limited: %s of %s submissions used on %s (UTC)', used, allowance, utc_day);
END
$$;

CREATE OR REPLACE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
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

CREATE OR REPLACE FUNCTION resi.rebuild_claims() RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE resi.miner_claims IN EXCLUSIVE MODE;
    DELETE FROM resi.miner_claims;
    INSERT INTO resi.miner_claims
    SELECT DISTINCT ON (a.zpid, a.miner_hotkey)
           a.zpid, a.miner_hotkey, a.id, a.submission_timestamp,
           min(a.submission_timestamp) OVER w, count(*) OVER w,
           a.uri, a.price, a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status,
           a.days_on_zillow, a.zip_code, a.city, a.state, a.latitude, a.longitude
      FROM resi.miner_attestations a
    WINDOW w AS (PARTITION BY a.zpid, a.miner_hotkey)
     ORDER BY a.zpid, a.miner_hotkey, a.submission_timestamp DESC, a.id DESC;
    RETURN resi.refresh_consensus(NULL);
END
$$;

CREATE OR REPLACE FUNCTION resi.fold_staged_listings() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
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

CREATE OR REPLACE FUNCTION resi.clear_staging() RETURNS boolean
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

CREATE OR REPLACE FUNCTION resi.refresh_stale_consensus(max_listings integer DEFAULT 10000) RETURNS integer
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF max_listings < 0 THEN
        RAISE EXCEPTION 'resi.refresh_stale_consensus: max_listings must be >= 0, got %', max_listings
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN resi.refresh_consensus(ARRAY(
        SELECT l.zpid FROM resi.listings l
         WHERE resi.stale_listing(l.zpid, l.trust_fingerprint)
         ORDER BY l.last_updated_at, l.zpid
         LIMIT max_listings));
END
$$;

CREATE OR REPLACE FUNCTION resi.record_validation(miner_hotkey text, zpid text, passed boolean, score double precision DEFAULT NULL)
    RETURNS double precision
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hotkey      text := miner_hotkey;
    listing     text := zpid;
    attestation bigint;
    trust       double precision;
BEGIN
    IF hotkey IS NULL OR listing IS NULL OR passed IS NULL THEN
        RAISE EXCEPTION 'resi.record_validation: miner_hotkey, zpid and passed are required'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF score IS NOT NULL AND NOT (score BETWEEN 0 AND 1) THEN
        RAISE EXCEPTION 'resi.record_validation: score must be between 0 and 1, got %', score
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.attestation_id INTO attestation
      FROM resi.miner_claims c WHERE c.zpid = listing AND c.miner_hotkey = hotkey;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'resi.record_validation: miner % has no attestation of listing %', hotkey, listing
            USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE resi.miner_attestations a
       SET is_validated = true, validation_timestamp = now(), validation_score = score
     WHERE a.id = attestation AND NOT a.is_validated;
    IF NOT FOUND THEN
        RAISE NOTICE 'resi.record_validation: attestation % of miner % was already validated; trust unchanged',
            attestation, hotkey;
        SELECT t.trust_score INTO trust FROM resi.miner_trust t WHERE t.miner_hotkey = hotkey;
        RETURN trust;
    END IF;
    INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES (hotkey, resi.initial_trust())
    ON CONFLICT ON CONSTRAINT miner_trust_pkey DO NOTHING;
    UPDATE resi.miner_trust t SET
        trust_score           = n.trust,
        trust_changed_at      = CASE WHEN n.trust <> t.trust_score THEN clock_timestamp() ELSE t.trust_changed_at END,
        validated_submissions = t.validated_submissions + 1,
        validations_failed    = t.validations_failed + (NOT passed)::integer,
        updated_at            = now()
      FROM (SELECT resi.next_trust(t2.trust_score, coalesce(score, passed::integer), passed, NOT passed) AS trust
              FROM resi.miner_trust t2 WHERE t2.miner_hotkey = hotkey) n
     WHERE t.miner_hotkey = hotkey
    RETURNING t.trust_score INTO trust;
    PERFORM resi.refresh_consensus(ARRAY[listing]);
    RETURN trust;
END
$$;

CREATE OR REPLACE FUNCTION resi.add_blacklist_entry(field text, value text, reason text, match text DEFAULT 'exact')
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entry bigint;
BEGIN
    IF field NOT IN ('zpid', 'zip_code') THEN
        RAISE EXCEPTION 'resi.add_blacklist_entry: field must be zpid or zip_code, got %', field
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF match NOT IN ('exact', 'pattern') THEN
        RAISE EXCEPTION 'resi.add_blacklist_entry: match must be exact or pattern, got %', match
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF match = 'pattern' THEN
        PERFORM '' ~ value; -- raises 2201B (invalid_regular_expression) for a bad pattern
    END IF;
    INSERT INTO resi.blacklist AS b (field, match, value, reason, added_by)
    VALUES (add_blacklist_entry.field, add_blacklist_entry.match, add_blacklist_entry.value, add_blacklist_entry.reason,
            session_user) -- the caller (current_user is the function's owner here)
    ON CONFLICT ON CONSTRAINT blacklist_field_match_value_key DO UPDATE SET reason = b.reason
    RETURNING b.id INTO entry;
    RETURN entry;
END
$$;

CREATE OR REPLACE FUNCTION resi.remove_blacklist_entry(id bigint) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH removed AS (DELETE FROM resi.blacklist b WHERE b.id = remove_blacklist_entry.id RETURNING 1)
    SELECT count(*) > 0 FROM removed;
END;

-- ---------------------------------------------------------------------------------------------
-- Privileges (0.4.0)
-- ---------------------------------------------------------------------------------------------
-- Functions that write run as their owner (SECURITY DEFINER, search_path pinned to
-- pg_catalog, pg_temp, every name schema-qualified) and are not executable by PUBLIC: a role
-- gets exactly the ones resi.setup_roles() grants it. The read-only functions and aggregates
-- (consensus, hashes, keys, trust arithmetic, settings) stay executable by every role that may
-- use the schema.
REVOKE EXECUTE ON FUNCTION
    resi.archive_batch_begin(text, date, timestamptz),
    resi.archive_batch_verified(bigint, bigint, text),
    resi.archive_batch_discard(bigint),
    resi.archive_batch_delete(bigint, text[], bigint[]),
    api.listing(text),
    api.listing_history(text),
    resi.record_miner_submission(text, integer, timestamptz),
    resi.add_strike(text, text),
    resi.ban_miner(text, text, interval),
    resi.unban_miner(text),
    resi.admit_submission(text, timestamptz, boolean),
    resi.refresh_consensus(text[]),
    resi.rebuild_claims(),
    resi.fold_staged_listings(),
    resi.clear_staging(),
    resi.refresh_stale_consensus(integer),
    resi.record_validation(text, text, boolean, double precision),
    resi.add_blacklist_entry(text, text, text, text),
    resi.remove_blacklist_entry(bigint)
FROM PUBLIC;

-- The four roles of a deployment and what each may do. Creates the NOLOGIN group roles that
-- do not exist yet (roles are cluster-wide) and grants them their privileges in this database
-- (grants are per database: run it in every database with the extension, and again after
-- ALTER EXTENSION resi_pg UPDATE so new objects are granted too). Idempotent. People and
-- services log in as their own roles, made members: GRANT resi_loader TO ingest_service.
--   resi_loader     write staging (the fold trigger does the rest) and the ingest ledger and
--                   runs; call resi.admit_submission, resi.clear_staging,
--                   resi.refresh_stale_consensus; read listings, attestations and the
--                   monitoring views (for `resi-loader status`). No UPDATE/DELETE of listings, attestations,
--                   claims or trust.
--   resi_reader     read resi.listings, the resi.listing_consensus view and the api schema
--                   (api.listings, api.search_listings, api.listing, api.listing_history,
--                   api.zip_stats); nothing else.
--   resi_validator  call resi.record_validation; nothing else.
--   resi_admin      read every table; bans (ban_miner, unban_miner, add_strike), the
--                   blacklist (add/remove_blacklist_entry), consensus maintenance
--                   (refresh_consensus, refresh_stale_consensus, rebuild_claims,
--                   record_miner_submission); the archive (`resi-loader archive`: the
--                   resi.archive_batch_* functions); the api schema; SET and ALTER SYSTEM of
--                   every resi.* setting.
-- Needs a role that may create roles and grant on the extension's objects (the superuser who
-- created the extension). Returns each role and whether this call created it.
CREATE FUNCTION resi.setup_roles() RETURNS TABLE (role_name text, created boolean)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['resi_loader', 'resi_reader', 'resi_validator', 'resi_admin'] LOOP
        role_name := wanted;
        created := false;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = wanted) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', wanted);
                created := true;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created by a concurrent call
            END;
        END IF;
        RETURN NEXT;
    END LOOP;

    GRANT USAGE ON SCHEMA resi TO resi_loader, resi_reader, resi_validator, resi_admin;

    GRANT INSERT ON resi.staging_listings TO resi_loader;
    GRANT SELECT, INSERT, UPDATE ON resi.ingest_runs, resi.ingest_ledger TO resi_loader;
    GRANT USAGE ON SEQUENCE resi.ingest_runs_id_seq, resi.ingest_ledger_id_seq TO resi_loader;
    GRANT SELECT ON resi.listings, resi.miner_attestations TO resi_loader;
    GRANT SELECT ON resi.ingest_by_run, resi.ingest_by_miner, resi.miner_leaderboard, resi.consensus_health,
                    resi.field_disagreement, resi.zip_freshness
    TO resi_loader; -- what `resi-loader status` prints
    GRANT EXECUTE ON FUNCTION
        resi.admit_submission(text, timestamptz, boolean),
        resi.clear_staging(),
        resi.refresh_stale_consensus(integer)
    TO resi_loader;

    GRANT SELECT ON resi.listings, resi.listing_consensus TO resi_reader;
    GRANT USAGE ON SCHEMA api TO resi_reader, resi_admin;
    GRANT SELECT ON api.listings TO resi_reader, resi_admin;
    GRANT EXECUTE ON FUNCTION
        api.search_listings(text, bigint, bigint, text, real, double precision[], timestamptz, integer, text),
        api.listing(text),
        api.listing_history(text),
        api.zip_stats(text)
    TO resi_reader, resi_admin;
    GRANT EXECUTE ON FUNCTION resi.listing_tile(integer, integer, integer) TO resi_reader;

    GRANT EXECUTE ON FUNCTION resi.record_validation(text, text, boolean, double precision) TO resi_validator;

    GRANT SELECT ON ALL TABLES IN SCHEMA resi TO resi_admin;
    GRANT EXECUTE ON FUNCTION
        resi.ban_miner(text, text, interval),
        resi.unban_miner(text),
        resi.add_strike(text, text),
        resi.add_blacklist_entry(text, text, text, text),
        resi.remove_blacklist_entry(bigint),
        resi.refresh_consensus(text[]),
        resi.refresh_stale_consensus(integer),
        resi.rebuild_claims(),
        resi.record_miner_submission(text, integer, timestamptz),
        resi.archive_batch_begin(text, date, timestamptz),
        resi.archive_batch_verified(bigint, bigint, text),
        resi.archive_batch_discard(bigint),
        resi.archive_batch_delete(bigint, text[], bigint[])
    TO resi_admin;
    GRANT SET, ALTER SYSTEM ON PARAMETER
        resi.rate_limit_tiers, resi.initial_trust, resi.quality_min_price, resi.quality_max_price,
        resi.quality_max_zip_codes, resi.max_submission_rows, resi.over_limit_strike_attempts,
        resi.strikes_per_ban, resi.ban_duration, resi.max_ban_duration, resi.database_budget
    TO resi_admin;
END
$$;
REVOKE EXECUTE ON FUNCTION resi.setup_roles() FROM PUBLIC;
COMMENT ON FUNCTION resi.setup_roles() IS
    'Create the NOLOGIN roles resi_loader, resi_reader, resi_validator and resi_admin if missing and grant each its privileges in this database (idempotent; run again after an upgrade). Returns each role and whether it was created.';
