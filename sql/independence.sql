-- Independence: which miners' reports are not independent evidence, kept as data. One operator
-- running many hotkeys, or a miner copying another's uploads, must not outvote independent
-- scrapers: resi.listing_consensus lets each group below vote once.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Evidence: pairs of miners whose reports are copies
-- ---------------------------------------------------------------------------------------------
-- One row per (dependent miner, the miner it depends on), with the evidence. Two kinds:
-- * copied claims: current claims of both that are byte copies (the same resi.claim_signature on
--   the same listing: the same scrape time to the microsecond and every field equal, which
--   independent scrapers never produce). Of each copied claim, the earliest upload is the source
--   and every later one a copy (S3's upload time is the one time a miner cannot forge);
-- * near copies: on listings with three or more independent sources whose weighted claims do not
--   all agree (consensus_score < 1), the fields where both
--   miners' current claims deviate from the consensus with the same value (within the consensus
--   tolerances), and how many of those claims were scraped within ten minutes of each other.
--   Independent scrapers share a deviation now and then (and many, when a ring outvotes them and
--   the truth is what deviates), but their scrape times fall where their own schedules put them;
--   a copier that shifts scrape times by minutes, nudges numbers inside the tolerances and drops
--   rows still repeats its source's deviations minutes from its source's scrape times. A pair is
--   dependent when at least 80 % of its shared deviations are near copies.
-- * shared false values: fields that audits (resi.audit_verdicts) found wrong in both miners'
--   claims with the same value (within the consensus tolerances), against the audited fields
--   where they differ. Shared true values prove nothing (every honest miner copies the same
--   website); a shared lie does. The score is
--   AccuCopy's log-likelihood ratio of dependence with its published defaults (error rate 0.2,
--   copy rate 0.8, 100 plausible false values): ln 400 per shared false value, ln 0.2 per
--   difference. The miner whose judged attestations came first is the source. Validations
--   count too (resi.validation_verdicts).
-- * wrong together: fields that judgements (audits, validations) found both miners wrong on,
--   with values apart. Identities that lie together, each its own lie (a price raised by an
--   amount of its own), share no false value, but they are wrong on the same fields of the same
--   listings far more often than independent scrapers, each wrong on each field as often as its
--   own judgements say, would be by chance. The score is the log-likelihood ratio of that count
--   k against its expectation under independence, λ = the sum over fields of (judgements that
--   found one wrong on it) × (that found the other wrong on it) / (judgements of both):
--   k ln(k/λ) - k + λ (for k > λ; else 0). Honest scrapers' errors coincide by chance (λ), and a
--   listing that changed before an audit makes the miners that scraped it earlier wrong alike,
--   with the same old value (a shared false value, not this). Honest errors also fall on the
--   same listings (a page every scraper misreads now and then): then every honest miner is
--   wrong together with every other more often than chance, a little per judgement, surely
--   over many. So λ gains the pair's baseline over the pair's judgements: the lesser of its
--   members' baselines, a miner's being how far beyond chance ((k - λ) per judgement of both)
--   it is wrong together with the partners that inform (wrong at most twice as often as it)
--   and do so least: the fewest of them, least first, that share a quarter of the judgements
--   its most judged partner shares (one, usually; several that each share little with it, when
--   it shares most with the members of its own ring), and at least 0. A ring's members are
--   wrong together beyond chance with each other only (with an honest miner, at chance: a
--   baseline of 0); honest miners misreading the same pages are wrong together alike with
--   every reliable miner.
-- A row stays when its claims age out: a ring does not become independent by waiting. Its
-- near-copies counts are those of the pass that found the pair (a dependent pair's deviations
-- are not compared again). An operator who knows better deletes the row and runs
-- resi.find_dependent_miners() again.
CREATE TABLE resi.miner_dependence (
    miner_hotkey   text NOT NULL,                       -- the dependent miner (its copies came later)
    source_hotkey  text NOT NULL,                       -- the miner whose claims it repeats
    shared_claims  integer NOT NULL DEFAULT 0 CHECK (shared_claims >= 0), -- most copied current claims seen at once
    miner_claims   integer NOT NULL DEFAULT 0 CHECK (miner_claims >= 0),  -- the dependent's current claims then
    shared_false   integer NOT NULL DEFAULT 0 CHECK (shared_false >= 0),  -- audited fields both got wrong alike
    audit_differences integer NOT NULL DEFAULT 0 CHECK (audit_differences >= 0), -- audited fields where they differ
    score          double precision NOT NULL DEFAULT 0, -- ln likelihood ratio of dependence from the audits
    wrong_together integer NOT NULL DEFAULT 0 CHECK (wrong_together >= 0), -- fields judgements found both wrong on, with values apart
    together_score double precision NOT NULL DEFAULT 0, -- ln likelihood ratio that they are wrong together more often than chance and their baseline say
    shared_deviations integer NOT NULL DEFAULT 0 CHECK (shared_deviations >= 0), -- deviations from the consensus both made alike
    near_copies    integer NOT NULL DEFAULT 0 CHECK (near_copies >= 0),   -- of those, scraped within ten minutes of each other
    first_seen_at  timestamptz NOT NULL DEFAULT now(),  -- when the dependence was first found
    updated_at     timestamptz NOT NULL DEFAULT now(),  -- when the evidence last changed
    PRIMARY KEY (miner_hotkey, source_hotkey),
    CHECK (miner_hotkey <> source_hotkey)
);
COMMENT ON TABLE resi.miner_dependence IS 'Pairs of miners whose reports are not independent, with the evidence (copied claims, near copies, false values they share that audits or validations found, judgements that found both wrong far more often than chance) and since when.';
CREATE INDEX miner_dependence_source_hotkey_idx ON resi.miner_dependence (source_hotkey);

-- ---------------------------------------------------------------------------------------------
-- Evidence: validations judged like audits
-- ---------------------------------------------------------------------------------------------
-- resi.record_validation says only pass or fail. A round of validations of a listing is the
-- reports validated in the same hour (each miner's last). Where two or more reports of a round
-- passed, the fields they all agree on (within the consensus tolerances) stand for what the
-- validator saw, and each report of the round is judged against them as an audit judges a claim:
-- `wrong` holds, for each of those fields where the report differs, the value it reported ('{}'
-- for a passed one: so a pair where one failed and the other passed counts a difference, as in an
-- audit). One passed report is not enough: a validator checks some fields, and a report right on
-- those may still be wrong on another. Rounds with fewer passed reports have no rows, and
-- validations recorded before 0.5.0 (which kept no verdict) are not read. resi.find_dependent_miners
-- reads these rows beside resi.audit_verdicts (resi.judged_pairs). Cost: the validated reports
-- only (a partial index of them, by time); per round with two or more passed, one
-- resi.claim_differences for each passed report but the first (resi.disputed_fields), and one
-- for each report (resi.validation_errors).
CREATE FUNCTION resi.disputed_fields(passed resi.miner_claims[])
    RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    disputed text[] := '{}';
    other    resi.miner_claims;
BEGIN
    -- (A loop, not a subquery over unnest's rows: on Citus the view below runs on the shards,
    -- and Citus deparses a whole-row reference to unnest's rows wrongly.)
    FOREACH other IN ARRAY passed[2:] LOOP
        disputed := disputed || resi.claim_differences(other, passed[1]);
    END LOOP;
    RETURN disputed;
END
$$;
COMMENT ON FUNCTION resi.disputed_fields(resi.miner_claims[]) IS
    'The fields on which a round''s passed reports do not all agree (within the consensus tolerances): those where one differs from the first; the others stand for what the validator saw.';

CREATE FUNCTION resi.validation_errors(report resi.miner_claims, seen resi.miner_claims, disputed text[])
    RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(f, to_jsonb(report) -> f), '{}')
              FROM unnest(resi.claim_differences(report, seen)) f
             WHERE f <> ALL (disputed));
END
$$;
COMMENT ON FUNCTION resi.validation_errors(resi.miner_claims, resi.miner_claims, text[]) IS
    'The fields, but the disputed ones, where a validated report differs from a passed report of its round (within the consensus tolerances), with its values (field -> value): how resi.validation_verdicts judges a report.';

-- The verdicts of the rounds validated in [since, until): as resi.validation_verdicts, of the
-- validations whose timestamp falls there (bounds on the hour take whole rounds). PL/pgSQL: Citus
-- plans no SQL-language function whose query over distributed tables takes parameters. STABLE,
-- STRICT (NULL bounds: no rows), PARALLEL SAFE; raises nothing of its own.
CREATE FUNCTION resi.validation_verdicts_between(since timestamptz, until timestamptz)
    RETURNS TABLE (zpid text, round timestamptz, miner_hotkey text, attestation_id bigint, passed boolean, wrong jsonb)
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH validated AS (
        SELECT DISTINCT ON (a.zpid, 2, a.miner_hotkey)
               a.zpid, date_bin('1 hour', a.validation_timestamp, timestamptz '2000-01-01 00:00+00') AS round,
               a.miner_hotkey, a.id, a.validation_passed AS passed,
               ROW(a.zpid, a.miner_hotkey, a.id, a.submission_timestamp, a.submission_timestamp, 1, a.uri, a.price,
                   a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status, a.days_on_zillow,
                   a.zip_code, a.city, a.state, a.latitude, a.longitude, a.signature)::resi.miner_claims AS claim
          FROM resi.miner_attestations a
         WHERE a.validation_passed IS NOT NULL
           AND a.validation_timestamp >= since AND a.validation_timestamp < until
         ORDER BY a.zpid, 2, a.miner_hotkey, a.id DESC
    ), passed AS (
        SELECT v.zpid, v.round, array_agg(v.claim ORDER BY v.id) AS claims
          FROM validated v
         WHERE v.passed
         GROUP BY 1, 2
        HAVING count(*) >= 2
    ), rounds AS (
        -- The first passed report, and the fields another passed report disputes: once a round.
        SELECT p.zpid, p.round, p.claims[1] AS seen, resi.disputed_fields(p.claims) AS disputed
          FROM passed p
    )
    SELECT v.zpid, v.round, v.miner_hotkey, v.id, v.passed, resi.validation_errors(v.claim, r.seen, r.disputed)
      FROM validated v
      JOIN rounds r ON r.zpid = v.zpid AND r.round = v.round;
END
$$;
COMMENT ON FUNCTION resi.validation_verdicts_between(timestamptz, timestamptz) IS
    'The rows of resi.validation_verdicts of the validations recorded in [since, until).';

CREATE VIEW resi.validation_verdicts AS
SELECT v.zpid, v.round, v.miner_hotkey, v.attestation_id, v.passed, v.wrong
  FROM resi.validation_verdicts_between('-infinity', 'infinity') v;
COMMENT ON VIEW resi.validation_verdicts IS 'Per round of validations of a listing (the same hour) with two or more passed reports: each validated report judged against the fields the passed ones agree on, as an audit judges a claim (wrong: field -> the reported value).';

-- ---------------------------------------------------------------------------------------------
-- Evidence: pairs of miners that judgements found wrong alike
-- ---------------------------------------------------------------------------------------------
-- Per pair of miners judged together by the judgements recorded in [since, until) (the audits
-- recorded then, resi.audits.recorded_at; the rounds of validations validated then, bounds on the
-- hour): the earliest judged attestation of each, and over every judgement and field either got
-- wrong, the shared false values (both wrong with values that agree within the consensus
-- tolerances) and the differences (a field only one got wrong, or both with values apart); and
-- how many judgements judged both (judged_together), per field how many of those found each
-- wrong on it (miner_wrong, other_wrong: {"field": count}, fields never wrong left out), and the
-- fields both got wrong with values apart, over all those judgements (wrong_apart: different
-- falsehoods about the same thing, as identities that lie together, each its own lie, tell).
-- Every pair judged together has a row; `miner_hotkey` < `other_hotkey`. Sums over two windows
-- add up to the sums over both (resi.add_field_counts for the counts per field). Cost: one
-- self-join per judgement of the miners it judged, one resi.claim_differences each way per pair
-- that both got a field wrong, one row per pair and field either got wrong (plus
-- resi.validation_verdicts_between's). STABLE, STRICT, PARALLEL SAFE; raises nothing of its own.
CREATE FUNCTION resi.judged_pairs(since timestamptz, until timestamptz)
    RETURNS TABLE (miner_hotkey text, other_hotkey text, first_attestation bigint, other_first_attestation bigint,
                   shared_false integer, differences integer, judged_together integer, miner_wrong jsonb,
                   other_wrong jsonb, wrong_apart integer)
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    audits bigint[];
BEGIN
    -- The window's audits first, by themselves: on Citus the audits are distributed and their
    -- verdicts a reference table, and a semi-join of the two inside the query below made its
    -- planner fail ("no relation entry for relid 10").
    SELECT coalesce(array_agg(a.id), '{}') INTO audits
      FROM resi.audits a
     WHERE a.recorded_at >= since AND a.recorded_at < until;
    RETURN QUERY
    WITH verdicts AS (
        SELECT v.audit_id::text AS judgement, v.miner_hotkey, v.attestation_id, v.wrong
          FROM resi.audit_verdicts v
         WHERE v.audit_id = ANY (audits)
        UNION ALL
        SELECT v.zpid || ' ' || v.round, v.miner_hotkey, v.attestation_id, v.wrong
          FROM resi.validation_verdicts_between(since, until) v
    )
    -- A field both got wrong is a shared false value when their values agree within the
    -- consensus tolerances (a ring that nudges its lies apart still tells one lie), else a
    -- difference, as is a field only one got wrong. Compared both ways: resi.claim_differences
    -- does not judge a field its second claim holds out of a listing's range (bathrooms outside
    -- 0..99.9), so one absurd value is a difference and only two are alike. Two wrong sets are
    -- compared only when both have one (most pairs of a judgement have a right claim).
    , judged AS MATERIALIZED (
        SELECT a.miner_hotkey AS m1, b.miner_hotkey AS m2, a.attestation_id AS first1, b.attestation_id AS first2,
               a.wrong AS wrong1, b.wrong AS wrong2, e.shared_false, e.differences, e.wrong_apart
          FROM verdicts a
          JOIN verdicts b ON b.judgement = a.judgement AND b.miner_hotkey > a.miner_hotkey
         CROSS JOIN LATERAL (SELECT CASE WHEN a.wrong <> '{}' AND b.wrong <> '{}' THEN
                                     resi.claim_differences(jsonb_populate_record(NULL::resi.miner_claims, a.wrong),
                                                            jsonb_populate_record(NULL::resi.miner_claims, b.wrong))
                                     || resi.claim_differences(jsonb_populate_record(NULL::resi.miner_claims, b.wrong),
                                                               jsonb_populate_record(NULL::resi.miner_claims, a.wrong))
                                     ELSE '{}' END AS apart
                              OFFSET 0) d
         CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE f.k1 = f.k2 AND f.k1 <> ALL (d.apart)) AS shared_false,
                                    count(*) FILTER (WHERE f.k1 IS DISTINCT FROM f.k2 OR f.k1 = ANY (d.apart)) AS differences,
                                    count(*) FILTER (WHERE f.k1 = f.k2 AND f.k1 = ANY (d.apart)) AS wrong_apart
                               FROM (SELECT x.key AS k1, y.key AS k2
                                       FROM jsonb_each(a.wrong) x FULL JOIN jsonb_each(b.wrong) y ON y.key = x.key) f) e
    ), fields AS (
        -- Per pair and field, the judgements that found each wrong on it.
        SELECT j.m1, j.m2, k.field, count(*) FILTER (WHERE w.of_first) AS wrong1,
               count(*) FILTER (WHERE NOT w.of_first) AS wrong2
          FROM judged j
         CROSS JOIN LATERAL (VALUES (true, j.wrong1), (false, j.wrong2)) w(of_first, wrong)
         CROSS JOIN LATERAL jsonb_object_keys(w.wrong) k(field)
         GROUP BY 1, 2, 3
    ), field_counts AS (
        SELECT c.m1, c.m2, jsonb_object_agg(c.field, c.wrong1) FILTER (WHERE c.wrong1 > 0) AS wrong1,
               jsonb_object_agg(c.field, c.wrong2) FILTER (WHERE c.wrong2 > 0) AS wrong2
          FROM fields c
         GROUP BY 1, 2
    )
    SELECT p.m1, p.m2, p.first1, p.first2, p.shared_false, p.differences, p.judged_together,
           coalesce(c.wrong1, '{}'), coalesce(c.wrong2, '{}'), p.wrong_apart
      FROM (SELECT j.m1, j.m2, min(j.first1) AS first1, min(j.first2) AS first2,
                   sum(j.shared_false)::integer AS shared_false, sum(j.differences)::integer AS differences,
                   count(*)::integer AS judged_together, sum(j.wrong_apart)::integer AS wrong_apart
              FROM judged j
             GROUP BY 1, 2) p
      LEFT JOIN field_counts c ON c.m1 = p.m1 AND c.m2 = p.m2;
END
$$;
COMMENT ON FUNCTION resi.judged_pairs(timestamptz, timestamptz) IS
    'Per pair of miners judged together by the audits and rounds of validations recorded in [since, until): their first judged attestations, the false values they share (within the consensus tolerances), the fields where they differ, the judgements that judged both, per field those that found each wrong, and the fields both got wrong with values apart.';

-- Two counts per field ({"field": count}, as resi.judged_pairs writes them) summed field by
-- field: how resi.find_dependent_miners adds a window's judgements to the settled ones. A loop,
-- not a subquery (which the planner would inline, and Citus deparse, into the statement that
-- calls it). IMMUTABLE, STRICT, PARALLEL SAFE; 22P02 for a count that is not an integer.
CREATE FUNCTION resi.add_field_counts(counts jsonb, more jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    total jsonb := counts;
    field text;
    n     text;
BEGIN
    FOR field, n IN SELECT * FROM jsonb_each_text(more) LOOP
        total := total || jsonb_build_object(field, coalesce((total ->> field)::integer, 0) + n::integer);
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION resi.add_field_counts(jsonb, jsonb) IS
    'Two counts per field ({"field": count}) summed field by field.';

-- How many fields two miners judged together `judged_together` times would both get wrong in
-- the same judgements if their errors were independent, each wrong on each field as often as
-- its judgements found it (miner_wrong, other_wrong: {"field": count}, as resi.judged_pairs
-- writes them): the sum over fields of miner_wrong * other_wrong / judged_together. 0 when
-- judged_together is 0. IMMUTABLE, STRICT, PARALLEL SAFE; 22P02 for a count that is not a number.
CREATE FUNCTION resi.wrong_together_by_chance(miner_wrong jsonb, other_wrong jsonb, judged_together integer)
    RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    chance double precision := 0;
    field  text;
    n      text;
BEGIN
    IF judged_together <= 0 THEN
        RETURN 0;
    END IF;
    FOR field, n IN SELECT * FROM jsonb_each_text(miner_wrong) LOOP
        chance := chance + n::double precision * coalesce((other_wrong ->> field)::double precision, 0);
    END LOOP;
    RETURN chance / judged_together;
END
$$;
COMMENT ON FUNCTION resi.wrong_together_by_chance(jsonb, jsonb, integer) IS
    'How many fields two miners judged together would both get wrong in the same judgements by chance: the sum over fields of the judgements that found each wrong on it, multiplied, over the judgements of both.';

-- The fields judgements found a miner wrong on, in all: the sum of its counts per field
-- ({"field": count}, as resi.judged_pairs writes them). resi.find_dependent_miners compares two
-- miners' errors over the judgements of both with it. A loop, as resi.add_field_counts.
-- IMMUTABLE, STRICT, PARALLEL SAFE; 22P02 for a count that is not an integer.
CREATE FUNCTION resi.wrong_fields_total(wrong jsonb)
    RETURNS integer
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    total integer := 0;
    n     text;
BEGIN
    FOR n IN SELECT value FROM jsonb_each_text(wrong) LOOP
        total := total + n::integer;
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION resi.wrong_fields_total(jsonb) IS
    'The fields judgements found a miner wrong on, in all: the sum of its counts per field ({"field": count}).';

-- The judgements recorded before `settled_until` are summed in resi.judged_pair_totals, once.
-- A pass moves it to the last hour boundary at least an hour past: a judgement settles one to
-- two hours after it was recorded (an audit; a round of validations, after its hour ended),
-- when no transaction still open could add to it (one open for over an hour would be missed),
-- and resi.find_dependent_miners judges only the judgements after. One row at most; none:
-- nothing summed yet.
CREATE TABLE resi.settled_judgements (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    -- On the hour (a bound off it would cut a round of validations in two).
    settled_until  timestamptz NOT NULL
                   CHECK (settled_until = date_bin('1 hour', settled_until, timestamptz '2000-01-01 00:00+00'))
);
COMMENT ON TABLE resi.settled_judgements IS 'Until when the judgements (audits, rounds of validations) are summed in resi.judged_pair_totals.';

-- resi.judged_pairs of the settled judgements, summed per pair. A pair keeps its sums when
-- the judged claims age out, as resi.miner_dependence keeps its rows. To sum again from what
-- the database holds: delete the rows of both tables and run resi.find_dependent_miners().
CREATE TABLE resi.judged_pair_totals (
    miner_hotkey             text NOT NULL,    -- the smaller hotkey of the pair
    other_hotkey             text NOT NULL,
    first_attestation        bigint NOT NULL,  -- the earliest judged attestation of miner_hotkey
    other_first_attestation  bigint NOT NULL,  -- and of other_hotkey
    shared_false             integer NOT NULL CHECK (shared_false >= 0),
    differences              integer NOT NULL CHECK (differences >= 0),
    judged_together          integer NOT NULL CHECK (judged_together >= 0),
    miner_wrong              jsonb NOT NULL,   -- per field, the judgements that found miner_hotkey wrong on it
    other_wrong              jsonb NOT NULL,   -- and other_hotkey
    wrong_apart              integer NOT NULL CHECK (wrong_apart >= 0),
    PRIMARY KEY (miner_hotkey, other_hotkey),
    CHECK (miner_hotkey < other_hotkey)
);
COMMENT ON TABLE resi.judged_pair_totals IS 'Per pair of miners, resi.judged_pairs summed over the settled judgements (resi.settled_judgements).';

-- ---------------------------------------------------------------------------------------------
-- Groups: the miners that vote as one
-- ---------------------------------------------------------------------------------------------
-- The connected components of resi.miner_dependence. A miner without a row is its own group.
-- A group is named after its member with the earliest claim (the likely source; ties: the
-- smallest hotkey). It votes with `trust`, what its members' evidence earns together
-- (resi.refresh_group_trust, after every regrouping and every loader pass).
CREATE TABLE resi.miner_groups (
    miner_hotkey  text PRIMARY KEY,
    group_hotkey  text NOT NULL,                         -- the group's name: one of its members
    since         timestamptz NOT NULL DEFAULT now(),    -- when the miner joined this group
    trust         double precision CHECK (trust BETWEEN 0 AND 1) -- the group's weight (resi.refresh_group_trust); NULL: not yet pooled
);
COMMENT ON TABLE resi.miner_groups IS 'Each miner that belongs to a group of dependent miners, and the group (named after a member); the group votes once in every consensus.';
CREATE INDEX miner_groups_group_hotkey_idx ON resi.miner_groups (group_hotkey);

-- pg_dump keeps the rows of these tables (an extension's tables are otherwise dumped empty).
SELECT pg_catalog.pg_extension_config_dump('resi.miner_dependence', '');
SELECT pg_catalog.pg_extension_config_dump('resi.miner_groups', '');
SELECT pg_catalog.pg_extension_config_dump('resi.settled_judgements', '');
SELECT pg_catalog.pg_extension_config_dump('resi.judged_pair_totals', '');

-- How many of the fields two claims both deviate on (from their listing's consensus) they agree
-- on: those in both `deviations` and `other_deviations` but not in `differing` (where the two
-- claims differ, resi.claim_differences). resi.find_dependent_miners counts near copies with it,
-- once per pair of deviating claims. A loop, not a subquery over unnest's rows (which Citus
-- deparses wrongly when it ships a query to the shards). IMMUTABLE, STRICT, PARALLEL SAFE;
-- never raises.
CREATE FUNCTION resi.fields_alike(deviations text[], other_deviations text[], differing text[])
    RETURNS integer
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    alike integer := 0;
    field text;
BEGIN
    FOREACH field IN ARRAY deviations LOOP
        IF field = ANY (other_deviations) AND field <> ALL (differing) THEN
            alike := alike + 1;
        END IF;
    END LOOP;
    RETURN alike;
END
$$;
COMMENT ON FUNCTION resi.fields_alike(text[], text[], text[]) IS
    'How many fields two claims both deviate on (from their listing''s consensus) with the same value: in both deviation lists, not among their differences.';

-- ---------------------------------------------------------------------------------------------
-- The periodic pass
-- ---------------------------------------------------------------------------------------------
-- Collect the evidence from the current claims and the audits, then regroup the miners. A pair
-- becomes dependent at min_shared copied claims (default 3: one shared signature could be a
-- freak of two scrapers' clocks; three rarely are) that are also at least 1 % of the claims of
-- the one with fewer (coincidences between independent scrapers stay far below that share,
-- however many listings they both report; a copier's copies are most of its claims), at min_near_copies near copies (default 20)
-- that are at least 80 % of their shared deviations, or at
-- min_shared_false audited false values in
-- common (default 3) with a score of at least ln 10^6 (13.8: the shared lies outweigh, a
-- millionfold, the differences that independent sources would show), or at min_shared_false
-- fields found wrong in both with values apart, with a score of at least ln 10^6 too (that
-- count a millionfold likelier than chance and the members' baselines). Listings whose miners changed group become stale (their
-- trust fingerprint names the group) and are recomputed by resi.refresh_stale_consensus; the
-- loader runs both after every pass. Cost: ANALYZE of the claims and the listings (sampled);
-- one scan of resi.miner_claims grouped by listing and signature (only copied claims go
-- further) and one count of the claims of the miners in candidate pairs; one resi.claim_errors
-- per claim on listings with three or more sources, then per listing the pairs of claims that
-- deviate on a common field, one comparison each; the groups over at most one row per pair of
-- miners; the audits' and validations' evidence is resi.judged_pairs of the judgements recorded
-- in the last hour or two only (the settled ones are summed once, in resi.judged_pair_totals),
-- and one read of those totals (per pair, resi.wrong_together_by_chance when its judgements
-- found both miners wrong somewhere, and resi.wrong_fields_total for each side found wrong
-- somewhere). Grows with the current claims, and per listing with the square
-- of its deviating claims (make bench row 9 measures it at a tenth of the network), not with
-- the audits and validations of the past. One pass at a time (a transaction-level advisory
-- lock); returns the miners whose group changed. Without JIT (the expressions are calls into
-- Rust: compiling them cost a second a pass) and with 64MB for its sorts (the deviating claims
-- stay in memory). Errors: 22023 for min_shared, min_shared_false or min_near_copies < 1.
CREATE FUNCTION resi.find_dependent_miners(
    min_shared integer DEFAULT 3, min_shared_false integer DEFAULT 3, min_near_copies integer DEFAULT 20)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    SET work_mem = '64MB'
AS $$
DECLARE
    changed      integer;
    hotkeys      text[];
    first_claims timestamptz[];
    miners       text[];
    groups       text[];
    -- now(), taken once and written through the inserted rows (excluded.*): on Citus an
    -- ON CONFLICT DO UPDATE of a reference table may call no stable function nor use a
    -- variable (the workers would get parameters of no type).
    at      timestamptz := now();
    settled timestamptz;  -- the judgements before are summed in resi.judged_pair_totals
    settle  timestamptz;  -- the judgements before settle on this pass
BEGIN
    IF min_shared < 1 OR min_shared_false < 1 OR min_near_copies < 1 THEN
        RAISE EXCEPTION 'resi.find_dependent_miners: thresholds must be >= 1, got %, % and %',
            min_shared, min_shared_false, min_near_copies
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('resi.find_dependent_miners', 0));
    -- The pass runs right after a load, usually before autovacuum has analyzed what came in:
    -- planned on the statistics of a table a fraction of its size, the self-join of deviating
    -- claims became a nested loop that took minutes instead of seconds. ANALYZE samples at most
    -- 30,000 rows a table (default_statistics_target 100), so this costs the same at any size.
    -- Only the columns the pass filters and joins on (resi.miner_attestations is only read by
    -- primary key).
    ANALYZE resi.miner_claims (zpid, miner_hotkey, signature), resi.listings (zpid, voting_groups);

    WITH copied AS (
        SELECT array_agg(c.miner_hotkey ORDER BY c.submission_timestamp, c.miner_hotkey) AS miners
          FROM resi.miner_claims c
         WHERE c.signature IS NOT NULL
         GROUP BY c.zpid, c.signature
        HAVING count(*) > 1
    ), pairs AS (
        SELECT copy.miner AS miner_hotkey, x.miners[1] AS source_hotkey, count(*)::integer AS shared_claims
          FROM copied x
         CROSS JOIN LATERAL unnest(x.miners[2:]) AS copy(miner)
         WHERE copy.miner <> x.miners[1]
         GROUP BY 1, 2
        HAVING count(*) >= min_shared
    ), claims AS (
        SELECT c.miner_hotkey, count(*)::integer AS claims
          FROM resi.miner_claims c
         WHERE c.miner_hotkey IN (SELECT p.miner_hotkey FROM pairs p UNION SELECT p.source_hotkey FROM pairs p)
         GROUP BY 1
    )
    INSERT INTO resi.miner_dependence AS d (miner_hotkey, source_hotkey, shared_claims, miner_claims, updated_at)
    SELECT p.miner_hotkey, p.source_hotkey, p.shared_claims, m.claims, at
      FROM pairs p
      JOIN claims m ON m.miner_hotkey = p.miner_hotkey
      JOIN claims s ON s.miner_hotkey = p.source_hotkey
     -- Chance: two independent scrapers' clocks can meet on a listing now and then, and at the
     -- network's size a fixed count of coincidences piles up between any two miners; copies
     -- are a share of what the smaller of the two claims.
     WHERE p.shared_claims >= 0.01 * least(m.claims, s.claims)
     ORDER BY 1, 2
    ON CONFLICT (miner_hotkey, source_hotkey) DO UPDATE SET
        shared_claims = excluded.shared_claims,
        miner_claims  = excluded.miner_claims,
        updated_at    = excluded.updated_at
     WHERE excluded.shared_claims > d.shared_claims;

    -- Near copies: each claim's fields that deviate from its listing's consensus, then per
    -- deviating claim the other claims on the listing that deviate on a field too, and of those
    -- fields the ones where the two claims agree (the same deviation), and how far apart the two
    -- were scraped, for the pairs not yet dependent. A deviation is counted once per pair (from
    -- the smaller hotkey's side). The deviating claims are computed once (one resi.claim_errors
    -- per claim); two claims are compared (resi.claim_differences, once a pair: resi.fields_alike
    -- counts the common deviations where they agree) only when they deviate on a common field.
    WITH judged AS MATERIALIZED (
        SELECT c.zpid, c.miner_hotkey, c.attestation_id, x.deviations, ROW(c.*)::resi.miner_claims AS claim
          FROM resi.miner_claims c
          JOIN resi.listings l ON l.zpid = c.zpid
         CROSS JOIN LATERAL (SELECT resi.claim_errors(
                 c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area, c.home_type, c.home_status,
                 c.days_on_zillow, c.zip_code, c.city, c.state, c.latitude, c.longitude, ROW(l.*)::resi.listings) AS deviations
                 OFFSET 0) x
         WHERE l.voting_groups >= 3
           -- A listing whose every weighted claim agrees has consensus_score 1: nothing to
           -- judge there (claims without weight, which do not sway the consensus, are skipped).
           AND l.consensus_score < 1
           AND cardinality(x.deviations) > 0
    ), deviating AS MATERIALIZED (
        SELECT j.*, a.scraped_at
          FROM judged j
          JOIN resi.miner_attestations a ON a.id = j.attestation_id
    ), dependent AS MATERIALIZED (
        -- The pairs already dependent (a row, whatever its evidence), smaller hotkey first.
        SELECT DISTINCT least(d.miner_hotkey, d.source_hotkey) AS m1, greatest(d.miner_hotkey, d.source_hotkey) AS m2
          FROM resi.miner_dependence d
    ), shared AS (
        SELECT least(a.miner_hotkey, b.miner_hotkey) AS m1, greatest(a.miner_hotkey, b.miner_hotkey) AS m2,
               CASE WHEN a.miner_hotkey < b.miner_hotkey THEN a.attestation_id ELSE b.attestation_id END AS first1,
               CASE WHEN a.miner_hotkey < b.miner_hotkey THEN b.attestation_id ELSE a.attestation_id END AS first2,
               abs(extract(epoch FROM a.scraped_at - b.scraped_at)) <= 600 AS near, y.fields
          FROM deviating a
          JOIN deviating b ON b.zpid = a.zpid AND b.miner_hotkey > a.miner_hotkey AND b.deviations && a.deviations
         -- (OFFSET 0: computed once a pair, however often the query reads it.)
         CROSS JOIN LATERAL (SELECT resi.fields_alike(a.deviations, b.deviations, resi.claim_differences(a.claim, b.claim))
                                    AS fields
                             OFFSET 0) y
         -- A pair already dependent is not compared again (its row keeps the evidence that made
         -- it): after a ring is found, its members' deviations, alike on every listing it
         -- targets, no longer cost a comparison per pair of them on every pass.
         WHERE NOT EXISTS (SELECT FROM dependent k WHERE k.m1 = a.miner_hotkey AND k.m2 = b.miner_hotkey)
    ), pairs AS (
        SELECT s.m1, s.m2, min(s.first1) AS first1, min(s.first2) AS first2,
               sum(s.fields)::integer AS shared, coalesce(sum(s.fields) FILTER (WHERE s.near), 0)::integer AS near
          FROM shared s
         WHERE s.fields > 0
         GROUP BY 1, 2
    )
    INSERT INTO resi.miner_dependence AS d (miner_hotkey, source_hotkey, shared_deviations, near_copies, updated_at)
    SELECT CASE WHEN p.first1 <= p.first2 THEN p.m2 ELSE p.m1 END,
           CASE WHEN p.first1 <= p.first2 THEN p.m1 ELSE p.m2 END,
           p.shared, p.near, at
      FROM pairs p
     WHERE p.near >= min_near_copies AND p.near >= 0.8 * p.shared
     ORDER BY 1, 2
    ON CONFLICT (miner_hotkey, source_hotkey) DO UPDATE SET
        shared_deviations = excluded.shared_deviations,
        near_copies       = excluded.near_copies,
        updated_at        = excluded.updated_at
     WHERE (d.shared_deviations, d.near_copies) IS DISTINCT FROM (excluded.shared_deviations, excluded.near_copies);

    -- Shared false values and fields wrong together: the pairs of miners that judgements
    -- (audits, rounds of validations) judged together, resi.judged_pairs. The settled ones are
    -- summed once, into resi.judged_pair_totals (up to an hour ago, on the hour:
    -- resi.settled_judgements); the later ones are judged afresh on every pass.
    SELECT coalesce(max(s.settled_until), '-infinity') INTO settled FROM resi.settled_judgements s;
    settle := date_bin('1 hour', at - interval '1 hour', timestamptz '2000-01-01 00:00+00');
    IF settle > settled THEN
        INSERT INTO resi.judged_pair_totals AS t
               (miner_hotkey, other_hotkey, first_attestation, other_first_attestation, shared_false, differences,
                judged_together, miner_wrong, other_wrong, wrong_apart)
        SELECT p.miner_hotkey, p.other_hotkey, p.first_attestation, p.other_first_attestation, p.shared_false,
               p.differences, p.judged_together, p.miner_wrong, p.other_wrong, p.wrong_apart
          FROM resi.judged_pairs(settled, settle) p
         ORDER BY 1, 2
        ON CONFLICT (miner_hotkey, other_hotkey) DO UPDATE SET
            first_attestation       = least(t.first_attestation, excluded.first_attestation),
            other_first_attestation = least(t.other_first_attestation, excluded.other_first_attestation),
            shared_false            = t.shared_false + excluded.shared_false,
            differences             = t.differences + excluded.differences,
            judged_together         = t.judged_together + excluded.judged_together,
            miner_wrong             = resi.add_field_counts(t.miner_wrong, excluded.miner_wrong),
            other_wrong             = resi.add_field_counts(t.other_wrong, excluded.other_wrong),
            wrong_apart             = t.wrong_apart + excluded.wrong_apart;
        INSERT INTO resi.settled_judgements AS s (one, settled_until) VALUES (true, settle)
        ON CONFLICT (one) DO UPDATE SET settled_until = excluded.settled_until;
        settled := settle;
    END IF;
    WITH evidence AS (
        -- The settled totals and the newer judgements, one row each at most per pair (the
        -- counts per field summed only where both have some: the newer judgements are few).
        SELECT coalesce(t.miner_hotkey, j.miner_hotkey) AS m1, coalesce(t.other_hotkey, j.other_hotkey) AS m2,
               least(t.first_attestation, j.first_attestation) AS first1,
               least(t.other_first_attestation, j.other_first_attestation) AS first2,
               coalesce(t.shared_false, 0) + coalesce(j.shared_false, 0) AS shared_false,
               coalesce(t.differences, 0) + coalesce(j.differences, 0) AS differences,
               coalesce(t.wrong_apart, 0) + coalesce(j.wrong_apart, 0) AS wrong_apart,
               coalesce(t.judged_together, 0) + coalesce(j.judged_together, 0) AS judged_together,
               CASE WHEN j.miner_wrong IS NULL THEN t.miner_wrong WHEN t.miner_wrong IS NULL THEN j.miner_wrong
                    ELSE resi.add_field_counts(t.miner_wrong, j.miner_wrong) END AS wrong1,
               CASE WHEN j.other_wrong IS NULL THEN t.other_wrong WHEN t.other_wrong IS NULL THEN j.other_wrong
                    ELSE resi.add_field_counts(t.other_wrong, j.other_wrong) END AS wrong2
          FROM resi.judged_pair_totals t
          FULL JOIN resi.judged_pairs(settled, 'infinity') j
            ON j.miner_hotkey = t.miner_hotkey AND j.other_hotkey = t.other_hotkey
    ), weighed AS MATERIALIZED (
        -- Every pair: what chance makes of its fields wrong together, and each side's wrong
        -- fields in all (over the same judgements, so comparable).
        SELECT p.m1, p.m2, p.wrong_apart, p.judged_together,
               CASE WHEN p.wrong1 = '{}' OR p.wrong2 = '{}' THEN 0
                    ELSE resi.wrong_together_by_chance(p.wrong1, p.wrong2, p.judged_together) END AS by_chance,
               CASE WHEN p.wrong1 = '{}' THEN 0 ELSE resi.wrong_fields_total(p.wrong1) END AS errors1,
               CASE WHEN p.wrong2 = '{}' THEN 0 ELSE resi.wrong_fields_total(p.wrong2) END AS errors2
          FROM evidence p
         WHERE p.judged_together > 0
    ), sides AS (
        -- Each pair from both sides: a miner, a partner, the fields they were wrong together
        -- beyond chance (the surplus, k - λ), over how many judgements of both, the most
        -- judgements the miner shares with any partner, and whether the partner informs (can
        -- say how often the miner is wrong together with anyone): wrong at most twice as often
        -- as the miner (a spammer, wrong on every field, meets everyone exactly by chance).
        SELECT x.miner, x.partner, x.surplus, x.judged_together,
               max(x.judged_together) OVER (PARTITION BY x.miner) AS most_judged, x.partner_errors <= 2 * x.errors AS informs
          FROM (SELECT w.m1 AS miner, w.m2 AS partner, w.wrong_apart - w.by_chance AS surplus, w.judged_together,
                       w.errors1 AS errors, w.errors2 AS partner_errors
                  FROM weighed w
                UNION ALL
                SELECT w.m2, w.m1, w.wrong_apart - w.by_chance, w.judged_together, w.errors2, w.errors1
                  FROM weighed w) x
    ), pooled AS (
        -- Per miner, its partners that inform, the least surplus per judgement first, pooled
        -- one after the other.
        SELECT s.miner, s.most_judged,
               sum(s.surplus) OVER w AS surplus, sum(s.judged_together) OVER w AS judged_together
          FROM sides s
         WHERE s.informs
        WINDOW w AS (PARTITION BY s.miner ORDER BY s.surplus / s.judged_together, s.partner ROWS UNBOUNDED PRECEDING)
    ), miner_baselines AS (
        -- A miner's baseline: the surplus per judgement of the fewest such partners that share
        -- a quarter of the judgements its most judged partner does (each a little, together
        -- enough: one such partner alone, usually), else of all of them; at least 0.
        SELECT DISTINCT ON (p.miner) p.miner, greatest(0, p.surplus / p.judged_together) AS excess
          FROM pooled p
         ORDER BY p.miner, 4 * p.judged_together < p.most_judged,
                  CASE WHEN 4 * p.judged_together >= p.most_judged THEN p.judged_together ELSE -p.judged_together END
    ), candidates AS (
        -- The pairs with enough evidence to weigh; for those with enough fields wrong together,
        -- what chance would make of them plus, over the pair's judgements, the lesser of its
        -- members' baselines (0 when neither has one).
        SELECT p.m1, p.m2, p.first1, p.first2, p.shared_false, p.differences, p.wrong_apart,
               CASE WHEN p.wrong_apart >= min_shared_false
                    THEN w.by_chance + w.judged_together * coalesce(least(a.excess, b.excess), 0) END AS by_chance
          FROM evidence p
          LEFT JOIN weighed w ON w.m1 = p.m1 AND w.m2 = p.m2
          LEFT JOIN miner_baselines a ON a.miner = p.m1
          LEFT JOIN miner_baselines b ON b.miner = p.m2
         WHERE p.shared_false >= min_shared_false OR p.wrong_apart >= min_shared_false
    ), scored AS (
        SELECT CASE WHEN p.first1 <= p.first2 THEN p.m2 ELSE p.m1 END AS miner_hotkey,
               CASE WHEN p.first1 <= p.first2 THEN p.m1 ELSE p.m2 END AS source_hotkey,
               p.shared_false, p.differences, p.wrong_apart,
               p.shared_false * ln(400) + p.differences * ln(0.2) AS score,
               -- k ln(k/λ) - k + λ; wrong_apart > 0 makes λ > 0.
               CASE WHEN p.wrong_apart > p.by_chance
                    THEN p.wrong_apart * ln(p.wrong_apart / p.by_chance) - p.wrong_apart + p.by_chance
                    ELSE 0 END AS together_score
          FROM candidates p
    )
    INSERT INTO resi.miner_dependence AS d (miner_hotkey, source_hotkey, shared_false, audit_differences, score,
                                            wrong_together, together_score, updated_at)
    SELECT s.miner_hotkey, s.source_hotkey, s.shared_false, s.differences, s.score, s.wrong_apart, s.together_score, at
      FROM scored s
     WHERE (s.shared_false >= min_shared_false AND s.score >= ln(1e6))
        OR (s.wrong_apart >= min_shared_false AND s.together_score >= ln(1e6))
     ORDER BY 1, 2
    ON CONFLICT (miner_hotkey, source_hotkey) DO UPDATE SET
        shared_false      = excluded.shared_false,
        audit_differences = excluded.audit_differences,
        score             = excluded.score,
        wrong_together    = excluded.wrong_together,
        together_score    = excluded.together_score,
        updated_at        = excluded.updated_at
     WHERE (d.shared_false, d.audit_differences, d.wrong_together)
           IS DISTINCT FROM (excluded.shared_false, excluded.audit_differences, excluded.wrong_together);

    -- Groups: every miner reaches the members of its component; the name is the member with the
    -- earliest claim. Three statements, with arrays between them (on Citus a recursive query
    -- may read only reference tables, and not in a statement that writes): the first claims,
    -- the groups found, the changes.
    SELECT coalesce(array_agg(f.miner_hotkey), '{}'), coalesce(array_agg(f.first_claim), '{}')
      INTO hotkeys, first_claims
      FROM (SELECT c.miner_hotkey, min(c.first_seen_at) AS first_claim
              FROM resi.miner_claims c
             WHERE c.miner_hotkey IN (SELECT d.miner_hotkey FROM resi.miner_dependence d
                                      UNION SELECT d.source_hotkey FROM resi.miner_dependence d)
             GROUP BY 1) f;
    WITH RECURSIVE edges AS (
        SELECT d.miner_hotkey AS a, d.source_hotkey AS b FROM resi.miner_dependence d
        UNION
        SELECT d.source_hotkey, d.miner_hotkey FROM resi.miner_dependence d
    ), reach (miner_hotkey, member) AS (
        SELECT e.a, e.a FROM edges e
        UNION
        SELECT r.miner_hotkey, e.b FROM reach r JOIN edges e ON e.a = r.member
    ), found AS (
        SELECT DISTINCT ON (r.miner_hotkey) r.miner_hotkey, r.member AS group_hotkey
          FROM reach r LEFT JOIN unnest(hotkeys, first_claims) AS m(member, first_claim) ON m.member = r.member
         ORDER BY r.miner_hotkey, m.first_claim NULLS LAST, r.member
    )
    SELECT coalesce(array_agg(f.miner_hotkey ORDER BY f.miner_hotkey), '{}'), coalesce(array_agg(f.group_hotkey ORDER BY f.miner_hotkey), '{}')
      INTO miners, groups
      FROM found f;
    -- (CTEs and arrays, no temporary table: a caller's temporary objects cannot take part.)
    WITH found AS (
        SELECT * FROM unnest(miners, groups) AS f(miner_hotkey, group_hotkey)
    ), gone AS (
        DELETE FROM resi.miner_groups g
         WHERE NOT EXISTS (SELECT FROM found f WHERE f.miner_hotkey = g.miner_hotkey)
        RETURNING 1
    ), moved AS (
        INSERT INTO resi.miner_groups AS g (miner_hotkey, group_hotkey, since)
        SELECT f.miner_hotkey, f.group_hotkey, at FROM found f ORDER BY 1
        ON CONFLICT (miner_hotkey) DO UPDATE SET group_hotkey = excluded.group_hotkey, since = excluded.since
         WHERE g.group_hotkey <> excluded.group_hotkey
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM moved) INTO changed;
    PERFORM resi.refresh_group_trust();
    RETURN changed;
END
$$;
COMMENT ON FUNCTION resi.find_dependent_miners(integer, integer, integer) IS
    'Collect the evidence of dependent miners (copied claims, near copies of deviations from the consensus, false values in common that audits or validations found, judgements that found both wrong far more often than chance) into resi.miner_dependence and regroup the miners in resi.miner_groups; returns the miners whose group changed.';

-- The one-line promises of this file's functions defined in Rust.
COMMENT ON FUNCTION resi.claim_signature(text, timestamptz, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision) IS
    '64 bits of SHA-256 over a report''s zpid, scrape time and every field: two reports share it exactly when one is a byte copy of the other.';
COMMENT ON FUNCTION resi.claim_differences(resi.miner_claims, resi.miner_claims) IS
    'The fields where two claims disagree (within the consensus tolerances), in column order; a field missing on either side is not judged.';
