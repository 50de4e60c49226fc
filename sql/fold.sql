-- The fold: staging → attestations → claims → listings, once per INSERT/COPY statement on
-- resi.staging_listings, then each submission's verdict (quality, agreement, trust, strikes,
-- ledger row).
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- The fold: staging → attestations → claims → listings, once per INSERT/COPY statement
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION resi.fold_staged_listings() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
AS $$
DECLARE
    sub         record;
    trust_after double precision;
BEGIN
    -- History: every reported row is an attestation. Then each miner's newest report per
    -- listing becomes (or stays) its claim; an older upload loaded late does not override a
    -- newer claim, but still counts as an attestation.
    WITH attested AS (
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
          FROM staged
        RETURNING *
    )
    INSERT INTO resi.miner_claims AS c
    SELECT DISTINCT ON (a.zpid, a.miner_hotkey)
           a.zpid, a.miner_hotkey, a.id, a.submission_timestamp,
           min(a.submission_timestamp) OVER w, count(*) OVER w,
           a.uri, a.price, a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status,
           a.days_on_zillow, a.zip_code, a.city, a.state, a.latitude, a.longitude, a.signature
      FROM attested a
    WINDOW w AS (PARTITION BY a.zpid, a.miner_hotkey)
     ORDER BY a.zpid, a.miner_hotkey, a.submission_timestamp DESC, a.id DESC
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
           FROM (SELECT excluded.*, (excluded.submission_timestamp, excluded.attestation_id)
                                    >= (c.submission_timestamp, c.attestation_id) AS newer) x);

    PERFORM resi.refresh_consensus(ARRAY(SELECT DISTINCT zpid FROM staged ORDER BY 1));

    -- Each submission's verdict, against the consensus it helped form: quality report, agreement,
    -- counters, then the trust the miner's evidence earns (resi.earned_trust), strikes, and the
    -- ledger row. A submission is the rows of this
    -- statement with one miner, ledger row, file and submission time (one loader object).
    -- Submissions of one miner are applied oldest first; miners in hotkey order (lock order).
    FOR sub IN
        SELECT s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp,
               resi.submission_quality(s.zpid, s.price, s.zip_code) AS quality,
               count(*) AS rows,
               coalesce(sum(v.compared), 0) AS fields_compared,
               coalesce(sum(v.agreed), 0) AS fields_agreed,
               count(*) FILTER (WHERE v.compared > 0) AS corroborated_rows,
               count(*) FILTER (WHERE v.compared > 0 AND v.agreed = v.compared) AS agreeing_rows
          FROM staged s
          -- A row is judged on the fields whose consensus value two or more independent sources
          -- back (resi.corroborated_agreement: agreeing with a consensus one formed alone, or
          -- disagreeing with a lone other source, proves nothing); it is corroborated when some
          -- field could be judged, which needs two sources on the listing. One primary-key
          -- lookup per staged row, whatever the statistics say (OFFSET 0 keeps the planner from
          -- turning it into a join it may misestimate while the table grows).
          LEFT JOIN LATERAL (SELECT l, resi.corroborated_fields(l.field_consensus) AS fields FROM resi.listings l
                              WHERE l.zpid = s.zpid AND l.voting_groups >= 2 OFFSET 0) corroborated ON true
         CROSS JOIN LATERAL resi.corroborated_agreement(
                 s.uri, s.price, s.address, s.bedrooms, s.bathrooms, s.living_area, s.home_type, s.home_status,
                 s.days_on_zillow, s.zip_code, s.city, s.state, s.latitude, s.longitude, corroborated.l,
                 corroborated.fields) v
         GROUP BY s.miner_hotkey, s.ledger_id, s.s3_file_path, s.submission_timestamp
         ORDER BY s.miner_hotkey, s.submission_timestamp, s.ledger_id
    LOOP
        PERFORM resi.record_miner_submission(sub.miner_hotkey, 1, sub.submission_timestamp);
        UPDATE resi.miner_trust t SET
            rows_submitted   = t.rows_submitted + sub.rows,
            duplicate_rows   = t.duplicate_rows + (sub.quality).duplicate_zpids,
            duplicate_rate   = (t.duplicate_rows + (sub.quality).duplicate_zpids)::float8 / (t.rows_submitted + sub.rows),
            fields_compared  = t.fields_compared + sub.fields_compared,
            fields_agreed    = t.fields_agreed + sub.fields_agreed,
            accuracy_score   = (t.fields_agreed + sub.fields_agreed)::float8 / nullif(t.fields_compared + sub.fields_compared, 0),
            -- Agreement is weak evidence of current behaviour: older rows count 0.8 per later
            -- submission, so a consensus that was wrong before a ring was found stops counting
            -- against those who disagreed with it.
            corroborated_rows = t.corroborated_rows * 0.8 + sub.corroborated_rows,
            agreeing_rows    = least(t.agreeing_rows * 0.8 + sub.agreeing_rows, t.corroborated_rows * 0.8 + sub.corroborated_rows),
            updated_at       = now()
         WHERE t.miner_hotkey = sub.miner_hotkey;
        trust_after := resi.earn_trust(ARRAY[sub.miner_hotkey]);

        IF (sub.quality).score < 0.3 THEN
            PERFORM resi.add_strike(sub.miner_hotkey, format('low_quality: %s scored %s (%s)',
                coalesce(sub.s3_file_path, 'a submission'), round((sub.quality).score::numeric, 3),
                array_to_string((sub.quality).issues, ', ')));
        END IF;

        UPDATE resi.ingest_ledger g SET
            quality_score      = (sub.quality).score,
            quality_issues     = (sub.quality).issues,
            duplicate_zpids    = (sub.quality).duplicate_zpids,
            distinct_zip_codes = (sub.quality).distinct_zips,
            accuracy           = sub.fields_agreed::float8 / nullif(sub.fields_compared, 0),
            row_agreement      = sub.agreeing_rows::float8 / nullif(sub.corroborated_rows, 0),
            trust_score        = trust_after
         WHERE g.id = sub.ledger_id;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER fold_staged_listings
    AFTER INSERT ON resi.staging_listings
    REFERENCING NEW TABLE AS staged
    FOR EACH STATEMENT EXECUTE FUNCTION resi.fold_staged_listings();

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.fold_staged_listings() IS
    'Statement trigger of resi.staging_listings: folds a statement''s rows into attestations, claims and listings, then judges each submission (quality, agreement, trust, strikes, ledger row).';
