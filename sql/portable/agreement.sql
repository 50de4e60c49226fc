-- Agreement: how one reported row compares with a listing, field by field, within the
-- tolerances of the listing's field table. The portable body of
-- resi_pg/src/consensus/agreement.rs over resi_core/src/fields.rs (verdicts, agreement,
-- corroborated_agreement) and resi_core/src/consensus/listing.rs (bathrooms_tenths), in SQL only:
--
--   resi.consensus_agreement(uri, price, …, longitude, consensus resi.listings) → (compared, agreed)
--   resi.corroborated_agreement(…, consensus resi.listings, corroborated text[]) → (compared, agreed)
--   resi.corroborated_fields(field_consensus jsonb) → text[]
--   resi.claim_errors(…, audited resi.listings) → text[]
--   resi.claim_differences(claim resi.miner_claims, other resi.miner_claims) → text[]
--
-- Same signatures, volatility, strictness and parallel safety as native, and the same results
-- for every input: none of them raises. The functions take resi.listings and resi.miner_claims
-- rows, so this file runs after sql/listings.sql (natively: `requires = ["listings"]`), and
-- before the files that comment on them (sql/independence.sql, audit.sql, consensus.sql).
-- resi-package: before ingest.sql
--
-- Bodies are SQL-standard (BEGIN ATOMIC / RETURN): parsed once at install, so operators and
-- functions are bound then, whatever the caller's search_path, and the set-returning ones inline
-- into the calling query (the fold's LATERAL calls).

-- ---------------------------------------------------------------------------------------------
-- The field table (resi_core::fields::LISTING_FIELDS), defined once
-- ---------------------------------------------------------------------------------------------
-- The fourteen fields of a listing in column order: the SQL type as the tables declare it and
-- how the field votes. ppm NULL: by vote over equal values (a double that votes, bathrooms, as
-- its value rounded to a tenth within 0..99.9); otherwise by weighted median, a report agreeing
-- within ppm millionths of the consensus value (exactly for the integer types; in doubles,
-- tolerance ppm / 1e6, for double precision). IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.agreement_fields()
    RETURNS TABLE (ordinal integer, name text, sql_type text, ppm integer)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT f.ordinal, f.name, f.sql_type, f.ppm
      FROM (VALUES (1,  'uri',            'text',             NULL::integer),
                   (2,  'price',          'bigint',           10000),
                   (3,  'address',        'text',             NULL),
                   (4,  'bedrooms',       'integer',          NULL),
                   (5,  'bathrooms',      'double precision', NULL),
                   (6,  'living_area',    'integer',          20000),
                   (7,  'home_type',      'text',             NULL),
                   (8,  'home_status',    'text',             NULL),
                   (9,  'days_on_zillow', 'integer',          100000),
                   (10, 'zip_code',       'text',             NULL),
                   (11, 'city',           'text',             NULL),
                   (12, 'state',          'text',             NULL),
                   (13, 'latitude',       'double precision', 1),
                   (14, 'longitude',      'double precision', 1)) AS f (ordinal, name, sql_type, ppm);
END;

-- ---------------------------------------------------------------------------------------------
-- Comparing one field
-- ---------------------------------------------------------------------------------------------
-- A bathrooms count as the tenths it votes for: round(v::numeric, 1) × 10 (the double's 15
-- significant digits, then half away from zero), only for 0 ≤ v ≤ 99.9 (what numeric(3,1)
-- holds); NULL outside that range, for NaN and for NULL. IMMUTABLE, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.bathrooms_tenths(v double precision) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN v >= 0::double precision AND v <= 99.9::double precision
            THEN (round(v::numeric, 1) * 10)::integer END;

-- fl(tolerance × |subnormal|) as IEEE 754 multiplication rounds it, for a subnormal double and a
-- normal tolerance in (0, 1]: the product is a subnormal, a whole number of 2^-1074, here
-- rounded half to even from the exact product of the two doubles' bits. Where float8 `*`
-- would raise 22003 (an underflow to zero), this gives the 0 IEEE 754 gives. IMMUTABLE,
-- STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.subnormal_product(tolerance double precision, subnormal double precision)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT (p.whole + CASE WHEN 2 * p.rest > p.unit OR (2 * p.rest = p.unit AND mod(p.whole, 2) = 1)
                           THEN 1 ELSE 0 END)::double precision
           * 4.9406564584124654e-324::double precision -- 2^-1074: exact, and never an underflow
      FROM (SELECT div(b.exact, b.unit) AS whole, mod(b.exact, b.unit) AS rest, b.unit
              FROM (SELECT -- |subnormal| = m · 2^-1074; tolerance = (2^52 + fraction) · 2^(e - 1075)
                           (s.bits & 4503599627370495)::numeric
                           * ((t.bits & 4503599627370495) | 4503599627370496)::numeric AS exact,
                           2::numeric ^ (1075 - ((t.bits >> 52) & 2047))::numeric AS unit
                      FROM (SELECT ('x' || encode(float8send(subnormal), 'hex'))::bit(64)::bigint AS bits) s,
                           (SELECT ('x' || encode(float8send(tolerance), 'hex'))::bit(64)::bigint AS bits) t) b) p;
END;

-- Whether a reported double lies within `tolerance` of the consensus, relative to it:
-- |report - consensus| <= tolerance · |consensus| evaluated in IEEE 754 doubles, as Rust
-- does: NaN on either side agrees with nothing, an infinite consensus is agreed with by every
-- finite report (∞ <= ∞), and a difference that overflows to ∞ disagrees. PostgreSQL's float8
-- operators raise 22003 on overflow and underflow and order NaN above everything, so those
-- cases are decided before any arithmetic that could raise. NULL when either side is NULL.
-- For tolerances in [1e-15, 1]. IMMUTABLE, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.within_tolerance(report double precision, consensus double precision,
                                      tolerance double precision) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN report IS NULL OR consensus IS NULL THEN NULL
    WHEN report = 'NaN'::double precision OR consensus = 'NaN'::double precision THEN false
    -- a subnormal consensus: tolerance · |consensus| may underflow to zero (an error in SQL)
    WHEN consensus <> 0::double precision AND abs(consensus) < 2.2250738585072014e-308::double precision
        THEN abs(report - consensus) <= resi.subnormal_product(tolerance, consensus)
    -- finite, of opposite signs and huge: report - consensus may overflow (an error in SQL);
    -- halving them is exact, so the halves' sum rounds as |report - consensus| would at half
    -- the scale, cannot overflow, and exceeds DBL_MAX / 2 exactly when the difference is ∞
    WHEN abs(report) < 'Infinity'::double precision AND abs(consensus) < 'Infinity'::double precision
         AND abs(report) >= 1::double precision AND abs(consensus) >= 1::double precision
         AND sign(report) <> sign(consensus)
         AND abs(report) / 2::double precision + abs(consensus) / 2::double precision
             > 8.988465674311579e307::double precision
        THEN false
    ELSE abs(report - consensus) <= tolerance * abs(consensus)
END;

-- ---------------------------------------------------------------------------------------------
-- Verdicts: every field of a report against a listing's (or another report's) values
-- ---------------------------------------------------------------------------------------------
-- resi_core::fields::verdicts: one row per field (ordinal: its place in column order), verdict
-- true when the report agrees, false when not, NULL when the field is NULL on either side. Text
-- compares by bytes (COLLATE "C", as Rust's ==); integers exactly (numeric: |r - c| · 10^6 <=
-- ppm · |c|); doubles with resi.within_tolerance; bathrooms as tenths (resi.bathrooms_tenths), a
-- report or consensus outside 0..99.9 disagreeing. The c_ arguments are the consensus,
-- bathrooms as a double. IMMUTABLE, PARALLEL SAFE; never raises; inlines into the caller.
CREATE FUNCTION resi.field_verdicts(
    uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    c_uri text, c_price bigint, c_address text, c_bedrooms integer, c_bathrooms double precision,
    c_living_area integer, c_home_type text, c_home_status text, c_days_on_zillow integer,
    c_zip_code text, c_city text, c_state text, c_latitude double precision, c_longitude double precision)
    RETURNS TABLE (ordinal integer, name text, verdict boolean)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT f.ordinal, f.name,
           CASE
               WHEN f.sql_type = 'text' THEN v.r_text = v.c_text COLLATE "C"
               WHEN f.sql_type IN ('bigint', 'integer') THEN
                   CASE WHEN f.ppm IS NULL THEN v.r_integer = v.c_integer
                        ELSE abs(v.r_integer - v.c_integer) * 1000000 <= f.ppm * abs(v.c_integer) END
               WHEN f.ppm IS NULL THEN -- a double that votes: bathrooms, as tenths
                   CASE WHEN v.r_double IS NOT NULL AND v.c_double IS NOT NULL
                        THEN coalesce(resi.bathrooms_tenths(v.r_double) = resi.bathrooms_tenths(v.c_double), false) END
               ELSE resi.within_tolerance(v.r_double, v.c_double, f.ppm / 1e6::double precision)
           END
      FROM resi.agreement_fields() f
     CROSS JOIN LATERAL ( -- each field's two values, by name (a CASE costs less than a join)
           SELECT CASE f.name WHEN 'uri' THEN field_verdicts.uri WHEN 'address' THEN field_verdicts.address
                              WHEN 'home_type' THEN field_verdicts.home_type
                              WHEN 'home_status' THEN field_verdicts.home_status
                              WHEN 'zip_code' THEN field_verdicts.zip_code WHEN 'city' THEN field_verdicts.city
                              WHEN 'state' THEN field_verdicts.state END AS r_text,
                  CASE f.name WHEN 'uri' THEN field_verdicts.c_uri WHEN 'address' THEN field_verdicts.c_address
                              WHEN 'home_type' THEN field_verdicts.c_home_type
                              WHEN 'home_status' THEN field_verdicts.c_home_status
                              WHEN 'zip_code' THEN field_verdicts.c_zip_code WHEN 'city' THEN field_verdicts.c_city
                              WHEN 'state' THEN field_verdicts.c_state END AS c_text,
                  CASE f.name WHEN 'price' THEN field_verdicts.price::numeric
                              WHEN 'bedrooms' THEN field_verdicts.bedrooms::numeric
                              WHEN 'living_area' THEN field_verdicts.living_area::numeric
                              WHEN 'days_on_zillow' THEN field_verdicts.days_on_zillow::numeric END AS r_integer,
                  CASE f.name WHEN 'price' THEN field_verdicts.c_price::numeric
                              WHEN 'bedrooms' THEN field_verdicts.c_bedrooms::numeric
                              WHEN 'living_area' THEN field_verdicts.c_living_area::numeric
                              WHEN 'days_on_zillow' THEN field_verdicts.c_days_on_zillow::numeric END AS c_integer,
                  CASE f.name WHEN 'bathrooms' THEN field_verdicts.bathrooms
                              WHEN 'latitude' THEN field_verdicts.latitude
                              WHEN 'longitude' THEN field_verdicts.longitude END AS r_double,
                  CASE f.name WHEN 'bathrooms' THEN field_verdicts.c_bathrooms
                              WHEN 'latitude' THEN field_verdicts.c_latitude
                              WHEN 'longitude' THEN field_verdicts.c_longitude END AS c_double) v;
END;

-- resi.field_verdicts of a report against a listing: the listing's fields stand as the
-- consensus, bathrooms as a double. A NULL listing gives every verdict NULL. IMMUTABLE,
-- PARALLEL SAFE; never raises; inlines into the caller.
CREATE FUNCTION resi.listing_verdicts(
    uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    listing resi.listings)
    RETURNS TABLE (ordinal integer, name text, verdict boolean)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT v.ordinal, v.name, v.verdict
      FROM resi.field_verdicts(
               uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
               days_on_zillow, zip_code, city, state, latitude, longitude,
               (listing).uri, (listing).price, (listing).address, (listing).bedrooms,
               (listing).bathrooms::double precision, (listing).living_area, (listing).home_type,
               (listing).home_status, (listing).days_on_zillow, (listing).zip_code, (listing).city,
               (listing).state, (listing).latitude, (listing).longitude) v;
END;

-- ---------------------------------------------------------------------------------------------
-- The SQL API
-- ---------------------------------------------------------------------------------------------
-- How many fields of a report can be compared with a listing and how many agree. IMMUTABLE,
-- PARALLEL SAFE, not strict: NULL fields are not compared, a NULL consensus compares nothing
-- (0, 0). Exactly one row; never raises.
CREATE FUNCTION resi.consensus_agreement(
    uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    consensus resi.listings)
    RETURNS TABLE (compared integer, agreed integer)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1
BEGIN ATOMIC
    SELECT count(v.verdict)::integer, (count(*) FILTER (WHERE v.verdict))::integer
      FROM resi.listing_verdicts(
               uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
               days_on_zillow, zip_code, city, state, latitude, longitude, consensus) v;
END;

-- resi.consensus_agreement counted only on the fields named in `corroborated` (those whose
-- consensus value two or more independent sources back: resi.corroborated_fields). IMMUTABLE,
-- PARALLEL SAFE, not strict: a NULL consensus or corroborated compares nothing (0, 0); NULL
-- elements, repeated and unknown names are ignored. Exactly one row; never raises.
CREATE FUNCTION resi.corroborated_agreement(
    uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    consensus resi.listings, corroborated text[])
    RETURNS TABLE (compared integer, agreed integer)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1
BEGIN ATOMIC
    SELECT count(v.verdict)::integer, (count(*) FILTER (WHERE v.verdict))::integer
      FROM resi.listing_verdicts(
               uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
               days_on_zillow, zip_code, city, state, latitude, longitude, consensus) v
     WHERE v.name COLLATE "C" = ANY (corroborated_agreement.corroborated);
END;

-- The fields of a listing's field_consensus whose `supporters` is a number that rounds (half
-- away from zero) to an integer from 2 to 2^31 - 1, in column order. Anything else (not an
-- object of objects, a supporters that is not a number, unknown keys) is no support.
-- IMMUTABLE, STRICT, PARALLEL SAFE; '{}' when there is none; never raises. Called once per
-- staged row of every fold: PL/pgSQL reading the (decompressed) object by key, 29 µs a call,
-- where a query joining jsonb_each with resi.agreement_fields() took 69 µs. The names are the
-- field table's, in its order (tests/tests/portable_agreement.rs checks that they are).
CREATE FUNCTION resi.corroborated_fields(field_consensus jsonb) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    consensus  jsonb := field_consensus OPERATOR(pg_catalog.||) '{}'::jsonb; -- decompressed once
    supporters jsonb;
    name       text;
    fields     text[] := '{}';
BEGIN
    IF pg_catalog.jsonb_typeof(consensus) <> 'object' THEN
        RETURN fields;
    END IF;
    FOREACH name IN ARRAY '{uri,price,address,bedrooms,bathrooms,living_area,home_type,home_status,days_on_zillow,zip_code,city,state,latitude,longitude}'::text[] LOOP
        supporters := consensus -> name -> 'supporters';
        IF pg_catalog.jsonb_typeof(supporters) = 'number'
           AND pg_catalog.round(supporters::numeric) BETWEEN 2 AND 2147483647 THEN
            fields := fields || name;
        END IF;
    END LOOP;
    RETURN fields;
END
$$;

-- The fields, in column order, where a report disagrees with an audited listing (within the
-- consensus tolerances; a field NULL on either side is not judged). IMMUTABLE, PARALLEL SAFE,
-- not strict: a NULL audited gives NULL (a row whose fields are all NULL is not NULL: '{}').
-- Never raises.
CREATE FUNCTION resi.claim_errors(
    uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    audited resi.listings) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT CASE WHEN num_nulls(claim_errors.audited) = 0
                THEN coalesce(array_agg(v.name ORDER BY v.ordinal) FILTER (WHERE NOT v.verdict), '{}') END
      FROM resi.listing_verdicts(
               uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
               days_on_zillow, zip_code, city, state, latitude, longitude, audited) v;
END;

-- The fields, in column order, where two claims disagree within the consensus tolerances, as
-- resi.claim_errors judges a report against a listing: `other` stands where the listing would,
-- so its bathrooms outside 0..99.9 (which a listing cannot hold) are not judged. IMMUTABLE,
-- STRICT, PARALLEL SAFE; '{}' when they agree; never raises.
CREATE FUNCTION resi.claim_differences(claim resi.miner_claims, other resi.miner_claims) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT coalesce(array_agg(v.name ORDER BY v.ordinal) FILTER (WHERE NOT v.verdict), '{}')
      FROM resi.field_verdicts(
               (claim).uri, (claim).price, (claim).address, (claim).bedrooms, (claim).bathrooms,
               (claim).living_area, (claim).home_type, (claim).home_status, (claim).days_on_zillow,
               (claim).zip_code, (claim).city, (claim).state, (claim).latitude, (claim).longitude,
               (other).uri, (other).price, (other).address, (other).bedrooms,
               CASE WHEN resi.bathrooms_tenths((other).bathrooms) IS NOT NULL THEN (other).bathrooms END,
               (other).living_area, (other).home_type, (other).home_status, (other).days_on_zillow,
               (other).zip_code, (other).city, (other).state, (other).latitude, (other).longitude) v;
END;
