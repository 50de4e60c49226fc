-- Independence: resi.claim_signature, the fingerprint two reports share exactly when one is a
-- byte copy of the other. The portable body of resi_pg/src/independence.rs over
-- resi_core/src/fields.rs (claim_signature), in SQL only. Signatures are stored
-- (resi.miner_attestations.signature, resi.miner_claims.signature) and compared across
-- editions, so this gives the same bigint as the Rust for every input.
--
-- The Rust hashes with SHA-256 (PostgreSQL's built-in sha256(bytea) here) one byte string:
--   the zpid, uri, address, home_type, home_status, zip_code, city, state, each as
--     0x00 when NULL, else 0x01, its UTF-8 length as 8 bytes little-endian, its UTF-8 bytes;
--   then the scrape time (microseconds since 2000-01-01 00:00 UTC, as PostgreSQL keeps a
--     timestamptz; ±infinity are its int64 extremes), price, bedrooms, bathrooms (the double's
--     IEEE 754 bits), living_area, days_on_zillow, latitude, longitude (bits), each as
--     0x00 when NULL, else 0x01 and the value as 8 bytes little-endian (integers widened to
--     64 bits);
-- and the signature is the digest's first 8 bytes read as a little-endian int64. No
-- normalisation: -0.0 and 0.0, or two NaNs with different bits, sign differently, as natively.
-- PostgreSQL's send functions give each value's exact bytes, big-endian; they are reversed.
-- The database encoding is UTF8 (as pgrx reads text natively).

-- The 8 bytes of `b` in reverse order (big-endian ↔ little-endian). IMMUTABLE, PARALLEL SAFE;
-- NULL for NULL.
CREATE FUNCTION resi.reversed_bytes8(b bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN substr(b, 8, 1) || substr(b, 7, 1) || substr(b, 6, 1) || substr(b, 5, 1)
    || substr(b, 4, 1) || substr(b, 3, 1) || substr(b, 2, 1) || substr(b, 1, 1);

-- A text field as the signature encodes it: 0x00 for NULL, else 0x01, the UTF-8 length as 8
-- bytes little-endian and the UTF-8 bytes. STABLE only because convert_to is; PARALLEL SAFE.
CREATE FUNCTION resi.signature_text(value text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN value IS NULL THEN decode('00', 'hex')
            ELSE decode('01', 'hex') || resi.reversed_bytes8(int8send(octet_length(convert_to(value, 'UTF8'))::bigint))
                 || convert_to(value, 'UTF8') END;

-- A number field as the signature encodes it, given its 8 big-endian bytes (int8send,
-- float8send, timestamptz_send): 0x00 for NULL, else 0x01 and the bytes little-endian.
-- IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.signature_number(big_endian bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN big_endian IS NULL THEN decode('00', 'hex')
            ELSE decode('01', 'hex') || resi.reversed_bytes8(big_endian) END;

-- 64 bits of SHA-256 over a report's zpid, scrape time and every field. IMMUTABLE, PARALLEL
-- SAFE, not strict: a NULL field is part of the signature; a NULL zpid gives NULL. Never
-- raises (the comment is in sql/independence.sql, as natively). PL/pgSQL with one expression:
-- an SQL function would not inline (convert_to is STABLE) and would start an executor per row.
CREATE FUNCTION resi.claim_signature(
    zpid text, scraped_at timestamp with time zone, uri text, price bigint, address text,
    bedrooms integer, bathrooms double precision, living_area integer, home_type text,
    home_status text, days_on_zillow integer, zip_code text, city text, state text,
    latitude double precision, longitude double precision) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN CASE WHEN zpid IS NOT NULL THEN
        ('x' || encode(resi.reversed_bytes8(substr(sha256(
            resi.signature_text(zpid) || resi.signature_text(uri) || resi.signature_text(address)
            || resi.signature_text(home_type) || resi.signature_text(home_status)
            || resi.signature_text(zip_code) || resi.signature_text(city) || resi.signature_text(state)
            || resi.signature_number(timestamptz_send(scraped_at))
            || resi.signature_number(int8send(price))
            || resi.signature_number(int8send(bedrooms::bigint))
            || resi.signature_number(float8send(bathrooms))
            || resi.signature_number(int8send(living_area::bigint))
            || resi.signature_number(int8send(days_on_zillow::bigint))
            || resi.signature_number(float8send(latitude))
            || resi.signature_number(float8send(longitude))), 1, 8)), 'hex'))::bit(64)::bigint
    END;
END
$$;
