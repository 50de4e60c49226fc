//! `resi-loader export`: a snapshot of the consensus as the open dataset. Writes
//! `export/snapshot=YYYY-MM-DDTHH-MM-SSZ/listings-NNNNN.parquet` (the consensus listings in zpid
//! order, `--batch-rows` a file, all read in one repeatable-read transaction) and then
//! `manifest.json` (files, rows, SHA-256 each): a snapshot without a manifest is incomplete and
//! is ignored by readers.

use crate::columns::{listing_columns, parquet_of, select_list};
use crate::source::Source;
use anyhow::{ensure, Result};
use bytes::Bytes;
use resi_core::hash::sha256_hex;
use tokio_postgres::Client;

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
