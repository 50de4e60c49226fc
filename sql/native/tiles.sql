-- Map tiles, native edition: the aggregate resi.listing_tile_layer over its Rust transition and
-- final functions (resi_pg/src/tile.rs). What it promises is in sql/tiles.sql, shared by both
-- editions; the portable edition declares it in sql/portable/tiles.sql.
--
-- Part of the native install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- before sql/tiles.sql). A change here ships an upgrade delta in sql/upgrade/.

CREATE AGGREGATE resi.listing_tile_layer(
    zpid text, longitude double precision, latitude double precision, price bigint, bedrooms integer,
    confidence real, z integer, x integer, y integer) (
    STYPE     = internal,
    SFUNC     = resi.listing_tile_transition,
    FINALFUNC = resi.listing_tile_final,
    PARALLEL  = SAFE
);
