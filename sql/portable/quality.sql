-- Submission quality: resi.submission_quality(zpid, price, zip_code) → resi.quality_report, the
-- quality of one submission (an uploaded object's rows). The portable body of
-- resi_pg/src/quality.rs over resi_core/src/quality.rs, in SQL and PL/pgSQL; natively the
-- aggregate is declared in sql/admission.sql with an `internal` state, here below with a
-- concrete one (the portable edition skips that declaration; its comment stays there).
--
-- The score is 1.0 times 0.5 if a price is below resi.quality_min_price or above
-- resi.quality_max_price (or NaN/±Infinity; NULL is fine), 0.3 if a non-NULL zpid repeats, 0.7
-- if there are more than resi.quality_max_zip_codes distinct non-NULL zip codes, 0.1 if a zpid
-- or zip code matches resi.blacklist; with the issue codes in that order and the counts. No
-- rows → NULL. zpids and zip codes are strings, compared by their bytes ("007" ≠ "7").
--
-- The state keeps what the report needs: the row count, every non-NULL zpid (duplicates are
-- counted at the end), the non-NULL zip codes (one equal to the previous is not kept again) and
-- the lowest and highest finite price. Unlike native, the state is copied on every row: an SQL
-- or PL/pgSQL transition function cannot update its state in place (the executor copies what
-- it returns unless a C function built it in the aggregate's memory context; see
-- sql/portable/tiles.sql), and exact counts need every zpid, so a group of n rows copies O(n²)
-- bytes: 0.07 s at 1,000 rows, 0.5 s at 10,000 and 40 to 50 s at 50,000 (native: 0.03, 0.02,
-- 0.07 s). A text[] state grown with array_append is slower still (its transitions alone: 2 s
-- at 10,000 rows, 8 s at 20,000). resi.submission_quality_of (shared API, what the fold calls)
-- gives the same report from count(*) and array_aggs in O(n log n) (0.3 s at 50,000):
--   resi.submission_quality_of(count(*), array_agg(zpid), array_agg(price), array_agg(zip_code))

-- The transition state. The zpids and zip codes are the inside of a text[] literal, each
-- element quoted and preceded by a comma (text concatenation is the cheapest growing state).
CREATE TYPE resi.submission_quality_state AS (
    rows       bigint,
    zpids      text,             -- ,"zpid",… (non-NULL zpids, in input order)
    zip_codes  text,             -- ,"zip",… (non-NULL zip codes, less repeats of the previous)
    last_zip   text,             -- the last non-NULL zip code
    lowest     double precision, -- the lowest finite price (NULL: none yet)
    highest    double precision, -- the highest finite price
    non_finite boolean           -- a NaN or ±Infinity price was seen
);

-- A string as a quoted element of a text[] literal: in double quotes, each \ and " escaped
-- with a backslash. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.array_literal_element(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN '"' || replace(replace(value, E'\\', E'\\\\'), '"', E'\\"') || '"';

-- Transition: count one row. Every row counts, whatever is NULL. IMMUTABLE, PARALLEL SAFE,
-- not strict. PL/pgSQL: its one expression runs several times faster per row than an SQL
-- function's executor would. (Natively it takes `internal` and refuses to run outside the
-- aggregate; here it is callable, and harmless.)
CREATE FUNCTION resi.submission_quality_transition(
    state resi.submission_quality_state, zpid text, price double precision, zip_code text)
    RETURNS resi.submission_quality_state
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN ROW(
        coalesce(state.rows, 0) + 1,
        CASE WHEN zpid IS NULL THEN state.zpids
             ELSE coalesce(state.zpids, '') || (',' || resi.array_literal_element(zpid)) END,
        CASE WHEN zip_code IS NULL OR zip_code = state.last_zip COLLATE "C" THEN state.zip_codes
             ELSE coalesce(state.zip_codes, '') || (',' || resi.array_literal_element(zip_code)) END,
        coalesce(zip_code, state.last_zip),
        CASE WHEN price IN ('NaN', 'Infinity', '-Infinity') THEN state.lowest ELSE least(state.lowest, price) END,
        CASE WHEN price IN ('NaN', 'Infinity', '-Infinity') THEN state.highest ELSE greatest(state.highest, price) END,
        coalesce(state.non_finite, false) OR coalesce(price IN ('NaN', 'Infinity', '-Infinity'), false)
    )::resi.submission_quality_state;
END
$$;

-- A quality threshold in effect (resi.setting, sql/portable/settings.sql: the session's SET
-- value where the session may set it, else resi.settings, else the native default; 22023 for a
-- value the native GUC would refuse, 42501 for one the session may not set). STABLE, STRICT,
-- PARALLEL SAFE.
CREATE FUNCTION resi.quality_threshold(name text) RETURNS double precision
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT resi.setting(name)::double precision $$;

-- The report on a submission of `rows` rows with these zpids, prices and zip codes (NULL
-- elements ignored; any order) under the current thresholds and blacklist: what the aggregate
-- gives, from arrays (one blacklist query, skipped when there is no zpid or zip code). NULL
-- when rows is 0 or NULL (no rows). STABLE (settings and the blacklist change between
-- statements), PARALLEL SAFE, not strict. A blacklist pattern that is not a valid regular
-- expression raises 2201B; a setting that is not valid 22023.
CREATE FUNCTION resi.submission_quality_of(rows bigint, zpids text[], prices double precision[], zip_codes text[])
    RETURNS resi.quality_report
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    with_zpid  bigint;
    zpid_set   text[];
    zip_set    text[];
    non_finite boolean;
    lowest     double precision;
    highest    double precision;
    duplicates bigint;
    zip_count  bigint;
    listed     boolean := false;
    min_price  double precision;
    max_price  double precision;
    max_zips   double precision;
    score      double precision := 1.0;
    issues     text[] := '{}';
BEGIN
    IF coalesce(rows, 0) = 0 THEN
        RETURN NULL;
    ELSIF rows < 0 THEN
        RAISE EXCEPTION 'resi.submission_quality_of: rows must be >= 0, got %', rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every threshold is read (and checked) for every report, as a SET would have been.
    min_price := resi.quality_threshold('resi.quality_min_price');
    max_price := resi.quality_threshold('resi.quality_max_price');
    max_zips := resi.quality_threshold('resi.quality_max_zip_codes');

    -- Distinct by their bytes (COLLATE "C"), as native.
    SELECT count(z), array_agg(DISTINCT z COLLATE "C") FILTER (WHERE z IS NOT NULL)
      INTO with_zpid, zpid_set
      FROM unnest(zpids) z;
    SELECT array_agg(DISTINCT c COLLATE "C") FILTER (WHERE c IS NOT NULL)
      INTO zip_set
      FROM unnest(zip_codes) c;
    SELECT bool_or(p IN ('NaN', 'Infinity', '-Infinity')),
           min(p) FILTER (WHERE p NOT IN ('NaN', 'Infinity', '-Infinity')),
           max(p) FILTER (WHERE p NOT IN ('NaN', 'Infinity', '-Infinity'))
      INTO non_finite, lowest, highest
      FROM unnest(prices) p;
    duplicates := coalesce(with_zpid, 0) - coalesce(cardinality(zpid_set), 0);
    zip_count := coalesce(cardinality(zip_set), 0);

    IF zpid_set IS NOT NULL OR zip_set IS NOT NULL THEN
        -- resi_pg/src/quality.rs BLACKLIST_QUERY, word for word.
        SELECT EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest(zpid_set::pg_catalog.text[]) v(x)
                         ON v.x OPERATOR(pg_catalog.=) b.value
                       WHERE b.field OPERATOR(pg_catalog.=) 'zpid' AND b.match OPERATOR(pg_catalog.=) 'exact')
            OR EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest(zip_set::pg_catalog.text[]) v(x)
                         ON v.x OPERATOR(pg_catalog.=) b.value
                       WHERE b.field OPERATOR(pg_catalog.=) 'zip_code' AND b.match OPERATOR(pg_catalog.=) 'exact')
            OR EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest(zpid_set::pg_catalog.text[]) v(x)
                         ON v.x OPERATOR(pg_catalog.~) b.value
                       WHERE b.field OPERATOR(pg_catalog.=) 'zpid' AND b.match OPERATOR(pg_catalog.=) 'pattern')
            OR EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest(zip_set::pg_catalog.text[]) v(x)
                         ON v.x OPERATOR(pg_catalog.~) b.value
                       WHERE b.field OPERATOR(pg_catalog.=) 'zip_code' AND b.match OPERATOR(pg_catalog.=) 'pattern')
          INTO listed;
    END IF;

    -- The issues in their fixed order, each multiplying the score by its factor.
    IF coalesce(non_finite, false) OR lowest < min_price OR highest > max_price THEN
        score := score * 0.5::double precision;
        issues := issues || 'suspicious_price_range'::text;
    END IF;
    IF duplicates > 0 THEN
        score := score * 0.3::double precision;
        issues := issues || 'duplicate_zpids'::text;
    END IF;
    IF zip_count > max_zips THEN
        score := score * 0.7::double precision;
        issues := issues || 'excessive_geographic_spread'::text;
    END IF;
    IF listed THEN
        score := score * 0.1::double precision;
        issues := issues || 'blacklisted'::text;
    END IF;

    IF rows > 2147483647 THEN
        RAISE EXCEPTION 'resi.submission_quality: row count % does not fit in an integer', rows
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    RETURN ROW(score, issues, rows, duplicates, zip_count)::resi.quality_report;
END
$$;

-- Final: the report (resi.submission_quality_of over the state). NULL when there were no rows.
-- STABLE, PARALLEL SAFE, not strict.
CREATE FUNCTION resi.submission_quality_final(state resi.submission_quality_state)
    RETURNS resi.quality_report
    LANGUAGE sql STABLE PARALLEL SAFE
RETURN resi.submission_quality_of(
    (state).rows,
    ('{' || substr(coalesce((state).zpids, ','), 2) || '}')::text[],
    ARRAY[(state).lowest, (state).highest,
          CASE WHEN (state).non_finite THEN 'NaN'::double precision END],
    ('{' || substr(coalesce((state).zip_codes, ','), 2) || '}')::text[]);

CREATE AGGREGATE resi.submission_quality(zpid text, price double precision, zip_code text) (
    STYPE     = resi.submission_quality_state,
    SFUNC     = resi.submission_quality_transition,
    FINALFUNC = resi.submission_quality_final,
    PARALLEL  = SAFE
);
