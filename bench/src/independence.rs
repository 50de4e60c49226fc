//! 9. `resi.find_dependent_miners()`, the periodic pass that finds dependent miners, at a
//!    tenth of the network: 26 hotkeys (of 256) and 1.2 million current claims (a tenth of a
//!    day's 12 million at full participation), against one scan of the same claims grouped by
//!    listing and signature (what any pass over the claims reads at least).
//!
//! The data is written straight into the tables with generate_series (bypassing the fold): 100,000
//! listings; miner m claims listing z with probability 0.46, 5 % of its fields off the truth,
//! scraped at a time of its own (to the microsecond, within 36 minutes); miners 20–25 are one
//! operator's ring: byte copies of miner 19's claims (the same signature), uploaded minutes
//! later. The listings get their consensus first (untimed). Before each run the
//! evidence and the groups are deleted, so every run finds the ring again.
//!
//! 9b. The same pass over the audits' and validations' evidence at the network's size: 256
//!    hotkeys, every pair of them judged together (32,640 rows of `resi.judged_pair_totals`, each
//!    pair 100-355 judgements with its per-field wrong counts), against one read of those counts
//!    in SQL. The pass weighs every pair (chance, each side's errors, the members' baselines);
//!    miners 250-255 are a ring wrong together on 40 judgements of each pair, and each run must
//!    group exactly them.

use crate::db::{self, Cluster};
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::Bench;
use anyhow::{bail, Result};

const DATABASE: &str = "resi_bench_independence";
const JUDGED_DATABASE: &str = "resi_bench_judged";
/// The network's hotkeys, every pair judged together in 9b.
const NETWORK: usize = 256;
/// Miners JUDGED_RING.. of 9b lie together.
const JUDGED_RING: usize = 250;
/// One read of every per-field count of the judged pairs (what any weighing of them reads at
/// least); returns the counts' sum and the pairs.
const JUDGED_BASELINE: &str = "SELECT sum(n)::bigint, count(*)
  FROM (SELECT (SELECT sum(value::int) FROM jsonb_each_text(t.miner_wrong))
               + (SELECT sum(value::int) FROM jsonb_each_text(t.other_wrong)) AS n
          FROM resi.judged_pair_totals t) per_pair";
/// A tenth of the network's 256 hotkeys.
const MINERS: usize = 26;
/// Miners 20..=25 copy miner 19.
const RING_SOURCE: usize = 19;

const PASS: &str = "SELECT resi.find_dependent_miners()";
/// One scan of the claims grouped as the copied-claims evidence groups them; returns the groups
/// and the claims (so they are computed, not pruned).
const BASELINE: &str = "SELECT count(*), sum(n)::bigint
  FROM (SELECT zpid, signature, count(*) AS n FROM resi.miner_claims GROUP BY zpid, signature) per_signature";

pub fn run(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let listings = bench.size(100_000);
    let url = cluster.fresh_database(DATABASE, true)?;
    let mut client = db::connect(&url)?;
    bench.log(format!("9. find_dependent_miners: building {listings} listings, {MINERS} miners"));
    // `off(k)`: miner m's field k of listing z is wrong (5 %); a copy reports its source's row.
    client.batch_execute(&format!(
        "CREATE FUNCTION pg_temp.off(z bigint, m integer, k integer) RETURNS boolean IMMUTABLE LANGUAGE sql
             AS 'SELECT (hashint8(z * 64 + k) # hashint4(m)) & 1023 < 51';
         CREATE FUNCTION pg_temp.reporter(m integer) RETURNS integer IMMUTABLE LANGUAGE sql
             AS 'SELECT CASE WHEN m > {RING_SOURCE} THEN {RING_SOURCE} ELSE m END';
         INSERT INTO resi.miner_attestations
             (miner_hotkey, zpid, submission_timestamp, job_id, s3_file_path, record_count, data_hash,
              uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
              zip_code, city, state, latitude, longitude, scraped_at, signature)
         SELECT 'bench-miner-' || m, z::text, timestamptz '2025-09-17 08:00+00' + m * interval '1 minute',
                'zillow_zip_77494', 'data/bench/' || m || '.parquet', 50000, md5(z || '/' || m) || md5(m || '/' || z),
                r.uri, r.price, r.address, r.bedrooms, r.bathrooms, r.living_area, r.home_type, r.home_status,
                r.days_on_zillow, r.zip_code, r.city, r.state, r.latitude, r.longitude, r.scraped_at,
                resi.claim_signature(z::text, r.scraped_at, r.uri, r.price, r.address, r.bedrooms, r.bathrooms,
                                     r.living_area, r.home_type, r.home_status, r.days_on_zillow, r.zip_code,
                                     r.city, r.state, r.latitude, r.longitude)
           FROM generate_series(30000000::bigint, 30000000 + {listings} - 1) z,
                generate_series(0, {last_miner}) m,
                LATERAL (SELECT pg_temp.reporter(m) AS s) w,
                LATERAL (SELECT
                    'https://www.zillow.com/homedetails/' || z || '_zpid/' AS uri,
                    150000 + (hashint8(z) & 1023) * 1000 + CASE WHEN pg_temp.off(z, w.s, 1) THEN 7500 ELSE 0 END AS price,
                    (100 + (hashint8(z * 3) & 8191)) || ' Oak St, Katy, TX 77494' AS address,
                    1 + (hashint8(z * 5) & 3) + CASE WHEN pg_temp.off(z, w.s, 2) THEN 1 ELSE 0 END AS bedrooms,
                    1 + (hashint8(z * 7) & 7) / 2.0 AS bathrooms,
                    700 + (hashint8(z * 11) & 4095) AS living_area,
                    'SINGLE_FAMILY' AS home_type,
                    (ARRAY['FOR_SALE', 'FOR_RENT', 'RECENTLY_SOLD', 'PENDING'])
                        [1 + ((hashint8(z * 17) + CASE WHEN pg_temp.off(z, w.s, 3) THEN 1 ELSE 0 END) & 3)] AS home_status,
                    (hashint8(z * 19) & 255) + CASE WHEN pg_temp.off(z, w.s, 4) THEN 30 ELSE 0 END AS days_on_zillow,
                    '77494' AS zip_code, 'Katy' AS city, 'TX' AS state,
                    29.5 + (hashint8(z * 23) & 524287) / 1e6 AS latitude, -95.9 + (hashint8(z * 29) & 524287) / 1e6 AS longitude,
                    timestamptz '2025-09-17 07:00+00' + (hashint8(z * 31 + w.s)::bigint & 2147483647) * interval '1 microsecond' AS scraped_at) r
          WHERE (hashint8(z * 97 + w.s) & 1023) < 471;
         INSERT INTO resi.miner_claims
         SELECT zpid, miner_hotkey, id, submission_timestamp, submission_timestamp, 1,
                uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
                zip_code, city, state, latitude, longitude, signature
           FROM resi.miner_attestations;",
        last_miner = MINERS - 1
    ))?;
    client.batch_execute("VACUUM ANALYZE")?;
    let claims: i64 = client.query_one("SELECT count(*) FROM resi.miner_claims", &[])?.get(0);
    bench.log(format!("9. find_dependent_miners: {claims} claims; computing the consensus (untimed)"));
    client.batch_execute("SELECT resi.refresh_consensus()")?;
    client.batch_execute("VACUUM ANALYZE resi.listings")?;

    let (pass_times, baseline_times) =
        time_passes(bench, &mut client, "9.", MINERS - RING_SOURCE, ("GROUP BY", BASELINE), ("claims", claims))?;
    drop(client);
    cluster.drop_database(DATABASE)?;

    let subject = Side::new("`SELECT resi.find_dependent_miners()`", Stats::of_times(&pass_times), Unit::Seconds);
    let baseline = Side::new(
        "`SELECT zpid, signature, count(*) FROM resi.miner_claims GROUP BY 1, 2`",
        Stats::of_times(&baseline_times),
        Unit::Seconds,
    );
    rows.push(Row {
        measurement: "9. find_dependent_miners".into(),
        size: format!("{} claims on {} listings, {MINERS} miners", thousands(claims as usize), thousands(listings)),
        ratio: Row::time_ratio(&subject, &baseline),
        ratio_meaning: "time ratio",
        subject,
        baseline: Some(baseline),
        target: Target::AtMost(10.0),
        notes: vec![format!(
            "9: a tenth of the network (issue 14): {MINERS} hotkeys, ~1.2M current claims at BENCH_SCALE=1; \
             attestations (with signatures), claims and the listings' consensus are written directly, then \
             vacuumed and analyzed; miners {}..{} upload byte copies of miner {RING_SOURCE}'s claims. Each run \
             starts without evidence or groups and must group exactly the ring. The pass reads every current \
             claim (copied claims; near copies on listings with three or more sources, each claim judged against \
             its consensus in Rust) and the audits; the target (≤ 10× one grouped scan of the claims) is ours: \
             a pass every loader run (two hours) must stay a small share of the cycle.",
            RING_SOURCE + 1,
            MINERS - 1
        )],
    });
    Ok(())
}

/// 9b: the pass over the judged pairs of the whole network (see the module's documentation).
pub fn judged(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let url = cluster.fresh_database(JUDGED_DATABASE, true)?;
    let mut client = db::connect(&url)?;
    bench.log(format!("9b. find_dependent_miners: judged pairs of {NETWORK} miners"));
    // Each miner wrong on 2-5 % of its judgements' prices and 2 % of another field; a ring member
    // also on the 40 judgements it shares with each other member (each its own lie: values apart).
    client.batch_execute(&format!(
        "INSERT INTO resi.judged_pair_totals (miner_hotkey, other_hotkey, first_attestation, other_first_attestation,
                                              shared_false, differences, judged_together, miner_wrong, other_wrong,
                                              wrong_apart)
         SELECT 'bench-miner-' || lpad(i::text, 3, '0'), 'bench-miner-' || lpad(j::text, 3, '0'), i, j, 0,
                2 * k.wrong_apart, n.judged,
                jsonb_build_object('price', n.judged * (2 + (hashint4(i * 7 + j) & 3)) / 100 + k.lies,
                                   'bedrooms', n.judged / 50),
                jsonb_build_object('price', n.judged * (2 + (hashint4(j * 7 + i) & 3)) / 100 + k.lies,
                                   'living_area', n.judged / 50),
                k.wrong_apart
           FROM generate_series(0, {last}) i, generate_series(0, {last}) j,
                LATERAL (SELECT 100 + (hashint4(i * {NETWORK} + j) & 255) AS judged) n,
                LATERAL (SELECT CASE WHEN i >= {JUDGED_RING} AND j >= {JUDGED_RING} THEN 40 ELSE 0 END AS lies,
                                CASE WHEN i >= {JUDGED_RING} AND j >= {JUDGED_RING} THEN 40
                                     ELSE (hashint4(i * 31 + j) & 3) % 3 END AS wrong_apart) k
          WHERE i < j",
        last = NETWORK - 1
    ))?;
    client.batch_execute("VACUUM ANALYZE resi.judged_pair_totals")?;
    let pairs: i64 = client.query_one("SELECT count(*) FROM resi.judged_pair_totals", &[])?.get(0);
    let (pass_times, baseline_times) =
        time_passes(bench, &mut client, "9b.", NETWORK - JUDGED_RING, ("read", JUDGED_BASELINE), ("pairs", pairs))?;
    drop(client);
    cluster.drop_database(JUDGED_DATABASE)?;

    let subject = Side::new("`SELECT resi.find_dependent_miners()`", Stats::of_times(&pass_times), Unit::Seconds);
    let baseline = Side::new(
        "one read of every pair's wrong counts per field (`jsonb_each_text`, summed)",
        Stats::of_times(&baseline_times),
        Unit::Seconds,
    );
    rows.push(Row {
        measurement: "9b. find_dependent_miners, judged pairs".into(),
        size: format!("{} judged pairs of {NETWORK} miners, no claims", thousands(pairs as usize)),
        ratio: Row::time_ratio(&subject, &baseline),
        ratio_meaning: "time ratio",
        subject,
        baseline: Some(baseline),
        target: Target::Reference,
        notes: vec![format!(
            "9b: the network's {NETWORK} hotkeys, every pair judged together 100-355 times (resi.judged_pair_totals \
             written directly, as settled judgements); miners {JUDGED_RING}..{} are wrong together on 40 judgements \
             of each of their pairs, each with its own lie, and each run must group exactly them. The pass weighs \
             every pair: chance (resi.wrong_together_by_chance), each side's wrong fields (resi.wrong_fields_total) \
             and the members' baselines; no target: the cost is reported (the wrong-together evidence of 0.5.0).",
            NETWORK - 1
        )],
    });
    Ok(())
}

/// The pass and `baseline` (`(name, SQL)`), timed in turn `bench.runs` times, each pass from no
/// evidence and no groups: fails unless each pass regroups exactly `ring` miners and the
/// baseline's second column counts `expected` (`(what, count)`). `row` labels the log lines.
fn time_passes(
    bench: &Bench,
    client: &mut postgres::Client,
    row: &str,
    ring: usize,
    (baseline_name, baseline_sql): (&str, &str),
    (what, expected): (&str, i64),
) -> Result<(Vec<std::time::Duration>, Vec<std::time::Duration>)> {
    let (mut pass_times, mut baseline_times) = (Vec::new(), Vec::new());
    for run in 1..=bench.runs {
        client.batch_execute("DELETE FROM resi.miner_groups; DELETE FROM resi.miner_dependence")?;
        let (pass, regrouped) = db::timed(|| Ok(client.query_one(PASS, &[])?.get::<_, i32>(0)))?;
        if regrouped != ring as i32 {
            bail!("find_dependent_miners regrouped {regrouped} miners, not the ring's {ring}");
        }
        let (baseline, (_, counted)) = db::timed_checksum(client, baseline_sql)?;
        if counted != expected {
            bail!("the {baseline_name} counted {counted} {what}, not {expected}");
        }
        bench.log(format!(
            "{row} find_dependent_miners run {run}/{}: pass {:.2} s, {baseline_name} {:.2} s",
            bench.runs,
            pass.as_secs_f64(),
            baseline.as_secs_f64()
        ));
        pass_times.push(pass);
        baseline_times.push(baseline);
    }
    Ok((pass_times, baseline_times))
}
