//! The fold, driven by plain SQL: any client that INSERTs or COPYs into resi.staging_listings
//! gets attestations, one current claim per miner and listing, and trust-weighted listings.

use postgres::Client;
use resi_e2e::{listing_state, plans_run_by, scalar, TestDatabase};

/// Miners with audits behind them (trust is earned: resi.earned_trust of the counts).
const TRUST: &str = "INSERT INTO resi.miner_trust (miner_hotkey, trust_score, audited_claims, wrong_claims)
    VALUES ('honest1', 0, 40, 0), ('honest2', 0, 30, 1), ('sloppy', 0, 20, 4), ('liar', 0, 20, 9);
    UPDATE resi.miner_trust t SET trust_score = resi.earned_trust(t);";

fn stage(client: &mut Client, rows: &str) {
    client
        .batch_execute(&format!(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, uri, price, bedrooms, bathrooms, home_status, latitude)
             VALUES {rows}"
        ))
        .unwrap();
}

/// (zpid, price, bedrooms, bathrooms, home_status, total_attestations, unique_miners_count).
type ListingRow = (String, Option<i64>, Option<i32>, Option<String>, Option<String>, i32, i32);

fn listings(client: &mut Client) -> Vec<ListingRow> {
    client
        .query(
            "SELECT zpid, price, bedrooms, bathrooms::text, home_status, total_attestations, unique_miners_count
               FROM resi.listings ORDER BY zpid",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
        .collect()
}

#[test]
fn inserted_rows_become_trust_weighted_listings() {
    let db = TestDatabase::new("fold_basic");
    let mut client = db.client();
    client.batch_execute(TRUST).unwrap();
    stage(
        &mut client,
        "('honest1', '2025-09-17 08:00+00', '1', 'https://z/1_zpid/', 350000, 3, 2.5, 'FOR_SALE', 29.5),
         ('honest2', '2025-09-17 08:00+00', '1', 'https://z/1_zpid/', 351000, 3, 2.5, 'FOR_SALE', 29.5),
         ('liar',    '2025-09-17 08:00+00', '1', 'https://z/2_zpid/', 99, 9, 150, 'SOLD', 10),
         ('liar',    '2025-09-17 08:00+00', '2', 'https://z/2_zpid/', 200000, 2, 1, 'SOLD', 30)",
    );
    assert_eq!(
        listings(&mut client),
        vec![
            ("1".into(), Some(350000), Some(3), Some("2.5".into()), Some("FOR_SALE".into()), 3, 3),
            ("2".into(), Some(200000), Some(2), Some("1.0".into()), Some("SOLD".into()), 1, 1),
        ]
    );
    // The liar's uri names listing 2: it does not vote for listing 1's uri.
    let uri: String = client.query_one("SELECT uri FROM resi.listings WHERE zpid = '1'", &[]).unwrap().get(0);
    assert_eq!(uri, "https://z/1_zpid/");
    let fc: String = client
        .query_one("SELECT field_consensus->'price'->>'supporters' || '/' || (field_consensus->'price'->>'voters') FROM resi.listings WHERE zpid = '1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(fc, "2/3");
    let attestations: i64 = client.query_one("SELECT count(*) FROM resi.miner_attestations", &[]).unwrap().get(0);
    assert_eq!(attestations, 4);
}

#[test]
fn repeated_claims_do_not_gain_votes_and_late_old_uploads_do_not_override() {
    let db = TestDatabase::new("fold_claims");
    let mut client = db.client();
    client.batch_execute(TRUST).unwrap();
    stage(
        &mut client,
        "('honest1', '2025-09-17 08:00+00', '1', NULL, 350000, 3, 2.5, 'FOR_SALE', NULL),
         ('liar',    '2025-09-17 08:00+00', '1', NULL, 99, 9, 2.5, 'SOLD', NULL)",
    );
    // The liar repeats itself five times in one upload and twice more later: still one vote.
    for at in ["2025-09-17 08:10+00", "2025-09-17 08:20+00"] {
        stage(&mut client, &vec![format!("('liar', '{at}', '1', NULL, 99, 9, 2.5, 'SOLD', NULL)"); 5].join(","));
    }
    // An old upload of honest1 loaded late: counted as an attestation, but its claim stays the newer one.
    stage(&mut client, "('honest1', '2025-09-01 08:00+00', '1', NULL, 1, 1, 1, 'GONE', NULL)");
    assert_eq!(
        listings(&mut client),
        vec![("1".into(), Some(350000), Some(3), Some("2.5".into()), Some("FOR_SALE".into()), 13, 2)]
    );
    let claims: Vec<(String, i64, i32, String)> = client
        .query(
            "SELECT miner_hotkey, price, attestations, first_seen_at::date::text FROM resi.miner_claims ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        claims,
        vec![("honest1".into(), 350000, 2, "2025-09-01".into()), ("liar".into(), 99, 11, "2025-09-17".into())]
    );
    let first_seen: String =
        client.query_one("SELECT first_seen_at::date::text FROM resi.listings", &[]).unwrap().get(0);
    assert_eq!(first_seen, "2025-09-01");
}

#[test]
fn refresh_and_rebuild_reproduce_the_incremental_fold() {
    let db = TestDatabase::new("fold_refresh");
    let mut client = db.client();
    client.batch_execute(TRUST).unwrap();
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, uri, price, address, bedrooms,
                 bathrooms, living_area, home_type, home_status, days_on_zillow, zip_code, city, state, latitude, longitude)
             SELECT (ARRAY['honest1', 'honest2', 'sloppy', 'liar', 'newcomer'])[1 + i % 5],
                    '2025-09-17 08:00+00'::timestamptz + (i / 7) * interval '1 hour',
                    (i % 40)::text, format('https://z/%s_zpid/', i % 40), 300000 + (i % 40) * 1000 + (i % 5) * 500,
                    format('%s Oak St', i % 40), 1 + i % 4, (i % 6) / 2.0, 1000 + i % 40, 'SINGLE_FAMILY',
                    (ARRAY['FOR_SALE', 'SOLD'])[1 + i % 2], i % 30, '77494', 'Katy', 'TX', 29.7 + (i % 40) / 1000.0, -95.8
               FROM generate_series(1, 600) i",
        )
        .unwrap();
    // The fold moved the miners' trust after computing the listings: bring them up to date.
    let stale: i32 = client.query_one("SELECT resi.refresh_stale_consensus()", &[]).unwrap().get(0);
    assert!((1..=40).contains(&stale), "{stale}");
    assert_eq!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()"), 0);
    let incremental = listing_state(&mut client);
    assert_eq!(incremental.lines().count(), 40);
    let refreshed: i32 = client.query_one("SELECT resi.refresh_consensus()", &[]).unwrap().get(0);
    assert_eq!(refreshed, 40);
    // Timestamps aside (last_updated_at is not in the state), a full refresh changes nothing.
    assert_eq!(listing_state(&mut client), incremental);
    let rebuilt: i32 = client.query_one("SELECT resi.rebuild_claims()", &[]).unwrap().get(0);
    assert_eq!(rebuilt, 40);
    assert_eq!(listing_state(&mut client), incremental);
    // Trust moves, a targeted refresh follows.
    client
        .batch_execute("UPDATE resi.miner_trust SET trust_score = 0.01 WHERE miner_hotkey IN ('honest1', 'honest2')")
        .unwrap();
    let n: i32 =
        client.query_one("SELECT resi.refresh_consensus(ARRAY['1', '2', 'no-such-zpid'])", &[]).unwrap().get(0);
    assert_eq!(n, 2);
    let missing: i64 =
        client.query_one("SELECT count(*) FROM resi.listings WHERE zpid = 'no-such-zpid'", &[]).unwrap().get(0);
    assert_eq!(missing, 0);
}

/// Two uploads of one miner in the same second (two jobs), each reporting listing 1 (and one
/// also twice, with scrape times apart), as two folds: the claim is the one with the greater
/// content signature, whichever upload is folded first, and resi.rebuild_claims picks the same.
/// Uploads are told apart by their time first, so the second's later upload wins either way.
#[test]
fn uploads_of_the_same_second_give_the_same_claim_whichever_is_folded_first() {
    const UPLOADS: [&str; 2] = [
        "('m', '2025-09-17 08:00+00', 'job-a', '1', 'https://z/1_zpid/', 350000, 'FOR_SALE', '2025-09-17 07:00+00'),
         ('m', '2025-09-17 08:00+00', 'job-a', '2', 'https://z/2_zpid/', 200000, 'SOLD', '2025-09-17 07:00+00')",
        "('m', '2025-09-17 08:00+00', 'job-b', '1', 'https://z/1_zpid/', 349000, 'PENDING', '2025-09-17 07:30+00'),
         ('m', '2025-09-17 08:00+00', 'job-b', '1', 'https://z/1_zpid/', 348000, 'PENDING', '2025-09-17 07:40+00'),
         ('m', '2025-09-17 09:00+00', 'job-b', '2', 'https://z/2_zpid/', 210000, 'SOLD', '2025-09-17 07:30+00')",
    ];
    let claims = |order: [usize; 2]| {
        let db = TestDatabase::new("fold_same_second");
        let mut client = db.client();
        for upload in order.map(|i| UPLOADS[i]) {
            client
                .batch_execute(&format!(
                    "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, job_id, zpid, uri, price,
                                                        home_status, scraped_at)
                     VALUES {upload}"
                ))
                .unwrap();
        }
        const CLAIMS: &str = "SELECT string_agg(format('%s %s %s %s %s', zpid, price, home_status, attestations,
                                                       signature IS NOT NULL), '; ' ORDER BY zpid)
                                FROM resi.miner_claims";
        let folded: String = scalar(&mut client, CLAIMS);
        client.execute("SELECT resi.rebuild_claims()", &[]).unwrap();
        assert_eq!(scalar::<String>(&mut client, CLAIMS), folded, "rebuilt after folding {order:?}");
        folded
    };
    let first_a = claims([0, 1]);
    assert_eq!(claims([1, 0]), first_a);
    assert!(first_a.ends_with("; 2 210000 SOLD 2 t"), "{first_a}");
    // Which of the three same-second reports of listing 1 wins is the signatures' choice; each
    // of them counts as an attestation.
    assert!(first_a.starts_with("1 3") && first_a.contains(" 3 t;"), "{first_a}");
}

#[test]
fn concurrent_folds_of_the_same_listings_see_each_other() {
    let db = TestDatabase::new("fold_concurrent");
    db.client().batch_execute(TRUST).unwrap();
    // Four sessions fold overlapping listings at once, each in its own transaction.
    let handles: Vec<_> = ["honest1", "honest2", "sloppy", "liar"]
        .into_iter()
        .enumerate()
        .map(|(n, miner)| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut client = resi_e2e::connect(&url);
                for round in 0..5 {
                    client
                        .batch_execute(&format!(
                            "BEGIN;
                             INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, home_status)
                             SELECT '{miner}', '2025-09-17 08:00+00'::timestamptz + interval '1 minute' * {round},
                                    (i % 50)::text, 100000 * ({n} + 1) + i, (ARRAY['FOR_SALE', 'SOLD'])[1 + ({n} + i) % 2]
                               FROM generate_series(1, 200) i;
                             SELECT pg_sleep(0.01);
                             COMMIT;"
                        ))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut client = db.client();
    // No fold missed another's claims: every listing counts all four miners and their 80 rows.
    let counts: Vec<(i32, i32)> = client
        .query("SELECT DISTINCT unique_miners_count, total_attestations FROM resi.listings", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(counts, vec![(4, 80)]);
    // Each fold moved its miner's trust after computing its listings, while the others folded:
    // the stale ones are found exactly, and refreshing them gives what a full refresh gives.
    client.query_one("SELECT resi.refresh_stale_consensus()", &[]).unwrap();
    assert_eq!(client.query_one("SELECT resi.stale_listings()", &[]).unwrap().get::<_, i64>(0), 0);
    let concurrent = listing_state(&mut client);
    client.query_one("SELECT resi.refresh_consensus()", &[]).unwrap();
    assert_eq!(listing_state(&mut client), concurrent, "a stale listing was not found");
}

#[test]
fn a_new_listing_two_folds_insert_at_once_counts_both_folds_claims() {
    let db = TestDatabase::new("fold_new_listing_race");
    let stage = |miner: &str, price: i64| {
        format!(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, home_status)
             VALUES ('{miner}', '2025-09-17 08:00+00', '7', {price}, 'FOR_SALE')"
        )
    };
    // The first fold writes the new listing and keeps its transaction open.
    let mut first = db.client();
    first.batch_execute(&format!("BEGIN; {}", stage("m1", 100000))).unwrap();
    // The second fold, on the same new listing, computes its consensus without the first's
    // claim (not committed yet) and then waits on the first's row...
    let url = db.url.clone();
    let second = std::thread::spawn(move || {
        let mut client = resi_e2e::connect(&url);
        client.batch_execute(&format!("BEGIN; {}; COMMIT;", stage("m2", 100500))).unwrap();
    });
    let mut watcher = db.client();
    let mut waiting = || -> i64 {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let started = std::time::Instant::now();
    while waiting() == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the second fold never waited");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // ...so once the first commits, it must compute the listing again, with both claims.
    first.batch_execute("COMMIT").unwrap();
    second.join().unwrap();
    let mut client = db.client();
    let row = client
        .query_one("SELECT unique_miners_count, total_attestations, price FROM resi.listings WHERE zpid = '7'", &[])
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (2, 2));
    // The history has the listing's first consensus (the first fold's) and, when the second
    // fold's claim moved the price, that change with the first price before it.
    let history: Vec<(Option<i64>, Option<i64>)> = client
        .query("SELECT price, previous_price FROM resi.listing_history WHERE zpid = '7' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(history[0], (Some(100000), None));
    let price: Option<i64> = row.get(2);
    if price != Some(100000) {
        assert_eq!(history[1..], [(price, Some(100000))]);
    } else {
        assert_eq!(history.len(), 1);
    }
}

#[test]
fn fold_refuses_repeatable_read() {
    let db = TestDatabase::new("fold_isolation");
    let mut client = db.client();
    let err = client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ;
             INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid) VALUES ('m', now(), '1');",
        )
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25000", "{err}");
}

#[test]
fn hostile_values_in_staging_do_not_break_the_fold() {
    let db = TestDatabase::new("fold_hostile");
    let mut client = db.client();
    stage(
        &mut client,
        "('''); DROP TABLE resi.listings; --', now(), '1', '''); DROP TABLE resi.listings; --', 5, -3, 1e6, E'\\u0001', 'NaN'),
         ('m2', now(), '1', 'https://z/999_zpid/', 9223372036854775807, 2147483647, 'Infinity', repeat('x', 100000), '-Infinity')",
    );
    let (miners, bathrooms, uri): (i32, Option<String>, Option<String>) = {
        let r = client.query_one("SELECT unique_miners_count, bathrooms::text, uri FROM resi.listings", &[]).unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((miners, bathrooms, uri), (2, None, None));
    let cleared: bool = client.query_one("SELECT resi.clear_staging()", &[]).unwrap().get(0);
    assert!(cleared);
    let staged: i64 = client.query_one("SELECT count(*) FROM resi.staging_listings", &[]).unwrap().get(0);
    assert_eq!(staged, 0);
}

#[test]
fn a_stale_claim_gives_way_to_a_fresher_one_but_not_to_a_much_less_trusted_one() {
    let db = TestDatabase::new("fold_recency");
    let mut client = db.client();
    client.batch_execute(TRUST).unwrap();
    let price = |client: &mut Client, zpid: &str| -> i64 {
        client.query_one("SELECT price FROM resi.listings WHERE zpid = $1", &[&zpid]).unwrap().get(0)
    };
    // Two trusted miners saw 350,000 on both listings.
    stage(
        &mut client,
        "('honest1', '2025-09-17 08:00+00', '1', NULL, 350000, 3, 2.5, 'FOR_SALE', NULL),
         ('honest2', '2025-09-17 08:00+00', '1', NULL, 350000, 3, 2.5, 'FOR_SALE', NULL),
         ('honest1', '2025-09-17 08:00+00', '2', NULL, 350000, 3, 2.5, 'FOR_SALE', NULL),
         ('honest2', '2025-09-17 08:00+00', '2', NULL, 350000, 3, 2.5, 'FOR_SALE', NULL)",
    );
    // One upload cycle later a third, less audited miner sees a new price: two stale claims at half
    // weight still outweigh it. Two cycles later they count a quarter each, and it wins.
    client
        .batch_execute(
            "INSERT INTO resi.miner_trust (miner_hotkey, trust_score, audited_claims) VALUES ('honest3', 0, 10);
             UPDATE resi.miner_trust t SET trust_score = resi.earned_trust(t) WHERE miner_hotkey = 'honest3';",
        )
        .unwrap();
    stage(&mut client, "('honest3', '2025-09-17 10:00+00', '1', NULL, 330000, 3, 2.5, 'FOR_SALE', NULL)");
    assert_eq!(price(&mut client, "1"), 350_000);
    stage(&mut client, "('honest3', '2025-09-17 12:00+00', '1', NULL, 330000, 3, 2.5, 'FOR_SALE', NULL)");
    assert_eq!(price(&mut client, "1"), 330_000);
    // A liar uploading a day later does not: stale claims keep an eighth of their weight, more
    // than the liar's whole.
    stage(&mut client, "('liar', '2025-09-18 08:00+00', '2', NULL, 99, 9, 2.5, 'SOLD', NULL)");
    assert_eq!(price(&mut client, "2"), 350_000);
    let recency: Vec<f64> = client
        .query(
            "SELECT resi.claim_recency(a) FROM unnest(ARRAY[interval '0', '-1 hour', '2 hours', '4 hours', '1 day']) a",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(recency, [1.0, 1.0, 0.5, 0.25, 0.125]);
    client.batch_execute("SET resi.claim_half_life = 0").unwrap();
    assert_eq!(scalar::<f64>(&mut client, "SELECT resi.claim_recency('1 day')"), 1.0);
}

/// One statement holding several submissions (a loader's batch) judges them all against the
/// consensus after the statement, and moves each miner's trust oldest first: the agreement
/// evidence decays 0.8 per submission in upload order, and each ledger row keeps the trust its
/// submission left, exactly as one submission per statement would have.
#[test]
fn a_batch_of_submissions_moves_trust_oldest_first_and_records_each_step() {
    let db = TestDatabase::new("fold_batch");
    let mut client = db.client();
    // Two independent sources agree on five listings: their values are corroborated.
    stage(
        &mut client,
        "('a', '2025-09-17 08:00+00', '1', NULL, 100000, 3, 2, 'FOR_SALE', 29.5),
         ('a', '2025-09-17 08:00+00', '2', NULL, 200000, 3, 2, 'FOR_SALE', 29.5),
         ('a', '2025-09-17 08:00+00', '3', NULL, 300000, 3, 2, 'FOR_SALE', 29.5),
         ('b', '2025-09-17 08:01+00', '1', NULL, 100000, 3, 2, 'FOR_SALE', 29.5),
         ('b', '2025-09-17 08:01+00', '2', NULL, 200000, 3, 2, 'FOR_SALE', 29.5),
         ('b', '2025-09-17 08:01+00', '3', NULL, 300000, 3, 2, 'FOR_SALE', 29.5)",
    );
    // Miner c: three submissions in one statement, given out of order; the second disagrees.
    client
        .batch_execute(
            "INSERT INTO resi.ingest_ledger (id, object_key, etag, status, miner_hotkey)
             VALUES (11, 'c1', 'e', 'loaded', 'c'), (12, 'c2', 'e', 'loaded', 'c'), (13, 'c3', 'e', 'loaded', 'c');
             INSERT INTO resi.staging_listings (ledger_id, miner_hotkey, submission_timestamp, s3_file_path, zpid, price, bedrooms)
             VALUES (13, 'c', '2025-09-17 10:00+00', 'c3', '1', 100000, 3),
                    (13, 'c', '2025-09-17 10:00+00', 'c3', '2', 200000, 3),
                    (11, 'c', '2025-09-17 09:00+00', 'c1', '1', 100000, 3),
                    (11, 'c', '2025-09-17 09:00+00', 'c1', '2', 200000, 3),
                    (11, 'c', '2025-09-17 09:00+00', 'c1', '3', 300000, 3),
                    (12, 'c', '2025-09-17 09:30+00', 'c2', '3', 999000, 9)",
        )
        .unwrap();
    let steps: Vec<(i64, f64, f64)> = client
        .query("SELECT id, row_agreement, trust_score FROM resi.ingest_ledger WHERE id > 10 ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(steps.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), [(11, 1.0), (12, 0.0), (13, 1.0)]);
    // c1: 3 of 3 rows agree; c2: 0 of 1 (decayed evidence: 2.4 + 1 rows, 2.4 agreeing); c3: 2 of 2.
    let mut earned = |corroborated: f64, agreeing: f64| -> f64 {
        scalar(
            &mut client,
            &format!("SELECT resi.earned_trust(0::bigint, 0::bigint, {corroborated}::float8, {agreeing}::float8, resi.initial_trust())"),
        )
    };
    let expected = [
        earned(3.0, 3.0),
        earned(3.0 * 0.8 + 1.0, 3.0 * 0.8),
        earned((3.0 * 0.8 + 1.0) * 0.8 + 2.0, 3.0 * 0.8 * 0.8 + 2.0),
    ];
    for ((id, _, trust), want) in steps.iter().zip(expected) {
        assert!((trust - want).abs() < 1e-12, "ledger {id}: trust {trust}, expected {want}");
    }
    let (corroborated, agreeing, trust, submissions): (f64, f64, f64, i64) = {
        let r = client
            .query_one(
                "SELECT corroborated_rows, agreeing_rows, trust_score, total_submissions FROM resi.miner_trust WHERE miner_hotkey = 'c'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    assert_eq!((corroborated, agreeing, submissions), ((3.0 * 0.8 + 1.0) * 0.8 + 2.0, 3.0 * 0.8 * 0.8 + 2.0, 3));
    assert_eq!(trust, steps[2].2);
    // The miner's three submissions counted on their UTC day.
    let day: i32 = scalar(&mut client, "SELECT submissions FROM resi.miner_submission_days WHERE miner_hotkey = 'c'");
    assert_eq!(day, 3);
}

/// The nodes of a plan (auto_explain's JSON, with loops) that read resi.listings without an
/// index more than once: a sequential scan of it run again, or a materialized copy of such a
/// scan read again. Returns whether `plan` scans resi.listings sequentially anywhere below.
fn listings_reread(plan: &serde_json::Value, out: &mut Vec<String>) -> bool {
    let mut scans = plan["Node Type"] == "Seq Scan" && plan["Relation Name"] == "listings";
    for child in plan["Plans"].as_array().into_iter().flatten() {
        scans |= listings_reread(child, out);
    }
    let loops = plan["Actual Loops"].as_f64().unwrap_or(0.0);
    if scans && loops > 1.0 && (plan["Node Type"] == "Seq Scan" || plan["Node Type"] == "Materialize") {
        out.push(format!("{} over resi.listings, read {loops} times", plan["Node Type"].as_str().unwrap_or_default()));
    }
    scans
}

#[test]
fn a_fold_planned_from_one_miners_statistics_reads_its_listings_once() {
    // Statistics taken while every listing had one miner (one voting group), as after an early
    // load, estimate the corroborated listings (two groups or more) at one row. A plan that
    // believed it re-read them, materialized, once per attestation of the next fold: 250 s
    // for 50,000 rows, the loader's COPY apparently hung.
    let db = TestDatabase::new("fold_statistics");
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, home_status)
             SELECT 'first', '2025-09-17 08:00+00', z::text, 300000 + z, 3, 'FOR_SALE' FROM generate_series(1, 2000) z;
             ANALYZE;",
        )
        .unwrap();
    let plans = plans_run_by(
        &db.url,
        "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, home_status)
         SELECT m, '2025-09-17 10:00+00', z::text, 300000 + z, 3, 'FOR_SALE'
           FROM generate_series(1, 2000) z, unnest(ARRAY['second', 'third']) m",
    );
    let mut rereads = Vec::new();
    for plan in &plans {
        let mut found = Vec::new();
        listings_reread(&plan["Plan"], &mut found);
        let statement = plan["Query Text"].as_str().unwrap_or_default().lines().next().unwrap_or_default();
        rereads.extend(found.into_iter().map(|f| format!("{statement}: {f}")));
    }
    assert!(plans.len() > 10, "the fold's statements were not reported: {plans:#?}");
    assert!(rereads.is_empty(), "{rereads:#?}");
    // The fold was judged against listings three miners (three voting groups) agree on.
    let corroborated: i64 = scalar(&mut client, "SELECT count(*) FROM resi.listings WHERE voting_groups = 3");
    assert_eq!(corroborated, 2000);
    let agreeing: f64 =
        scalar(&mut client, "SELECT sum(agreeing_rows) FROM resi.miner_trust WHERE miner_hotkey <> 'first'");
    assert_eq!(agreeing, 4000.0);
    // The fold leaves enable_nestloop as it found it, for the rest of the transaction.
    client.batch_execute("BEGIN").unwrap();
    for setting in ["off", "on"] {
        client
            .batch_execute(&format!(
                "SET LOCAL enable_nestloop = {setting};
                 INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price)
                 VALUES ('fourth', '2025-09-17 11:00+00', '{setting}', 1)"
            ))
            .unwrap();
        assert_eq!(scalar::<String>(&mut client, "SHOW enable_nestloop"), setting);
    }
    client.batch_execute("COMMIT").unwrap();
}
