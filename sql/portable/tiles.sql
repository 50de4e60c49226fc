-- Map tiles, portable edition: resi.tile_bounds and the aggregate resi.listing_tile_layer in
-- SQL and PL/pgSQL, the portable body of resi_pg/src/tile.rs over resi_core/src/tile.rs (web
-- mercator tile arithmetic and a Mapbox Vector Tile 2.1 encoder written by hand). What they
-- promise is in sql/tiles.sql, shared by both editions.
--
-- Same bytes as the native edition for the same rows in the same order: the same float
-- operations in the same order (pixels rounded half away from zero and saturated to integer
-- as Rust's `as i32` does), the same key and value tables (first appearance, equal values
-- once, doubles by their bits), the same field order.
--
-- The state is text, one short line per feature, encoded set-based by the final function. It
-- is copied on every row, so the aggregate is quadratic in the rows of a tile: 0.2 s for 1,000
-- listings, 2 to 3 s for 10,000, 30 s or more for 50,000 (native: 0.5 s). resi.listing_tile
-- calls the column form, resi.listing_tile_layer_of, which builds the same state set-based in
-- linear time. No SQL or PL/pgSQL transition function can grow a state in place in PostgreSQL 15:
-- the executor keeps a new state without copying it only when it is an expanded object built
-- in the aggregate's memory context, which only C functions do (array_append as the SFUNC
-- itself); PL/pgSQL hands its result back in the calling row's context, so it is flattened and
-- copied. A text[] state grown with array_append is no way out: it is re-expanded on every
-- call too (measured: 3.5 s for 10,000 listings, 100 s for 50,000). Run with
-- check_function_bodies = off, before the shared files.

-- ---------------------------------------------------------------------------------------------
-- Tile arithmetic
-- ---------------------------------------------------------------------------------------------

-- Raise 22023, naming `caller`, for a zoom outside 0..30 or x, y outside 0..2^z-1 (resi_core's
-- tile_bounds); otherwise nothing. For non-NULL z, x, y. IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.tile_check(z integer, x integer, y integer, caller text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF z < 0 OR z > 30 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s: tile zoom must be between 0 and 30, got %s', caller, z);
    END IF;
    IF x < 0 OR y < 0 OR x >= (1::bigint << z) OR y >= (1::bigint << z) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s: tile %s/%s/%s does not exist: x and y must be between 0 and %s',
                             caller, z, x, y, (1::bigint << z) - 1);
    END IF;
END
$$;

-- The WGS84 area of XYZ tile z/x/y, one row. IMMUTABLE, STRICT, PARALLEL SAFE. A zoom outside
-- 0..30 or x, y outside 0..2^z-1 raise 22023.
CREATE FUNCTION resi.tile_bounds(z integer, x integer, y integer)
    RETURNS TABLE (min_longitude double precision, min_latitude double precision,
                   max_longitude double precision, max_latitude double precision)
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    n double precision;
BEGIN
    PERFORM resi.tile_check(z, x, y, 'resi.tile_bounds');
    n := (1::bigint << z)::double precision;
    -- longitude(x) = x / n * 360 - 180; latitude(y) = degrees(atan(sinh(pi (1 - 2 y / n)))),
    -- degrees as Rust's to_degrees: a product with 180 / pi.
    RETURN QUERY SELECT
        x::double precision / n * 360.0::double precision - 180.0::double precision,
        atan(sinh(pi() * (1.0::double precision - 2.0::double precision * (y + 1)::double precision / n)))
            * (180.0::double precision / pi()),
        (x + 1)::double precision / n * 360.0::double precision - 180.0::double precision,
        atan(sinh(pi() * (1.0::double precision - 2.0::double precision * y::double precision / n)))
            * (180.0::double precision / pi());
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The layer aggregate
-- ---------------------------------------------------------------------------------------------

-- A tile's name, `z/x/y`, once it is checked: NULL z, x or y, a zoom outside 0..30 or x, y
-- outside 0..2^z-1 raise 22023 (resi_core's tile_bounds). IMMUTABLE, PARALLEL SAFE, not
-- strict.
CREATE FUNCTION resi.listing_tile_name(z integer, x integer, y integer) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF z IS NULL OR x IS NULL OR y IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'resi.listing_tile: z, x and y are required';
    END IF;
    PERFORM resi.tile_check(z, x, y, 'resi.listing_tile');
    RETURN z || '/' || x || '/' || y;
END
$$;

-- One listing as a line of the state (below): `px py price bedrooms confidence zpid`, the pixel
-- (as Rust's tile_pixel), price and bedrooms in decimal, confidence as the hex of the bits of its
-- double (float8send), `-` for NULL; zpid last, `-` for NULL, `r` and the text, or `h` and the
-- hex of its UTF-8 bytes when it holds a newline. NULL without finite coordinates. For a tile
-- resi.listing_tile_name has checked. IMMUTABLE, PARALLEL SAFE, not strict.
CREATE FUNCTION resi.listing_tile_line(
    zpid text, longitude double precision, latitude double precision, price bigint,
    bedrooms integer, confidence real, z integer, x integer, y integer)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    n      double precision;
    lat    double precision;
    phi    double precision;
    v      double precision;
    r      double precision;
    px     integer;
    py     integer;
BEGIN
    -- NULL and non-finite coordinates (abs(NaN) < Infinity is false) are skipped.
    IF NOT coalesce(abs(longitude) < 'Infinity'::double precision AND abs(latitude) < 'Infinity'::double precision, false) THEN
        RETURN NULL;
    END IF;

    n := (1::bigint << z)::double precision;
    -- x: ((longitude + 180) / 360 * n - x) * 4096. Beyond 1e15 degrees the pixel saturates
    -- (and PostgreSQL's float overflow checks would raise first).
    IF abs(longitude) > 1e15::double precision THEN
        px := CASE WHEN longitude > 0 THEN 2147483647 ELSE -2147483648 END;
    ELSE
        v := ((longitude + 180.0::double precision) / 360.0::double precision * n - x::double precision)
             * 4096.0::double precision;
        r := trunc(v);
        IF abs(v - r) >= 0.5::double precision THEN
            r := r + sign(v);
        END IF;
        px := CASE WHEN r >= 2147483647 THEN 2147483647 WHEN r <= -2147483648 THEN -2147483648 ELSE r::integer END;
    END IF;
    -- y: phi = radians(clamp(latitude, ±85.0511…)) as Rust's to_radians (a product with
    -- pi / 180); ((1 - ln(tan phi + 1 / cos phi) / pi) / 2 * n - y) * 4096. Below 1e-20
    -- degrees tan phi + 1 / cos phi is exactly 1, as for 0 (and the product would underflow).
    lat := CASE WHEN latitude < -85.05112877980659::double precision THEN -85.05112877980659::double precision
                WHEN latitude > 85.05112877980659::double precision THEN 85.05112877980659::double precision
                WHEN abs(latitude) < 1e-20::double precision THEN 0::double precision
                ELSE latitude END;
    phi := lat * (pi() / 180.0::double precision);
    v := ((1.0::double precision - ln(tan(phi) + 1.0::double precision / cos(phi)) / pi()) / 2.0::double precision * n
          - y::double precision) * 4096.0::double precision;
    r := trunc(v);
    IF abs(v - r) >= 0.5::double precision THEN
        r := r + sign(v);
    END IF;
    py := CASE WHEN r >= 2147483647 THEN 2147483647 WHEN r <= -2147483648 THEN -2147483648 ELSE r::integer END;

    RETURN px || ' ' || py || ' ' || coalesce(price::text, '-') || ' ' || coalesce(bedrooms::text, '-') || ' '
           || coalesce(encode(float8send(confidence::double precision), 'hex'), '-') || ' '
           || CASE WHEN zpid IS NULL THEN '-'
                   WHEN strpos(zpid, E'\n') = 0 THEN 'r' || zpid
                   ELSE 'h' || encode(convert_to(zpid, 'UTF8'), 'hex') END;
END
$$;

-- Transition of resi.listing_tile_layer. The state is text: the tile `z/x/y` (checked by
-- resi.listing_tile_name on the first row), then one resi.listing_tile_line per row with
-- coordinates (the first row still names the tile). A row of another tile raises 22023.
-- IMMUTABLE, PARALLEL SAFE, not strict.
CREATE FUNCTION resi.listing_tile_transition(
    state text, zpid text, longitude double precision, latitude double precision, price bigint,
    bedrooms integer, confidence real, z integer, x integer, y integer)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    tile text;
    line text;
BEGIN
    IF z IS NULL OR x IS NULL OR y IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'resi.listing_tile: z, x and y are required';
    END IF;
    IF state IS NULL THEN
        state := resi.listing_tile_name(z, x, y);
    ELSE
        tile := z || '/' || x || '/' || y;
        IF split_part(state, E'\n', 1) <> tile THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('resi.listing_tile: one layer is one tile, got %s after %s', tile, split_part(state, E'\n', 1));
        END IF;
    END IF;
    line := resi.listing_tile_line(zpid, longitude, latitude, price, bedrooms, confidence, z, x, y);
    IF line IS NULL THEN
        RETURN state;
    END IF;
    RETURN state || (E'\n' || line); -- one concatenation with the state (each || copies its left side)
END
$$;

-- The column form (what resi.listing_tile calls; sql/tiles.sql says what it promises): the
-- state built set-based, one resi.listing_tile_line per element, then the aggregate's final
-- function. Linear in the listings (0.x s for 50,000) where the aggregate is quadratic.
-- IMMUTABLE, PARALLEL SAFE, not strict.
CREATE FUNCTION resi.listing_tile_layer_of(
    zpids text[], longitudes double precision[], latitudes double precision[], prices bigint[],
    bedrooms integer[], confidences real[], z integer, x integer, y integer)
    RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    lengths integer[] := ARRAY[cardinality(zpids), cardinality(longitudes), cardinality(latitudes),
                               cardinality(prices), cardinality(bedrooms), cardinality(confidences)];
    listings integer := (SELECT max(n) FROM unnest(lengths) n);
    state text;
BEGIN
    IF coalesce(listings, 0) = 0 THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT FROM unnest(lengths) n WHERE n <> listings) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            'resi.listing_tile: the arrays must have one element per listing, got lengths %s',
            (SELECT string_agg(coalesce(n::text, 'NULL'), ', ' ORDER BY i)
               FROM unnest(lengths) WITH ORDINALITY u(n, i)));
    END IF;
    state := resi.listing_tile_name(z, x, y);
    SELECT state || coalesce(string_agg(E'\n' || l.line, '' ORDER BY l.i), '')
      INTO state
      FROM (SELECT c.i, resi.listing_tile_line(c.zpid, c.longitude, c.latitude, c.price, c.bedrooms, c.confidence,
                                               z, x, y) AS line
              FROM ROWS FROM (unnest(zpids), unnest(longitudes), unnest(latitudes), unnest(prices),
                              unnest(bedrooms), unnest(confidences))
                   WITH ORDINALITY c(zpid, longitude, latitude, price, bedrooms, confidence, i)) l
     WHERE l.line IS NOT NULL;
    RETURN resi.listing_tile_final(state);
END
$$;

-- Final of resi.listing_tile_layer: the tile (layer `listings`, version 2, extent 4096), its
-- features in row order, each a point with id (the zpid when it is a number below 2^64),
-- properties zpid, price, bedrooms, confidence (NULLs left out) and one MoveTo; keys and values
-- tables in order of first appearance, equal values once (price and bedrooms share integer
-- values; doubles by their bits). NULL for no rows; an empty bytea when no row had
-- coordinates. IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.listing_tile_final(state text) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    layer  bytea;
    size   bigint;
    head   bytea := E'\\x1a'::bytea;  -- Tile.layers, length-delimited
BEGIN
    IF state IS NULL THEN
        RETURN NULL;
    END IF;
    IF strpos(state, E'\n') = 0 THEN
        RETURN E'\\x'::bytea;
    END IF;
    WITH fields AS MATERIALIZED (
        SELECT t.ord, t.line, split_part(t.line, ' ', 1) AS f1, split_part(t.line, ' ', 2) AS f2,
               split_part(t.line, ' ', 3) AS f3, split_part(t.line, ' ', 4) AS f4, split_part(t.line, ' ', 5) AS f5
          FROM string_to_table(state, E'\n') WITH ORDINALITY AS t(line, ord)
         WHERE t.ord > 1
    ),
    lines AS MATERIALIZED (
        SELECT ord, f1::bigint AS px, f2::bigint AS py, nullif(f3, '-')::bigint AS price,
               nullif(f4, '-')::bigint AS bedrooms, nullif(f5, '-') AS confidence,
               substr(line, length(f1) + length(f2) + length(f3) + length(f4) + length(f5) + 6) AS zpid_field
          FROM fields
    ),
    features AS MATERIALIZED (
        SELECT l.ord, l.px, l.py,
               CASE WHEN l.px >= 0 THEN 2 * l.px ELSE -2 * l.px - 1 END AS zx,  -- zigzag
               CASE WHEN l.py >= 0 THEN 2 * l.py ELSE -2 * l.py - 1 END AS zy,
               l.price, l.bedrooms, l.confidence,
               CASE left(l.zpid_field, 1) WHEN 'r' THEN convert_to(substr(l.zpid_field, 2), 'UTF8')
                                          WHEN 'h' THEN decode(substr(l.zpid_field, 2), 'hex') END AS zpid_bytes,
               -- The feature id: a zpid of ASCII digits only whose value fits 64 bits, as the
               -- two's complement bigint of that unsigned number.
               CASE WHEN n.digits IS NOT NULL AND length(n.digits) <= 21 AND n.digits::numeric <= 18446744073709551615
                    THEN (n.digits::numeric - CASE WHEN n.digits::numeric >= 9223372036854775808
                                                   THEN 18446744073709551616 ELSE 0 END)::bigint END AS id
          FROM lines l
          LEFT JOIN LATERAL (SELECT '0' || ltrim(substr(l.zpid_field, 2), '0') AS digits
                              WHERE l.zpid_field ~ '^r[0-9]+$') n ON true
    ),
    -- Each feature's properties in order; a value is identified by its type and bytes.
    props AS (
        SELECT f.ord, p.pos, p.key, p.kind, p.bytes, p.ival
          FROM features f
         CROSS JOIN LATERAL (VALUES (1, 'zpid', 's', f.zpid_bytes, NULL::bigint),
                                    (2, 'price', 'i', int8send(f.price), f.price),
                                    (3, 'bedrooms', 'i', int8send(f.bedrooms), f.bedrooms),
                                    (4, 'confidence', 'd', decode(f.confidence, 'hex'), NULL))
                     AS p(pos, key, kind, bytes, ival)
         WHERE p.bytes IS NOT NULL
    ),
    keys AS (
        SELECT key, row_number() OVER (ORDER BY min(ord * 4 + pos)) - 1 AS idx
          FROM props GROUP BY key
    ),
    vals AS (
        SELECT kind, bytes, min(ival) AS ival, row_number() OVER (ORDER BY min(ord * 4 + pos)) - 1 AS idx
          FROM props GROUP BY kind, bytes
    ),
    -- Every number written as a varint (base 128, least significant group first, the high bit
    -- of each byte but the last set; a negative bigint as its unsigned 64-bit twin: 10 bytes).
    numbers AS (
        SELECT generate_series(0, 127)::bigint AS n  -- lengths of the short messages
        UNION SELECT id FROM features WHERE id IS NOT NULL
        UNION SELECT zx FROM features
        UNION SELECT zy FROM features
        UNION SELECT idx FROM vals
        UNION SELECT ival FROM vals WHERE kind = 'i'
        UNION SELECT length(bytes) FROM vals WHERE kind = 's'
        UNION SELECT 2 + length(bytes)  -- a string value: key, length, bytes
                     + (length(bytes) >= 128)::int + (length(bytes) >= 16384)::int
                     + (length(bytes) >= 2097152)::int + (length(bytes) >= 268435456)::int
                FROM vals WHERE kind = 's'
    ),
    varints AS (
        SELECT n, string_agg(set_byte(E'\\x00'::bytea, 0,
                                      (((n >> (7 * i)) & CASE WHEN i = 9 THEN 1 ELSE 127 END)
                                       | CASE WHEN i = 9 THEN 0
                                              WHEN n < 0 OR n >> (7 * i + 7) <> 0 THEN 128 ELSE 0 END)::integer),
                             ''::bytea ORDER BY i) AS b
          FROM numbers, generate_series(0, 9) AS i
         WHERE i = 0 OR n < 0 OR (i < 9 AND n >> (7 * i) <> 0)
         GROUP BY n
    ),
    tags AS (
        SELECT p.ord, string_agg(set_byte(E'\\x00'::bytea, 0, k.idx::integer) || e.b, ''::bytea ORDER BY p.pos) AS tags
          FROM props p
          JOIN keys k USING (key)
          JOIN vals v USING (kind, bytes)
          JOIN varints e ON e.n = v.idx
         GROUP BY p.ord
    ),
    -- Feature: id (1, varint), tags (2, packed; at most 26 bytes), type (3) POINT,
    -- geometry (4): MoveTo one point (9) and the zigzagged pixel. Each message is < 128 bytes.
    messages AS (
        SELECT f.ord,
               coalesce(E'\\x08'::bytea || ei.b, ''::bytea)
               || coalesce(E'\\x12'::bytea || et.b || t.tags, ''::bytea)
               || E'\\x1801'::bytea
               || E'\\x22'::bytea || eg.b || E'\\x09'::bytea || ex.b || ey.b AS message
          FROM features f
          LEFT JOIN varints ei ON ei.n = f.id
          LEFT JOIN tags t ON t.ord = f.ord
          LEFT JOIN varints et ON et.n = length(t.tags)
          JOIN varints ex ON ex.n = f.zx
          JOIN varints ey ON ey.n = f.zy
          JOIN varints eg ON eg.n = 1 + length(ex.b) + length(ey.b)
    ),
    -- Value: string (1), double (3, fixed64 little-endian) or int (4, varint).
    values_ AS (
        SELECT v.idx,
               CASE v.kind
                   WHEN 's' THEN E'\\x0a'::bytea || el.b || v.bytes
                   WHEN 'i' THEN E'\\x20'::bytea || ev.b
                   ELSE E'\\x19'::bytea || decode(substr(h, 15, 2) || substr(h, 13, 2) || substr(h, 11, 2) || substr(h, 9, 2)
                                               || substr(h, 7, 2) || substr(h, 5, 2) || substr(h, 3, 2) || substr(h, 1, 2), 'hex')
               END AS message
          FROM vals v
         CROSS JOIN LATERAL (SELECT encode(v.bytes, 'hex') AS h) x
          LEFT JOIN varints el ON v.kind = 's' AND el.n = length(v.bytes)
          LEFT JOIN varints ev ON v.kind = 'i' AND ev.n = v.ival
    )
    -- Layer: version (15) 2, name (1) listings, features (2), keys (3), values (4), extent (5) 4096.
    SELECT E'\\x7802'::bytea || E'\\x0a086c697374696e6773'::bytea
           || (SELECT string_agg(E'\\x12'::bytea || e.b || m.message, ''::bytea ORDER BY m.ord)
                 FROM messages m JOIN varints e ON e.n = length(m.message))
           || coalesce((SELECT string_agg(E'\\x1a'::bytea || e.b || convert_to(k.key, 'UTF8'), ''::bytea ORDER BY k.idx)
                          FROM keys k JOIN varints e ON e.n = length(k.key)), ''::bytea)
           || coalesce((SELECT string_agg(E'\\x22'::bytea || e.b || v.message, ''::bytea ORDER BY v.idx)
                          FROM values_ v JOIN varints e ON e.n = length(v.message)), ''::bytea)
           || E'\\x288020'::bytea
      INTO layer;

    -- Tile: the layer (3), length-delimited.
    size := length(layer);
    WHILE size >= 128 LOOP
        head := head || set_byte(E'\\x00'::bytea, 0, ((size & 127) | 128)::integer);
        size := size >> 7;
    END LOOP;
    RETURN head || set_byte(E'\\x00'::bytea, 0, size::integer) || layer;
END
$$;

CREATE AGGREGATE resi.listing_tile_layer(
    zpid text, longitude double precision, latitude double precision, price bigint, bedrooms integer,
    confidence real, z integer, x integer, y integer) (
    STYPE     = text,
    SFUNC     = resi.listing_tile_transition,
    FINALFUNC = resi.listing_tile_final,
    PARALLEL  = SAFE
);
