//! Statement timeouts and cancel requests stop the consensus aggregates, the fold and a
//! refresh promptly (SQLSTATE 57014), and leave nothing behind: every table is as it was before
//! the statement, and the session and the next statement work.

use postgres::error::SqlState;
use postgres::Client;
use resi_e2e::{listing_state, scalar, TestDatabase};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run `sql`; it must fail as cancelled. Returns how long it ran.
fn cancelled(client: &mut Client, sql: &str) -> Duration {
    let started = Instant::now();
    let err = client.batch_execute(sql).expect_err(sql);
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{sql}: {err}");
    started.elapsed()
}

/// What a cancelled statement must not change: every table's rows (counts and the listings
/// themselves), the miners' counters and the ledger.
fn everything(client: &mut Client) -> String {
    let counts: String = scalar(
        client,
        "SELECT format('attestations %s claims %s listings %s trust %s days %s penalties %s ledger %s staging %s',
                (SELECT count(*) FROM resi.miner_attestations), (SELECT count(*) FROM resi.miner_claims),
                (SELECT count(*) FROM resi.listings),
                (SELECT string_agg(miner_hotkey || ':' || trust_score || ':' || total_submissions, ',' ORDER BY miner_hotkey)
                   FROM resi.miner_trust),
                (SELECT sum(submissions) FROM resi.miner_submission_days), (SELECT count(*) FROM resi.miner_penalties),
                (SELECT count(*) FROM resi.ingest_ledger), (SELECT count(*) FROM resi.staging_listings))",
    );
    format!("{counts}\n{}", listing_state(client))
}

/// A database with three miners' claims on 2,000 listings.
fn loaded(label: &str) -> TestDatabase {
    let db = TestDatabase::new(label);
    db.client()
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, zip_code)
             SELECT m, '2025-09-17 08:00+00', z::text, 100000 + z * 10 + length(m), 3, '77494'
               FROM generate_series(1, 2000) z, unnest(ARRAY['5A', '5B', '5C']) m",
        )
        .unwrap();
    db
}

/// Rows for one statement of staging: `rows` claims of miner 5D, over the loaded listings and new ones.
fn big_staging_insert(rows: i32) -> String {
    format!(
        "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, zip_code)
         SELECT '5D', '2025-09-17 10:00+00', z::text, 100000 + z * 10, 3, '77494' FROM generate_series(1, {rows}) z"
    )
}

#[test]
fn statement_timeout_stops_the_aggregates_over_one_huge_group() {
    let db = TestDatabase::new("interrupt_aggregates");
    let mut client = db.client();
    client.batch_execute("SET statement_timeout = '300ms'; SET max_parallel_workers_per_gather = 0").unwrap();
    for aggregate in [
        "resi.consensus_median(x::float8, 1, 0.01)",
        "resi.consensus_mode((x % 1000003)::text, 1)",
        "resi.consensus_listing('1', NULL, x, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1)",
    ] {
        // One group of 100M rows: minutes of work if nothing stopped it.
        let took = cancelled(&mut client, &format!("SELECT {aggregate} FROM generate_series(1, 100000000) x"));
        eprintln!("{aggregate}: cancelled after {took:?}");
        assert!(took < Duration::from_secs(10), "{aggregate} ran {took:?} past a 300 ms timeout");
        assert_eq!(scalar::<i32>(&mut client, "SELECT 1"), 1, "the session works after the timeout");
    }
}

#[test]
fn a_cancelled_fold_leaves_nothing_behind() {
    let db = loaded("interrupt_fold");
    let mut client = db.client();
    let before = everything(&mut client);
    let pid: i32 = scalar(&mut client, "SELECT pg_backend_pid()");
    let url = db.url.clone();
    // Cancel the fold from another session in its middle: once it has written attestations and
    // claims and holds resi.listings (only the fold's consensus step locks that table). No
    // deadline: the canceller watches until the statement ends, however long the edition takes
    // to get there (the portable fold reaches its consensus step seconds later than the native).
    let ended = Arc::new(AtomicBool::new(false));
    let canceller = std::thread::spawn({
        let ended = ended.clone();
        move || {
            let mut other = resi_e2e::connect(&url);
            while !ended.load(Ordering::SeqCst) {
                let folding: bool = scalar(
                    &mut other,
                    &format!(
                        "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = {pid} AND granted
                                           AND relation = 'resi.listings'::regclass)"
                    ),
                );
                if folding {
                    return Some(scalar::<bool>(&mut other, &format!("SELECT pg_cancel_backend({pid})")));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        }
    });
    let started = Instant::now();
    let folded = client.batch_execute(&big_staging_insert(100_000));
    let took = started.elapsed();
    ended.store(true, Ordering::SeqCst);
    let signalled = canceller.join().unwrap().expect("the fold ended without ever reaching its consensus step");
    assert!(signalled, "pg_cancel_backend found the backend");
    let err = folded.expect_err("the fold completed despite the cancel");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    eprintln!("fold cancelled after {took:?}");
    assert_eq!(everything(&mut client), before);

    // The next fold works as if the cancelled one never was.
    client.batch_execute(&big_staging_insert(3_000)).unwrap();
    assert_eq!(scalar::<i32>(&mut client, "SELECT unique_miners_count FROM resi.listings WHERE zpid = '1'"), 4);
    assert_eq!(
        scalar::<i64>(&mut client, "SELECT count(*) FROM resi.miner_attestations WHERE miner_hotkey = '5D'"),
        3_000
    );
}

#[test]
fn statement_timeout_stops_a_fold_and_a_refresh_with_nothing_written() {
    let db = loaded("interrupt_timeout");
    let mut client = db.client();
    let before = everything(&mut client);
    // Staging 400k rows alone takes well under a second here; the fold of them many seconds.
    client.batch_execute("SET statement_timeout = '2s'").unwrap();
    let took = cancelled(&mut client, &big_staging_insert(400_000));
    eprintln!("fold timed out after {took:?}");
    assert_eq!(everything(&mut client), before);

    // A refresh after a trust change rewrites every listing; cut short, it writes none.
    client
        .batch_execute(
            "RESET statement_timeout;
             UPDATE resi.miner_trust SET trust_score = 0.9 WHERE miner_hotkey = '5A';
             INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price)
             SELECT '5A', '2025-09-17 11:00+00', z::text, 1 FROM generate_series(2001, 22000) z;",
        )
        .unwrap();
    let before = everything(&mut client);
    client.batch_execute("SET statement_timeout = '200ms'").unwrap();
    let took = cancelled(&mut client, "SELECT resi.refresh_consensus()");
    eprintln!("refresh timed out after {took:?}");
    client.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(everything(&mut client), before);
    assert!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()") > 0, "the refresh did not happen");
}
