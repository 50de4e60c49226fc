//! `resi-loader archive`: rows out of the active window moved to Parquet files.
//!
//! Runs as `resi_admin` (or any role that may read the tables and call the
//! `resi.archive_batch_*` functions, which do the writing). Per kind (listings first, then
//! attestations), per month, `--batch-rows` rows a file, each batch through the ledger
//! `resi.archive_batches`:
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
//! The export lives in [`crate::export`]; it is re-exported here, where it used to be.

use crate::columns::{attestation_columns, keys_of, listing_columns, parquet_of, select_list, Keys};
use crate::source::Source;
use anyhow::{bail, ensure, Context, Result};
use resi_core::hash::sha256_hex;
use std::time::{Duration, SystemTime};
use tokio_postgres::Client;

pub use crate::export::{run_export, ExportSummary};

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
