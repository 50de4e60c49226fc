//! 8. The loader's peak memory (max RSS, from `wait4`'s rusage) on one large file and on one
//!    twice as large, written as pyarrow writes them (row groups of 1,048,576 rows).
//!
//! The loader streams an object's rows into `resi.staging_listings` with one binary COPY; the
//! fold runs when the COPY ends, inside the server, while the loader only waits. Folding a
//! million rows takes far longer than the time budget, so once the server has received every
//! row (`pg_stat_progress_copy.tuples_processed`) and a few more seconds have passed, the
//! loader is killed and the database dropped (its transaction rolls back): the loader's
//! memory has peaked by then, since it holds nothing more while the server folds. A loader
//! that finishes on its own is measured the same way.

use crate::db::{self, Cluster};
use crate::generate;
use crate::ingest::loader_command;
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::Bench;
use anyhow::{bail, Context, Result};
use std::process::Stdio;
use std::time::{Duration, Instant};

const DATABASE: &str = "resi_bench_memory";
/// pyarrow's default row group size (`pyarrow.parquet.write_table`, pandas' `to_parquet`).
const ROW_GROUP_ROWS: usize = 1_048_576;
/// How long to keep watching after the server has every row.
const AFTER_STREAMED: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(900);

pub fn run(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let sizes = [bench.size(1_000_000), bench.size(2_000_000)];
    let mut sides = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let folder = bench.work.join(format!("memory-{size}"));
        let upload = generate::single(bench.seed ^ 0x4d, i, 30_000_000, size, 0);
        bench.log(format!("8. loader memory: generating one file of {size} rows"));
        let path = generate::write_parquet(&folder, bench.seed ^ 0x4d, &upload, ROW_GROUP_ROWS)?;
        let bytes = std::fs::metadata(&path)?.len();
        let mut peaks = Vec::new();
        let mut streaming = Vec::new();
        for run in 1..=bench.runs {
            let (peak_mib, streamed) = peak(bench, cluster, &folder.to_string_lossy(), size)?;
            bench.log(format!(
                "8. loader memory, {size} rows, run {run}/{}: peak RSS {peak_mib:.0} MiB, rows streamed in {:.1} s",
                bench.runs,
                streamed.as_secs_f64()
            ));
            peaks.push(peak_mib);
            streaming.push(streamed.as_secs_f64());
        }
        std::fs::remove_dir_all(&folder)?;
        let side = Side::new(
            format!("`resi-loader run`, one {}-row file ({:.0} MiB)", thousands(size), bytes as f64 / 1048576.0),
            Stats::of(&peaks),
            Unit::MiB,
        );
        sides.push((size, side, Stats::of(&streaming)));
    }
    let [(small, small_side, small_streaming), (large, large_side, large_streaming)] =
        <[_; 2]>::try_from(sides).map_err(|_| anyhow::anyhow!("two sizes"))?;
    rows.push(Row {
        measurement: "8. loader peak RSS, 1st file".into(),
        size: format!("{} rows", thousands(small)),
        ratio: small_side.stats.median / 256.0,
        ratio_meaning: "of 256 MiB",
        subject: small_side.clone(),
        baseline: None,
        target: Target::AtMost(1.0),
        notes: vec![format!(
            "8: peak RSS is the loader process's `VmHWM` (the kernel's peak resident set, polled every 100 ms until it exits or is stopped). Files of {small} and {large} rows, row groups of \
             {ROW_GROUP_ROWS} rows (pyarrow's default), loaded with `--refresh-limit 0` and \
             `resi.max_submission_rows` raised; the loader is stopped {} s after the server has received every row \
             (streaming took {:.1} s and {:.1} s, medians): the fold of that many rows does not fit the time \
             budget, and the loader only waits while the server folds. Targets: each peak ≤ 256 MiB (1st row: \
             peak / 256 MiB), and about the same for both files (2nd row: read as ≤ 1.1× the 1st file's peak; \
             the 2nd file's peak is {:.0} MiB = {:.2}× of 256 MiB). The issue's sizes are 1M and 5M rows.",
            AFTER_STREAMED.as_secs(),
            small_streaming.median,
            large_streaming.median,
            large_side.stats.median,
            large_side.stats.median / 256.0
        )],
    });
    rows.push(Row {
        measurement: "8. loader peak RSS, 2nd file".into(),
        size: format!("{} rows", thousands(large)),
        ratio: large_side.stats.median / small_side.stats.median,
        ratio_meaning: "of the 1st file's",
        subject: large_side,
        baseline: Some(Side::new(format!("the {}-row file", thousands(small)), small_side.stats, Unit::MiB)),
        target: Target::AtMost(1.1),
        notes: Vec::new(),
    });
    Ok(())
}

/// Run the loader on `source` (one file of `rows` rows) into a fresh database and return its
/// peak RSS in MiB and how long it took until the server had every row.
fn peak(bench: &Bench, cluster: &mut Cluster, source: &str, rows: usize) -> Result<(f64, Duration)> {
    let url = cluster.fresh_database(DATABASE, true)?;
    cluster.admin().batch_execute(&format!("ALTER DATABASE {DATABASE} SET resi.max_submission_rows = 2147483647"))?;
    let mut monitor = db::connect(&url)?;
    let mut command = loader_command(&bench.loader, &url, source);
    let log = bench.work.join("loader-memory.log");
    command.args(["--refresh-limit", "0"]).stdout(Stdio::null()).stderr(std::fs::File::create(&log)?);
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("run {}", bench.loader.display()))?;
    let pid = child.id();
    let mut streamed_at: Option<Instant> = None;
    let mut peak_kib = 0;
    loop {
        peak_kib = peak_kib.max(peak_rss_kib(pid).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("resi-loader failed ({status}): {stderr}");
            }
            streamed_at.get_or_insert_with(Instant::now);
            break;
        }
        let received: i64 = monitor
            .query_one(
                "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE datname = current_database()",
                &[],
            )?
            .get(0);
        if received >= rows as i64 && streamed_at.is_none() {
            streamed_at = Some(Instant::now());
        }
        let done_watching = streamed_at.is_some_and(|at| at.elapsed() >= AFTER_STREAMED);
        if done_watching || started.elapsed() > TIMEOUT {
            peak_kib = peak_kib.max(peak_rss_kib(pid).unwrap_or(0));
            child.kill()?;
            child.wait().context("wait for the killed loader")?;
            if !done_watching {
                bail!("the loader had not streamed {rows} rows after {} s", TIMEOUT.as_secs());
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(monitor);
    // Ends the loader's backend (still folding) and rolls its transaction back.
    cluster.drop_database(DATABASE)?;
    let streamed = streamed_at.expect("set before leaving the loop").duration_since(started);
    Ok((peak_kib as f64 / 1024.0, streamed))
}

/// A process's peak resident set so far (`VmHWM` of /proc/PID/status), in KiB; `None` when the
/// process is gone (or is a zombie, which has no memory left). The kernel keeps the peak, so
/// polling it loses at most what the process grows in its last poll interval.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
