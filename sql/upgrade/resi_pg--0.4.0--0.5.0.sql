-- resi_pg 0.4.0 → 0.5.0 (drafted with scripts/upgrade-delta 0.4.0; docs/development.md).
--
-- * resi.consensus_agreement is computed in Rust, over the listing's field table
--   (resi_core/src/fields.rs) that the consensus reads too: same signature, same results (the
--   integer tolerances are now exact without numeric arithmetic, so a price difference beyond
--   bigint no longer raises). CREATE OR REPLACE keeps its comment; ROWS 1 as before.
-- * One vote per independent source: attestations and claims carry resi.claim_signature (byte
--   copies share it); resi.miner_dependence and resi.miner_groups with
--   resi.find_dependent_miners() (the loader runs it after every pass; resi_loader and
--   resi_admin may call it: run resi.setup_roles() again after upgrading); resi.listing_consensus
--   lets each group, and each set of byte-identical claims, vote once; resi.listings.voting_groups;
--   resi.weighted_claims, the one definition of a claim's weight and its fingerprint.
--   Function bodies below are those of the sql/ files of 0.5.0 (CREATE OR REPLACE keeps
--   comments and dependants).
-- * Audits: resi.audits, resi.audit_verdicts, resi.record_audit() (granted to resi_validator),
--   resi.claim_errors(), resi.claim_differences(); miner_trust.audited_fields/audit_errors; listings.audited_at.
-- * resi.discover_truth(object, property, source, value, source_group): truth discovery for any
--   claims (resi_core::truth).
-- * Trust is earned (resi.earned_trust, resi_core::trust): a lower bound of the share of a
--   miner's claims audits found right, agreement with other independent sources as weak and
--   capped evidence; resi.next_trust and resi.submission_trust_quality are gone. New
--   miner_trust columns audited_claims, wrong_claims, corroborated_rows, agreeing_rows;
--   resi.earn_trust(), resi.propose_audits(), resi.dependent_groups; resi.miner_status names the
--   group and its evidence; a listing with one independent source has consensus_score <= 0.5.
-- * COMMENT ON for the functions that had none.
-- * resi.check_miner_rate_limit is a C (Rust) function: same signature, contract and errors.
-- * resi.distribute(shard_count): distributes the tables on a Citus coordinator (issue 18);
--   resi.prepare_workers() prepares a worker added later.
-- * resi.distributed_consensus_mode and resi.distributed_consensus_median: the consensus
--   aggregates with a state of a concrete type (resi.consensus_mode_tally,
--   resi.consensus_median_tally), which Citus splits over its workers.
\echo Use "ALTER EXTENSION resi_pg UPDATE TO '0.5.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION resi."consensus_agreement"(
	"uri" TEXT,
	"price" bigint,
	"address" TEXT,
	"bedrooms" INT,
	"bathrooms" double precision,
	"living_area" INT,
	"home_type" TEXT,
	"home_status" TEXT,
	"days_on_zillow" INT,
	"zip_code" TEXT,
	"city" TEXT,
	"state" TEXT,
	"latitude" double precision,
	"longitude" double precision,
	"consensus" resi.listings
) RETURNS TABLE (
	"compared" INT,
	"agreed" INT
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_agreement_wrapper';
ALTER FUNCTION resi.consensus_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings) ROWS 1;

-- 0.5.0: the quality report from a submission's columns (sql/admission.sql), what the fold calls.
CREATE FUNCTION resi.submission_quality_of(
	"rows" bigint,
	"zpids" TEXT[],
	"prices" double precision[],
	"zip_codes" TEXT[]
) RETURNS resi.quality_report
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'submission_quality_of_wrapper';
COMMENT ON FUNCTION resi.submission_quality_of(bigint, text[], double precision[], text[]) IS
    'resi.submission_quality of a submission given as columns: its row count and the arrays of its zpids, prices and zip codes (any order, NULLs ignored). NULL when rows is NULL or 0.';

-- One-line promises (COMMENT ON) of functions that had none; the same statements are in the
-- concept files of sql/.
COMMENT ON FUNCTION resi.listing_hash(text) IS
    'SHA-256 hex of the canonical form of a JSON text (keys sorted, null members dropped, strings trimmed and NFC, numbers as shortest round-trip doubles). Errors: not JSON or nested deeper than 128 levels 22P02; a number outside the double range 22003.';
COMMENT ON FUNCTION resi.canonical_listing(text) IS
    'The canonical JSON text of a JSON text that resi.listing_hash hashes; errors as resi.listing_hash.';
COMMENT ON FUNCTION resi.sha256_hex(bytea) IS
    'Lower-case hex SHA-256 of the bytes.';
COMMENT ON FUNCTION resi.sha256_hex(text) IS
    'Lower-case hex SHA-256 of the text''s UTF-8 bytes.';
COMMENT ON FUNCTION resi.initial_trust() IS
    'The trust of a miner not yet in resi.miner_trust: the resi.initial_trust setting (default 0.25).';
COMMENT ON FUNCTION resi.rate_limit_for(double precision) IS
    'Submissions (uploaded objects) a miner of this trust may make per UTC day, from the resi.rate_limit_tiers setting (default 0.8:10000, 0.6:5000, 0.4:1000, 0:100).';
COMMENT ON FUNCTION resi.ingest_settings() IS
    'The ingest and penalty settings in effect: resi.max_submission_rows, resi.over_limit_strike_attempts, resi.strikes_per_ban, resi.ban_duration and resi.max_ban_duration.';
COMMENT ON FUNCTION resi.parse_s3_key(text) IS
    'The parts of an upload''s object key (hotkey, job id or epoch and zip code, file time, row count, kind); NULL for a key that does not follow the upload layout. Never raises.';
COMMENT ON FUNCTION resi.clear_staging() IS
    'Empty the staging table (its rows were folded when they were inserted); false, doing nothing, when another session is writing to it.';
COMMENT ON FUNCTION resi.rebuild_claims() IS
    'Rebuild resi.miner_claims from resi.miner_attestations (after editing attestations by hand), then refresh every listing; returns the listings refreshed.';
COMMENT ON FUNCTION resi.fold_staged_listings() IS
    'Statement trigger of resi.staging_listings: folds a statement''s rows into attestations, claims and listings, computes each touched listing''s consensus once, then judges every submission (resi.judge_submissions).';
COMMENT ON FUNCTION resi.database_budget_bytes() IS
    'The resi.database_budget setting in bytes (what resi.database_budget() compares sizes with).';
COMMENT ON FUNCTION resi.tile_bounds(integer, integer, integer) IS
    'The WGS84 area of an XYZ tile; a point is in the tile when min <= coordinate < max. A zoom outside 0..30 or x, y outside 0..2^z-1 raise 22023.';
COMMENT ON FUNCTION resi.archive_batch_begin(text, date, timestamp with time zone) IS
    'Start an archive batch of listings or attestations of one month (resi-loader archive); returns its id and object key.';
COMMENT ON FUNCTION resi.archive_batch_verified(bigint, bigint, text) IS
    'Record that an archive batch''s file was written and read back: its rows and the SHA-256 of its bytes.';
COMMENT ON FUNCTION resi.archive_batch_discard(bigint) IS
    'Drop an archive batch still being written that found no rows (nothing was written for it); false when no such batch in status writing exists.';

-- 0.5.0: resi.archive_batch_delete locks the listings as resi.refresh_consensus does (on a
-- distributed database, the one advisory lock every refresh takes there).
CREATE OR REPLACE FUNCTION resi.archive_batch_delete(batch bigint, zpids text[], attestation_ids bigint[]) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b       resi.archive_batches;
    wanted  bigint;
    deleted bigint;
BEGIN
    SELECT * INTO b FROM resi.archive_batches WHERE id = batch FOR UPDATE;
    IF NOT FOUND OR b.status <> 'verified' THEN
        RAISE EXCEPTION 'resi.archive_batch_delete: batch % is not verified (%)', batch, coalesce(b.status, 'missing');
    END IF;
    IF b.kind = 'listings' THEN
        wanted := coalesce(cardinality(zpids), 0);
        PERFORM resi.lock_listings(coalesce(zpids, '{}'));
        SELECT count(*) INTO deleted FROM resi.archivable_listings(b.cutoff) a WHERE a.zpid = ANY (zpids);
        IF deleted <> wanted OR wanted <> b.rows THEN
            UPDATE resi.archive_batches SET status = 'writing', rows = NULL, sha256 = NULL WHERE id = batch;
            RETURN NULL;
        END IF;
        DELETE FROM resi.miner_claims c WHERE c.zpid = ANY (zpids);
        DELETE FROM resi.listings l WHERE l.zpid = ANY (zpids);
    ELSE
        wanted := coalesce(cardinality(attestation_ids), 0);
        SELECT count(*) INTO deleted FROM resi.archivable_attestations(b.cutoff) a WHERE a.id = ANY (attestation_ids);
        IF deleted <> wanted OR wanted <> b.rows THEN
            UPDATE resi.archive_batches SET status = 'writing', rows = NULL, sha256 = NULL WHERE id = batch;
            RETURN NULL;
        END IF;
        DELETE FROM resi.miner_attestations a WHERE a.id = ANY (attestation_ids);
    END IF;
    UPDATE resi.archive_batches SET status = 'deleted', finished_at = clock_timestamp() WHERE id = batch;
    RETURN deleted;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- One vote per independent source, and audits (issue 14)
-- ---------------------------------------------------------------------------------------------
-- Every attestation and claim carries its signature (resi.claim_signature): byte copies share
-- it. Existing rows keep NULL (they are not told apart; new uploads are).
ALTER TABLE resi.miner_attestations ADD COLUMN signature bigint;
ALTER TABLE resi.miner_claims ADD COLUMN signature bigint;
-- The verdict of each validation from now on (resi.record_validation): failed reports that
-- repeat each other's values are evidence of dependence. Earlier validations keep NULL.
ALTER TABLE resi.miner_attestations ADD COLUMN validation_passed boolean;
CREATE INDEX miner_attestations_validated_idx ON resi.miner_attestations (validation_timestamp)
    WHERE validation_passed IS NOT NULL;
ALTER TABLE resi.listings ADD COLUMN voting_groups integer NOT NULL DEFAULT 0 CHECK (voting_groups >= 0);
ALTER TABLE resi.listings ADD COLUMN audited_at timestamptz;
ALTER TABLE resi.miner_trust ADD COLUMN audited_fields bigint NOT NULL DEFAULT 0 CHECK (audited_fields >= 0);
ALTER TABLE resi.miner_trust ADD COLUMN audit_errors bigint NOT NULL DEFAULT 0
    CHECK (audit_errors >= 0 AND audit_errors <= audited_fields);
-- Trust earned from audits: the evidence, and the miner's group in resi.miner_status.
ALTER TABLE resi.miner_trust ADD COLUMN audited_claims bigint NOT NULL DEFAULT 0 CHECK (audited_claims >= 0);
ALTER TABLE resi.miner_trust ADD COLUMN wrong_claims bigint NOT NULL DEFAULT 0
    CHECK (wrong_claims >= 0 AND wrong_claims <= audited_claims);
ALTER TABLE resi.miner_trust ADD COLUMN corroborated_rows double precision NOT NULL DEFAULT 0
    CHECK (corroborated_rows >= 0);
ALTER TABLE resi.miner_trust ADD COLUMN agreeing_rows double precision NOT NULL DEFAULT 0
    CHECK (agreeing_rows >= 0 AND agreeing_rows <= corroborated_rows);
COMMENT ON TABLE resi.miner_trust IS 'Per miner: trust score (consensus weight) and the evidence it is earned from, submission counters, rate-limit and ban state.';
COMMENT ON COLUMN resi.miner_trust.trust_score IS 'resi.earned_trust(this row): recomputed whenever the miner''s evidence changes (a folded submission, an audit, a validation).';
COMMENT ON COLUMN resi.miner_trust.accuracy_score IS 'fields_agreed / fields_compared: the share of the miner''s field values that agreed with the resulting consensus, on listings another independent source voted on.';
ALTER TYPE resi.miner_status ADD ATTRIBUTE audited_claims bigint;
ALTER TYPE resi.miner_status ADD ATTRIBUTE wrong_claims bigint;
ALTER TYPE resi.miner_status ADD ATTRIBUTE group_hotkey text;
ALTER TYPE resi.miner_status ADD ATTRIBUTE group_members integer;
ALTER TYPE resi.miner_status ADD ATTRIBUTE dependence text;
-- Trust is earned from evidence (resi.earned_trust) instead of moved step by step.
DROP FUNCTION resi.next_trust(double precision, double precision, boolean, boolean);
DROP FUNCTION resi.submission_trust_quality(double precision, bigint, bigint, bigint);
-- Existing listings: every voting miner was its own source.
UPDATE resi.listings SET voting_groups = voting_miners WHERE voting_groups <> voting_miners;

-- New Rust functions (as pgrx generates them for the install script).
CREATE FUNCTION resi."claim_signature"(
	"zpid" TEXT, /* Option < & str > */
	"scraped_at" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"uri" TEXT, /* Option < & str > */
	"price" bigint, /* Option < i64 > */
	"address" TEXT, /* Option < & str > */
	"bedrooms" INT, /* Option < i32 > */
	"bathrooms" double precision, /* Option < f64 > */
	"living_area" INT, /* Option < i32 > */
	"home_type" TEXT, /* Option < & str > */
	"home_status" TEXT, /* Option < & str > */
	"days_on_zillow" INT, /* Option < i32 > */
	"zip_code" TEXT, /* Option < & str > */
	"city" TEXT, /* Option < & str > */
	"state" TEXT, /* Option < & str > */
	"latitude" double precision, /* Option < f64 > */
	"longitude" double precision /* Option < f64 > */
) RETURNS bigint /* Option < i64 > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'claim_signature_wrapper';

CREATE FUNCTION resi."claim_errors"(
	"uri" TEXT, /* Option < & str > */
	"price" bigint, /* Option < i64 > */
	"address" TEXT, /* Option < & str > */
	"bedrooms" INT, /* Option < i32 > */
	"bathrooms" double precision, /* Option < f64 > */
	"living_area" INT, /* Option < i32 > */
	"home_type" TEXT, /* Option < & str > */
	"home_status" TEXT, /* Option < & str > */
	"days_on_zillow" INT, /* Option < i32 > */
	"zip_code" TEXT, /* Option < & str > */
	"city" TEXT, /* Option < & str > */
	"state" TEXT, /* Option < & str > */
	"latitude" double precision, /* Option < f64 > */
	"longitude" double precision, /* Option < f64 > */
	"audited" resi.listings /* Option < :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox ::
AllocatedByRust > > */
) RETURNS TEXT[] /* :: std :: option :: Option < Vec < & '_ str > > */
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'claim_errors_wrapper';

CREATE FUNCTION resi."claim_differences"(
	"claim" resi.miner_claims,
	"other" resi.miner_claims
) RETURNS TEXT[]
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'claim_differences_wrapper';

-- sql/independence.sql 0.5.0, whole (all of it is new).
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
-- reads these rows beside resi.audit_verdicts. Cost: the validated reports only (a partial index
-- of them); per round with two or more passed, one resi.claim_differences for each passed report
-- but the first (resi.disputed_fields), and one for each report (resi.validation_errors).
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
-- tolerances) and the differences (a field only one got wrong, or both with values apart). Pairs
-- with neither have no row. `miner_hotkey` < `other_hotkey`. Sums over two windows add up to the
-- sums over both. Cost: one self-join per judgement of the miners it judged, one
-- resi.claim_differences each way per pair that both got a field wrong (plus
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
-- smallest hotkey).
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
-- millionfold, the differences that independent sources would show). Listings whose miners changed group become stale (their
-- trust fingerprint names the group) and are recomputed by resi.refresh_stale_consensus; the
-- loader runs both after every pass. Cost: ANALYZE of the claims and the listings (sampled);
-- one scan of resi.miner_claims grouped by listing and signature (only copied claims go
-- further) and one count of the claims of the miners in candidate pairs; one resi.claim_errors
-- per claim on listings with three or more sources, then per listing the pairs of claims that
-- deviate on a common field, one comparison each; the groups over at most one row per pair of
-- miners; the audits' and validations' evidence is one self-join per judgement of the miners
-- it judged (resi.audit_verdicts per audit, resi.validation_verdicts per round of validations),
-- with one resi.claim_differences per pair that both got a field wrong. Grows with the current claims, and per listing with the square of
-- its deviating claims (make bench row 9 measures it at a tenth of the network). One pass at
-- a time (a transaction-level advisory lock); returns the miners whose group changed. Without JIT (the expressions are calls into Rust: compiling them
-- cost a second a pass) and with 64MB for its sorts (the deviating claims stay in memory).
-- Errors: 22023 for min_shared or min_shared_false < 1.
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
COMMENT ON FUNCTION resi.claim_signature(text, timestamptz, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision) IS
    '64 bits of SHA-256 over a report''s zpid, scrape time and every field: two reports share it exactly when one is a byte copy of the other.';
COMMENT ON FUNCTION resi.claim_differences(resi.miner_claims, resi.miner_claims) IS
    'The fields where two claims disagree (within the consensus tolerances), in column order; a field missing on either side is not judged.';
COMMENT ON FUNCTION resi.claim_errors(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings) IS
    'The fields where a report disagrees with an audited listing (within the consensus tolerances), in column order; NULL for a NULL listing.';

-- The new part of sql/audit.sql 0.5.0.
-- ---------------------------------------------------------------------------------------------
-- Audits: a validator's own look at a listing, judging every miner's claim on it
-- ---------------------------------------------------------------------------------------------
-- What the validator saw: the listing's fields by name (any subset of the 14) and when.
CREATE TABLE resi.audits (
    id           bigserial PRIMARY KEY,
    zpid         text NOT NULL,
    listing      jsonb NOT NULL CHECK (jsonb_typeof(listing) = 'object'),
    seen_at      timestamptz NOT NULL,
    validator    text NOT NULL DEFAULT session_user,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE resi.audits IS 'What validators saw of listings (fields by name, when, who): each audit judged every miner''s claim on the listing (resi.audit_verdicts).';
CREATE INDEX audits_zpid_idx ON resi.audits (zpid, seen_at);
CREATE INDEX audits_recorded_at_idx ON resi.audits (recorded_at);

-- Each claim an audit judged: how many fields could be compared, and the ones the claim got
-- wrong with the value it claimed.
CREATE TABLE resi.audit_verdicts (
    audit_id         bigint NOT NULL REFERENCES resi.audits ON DELETE CASCADE,
    miner_hotkey     text NOT NULL,
    attestation_id   bigint NOT NULL,                  -- the attestation behind the judged claim
    fields_compared  integer NOT NULL CHECK (fields_compared >= 0),
    wrong            jsonb NOT NULL DEFAULT '{}',      -- field -> the claimed value, for each wrong field
    PRIMARY KEY (audit_id, miner_hotkey)
);
COMMENT ON TABLE resi.audit_verdicts IS 'Per audit and miner: the fields of its claim that could be compared, and those it got wrong with the claimed value.';
CREATE INDEX audit_verdicts_miner_hotkey_idx ON resi.audit_verdicts (miner_hotkey);

-- pg_dump keeps the rows of these tables (an extension's tables are otherwise dumped empty).
SELECT pg_catalog.pg_extension_config_dump('resi.audits', '');
SELECT pg_catalog.pg_extension_config_dump('resi.audits_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('resi.audit_verdicts', '');

-- Record what a validator saw of a listing (`listing`: its fields by name, as in resi.listings;
-- other keys are ignored) at `seen_at`, and judge every miner's current claim on it field by
-- field within the consensus tolerances (resi.claim_errors): each miner's audited_fields and
-- audit_errors count it, resi.audit_verdicts keeps the wrong values (shared wrong values are
-- evidence of dependence for resi.find_dependent_miners). Until a miner with weight (trust > 0)
-- reports the listing again after `seen_at`, the audited values are the listing's values
-- (resi.listing_consensus; resi.listings.audited_at says so); the listing is refreshed now. Trust is not moved here (it
-- moves with submissions and resi.record_validation). Returns the claims judged (0 for a
-- listing nobody claims: the audit is kept).
-- Errors: 22004 for a NULL argument; 22023 when `listing` is not a JSON object; 22P02 and the
-- like when a value does not fit its column.
CREATE FUNCTION resi.record_audit(zpid text, listing jsonb, seen_at timestamptz DEFAULT now())
    RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    audited  resi.listings;
    audit    bigint;
    judged   integer;
    miners   text[];
BEGIN
    IF zpid IS NULL OR listing IS NULL OR seen_at IS NULL THEN
        RAISE EXCEPTION 'resi.record_audit: zpid, listing and seen_at are required'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(listing) <> 'object' THEN
        RAISE EXCEPTION 'resi.record_audit: listing must be a JSON object of fields, got %', jsonb_typeof(listing)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    audited := jsonb_populate_record(NULL::resi.listings, listing);
    audited.zpid := record_audit.zpid;
    INSERT INTO resi.audits (zpid, listing, seen_at) VALUES (record_audit.zpid, listing, seen_at)
    RETURNING id INTO audit;

    WITH judged AS (
        INSERT INTO resi.audit_verdicts (audit_id, miner_hotkey, attestation_id, fields_compared, wrong)
        SELECT audit, c.miner_hotkey, c.attestation_id, v.compared,
               coalesce((SELECT jsonb_object_agg(f, to_jsonb(c) -> f) FROM unnest(e.errors) f), '{}')
          FROM resi.miner_claims c
         CROSS JOIN LATERAL resi.consensus_agreement(
                 c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area, c.home_type, c.home_status,
                 c.days_on_zillow, c.zip_code, c.city, c.state, c.latitude, c.longitude, audited) v
         CROSS JOIN LATERAL (SELECT resi.claim_errors(
                 c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area, c.home_type, c.home_status,
                 c.days_on_zillow, c.zip_code, c.city, c.state, c.latitude, c.longitude, audited) AS errors) e
         WHERE c.zpid = record_audit.zpid
         ORDER BY c.miner_hotkey
        RETURNING miner_hotkey, fields_compared, wrong
    ), counted AS (
        UPDATE resi.miner_trust t SET
            audited_fields = t.audited_fields + j.fields_compared,
            audit_errors   = t.audit_errors + (SELECT count(*) FROM jsonb_object_keys(j.wrong)),
            audited_claims = t.audited_claims + (j.fields_compared > 0)::integer,
            wrong_claims   = t.wrong_claims + (j.wrong <> '{}')::integer,
            updated_at     = now()
          FROM judged j
         WHERE t.miner_hotkey = j.miner_hotkey
        RETURNING t.miner_hotkey
    )
    SELECT count(*), array_agg(c.miner_hotkey) INTO judged, miners FROM counted c;
    PERFORM resi.earn_trust(miners);
    PERFORM resi.refresh_consensus(ARRAY[record_audit.zpid]);
    RETURN judged;
END
$$;
COMMENT ON FUNCTION resi.record_audit(text, jsonb, timestamptz) IS
    'Record what a validator saw of a listing and judge every miner''s current claim on it field by field; the audited values are the listing''s until a miner with weight reports it again. Returns the claims judged.';

-- Older claims give way to fresher ones (resi.claim_recency, setting resi.claim_half_life).
CREATE FUNCTION resi."claim_half_life_seconds"() RETURNS double precision /* f64 */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'claim_half_life_seconds_wrapper';
COMMENT ON FUNCTION resi.claim_half_life_seconds() IS
    'The resi.claim_half_life setting in seconds (0: claims do not age); what resi.claim_recency reads.';
CREATE FUNCTION resi."claim_recency"("age" interval) RETURNS double precision /* f64 */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'claim_recency_wrapper';
COMMENT ON FUNCTION resi.claim_recency(interval) IS
    'A claim''s share of its weight by how much older its upload is than the listing''s newest claim: 0.5 ^ (age / resi.claim_half_life), at least 1/8; 1 when the setting is 0 or age <= 0.';

-- What the fold counts as a miner's agreement (resi.corroborated_fields, resi.corroborated_agreement).
CREATE FUNCTION resi.corroborated_fields(field_consensus jsonb) RETURNS text[]
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'corroborated_fields_wrapper';
COMMENT ON FUNCTION resi.corroborated_fields(jsonb) IS
    'The fields of a listing''s field_consensus whose consensus value two or more independent sources support.';
CREATE FUNCTION resi."corroborated_agreement"(
	"uri" TEXT,
	"price" bigint,
	"address" TEXT,
	"bedrooms" INT,
	"bathrooms" double precision,
	"living_area" INT,
	"home_type" TEXT,
	"home_status" TEXT,
	"days_on_zillow" INT,
	"zip_code" TEXT,
	"city" TEXT,
	"state" TEXT,
	"latitude" double precision,
	"longitude" double precision,
	"consensus" resi.listings,
	"corroborated" TEXT[]
) RETURNS TABLE (
	"compared" INT,
	"agreed" INT
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'corroborated_agreement_wrapper';
ALTER FUNCTION resi.corroborated_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings, text[]) ROWS 1;
COMMENT ON FUNCTION resi.corroborated_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings, text[]) IS
    'Like resi.consensus_agreement, counted only on the fields named in corroborated (those whose consensus value two or more independent sources support): the agreement a miner''s trust counts.';

-- Each current claim with what it votes with: its miner's group (NULL: the miner votes alone),
-- its weight (the group's pooled trust, else the miner's trust, else resi.initial_trust()) and
-- resi.trust_fingerprint of the two (the miner written `hotkey/group` when in a group), whose
-- bit_xor over a listing's claims is the listing's trust_fingerprint. The one definition of a
-- claim's weight: resi.listing_consensus, resi.stale_listing and resi.refresh_stale_consensus
-- read it (PostgreSQL inlines the view; columns a query does not use are not computed). The
-- weight's expression is written twice rather than computed once in a LATERAL subquery: Citus
-- cannot push a subquery without FROM that calls a non-immutable function down to the shards
-- (issue 18), and the planner evaluates the two copies apart either way.
CREATE VIEW resi.weighted_claims AS
SELECT c.*, g.group_hotkey, coalesce(g.trust, t.trust_score, resi.initial_trust()) AS trust,
       resi.trust_fingerprint(c.miner_hotkey || coalesce('/' || g.group_hotkey, ''),
                              coalesce(g.trust, t.trust_score, resi.initial_trust())) AS trust_fingerprint
  FROM resi.miner_claims c
  LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.miner_hotkey
  LEFT JOIN resi.miner_groups g ON g.miner_hotkey = c.miner_hotkey;
COMMENT ON VIEW resi.weighted_claims IS
    'Each current claim (resi.miner_claims) with its miner''s group, the weight it votes with and the fingerprint of that weight (resi.trust_fingerprint).';

-- 0.5.0: one vote per independent source in one aggregate (resi.consensus_by_source) instead of
-- two sorts and three window functions per claim in resi.listing_consensus.
-- 0.5.0: resi.consensus_by_source(…): a listing's consensus with one vote per independent source.
CREATE TYPE resi.source_consensus AS (
    voting_groups integer,                -- sources whose vote has weight (trust > 0)
    listing       resi.consensus_listing  -- NULL when no field has a consensus
);

CREATE FUNCTION resi."consensus_by_source_transition"(
	"state" internal, /* Internal */
	"zpid" TEXT, /* Option < & str > */
	"uri" TEXT, /* Option < & str > */
	"price" bigint, /* Option < i64 > */
	"address" TEXT, /* Option < & str > */
	"bedrooms" INT, /* Option < i32 > */
	"bathrooms" double precision, /* Option < f64 > */
	"living_area" INT, /* Option < i32 > */
	"home_type" TEXT, /* Option < & str > */
	"home_status" TEXT, /* Option < & str > */
	"days_on_zillow" INT, /* Option < i32 > */
	"zip_code" TEXT, /* Option < & str > */
	"city" TEXT, /* Option < & str > */
	"state_code" TEXT, /* Option < & str > */
	"latitude" double precision, /* Option < f64 > */
	"longitude" double precision, /* Option < f64 > */
	"trust" double precision, /* Option < f64 > */
	"member" TEXT, /* Option < & str > */
	"miner_hotkey" TEXT, /* Option < & str > */
	"signature" bigint, /* Option < i64 > */
	"submitted_at" timestamp with time zone /* Option < TimestampWithTimeZone > */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_by_source_transition_wrapper';

CREATE FUNCTION resi."consensus_by_source_final"(
	"state" internal /* Internal */
) RETURNS resi.source_consensus /* Option < :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox ::
AllocatedByRust > > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'consensus_by_source_final_wrapper';

-- 0.5.0: a listing's consensus with one vote per independent source
-- (resi_core/src/consensus/sources.rs), what resi.listing_consensus uses. A source is a member
-- (a miner's group, or the miner alone); claims with the same signature belong to the member of
-- the earliest upload among them (then the smallest hotkey). A source votes once, with its
-- heaviest member's claim (greatest trust, then newest upload, then smallest hotkey), weighted
-- trust × resi.claim_recency(its age behind the listing's newest claim); the fields are then
-- those of resi.consensus_listing over the votes. Hotkeys compare as bytes (COLLATE "C"), so the
-- answer does not depend on the database's collation. The claims of a group are kept until the
-- last is in (no combine function: a group is aggregated in one process). The final function
-- reads resi.claim_half_life (STABLE). NULL member, miner_hotkey or submitted_at raises 22004.
CREATE AGGREGATE resi.consensus_by_source(
    zpid text, uri text, price bigint, address text, bedrooms integer, bathrooms double precision,
    living_area integer, home_type text, home_status text, days_on_zillow integer, zip_code text,
    city text, state text, latitude double precision, longitude double precision,
    trust double precision, member text, miner_hotkey text, signature bigint, submitted_at timestamptz) (
    STYPE        = internal,
    SSPACE       = 4096,
    SFUNC        = resi.consensus_by_source_transition,
    FINALFUNC    = resi.consensus_by_source_final,
    PARALLEL     = SAFE
);
COMMENT ON AGGREGATE resi.consensus_by_source(text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision, text, text, bigint, timestamptz) IS
    'A listing''s consensus from its claims with one vote per independent source (a member, or the member of the earliest upload of byte copies), each with its heaviest member''s claim weighted trust x resi.claim_recency; with the number of sources that vote with weight.';

CREATE OR REPLACE VIEW resi.listing_consensus AS
SELECT zpid,
       first_seen_at,
       total_attestations,
       unique_miners_count,
       CASE WHEN voting_groups >= 2 THEN (c).consensus_score ELSE least((c).consensus_score, 0.5::real) END AS consensus_score,
       (c).uri, (c).price, (c).address, (c).bedrooms, (c).bathrooms, (c).living_area, (c).home_type,
       (c).home_status, (c).days_on_zillow, (c).zip_code, (c).city, (c).state, (c).latitude, (c).longitude,
       voting_miners,
       trust_fingerprint,
       (c).field_consensus,
       voting_groups,
       audited_at
  FROM (SELECT per_listing.zpid, per_listing.first_seen_at, per_listing.total_attestations,
               per_listing.unique_miners_count, per_listing.voting_miners, per_listing.trust_fingerprint,
               (per_listing.sources).voting_groups, audit.seen_at AS audited_at,
               CASE WHEN audit.listing IS NULL THEN (per_listing.sources).listing
                    ELSE jsonb_populate_record((per_listing.sources).listing,
                                               audit.listing - ARRAY['consensus_score', 'field_consensus']) END AS c
  FROM (SELECT c.zpid,
               min(c.first_seen_at) AS first_seen_at,
               sum(c.attestations)::integer AS total_attestations,
               count(*)::integer AS unique_miners_count,
               count(*) FILTER (WHERE c.trust > 0)::integer AS voting_miners,
               bit_xor(c.trust_fingerprint) AS trust_fingerprint,
               resi.consensus_by_source(c.zpid, c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area,
                                        c.home_type, c.home_status, c.days_on_zillow, c.zip_code, c.city, c.state,
                                        c.latitude, c.longitude, c.trust, coalesce(c.group_hotkey, c.miner_hotkey),
                                        c.miner_hotkey, c.signature, c.submission_timestamp) AS sources
          FROM resi.weighted_claims c
         GROUP BY c.zpid) per_listing
  -- The newest audit, while no claim with weight has been uploaded since: its values are the
  -- listing's.
  LEFT JOIN LATERAL (SELECT a.listing, a.seen_at FROM resi.audits a
                      WHERE a.zpid = per_listing.zpid
                      ORDER BY a.seen_at DESC, a.id DESC LIMIT 1) audit
         ON NOT EXISTS (SELECT FROM resi.weighted_claims c
                         WHERE c.zpid = per_listing.zpid AND c.submission_timestamp > audit.seen_at AND c.trust > 0))
       per_listing_audited;

-- 0.5.0: the consensus of many listings, what resi.refresh_consensus writes (sql/consensus.sql).
CREATE FUNCTION resi.listing_consensus_of(zpids text[]) RETURNS SETOF resi.listing_consensus
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN QUERY SELECT * FROM resi.listing_consensus c WHERE zpids IS NULL OR c.zpid = ANY (zpids) ORDER BY c.zpid;
END
$$;
COMMENT ON FUNCTION resi.listing_consensus_of(text[]) IS
    'The rows of resi.listing_consensus for the given listings (all when NULL): what resi.refresh_consensus writes.';

-- A distributed database's consensus on its way into resi.listings (resi.refresh_consensus_on_shards):
-- the rows of resi.listing_consensus for the listings being refreshed, with the refresh's time.
-- Distributed by zpid with the listings (resi.citus_tables), so computing, comparing and writing
-- them runs on each shard; empty outside a refresh's transaction (its rows are deleted before
-- it commits) and unused on a single node. UNLOGGED: nothing in it outlives a transaction.
CREATE UNLOGGED TABLE resi.listing_refresh (LIKE resi.listing_consensus);
ALTER TABLE resi.listing_refresh ADD COLUMN refreshed_at timestamptz NOT NULL;
COMMENT ON TABLE resi.listing_refresh IS
    'On a distributed database, the consensus a refresh is writing (rows live only inside resi.refresh_consensus''s transaction).';

-- resi.refresh_consensus on a distributed database, once its lock is held (the advisory lock of
-- resi.lock_listings: one refresh at a time, so no new listing races it): the consensus of
-- `zpids` (all when NULL) is written to resi.listing_refresh, the changes of price or status to
-- resi.listing_history (changed_at `at`), and then into resi.listings the rows whose consensus
-- changed (last_updated_at `at` when a value did); the scratch rows are deleted. Each statement
-- joins tables co-located by zpid, so Citus runs it on every shard at once and no consensus row
-- passes through the coordinator (issue 18, the refresh of design B2). Same rows as the single
-- node's statement. Returns the number of listings refreshed. VOLATILE; not executable by PUBLIC.
CREATE FUNCTION resi.refresh_consensus_on_shards(zpids text[], at timestamptz) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    refreshed integer;
BEGIN
    INSERT INTO resi.listing_refresh
    SELECT c.*, at FROM resi.listing_consensus c WHERE zpids IS NULL OR c.zpid = ANY (zpids);
    GET DIAGNOSTICS refreshed = ROW_COUNT;

    INSERT INTO resi.listing_history (zpid, changed_at, price, home_status, consensus_score, previous_price,
                                      previous_home_status)
    SELECT f.zpid, f.refreshed_at, f.price, f.home_status, f.consensus_score, l.price, l.home_status
      FROM resi.listing_refresh f
      LEFT JOIN resi.listings l ON l.zpid = f.zpid
     WHERE (f.price, f.home_status) IS DISTINCT FROM (l.price, l.home_status);

    INSERT INTO resi.listings AS l
        (zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
         zip_code, city, state, latitude, longitude, first_seen_at, last_updated_at, consensus_score,
         total_attestations, unique_miners_count, field_consensus, voting_miners, trust_fingerprint,
         voting_groups, audited_at)
    SELECT f.zpid, f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type,
           f.home_status, f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude,
           least(f.first_seen_at, f.refreshed_at), f.refreshed_at, f.consensus_score, f.total_attestations,
           f.unique_miners_count, coalesce(f.field_consensus, '{}'), f.voting_miners, f.trust_fingerprint,
           f.voting_groups, f.audited_at
      FROM resi.listing_refresh f
    ON CONFLICT (zpid) DO UPDATE SET
        (uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
         zip_code, city, state, latitude, longitude) =
        (excluded.uri, excluded.price, excluded.address, excluded.bedrooms, excluded.bathrooms,
         excluded.living_area, excluded.home_type, excluded.home_status, excluded.days_on_zillow,
         excluded.zip_code, excluded.city, excluded.state, excluded.latitude, excluded.longitude),
        last_updated_at     = CASE WHEN (l.uri, l.price, l.address, l.bedrooms, l.bathrooms, l.living_area,
                                         l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                                         l.state, l.latitude, l.longitude)
                                    IS DISTINCT FROM
                                        (excluded.uri, excluded.price, excluded.address, excluded.bedrooms,
                                         excluded.bathrooms, excluded.living_area, excluded.home_type,
                                         excluded.home_status, excluded.days_on_zillow, excluded.zip_code,
                                         excluded.city, excluded.state, excluded.latitude, excluded.longitude)
                                   THEN excluded.last_updated_at ELSE l.last_updated_at END,
        first_seen_at       = least(l.first_seen_at, excluded.first_seen_at),
        consensus_score     = excluded.consensus_score,
        total_attestations  = excluded.total_attestations,
        unique_miners_count = excluded.unique_miners_count,
        voting_miners       = excluded.voting_miners,
        trust_fingerprint   = excluded.trust_fingerprint,
        field_consensus     = excluded.field_consensus,
        voting_groups       = excluded.voting_groups,
        audited_at          = excluded.audited_at
    WHERE (l.total_attestations, l.unique_miners_count, l.voting_miners, l.trust_fingerprint,
           l.consensus_score, least(l.first_seen_at, excluded.first_seen_at), l.uri, l.price, l.address,
           l.bedrooms, l.bathrooms, l.living_area, l.home_type, l.home_status, l.days_on_zillow, l.zip_code,
           l.city, l.state, l.latitude, l.longitude, l.field_consensus, l.voting_groups, l.audited_at)
          IS DISTINCT FROM
          (excluded.total_attestations, excluded.unique_miners_count, excluded.voting_miners,
           excluded.trust_fingerprint, excluded.consensus_score, l.first_seen_at, excluded.uri, excluded.price,
           excluded.address, excluded.bedrooms, excluded.bathrooms, excluded.living_area, excluded.home_type,
           excluded.home_status, excluded.days_on_zillow, excluded.zip_code, excluded.city, excluded.state,
           excluded.latitude, excluded.longitude, excluded.field_consensus, excluded.voting_groups,
           excluded.audited_at);

    DELETE FROM resi.listing_refresh;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus_on_shards(text[], timestamptz) IS
    'resi.refresh_consensus on a distributed database, under its lock: the consensus computed, compared and written on every shard at once. Returns the number of listings refreshed.';
REVOKE EXECUTE ON FUNCTION resi.refresh_consensus_on_shards(text[], timestamptz) FROM PUBLIC;


-- 0.5.0: resi.refresh_consensus writes each change of price or status into
-- resi.listing_history in the statement that writes the listings (set-based), instead of a row
-- trigger firing once per changed listing.
DROP TRIGGER record_listing_history ON resi.listings;
DROP FUNCTION resi.record_listing_history();

CREATE OR REPLACE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
    SET jit = off
    SET enable_hashagg = off
AS $$
DECLARE
    refreshed integer;
    raced     text[]; -- new listings another transaction inserted first
    -- now(), taken once: the statement below uses it as a constant (Citus refuses a volatile
    -- or stable function inside CASE or LEAST in a statement on a distributed table).
    at        timestamptz := now();
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'resi.refresh_consensus needs READ COMMITTED isolation, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Each statement must see the claims other loaders committed while it waited for the listing locks.';
    END IF;
    PERFORM resi.lock_listings(zpids);
    IF resi.listings_distributed() THEN
        RETURN resi.refresh_consensus_on_shards(zpids, at);
    END IF;

    -- A new statement: its snapshot includes every claim committed before the locks were granted.
    -- Only rows whose consensus changed are written, and last_updated_at moves only when a value
    -- did: a refresh that changes confidences or counts alone touches no indexed column and can
    -- be a HOT update (resi.listings has fillfactor 80). `previous` is the same rows as `l` (the
    -- snapshot's versions, locked above): what the history records as the previous values.
    --
    -- `fresh` holds the rows in zpid order, as resi.listing_consensus_of returns them (it groups
    -- claims read in that order: enable_hashagg is off, a hash of every listing's claims spilled
    -- to disk at 200,000 listings), and new listings are inserted in the order `fresh` holds them
    -- (a function scan and a CTE scan return rows as stored), so concurrent folds take the new
    -- rows' index entries in the same order and cannot deadlock, without sorting the wide
    -- consensus rows again (that sort spilled 585 MB at 200,000 listings; a fold of 200,000
    -- rows spent a tenth of its refreshes on it).
    WITH fresh AS MATERIALIZED (
        SELECT * FROM resi.listing_consensus_of(zpids)
    ), written AS (
        UPDATE resi.listings l SET
            (uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
             zip_code, city, state, latitude, longitude) =
            (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type, f.home_status,
             f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude),
            last_updated_at     = CASE WHEN (l.uri, l.price, l.address, l.bedrooms, l.bathrooms, l.living_area,
                                             l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                                             l.state, l.latitude, l.longitude)
                                        IS DISTINCT FROM
                                            (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area,
                                             f.home_type, f.home_status, f.days_on_zillow, f.zip_code, f.city,
                                             f.state, f.latitude, f.longitude)
                                       THEN at ELSE l.last_updated_at END,
            first_seen_at       = least(l.first_seen_at, f.first_seen_at),
            consensus_score     = f.consensus_score,
            total_attestations  = f.total_attestations,
            unique_miners_count = f.unique_miners_count,
            voting_miners       = f.voting_miners,
            trust_fingerprint   = f.trust_fingerprint,
            field_consensus     = coalesce(f.field_consensus, '{}'),
            voting_groups       = f.voting_groups,
            audited_at          = f.audited_at
          FROM fresh f
          JOIN resi.listings previous ON previous.zpid = f.zpid
         WHERE l.zpid = f.zpid
           -- Cheap columns first: the comparison stops at the first difference.
           AND (l.total_attestations, l.unique_miners_count, l.voting_miners, l.trust_fingerprint,
                l.consensus_score, least(l.first_seen_at, f.first_seen_at), l.uri, l.price, l.address, l.bedrooms,
                l.bathrooms, l.living_area, l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                l.state, l.latitude, l.longitude, l.field_consensus, l.voting_groups, l.audited_at)
               IS DISTINCT FROM
               (f.total_attestations, f.unique_miners_count, f.voting_miners, f.trust_fingerprint,
                f.consensus_score, l.first_seen_at, f.uri, f.price, f.address, f.bedrooms,
                f.bathrooms, f.living_area, f.home_type, f.home_status, f.days_on_zillow, f.zip_code, f.city,
                f.state, f.latitude, f.longitude, coalesce(f.field_consensus, '{}'), f.voting_groups, f.audited_at)
        RETURNING l.zpid, l.price, l.home_status, l.consensus_score,
                  previous.price AS previous_price, previous.home_status AS previous_home_status
    ), inserted AS (
        INSERT INTO resi.listings AS l
            (zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
             zip_code, city, state, latitude, longitude, first_seen_at, consensus_score, total_attestations,
             unique_miners_count, field_consensus, voting_miners, trust_fingerprint, voting_groups, audited_at)
        SELECT f.zpid, f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type,
               f.home_status, f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude,
               least(f.first_seen_at, at), f.consensus_score, f.total_attestations, f.unique_miners_count,
               coalesce(f.field_consensus, '{}'), f.voting_miners, f.trust_fingerprint, f.voting_groups,
               f.audited_at
          FROM fresh f
        -- Existing listings (those `written`, and unchanged ones) conflict and are skipped by the
        -- primary key's check before any write. Not an anti join against resi.listings: after a
        -- VACUUM of an empty table the planner believes its 0 pages and scans it once per row
        -- while this statement fills it (n² visibility checks: 101 s for 25,000 new listings).
        ON CONFLICT (zpid) DO NOTHING
        RETURNING l.zpid, l.price, l.home_status, l.consensus_score
    ), history AS (
        INSERT INTO resi.listing_history (zpid, price, home_status, consensus_score, previous_price, previous_home_status)
        SELECT h.zpid, h.price, h.home_status, h.consensus_score, h.previous_price, h.previous_home_status
          FROM (SELECT * FROM written
                UNION ALL
                SELECT i.zpid, i.price, i.home_status, i.consensus_score, NULL, NULL FROM inserted i) h
         WHERE (h.price, h.home_status) IS DISTINCT FROM (h.previous_price, h.previous_home_status)
         ORDER BY h.zpid
    )
    -- Raced: not in the snapshot's listings (of `zpids`, read once), yet not inserted. Joins,
    -- not a correlated NOT EXISTS beside the CTEs, which Citus refuses.
    SELECT count(*), array_agg(f.zpid ORDER BY f.zpid) FILTER (WHERE i.zpid IS NULL AND e.zpid IS NULL)
      INTO refreshed, raced
      FROM fresh f
      LEFT JOIN inserted i ON i.zpid = f.zpid
      LEFT JOIN (SELECT e.zpid FROM resi.listings e WHERE zpids IS NULL OR e.zpid = ANY (zpids)) e ON e.zpid = f.zpid;
    IF raced IS NOT NULL THEN
        PERFORM resi.refresh_consensus(raced);
    END IF;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus(text[]) IS
    'Recompute the consensus of the given listings (all when NULL) from resi.miner_claims into resi.listings, e.g. after trust changes, recording each change of price or status in resi.listing_history; rows whose consensus did not change are not rewritten. Returns the number of listings recomputed.';

CREATE OR REPLACE FUNCTION resi.rebuild_claims() RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE resi.miner_claims IN EXCLUSIVE MODE;
    DELETE FROM resi.miner_claims;
    INSERT INTO resi.miner_claims
    SELECT DISTINCT ON (a.zpid, a.miner_hotkey)
           a.zpid, a.miner_hotkey, a.id, a.submission_timestamp,
           min(a.submission_timestamp) OVER w, count(*) OVER w,
           a.uri, a.price, a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status,
           a.days_on_zillow, a.zip_code, a.city, a.state, a.latitude, a.longitude, a.signature
      FROM resi.miner_attestations a
    WINDOW w AS (PARTITION BY a.zpid, a.miner_hotkey)
     -- The newest upload as the fold picks it (sql/fold.sql).
     ORDER BY a.zpid, a.miner_hotkey, a.submission_timestamp DESC, a.signature DESC NULLS LAST, a.id DESC;
    RETURN resi.refresh_consensus(NULL);
END
$$;

CREATE OR REPLACE FUNCTION resi.stale_listing(zpid text, trust_fingerprint bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN trust_fingerprint IS DISTINCT FROM (
        SELECT bit_xor(c.trust_fingerprint) FROM resi.weighted_claims c WHERE c.zpid = stale_listing.zpid);

COMMENT ON FUNCTION resi.stale_listing(text, bigint) IS
    'Whether a listing''s consensus, computed with these weights (resi.listings.trust_fingerprint), is out of date with its miners'' trust and groups now.';

CREATE OR REPLACE FUNCTION resi.fold_staged_listings() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
AS $$
DECLARE
    started   timestamptz := clock_timestamp();
    attested  timestamptz;
    refreshed timestamptz;
    verdicts  resi.submission_verdict[];
    left_out  bigint[];
    folded    text[]; -- the listings folded, in zpid order
    -- The submissions folded: miner, file ('' for none) and upload time, one element each.
    miners       text[];
    files        text[];
    upload_times timestamptz[];
    -- Every attestation this fold writes has a greater id (ids are drawn from the coordinator's
    -- sequence, in order; concurrent folds' rows, later in the sequence too, are told apart by
    -- their submissions).
    attested_after bigint;
    distributed    boolean := resi.listings_distributed();
    nestloop       text; -- enable_nestloop as the fold found it
    propagate      text; -- citus.propagate_set_commands as the fold found it
BEGIN
    -- On a distributed database (resi.listings a Citus table), this transaction's writes to
    -- several shards go over one connection per worker: the refresh's statements join the
    -- placements the fold wrote (claims, trust rows), and Citus refuses (25001: "cannot perform
    -- query with placements that were modified over multiple connections") a join of placements
    -- written over several.
    IF distributed THEN
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;

    -- The statement's rows, copied from the transition table once into a temporary table that
    -- every statement below reads. Citus cannot run a statement on a distributed table that
    -- reads a transition table ("could not find named tuplestore"); a temporary table on the
    -- node the trigger runs on can be read there. (A PL/pgSQL array of the rows works too, but
    -- assigning it cost 0.4 s per 50,000 rows; the copy costs 0.04 s.) Dropped at the end (an
    -- error rolls its creation back), so one transaction can fold several statements.
    CREATE TEMPORARY TABLE resi_reported (LIKE resi.staging_listings);
    INSERT INTO pg_temp.resi_reported SELECT * FROM staged;

    -- Quality first: each submission's report (resi.submission_quality_of: the aggregate's
    -- report, from arrays) and the strikes low quality earns, in upload order. A miner a strike bans has its later submissions of this statement left out, as
    -- admission would have deferred them had they come one at a time (resi.penalise_submissions).
    left_out := resi.penalise_submissions(ARRAY(
        SELECT ROW(s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp,
                   resi.submission_quality_of(count(*), array_agg(s.zpid), array_agg(s.price::double precision),
                                              array_agg(s.zip_code)),
                   count(*), 0, 0, 0, 0)::resi.submission_verdict
          FROM pg_temp.resi_reported s
         GROUP BY s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp));

    -- History: every reported row is an attestation. Then each miner's newest report per
    -- listing becomes (or stays) its claim; an older upload loaded late does not override a
    -- newer claim, but still counts as an attestation. Newest: the latest upload time, then
    -- (uploads of the same second) the greater signature, a hash of the content, so the claim
    -- does not depend on the order the uploads are folded in; then the attestation's id (rows
    -- without a signature, and byte copies). resi.rebuild_claims orders them the same way.
    attested_after := (SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END
                         FROM resi.miner_attestations_id_seq q);
    INSERT INTO resi.miner_attestations
        (miner_hotkey, zpid, submission_timestamp, job_id, s3_file_path, record_count, data_hash,
         uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
         days_on_zillow, zip_code, city, state, latitude, longitude, scraped_at, signature)
    SELECT miner_hotkey, zpid, submission_timestamp, job_id, s3_file_path, record_count, data_hash,
           uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
           days_on_zillow, zip_code, city, state, latitude, longitude, scraped_at,
           CASE WHEN scraped_at IS NOT NULL THEN
               resi.claim_signature(zpid, scraped_at, uri, price, address, bedrooms, bathrooms, living_area,
                                    home_type, home_status, days_on_zillow, zip_code, city, state,
                                    latitude, longitude) END
      FROM pg_temp.resi_reported
     WHERE ledger_id IS NULL OR ledger_id <> ALL (left_out);

    folded := ARRAY(SELECT DISTINCT zpid FROM pg_temp.resi_reported
                     WHERE ledger_id IS NULL OR ledger_id <> ALL (left_out) ORDER BY 1);
    SELECT array_agg(s.miner_hotkey), array_agg(coalesce(s.s3_file_path, '')), array_agg(s.submission_timestamp)
      INTO miners, files, upload_times
      FROM (SELECT DISTINCT r.miner_hotkey, r.s3_file_path, r.submission_timestamp
              FROM pg_temp.resi_reported r
             WHERE r.ledger_id IS NULL OR r.ledger_id <> ALL (left_out)) s;

    -- The claims are formed from the attestations just written, where they lie: the fold's own
    -- (ids above the sequence's value before it, of its listings and submissions: a concurrent
    -- fold's rows are another submission's). On a distributed database each shard forms and
    -- writes its listings' claims; no row comes back to the coordinator.
    INSERT INTO resi.miner_claims AS c
    SELECT DISTINCT ON (a.zpid, a.miner_hotkey)
           a.zpid, a.miner_hotkey, a.id, a.submission_timestamp,
           min(a.submission_timestamp) OVER w, count(*) OVER w,
           a.uri, a.price, a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status,
           a.days_on_zillow, a.zip_code, a.city, a.state, a.latitude, a.longitude, a.signature
      FROM resi.miner_attestations a
     WHERE a.zpid = ANY (folded) AND a.id > attested_after
       AND (a.miner_hotkey, coalesce(a.s3_file_path, ''), a.submission_timestamp) IN
           (SELECT * FROM unnest(miners, files, upload_times))
    WINDOW w AS (PARTITION BY a.zpid, a.miner_hotkey)
     ORDER BY a.zpid, a.miner_hotkey, a.submission_timestamp DESC, a.signature DESC NULLS LAST, a.id DESC
    ON CONFLICT (zpid, miner_hotkey) DO UPDATE SET
        attestations  = c.attestations + excluded.attestations,
        first_seen_at = least(c.first_seen_at, excluded.first_seen_at),
        (attestation_id, submission_timestamp, uri, price, address, bedrooms, bathrooms, living_area,
         home_type, home_status, days_on_zillow, zip_code, city, state, latitude, longitude, signature) =
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
                CASE WHEN newer THEN x.longitude ELSE c.longitude END,
                CASE WHEN newer THEN x.signature ELSE c.signature END
           FROM (SELECT excluded.*,
                        (excluded.submission_timestamp, coalesce(excluded.signature, '-9223372036854775808'::bigint),
                         excluded.attestation_id)
                        >= (c.submission_timestamp, coalesce(c.signature, '-9223372036854775808'::bigint),
                            c.attestation_id) AS newer) x);
    attested := clock_timestamp();

    PERFORM resi.refresh_consensus(folded);
    refreshed := clock_timestamp();

    -- Each submission's verdict, against the consensus it helped form: its quality report
    -- (again: cheaper than keeping the first) and how its rows agree with the consensus. A
    -- submission is the rows of this statement with one miner, ledger row, file and submission
    -- time (one loader object).
    --
    -- A row is judged on the fields whose consensus value two or more independent sources back
    -- (resi.corroborated_agreement: agreeing with a consensus one formed alone, or disagreeing
    -- with a lone other source, proves nothing); it is corroborated when some field could be
    -- judged, which needs two sources on the listing. The rows are read as this fold's
    -- attestations (ids above the sequence's value before the fold: the same values as the
    -- staged rows, less those left out), joined with their listings and summed per submission
    -- where they lie: on a distributed database each shard sends only its sums per submission,
    -- not its listings. A submission's attestations are told apart by miner, file and upload
    -- time (a loader object's; its ledger row is not stored with them). A corroborated listing's
    -- row and fields are formed once per listing (the outer join evaluates them below it), as
    -- ROW(l.*)::resi.listings: on a shard, `l` alone is a row of the shard's own table type.
    --
    -- Planned without nested loops (the setting is put back after it): the attestations meet
    -- their listings by a hash or merge join, once each. Statistics taken while every listing
    -- had one voting group (an early load, one miner's first uploads) estimate the corroborated
    -- listings at one row; a nested loop then re-read them, materialized (and spilled past
    -- work_mem), once per attestation: 250 s for a fold of 50,000 rows against 2 s, the loader's
    -- COPY apparently hung. No plan of this statement needs one: each table is read by its own
    -- index condition, and every join is on equal keys. On a distributed database the workers
    -- plan its parts on the shards, with statistics of their own: the setting reaches them as a
    -- SET LOCAL with citus.propagate_set_commands = 'local' (Citus sends it to every worker
    -- connection of the transaction, and to those it opens later).
    nestloop := pg_catalog.current_setting('enable_nestloop');
    IF distributed THEN
        propagate := pg_catalog.current_setting('citus.propagate_set_commands');
        PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
    END IF;
    SET LOCAL enable_nestloop = off;
    verdicts := ARRAY(
        SELECT ROW(q.miner_hotkey, q.ledger_id, q.s3_file_path, q.submission_timestamp, q.quality, q.rows,
                   coalesce(a.compared, 0), coalesce(a.agreed, 0), coalesce(a.corroborated, 0),
                   coalesce(a.agreeing, 0))::resi.submission_verdict
          FROM (SELECT s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp, count(*) AS rows,
                       resi.submission_quality_of(count(*), array_agg(s.zpid), array_agg(s.price::double precision),
                                                  array_agg(s.zip_code)) AS quality
                  FROM pg_temp.resi_reported s
                 WHERE s.ledger_id IS NULL OR s.ledger_id <> ALL (left_out)
                 GROUP BY s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp) q
          LEFT JOIN (SELECT t.miner_hotkey, t.s3_file_path, t.submission_timestamp,
                            sum(v.compared) AS compared, sum(v.agreed) AS agreed,
                            count(*) FILTER (WHERE v.compared > 0) AS corroborated,
                            count(*) FILTER (WHERE v.compared > 0 AND v.agreed = v.compared) AS agreeing
                       FROM resi.miner_attestations t
                       LEFT JOIN (SELECT l.zpid, ROW(l.*)::resi.listings AS listing,
                                         resi.corroborated_fields(l.field_consensus) AS fields
                                    FROM resi.listings l
                                   WHERE l.zpid = ANY (folded) AND l.voting_groups >= 2) corroborated
                              ON corroborated.zpid = t.zpid
                      CROSS JOIN LATERAL resi.corroborated_agreement(
                              t.uri, t.price, t.address, t.bedrooms, t.bathrooms, t.living_area, t.home_type,
                              t.home_status, t.days_on_zillow, t.zip_code, t.city, t.state, t.latitude,
                              t.longitude, corroborated.listing, corroborated.fields) v
                      WHERE t.zpid = ANY (folded) AND t.id > attested_after
                      GROUP BY t.miner_hotkey, t.s3_file_path, t.submission_timestamp) a
            ON a.miner_hotkey = q.miner_hotkey AND a.s3_file_path IS NOT DISTINCT FROM q.s3_file_path
           AND a.submission_timestamp = q.submission_timestamp
         ORDER BY q.miner_hotkey, q.submission_timestamp, q.ledger_id, q.s3_file_path);
    -- Put back with static statements (a SECURITY DEFINER function runs no dynamic SQL).
    IF nestloop = 'on' THEN
        SET LOCAL enable_nestloop = on;
    ELSE
        SET LOCAL enable_nestloop = off;
    END IF;
    IF distributed THEN
        PERFORM pg_catalog.set_config('citus.propagate_set_commands', propagate, true);
    END IF;
    PERFORM resi.judge_submissions(verdicts);

    PERFORM pg_catalog.set_config('resi_fold.stages', pg_catalog.json_build_object(
        'attest_and_claim', extract(epoch FROM attested - started),
        'consensus', extract(epoch FROM refreshed - attested),
        'judgement', extract(epoch FROM clock_timestamp() - refreshed),
        'rows', (SELECT count(*) FROM pg_temp.resi_reported),
        'submissions', cardinality(verdicts),
        'left_out', cardinality(left_out))::text, true);
    DROP TABLE pg_temp.resi_reported;
    RETURN NULL;
END
$$;

-- Whether Citus has distributed the role `role_name` in this database (pg_dist_object: it
-- creates and alters it on every node itself). Only called on a distributed database (the
-- catalogue is Citus's). STABLE; false for an unknown role.
CREATE FUNCTION resi.role_distributed(role_name text) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT FROM pg_catalog.pg_dist_object o
                    WHERE o.classid = 'pg_catalog.pg_authid'::regclass
                      AND o.objid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = role_name));
END
$$;
REVOKE EXECUTE ON FUNCTION resi.role_distributed(text) FROM PUBLIC;
COMMENT ON FUNCTION resi.role_distributed(text) IS
    'Whether Citus has distributed the role in this database (it then creates and alters it on every node itself); called by resi.setup_roles on a distributed database.';

-- Creates the role `role_name` NOLOGIN on every worker that lacks it and lets it log in there,
-- over run_command_on_workers' own connections (committed at once; they could not see a role
-- the calling transaction created, and would wait on it: call it for roles Citus has not
-- distributed). Idempotent. Errors: 55000 when a worker refuses.
CREATE FUNCTION resi.allow_role_on_workers(role_name text) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.run_command_on_workers(format(
                   'SET citus.enable_create_role_propagation = off; '
                   'DO $roles$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %L) '
                   'THEN CREATE ROLE %I NOLOGIN; END IF; END $roles$; ALTER ROLE %I LOGIN',
                   role_name, role_name, role_name)) w
                WHERE NOT w.success) THEN
        RAISE EXCEPTION 'resi.setup_roles: role % could not be allowed to log in to every worker', role_name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION resi.allow_role_on_workers(text) FROM PUBLIC;
COMMENT ON FUNCTION resi.allow_role_on_workers(text) IS
    'Creates the role NOLOGIN on every Citus worker that lacks it and lets it log in there, over connections of its own (committed at once); idempotent; for roles Citus has not distributed. Called by resi.setup_roles.';

CREATE OR REPLACE FUNCTION resi.setup_roles() RETURNS TABLE (role_name text, created boolean)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted      text;
    login       boolean;
    propagation text;
    -- On Citus (resi.distribute ran): whether this node is the coordinator, or a worker.
    coordinator boolean := false;
    worker      boolean := false;
BEGIN
    -- On a Citus worker of a distributed database (readers may connect to any node: every
    -- worker has Citus's metadata and plans the API's calls itself), the roles and grants are
    -- the worker's own: Citus does not propagate GRANTs on the extension's objects, and a
    -- worker propagates nothing here. (Without Citus there is no pg_dist_local_group: the query
    -- naming it is planned only where it runs.)
    IF resi.listings_distributed() THEN
        worker := (SELECT l.groupid FROM pg_catalog.pg_dist_local_group l) <> 0;
        coordinator := NOT worker;
    END IF;
    IF worker THEN
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    END IF;
    FOREACH wanted IN ARRAY ARRAY['resi_loader', 'resi_reader', 'resi_validator', 'resi_admin'] LOOP
        role_name := wanted;
        created := false;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = wanted) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', wanted);
                created := true;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created by a concurrent call
            END;
        END IF;
        RETURN NEXT;
    END LOOP;

    -- On a Citus coordinator Citus sends the GRANTs below to the workers too: a role it has not
    -- distributed in this database (one made before, in another database of this cluster, which
    -- Citus does not see) is first created where a worker lacks it and allowed to log in there
    -- (resi.allow_role_on_workers: over connections of its own, which could not see a role this
    -- transaction created, and would wait on it; Citus has distributed any such role).
    IF coordinator THEN
        FOREACH wanted IN ARRAY ARRAY['resi_loader', 'resi_reader', 'resi_validator', 'resi_admin'] LOOP
            IF NOT resi.role_distributed(wanted) THEN
                PERFORM resi.allow_role_on_workers(wanted);
            END IF;
        END LOOP;
    END IF;

    GRANT USAGE ON SCHEMA resi TO resi_loader, resi_reader, resi_validator, resi_admin;

    GRANT INSERT ON resi.staging_listings TO resi_loader;
    GRANT SELECT, INSERT, UPDATE ON resi.ingest_runs, resi.ingest_ledger TO resi_loader;
    GRANT USAGE ON SEQUENCE resi.ingest_runs_id_seq, resi.ingest_ledger_id_seq TO resi_loader;
    GRANT SELECT ON resi.listings, resi.miner_attestations TO resi_loader;
    GRANT SELECT ON resi.ingest_by_run, resi.ingest_by_miner, resi.miner_leaderboard, resi.consensus_health,
                    resi.field_disagreement, resi.zip_freshness
    TO resi_loader; -- what `resi-loader status` prints
    GRANT EXECUTE ON FUNCTION
        resi.admit_submission(text, timestamptz, boolean, integer),
        resi.clear_staging(),
        resi.find_dependent_miners(integer, integer, integer),
        resi.refresh_stale_consensus(integer)
    TO resi_loader;

    GRANT SELECT ON resi.listings, resi.listing_consensus TO resi_reader;
    GRANT USAGE ON SCHEMA api TO resi_reader, resi_admin;
    GRANT SELECT ON api.listings TO resi_reader, resi_admin;
    GRANT EXECUTE ON FUNCTION
        api.search_listings(text, bigint, bigint, text, real, double precision[], timestamptz, integer, text),
        api.listing(text),
        api.listing_history(text),
        api.zip_stats(text)
    TO resi_reader, resi_admin;
    GRANT EXECUTE ON FUNCTION resi.listing_tile(integer, integer, integer) TO resi_reader;

    GRANT EXECUTE ON FUNCTION
        resi.record_validation(text, text, boolean, double precision),
        resi.record_audit(text, jsonb, timestamptz),
        resi.propose_audits(integer, double precision)
    TO resi_validator;

    GRANT SELECT ON ALL TABLES IN SCHEMA resi TO resi_admin;
    GRANT EXECUTE ON FUNCTION
        resi.ban_miner(text, text, interval),
        resi.unban_miner(text),
        resi.add_strike(text, text),
        resi.add_blacklist_entry(text, text, text, text),
        resi.remove_blacklist_entry(bigint),
        resi.refresh_consensus(text[]),
        resi.refresh_stale_consensus(integer),
        resi.rebuild_claims(),
        resi.find_dependent_miners(integer, integer, integer),
        resi.earn_trust(text[]),
        resi.refresh_group_trust(),
        resi.propose_audits(integer, double precision),
        resi.record_miner_submission(text, integer, timestamptz),
        resi.archive_batch_begin(text, date, timestamptz),
        resi.archive_batch_verified(bigint, bigint, text),
        resi.archive_batch_discard(bigint),
        resi.archive_batch_delete(bigint, text[], bigint[])
    TO resi_admin;
    -- The settings: GUCs in the native edition; rows of resi.settings in the portable one
    -- (sql/portable/settings.sql), where only a superuser could grant on parameters.
    IF resi.edition() = 'native' THEN
        GRANT SET, ALTER SYSTEM ON PARAMETER
            resi.rate_limit_tiers, resi.initial_trust, resi.quality_min_price, resi.quality_max_price,
            resi.quality_max_zip_codes, resi.max_submission_rows, resi.over_limit_strike_attempts,
            resi.strikes_per_ban, resi.ban_duration, resi.max_ban_duration, resi.database_budget,
            resi.claim_half_life
        TO resi_admin;
    ELSE
        GRANT INSERT, UPDATE, DELETE ON resi.settings TO resi_admin;
    END IF;
    -- On Citus (resi.distribute ran), the coordinator reads and writes the shards over
    -- connections to the workers made as the current role: the four roles may log in to the
    -- workers (not to the coordinator; each worker's pg_hba.conf should admit them from the
    -- coordinator only). The roles Citus has not distributed were allowed above. A role Citus has
    -- distributed in this database (created by this call, or by the GRANTs above, which Citus
    -- may send with the roles they name) gets LOGIN by ALTER ROLE on the coordinator, which
    -- Citus sends to the workers inside this transaction; the coordinator's own role then gets
    -- back the LOGIN it had, with the propagation off. On a worker, the roles keep the LOGIN the
    -- coordinator's call gave them.
    IF coordinator THEN
        FOREACH wanted IN ARRAY ARRAY['resi_loader', 'resi_reader', 'resi_validator', 'resi_admin'] LOOP
            CONTINUE WHEN NOT resi.role_distributed(wanted);
            login := (SELECT r.rolcanlogin FROM pg_catalog.pg_roles r WHERE r.rolname = wanted);
            EXECUTE format('ALTER ROLE %I LOGIN', wanted);
            IF NOT login THEN
                propagation := pg_catalog.current_setting('citus.enable_alter_role_propagation');
                PERFORM pg_catalog.set_config('citus.enable_alter_role_propagation', 'off', true);
                EXECUTE format('ALTER ROLE %I NOLOGIN', wanted);
                PERFORM pg_catalog.set_config('citus.enable_alter_role_propagation', propagation, true);
            END IF;
        END LOOP;
    END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION resi.find_dependent_miners(integer, integer, integer), resi.record_audit(text, jsonb, timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Truth discovery for any claims (issue 14): sql/truth.sql 0.5.0, whole, after its Rust
-- functions (as pgrx generates them).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi."discover_truth_transition"(
	"state" internal, /* Internal */
	"object" TEXT, /* Option < & str > */
	"property" TEXT, /* Option < & str > */
	"source" TEXT, /* Option < & str > */
	"value" TEXT, /* Option < & str > */
	"source_group" TEXT /* Option < & str > */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'discover_truth_transition_wrapper';

CREATE FUNCTION resi."discover_truth_final"(
	"state" internal /* Internal */
) RETURNS jsonb /* Option < JsonB > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'discover_truth_final_wrapper';

-- One group of rows is one problem: each row a claim (source NOT NULL) or an audit (source
-- NULL: the item's true value); source_group names the group of dependent sources a source
-- belongs to (NULL: its own). Expand the result with jsonb_to_recordset(result -> 'values').
-- No COMBINEFUNC: accuracies are learned over all items at once.
CREATE AGGREGATE resi.discover_truth(object text, property text, source text, value text, source_group text) (
    STYPE     = internal,
    SFUNC     = resi.discover_truth_transition,
    FINALFUNC = resi.discover_truth_final,
    PARALLEL  = SAFE
);
COMMENT ON AGGREGATE resi.discover_truth(text, text, text, text, text) IS
    'Truth discovery over claims (object, property, source, value; a NULL source is an audit): each item''s value with confidence, supporters and independent groups, and each source''s accuracy and vote weight, as jsonb. Dependent sources (same source_group) vote once.';

-- ---------------------------------------------------------------------------------------------
-- Trust earned from audits (resi_core/src/trust.rs); bodies as in the sql/ files of 0.5.0
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION resi."earned_trust"(
	"audited_claims" bigint, /* i64 */
	"wrong_claims" bigint, /* i64 */
	"corroborated_rows" double precision, /* f64 */
	"agreeing_rows" double precision, /* f64 */
	"initial_trust" double precision /* f64 */
) RETURNS double precision /* f64 */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'earned_trust_wrapper';

COMMENT ON FUNCTION resi.earned_trust(bigint, bigint, double precision, double precision, double precision) IS
    'Trust earned with this evidence: the log-odds of a lower bound (mean - 1 sd) of the share of right claims under Beta(prior + right + 0.1 x agreeing rows, wrong + 0.1 x disagreeing rows; rows worth 10 audits at most), 1 at 0.95, 0 at 0.5 and below; the prior is 4 claims whose trust is initial_trust. Bad counts raise 22023.';

CREATE FUNCTION resi.earned_trust(miner resi.miner_trust) RETURNS double precision
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN resi.earned_trust(miner.audited_claims, miner.wrong_claims, miner.corroborated_rows, miner.agreeing_rows,
                             resi.initial_trust());

COMMENT ON FUNCTION resi.earned_trust(resi.miner_trust) IS
    'The trust a miner''s row of resi.miner_trust has earned: resi.earned_trust of its audited claims (audits and validations), wrong claims, corroborated and agreeing rows, with resi.initial_trust as the prior.';

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

CREATE OR REPLACE FUNCTION resi.miner_status(hotkey text) RETURNS resi.miner_status
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

CREATE FUNCTION resi.earn_trust(hotkeys text[]) RETURNS double precision
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trust double precision;
    at    timestamptz := clock_timestamp();
BEGIN
    WITH earned AS (
        UPDATE resi.miner_trust t SET
            trust_score      = n.trust,
            trust_changed_at = CASE WHEN n.trust <> t.trust_score THEN at ELSE t.trust_changed_at END
          FROM (SELECT t2.miner_hotkey, resi.earned_trust(t2) AS trust
                  FROM resi.miner_trust t2 WHERE t2.miner_hotkey = ANY (hotkeys)
                 ORDER BY t2.miner_hotkey FOR UPDATE) n
         WHERE t.miner_hotkey = n.miner_hotkey
        RETURNING t.miner_hotkey, t.trust_score
    )
    SELECT e.trust_score INTO trust FROM earned e ORDER BY e.miner_hotkey DESC LIMIT 1;
    RETURN trust;
END
$$;

COMMENT ON FUNCTION resi.earn_trust(text[]) IS
    'Recompute the trust of these miners from their evidence (resi.earned_trust); returns the trust of the last in hotkey order.';

CREATE OR REPLACE FUNCTION resi.record_validation(miner_hotkey text, zpid text, passed boolean, score double precision DEFAULT NULL)
    RETURNS double precision
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
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
       SET is_validated = true, validation_timestamp = now(), validation_score = score,
           validation_passed = passed
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
        validated_submissions = t.validated_submissions + 1,
        validations_failed    = t.validations_failed + (NOT passed)::integer,
        audited_claims        = t.audited_claims + 1,
        wrong_claims          = t.wrong_claims + (NOT passed)::integer,
        updated_at            = now()
     WHERE t.miner_hotkey = hotkey;
    trust := resi.earn_trust(ARRAY[hotkey]);
    PERFORM resi.refresh_consensus(ARRAY[listing]);
    RETURN trust;
END
$$;

COMMENT ON FUNCTION resi.record_validation(text, text, boolean, double precision) IS
    'A validator''s spot-check of a miner''s current claim on a listing: marks the attestation validated and counts it as an audited claim (wrong unless passed) of the miner, whose trust is recomputed (resi.earned_trust). Returns the new trust.';

CREATE FUNCTION resi.propose_audits(n integer DEFAULT 100, random_share double precision DEFAULT 0.2)
    RETURNS TABLE (zpid text, reason text, priority double precision, sources integer)
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL RESTRICTED
    SECURITY DEFINER -- reads claims, trust and groups, which resi_validator cannot
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    random_picks integer;
BEGIN
    IF n < 0 THEN
        RAISE EXCEPTION 'resi.propose_audits: n must be >= 0, got %', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (random_share BETWEEN 0 AND 1) THEN
        RAISE EXCEPTION 'resi.propose_audits: random_share must be between 0 and 1, got %', random_share
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    random_picks := round(n * random_share)::integer;
    RETURN QUERY
    WITH source_audits AS (
        SELECT coalesce(g.group_hotkey, t.miner_hotkey) AS source,
               sum(t.audited_claims) AS audited
          FROM resi.miner_trust t
          LEFT JOIN resi.miner_groups g ON g.miner_hotkey = t.miner_hotkey
         GROUP BY 1
    ), listing_sources AS (
        SELECT DISTINCT c.zpid, coalesce(g.group_hotkey, c.miner_hotkey) AS source
          FROM resi.miner_claims c
          LEFT JOIN resi.miner_groups g ON g.miner_hotkey = c.miner_hotkey
    ), scored AS (
        SELECT l.zpid,
               sum(1.0 / (1 + coalesce(a.audited, 0))) AS need,
               (1 - coalesce(l.consensus_score, 0)) * greatest(l.voting_groups - 1, 0) AS disagreement,
               count(*)::integer AS sources
          FROM listing_sources s
          JOIN resi.listings l ON l.zpid = s.zpid
          LEFT JOIN source_audits a ON a.source = s.source
         WHERE l.audited_at IS NULL
         GROUP BY l.zpid, l.consensus_score, l.voting_groups
    ), weighed AS (
        SELECT x.zpid, x.need + x.disagreement AS priority, x.sources,
               CASE WHEN x.disagreement > x.need THEN 'independent sources disagree' ELSE 'new sources' END AS reason
          FROM scored x
    ), ranked AS (
        SELECT w.zpid, w.priority, w.sources, w.reason
          FROM weighed w
         ORDER BY w.priority DESC, w.zpid
         LIMIT n - random_picks
    ), drawn AS (
        SELECT w.zpid, w.priority, w.sources, 'random' AS reason
          FROM weighed w
         WHERE NOT EXISTS (SELECT FROM ranked r WHERE r.zpid = w.zpid)
         ORDER BY random()
         LIMIT random_picks
    )
    SELECT p.zpid, p.reason, p.priority, p.sources
      FROM (SELECT 0 AS part, r.* FROM ranked r UNION ALL SELECT 1, d.* FROM drawn d) p
     ORDER BY p.part, p.priority DESC, p.zpid;
END
$$;

COMMENT ON FUNCTION resi.propose_audits(integer, double precision) IS
    'Up to n listings to audit next: those whose claims come from the least-audited sources (groups count their members'' audits together) or where independent sources disagree, plus a random share; skips listings whose audit is still in force.';

CREATE OR REPLACE FUNCTION resi.refresh_stale_consensus(max_listings integer DEFAULT 10000) RETURNS integer
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
AS $$
BEGIN
    IF max_listings < 0 THEN
        RAISE EXCEPTION 'resi.refresh_stale_consensus: max_listings must be >= 0, got %', max_listings
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM resi.refresh_group_trust();
    RETURN resi.refresh_consensus(ARRAY(
        SELECT s.zpid FROM resi.stale_consensus s ORDER BY s.last_updated_at, s.zpid LIMIT max_listings));
END
$$;

COMMENT ON FUNCTION resi.refresh_stale_consensus(integer) IS
    'Pool each group''s trust again (resi.refresh_group_trust), then recompute up to max_listings listings whose consensus was computed with weights their miners no longer have, oldest first. Returns the number refreshed.';

CREATE OR REPLACE VIEW resi.miner_leaderboard AS
SELECT rank() OVER (ORDER BY t.trust_score DESC) AS rank,
       t.miner_hotkey, t.trust_score, t.accuracy_score, t.duplicate_rate, t.total_submissions,
       t.rows_submitted, t.validated_submissions, t.validations_failed, t.strikes, t.bans,
       CASE WHEN t.banned_until > now() THEN t.banned_until END AS banned_until,
       t.last_submission,
       t.audited_claims,
       t.wrong_claims,
       g.group_hotkey
  FROM resi.miner_trust t
  LEFT JOIN resi.miner_groups g ON g.miner_hotkey = t.miner_hotkey;

COMMENT ON VIEW resi.miner_leaderboard IS 'Miners ranked by trust, with accuracy, duplicate rate, validations, strikes and bans, audited and wrong claims, and the group they vote with.';

CREATE VIEW resi.dependent_groups AS
SELECT g.group_hotkey,
       count(*)::integer AS members,
       array_agg(g.miner_hotkey ORDER BY g.miner_hotkey) AS miners,
       min(g.since) AS since,
       coalesce(max(g.trust), max(coalesce(t.trust_score, resi.initial_trust()))) AS voting_trust,
       coalesce(sum(t.audited_claims), 0)::bigint AS audited_claims,
       coalesce(sum(t.wrong_claims), 0)::bigint AS wrong_claims,
       coalesce(min(e.copied_claims), 0) AS copied_claims,
       coalesce(min(e.near_copies), 0) AS near_copies,
       coalesce(min(e.shared_false_values), 0) AS shared_false_values,
       coalesce(min(e.wrong_together), 0) AS wrong_together
  FROM resi.miner_groups g
  LEFT JOIN resi.miner_trust t ON t.miner_hotkey = g.miner_hotkey
  -- The evidence that joined the group: its members' rows of resi.miner_dependence, summed once.
  LEFT JOIN (SELECT m.group_hotkey, sum(d.shared_claims) AS copied_claims, sum(d.near_copies) AS near_copies,
                    sum(d.shared_false) AS shared_false_values, sum(d.wrong_together) AS wrong_together
               FROM resi.miner_dependence d
               JOIN resi.miner_groups m ON m.miner_hotkey = d.miner_hotkey
              GROUP BY m.group_hotkey) e ON e.group_hotkey = g.group_hotkey
 GROUP BY g.group_hotkey;

COMMENT ON VIEW resi.dependent_groups IS 'Groups of dependent miners: members, since when, the trust the group votes with (its members'' pooled evidence), pooled audits, and the evidence (copied claims, near copies, audited false values in common, judgements that found members wrong together).';

CREATE OR REPLACE FUNCTION resi.listing_detail(listing text)
    RETURNS TABLE (zpid text, uri text, address text, city text, state text, zip_code text, price bigint,
                   bedrooms integer, bathrooms numeric(3,1), living_area integer, home_type text, home_status text,
                   days_on_zillow integer, latitude double precision, longitude double precision,
                   confidence real, miners integer, attestations integer, first_seen_at timestamptz,
                   last_updated_at timestamptz, field_consensus jsonb, reports jsonb)
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT l.zpid, l.uri, l.address, l.city, l.state, l.zip_code, l.price, l.bedrooms, l.bathrooms, l.living_area,
           l.home_type, l.home_status, l.days_on_zillow, l.latitude, l.longitude, l.consensus_score,
           l.unique_miners_count, l.total_attestations, l.first_seen_at, l.last_updated_at, l.field_consensus,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'miner', c.miner_hotkey,
                       'first_seen_at', c.first_seen_at,
                       'last_seen_at', c.submission_timestamp,
                       'attestations', c.attestations,
                       'group', (SELECT g.group_hotkey FROM resi.miner_groups g WHERE g.miner_hotkey = c.miner_hotkey),
                       'validated', EXISTS (SELECT FROM resi.miner_attestations a
                                             WHERE a.zpid = listing AND a.miner_hotkey = c.miner_hotkey
                                               AND a.is_validated))
                       ORDER BY c.miner_hotkey), '[]'::jsonb)
              FROM resi.miner_claims c WHERE c.zpid = listing)
      FROM resi.listings l
     -- Every distributed table filtered by the zpid itself: Citus routes the query to one shard
     -- (correlated on l.zpid, it asked every shard).
     WHERE l.zpid = listing AND l.consensus_score IS NOT NULL;
END
$$;
COMMENT ON FUNCTION resi.listing_detail(text) IS
    'What api.listing returns (its query, run as the caller: api.listing runs it as the owner).';

CREATE OR REPLACE FUNCTION api.listing(zpid text)
    RETURNS TABLE (zpid text, uri text, address text, city text, state text, zip_code text, price bigint,
                   bedrooms integer, bathrooms numeric(3,1), living_area integer, home_type text, home_status text,
                   days_on_zillow integer, latitude double precision, longitude double precision,
                   confidence real, miners integer, attestations integer, first_seen_at timestamptz,
                   last_updated_at timestamptz, field_consensus jsonb, reports jsonb)
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SECURITY DEFINER -- reads the claims and attestations, which resi_reader cannot
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT * FROM resi.listing_detail(listing.zpid);
END;

COMMENT ON FUNCTION api.listing(text) IS
    'One listing: consensus values, field_consensus (per field value, confidence, agreement, and supporters and voters counted in independent sources) and reports (per miner: first/last seen, attestations, the group it votes with, validated).';

REVOKE EXECUTE ON FUNCTION resi.earn_trust(text[]), resi.refresh_group_trust(), resi.propose_audits(integer, double precision)
    FROM PUBLIC;

-- Every miner's trust is what its evidence earns: its validations so far are its audited
-- claims; agreement is counted from the next upload on. Listings become stale and are
-- recomputed by resi.refresh_stale_consensus (the loader's passes).
UPDATE resi.miner_trust t SET audited_claims = t.validated_submissions, wrong_claims = t.validations_failed
 WHERE t.validated_submissions > 0;
UPDATE resi.miner_trust t SET trust_score = resi.earned_trust(t), trust_changed_at = now()
 WHERE t.trust_score IS DISTINCT FROM resi.earned_trust(t);

-- One independent source is not confirmation: at most medium confidence (resi.listing_consensus).
UPDATE resi.listings SET consensus_score = 0.5 WHERE voting_groups < 2 AND consensus_score > 0.5;

-- ---------------------------------------------------------------------------------------------
-- The batched fold (issue 15): one statement may hold many submissions; low quality is
-- struck first (resi.penalise_submissions), the verdicts are applied set-based
-- (resi.judge_submissions), and admission counts a batch's pending objects.
-- ---------------------------------------------------------------------------------------------
-- 0.5.0: one submission's verdict, what resi.judge_submissions applies: the rows of one miner,
-- ledger row, file and upload time in a fold, judged against the consensus they helped form.
CREATE TYPE resi.submission_verdict AS (
    miner_hotkey         text,
    ledger_id            bigint,           -- resi.ingest_ledger.id (NULL: not sent by a loader)
    s3_file_path         text,
    submission_timestamp timestamptz,
    quality              resi.quality_report,
    rows                 bigint,           -- staged rows
    fields_compared      bigint,           -- fields a corroborated consensus could judge
    fields_agreed        bigint,           -- of those, agreeing within the tolerance
    corroborated_rows    bigint,           -- rows with at least one field judged
    agreeing_rows        bigint            -- of those, agreeing in every judged field
);

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

-- Strikes for low quality, before a fold attests anything: every submission whose quality
-- scores below 0.3 earns one (resi.add_strike), a miner's oldest first (upload time, ledger
-- row, file). When a strike bans its miner, the miner's later submissions in `judged` are left
-- out: not folded, their ledger rows deferred with the ban as the reason, and retried by a
-- later pass once the ban ends (as admission defers an object that comes alone). Only
-- submissions with a ledger row can be left out; others are folded. Loops over the
-- low-quality submissions only. Returns the ledger ids left out ('{}' when none).
CREATE FUNCTION resi.penalise_submissions(judged resi.submission_verdict[]) RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    low      resi.submission_verdict;
    banned   resi.submission_verdict[] := '{}'; -- the submission that banned each miner
    left_out bigint[];
    hotkeys  text[];
    reasons  text[];
BEGIN
    FOR low IN
        SELECT v.* FROM unnest(judged) v
         WHERE (v.quality).score < 0.3
         ORDER BY v.miner_hotkey, v.submission_timestamp, v.ledger_id, v.s3_file_path
    LOOP
        CONTINUE WHEN low.miner_hotkey IN (SELECT b.miner_hotkey FROM unnest(banned) b);
        IF resi.add_strike(low.miner_hotkey, format('low_quality: %s scored %s (%s)',
               coalesce(low.s3_file_path, 'a submission'), round((low.quality).score::numeric, 3),
               array_to_string((low.quality).issues, ', '))) IS NOT NULL THEN
            banned := banned || low;
        END IF;
    END LOOP;
    IF cardinality(banned) = 0 THEN
        RETURN '{}';
    END IF;
    left_out := ARRAY(
        SELECT v.ledger_id
          FROM unnest(judged) v
          JOIN unnest(banned) b ON b.miner_hotkey = v.miner_hotkey
         WHERE v.ledger_id IS NOT NULL
           AND (v.submission_timestamp, v.ledger_id, coalesce(v.s3_file_path, ''))
               > (b.submission_timestamp, coalesce(b.ledger_id, 0), coalesce(b.s3_file_path, '')));
    -- The bans' reasons are read first: on Citus an UPDATE may not call a stable function
    -- (format of a timestamptz) on the columns of the reference table it joins.
    SELECT array_agg(t.miner_hotkey), array_agg(format('banned: until %s (%s)', t.banned_until, t.ban_reason))
      INTO hotkeys, reasons
      FROM resi.miner_trust t
     WHERE t.miner_hotkey = ANY (ARRAY(SELECT b.miner_hotkey FROM unnest(banned) b));
    UPDATE resi.ingest_ledger g SET status = 'deferred', reason = r.reason
      FROM unnest(hotkeys, reasons) AS r(miner_hotkey, reason)
     WHERE g.id = ANY (left_out) AND r.miner_hotkey = g.miner_hotkey;
    RETURN left_out;
END
$$;

-- Apply submissions' verdicts: set-based, one statement per table, whatever their number.
--   * Each miner's day counts (resi.miner_submission_days) and totals (resi.miner_trust: the
--     submissions, rows, duplicates, fields compared and agreed) grow by the sums.
--   * Agreement evidence decays 0.8 per submission: a miner's submissions apply oldest first
--     (upload time, ledger row, file), each with the trust it leaves (resi.earned_trust of the
--     evidence after it), which its ledger row records; the miner keeps the last. A submission
--     of quality below 0.3 (struck: resi.penalise_submissions) adds no agreement evidence: spam
--     that repeats other sources' listings says nothing of its sender's accuracy.
--   * Each ledger row gets its verdict: quality, accuracy, row agreement, trust after.
-- Miners are locked in hotkey order (their day and trust rows, until the transaction ends), so
-- concurrent folds serialise per miner and never deadlock on them. NULL or empty: nothing to
-- do. Returns the number of verdicts applied.
CREATE FUNCTION resi.judge_submissions(verdicts resi.submission_verdict[]) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at      timestamptz := now();
    initial double precision := resi.initial_trust();
BEGIN
    IF coalesce(cardinality(verdicts), 0) = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO resi.miner_submission_days AS d (miner_hotkey, day, submissions)
    SELECT v.miner_hotkey, (v.submission_timestamp AT TIME ZONE 'UTC')::date, count(*)
      FROM unnest(verdicts) v
     GROUP BY 1, 2
     ORDER BY 1, 2
    ON CONFLICT (miner_hotkey, day) DO UPDATE SET submissions = d.submissions + excluded.submissions;

    -- Totals. A backfill of an earlier day does not move "today".
    INSERT INTO resi.miner_trust AS t (miner_hotkey, trust_score, total_submissions, last_submission,
                                       submissions_today, last_submission_date, rows_submitted, duplicate_rows,
                                       duplicate_rate, fields_compared, fields_agreed, accuracy_score, updated_at)
    SELECT m.miner_hotkey, initial, m.submissions, m.last_submission, d.submissions, m.last_day, m.rows,
           m.duplicates, m.duplicates::float8 / m.rows, m.fields_compared, m.fields_agreed,
           m.fields_agreed::float8 / nullif(m.fields_compared, 0), at
      FROM (SELECT v.miner_hotkey, count(*) AS submissions, max(v.submission_timestamp) AS last_submission,
                   max((v.submission_timestamp AT TIME ZONE 'UTC')::date) AS last_day, sum(v.rows) AS rows,
                   sum((v.quality).duplicate_zpids) AS duplicates, sum(v.fields_compared) AS fields_compared,
                   sum(v.fields_agreed) AS fields_agreed
              FROM unnest(verdicts) v
             GROUP BY v.miner_hotkey) m
      JOIN resi.miner_submission_days d ON d.miner_hotkey = m.miner_hotkey AND d.day = m.last_day
     ORDER BY m.miner_hotkey
    ON CONFLICT (miner_hotkey) DO UPDATE SET
        total_submissions    = t.total_submissions + excluded.total_submissions,
        last_submission      = greatest(t.last_submission, excluded.last_submission),
        submissions_today    = CASE WHEN t.last_submission_date IS NULL OR excluded.last_submission_date >= t.last_submission_date
                                    THEN excluded.submissions_today ELSE t.submissions_today END,
        last_submission_date = greatest(t.last_submission_date, excluded.last_submission_date),
        rows_submitted       = t.rows_submitted + excluded.rows_submitted,
        duplicate_rows       = t.duplicate_rows + excluded.duplicate_rows,
        duplicate_rate       = (t.duplicate_rows + excluded.duplicate_rows)::float8 / (t.rows_submitted + excluded.rows_submitted),
        fields_compared      = t.fields_compared + excluded.fields_compared,
        fields_agreed        = t.fields_agreed + excluded.fields_agreed,
        accuracy_score       = (t.fields_agreed + excluded.fields_agreed)::float8
                                   / nullif(t.fields_compared + excluded.fields_compared, 0),
        -- The time goes through the inserted row: Citus sends DO UPDATE to the shards with
        -- PL/pgSQL's variables left as parameters, which they cannot type.
        updated_at           = excluded.updated_at;

    -- Agreement evidence and trust after each submission. The miners' rows are locked by the
    -- statement above, so their current evidence cannot change under this one.
    WITH steps AS (
        SELECT t.miner_hotkey, 0::bigint AS step, NULL::bigint AS ledger_id,
               t.corroborated_rows AS corroborated, t.agreeing_rows AS agreeing
          FROM resi.miner_trust t
         WHERE t.miner_hotkey IN (SELECT v.miner_hotkey FROM unnest(verdicts) v)
        UNION ALL
        SELECT v.miner_hotkey,
               row_number() OVER (PARTITION BY v.miner_hotkey
                                      ORDER BY v.submission_timestamp, v.ledger_id, v.s3_file_path),
               v.ledger_id,
               CASE WHEN (v.quality).score >= 0.3 THEN v.corroborated_rows ELSE 0 END,
               CASE WHEN (v.quality).score >= 0.3 THEN v.agreeing_rows ELSE 0 END
          FROM unnest(verdicts) v
    ), evidence AS (
        SELECT s.miner_hotkey, s.step, s.ledger_id,
               resi.decayed_sum(s.corroborated, 0.8) OVER w AS corroborated,
               resi.decayed_sum(s.agreeing, 0.8) OVER w AS agreeing,
               s.step = max(s.step) OVER (PARTITION BY s.miner_hotkey) AS last
          FROM steps s
        WINDOW w AS (PARTITION BY s.miner_hotkey ORDER BY s.step)
    ), earned AS (
        SELECT e.*, resi.earned_trust(t.audited_claims, t.wrong_claims, e.corroborated,
                                      least(e.agreeing, e.corroborated), initial) AS trust
          FROM evidence e
          JOIN resi.miner_trust t ON t.miner_hotkey = e.miner_hotkey
         WHERE e.step > 0
    ), miners AS (
        UPDATE resi.miner_trust t SET
            corroborated_rows = e.corroborated,
            agreeing_rows     = least(e.agreeing, e.corroborated),
            trust_score       = e.trust,
            trust_changed_at  = CASE WHEN e.trust <> t.trust_score THEN at ELSE t.trust_changed_at END
          FROM earned e
         WHERE e.last AND t.miner_hotkey = e.miner_hotkey
    )
    UPDATE resi.ingest_ledger g SET
        quality_score      = (v.quality).score,
        quality_issues     = (v.quality).issues,
        duplicate_zpids    = (v.quality).duplicate_zpids,
        distinct_zip_codes = (v.quality).distinct_zips,
        accuracy           = v.fields_agreed::float8 / nullif(v.fields_compared, 0),
        row_agreement      = v.agreeing_rows::float8 / nullif(v.corroborated_rows, 0),
        trust_score        = e.trust
      FROM unnest(verdicts) v
      JOIN earned e ON e.ledger_id = v.ledger_id
     WHERE g.id = v.ledger_id;
    RETURN cardinality(verdicts);
END
$$;
COMMENT ON FUNCTION resi.judge_submissions(resi.submission_verdict[]) IS
    'Apply submissions'' verdicts set-based: day counts and totals, agreement evidence and trust after each submission (a miner''s oldest first), ledger rows. Returns the verdicts applied.';
COMMENT ON FUNCTION resi.penalise_submissions(resi.submission_verdict[]) IS
    'Strike every submission of quality below 0.3, a miner''s oldest first; a miner a strike bans has its later submissions left out (ledger rows deferred). Returns the ledger ids left out.';
REVOKE EXECUTE ON FUNCTION resi.judge_submissions(resi.submission_verdict[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION resi.penalise_submissions(resi.submission_verdict[]) FROM PUBLIC;

ALTER TABLE resi.ingest_runs ADD COLUMN stage_seconds jsonb;

DROP FUNCTION resi.admit_submission(text, timestamptz, boolean);
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
REVOKE EXECUTE ON FUNCTION resi.admit_submission(text, timestamptz, boolean, integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Aggregates and helpers at the floor (issue 16)
-- ---------------------------------------------------------------------------------------------
-- resi.check_miner_rate_limit in Rust (resi_pg/src/rate_limit.rs): two primary-key reads with
-- the statement's snapshot, without starting an executor per call as PL/pgSQL did; same
-- signature, defaults, contract and errors. CREATE OR REPLACE keeps its comment.
CREATE OR REPLACE FUNCTION resi.check_miner_rate_limit(
    hotkey      text,
    submissions integer DEFAULT 1,
    on_day      date    DEFAULT (now() AT TIME ZONE 'UTC')::date
) RETURNS boolean
    LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'check_miner_rate_limit_wrapper';

-- ---------------------------------------------------------------------------------------------
-- Editions (issue 17)
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.edition() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'native';
COMMENT ON FUNCTION resi.edition() IS
    'Which edition of resi_pg is installed: native (Rust) or portable (SQL and PL/pgSQL, for hosted PostgreSQL). Both offer the same SQL API.';

-- The tile from columns (sql/tiles.sql), in both editions, and resi.listing_tile calling it (no
-- aggregate state per row: the portable edition's aggregate is quadratic in a tile's listings).
CREATE FUNCTION resi.listing_tile_layer_of(
	"zpids" TEXT[],
	"longitudes" double precision[],
	"latitudes" double precision[],
	"prices" bigint[],
	"bedrooms" INT[],
	"confidences" real[],
	"z" INT,
	"x" INT,
	"y" INT
) RETURNS bytea
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'listing_tile_layer_of_wrapper';
COMMENT ON FUNCTION resi.listing_tile_layer_of(text[], double precision[], double precision[], bigint[], integer[], real[], integer, integer, integer) IS
    'resi.listing_tile_layer of listings given as columns (element i of every array is listing i, in order): the same Mapbox Vector Tile bytes. NULL when there is no listing.';
CREATE OR REPLACE FUNCTION resi.listing_tile(z integer, x integer, y integer) RETURNS bytea
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    -- Planned for this tile's bounds, so the location index serves it (a generic plan cannot
    -- tell a city tile from the whole world).
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    b    record;
    tile bytea;
BEGIN
    SELECT * INTO b FROM resi.tile_bounds(z, x, y);
    SELECT resi.listing_tile_layer_of(array_agg(t.zpid), array_agg(t.longitude), array_agg(t.latitude),
                                      array_agg(t.price), array_agg(t.bedrooms), array_agg(t.consensus_score), z, x, y)
      INTO tile
      FROM (SELECT l.zpid, l.longitude, l.latitude, l.price, l.bedrooms, l.consensus_score
              FROM resi.listings l
             WHERE l.latitude >= b.min_latitude AND l.latitude < b.max_latitude
               AND l.longitude >= b.min_longitude AND l.longitude < b.max_longitude
               AND l.consensus_score IS NOT NULL
             ORDER BY l.consensus_score DESC, l.zpid
             LIMIT 50000) t;
    RETURN coalesce(tile, '\x'::bytea);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Scale-out on Citus (issue 18): resi.distribute (sql/distribute.sql; its design is explained
-- at the top of that file).
-- ---------------------------------------------------------------------------------------------
-- Whether resi.listings is a Citus table (resi.distribute ran). A database without Citus has no
-- pg_dist_partition: PL/pgSQL plans the query naming it only when it runs, here only where the
-- catalog exists. STABLE, PARALLEL SAFE, never NULL.
CREATE FUNCTION resi.listings_distributed() RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = 'resi.listings'::regclass);
END
$$;
COMMENT ON FUNCTION resi.listings_distributed() IS
    'Whether resi.listings is a Citus table (resi.distribute ran in this database).';

-- Lock the listings `zpids` (every listing when NULL) until the transaction ends, for a writer of
-- their consensus: the rows in zpid order on a single node; on a distributed database (Citus
-- runs no multi-shard SELECT … FOR UPDATE) one transaction-level advisory lock for all listings,
-- so such writers run one at a time there (a lock per listing would not do: a fold locks up to
-- ~50,000 listings, and advisory locks live in the shared lock table). VOLATILE; not executable
-- by PUBLIC (resi.refresh_consensus and resi.archive_batch_delete call it as their owner).
CREATE FUNCTION resi.lock_listings(zpids text[]) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF resi.listings_distributed() THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('resi.listings', 0));
    ELSIF zpids IS NULL THEN
        PERFORM 1 FROM resi.listings ORDER BY zpid FOR UPDATE;
    ELSE
        PERFORM 1 FROM resi.listings WHERE zpid = ANY (zpids) ORDER BY zpid FOR UPDATE;
    END IF;
END
$$;
COMMENT ON FUNCTION resi.lock_listings(text[]) IS
    'Lock these listings (all when NULL) for a writer of their consensus until the transaction ends: their rows in zpid order, or on a distributed database one advisory lock for all.';
REVOKE EXECUTE ON FUNCTION resi.lock_listings(text[]) FROM PUBLIC;

-- The extension's tables resi.distribute makes Citus tables: those distributed by zpid,
-- co-located with the first (`distributed`), or the reference tables (NOT `distributed`), in the
-- order it creates them. IMMUTABLE, PARALLEL SAFE; NULL for NULL.
CREATE FUNCTION resi.citus_tables(distributed boolean) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN distributed
                THEN ARRAY['resi.listings', 'resi.miner_claims', 'resi.miner_attestations', 'resi.listing_history',
                           'resi.audits', 'resi.listing_refresh']
                WHEN NOT distributed
                THEN ARRAY['resi.miner_trust', 'resi.miner_groups', 'resi.miner_dependence',
                           'resi.miner_penalties', 'resi.blacklist', 'resi.audit_verdicts',
                           'resi.judged_pair_totals', 'resi.settled_judgements'] END;
COMMENT ON FUNCTION resi.citus_tables(boolean) IS
    'The tables resi.distribute distributes by zpid (true) or makes reference tables (false).';

-- Prepares this node's copies of resi.citus_tables for Citus, as the top of this file says:
-- every node gets the key changes; a worker (group id <> 0) also refuses a copy holding rows,
-- gets Citus's TRUNCATE trigger on each copy and moves the copies' sequences to its own range;
-- with `detach` the tables and their sequences leave the extension. Every step is idempotent and
-- skips what is done. On a worker that joined after resi.distribute, Citus already treats the
-- copies as its tables (the shells of the distributed ones): their rows are the shards', so
-- there is nothing to check, and the changes are kept local (citus.enable_ddl_propagation off
-- for the transaction). Run on each node by resi.distribute and resi.prepare_workers (the
-- formats name catalogue objects only: regclass, %I). VOLATILE; not executable by PUBLIC.
-- Errors: 55000 when a worker's copy not yet a Citus table holds rows.
CREATE FUNCTION resi.prepare_node(detach boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET client_min_messages = warning
AS $$
DECLARE
    tables   regclass[] := (resi.citus_tables(true) || resi.citus_tables(false))::regclass[];
    group_id integer := (SELECT groupid FROM pg_catalog.pg_dist_local_group);
    resi_pg  oid := (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'resi_pg');
    t        regclass;
    holds    boolean := false;
    member   record;
    seq      record;
    first_id bigint := ((group_id::bigint) << 48) + 1;
BEGIN
    IF group_id <> 0 THEN
        -- A worker's changes stay on the worker (on one that joined after resi.distribute, the
        -- copies are Citus's tables already), until this function returns.
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    END IF;
    -- Every unique key includes zpid (the foreign key on audits' first: it depends on their key).
    ALTER TABLE resi.audit_verdicts DROP CONSTRAINT IF EXISTS audit_verdicts_audit_id_fkey;
    FOR member IN
        SELECT c.conrelid::regclass AS name, c.conname
          FROM pg_catalog.pg_constraint c
         WHERE c.conrelid IN ('resi.miner_attestations'::regclass, 'resi.listing_history'::regclass, 'resi.audits'::regclass)
           AND c.contype = 'p' AND pg_catalog.pg_get_constraintdef(c.oid) = 'PRIMARY KEY (id)'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I PRIMARY KEY (zpid, id)',
                                  member.name, member.conname, member.conname);
    END LOOP;
    ALTER TABLE resi.listings DROP CONSTRAINT IF EXISTS listings_uri_key;
    CREATE INDEX IF NOT EXISTS listings_uri_idx ON resi.listings (uri);

    IF group_id <> 0 THEN
        FOREACH t IN ARRAY tables LOOP
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t) THEN
                EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s)', t) INTO holds;
            END IF;
            IF holds THEN
                RAISE EXCEPTION 'resi.prepare_node: % holds rows on this worker (group %): the distributed table would hide them', t, group_id
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                            WHERE g.tgrelid = t AND g.tgfoid = 'pg_catalog.citus_truncate_trigger'::regproc) THEN
                PERFORM pg_catalog.worker_create_truncate_trigger(t);
            END IF;
        END LOOP;
        FOR seq IN
            SELECT d.objid::regclass AS name
              FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_sequence s ON s.seqrelid = d.objid
             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
               AND d.refobjid = ANY (tables) AND d.deptype = 'a'
               AND s.seqtypid = 'pg_catalog.int8'::regtype AND s.seqmin <> first_id
        LOOP
            EXECUTE pg_catalog.format('ALTER SEQUENCE %s MINVALUE %s MAXVALUE %s START %s RESTART',
                                      seq.name, first_id, first_id + (1::bigint << 48), first_id);
        END LOOP;
    END IF;

    IF detach THEN
        FOR member IN
            SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, c.oid::regclass AS name
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_depend e ON e.classid = 'pg_catalog.pg_class'::regclass AND e.objid = c.oid
                                         AND e.refclassid = 'pg_catalog.pg_extension'::regclass
                                         AND e.refobjid = resi_pg AND e.deptype = 'e'
             WHERE c.oid = ANY (tables)
                OR c.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                              WHERE d.classid = 'pg_catalog.pg_class'::regclass
                                AND d.refclassid = 'pg_catalog.pg_class'::regclass
                                AND d.refobjid = ANY (tables) AND d.deptype = 'a')
             ORDER BY c.relkind DESC, c.oid
        LOOP
            EXECUTE pg_catalog.format('ALTER EXTENSION resi_pg DROP %s %s', member.kind, member.name);
        END LOOP;
    END IF;
END
$$;
COMMENT ON FUNCTION resi.prepare_node(boolean) IS
    'Prepares this node''s copies of the tables resi.distribute moves (keys with zpid; on a worker also the TRUNCATE trigger and its own id range; with detach, out of the extension); idempotent. Called by resi.distribute and resi.prepare_workers.';
REVOKE EXECUTE ON FUNCTION resi.prepare_node(boolean) FROM PUBLIC;

-- Prepares every registered worker's copies of the tables (resi.prepare_node(true) on each, over
-- its own connection, committed at once): resi.distribute's first step, and for an operator the
-- step after adding a worker to a distributed database (citus_add_node, then this, then
-- rebalance_table_shards), so the new worker's copies get the keys, TRUNCATE trigger, id range
-- and extension membership the first workers' got. Idempotent. Returns the number of workers.
-- VOLATILE, PARALLEL UNSAFE. Errors: 42501 when the current user is not a superuser; 55000
-- without Citus, on a worker, without a worker registered, when a worker lacks the coordinator's
-- resi_pg version, or its preparation fails (a copy holding rows).
CREATE FUNCTION resi.prepare_workers() RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET client_min_messages = warning
AS $$
DECLARE
    version text := (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'resi_pg');
    failure record;
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'resi.prepare_workers: only a superuser can prepare the workers (current user: %)', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'resi.prepare_workers: Citus is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'CREATE EXTENSION citus on every node, register the coordinator (citus_set_coordinator_host) and the workers (citus_add_node), then call resi.distribute() on the coordinator.';
    END IF;
    IF (SELECT l.groupid FROM pg_catalog.pg_dist_local_group l) <> 0 THEN
        RAISE EXCEPTION 'resi.prepare_workers: this node is a Citus worker; call it on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node n
                    WHERE n.groupid <> 0 AND n.isactive AND n.noderole = 'primary') THEN
        RAISE EXCEPTION 'resi.prepare_workers: no worker is registered in this database''s Citus metadata'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT citus_add_node(host, port) for every worker (each with CREATE EXTENSION citus and resi_pg in this database).';
    END IF;
    FOR failure IN
        SELECT w.nodename, w.nodeport, w.result
          FROM pg_catalog.run_command_on_workers(
                   pg_catalog.format('SELECT extversion FROM pg_catalog.pg_extension WHERE extname = %L', 'resi_pg')) w
         WHERE NOT w.success OR w.result IS DISTINCT FROM version
    LOOP
        RAISE EXCEPTION 'resi.prepare_workers: worker %:% does not have resi_pg % in this database (%)',
            failure.nodename, failure.nodeport, version, failure.result
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'CREATE EXTENSION resi_pg (the coordinator''s version) on every worker.';
    END LOOP;
    FOR failure IN
        SELECT w.nodename, w.nodeport, w.result
          FROM pg_catalog.run_command_on_workers('SELECT resi.prepare_node(true)') w
         WHERE NOT w.success
    LOOP
        RAISE EXCEPTION 'resi.prepare_workers: preparing worker %:% failed: %', failure.nodename, failure.nodeport, failure.result
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END LOOP;
    RETURN (SELECT count(*) FROM pg_catalog.pg_dist_node n WHERE n.groupid <> 0 AND n.isactive AND n.noderole = 'primary');
END
$$;
COMMENT ON FUNCTION resi.prepare_workers() IS
    'Run by a superuser on the Citus coordinator: prepares every worker''s copies of the tables as resi.distribute did (its first step), so a worker added later (citus_add_node) matches the others before rebalancing; idempotent; returns the number of workers. Errors: 42501 not a superuser; 55000 no Citus, not the coordinator, no worker registered, resi_pg missing on a worker, or a worker''s copy holding rows.';
REVOKE EXECUTE ON FUNCTION resi.prepare_workers() FROM PUBLIC;

-- VOLATILE, PARALLEL UNSAFE, returns nothing. Runs in the caller's transaction, except the
-- workers' preparation (resi.prepare_workers: their own connections, committed at once):
-- every step of it is idempotent, so a call that fails or is rolled back after it leaves the
-- workers ready for the next call. Takes a transaction-level advisory lock: one call at a time.
-- Errors: 42501 when the current user is not a superuser; 22023 for a NULL shard_count or one
-- below 1; 55000 without Citus, on a worker, without the coordinator or a worker registered,
-- when a worker lacks the coordinator's resi_pg version or its copy of a table holds rows, and
-- when the database is already distributed (a worker added since: resi.prepare_workers).
CREATE FUNCTION resi.distribute(shard_count integer DEFAULT 4) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET client_min_messages = warning
AS $$
DECLARE
    distributed constant text[] := resi.citus_tables(true);
    reference   constant text[] := resi.citus_tables(false);
    tables      constant text[] := distributed || reference;
    t           text;
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'resi.distribute: only a superuser can distribute the tables (current user: %)', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF shard_count IS NULL OR shard_count < 1 THEN
        RAISE EXCEPTION 'resi.distribute: shard_count must be at least 1, got %', shard_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'resi.distribute: Citus is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'CREATE EXTENSION citus on every node, register the coordinator (citus_set_coordinator_host) and the workers (citus_add_node), then call resi.distribute() on the coordinator.';
    END IF;
    -- One call at a time; the checks below see what an earlier call committed.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('resi.distribute', 0));
    IF (SELECT l.groupid FROM pg_catalog.pg_dist_local_group l) <> 0 THEN
        RAISE EXCEPTION 'resi.distribute: this node is a Citus worker; call it on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node n WHERE n.groupid = 0 AND n.isactive) THEN
        RAISE EXCEPTION 'resi.distribute: the coordinator is not registered in this database''s Citus metadata'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT citus_set_coordinator_host(host, port): the reference tables need a copy on the coordinator, where the loader''s tables stay.';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid::text = ANY (tables)) THEN
        RAISE EXCEPTION 'resi.distribute: the database is already distributed'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Citus tables: ' || (SELECT pg_catalog.string_agg(p.logicalrelid::text, ', ' ORDER BY p.logicalrelid::text)
                                                  FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid::text = ANY (tables)),
                  HINT = 'After adding a worker (citus_add_node), SELECT resi.prepare_workers(), then rebalance_table_shards().';
    END IF;

    -- The workers' copies first: their own connections, committed whatever happens here.
    PERFORM resi.prepare_workers();
    PERFORM resi.prepare_node(false);

    -- Distributed while still extension members (see the top of sql/distribute.sql), which
    -- copies their rows to the shards; then the coordinator's copies of the rows, now hidden,
    -- are removed.
    PERFORM pg_catalog.create_distributed_table(distributed[1], 'zpid', shard_count => shard_count,
                                                colocate_with => 'none');
    FOREACH t IN ARRAY distributed[2:] LOOP
        PERFORM pg_catalog.create_distributed_table(t, 'zpid', colocate_with => distributed[1]);
    END LOOP;
    FOREACH t IN ARRAY reference LOOP
        PERFORM pg_catalog.create_reference_table(t);
    END LOOP;
    FOREACH t IN ARRAY tables LOOP
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(t);
    END LOOP;
    PERFORM resi.prepare_node(true);
END
$$;
COMMENT ON FUNCTION resi.distribute(integer) IS
    'Run once by a superuser on the Citus coordinator (citus and resi_pg on every node, coordinator and workers registered): distributes resi.listings, miner_claims, miner_attestations, listing_history and audits by zpid in shard_count co-located shards, makes the other per-miner tables, the blacklist, audit_verdicts, judged_pair_totals and settled_judgements reference tables, keeps staging, ingest, the submission day counts and archive bookkeeping on the coordinator; rows are kept. Every unique key then includes zpid (PRIMARY KEY (zpid, id); UNIQUE (uri) becomes an index) and the tables and their sequences leave the extension on every node. Errors: 42501 not a superuser; 22023 shard_count below 1 or NULL; 55000 no Citus, not the coordinator, coordinator or workers not registered, resi_pg missing on a worker, a worker''s copy holding rows, or already distributed.';
-- A superuser's act (it checks): nobody else may even try.
REVOKE EXECUTE ON FUNCTION resi.distribute(integer) FROM PUBLIC;

-- Citus (issue 18): the functions it could not plan or run over distributed tables. The API
-- and archive queries are PL/pgSQL's, the stale listings a join, and ON CONFLICT DO UPDATE
-- takes the time from the inserted row.
CREATE OR REPLACE VIEW resi.stale_consensus AS
SELECT l.zpid, l.last_updated_at
  FROM resi.listings l
  LEFT JOIN (SELECT c.zpid, bit_xor(c.trust_fingerprint) AS trust_fingerprint
               FROM resi.weighted_claims c
              GROUP BY c.zpid) now ON now.zpid = l.zpid
 WHERE l.trust_fingerprint IS DISTINCT FROM now.trust_fingerprint;
COMMENT ON VIEW resi.stale_consensus IS
    'The listings whose consensus was computed with other weights than their miners have now (resi.stale_listing of every listing), with when each was last computed.';

CREATE OR REPLACE FUNCTION resi.stale_listings() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT count(*) FROM resi.stale_consensus;
END;
COMMENT ON FUNCTION resi.stale_listings() IS
    'How many listings resi.refresh_stale_consensus still has to recompute.';

CREATE OR REPLACE FUNCTION resi.ban_miner(hotkey text, reason text, duration interval DEFAULT NULL) RETURNS timestamptz
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

CREATE OR REPLACE FUNCTION resi.record_miner_submission(
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

CREATE OR REPLACE FUNCTION resi.archivable_listings(cutoff timestamptz)
    RETURNS TABLE (zpid text, month date)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN QUERY
    SELECT l.zpid, date_trunc('month', coalesce(r.last_reported_at, l.last_updated_at) AT TIME ZONE 'UTC')::date
      FROM resi.listings l
      LEFT JOIN LATERAL (SELECT max(c.submission_timestamp) AS last_reported_at
                           FROM resi.miner_claims c WHERE c.zpid = l.zpid) r ON true
     WHERE r.last_reported_at IS NULL OR r.last_reported_at < archivable_listings.cutoff;
END
$$;
COMMENT ON FUNCTION resi.archivable_listings(timestamptz) IS
    'Listings no miner has reported since cutoff, with the month (UTC) of their last report: what resi-loader archive moves out.';

CREATE OR REPLACE FUNCTION resi.archivable_attestations(cutoff timestamptz)
    RETURNS TABLE (id bigint, month date)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN QUERY
    SELECT a.id, date_trunc('month', a.submission_timestamp AT TIME ZONE 'UTC')::date
      FROM resi.miner_attestations a
     WHERE a.submission_timestamp < archivable_attestations.cutoff
       -- A claim and its attestation are of one listing (on Citus: of one shard).
       AND NOT EXISTS (SELECT FROM resi.miner_claims c WHERE c.zpid = a.zpid AND c.attestation_id = a.id);
END
$$;
COMMENT ON FUNCTION resi.archivable_attestations(timestamptz) IS
    'Attestations submitted before cutoff that back no current claim, with their month (UTC): what resi-loader archive moves out.';

CREATE OR REPLACE FUNCTION api.search_listings(
    zip_code       text             DEFAULT NULL,
    min_price      bigint           DEFAULT NULL,
    max_price      bigint           DEFAULT NULL,
    home_status    text             DEFAULT NULL,
    min_confidence real             DEFAULT NULL,
    bbox           double precision[] DEFAULT NULL,
    updated_since  timestamptz      DEFAULT NULL,
    "limit"        integer          DEFAULT 100,
    after          text             DEFAULT NULL)
    RETURNS SETOF api.listings
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT l.*
      FROM api.listings l
     WHERE (search_listings.zip_code IS NULL OR l.zip_code = search_listings.zip_code)
       AND (search_listings.min_price IS NULL OR l.price >= search_listings.min_price)
       AND (search_listings.max_price IS NULL OR l.price <= search_listings.max_price)
       AND (search_listings.home_status IS NULL OR l.home_status = search_listings.home_status)
       AND (search_listings.min_confidence IS NULL OR l.confidence >= search_listings.min_confidence)
       AND (search_listings.bbox IS NULL
            OR (l.latitude BETWEEN search_listings.bbox[2] AND search_listings.bbox[4]
                AND l.longitude BETWEEN search_listings.bbox[1] AND search_listings.bbox[3]))
       AND (search_listings.updated_since IS NULL OR l.last_updated_at >= search_listings.updated_since)
       AND (search_listings.after IS NULL OR l.zpid > search_listings.after)
     ORDER BY l.zpid
     LIMIT least(greatest(coalesce(search_listings."limit", 100), 1), 1000);
END
$$;
COMMENT ON FUNCTION api.search_listings(text, bigint, bigint, text, real, double precision[], timestamptz, integer, text) IS
    'Listings matching the given filters (NULL: any), in zpid order, `limit` (1..1000) after the zpid `after` (keyset pagination).';

CREATE OR REPLACE FUNCTION resi.zip_code_stats(code text)
    RETURNS TABLE (zip_code text, listings bigint, median_price double precision, min_price bigint,
                   max_price bigint, mean_confidence double precision, high_confidence bigint,
                   medium_confidence bigint, low_confidence bigint, last_updated_at timestamptz)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT l.zip_code, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY l.price), min(l.price), max(l.price),
           avg(l.confidence), count(*) FILTER (WHERE l.confidence >= 0.8),
           count(*) FILTER (WHERE l.confidence >= 0.5 AND l.confidence < 0.8),
           count(*) FILTER (WHERE l.confidence < 0.5), max(l.last_updated_at)
      FROM api.listings l
     WHERE l.zip_code = code
     GROUP BY l.zip_code;
END
$$;
COMMENT ON FUNCTION resi.zip_code_stats(text) IS
    'What api.zip_stats returns (its query).';

CREATE OR REPLACE FUNCTION api.zip_stats(zip_code text)
    RETURNS TABLE (zip_code text, listings bigint, median_price double precision, min_price bigint,
                   max_price bigint, mean_confidence double precision, high_confidence bigint,
                   medium_confidence bigint, low_confidence bigint, last_updated_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT * FROM resi.zip_code_stats(zip_stats.zip_code);
END;
COMMENT ON FUNCTION api.zip_stats(text) IS
    'One zip code: listings with consensus, median/min/max price, mean confidence and listings per confidence band (high >= 0.8, medium >= 0.5, low).';

-- COSTs of the consensus aggregates' support functions (sql/native/consensus.sql,
-- resi_pg/src/consensus/listing.rs): the planner weighs a partial state against a row, and
-- aggregates many small groups serially (issue 16).
ALTER FUNCTION resi.consensus_mode_transition(internal, text, double precision) COST 6;
ALTER FUNCTION resi.consensus_mode_combine(internal, internal) COST 45;
ALTER FUNCTION resi.consensus_mode_serialize(internal) COST 125;
ALTER FUNCTION resi.consensus_mode_final(internal) COST 130;
ALTER FUNCTION resi.consensus_median_transition(internal, double precision, double precision, double precision) COST 6;
ALTER FUNCTION resi.consensus_median_combine(internal, internal) COST 85;
ALTER FUNCTION resi.consensus_median_serialize(internal) COST 150;
ALTER FUNCTION resi.consensus_median_final(internal) COST 120;
ALTER FUNCTION resi.consensus_listing_transition(internal, text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision) COST 135;
ALTER FUNCTION resi.consensus_listing_combine(internal, internal) COST 250;
ALTER FUNCTION resi.consensus_listing_serialize(internal) COST 1800;
ALTER FUNCTION resi.consensus_listing_deserialize(bytea, internal) COST 250;
ALTER FUNCTION resi.consensus_listing_final(internal) COST 7400;

-- ---------------------------------------------------------------------------------------------
-- Aggregates Citus can split (issue 18): sql/native/consensus.sql and sql/consensus.sql, whole.
-- ---------------------------------------------------------------------------------------------
-- The same two aggregates with a state of a concrete type, which Citus can split over its
-- workers (resi_pg/src/consensus/tally.rs): resi.distributed_consensus_mode and
-- resi.distributed_consensus_median. The state is an expanded object while a group is
-- aggregated; its flat and text forms are the binary form the serial functions above write
-- (text: `\x` and hex). The support functions are callable from SQL (their types are real), so
-- the transition and combine functions check that an aggregate calls them (0A000) and every
-- flat input is validated.
CREATE TYPE resi.consensus_mode_tally;
CREATE FUNCTION resi.consensus_mode_tally_in("text" cstring) RETURNS resi.consensus_mode_tally
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_in_wrapper';
CREATE FUNCTION resi.consensus_mode_tally_out("tally" resi.consensus_mode_tally) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_out_wrapper';
CREATE TYPE resi.consensus_mode_tally (
    INPUT          = resi.consensus_mode_tally_in,
    OUTPUT         = resi.consensus_mode_tally_out,
    INTERNALLENGTH = VARIABLE,
    STORAGE        = extended
);
COMMENT ON TYPE resi.consensus_mode_tally IS
    'The state of resi.distributed_consensus_mode: each distinct value with its summed weight and supporters.';

CREATE TYPE resi.consensus_median_tally;
CREATE FUNCTION resi.consensus_median_tally_in("text" cstring) RETURNS resi.consensus_median_tally
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_in_wrapper';
CREATE FUNCTION resi.consensus_median_tally_out("tally" resi.consensus_median_tally) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_out_wrapper';
CREATE TYPE resi.consensus_median_tally (
    INPUT          = resi.consensus_median_tally_in,
    OUTPUT         = resi.consensus_median_tally_out,
    INTERNALLENGTH = VARIABLE,
    STORAGE        = extended
);
COMMENT ON TYPE resi.consensus_median_tally IS
    'The state of resi.distributed_consensus_median: the tolerance and each distinct value with its summed weight and count.';

CREATE FUNCTION resi.consensus_mode_tally_transition("state" resi.consensus_mode_tally, "value" text, "weight" double precision)
    RETURNS resi.consensus_mode_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_transition_wrapper';
CREATE FUNCTION resi.consensus_median_tally_transition("state" resi.consensus_median_tally, "value" double precision,
                                                "weight" double precision, "tolerance" double precision)
    RETURNS resi.consensus_median_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_transition_wrapper';
CREATE FUNCTION resi.consensus_mode_tally_combine("first" resi.consensus_mode_tally, "second" resi.consensus_mode_tally)
    RETURNS resi.consensus_mode_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_combine_wrapper';
CREATE FUNCTION resi.consensus_median_tally_combine("first" resi.consensus_median_tally, "second" resi.consensus_median_tally)
    RETURNS resi.consensus_median_tally IMMUTABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_combine_wrapper';
CREATE FUNCTION resi.consensus_mode_tally_final("state" resi.consensus_mode_tally) RETURNS resi.consensus
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_mode_tally_final_wrapper';
CREATE FUNCTION resi.consensus_median_tally_final("state" resi.consensus_median_tally) RETURNS resi.numeric_consensus
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'consensus_median_tally_final_wrapper';

CREATE AGGREGATE resi.distributed_consensus_mode(value text, weight double precision) (
    STYPE       = resi.consensus_mode_tally,
    SFUNC       = resi.consensus_mode_tally_transition,
    COMBINEFUNC = resi.consensus_mode_tally_combine,
    FINALFUNC   = resi.consensus_mode_tally_final,
    PARALLEL    = SAFE
);

CREATE AGGREGATE resi.distributed_consensus_median(value double precision, weight double precision, tolerance double precision) (
    STYPE       = resi.consensus_median_tally,
    SFUNC       = resi.consensus_median_tally_transition,
    COMBINEFUNC = resi.consensus_median_tally_combine,
    FINALFUNC   = resi.consensus_median_tally_final,
    PARALLEL    = SAFE
);

-- 0.5.0: the same two aggregates with a state of a concrete type (native edition:
-- resi.consensus_mode_tally, resi.consensus_median_tally; resi_pg/src/consensus/tally.rs), the
-- same answers bit for bit. Citus splits an aggregate over its workers only when its state is
-- such a type: over a distributed table grouped by anything but zpid (a city's prices), these
-- are aggregated on the workers, while resi.consensus_mode pulls every row to the coordinator
-- (docs/scaling-out.md). On one node they cost about what the internal-state ones cost.
COMMENT ON AGGREGATE resi.distributed_consensus_mode(text, double precision) IS
    'resi.consensus_mode with a state Citus can ship between nodes: the same result, aggregated on the workers of a distributed table.';

COMMENT ON AGGREGATE resi.distributed_consensus_median(double precision, double precision, double precision) IS
    'resi.consensus_median with a state Citus can ship between nodes: the same result, aggregated on the workers of a distributed table.';
