-- Rate limits: daily submissions by trust tier. The portable body of
-- resi_pg/src/rate_limit.rs over resi_core/src/rate_limit.rs: resi.rate_limit_for and
-- resi.check_miner_rate_limit (natively an fmgr function declared in sql/native/admission.sql;
-- here PL/pgSQL with the same signature, defaults and contract). The tiers are the
-- resi.rate_limit_tiers setting (settings.sql), a list of min_trust:limit pairs: a miner whose
-- trust is at least min_trust may make limit submissions per UTC day (the highest tier it
-- reaches); the lowest tier is also the floor.

-- Rust's `{:?}` of a string, for the messages of resi_core: quoted, with \\ \" \t \r \n \0
-- and \u{…} for control, format, separator, private-use and combining characters. Rust
-- escapes by its own Unicode tables; this covers the common ranges of those categories, so
-- a message may show a rare character literally where Rust escapes it. IMMUTABLE, STRICT,
-- PARALLEL SAFE.
CREATE FUNCTION resi.rust_debug_text(s text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT '"' || coalesce(string_agg(CASE
        WHEN c = E'\\' THEN E'\\\\'
        WHEN c = '"' THEN E'\\"'
        WHEN c = E'\t' THEN E'\\t'
        WHEN c = E'\r' THEN E'\\r'
        WHEN c = E'\n' THEN E'\\n'
        WHEN c ~ E'[\u0001-\u001F\u007F-\u00A0\u00AD\u0300-\u036F\u0600-\u0605\u061C\u06DD\u070F\u1680\u180E\u1AB0-\u1AFF\u1DC0-\u1DFF\u2000-\u200F\u2028-\u202F\u205F-\u206F\u20D0-\u20FF\u3000\uE000-\uF8FF\uFE00-\uFE0F\uFE20-\uFE2F\uFEFF\uFFF9-\uFFFB]'
            THEN E'\\u{' || to_hex(ascii(c)) || '}'
        ELSE c
    END, '' ORDER BY i), '') || '"'
    FROM unnest(string_to_array(s, NULL)) WITH ORDINALITY AS t(c, i)
$$;

-- Rust's `str::parse::<f64>()` of a trust threshold, NULL unless it is a finite number
-- (Rust reads [+-] digits . digits e±digits, inf, infinity, nan; beyond the double range is
-- infinite, below it 0). IMMUTABLE, STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.tier_threshold(t text) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    m text[];
BEGIN
    IF length(t) <= 30 AND t ~ '^[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)$' THEN
        RETURN t::double precision + 0.0; -- + 0.0: -0 is 0, as resi_core stores it
    END IF;
    m := regexp_match(t, '^([+-]?)([0-9]*)(?:[.]([0-9]*))?(?:[eE]([+-]?)([0-9]+))?$');
    IF m IS NULL OR m[2] || coalesce(m[3], '') = '' THEN
        RETURN NULL; -- not a number, or inf/nan
    END IF;
    RETURN resi.decimal_float8(m[1], m[2], m[3], m[4], m[5]) + 0.0;
END
$$;

-- The tiers of a resi.rate_limit_tiers value, highest threshold first. Assumes a valid value
-- (resi.rate_limit_tiers_problem is NULL). IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.rate_limit_tiers(tiers text, OUT min_trust double precision, OUT daily_limit integer)
    RETURNS SETOF record
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 4
AS $$
DECLARE
    pair text;
BEGIN
    FOREACH pair IN ARRAY string_to_array(tiers, ',') LOOP
        min_trust := resi.tier_threshold(resi.trim_white_space(split_part(pair, ':', 1)));
        daily_limit := resi.trim_white_space(substr(pair, strpos(pair, ':') + 1))::integer;
        RETURN NEXT;
    END LOOP;
END
$$;

-- What is wrong with a resi.rate_limit_tiers value, as resi_core's RateLimitTiers::parse says
-- it (the DETAIL of the refusal), or NULL when it is valid: every comma-separated pair is
-- min_trust:limit with a finite min_trust and a limit in 0 .. 2147483647 (whitespace around
-- each allowed), no min_trust twice. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.rate_limit_tiers_problem(tiers text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    pair       text;
    threshold  text;
    limit_text text;
    why        text;
    seen       double precision[] := '{}';
    value      double precision;
BEGIN
    FOREACH pair IN ARRAY CASE WHEN tiers = '' THEN ARRAY[''] ELSE string_to_array(tiers, ',') END LOOP
        pair := resi.trim_white_space(pair);
        IF strpos(pair, ':') = 0 THEN
            why := resi.rust_debug_text(pair) || ' has no '':''';
            EXIT;
        END IF;
        threshold := resi.trim_white_space(split_part(pair, ':', 1));
        value := resi.tier_threshold(threshold);
        IF value IS NULL THEN
            why := resi.rust_debug_text(threshold) || ' is not a finite trust threshold';
            EXIT;
        END IF;
        limit_text := resi.trim_white_space(substr(pair, strpos(pair, ':') + 1));
        IF limit_text !~ '^[+-]?[0-9]+$' OR limit_text::numeric NOT BETWEEN 0 AND 2147483647 THEN
            why := resi.rust_debug_text(limit_text) || ' is not a limit between 0 and 2147483647';
            EXIT;
        END IF;
        seen := seen || value;
    END LOOP;
    IF why IS NULL AND (SELECT count(DISTINCT v) <> count(*) FROM unnest(seen) AS v) THEN
        why := 'a threshold appears twice';
    END IF;
    IF why IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN 'invalid rate limit tiers ' || resi.rust_debug_text(tiers) || ': ' || why
        || ' (expected comma-separated min_trust:limit pairs, e.g. "0.8:10000, 0.6:5000, 0.4:1000, 0:100")';
END
$$;

-- Submissions (uploaded objects) a miner of this trust may make per UTC day: the limit of the
-- highest tier whose min_trust it reaches, else the lowest tier's. Trust below every tier,
-- -Infinity and NaN get the lowest tier's limit; +Infinity the highest. STABLE (reads the
-- setting), STRICT, PARALLEL SAFE; raises only for a SET resi.rate_limit_tiers the session
-- may not make or that is malformed (settings.sql).
CREATE FUNCTION resi.rate_limit_for(trust double precision) RETURNS integer
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    result integer;
BEGIN
    SELECT t.daily_limit INTO result
      FROM resi.rate_limit_tiers(resi.setting('resi.rate_limit_tiers')) t
     ORDER BY trust <> 'NaN' AND trust >= t.min_trust DESC, -- PostgreSQL orders NaN above every number
              CASE WHEN trust <> 'NaN' AND trust >= t.min_trust THEN t.min_trust END DESC,
              t.min_trust
     LIMIT 1;
    RETURN result;
END
$$;

-- True when the miner may make `submissions` more submissions on that UTC day: the day's count
-- so far (resi.miner_submission_days) plus these is within resi.rate_limit_for of its trust
-- (resi.miner_trust; resi.initial_trust() when unknown); false while it is banned. STABLE (the
-- statement's snapshot), STRICT, PARALLEL SAFE. Negative submissions raise 22023. It reads
-- the tables as its caller: SELECT on resi.miner_trust (and, unless the miner is banned,
-- resi.miner_submission_days) is needed (42501 otherwise), and row-level security on them
-- applies (natively a table with row-level security enabled for the caller is an error,
-- 0A000; neither edition reads around the policies).
CREATE FUNCTION resi.check_miner_rate_limit(
    hotkey      text,
    submissions integer DEFAULT 1,
    on_day      date    DEFAULT (now() AT TIME ZONE 'UTC')::date
) RETURNS boolean
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    miner_trust  double precision;
    banned_until timestamptz;
    used         bigint;
BEGIN
    IF submissions < 0 THEN
        RAISE EXCEPTION 'resi.check_miner_rate_limit: submissions must be >= 0, got %', submissions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT t.trust_score, t.banned_until INTO miner_trust, banned_until
      FROM resi.miner_trust t WHERE t.miner_hotkey = hotkey;
    IF banned_until > now() THEN
        RETURN false;
    END IF;
    SELECT d.submissions INTO used
      FROM resi.miner_submission_days d WHERE d.miner_hotkey = hotkey AND d.day = on_day;
    RETURN coalesce(used, 0) + submissions <= resi.rate_limit_for(coalesce(miner_trust, resi.initial_trust()));
END
$$;
