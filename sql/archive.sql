-- Archive: rows that left the active window, moved to Parquet files by `resi-loader archive`.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Archive: rows that left the active window, moved to Parquet by `resi-loader archive`
-- ---------------------------------------------------------------------------------------------
-- One row per archive file. A batch is written (status writing), read back and checked
-- (verified: rows and SHA-256 of the bytes recorded), and only then are exactly the rows in
-- the file deleted, in the same transaction that marks it deleted. A crash before that leaves
-- the rows in the database and the batch to redo (its file is rewritten or re-checked); after
-- it, the rows are in the file only: nothing lost, nothing twice.
CREATE TABLE resi.archive_batches (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('listings', 'attestations')),
    month       date NOT NULL,        -- the month the rows belong to (first day)
    cutoff      timestamptz NOT NULL, -- the start of the active window when the batch began
    object_key  text NOT NULL UNIQUE, -- relative to the archive's destination
    rows        bigint CHECK (rows >= 0),
    sha256      text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status      text NOT NULL DEFAULT 'writing' CHECK (status IN ('writing', 'verified', 'deleted')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
COMMENT ON TABLE resi.archive_batches IS 'Every archive file of resi-loader archive: what it holds and whether its rows have left the database.';
SELECT pg_catalog.pg_extension_config_dump('resi.archive_batches', '');
SELECT pg_catalog.pg_extension_config_dump('resi.archive_batches_id_seq', '');

-- Listings out of the window: no miner reported them since `cutoff`. Their month is that of
-- their last report. PL/pgSQL, as the two functions below: Citus plans no SQL-language
-- function whose query over distributed tables takes parameters.
CREATE FUNCTION resi.archivable_listings(cutoff timestamptz)
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

-- Attestations out of the window: submitted before `cutoff` and not the one behind a current
-- claim (a claim keeps its attestation until its listing is archived).
CREATE FUNCTION resi.archivable_attestations(cutoff timestamptz)
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

-- Start a batch; returns its id and object key.
CREATE FUNCTION resi.archive_batch_begin(kind text, month date, cutoff timestamptz)
    RETURNS TABLE (batch bigint, object_key text)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO resi.archive_batches (id, kind, month, cutoff, object_key)
    SELECT n.id, archive_batch_begin.kind, archive_batch_begin.month, archive_batch_begin.cutoff,
           format('archive/%s/month=%s/batch-%s.parquet', archive_batch_begin.kind,
                  to_char(archive_batch_begin.month, 'YYYY-MM'), lpad(n.id::text, 8, '0'))
      FROM (SELECT nextval('resi.archive_batches_id_seq') AS id) n
    RETURNING id, object_key;
END;

-- The batch's file is written and read back: `rows` rows, these bytes' SHA-256.
CREATE FUNCTION resi.archive_batch_verified(batch bigint, rows bigint, sha256 text) RETURNS void
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE resi.archive_batches b SET status = 'verified', rows = archive_batch_verified.rows,
           sha256 = archive_batch_verified.sha256
     WHERE b.id = archive_batch_verified.batch AND b.status IN ('writing', 'verified');
END;

-- Drop a batch that found no rows (nothing was written for it).
CREATE FUNCTION resi.archive_batch_discard(batch bigint) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH gone AS (DELETE FROM resi.archive_batches b
                   WHERE b.id = archive_batch_discard.batch AND b.status = 'writing' RETURNING 1)
    SELECT count(*) > 0 FROM gone;
END;

-- Delete exactly the rows of a verified batch (the keys read back from its file) and mark it
-- deleted, in one transaction; returns the rows deleted. When a row is no longer archivable (a
-- listing reported again meanwhile) or missing, deletes nothing, puts the batch back to
-- `writing` (its file is to be written anew) and returns NULL. The listings are locked first, as
-- resi.refresh_consensus locks them (so a fold cannot rewrite a listing while it is deleted):
-- their rows in zpid order on a single node; on a distributed database (Citus runs no
-- multi-shard SELECT … FOR UPDATE) the one advisory lock every refresh takes there.
CREATE FUNCTION resi.archive_batch_delete(batch bigint, zpids text[], attestation_ids bigint[]) RETURNS bigint
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
COMMENT ON FUNCTION resi.archive_batch_delete(bigint, text[], bigint[]) IS
    'Delete the rows of a verified archive batch (the keys read back from its file) and mark it deleted, in one transaction; NULL (nothing deleted, batch back to writing) when a row is no longer archivable.';

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.archive_batch_begin(text, date, timestamp with time zone) IS
    'Start an archive batch of listings or attestations of one month (resi-loader archive); returns its id and object key.';
COMMENT ON FUNCTION resi.archive_batch_verified(bigint, bigint, text) IS
    'Record that an archive batch''s file was written and read back: its rows and the SHA-256 of its bytes.';
COMMENT ON FUNCTION resi.archive_batch_discard(bigint) IS
    'Drop an archive batch still being written that found no rows (nothing was written for it); false when no such batch in status writing exists.';
