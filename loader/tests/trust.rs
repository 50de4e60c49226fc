//! Trust, quality, rate limits and penalties, driven by real loads of the sample uploads: a
//! miner's influence is earned by agreeing with the others, and lost by spamming.

mod common;

use common::*;
use std::collections::BTreeMap;

fn basic() -> std::path::PathBuf {
    fixture("samples/basic")
}

/// The sample uploads in a temporary folder, each with its upload time as LastModified.
fn uploads() -> TempDir {
    let dir = TempDir::new("trust");
    copy_uploads_with_upload_times(&basic().join("data"), &dir.0.join("data"));
    dir
}

/// hotkey → behaviour (honest, sloppy, liar, copier, spammer), from the samples' miners.csv.
fn behaviours() -> BTreeMap<String, String> {
    std::fs::read_to_string(basic().join("miners.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (hotkey, kind) = l.split_once(',').unwrap();
            (hotkey.to_owned(), kind.to_owned())
        })
        .collect()
}

struct Miner {
    kind: String,
    trust: f64,
    strikes: i32,
    bans: i32,
    banned: bool,
    accuracy: Option<f64>,
}

fn miners(url: &str) -> BTreeMap<String, Miner> {
    let kinds = behaviours();
    connect(url)
        .query(
            "SELECT miner_hotkey, trust_score, strikes, bans, coalesce(banned_until > now(), false), accuracy_score
               FROM resi.miner_trust",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let hotkey: String = r.get(0);
            let kind = kinds[&hotkey].clone();
            (
                hotkey,
                Miner {
                    kind,
                    trust: r.get(1),
                    strikes: r.get(2),
                    bans: r.get(3),
                    banned: r.get(4),
                    accuracy: r.get(5),
                },
            )
        })
        .collect()
}

fn trust_of<'a>(miners: &'a BTreeMap<String, Miner>, kind: &'a str) -> impl Iterator<Item = f64> + 'a {
    miners.values().filter(move |m| m.kind == kind).map(|m| m.trust)
}

#[test]
fn honest_miners_earn_trust_and_the_spammer_is_banned() {
    let dir = uploads();
    let db = TestDatabase::new("trust_basic");
    let pass = RT.block_on(load(&db.url, local(&dir.0)));
    let miners = miners(&db.url);
    assert_eq!(miners.len(), 12);
    for (hotkey, m) in &miners {
        println!(
            "{:8} {hotkey}: trust {:.4}, accuracy {:?}, strikes {}, bans {}",
            m.kind, m.trust, m.accuracy, m.strikes, m.bans
        );
    }
    let min_honest = trust_of(&miners, "honest").fold(f64::INFINITY, f64::min);
    for kind in ["sloppy", "liar", "copier", "spammer"] {
        let best = trust_of(&miners, kind).fold(0.0, f64::max);
        assert!(min_honest > best, "every honest miner ({min_honest}) must out-trust every {kind} ({best})");
    }
    // Honest miners moved up from the initial 0.25 by agreeing with other sources; the spammer is
    // banned, and its listings, which nobody else reports, earned it nothing.
    assert!(min_honest > 0.25, "{min_honest}");
    let spammer = miners.values().find(|m| m.kind == "spammer").unwrap();
    assert!(spammer.banned && spammer.bans == 1, "strikes {} bans {}", spammer.strikes, spammer.bans);
    assert!(spammer.trust < 0.25 + 1e-9 && min_honest > spammer.trust, "{}", spammer.trust);
    // Its quality reports name the duplicates and the impossible prices; after the third low-quality
    // submission its remaining objects wait for the ban to end.
    let mut client = connect(&db.url);
    let spammer_key = miners.iter().find(|(_, m)| m.kind == "spammer").unwrap().0;
    let rows = client
        .query(
            "SELECT status, split_part(reason, ':', 1), quality_issues FROM resi.ingest_ledger
              WHERE miner_hotkey = $1 ORDER BY last_modified, object_key",
            &[spammer_key],
        )
        .unwrap();
    let statuses: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(statuses, ["loaded", "loaded", "loaded", "deferred", "deferred", "deferred"]);
    for r in &rows[..3] {
        let issues: Vec<String> = r.get(2);
        assert_eq!(issues, ["suspicious_price_range", "duplicate_zpids"]);
    }
    assert!(rows[3..].iter().all(|r| r.get::<_, String>(1) == "banned"));
    assert_eq!(pass.deferred, 3);
    let status: String = client.query_one("SELECT (resi.miner_status($1)).explanation", &[spammer_key]).unwrap().get(0);
    assert!(status.contains("banned until") && status.contains("low_quality"), "{status}");
    // Every honest upload scored 1.0 and agreed with the consensus it helped form.
    let (clean, loaded): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE quality_score = 1 AND quality_issues = '{}'), count(*)
                   FROM resi.ingest_ledger WHERE status = 'loaded' AND miner_hotkey <> $1",
                &[spammer_key],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((clean, loaded), (66, 66));
    // Nothing is left stale: the pass refreshed what the trust changes touched.
    assert_eq!(count(&db.url, "SELECT resi.stale_listings()"), 0);
}

/// Share of listings whose consensus price and bedrooms equal truth.csv's, for the consensus
/// in resi.listings and for an equal-weight vote over the same claims.
fn accuracy_against_truth(url: &str) -> [(f64, f64); 2] {
    let mut client = connect(url);
    client
        .batch_execute(
            "CREATE TEMP TABLE truth (zpid text, price bigint, address text, bedrooms int, bathrooms float8,
                 living_area int, home_type text, home_status text, days_on_zillow int, zip_code text, city text,
                 state text, latitude float8, longitude float8)",
        )
        .unwrap();
    let csv = std::fs::read(basic().join("truth.csv")).unwrap();
    let mut writer = client.copy_in("COPY truth FROM STDIN (FORMAT csv, HEADER true)").unwrap();
    std::io::Write::write_all(&mut writer, &csv).unwrap();
    writer.finish().unwrap();
    let row = client
        .query_one(
            "WITH equal AS (
                 SELECT zpid, round((resi.consensus_median(price, 1, 0.01)).value)::bigint AS price,
                        (resi.consensus_mode(bedrooms::text, 1)).value::int AS bedrooms
                   FROM resi.miner_claims GROUP BY zpid)
             SELECT avg((l.price = t.price)::int)::float8, avg((l.bedrooms = t.bedrooms)::int)::float8,
                    avg((e.price = t.price)::int)::float8, avg((e.bedrooms = t.bedrooms)::int)::float8
               FROM truth t JOIN resi.listings l USING (zpid) JOIN equal e USING (zpid)",
            &[],
        )
        .unwrap();
    [(row.get(0), row.get(1)), (row.get(2), row.get(3))]
}

#[test]
fn trust_weighted_consensus_is_at_least_as_accurate_as_equal_weights() {
    let dir = uploads();
    let db = TestDatabase::new("trust_truth");
    RT.block_on(load(&db.url, local(&dir.0)));
    let [(price, bedrooms), (equal_price, equal_bedrooms)] = accuracy_against_truth(&db.url);
    println!(
        "consensus vs truth on samples/basic: trust-weighted price {price:.3}, bedrooms {bedrooms:.3}; \
         equal weights price {equal_price:.3}, bedrooms {equal_bedrooms:.3}"
    );
    assert!(price >= equal_price && bedrooms >= equal_bedrooms);
    // Measured: 0.998 and 1.000 with batched folds (equal weights over the same claims: 0.997
    // and 0.997). The one wrong price (of 600) is a listing whose six honest miners split
    // 4:2 on a fresh price, decided by a few hundredths of weight; one fold per object gave it
    // right (1.000), with trust earned in a different order.
    assert!(price >= 0.998 && bedrooms >= 0.999, "price {price}, bedrooms {bedrooms}");
}

#[test]
fn objects_over_the_allowance_are_deferred_and_load_once_allowed() {
    let dir = uploads();
    let db = TestDatabase::new("trust_limits");
    let mut admin = connect(&db.url);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET resi.rate_limit_tiers = '0:2';
             ALTER DATABASE {0} SET resi.over_limit_strike_attempts = 3",
            db.name
        ))
        .unwrap();
    let first = RT.block_on(load(&db.url, local(&dir.0)));
    // Two objects a day each; the other four wait, and the third over-limit attempt is a strike.
    let per_day = |url: &str| -> BTreeMap<String, (i32, i32)> {
        connect(url)
            .query(
                "SELECT miner_hotkey, submissions, over_limit_attempts FROM resi.miner_submission_days
                  WHERE day = '2025-09-17'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    };
    let days = per_day(&db.url);
    let kinds = behaviours();
    for (hotkey, kind) in &kinds {
        if kind != "spammer" {
            assert_eq!(days[hotkey], (2, 4), "{kind} {hotkey}");
        }
    }
    let spammer = kinds.iter().find(|(_, k)| *k == "spammer").unwrap().0;
    let rate_limited = format!(
        "SELECT count(*) FROM resi.ingest_ledger
          WHERE status = 'deferred' AND reason LIKE 'rate_limited: 2 of 2 %' AND miner_hotkey <> '{spammer}'"
    );
    assert_eq!(count(&db.url, &rate_limited), 11 * 4);
    assert_eq!(first.loaded, 12 * 2);
    let honest_strikes = |url: &str| -> Vec<i32> {
        let m = miners(url);
        m.values().filter(|m| m.kind == "honest").map(|m| m.strikes).collect()
    };
    assert_eq!(honest_strikes(&db.url), [1; 6]);

    // Still over the allowance: nothing loads, and retries are not new attempts.
    let second = RT.block_on(load(&db.url, local(&dir.0)));
    assert_eq!((second.loaded, second.deferred), (0, first.deferred));
    assert_eq!(per_day(&db.url), days);
    assert_eq!(honest_strikes(&db.url), [1; 6]);

    // A larger allowance: the deferred objects load (the banned spammer's still wait).
    admin.batch_execute(&format!("ALTER DATABASE {} SET resi.rate_limit_tiers = '0:100'", db.name)).unwrap();
    let third = RT.block_on(load(&db.url, local(&dir.0)));
    assert_eq!(third.loaded, 11 * 4, "{third:?}");
    assert_eq!(count(&db.url, &rate_limited), 0);
    for (hotkey, kind) in &kinds {
        if kind != "spammer" {
            assert_eq!(per_day(&db.url)[hotkey].0, 6, "{kind} {hotkey}");
        }
    }
}

#[test]
fn objects_over_the_row_cap_are_rejected_as_too_large() {
    let dir = uploads();
    let db = TestDatabase::new("trust_cap");
    connect(&db.url).batch_execute(&format!("ALTER DATABASE {} SET resi.max_submission_rows = 80", db.name)).unwrap();
    let pass = RT.block_on(load(&db.url, local(&dir.0)));
    let mut client = connect(&db.url);
    let over: i64 = client
        .query_one(
            "SELECT count(*) FROM resi.ingest_ledger
              WHERE status = 'rejected' AND reason LIKE 'too_large: % rows, more than resi.max_submission_rows = 80'",
            &[],
        )
        .unwrap()
        .get(0);
    // The file names state the row counts: every file over 80 rows is rejected, the rest load.
    let big = walk_names(&dir.0).into_iter().filter(|n| declared_rows(n).is_some_and(|r| r > 80)).count();
    assert!(big > 0);
    assert_eq!(over, big as i64);
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.miner_attestations WHERE record_count > 80"), 0);
    assert!(pass.loaded > 0);
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_names(&path));
        } else {
            out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

fn declared_rows(name: &str) -> Option<u64> {
    name.strip_suffix(".parquet")?.rsplit('_').next()?.parse().ok()
}
