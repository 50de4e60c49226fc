-- resi_pg functions, version 0.1.0: aggregates and SQL-language functions over the Rust
-- functions. Included at the end of the generated install script (extension_sql_file!
-- finalize in resi_pg/src/lib.rs).

-- ---------------------------------------------------------------------------------------------
-- Consensus aggregates. Internal state with combine/serial/deserial functions, so parallel
-- query (and partition-wise aggregation) can split them; see resi_pg/src/consensus/.
-- ---------------------------------------------------------------------------------------------
CREATE AGGREGATE resi.consensus_mode(value text, weight double precision) (
    STYPE        = internal,
    SFUNC        = resi.consensus_mode_transition,
    COMBINEFUNC  = resi.consensus_mode_combine,
    SERIALFUNC   = resi.consensus_mode_serialize,
    DESERIALFUNC = resi.consensus_mode_deserialize,
    FINALFUNC    = resi.consensus_mode_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_mode(text, double precision) IS
    'Trust-weighted vote: the value with the greatest summed weight (ties: more supporters, then smallest value), with confidence, agreement and counts. NULL values and NULL/NaN/non-positive weights are ignored.';

CREATE AGGREGATE resi.consensus_median(value double precision, weight double precision, tolerance double precision) (
    STYPE        = internal,
    SFUNC        = resi.consensus_median_transition,
    COMBINEFUNC  = resi.consensus_median_combine,
    SERIALFUNC   = resi.consensus_median_serialize,
    DESERIALFUNC = resi.consensus_median_deserialize,
    FINALFUNC    = resi.consensus_median_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_median(double precision, double precision, double precision) IS
    'Trust-weighted lower median with weighted 25th/75th percentiles; supporters are voters within tolerance (relative) of the median. NULL/NaN/infinite values and NULL/NaN/non-positive weights are ignored.';

-- ---------------------------------------------------------------------------------------------
-- Submission quality: one report over the rows of one submission (resi_pg/src/quality.rs).
-- No COMBINEFUNC: a submission is one group of modest size, and the final function reads the
-- blacklist and the quality settings.
-- ---------------------------------------------------------------------------------------------
CREATE AGGREGATE resi.submission_quality(zpid text, price double precision, zip_code text) (
    STYPE     = internal,
    SFUNC     = resi.submission_quality_transition,
    FINALFUNC = resi.submission_quality_final,
    PARALLEL  = SAFE
);
COMMENT ON AGGREGATE resi.submission_quality(text, double precision, text) IS
    'Quality of one submission: score 1.0 times 0.5 if a price is outside [resi.quality_min_price, resi.quality_max_price], 0.3 if a zpid repeats, 0.7 if more than resi.quality_max_zip_codes zip codes, 0.1 if a zpid or zip code is blacklisted; with the issue codes and counts. NULL when there are no rows.';

-- ---------------------------------------------------------------------------------------------
-- Canonical listing hash over jsonb (inlined; the Rust text form does the work).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.listing_hash(listing jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN resi.listing_hash(listing::text);
COMMENT ON FUNCTION resi.listing_hash(jsonb) IS
    'SHA-256 hex of the canonical form of a listing: keys sorted, null members dropped, strings trimmed and NFC, numbers as shortest round-trip doubles.';

CREATE FUNCTION resi.canonical_listing(listing jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN resi.canonical_listing(listing::text);
COMMENT ON FUNCTION resi.canonical_listing(jsonb) IS 'The canonical JSON text that resi.listing_hash hashes.';

-- ---------------------------------------------------------------------------------------------
-- Rate limits
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.check_miner_rate_limit(
    hotkey      text,
    submissions integer DEFAULT 1,
    on_day      date    DEFAULT (now() AT TIME ZONE 'UTC')::date
) RETURNS boolean
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    trust  double precision;
    banned boolean;
    used   bigint;
BEGIN
    IF submissions < 0 THEN
        RAISE EXCEPTION 'resi.check_miner_rate_limit: submissions must be >= 0, got %', submissions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT t.trust_score, coalesce(t.banned_until > now(), false)
      INTO trust, banned
      FROM resi.miner_trust t
     WHERE t.miner_hotkey = hotkey;
    IF NOT FOUND THEN
        trust := resi.initial_trust();
        banned := false;
    END IF;
    IF banned THEN
        RETURN false;
    END IF;
    SELECT d.submissions INTO used
      FROM resi.miner_submission_days d
     WHERE d.miner_hotkey = hotkey AND d.day = on_day;
    RETURN coalesce(used, 0) + submissions <= resi.rate_limit_for(trust);
END
$$;
COMMENT ON FUNCTION resi.check_miner_rate_limit(text, integer, date) IS
    'True when the miner may make `submissions` more submissions on that UTC day: the day''s count so far plus these is within resi.rate_limit_for(trust); unknown miners have resi.initial_trust(); banned miners get false.';

CREATE FUNCTION resi.record_miner_submission(
    hotkey      text,
    submissions integer     DEFAULT 1,
    at          timestamptz DEFAULT now()
) RETURNS integer
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
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
COMMENT ON FUNCTION resi.record_miner_submission(text, integer, timestamptz) IS
    'Count `submissions` uploads of a miner at a time (UTC day): the per-day count that rate limits check, and the miner''s totals. Returns the day''s new count.';

-- ---------------------------------------------------------------------------------------------
-- Consensus of listings from the miners' current claims
-- ---------------------------------------------------------------------------------------------
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
       (SELECT avg(c) FROM unnest(ARRAY[(uri).confidence, (price).confidence, (address).confidence,
            (bedrooms).confidence, (bathrooms).confidence, (living_area).confidence, (home_type).confidence,
            (home_status).confidence, (days_on_zillow).confidence, (zip_code).confidence, (city).confidence,
            (state).confidence, (latitude).confidence, (longitude).confidence]) c)::real AS consensus_score,
       uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
       zip_code, city, state, latitude, longitude
  FROM (SELECT c.zpid,
               min(c.first_seen_at) AS first_seen_at,
               sum(c.attestations)::integer AS total_attestations,
               count(*)::integer AS unique_miners_count,
               resi.consensus_mode(c.uri, w.trust) FILTER (WHERE substring(c.uri FROM '(\d+)_zpid') = c.zpid) AS uri,
               resi.consensus_median(c.price, w.trust, 0.01) AS price,
               resi.consensus_mode(c.address, w.trust) AS address,
               resi.consensus_mode(c.bedrooms::text, w.trust) AS bedrooms,
               resi.consensus_mode(CASE WHEN c.bathrooms BETWEEN 0 AND 99.9
                                        THEN round(c.bathrooms::numeric, 1)::text END, w.trust) AS bathrooms,
               resi.consensus_median(c.living_area, w.trust, 0.02) AS living_area,
               resi.consensus_mode(c.home_type, w.trust) AS home_type,
               resi.consensus_mode(c.home_status, w.trust) AS home_status,
               resi.consensus_median(c.days_on_zillow, w.trust, 0.1) AS days_on_zillow,
               resi.consensus_mode(c.zip_code, w.trust) AS zip_code,
               resi.consensus_mode(c.city, w.trust) AS city,
               resi.consensus_mode(c.state, w.trust) AS state,
               resi.consensus_median(c.latitude, w.trust, 1e-6) AS latitude,
               resi.consensus_median(c.longitude, w.trust, 1e-6) AS longitude
          FROM resi.miner_claims c
          LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.miner_hotkey
         CROSS JOIN LATERAL (SELECT coalesce(t.trust_score, resi.initial_trust()) AS trust) w
         GROUP BY c.zpid) per_listing;
COMMENT ON VIEW resi.listing_consensus IS
    'Trust-weighted consensus of every listing, computed from resi.miner_claims (what resi.refresh_consensus writes into resi.listings).';

-- Write the consensus of `zpids` (all listings with claims when NULL) into resi.listings.
-- Rows are locked in zpid order first, so concurrent folds of overlapping listings queue
-- instead of overwriting each other with a consensus that misses the other's claims.
CREATE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
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
    WITH fresh AS (
        SELECT * FROM resi.listing_consensus WHERE zpids IS NULL OR zpid = ANY (zpids)
    )
    UPDATE resi.listings l SET
        uri                 = (f.uri).value,
        price               = round((f.price).value)::bigint,
        address             = (f.address).value,
        bedrooms            = (f.bedrooms).value::integer,
        bathrooms           = (f.bathrooms).value::numeric(3,1),
        living_area         = round((f.living_area).value)::integer,
        home_type           = (f.home_type).value,
        home_status         = (f.home_status).value,
        days_on_zillow      = round((f.days_on_zillow).value)::integer,
        zip_code            = (f.zip_code).value,
        city                = (f.city).value,
        state               = (f.state).value,
        latitude            = (f.latitude).value,
        longitude           = (f.longitude).value,
        first_seen_at       = least(l.first_seen_at, f.first_seen_at),
        last_updated_at     = now(),
        consensus_score     = f.consensus_score,
        total_attestations  = f.total_attestations,
        unique_miners_count = f.unique_miners_count,
        field_consensus     = jsonb_strip_nulls(jsonb_build_object(
            'uri', to_jsonb(f.uri), 'price', to_jsonb(f.price), 'address', to_jsonb(f.address),
            'bedrooms', to_jsonb(f.bedrooms), 'bathrooms', to_jsonb(f.bathrooms),
            'living_area', to_jsonb(f.living_area), 'home_type', to_jsonb(f.home_type),
            'home_status', to_jsonb(f.home_status), 'days_on_zillow', to_jsonb(f.days_on_zillow),
            'zip_code', to_jsonb(f.zip_code), 'city', to_jsonb(f.city), 'state', to_jsonb(f.state),
            'latitude', to_jsonb(f.latitude), 'longitude', to_jsonb(f.longitude)))
      FROM fresh f
     WHERE l.zpid = f.zpid;
    GET DIAGNOSTICS refreshed = ROW_COUNT;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus(text[]) IS
    'Recompute the consensus of the given listings (all when NULL) from resi.miner_claims into resi.listings, e.g. after trust changes. Returns the number of listings written.';

-- Rebuild resi.miner_claims from resi.miner_attestations (the claims are derived data; use
-- after editing attestations by hand), then refresh every listing.
CREATE FUNCTION resi.rebuild_claims() RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
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

-- ---------------------------------------------------------------------------------------------
-- The fold: staging → attestations → claims → listings, once per INSERT/COPY statement
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.fold_staged_listings() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
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
    RETURN NULL;
END
$$;

CREATE TRIGGER fold_staged_listings
    AFTER INSERT ON resi.staging_listings
    REFERENCING NEW TABLE AS staged
    FOR EACH STATEMENT EXECUTE FUNCTION resi.fold_staged_listings();

-- Empty the staging table (its rows were folded when they were inserted). Skips, returning
-- false, when another session is writing to it.
CREATE FUNCTION resi.clear_staging() RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
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
