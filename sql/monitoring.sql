-- Monitoring: views for operators (resi_admin reads them; resi_loader too, for
-- `resi-loader status`) and resi.database_budget().
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Monitoring (operators: resi_admin reads them; resi_loader too, for `resi-loader status`)
-- ---------------------------------------------------------------------------------------------
-- Per loader pass: its counters and the reasons its objects were rejected or deferred.
CREATE VIEW resi.ingest_by_run AS
SELECT r.id AS run_id, r.source, r.started_at, r.finished_at, r.status,
       r.objects_seen, r.objects_loaded, r.objects_rejected, r.objects_deferred, r.objects_skipped, r.rows_attested,
       coalesce((SELECT jsonb_object_agg(x.code, x.objects) FROM (
                   SELECT split_part(g.reason, ':', 1) AS code, count(*) AS objects
                     FROM resi.ingest_ledger g WHERE g.run_id = r.id AND g.status <> 'loaded'
                    GROUP BY 1) x), '{}'::jsonb) AS not_loaded_by_reason
  FROM resi.ingest_runs r;
COMMENT ON VIEW resi.ingest_by_run IS 'Per loader pass: objects and rows, and its rejected/deferred objects by reason code.';

-- Per miner: what its uploads came to in the ledger.
CREATE VIEW resi.ingest_by_miner AS
SELECT g.miner_hotkey,
       count(*) FILTER (WHERE g.status = 'loaded') AS objects_loaded,
       count(*) FILTER (WHERE g.status = 'rejected') AS objects_rejected,
       count(*) FILTER (WHERE g.status = 'deferred') AS objects_deferred,
       sum(g.rows_attested) AS rows_attested,
       sum(g.rows_dropped) AS rows_dropped,
       coalesce((SELECT jsonb_object_agg(x.code, x.objects) FROM (
                   SELECT split_part(h.reason, ':', 1) AS code, count(*) AS objects
                     FROM resi.ingest_ledger h WHERE h.miner_hotkey IS NOT DISTINCT FROM g.miner_hotkey
                      AND h.status <> 'loaded' GROUP BY 1) x), '{}'::jsonb) AS not_loaded_by_reason,
       max(g.finished_at) AS last_object_at
  FROM resi.ingest_ledger g
 GROUP BY g.miner_hotkey;
COMMENT ON VIEW resi.ingest_by_miner IS 'Per miner hotkey (NULL: keys outside the layout): objects loaded/rejected/deferred, rows, reasons, last object.';

-- Miners by trust, with what trust is made of.
CREATE VIEW resi.miner_leaderboard AS
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

-- Groups of dependent miners (resi.miner_groups), with the evidence that joined them and their
-- pooled audits. A group votes once, with the trust its members' pooled evidence earns
-- (voting_trust; its heaviest member's until resi.refresh_group_trust has run).
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

-- Share of listings per confidence band.
CREATE VIEW resi.consensus_health AS
SELECT b.band, count(l.zpid) AS listings,
       round(count(l.zpid) * 1.0 / nullif(sum(count(l.zpid)) OVER (), 0), 4) AS share
  FROM (VALUES ('high', 0.8::real, 2::real), ('medium', 0.5, 0.8), ('low', 0, 0.5), ('none', NULL, NULL)) b (band, low, high)
  LEFT JOIN resi.listings l
    ON CASE WHEN b.low IS NULL THEN l.consensus_score IS NULL
            ELSE l.consensus_score >= b.low AND l.consensus_score < b.high END
 GROUP BY b.band, b.low
 ORDER BY b.low DESC NULLS LAST;
COMMENT ON VIEW resi.consensus_health IS 'Listings per confidence band (high >= 0.8, medium >= 0.5, low, none: no voting claim) and their share.';

-- The fields miners disagree on most: per field, listings with two or more voters, how many
-- of them are not unanimous, and the mean agreement.
CREATE VIEW resi.field_disagreement AS
SELECT f.key AS field,
       count(*) AS contested_listings,
       count(*) FILTER (WHERE (f.value ->> 'agreement')::float8 < 1) AS disagreeing_listings,
       avg((f.value ->> 'agreement')::float8) AS mean_agreement
  FROM resi.listings l
 CROSS JOIN LATERAL jsonb_each(l.field_consensus) f
 WHERE (f.value ->> 'voters')::integer >= 2
 GROUP BY f.key
 ORDER BY count(*) FILTER (WHERE (f.value ->> 'agreement')::float8 < 1) DESC, f.key;
COMMENT ON VIEW resi.field_disagreement IS 'Per field: listings with >= 2 voters, how many are not unanimous, and the mean agreement.';

-- How fresh each zip code's data is.
CREATE VIEW resi.zip_freshness AS
SELECT l.zip_code, count(*) AS listings,
       max(l.last_updated_at) AS last_updated_at,
       min(l.last_updated_at) AS stalest_updated_at,
       max(l.first_seen_at) AS newest_listing_at
  FROM resi.listings l
 GROUP BY l.zip_code;
COMMENT ON VIEW resi.zip_freshness IS 'Per zip code: listings, the newest and oldest consensus change, the newest listing.';

-- ---------------------------------------------------------------------------------------------
-- Storage budget
-- ---------------------------------------------------------------------------------------------
-- Each resi table's size (with its indexes and TOAST) against resi.database_budget (default
-- 8 GB), then the whole database: its share_of_budget is what is used, 1 - it the headroom.
CREATE FUNCTION resi.database_budget()
    RETURNS TABLE (relation text, bytes bigint, size text, share_of_budget double precision)
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT x.relation, x.bytes, pg_size_pretty(x.bytes), x.bytes::float8 / resi.database_budget_bytes()
      FROM (SELECT c.oid::regclass::text AS relation, pg_total_relation_size(c.oid) AS bytes, 0 AS part
              FROM pg_class c
             WHERE c.relnamespace = 'resi'::regnamespace AND c.relkind = 'r'
            UNION ALL
            SELECT 'database ' || current_database(), pg_database_size(current_database()), 1) x
     ORDER BY x.part, x.bytes DESC, x.relation;
END;
COMMENT ON FUNCTION resi.database_budget() IS
    'Size of each resi table (indexes and TOAST included) and of the whole database, in bytes and as a share of resi.database_budget (default 8 GB); the last row is the database.';

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.database_budget_bytes() IS
    'The resi.database_budget setting in bytes (what resi.database_budget() compares sizes with).';
