//! 6. `resi.listing_hash(jsonb)` against `sha256(convert_to(jsonb::text, 'UTF8'))`.
//! 7. `resi.check_miner_rate_limit(hotkey, 1, day)` once per row against a `SELECT` of the
//!    same day row by primary key (a scalar subquery per row: the same loop shape).
//!
//! Both serial (`max_parallel_workers_per_gather = 0`), both over a table prepared beforehand,
//! so the two sides differ only in the function under test.

use crate::db::{self, Cluster};
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::Bench;
use anyhow::{bail, Result};
use postgres::Client;
use std::time::Duration;

const DATABASE: &str = "resi_bench_helpers";

pub fn run(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let url = cluster.fresh_database(DATABASE, true)?;
    let mut client = db::connect(&url)?;
    listing_hash(bench, &mut client, rows)?;
    rate_limit(bench, &mut client, rows)?;
    drop(client);
    cluster.drop_database(DATABASE)
}

fn listing_hash(bench: &Bench, client: &mut Client, rows: &mut Vec<Row>) -> Result<()> {
    let n = bench.size(1_000_000);
    bench.log(format!("6. listing_hash: {n} listings"));
    client.batch_execute(&format!(
        "CREATE TABLE bench_listings (j jsonb);
         INSERT INTO bench_listings
         SELECT jsonb_build_object(
                    'zpid', z::text, 'uri', 'https://www.zillow.com/homedetails/' || z || '_zpid/',
                    'price', 150000 + (hashint8(z) & 1023) * 1000,
                    'address', (100 + (hashint8(z * 3) & 8191)) || ' Oak St, Katy, TX ' || (77000 + z / 250 % 1000),
                    'bedrooms', 1 + (hashint8(z * 5) & 3), 'bathrooms', 1 + (hashint8(z * 7) & 7) / 2.0,
                    'living_area', 700 + (hashint8(z * 11) & 4095),
                    'home_type', (ARRAY['SINGLE_FAMILY', 'TOWNHOUSE', 'CONDO', 'MULTI_FAMILY'])[1 + (hashint8(z * 13) & 3)],
                    'home_status', (ARRAY['FOR_SALE', 'FOR_RENT', 'RECENTLY_SOLD', 'PENDING'])[1 + (hashint8(z * 17) & 3)],
                    'days_on_zillow', hashint8(z * 19) & 255, 'zip_code', (77000 + z / 250 % 1000)::text,
                    'city', 'Katy', 'state', 'TX',
                    'latitude', 29.5 + (hashint8(z * 23) & 524287) / 1e6,
                    'longitude', -95.9 + (hashint8(z * 29) & 524287) / 1e6)
           FROM generate_series(20000000, 20000000 + {n} - 1) z"
    ))?;
    client.batch_execute("VACUUM ANALYZE bench_listings")?;
    client.batch_execute("SET max_parallel_workers_per_gather = 0")?;
    // The server's hash is the client's (resi_core), on one sample row.
    let (j, server): (String, String) = {
        let r = client.query_one("SELECT j::text, resi.listing_hash(j) FROM bench_listings LIMIT 1", &[])?;
        (r.get(0), r.get(1))
    };
    if resi_core::hash::listing_hash_of_json_text(&j)? != server {
        bail!("resi.listing_hash disagrees with resi_core on {j}");
    }
    let subject_sql = "SELECT count(resi.listing_hash(j)) FROM bench_listings";
    let baseline_sql = "SELECT count(sha256(convert_to(j::text, 'UTF8'))) FROM bench_listings";
    let (subject_times, baseline_times) = alternate(bench, client, "6. listing_hash", subject_sql, baseline_sql, n)?;
    let unit = Unit::PerSecond("listings");
    let subject = Side::new("`resi.listing_hash(j)`", Stats::of_rates(n as f64, &subject_times), unit);
    let baseline = Side::new(
        "`sha256(convert_to(j::text, 'UTF8'))` (no canonical form)",
        Stats::of_rates(n as f64, &baseline_times),
        unit,
    );
    rows.push(Row {
        measurement: "6. listing_hash".into(),
        size: format!("{} listings (15-field jsonb)", thousands(n)),
        ratio: Row::rate_ratio(&subject, &baseline),
        ratio_meaning: "rate ratio",
        subject,
        baseline: Some(baseline),
        target: Target::AtLeast(0.5),
        notes: vec![format!(
            "6: `SELECT count(f(j)) FROM bench_listings` over {n} jsonb listings; the hex text of \
             `resi.listing_hash` is checked against the loader's `resi_core` hash once."
        )],
    });
    Ok(())
}

fn rate_limit(bench: &Bench, client: &mut Client, rows: &mut Vec<Row>) -> Result<()> {
    let n = bench.size(1_000_000);
    let miners = bench.size(5000);
    bench.log(format!("7. check_miner_rate_limit: {n} calls over {miners} miners"));
    // Hotkeys of 48 characters like SS58 addresses; trust all over 0..1; 2 % banned;
    // 0–149 submissions on the day; the calls visit the miners in a scattered order.
    client.batch_execute(&format!(
        "CREATE TABLE bench_miners (idx integer PRIMARY KEY, hotkey text NOT NULL);
         INSERT INTO bench_miners SELECT m, '5' || left(md5('hotkey' || m) || md5('key' || m), 47)
           FROM generate_series(0, {miners} - 1) m;
         INSERT INTO resi.miner_trust (miner_hotkey, trust_score, banned_until, ban_reason)
         SELECT hotkey, (hashint4(idx) & 1023) / 1024.0,
                CASE WHEN idx % 50 = 7 THEN timestamptz 'infinity' END, CASE WHEN idx % 50 = 7 THEN 'bench' END
           FROM bench_miners;
         INSERT INTO resi.miner_submission_days (miner_hotkey, day, submissions)
         SELECT hotkey, date '2025-09-17', (hashint4(idx * 3) & 1023) % 150 FROM bench_miners;
         CREATE TABLE bench_calls (hk text);
         INSERT INTO bench_calls SELECT m.hotkey FROM generate_series(0, {n} - 1) i
           JOIN bench_miners m ON m.idx = (i::bigint * 7919) % {miners};"
    ))?;
    client.batch_execute("VACUUM ANALYZE")?;
    client.batch_execute("SET max_parallel_workers_per_gather = 0")?;
    let allowed: i64 = client
        .query_one(
            "SELECT count(*) FILTER (WHERE resi.check_miner_rate_limit(hk, 1, date '2025-09-17')) FROM bench_calls",
            &[],
        )?
        .get(0);
    if allowed == 0 || allowed == n as i64 {
        bail!("check_miner_rate_limit allowed {allowed} of {n} calls: the data does not exercise it");
    }
    let subject_sql =
        "SELECT count(*) FILTER (WHERE resi.check_miner_rate_limit(c.hk, 1, date '2025-09-17')) FROM bench_calls c";
    let baseline_sql = "SELECT count(*) FILTER (WHERE (SELECT d.submissions FROM resi.miner_submission_days d
                                   WHERE d.miner_hotkey = c.hk AND d.day = date '2025-09-17') < 100)
           FROM bench_calls c";
    let (subject_times, baseline_times) =
        alternate(bench, client, "7. check_miner_rate_limit", subject_sql, baseline_sql, n)?;
    let subject =
        Side::new("`resi.check_miner_rate_limit(hk, 1, day)` per row", Stats::of_times(&subject_times), Unit::Seconds);
    let baseline = Side::new(
        "scalar subquery per row: the day row by primary key",
        Stats::of_times(&baseline_times),
        Unit::Seconds,
    );
    rows.push(Row {
        measurement: "7. check_miner_rate_limit".into(),
        size: format!("{} calls, {} miners", thousands(n), thousands(miners)),
        ratio: Row::time_ratio(&subject, &baseline),
        ratio_meaning: "time ratio",
        subject,
        baseline: Some(baseline),
        target: Target::AtMost(2.0),
        notes: vec![format!(
            "7: one statement, `count(*) FILTER (WHERE …)` over a table of {n} hotkeys (prepared beforehand) of \
             {miners} miners with `resi.miner_trust` and `resi.miner_submission_days` rows; the baseline reads \
             `resi.miner_submission_days` by its primary key (miner_hotkey, day) per row."
        )],
    });
    Ok(())
}

/// Time `subject` and `baseline` alternately, `bench.runs` times each; both must return the
/// same count of `rows` processed (the subject's) or just finish (the baseline's).
fn alternate(
    bench: &Bench,
    client: &mut Client,
    label: &str,
    subject: &str,
    baseline: &str,
    n: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut subject_times, mut baseline_times) = (Vec::new(), Vec::new());
    let mut subject_result = None;
    for run in 1..=bench.runs {
        let (s, count) = db::timed(|| Ok(client.query_one(subject, &[])?.get::<_, i64>(0)))?;
        let (b, _) = db::timed(|| Ok(client.query_one(baseline, &[])?.get::<_, i64>(0)))?;
        if *subject_result.get_or_insert(count) != count {
            bail!("{label}: the result changed between runs");
        }
        bench.log(format!(
            "{label} run {run}/{}: {:.2} s, baseline {:.2} s ({n} rows)",
            bench.runs,
            s.as_secs_f64(),
            b.as_secs_f64()
        ));
        subject_times.push(s);
        baseline_times.push(b);
    }
    Ok((subject_times, baseline_times))
}
