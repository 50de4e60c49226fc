//! `resi-loader status` and the summary line of a pass.

use crate::pass::PassSummary;
use anyhow::{Context, Result};
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

/// The ledger's headline, the last run, rejections by reason, per-miner counts and trust, and
/// the consensus health: the headline of the monitoring views (resi_pg 0.4.0).
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
            "SELECT coalesce(g.miner_hotkey, '(no hotkey)'), g.objects_loaded, g.objects_rejected, g.objects_deferred,
                    g.rows_attested::bigint, coalesce(round(t.trust_score::numeric, 3)::text, '-'),
                    CASE WHEN t.banned_until IS NOT NULL THEN 'banned' ELSE '' END
               FROM resi.ingest_by_miner g LEFT JOIN resi.miner_leaderboard t ON t.miner_hotkey = g.miner_hotkey
              ORDER BY t.rank NULLS LAST, 5 DESC, 1",
            &[],
        )
        .await
        .context("resi-loader status reads the monitoring views of resi_pg 0.4.0: ALTER EXTENSION resi_pg UPDATE")?;
    writeln!(out, "per miner (by trust):                               loaded rejected deferred       rows  trust")?;
    for m in miners {
        let line = format!(
            "  {:<48} {:>8} {:>8} {:>8} {:>10} {:>6} {}",
            m.get::<_, String>(0),
            m.get::<_, i64>(1),
            m.get::<_, i64>(2),
            m.get::<_, i64>(3),
            m.get::<_, i64>(4),
            m.get::<_, String>(5),
            m.get::<_, String>(6),
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    let bands: Vec<String> = db
        .query("SELECT band, listings, round(100 * coalesce(share, 0), 1)::text FROM resi.consensus_health", &[])
        .await?
        .iter()
        .map(|r| format!("{} {} ({}%)", r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, String>(2)))
        .collect();
    writeln!(out, "consensus confidence: {}", bands.join(", "))?;
    let disputed: Vec<String> = db
        .query(
            "SELECT field, disagreeing_listings, contested_listings FROM resi.field_disagreement
              WHERE disagreeing_listings > 0 LIMIT 3",
            &[],
        )
        .await?
        .iter()
        .map(|r| format!("{} ({} of {})", r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)))
        .collect();
    if !disputed.is_empty() {
        writeln!(out, "most disputed fields (listings not unanimous): {}", disputed.join(", "))?;
    }
    if let Some(z) = db
        .query_opt("SELECT count(*), min(last_updated_at)::text FROM resi.zip_freshness HAVING count(*) > 0", &[])
        .await?
    {
        writeln!(
            out,
            "freshness: {} zip codes, the stalest last changed {}",
            z.get::<_, i64>(0),
            z.get::<_, String>(1)
        )?;
    }
    Ok(out)
}
