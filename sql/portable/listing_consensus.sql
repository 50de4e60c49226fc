-- The consensus of many listings at once, portable edition: the body of
-- resi.listing_consensus_of(zpids) that resi.refresh_consensus (and so every fold) reads. The
-- shared sql/consensus.sql declares it as resi.listing_consensus filtered, which natively is
-- the Rust aggregates' work; here that would be a PL/pgSQL transition per claim and a query per
-- listing. This body gives the same rows set-based instead: the claims of every listing asked
-- for go through resi.consensus_by_sources_of in one query per chunk of about 50,000 claims
-- (built-in sorts, aggregates and window functions do the per-claim work; the chunks bound the
-- arrays and sorts whatever the number of listings), and the per-listing counts and the audits
-- are joined as the view joins them. Rows in zpid order, as the native body gives them (the
-- chunks in turn, each sorted): resi.refresh_consensus inserts new listings in that order. Keep
-- the two in step: tests/tests/consensus.rs compares this function with the view in both
-- editions.
-- resi-package: after consensus.sql

CREATE OR REPLACE FUNCTION resi.listing_consensus_of(zpids text[]) RETURNS SETOF resi.listing_consensus
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    chunk text[];
BEGIN
    FOR chunk IN
        SELECT pg_catalog.array_agg(z.zpid)
          FROM (SELECT c.zpid, pg_catalog.sum(pg_catalog.count(*)) OVER (ORDER BY c.zpid) AS claims
                  FROM resi.miner_claims c
                 WHERE zpids IS NULL OR c.zpid = ANY (zpids)
                 GROUP BY c.zpid) z
         GROUP BY pg_catalog.div(z.claims - 1, 50000)
         ORDER BY pg_catalog.div(z.claims - 1, 50000)
    LOOP
        RETURN QUERY
        WITH claim AS MATERIALIZED (
            SELECT * FROM resi.weighted_claims c WHERE c.zpid = ANY (chunk)
        ), per_listing AS (
            SELECT c.zpid,
                   pg_catalog.min(c.first_seen_at) AS first_seen_at,
                   pg_catalog.sum(c.attestations)::integer AS total_attestations,
                   pg_catalog.count(*)::integer AS unique_miners_count,
                   pg_catalog.count(*) FILTER (WHERE c.trust > 0)::integer AS voting_miners,
                   pg_catalog.bit_xor(c.trust_fingerprint) AS trust_fingerprint
              FROM claim c
             GROUP BY c.zpid
        ), sources AS (
            SELECT s.listing AS zpid, s.sources
              FROM resi.consensus_by_sources_of(ARRAY(
                       SELECT resi.consensus_claim_of(c.zpid, c.uri, c.price, c.address, c.bedrooms, c.bathrooms,
                                  c.living_area, c.home_type, c.home_status, c.days_on_zillow, c.zip_code, c.city,
                                  c.state, c.latitude, c.longitude, c.trust, coalesce(c.group_hotkey, c.miner_hotkey),
                                  c.miner_hotkey, c.signature, c.submission_timestamp, c.zpid)
                         FROM claim c)) s
        )
        SELECT a.zpid,
               a.first_seen_at,
               a.total_attestations,
               a.unique_miners_count,
               CASE WHEN a.voting_groups >= 2 THEN (a.c).consensus_score ELSE least((a.c).consensus_score, 0.5::real) END,
               (a.c).uri, (a.c).price, (a.c).address, (a.c).bedrooms, (a.c).bathrooms, (a.c).living_area,
               (a.c).home_type, (a.c).home_status, (a.c).days_on_zillow, (a.c).zip_code, (a.c).city, (a.c).state,
               (a.c).latitude, (a.c).longitude,
               a.voting_miners,
               a.trust_fingerprint,
               (a.c).field_consensus,
               a.voting_groups,
               a.audited_at
          FROM (SELECT p.*, (s.sources).voting_groups, audit.seen_at AS audited_at,
                       CASE WHEN audit.listing IS NULL THEN (s.sources).listing
                            ELSE pg_catalog.jsonb_populate_record((s.sources).listing,
                                     audit.listing OPERATOR(pg_catalog.-) ARRAY['consensus_score', 'field_consensus']) END AS c
                  FROM per_listing p
                  JOIN sources s ON s.zpid = p.zpid
                  -- The newest audit, while no claim with weight has been uploaded since (as in
                  -- resi.listing_consensus).
                  LEFT JOIN LATERAL (SELECT au.listing, au.seen_at FROM resi.audits au
                                      WHERE au.zpid = p.zpid
                                      ORDER BY au.seen_at DESC, au.id DESC LIMIT 1) audit
                         ON NOT EXISTS (SELECT FROM claim c
                                         WHERE c.zpid = p.zpid AND c.submission_timestamp > audit.seen_at AND c.trust > 0)
               ) a
         ORDER BY a.zpid;
    END LOOP;
END
$$;
