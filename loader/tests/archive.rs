//! `resi-loader archive` and `export` against the real database, a folder and the in-process
//! S3 server: what leaves the active window ends in exactly one monthly Parquet file and not
//! in the database, a crash between writing and deleting loses and duplicates nothing, and an
//! export is a complete snapshot with a manifest.

mod common;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use resi_loader::archive::{run_archive, run_export, ArchiveOptions, ArchiveSummary};
use resi_loader::source::Source;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOADER: &str = env!("CARGO_BIN_EXE_resi-loader");

/// The sample uploads (September 2025) loaded, then three listings reported again now by a new
/// miner: those stay in the active window, the rest leave it.
fn loaded(label: &str) -> TestDatabase {
    let db = TestDatabase::new(label);
    load_into(&db.url, label);
    db
}

/// What [`loaded`] loads, into the database at `url`.
fn load_into(url: &str, label: &str) {
    let uploads = TempDir::new(label);
    copy_uploads_with_upload_times(&fixture("samples/basic"), &uploads.0);
    RT.block_on(load(url, local(&uploads.0)));
    connect(url)
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price)
             SELECT '5Fresh', now(), zpid, price FROM resi.listings ORDER BY zpid LIMIT 3",
        )
        .unwrap();
}

fn ids(url: &str, sql: &str) -> BTreeSet<String> {
    connect(url).query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
}

fn attestation_ids(url: &str) -> BTreeSet<String> {
    ids(url, "SELECT id::text FROM resi.miner_attestations")
}

fn zpids(url: &str) -> BTreeSet<String> {
    ids(url, "SELECT zpid FROM resi.listings")
}

fn batches_of(file: &Path) -> Vec<RecordBatch> {
    let bytes = bytes::Bytes::from(std::fs::read(file).unwrap());
    ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
}

/// Every Parquet file under `dir`, recursively.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(parquet_files(&path));
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The first column of every file under `dir`, as text, with duplicates counted.
fn archived_keys(dir: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for file in parquet_files(dir) {
        for batch in batches_of(&file) {
            let column = batch.column(0);
            if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
                keys.extend(a.iter().map(|v| v.unwrap().to_owned()));
            } else {
                let a = column.as_any().downcast_ref::<Int64Array>().unwrap();
                keys.extend(a.iter().map(|v| v.unwrap().to_string()));
            }
        }
    }
    keys
}

/// The loader's (async) client of `url`.
fn loader_client(url: &str) -> tokio_postgres::Client {
    RT.block_on(resi_loader::db::connect(Some(url))).unwrap()
}

fn options() -> ArchiveOptions {
    ArchiveOptions { older_than: Duration::from_secs(180 * 24 * 3600), batch_rows: 700 }
}

/// Before vs after: what left the database is in the files exactly once, and nothing else is.
fn check_moved(url: &str, out: &Path, zpids_before: &BTreeSet<String>, ids_before: &BTreeSet<String>) {
    let listings = archived_keys(&out.join("archive/listings"));
    let attestations = archived_keys(&out.join("archive/attestations"));
    let listing_set: BTreeSet<String> = listings.iter().cloned().collect();
    let attestation_set: BTreeSet<String> = attestations.iter().cloned().collect();
    assert_eq!(listings.len(), listing_set.len(), "a listing is in two files");
    assert_eq!(attestations.len(), attestation_set.len(), "an attestation is in two files");
    let (zpids_after, ids_after) = (zpids(url), attestation_ids(url));
    assert!(listing_set.is_disjoint(&zpids_after) && attestation_set.is_disjoint(&ids_after));
    assert_eq!(&listing_set.union(&zpids_after).cloned().collect::<BTreeSet<_>>(), zpids_before);
    assert_eq!(&attestation_set.union(&ids_after).cloned().collect::<BTreeSet<_>>(), ids_before);
    // The three listings reported now stay, with the attestations behind their claims.
    assert_eq!(zpids_after.len(), 3);
    let behind_claims = count(url, "SELECT count(DISTINCT attestation_id) FROM resi.miner_claims");
    assert_eq!(ids_after.len() as i64, behind_claims);
    assert_eq!(count(url, "SELECT count(*) FROM resi.archive_batches WHERE status <> 'deleted'"), 0);
}

#[test]
fn archive_moves_what_left_the_window_into_monthly_files_once() {
    let db = loaded("archive_folder");
    let (zpids_before, ids_before) = (zpids(&db.url), attestation_ids(&db.url));
    // One attestation as it was, to compare with its archived row.
    let mut client = connect(&db.url);
    let sample = client
        .query_one(
            "SELECT id, miner_hotkey, price, submission_timestamp FROM resi.miner_attestations
              WHERE miner_hotkey <> '5Fresh' AND NOT EXISTS (SELECT FROM resi.miner_claims c WHERE c.attestation_id = id)
              ORDER BY id LIMIT 1",
            &[],
        )
        .unwrap();
    let out = TempDir::new("archive-out");
    let store = Source::open(out.0.to_str().unwrap()).await_in(&RT);
    let summary = RT.block_on(run_archive(&mut loader_client(&db.url), &store, &options())).unwrap();
    assert_eq!(summary.listings as usize, zpids_before.len() - 3);
    assert!(summary.attestations > 5_000 && summary.batches > 8, "{summary:?}");
    check_moved(&db.url, &out.0, &zpids_before, &ids_before);
    // Monthly partitions of September 2025, one file per batch.
    let files = parquet_files(&out.0);
    assert!(files.iter().all(|f| f.to_string_lossy().contains("/month=2025-09/")), "{files:?}");
    assert_eq!(files.len() as u64, summary.batches);
    // The archived row is the row that was in the database.
    let (id, miner, price): (i64, String, Option<i64>) = (sample.get(0), sample.get(1), sample.get(2));
    let found = files.iter().flat_map(|f| batches_of(f)).find_map(|b| {
        let ids = b.column_by_name("id")?.as_any().downcast_ref::<Int64Array>()?.clone();
        let row = ids.iter().position(|v| v == Some(id))?;
        let miners = b.column_by_name("miner_hotkey").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let prices = b.column_by_name("price").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
        Some((miners.value(row).to_owned(), (!prices.is_null(row)).then(|| prices.value(row))))
    });
    assert_eq!(found, Some((miner, price)));
    // Nothing more to do.
    let again = RT.block_on(run_archive(&mut loader_client(&db.url), &store, &options())).unwrap();
    assert_eq!(again, ArchiveSummary::default());
}

/// Through the coordinator of a Citus cluster (`make test-citus`; skipped without
/// `RESI_TEST_CITUS_URL`), the tables distributed: the archive moves the same listings and as
/// many attestations as on a single node, each into exactly one file, and leaves the same rows.
#[test]
fn archive_on_a_citus_coordinator_moves_what_it_moves_on_a_single_node() {
    let Some(citus) = resi_e2e::CitusDatabase::distributed("archive", 4) else { return };
    load_into(&citus.url, "archive_citus");
    let single = loaded("archive_citus_single");
    let moved: Vec<_> = [&single.url, &citus.url]
        .into_iter()
        .map(|url| {
            let (zpids_before, ids_before) = (zpids(url), attestation_ids(url));
            let out = TempDir::new("archive-citus-out");
            let store = Source::open(out.0.to_str().unwrap()).await_in(&RT);
            let summary = RT.block_on(run_archive(&mut loader_client(url), &store, &options())).unwrap();
            check_moved(url, &out.0, &zpids_before, &ids_before);
            let mut listings = archived_keys(&out.0.join("archive/listings"));
            listings.sort();
            (summary.listings, summary.attestations, listings, zpids(url))
        })
        .collect();
    assert!(moved[0].0 > 0 && moved[0].1 > 0, "{:?}", &moved[0].0);
    assert_eq!(moved[1], moved[0]);
}

/// The same to S3, run by an operator (`resi_admin`).
#[test]
fn archive_to_s3_is_the_same() {
    let db = loaded("archive_s3");
    let (zpids_before, ids_before) = (zpids(&db.url), attestation_ids(&db.url));
    let root = TempDir::new("archive-s3");
    std::fs::create_dir_all(root.0.join("archive-bucket")).unwrap();
    let server = RT.block_on(S3Server::start(&root.0));
    let store = server.source("archive-bucket", "resi");
    // As an operator: a login in resi_admin, which may not delete rows itself.
    db.setup_roles();
    let operator = db.login(Some("resi_admin"));
    let summary = RT.block_on(run_archive(&mut loader_client(&operator.url), &store, &options())).unwrap();
    assert_eq!(summary.listings as usize, zpids_before.len() - 3);
    // s3s-fs keeps the bucket as a folder: the objects are under the prefix.
    check_moved(&db.url, &root.0.join("archive-bucket/resi"), &zpids_before, &ids_before);
}

#[test]
fn a_crash_between_writing_and_deleting_loses_and_duplicates_nothing() {
    let db = loaded("archive_crash");
    let (zpids_before, ids_before) = (zpids(&db.url), attestation_ids(&db.url));
    let out = TempDir::new("archive-crash");
    let archive = |failpoint: Option<&str>| {
        let mut cmd = std::process::Command::new(LOADER);
        cmd.args(["archive", "--older-than", "180days", "--batch-rows", "700", "--to", out.0.to_str().unwrap()])
            .args(["--database-url", &db.url])
            .env("RESI_LOG", "error");
        if let Some(point) = failpoint {
            cmd.env("RESI_ARCHIVE_FAILPOINT", point);
        }
        cmd.output().unwrap()
    };
    // Dies after writing the first file: nothing deleted, the batch still being written.
    let crashed = archive(Some("after_write"));
    assert!(!crashed.status.success(), "{}", String::from_utf8_lossy(&crashed.stderr));
    assert_eq!((zpids(&db.url), attestation_ids(&db.url)), (zpids_before.clone(), ids_before.clone()));
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.archive_batches WHERE status = 'writing'"), 1);
    assert_eq!(parquet_files(&out.0).len(), 1);
    // Writes that batch anew (same file), then dies once it is verified: its rows are still in
    // the database, the file is checked and recorded.
    let crashed = archive(Some("after_verify"));
    assert!(!crashed.status.success());
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.archive_batches WHERE status = 'verified'"), 1);
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.archive_batches WHERE status = 'deleted'"), 0);
    assert_eq!((zpids(&db.url), attestation_ids(&db.url)), (zpids_before.clone(), ids_before.clone()));
    assert_eq!(parquet_files(&out.0).len(), 1);
    // A clean run finishes the job.
    let done = archive(None);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(stdout.contains("(1 resumed)"), "{stdout}");
    check_moved(&db.url, &out.0, &zpids_before, &ids_before);
    let files = parquet_files(&out.0).len() as i64;
    assert_eq!(files, count(&db.url, "SELECT count(*) FROM resi.archive_batches"));
}

#[test]
fn export_writes_a_complete_snapshot_with_a_manifest() {
    let db = loaded("export");
    let out = TempDir::new("export-out");
    let store = Source::open(out.0.to_str().unwrap()).await_in(&RT);
    let summary = RT.block_on(run_export(&mut loader_client(&db.url), &store, 250)).unwrap();
    let listings = count(&db.url, "SELECT count(*) FROM resi.listings WHERE consensus_score IS NOT NULL");
    assert_eq!(summary.listings as i64, listings);
    assert_eq!(summary.files as i64, (listings + 249) / 250);
    let dir = out.0.join(&summary.snapshot);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"], listings);
    let mut total = 0;
    for file in manifest["files"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(file["file"].as_str().unwrap())).unwrap();
        assert_eq!(file["sha256"], resi_core::hash::sha256_hex(&bytes));
        total += file["rows"].as_i64().unwrap();
    }
    assert_eq!(total, listings);
    let zpids = archived_keys(&dir);
    let mut sorted = zpids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(zpids, sorted, "zpid order, each once");
    // The export changed nothing in the database.
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.listings WHERE consensus_score IS NOT NULL"), listings);
}

/// Through the coordinator of a Citus cluster (`make test-citus`; skipped without
/// `RESI_TEST_CITUS_URL`), the tables distributed: the export writes the single node's listings,
/// in the same files and order, every column equal but the time a listing's consensus last
/// changed (each database's own clock).
#[test]
fn export_on_a_citus_coordinator_writes_the_single_nodes_listings() {
    let Some(citus) = resi_e2e::CitusDatabase::distributed("export", 4) else { return };
    load_into(&citus.url, "export_citus");
    let single = loaded("export_citus_single");
    let exported: Vec<_> = [&single.url, &citus.url]
        .into_iter()
        .map(|url| {
            let out = TempDir::new("export-citus-out");
            let store = Source::open(out.0.to_str().unwrap()).await_in(&RT);
            let summary = RT.block_on(run_export(&mut loader_client(url), &store, 250)).unwrap();
            let files: Vec<Vec<String>> =
                parquet_files(&out.0.join(&summary.snapshot)).iter().map(|f| rows_but(f, "last_updated_at")).collect();
            (summary.listings, summary.files, files)
        })
        .collect();
    assert!(exported[0].0 > 0 && exported[0].1 > 1, "{:?}", (exported[0].0, exported[0].1));
    assert_eq!(exported[1], exported[0]);
}

/// Each row of the Parquet file, its columns as text but the one named `left_out`.
fn rows_but(file: &Path, left_out: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches_of(file) {
        let schema = batch.schema();
        // Times as UTC without their zone (arrow displays a named zone only with chrono-tz).
        let kept: Vec<_> = (0..batch.num_columns())
            .filter(|&i| schema.field(i).name() != left_out)
            .map(|i| match batch.column(i).data_type() {
                arrow_schema::DataType::Timestamp(unit, Some(_)) => {
                    arrow_cast::cast(batch.column(i), &arrow_schema::DataType::Timestamp(*unit, None)).unwrap()
                }
                _ => batch.column(i).clone(),
            })
            .collect();
        assert!(kept.len() < batch.num_columns(), "{} has no column {left_out}", file.display());
        for row in 0..batch.num_rows() {
            let values: Vec<String> =
                kept.iter().map(|column| arrow_cast::display::array_value_to_string(column, row).unwrap()).collect();
            rows.push(values.join("|"));
        }
    }
    rows
}

/// `Source::open` from a synchronous test.
trait AwaitIn<T> {
    fn await_in(self, rt: &tokio::runtime::Runtime) -> T;
}

impl<F: std::future::Future<Output = anyhow::Result<Source>>> AwaitIn<Source> for F {
    fn await_in(self, rt: &tokio::runtime::Runtime) -> Source {
        rt.block_on(self).unwrap()
    }
}

/// A listing reported again between its batch's verification and deletion stays in the
/// database; its batch is written anew without it, and nothing is lost or doubled.
#[test]
fn a_listing_reported_again_before_deletion_stays() {
    let db = loaded("archive_again");
    let out = TempDir::new("archive-again");
    let crashed = std::process::Command::new(LOADER)
        .args(["archive", "--older-than", "180days", "--to", out.0.to_str().unwrap(), "--database-url", &db.url])
        .env("RESI_LOG", "error")
        .env("RESI_ARCHIVE_FAILPOINT", "after_verify")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    // The first batch (listings) is verified; one of its listings is reported again now.
    let again: String = connect(&db.url)
        .query_one(
            "WITH one AS (SELECT l.zpid FROM resi.listings l JOIN resi.archivable_listings(now() - interval '180 days') a
                            ON a.zpid = l.zpid ORDER BY l.zpid LIMIT 1)
             INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price)
             SELECT '5Again', now(), zpid, 1 FROM one RETURNING zpid",
            &[],
        )
        .unwrap()
        .get(0);
    let (zpids_before, ids_before) = (zpids(&db.url), attestation_ids(&db.url));
    let store = Source::open(out.0.to_str().unwrap()).await_in(&RT);
    let summary = RT.block_on(run_archive(&mut loader_client(&db.url), &store, &options())).unwrap();
    assert_eq!(summary.resumed, 1);
    assert!(zpids(&db.url).contains(&again), "the listing reported again was archived");
    let listings = archived_keys(&out.0.join("archive/listings"));
    assert!(!listings.contains(&again));
    let archived: BTreeSet<String> = listings.into_iter().collect();
    assert_eq!(archived.union(&zpids(&db.url)).cloned().collect::<BTreeSet<_>>(), zpids_before);
    let attestations: BTreeSet<String> = archived_keys(&out.0.join("archive/attestations")).into_iter().collect();
    assert!(attestations.is_disjoint(&attestation_ids(&db.url)));
    assert_eq!(attestations.union(&attestation_ids(&db.url)).cloned().collect::<BTreeSet<_>>(), ids_before);
}
