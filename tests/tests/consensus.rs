//! The consensus aggregates under PostgreSQL's parallel query: a forced parallel plan over
//! ≥100k rows must use Partial Aggregate and give exactly the serial answer.

use resi_e2e::TestDatabase;

const FORCE_PARALLEL: &str = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
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

fn plan(client: &mut postgres::Client, query: &str) -> String {
    client
        .query(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {query}"), &[])
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
