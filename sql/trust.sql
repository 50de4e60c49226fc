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
    audit_errors          bigint NOT NULL DEFAULT 0 CHECK (audit_errors >= 0 AND audit_errors <= audited_fields),
    -- 0.5.0: the evidence trust is earned from (resi.earned_trust): claims audits and
    -- validations judged and how many of them were wrong; uploaded rows a consensus two
    -- independent sources back could judge, and how many of them agreed with it, decayed by
    -- 0.8 per later submission of the miner (recent behaviour counts).
    audited_claims        bigint NOT NULL DEFAULT 0 CHECK (audited_claims >= 0),
    wrong_claims          bigint NOT NULL DEFAULT 0 CHECK (wrong_claims >= 0 AND wrong_claims <= audited_claims),
    corroborated_rows     double precision NOT NULL DEFAULT 0 CHECK (corroborated_rows >= 0),
    agreeing_rows         double precision NOT NULL DEFAULT 0 CHECK (agreeing_rows >= 0 AND agreeing_rows <= corroborated_rows)
);
COMMENT ON TABLE resi.miner_trust IS 'Per miner: trust score (consensus weight) and the evidence it is earned from, submission counters, rate-limit and ban state.';
COMMENT ON COLUMN resi.miner_trust.trust_score IS 'resi.earned_trust(this row): recomputed whenever the miner''s evidence changes (a folded submission, an audit, a validation).';
COMMENT ON COLUMN resi.miner_trust.duplicate_rate IS 'duplicate_rows / rows_submitted: rows whose zpid the same submission already had.';
COMMENT ON COLUMN resi.miner_trust.accuracy_score IS 'fields_agreed / fields_compared: the share of the miner''s field values that agreed with the resulting consensus, on listings another independent source voted on.';
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
-- Earned trust
-- ---------------------------------------------------------------------------------------------
-- A miner's trust from the evidence in its row (resi.earned_trust, resi_core/src/trust.rs):
-- audited claims (resi.record_audit's judgements and resi.record_validation's spot-checks), the
-- wrong ones, and agreement, weak evidence and capped. What trust_score is set to
-- whenever the evidence changes; a change of resi.initial_trust reaches a miner's trust_score
-- with its next evidence. STABLE (reads the setting), PARALLEL SAFE; NULL for a NULL row.
CREATE FUNCTION resi.earned_trust(miner resi.miner_trust) RETURNS double precision
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN resi.earned_trust(miner.audited_claims, miner.wrong_claims, miner.corroborated_rows, miner.agreeing_rows,
                             resi.initial_trust());
COMMENT ON FUNCTION resi.earned_trust(resi.miner_trust) IS
    'The trust a miner''s row of resi.miner_trust has earned: resi.earned_trust of its audited claims (audits and validations), wrong claims, corroborated and agreeing rows, with resi.initial_trust as the prior.';

-- Agreement is weak evidence of current behaviour: a miner's corroborated and agreeing rows
-- decay by 0.8 per later submission. resi.decayed_sum folds values in order, total × factor +
-- value, starting from 0, so as a window function (ORDER BY the submissions, the miner's current
-- total first) it gives the total after each submission, exactly as applying them one by one
-- would. IMMUTABLE, PARALLEL SAFE; a NULL value or factor leaves the total as it was (STRICT
-- transition). Plain SQL: the same in every edition.
CREATE FUNCTION resi.decayed_sum_step(total double precision, value double precision, factor double precision)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN total * factor + value;
COMMENT ON FUNCTION resi.decayed_sum_step(double precision, double precision, double precision) IS
    'Transition of resi.decayed_sum: total × factor + value.';

CREATE AGGREGATE resi.decayed_sum(value double precision, factor double precision) (
    STYPE    = double precision,
    SFUNC    = resi.decayed_sum_step,
    INITCOND = '0',
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE resi.decayed_sum(double precision, double precision) IS
    'Values folded in order as total × factor + value from 0 (use with ORDER BY or as an ordered window function): the 0.8-per-submission decay of a miner''s agreement evidence.';

-- A group of dependent miners votes with what its members' evidence earns together: their
-- audited claims, wrong claims and rows pooled (an operator's hotkeys are one source, checked
-- as one). Updates resi.miner_groups.trust where it changed, in group order, and returns how
-- many groups changed; resi.find_dependent_miners and resi.refresh_stale_consensus call it, so
-- a group's weight follows its members' trust within one loader pass. Reads every group (at
-- most the network's ~256 hotkeys).
CREATE FUNCTION resi.refresh_group_trust() RETURNS integer
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH pooled AS (
        SELECT g.group_hotkey,
               resi.earned_trust(coalesce(sum(t.audited_claims), 0)::bigint, coalesce(sum(t.wrong_claims), 0)::bigint,
                                 coalesce(sum(t.corroborated_rows), 0), coalesce(sum(t.agreeing_rows), 0),
                                 resi.initial_trust()) AS trust
          FROM resi.miner_groups g
          LEFT JOIN resi.miner_trust t ON t.miner_hotkey = g.miner_hotkey
         GROUP BY g.group_hotkey
    ), changed AS (
        UPDATE resi.miner_groups g SET trust = p.trust
          FROM pooled p
         WHERE g.group_hotkey = p.group_hotkey AND g.trust IS DISTINCT FROM p.trust
        RETURNING g.group_hotkey
    )
    SELECT count(DISTINCT c.group_hotkey)::integer FROM changed c;
END;
COMMENT ON FUNCTION resi.refresh_group_trust() IS
    'Set each group''s trust (resi.miner_groups.trust) to what its members'' pooled evidence earns (resi.earned_trust); returns the groups whose trust changed.';

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
    -- The time goes through the inserted row: on Citus, ON CONFLICT DO UPDATE may call only
    -- immutable functions.
    INSERT INTO resi.miner_trust AS t (miner_hotkey, trust_score, bans, banned_until, ban_reason, updated_at)
    VALUES (hotkey, resi.initial_trust(), 1, until, reason, now())
    ON CONFLICT (miner_hotkey) DO UPDATE SET
        bans = t.bans + 1, banned_until = excluded.banned_until, ban_reason = excluded.ban_reason,
        updated_at = excluded.updated_at;
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
    s.audited_claims    := coalesce(t.audited_claims, 0);
    s.wrong_claims      := coalesce(t.wrong_claims, 0);
    SELECT g.group_hotkey, (SELECT count(*) FROM resi.miner_groups m WHERE m.group_hotkey = g.group_hotkey)
      INTO s.group_hotkey, s.group_members
      FROM resi.miner_groups g WHERE g.miner_hotkey = hotkey;
    s.group_members     := coalesce(s.group_members, 1);
    SELECT string_agg(format('%s %s: %s', CASE WHEN d.miner_hotkey = hotkey THEN 'repeats' ELSE 'is repeated by' END,
                             CASE WHEN d.miner_hotkey = hotkey THEN d.source_hotkey ELSE d.miner_hotkey END,
                             concat_ws(', ',
                                 CASE WHEN d.shared_claims > 0
                                      THEN format('%s of %s claims copied', d.shared_claims, d.miner_claims) END,
                                 CASE WHEN d.near_copies > 0
                                      THEN format('%s near copies of %s shared deviations', d.near_copies,
                                                  d.shared_deviations) END,
                                 CASE WHEN d.shared_false > 0
                                      THEN format('%s audited false values in common (ln LR %s)', d.shared_false,
                                                  round(d.score::numeric, 1)) END)),
                      '; ' ORDER BY d.n) FILTER (WHERE d.n <= 3)
           || CASE WHEN count(*) > 3 THEN format('; and %s more', count(*) - 3) ELSE '' END
      INTO s.dependence
      FROM (SELECT d.*, row_number() OVER (ORDER BY d.first_seen_at, d.miner_hotkey, d.source_hotkey) AS n
              FROM resi.miner_dependence d WHERE hotkey IN (d.miner_hotkey, d.source_hotkey)) d;
    s.explanation := format('%s miner: trust %s (%s); %s; allowance %s submissions per UTC day, %s used today, %s left; %s',
        CASE WHEN s.known THEN 'known' ELSE 'unknown' END,
        round(s.trust_score::numeric, 3),
        CASE WHEN s.known
             THEN format('earned from %s audited claims, %s wrong, and %s of %s rows agreeing with other sources; '
                         'accuracy %s, duplicate rate %s, %s submissions',
                         s.audited_claims, s.wrong_claims, round(t.agreeing_rows::numeric),
                         round(t.corroborated_rows::numeric),
                         coalesce(round(s.accuracy_score::numeric, 3)::text, 'not yet measured'),
                         round(s.duplicate_rate::numeric, 3), s.total_submissions)
             ELSE 'the initial trust, resi.initial_trust' END,
        CASE WHEN s.group_hotkey IS NULL THEN 'votes alone'
             ELSE format('votes once with its group %s of %s miners (%s)', s.group_hotkey, s.group_members,
                         coalesce(s.dependence, 'through other members')) END,
        s.daily_allowance, s.submissions_today, s.remaining_today,
        CASE WHEN s.banned_until IS NOT NULL
             THEN format('banned until %s: %s', s.banned_until, s.ban_reason)
             ELSE format('%s strikes, %s more bring ban number %s', s.strikes, s.strikes_until_ban, s.bans + 1) END);
    RETURN s;
END
$$;
COMMENT ON FUNCTION resi.miner_status(text) IS
    'A miner''s trust and the evidence it is earned from, its group and the evidence of dependence, daily allowance and use, strikes and ban, with a one-sentence explanation. Unknown miners get the defaults.';

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.initial_trust() IS
    'The trust of a miner not yet in resi.miner_trust: the resi.initial_trust setting (default 0.25).';
COMMENT ON FUNCTION resi.earned_trust(bigint, bigint, double precision, double precision, double precision) IS
    'Trust earned with this evidence: the log-odds of a lower bound (mean - 1 sd) of the share of right claims under Beta(prior + right + 0.1 x agreeing rows, wrong + 0.1 x disagreeing rows; rows worth 10 audits at most), 1 at 0.95, 0 at 0.5 and below; the prior is 4 claims whose trust is initial_trust. Bad counts raise 22023.';
