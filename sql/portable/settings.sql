-- Settings a DBA can change: the portable body of resi_pg/src/guc.rs and
-- resi_pg/src/settings.rs. Same names, defaults, ranges and validation messages as the native
-- resi.* GUCs (docs/sql-api.md lists them):
--
-- | setting                          | default                              | range / unit       |
-- |----------------------------------|--------------------------------------|--------------------|
-- | resi.rate_limit_tiers            | 0.8:10000, 0.6:5000, 0.4:1000, 0:100 | min_trust:limit    |
-- | resi.initial_trust               | 0.25                                 | 0 .. 1             |
-- | resi.quality_min_price           | 1000                                 | 0 .. 1e300         |
-- | resi.quality_max_price           | 1e+08                                | 0 .. 1e300         |
-- | resi.quality_max_zip_codes       | 50                                   | 0 ..               |
-- | resi.max_submission_rows         | 1000000                              | 1 ..               |
-- | resi.over_limit_strike_attempts  | 5                                    | 1 ..               |
-- | resi.strikes_per_ban             | 3                                    | 1 ..               |
-- | resi.ban_duration                | 6h                                   | 1 .. minutes       |
-- | resi.max_ban_duration            | 30d                                  | 1 .. minutes       |
-- | resi.database_budget             | 8GB                                  | 1 .. megabytes     |
-- | resi.claim_half_life             | 2h                                   | 0 .. minutes       |
--
-- Natively they are GUCs only a superuser or a role granted SET on them (resi_admin) may set,
-- so a loader cannot raise its own limits. Without a library the portable edition cannot
-- register GUCs, and a custom placeholder is a poor store: on PostgreSQL 15 a database owner
-- that is not a superuser may not ALTER DATABASE/ROLE … SET one (42501), while any role may
-- SET one in its own session or connection options, and placeholders are not in pg_settings,
-- so where a value came from cannot be told. Hence:
--
-- * The settings are rows of resi.settings (name, value as written, setting in the base unit),
--   readable by everyone, written by the owner and whom it grants (resi.setup_roles():
--   resi_admin). A trigger validates each write with the native messages and SQLSTATEs
--   (22023; 42704 for an unknown name), as SET would have. A name without a row has its
--   default; DELETE resets it. The rows are transactional and kept by pg_dump.
-- * `SET resi.x = …` still works for one session, as natively, but only in a session whose
--   login role (session_user: a SECURITY DEFINER function does not change it) may set it
--   natively: a superuser, a member of resi_admin, or a role granted SET on the parameter.
--   It cannot be checked when set, so it is checked when read, with the same messages. In
--   any other session a resi.* value is refused when read with 42501, as its SET would have
--   been: a loader cannot raise its own limits, and does not run with a value it believes in
--   effect. This includes values from ALTER ROLE/DATABASE … SET and postgresql.conf, which
--   only a superuser can put there; use resi.settings instead.
--
-- resi.setting(name) reads one setting (each reader below is one line over it): a PL/pgSQL
-- call and one index lookup, some 10 µs (natively a variable read).
--
-- Differences from native: a session value of '' reads as unset (a placeholder that was
-- RESET reads as '' too), where native SET refuses ''; a bad SET value fails the statements
-- that read it rather than the SET; strtod's underflow flag (ERANGE) for a hexadecimal
-- subnormal such as '0x1p-1070' is not reproduced (such a value is accepted).

-- ---------------------------------------------------------------------------------------------
-- PostgreSQL's own parsing of numeric settings (guc.c: parse_int, parse_real, with units)
-- ---------------------------------------------------------------------------------------------
-- strtod() in the C locale over the start of s (glibc: decimal, hexadecimal, inf, infinity,
-- nan): the value, what follows the number, and whether strtod would set ERANGE (overflow, or
-- an underflow to a subnormal or zero). value is NULL when nothing is a number. IMMUTABLE,
-- STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.c_strtod(s text, OUT value double precision, OUT rest text, OUT erange boolean)
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    lead     text := substring(s FROM E'^[ \\t\\n\\v\\f\\r]*[+-]?');
    p        text := substr(s, length(lead) + 1);
    negative boolean := right(lead, 1) = '-';
    m        text[];
    mantissa numeric;
    exp2     integer;
    scaled   text;
BEGIN
    erange := false;
    IF p ~* '^0x([.]?[0-9a-f])' THEN -- hexadecimal: 0x h.h p±d
        m := regexp_match(p, '^0[xX]([0-9a-fA-F]*)(?:[.]([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?');
        rest := substr(p, length(substring(p FROM '^0[xX][0-9a-fA-F]*(?:[.][0-9a-fA-F]*)?(?:[pP][+-]?[0-9]+)?')) + 1);
        SELECT coalesce(sum((strpos('0123456789abcdef', lower(h)) - 1) * 16::numeric ^ (length(m[1] || coalesce(m[2], '')) - i)), 0)
          INTO mantissa
          FROM unnest(string_to_array(m[1] || coalesce(m[2], ''), NULL)) WITH ORDINALITY AS d(h, i);
        exp2 := least(greatest(coalesce(m[3]::numeric, 0), -100000), 100000)::integer - 4 * length(coalesce(m[2], ''));
        IF mantissa = 0 THEN
            value := 0;
        ELSIF exp2 >= 0 THEN
            value := resi.decimal_float8('', CASE WHEN exp2 > 5000 THEN '1' || repeat('0', 400)
                                                  ELSE trunc(mantissa * 2::numeric ^ exp2)::text END, '', '', '');
        ELSE -- mantissa × 5^-exp2 / 10^-exp2
            scaled := CASE WHEN exp2 < -5000 THEN '0' ELSE trunc(mantissa * 5::numeric ^ (-exp2))::text END;
            value := resi.decimal_float8('', scaled, '', '-', (-exp2)::text);
        END IF;
        IF value IS NULL THEN
            value := 'Infinity';
            erange := true;
        ELSIF value = 0 AND mantissa <> 0 THEN
            erange := true;
        END IF;
    ELSIF p ~* '^inf' THEN
        rest := CASE WHEN p ~* '^infinity' THEN substr(p, 9) ELSE substr(p, 4) END;
        value := 'Infinity';
    ELSIF p ~* '^nan' THEN
        rest := substr(p, length(substring(p FROM '^(?:[nN][aA][nN])(?:[(][0-9A-Za-z_]*[)])?')) + 1);
        value := 'NaN';
    ELSIF p ~ '^(?:[0-9]|[.][0-9])' THEN -- decimal: d.d e±d
        m := regexp_match(p, '^([0-9]*)(?:[.]([0-9]*))?(?:[eE]([+-]?)([0-9]+))?');
        rest := substr(p, length(substring(p FROM '^[0-9]*(?:[.][0-9]*)?(?:[eE][+-]?[0-9]+)?')) + 1);
        value := resi.decimal_float8('', m[1], m[2], m[3], m[4]);
        IF value IS NULL THEN
            value := 'Infinity';
            erange := true;
        ELSIF value < 2.2250738585072014e-308 AND ltrim(m[1] || coalesce(m[2], ''), '0') <> '' THEN
            erange := true; -- a subnormal or zero from a nonzero decimal: inexact
        END IF;
    ELSE
        rest := s;
        RETURN; -- no number
    END IF;
    IF negative THEN
        value := -value;
    END IF;
END
$$;

-- parse_int(): the value of an integer setting in its base unit ('min' or 'MB'; NULL: none),
-- or NULL when PostgreSQL would refuse it as "invalid value", with the HINT it would give.
-- IMMUTABLE, not STRICT, PARALLEL SAFE; never raises.
CREATE FUNCTION resi.guc_parse_int(value text, unit text, OUT result integer, OUT hint text)
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    m          text[];
    n          double precision;
    rest       text;
    erange     boolean := false;
    digits     numeric;
    unit_given text;
    multiplier double precision;
    next_smaller double precision;
BEGIN
    -- strtol(value, &end, 0): octal and hexadecimal too; re-read as a double when it stops at
    -- '.', 'e' or 'E' or overflows a long.
    m := regexp_match(value, E'^[ \\t\\n\\v\\f\\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)');
    IF m IS NOT NULL THEN
        rest := substr(value, length(substring(value FROM E'^[ \\t\\n\\v\\f\\r]*[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)')) + 1);
        IF m[2] ~* '^0x' THEN
            SELECT sum((strpos('0123456789abcdef', lower(h)) - 1) * 16::numeric ^ (length(m[2]) - 2 - i)) INTO digits
              FROM unnest(string_to_array(substr(m[2], 3), NULL)) WITH ORDINALITY AS d(h, i);
        ELSIF m[2] ~ '^0' THEN
            SELECT coalesce(sum(h::integer * 8::numeric ^ (length(m[2]) - i)), 0) INTO digits
              FROM unnest(string_to_array(m[2], NULL)) WITH ORDINALITY AS d(h, i);
        ELSE
            digits := m[2]::numeric;
        END IF;
        IF m[1] = '-' THEN
            digits := -digits;
        END IF;
        IF digits > 9223372036854775807 OR digits < -9223372036854775808 THEN
            erange := true;
        ELSE
            n := digits::double precision;
        END IF;
    ELSE
        rest := value; -- nothing converted: end = value
    END IF;
    IF left(rest, 1) IN ('.', 'e', 'E') OR erange OR (m IS NULL AND left(value, 1) IN ('.', 'e', 'E')) THEN
        SELECT s.value, s.rest, s.erange INTO n, rest, erange FROM resi.c_strtod(value) s;
    END IF;
    IF n IS NULL OR erange OR n = 'NaN' THEN
        RETURN; -- no HINT
    END IF;
    rest := ltrim(rest, E' \t\n\v\f\r');
    IF rest <> '' THEN
        IF unit IS NULL THEN
            RETURN; -- this setting takes no unit
        END IF;
        unit_given := substring(rest FROM E'^[^ \\t\\n\\v\\f\\r]{1,3}');
        SELECT u.multiplier, u.next_smaller INTO multiplier, next_smaller
          FROM (VALUES ('min', 'd', 1440::double precision, 60::double precision),
                       ('min', 'h', 60, 1),
                       ('min', 'min', 1, 1.0::double precision / 60),
                       ('min', 's', 1.0::double precision / 60, 1.0::double precision / (1000 * 60)),
                       ('min', 'ms', 1.0::double precision / (1000 * 60), 1.0::double precision / (1000 * 1000 * 60)),
                       ('min', 'us', 1.0::double precision / (1000 * 1000 * 60), NULL),
                       ('MB', 'TB', 1024.0::double precision * 1024.0, 1024),
                       ('MB', 'GB', 1024, 1),
                       ('MB', 'MB', 1, 1.0::double precision / 1024),
                       ('MB', 'kB', 1.0::double precision / 1024, 1.0::double precision / (1024.0 * 1024.0)),
                       ('MB', 'B', 1.0::double precision / (1024.0 * 1024.0), NULL)) AS u(base, name, multiplier, next_smaller)
         WHERE u.base = unit AND u.name = unit_given;
        IF multiplier IS NULL OR ltrim(substr(rest, length(unit_given) + 1), E' \t\n\v\f\r') <> '' THEN
            hint := CASE unit WHEN 'MB' THEN 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'
                              ELSE 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".' END;
            RETURN;
        END IF;
        IF abs(n) > 1e300 THEN
            hint := 'Value exceeds integer range.';
            RETURN;
        END IF;
        n := n * multiplier;
        IF next_smaller IS NOT NULL THEN
            n := round(n / next_smaller) * next_smaller; -- round(float8) is rint()
        END IF;
    END IF;
    n := round(n);
    IF n > 2147483647 OR n < -2147483648 THEN
        hint := 'Value exceeds integer range.';
        RETURN;
    END IF;
    result := n::integer;
END
$$;

-- printf("%g", x) as PostgreSQL's snprintf writes it (Infinity, -Infinity; otherwise six
-- significant digits of the exact binary value, rounded half to even). IMMUTABLE, STRICT,
-- PARALLEL SAFE.
CREATE FUNCTION resi.c_format_g(x double precision) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    bits     bigint := ('x' || encode(float8send(x), 'hex'))::bit(64)::bigint;
    biased   integer := ((bits >> 52) & 2047)::integer;
    mantissa numeric := (bits & 4503599627370495)::numeric;
    exact    numeric;
    e        integer; -- decimal exponent of the leading digit
    r        numeric; -- the six digits, as an integer
    quotient numeric;
    remnant  numeric;
    text_out text;
BEGIN
    IF x = 'Infinity' THEN RETURN 'Infinity'; END IF;
    IF x = '-Infinity' THEN RETURN '-Infinity'; END IF;
    IF x = 'NaN' THEN RETURN 'NaN'; END IF;
    IF x = 0 THEN
        RETURN CASE WHEN bits < 0 THEN '-0' ELSE '0' END;
    END IF;
    IF biased > 0 THEN
        mantissa := mantissa + 4503599627370496;
    ELSE
        biased := 1;
    END IF;
    exact := CASE WHEN biased - 1075 >= 0 THEN mantissa * 2::numeric ^ (biased - 1075)
                  ELSE ((mantissa * 5::numeric ^ (1075 - biased))::text || 'e-' || (1075 - biased))::numeric END;
    e := floor(log(exact))::integer; -- refined below
    IF 10::numeric ^ (e + 1) <= exact THEN e := e + 1; END IF;
    IF 10::numeric ^ e > exact THEN e := e - 1; END IF;
    -- exact / 10^(e-5), rounded half to even
    quotient := (exact::text || 'e' || (5 - e))::numeric;
    r := trunc(quotient);
    remnant := quotient - r;
    IF remnant > 0.5 OR (remnant = 0.5 AND mod(r, 2) = 1) THEN
        r := r + 1;
    END IF;
    IF r >= 1000000 THEN
        r := div(r, 10);
        e := e + 1;
    END IF;
    IF e < -4 OR e >= 6 THEN
        text_out := left(r::text, 1) || rtrim(rtrim('.' || substr(r::text, 2), '0'), '.')
                    || 'e' || CASE WHEN e < 0 THEN '-' ELSE '+' END || CASE WHEN abs(e) < 10 THEN '0' ELSE '' END || abs(e);
    ELSE
        text_out := trim_scale((r::text || 'e' || (e - 5))::numeric)::text;
    END IF;
    RETURN CASE WHEN bits < 0 THEN '-' ELSE '' END || text_out;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The settings: defaults (in the base unit) and kinds
-- ---------------------------------------------------------------------------------------------
-- The default of a resi setting, as resi.setting returns it; 42704 for any other name.
-- IMMUTABLE, STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.setting_default(name text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    CASE name
        WHEN 'resi.rate_limit_tiers' THEN RETURN '0.8:10000, 0.6:5000, 0.4:1000, 0:100';
        WHEN 'resi.initial_trust' THEN RETURN '0.25';
        WHEN 'resi.quality_min_price' THEN RETURN '1000';
        WHEN 'resi.quality_max_price' THEN RETURN '100000000';
        WHEN 'resi.quality_max_zip_codes' THEN RETURN '50';
        WHEN 'resi.max_submission_rows' THEN RETURN '1000000';
        WHEN 'resi.over_limit_strike_attempts' THEN RETURN '5';
        WHEN 'resi.strikes_per_ban' THEN RETURN '3';
        WHEN 'resi.ban_duration' THEN RETURN '360';       -- minutes: 6h
        WHEN 'resi.max_ban_duration' THEN RETURN '43200'; -- minutes: 30d
        WHEN 'resi.database_budget' THEN RETURN '8192';   -- MB: 8GB
        WHEN 'resi.claim_half_life' THEN RETURN '120';    -- minutes: 2h
        ELSE RAISE EXCEPTION 'unrecognized configuration parameter "%"', name USING ERRCODE = 'undefined_object';
    END CASE;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Validation: the value of a setting in its base unit, or the native error
-- ---------------------------------------------------------------------------------------------
-- The setting `name` given `value` (NULL: its default), as resi.setting returns it: an integer
-- in the base unit, a double as text that reads back exactly, or the tier list as written.
-- Raises what SET would natively: 22023 "invalid value for parameter …" (with a HINT or the
-- tier DETAIL), 22023 "… is outside the valid range for parameter …", 42704 for a name that
-- is not a resi setting. IMMUTABLE, not STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.check_setting(name text, value text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET extra_float_digits = 3 -- doubles as text that reads back exactly
AS $$
DECLARE
    kind    text;
    unit    text;
    low     double precision;
    high    double precision;
    dflt    text;
    parsed  integer;
    hint    text;
    real    double precision;
    rest    text;
    erange  boolean;
    problem text;
BEGIN
    dflt := resi.setting_default(name); -- 42704 for an unknown name
    SELECT d.kind, d.unit, d.low, d.high INTO kind, unit, low, high
      FROM (VALUES ('resi.rate_limit_tiers', 'tiers', NULL, NULL::double precision, NULL::double precision),
                   ('resi.initial_trust', 'real', NULL, 0, 1),
                   ('resi.quality_min_price', 'real', NULL, 0, 1e300),
                   ('resi.quality_max_price', 'real', NULL, 0, 1e300),
                   ('resi.quality_max_zip_codes', 'int', NULL, 0, 2147483647),
                   ('resi.max_submission_rows', 'int', NULL, 1, 2147483647),
                   ('resi.over_limit_strike_attempts', 'int', NULL, 1, 2147483647),
                   ('resi.strikes_per_ban', 'int', NULL, 1, 2147483647),
                   ('resi.ban_duration', 'int', 'min', 1, 2147483647),
                   ('resi.max_ban_duration', 'int', 'min', 1, 2147483647),
                   ('resi.database_budget', 'int', 'MB', 1, 2147483647),
                   ('resi.claim_half_life', 'int', 'min', 0, 2147483647))
           AS d(name, kind, unit, low, high)
     WHERE d.name = check_setting.name;
    IF value IS NULL THEN
        RETURN dflt;
    END IF;
    IF kind = 'int' THEN
        SELECT p.result, p.hint INTO parsed, hint FROM resi.guc_parse_int(value, unit) p;
        IF parsed IS NULL AND hint IS NOT NULL THEN
            RAISE EXCEPTION 'invalid value for parameter "%": "%"', name, value
                USING ERRCODE = 'invalid_parameter_value', HINT = hint;
        ELSIF parsed IS NULL THEN
            RAISE EXCEPTION 'invalid value for parameter "%": "%"', name, value USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF parsed < low OR parsed > high THEN
            RAISE EXCEPTION '% is outside the valid range for parameter "%" (% .. %)',
                parsed || coalesce(' ' || unit, ''), name, low::integer, high::integer
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN parsed::text;
    ELSIF kind = 'real' THEN
        SELECT s.value, s.rest, s.erange INTO real, rest, erange FROM resi.c_strtod(value) s;
        IF real IS NULL OR erange OR real = 'NaN' OR ltrim(rest, E' \t\n\v\f\r') <> '' THEN
            RAISE EXCEPTION 'invalid value for parameter "%": "%"', name, value USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF real < low OR real > high THEN
            RAISE EXCEPTION '% is outside the valid range for parameter "%" (% .. %)',
                resi.c_format_g(real), name, resi.c_format_g(low), resi.c_format_g(high)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN (real + 0.0)::text;
    ELSE
        problem := resi.rate_limit_tiers_problem(value);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'invalid value for parameter "%": "%"', name, value
                USING ERRCODE = 'invalid_parameter_value', DETAIL = problem;
        END IF;
        RETURN value;
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The store and the reader
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.settings (
    name    text PRIMARY KEY,  -- the native GUC's name, e.g. 'resi.ban_duration'
    value   text NOT NULL,     -- as written, e.g. '2h'
    setting text NOT NULL      -- in the base unit, e.g. '120' (filled in by the trigger)
);
COMMENT ON TABLE resi.settings IS
    'The resi.* settings of the portable edition that differ from their defaults (name, value as written, setting in the base unit); validated when written. SET resi.x works per session only for a superuser or a member of resi_admin.';

CREATE FUNCTION resi.settings_validate() RETURNS trigger
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
    NEW.setting := resi.check_setting(NEW.name, NEW.value);
    RETURN NEW;
END
$$;

CREATE TRIGGER settings_validate BEFORE INSERT OR UPDATE ON resi.settings
    FOR EACH ROW EXECUTE FUNCTION resi.settings_validate();

GRANT SELECT ON resi.settings TO PUBLIC; -- settings are no secret (natively SHOW shows them to anyone)

-- pg_dump keeps the rows (under CREATE EXTENSION only; a plain install is dumped anyway).
DO $$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('resi.settings', '');
EXCEPTION WHEN feature_not_supported THEN
    NULL; -- not run by CREATE EXTENSION
END
$$;

-- Whether the session may override a setting with SET: its login role is a superuser, a
-- member of resi_admin or granted SET on the parameter (who may SET it natively). STABLE,
-- STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.may_set_setting(name text) RETURNS boolean
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    RETURN coalesce(pg_has_role(session_user, to_regrole('resi_admin'), 'MEMBER'), false)
        OR EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = session_user AND r.rolsuper)
        OR has_parameter_privilege(session_user, name, 'SET');
END
$$;

-- The setting `name` in effect, as resi.check_setting returns it (its base unit): the
-- session's SET value where the session may set it, else the row of resi.settings, else the
-- default. A SET value is checked here (22023 as SET natively); one the session may not set
-- raises 42501. 42704 for an unknown name. STABLE (settings change between statements),
-- STRICT, PARALLEL SAFE.
CREATE FUNCTION resi.setting(name text) RETURNS text
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    session_value text := current_setting(name, true);
    stored        text;
BEGIN
    IF session_value <> '' THEN -- a placeholder that was RESET reads as ''
        IF NOT resi.may_set_setting(name) THEN
            RAISE EXCEPTION 'permission denied to set parameter "%"', name
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'The portable edition keeps its settings in resi.settings; SET resi.* works only for a superuser or a member of resi_admin.';
        END IF;
        RETURN resi.check_setting(name, session_value);
    END IF;
    SELECT s.setting INTO stored FROM resi.settings s WHERE s.name = setting.name;
    IF FOUND THEN
        RETURN stored;
    END IF;
    RETURN resi.setting_default(name);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The readers of resi_pg/src/settings.rs (initial_trust: trust.sql; rate_limit_for:
-- rate_limit.sql)
-- ---------------------------------------------------------------------------------------------
-- The ingest and penalty settings in effect; the durations as intervals of hours, minutes and
-- seconds (43200 minutes is 720:00:00). STABLE, PARALLEL SAFE, never NULL.
CREATE FUNCTION resi.ingest_settings() RETURNS resi.ingest_settings
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    s resi.ingest_settings;
BEGIN
    s.max_submission_rows        := resi.setting('resi.max_submission_rows')::integer;
    s.over_limit_strike_attempts := resi.setting('resi.over_limit_strike_attempts')::integer;
    s.strikes_per_ban            := resi.setting('resi.strikes_per_ban')::integer;
    s.ban_duration               := make_interval(mins => resi.setting('resi.ban_duration')::integer);
    s.max_ban_duration           := make_interval(mins => resi.setting('resi.max_ban_duration')::integer);
    RETURN s;
END
$$;

-- resi.database_budget in bytes. STABLE, PARALLEL SAFE, never NULL.
CREATE FUNCTION resi.database_budget_bytes() RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT resi.setting('resi.database_budget')::bigint * 1024 * 1024 $$;

-- resi.claim_half_life in seconds (0: claims do not age). STABLE, PARALLEL SAFE, never NULL.
CREATE FUNCTION resi.claim_half_life_seconds() RETURNS double precision
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT resi.setting('resi.claim_half_life')::integer::double precision * 60::double precision $$;
