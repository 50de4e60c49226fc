-- resi_pg functions, version 0.4.0: aggregates and SQL-language functions over the Rust
-- functions. Included at the end of the generated install script (extension_sql_file!
-- finalize in resi_pg/src/lib.rs).

-- ---------------------------------------------------------------------------------------------
-- Consensus aggregates. Internal state with combine/serial/deserial functions, so parallel
-- query (and partition-wise aggregation) can split them; see resi_pg/src/consensus/. SSPACE is
-- the typical state size of a listing-sized group (a few distinct values, ~10 claims): without
-- it the planner assumes 8 kB per group and avoids hash aggregation.
-- ---------------------------------------------------------------------------------------------
CREATE AGGREGATE resi.consensus_mode(value text, weight double precision) (
    STYPE        = internal,
    SSPACE       = 128,
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
    SSPACE       = 256,
    SFUNC        = resi.consensus_median_transition,
    COMBINEFUNC  = resi.consensus_median_combine,
    SERIALFUNC   = resi.consensus_median_serialize,
    DESERIALFUNC = resi.consensus_median_deserialize,
    FINALFUNC    = resi.consensus_median_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_median(double precision, double precision, double precision) IS
    'Trust-weighted lower median with weighted 25th/75th percentiles; supporters are voters within tolerance (relative) of the median. NULL/NaN/infinite values and NULL/NaN/non-positive weights are ignored.';

-- Every field of one listing at once (resi_pg/src/consensus/listing.rs): per field exactly what
-- resi.consensus_mode / resi.consensus_median give (tolerances: price 0.01, living_area 0.02,
-- days_on_zillow 0.1, latitude/longitude 1e-6), in one call per claim; what resi.listing_consensus
-- and resi.refresh_consensus use.
CREATE AGGREGATE resi.consensus_listing(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision, weight double precision) (
    STYPE        = internal,
    SSPACE       = 2048,
    SFUNC        = resi.consensus_listing_transition,
    COMBINEFUNC  = resi.consensus_listing_combine,
    SERIALFUNC   = resi.consensus_listing_serialize,
    DESERIALFUNC = resi.consensus_listing_deserialize,
    FINALFUNC    = resi.consensus_listing_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_listing(text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision) IS
    'A listing''s consensus from its claims (one row per miner, weighted by trust): every field as resi.consensus_mode / resi.consensus_median give it, a uri only when it names the zpid, bathrooms rounded to 0.1 within 0..99.9; with consensus_score and the per-field field_consensus jsonb. NULL when no claim has a voting weight.';

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
COMMENT ON FUNCTION resi.record_miner_submission(text, integer, timestamptz) IS
    'Count `submissions` uploads of a miner at a time (UTC day): the per-day count that rate limits check, and the miner''s totals. Returns the day''s new count.';

-- ---------------------------------------------------------------------------------------------
-- Strikes and bans
-- ---------------------------------------------------------------------------------------------
-- A strike is recorded with its reason; every resi.strikes_per_ban strikes (default 3) the
-- miner is banned: the n-th ban lasts resi.ban_duration × 2^(n-1) (default 6 hours, 12, 24, ...),
-- at most resi.max_ban_duration (default 30 days). A ban starts the strike count again and
-- expires on its own (resi.miner_trust.banned_until). Returns banned_until when this strike
-- led to a ban, else NULL.
CREATE FUNCTION resi.add_strike(hotkey text, reason text) RETURNS timestamptz
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
COMMENT ON FUNCTION resi.add_strike(text, text) IS
    'Give a miner a strike; every resi.strikes_per_ban strikes bring a ban of resi.ban_duration × 2^(bans so far), at most resi.max_ban_duration. Returns banned_until when this strike banned the miner.';

-- An operator's ban (for good when duration is NULL) and its lifting.
CREATE FUNCTION resi.ban_miner(hotkey text, reason text, duration interval DEFAULT NULL) RETURNS timestamptz
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
COMMENT ON FUNCTION resi.ban_miner(text, text, interval) IS
    'Ban a miner for a duration (NULL: for good); its objects are deferred until the ban ends. Returns banned_until.';

CREATE FUNCTION resi.unban_miner(hotkey text) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE resi.miner_trust t SET banned_until = NULL, ban_reason = NULL, strikes = 0, updated_at = now()
     WHERE t.miner_hotkey = hotkey AND t.banned_until > now()
    RETURNING true;
END;
COMMENT ON FUNCTION resi.unban_miner(text) IS 'Lift a miner''s ban now and clear its strikes. NULL when it was not banned.';

-- ---------------------------------------------------------------------------------------------
-- Admission: may this miner's object be folded now?
-- ---------------------------------------------------------------------------------------------
-- NULL when admitted; else the reason, 'banned: …' or 'rate_limited: …', and the object is to
-- be deferred (retried by a later run). The day is the UTC day of submitted_at (S3's
-- LastModified), so a backfill is judged day by day. The miner's day row stays locked until
-- the caller's transaction ends, so concurrent loaders admit one object of a miner at a time
-- and never overshoot the allowance (the fold counts the submission in the same transaction).
-- A refused object counts as an over-limit attempt once (first_attempt: false when retrying an
-- object already refused for its allowance); resi.over_limit_strike_attempts attempts in a day
-- earn a strike.
CREATE FUNCTION resi.admit_submission(hotkey text, submitted_at timestamptz, first_attempt boolean DEFAULT true)
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
COMMENT ON FUNCTION resi.admit_submission(text, timestamptz, boolean) IS
    'Whether a miner''s object submitted at a time may be folded now: NULL if so (the miner''s day stays locked until the transaction ends), else ''banned: …'' or ''rate_limited: …''. Over-limit attempts count towards strikes.';

-- ---------------------------------------------------------------------------------------------
-- Consensus of listings from the miners' current claims
-- ---------------------------------------------------------------------------------------------
-- The weights a listing's consensus depends on, as one number: bit_xor over its claims of
-- resi.trust_fingerprint(miner, weight). Stored with the consensus; when the miners' weights
-- change (trust moved, resi.initial_trust changed) the stored and current values differ and the
-- listing is stale. Exact whatever order concurrent transactions commit in (unlike timestamps).
CREATE FUNCTION resi.trust_fingerprint(miner_hotkey text, weight double precision) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.hashtextextended(miner_hotkey, pg_catalog.hashfloat8extended(weight, 0));
COMMENT ON FUNCTION resi.trust_fingerprint(text, double precision) IS
    'A 64-bit hash of a miner and its consensus weight; bit_xor over a listing''s claims is resi.listings.trust_fingerprint.';

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
       (c).consensus_score,
       (c).uri, (c).price, (c).address, (c).bedrooms, (c).bathrooms, (c).living_area, (c).home_type,
       (c).home_status, (c).days_on_zillow, (c).zip_code, (c).city, (c).state, (c).latitude, (c).longitude,
       voting_miners,
       trust_fingerprint,
       (c).field_consensus
  FROM (SELECT c.zpid,
               min(c.first_seen_at) AS first_seen_at,
               sum(c.attestations)::integer AS total_attestations,
               count(*)::integer AS unique_miners_count,
               count(*) FILTER (WHERE w.trust > 0)::integer AS voting_miners,
               bit_xor(resi.trust_fingerprint(c.miner_hotkey, w.trust)) AS trust_fingerprint,
               resi.consensus_listing(c.zpid, c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area,
                                      c.home_type, c.home_status, c.days_on_zillow, c.zip_code, c.city, c.state,
                                      c.latitude, c.longitude, w.trust) AS c
          FROM resi.miner_claims c
          LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.miner_hotkey
         CROSS JOIN LATERAL (SELECT coalesce(t.trust_score, resi.initial_trust()) AS trust) w
         GROUP BY c.zpid) per_listing;
COMMENT ON VIEW resi.listing_consensus IS
    'Trust-weighted consensus of every listing, computed from resi.miner_claims (what resi.refresh_consensus writes into resi.listings).';

-- How one reported row compares with a listing's consensus: `compared` fields where both have a
-- value, `agreed` of them within the tolerance resi.listing_consensus uses for that field (a
-- number within its relative tolerance, anything else equal). NULL listing: nothing compared.
-- The tolerances here and in resi.listing_consensus are the same; change them together.
CREATE FUNCTION resi.consensus_agreement(
    uri text, price bigint, address text, bedrooms integer, bathrooms double precision, living_area integer,
    home_type text, home_status text, days_on_zillow integer, zip_code text, city text, state text,
    latitude double precision, longitude double precision, consensus resi.listings)
    RETURNS TABLE (compared integer, agreed integer)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1
    -- A one-row set-returning SQL function, so the planner inlines it into the caller's query.
AS $$
    SELECT num_nonnulls(VARIADIC v), coalesce(cardinality(array_positions(v, true)), 0)
      FROM (SELECT ARRAY[
                    uri = (consensus).uri,
                    abs(price - (consensus).price) <= 0.01 * abs((consensus).price),
                    address = (consensus).address,
                    bedrooms = (consensus).bedrooms,
                    CASE WHEN bathrooms IS NOT NULL AND (consensus).bathrooms IS NOT NULL
                         THEN bathrooms BETWEEN 0 AND 99.9 AND round(bathrooms::numeric, 1) = (consensus).bathrooms END,
                    abs(living_area - (consensus).living_area) <= 0.02 * abs((consensus).living_area),
                    home_type = (consensus).home_type,
                    home_status = (consensus).home_status,
                    abs(days_on_zillow - (consensus).days_on_zillow) <= 0.1 * abs((consensus).days_on_zillow),
                    zip_code = (consensus).zip_code,
                    city = (consensus).city,
                    state = (consensus).state,
                    abs(latitude - (consensus).latitude) <= 1e-6 * abs((consensus).latitude),
                    abs(longitude - (consensus).longitude) <= 1e-6 * abs((consensus).longitude)] AS v) x
$$;
COMMENT ON FUNCTION resi.consensus_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings) IS
    'How many of a reported row''s fields can be compared with a listing''s consensus, and how many of them agree (within the consensus tolerances).';

-- Write the consensus of `zpids` (all listings with claims when NULL) into resi.listings.
-- Rows are locked in zpid order first, so concurrent folds of overlapping listings queue
-- instead of overwriting each other with a consensus that misses the other's claims.
CREATE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
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
COMMENT ON FUNCTION resi.refresh_consensus(text[]) IS
    'Recompute the consensus of the given listings (all when NULL) from resi.miner_claims into resi.listings, e.g. after trust changes; rows whose consensus did not change are not rewritten. Returns the number of listings recomputed.';

-- Rebuild resi.miner_claims from resi.miner_attestations (the claims are derived data; use
-- after editing attestations by hand), then refresh every listing.
CREATE FUNCTION resi.rebuild_claims() RETURNS integer
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

-- ---------------------------------------------------------------------------------------------
-- The fold: staging → attestations → claims → listings, once per INSERT/COPY statement
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.fold_staged_listings() RETURNS trigger
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

CREATE TRIGGER fold_staged_listings
    AFTER INSERT ON resi.staging_listings
    REFERENCING NEW TABLE AS staged
    FOR EACH STATEMENT EXECUTE FUNCTION resi.fold_staged_listings();

-- Empty the staging table (its rows were folded when they were inserted). Skips, returning
-- false, when another session is writing to it.
CREATE FUNCTION resi.clear_staging() RETURNS boolean
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

-- ---------------------------------------------------------------------------------------------
-- Trust changes reach the consensus: bounded refreshes of stale listings
-- ---------------------------------------------------------------------------------------------
-- A listing is stale when the weights of its claims differ from those its consensus was
-- computed with (resi.listings.trust_fingerprint). Refreshes at most max_listings stale listings,
-- oldest consensus first, and returns how many. The loader calls it after every pass
-- (resi-loader run --refresh-limit, default 10,000), so a listing's consensus lags its miners'
-- trust by at most (stale listings / limit) passes; folding new rows of a listing refreshes it
-- at once.
CREATE FUNCTION resi.stale_listing(zpid text, trust_fingerprint bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN trust_fingerprint IS DISTINCT FROM (
        SELECT bit_xor(resi.trust_fingerprint(c.miner_hotkey, coalesce(t.trust_score, resi.initial_trust())))
          FROM resi.miner_claims c
          LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.miner_hotkey
         WHERE c.zpid = stale_listing.zpid);
COMMENT ON FUNCTION resi.stale_listing(text, bigint) IS
    'Whether a listing''s consensus, computed with these weights (resi.listings.trust_fingerprint), is out of date with its miners'' trust now.';

CREATE FUNCTION resi.refresh_stale_consensus(max_listings integer DEFAULT 10000) RETURNS integer
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
COMMENT ON FUNCTION resi.refresh_stale_consensus(integer) IS
    'Recompute up to max_listings listings whose consensus was computed with weights their miners no longer have, oldest first. Returns the number refreshed.';

CREATE FUNCTION resi.stale_listings() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT count(*) FROM resi.listings l WHERE resi.stale_listing(l.zpid, l.trust_fingerprint);
END;
COMMENT ON FUNCTION resi.stale_listings() IS
    'How many listings resi.refresh_stale_consensus still has to recompute.';

-- ---------------------------------------------------------------------------------------------
-- Validation: a validator's spot-check of one miner's current claim on a listing
-- ---------------------------------------------------------------------------------------------
-- Marks the attestation behind the miner's current claim validated, counts it, and moves the
-- miner's trust with resi.next_trust(trust, score, passed, NOT passed): +0.1 when it passed,
-- -0.5 when it held fake data. The listing's consensus is refreshed now; the miner's other
-- listings by resi.refresh_stale_consensus. An attestation is validated once: validating it
-- again changes nothing (a NOTICE says so). Returns the miner's trust after the validation.
-- Errors: P0002 when the miner has no claim on the listing; 22023 for a score outside [0, 1].
CREATE FUNCTION resi.record_validation(miner_hotkey text, zpid text, passed boolean, score double precision DEFAULT NULL)
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
COMMENT ON FUNCTION resi.record_validation(text, text, boolean, double precision) IS
    'A validator''s spot-check of a miner''s current claim on a listing: marks the attestation validated and moves the miner''s trust (+0.1 passed, -0.5 failed: fake data). Returns the new trust.';

-- ---------------------------------------------------------------------------------------------
-- A miner's standing, explained
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.miner_status(hotkey text) RETURNS resi.miner_status
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    settings resi.ingest_settings := resi.ingest_settings();
    today    date := (now() AT TIME ZONE 'UTC')::date;
    t        resi.miner_trust;
    s        resi.miner_status;
BEGIN
    SELECT * INTO t FROM resi.miner_trust m WHERE m.miner_hotkey = hotkey;
    s.miner_hotkey      := hotkey;
    s.known             := FOUND;
    s.trust_score       := coalesce(t.trust_score, resi.initial_trust());
    s.accuracy_score    := t.accuracy_score;
    s.duplicate_rate    := t.duplicate_rate;
    s.total_submissions := coalesce(t.total_submissions, 0);
    s.daily_allowance   := resi.rate_limit_for(s.trust_score);
    SELECT coalesce(sum(d.submissions), 0) INTO s.submissions_today
      FROM resi.miner_submission_days d WHERE d.miner_hotkey = hotkey AND d.day = today;
    s.remaining_today   := greatest(s.daily_allowance - s.submissions_today, 0);
    s.strikes           := coalesce(t.strikes, 0);
    s.strikes_until_ban := greatest(settings.strikes_per_ban - s.strikes, 0);
    s.bans              := coalesce(t.bans, 0);
    IF t.banned_until > now() THEN
        s.banned_until := t.banned_until;
        s.ban_reason   := t.ban_reason;
    END IF;
    s.explanation := format('%s miner: trust %s (%s); allowance %s submissions per UTC day, %s used today, %s left; %s',
        CASE WHEN s.known THEN 'known' ELSE 'unknown' END,
        round(s.trust_score::numeric, 3),
        CASE WHEN s.known
             THEN format('accuracy %s, duplicate rate %s, %s submissions, %s validated (%s failed)',
                         coalesce(round(s.accuracy_score::numeric, 3)::text, 'not yet measured'),
                         round(s.duplicate_rate::numeric, 3), s.total_submissions,
                         t.validated_submissions, t.validations_failed)
             ELSE 'the initial trust, resi.initial_trust' END,
        s.daily_allowance, s.submissions_today, s.remaining_today,
        CASE WHEN s.banned_until IS NOT NULL
             THEN format('banned until %s: %s', s.banned_until, s.ban_reason)
             ELSE format('%s strikes, %s more bring ban number %s', s.strikes, s.strikes_until_ban, s.bans + 1) END);
    RETURN s;
END
$$;
COMMENT ON FUNCTION resi.miner_status(text) IS
    'A miner''s trust, daily allowance and use, strikes and ban, with a one-sentence explanation. Unknown miners get the defaults.';

-- ---------------------------------------------------------------------------------------------
-- Blacklist
-- ---------------------------------------------------------------------------------------------
-- Add a known-bad zpid or zip code ('exact') or a POSIX regular expression over them
-- ('pattern'); submissions containing a match get the issue `blacklisted` (quality × 0.1).
-- Returns the entry's id; adding an existing entry returns its id and keeps its reason.
-- Errors: 22023 for an unknown field or match kind; 2201B for a pattern that is not a valid
-- regular expression.
CREATE FUNCTION resi.add_blacklist_entry(field text, value text, reason text, match text DEFAULT 'exact')
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
COMMENT ON FUNCTION resi.add_blacklist_entry(text, text, text, text) IS
    'Blacklist a zpid or zip code (match ''exact'') or a POSIX pattern over them (match ''pattern''). Returns the entry id.';

CREATE FUNCTION resi.remove_blacklist_entry(id bigint) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH removed AS (DELETE FROM resi.blacklist b WHERE b.id = remove_blacklist_entry.id RETURNING 1)
    SELECT count(*) > 0 FROM removed;
END;
COMMENT ON FUNCTION resi.remove_blacklist_entry(bigint) IS 'Remove a blacklist entry by id. True when it existed.';

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
