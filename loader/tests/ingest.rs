//! The loader against a real PostgreSQL with resi_pg and a real S3-protocol server.

mod common;

use common::*;
use std::collections::BTreeMap;

fn basic() -> std::path::PathBuf {
    fixture("samples/basic")
}

/// Rows in each Parquet file under `root`, read independently of the loader (parquet's
/// synchronous reader, file metadata).
fn parquet_rows(root: &std::path::Path) -> BTreeMap<String, i64> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut BTreeMap<String, i64>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(reader) =
                parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap())
            {
                use parquet::file::reader::FileReader;
                let key = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(key, reader.metadata().file_metadata().num_rows());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn basic_samples_load_once() {
    let db = TestDatabase::new("loader_basic");
    let first = RT.block_on(load(&db.url, local(&basic())));
    let files = parquet_rows(&basic());
    // The spammer's first three uploads earn three strikes, so a ban defers its other three.
    assert_eq!((first.loaded, first.rejected, first.deferred), (files.len() as u64 - 3, 2, 3), "{first:?}");
    let banned = count(&db.url, "SELECT count(*) FROM resi.ingest_ledger WHERE reason LIKE 'banned: until %'");
    assert_eq!(banned, 3);
    let truth_zpids = std::fs::read_to_string(basic().join("truth.csv")).unwrap().lines().count() as i64 - 1;
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.listings"), truth_zpids);
    // Every loaded object's rows are attested exactly once, under its key; deferred ones not at all.
    let mut client = connect(&db.url);
    let mut rows = 0;
    for (key, n) in &files {
        let r = client
            .query_one(
                "SELECT l.status, (SELECT count(*) FROM resi.miner_attestations a WHERE a.s3_file_path = l.object_key)
                   FROM resi.ingest_ledger l WHERE l.object_key = $1",
                &[key],
            )
            .unwrap();
        let (status, attested): (String, i64) = (r.get(0), r.get(1));
        assert_eq!(attested, if status == "loaded" { *n } else { 0 }, "{key} {status}");
        rows += attested;
    }
    assert_eq!(first.rows_attested as i64, rows);
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.miner_attestations"), rows);
    // A second pass loads nothing (the banned miner's objects wait for the ban to end).
    let before = database_state(&db.url);
    let second = RT.block_on(load(&db.url, local(&basic())));
    assert_eq!((second.loaded, second.rejected, second.deferred), (0, 0, 3), "{second:?}");
    assert_eq!(second.skipped, first.objects_seen - 3);
    assert_eq!(database_state(&db.url), before);
}

#[test]
fn s3_and_local_folder_give_identical_listings() {
    let root = TempDir::new("s3");
    copy_tree(&basic().join("data"), &root.0.join("resi").join("uploads").join("data"));
    let server = RT.block_on(S3Server::start(&root.0));
    let via_s3 = TestDatabase::new("loader_s3");
    let via_folder = TestDatabase::new("loader_folder");
    let s3 = RT.block_on(load(&via_s3.url, server.source("resi", "uploads/")));
    let folder = RT.block_on(load(&via_folder.url, local(&root.0.join("resi").join("uploads"))));
    assert_eq!((s3.loaded, s3.rejected, s3.rows_attested), (folder.loaded, folder.rejected, folder.rows_attested));
    assert_eq!(s3.loaded, 69);
    let listings = |url: &str| database_state(url).split("\n--\n").next().unwrap().to_owned();
    assert_eq!(listings(&via_s3.url), listings(&via_folder.url));
    // The S3 ledger holds the server's ETags; the second pass skips them all.
    let again = RT.block_on(load(&via_s3.url, server.source("resi", "uploads/")));
    assert_eq!((again.loaded, again.skipped, again.deferred), (0, 69, 3));
}

#[test]
fn s3_listing_pages_past_1000_keys() {
    let root = TempDir::new("s3_pages");
    let folder = root.0.join("resi/data/hotkey=5Pager/job_id=zillow_zip_77494");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..1105u64 {
        std::fs::write(folder.join(format!("data_20250917_080000_{i}.parquet")), b"PAR1").unwrap();
    }
    let server = RT.block_on(S3Server::start(&root.0));
    let listed = RT.block_on(server.source("resi", "data/").list()).unwrap();
    assert_eq!(listed.len(), 1105);
    let keys: std::collections::BTreeSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys.len(), 1105, "no key twice");
    assert!(listed.iter().all(|o| !o.etag.is_empty() && o.size == 4), "HEAD fills in what the listing lacks");
}

#[test]
fn wrong_s3_secret_is_a_clear_error() {
    let root = TempDir::new("s3_auth");
    copy_tree(&basic().join("data"), &root.0.join("resi").join("data"));
    let server = RT.block_on(S3Server::start(&root.0));
    let db = TestDatabase::new("loader_auth");
    let err = RT
        .block_on(async {
            let mut client = resi_loader::db::connect(Some(&db.url)).await.unwrap();
            resi_loader::load::run_pass(
                &mut client,
                server.source_with_secret("resi", "data/", "wrong-secret"),
                &resi_loader::load::PassOptions::default(),
                &mut resi_loader::progress::Silent,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .await
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("SignatureDoesNotMatch"), "{err:#}");
}

#[test]
fn an_overwritten_object_is_a_new_submission() {
    let dir = TempDir::new("overwrite");
    let key = "data/hotkey=5Over/job_id=zillow_zip_77494/data_20250917_080000_3.parquet";
    write_upload(&dir.0.join(key), 500, 3, 1, 10);
    let db = TestDatabase::new("loader_overwrite");
    assert_eq!(RT.block_on(load(&db.url, local(&dir.0))).loaded, 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_upload(&dir.0.join(key), 500, 3, 2, 10);
    let second = RT.block_on(load(&db.url, local(&dir.0)));
    assert_eq!((second.loaded, second.rows_attested), (1, 3));
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.ingest_ledger WHERE status = 'loaded'"), 2);
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.miner_attestations"), 6);
    // One miner, one vote per listing, however often it uploads.
    assert_eq!(count(&db.url, "SELECT max(unique_miners_count)::bigint FROM resi.listings"), 1);
    assert_eq!(count(&db.url, "SELECT max(total_attestations)::bigint FROM resi.listings"), 2);
}

#[test]
fn hostile_uploads_are_rejected_with_reasons_and_good_rows_load() {
    let hostile = fixture("samples/hostile");
    let db = TestDatabase::new("loader_hostile");
    let pass = RT.block_on(load(&db.url, local(&hostile)));
    let mut client = connect(&db.url);
    let reasons: BTreeMap<String, String> = client
        .query("SELECT object_key, split_part(reason, ':', 1) FROM resi.ingest_ledger WHERE status = 'rejected'", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let hk = "data/hotkey=5JPGiLMXYUgh6jzQALwR46udzMs9avPhe1j1E5iKHf7eAwFC";
    let expected: BTreeMap<String, String> = [
        ("miners.csv".to_string(), "key_layout"),
        ("truth.csv".to_string(), "key_layout"),
        (format!("{hk}/job_id=zillow_zip_77494/notes.txt"), "key_layout"),
        (format!("{hk}/job_id=zillow_zip_77494/data_20250917_230000_50.parquet"), "truncated"),
        (format!("{hk}/job_id=zillow_zip_77494/data_20250917_230500_10.parquet"), "truncated"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    assert_eq!(reasons, expected);
    // Every row of every loaded Parquet object is attested exactly once; the epoch JSON too.
    let files = parquet_rows(&hostile);
    for (key, rows_read, attested) in client
        .query(
            "SELECT l.object_key, l.rows_read, (SELECT count(*) FROM resi.miner_attestations a WHERE a.s3_file_path = l.object_key)
               FROM resi.ingest_ledger l WHERE l.status = 'loaded'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)))
    {
        assert_eq!(attested, rows_read, "{key}");
        if let Some(n) = files.get(&key) {
            assert_eq!(rows_read, *n, "{key}");
        }
    }
    assert_eq!(pass.rows_attested as i64, count(&db.url, "SELECT count(*) FROM resi.miner_attestations"));
    let json: i64 = count(&db.url, "SELECT rows_attested FROM resi.ingest_ledger WHERE kind = 'epoch_json'");
    assert_eq!(json, 25);
    // The lying row count is loaded for what it holds; its claim stays visible in the ledger.
    let (declared, read): (i32, i64) = {
        let r = client
            .query_one(
                "SELECT declared_rows, rows_read FROM resi.ingest_ledger WHERE object_key LIKE '%_4000.parquet'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(declared, 4000);
    assert!(read < 4000, "{read}");
    // Hostile strings are stored verbatim (bounded), NUL bytes removed.
    let issues: String = client
        .query_one("SELECT row_issues::text FROM resi.ingest_ledger WHERE object_key LIKE '%zillow_hostile%'", &[])
        .unwrap()
        .get(0);
    assert!(issues.contains("nul_removed"), "{issues}");
}

#[test]
fn consensus_on_the_basic_samples_matches_the_truth() {
    let db = TestDatabase::new("loader_truth");
    RT.block_on(load(&db.url, local(&basic())));
    let truth = std::fs::read_to_string(basic().join("truth.csv")).unwrap();
    let mut lines = truth.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut client = connect(&db.url);
    let (mut price_ok, mut bedrooms_ok, mut total) = (0, 0, 0);
    for line in lines {
        // The address is quoted and holds commas: split around it.
        let (before, rest) = line.split_once(",\"").unwrap();
        let (_, after) = rest.split_once("\",").unwrap();
        let zpid = before.split(',').next().unwrap();
        let price = before.split(',').nth(1).unwrap();
        let bedrooms = after.split(',').next().unwrap();
        let _ = col("bedrooms");
        let row = client
            .query_opt("SELECT price::text, bedrooms::text FROM resi.listings WHERE zpid = $1", &[&zpid])
            .unwrap()
            .unwrap_or_else(|| panic!("listing {zpid} missing"));
        total += 1;
        price_ok += usize::from(row.get::<_, Option<String>>(0).as_deref() == Some(price));
        bedrooms_ok += usize::from(row.get::<_, Option<String>>(1).as_deref() == Some(bedrooms));
    }
    let (price_accuracy, bedrooms_accuracy) = (price_ok as f64 / total as f64, bedrooms_ok as f64 / total as f64);
    println!("consensus vs truth on samples/basic: price {price_accuracy:.3}, bedrooms {bedrooms_accuracy:.3} over {total} listings");
    assert!(price_accuracy > 0.9 && bedrooms_accuracy > 0.9, "price {price_accuracy}, bedrooms {bedrooms_accuracy}");
}

/// This loader still fills a database whose extension is the previous release (0.4.0, before
/// batches): it finds no `resi.judge_submissions` and loads every object in a transaction of its
/// own, with the same counts as on the current release.
#[test]
fn a_database_on_the_previous_release_is_loaded_one_object_at_a_time() {
    let db = TestDatabase::without_extension("loader_previous_release");
    connect(&db.url).batch_execute("CREATE EXTENSION resi_pg VERSION '0.4.0'").unwrap();
    let summary = RT.block_on(load(&db.url, local(&basic())));
    let files = parquet_rows(&basic());
    assert_eq!((summary.loaded, summary.rejected, summary.deferred), (files.len() as u64 - 3, 2, 3), "{summary:?}");
    assert_eq!(summary.stages.batches, summary.loaded + summary.rejected + summary.deferred, "{summary:?}");
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.miner_attestations"), summary.rows_attested as i64);
}
