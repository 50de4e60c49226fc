//! 5. `resi.refresh_consensus()` of every listing against a plain
//!    `SELECT zpid, count(*) FROM resi.miner_attestations GROUP BY zpid`.
//!
//! The data is written straight into the tables with generate_series (bypassing the fold,
//! which is measured by the ingest rows): ten miners of different trust each attest and claim
//! every listing, 5 % of their fields off the truth; the listings exist (as the fold leaves
//! them). Before each run one miner's trust moves (as a validation or a fold moves it), so every
//! listing's consensus changes and refresh_consensus rewrites all of them (it skips listings
//! whose consensus did not change).
//!
//! 5 (portable). The same refreshes in a database holding the portable edition (issue 17)
//! against a native one with the same claims, over fewer listings.

use crate::db::{self, Cluster, Release};
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::Bench;
use anyhow::{bail, Result};
use postgres::Client;
use std::time::Duration;

const DATABASE: &str = "resi_bench_refresh";
pub const MINERS: usize = 10;

const REFRESH: &str = "SELECT resi.refresh_consensus()";
/// Returns the groups and the sum of the per-zpid counts (so they are computed, not pruned).
const BASELINE: &str = "SELECT count(*), sum(n)::bigint
  FROM (SELECT zpid, count(*) AS n FROM resi.miner_attestations GROUP BY zpid) per_zpid";

pub fn run(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let listings = bench.size(20_000);
    let url = cluster.fresh_database(DATABASE, true)?;
    let mut client = db::connect(&url)?;
    bench.log(format!("5. refresh_consensus: building {listings} listings, {} attestations", listings * MINERS));
    build(&mut client, listings)?;
    client.batch_execute("SET max_parallel_workers_per_gather = 0")?;

    let (mut refresh_times, mut baseline_times) = (Vec::new(), Vec::new());
    for run in 1..=bench.runs {
        let refresh = refresh(&mut client, run, listings)?;
        let (baseline, (groups, attestations)) = db::timed_checksum(&mut client, BASELINE)?;
        if groups != listings as i64 || attestations != (listings * MINERS) as i64 {
            bail!("the GROUP BY found {groups} listings and {attestations} attestations");
        }
        bench.log(format!(
            "5. refresh_consensus run {run}/{}: refresh {:.2} s, GROUP BY {:.2} s",
            bench.runs,
            refresh.as_secs_f64(),
            baseline.as_secs_f64()
        ));
        refresh_times.push(refresh);
        baseline_times.push(baseline);
    }
    check_consensus(&mut client, listings)?;
    drop(client);
    cluster.drop_database(DATABASE)?;

    let subject = Side::new("`SELECT resi.refresh_consensus()`", Stats::of_times(&refresh_times), Unit::Seconds);
    let baseline = Side::new(
        "`SELECT zpid, count(*) FROM resi.miner_attestations GROUP BY zpid`",
        Stats::of_times(&baseline_times),
        Unit::Seconds,
    );
    rows.push(Row {
        measurement: "5. refresh_consensus".into(),
        size: claims_size(listings),
        ratio: Row::time_ratio(&subject, &baseline),
        ratio_meaning: "time ratio",
        subject,
        baseline: Some(baseline),
        target: Target::AtMost(3.0),
        notes: vec!["5: attestations, claims, trust and listing rows are inserted directly (generate_series), then \
             vacuumed and analyzed; both sides serial (`max_parallel_workers_per_gather = 0`: the refresh is an \
             UPDATE, which PostgreSQL never runs in parallel); `VACUUM resi.listings` after each refresh, untimed. \
             Run 1 fills the listings; before each later run one miner's trust moves by 0.01, so every listing's \
             consensus (confidences, trust fingerprint) changes and is rewritten. \
             The issue's size is 1M listings / 10M attestations (BENCH_SCALE=50)."
            .into()],
    });
    Ok(())
}

/// Trust of [`MINERS`] miners who each attest and claim `listings` listings (5 % of their fields
/// off the truth), and the listings (without consensus yet); vacuumed and analyzed.
fn build(client: &mut Client, listings: usize) -> Result<()> {
    // `off(k)`: miner m's field k of listing z is wrong (5 %).
    client.batch_execute(&format!(
        "INSERT INTO resi.miner_trust (miner_hotkey, trust_score)
         SELECT 'bench-miner-' || m, 0.3 + 0.05 * m FROM generate_series(0, {last_miner}) m;
         CREATE FUNCTION pg_temp.off(z bigint, m integer, k integer) RETURNS boolean IMMUTABLE LANGUAGE sql
             AS 'SELECT (hashint8(z * 64 + k) # hashint4(m)) & 1023 < 51';
         INSERT INTO resi.miner_attestations
             (miner_hotkey, zpid, submission_timestamp, job_id, s3_file_path, record_count, data_hash,
              uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
              zip_code, city, state, latitude, longitude, scraped_at)
         SELECT 'bench-miner-' || m, z::text, timestamptz '2025-09-17 00:00+00' + m * interval '1 hour',
                'zillow_zip_' || (77000 + z / 250 % 1000), 'data/bench/' || m || '/' || (z / 5000) || '.parquet', 5000,
                md5(z || '/' || m) || md5(m || '/' || z),
                'https://www.zillow.com/homedetails/' || z || '_zpid/',
                150000 + (hashint8(z) & 1023) * 1000 + CASE WHEN pg_temp.off(z, m, 1) THEN 7500 ELSE 0 END,
                (100 + (hashint8(z * 3) & 8191)) || ' Oak St, Katy, TX ' || (77000 + z / 250 % 1000),
                1 + (hashint8(z * 5) & 3) + CASE WHEN pg_temp.off(z, m, 2) THEN 1 ELSE 0 END,
                1 + (hashint8(z * 7) & 7) / 2.0,
                700 + (hashint8(z * 11) & 4095),
                (ARRAY['SINGLE_FAMILY', 'TOWNHOUSE', 'CONDO', 'MULTI_FAMILY'])[1 + (hashint8(z * 13) & 3)],
                (ARRAY['FOR_SALE', 'FOR_RENT', 'RECENTLY_SOLD', 'PENDING'])
                    [1 + ((hashint8(z * 17) + CASE WHEN pg_temp.off(z, m, 3) THEN 1 ELSE 0 END) & 3)],
                (hashint8(z * 19) & 255) + CASE WHEN pg_temp.off(z, m, 4) THEN 30 ELSE 0 END,
                (77000 + z / 250 % 1000)::text, 'Katy', 'TX',
                29.5 + (hashint8(z * 23) & 524287) / 1e6, -95.9 + (hashint8(z * 29) & 524287) / 1e6,
                timestamptz '2025-09-16 23:00+00'
           FROM generate_series(20000000, 20000000 + {listings} - 1) z, generate_series(0, {last_miner}) m;
         INSERT INTO resi.miner_claims
         SELECT zpid, miner_hotkey, id, submission_timestamp, submission_timestamp, 1,
                uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
                zip_code, city, state, latitude, longitude
           FROM resi.miner_attestations;
         INSERT INTO resi.listings (zpid) SELECT DISTINCT zpid FROM resi.miner_claims;",
        last_miner = MINERS - 1
    ))?;
    client.batch_execute("VACUUM ANALYZE")?;
    Ok(())
}

/// One timed `resi.refresh_consensus()`: run 1 fills the listings, later runs follow a move of
/// one miner's trust by 0.01. Checks that every listing was refreshed, then vacuums
/// `resi.listings` (untimed) so that the next run starts alike.
fn refresh(client: &mut Client, run: usize, listings: usize) -> Result<Duration> {
    if run > 1 {
        client.execute(
            "UPDATE resi.miner_trust SET trust_score = trust_score + 0.01 WHERE miner_hotkey = $1",
            &[&format!("bench-miner-{}", run % MINERS)],
        )?;
    }
    let (time, refreshed) = db::timed(|| Ok(client.query_one(REFRESH, &[])?.get::<_, i32>(0)))?;
    if refreshed != listings as i32 {
        bail!("refresh_consensus refreshed {refreshed} listings, not {listings}");
    }
    client.batch_execute("VACUUM resi.listings")?;
    Ok(time)
}

/// Every listing has a consensus after the refreshes. Returns a checksum of the listings'
/// consensus (every column but the times): equal checksums, equal listings.
fn check_consensus(client: &mut Client, listings: usize) -> Result<i64> {
    let row = client.query_one(
        "SELECT count(*) FILTER (WHERE consensus_score > 0 AND price IS NOT NULL),
                coalesce(sum(hashtext((zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type,
                    home_status, days_on_zillow, zip_code, city, state, latitude, longitude, consensus_score,
                    total_attestations, unique_miners_count, field_consensus, voting_miners, trust_fingerprint,
                    voting_groups)::text)), 0)::bigint
           FROM resi.listings",
        &[],
    )?;
    let scored: i64 = row.get(0);
    if scored != listings as i64 {
        bail!("only {scored} of {listings} listings have a consensus after the refresh");
    }
    Ok(row.get(1))
}

/// Listings of the portable row at BENCH_SCALE=1: the portable consensus of a listing takes
/// about a millisecond where Rust takes a fifth of one (docs/hosted.md, "Speed").
pub const PORTABLE_LISTINGS: usize = 4_000;
const PORTABLE_DATABASE: &str = "resi_bench_refresh_portable";

/// 5 (portable): `resi.refresh_consensus()` of the portable edition against the native one over
/// the same generated claims, each in its own database; the editions go first in turn.
pub fn portable_vs_native(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let listings = bench.size(PORTABLE_LISTINGS);
    bench.log(format!(
        "5. refresh_consensus, portable edition: building {listings} listings, {} attestations, twice",
        listings * MINERS
    ));
    // The data is written by the superuser (pg_temp functions, VACUUM of every table); the
    // portable side's refresh runs as the edition's owner, as a hosted database would.
    let native_url = cluster.fresh_database(DATABASE, true)?;
    let portable_url = cluster.fresh_database_at(PORTABLE_DATABASE, Some(Release::Portable))?;
    build(&mut db::connect(&portable_url)?, listings)?;
    let mut portable = db::connect(&cluster.installer_url(PORTABLE_DATABASE))?;
    let mut native = db::connect(&native_url)?;
    build(&mut native, listings)?;
    for client in [&mut portable, &mut native] {
        client.batch_execute("SET max_parallel_workers_per_gather = 0")?;
    }
    let (mut portable_times, mut native_times) = (Vec::new(), Vec::new());
    for run in 1..=bench.runs {
        if run % 2 == 1 {
            portable_times.push(refresh(&mut portable, run, listings)?);
            native_times.push(refresh(&mut native, run, listings)?);
        } else {
            native_times.push(refresh(&mut native, run, listings)?);
            portable_times.push(refresh(&mut portable, run, listings)?);
        }
        bench.log(format!(
            "5. refresh_consensus, portable edition, run {run}/{}: portable {:.2} s, native {:.2} s",
            bench.runs,
            portable_times[run - 1].as_secs_f64(),
            native_times[run - 1].as_secs_f64()
        ));
    }
    let portable_result = check_consensus(&mut portable, listings)?;
    let native_result = check_consensus(&mut native, listings)?;
    if portable_result != native_result {
        bail!("the editions' listings differ after the refreshes (checksums {portable_result} and {native_result})");
    }
    drop((portable, native));
    cluster.drop_database(PORTABLE_DATABASE)?;
    cluster.drop_database(DATABASE)?;

    let subject = Side::new(
        "`SELECT resi.refresh_consensus()`, portable edition",
        Stats::of_times(&portable_times),
        Unit::Seconds,
    );
    let baseline = Side::new("the same, native edition", Stats::of_times(&native_times), Unit::Seconds);
    rows.push(Row {
        measurement: "5. refresh_consensus, portable edition".into(),
        size: claims_size(listings),
        ratio: Row::time_ratio(&subject, &baseline),
        ratio_meaning: "time ratio",
        subject,
        baseline: Some(baseline),
        target: Target::Reported,
        notes: vec![format!(
            "5 (portable): the claims of row 5 at {} listings (BENCH_SCALE=1: {}), written the same way into two \
             databases: one holding the portable edition (resi-package's plain migration, run by a role without \
             superuser; its refresh runs as that role), one with `CREATE EXTENSION resi_pg`. The same runs and \
             trust moves on both sides, serial, `VACUUM resi.listings` untimed after each; the editions go first \
             in turn; the listings of both checked equal at the end (every column but the times). No target: the \
             issue asks for the cost of hosting to be reported.",
            thousands(listings),
            thousands(PORTABLE_LISTINGS)
        )],
    });
    Ok(())
}

/// The size column of the refresh rows.
fn claims_size(listings: usize) -> String {
    format!("{} listings, {} attestations/claims, {MINERS} miners", thousands(listings), thousands(listings * MINERS))
}
