-- Consensus aggregates, portable edition: resi.consensus_mode, resi.consensus_median,
-- resi.consensus_listing and resi.consensus_by_source in SQL and PL/pgSQL, the portable body of
-- resi_pg/src/consensus/{mod,mode,median,listing}.rs over resi_core/src/consensus/
-- {mod,mode,median,listing,sources}.rs. What they promise is in sql/consensus.sql (shared by both
-- editions); the native edition declares them in sql/native/consensus.sql.
--
-- The answers are the native ones bit for bit:
-- - A weight votes when it is in [2^-53, 1e15]; NULL, NaN, ≤ 0 and smaller weights do not, and a
--   weight above 1e15 (+Infinity included) raises 22003. A voting weight becomes exact units of
--   2^-52 (round(w × 2^52), halves away from zero; resi.consensus_weight_units) and the sums are
--   numeric, so they are exact and do not depend on row order or on how a parallel plan splits
--   the rows; a sum is shown as the double nearest to it (resi.consensus_weight_float).
-- - Category values compare as bytes (COLLATE "C"): ties go to more supporters, then to the
--   smallest value in byte order.
-- - Medians are lower weighted quantiles over exact units; a voter supports the median m when
--   |v − m| <= tolerance × |m| in doubles, as IEEE arithmetic gives it, ±Infinity on overflow and
--   0 on underflow included (where PostgreSQL's float operators would raise instead,
--   resi.consensus_difference and resi.consensus_product compute it without raising).
-- - Doubles are written in their shortest round-trip digits as the native edition writes them
--   (resi.consensus_shortest): in field_consensus ryu_js's, which are to_jsonb(double precision)'s
--   with extra_float_digits = 1 but for a few integers above 2^53 where float8out needs one more
--   digit; in messages Rust's Display (no exponent, ties rounded up). The functions that write
--   them set extra_float_digits, so the session's setting does not matter.
--
-- States are concrete types (no internal): mode and median keep one tally per distinct value
-- (value, exact units, supporters), the listing aggregates their claims. PostgreSQL copies a
-- non-internal state on every transition (PL/pgSQL cannot grow one in place), so a row costs
-- time in proportion to its group's state: mode and median are linear in a group's rows while
-- it has few distinct values, and quadratic in its distinct values (20,000 in one group take
-- some 20 s); the listing aggregates are quadratic in a group's claims, which are one listing's
-- (one per miner). States grow by array_cat, a copy, rather than array_append, which unpacks
-- every element.
--
-- Differences from the native edition: none in the answers. Error messages are the native
-- ones; where several rows of one group are wrong at once, the one reported may differ (natively
-- consensus_by_source reports the first heavy source in hash order). An upload time of
-- -infinity behind a finite one overflows the native int64 age: a release build wraps around
-- (the age is negative, the claim counts in full), as here; a debug build raises XX000.

-- ---------------------------------------------------------------------------------------------
-- State types
-- ---------------------------------------------------------------------------------------------
-- resi.consensus_mode: one tally per distinct value (in no particular order).
CREATE TYPE resi.consensus_mode_state AS (
    tally_values     text[],    -- the distinct values
    tally_units      numeric[], -- their summed weights, in units of 2^-52
    tally_supporters bigint[]   -- rows that voted for them
);

-- resi.consensus_median: the group's tolerance (fixed by its first row) and one tally per
-- distinct finite value (-0 counted as 0).
CREATE TYPE resi.consensus_median_state AS (
    tolerance        double precision,
    tally_values     double precision[],
    tally_units      numeric[],
    tally_supporters bigint[]
);

-- One claim of resi.consensus_listing / resi.consensus_by_source as it votes: uri only when it
-- names the claim's zpid, bathrooms as the category it votes for (rounded to 0.1 within
-- 0..99.9), latitude/longitude only when finite. weight is the vote's weight
-- (consensus_listing) or the miner's trust (consensus_by_source, with the last four columns).
CREATE TYPE resi.consensus_claim AS (
    uri            text,
    price          bigint,
    address        text,
    bedrooms       integer,
    bathrooms      text,
    living_area    integer,
    home_type      text,
    home_status    text,
    days_on_zillow integer,
    zip_code       text,
    city           text,
    state          text,
    latitude       double precision,
    longitude      double precision,
    weight         double precision,
    member         text,
    miner_hotkey   text,
    signature      bigint,
    submitted_at   timestamptz,
    listing        text       -- the listing whose consensus it votes in where one call computes
                              -- many (resi.listing_consensus_of); NULL in an aggregate's state
);

-- ---------------------------------------------------------------------------------------------
-- Exact weights and IEEE doubles
-- ---------------------------------------------------------------------------------------------
-- A voting weight w (2^-53 <= w <= 1e15) in units of 2^-52: round(w × 2^52), halves away from
-- zero (resi_core's units_of), exactly. For w >= 1, w × 2^52 is an integer up to 2^102, built
-- from floor(w) and the fraction's 52 bits; below 1 it fits a bigint. Other weights: do not call
-- (NULL gives NULL). IMMUTABLE, PARALLEL SAFE, inlined; never raises for voting weights.
CREATE FUNCTION resi.consensus_weight_units(weight double precision) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN weight >= 1::double precision
    THEN pg_catalog.floor(weight)::bigint::numeric * 4503599627370496
         + ((weight - pg_catalog.floor(weight)) * 4503599627370496::double precision)::bigint
    ELSE (pg_catalog.floor(weight * 4503599627370496::double precision)
          + CASE WHEN weight * 4503599627370496::double precision
                      - pg_catalog.floor(weight * 4503599627370496::double precision) >= 0.5::double precision
                 THEN 1::double precision ELSE 0::double precision END)::bigint::numeric
END;

-- A sum of units as a weight: the double nearest the exact sum (numeric to double rounds
-- correctly), over 2^52 (exact). IMMUTABLE, STRICT, PARALLEL SAFE, inlined.
CREATE FUNCTION resi.consensus_weight_float(units numeric) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN units::double precision / 4503599627370496::double precision;

-- The exact value of the finite double whose IEEE bits (as a bigint) are `bits`, for doubles of
-- at least 2^-112 (exponents numeric_in accepts). IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_float_exact(bits bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN e >= 0 THEN m::numeric * 2::numeric ^ e
                ELSE (pg_catalog.trunc(m::numeric * 5::numeric ^ (-e))::text || 'e' || e)::numeric END
      FROM (SELECT ((bits >> 52) & 2047)::integer - 1075 AS e, (bits & 4503599627370495) | 4503599627370496 AS m) d
$$;

-- |x| (finite, not 0) in the shortest decimal digits that read back as x, as the native edition
-- writes doubles: ryu_js in field_consensus, Rust's Display in messages. Both take the
-- rounding interval's ends when x's mantissa is even and break a tie between two candidates of
-- the shortest length towards the even digit (ryu_js) or upwards (Display, `ties_up`);
-- PostgreSQL's float8out (Ryu) leaves out the ends, which can cost it one more digit (only
-- above 2^53, e.g. 19163991894051832 where 19163991894051830 reads back the same), and breaks
-- ties towards the even digit. The result keeps the digits' scale (1.5e-7: 0.00000015).
-- IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_shortest(x double precision, ties_up boolean) RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET extra_float_digits = 1
AS $$
DECLARE
    a        double precision := pg_catalog.abs(x);
    shortest text := a::text; -- float8out: e.g. 1.0000000000000002e+15
    mantissa text := pg_catalog.split_part(shortest, 'e', 1);
    digits   numeric := shortest::numeric;
    bits     bigint := ('x' || pg_catalog.encode(pg_catalog.float8send(a), 'hex'))::bit(64)::bigint;
    exact    numeric;
    below    numeric; -- the ends of the interval of reals that round to a
    above    numeric;
    unit     numeric; -- one unit of the last digit
    length   integer := pg_catalog.length(pg_catalog.replace(mantissa, '.', ''));
BEGIN
    IF a >= 9007199254740992::double precision AND bits & 1 = 0 THEN
        -- Integers: an end with fewer significant digits than float8out's is the answer.
        exact := resi.consensus_float_exact(bits);
        below := (exact + resi.consensus_float_exact(bits - 1)) / 2;
        above := (exact + resi.consensus_float_exact(bits + 1)) / 2;
        IF below = pg_catalog.trunc(below) AND pg_catalog.length(pg_catalog.rtrim(pg_catalog.trunc(below)::text, '0')) < length THEN
            digits := pg_catalog.trunc(below);
            RETURN CASE WHEN x < 0::double precision THEN -digits ELSE digits END;
        ELSIF above = pg_catalog.trunc(above) AND pg_catalog.length(pg_catalog.rtrim(pg_catalog.trunc(above)::text, '0')) < length THEN
            digits := pg_catalog.trunc(above);
            RETURN CASE WHEN x < 0::double precision THEN -digits ELSE digits END;
        END IF;
    END IF;
    IF ties_up AND a >= 1e-18::double precision AND pg_catalog.right(mantissa, 1) IN ('0', '2', '4', '6', '8') THEN
        -- A tie float8out broke downwards to the even digit: Display takes the upper one.
        unit := ('1e' || (coalesce(NULLIF(pg_catalog.split_part(shortest, 'e', 2), ''), '0')::integer
                          - pg_catalog.length(pg_catalog.split_part(mantissa, '.', 2))))::numeric;
        IF (digits + unit)::double precision = a AND resi.consensus_float_exact(bits) - digits = unit / 2 THEN
            digits := digits + unit;
        END IF;
    END IF;
    RETURN CASE WHEN x < 0::double precision THEN -digits ELSE digits END;
END
$$;

-- A double as JSON text in field_consensus: ryu_js's digits, which are float8out's (with
-- extra_float_digits = 1, which the caller sets) but for the interval's ends above 2^53.
-- NULL gives NULL (not declared STRICT, so that it is inlined). IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_json_number(x double precision) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.abs(x) < 9007199254740992::double precision THEN x::text
            ELSE resi.consensus_shortest(x, false)::text END;

-- A double as Rust's Display writes it in the native messages: its shortest round-trip digits
-- without an exponent, inf, -inf, NaN. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_float_text(x double precision) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET extra_float_digits = 1
AS $$
    SELECT CASE WHEN x = 'Infinity'::double precision THEN 'inf'
                WHEN x = '-Infinity'::double precision THEN '-inf'
                WHEN x = 'NaN'::double precision THEN 'NaN'
                WHEN x::text = '-0' THEN '-0'
                WHEN x = 0::double precision THEN '0'
                ELSE resi.consensus_shortest(x, true)::text END
$$;

-- Raise an error with this SQLSTATE and message, for SQL bodies; never returns. VOLATILE, so
-- that the planner does not call it while folding constants. PARALLEL SAFE.
CREATE FUNCTION resi.consensus_raise(sqlstate text, message text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL SAFE
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message;
END
$$;

-- |v - m| in IEEE doubles for finite v and m: +Infinity where the difference overflows
-- (PostgreSQL's minus raises there). IMMUTABLE, STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.consensus_difference(v double precision, m double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    a double precision := v;
    b double precision := m;
    half double precision;
BEGIN
    IF pg_catalog.abs(v) <= 1e307::double precision AND pg_catalog.abs(m) <= 1e307::double precision THEN
        RETURN pg_catalog.abs(v - m);
    END IF;
    -- One of them is above 1e307: the other one, if below 1e-300, does not change the rounded
    -- difference (it is far below half an ulp), and zero spares halving a subnormal.
    IF pg_catalog.abs(a) < 1e-300::double precision THEN a := 0; END IF;
    IF pg_catalog.abs(b) < 1e-300::double precision THEN b := 0; END IF;
    -- Halving is exact, and so is rounding half the difference: the difference overflows
    -- exactly when its half reaches 2^1023.
    half := pg_catalog.abs(a * 0.5::double precision - b * 0.5::double precision);
    IF half >= 8.98846567431158e307::double precision THEN
        RETURN 'Infinity'::double precision;
    END IF;
    RETURN half * 2::double precision;
END
$$;

-- p × q in IEEE doubles for finite p, q >= 0: +Infinity on overflow, 0 (or a subnormal) on
-- underflow, where PostgreSQL's times raises. IMMUTABLE, STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.consensus_product(p double precision, q double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    magnitude double precision; -- ln(p × q), good to far better than the margins below
    big       double precision := GREATEST(p, q);
    small     double precision := LEAST(p, q);
    a double precision; b double precision; r double precision; c double precision;
    a_hi double precision; a_lo double precision; b_hi double precision; b_lo double precision;
BEGIN
    IF p = 0 OR q = 0 THEN
        RETURN 0;
    END IF;
    magnitude := pg_catalog.ln(p) + pg_catalog.ln(q);
    -- Between e^-744 (above 2^-1075, so not rounded to 0) and e^708 (below the largest double).
    IF magnitude BETWEEN -744 AND 708 THEN
        RETURN p * q;
    ELSIF magnitude > 711 THEN
        RETURN 'Infinity'::double precision;
    ELSIF magnitude < -746 THEN
        RETURN 0;
    ELSIF magnitude > 0 THEN
        -- Near overflow: big >= e^354, so big × 2^-64 is exact, and the scaled product rounds
        -- like the product; it overflows when the scaled one reaches 2^960.
        r := (big * 5.421010862427522e-20::double precision) * small;
        IF r >= 2::double precision ^ 960::double precision THEN
            RETURN 'Infinity'::double precision;
        END IF;
        RETURN r * 18446744073709551616::double precision;
    END IF;
    -- Near 2^-1075, where the product rounds to 0 or to the smallest subnormal: scaled by 2^256
    -- (exactly) into the normal range, compared with 2^-1075 × 2^256 = 2^-819.
    a := big * 2::double precision ^ 128::double precision;
    b := small * 2::double precision ^ 128::double precision;
    r := a * b;
    IF r < 2::double precision ^ (-819)::double precision THEN
        RETURN 0;
    ELSIF r > 2::double precision ^ (-819)::double precision THEN
        RETURN p * q; -- not 0, so PostgreSQL does not raise
    END IF;
    -- r is exactly 2^-819: the sign of the rounding error of a × b (Dekker's exact product)
    -- decides. Exactly 2^-1075 rounds to 0 (half to even), above it to 2^-1074.
    c := 134217729::double precision * a;
    a_hi := c - (c - a);
    a_lo := a - a_hi;
    c := 134217729::double precision * b;
    b_hi := c - (c - b);
    b_lo := b - b_hi;
    IF a_lo * b_lo - (((r - a_hi * b_hi) - a_lo * b_hi) - a_hi * b_lo) > 0 THEN
        RETURN p * q;
    END IF;
    RETURN 0;
END
$$;

-- Whether v is within the relative tolerance of m: |v - m| <= tolerance × |m| in IEEE doubles
-- (finite v and m, finite tolerance >= 0), as resi_core compares. The usual magnitudes are
-- computed inline; others without PostgreSQL's overflow and underflow errors. IMMUTABLE,
-- PARALLEL SAFE, inlined; never raises.
CREATE FUNCTION resi.consensus_within(v double precision, m double precision, tolerance double precision)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN pg_catalog.abs(v) <= 1e307::double precision AND pg_catalog.abs(m) <= 1e307::double precision
         AND (m = 0::double precision OR tolerance = 0::double precision
              OR (pg_catalog.abs(m) BETWEEN 1e-150::double precision AND 1e150::double precision
                  AND tolerance BETWEEN 1e-150::double precision AND 1e150::double precision))
    THEN pg_catalog.abs(v - m) <= tolerance * pg_catalog.abs(m)
    ELSE resi.consensus_difference(v, m) <= resi.consensus_product(tolerance, pg_catalog.abs(m))
END;

-- ---------------------------------------------------------------------------------------------
-- resi.consensus_mode(value text, weight double precision) → resi.consensus
-- ---------------------------------------------------------------------------------------------
-- Count one row. NULL values and non-voting weights are ignored; a weight above 1e15 raises
-- 22003 (whatever the value). IMMUTABLE, PARALLEL SAFE, not STRICT.
CREATE FUNCTION resi.consensus_mode_transition(state resi.consensus_mode_state, value text, weight double precision)
    RETURNS resi.consensus_mode_state
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    i integer;
    units numeric;
BEGIN
    -- NaN compares above every number in SQL: it never votes and is no error.
    IF weight > 1e15::double precision AND weight <> 'NaN'::double precision THEN
        RAISE EXCEPTION USING ERRCODE = '22003', MESSAGE = 'resi.consensus_mode: consensus weight '
            || resi.consensus_float_text(weight) || ' is out of range (weights must be at most 1e15)';
    END IF;
    IF value IS NULL
       OR NOT coalesce(weight >= 1.1102230246251565e-16::double precision AND weight <> 'NaN'::double precision, false) THEN
        RETURN state;
    END IF;
    units := resi.consensus_weight_units(weight);
    i := pg_catalog.array_position(state.tally_values, value COLLATE "C");
    IF i IS NULL THEN
        state.tally_values := pg_catalog.array_cat(state.tally_values, ARRAY[value]);
        state.tally_units := pg_catalog.array_cat(state.tally_units, ARRAY[units]);
        state.tally_supporters := pg_catalog.array_cat(state.tally_supporters, '{1}'::bigint[]);
    ELSE
        state.tally_units[i] := state.tally_units[i] + units;
        state.tally_supporters[i] := state.tally_supporters[i] + 1;
    END IF;
    RETURN state;
END
$$;

-- Merge two partial states (a parallel plan's workers). IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_mode_combine(first resi.consensus_mode_state, second resi.consensus_mode_state)
    RETURNS resi.consensus_mode_state
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT ROW(pg_catalog.array_agg(t.value), pg_catalog.array_agg(t.units), pg_catalog.array_agg(t.supporters))::resi.consensus_mode_state
      FROM (SELECT u.value COLLATE "C" AS value, pg_catalog.sum(u.units) AS units, pg_catalog.sum(u.supporters)::bigint AS supporters
              FROM (SELECT * FROM ROWS FROM (pg_catalog.unnest((first).tally_values), pg_catalog.unnest((first).tally_units), pg_catalog.unnest((first).tally_supporters))
                    UNION ALL
                    SELECT * FROM ROWS FROM (pg_catalog.unnest((second).tally_values), pg_catalog.unnest((second).tally_units), pg_catalog.unnest((second).tally_supporters))
                   ) u(value, units, supporters)
             GROUP BY 1) t
$$;

-- The vote's outcome: the value with the greatest summed weight, ties to more supporters, then
-- to the smallest value in byte order. STRICT (no row voted: NULL), IMMUTABLE, PARALLEL SAFE;
-- a total weight of 2^76 or more raises 22003.
CREATE FUNCTION resi.consensus_mode_final(state resi.consensus_mode_state) RETURNS resi.consensus
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT ROW(t.value,
               resi.consensus_weight_float(t.units) / resi.consensus_weight_float(t.total),
               t.supporters::double precision / t.voters::double precision,
               t.supporters, t.voters,
               resi.consensus_weight_float(t.units), resi.consensus_weight_float(t.total))::resi.consensus
      FROM (SELECT v.value, v.units, v.supporters,
                   pg_catalog.sum(v.units) OVER () AS total, pg_catalog.sum(v.supporters) OVER () AS voters
              FROM ROWS FROM (pg_catalog.unnest((state).tally_values), pg_catalog.unnest((state).tally_units), pg_catalog.unnest((state).tally_supporters))
                   v(value, units, supporters)) t
     WHERE t.total < 340282366920938463463374607431768211456
        OR resi.consensus_raise('22003', 'resi.consensus_mode: sum of consensus weights is out of range (more than 2^76)')
     ORDER BY t.units DESC, t.supporters DESC, t.value COLLATE "C"
     LIMIT 1
$$;

CREATE AGGREGATE resi.consensus_mode(value text, weight double precision) (
    STYPE       = resi.consensus_mode_state,
    SSPACE      = 128,
    SFUNC       = resi.consensus_mode_transition,
    COMBINEFUNC = resi.consensus_mode_combine,
    FINALFUNC   = resi.consensus_mode_final,
    PARALLEL    = SAFE
);

-- ---------------------------------------------------------------------------------------------
-- resi.consensus_median(value, weight, tolerance) → resi.numeric_consensus
-- ---------------------------------------------------------------------------------------------
-- Count one row. The tolerance (NULL: 0) must be finite and >= 0 and the same on every row of
-- the group, else 22023 (checked on every row, voting or not); NULL, NaN and infinite values
-- are ignored, then non-voting weights; a weight above 1e15 raises 22003. IMMUTABLE, PARALLEL
-- SAFE, not STRICT.
CREATE FUNCTION resi.consensus_median_transition(state resi.consensus_median_state, value double precision,
                                                 weight double precision, tolerance double precision)
    RETURNS resi.consensus_median_state
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    t double precision := coalesce(tolerance, 0);
    v double precision;
    i integer;
    units numeric;
BEGIN
    IF NOT (t >= 0::double precision AND t < 'Infinity'::double precision) THEN -- NaN too
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'resi.consensus_median: consensus_median tolerance must be a finite number >= 0, got '
            || resi.consensus_float_text(t);
    END IF;
    t := t + 0::double precision; -- -0 is 0
    IF state IS NULL THEN
        state := ROW(t, '{}', '{}', '{}')::resi.consensus_median_state;
    ELSIF state.tolerance <> t THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'resi.consensus_median: consensus_median tolerance must be the same for every row of a group, got '
            || resi.consensus_float_text(state.tolerance) || ' and ' || resi.consensus_float_text(t);
    END IF;
    IF NOT coalesce(value > '-Infinity'::double precision AND value < 'Infinity'::double precision, false) THEN
        RETURN state;
    END IF;
    IF weight > 1e15::double precision AND weight <> 'NaN'::double precision THEN
        RAISE EXCEPTION USING ERRCODE = '22003', MESSAGE = 'resi.consensus_median: consensus weight '
            || resi.consensus_float_text(weight) || ' is out of range (weights must be at most 1e15)';
    END IF;
    IF NOT coalesce(weight >= 1.1102230246251565e-16::double precision AND weight <> 'NaN'::double precision, false) THEN
        RETURN state;
    END IF;
    v := value + 0::double precision; -- -0 is 0
    units := resi.consensus_weight_units(weight);
    i := pg_catalog.array_position(state.tally_values, v);
    IF i IS NULL THEN
        state.tally_values := pg_catalog.array_cat(state.tally_values, ARRAY[v]);
        state.tally_units := pg_catalog.array_cat(state.tally_units, ARRAY[units]);
        state.tally_supporters := pg_catalog.array_cat(state.tally_supporters, '{1}'::bigint[]);
    ELSE
        state.tally_units[i] := state.tally_units[i] + units;
        state.tally_supporters[i] := state.tally_supporters[i] + 1;
    END IF;
    RETURN state;
END
$$;

-- Merge two partial states; their tolerances must be equal (22023). IMMUTABLE, STRICT,
-- PARALLEL SAFE.
CREATE FUNCTION resi.consensus_median_combine(first resi.consensus_median_state, second resi.consensus_median_state)
    RETURNS resi.consensus_median_state
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT ROW((first).tolerance, coalesce(pg_catalog.array_agg(t.value), '{}'),
               coalesce(pg_catalog.array_agg(t.units), '{}'), coalesce(pg_catalog.array_agg(t.supporters), '{}'))::resi.consensus_median_state
      FROM (SELECT u.value, pg_catalog.sum(u.units) AS units, pg_catalog.sum(u.supporters)::bigint AS supporters
              FROM (SELECT * FROM ROWS FROM (pg_catalog.unnest((first).tally_values), pg_catalog.unnest((first).tally_units), pg_catalog.unnest((first).tally_supporters))
                    UNION ALL
                    SELECT * FROM ROWS FROM (pg_catalog.unnest((second).tally_values), pg_catalog.unnest((second).tally_units), pg_catalog.unnest((second).tally_supporters))
                   ) u(value, units, supporters)
             GROUP BY 1) t
    HAVING (first).tolerance = (second).tolerance
        OR resi.consensus_raise('22023', 'resi.consensus_median: consensus_median tolerance must be the same for every row of a group, got '
               || resi.consensus_float_text((first).tolerance) || ' and ' || resi.consensus_float_text((second).tolerance))
$$;

-- The lower weighted median and 25th/75th percentiles (the first value whose cumulative units
-- reach ceil(t/4), ceil(t/2), t - floor(t/4) of the total t) and the voters within the
-- tolerance of the median. STRICT; NULL when no row voted. IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_median_final(state resi.consensus_median_state) RETURNS resi.numeric_consensus
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    WITH tally AS (
        SELECT v.value, v.units, v.supporters,
               pg_catalog.sum(v.units) OVER (ORDER BY v.value ROWS UNBOUNDED PRECEDING) AS cumulative,
               pg_catalog.sum(v.units) OVER () AS total, pg_catalog.sum(v.supporters) OVER () AS voters
          FROM ROWS FROM (pg_catalog.unnest((state).tally_values), pg_catalog.unnest((state).tally_units), pg_catalog.unnest((state).tally_supporters)) v(value, units, supporters)
    ), quantile AS (
        SELECT pg_catalog.min(t.value) FILTER (WHERE t.cumulative >= pg_catalog.div(t.total + 3, 4)) AS low,
               pg_catalog.min(t.value) FILTER (WHERE t.cumulative >= pg_catalog.div(t.total + 1, 2)) AS median,
               pg_catalog.min(t.value) FILTER (WHERE t.cumulative >= t.total - pg_catalog.div(t.total, 4)) AS high,
               t.total, t.voters
          FROM tally t
         WHERE t.total < 340282366920938463463374607431768211456
            OR resi.consensus_raise('22003', 'resi.consensus_median: sum of consensus weights is out of range (more than 2^76)')
         GROUP BY t.total, t.voters
    )
    SELECT ROW(q.median,
               resi.consensus_weight_float(s.units) / resi.consensus_weight_float(q.total),
               s.supporters::double precision / q.voters::double precision,
               s.supporters, q.voters, q.low, q.high)::resi.numeric_consensus
      FROM quantile q
     CROSS JOIN LATERAL (SELECT pg_catalog.sum(t.units) AS units, pg_catalog.sum(t.supporters) AS supporters
                           FROM tally t WHERE resi.consensus_within(t.value, q.median, (state).tolerance)) s
$$;

CREATE AGGREGATE resi.consensus_median(value double precision, weight double precision, tolerance double precision) (
    STYPE       = resi.consensus_median_state,
    SSPACE      = 256,
    SFUNC       = resi.consensus_median_transition,
    COMBINEFUNC = resi.consensus_median_combine,
    FINALFUNC   = resi.consensus_median_final,
    PARALLEL    = SAFE
);

-- resi.distributed_consensus_mode and resi.distributed_consensus_median: in the native edition
-- the variants with a state of a concrete type, which Citus can split over its workers. This
-- edition's states are concrete types already: the same aggregates under the second names.
CREATE AGGREGATE resi.distributed_consensus_mode(value text, weight double precision) (
    STYPE       = resi.consensus_mode_state,
    SSPACE      = 128,
    SFUNC       = resi.consensus_mode_transition,
    COMBINEFUNC = resi.consensus_mode_combine,
    FINALFUNC   = resi.consensus_mode_final,
    PARALLEL    = SAFE
);

CREATE AGGREGATE resi.distributed_consensus_median(value double precision, weight double precision, tolerance double precision) (
    STYPE       = resi.consensus_median_state,
    SSPACE      = 256,
    SFUNC       = resi.consensus_median_transition,
    COMBINEFUNC = resi.consensus_median_combine,
    FINALFUNC   = resi.consensus_median_final,
    PARALLEL    = SAFE
);

-- ---------------------------------------------------------------------------------------------
-- A listing's consensus from its claims
-- ---------------------------------------------------------------------------------------------
-- One claim as it votes (resi.consensus_claim): a uri only when the 1-20 ASCII digits before
-- its first `_zpid` that follows a digit are the zpid (resi_core::listing::zpid_from_uri);
-- bathrooms as round(v::numeric, 1)::text within 0..99.9; latitude/longitude only when finite.
-- IMMUTABLE, PARALLEL SAFE, inlined; never raises.
CREATE FUNCTION resi.consensus_claim_of(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision, weight double precision,
    member text, miner_hotkey text, signature bigint, submitted_at timestamptz, listing text)
    RETURNS resi.consensus_claim
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ROW(
    CASE WHEN pg_catalog.substring(uri COLLATE "C", '([0-9]+)_zpid') = zpid AND pg_catalog.length(zpid) <= 20 THEN uri END,
    price, address, bedrooms,
    CASE WHEN bathrooms >= 0::double precision AND bathrooms <= 99.9::double precision
         THEN pg_catalog.round(bathrooms::numeric, 1)::text END,
    living_area, home_type, home_status, days_on_zillow, zip_code, city, state,
    CASE WHEN latitude > '-Infinity'::double precision AND latitude < 'Infinity'::double precision THEN latitude END,
    CASE WHEN longitude > '-Infinity'::double precision AND longitude < 'Infinity'::double precision THEN longitude END,
    weight, member, miner_hotkey, signature, submitted_at, listing)::resi.consensus_claim;

-- Every field's consensus over claims whose weights vote: per field exactly what
-- resi.consensus_mode (categories) and resi.consensus_median (price 0.01, living_area 0.02,
-- days_on_zillow 0.1, latitude/longitude 1e-6) give, consensus_score (the mean confidence of
-- the fields with a consensus, summed in column order, as real) and field_consensus (per field
-- with a consensus, the members of its resi.consensus / resi.numeric_consensus). NULL when no
-- field has a consensus; `caller` names the aggregate in errors (a total weight of 2^76 or
-- more: 22003). Computed for each listing the claims name (resi.consensus_claim.listing; all
-- NULL: one listing) at once, set-based: one row per listing with a consensus, in no particular
-- order. IMMUTABLE, STRICT, PARALLEL SAFE. One query for all listings and fields, planned once
-- per session (a generic plan: planning it costs several times running it for one listing).
CREATE FUNCTION resi.consensus_listings_of(claims resi.consensus_claim[], caller text)
    RETURNS TABLE (listing text, consensus resi.consensus_listing)
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET extra_float_digits = 1
    SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH vote AS (  -- one row per claim and field it votes on
        SELECT c.listing, f.field, f.category, f.number, c.units
          FROM (SELECT c.*, resi.consensus_weight_units(c.weight) AS units FROM pg_catalog.unnest(claims) c) c
         CROSS JOIN LATERAL (VALUES
                (1, c.uri, NULL::double precision), (2, NULL, c.price::double precision), (3, c.address, NULL),
                (4, c.bedrooms::text, NULL), (5, c.bathrooms, NULL), (6, NULL, c.living_area::double precision),
                (7, c.home_type, NULL), (8, c.home_status, NULL), (9, NULL, c.days_on_zillow::double precision),
                (10, c.zip_code, NULL), (11, c.city, NULL), (12, c.state, NULL), (13, NULL, c.latitude),
                (14, NULL, c.longitude)) f(field, category, number)
         WHERE f.category IS NOT NULL OR f.number IS NOT NULL
    ), tally AS (   -- one row per field and distinct value
        SELECT v.listing, v.field, v.category COLLATE "C" AS category, v.number + 0::double precision AS number,
               pg_catalog.sum(v.units) AS units, pg_catalog.count(*) AS supporters
          FROM vote v
         GROUP BY 1, 2, 3, 4
    ), ranked AS (
        SELECT t.*, pg_catalog.sum(t.units) OVER per_field AS total, pg_catalog.sum(t.supporters) OVER per_field AS voters,
               pg_catalog.sum(t.units) OVER (per_field ORDER BY t.number ROWS UNBOUNDED PRECEDING) AS cumulative,
               pg_catalog.row_number() OVER (per_field ORDER BY t.units DESC, t.supporters DESC, t.category) AS rank
          FROM tally t
        WINDOW per_field AS (PARTITION BY t.listing, t.field)
    ), quantile AS ( -- numbers: the first values whose cumulative units reach a quarter, half, three quarters
        SELECT r.*,
               pg_catalog.min(r.number) FILTER (WHERE r.cumulative >= pg_catalog.div(r.total + 3, 4)) OVER per_field AS low,
               pg_catalog.min(r.number) FILTER (WHERE r.cumulative >= pg_catalog.div(r.total + 1, 2)) OVER per_field AS median,
               pg_catalog.min(r.number) FILTER (WHERE r.cumulative >= r.total - pg_catalog.div(r.total, 4)) OVER per_field AS high
          FROM ranked r
        WINDOW per_field AS (PARTITION BY r.listing, r.field)
    ), per_field AS (
        SELECT q.listing, q.field,
               pg_catalog.min(q.category) FILTER (WHERE q.supports) AS text_value, pg_catalog.min(q.median) AS number_value,
               pg_catalog.min(q.low) AS low, pg_catalog.min(q.high) AS high,
               pg_catalog.sum(q.units) FILTER (WHERE q.supports) AS support, pg_catalog.min(q.total) AS total,
               pg_catalog.sum(q.supporters) FILTER (WHERE q.supports) AS supporters, pg_catalog.min(q.voters) AS voters
          FROM (SELECT q.*,
                       CASE WHEN q.category IS NOT NULL THEN q.rank = 1
                            ELSE resi.consensus_within(q.number, q.median,
                                   ('{NULL,0.01,NULL,NULL,NULL,0.02,NULL,NULL,0.1,NULL,NULL,NULL,1e-6,1e-6}'::double precision[])[q.field])
                       END AS supports
                  FROM quantile q) q
         GROUP BY q.listing, q.field
        HAVING pg_catalog.min(q.total) < 340282366920938463463374607431768211456
            OR resi.consensus_raise('22003', caller || ': sum of consensus weights is out of range (more than 2^76)')
    ), member AS (
        SELECT f.*,
               resi.consensus_weight_float(f.support) / resi.consensus_weight_float(f.total) AS confidence,
               f.supporters::double precision / f.voters::double precision AS agreement
          FROM per_field f
    ), listing AS (
        SELECT f.listing,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 1) AS uri,
               pg_catalog.max(f.number_value) FILTER (WHERE f.field = 2) AS price,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 3) AS address,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 4) AS bedrooms,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 5) AS bathrooms,
               pg_catalog.max(f.number_value) FILTER (WHERE f.field = 6) AS living_area,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 7) AS home_type,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 8) AS home_status,
               pg_catalog.max(f.number_value) FILTER (WHERE f.field = 9) AS days_on_zillow,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 10) AS zip_code,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 11) AS city,
               pg_catalog.max(f.text_value) FILTER (WHERE f.field = 12) AS state,
               pg_catalog.max(f.number_value) FILTER (WHERE f.field = 13) AS latitude,
               pg_catalog.max(f.number_value) FILTER (WHERE f.field = 14) AS longitude,
               -- Summed in column order, as resi_core does.
               (pg_catalog.sum(f.confidence ORDER BY f.field) / pg_catalog.count(*)::double precision)::real AS score,
               -- Written as JSON text and read once (cheaper than building jsonb value by value);
               -- numbers as the native edition writes them (resi.consensus_json_number).
               ('{' || pg_catalog.string_agg(
                   '"' || ('{uri,price,address,bedrooms,bathrooms,living_area,home_type,home_status,days_on_zillow,zip_code,city,state,latitude,longitude}'::text[])[f.field]
                   || '": {"value": ' || coalesce(pg_catalog.to_json(f.text_value)::text, resi.consensus_json_number(f.number_value))
                   || ', "confidence": ' || resi.consensus_json_number(f.confidence)
                   || ', "agreement": ' || resi.consensus_json_number(f.agreement)
                   || ', "supporters": ' || f.supporters::text || ', "voters": ' || f.voters::text
                   || CASE WHEN f.text_value IS NOT NULL
                           THEN ', "support_weight": ' || resi.consensus_json_number(resi.consensus_weight_float(f.support))
                                || ', "total_weight": ' || resi.consensus_json_number(resi.consensus_weight_float(f.total))
                           ELSE ', "low": ' || resi.consensus_json_number(f.low)
                                || ', "high": ' || resi.consensus_json_number(f.high) END
                   || '}', ', ') || '}')::jsonb AS field_consensus
          FROM member f
         GROUP BY f.listing
    )
    SELECT l.listing, ROW(l.uri,
           -- The median of bigints as bigint: 2^63 (a median of claims near the top) saturates.
           CASE WHEN l.price >= 9223372036854775807::double precision THEN 9223372036854775807 ELSE l.price::bigint END,
           l.address, l.bedrooms::integer, l.bathrooms::numeric, l.living_area::integer, l.home_type,
           l.home_status, l.days_on_zillow::integer, l.zip_code, l.city, l.state, l.latitude, l.longitude,
           l.score, l.field_consensus)::resi.consensus_listing
      FROM listing l;
END
$$;

-- Keep one claim whose weight votes; a weight above 1e15 raises 22003. IMMUTABLE, PARALLEL
-- SAFE, not STRICT.
CREATE FUNCTION resi.consensus_listing_transition(
    state resi.consensus_claim[], zpid text, uri text, price bigint, address text, bedrooms integer,
    bathrooms double precision, living_area integer, home_type text, home_status text,
    days_on_zillow integer, zip_code text, city text, state_code text,
    latitude double precision, longitude double precision, weight double precision)
    RETURNS resi.consensus_claim[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF weight > 1e15::double precision AND weight <> 'NaN'::double precision THEN
        RAISE EXCEPTION USING ERRCODE = '22003', MESSAGE = 'resi.consensus_listing: consensus weight '
            || resi.consensus_float_text(weight) || ' is out of range (weights must be at most 1e15)';
    END IF;
    IF weight >= 1.1102230246251565e-16::double precision AND weight <> 'NaN'::double precision THEN
        state := pg_catalog.array_cat(state, ARRAY[resi.consensus_claim_of(zpid, uri, price, address, bedrooms, bathrooms,
            living_area, home_type, home_status, days_on_zillow, zip_code, city, state_code, latitude, longitude,
            weight, NULL, NULL, NULL, NULL, NULL)]);
    END IF;
    RETURN state;
END
$$;

-- Partial states are their claims: concatenated. IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_listing_combine(first resi.consensus_claim[], second resi.consensus_claim[])
    RETURNS resi.consensus_claim[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN first OPERATOR(pg_catalog.||) second;

-- The claims' consensus (their listing is NULL: one group). STRICT: NULL when no claim voted.
-- IMMUTABLE, PARALLEL SAFE.
CREATE FUNCTION resi.consensus_listing_final(state resi.consensus_claim[]) RETURNS resi.consensus_listing
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT l.consensus FROM resi.consensus_listings_of(state, 'resi.consensus_listing') l
$$;

CREATE AGGREGATE resi.consensus_listing(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision, weight double precision) (
    STYPE       = resi.consensus_claim[],
    SSPACE      = 2048,
    SFUNC       = resi.consensus_listing_transition,
    COMBINEFUNC = resi.consensus_listing_combine,
    FINALFUNC   = resi.consensus_listing_final,
    PARALLEL    = SAFE
);

-- ---------------------------------------------------------------------------------------------
-- A listing's consensus with one vote per independent source (resi_core/src/consensus/sources.rs)
-- ---------------------------------------------------------------------------------------------
-- Keep one claim (weight holds its trust). NULL member, miner_hotkey or submitted_at raises
-- 22004. IMMUTABLE, PARALLEL SAFE, not STRICT.
CREATE FUNCTION resi.consensus_by_source_transition(
    state resi.consensus_claim[], zpid text, uri text, price bigint, address text, bedrooms integer,
    bathrooms double precision, living_area integer, home_type text, home_status text,
    days_on_zillow integer, zip_code text, city text, state_code text,
    latitude double precision, longitude double precision, trust double precision,
    member text, miner_hotkey text, signature bigint, submitted_at timestamptz)
    RETURNS resi.consensus_claim[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF member IS NULL OR miner_hotkey IS NULL OR submitted_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = 'resi.consensus_by_source: member, miner_hotkey and submitted_at must not be NULL';
    END IF;
    RETURN pg_catalog.array_cat(state, ARRAY[resi.consensus_claim_of(zpid, uri, price, address, bedrooms, bathrooms,
        living_area, home_type, home_status, days_on_zillow, zip_code, city, state_code, latitude, longitude,
        trust, member, miner_hotkey, signature, submitted_at, NULL)]);
END
$$;

-- Each source's vote: claims with a signature belong to the member of the earliest upload of
-- that signature (then the smallest hotkey as bytes, then the first kept), others to their own
-- member; a source votes with its heaviest claim (trust: NULL, then NaN, then the greatest
-- number; then the newest upload, the smallest hotkey as bytes, the first kept), weighted
-- trust × resi.claim_recency_seconds(its age behind the newest claim, resi.claim_half_life_seconds()
-- read once); the listing is resi.consensus_listing over those votes. voting_groups counts the
-- sources whose trust is > 0. Computed for each listing the claims name (their `listing`; all
-- NULL: one listing) at once, set-based: one row per listing with claims, in no particular
-- order. STABLE (reads the half-life), PARALLEL SAFE; a vote above 1e15 raises 22003.
CREATE FUNCTION resi.consensus_by_sources_of(claims resi.consensus_claim[])
    RETURNS TABLE (listing text, sources resi.source_consensus)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    half_life double precision := resi.claim_half_life_seconds(); -- read once, as natively
BEGIN
    -- `key`: the listing, '' for NULL (an aggregate's claims, all NULL), so that the joins below
    -- are hashed equalities.
    RETURN QUERY
    WITH claim AS (
        SELECT c.*, pg_catalog.max(c.at) OVER (PARTITION BY c.key) AS newest
          FROM (-- Upload times as the native edition holds them: microseconds since 2000-01-01,
                -- ±infinity the ends of the int64 range.
                SELECT c.*, coalesce(c.listing, '') AS key,
                       CASE WHEN c.submitted_at = 'infinity'::timestamptz THEN 9223372036854775807
                            WHEN c.submitted_at = '-infinity'::timestamptz THEN -9223372036854775808
                            ELSE (EXTRACT(epoch FROM c.submitted_at) - 946684800) * 1000000 END AS at
                  FROM pg_catalog.unnest(claims) WITH ORDINALITY c) c
    ), original AS (
        SELECT DISTINCT ON (c.key, c.signature) c.key, c.signature, c.member
          FROM claim c
         WHERE c.signature IS NOT NULL
         ORDER BY c.key, c.signature, c.submitted_at, c.miner_hotkey COLLATE "C", c.ordinality
    ), lead AS (
        SELECT DISTINCT ON (s.key, s.source) s.*
          FROM (SELECT c.*, coalesce(o.member, c.member) COLLATE "C" AS source
                  FROM claim c LEFT JOIN original o ON o.key = c.key AND o.signature = c.signature) s
         ORDER BY s.key, s.source, s.weight DESC NULLS FIRST, s.submitted_at DESC, s.miner_hotkey COLLATE "C", s.ordinality
    ), aged AS MATERIALIZED (
        -- The age in seconds as resi_core computes it: the int64 difference behind the newest
        -- claim (wrapping around past the int64 range), as a double, / 1e6.
        SELECT l.*, (CASE WHEN l.newest - l.at > 9223372036854775807 THEN l.newest - l.at - 18446744073709551616
                          ELSE l.newest - l.at END)::bigint::double precision / 1e6::double precision AS age
          FROM lead l
    ), recency AS (  -- once per distinct age: uploads come in rounds, so ages repeat
        SELECT a.age, resi.claim_recency_seconds(a.age, half_life) AS share
          FROM (SELECT DISTINCT a.age FROM aged a) a
    ), vote AS MATERIALIZED (
        SELECT a.*,
               CASE WHEN pg_catalog.abs(a.weight) < 1e-290::double precision THEN 0::double precision -- would underflow: no vote
                    ELSE a.weight * r.share END AS vote_weight
          FROM aged a JOIN recency r ON r.age = a.age
    ), per_listing AS (
        SELECT p.*
          FROM (SELECT v.key, pg_catalog.min(v.listing) AS listing,
                       pg_catalog.count(*) FILTER (WHERE v.weight > 0::double precision
                                                     AND v.weight <> 'NaN'::double precision) AS voting,
                       pg_catalog.max(v.vote_weight) FILTER (WHERE v.vote_weight > 1e15::double precision
                                                               AND v.vote_weight <> 'NaN'::double precision) AS too_heavy
                  FROM vote v
                 GROUP BY v.key) p
         WHERE p.too_heavy IS NULL
            OR resi.consensus_raise('22003', 'resi.consensus_by_source: consensus weight '
                   || resi.consensus_float_text(p.too_heavy) || ' is out of range (weights must be at most 1e15)')
    )
    SELECT p.listing, ROW(p.voting::integer, c.consensus)::resi.source_consensus
      FROM per_listing p
      LEFT JOIN resi.consensus_listings_of(ARRAY(
                    SELECT ROW(v.uri, v.price, v.address, v.bedrooms, v.bathrooms, v.living_area, v.home_type,
                               v.home_status, v.days_on_zillow, v.zip_code, v.city, v.state, v.latitude,
                               v.longitude, v.vote_weight, NULL, NULL, NULL, NULL, v.key)::resi.consensus_claim
                      FROM vote v
                     WHERE v.vote_weight >= 1.1102230246251565e-16::double precision
                       AND v.vote_weight <= 1e15::double precision), 'resi.consensus_by_source') c
             ON c.listing = p.key;
END
$$;

-- The aggregate's claims (one group): resi.consensus_by_sources_of's row; (0, NULL) for no
-- claims. STABLE, PARALLEL SAFE, not STRICT.
CREATE FUNCTION resi.consensus_by_source_final(claims resi.consensus_claim[]) RETURNS resi.source_consensus
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce((SELECT s.sources FROM resi.consensus_by_sources_of(claims) s), ROW(0, NULL)::resi.source_consensus)
$$;

CREATE AGGREGATE resi.consensus_by_source(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    trust double precision, member text, miner_hotkey text, signature bigint, submitted_at timestamptz) (
    STYPE     = resi.consensus_claim[],
    SSPACE    = 4096,
    SFUNC     = resi.consensus_by_source_transition,
    FINALFUNC = resi.consensus_by_source_final,
    PARALLEL  = SAFE
);
