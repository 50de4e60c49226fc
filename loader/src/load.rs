//! One loader pass: list the source, and load every object not yet in the ledger, each in
//! its own transaction together with its ledger row.
//!
//! Objects are taken oldest first (S3 LastModified, then key), the order the miners submitted
//! them. Per object: claim it (`pg_try_advisory_xact_lock` on key and ETag: a second loader
//! skips it, without waiting), re-check the ledger inside the transaction, ask
//! `resi.admit_submission` whether the miner may submit it (banned or over the day's allowance:
//! the object is deferred, and retried by a later pass), write the ledger row, stream the rows
//! into `resi.staging_listings` with binary COPY (the extension's statement trigger folds them
//! into attestations, claims, listings and the miner's trust when the COPY ends), record the
//! counts, commit. A rejected file rolls back to a savepoint and keeps only its ledger row; a
//! crash anywhere rolls back everything of that object, and the next pass loads it again.
//! After the objects, the pass refreshes a bounded number of listings whose consensus predates
//! a trust change (`resi.refresh_stale_consensus`).

use crate::read::{read_epoch_json, ParquetUpload, Rejection};
use crate::source::{ObjectInfo, ReadError, Source};
use anyhow::{Context, Result};
use resi_core::keys::{parse_s3_key, UploadKind};
use resi_core::listing::{normalise, RawListing, RowIssue};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

/// Epoch JSON documents larger than this are refused (they are one zip code's 4 hours).
pub const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Loaded {
        rows_read: u64,
        rows_attested: u64,
    },
    Rejected {
        reason: String,
    },
    Deferred {
        reason: String,
    },
    /// Already in the ledger, or being loaded by another loader right now.
    Skipped,
}

/// How a pass works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassOptions {
    /// At most this many stale listings are refreshed after the objects (0: none).
    pub refresh_limit: i32,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions { refresh_limit: 10_000 }
    }
}

/// Totals of a pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    pub run_id: i64,
    pub objects_seen: u64,
    pub loaded: u64,
    pub rejected: u64,
    pub deferred: u64,
    pub skipped: u64,
    pub rows_read: u64,
    pub rows_attested: u64,
    /// Stale listings refreshed after the objects.
    pub listings_refreshed: u64,
    pub interrupted: bool,
}

/// Reports progress of a pass (a terminal progress bar, or logs).
pub trait Progress: Send {
    fn start(&mut self, objects: u64, bytes: u64);
    fn object_done(&mut self, object: &ObjectInfo, outcome: &Outcome);
}

const STAGING_COLUMNS: &str =
    "ledger_id, miner_hotkey, submission_timestamp, job_id, s3_file_path, record_count, zpid, \
    uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow, zip_code, city, \
    state, latitude, longitude, scraped_at, data_hash";

const STAGING_TYPES: [Type; 23] = [
    Type::INT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT4,
    Type::FLOAT8,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
];

/// One pass over `source`. `stop` is checked between objects (SIGINT/SIGTERM).
pub async fn run_pass(
    db: &mut Client,
    source: Arc<Source>,
    options: &PassOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<PassSummary> {
    source.check().await?;
    let run_id: i64 = db
        .query_one("INSERT INTO resi.ingest_runs (source) VALUES ($1) RETURNING id", &[&source.describe()])
        .await
        .context("cannot start a run in resi.ingest_runs")?
        .get(0);
    // Runs whose loader died (killed, crashed, its connection lost) stay `running` until a later
    // pass sees their backend gone and marks them interrupted.
    db.execute(
        "UPDATE resi.ingest_runs SET status = 'interrupted', finished_at = coalesce(finished_at, clock_timestamp())
          WHERE status = 'running' AND id <> $1
            AND (backend_pid IS NULL OR backend_pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL))",
        &[&run_id],
    )
    .await?;
    // Staging rows were folded when they were inserted; empty the table unless another loader is busy.
    db.execute("SELECT resi.clear_staging()", &[]).await?;
    let mut result = pass(db, &source, run_id, progress, stop).await;
    if let Ok(summary) = &mut result {
        if !summary.interrupted && options.refresh_limit > 0 {
            let refreshed: i32 = db
                .query_one("SELECT resi.refresh_stale_consensus($1)", &[&options.refresh_limit])
                .await
                .context("cannot refresh the consensus of listings whose miners' trust changed")?
                .get(0);
            summary.listings_refreshed = refreshed as u64;
        }
    }
    let (status, summary) = match &result {
        Ok(s) if s.interrupted => ("interrupted", s.clone()),
        Ok(s) => ("completed", s.clone()),
        Err(_) => ("failed", PassSummary { run_id, ..Default::default() }),
    };
    let _ = db
        .execute(
            "UPDATE resi.ingest_runs SET finished_at = clock_timestamp(), status = $2, objects_seen = $3,
                 objects_loaded = $4, objects_rejected = $5, objects_deferred = $6, objects_skipped = $7, rows_attested = $8
              WHERE id = $1",
            &[
                &run_id,
                &status,
                &(summary.objects_seen as i32),
                &(summary.loaded as i32),
                &(summary.rejected as i32),
                &(summary.deferred as i32),
                &(summary.skipped as i32),
                &(summary.rows_attested as i64),
            ],
        )
        .await;
    result
}

async fn pass(
    db: &mut Client,
    source: &Arc<Source>,
    run_id: i64,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<PassSummary> {
    let objects = source.list().await.with_context(|| format!("cannot list {}", source.describe()))?;
    // What the ledger already settled (loaded or rejected); deferred objects are retried.
    let settled: HashSet<(String, String)> = db
        .query("SELECT object_key, etag FROM resi.ingest_ledger WHERE status <> 'deferred'", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut todo: Vec<&ObjectInfo> =
        objects.iter().filter(|o| !settled.contains(&(o.key.clone(), o.etag.clone()))).collect();
    todo.sort_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)));
    let max_rows: i32 = db
        .query_one("SELECT (resi.ingest_settings()).max_submission_rows", &[])
        .await
        .context("cannot read the resi ingest settings: is resi_pg 0.2.0 installed?")?
        .get(0);
    let limits = Limits { max_rows: max_rows.max(0) as u64 };
    let mut summary = PassSummary { run_id, objects_seen: objects.len() as u64, ..Default::default() };
    summary.skipped = (objects.len() - todo.len()) as u64;
    progress.start(todo.len() as u64, todo.iter().map(|o| o.size).sum());
    for object in todo {
        if stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let outcome = load_with_retry(db, source, object, run_id, &limits).await?;
        match &outcome {
            Outcome::Loaded { rows_read, rows_attested } => {
                summary.loaded += 1;
                summary.rows_read += rows_read;
                summary.rows_attested += rows_attested;
            }
            Outcome::Rejected { .. } => summary.rejected += 1,
            Outcome::Deferred { .. } => summary.deferred += 1,
            Outcome::Skipped => summary.skipped += 1,
        }
        progress.object_done(object, &outcome);
    }
    Ok(summary)
}

/// Load one object, retrying when the database chose this transaction as a deadlock victim
/// or a serialization failure (concurrent loaders folding the same listings).
async fn load_with_retry(
    db: &mut Client,
    source: &Arc<Source>,
    object: &ObjectInfo,
    run_id: i64,
    limits: &Limits,
) -> Result<Outcome> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match load_object(db, source, object, run_id, limits).await {
            Err(e) if attempt < 5 && is_retryable(&e) => {
                tracing::warn!(key = %object.key, attempt, error = %e, "retrying object");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other.with_context(|| format!("loading {}", object.key)),
        }
    }
}

fn is_retryable(e: &anyhow::Error) -> bool {
    e.chain().filter_map(|c| c.downcast_ref::<tokio_postgres::Error>()).any(|e| {
        e.code().is_some_and(|c| {
            *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
        })
    })
}

/// How long a loader waits for an object another session is loading before leaving it to them.
const CLAIM_WAIT: &str = "60s";

/// What an object may hold (from `resi.ingest_settings()`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// More rows than this: rejected as `too_large`.
    pub max_rows: u64,
}

/// Load one object in one transaction. See the module documentation.
pub async fn load_object(
    db: &mut Client,
    source: &Arc<Source>,
    object: &ObjectInfo,
    run_id: i64,
    limits: &Limits,
) -> Result<Outcome> {
    let key = parse_s3_key(&object.key);
    let txn = db.transaction().await?;
    let claim = format!("{}\n{}", object.key, object.etag);
    // Wait for an object another session holds (a loader folding it, or the backend of a
    // killed loader finishing its fold) rather than skip it: skipping would load it in a later
    // pass, out of upload order. After CLAIM_WAIT it is left to that session (skipped).
    let previous_timeout: String = txn.query_one("SELECT current_setting('lock_timeout')", &[]).await?.get(0);
    txn.execute("SELECT set_config('lock_timeout', $1, true)", &[&CLAIM_WAIT]).await?;
    match txn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7151))", &[&claim]).await {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Ok(Outcome::Skipped)
        }
        other => other?,
    };
    txn.execute("SELECT set_config('lock_timeout', $1, true)", &[&previous_timeout]).await?;
    let earlier: Option<(String, Option<String>)> = txn
        .query_opt(
            "SELECT status, reason FROM resi.ingest_ledger WHERE object_key = $1 AND etag = $2",
            &[&object.key, &object.etag],
        )
        .await?
        .map(|r| (r.get(0), r.get(1)));
    if earlier.as_ref().is_some_and(|(status, _)| status != "deferred") {
        return Ok(Outcome::Skipped);
    }
    // Banned, or over the day's allowance: defer without reading the object. An object refused
    // for its allowance before counts as an over-limit attempt only once.
    let refusal: Option<String> = match &key {
        Some(k) if !object.key.ends_with('/') => {
            let first_attempt = !earlier
                .as_ref()
                .and_then(|(_, reason)| reason.as_deref())
                .is_some_and(|r| r.starts_with("rate_limited"));
            txn.query_one(
                "SELECT resi.admit_submission($1, $2, $3)",
                &[&k.miner_hotkey, &object.last_modified, &first_attempt],
            )
            .await?
            .get(0)
        }
        _ => None,
    };
    let kind = key.as_ref().map(|k| k.kind.as_str());
    let ledger_id: i64 = txn
        .query_one(
            "INSERT INTO resi.ingest_ledger (object_key, etag, size, last_modified, kind, miner_hotkey, job_id,
                 declared_rows, status, run_id, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'loaded', $9, clock_timestamp())
             ON CONFLICT (object_key, etag) DO UPDATE SET status = 'loaded', reason = NULL, run_id = excluded.run_id,
                 started_at = excluded.started_at, finished_at = clock_timestamp()
             RETURNING id",
            &[
                &object.key,
                &object.etag,
                &(object.size as i64),
                &object.last_modified,
                &kind,
                &key.as_ref().map(|k| k.miner_hotkey),
                &key.as_ref().and_then(|k| k.job_id),
                &key.as_ref().and_then(|k| k.declared_rows),
                &run_id,
            ],
        )
        .await?
        .get(0);
    if let Some(reason) = refusal {
        finish(&txn, ledger_id, "deferred", Some(&reason), &Counts::default()).await?;
        txn.commit().await?;
        return Ok(Outcome::Deferred { reason });
    }
    txn.batch_execute("SAVEPOINT object").await?;

    let result = match &key {
        _ if object.key.ends_with('/') => Ok(Err(Rejection::new("folder_marker", "the key is a folder marker"))),
        None => Ok(Err(Rejection::new("key_layout", "the key does not follow the upload layout"))),
        Some(k) => {
            let target = Target {
                ledger_id,
                miner_hotkey: k.miner_hotkey,
                job_id: k.job_id,
                object,
                submitted: object.last_modified,
                limits: *limits,
            };
            match k.kind {
                UploadKind::Parquet => copy_parquet(&txn, source, &target).await,
                UploadKind::EpochJson => copy_json(&txn, source, &target).await,
            }
        }
    };
    let outcome = match result {
        Ok(Ok(counts)) if counts.rows_read > 0 && counts.rows_attested == 0 => {
            txn.batch_execute("ROLLBACK TO SAVEPOINT object").await?;
            finish(&txn, ledger_id, "rejected", Some("no_zpid: no row has a zpid or a uri naming one"), &counts)
                .await?;
            Outcome::Rejected { reason: "no_zpid: no row has a zpid or a uri naming one".into() }
        }
        Ok(Ok(counts)) => {
            finish(&txn, ledger_id, "loaded", None, &counts).await?;
            Outcome::Loaded { rows_read: counts.rows_read, rows_attested: counts.rows_attested }
        }
        Ok(Err(rejection)) => {
            txn.batch_execute("ROLLBACK TO SAVEPOINT object").await?;
            let reason = rejection.to_string();
            finish(&txn, ledger_id, "rejected", Some(&reason), &Counts::default()).await?;
            Outcome::Rejected { reason }
        }
        Err(ObjectError::Source(e)) => {
            txn.batch_execute("ROLLBACK TO SAVEPOINT object").await?;
            let reason = match e {
                ReadError::Changed => {
                    "changed_while_reading: the object was overwritten; it is retried next pass".into()
                }
                ReadError::Vanished => "vanished: the object was deleted while it was read".into(),
                ReadError::Other(e) => format!("source_error: {e:#}"),
            };
            finish(&txn, ledger_id, "deferred", Some(&reason), &Counts::default()).await?;
            Outcome::Deferred { reason }
        }
        Err(ObjectError::Database(e)) => return Err(e),
    };
    txn.commit().await?;
    Ok(outcome)
}

async fn finish(
    txn: &Transaction<'_>,
    ledger_id: i64,
    status: &str,
    reason: Option<&str>,
    counts: &Counts,
) -> Result<()> {
    let issues = serde_json::to_string(&counts.issues).expect("a map of counts serialises");
    txn.execute(
        "UPDATE resi.ingest_ledger SET status = $2, reason = $3, rows_read = $4, rows_attested = $5, rows_dropped = $6,
             row_issues = $7::text::jsonb, finished_at = clock_timestamp()
          WHERE id = $1",
        &[
            &ledger_id,
            &status,
            &reason,
            &(counts.rows_read as i64),
            &(counts.rows_attested as i64),
            &(counts.rows_dropped as i64),
            &issues,
        ],
    )
    .await?;
    Ok(())
}

/// Where an object's rows go: its ledger row and the attestation columns it fixes.
struct Target<'a> {
    ledger_id: i64,
    miner_hotkey: &'a str,
    job_id: Option<&'a str>,
    object: &'a ObjectInfo,
    /// The submission time: S3's LastModified (trustworthy), not the name's timestamp.
    submitted: SystemTime,
    limits: Limits,
}

fn too_large(rows: u64, limits: &Limits) -> Option<Rejection> {
    (rows > limits.max_rows).then(|| {
        Rejection::new("too_large", format!("{rows} rows, more than resi.max_submission_rows = {}", limits.max_rows))
    })
}

#[derive(Debug, Default)]
struct Counts {
    rows_read: u64,
    rows_attested: u64,
    rows_dropped: u64,
    issues: BTreeMap<&'static str, u64>,
}

enum ObjectError {
    /// The source failed (changed, vanished, unreachable): retry later.
    Source(ReadError),
    /// The database failed: the pass stops.
    Database(anyhow::Error),
}

impl From<ReadError> for ObjectError {
    fn from(e: ReadError) -> Self {
        ObjectError::Source(e)
    }
}

impl From<tokio_postgres::Error> for ObjectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ObjectError::Database(e.into())
    }
}

type ObjectResult = Result<Result<Counts, Rejection>, ObjectError>;

async fn copy_parquet(txn: &Transaction<'_>, source: &Arc<Source>, target: &Target<'_>) -> ObjectResult {
    let mut upload = match ParquetUpload::open(source.clone(), target.object.clone()).await? {
        Ok(u) => u,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if let Some(rejection) = too_large(upload.rows_in_file, &target.limits) {
        return Ok(Err(rejection));
    }
    let record_count = i32::try_from(upload.rows_in_file).ok();
    let mut copy = Copy::start(txn, target, record_count).await?;
    while let Some(batch) = upload.next_rows().await? {
        match batch {
            Ok(rows) => copy.write_rows(rows).await?,
            Err(rejection) => return Ok(Err(rejection)),
        }
    }
    copy.finish().await
}

async fn copy_json(txn: &Transaction<'_>, source: &Arc<Source>, target: &Target<'_>) -> ObjectResult {
    let bytes = match source.read_all(target.object, MAX_JSON_BYTES).await {
        Ok(b) => b,
        Err(ReadError::Other(e)) if target.object.size > MAX_JSON_BYTES => {
            return Ok(Err(Rejection::new("too_large", format!("{e:#}"))))
        }
        Err(e) => return Err(e.into()),
    };
    let rows = match read_epoch_json(&bytes) {
        Ok(rows) => rows,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if let Some(rejection) = too_large(rows.len() as u64, &target.limits) {
        return Ok(Err(rejection));
    }
    let mut copy = Copy::start(txn, target, i32::try_from(rows.len()).ok()).await?;
    copy.write_rows(rows).await?;
    copy.finish().await
}

/// A binary COPY into resi.staging_listings for one object.
struct Copy<'t> {
    writer: std::pin::Pin<Box<BinaryCopyInWriter>>,
    target: &'t Target<'t>,
    record_count: Option<i32>,
    counts: Counts,
}

impl<'t> Copy<'t> {
    async fn start(
        txn: &Transaction<'_>,
        target: &'t Target<'t>,
        record_count: Option<i32>,
    ) -> Result<Copy<'t>, ObjectError> {
        let sink =
            txn.copy_in(&format!("COPY resi.staging_listings ({STAGING_COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
        let writer = Box::pin(BinaryCopyInWriter::new(sink, &STAGING_TYPES));
        Ok(Copy { writer, target, record_count, counts: Counts::default() })
    }

    async fn write_rows(&mut self, rows: Vec<RawListing>) -> Result<(), ObjectError> {
        let t = self.target;
        for raw in rows {
            self.counts.rows_read += 1;
            let issues = &mut self.counts.issues;
            let Some(l) = normalise(raw, &mut |i: RowIssue| *issues.entry(i.code()).or_default() += 1) else {
                self.counts.rows_dropped += 1;
                continue;
            };
            let scraped_at = l.scraped_at_micros.map(micros_to_time);
            let hash = l.data_hash();
            let values: [&(dyn ToSql + Sync); 23] = [
                &t.ledger_id,
                &t.miner_hotkey,
                &t.submitted,
                &t.job_id,
                &t.object.key,
                &self.record_count,
                &l.zpid,
                &l.uri,
                &l.price,
                &l.address,
                &l.bedrooms,
                &l.bathrooms,
                &l.living_area,
                &l.home_type,
                &l.home_status,
                &l.days_on_zillow,
                &l.zip_code,
                &l.city,
                &l.state,
                &l.latitude,
                &l.longitude,
                &scraped_at,
                &hash,
            ];
            self.writer.as_mut().write(&values).await?;
            self.counts.rows_attested += 1;
        }
        Ok(())
    }

    /// End the COPY: the fold trigger runs now, inside the object's transaction. (Dropping a
    /// `Copy` without finishing aborts the COPY; the caller then rolls back to its savepoint.)
    async fn finish(mut self) -> ObjectResult {
        self.writer.as_mut().finish().await?;
        Ok(Ok(self.counts))
    }
}

fn micros_to_time(micros: i64) -> SystemTime {
    let magnitude = std::time::Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}
