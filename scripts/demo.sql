-- make demo, after one loader pass over tests/fixtures/samples/basic (scripts/demo).
\pset footer off

\echo '== The ten listings with the most miners: trust-weighted consensus and confidence'
SELECT zpid, price, bedrooms AS beds, bathrooms AS baths, living_area AS sqft, zip_code AS zip,
       round(consensus_score::numeric, 3) AS confidence,
       round((field_consensus->'price'->>'confidence')::numeric, 2) AS price_conf,
       (field_consensus->'price'->>'supporters') || '/' || (field_consensus->'price'->>'voters') AS price_votes,
       unique_miners_count AS miners, total_attestations AS attestations
  FROM resi.listings
 ORDER BY unique_miners_count DESC, total_attestations DESC, zpid
 LIMIT 10;

\echo '== Where miners disagree most (price):'
SELECT zpid, price AS consensus_price,
       (field_consensus->'price'->>'low') || '..' || (field_consensus->'price'->>'high') AS reported_iqr,
       round((field_consensus->'price'->>'agreement')::numeric, 2) AS agreement
  FROM resi.listings
 ORDER BY (field_consensus->'price'->>'agreement')::float8, zpid
 LIMIT 5;

\echo '== Miners after the pass: trust earned by agreeing with the others, lost by spamming'
SELECT left(t.miner_hotkey, 12) || '…' AS miner, round(t.trust_score::numeric, 3) AS trust,
       round(t.accuracy_score::numeric, 3) AS accuracy, round(t.duplicate_rate::numeric, 3) AS dup_rate,
       t.total_submissions AS submissions, t.strikes, t.bans,
       CASE WHEN t.banned_until > now() THEN 'until ' || to_char(t.banned_until, 'YYYY-MM-DD HH24:MI') END AS banned
  FROM resi.miner_trust t
 ORDER BY t.trust_score DESC, t.miner_hotkey;

\echo '== Miners that are not independent sources (resi.find_dependent_miners ran after the pass):'
\echo '== the liar and its two copiers re-upload the same bytes, so they vote as one group'
SELECT left(d.miner_hotkey, 12) || '…' AS miner, left(d.source_hotkey, 12) || '…' AS depends_on,
       d.shared_claims AS copied_claims, d.near_copies, d.shared_false AS shared_audited_lies,
       left(g.group_hotkey, 12) || '…' AS votes_with_group
  FROM resi.miner_dependence d
  LEFT JOIN resi.miner_groups g ON g.miner_hotkey = d.miner_hotkey
 ORDER BY d.source_hotkey, d.miner_hotkey;
SELECT left(group_hotkey, 12) || '…' AS "group", members, round(voting_trust::numeric, 3) AS voting_trust,
       copied_claims, near_copies, shared_false_values, audited_claims
  FROM resi.dependent_groups ORDER BY group_hotkey;
\echo '== How resi.miner_status explains one of the copiers:'
SELECT (resi.miner_status(d.miner_hotkey)).explanation FROM resi.miner_dependence d ORDER BY d.miner_hotkey LIMIT 1;
SELECT count(*) FILTER (WHERE voting_groups < voting_miners) AS listings_where_copies_lost_their_extra_votes,
       count(*) AS listings
  FROM resi.listings;

\echo '== The worst submissions by quality report:'
SELECT left(miner_hotkey, 12) || '…' AS miner, regexp_replace(object_key, '^.*/', '') AS object,
       round(quality_score::numeric, 3) AS quality, quality_issues, round(row_agreement::numeric, 2) AS agreement
  FROM resi.ingest_ledger WHERE status = 'loaded'
 ORDER BY quality_score, row_agreement, object_key
 LIMIT 4;

\echo '== One miner explained (resi.miner_status):'
SELECT (resi.miner_status(miner_hotkey)).explanation
  FROM resi.miner_trust ORDER BY bans DESC, trust_score LIMIT 1;

\echo
\echo '== The aggregates on a small table: five miners, one listing. The liar and its copier'
\echo '== agree with each other, but their trust is low: they lose.'
SELECT (resi.consensus_median(price, trust, 0.01)).*
  FROM (VALUES ('honest', 0.90, 426000), ('honest', 0.85, 426000), ('sloppy', 0.55, 430000),
               ('liar', 0.30, 99000), ('copier', 0.25, 99000)) v(miner, trust, price);
SELECT (resi.consensus_mode(status, trust)).*
  FROM (VALUES ('honest', 0.90, 'FOR_RENT'), ('honest', 0.85, 'FOR_RENT'), ('sloppy', 0.55, NULL),
               ('liar', 0.30, 'FOR_SALE'), ('copier', 0.25, 'FOR_SALE')) v(miner, trust, status);

\echo '-- Key layout of uploads (NULL for anything else):'
SELECT (k).* FROM (VALUES
    ('data/hotkey=5mW1rZXCG123rTAKnLuEiwU8DSey4tFn28MJezcixBzGKFKg/job_id=zillow_zip_77494/data_20250917_080015_90.parquet'),
    ('data/hotkey=5JPGiLMXYUgh6jzQALwR46udzMs9avPhe1j1E5iKHf7eAwFC/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json'),
    ('data/hotkey=5JPGiLMXYUgh6jzQALwR46udzMs9avPhe1j1E5iKHf7eAwFC/job_id=zillow_zip_77494/notes.txt')
) v(key), LATERAL (SELECT resi.parse_s3_key(key) AS k) p;

\echo '-- Canonical listing hash: the same listing written differently hashes alike.'
SELECT resi.canonical_listing(l) AS canonical, left(resi.listing_hash(l), 16) || '…' AS listing_hash
  FROM (VALUES ('{"zpid": "20251987", "price": 426000.0, "city": " Katy ", "home_type": null}'::jsonb),
               ('{"city": "Katy", "price": 4.26e5, "zpid": "20251987"}'::jsonb)) v(l);

\echo '-- Earned trust (resi.earned_trust): audited claims right/wrong, agreement with other sources, and rate limits:'
SELECT audited, wrong, agreeing_rows || '/' || rows AS agreement,
       round(resi.earned_trust(audited, wrong, rows, agreeing_rows, resi.initial_trust())::numeric, 3) AS trust,
       resi.rate_limit_for(resi.earned_trust(audited, wrong, rows, agreeing_rows, resi.initial_trust())) AS per_day
  FROM (VALUES (0, 0, 0, 0), (0, 0, 1000, 970), (0, 0, 1000, 600), (33, 1, 0, 0), (100, 0, 0, 0), (20, 8, 1000, 1000))
       v(audited, wrong, rows, agreeing_rows);
\echo '-- Where a validator should look next (resi.propose_audits):'
SELECT zpid, reason, round(priority::numeric, 3) AS priority, sources FROM resi.propose_audits(5, 0.2);
BEGIN;  -- rolled back: the demo's miners keep their real counts
INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('demo-liar', 0.30), ('demo-honest', 0.90);
SELECT resi.record_miner_submission('demo-liar', 100, '2025-09-17 12:00+00') AS liar_uploads_that_day;
SELECT resi.check_miner_rate_limit('demo-liar', 1, '2025-09-17') AS liar_may_upload_more,
       resi.check_miner_rate_limit('demo-liar', 1, '2025-09-18') AS liar_next_day,
       resi.check_miner_rate_limit('demo-honest', 1, '2025-09-17') AS honest_may_upload;
ROLLBACK;

\echo
\echo '== The read API (schema api, what PostgREST serves): a page of the busiest zip code'
SELECT zpid, price, home_status, round(confidence::numeric, 3) AS confidence, miners
  FROM api.search_listings(zip_code := (SELECT zip_code FROM api.listings GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1),
                           "limit" := 5);
\echo '== Consensus health: listings per confidence band'
SELECT * FROM resi.consensus_health;
\echo '== Storage against the budget (resi.database_budget, default 8 GB): the largest tables and the database'
(SELECT relation, size, round(share_of_budget::numeric, 6) AS share_of_budget FROM resi.database_budget()
  WHERE relation NOT LIKE 'database %' LIMIT 3)
UNION ALL
SELECT relation, size, round(share_of_budget::numeric, 6) FROM resi.database_budget() WHERE relation LIKE 'database %';
