//! `resi-loader status` and the summary line of a pass.

use crate::load::PassSummary;
use anyhow::Result;
use std::fmt::Write as _;
use tokio_postgres::Client;

pub fn summary_line(s: &PassSummary) -> String {
    format!(
        "run {}: {} objects seen, {} loaded, {} rejected, {} deferred, {} skipped; {} rows read, {} attested; \
         {} stale listings refreshed{}",
        s.run_id,
        s.objects_seen,
        s.loaded,
        s.rejected,
        s.deferred,
        s.skipped,
        s.rows_read,
        s.rows_attested,
        s.listings_refreshed,
        if s.interrupted { " (interrupted: the rest is loaded by the next pass)" } else { "" }
    )
}

/// The ledger's headline, the last run, rejections by reason, and per-miner counts.
pub async fn report(db: &Client) -> Result<String> {
    let mut out = String::new();
    let totals = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'loaded'), count(*) FILTER (WHERE status = 'rejected'),
                    count(*) FILTER (WHERE status = 'deferred'), coalesce(sum(rows_read), 0)::bigint,
                    coalesce(sum(rows_attested), 0)::bigint,
                    (SELECT count(*) FROM resi.listings), (SELECT count(*) FROM resi.miner_attestations)
               FROM resi.ingest_ledger",
            &[],
        )
        .await?;
    let n = |i: usize| totals.get::<_, i64>(i);
    writeln!(out, "objects: {} loaded, {} rejected, {} deferred", n(0), n(1), n(2))?;
    writeln!(out, "rows: {} read, {} attested; {} listings, {} attestations", n(3), n(4), n(5), n(6))?;
    if let Some(run) = db
        .query_opt(
            "SELECT id, source, status, started_at::text, coalesce(finished_at::text, '-'), objects_loaded,
                    objects_rejected, objects_deferred, rows_attested
               FROM resi.ingest_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await?
    {
        writeln!(
            out,
            "last run: #{} {} from {}, started {}, finished {}: {} loaded, {} rejected, {} deferred, {} rows",
            run.get::<_, i64>(0),
            run.get::<_, String>(2),
            run.get::<_, String>(1),
            run.get::<_, String>(3),
            run.get::<_, String>(4),
            run.get::<_, i32>(5),
            run.get::<_, i32>(6),
            run.get::<_, i32>(7),
            run.get::<_, i64>(8),
        )?;
    }
    let reasons = db
        .query(
            "SELECT split_part(reason, ':', 1) AS code, count(*) FROM resi.ingest_ledger
              WHERE status <> 'loaded' GROUP BY 1 ORDER BY 2 DESC, 1",
            &[],
        )
        .await?;
    if !reasons.is_empty() {
        writeln!(out, "not loaded, by reason:")?;
        for r in reasons {
            writeln!(out, "  {:<28} {}", r.get::<_, String>(0), r.get::<_, i64>(1))?;
        }
    }
    let miners = db
        .query(
            "SELECT coalesce(miner_hotkey, '(no hotkey)'), count(*) FILTER (WHERE status = 'loaded'),
                    count(*) FILTER (WHERE status = 'rejected'), count(*) FILTER (WHERE status = 'deferred'),
                    coalesce(sum(rows_attested), 0)::bigint
               FROM resi.ingest_ledger GROUP BY 1 ORDER BY 5 DESC, 1",
            &[],
        )
        .await?;
    writeln!(out, "per miner:                                          loaded rejected deferred       rows")?;
    for m in miners {
        writeln!(
            out,
            "  {:<48} {:>8} {:>8} {:>8} {:>10}",
            m.get::<_, String>(0),
            m.get::<_, i64>(1),
            m.get::<_, i64>(2),
            m.get::<_, i64>(3),
            m.get::<_, i64>(4)
        )?;
    }
    Ok(out)
}
