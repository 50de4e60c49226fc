-- make demo: the resi_pg SQL API on a small hand-made set of attestations.
-- (The loader issue extends the demo to load the sample uploads in tests/fixtures/samples.)
\set QUIET on
\pset footer off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS resi_pg CASCADE;
DROP SCHEMA IF EXISTS resi CASCADE;
CREATE EXTENSION resi_pg;

\echo
\echo '== resi_pg' `date -u +%Y-%m-%d` '=='
SELECT extname, extversion, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'resi_pg';

-- Five miners: two honest, one sloppy, one liar, one copier of the liar. Trust is what
-- resi.next_trust has made of their history (issue: trust wiring); here it is set by hand.
INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES
    ('5mW1…honest',  0.90), ('5tTF…honest', 0.85), ('5gJK…sloppy', 0.55),
    ('5SwZ…liar',    0.30), ('5EjT…copier', 0.25);

-- What each miner reported about three listings (true values: tests/fixtures/samples/basic/truth.csv).
INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp, price, home_status, bedrooms)
VALUES
    ('5mW1…honest', '20251987', '2025-09-17 08:00+00', 426000, 'FOR_RENT', 6),
    ('5tTF…honest', '20251987', '2025-09-17 08:10+00', 426000, 'FOR_RENT', 6),
    ('5gJK…sloppy', '20251987', '2025-09-17 08:20+00', 430000, 'FOR_RENT', 5),
    ('5SwZ…liar',   '20251987', '2025-09-17 08:30+00', 99000,  'FOR_SALE', 2),
    ('5EjT…copier', '20251987', '2025-09-17 08:40+00', 99000,  'FOR_SALE', 2),
    ('5mW1…honest', '63686339', '2025-09-17 08:00+00', 264000, 'PENDING',  2),
    ('5gJK…sloppy', '63686339', '2025-09-17 08:20+00', 262000, NULL,       2),
    ('5SwZ…liar',   '63686339', '2025-09-17 08:30+00', 640000, 'SOLD',     4),
    ('5EjT…copier', '63686339', '2025-09-17 08:40+00', 640000, 'SOLD',     4),
    ('5tTF…honest', '15363570', '2025-09-17 08:10+00', 627000, 'RECENTLY_SOLD', 1);

\echo
\echo '-- Trust-weighted consensus per listing: price by weighted median (1% tolerance), status by weighted vote.'
\echo '-- The liar and its copier agree with each other, but their trust is low: they lose.'
SELECT a.zpid,
       (p).value::bigint AS price, round((p).confidence::numeric, 3) AS price_conf,
       (p).supporters || '/' || (p).voters AS price_support,
       (s).value AS home_status, round((s).confidence::numeric, 3) AS status_conf,
       (s).supporters || '/' || (s).voters AS status_support
  FROM (SELECT a.zpid,
               resi.consensus_median(a.price, t.trust_score, 0.01) AS p,
               resi.consensus_mode(a.home_status, t.trust_score) AS s
          FROM resi.miner_attestations a JOIN resi.miner_trust t USING (miner_hotkey)
         GROUP BY a.zpid) a
 ORDER BY a.zpid;

\echo '-- The same, folded into resi.listings in one set-based statement (the loader''s fold does this per batch).'
INSERT INTO resi.listings (zpid, price, home_status, bedrooms, consensus_score, total_attestations, unique_miners_count, field_consensus)
SELECT zpid, (p).value::bigint, (s).value, (b).value::int,
       least((p).confidence, coalesce((s).confidence, 1), (b).confidence), n, miners,
       jsonb_build_object('price', to_jsonb(p), 'home_status', to_jsonb(s), 'bedrooms', to_jsonb(b))
  FROM (SELECT a.zpid,
               resi.consensus_median(a.price, t.trust_score, 0.01) AS p,
               resi.consensus_mode(a.home_status, t.trust_score) AS s,
               resi.consensus_median(a.bedrooms, t.trust_score, 0) AS b,
               count(*)::int AS n, count(DISTINCT a.miner_hotkey)::int AS miners
          FROM resi.miner_attestations a JOIN resi.miner_trust t USING (miner_hotkey)
         GROUP BY a.zpid) c;
SELECT zpid, price, home_status, bedrooms, round(consensus_score::numeric, 3) AS consensus_score,
       total_attestations AS attestations, unique_miners_count AS miners,
       field_consensus->'price'->>'low' || '..' || (field_consensus->'price'->>'high') AS price_iqr
  FROM resi.listings ORDER BY zpid;

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

\echo '-- Rate limits by trust (setting resi.rate_limit_tiers) and trust evolution:'
SELECT trust, resi.rate_limit_for(trust) AS per_day,
       round(resi.next_trust(trust, 0.9)::numeric, 4) AS after_good_upload,
       round(resi.next_trust(trust, 0.9, contains_fake_data => true)::numeric, 4) AS after_fake_data
  FROM unnest(ARRAY[0.9, 0.65, 0.45, 0.25]::float8[]) trust;
SELECT resi.record_miner_submission('5SwZ…liar', 100, '2025-09-17 12:00+00') AS liar_uploads_that_day;
SELECT resi.check_miner_rate_limit('5SwZ…liar', 1, '2025-09-17') AS liar_may_upload_more,
       resi.check_miner_rate_limit('5SwZ…liar', 1, '2025-09-18') AS liar_next_day,
       resi.check_miner_rate_limit('5mW1…honest', 1, '2025-09-17') AS honest_may_upload;
