//! Earned trust, validations, strikes and bans, admission, the blacklist and the fold's
//! verdict on each submission, driven by plain SQL.

use postgres::Client;
use resi_e2e::{scalar, TestDatabase};

fn trust(client: &mut Client, miner: &str) -> f64 {
    client.query_one("SELECT trust_score FROM resi.miner_trust WHERE miner_hotkey = $1", &[&miner]).unwrap().get(0)
}

fn price(client: &mut Client, zpid: &str) -> i64 {
    client.query_one("SELECT price FROM resi.listings WHERE zpid = $1", &[&zpid]).unwrap().get(0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Miners report listings 1 and 2 in this order, each with its price (bedrooms 3 for all).
fn report(client: &mut Client, miners: &[(&str, i64)]) {
    for (miner, price) in miners {
        client
            .batch_execute(&format!(
                "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms)
                 VALUES ('{miner}', '2025-09-17 08:00+00', '1', {price}, 3), ('{miner}', '2025-09-17 08:00+00', '2', {price}, 3)"
            ))
            .unwrap();
    }
}

fn counts(client: &mut Client, miner: &str) -> (Option<f64>, f64, f64) {
    let r = client
        .query_one(
            "SELECT accuracy_score, corroborated_rows, agreeing_rows FROM resi.miner_trust WHERE miner_hotkey = $1",
            &[&miner],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[test]
fn a_submission_earns_trust_only_by_agreeing_with_another_independent_source() {
    let db = TestDatabase::new("trust_fold");
    let mut client = db.client();
    report(&mut client, &[("a", 100_000), ("b", 200_000)]);
    // a came first: nothing to agree with, the initial trust. b's price differs from a lone
    // other source's: no evidence either way (who is right is unknown); the bedrooms both report
    // are backed by two sources, so b's rows agree on what could be judged.
    assert!(close(trust(&mut client, "a"), 0.25));
    assert_eq!(counts(&mut client, "a"), (None, 0.0, 0.0));
    assert_eq!(counts(&mut client, "b"), (Some(1.0), 2.0, 2.0));
    // c agrees with a: the price two sources back now, and the bedrooms all three back.
    report(&mut client, &[("c", 100_000)]);
    assert_eq!(price(&mut client, "1"), 100_000);
    assert_eq!(counts(&mut client, "c"), (Some(1.0), 2.0, 2.0));
    assert!(close(trust(&mut client, "c"), scalar::<f64>(&mut client, "SELECT resi.earned_trust(0, 0, 2, 2, 0.25)")));
    assert!(trust(&mut client, "c") > 0.25);
    // d says 300,000: against a price two sources back, that is a disagreement (its bedrooms agree).
    report(&mut client, &[("d", 300_000)]);
    assert_eq!(counts(&mut client, "d"), (Some(0.5), 2.0, 0.0));
    assert!(trust(&mut client, "d") < 0.25);
    let (duplicate_rate, submissions): (f64, i64) = {
        let r = client
            .query_one("SELECT duplicate_rate, total_submissions FROM resi.miner_trust WHERE miner_hotkey = 'd'", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((duplicate_rate, submissions), (0.0, 1));
    // resi.miner_status explains what the trust is made of.
    let status: String = scalar(&mut client, "SELECT (resi.miner_status('d')).explanation");
    assert!(
        status.contains("earned from 0 audited claims, 0 wrong, and 0 of 2 rows agreeing with other sources"),
        "{status}"
    );
    assert!(status.contains("votes alone"), "{status}");
}

#[test]
fn validations_move_trust_and_stale_listings_are_refreshed() {
    let db = TestDatabase::new("trust_validation");
    let mut client = db.client();
    report(&mut client, &[("a", 100_000), ("b", 200_000), ("c", 100_000)]);
    // Both listings were folded before c's trust moved: stale until refreshed.
    assert_eq!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()"), 2);
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.refresh_stale_consensus()"), 2);
    assert_eq!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()"), 0);

    // A validator confirms b's claim on listing 1: an audited claim, right.
    let after: f64 = scalar(&mut client, "SELECT resi.record_validation('b', '1', true, 0.9)");
    assert!(close(after, scalar::<f64>(&mut client, "SELECT resi.earned_trust(1, 0, 2, 2, 0.25)")));
    assert!(after > trust(&mut client, "c"), "{after}");
    assert_eq!(price(&mut client, "1"), 100_000, "a and c together still outweigh b");
    // A failed check of a, which has no other audit, leaves it no better than a coin: no weight,
    // and b outweighs c alone.
    let failed: f64 = scalar(&mut client, "SELECT resi.record_validation('a', '1', false)");
    assert_eq!(failed, 0.0);
    assert_eq!(price(&mut client, "1"), 200_000, "the validated listing is refreshed at once");
    assert_eq!(price(&mut client, "2"), 100_000, "the others wait for the bounded refresh");
    assert_eq!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()"), 1);
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.refresh_stale_consensus(1)"), 1);
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.refresh_stale_consensus(10)"), 0);
    assert_eq!(price(&mut client, "2"), 200_000);
    let (validated, at, score): (bool, bool, Option<f64>) = {
        let r = client
            .query_one(
                "SELECT is_validated, validation_timestamp IS NOT NULL, validation_score FROM resi.miner_attestations
                  WHERE miner_hotkey = 'b' AND zpid = '1'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((validated, at, score), (true, true, Some(0.9)));

    // Validating the same attestation again changes nothing.
    let again: f64 = scalar(&mut client, "SELECT resi.record_validation('b', '1', false)");
    assert!(close(again, after));
    let counts: (i64, i64) = {
        let r = client
            .query_one(
                "SELECT validated_submissions, validations_failed FROM resi.miner_trust WHERE miner_hotkey = 'a'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(counts, (1, 1));

    // Errors name the problem and carry a SQLSTATE.
    let err = client.query_one("SELECT resi.record_validation('a', '999', true)", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "P0002");
    let message = err.as_db_error().unwrap().message();
    assert_eq!(message, "resi.record_validation: miner a has no attestation of listing 999");
    let err = client.query_one("SELECT resi.record_validation('a', '1', true, 1.5)", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22023");
}

#[test]
fn strikes_lead_to_growing_bans_that_expire() {
    let db = TestDatabase::new("trust_bans");
    let mut client = db.client();
    client
        .batch_execute(
            "SET resi.strikes_per_ban = 2; SET resi.ban_duration = '1h'; SET resi.max_ban_duration = '90min'",
        )
        .unwrap();
    let strike = |client: &mut Client| -> Option<String> {
        client.query_one("SELECT (resi.add_strike('m', 'test') - now())::text", &[]).unwrap().get(0)
    };
    assert_eq!(strike(&mut client), None);
    assert_eq!(strike(&mut client).as_deref(), Some("01:00:00"), "the second strike bans for resi.ban_duration");
    let admitted: Option<String> = scalar(&mut client, "SELECT resi.admit_submission('m', now())");
    assert!(admitted.as_deref().is_some_and(|r| r.starts_with("banned: until")), "{admitted:?}");
    let status: String = scalar(&mut client, "SELECT (resi.miner_status('m')).explanation");
    assert!(status.contains("banned until") && status.contains("2 strikes, the last: test"), "{status}");
    // The next ban lasts twice as long, capped by resi.max_ban_duration.
    strike(&mut client);
    assert_eq!(strike(&mut client).as_deref(), Some("01:30:00"));
    assert_eq!(scalar::<i32>(&mut client, "SELECT bans FROM resi.miner_trust WHERE miner_hotkey = 'm'"), 2);
    assert_eq!(
        scalar::<i64>(
            &mut client,
            "SELECT count(*) FROM resi.miner_penalties WHERE miner_hotkey = 'm' AND kind = 'ban'"
        ),
        2
    );
    // Bans expire on their own.
    client.batch_execute("UPDATE resi.miner_trust SET banned_until = now() - interval '1s'").unwrap();
    assert_eq!(scalar::<Option<String>>(&mut client, "SELECT resi.admit_submission('m', now())"), None);
    // And an operator can ban for good, and lift it.
    client.batch_execute("SELECT resi.ban_miner('m', 'abuse')").unwrap();
    assert_eq!(
        scalar::<String>(&mut client, "SELECT banned_until::text FROM resi.miner_trust WHERE miner_hotkey = 'm'"),
        "infinity"
    );
    assert_eq!(scalar::<Option<bool>>(&mut client, "SELECT resi.unban_miner('m')"), Some(true));
    assert_eq!(scalar::<Option<bool>>(&mut client, "SELECT resi.unban_miner('m')"), None);
}

#[test]
fn admission_counts_over_limit_attempts_once_per_object() {
    let db = TestDatabase::new("trust_admission");
    let mut client = db.client();
    client.batch_execute("SET resi.rate_limit_tiers = '0:1'; SET resi.over_limit_strike_attempts = 2").unwrap();
    let admit = |client: &mut Client, first: bool| -> Option<String> {
        client.query_one("SELECT resi.admit_submission('m', '2025-09-17 10:00+00', $1)", &[&first]).unwrap().get(0)
    };
    assert_eq!(admit(&mut client, true), None, "an unknown miner has the lowest tier's allowance");
    client.batch_execute("SELECT resi.record_miner_submission('m', 1, '2025-09-17 10:00+00')").unwrap();
    assert_eq!(admit(&mut client, true).as_deref(), Some("rate_limited: 1 of 1 submissions used on 2025-09-17 (UTC)"));
    admit(&mut client, false);
    admit(&mut client, false);
    let attempts = |client: &mut Client| -> (i32, i32) {
        let r = client
            .query_one(
                "SELECT d.over_limit_attempts, t.strikes FROM resi.miner_submission_days d
                   JOIN resi.miner_trust t USING (miner_hotkey) WHERE d.day = '2025-09-17'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(attempts(&mut client), (1, 0), "retries of a refused object are not new attempts");
    admit(&mut client, true);
    assert_eq!(attempts(&mut client), (2, 1), "the second attempt is a strike");
    // Another day has its own allowance.
    assert_eq!(scalar::<Option<String>>(&mut client, "SELECT resi.admit_submission('m', '2025-09-18 00:00+00')"), None);
    let status: String = scalar(&mut client, "SELECT (resi.miner_status('m')).explanation");
    assert!(status.contains("1 strikes, 2 more bring ban number 1"), "{status}");
}

#[test]
fn the_fold_records_each_submissions_quality_in_the_ledger() {
    let db = TestDatabase::new("trust_ledger");
    let mut client = db.client();
    let id: i64 = scalar(&mut client, "SELECT resi.add_blacklist_entry('zip_code', '^999', 'fake zips', 'pattern')");
    assert_eq!(
        scalar::<i64>(&mut client, "SELECT resi.add_blacklist_entry('zip_code', '^999', 'again', 'pattern')"),
        id
    );
    let err = client.query_one("SELECT resi.add_blacklist_entry('zip_code', '(', 'bad', 'pattern')", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "2201B");
    let err = client.query_one("SELECT resi.add_blacklist_entry('price', '1', 'bad')", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22023");

    let ledger = |client: &mut Client, key: &str| -> i64 {
        client
            .query_one(
                "INSERT INTO resi.ingest_ledger (object_key, etag, miner_hotkey, status) VALUES ($1, 'e', 'm', 'loaded') RETURNING id",
                &[&key],
            )
            .unwrap()
            .get(0)
    };
    let clean = ledger(&mut client, "clean");
    let spam = ledger(&mut client, "spam");
    client
        .batch_execute(&format!(
            "INSERT INTO resi.staging_listings (ledger_id, miner_hotkey, submission_timestamp, s3_file_path, zpid, price, zip_code)
             VALUES ({clean}, 'm', '2025-09-17 08:00+00', 'clean', '1', 250000, '77494'),
                    ({clean}, 'm', '2025-09-17 08:00+00', 'clean', '2', 260000, '77494');
             INSERT INTO resi.staging_listings (ledger_id, miner_hotkey, submission_timestamp, s3_file_path, zpid, price, zip_code)
             VALUES ({spam}, 'm', '2025-09-17 09:00+00', 'spam', '3', 5, '99901'),
                    ({spam}, 'm', '2025-09-17 09:00+00', 'spam', '3', 5, '99901');"
        ))
        .unwrap();
    let verdict = |client: &mut Client, id: i64| -> (f64, Vec<String>, i32, i32, f64) {
        let r = client
            .query_one(
                "SELECT quality_score, quality_issues, duplicate_zpids, distinct_zip_codes, trust_score
                   FROM resi.ingest_ledger WHERE id = $1",
                &[&id],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
    };
    let (score, issues, dups, zips, after_clean) = verdict(&mut client, clean);
    assert_eq!((score, issues.len(), dups, zips), (1.0, 0, 0, 1));
    assert!(close(after_clean, 0.25), "uncorroborated rows are no evidence");
    let (score, issues, dups, zips, after_spam) = verdict(&mut client, spam);
    assert!(close(score, 0.5 * 0.3 * 0.1), "{score}");
    assert_eq!(issues, ["suspicious_price_range", "duplicate_zpids", "blacklisted"]);
    assert_eq!((dups, zips), (1, 1));
    // A bad report costs a strike, not trust: trust is what audits and other sources confirm.
    assert!(close(after_spam, 0.25));
    let (strikes, duplicate_rate): (i32, f64) = {
        let r = client
            .query_one("SELECT strikes, duplicate_rate FROM resi.miner_trust WHERE miner_hotkey = 'm'", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((strikes, duplicate_rate), (1, 0.25));
    let reason: String = scalar(&mut client, "SELECT reason FROM resi.miner_penalties WHERE miner_hotkey = 'm'");
    assert_eq!(reason, "low_quality: spam scored 0.015 (suspicious_price_range, duplicate_zpids, blacklisted)");
    assert!(scalar::<bool>(&mut client, &format!("SELECT resi.remove_blacklist_entry({id})")));
    assert!(!scalar::<bool>(&mut client, &format!("SELECT resi.remove_blacklist_entry({id})")));
}

#[test]
fn an_unknown_miner_has_the_defaults() {
    let db = TestDatabase::new("trust_status");
    let mut client = db.client();
    let row = client
        .query_one(
            "SELECT known, trust_score, daily_allowance, submissions_today, remaining_today, strikes, strikes_until_ban, banned_until IS NULL
               FROM resi.miner_status('nobody')",
            &[],
        )
        .unwrap();
    let got: (bool, f64, i32, i32, i32, i32, i32, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5), row.get(6), row.get(7));
    assert_eq!(got, (false, 0.25, 100, 0, 100, 0, 3, true));
}
