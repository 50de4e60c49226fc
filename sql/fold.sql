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
-- One INSERT or COPY statement is one fold, whatever it holds: the loader sends a batch of
-- objects (many submissions) as one COPY. In order:
--   1. attestations and claims, set-based for the whole statement;
--   2. the consensus of every listing the statement touched, once (resi.refresh_consensus);
--   3. every submission's verdict against that consensus, in one grouped statement, applied by
--      resi.judge_submissions (counters, trust, strikes, ledger rows).
-- So within a fold every submission is judged against the consensus after all of the fold's
-- rows, and a miner's submissions move its trust oldest first (upload time, then ledger row):
-- the result depends on which objects share a fold (the loader's batch policy), never on
-- timing. The time each step took, in seconds, is left in the transaction-local setting
-- resi_fold.stages as a JSON object (what resi-loader reports per stage).
CREATE FUNCTION resi.fold_staged_listings() RETURNS trigger
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

CREATE TRIGGER fold_staged_listings
    AFTER INSERT ON resi.staging_listings
    REFERENCING NEW TABLE AS staged
    FOR EACH STATEMENT EXECUTE FUNCTION resi.fold_staged_listings();

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.fold_staged_listings() IS
    'Statement trigger of resi.staging_listings: folds a statement''s rows into attestations, claims and listings, computes each touched listing''s consensus once, then judges every submission (resi.judge_submissions).';
COMMENT ON FUNCTION resi.judge_submissions(resi.submission_verdict[]) IS
    'Apply submissions'' verdicts set-based: day counts and totals, agreement evidence and trust after each submission (a miner''s oldest first), ledger rows. Returns the verdicts applied.';
COMMENT ON FUNCTION resi.penalise_submissions(resi.submission_verdict[]) IS
    'Strike every submission of quality below 0.3, a miner''s oldest first; a miner a strike bans has its later submissions left out (ledger rows deferred). Returns the ledger ids left out.';
