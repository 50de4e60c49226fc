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
