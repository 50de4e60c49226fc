//! 5. `resi.refresh_consensus()` of every listing against a plain
//!    `SELECT zpid, count(*) FROM resi.miner_attestations GROUP BY zpid`.
//!
//! The data is written straight into the tables with generate_series (bypassing the fold,
//! which is measured by the ingest rows): ten miners of different trust each attest and claim
//! every listing, 5 % of their fields off the truth; the listings exist (as the fold leaves
//! them). Before each run one miner's trust moves (as a validation or a fold moves it), so every
//! listing's consensus changes and refresh_consensus rewrites all of them (it skips listings
//! whose consensus did not change).

use crate::db::{self, Cluster};
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::Bench;
use anyhow::{bail, Result};

const DATABASE: &str = "resi_bench_refresh";
const MINERS: usize = 10;

const REFRESH: &str = "SELECT resi.refresh_consensus()";
/// Returns the groups and the sum of the per-zpid counts (so they are computed, not pruned).
const BASELINE: &str = "SELECT count(*), sum(n)::bigint
  FROM (SELECT zpid, count(*) AS n FROM resi.miner_attestations GROUP BY zpid) per_zpid";

pub fn run(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let listings = bench.size(20_000);
    let url = cluster.fresh_database(DATABASE, true)?;
    let mut client = db::connect(&url)?;
    bench.log(format!("5. refresh_consensus: building {listings} listings, {} attestations", listings * MINERS));
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
    client.batch_execute("SET max_parallel_workers_per_gather = 0")?;

    let (mut refresh_times, mut baseline_times) = (Vec::new(), Vec::new());
    for run in 1..=bench.runs {
        // The first run fills the placeholders; later ones follow a trust change.
        if run > 1 {
            client.execute(
                "UPDATE resi.miner_trust SET trust_score = trust_score + 0.01 WHERE miner_hotkey = $1",
                &[&format!("bench-miner-{}", run % MINERS)],
            )?;
        }
        let (refresh, refreshed) = db::timed(|| Ok(client.query_one(REFRESH, &[])?.get::<_, i32>(0)))?;
        if refreshed != listings as i32 {
            bail!("refresh_consensus refreshed {refreshed} listings, not {listings}");
        }
        // Each refresh rewrites every listing: vacuum so the next run starts alike.
        client.batch_execute("VACUUM resi.listings")?;
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
    let scored: i64 = client
        .query_one("SELECT count(*) FROM resi.listings WHERE consensus_score > 0 AND price IS NOT NULL", &[])?
        .get(0);
    if scored != listings as i64 {
        bail!("only {scored} of {listings} listings have a consensus after the refresh");
    }
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
        size: format!(
            "{} listings, {} attestations/claims, {MINERS} miners",
            thousands(listings),
            thousands(listings * MINERS)
        ),
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
