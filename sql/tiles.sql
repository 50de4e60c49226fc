-- Map tiles: listings as Mapbox Vector Tiles for Martin or pg_tileserv (resi_pg/src/tile.rs).
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Map tiles
-- ---------------------------------------------------------------------------------------------
-- Listings of one tile as one Mapbox Vector Tile layer (resi_pg/src/tile.rs).
COMMENT ON AGGREGATE resi.listing_tile_layer(text, double precision, double precision, bigint, integer, real, integer, integer, integer) IS
    'A Mapbox Vector Tile (layer listings, extent 4096) of the rows as point features of tile z/x/y, with properties zpid, price, bedrooms, confidence.';

-- The same tile from the listings given as columns (array_aggs of the same rows, in their
-- order; element i of every array is listing i): what resi.listing_tile calls, with no
-- aggregate state per row (the portable edition's aggregate copies its state on every row, so
-- a tile of 50,000 listings would take it 30 s or more). IMMUTABLE, PARALLEL SAFE, not strict;
-- NULL when there is no listing; 22023 for arrays of different lengths or as the aggregate.
COMMENT ON FUNCTION resi.listing_tile_layer_of(text[], double precision[], double precision[], bigint[], integer[], real[], integer, integer, integer) IS
    'resi.listing_tile_layer of listings given as columns (element i of every array is listing i, in order): the same Mapbox Vector Tile bytes. NULL when there is no listing.';

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
    SELECT resi.listing_tile_layer_of(array_agg(t.zpid), array_agg(t.longitude), array_agg(t.latitude),
                                      array_agg(t.price), array_agg(t.bedrooms), array_agg(t.consensus_score), z, x, y)
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

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.tile_bounds(integer, integer, integer) IS
    'The WGS84 area of an XYZ tile; a point is in the tile when min <= coordinate < max. A zoom outside 0..30 or x, y outside 0..2^z-1 raise 22023.';
