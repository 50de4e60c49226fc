//! One loader pass: open a run in `resi.ingest_runs`, list the source, and load every object
//! the ledger has not settled ([`crate::object::load_object`]), oldest first (S3 LastModified,
//! then key: the order the miners submitted them). After the objects, the pass regroups the
//! miners whose reports are copies of each other (`resi.find_dependent_miners`, when it loaded
//! anything and the extension has it: 0.5.0 and newer), then refreshes a bounded number of listings whose consensus predates a trust or
//! group change (`resi.refresh_stale_consensus`), and closes its run row with the totals.

use crate::batch::{fold_batch, read_batches, Batch, BatchPolicy, Stages};
use crate::object::{load_object, Outcome};
use crate::source::{ObjectInfo, Source};
use crate::staging::Limits;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::Client;

/// How a pass works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassOptions {
    /// At most this many stale listings are refreshed after the objects (0: none).
    pub refresh_limit: i32,
    /// How objects are grouped into transactions and read ahead.
    pub batch: BatchPolicy,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions { refresh_limit: 10_000, batch: BatchPolicy::default() }
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
    /// Miners whose group of dependent miners changed (`resi.find_dependent_miners`).
    pub miners_regrouped: u64,
    pub interrupted: bool,
    /// Where the pass's time went.
    pub stages: Stages,
}

impl PassSummary {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Loaded { rows_read, rows_attested } => {
                self.loaded += 1;
                self.rows_read += rows_read;
                self.rows_attested += rows_attested;
            }
            Outcome::Rejected { .. } => self.rejected += 1,
            Outcome::Deferred { .. } => self.deferred += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// Reports progress of a pass (a terminal progress bar, or logs).
pub trait Progress: Send {
    fn start(&mut self, objects: u64, bytes: u64);
    fn object_done(&mut self, object: &ObjectInfo, outcome: &Outcome);
}

/// One pass over `source`. `stop` is checked between batches (SIGINT/SIGTERM): a stopped pass
/// is `interrupted` and refreshes nothing. Rejected and deferred objects are counted, not
/// errors; an error (the source cannot be reached or listed, the database failed) ends the
/// pass. The run row is closed `completed`, `interrupted` or `failed`, except after an error
/// before the objects or in the refresh: then it stays `running` until a later pass finds this
/// backend gone and marks it `interrupted`.
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
    let mut result = pass(db, &source, run_id, options, progress, stop).await;
    if let Ok(summary) = &mut result {
        if !summary.interrupted && summary.loaded > 0 {
            // Before resi_pg 0.5.0 there are no groups; the loader still fills those databases.
            let has_groups: bool = db
                .query_one(
                    "SELECT to_regprocedure('resi.find_dependent_miners(integer, integer, integer)') IS NOT NULL",
                    &[],
                )
                .await
                .context("cannot look for dependent miners")?
                .get(0);
            if has_groups {
                let regrouped: i32 = db
                    .query_one("SELECT resi.find_dependent_miners()", &[])
                    .await
                    .context("cannot look for dependent miners")?
                    .get(0);
                summary.miners_regrouped = regrouped as u64;
            } else {
                tracing::warn!(
                    "this resi_pg has no resi.find_dependent_miners (0.5.0): miners are not grouped; \
                     run ALTER EXTENSION resi_pg UPDATE"
                );
            }
        }
        if !summary.interrupted && options.refresh_limit > 0 {
            let refreshed: i32 = db
                .query_one("SELECT resi.refresh_stale_consensus($1)", &[&options.refresh_limit])
                .await
                .context("cannot refresh the consensus of listings whose miners' trust changed")?
                .get(0);
            summary.listings_refreshed = refreshed as u64;
        }
    }
    if let Ok(summary) = &result {
        // resi_pg 0.5.0 keeps where the time went; before it there is no such column, and the
        // statement fails harmlessly (outside any transaction).
        let _ = db
            .execute(
                "UPDATE resi.ingest_runs SET stage_seconds = $2::text::jsonb WHERE id = $1",
                &[&run_id, &summary.stages.to_json()],
            )
            .await;
        tracing::info!(stages = %summary.stages.to_json(), "where the pass's time went (seconds)");
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

/// The objects of a pass: list, leave out what the ledger settled (loaded or rejected), load
/// the rest oldest first, in batches read ahead while the database folds ([`crate::batch`]),
/// and count the outcomes.
async fn pass(
    db: &mut Client,
    source: &Arc<Source>,
    run_id: i64,
    options: &PassOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<PassSummary> {
    let listed = Instant::now();
    let objects = source.list().await.with_context(|| format!("cannot list {}", source.describe()))?;
    // What the ledger already settled (loaded or rejected); deferred objects are retried.
    let settled: HashSet<(String, String)> = db
        .query("SELECT object_key, etag FROM resi.ingest_ledger WHERE status <> 'deferred'", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut todo: Vec<ObjectInfo> =
        objects.iter().filter(|o| !settled.contains(&(o.key.clone(), o.etag.clone()))).cloned().collect();
    todo.sort_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)));
    let max_rows: i32 = db
        .query_one("SELECT (resi.ingest_settings()).max_submission_rows", &[])
        .await
        .context("cannot read resi.ingest_settings(): the loader needs resi_pg 0.4.0")?
        .get(0);
    let limits = Limits { max_rows: max_rows.max(0) as u64 };
    // Before resi_pg 0.5.0 the fold judges one submission per statement well but admission
    // cannot count a batch's pending objects: every object is loaded alone.
    let batched: bool = db
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p
                             WHERE p.pronamespace = 'resi'::regnamespace AND p.proname = 'judge_submissions')",
            &[],
        )
        .await?
        .get(0);
    let mut summary = PassSummary { run_id, objects_seen: objects.len() as u64, ..Default::default() };
    summary.skipped = (objects.len() - todo.len()) as u64;
    summary.stages.list = listed.elapsed();
    progress.start(todo.len() as u64, todo.iter().map(|o| o.size).sum());

    let (sender, mut batches) = mpsc::channel(1);
    let reader = if batched && options.batch.max_objects > 1 {
        tokio::spawn(read_batches(source.clone(), todo, options.batch, limits, sender))
    } else {
        tokio::spawn(async move {
            for object in todo {
                if sender.send((Batch::Alone(object), Duration::ZERO)).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut result = Ok(());
    loop {
        let waited = Instant::now();
        let Some((batch, read)) = batches.recv().await else { break };
        summary.stages.waiting_for_reads += waited.elapsed();
        summary.stages.read += read;
        if stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let done = load_with_retry(db, source, &batch, run_id, &limits, &mut summary.stages).await;
        match done {
            Ok(done) => {
                for (object, outcome) in batch.objects().zip(done) {
                    summary.count(&outcome);
                    progress.object_done(object, &outcome);
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(batches);
    let _ = reader.await;
    result.map(|()| summary)
}

/// Load a batch (or one object alone), retrying it (up to 5 attempts) when the database chose
/// its transaction as a deadlock victim or hit a serialization failure (concurrent loaders
/// folding the same listings). A failed attempt rolled everything of it back. The outcome of
/// each object, in order.
async fn load_with_retry(
    db: &mut Client,
    source: &Arc<Source>,
    batch: &Batch,
    run_id: i64,
    limits: &Limits,
    stages: &mut Stages,
) -> Result<Vec<Outcome>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match batch {
            Batch::Alone(object) => load_object(db, source, object, run_id, limits, stages).await.map(|o| vec![o]),
            Batch::Objects(items) => fold_batch(db, items, run_id, limits, stages).await,
        };
        match result {
            Err(e) if attempt < 5 && is_retryable(&e) => {
                tracing::warn!(batch = %batch.describe(), attempt, error = %e, "retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => return other.with_context(|| format!("loading {}", batch.describe())),
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
