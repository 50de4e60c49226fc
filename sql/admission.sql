-- Admission: may a miner's upload be folded now? Rate limits per UTC day, the blacklist, the
-- quality report of one submission, and resi.admit_submission, which the loader asks per object.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- Submissions per miner per UTC day: what resi.check_miner_rate_limit counts against, kept per
-- day so a backfill of history is judged day by day.
CREATE TABLE resi.miner_submission_days (
    miner_hotkey text NOT NULL,
    day          date NOT NULL,
    submissions  integer NOT NULL CHECK (submissions >= 0),
    PRIMARY KEY (miner_hotkey, day),
    -- 0.2.0: objects refused for being over the day's allowance (each counted once).
    over_limit_attempts integer NOT NULL DEFAULT 0 CHECK (over_limit_attempts >= 0)
);
COMMENT ON TABLE resi.miner_submission_days IS 'Submissions (uploaded objects) per miner per UTC day, for rate limiting.';

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

-- pg_dump keeps the rows of these tables (an extension's tables are otherwise dumped empty).
SELECT pg_catalog.pg_extension_config_dump('resi.miner_submission_days', '');
SELECT pg_catalog.pg_extension_config_dump('resi.blacklist', '');
SELECT pg_catalog.pg_extension_config_dump('resi.blacklist_id_seq', '');

-- ---------------------------------------------------------------------------------------------
-- Submission quality: one report over the rows of one submission (resi_pg/src/quality.rs).
-- No COMBINEFUNC: a submission is one group of modest size, and the final function reads the
-- blacklist and the quality settings.
-- ---------------------------------------------------------------------------------------------
COMMENT ON AGGREGATE resi.submission_quality(text, double precision, text) IS
    'Quality of one submission: score 1.0 times 0.5 if a price is outside [resi.quality_min_price, resi.quality_max_price], 0.3 if a zpid repeats, 0.7 if more than resi.quality_max_zip_codes zip codes, 0.1 if a zpid or zip code is blacklisted; with the issue codes and counts. NULL when there are no rows.';

-- The same report from a submission given column by column: `rows` rows (count(*)) and their
-- zpids, prices and zip codes (array_agg of each, any order, NULL elements ignored). What the
-- fold calls: no aggregate state per row, so a large submission costs O(n log n) in the
-- portable edition too (its aggregate copies its state on every row). NULL when rows is NULL or
-- 0; STABLE, PARALLEL SAFE, not strict; rows < 0 raises 22023.
COMMENT ON FUNCTION resi.submission_quality_of(bigint, text[], double precision[], text[]) IS
    'resi.submission_quality of a submission given as columns: its row count and the arrays of its zpids, prices and zip codes (any order, NULLs ignored). NULL when rows is NULL or 0.';

-- ---------------------------------------------------------------------------------------------
-- Rate limits
-- ---------------------------------------------------------------------------------------------
-- resi.check_miner_rate_limit is declared per edition (sql/native/admission.sql: Rust;
-- sql/portable/rate_limit.sql: SQL), with the same contract, privileges and errors.
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

    -- The time goes through the inserted row: on Citus, ON CONFLICT DO UPDATE may call only
    -- immutable functions.
    INSERT INTO resi.miner_trust AS t (miner_hotkey, trust_score, total_submissions, last_submission,
                                       submissions_today, last_submission_date, updated_at)
    VALUES (hotkey, resi.initial_trust(), submissions, at, day_total, utc_day, now())
    ON CONFLICT (miner_hotkey) DO UPDATE SET
        total_submissions    = t.total_submissions + excluded.total_submissions,
        last_submission      = greatest(t.last_submission, excluded.last_submission),
        -- A backfill of an earlier day does not move "today".
        submissions_today    = CASE WHEN t.last_submission_date IS NULL OR excluded.last_submission_date >= t.last_submission_date
                                    THEN excluded.submissions_today ELSE t.submissions_today END,
        last_submission_date = greatest(t.last_submission_date, excluded.last_submission_date),
        updated_at           = excluded.updated_at;
    RETURN day_total;
END
$$;
COMMENT ON FUNCTION resi.record_miner_submission(text, integer, timestamptz) IS
    'Count `submissions` uploads of a miner at a time (UTC day): the per-day count that rate limits check, and the miner''s totals. Returns the day''s new count.';

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
-- earn a strike. 0.5.0: `pending` is the miner's objects of that day this transaction admitted
-- already and has not folded yet (the loader folds a batch of objects at once): they count
-- against the allowance too. Errors: 22023 for pending < 0.
CREATE FUNCTION resi.admit_submission(hotkey text, submitted_at timestamptz, first_attempt boolean DEFAULT true,
                                      pending integer DEFAULT 0)
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
    IF pending < 0 THEN
        RAISE EXCEPTION 'resi.admit_submission: pending must be >= 0, got %', pending
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO resi.miner_submission_days AS d (miner_hotkey, day, submissions) VALUES (hotkey, utc_day, 0)
    ON CONFLICT (miner_hotkey, day) DO UPDATE SET submissions = d.submissions
    RETURNING d.submissions INTO used;

    SELECT t.trust_score, t.banned_until, t.ban_reason INTO miner FROM resi.miner_trust t WHERE t.miner_hotkey = hotkey;
    IF miner.banned_until > now() THEN
        RETURN format('banned: until %s (%s)', miner.banned_until, miner.ban_reason);
    END IF;
    IF resi.check_miner_rate_limit(hotkey, 1 + pending, utc_day) THEN
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
    -- Of the pending objects, only those within the allowance were admitted.
    RETURN format('rate_limited: %s of %s submissions used on %s (UTC)', least(used + pending, allowance), allowance,
                  utc_day);
END
$$;
COMMENT ON FUNCTION resi.admit_submission(text, timestamptz, boolean, integer) IS
    'Whether a miner''s object submitted at a time may be folded now, counting `pending` objects of that day admitted earlier in the transaction: NULL if so (the miner''s day stays locked until the transaction ends), else ''banned: …'' or ''rate_limited: …''. Over-limit attempts count towards strikes.';

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

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.rate_limit_for(double precision) IS
    'Submissions (uploaded objects) a miner of this trust may make per UTC day, from the resi.rate_limit_tiers setting (default 0.8:10000, 0.6:5000, 0.4:1000, 0:100).';
COMMENT ON FUNCTION resi.ingest_settings() IS
    'The ingest and penalty settings in effect: resi.max_submission_rows, resi.over_limit_strike_attempts, resi.strikes_per_ban, resi.ban_duration and resi.max_ban_duration.';
COMMENT ON FUNCTION resi.parse_s3_key(text) IS
    'The parts of an upload''s object key (hotkey, job id or epoch and zip code, file time, row count, kind); NULL for a key that does not follow the upload layout. Never raises.';
