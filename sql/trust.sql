-- Trust: how much each miner's word counts (resi.miner_trust), strikes and bans with their
-- reasons, and resi.miner_status, which explains a miner's standing.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Miner trust: how much each miner's word counts, and what limits it
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resi.miner_trust (
    miner_hotkey          text PRIMARY KEY,
    miner_uid             integer,
    trust_score           double precision NOT NULL CHECK (trust_score BETWEEN 0 AND 1),
    total_submissions     bigint NOT NULL DEFAULT 0 CHECK (total_submissions >= 0),
    validated_submissions bigint NOT NULL DEFAULT 0 CHECK (validated_submissions >= 0),
    last_submission       timestamptz,
    submissions_today     integer NOT NULL DEFAULT 0 CHECK (submissions_today >= 0), -- on last_submission_date (UTC)
    last_submission_date  date,
    duplicate_rate        double precision NOT NULL DEFAULT 0 CHECK (duplicate_rate BETWEEN 0 AND 1),
    accuracy_score        double precision CHECK (accuracy_score BETWEEN 0 AND 1),
    strikes               integer NOT NULL DEFAULT 0 CHECK (strikes >= 0),
    banned_until          timestamptz, -- NULL: not banned; 'infinity': banned for good
    ban_reason            text,
    first_seen_at         timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- 0.2.0: the counters behind the rates above, bans, and when trust last moved.
    validations_failed    bigint NOT NULL DEFAULT 0 CHECK (validations_failed >= 0),
    rows_submitted        bigint NOT NULL DEFAULT 0 CHECK (rows_submitted >= 0),
    duplicate_rows        bigint NOT NULL DEFAULT 0 CHECK (duplicate_rows >= 0),
    fields_compared       bigint NOT NULL DEFAULT 0 CHECK (fields_compared >= 0),
    fields_agreed         bigint NOT NULL DEFAULT 0 CHECK (fields_agreed >= 0),
    bans                  integer NOT NULL DEFAULT 0 CHECK (bans >= 0),
    trust_changed_at      timestamptz, -- when trust_score last changed
    -- 0.5.0: audits (resi.record_audit): fields of the miner's claims an audit compared, and
    -- how many of them were wrong.
    audited_fields        bigint NOT NULL DEFAULT 0 CHECK (audited_fields >= 0),
    audit_errors          bigint NOT NULL DEFAULT 0 CHECK (audit_errors >= 0 AND audit_errors <= audited_fields)
);
COMMENT ON TABLE resi.miner_trust IS 'Per miner: trust score (consensus weight), submission counters, rate-limit and ban state.';
COMMENT ON COLUMN resi.miner_trust.duplicate_rate IS 'duplicate_rows / rows_submitted: rows whose zpid the same submission already had.';
COMMENT ON COLUMN resi.miner_trust.accuracy_score IS 'fields_agreed / fields_compared: the share of the miner''s field values that agreed with the resulting consensus, on listings another miner also claims.';
COMMENT ON COLUMN resi.miner_trust.banned_until IS 'The miner is banned while now() < banned_until (''infinity'' for good).';

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

-- pg_dump keeps the rows of these tables (an extension's tables are otherwise dumped empty).
SELECT pg_catalog.pg_extension_config_dump('resi.miner_trust', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_penalties', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_penalties_id_seq', '');

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

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.initial_trust() IS
    'The trust of a miner not yet in resi.miner_trust: the resi.initial_trust setting (default 0.25).';
COMMENT ON FUNCTION resi.next_trust(double precision, double precision, boolean, boolean) IS
    'A miner''s trust after one submission or validation: clamp(0.95 * current + adj, 0, 1), adj -0.5 for fake data, else +0.1 when a validator confirmed, else +0.05 for quality > 0.8, else -0.2 for quality < 0.3, else 0. NaN raises 22023.';
COMMENT ON FUNCTION resi.submission_trust_quality(double precision, bigint, bigint, bigint) IS
    'The quality a folded submission moves its miner''s trust with: score x agreeing_rows / corroborated_rows (score when nothing is corroborated), at most 0.8 when fewer than half the rows are corroborated. Bad counts or NaN raise 22023.';
