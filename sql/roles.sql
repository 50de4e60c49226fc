-- Roles and privileges: what each role of a deployment may do. Finalize: runs after every
-- other object exists, since it revokes and grants on them.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Privileges (0.4.0)
-- ---------------------------------------------------------------------------------------------
-- Functions that write run as their owner (SECURITY DEFINER, search_path pinned to
-- pg_catalog, pg_temp, every name schema-qualified) and are not executable by PUBLIC: a role
-- gets exactly the ones resi.setup_roles() grants it. The read-only functions and aggregates
-- (consensus, hashes, keys, trust arithmetic, settings) stay executable by every role that may
-- use the schema.
REVOKE EXECUTE ON FUNCTION
    resi.archive_batch_begin(text, date, timestamptz),
    resi.archive_batch_verified(bigint, bigint, text),
    resi.archive_batch_discard(bigint),
    resi.archive_batch_delete(bigint, text[], bigint[]),
    api.listing(text),
    api.listing_history(text),
    resi.record_miner_submission(text, integer, timestamptz),
    resi.add_strike(text, text),
    resi.ban_miner(text, text, interval),
    resi.unban_miner(text),
    resi.admit_submission(text, timestamptz, boolean, integer),
    resi.refresh_consensus(text[]),
    resi.rebuild_claims(),
    resi.fold_staged_listings(),
    resi.judge_submissions(resi.submission_verdict[]),
    resi.penalise_submissions(resi.submission_verdict[]),
    resi.clear_staging(),
    resi.refresh_stale_consensus(integer),
    resi.find_dependent_miners(integer, integer, integer),
    resi.record_validation(text, text, boolean, double precision),
    resi.record_audit(text, jsonb, timestamptz),
    resi.earn_trust(text[]),
    resi.refresh_group_trust(),
    resi.propose_audits(integer, double precision),
    resi.add_blacklist_entry(text, text, text, text),
    resi.remove_blacklist_entry(bigint)
FROM PUBLIC;

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

-- The four roles of a deployment and what each may do. Creates the NOLOGIN group roles that
-- do not exist yet (roles are cluster-wide) and grants them their privileges in this database
-- (grants are per database: run it in every database with the extension, and again after
-- ALTER EXTENSION resi_pg UPDATE so new objects are granted too). Idempotent. People and
-- services log in as their own roles, made members: GRANT resi_loader TO ingest_service.
--   resi_loader     write staging (the fold trigger does the rest) and the ingest ledger and
--                   runs; call resi.admit_submission, resi.clear_staging,
--                   resi.find_dependent_miners, resi.refresh_stale_consensus; read listings, attestations and the
--                   monitoring views (for `resi-loader status`). No UPDATE/DELETE of listings, attestations,
--                   claims or trust.
--   resi_reader     read resi.listings, the resi.listing_consensus view and the api schema
--                   (api.listings, api.search_listings, api.listing, api.listing_history,
--                   api.zip_stats); nothing else.
--   resi_validator  call resi.record_validation and resi.record_audit; nothing else.
--   resi_admin      read every table; bans (ban_miner, unban_miner, add_strike), the
--                   blacklist (add/remove_blacklist_entry), consensus maintenance
--                   (refresh_consensus, refresh_stale_consensus, rebuild_claims,
--                   record_miner_submission, find_dependent_miners); the archive (`resi-loader archive`: the
--                   resi.archive_batch_* functions); the api schema; SET and ALTER SYSTEM of
--                   every resi.* setting (portable edition: writing resi.settings).
-- On a distributed database (Citus) the roles may also log in to the workers: the coordinator
-- connects to them as the current role. Run on a worker (after the coordinator's call), it
-- grants the same privileges there, for readers that connect to that worker. Needs a role that
-- may create roles and grant on the extension's objects (the superuser who created the
-- extension). Returns each role and whether
-- this call created it. Errors: 55000 when a worker refuses the roles' LOGIN.
CREATE FUNCTION resi.setup_roles() RETURNS TABLE (role_name text, created boolean)
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
REVOKE EXECUTE ON FUNCTION resi.setup_roles() FROM PUBLIC;
COMMENT ON FUNCTION resi.setup_roles() IS
    'Create the NOLOGIN roles resi_loader, resi_reader, resi_validator and resi_admin if missing and grant each its privileges in this database (idempotent; run again after an upgrade). Returns each role and whether it was created.';
