-- Audit: what a validator saw of a listing, judged against every miner's claim at once
-- (resi.record_audit), and the older spot-check of one miner's claim (resi.record_validation).
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Trust earned from audits
-- ---------------------------------------------------------------------------------------------
-- Set the trust of these miners to what their evidence earns (resi.earned_trust of their
-- resi.miner_trust rows), in hotkey order (the lock order of the fold). Returns the trust of
-- the last of them (of the one miner, when called with one); NULL when none is known. A trust
-- that changes gets the time of the call as trust_changed_at (taken once: Citus refuses a
-- volatile function inside CASE in a statement on its tables).
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

-- ---------------------------------------------------------------------------------------------
-- Validation: a validator's spot-check of one miner's current claim on a listing
-- ---------------------------------------------------------------------------------------------
-- Marks the attestation behind the miner's current claim validated, counts it as an audited
-- claim (wrong when it did not pass; the verdict and `score` are kept on the attestation, where
-- resi.find_dependent_miners reads the verdicts of a listing's validations) and sets the miner's
-- trust to what its evidence earns (resi.earned_trust). The listing's consensus is refreshed now; the miner's other
-- listings by resi.refresh_stale_consensus. An attestation is validated once: validating it
-- again changes nothing (a NOTICE says so). Returns the miner's trust after the validation.
-- Errors: P0002 when the miner has no claim on the listing; 22023 for a score outside [0, 1].
CREATE FUNCTION resi.record_validation(miner_hotkey text, zpid text, passed boolean, score double precision DEFAULT NULL)
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
-- The audits recorded since a time: resi.judged_pairs, on every resi.find_dependent_miners pass.
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
-- evidence of dependence for resi.find_dependent_miners). Each claim with a compared field is an
-- audited claim of its miner, wrong when a field was; the judged miners' trust is recomputed
-- (resi.earned_trust) and their other listings become stale (resi.refresh_stale_consensus).
-- Until a miner with weight (trust > 0) reports the listing again after `seen_at`, the audited
-- values are the listing's values (resi.listing_consensus; resi.listings.audited_at says so);
-- the listing is refreshed now. Returns the claims judged (0 for a listing nobody claims: the audit is kept).
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

-- ---------------------------------------------------------------------------------------------
-- What to audit next
-- ---------------------------------------------------------------------------------------------
-- Up to `n` listings to audit, where a validator's check moves the most weight: an audit judges
-- every claim on the listing, and a source (a group of dependent miners, or a miner alone)
-- learns most from its first audits, so a listing is worth Σ over its sources of
-- 1 / (1 + the audited claims the source has: its members' together), plus
-- (1 - consensus_score) × (voting_groups - 1) when independent sources disagree on it. A share
-- `random_share` (default 0.2) of the listings is drawn at random among the rest, so no miner can
-- tell which of its claims will be checked. Listings whose audit is still in force
-- (resi.listings.audited_at: no miner with weight has reported them since) are skipped. `reason` says why a listing was chosen:
-- 'new sources' (little-audited miners or groups claim it), 'independent sources disagree', or
-- 'random'. VOLATILE (random), PARALLEL RESTRICTED; granted to resi_validator and resi_admin.
-- Reads every current claim: at the network's size (~2M listings) a few seconds, meant for a
-- validator's batch, not per audit.
-- Errors: 22023 for a negative n or a random_share outside [0, 1].
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

-- The one-line promise of this file's function defined in Rust.
COMMENT ON FUNCTION resi.claim_errors(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings) IS
    'The fields where a report disagrees with an audited listing (within the consensus tolerances), in column order; NULL for a NULL listing.';
