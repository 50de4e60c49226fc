//! `resi-loader archive` and `resi-loader export`: rows out of the active window moved to
//! Parquet, and snapshots of the consensus as the open dataset.
//!
//! **Archive** (per kind, listings first, then attestations; per month; `--batch-rows` rows a
//! file), each batch through the ledger `resi.archive_batches`:
//! Runs as `resi_admin` (or any role that may read the tables and call the
//! `resi.archive_batch_*` functions, which do the writing).
//!
//! 1. `resi.archive_batch_begin` → the batch id and its key
//!    `archive/{kind}/month=YYYY-MM/batch-NNNNNNNN.parquet`;
//! 2. select the archivable rows (`resi.archivable_listings/attestations(cutoff)`), write them
//!    as Parquet, PUT the file whole, GET it back: its SHA-256 must equal the bytes written, and
//!    its rows decode to exactly the keys selected;
//! 3. `resi.archive_batch_verified(rows, sha256)`;
//! 4. `resi.archive_batch_delete(keys read back from the file)`: deletes exactly those rows and
//!    marks the batch deleted, in one transaction.
//!
//! A crash anywhere leaves each batch `writing` (rows still in the database: the next run
//! writes the file anew, same key) or `verified` (the next run reads the file back, checks its
//! SHA-256 and deletes its rows) or `deleted` (done). So every row ends in exactly one file and
//! the database keeps none of them.
//!
//! **Export** writes `export/snapshot=YYYY-MM-DDTHH-MM-SSZ/listings-NNNNN.parquet` (the
//! consensus listings in zpid order, `--batch-rows` a file) and then `manifest.json` (files,
//! rows, SHA-256 each): a snapshot without a manifest is incomplete and is ignored by readers.

use crate::source::Source;
use anyhow::{bail, ensure, Context, Result};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use resi_core::hash::sha256_hex;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::{Client, Row};

/// What to archive.
#[derive(Clone, Debug)]
pub struct ArchiveOptions {
    /// The active window: rows older than this leave the database.
    pub older_than: Duration,
    /// Rows per file (and per delete transaction).
    pub batch_rows: i64,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub batches: u64,
    pub listings: u64,
    pub attestations: u64,
    /// Batches an earlier, interrupted run left, finished by this one.
    pub resumed: u64,
}

impl ArchiveSummary {
    /// One more batch of `kind`, of `rows` rows.
    fn add(&mut self, kind: Kind, rows: u64) {
        self.batches += 1;
        match kind {
            Kind::Listings => self.listings += rows,
            Kind::Attestations => self.attestations += rows,
        }
    }
}

/// A column of an archive or export file: its name and the type it is read from SQL as.
#[derive(Clone, Copy)]
enum Column {
    Text(&'static str),
    Int(&'static str),
    Float(&'static str),
    Bool(&'static str),
    Time(&'static str),
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Text(n) | Column::Int(n) | Column::Float(n) | Column::Bool(n) | Column::Time(n) => n,
        }
    }

    fn field(self) -> Field {
        let data_type = match self {
            Column::Text(_) => DataType::Utf8,
            Column::Int(_) => DataType::Int64,
            Column::Float(_) => DataType::Float64,
            Column::Bool(_) => DataType::Boolean,
            Column::Time(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        };
        Field::new(self.name(), data_type, true)
    }

    /// The SQL that reads the column as this type from alias `t`.
    fn select(self) -> String {
        match self {
            Column::Text(n) => format!("t.{n}::text"),
            Column::Int(n) => format!("t.{n}::bigint"),
            Column::Float(n) => format!("t.{n}::float8"),
            Column::Bool(n) => format!("t.{n}"),
            Column::Time(n) => format!("t.{n}"),
        }
    }
}

/// The fields every reported row and every listing has, in table order.
const FIELDS: [Column; 14] = [
    Column::Text("uri"),
    Column::Int("price"),
    Column::Text("address"),
    Column::Int("bedrooms"),
    Column::Float("bathrooms"),
    Column::Int("living_area"),
    Column::Text("home_type"),
    Column::Text("home_status"),
    Column::Int("days_on_zillow"),
    Column::Text("zip_code"),
    Column::Text("city"),
    Column::Text("state"),
    Column::Float("latitude"),
    Column::Float("longitude"),
];

fn listing_columns() -> Vec<Column> {
    let mut c = vec![Column::Text("zpid")];
    c.extend(FIELDS);
    c.extend([
        Column::Float("consensus_score"),
        Column::Int("total_attestations"),
        Column::Int("unique_miners_count"),
        Column::Int("voting_miners"),
        Column::Time("first_seen_at"),
        Column::Time("last_updated_at"),
        Column::Text("field_consensus"),
    ]);
    c
}

fn attestation_columns() -> Vec<Column> {
    let mut c = vec![
        Column::Int("id"),
        Column::Text("miner_hotkey"),
        Column::Int("miner_uid"),
        Column::Text("zpid"),
        Column::Time("submission_timestamp"),
        Column::Text("job_id"),
        Column::Text("s3_file_path"),
        Column::Int("record_count"),
        Column::Text("data_hash"),
        Column::Bool("is_validated"),
        Column::Time("validation_timestamp"),
        Column::Float("validation_score"),
    ];
    c.extend(FIELDS);
    c.push(Column::Time("scraped_at"));
    c
}

fn select_list(columns: &[Column]) -> String {
    columns.iter().map(|c| c.select()).collect::<Vec<_>>().join(", ")
}

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Rows (read with [`Column::select`]) as one Parquet file.
fn parquet_of(rows: &[Row], columns: &[Column]) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(columns.iter().map(|c| c.field()).collect::<Vec<_>>()));
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let array: ArrayRef = match column {
            Column::Text(_) => {
                let mut b = StringBuilder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<&str>>(i)));
                Arc::new(b.finish())
            }
            Column::Int(_) => {
                let mut b = Int64Builder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<i64>>(i)));
                Arc::new(b.finish())
            }
            Column::Float(_) => {
                let mut b = Float64Builder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<f64>>(i)));
                Arc::new(b.finish())
            }
            Column::Bool(_) => {
                let mut b = BooleanBuilder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<bool>>(i)));
                Arc::new(b.finish())
            }
            Column::Time(_) => {
                let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<SystemTime>>(i).map(micros)));
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// The keys of a Parquet file written by [`parquet_of`]: its first column, text or integer.
enum Keys {
    Zpids(Vec<String>),
    Ids(Vec<i64>),
}

fn keys_of(bytes: Bytes) -> Result<Keys> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let (mut zpids, mut ids) = (Vec::new(), Vec::new());
    for batch in reader {
        let column = batch?.column(0).clone();
        if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
            ensure!(a.null_count() == 0, "a key is NULL");
            zpids.extend(a.iter().flatten().map(str::to_owned));
        } else if let Some(a) = column.as_any().downcast_ref::<Int64Array>() {
            ensure!(a.null_count() == 0, "a key is NULL");
            ids.extend(a.iter().flatten());
        } else {
            bail!("the first column is neither text nor bigint");
        }
    }
    Ok(if ids.is_empty() { Keys::Zpids(zpids) } else { Keys::Ids(ids) })
}

/// Read `key` back and check it is `sha256`; its keys.
async fn read_back(store: &Source, key: &str, sha256: &str) -> Result<Keys> {
    let bytes = store.get(key).await?;
    let found = sha256_hex(&bytes);
    ensure!(found == sha256, "{key} reads back as SHA-256 {found}, not the {sha256} written");
    keys_of(bytes).with_context(|| format!("{key} does not decode"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Listings,
    Attestations,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Listings => "listings",
            Kind::Attestations => "attestations",
        }
    }
}

/// Test hook: `RESI_ARCHIVE_FAILPOINT=after_write|after_verify` ends the process (as a crash
/// would) right after a batch's file is written / verified, before its rows are deleted.
fn failpoint(point: &str) {
    if std::env::var("RESI_ARCHIVE_FAILPOINT").as_deref() == Ok(point) {
        eprintln!("resi-loader: failpoint {point}: exiting");
        std::process::abort();
    }
}

/// A row of `resi.archive_batches`: what one file holds.
struct Batch {
    id: i64,
    kind: Kind,
    month: String,
    cutoff: SystemTime,
    key: String,
}

/// A new batch of `kind` for `month`, archived: write, verify, delete. Returns the rows
/// archived (0: none were left).
async fn archive_batch(
    db: &mut Client,
    store: &Source,
    kind: Kind,
    month: &str,
    cutoff: SystemTime,
    batch_rows: i64,
) -> Result<u64> {
    let begun = db
        .query_one(
            "SELECT batch, object_key FROM resi.archive_batch_begin($1, $2::text::date, $3)",
            &[&kind.name(), &month, &cutoff],
        )
        .await?;
    let batch = Batch { id: begun.get(0), kind, month: month.to_owned(), cutoff, key: begun.get(1) };
    settle_batch(db, store, &batch, None, batch_rows).await
}

/// Take a batch to `deleted`: write and verify its file (unless `verified` already holds the
/// keys its file was checked to hold), then delete those rows. When some row stopped being
/// archivable meanwhile (a listing reported again), the file is written anew from what is
/// archivable now (a few attempts). A batch that finds no rows is dropped. Returns the rows.
async fn settle_batch(
    db: &mut Client,
    store: &Source,
    batch: &Batch,
    mut verified: Option<Keys>,
    batch_rows: i64,
) -> Result<u64> {
    for _ in 0..3 {
        let keys = match verified.take() {
            Some(keys) => keys,
            None => match write_batch(db, store, batch, batch_rows).await? {
                Some(keys) => keys,
                None => {
                    db.execute("SELECT resi.archive_batch_discard($1)", &[&batch.id]).await?;
                    return Ok(0);
                }
            },
        };
        let (zpids, ids): (Option<Vec<String>>, Option<Vec<i64>>) = match (batch.kind, keys) {
            (Kind::Listings, Keys::Zpids(z)) => (Some(z), None),
            (Kind::Attestations, Keys::Ids(i)) => (None, Some(i)),
            _ => bail!("{} holds keys of another kind", batch.key),
        };
        let deleted: Option<i64> =
            db.query_one("SELECT resi.archive_batch_delete($1, $2, $3)", &[&batch.id, &zpids, &ids]).await?.get(0);
        match deleted {
            Some(deleted) => return Ok(deleted as u64),
            None => tracing::info!(batch = batch.id, key = batch.key, "rows changed before deletion; writing anew"),
        }
    }
    bail!("{}: its rows keep changing; left for the next run", batch.key)
}

/// Select the batch's rows, write its file, read it back, mark it verified. Returns the keys
/// the file holds, or `None` when no row is archivable.
async fn write_batch(db: &mut Client, store: &Source, batch: &Batch, batch_rows: i64) -> Result<Option<Keys>> {
    let (columns, sql) = match batch.kind {
        Kind::Listings => {
            let columns = listing_columns();
            let sql = format!(
                "SELECT {} FROM resi.listings t JOIN resi.archivable_listings($1) a ON a.zpid = t.zpid
                  WHERE a.month = $2::text::date ORDER BY t.zpid LIMIT $3",
                select_list(&columns)
            );
            (columns, sql)
        }
        Kind::Attestations => {
            let columns = attestation_columns();
            let sql = format!(
                "SELECT {} FROM resi.miner_attestations t JOIN resi.archivable_attestations($1) a ON a.id = t.id
                  WHERE a.month = $2::text::date ORDER BY t.id LIMIT $3",
                select_list(&columns)
            );
            (columns, sql)
        }
    };
    let rows = db.query(&sql, &[&batch.cutoff, &batch.month, &batch_rows]).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let key = &batch.key;
    let bytes = parquet_of(&rows, &columns)?;
    let sha256 = sha256_hex(&bytes);
    store.put(key, bytes).await?;
    failpoint("after_write");
    let keys = read_back(store, key, &sha256).await?;
    let expected = rows.len();
    let found = match &keys {
        Keys::Zpids(z) => {
            ensure!(z.iter().zip(&rows).all(|(z, r)| z == r.get::<_, &str>(0)), "{key} holds other listings");
            z.len()
        }
        Keys::Ids(i) => {
            ensure!(i.iter().zip(&rows).all(|(i, r)| *i == r.get::<_, i64>(0)), "{key} holds other attestations");
            i.len()
        }
    };
    ensure!(found == expected, "{key} reads back {found} rows, not the {expected} written");
    db.execute("SELECT resi.archive_batch_verified($1, $2, $3)", &[&batch.id, &(expected as i64), &sha256]).await?;
    failpoint("after_verify");
    Ok(Some(keys))
}

/// Move what left the active window to `store`, resuming what an interrupted run left.
pub async fn run_archive(db: &mut Client, store: &Source, options: &ArchiveOptions) -> Result<ArchiveSummary> {
    ensure!(options.batch_rows > 0, "--batch-rows must be positive");
    let mut summary = ArchiveSummary::default();
    // Batches an earlier run left: verified ones are re-checked and deleted; those still being
    // written are written anew (their rows are all still in the database).
    let unfinished = db
        .query(
            "SELECT id, kind, month::text, cutoff, object_key, status, sha256 FROM resi.archive_batches
              WHERE status <> 'deleted' ORDER BY id",
            &[],
        )
        .await?;
    for b in unfinished {
        let kind = if b.get::<_, &str>(1) == "listings" { Kind::Listings } else { Kind::Attestations };
        let batch = Batch { id: b.get(0), kind, month: b.get(2), cutoff: b.get(3), key: b.get(4) };
        let verified = match (b.get::<_, &str>(5), b.get::<_, Option<&str>>(6)) {
            ("verified", Some(sha256)) => Some(read_back(store, &batch.key, sha256).await?),
            _ => None,
        };
        let rows = settle_batch(db, store, &batch, verified, options.batch_rows).await?;
        if rows > 0 {
            summary.resumed += 1;
            summary.add(kind, rows);
        }
    }
    let window = i64::try_from(options.older_than.as_secs()).context("--older-than is too long")?;
    let cutoff: SystemTime = db.query_one("SELECT now() - make_interval(secs => $1::bigint)", &[&window]).await?.get(0);
    for kind in [Kind::Listings, Kind::Attestations] {
        let months: Vec<String> = db
            .query(
                &format!("SELECT DISTINCT month::text FROM resi.archivable_{}($1) ORDER BY 1", kind.name()),
                &[&cutoff],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for month in months {
            loop {
                let rows = archive_batch(db, store, kind, &month, cutoff, options.batch_rows)
                    .await
                    .with_context(|| format!("archiving {} of {month}", kind.name()))?;
                if rows == 0 {
                    break;
                }
                summary.add(kind, rows);
                if rows < options.batch_rows as u64 {
                    break;
                }
            }
        }
    }
    Ok(summary)
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    pub snapshot: String,
    pub files: u64,
    pub listings: u64,
}

/// A full snapshot of the consensus listings under `export/snapshot=…/`, manifest last.
pub async fn run_export(db: &mut Client, store: &Source, batch_rows: i64) -> Result<ExportSummary> {
    ensure!(batch_rows > 0, "--batch-rows must be positive");
    let columns = listing_columns();
    let txn = db.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await?;
    let taken: String =
        txn.query_one("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24-MI-SS\"Z\"')", &[]).await?.get(0);
    let snapshot = format!("export/snapshot={taken}");
    let sql = format!(
        "SELECT {} FROM resi.listings t WHERE t.consensus_score IS NOT NULL AND ($1::text IS NULL OR t.zpid > $1)
          ORDER BY t.zpid LIMIT $2",
        select_list(&columns)
    );
    let mut after: Option<String> = None;
    let mut files = Vec::new();
    let mut listings = 0u64;
    loop {
        let rows = txn.query(&sql, &[&after, &batch_rows]).await?;
        if rows.is_empty() {
            break;
        }
        after = Some(rows.last().expect("not empty").get::<_, String>(0));
        let bytes = parquet_of(&rows, &columns)?;
        let sha256 = sha256_hex(&bytes);
        let name = format!("listings-{:05}.parquet", files.len());
        store.put(&format!("{snapshot}/{name}"), bytes).await?;
        listings += rows.len() as u64;
        files.push(serde_json::json!({"file": name, "rows": rows.len(), "sha256": sha256}));
    }
    txn.commit().await?;
    let manifest = serde_json::json!({
        "snapshot": taken,
        "table": "listings",
        "rows": listings,
        "files": files,
        "columns": columns.iter().map(|c| c.name()).collect::<Vec<_>>(),
    });
    store.put(&format!("{snapshot}/manifest.json"), Bytes::from(serde_json::to_vec_pretty(&manifest)?)).await?;
    Ok(ExportSummary { snapshot, files: files.len() as u64, listings })
}
