-- Scale-out on Citus (issue 18): resi.distribute() turns the extension's tables into Citus
-- tables, once, on the coordinator of a database where `CREATE EXTENSION citus` and
-- `CREATE EXTENSION resi_pg` were run on every node and the coordinator and workers are
-- registered (citus_set_coordinator_host, citus_add_node).
--
-- Part of the resi_pg install script in both editions (resi_pg/src/lib.rs includes it with
-- extension_sql_file!); without Citus the function only refuses. A change here ships an upgrade
-- delta in sql/upgrade/ (docs/development.md). The operator's guide: docs/scaling-out.md.
--
-- What goes where:
--   * distributed by zpid, co-located (a listing's claims, attestations, history and audits are
--     on its shard, so the consensus of listings runs whole on the shards): resi.listings,
--     resi.miner_claims, resi.miner_attestations, resi.listing_history, resi.audits, and
--     resi.listing_refresh (a refresh's consensus on its way into the listings, written and read
--     on the shards: resi.refresh_consensus_on_shards);
--   * reference tables (a copy on every node, the coordinator's included, so the shards join
--     them locally): the per-miner tables the consensus and the verdicts read or write
--     (resi.miner_trust, resi.miner_groups, resi.miner_dependence, resi.miner_penalties),
--     resi.blacklist, resi.audit_verdicts (keyed by audit, no zpid, read per miner pair by
--     resi.find_dependent_miners), and what that pass sums of them (resi.judged_pair_totals,
--     resi.settled_judgements);
--   * left on the coordinator as plain tables: what the loader writes and reads around a fold
--     (resi.staging_listings: the loader COPYs into the coordinator, issue 18's design B1;
--     resi.ingest_runs, resi.ingest_ledger; resi.miner_submission_days, the day counts that
--     admission checks and writes for every object: no shard reads them, and as a reference
--     table each object's admission was a two-phase commit on every node), and
--     resi.archive_batches (the archive's bookkeeping).
--
-- What changes in the tables (every unique key of a distributed table includes zpid):
--   * resi.miner_attestations, resi.listing_history, resi.audits: PRIMARY KEY (zpid, id)
--     instead of (id). Their ids stay unique across nodes: rows inserted through the coordinator
--     keep drawing from its sequences; each worker's copy of a sequence is moved to the range
--     Citus gives a worker's sequences ((group id << 48) + 1 on), so a row inserted on a worker
--     cannot take an id the coordinator gives.
--   * resi.listings: UNIQUE (uri) becomes a plain index (listings_uri_idx). The database no
--     longer refuses two listings with the same uri; the consensus already rules it out (a uri
--     only votes for the zpid it names, resi.listing_consensus), and nothing looks a listing up
--     by uri or infers a conflict on it.
--   * resi.audit_verdicts loses its foreign key to resi.audits (Citus has none from a reference
--     to a distributed table): resi.record_audit writes an audit's verdicts with it, and audits
--     are never deleted, so the ON DELETE CASCADE had nothing to do.
--
-- Extension membership: Citus neither upgrades (ALTER EXTENSION UPDATE) nor undistributes an
-- extension's tables, so the tables above and their sequences leave resi_pg (ALTER EXTENSION
-- resi_pg DROP TABLE/SEQUENCE) on every node; the views and functions over them stay members.
-- The order matters: each worker's CREATE EXTENSION made its own copies of the tables, which
-- functions and views of the extension there use (by row type: resi.claim_errors takes a
-- resi.listings), so they cannot be dropped for Citus to create its shell tables. While a
-- table is still a member on the coordinator, Citus creates no shell on the workers and takes
-- the workers' copies as they are: so each table is distributed first and leaves the extension
-- on the coordinator after; the workers' copies get the same key changes and leave the
-- extension before (they hold no rows: checked), and each gets Citus's TRUNCATE trigger.
-- Since Citus did not create them, it has no pg_dist_object entry for these tables: a view
-- created later over them is created on the coordinator only (Citus says so in a WARNING), and
-- a worker added later (citus_add_node) gets the same preparation from resi.prepare_workers().
--
-- No table moved here has a trigger (the fold's is on resi.staging_listings, which stays on the
-- coordinator), so citus.enable_unsafe_triggers is not needed.

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
