-- Audit: a validator's spot-check of a miner's current claim, and what it does to the miner's
-- trust and the listing's consensus.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Validation: a validator's spot-check of one miner's current claim on a listing
-- ---------------------------------------------------------------------------------------------
-- Marks the attestation behind the miner's current claim validated, counts it, and moves the
-- miner's trust with resi.next_trust(trust, score, passed, NOT passed): +0.1 when it passed,
-- -0.5 when it held fake data. The listing's consensus is refreshed now; the miner's other
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
       SET is_validated = true, validation_timestamp = now(), validation_score = score
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
        trust_score           = n.trust,
        trust_changed_at      = CASE WHEN n.trust <> t.trust_score THEN clock_timestamp() ELSE t.trust_changed_at END,
        validated_submissions = t.validated_submissions + 1,
        validations_failed    = t.validations_failed + (NOT passed)::integer,
        updated_at            = now()
      FROM (SELECT resi.next_trust(t2.trust_score, coalesce(score, passed::integer), passed, NOT passed) AS trust
              FROM resi.miner_trust t2 WHERE t2.miner_hotkey = hotkey) n
     WHERE t.miner_hotkey = hotkey
    RETURNING t.trust_score INTO trust;
    PERFORM resi.refresh_consensus(ARRAY[listing]);
    RETURN trust;
END
$$;
COMMENT ON FUNCTION resi.record_validation(text, text, boolean, double precision) IS
    'A validator''s spot-check of a miner''s current claim on a listing: marks the attestation validated and moves the miner''s trust (+0.1 passed, -0.5 failed: fake data). Returns the new trust.';
