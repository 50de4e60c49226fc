//! Staging one object's rows: read the upload (Parquet streamed batch by batch, epoch JSON
//! whole), refuse it when it holds more rows than allowed, normalise each row and write it with
//! binary COPY into `resi.staging_listings`. When the COPY ends, the extension's statement
//! trigger folds the rows into attestations, claims, listings and the miner's trust, inside the
//! caller's transaction.
//!
//! Staging fails with an `ObjectError`: the object is rejected, the source failed, or the
//! database failed; the caller ([`crate::object`]) decides what each means for the ledger.

use crate::read::{read_epoch_json, ParquetUpload, Rejection, UploadError};
use crate::source::{ObjectInfo, ReadError, Source};
use resi_core::fields::{SqlType, LISTING_FIELDS};
use resi_core::listing::{normalise, RawListing, RowIssue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

/// Epoch JSON documents larger than this are refused (they are one zip code's 4 hours).
pub const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// What an object may hold (from `resi.ingest_settings()`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// More rows than this: rejected as `too_large`.
    pub max_rows: u64,
}

/// Why an object's rows were not staged.
#[derive(Debug)]
pub(crate) enum ObjectError {
    /// The file is refused as a whole: the object is rejected.
    Rejected(Rejection),
    /// The source failed (changed, vanished, unreachable): the object is retried later.
    Source(ReadError),
    /// The database failed: nothing of the object is committed (the pass retries a deadlock or
    /// serialization failure, and otherwise stops).
    Database(anyhow::Error),
}

impl From<Rejection> for ObjectError {
    fn from(r: Rejection) -> Self {
        ObjectError::Rejected(r)
    }
}

impl From<ReadError> for ObjectError {
    fn from(e: ReadError) -> Self {
        ObjectError::Source(e)
    }
}

impl From<UploadError> for ObjectError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Rejected(r) => ObjectError::Rejected(r),
            UploadError::Source(e) => ObjectError::Source(e),
        }
    }
}

impl From<tokio_postgres::Error> for ObjectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ObjectError::Database(e.into())
    }
}

/// Where an object's rows go: its ledger row and the attestation columns it fixes.
pub(crate) struct Target<'a> {
    pub ledger_id: i64,
    pub miner_hotkey: &'a str,
    pub job_id: Option<&'a str>,
    pub object: &'a ObjectInfo,
    /// The submission time: S3's LastModified (trustworthy), not the name's timestamp.
    pub submitted: SystemTime,
    pub limits: Limits,
}

/// What staging an object did: rows read, written to staging (attested) and dropped by
/// [`normalise`], with the count of each row issue.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub rows_read: u64,
    pub rows_attested: u64,
    pub rows_dropped: u64,
    pub issues: BTreeMap<&'static str, u64>,
}

/// `too_large` when `rows` is more than the limit allows.
fn check_rows(rows: u64, limits: &Limits) -> Result<(), Rejection> {
    if rows > limits.max_rows {
        return Err(Rejection::new(
            "too_large",
            format!("{rows} rows, more than resi.max_submission_rows = {}", limits.max_rows),
        ));
    }
    Ok(())
}

/// Stage a Parquet upload, streamed batch by batch. Its row count (from the footer) is checked
/// before any row is read.
pub(crate) async fn copy_parquet(
    txn: &Transaction<'_>,
    source: &Arc<Source>,
    target: &Target<'_>,
) -> Result<Counts, ObjectError> {
    let mut upload = ParquetUpload::open(source.clone(), target.object.clone()).await?;
    check_rows(upload.rows_in_file, &target.limits)?;
    let record_count = i32::try_from(upload.rows_in_file).ok();
    let mut copy = Copy::start(txn, target, record_count).await?;
    while let Some(rows) = upload.next_rows().await? {
        copy.write_rows(rows).await?;
    }
    copy.finish().await
}

/// Stage an epoch JSON upload, read whole (at most [`MAX_JSON_BYTES`]: a larger one is
/// rejected as `too_large`).
pub(crate) async fn copy_json(
    txn: &Transaction<'_>,
    source: &Arc<Source>,
    target: &Target<'_>,
) -> Result<Counts, ObjectError> {
    let bytes = match source.read_all(target.object, MAX_JSON_BYTES).await {
        Ok(b) => b,
        Err(ReadError::Other(e)) if target.object.size > MAX_JSON_BYTES => {
            return Err(Rejection::new("too_large", format!("{e:#}")).into())
        }
        Err(e) => return Err(e.into()),
    };
    let rows = read_epoch_json(&bytes)?;
    check_rows(rows.len() as u64, &target.limits)?;
    let mut copy = Copy::start(txn, target, i32::try_from(rows.len()).ok()).await?;
    copy.write_rows(rows).await?;
    copy.finish().await
}

/// The staging columns the loader writes, in the order of [`Copy::write_rows`]' values: the
/// object's bookkeeping, the zpid, the listing's fields (`resi_core::fields::LISTING_FIELDS`),
/// the scrape time and the row's hash.
fn staging_columns() -> (String, Vec<Type>) {
    let mut names =
        vec!["ledger_id", "miner_hotkey", "submission_timestamp", "job_id", "s3_file_path", "record_count", "zpid"];
    let mut types = vec![Type::INT8, Type::TEXT, Type::TIMESTAMPTZ, Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT];
    for field in LISTING_FIELDS {
        names.push(field.name);
        types.push(match field.sql_type {
            SqlType::Text => Type::TEXT,
            SqlType::Bigint => Type::INT8,
            SqlType::Integer => Type::INT4,
            SqlType::Double => Type::FLOAT8,
        });
    }
    names.extend(["scraped_at", "data_hash"]);
    types.extend([Type::TIMESTAMPTZ, Type::TEXT]);
    (names.join(", "), types)
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
        let (columns, types) = staging_columns();
        let sink = txn.copy_in(&format!("COPY resi.staging_listings ({columns}) FROM STDIN (FORMAT binary)")).await?;
        let writer = Box::pin(BinaryCopyInWriter::new(sink, &types));
        Ok(Copy { writer, target, record_count, counts: Counts::default() })
    }

    /// Normalise and write `rows`; a row [`normalise`] drops is counted, not written.
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
    async fn finish(mut self) -> Result<Counts, ObjectError> {
        self.writer.as_mut().finish().await?;
        Ok(self.counts)
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
