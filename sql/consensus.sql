-- Consensus: the trust-weighted aggregates, the consensus of every listing from its claims
-- (resi.listing_consensus), how a report agrees with it, and keeping resi.listings current:
-- refresh, rebuild, and bounded refreshes of listings whose miners' weights changed.
--
-- Part of the resi_pg install script (resi_pg/src/lib.rs includes it with extension_sql_file!,
-- ordered by `requires`). CREATE EXTENSION runs it with search_path = resi; every name is still
-- schema-qualified so the file reads the same anywhere. A change here ships an upgrade delta in
-- sql/upgrade/ (docs/development.md).

-- ---------------------------------------------------------------------------------------------
-- Consensus aggregates: declared per edition (sql/native/consensus.sql: Rust with internal
-- state; sql/portable/consensus.sql: PL/pgSQL), described once here.
-- ---------------------------------------------------------------------------------------------
COMMENT ON AGGREGATE resi.consensus_mode(text, double precision) IS
    'Trust-weighted vote: the value with the greatest summed weight (ties: more supporters, then smallest value), with confidence, agreement and counts. NULL values and NULL/NaN/non-positive weights are ignored.';

COMMENT ON AGGREGATE resi.consensus_median(double precision, double precision, double precision) IS
    'Trust-weighted lower median with weighted 25th/75th percentiles; supporters are voters within tolerance (relative) of the median. NULL/NaN/infinite values and NULL/NaN/non-positive weights are ignored.';


-- 0.5.0: the same two aggregates with a state of a concrete type (native edition:
-- resi.consensus_mode_tally, resi.consensus_median_tally; resi_pg/src/consensus/tally.rs), the
-- same answers bit for bit. Citus splits an aggregate over its workers only when its state is
-- such a type: over a distributed table grouped by anything but zpid (a city's prices), these
-- are aggregated on the workers, while resi.consensus_mode pulls every row to the coordinator
-- (docs/scaling-out.md). On one node they cost about what the internal-state ones cost.
COMMENT ON AGGREGATE resi.distributed_consensus_mode(text, double precision) IS
    'resi.consensus_mode with a state Citus can ship between nodes: the same result, aggregated on the workers of a distributed table.';

COMMENT ON AGGREGATE resi.distributed_consensus_median(double precision, double precision, double precision) IS
    'resi.consensus_median with a state Citus can ship between nodes: the same result, aggregated on the workers of a distributed table.';

-- Every field of one listing at once (resi_pg/src/consensus/listing.rs): per field exactly what
-- resi.consensus_mode / resi.consensus_median give (tolerances: price 0.01, living_area 0.02,
-- days_on_zillow 0.1, latitude/longitude 1e-6), in one call per claim; what resi.listing_consensus
-- and resi.refresh_consensus use.
COMMENT ON AGGREGATE resi.consensus_listing(text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision) IS
    'A listing''s consensus from its claims (one row per miner, weighted by trust): every field as resi.consensus_mode / resi.consensus_median give it, a uri only when it names the zpid, bathrooms rounded to 0.1 within 0..99.9; with consensus_score and the per-field field_consensus jsonb. NULL when no claim has a voting weight.';

-- 0.5.0: a listing's consensus with one vote per independent source
-- (resi_core/src/consensus/sources.rs), what resi.listing_consensus uses. A source is a member
-- (a miner's group, or the miner alone); claims with the same signature belong to the member of
-- the earliest upload among them (then the smallest hotkey). A source votes once, with its
-- heaviest member's claim (greatest trust, then newest upload, then smallest hotkey), weighted
-- trust × resi.claim_recency(its age behind the listing's newest claim); the fields are then
-- those of resi.consensus_listing over the votes. Hotkeys compare as bytes (COLLATE "C"), so the
-- answer does not depend on the database's collation. The claims of a group are kept until the
-- last is in (no combine function: a group is aggregated in one process). The final function
-- reads resi.claim_half_life (STABLE). NULL member, miner_hotkey or submitted_at raises 22004.
COMMENT ON AGGREGATE resi.consensus_by_source(text, text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, double precision, text, text, bigint, timestamptz) IS
    'A listing''s consensus from its claims with one vote per independent source (a member, or the member of the earliest upload of byte copies), each with its heaviest member''s claim weighted trust x resi.claim_recency; with the number of sources that vote with weight.';

-- ---------------------------------------------------------------------------------------------
-- Consensus of listings from the miners' current claims
-- ---------------------------------------------------------------------------------------------
-- The weights a listing's consensus depends on, as one number: bit_xor over its claims of
-- resi.trust_fingerprint(miner, weight), the miner written `hotkey/group` when it is in a group
-- (0.5.0). Stored with the consensus; when the miners' weights or groups change (trust moved,
-- resi.initial_trust changed, a miner found dependent) the stored and current values differ and
-- the listing is stale. Exact whatever order concurrent transactions commit in (unlike timestamps).
CREATE FUNCTION resi.trust_fingerprint(miner_hotkey text, weight double precision) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.hashtextextended(miner_hotkey, pg_catalog.hashfloat8extended(weight, 0));
COMMENT ON FUNCTION resi.trust_fingerprint(text, double precision) IS
    'A 64-bit hash of a miner and its consensus weight; bit_xor over a listing''s claims is resi.listings.trust_fingerprint.';

-- A claim's share of its weight by age: 0.5 ^ (age / resi.claim_half_life), where age is how
-- much older its upload is than the newest claim on the listing (1 when the setting is 0 or the
-- age is not positive), and at least 1/8. Listings change (prices move, homes sell): a miner
-- that has not re-scraped a listing since it changed holds a stale value, and its older claim
-- gives way to fresher ones. The floor keeps uploading again from buying influence: a stale
-- claim still outweighs a fresh one from a source with less than an eighth of its trust. The
-- age is measured on upload times (S3's LastModified, the one time a miner
-- cannot forge), relative to the listing's own newest claim, so a listing's consensus does not
-- change while no claim on it arrives. resi.claim_recency(age) is defined in Rust
-- (resi_pg/src/trust.rs over resi_core::trust::claim_recency): STABLE (reads the setting),
-- STRICT, PARALLEL SAFE; one call per claim in every consensus, so it must cost next to nothing.
COMMENT ON FUNCTION resi.claim_recency(interval) IS
    'A claim''s share of its weight by how much older its upload is than the listing''s newest claim: 0.5 ^ (age / resi.claim_half_life), at least 1/8; 1 when the setting is 0 or age <= 0.';

-- Each current claim with what it votes with: its miner's group (NULL: the miner votes alone),
-- its weight (the group's pooled trust, else the miner's trust, else resi.initial_trust()) and
-- resi.trust_fingerprint of the two (the miner written `hotkey/group` when in a group), whose
-- bit_xor over a listing's claims is the listing's trust_fingerprint. The one definition of a
-- claim's weight: resi.listing_consensus, resi.stale_listing and resi.refresh_stale_consensus
-- read it (PostgreSQL inlines the view; columns a query does not use are not computed). The
-- weight's expression is written twice rather than computed once in a LATERAL subquery: Citus
-- cannot push a subquery without FROM that calls a non-immutable function down to the shards
-- (issue 18), and the planner evaluates the two copies apart either way.
CREATE VIEW resi.weighted_claims AS
SELECT c.*, g.group_hotkey, coalesce(g.trust, t.trust_score, resi.initial_trust()) AS trust,
       resi.trust_fingerprint(c.miner_hotkey || coalesce('/' || g.group_hotkey, ''),
                              coalesce(g.trust, t.trust_score, resi.initial_trust())) AS trust_fingerprint
  FROM resi.miner_claims c
  LEFT JOIN resi.miner_trust t ON t.miner_hotkey = c.miner_hotkey
  LEFT JOIN resi.miner_groups g ON g.miner_hotkey = c.miner_hotkey;
COMMENT ON VIEW resi.weighted_claims IS
    'Each current claim (resi.miner_claims) with its miner''s group, the weight it votes with and the fingerprint of that weight (resi.trust_fingerprint).';

-- One row per zpid with a claim: every field's trust-weighted consensus. Numbers use the
-- weighted median with a relative tolerance (price 1%, living_area 2%, days_on_zillow 10%,
-- latitude/longitude 1e-6, about 3-10 m); categories use the weighted vote. A miner's weight
-- is its trust (resi.initial_trust() when unknown). A uri only votes when it names the zpid
-- it is reported for, so one listing can never take another's uri. 0.5.0: a claim's weight is
-- its trust × resi.claim_recency (older claims give way to fresher ones). consensus_score is the
-- mean confidence of the fields that have a consensus, at most 0.5 (medium) when one
-- independent source voted: agreeing with oneself is not confirmation.
--
-- 0.5.0: one vote per independent source (resi.consensus_by_source). A source is a miner's
-- group (resi.miner_groups) or the miner alone; claims with the same signature (byte copies)
-- belong to the source of the earliest upload among them, whoever uploaded the copies. A
-- group's weight is its pooled trust (resi.miner_groups.trust). Each source votes once per
-- listing, with the claim of its heaviest member (then the newest upload, then the smallest
-- hotkey as bytes): the other claims count as miners and attestations but carry no weight.
-- voting_groups is the number of sources with weight; the per-field supporters and voters
-- count sources. One pass over the claims, grouped by zpid: no sort or window per claim.
--
-- 0.5.0: audits. The newest audit (resi.record_audit) gives the fields it saw until a claim
-- with weight (trust > 0) is uploaded after seen_at; then the consensus decides again, as
-- usual. Claims without weight do not end it: the miners an audit found wrong lose their trust,
-- so re-uploading what was judged false cannot undo the check, while a real change reaches the
-- listing with the first report from a miner that still has weight. audited_at is when the
-- validator saw the values in force (NULL: the values are the miners' consensus).
-- field_consensus and consensus_score stay the miners'.
CREATE VIEW resi.listing_consensus AS
SELECT zpid,
       first_seen_at,
       total_attestations,
       unique_miners_count,
       CASE WHEN voting_groups >= 2 THEN (c).consensus_score ELSE least((c).consensus_score, 0.5::real) END AS consensus_score,
       (c).uri, (c).price, (c).address, (c).bedrooms, (c).bathrooms, (c).living_area, (c).home_type,
       (c).home_status, (c).days_on_zillow, (c).zip_code, (c).city, (c).state, (c).latitude, (c).longitude,
       voting_miners,
       trust_fingerprint,
       (c).field_consensus,
       voting_groups,
       audited_at
  FROM (SELECT per_listing.zpid, per_listing.first_seen_at, per_listing.total_attestations,
               per_listing.unique_miners_count, per_listing.voting_miners, per_listing.trust_fingerprint,
               (per_listing.sources).voting_groups, audit.seen_at AS audited_at,
               CASE WHEN audit.listing IS NULL THEN (per_listing.sources).listing
                    ELSE jsonb_populate_record((per_listing.sources).listing,
                                               audit.listing - ARRAY['consensus_score', 'field_consensus']) END AS c
  FROM (SELECT c.zpid,
               min(c.first_seen_at) AS first_seen_at,
               sum(c.attestations)::integer AS total_attestations,
               count(*)::integer AS unique_miners_count,
               count(*) FILTER (WHERE c.trust > 0)::integer AS voting_miners,
               bit_xor(c.trust_fingerprint) AS trust_fingerprint,
               resi.consensus_by_source(c.zpid, c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area,
                                        c.home_type, c.home_status, c.days_on_zillow, c.zip_code, c.city, c.state,
                                        c.latitude, c.longitude, c.trust, coalesce(c.group_hotkey, c.miner_hotkey),
                                        c.miner_hotkey, c.signature, c.submission_timestamp) AS sources
          FROM resi.weighted_claims c
         GROUP BY c.zpid) per_listing
  -- The newest audit, while no claim with weight has been uploaded since: its values are the
  -- listing's.
  LEFT JOIN LATERAL (SELECT a.listing, a.seen_at FROM resi.audits a
                      WHERE a.zpid = per_listing.zpid
                      ORDER BY a.seen_at DESC, a.id DESC LIMIT 1) audit
         ON NOT EXISTS (SELECT FROM resi.weighted_claims c
                         WHERE c.zpid = per_listing.zpid AND c.submission_timestamp > audit.seen_at AND c.trust > 0))
       per_listing_audited;
COMMENT ON VIEW resi.listing_consensus IS
    'Trust-weighted consensus of every listing, computed from resi.miner_claims (what resi.refresh_consensus writes into resi.listings).';

-- The rows of resi.listing_consensus for `zpids` (every listing with claims when NULL): the
-- consensus resi.refresh_consensus writes. Here the view itself, filtered, in PL/pgSQL: its
-- query is planned when it runs, with `zpids` known (a custom plan: the filter reaches the
-- claims' zpid index for a list, the native aggregates do the per-claim work). Not an SQL
-- function: Citus plans an SQL function over distributed tables before PostgreSQL could inline
-- it and refuses it (`parameterized queries for SQL functions referencing distributed tables
-- are not supported`); a query inside PL/pgSQL it pushes down to the shards. The portable
-- edition replaces this body with a set-based one (sql/portable/listing_consensus.sql: many
-- listings per query, no PL/pgSQL call per claim) giving the same rows. STABLE, PARALLEL SAFE;
-- rows in zpid order, which resi.refresh_consensus inserts them in: sorted here, where the
-- planner sees the view's grouping by zpid (no sort under the refresh, whose enable_hashagg is
-- off), not by the caller, for which the function's rows are of no known order (a sort of
-- every wide row, spilled to disk: 140 MB for a fold's 45,000 listings).
CREATE FUNCTION resi.listing_consensus_of(zpids text[]) RETURNS SETOF resi.listing_consensus
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN QUERY SELECT * FROM resi.listing_consensus c WHERE zpids IS NULL OR c.zpid = ANY (zpids) ORDER BY c.zpid;
END
$$;
COMMENT ON FUNCTION resi.listing_consensus_of(text[]) IS
    'The rows of resi.listing_consensus for the given listings (all when NULL): what resi.refresh_consensus writes.';

-- How one reported row compares with a listing's consensus (resi_pg/src/consensus/agreement.rs,
-- over the field table of resi_core/src/fields.rs, whose tolerances resi.listing_consensus uses
-- too): `compared` fields where both have a value, `agreed` of them within the field's tolerance
-- (a number within its relative tolerance, anything else equal). NULL listing: nothing compared.
-- One row per call: ROWS 1 tells the planner so.
ALTER FUNCTION resi.consensus_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings) ROWS 1;
COMMENT ON FUNCTION resi.consensus_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings) IS
    'How many of a reported row''s fields can be compared with a listing''s consensus, and how many of them agree (within the consensus tolerances).';

-- The fields of a listing whose consensus value two or more independent sources support (the
-- keys of field_consensus with supporters >= 2), in the field table's order; what
-- resi.corroborated_agreement counts. In Rust (resi_pg/src/consensus/agreement.rs): it reads the
-- jsonb in place, once per staged row of every fold. IMMUTABLE, STRICT, PARALLEL SAFE; '{}' for
-- a listing no two sources agree on.
COMMENT ON FUNCTION resi.corroborated_fields(jsonb) IS
    'The fields of a listing''s field_consensus whose consensus value two or more independent sources support.';

-- The same as resi.consensus_agreement, counted only on the fields named in `corroborated`
-- (resi.corroborated_fields of the listing): agreeing with a value another source backs too, or
-- disagreeing with one two others back, is evidence about a miner; agreeing with a consensus it
-- formed alone, or disagreeing with one other source, is not. What the fold counts as a
-- miner's agreement (resi.miner_trust.fields_agreed, agreeing_rows). One row per call: ROWS 1.
ALTER FUNCTION resi.corroborated_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings, text[]) ROWS 1;
COMMENT ON FUNCTION resi.corroborated_agreement(text, bigint, text, integer, double precision, integer, text, text, integer, text, text, text, double precision, double precision, resi.listings, text[]) IS
    'Like resi.consensus_agreement, counted only on the fields named in corroborated (those whose consensus value two or more independent sources support): the agreement a miner''s trust counts.';

-- A distributed database's consensus on its way into resi.listings (resi.refresh_consensus_on_shards):
-- the rows of resi.listing_consensus for the listings being refreshed, with the refresh's time.
-- Distributed by zpid with the listings (resi.citus_tables), so computing, comparing and writing
-- them runs on each shard; empty outside a refresh's transaction (its rows are deleted before
-- it commits) and unused on a single node. UNLOGGED: nothing in it outlives a transaction.
CREATE UNLOGGED TABLE resi.listing_refresh (LIKE resi.listing_consensus);
ALTER TABLE resi.listing_refresh ADD COLUMN refreshed_at timestamptz NOT NULL;
COMMENT ON TABLE resi.listing_refresh IS
    'On a distributed database, the consensus a refresh is writing (rows live only inside resi.refresh_consensus''s transaction).';

-- resi.refresh_consensus on a distributed database, once its lock is held (the advisory lock of
-- resi.lock_listings: one refresh at a time, so no new listing races it): the consensus of
-- `zpids` (all when NULL) is written to resi.listing_refresh, the changes of price or status to
-- resi.listing_history (changed_at `at`), and then into resi.listings the rows whose consensus
-- changed (last_updated_at `at` when a value did); the scratch rows are deleted. Each statement
-- joins tables co-located by zpid, so Citus runs it on every shard at once and no consensus row
-- passes through the coordinator (issue 18, the refresh of design B2). Same rows as the single
-- node's statement. Returns the number of listings refreshed. VOLATILE; not executable by PUBLIC.
CREATE FUNCTION resi.refresh_consensus_on_shards(zpids text[], at timestamptz) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    refreshed integer;
BEGIN
    INSERT INTO resi.listing_refresh
    SELECT c.*, at FROM resi.listing_consensus c WHERE zpids IS NULL OR c.zpid = ANY (zpids);
    GET DIAGNOSTICS refreshed = ROW_COUNT;

    INSERT INTO resi.listing_history (zpid, changed_at, price, home_status, consensus_score, previous_price,
                                      previous_home_status)
    SELECT f.zpid, f.refreshed_at, f.price, f.home_status, f.consensus_score, l.price, l.home_status
      FROM resi.listing_refresh f
      LEFT JOIN resi.listings l ON l.zpid = f.zpid
     WHERE (f.price, f.home_status) IS DISTINCT FROM (l.price, l.home_status);

    INSERT INTO resi.listings AS l
        (zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
         zip_code, city, state, latitude, longitude, first_seen_at, last_updated_at, consensus_score,
         total_attestations, unique_miners_count, field_consensus, voting_miners, trust_fingerprint,
         voting_groups, audited_at)
    SELECT f.zpid, f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type,
           f.home_status, f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude,
           least(f.first_seen_at, f.refreshed_at), f.refreshed_at, f.consensus_score, f.total_attestations,
           f.unique_miners_count, coalesce(f.field_consensus, '{}'), f.voting_miners, f.trust_fingerprint,
           f.voting_groups, f.audited_at
      FROM resi.listing_refresh f
    ON CONFLICT (zpid) DO UPDATE SET
        (uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
         zip_code, city, state, latitude, longitude) =
        (excluded.uri, excluded.price, excluded.address, excluded.bedrooms, excluded.bathrooms,
         excluded.living_area, excluded.home_type, excluded.home_status, excluded.days_on_zillow,
         excluded.zip_code, excluded.city, excluded.state, excluded.latitude, excluded.longitude),
        last_updated_at     = CASE WHEN (l.uri, l.price, l.address, l.bedrooms, l.bathrooms, l.living_area,
                                         l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                                         l.state, l.latitude, l.longitude)
                                    IS DISTINCT FROM
                                        (excluded.uri, excluded.price, excluded.address, excluded.bedrooms,
                                         excluded.bathrooms, excluded.living_area, excluded.home_type,
                                         excluded.home_status, excluded.days_on_zillow, excluded.zip_code,
                                         excluded.city, excluded.state, excluded.latitude, excluded.longitude)
                                   THEN excluded.last_updated_at ELSE l.last_updated_at END,
        first_seen_at       = least(l.first_seen_at, excluded.first_seen_at),
        consensus_score     = excluded.consensus_score,
        total_attestations  = excluded.total_attestations,
        unique_miners_count = excluded.unique_miners_count,
        voting_miners       = excluded.voting_miners,
        trust_fingerprint   = excluded.trust_fingerprint,
        field_consensus     = excluded.field_consensus,
        voting_groups       = excluded.voting_groups,
        audited_at          = excluded.audited_at
    WHERE (l.total_attestations, l.unique_miners_count, l.voting_miners, l.trust_fingerprint,
           l.consensus_score, least(l.first_seen_at, excluded.first_seen_at), l.uri, l.price, l.address,
           l.bedrooms, l.bathrooms, l.living_area, l.home_type, l.home_status, l.days_on_zillow, l.zip_code,
           l.city, l.state, l.latitude, l.longitude, l.field_consensus, l.voting_groups, l.audited_at)
          IS DISTINCT FROM
          (excluded.total_attestations, excluded.unique_miners_count, excluded.voting_miners,
           excluded.trust_fingerprint, excluded.consensus_score, l.first_seen_at, excluded.uri, excluded.price,
           excluded.address, excluded.bedrooms, excluded.bathrooms, excluded.living_area, excluded.home_type,
           excluded.home_status, excluded.days_on_zillow, excluded.zip_code, excluded.city, excluded.state,
           excluded.latitude, excluded.longitude, excluded.field_consensus, excluded.voting_groups,
           excluded.audited_at);

    DELETE FROM resi.listing_refresh;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus_on_shards(text[], timestamptz) IS
    'resi.refresh_consensus on a distributed database, under its lock: the consensus computed, compared and written on every shard at once. Returns the number of listings refreshed.';
REVOKE EXECUTE ON FUNCTION resi.refresh_consensus_on_shards(text[], timestamptz) FROM PUBLIC;

-- Write the consensus of `zpids` (all listings with claims when NULL) into resi.listings, and each
-- change of a listing's consensus price or status (its first consensus included) into
-- resi.listing_history. Concurrent refreshes of overlapping listings queue instead of overwriting
-- each other with a consensus that misses the other's claims: on a single node the listings that
-- exist are locked in zpid order first; on a distributed database (resi.listings distributed by
-- resi.distribute: Citus runs no multi-shard SELECT … FOR UPDATE) every refresh takes one
-- transaction-level advisory lock on the coordinator instead, so refreshes run one at a time there
-- (a lock per listing would not do: a fold refreshes up to ~50,000 listings, and advisory locks
-- live in the shared lock table). resi.archive_batch_delete takes the same locks. A new listing is
-- written once, with its values (no placeholder to update); one another transaction inserted and
-- committed after this one's snapshot is computed again once it is locked (the INSERT waited for
-- it, so this is rare). On a distributed database the work then goes to
-- resi.refresh_consensus_on_shards (the same rows, computed and written on every shard at once;
-- no race under its lock). JIT is off: the statements are
-- mostly calls into Rust, which JIT cannot compile, and compiling the rest cost ~0.3 s per refresh
-- of 5,000 listings (10 s of a 60-second, 200,000-row load). (The same holds for the fold,
-- resi.refresh_stale_consensus and resi.find_dependent_miners.) Errors: 25000 outside READ
-- COMMITTED.
CREATE FUNCTION resi.refresh_consensus(zpids text[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
    SET jit = off
    SET enable_hashagg = off
AS $$
DECLARE
    refreshed integer;
    raced     text[]; -- new listings another transaction inserted first
    -- now(), taken once: the statement below uses it as a constant (Citus refuses a volatile
    -- or stable function inside CASE or LEAST in a statement on a distributed table).
    at        timestamptz := now();
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'resi.refresh_consensus needs READ COMMITTED isolation, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Each statement must see the claims other loaders committed while it waited for the listing locks.';
    END IF;
    PERFORM resi.lock_listings(zpids);
    IF resi.listings_distributed() THEN
        RETURN resi.refresh_consensus_on_shards(zpids, at);
    END IF;

    -- A new statement: its snapshot includes every claim committed before the locks were granted.
    -- Only rows whose consensus changed are written, and last_updated_at moves only when a value
    -- did: a refresh that changes confidences or counts alone touches no indexed column and can
    -- be a HOT update (resi.listings has fillfactor 80). `previous` is the same rows as `l` (the
    -- snapshot's versions, locked above): what the history records as the previous values.
    --
    -- `fresh` holds the rows in zpid order, as resi.listing_consensus_of returns them (it groups
    -- claims read in that order: enable_hashagg is off, a hash of every listing's claims spilled
    -- to disk at 200,000 listings), and new listings are inserted in the order `fresh` holds them
    -- (a function scan and a CTE scan return rows as stored), so concurrent folds take the new
    -- rows' index entries in the same order and cannot deadlock, without sorting the wide
    -- consensus rows again (that sort spilled 585 MB at 200,000 listings; a fold of 200,000
    -- rows spent a tenth of its refreshes on it).
    WITH fresh AS MATERIALIZED (
        SELECT * FROM resi.listing_consensus_of(zpids)
    ), written AS (
        UPDATE resi.listings l SET
            (uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
             zip_code, city, state, latitude, longitude) =
            (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type, f.home_status,
             f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude),
            last_updated_at     = CASE WHEN (l.uri, l.price, l.address, l.bedrooms, l.bathrooms, l.living_area,
                                             l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                                             l.state, l.latitude, l.longitude)
                                        IS DISTINCT FROM
                                            (f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area,
                                             f.home_type, f.home_status, f.days_on_zillow, f.zip_code, f.city,
                                             f.state, f.latitude, f.longitude)
                                       THEN at ELSE l.last_updated_at END,
            first_seen_at       = least(l.first_seen_at, f.first_seen_at),
            consensus_score     = f.consensus_score,
            total_attestations  = f.total_attestations,
            unique_miners_count = f.unique_miners_count,
            voting_miners       = f.voting_miners,
            trust_fingerprint   = f.trust_fingerprint,
            field_consensus     = coalesce(f.field_consensus, '{}'),
            voting_groups       = f.voting_groups,
            audited_at          = f.audited_at
          FROM fresh f
          JOIN resi.listings previous ON previous.zpid = f.zpid
         WHERE l.zpid = f.zpid
           -- Cheap columns first: the comparison stops at the first difference.
           AND (l.total_attestations, l.unique_miners_count, l.voting_miners, l.trust_fingerprint,
                l.consensus_score, least(l.first_seen_at, f.first_seen_at), l.uri, l.price, l.address, l.bedrooms,
                l.bathrooms, l.living_area, l.home_type, l.home_status, l.days_on_zillow, l.zip_code, l.city,
                l.state, l.latitude, l.longitude, l.field_consensus, l.voting_groups, l.audited_at)
               IS DISTINCT FROM
               (f.total_attestations, f.unique_miners_count, f.voting_miners, f.trust_fingerprint,
                f.consensus_score, l.first_seen_at, f.uri, f.price, f.address, f.bedrooms,
                f.bathrooms, f.living_area, f.home_type, f.home_status, f.days_on_zillow, f.zip_code, f.city,
                f.state, f.latitude, f.longitude, coalesce(f.field_consensus, '{}'), f.voting_groups, f.audited_at)
        RETURNING l.zpid, l.price, l.home_status, l.consensus_score,
                  previous.price AS previous_price, previous.home_status AS previous_home_status
    ), inserted AS (
        INSERT INTO resi.listings AS l
            (zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
             zip_code, city, state, latitude, longitude, first_seen_at, consensus_score, total_attestations,
             unique_miners_count, field_consensus, voting_miners, trust_fingerprint, voting_groups, audited_at)
        SELECT f.zpid, f.uri, f.price, f.address, f.bedrooms, f.bathrooms, f.living_area, f.home_type,
               f.home_status, f.days_on_zillow, f.zip_code, f.city, f.state, f.latitude, f.longitude,
               least(f.first_seen_at, at), f.consensus_score, f.total_attestations, f.unique_miners_count,
               coalesce(f.field_consensus, '{}'), f.voting_miners, f.trust_fingerprint, f.voting_groups,
               f.audited_at
          FROM fresh f
        -- Existing listings (those `written`, and unchanged ones) conflict and are skipped by the
        -- primary key's check before any write. Not an anti join against resi.listings: after a
        -- VACUUM of an empty table the planner believes its 0 pages and scans it once per row
        -- while this statement fills it (n² visibility checks: 101 s for 25,000 new listings).
        ON CONFLICT (zpid) DO NOTHING
        RETURNING l.zpid, l.price, l.home_status, l.consensus_score
    ), history AS (
        INSERT INTO resi.listing_history (zpid, price, home_status, consensus_score, previous_price, previous_home_status)
        SELECT h.zpid, h.price, h.home_status, h.consensus_score, h.previous_price, h.previous_home_status
          FROM (SELECT * FROM written
                UNION ALL
                SELECT i.zpid, i.price, i.home_status, i.consensus_score, NULL, NULL FROM inserted i) h
         WHERE (h.price, h.home_status) IS DISTINCT FROM (h.previous_price, h.previous_home_status)
         ORDER BY h.zpid
    )
    -- Raced: not in the snapshot's listings (of `zpids`, read once), yet not inserted. Joins,
    -- not a correlated NOT EXISTS beside the CTEs, which Citus refuses.
    SELECT count(*), array_agg(f.zpid ORDER BY f.zpid) FILTER (WHERE i.zpid IS NULL AND e.zpid IS NULL)
      INTO refreshed, raced
      FROM fresh f
      LEFT JOIN inserted i ON i.zpid = f.zpid
      LEFT JOIN (SELECT e.zpid FROM resi.listings e WHERE zpids IS NULL OR e.zpid = ANY (zpids)) e ON e.zpid = f.zpid;
    IF raced IS NOT NULL THEN
        PERFORM resi.refresh_consensus(raced);
    END IF;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION resi.refresh_consensus(text[]) IS
    'Recompute the consensus of the given listings (all when NULL) from resi.miner_claims into resi.listings, e.g. after trust changes, recording each change of price or status in resi.listing_history; rows whose consensus did not change are not rewritten. Returns the number of listings recomputed.';

-- Rebuild resi.miner_claims from resi.miner_attestations (the claims are derived data; use
-- after editing attestations by hand), then refresh every listing. Each claim is the miner's
-- newest report on the listing, as the fold picks it.
CREATE FUNCTION resi.rebuild_claims() RETURNS integer
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE resi.miner_claims IN EXCLUSIVE MODE;
    DELETE FROM resi.miner_claims;
    INSERT INTO resi.miner_claims
    SELECT DISTINCT ON (a.zpid, a.miner_hotkey)
           a.zpid, a.miner_hotkey, a.id, a.submission_timestamp,
           min(a.submission_timestamp) OVER w, count(*) OVER w,
           a.uri, a.price, a.address, a.bedrooms, a.bathrooms, a.living_area, a.home_type, a.home_status,
           a.days_on_zillow, a.zip_code, a.city, a.state, a.latitude, a.longitude, a.signature
      FROM resi.miner_attestations a
    WINDOW w AS (PARTITION BY a.zpid, a.miner_hotkey)
     -- The newest upload as the fold picks it (sql/fold.sql).
     ORDER BY a.zpid, a.miner_hotkey, a.submission_timestamp DESC, a.signature DESC NULLS LAST, a.id DESC;
    RETURN resi.refresh_consensus(NULL);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Trust changes reach the consensus: bounded refreshes of stale listings
-- ---------------------------------------------------------------------------------------------
-- A listing is stale when the weights of its claims differ from those its consensus was
-- computed with (resi.listings.trust_fingerprint). Refreshes at most max_listings stale listings,
-- oldest consensus first, and returns how many. The loader calls it after every pass
-- (resi-loader run --refresh-limit, default 10,000), so a listing's consensus lags its miners'
-- trust by at most (stale listings / limit) passes; folding new rows of a listing refreshes it
-- at once.
CREATE FUNCTION resi.stale_listing(zpid text, trust_fingerprint bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN trust_fingerprint IS DISTINCT FROM (
        SELECT bit_xor(c.trust_fingerprint) FROM resi.weighted_claims c WHERE c.zpid = stale_listing.zpid);
COMMENT ON FUNCTION resi.stale_listing(text, bigint) IS
    'Whether a listing''s consensus, computed with these weights (resi.listings.trust_fingerprint), is out of date with its miners'' trust and groups now.';

-- resi.stale_listing for every listing at once: one grouped pass over the claims instead of one
-- lookup per listing (and a join of co-located tables on Citus, where the lookup, a correlated
-- subquery, cannot be planned).
CREATE VIEW resi.stale_consensus AS
SELECT l.zpid, l.last_updated_at
  FROM resi.listings l
  LEFT JOIN (SELECT c.zpid, bit_xor(c.trust_fingerprint) AS trust_fingerprint
               FROM resi.weighted_claims c
              GROUP BY c.zpid) now ON now.zpid = l.zpid
 WHERE l.trust_fingerprint IS DISTINCT FROM now.trust_fingerprint;
COMMENT ON VIEW resi.stale_consensus IS
    'The listings whose consensus was computed with other weights than their miners have now (resi.stale_listing of every listing), with when each was last computed.';

CREATE FUNCTION resi.refresh_stale_consensus(max_listings integer DEFAULT 10000) RETURNS integer
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
AS $$
BEGIN
    IF max_listings < 0 THEN
        RAISE EXCEPTION 'resi.refresh_stale_consensus: max_listings must be >= 0, got %', max_listings
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM resi.refresh_group_trust();
    RETURN resi.refresh_consensus(ARRAY(
        SELECT s.zpid FROM resi.stale_consensus s ORDER BY s.last_updated_at, s.zpid LIMIT max_listings));
END
$$;
COMMENT ON FUNCTION resi.refresh_stale_consensus(integer) IS
    'Pool each group''s trust again (resi.refresh_group_trust), then recompute up to max_listings listings whose consensus was computed with weights their miners no longer have, oldest first. Returns the number refreshed.';

CREATE FUNCTION resi.stale_listings() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT count(*) FROM resi.stale_consensus;
END;
COMMENT ON FUNCTION resi.stale_listings() IS
    'How many listings resi.refresh_stale_consensus still has to recompute.';

-- The one-line promises of this file's functions defined in Rust or above without one.
COMMENT ON FUNCTION resi.rebuild_claims() IS
    'Rebuild resi.miner_claims from resi.miner_attestations (after editing attestations by hand), then refresh every listing; returns the listings refreshed.';
COMMENT ON FUNCTION resi.claim_half_life_seconds() IS
    'The resi.claim_half_life setting in seconds (0: claims do not age); what resi.claim_recency reads.';
