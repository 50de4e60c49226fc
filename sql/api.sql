-- Schema api: what a REST layer (PostgREST, Supabase) exposes as-is to resi_reader — views and
-- functions over the consensus, every query served by an index (tests/tests/api.rs checks the
-- plans at 2M listings).
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

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

-- Every function here is written so Citus can run it over distributed tables (issue 18):
-- Citus plans no SQL-language function over them that PostgreSQL inlines, nor one whose query
-- takes parameters (unless it reads one shard of one table), so their queries are PL/pgSQL's,
-- planned with the arguments' values.

-- Filtered listings, `limit` at a time in zpid order: pass the last zpid of a page as `after`
-- for the next (keyset pagination: every page costs the same). NULL filters are ignored; bbox
-- is {min_longitude, min_latitude, max_longitude, max_latitude}; `limit` is clamped to 1..1000.
-- Planned at every call for the filters actually given (a plan for any filters would scan).
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
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
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
     LIMIT least(greatest(coalesce(search_listings."limit", 100), 1), 1000);
END
$$;
COMMENT ON FUNCTION api.search_listings(text, bigint, bigint, text, real, double precision[], timestamptz, integer, text) IS
    'Listings matching the given filters (NULL: any), in zpid order, `limit` (1..1000) after the zpid `after` (keyset pagination).';

-- One listing with its per-field consensus (supporters and voters count independent sources:
-- a group of dependent miners is one) and, per miner that reported it, the attestation summary
-- and the group it votes with (null: alone). No row for an unknown zpid or a listing without
-- consensus. The query is resi.listing_detail's (PL/pgSQL cannot name an argument like a
-- result column, as this function's REST signature does).
CREATE FUNCTION resi.listing_detail(listing text)
    RETURNS TABLE (zpid text, uri text, address text, city text, state text, zip_code text, price bigint,
                   bedrooms integer, bathrooms numeric(3,1), living_area integer, home_type text, home_status text,
                   days_on_zillow integer, latitude double precision, longitude double precision,
                   confidence real, miners integer, attestations integer, first_seen_at timestamptz,
                   last_updated_at timestamptz, field_consensus jsonb, reports jsonb)
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT l.zpid, l.uri, l.address, l.city, l.state, l.zip_code, l.price, l.bedrooms, l.bathrooms, l.living_area,
           l.home_type, l.home_status, l.days_on_zillow, l.latitude, l.longitude, l.consensus_score,
           l.unique_miners_count, l.total_attestations, l.first_seen_at, l.last_updated_at, l.field_consensus,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'miner', c.miner_hotkey,
                       'first_seen_at', c.first_seen_at,
                       'last_seen_at', c.submission_timestamp,
                       'attestations', c.attestations,
                       'group', (SELECT g.group_hotkey FROM resi.miner_groups g WHERE g.miner_hotkey = c.miner_hotkey),
                       'validated', EXISTS (SELECT FROM resi.miner_attestations a
                                             WHERE a.zpid = listing AND a.miner_hotkey = c.miner_hotkey
                                               AND a.is_validated))
                       ORDER BY c.miner_hotkey), '[]'::jsonb)
              FROM resi.miner_claims c WHERE c.zpid = listing)
      FROM resi.listings l
     -- Every distributed table filtered by the zpid itself: Citus routes the query to one shard
     -- (correlated on l.zpid, it asked every shard).
     WHERE l.zpid = listing AND l.consensus_score IS NOT NULL;
END
$$;
COMMENT ON FUNCTION resi.listing_detail(text) IS
    'What api.listing returns (its query, run as the caller: api.listing runs it as the owner).';

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
    SELECT * FROM resi.listing_detail(listing.zpid);
END;
COMMENT ON FUNCTION api.listing(text) IS
    'One listing: consensus values, field_consensus (per field value, confidence, agreement, and supporters and voters counted in independent sources) and reports (per miner: first/last seen, attestations, the group it votes with, validated).';

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
-- medium >= 0.5, low below. The query is resi.zip_code_stats' (as for api.listing).
CREATE FUNCTION resi.zip_code_stats(code text)
    RETURNS TABLE (zip_code text, listings bigint, median_price double precision, min_price bigint,
                   max_price bigint, mean_confidence double precision, high_confidence bigint,
                   medium_confidence bigint, low_confidence bigint, last_updated_at timestamptz)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT l.zip_code, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY l.price), min(l.price), max(l.price),
           avg(l.confidence), count(*) FILTER (WHERE l.confidence >= 0.8),
           count(*) FILTER (WHERE l.confidence >= 0.5 AND l.confidence < 0.8),
           count(*) FILTER (WHERE l.confidence < 0.5), max(l.last_updated_at)
      FROM api.listings l
     WHERE l.zip_code = code
     GROUP BY l.zip_code;
END
$$;
COMMENT ON FUNCTION resi.zip_code_stats(text) IS
    'What api.zip_stats returns (its query).';

CREATE FUNCTION api.zip_stats(zip_code text)
    RETURNS TABLE (zip_code text, listings bigint, median_price double precision, min_price bigint,
                   max_price bigint, mean_confidence double precision, high_confidence bigint,
                   medium_confidence bigint, low_confidence bigint, last_updated_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT * FROM resi.zip_code_stats(zip_stats.zip_code);
END;
COMMENT ON FUNCTION api.zip_stats(text) IS
    'One zip code: listings with consensus, median/min/max price, mean confidence and listings per confidence band (high >= 0.8, medium >= 0.5, low).';
