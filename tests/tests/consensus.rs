//! The consensus aggregates under PostgreSQL's parallel query: a forced parallel plan over
//! ≥100k rows must use Partial Aggregate and give exactly the serial answer; left to its own
//! costs, the planner splits few large groups over workers and aggregates many small ones
//! serially.

use resi_e2e::{scalar, Edition, TestDatabase};

/// A parallel plan with partial aggregation in two workers (the leader combines), whatever the
/// aggregates' COSTs: no setup cost, and rows so dear to scan (cpu_tuple_cost) that splitting the
/// scan wins, while gathering every row instead of the partial states still costs
/// parallel_tuple_cost (its default) per row.
const FORCE_PARALLEL: &str = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0.1; SET cpu_tuple_cost = 1;
    SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
    SET parallel_leader_participation = off;";
const FORCE_SERIAL: &str = "SET max_parallel_workers_per_gather = 0;";

/// 150k attestations over 2,000 listings from 40 miners: statuses with near-ties, prices with
/// outliers, weights that are not exact binary fractions, and NULL/NaN/zero weights mixed in.
const ATTESTATIONS: &str = "
    CREATE TABLE attestations AS
    SELECT (i % 2000)::text AS zpid,
           (ARRAY['FOR_SALE', 'SOLD', 'PENDING', NULL])[1 + (i * 7919) % 4] AS status,
           CASE WHEN i % 97 = 0 THEN 'NaN'::float8
                WHEN i % 89 = 0 THEN NULL
                WHEN i % 83 = 0 THEN 0
                ELSE ((i * 104729) % 40 + 1) / 41.0 END AS trust,
           CASE WHEN i % 53 = 0 THEN 1e9 ELSE 300000 + ((i * 31) % 50) * 1000 END::float8 AS price
      FROM generate_series(1::bigint, 150000) i;
    ANALYZE attestations;";

const UNGROUPED: &str = "SELECT resi.consensus_mode(status, trust)::text || resi.consensus_median(price, trust, 0.02)::text FROM attestations";
const GROUPED: &str = "SELECT md5(string_agg(zpid || (m)::text || (n)::text, ',' ORDER BY zpid)), count(*)::text FROM (
    SELECT zpid, resi.consensus_mode(status, trust) m, resi.consensus_median(price, trust, 0.02) n
      FROM attestations GROUP BY zpid) s";

/// The plan PostgreSQL runs for `query`, with the rows each node gave.
fn plan(client: &mut postgres::Client, query: &str) -> String {
    explain(client, "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF", query)
}

/// `EXPLAIN ({options}) {query}`, its lines joined.
fn explain(client: &mut postgres::Client, options: &str, query: &str) -> String {
    client
        .query(&format!("EXPLAIN ({options}) {query}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn answer(client: &mut postgres::Client, query: &str) -> String {
    let row = client.query_one(query, &[]).unwrap();
    (0..row.len()).map(|i| row.get::<_, String>(i)).collect::<Vec<_>>().join(" ")
}

#[test]
fn parallel_plan_gives_the_serial_answer() {
    let db = TestDatabase::new("parallel");
    let mut client = db.client();
    client.batch_execute(ATTESTATIONS).unwrap();

    client.batch_execute(FORCE_PARALLEL).unwrap();
    for query in [UNGROUPED, GROUPED] {
        let explain = plan(&mut client, query);
        assert!(explain.contains("Partial Aggregate") || explain.contains("Partial HashAggregate"), "{explain}");
        assert!(explain.contains("Workers Launched: 2"), "workers did not run:\n{explain}");
    }
    let parallel = (answer(&mut client, UNGROUPED), answer(&mut client, GROUPED));

    client.batch_execute(FORCE_SERIAL).unwrap();
    let explain = plan(&mut client, GROUPED);
    assert!(!explain.contains("Partial"), "{explain}");
    let serial = (answer(&mut client, UNGROUPED), answer(&mut client, GROUPED));

    assert_eq!(parallel, serial);
    assert!(serial.1.ends_with(" 2000"), "{}", serial.1);
    // Sanity: the vote is not trivially empty.
    assert!(
        serial.0.starts_with("(FOR_SALE,") || serial.0.starts_with("(SOLD,") || serial.0.starts_with("(PENDING,"),
        "{}",
        serial.0
    );
}

/// The aggregates with a state of a concrete type (`resi.distributed_consensus_mode`,
/// `resi.distributed_consensus_median`) give the internal-state aggregates' answers: serially, in
/// a parallel plan (their states reach the leader flat, through the workers' tuple queue) and as
/// Citus splits them, each part's state written as text, read back and combined. Native edition
/// only: the portable edition's are its internal-state aggregates under a second name (compared
/// in tests/tests/portable_consensus.rs).
#[test]
fn the_distributed_aggregates_give_the_same_answers_serially_in_parallel_and_from_text() {
    let db = TestDatabase::with_edition("distributed_aggregates", Edition::Native);
    let mut client = db.client();
    client.batch_execute(ATTESTATIONS).unwrap();
    let distributed = |query: &str| query.replace("resi.consensus_m", "resi.distributed_consensus_m");

    client.batch_execute(FORCE_SERIAL).unwrap();
    let serial = (answer(&mut client, UNGROUPED), answer(&mut client, GROUPED));
    assert!(serial.1.ends_with(" 2000"), "{}", serial.1);
    let query = (distributed(UNGROUPED), distributed(GROUPED));
    assert_eq!((answer(&mut client, &query.0), answer(&mut client, &query.1)), serial);
    // A hash aggregation past work_mem, which spills and resets its memory between batches (the
    // tallies' shared context with it).
    client.batch_execute("SET work_mem = '64kB'; SET enable_sort = off").unwrap();
    let spilled = plan(&mut client, &query.1);
    assert!(spilled.contains("HashAggregate") && !spilled.contains("Batches: 1 "), "{spilled}");
    assert_eq!(answer(&mut client, &query.1), serial.1);
    client.batch_execute("RESET work_mem; RESET enable_sort").unwrap();

    client.batch_execute(FORCE_PARALLEL).unwrap();
    for query in [&query.0, &query.1] {
        let explain = plan(&mut client, query);
        assert!(explain.contains("Partial Aggregate") || explain.contains("Partial HashAggregate"), "{explain}");
        assert!(explain.contains("Workers Launched: 2"), "workers did not run:\n{explain}");
    }
    assert_eq!((answer(&mut client, &query.0), answer(&mut client, &query.1)), serial);

    // What Citus does: a state per part (worker) as text, then the parts' states combined.
    client
        .batch_execute(
            "SET max_parallel_workers_per_gather = 0;
             CREATE AGGREGATE mode_tally(text, float8) (
                 STYPE = resi.consensus_mode_tally, SFUNC = resi.consensus_mode_tally_transition);
             CREATE AGGREGATE median_tally(float8, float8, float8) (
                 STYPE = resi.consensus_median_tally, SFUNC = resi.consensus_median_tally_transition);
             CREATE AGGREGATE merged(resi.consensus_mode_tally) (STYPE = resi.consensus_mode_tally,
                 SFUNC = resi.consensus_mode_tally_combine, FINALFUNC = resi.consensus_mode_tally_final);
             CREATE AGGREGATE merged(resi.consensus_median_tally) (STYPE = resi.consensus_median_tally,
                 SFUNC = resi.consensus_median_tally_combine, FINALFUNC = resi.consensus_median_tally_final);
             CREATE TABLE parts AS
             SELECT zpid, part, mode_tally(status, trust)::text AS m, median_tally(price, trust, 0.02)::text AS n
               FROM (SELECT *, abs(hashtext(concat(status, price, trust))) % 3 AS part FROM attestations) a
              GROUP BY zpid, part",
        )
        .unwrap();
    let parts: i64 = scalar(&mut client, "SELECT count(*) FROM parts");
    assert!(parts > 4000, "{parts} parts: most listings must be split");
    let merged = answer(
        &mut client,
        "SELECT md5(string_agg(zpid || (m)::text || (n)::text, ',' ORDER BY zpid)), count(*)::text FROM (
           SELECT zpid, merged(m::resi.consensus_mode_tally) m, merged(n::resi.consensus_median_tally) n
             FROM parts GROUP BY zpid) s",
    );
    assert_eq!(merged, serial.1);

    // Text that is not a state, and a support function called outside an aggregate.
    for (sql, code) in [
        ("SELECT 'FOR_SALE'::resi.consensus_mode_tally", "22P02"),
        ("SELECT '\\x4d01'::resi.consensus_mode_tally", "22P02"),
        ("SELECT '\\x4'::resi.consensus_median_tally", "22P02"),
        ("SELECT (SELECT m FROM parts LIMIT 1)::resi.consensus_median_tally", "22P02"),
        ("SELECT resi.consensus_mode_tally_transition(NULL, 'a', 1)", "0A000"),
        (
            "SELECT resi.consensus_mode_tally_combine(NULL, (SELECT m FROM parts LIMIT 1)::resi.consensus_mode_tally)",
            "0A000",
        ),
    ] {
        let error = client.batch_execute(sql).unwrap_err();
        assert_eq!(error.code().map(|c| c.code()), Some(code), "{sql}: {error}");
    }
}

/// PostgreSQL 15's own settings for parallel query, whatever the cluster's: up to 2 workers per
/// Gather, the leader taking part, its setup and per-row costs, parallel scans from 8 MB.
const DEFAULT_PARALLEL: &str = "SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = on;
    SET parallel_setup_cost = 1000; SET parallel_tuple_cost = 0.1; SET cpu_tuple_cost = 0.01;
    SET min_parallel_table_scan_size = '8MB';";

/// 500,000 claims (36 MB: a parallel scan with 2 workers at the default settings) on 50,000
/// listings of 10, which also fall into 100 areas of 5,000: the bench's shapes (issue 16), halved.
const CLAIMS: &str = "
    CREATE TABLE claims AS
    SELECT i % 50000 AS listing, i % 100 AS area,
           (ARRAY['FOR_SALE', 'FOR_SALE', 'FOR_SALE', 'FOR_RENT', 'FOR_RENT', 'PENDING', 'RECENTLY_SOLD',
                  'OFF_MARKET'])[1 + (hashint8(i) & 7)] AS status,
           (200000 + (hashint8(i * 3 + 1) & 255) * 500)::float8 AS price,
           ((1 + (hashint8(i * 5 + 2) & 1023)) / 1024.0)::float8 AS trust
      FROM generate_series(0::bigint, 499999) i;
    ANALYZE claims;";

/// The COSTs of the aggregates' support functions (sql/native/consensus.sql) tell the planner
/// what a partial state costs against a row. Over groups of 10 rows every group reaches the
/// leader as two or three partial states to combine, and the parallel plan is slower than the
/// serial one, whether the serial hash table spills (the default work_mem) or not; over groups of
/// 5,000 the workers' share of the rows outweighs the few partial states. With every COST at 1
/// the planner chose the parallel plan for the small groups at the default work_mem. Native
/// edition only: the portable aggregates are SQL functions with costs of their own.
#[test]
fn the_planner_aggregates_many_small_groups_serially_and_few_large_groups_in_parallel() {
    let db = TestDatabase::with_edition("planner", Edition::Native);
    let mut client = db.client();
    client.batch_execute(CLAIMS).unwrap();
    client.batch_execute(DEFAULT_PARALLEL).unwrap();
    for work_mem in ["4MB", "256MB"] {
        client.batch_execute(&format!("SET work_mem = '{work_mem}'")).unwrap();
        for aggregate in [
            "resi.consensus_mode(status, trust)",
            "resi.consensus_median(price, trust, 0.01)",
            "resi.consensus_listing(listing::text, NULL, price::bigint, NULL, NULL, NULL, NULL, NULL, status, NULL, NULL,
                                    NULL, NULL, NULL, NULL, trust)",
        ] {
            for (group, parallel) in [("listing", false), ("area", true)] {
                let query = format!("SELECT {group}, {aggregate} FROM claims GROUP BY {group}");
                let estimate = explain(&mut client, "COSTS ON", &query);
                assert_eq!(
                    estimate.contains("Partial"),
                    parallel,
                    "work_mem {work_mem}: {query} should run {}:\n{estimate}",
                    if parallel { "in parallel" } else { "serially" }
                );
            }
        }
    }
}

#[test]
fn answer_does_not_depend_on_row_order() {
    let db = TestDatabase::new("order");
    let mut client = db.client();
    client.batch_execute(ATTESTATIONS).unwrap();
    client.batch_execute(FORCE_SERIAL).unwrap();
    let ordered = |order: &str| {
        answer(
            &mut db.client(),
            &format!(
                "SELECT md5(string_agg(zpid || (m)::text || (n)::text, ',' ORDER BY zpid)) FROM (
                   SELECT zpid, resi.consensus_mode(status, trust) m, resi.consensus_median(price, trust, 0.02) n
                     FROM (SELECT * FROM attestations ORDER BY {order} OFFSET 0) o GROUP BY zpid) s"
            ),
        )
    };
    let baseline = ordered("zpid, status, trust, price");
    assert_eq!(ordered("price DESC, trust, status DESC"), baseline);
    assert_eq!(ordered("md5(zpid || status || trust::text || price::text)"), baseline);
}

#[test]
fn consensus_feeds_listings_in_one_statement() {
    // One set-based INSERT … SELECT … GROUP BY with ON CONFLICT over the aggregates (the shape
    // of a fold, though not resi.fold_staged_listings itself, which tests/tests/fold.rs covers).
    let db = TestDatabase::new("fold_shape");
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('honest1', 0.9), ('honest2', 0.8), ('liar', 0.3);
             INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp, price, home_status)
             VALUES ('honest1', '1', now(), 350000, 'FOR_SALE'), ('honest2', '1', now(), 351000, 'FOR_SALE'),
                    ('liar', '1', now(), 99, 'SOLD'), ('liar', '2', now(), 200000, 'SOLD');
             INSERT INTO resi.listings (zpid, price, home_status, consensus_score, total_attestations, unique_miners_count, field_consensus)
             SELECT a.zpid, (p).value::bigint, (s).value, least((p).confidence, (s).confidence), count, miners,
                    jsonb_build_object('price', to_jsonb(p), 'home_status', to_jsonb(s))
               FROM (SELECT a.zpid, resi.consensus_median(a.price, t.trust_score, 0.01) p,
                            resi.consensus_mode(a.home_status, t.trust_score) s,
                            count(*)::int count, count(DISTINCT a.miner_hotkey)::int miners
                       FROM resi.miner_attestations a JOIN resi.miner_trust t USING (miner_hotkey)
                      GROUP BY a.zpid) a
             ON CONFLICT (zpid) DO UPDATE SET price = excluded.price;",
        )
        .unwrap();
    let rows: Vec<(String, i64, String, i32, String)> = client
        .query("SELECT zpid, price, home_status, total_attestations, field_consensus->'price'->>'supporters' FROM resi.listings ORDER BY zpid", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("1".into(), 350000, "FOR_SALE".into(), 3, "2".into()),
            ("2".into(), 200000, "SOLD".into(), 1, "1".into())
        ]
    );
}

/// 2,000 listings, ~15,000 claims from 30 miners with hotkeys of mixed case: two groups with
/// pooled trust, miners without a trust row, zero trust, ties in trust and upload time, byte
/// copies (shared signatures) and claims with a signature of their own.
const WORLD: &str = "
    INSERT INTO resi.miner_trust (miner_hotkey, trust_score)
    SELECT (ARRAY['a', 'B', 'c', 'D'])[1 + i % 4] || i,
           CASE WHEN i % 7 = 0 THEN 0 ELSE ((i * 37) % 10 + 1) / 10.0 END
      FROM generate_series(0, 24) i;
    INSERT INTO resi.miner_groups (miner_hotkey, group_hotkey, trust)
    SELECT (ARRAY['a', 'B', 'c', 'D'])[1 + i % 4] || i, 'G' || (i % 2), CASE WHEN i % 2 = 0 THEN 0.3 ELSE 0.6 END
      FROM generate_series(0, 29) i WHERE i % 5 = 0;
    INSERT INTO resi.miner_claims (zpid, miner_hotkey, attestation_id, submission_timestamp, first_seen_at,
                                   attestations, uri, price, address, bedrooms, bathrooms, living_area, home_type,
                                   home_status, days_on_zillow, zip_code, city, state, latitude, longitude, signature)
    SELECT z::text, (ARRAY['a', 'B', 'c', 'D'])[1 + i % 4] || i, z * 100 + i,
           timestamptz '2025-09-01' + ((z + i) % 6) * interval '1 hour',
           timestamptz '2025-08-01' + (i % 3) * interval '1 day', 1 + i % 2,
           'https://www.zillow.com/homedetails/' || z || '_zpid/',
           CASE WHEN i % 4 = 1 THEN 100000 + z ELSE 100000 + (z * (i % 3) * 997) % 9000 END,
           z || ' Oak St', 2 + (i % 4 = 3)::int, 2.5, 1500 + (i % 2) * 30, 'SINGLE_FAMILY',
           (ARRAY['FOR_SALE', 'SOLD', 'PENDING'])[1 + (z + i / 4) % 3], i % 20, '77494', 'Katy', 'TX',
           29.5 + z * 1e-5, -95.5 - (i % 2) * 1e-4,
           CASE WHEN i % 4 = 1 THEN z WHEN i % 9 = 2 THEN z * 100 + i END
      FROM generate_series(0, 1999) z, generate_series(0, 29) i
     WHERE (z * 7 + i * 13) % 4 = 0;
    ANALYZE resi.miner_claims;";

/// What resi.listing_consensus computed before resi.consensus_by_source: the sources and their
/// leading claims from window functions (hotkeys as bytes), then resi.consensus_listing over
/// trust × recency.
const WINDOWED: &str = r#"
    SELECT zpid, first_seen_at, total_attestations, unique_miners_count,
           CASE WHEN voting_groups >= 2 THEN (c).consensus_score ELSE least((c).consensus_score, 0.5::real) END,
           (c).uri, (c).price, (c).address, (c).bedrooms, (c).bathrooms, (c).living_area, (c).home_type,
           (c).home_status, (c).days_on_zillow, (c).zip_code, (c).city, (c).state, (c).latitude, (c).longitude,
           voting_miners, trust_fingerprint, (c).field_consensus, voting_groups
      FROM (SELECT v.zpid, min(v.first_seen_at) AS first_seen_at, sum(v.attestations)::integer AS total_attestations,
                   count(*)::integer AS unique_miners_count,
                   count(*) FILTER (WHERE v.trust > 0)::integer AS voting_miners,
                   bit_xor(v.trust_fingerprint) AS trust_fingerprint,
                   resi.consensus_listing(v.zpid, v.uri, v.price, v.address, v.bedrooms, v.bathrooms, v.living_area,
                                          v.home_type, v.home_status, v.days_on_zillow, v.zip_code, v.city, v.state,
                                          v.latitude, v.longitude,
                                          CASE WHEN v.leads THEN v.trust * resi.claim_recency(v.newest - v.submission_timestamp) END) AS c,
                   count(*) FILTER (WHERE v.leads AND v.trust > 0)::integer AS voting_groups
              FROM (SELECT s.*,
                           row_number() OVER (PARTITION BY s.zpid, s.source
                                                  ORDER BY s.trust DESC, s.submission_timestamp DESC, s.miner_hotkey COLLATE "C") = 1 AS leads,
                           max(s.submission_timestamp) OVER (PARTITION BY s.zpid) AS newest
                      FROM (SELECT c.*,
                                   CASE WHEN c.signature IS NULL THEN coalesce(c.group_hotkey, c.miner_hotkey)
                                        ELSE first_value(coalesce(c.group_hotkey, c.miner_hotkey))
                                                 OVER (PARTITION BY c.zpid, c.signature
                                                           ORDER BY c.submission_timestamp, c.miner_hotkey COLLATE "C") END AS source
                              FROM resi.weighted_claims c) s) v
             GROUP BY v.zpid) x
     ORDER BY zpid"#;

const BY_SOURCE: &str = "
    SELECT zpid, first_seen_at, total_attestations, unique_miners_count, consensus_score, uri, price, address,
           bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow, zip_code, city, state,
           latitude, longitude, voting_miners, trust_fingerprint, field_consensus, voting_groups
      FROM resi.listing_consensus ORDER BY zpid";

fn rows(client: &mut postgres::Client, query: &str) -> Vec<String> {
    client
        .query(&format!("SELECT row(q.*)::text FROM ({query}) q"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[test]
fn one_vote_per_source_is_what_the_window_functions_computed() {
    let db = TestDatabase::new("by_source");
    let mut client = db.client();
    client.batch_execute(WORLD).unwrap();
    for half_life in ["2h", "0"] {
        client.batch_execute(&format!("SET resi.claim_half_life = '{half_life}'")).unwrap();
        let (windowed, by_source) = (rows(&mut client, WINDOWED), rows(&mut client, BY_SOURCE));
        assert_eq!(windowed.len(), 2000);
        if let Some(i) = (0..windowed.len()).find(|&i| windowed[i] != by_source[i]) {
            panic!(
                "half-life {half_life}: listing {i} differs:\nwindowed:  {}\nby source: {}",
                windowed[i], by_source[i]
            );
        }
        assert_eq!(windowed.len(), by_source.len());
    }
    // The world has what the test is for: groups and copies that leave fewer sources than
    // miners, listings with one voting source and with several, and zero-trust sources.
    let (fewer, single, several): (i64, i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE voting_groups < voting_miners), count(*) FILTER (WHERE voting_groups = 1),
                        count(*) FILTER (WHERE voting_groups >= 3) FROM resi.listing_consensus",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert!(fewer > 500 && single > 0 && several > 100, "{fewer} {single} {several}");
}

/// resi.listing_consensus_of, what resi.refresh_consensus writes, gives the view's rows: for
/// every listing (60,000 claims, more than one chunk of the portable edition's set-based body),
/// for some of them, and with audits in force or overruled by a later claim with weight; in
/// zpid order without being asked, the order the refresh inserts new listings in (it sorts them
/// no more).
#[test]
fn the_consensus_of_many_listings_is_the_views() {
    let db = TestDatabase::new("consensus_of");
    let mut client = db.client();
    client.batch_execute(WORLD).unwrap();
    // Three more miners per claim (no trust row: the initial trust), uploading later and
    // reporting other prices; audits of every 50th listing, seen at 03:00 (later claims overrule
    // them) or 09:00 (after every claim).
    client
        .batch_execute(
            "INSERT INTO resi.miner_claims (zpid, miner_hotkey, attestation_id, submission_timestamp, first_seen_at,
                                            attestations, uri, price, address, bedrooms, bathrooms, living_area,
                                            home_type, home_status, days_on_zillow, zip_code, city, state, latitude,
                                            longitude, signature)
             SELECT c.zpid, c.miner_hotkey || v.suffix, c.attestation_id + v.k * 1000000,
                    c.submission_timestamp + v.k * interval '20 minutes', c.first_seen_at, c.attestations, c.uri,
                    c.price + v.k * 500, c.address, c.bedrooms, c.bathrooms, c.living_area, c.home_type,
                    c.home_status, c.days_on_zillow, c.zip_code, c.city, c.state, c.latitude, c.longitude, c.signature
               FROM resi.miner_claims c, (VALUES (1, 'x'), (2, 'y'), (3, 'z')) v(k, suffix);
             INSERT INTO resi.audits (zpid, listing, seen_at)
             SELECT z::text, jsonb_build_object('price', 123456, 'home_status', 'SOLD', 'consensus_score', 1),
                    timestamptz '2025-09-01 03:00' + (z % 100 = 0)::int * interval '6 hours'
               FROM generate_series(0, 1999, 50) z;
             ANALYZE resi.miner_claims;",
        )
        .unwrap();
    assert!(scalar::<i64>(&mut client, "SELECT count(*) FROM resi.miner_claims") > 50_000);
    let columns = "zpid, first_seen_at, total_attestations, unique_miners_count, consensus_score, uri, price, address,
                   bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow, zip_code, city, state,
                   latitude, longitude, voting_miners, trust_fingerprint, field_consensus, voting_groups, audited_at";
    let some = "ARRAY(SELECT z::text FROM generate_series(0, 1999, 7) z)";
    for (view, function) in [("true", "NULL".to_owned()), (&*format!("zpid = ANY ({some})"), some.to_owned())] {
        let expected =
            rows(&mut client, &format!("SELECT {columns} FROM resi.listing_consensus WHERE {view} ORDER BY zpid"));
        let got =
            rows(&mut client, &format!("SELECT {columns} FROM resi.listing_consensus_of({function}) ORDER BY zpid"));
        assert!(expected.len() > 250, "{}", expected.len());
        if let Some(i) = (0..expected.len()).find(|&i| expected.get(i) != got.get(i)) {
            panic!("listing {i} differs:\nview:     {}\nfunction: {:?}", expected[i], got.get(i));
        }
        assert_eq!(expected.len(), got.len());
        // Whatever plan gives them: with sorts and index scans discouraged, the view's rows come
        // from a hash of every listing's claims, in no order.
        client.batch_execute("SET enable_sort = off; SET enable_indexscan = off; SET enable_bitmapscan = off").unwrap();
        let in_order = rows(&mut client, &format!("SELECT zpid FROM resi.listing_consensus_of({function})"));
        client.batch_execute("RESET enable_sort; RESET enable_indexscan; RESET enable_bitmapscan").unwrap();
        let sorted = rows(&mut client, &format!("SELECT zpid FROM resi.listing_consensus WHERE {view} ORDER BY zpid"));
        assert!(in_order == sorted, "resi.listing_consensus_of({function}) returned its rows out of zpid order");
    }
    // Both kinds of audited listing are there.
    let (in_force, overruled): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE audited_at IS NOT NULL), count(*) FILTER (WHERE audited_at IS NULL)
                   FROM resi.listing_consensus WHERE zpid IN (SELECT zpid FROM resi.audits)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(in_force > 0 && overruled > 0, "{in_force} {overruled}");
}
