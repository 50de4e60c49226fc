//! Staging rows: read an upload (Parquet streamed batch by batch, or read whole when small;
//! epoch JSON whole), refuse it when it holds more rows than allowed, normalise each row and
//! write it with binary COPY into `resi.staging_listings`. When the COPY ends, the extension's
//! statement trigger folds the rows into attestations, claims, listings and the miners' trust,
//! inside the caller's transaction. A large object is streamed in a COPY of its own
//! ([`copy_parquet`], [`copy_json`]); small ones are decoded ahead ([`decode_whole`]) and a
//! batch of them shares one COPY ([`crate::batch`]).
//!
//! Staging fails with an `ObjectError`: the object is rejected, the source failed, or the
//! database failed; the caller ([`crate::object`]) decides what each means for the ledger.

use crate::read::{read_epoch_json, ParquetUpload, Rejection, UploadError};
use crate::source::{ObjectInfo, ReadError, Source};
use bytes::Bytes;
use resi_core::fields::{SqlType, LISTING_FIELDS};
use resi_core::keys::UploadKind;
use resi_core::listing::{normalise, Listing, RawListing, RowIssue};
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
    let mut copy = Copy::start(txn).await?;
    let mut counts = Counts::default();
    while let Some(rows) = upload.next_rows().await? {
        for l in normalise_rows(rows, &mut counts) {
            copy.write(target, record_count, &l).await?;
        }
    }
    copy.finish().await?;
    Ok(counts)
}

/// Stage an epoch JSON upload, read whole (at most [`MAX_JSON_BYTES`]: a larger one is
/// rejected as `too_large`).
pub(crate) async fn copy_json(
    txn: &Transaction<'_>,
    source: &Arc<Source>,
    target: &Target<'_>,
) -> Result<Counts, ObjectError> {
    let rows = read_json(source, target.object).await?;
    check_rows(rows.len() as u64, &target.limits)?;
    let record_count = i32::try_from(rows.len()).ok();
    let mut copy = Copy::start(txn).await?;
    let mut counts = Counts::default();
    for l in normalise_rows(rows, &mut counts) {
        copy.write(target, record_count, &l).await?;
    }
    copy.finish().await?;
    Ok(counts)
}

async fn read_json(source: &Arc<Source>, object: &ObjectInfo) -> Result<Vec<RawListing>, ObjectError> {
    let bytes = match source.read_all(object, MAX_JSON_BYTES).await {
        Ok(b) => b,
        Err(ReadError::Other(e)) if object.size > MAX_JSON_BYTES => {
            return Err(Rejection::new("too_large", format!("{e:#}")).into())
        }
        Err(e) => return Err(e.into()),
    };
    Ok(read_epoch_json(&bytes)?)
}

/// Normalise raw rows, counting what was read and dropped and every row issue.
fn normalise_rows(rows: Vec<RawListing>, counts: &mut Counts) -> Vec<Listing> {
    let mut out = Vec::with_capacity(rows.len());
    for raw in rows {
        counts.rows_read += 1;
        let issues = &mut counts.issues;
        match normalise(raw, &mut |i: RowIssue| *issues.entry(i.code()).or_default() += 1) {
            Some(l) => {
                counts.rows_attested += 1;
                out.push(l);
            }
            None => counts.rows_dropped += 1,
        }
    }
    out
}

/// Objects up to this size are read with one request and decoded in memory.
pub const WHOLE_READ_BYTES: u64 = 32 * 1024 * 1024;

/// An object's rows read whole and normalised, ready for a batch's COPY ([`crate::batch`]).
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub rows: Vec<Listing>,
    pub counts: Counts,
    /// The row count the file holds (Parquet footer, or rows in the JSON document).
    pub record_count: Option<i32>,
}

/// Read an object whole (one request) and normalise its rows, without the database. `None`:
/// the object is larger than [`WHOLE_READ_BYTES`] or holds more than `most_rows` rows, and is
/// to be streamed on its own ([`copy_parquet`], [`copy_json`]). A file refused as a whole is
/// [`ObjectError::Rejected`] (as the streaming path would refuse it); a source failure is
/// [`ObjectError::Source`].
pub(crate) async fn decode_whole(
    source: &Arc<Source>,
    object: &ObjectInfo,
    kind: UploadKind,
    limits: &Limits,
    most_rows: u64,
) -> Result<Option<Decoded>, ObjectError> {
    if object.size > WHOLE_READ_BYTES {
        return Ok(None);
    }
    let mut decoded = Decoded::default();
    match kind {
        UploadKind::Parquet => {
            let whole = if object.size == 0 { Bytes::new() } else { source.read_all(object, WHOLE_READ_BYTES).await? };
            let mut upload = ParquetUpload::open_whole(whole, source.clone(), object.clone()).await?;
            check_rows(upload.rows_in_file, limits)?;
            if upload.rows_in_file > most_rows {
                return Ok(None);
            }
            decoded.record_count = i32::try_from(upload.rows_in_file).ok();
            decoded.rows.reserve(upload.rows_in_file as usize);
            while let Some(rows) = upload.next_rows().await? {
                decoded.rows.extend(normalise_rows(rows, &mut decoded.counts));
            }
        }
        UploadKind::EpochJson => {
            let rows = read_json(source, object).await?;
            check_rows(rows.len() as u64, limits)?;
            if rows.len() as u64 > most_rows {
                return Ok(None);
            }
            decoded.record_count = i32::try_from(rows.len()).ok();
            decoded.rows = normalise_rows(rows, &mut decoded.counts);
        }
    }
    Ok(Some(decoded))
}

/// The staging columns the loader writes, in the order of [`Copy::write`]'s values: the
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

/// One binary COPY into resi.staging_listings: one object's rows, or a batch's. When it ends,
/// the fold trigger folds everything it carried as one statement.
pub(crate) struct Copy {
    writer: std::pin::Pin<Box<BinaryCopyInWriter>>,
}

impl Copy {
    pub(crate) async fn start(txn: &Transaction<'_>) -> Result<Copy, ObjectError> {
        let (columns, types) = staging_columns();
        let sink = txn.copy_in(&format!("COPY resi.staging_listings ({columns}) FROM STDIN (FORMAT binary)")).await?;
        Ok(Copy { writer: Box::pin(BinaryCopyInWriter::new(sink, &types)) })
    }

    /// Write one normalised row of the object `t` (which holds `record_count` rows).
    pub(crate) async fn write(
        &mut self,
        t: &Target<'_>,
        record_count: Option<i32>,
        l: &Listing,
    ) -> Result<(), ObjectError> {
        let scraped_at = l.scraped_at_micros.map(micros_to_time);
        let hash = l.data_hash();
        let values: [&(dyn ToSql + Sync); 23] = [
            &t.ledger_id,
            &t.miner_hotkey,
            &t.submitted,
            &t.job_id,
            &t.object.key,
            &record_count,
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
        Ok(())
    }

    /// End the COPY: the fold trigger runs now, inside the caller's transaction. (Dropping a
    /// `Copy` without finishing aborts the COPY; the caller then rolls back.)
    pub(crate) async fn finish(mut self) -> Result<u64, ObjectError> {
        Ok(self.writer.as_mut().finish().await?)
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
