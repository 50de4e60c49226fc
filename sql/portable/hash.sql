-- SHA-256 and the canonical listing form behind resi.listing_hash: the portable body of
-- resi_pg/src/hash.rs over resi_core/src/hash.rs, in SQL and PL/pgSQL. The loader hashes
-- rows client-side with resi_core, so these must give byte-for-byte the same text.
--
-- The canonical form (version 1; resi_core/src/hash.rs says it in full): null members
-- dropped, keys sorted by their UTF-8 bytes, strings trimmed of Unicode White_Space and NFC,
-- RFC 8785 escapes (exactly what to_json(text) writes), numbers as the ECMAScript text of the
-- nearest double (float8out's shortest digits, laid out as Number.prototype.toString does).
-- The jsonb forms of resi.listing_hash and resi.canonical_listing are SQL wrappers over the
-- text forms in sql/listings.sql, in both editions.
--
-- Differences from the native edition (resi_core parses with serde_json):
-- - text that is not JSON raises 22P02 with PostgreSQL's own message (invalid input syntax
--   for type json) rather than serde_json's; the SQLSTATE is the same. Our own messages
--   (a number outside the double range; nesting too deep, with serde_json's line and column)
--   are native's;
-- - a text that breaks two rules at once may report another one first (e.g. a number outside
--   the double range before a lone surrogate escape: 22003 against 22P02);
-- - a text with a \u0000 escape and every Unicode noncharacter of U+FDD0..U+FDEF besides
--   raises 22P05 (such a text is hashed through a stand-in character);
-- - NFC is PostgreSQL's (Unicode 14 in PostgreSQL 15), unicode-normalization's is newer:
--   compositions of characters assigned since (Unicode 16's Tulu-Tigalari, Gurung Khema,
--   Kirat Rai, Todhri vowel signs) are not made. The database encoding must be UTF8.

-- ---------------------------------------------------------------------------------------------
-- SHA-256 hex (built-in sha256(); no pgcrypto)
-- ---------------------------------------------------------------------------------------------
-- IMMUTABLE, STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.sha256_hex(data bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.encode(pg_catalog.sha256(data), 'hex') $$;

-- The text's UTF-8 bytes (the database encoding is UTF8). IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.sha256_hex(data text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE -- not SQL: convert_to is STABLE, so it would not inline
AS $$ BEGIN RETURN pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(data, 'UTF8')), 'hex'); END $$;

-- ---------------------------------------------------------------------------------------------
-- Helpers (also used by the settings parsers)
-- ---------------------------------------------------------------------------------------------
-- Rust's str::trim: leading and trailing Unicode White_Space (the 25 code points of
-- PropList.txt). IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.trim_white_space(s text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT pg_catalog.btrim(s, E'\u0009\u000A\u000B\u000C\u000D\u0020\u0085\u00A0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000')
$$;

-- The double nearest to the decimal number sign digits.fraction × 10^(exp_sign exponent), as
-- a correctly rounding parser (Rust's, serde_json's with float_roundtrip, strtod) reads it;
-- NULL when it is beyond the double range (it would round to ±infinity). Underflow gives ±0,
-- not an error (float8in refuses it). The digit strings may be empty or arbitrarily long.
-- IMMUTABLE, not STRICT (NULL parts are empty), PARALLEL SAFE; never raises.
CREATE FUNCTION resi.decimal_float8(sign text, digits text, fraction text, exp_sign text, exponent text)
    RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    all_digits   text := coalesce(digits, '') || coalesce(fraction, '');
    significant  text := pg_catalog.ltrim(all_digits, '0');
    exp_digits   text := pg_catalog.ltrim(coalesce(exponent, ''), '0');
    negative     boolean := sign = '-';
    exp_value    bigint;
    point        bigint; -- the value is 0.significant × 10^point
    scaled       numeric;
BEGIN
    IF significant = '' THEN
        RETURN CASE WHEN negative THEN '-0'::double precision ELSE 0 END;
    END IF;
    IF length(exp_digits) > 9 THEN -- |exponent| >= 10^9: far outside the double range
        IF exp_sign = '-' THEN
            RETURN CASE WHEN negative THEN '-0'::double precision ELSE 0 END;
        END IF;
        RETURN NULL;
    END IF;
    exp_value := CASE WHEN exp_sign = '-' THEN -1 ELSE 1 END * coalesce(nullif(exp_digits, '')::bigint, 0);
    point := length(coalesce(digits, '')) - (length(all_digits) - length(significant)) + exp_value;
    IF point > 310 THEN
        RETURN NULL;
    ELSIF point < -324 THEN -- below 10^-325 < 2^-1075: rounds to zero
        RETURN CASE WHEN negative THEN '-0'::double precision ELSE 0 END;
    END IF;
    significant := pg_catalog.rtrim(significant, '0');
    IF length(significant) > 800 THEN -- a sticky digit keeps the rounding of the rest
        significant := left(significant, 800) || '1';
    END IF;
    IF point >= 309 THEN -- at least 2^1024 - 2^970 (halfway to 2^1024) rounds to infinity
        scaled := ('0.' || significant || 'e' || point)::numeric;
        IF scaled >= 2::numeric ^ 1024 - 2::numeric ^ 970 THEN
            RETURN NULL;
        END IF;
    ELSIF point <= -323 THEN -- at most 2^-1075 (halfway to the least subnormal) rounds to zero
        scaled := ('0.' || significant || 'e' || (point + 1075))::numeric; -- × 10^1075
        IF scaled <= 5::numeric ^ 1075 THEN
            RETURN CASE WHEN negative THEN '-0'::double precision ELSE 0 END;
        END IF;
    END IF;
    RETURN (CASE WHEN negative THEN '-' ELSE '' END || '0.' || significant || 'e' || point)::double precision;
END
$$;

-- ECMAScript's Number.prototype.toString layout of a double given as float8out writes it
-- with extra_float_digits >= 1 (its shortest round-trip digits, e.g. '1e-07', '1.2e+16',
-- '0.001'): decimal notation for exponents -7 < e < 21, else d.ddde±x; -0 is '0'.
-- IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.ecmascript_number_text(shortest text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    negative boolean := left(shortest, 1) = '-';
    mantissa text := split_part(ltrim(shortest, '-'), 'e', 1);
    whole    text := split_part(mantissa, '.', 1);
    digits   text := whole || split_part(mantissa, '.', 2);
    d        text := rtrim(ltrim(digits, '0'), '0'); -- the significant digits
    k        integer := length(d);
    n        integer; -- the value is 0.d × 10^n
BEGIN
    IF d = '' THEN
        RETURN '0';
    END IF;
    n := length(whole) + coalesce(nullif(split_part(shortest, 'e', 2), '')::integer, 0)
         - (length(digits) - length(ltrim(digits, '0')));
    RETURN CASE WHEN negative THEN '-' ELSE '' END || CASE
        WHEN k <= n AND n <= 21 THEN d || repeat('0', n - k)
        WHEN 0 < n AND n <= 21 THEN left(d, n) || '.' || substr(d, n + 1)
        WHEN -6 < n AND n <= 0 THEN '0.' || repeat('0', -n) || d
        ELSE left(d, 1) || CASE WHEN k > 1 THEN '.' || substr(d, 2) ELSE '' END
             || 'e' || CASE WHEN n > 0 THEN '+' ELSE '-' END || abs(n - 1)
    END;
END
$$;

-- A JSON number token as the canonical form writes it; a number outside the double range
-- raises 22003 "<fn>: listing holds a number outside the double range". Needs
-- extra_float_digits >= 1 (resi.canonical_json sets it). IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.canonical_json_number(token text, fn text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    m text[];
    value double precision;
BEGIN
    -- Short tokens without an exponent are well inside the double range (float8in reads them).
    IF length(token) <= 40 AND strpos(token, 'e') = 0 AND strpos(token, 'E') = 0 THEN
        value := token::double precision;
    ELSE
        m := pg_catalog.regexp_match(token, '^(-?)([0-9]+)(?:[.]([0-9]+))?(?:[eE]([-+]?)([0-9]+))?$');
        value := resi.decimal_float8(m[1], m[2], m[3], m[4], m[5]);
        IF value IS NULL THEN
            RAISE EXCEPTION '%: listing holds a number outside the double range', fn
                USING ERRCODE = 'numeric_value_out_of_range';
        END IF;
    END IF;
    RETURN resi.ecmascript_number_text(value::text);
END
$$;

-- Raises 22P02 "<fn>: listing is not canonicalisable JSON: recursion limit exceeded at line L
-- column C" (serde_json's message and position: the 128th nested opening bracket, the column
-- in bytes) when arrays and objects nest 128 deep or more, before PostgreSQL's own parser would
-- run out of stack on deeper text. Strings are skipped; unbalanced text counts its open
-- brackets. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.check_json_depth(doc text, fn text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    prefix text; -- the text up to and including the bracket too deep
BEGIN
    WITH token AS (
        SELECT t.m[1] AS tok, t.i
          FROM regexp_matches(doc, E'"(?:[^"\\\\]|\\\\.)*"|[][{}]|[^][{}"]+|"', 'g') WITH ORDINALITY AS t(m, i)
    ),
    depth AS (
        SELECT tok, i, sum(CASE WHEN tok IN ('[', '{') THEN 1 WHEN tok IN (']', '}') THEN -1 ELSE 0 END) OVER (ORDER BY i) AS depth
          FROM token
    )
    SELECT string_agg(d.tok, '' ORDER BY d.i) INTO prefix
      FROM depth d
     WHERE d.i <= (SELECT min(i) FROM depth WHERE depth >= 128);
    IF prefix IS NOT NULL THEN
        RAISE EXCEPTION '%: listing is not canonicalisable JSON: recursion limit exceeded at line % column %', fn,
            1 + length(prefix) - length(replace(prefix, E'\n', '')),
            octet_length(substring(prefix FROM E'[^\n]*$'))
            USING ERRCODE = 'invalid_text_representation';
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The canonical text of a JSON text
-- ---------------------------------------------------------------------------------------------
-- fn names the SQL function in error messages. The document is walked once (a recursive query
-- over json, which keeps duplicate keys, escapes and number tokens as written): every value
-- is read and checked, as serde_json parses it, including members a later duplicate key or a
-- null drops; then the kept nodes are written in canonical order. Each node's sort key is
-- its path of elements (a key's UTF-8 bytes and two zero bytes, an array index as 4 bytes)
-- and the closing bracket of a container sorts after everything inside it.
--
-- serde_json reads \u0000 and jsonb/text cannot hold it: such an escape is read as a
-- noncharacter absent from the text and written back as \u0000, sorting as U+0000 would.
-- IMMUTABLE, STRICT, PARALLEL SAFE. Errors: 22P02 (not JSON, a lone surrogate escape, nested
-- 128 deep), 22003 (a number outside the double range).
CREATE FUNCTION resi.canonical_json(listing text, fn text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET extra_float_digits = 1 -- float8out's shortest round-trip digits
AS $$
DECLARE
    doc        text := listing;
    stand_in   text; -- stands for U+0000
    stand_hex  text;
    result     text;
BEGIN
    IF length(doc) - length(translate(doc, '[{', '')) >= 128 THEN
        PERFORM resi.check_json_depth(doc, fn);
    END IF;
    IF strpos(doc, E'\\u0000') > 0 THEN
        SELECT chr(c) INTO stand_in
          FROM generate_series(64976, 65007) AS c -- U+FDD0..U+FDEF
         WHERE strpos(doc, chr(c)) = 0 AND doc !~* (E'\\\\u' || to_hex(c))
         ORDER BY c LIMIT 1;
        IF stand_in IS NULL THEN
            RAISE EXCEPTION E'%: a listing with \\u0000 and every noncharacter U+FDD0..U+FDEF is not supported', fn
                USING ERRCODE = 'untranslatable_character';
        END IF;
        stand_hex := encode(convert_to(stand_in, 'UTF8'), 'hex');
        -- Escapes \u0000 (after an even run of backslashes) become \uFDxx.
        doc := regexp_replace(doc, E'(?<!\\\\)((?:\\\\\\\\)*)\\\\u0000', E'\\1\\\\u' || to_hex(ascii(stand_in)), 'g');
    END IF;

    WITH RECURSIVE node(sort_key, parent_key, kind, value, key, dropped) AS (
        SELECT ''::bytea, NULL::bytea, json_typeof(j), j, NULL::text, false
          FROM (SELECT doc::json AS j) root
        UNION ALL
        SELECT n.sort_key || c.elem, n.sort_key, json_typeof(c.value), c.value, c.key, n.dropped OR c.dropped
          FROM node n
         CROSS JOIN LATERAL (
                SELECT e.key, e.value,
                       CASE WHEN stand_hex IS NULL THEN convert_to(e.key, 'UTF8')
                            ELSE decode(replace(encode(convert_to(e.key, 'UTF8'), 'hex'), stand_hex, '0001'), 'hex')
                       END || E'\\x0000'::bytea AS elem,
                       json_typeof(e.value) = 'null'
                       OR row_number() OVER (PARTITION BY e.key ORDER BY e.i DESC) > 1 AS dropped
                  FROM json_each(CASE WHEN n.kind = 'object' THEN n.value END) WITH ORDINALITY AS e(key, value, i)
                UNION ALL
                SELECT NULL, a.value, int4send(a.i::integer), false
                  FROM json_array_elements(CASE WHEN n.kind = 'array' THEN n.value END) WITH ORDINALITY AS a(value, i)
         ) c
         WHERE n.kind IN ('object', 'array')
    ),
    -- Every scalar is read and checked, kept or not.
    scalar AS MATERIALIZED (
        SELECT n.sort_key, n.parent_key, n.kind, n.key, n.dropped,
               CASE n.kind
                   WHEN 'string' THEN to_json(normalize(resi.trim_white_space(n.value #>> '{}'), NFC))::text
                   WHEN 'number' THEN resi.canonical_json_number(btrim(n.value::text, E' \t\n\r'), fn)
                   WHEN 'object' THEN '{'
                   WHEN 'array' THEN '['
                   ELSE btrim(n.value::text, E' \t\n\r') -- true, false, null
               END AS token
          FROM node n
    ),
    piece(sort_key, text) AS (
        SELECT s.sort_key,
               CASE WHEN row_number() OVER (PARTITION BY s.parent_key ORDER BY s.sort_key) > 1 THEN ',' ELSE '' END
               || CASE WHEN s.key IS NOT NULL THEN to_json(s.key)::text || ':' ELSE '' END
               || s.token
          FROM scalar s
         WHERE NOT s.dropped
        UNION ALL
        SELECT s.sort_key || E'\\xff'::bytea, CASE s.kind WHEN 'object' THEN '}' ELSE ']' END
          FROM scalar s
         WHERE NOT s.dropped AND s.kind IN ('object', 'array')
    )
    SELECT string_agg(p.text, '' ORDER BY p.sort_key) INTO result FROM piece p;

    IF stand_in IS NOT NULL THEN
        result := replace(result, stand_in, E'\\u0000');
    END IF;
    RETURN result;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The SQL API (resi_pg/src/hash.rs)
-- ---------------------------------------------------------------------------------------------
-- IMMUTABLE, STRICT, PARALLEL SAFE. Errors: 22P02 (not JSON, nested 128 deep), 22003 (a
-- number outside the double range), with the function's name first.
CREATE FUNCTION resi.canonical_listing(listing text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT resi.canonical_json(listing, 'resi.canonical_listing') $$;

CREATE FUNCTION resi.listing_hash(listing text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT resi.sha256_hex(resi.canonical_json(listing, 'resi.listing_hash')) $$;
