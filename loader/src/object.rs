//! One object, loaded in one transaction together with its ledger row.
//!
//! 1. Claim it: `pg_advisory_xact_lock` on key and ETag. When another session holds the claim
//!    (a loader folding the object, or the backend of a killed loader finishing its fold), wait
//!    for it, up to [`CLAIM_WAIT`] (`lock_timeout`); after that the object is left to that
//!    session ([`Outcome::Skipped`]).
//! 2. Re-check the ledger inside the transaction: an object another loader settled meanwhile is
//!    skipped.
//! 3. Ask `resi.admit_submission` whether the miner may submit it: banned or over the day's
//!    allowance, it is deferred without being read, and retried by a later pass.
//! 4. Write the ledger row, set a savepoint and stage the rows ([`crate::staging`]: the fold
//!    runs when the COPY ends).
//! 5. Record the counts and the outcome in the ledger row, commit.
//!
//! A rejected file rolls back to the savepoint and keeps only its ledger row; a source failure
//! (object changed, vanished, unreachable) does too, as deferred. A database failure, or a
//! crash anywhere, rolls back everything of that object, and the next pass loads it again.

use crate::batch::{Stages, NO_ZPID};
use crate::read::Rejection;
use crate::source::{ObjectInfo, ReadError, Source};
use crate::staging::{copy_json, copy_parquet, Counts, Limits, ObjectError, Target};
use anyhow::Result;
use resi_core::keys::{parse_s3_key, UploadKind};
use std::sync::Arc;
use tokio_postgres::{Client, Transaction};

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
    /// Already settled in the ledger, or held by another session for longer than
    /// [`CLAIM_WAIT`].
    Skipped,
}

/// How long a loader waits for an object another session is loading before leaving it to them.
pub const CLAIM_WAIT: &str = "60s";

/// Load one object in one transaction (see the module documentation). Rejections, deferrals
/// and skips are an [`Outcome`], committed with the ledger row; an error is a database failure,
/// and nothing of the object is committed.
pub async fn load_object(
    db: &mut Client,
    source: &Arc<Source>,
    object: &ObjectInfo,
    run_id: i64,
    limits: &Limits,
    stages: &mut Stages,
) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let key = parse_s3_key(&object.key);
    let txn = db.transaction().await?;
    let claim = claim_key(object);
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
        stages.batches += 1;
        return Ok(Outcome::Deferred { reason });
    }
    txn.batch_execute("SAVEPOINT object").await?;
    stages.admit += started.elapsed();
    let copied = std::time::Instant::now();

    let staged: Result<Counts, ObjectError> = match &key {
        _ if object.key.ends_with('/') => Err(Rejection::new("folder_marker", "the key is a folder marker").into()),
        None => Err(Rejection::new("key_layout", "the key does not follow the upload layout").into()),
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
    if staged.is_ok() {
        // Reading and COPY overlap here (the object is streamed): both count as `copy`.
        let fold: Option<String> = txn.query_one("SELECT current_setting('resi_fold.stages', true)", &[]).await?.get(0);
        stages.add_copy(copied.elapsed(), fold.as_deref());
    }
    let closing = std::time::Instant::now();
    let outcome = match staged {
        Ok(counts) if counts.rows_read > 0 && counts.rows_attested == 0 => {
            txn.batch_execute("ROLLBACK TO SAVEPOINT object").await?;
            finish(&txn, ledger_id, "rejected", Some(NO_ZPID), &counts).await?;
            Outcome::Rejected { reason: NO_ZPID.into() }
        }
        Ok(counts) => {
            finish(&txn, ledger_id, "loaded", None, &counts).await?;
            Outcome::Loaded { rows_read: counts.rows_read, rows_attested: counts.rows_attested }
        }
        Err(ObjectError::Rejected(rejection)) => {
            txn.batch_execute("ROLLBACK TO SAVEPOINT object").await?;
            let reason = rejection.to_string();
            finish(&txn, ledger_id, "rejected", Some(&reason), &Counts::default()).await?;
            Outcome::Rejected { reason }
        }
        Err(ObjectError::Source(e)) => {
            txn.batch_execute("ROLLBACK TO SAVEPOINT object").await?;
            let reason = source_reason(e);
            finish(&txn, ledger_id, "deferred", Some(&reason), &Counts::default()).await?;
            Outcome::Deferred { reason }
        }
        Err(ObjectError::Database(e)) => return Err(e),
    };
    txn.commit().await?;
    stages.commit += closing.elapsed();
    stages.batches += 1;
    Ok(outcome)
}

/// What an advisory claim on an object is taken on: its key and ETag.
pub(crate) fn claim_key(object: &ObjectInfo) -> String {
    format!("{}\n{}", object.key, object.etag)
}

/// The ledger's reason for an object deferred because the source failed while it was read.
pub(crate) fn source_reason(e: ReadError) -> String {
    match e {
        ReadError::Changed => "changed_while_reading: the object was overwritten; it is retried next pass".into(),
        ReadError::Vanished => "vanished: the object was deleted while it was read".into(),
        ReadError::Other(e) => format!("source_error: {e:#}"),
    }
}

/// Close the object's ledger row: its status, reason and counts.
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
