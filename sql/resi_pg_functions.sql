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
