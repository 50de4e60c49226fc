-- resi_pg 0.1.0 → 0.2.0: trust, quality checks and rate limits wired into ingest.
--
-- Brings a 0.1.0 database to exactly what CREATE EXTENSION resi_pg VERSION '0.2.0' creates
-- (tests/tests/upgrade.rs compares the two catalogues). Released upgrade scripts are never edited.
--
-- New: submission quality reports (resi.submission_quality, resi.blacklist), trust moved by each
-- submission's agreement with the consensus and by validations (resi.record_validation),
-- admission with bans and strikes (resi.admit_submission, resi.add_strike, resi.ban_miner,
-- resi.unban_miner, resi.miner_status), bounded refresh of stale listings
-- (resi.refresh_stale_consensus), and the ingest settings (resi.ingest_settings()).

\echo Use "ALTER EXTENSION resi_pg UPDATE TO '0.2.0'" to load this file. \quit

-- Types ------------------------------------------------------------------------------------------
-- resi.submission_quality(zpid text, price double precision, zip_code text)
CREATE TYPE resi.quality_report AS (
    score           double precision, -- 1.0 times the factor of every issue found
    issues          text[],           -- issue codes, in a fixed order (empty: none)
    rows            integer,          -- rows aggregated
    duplicate_zpids integer,          -- rows whose zpid already appeared earlier in the submission
    distinct_zips   integer           -- distinct non-NULL zip codes
);

-- resi.ingest_settings(): the ingest and penalty settings in effect, typed
CREATE TYPE resi.ingest_settings AS (
    max_submission_rows        integer,  -- resi.max_submission_rows: larger objects are rejected (too_large)
    over_limit_strike_attempts integer,  -- resi.over_limit_strike_attempts: over-limit objects in a UTC day that earn a strike
    strikes_per_ban            integer,  -- resi.strikes_per_ban
    ban_duration               interval, -- resi.ban_duration: the first ban; each later ban lasts twice the one before
    max_ban_duration           interval  -- resi.max_ban_duration: the cap of that doubling
);

-- resi.miner_status(hotkey text)
CREATE TYPE resi.miner_status AS (
    miner_hotkey         text,
    known                boolean,          -- has a row in resi.miner_trust
    trust_score          double precision, -- resi.initial_trust() when unknown
    accuracy_score       double precision,
    duplicate_rate       double precision,
    total_submissions    bigint,
    daily_allowance      integer,          -- resi.rate_limit_for(trust_score)
    submissions_today    integer,          -- on the current UTC day
    remaining_today      integer,
    strikes              integer,          -- since the last ban
    strikes_until_ban    integer,
    bans                 integer,          -- bans so far; the next one lasts longer
    banned_until         timestamptz,      -- NULL when not banned now
    ban_reason           text,
    explanation          text              -- the above as one sentence
);

-- Columns (appended, as in the 0.2.0 schema) -----------------------------------------------------
ALTER TABLE resi.listings
    ADD COLUMN voting_miners integer NOT NULL DEFAULT 0 CHECK (voting_miners >= 0),
    ADD COLUMN trust_fingerprint bigint; -- NULL: every listing is stale until refreshed
ALTER TABLE resi.miner_trust
    ADD COLUMN validations_failed bigint NOT NULL DEFAULT 0 CHECK (validations_failed >= 0),
    ADD COLUMN rows_submitted     bigint NOT NULL DEFAULT 0 CHECK (rows_submitted >= 0),
    ADD COLUMN duplicate_rows     bigint NOT NULL DEFAULT 0 CHECK (duplicate_rows >= 0),
    ADD COLUMN fields_compared    bigint NOT NULL DEFAULT 0 CHECK (fields_compared >= 0),
    ADD COLUMN fields_agreed      bigint NOT NULL DEFAULT 0 CHECK (fields_agreed >= 0),
    ADD COLUMN bans               integer NOT NULL DEFAULT 0 CHECK (bans >= 0),
    ADD COLUMN trust_changed_at   timestamptz;
ALTER TABLE resi.miner_submission_days
    ADD COLUMN over_limit_attempts integer NOT NULL DEFAULT 0 CHECK (over_limit_attempts >= 0);
ALTER TABLE resi.ingest_ledger
    ADD COLUMN quality_score      double precision,
    ADD COLUMN quality_issues     text[],
    ADD COLUMN duplicate_zpids    integer,
    ADD COLUMN distinct_zip_codes integer,
    ADD COLUMN accuracy           double precision,
    ADD COLUMN row_agreement      double precision,
    ADD COLUMN trust_score        double precision;
COMMENT ON COLUMN resi.miner_trust.duplicate_rate IS 'duplicate_rows / rows_submitted: rows whose zpid the same submission already had.';
COMMENT ON COLUMN resi.miner_trust.accuracy_score IS 'fields_agreed / fields_compared: the share of the miner''s field values that agreed with the resulting consensus, on listings another miner also claims.';

-- Tables -----------------------------------------------------------------------------------------
-- Strikes and bans, newest last: what resi.miner_status explains.
CREATE TABLE resi.miner_penalties (
    id           bigserial PRIMARY KEY,
    miner_hotkey text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('strike', 'ban')),
    reason       text NOT NULL,
    banned_until timestamptz -- kind = 'ban'
);
COMMENT ON TABLE resi.miner_penalties IS 'Every strike and ban given to a miner, with its reason.';
CREATE INDEX miner_penalties_miner_hotkey_idx ON resi.miner_penalties (miner_hotkey, at);

-- Values no submission may contain: a match costs the submission's quality (issue `blacklisted`).
CREATE TABLE resi.blacklist (
    id       bigserial PRIMARY KEY,
    field    text NOT NULL CHECK (field IN ('zpid', 'zip_code')),
    match    text NOT NULL CHECK (match IN ('exact', 'pattern')), -- pattern: a POSIX regular expression (~)
    value    text NOT NULL,
    reason   text NOT NULL,
    added_by text NOT NULL DEFAULT current_user,
    added_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (field, match, value)
);
COMMENT ON TABLE resi.blacklist IS 'Known-bad zpids and zip codes (exact or POSIX pattern); see resi.add_blacklist_entry.';

SELECT pg_catalog.pg_extension_config_dump('resi.miner_penalties', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_penalties_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.blacklist', '');
SELECT pg_catalog.pg_extension_config_dump('resi.blacklist_id_seq', '');

-- Rust functions (as generated by pgrx for 0.2.0) -------------------------------------------------
CREATE  FUNCTION "ingest_settings"(

) RETURNS resi.ingest_settings /* :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox :: AllocatedByRust
> */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ingest_settings_wrapper';

CREATE  FUNCTION "submission_quality_final"(
	"state" internal /* Internal */
) RETURNS resi.quality_report /* Option < :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox ::
AllocatedByRust > > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'submission_quality_final_wrapper';

CREATE  FUNCTION "submission_quality_transition"(
	"state" internal, /* Internal */
	"zpid" TEXT, /* Option < & str > */
	"price" double precision, /* Option < f64 > */
	"zip_code" TEXT /* Option < & str > */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'submission_quality_transition_wrapper';

CREATE  FUNCTION "submission_trust_quality"(
	"score" double precision, /* f64 */
	"rows" bigint, /* i64 */
	"corroborated_rows" bigint, /* i64 */
	"agreeing_rows" bigint /* i64 */
) RETURNS double precision /* f64 */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'submission_trust_quality_wrapper';

-- Aggregates and SQL functions (as in sql/resi_pg_functions.sql) --------------------------------
CREATE AGGREGATE resi.submission_quality(zpid text, price double precision, zip_code text) (
    STYPE     = internal,
    SFUNC     = resi.submission_quality_transition,
    FINALFUNC = resi.submission_quality_final,
    PARALLEL  = SAFE
);
COMMENT ON AGGREGATE resi.submission_quality(text, double precision, text) IS
    'Quality of one submission: score 1.0 times 0.5 if a price is outside [resi.quality_min_price, resi.quality_max_price], 0.3 if a zpid repeats, 0.7 if more than resi.quality_max_zip_codes zip codes, 0.1 if a zpid or zip code is blacklisted; with the issue codes and counts. NULL when there are no rows.';

-- Strikes and bans
-- ---------------------------------------------------------------------------------------------
-- A strike is recorded with its reason; every resi.strikes_per_ban strikes (default 3) the
-- miner is banned: the n-th ban lasts resi.ban_duration × 2^(n-1) (default 6 hours, 12, 24, ...),
-- at most resi.max_ban_duration (default 30 days). A ban starts the strike count again and
-- expires on its own (resi.miner_trust.banned_until). Returns banned_until when this strike
-- led to a ban, else NULL.
CREATE FUNCTION resi.add_strike(hotkey text, reason text) RETURNS timestamptz
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
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
    VALUES (hotkey, 'ban', format('by %s: %s', current_user, reason), until);
    RETURN until;
END
$$;
COMMENT ON FUNCTION resi.ban_miner(text, text, interval) IS
    'Ban a miner for a duration (NULL: for good); its objects are deferred until the ban ends. Returns banned_until.';

CREATE FUNCTION resi.unban_miner(hotkey text) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
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
-- The view gains voting_miners and trust_fingerprint (appended).
CREATE OR REPLACE VIEW resi.listing_consensus AS
SELECT zpid,
       first_seen_at,
       total_attestations,
       unique_miners_count,
       (SELECT avg(c) FROM unnest(ARRAY[(uri).confidence, (price).confidence, (address).confidence,
            (bedrooms).confidence, (bathrooms).confidence, (living_area).confidence, (home_type).confidence,
            (home_status).confidence, (days_on_zillow).confidence, (zip_code).confidence, (city).confidence,
            (state).confidence, (latitude).confidence, (longitude).confidence]) c)::real AS consensus_score,
       uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
       zip_code, city, state, latitude, longitude,
       voting_miners, trust_fingerprint
  FROM (SELECT c.zpid,
               min(c.first_seen_at) AS first_seen_at,
               sum(c.attestations)::integer AS total_attestations,
               count(*)::integer AS unique_miners_count,
               count(*) FILTER (WHERE w.trust > 0)::integer AS voting_miners,
               bit_xor(resi.trust_fingerprint(c.miner_hotkey, w.trust)) AS trust_fingerprint,
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

-- refresh_consensus writes voting_miners.
CREATE OR REPLACE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
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
        voting_miners       = f.voting_miners,
        trust_fingerprint   = f.trust_fingerprint,
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
-- The fold now judges each submission and moves its miner's trust.
CREATE OR REPLACE FUNCTION resi.fold_staged_listings() RETURNS trigger
    LANGUAGE plpgsql
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
          LEFT JOIN resi.listings l ON l.zpid = s.zpid AND l.voting_miners >= 2
         CROSS JOIN LATERAL resi.consensus_agreement(
                 s.uri, s.price, s.address, s.bedrooms, s.bathrooms, s.living_area, s.home_type, s.home_status,
                 s.days_on_zillow, s.zip_code, s.city, s.state, s.latitude, s.longitude, l) v
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

-- -----------------------------------------------------------------------------------------------
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
    INSERT INTO resi.blacklist AS b (field, match, value, reason)
    VALUES (add_blacklist_entry.field, add_blacklist_entry.match, add_blacklist_entry.value, add_blacklist_entry.reason)
    ON CONFLICT ON CONSTRAINT blacklist_field_match_value_key DO UPDATE SET reason = b.reason
    RETURNING b.id INTO entry;
    RETURN entry;
END
$$;
COMMENT ON FUNCTION resi.add_blacklist_entry(text, text, text, text) IS
    'Blacklist a zpid or zip code (match ''exact'') or a POSIX pattern over them (match ''pattern''). Returns the entry id.';

CREATE FUNCTION resi.remove_blacklist_entry(id bigint) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH removed AS (DELETE FROM resi.blacklist b WHERE b.id = remove_blacklist_entry.id RETURNING 1)
    SELECT count(*) > 0 FROM removed;
END;
COMMENT ON FUNCTION resi.remove_blacklist_entry(bigint) IS 'Remove a blacklist entry by id. True when it existed.';
