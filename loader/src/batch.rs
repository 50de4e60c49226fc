//! Batches: many objects folded in one transaction, read ahead while the database folds.
//!
//! A pass ([`crate::pass`]) sends its objects, oldest first, through two stages that overlap:
//!
//! 1. **Read ahead** ([`read_batches`], a task of its own): up to [`BatchPolicy::read_ahead`]
//!    objects are fetched and decoded at once (one request each for objects up to
//!    [`WHOLE_READ_BYTES`](crate::staging::WHOLE_READ_BYTES)), kept in upload order and
//!    grouped into batches. A batch closes after [`BatchPolicy::max_objects`] objects or
//!    [`BatchPolicy::max_rows`] rows, and holds uploads within [`BatchPolicy::max_span`] of its
//!    first; it never depends on timing. An object with more rows than a
//!    batch holds (or larger than [`WHOLE_READ_BYTES`](crate::staging::WHOLE_READ_BYTES)) travels alone and is streamed as
//!    before ([`crate::object::load_object`]). One batch waits while another folds: the
//!    loader's memory is bounded by about three batches.
//! 2. **Fold** ([`fold_batch`]): one transaction per batch. Each object is claimed, checked
//!    against the ledger and admitted as when it was loaded alone, with its own ledger row and
//!    verdict; the rows of every admitted object go in one COPY, whose statement trigger folds
//!    them at once (each touched listing's consensus once, every submission judged in one
//!    statement: `sql/fold.sql`); the ledger rows get their counts; commit. A crash or a
//!    database failure rolls back the whole batch, and the next pass loads it again: every row
//!    is counted exactly once.
//!
//! An object is read before it is admitted (that is what reading ahead means): the objects of a
//! banned or rate-limited miner are still deferred, unread by the database, and read again when
//! a later pass admits them.

use crate::object::{claim_key, source_reason, Outcome, CLAIM_WAIT};
use crate::source::{ObjectInfo, ReadError, Source};
use crate::staging::{decode_whole, Copy, Counts, Decoded, Limits, ObjectError, Target};
use anyhow::{Context, Result};
use futures::StreamExt;
use resi_core::keys::{parse_s3_key, S3Key};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_postgres::Client;

/// When a batch closes, and how far the loader reads ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Objects per batch (1: every object in its own transaction).
    pub max_objects: usize,
    /// Rows per batch; an object with more rows is loaded alone, streamed.
    pub max_rows: u64,
    /// A batch holds objects uploaded within this span of its first (S3 LastModified): a
    /// backlog folds in batches of uploads close in time, as the network made them. A span of
    /// upload time, not of wall-clock time, so where batches end never depends on timing.
    pub max_span: Duration,
    /// Objects fetched and decoded at once.
    pub read_ahead: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy { max_objects: 1000, max_rows: 50_000, max_span: Duration::from_secs(2 * 3600), read_ahead: 16 }
    }
}

/// Where a pass's time went, summed over its batches and objects. `read` is the readers' busy
/// time (they overlap each other and the fold); `waiting_for_reads` is the time the fold sat
/// idle waiting for the next batch. The fold's three steps come from the trigger
/// (`resi_fold.stages`); `copy` is the rest of the COPY (sending and storing rows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    pub list: Duration,
    pub read: Duration,
    pub waiting_for_reads: Duration,
    /// Claims, ledger checks, admission and ledger rows.
    pub admit: Duration,
    pub copy: Duration,
    pub attest_and_claim: Duration,
    pub consensus: Duration,
    pub judgement: Duration,
    /// Closing the ledger rows and committing.
    pub commit: Duration,
    pub batches: u64,
}

impl Stages {
    /// Add a COPY's time, split by the fold's own report of its steps (the JSON of
    /// `resi_fold.stages`; absent before resi_pg 0.5.0: all of it counts as `copy`).
    pub(crate) fn add_copy(&mut self, total: Duration, fold: Option<&str>) {
        let step = |v: &serde_json::Value, name: &str| {
            Duration::from_secs_f64(v.get(name).and_then(|s| s.as_f64()).unwrap_or(0.0).max(0.0))
        };
        let (attest, consensus, judgement) = match fold.and_then(|f| serde_json::from_str(f).ok()) {
            Some(v) => (step(&v, "attest_and_claim"), step(&v, "consensus"), step(&v, "judgement")),
            None => Default::default(),
        };
        self.attest_and_claim += attest;
        self.consensus += consensus;
        self.judgement += judgement;
        self.copy += total.saturating_sub(attest + consensus + judgement);
    }

    /// The stages as a JSON object of seconds (what `resi.ingest_runs.stage_seconds` keeps).
    pub fn to_json(&self) -> String {
        let s = |d: Duration| (d.as_secs_f64() * 1e4).round() / 1e4;
        serde_json::json!({
            "list": s(self.list),
            "read": s(self.read),
            "waiting_for_reads": s(self.waiting_for_reads),
            "admit": s(self.admit),
            "copy": s(self.copy),
            "attest_and_claim": s(self.attest_and_claim),
            "consensus": s(self.consensus),
            "judgement": s(self.judgement),
            "commit": s(self.commit),
            "batches": self.batches,
        })
        .to_string()
    }
}

/// An object read ahead of its fold.
pub(crate) enum Prepared {
    /// Read and normalised: folded in a batch's COPY.
    Decoded { object: ObjectInfo, decoded: Decoded },
    /// Refused as a whole before any row was staged: `Ok` rejected (the file or its key), `Err`
    /// the source failed (deferred). Still admitted first, as a loaded object is: a banned
    /// miner's broken file is deferred, not rejected.
    Refused { object: ObjectInfo, verdict: Result<String, String>, counts: Counts },
}

impl Prepared {
    fn object(&self) -> &ObjectInfo {
        match self {
            Prepared::Decoded { object, .. } | Prepared::Refused { object, .. } => object,
        }
    }

    fn rows(&self) -> u64 {
        match self {
            Prepared::Decoded { decoded, .. } => decoded.rows.len() as u64,
            Prepared::Refused { .. } => 0,
        }
    }
}

/// What the reader hands the fold.
pub(crate) enum Batch {
    /// Objects folded together in one transaction.
    Objects(Vec<Prepared>),
    /// One object streamed in a transaction of its own.
    Alone(ObjectInfo),
}

impl Batch {
    pub(crate) fn objects(&self) -> Box<dyn Iterator<Item = &ObjectInfo> + '_> {
        match self {
            Batch::Objects(items) => Box::new(items.iter().map(Prepared::object)),
            Batch::Alone(object) => Box::new(std::iter::once(object)),
        }
    }

    /// For logs and errors: the object, or the batch's size and first object.
    pub(crate) fn describe(&self) -> String {
        match self {
            Batch::Alone(object) => object.key.clone(),
            Batch::Objects(items) => format!(
                "{} and the {} objects after it (one batch)",
                items.first().map_or("", |p| p.object().key.as_str()),
                items.len().saturating_sub(1)
            ),
        }
    }
}

/// Read `objects` ahead (see the module documentation) and send them as batches, in order,
/// with the readers' busy time. Where a batch ends depends only on the objects and the policy
/// (never on timing), so a pass that is killed and rerun folds the same batches as one that
/// was not: the rerun starts where the first batch that did not commit started. Stops when
/// the receiver is dropped.
pub(crate) async fn read_batches(
    source: Arc<Source>,
    objects: Vec<ObjectInfo>,
    policy: BatchPolicy,
    limits: Limits,
    batches: mpsc::Sender<(Batch, Duration)>,
) {
    // Objects are read `read_ahead` at a time and taken in upload order. When the source
    // fails (a network or server error, not one object changed or gone), the objects read
    // ahead of the failed one are read again one at a time: none of them is folded before an
    // older upload the source could not serve, unless the source recovered for it.
    let read = |object: ObjectInfo| {
        let source = source.clone();
        async move {
            let started = Instant::now();
            let (p, source_failed) = prepare(&source, object, &limits, policy.max_rows).await;
            (p, source_failed, started.elapsed())
        }
    };
    let mut waiting: std::collections::VecDeque<ObjectInfo> = objects.into();
    let mut in_flight: std::collections::VecDeque<ObjectInfo> = Default::default();
    let mut reads = futures::stream::FuturesOrdered::new();
    let mut ahead = policy.read_ahead.max(1);
    let mut batch: Vec<Prepared> = Vec::new();
    let mut rows = 0u64;
    let mut busy = Duration::ZERO;
    loop {
        while reads.len() < ahead {
            let Some(object) = waiting.pop_front() else { break };
            in_flight.push_back(object.clone());
            reads.push_back(read(object));
        }
        let Some((item, source_failed, took)) = reads.next().await else { break };
        in_flight.pop_front();
        busy += took;
        if source_failed && ahead > 1 {
            ahead = 1;
            reads = futures::stream::FuturesOrdered::new();
            while let Some(object) = in_flight.pop_back() {
                waiting.push_front(object);
            }
        }
        let object = match &item {
            Ok(p) => p.object(),
            Err(object) => object,
        };
        let spans_too_long = batch.first().is_some_and(|first: &Prepared| {
            object.last_modified.duration_since(first.object().last_modified).unwrap_or_default() > policy.max_span
        });
        if !batch.is_empty() && (item.is_err() || spans_too_long) {
            rows = 0;
            if batches.send((Batch::Objects(std::mem::take(&mut batch)), std::mem::take(&mut busy))).await.is_err() {
                return;
            }
        }
        match item {
            Err(object) => {
                if batches.send((Batch::Alone(object), std::mem::take(&mut busy))).await.is_err() {
                    return;
                }
            }
            Ok(p) => {
                rows += p.rows();
                batch.push(p);
                if batch.len() >= policy.max_objects || rows >= policy.max_rows {
                    rows = 0;
                    let full = Batch::Objects(std::mem::take(&mut batch));
                    if batches.send((full, std::mem::take(&mut busy))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.send((Batch::Objects(batch), busy)).await;
    }
}

/// Read and decode one object for a batch; `Err(object)`: it is to be streamed alone. True
/// with it when the source itself failed (not the object: changed or gone).
async fn prepare(
    source: &Arc<Source>,
    object: ObjectInfo,
    limits: &Limits,
    max_rows: u64,
) -> (Result<Prepared, ObjectInfo>, bool) {
    let refused =
        |object, reason: &str| Prepared::Refused { object, verdict: Ok(reason.into()), counts: Counts::default() };
    if object.key.ends_with('/') {
        return (Ok(refused(object, "folder_marker: the key is a folder marker")), false);
    }
    let Some(kind) = parse_s3_key(&object.key).map(|k| k.kind) else {
        return (Ok(refused(object, "key_layout: the key does not follow the upload layout")), false);
    };
    let prepared = match decode_whole(source, &object, kind, limits, max_rows).await {
        Ok(None) => Err(object),
        Ok(Some(decoded)) if decoded.counts.rows_read > 0 && decoded.counts.rows_attested == 0 => {
            Ok(Prepared::Refused { object, verdict: Ok(NO_ZPID.into()), counts: decoded.counts })
        }
        Ok(Some(decoded)) => Ok(Prepared::Decoded { object, decoded }),
        Err(ObjectError::Rejected(r)) => Ok(refused(object, &r.to_string())),
        Err(ObjectError::Source(e)) => {
            let source_failed = matches!(e, ReadError::Other(_));
            let deferred = Prepared::Refused { object, verdict: Err(source_reason(e)), counts: Counts::default() };
            return (Ok(deferred), source_failed);
        }
        // Reading does not touch the database; stream it alone if it ever did.
        Err(ObjectError::Database(_)) => Err(object),
    };
    (prepared, false)
}

/// The reason of an object none of whose rows has a zpid.
pub(crate) const NO_ZPID: &str = "no_zpid: no row has a zpid or a uri naming one";

/// The UTC day of a time, as days since 1970-01-01: what admission counts per.
fn utc_day(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -(e.duration().as_secs().div_ceil(86_400) as i64),
    }
}

/// Fold one batch in one transaction (see the module documentation); the outcome of each of
/// its objects, in order. An error is a database failure: nothing of the batch is committed.
pub(crate) async fn fold_batch(
    db: &mut Client,
    items: &[Prepared],
    run_id: i64,
    limits: &Limits,
    stages: &mut Stages,
) -> Result<Vec<Outcome>> {
    let started = Instant::now();
    let txn = db.transaction().await?;
    let n = items.len();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];

    // 1. Claim every object: at once where no other session holds it; an object another
    //    session holds is waited for, up to CLAIM_WAIT, then left to it (skipped).
    let claims: Vec<String> = items.iter().map(|p| claim_key(p.object())).collect();
    let free: Vec<bool> = txn
        .query_one(
            "SELECT array_agg(pg_try_advisory_xact_lock(hashtextextended(c, 7151)) ORDER BY n)
               FROM unnest($1::text[]) WITH ORDINALITY AS u(c, n)",
            &[&claims],
        )
        .await?
        .get(0);
    if free.iter().any(|f| !f) {
        let previous_timeout: String = txn.query_one("SELECT current_setting('lock_timeout')", &[]).await?.get(0);
        for (i, claim) in claims.iter().enumerate().filter(|(i, _)| !free[*i]) {
            txn.batch_execute("SAVEPOINT claim").await?;
            txn.execute("SELECT set_config('lock_timeout', $1, true)", &[&CLAIM_WAIT]).await?;
            match txn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7151))", &[claim]).await {
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                    txn.batch_execute("ROLLBACK TO SAVEPOINT claim").await?;
                    outcomes[i] = Some(Outcome::Skipped);
                }
                other => {
                    other?;
                    txn.execute("SELECT set_config('lock_timeout', $1, true)", &[&previous_timeout]).await?;
                    txn.batch_execute("RELEASE SAVEPOINT claim").await?;
                }
            }
        }
    }

    // 2. The ledger, inside the transaction: an object another loader settled meanwhile is
    //    skipped; one refused for its allowance before counts as an over-limit attempt once.
    let keys: Vec<&str> = items.iter().map(|p| p.object().key.as_str()).collect();
    let etags: Vec<&str> = items.iter().map(|p| p.object().etag.as_str()).collect();
    let mut first_attempt = vec![true; n];
    for row in txn
        .query(
            "SELECT u.n::integer - 1, l.status, l.reason
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(object_key, etag, n)
               JOIN resi.ingest_ledger l ON l.object_key = u.object_key AND l.etag = u.etag",
            &[&keys, &etags],
        )
        .await?
    {
        let (i, status, reason): (i32, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
        let i = i as usize;
        if status != "deferred" {
            outcomes[i].get_or_insert(Outcome::Skipped);
        }
        first_attempt[i] = !reason.is_some_and(|r| r.starts_with("rate_limited"));
    }

    // Each object's key, parsed once (None: not the upload layout).
    let parsed: Vec<Option<S3Key>> = items.iter().map(|p| parse_s3_key(&p.object().key)).collect();

    // 3. Admission, in upload order: a miner's objects of one day earlier in this batch count
    //    against its allowance (`pending`) before the fold counts them.
    let mut admit: Vec<usize> = Vec::new();
    let (mut hotkeys, mut times, mut firsts, mut pendings) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut pending: HashMap<(&str, i64), i32> = HashMap::new();
    for (i, p) in items.iter().enumerate() {
        if outcomes[i].is_some() || p.object().key.ends_with('/') {
            continue;
        }
        let Some(key) = &parsed[i] else { continue };
        let day = pending.entry((key.miner_hotkey, utc_day(p.object().last_modified))).or_default();
        admit.push(i);
        hotkeys.push(key.miner_hotkey);
        times.push(p.object().last_modified);
        firsts.push(first_attempt[i]);
        pendings.push(*day);
        if matches!(p, Prepared::Decoded { .. }) {
            *day += 1;
        }
    }
    let mut refusals: Vec<Option<String>> = vec![None; n];
    if !admit.is_empty() {
        for row in txn
            .query(
                "SELECT u.n::integer - 1, resi.admit_submission(u.hotkey, u.at, u.first_attempt, u.pending)
                   FROM (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::boolean[], $4::integer[])
                                       WITH ORDINALITY AS u(hotkey, at, first_attempt, pending, n)
                          ORDER BY n OFFSET 0) u",
                &[&hotkeys, &times, &firsts, &pendings],
            )
            .await?
        {
            let j: i32 = row.get(0);
            refusals[admit[j as usize]] = row.get(1);
        }
    }

    // 4. A ledger row for every object this batch settles.
    let settle: Vec<usize> = (0..n).filter(|&i| outcomes[i].is_none()).collect();
    let mut ledger_ids = vec![0i64; n];
    if !settle.is_empty() {
        let object = |i: &usize| items[*i].object();
        let key = |i: &usize| parsed[*i].as_ref();
        let keys: Vec<&str> = settle.iter().map(|i| object(i).key.as_str()).collect();
        let etags: Vec<&str> = settle.iter().map(|i| object(i).etag.as_str()).collect();
        let sizes: Vec<i64> = settle.iter().map(|i| object(i).size as i64).collect();
        let modified: Vec<SystemTime> = settle.iter().map(|i| object(i).last_modified).collect();
        let kinds: Vec<Option<&str>> = settle.iter().map(|i| key(i).map(|k| k.kind.as_str())).collect();
        let miners: Vec<Option<&str>> = settle.iter().map(|i| key(i).map(|k| k.miner_hotkey)).collect();
        let jobs: Vec<Option<&str>> = settle.iter().map(|i| key(i).and_then(|k| k.job_id)).collect();
        let declared: Vec<Option<i32>> = settle.iter().map(|i| key(i).and_then(|k| k.declared_rows)).collect();
        for row in txn
            .query(
                "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[],
                                                 $6::text[], $7::text[], $8::integer[])
                                            WITH ORDINALITY AS u(object_key, etag, size, last_modified, kind,
                                                                 miner_hotkey, job_id, declared_rows, n)),
                      written AS (
                        INSERT INTO resi.ingest_ledger AS g (object_key, etag, size, last_modified, kind, miner_hotkey,
                                                              job_id, declared_rows, status, run_id, started_at)
                        SELECT u.object_key, u.etag, u.size, u.last_modified, u.kind, u.miner_hotkey, u.job_id,
                               u.declared_rows, 'loaded', $9, clock_timestamp()
                          FROM u ORDER BY u.n
                        ON CONFLICT (object_key, etag) DO UPDATE SET status = 'loaded', reason = NULL,
                            run_id = excluded.run_id, started_at = excluded.started_at, finished_at = clock_timestamp()
                        RETURNING g.id, g.object_key, g.etag)
                 SELECT u.n::integer - 1, w.id FROM u JOIN written w USING (object_key, etag)",
                &[&keys, &etags, &sizes, &modified, &kinds, &miners, &jobs, &declared, &run_id],
            )
            .await?
        {
            let j: i32 = row.get(0);
            ledger_ids[settle[j as usize]] = row.get(1);
        }
    }
    stages.admit += started.elapsed();

    // 5. One COPY with the rows of every admitted object: the fold runs when it ends.
    let copied = Instant::now();
    let mut copy: Option<Copy> = None;
    for &i in &settle {
        let (Prepared::Decoded { object, decoded }, None) = (&items[i], &refusals[i]) else { continue };
        let key = parsed[i].as_ref().expect("a decoded object's key follows the layout");
        let target = Target {
            ledger_id: ledger_ids[i],
            miner_hotkey: key.miner_hotkey,
            job_id: key.job_id,
            object,
            submitted: object.last_modified,
            limits: *limits,
        };
        if copy.is_none() {
            copy = Some(Copy::start(&txn).await.map_err(database)?);
        }
        let writer = copy.as_mut().expect("started above");
        for row in &decoded.rows {
            writer.write(&target, decoded.record_count, row).await.map_err(database)?;
        }
    }
    if let Some(copy) = copy {
        copy.finish().await.map_err(database)?;
        let fold: Option<String> = txn.query_one("SELECT current_setting('resi_fold.stages', true)", &[]).await?.get(0);
        stages.add_copy(copied.elapsed(), fold.as_deref());
        // A miner the fold banned (low quality) has its later objects of the batch left out,
        // their ledger rows deferred with the ban (resi.penalise_submissions).
        let copied_ids: Vec<i64> = settle.iter().filter(|&&i| refusals[i].is_none()).map(|&i| ledger_ids[i]).collect();
        for row in txn
            .query(
                "SELECT id, reason FROM resi.ingest_ledger WHERE id = ANY ($1) AND status = 'deferred'",
                &[&copied_ids],
            )
            .await?
        {
            let (id, reason): (i64, String) = (row.get(0), row.get(1));
            if let Some(i) = ledger_ids.iter().position(|&l| l == id) {
                outcomes[i] = Some(Outcome::Deferred { reason });
            }
        }
    }

    // 6. Close the ledger rows with their verdicts and counts, and commit.
    let closing = Instant::now();
    let (mut ids, mut statuses, mut reasons, mut read, mut attested, mut dropped, mut issues) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let open: Vec<usize> = settle.iter().copied().filter(|&i| outcomes[i].is_none()).collect();
    for i in open {
        let none = Counts::default();
        let (outcome, status, reason, counts) = match (&items[i], &refusals[i]) {
            (_, Some(reason)) => {
                (Outcome::Deferred { reason: reason.clone() }, "deferred", Some(reason.clone()), &none)
            }
            (Prepared::Decoded { decoded, .. }, None) => (
                Outcome::Loaded { rows_read: decoded.counts.rows_read, rows_attested: decoded.counts.rows_attested },
                "loaded",
                None,
                &decoded.counts,
            ),
            (Prepared::Refused { verdict: Ok(reason), counts, .. }, None) => {
                (Outcome::Rejected { reason: reason.clone() }, "rejected", Some(reason.clone()), counts)
            }
            (Prepared::Refused { verdict: Err(reason), .. }, None) => {
                (Outcome::Deferred { reason: reason.clone() }, "deferred", Some(reason.clone()), &none)
            }
        };
        ids.push(ledger_ids[i]);
        statuses.push(status);
        reasons.push(reason);
        read.push(counts.rows_read as i64);
        attested.push(counts.rows_attested as i64);
        dropped.push(counts.rows_dropped as i64);
        issues.push(serde_json::to_string(&counts.issues).expect("a map of counts serialises"));
        outcomes[i] = Some(outcome);
    }
    if !ids.is_empty() {
        txn.execute(
            "UPDATE resi.ingest_ledger g SET status = u.status, reason = u.reason, rows_read = u.rows_read,
                 rows_attested = u.rows_attested, rows_dropped = u.rows_dropped, row_issues = u.row_issues::jsonb,
                 finished_at = clock_timestamp()
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
                    AS u(id, status, reason, rows_read, rows_attested, rows_dropped, row_issues)
              WHERE g.id = u.id",
            &[&ids, &statuses, &reasons, &read, &attested, &dropped, &issues],
        )
        .await?;
    }
    txn.commit().await.context("committing a batch")?;
    stages.commit += closing.elapsed();
    stages.batches += 1;
    Ok(outcomes.into_iter().map(|o| o.expect("every object of a batch has an outcome")).collect())
}

/// A COPY that failed failed in the database: reading was done before the batch began.
fn database(e: ObjectError) -> anyhow::Error {
    match e {
        ObjectError::Database(e) => e,
        ObjectError::Rejected(r) => anyhow::anyhow!("a decoded row was refused: {r}"),
        ObjectError::Source(e) => anyhow::anyhow!("the source failed during a batch's COPY: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_count_from_1970_on_both_sides() {
        let day = |s: i64| {
            utc_day(if s >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64)
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
            })
        };
        assert_eq!(day(0), 0);
        assert_eq!(day(86_399), 0);
        assert_eq!(day(86_400), 1);
        assert_eq!(day(-1), -1);
        assert_eq!(day(-86_400), -1);
        assert_eq!(day(-86_401), -2);
    }

    #[test]
    fn a_fold_report_splits_the_copy_time_and_a_missing_one_counts_as_copy() {
        let mut stages = Stages::default();
        stages.add_copy(
            Duration::from_secs(10),
            Some(r#"{"attest_and_claim": 2, "consensus": 3.5, "judgement": 1, "rows": 5}"#),
        );
        assert_eq!(stages.attest_and_claim, Duration::from_secs(2));
        assert_eq!(stages.consensus, Duration::from_millis(3500));
        assert_eq!(stages.judgement, Duration::from_secs(1));
        assert_eq!(stages.copy, Duration::from_millis(3500));
        stages.add_copy(Duration::from_secs(1), None);
        assert_eq!(stages.copy, Duration::from_millis(4500));
        assert!(stages.to_json().contains("\"consensus\":3.5"));
    }
}
