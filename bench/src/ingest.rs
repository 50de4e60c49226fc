//! 1. `resi-loader run` over generated uploads in a local folder, into a fresh database,
//!    against a raw `COPY … (FORMAT csv)` of the same rows into an unlogged table.
//! 2. The same loader run from S3 (s3s-fs on loopback) against the run from the local folder.
//!
//! 1 (portable). The loader into the portable edition (issue 17) against the same run into the
//! native one, over fewer rows.

use crate::db::{self, Cluster, Release};
use crate::generate::{self, Upload};
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::s3::S3Server;
use crate::Bench;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Rows per generated object (a miner's upload of one zip code area).
pub const ROWS_PER_OBJECT: usize = 5000;

/// The columns of `resi.staging_listings`: what the loader sends, and what the baseline copies.
/// The release row 1's "before" runs: the last release's frozen install script on this build's
/// library (issue 14: ingest within 10 % of before).
const PREVIOUS_RELEASE: &str = "0.4.0";

const RAW_TABLE: &str = "CREATE UNLOGGED TABLE raw_listings (
    ledger_id bigint, miner_hotkey text, submission_timestamp timestamptz, job_id text, s3_file_path text,
    record_count integer, zpid text, uri text, price bigint, address text, bedrooms integer,
    bathrooms double precision, living_area integer, home_type text, home_status text, days_on_zillow integer,
    zip_code text, city text, state text, latitude double precision, longitude double precision,
    scraped_at timestamptz, data_hash text)";

/// 1. Loader (local folder) vs raw COPY.
pub fn local_vs_copy(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let uploads = generate::plan(bench.seed, bench.size(200_000), ROWS_PER_OBJECT);
    let total: usize = uploads.iter().map(|u| u.rows).sum();
    let folder = bench.work.join("ingest");
    bench.log(format!("1. ingest: generating {} objects, {total} rows", uploads.len()));
    for upload in &uploads {
        generate::write_parquet(&folder, bench.seed, upload, ROWS_PER_OBJECT)?;
    }
    let csv = csv_per_object(bench.seed, &uploads)?;
    let copy_url = cluster.fresh_database("resi_bench_copy", false)?;
    let mut copy_db = db::connect(&copy_url)?;
    copy_db.batch_execute(RAW_TABLE)?;

    // One run first, not counted: the first load into a fresh cluster pays once for what later
    // runs reuse (24.3-25.3 s against 16-20 s for the runs after it, in three full runs), and it
    // always fell to this release's loader, which goes first in run 1.
    let source = folder.to_string_lossy();
    let warm_up = loader_run(bench, cluster, "resi_bench_ingest", &source, &[], total)?;
    bench.log(format!("1. ingest warm-up (not counted): loader {:.1} s", warm_up.elapsed.as_secs_f64()));

    let (mut loader_times, mut previous_times, mut copy_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut stages = None;
    for run in 1..=bench.runs {
        let copy_time = raw_copy(&mut copy_db, &csv, total)?;
        let previous = ("resi_bench_ingest", Release::Frozen(PREVIOUS_RELEASE));
        // Alternate which release goes first: the second run finds the files in the page cache.
        let (now, before) = if run % 2 == 1 {
            let now = loader_run(bench, cluster, "resi_bench_ingest", &source, &[], total)?;
            (now, loader_run_at(bench, cluster, previous, &source, &[], total)?)
        } else {
            let before = loader_run_at(bench, cluster, previous, &source, &[], total)?;
            (loader_run(bench, cluster, "resi_bench_ingest", &source, &[], total)?, before)
        };
        let (loader_time, previous_time) = (now.elapsed, before.elapsed);
        stages = now.stages.or(stages);
        bench.log(format!(
            "1. ingest run {run}/{}: loader {:.1} s, loader on {PREVIOUS_RELEASE} {:.1} s, COPY {:.2} s",
            bench.runs,
            loader_time.as_secs_f64(),
            previous_time.as_secs_f64(),
            copy_time.as_secs_f64()
        ));
        loader_times.push(loader_time);
        previous_times.push(previous_time);
        copy_times.push(copy_time);
    }
    cluster.drop_database("resi_bench_copy")?;

    let unit = Unit::PerSecond("rows");
    let subject =
        Side::new("`resi-loader run --source DIR` (fold included)", Stats::of_rates(total as f64, &loader_times), unit);
    let baseline = Side::new(
        "`COPY … FROM STDIN (FORMAT csv)`, unlogged table, no indexes",
        Stats::of_rates(total as f64, &copy_times),
        unit,
    );
    rows.push(Row {
        measurement: "1. ingest, local folder".into(),
        size: upload_size(total, uploads.len()),
        ratio: Row::rate_ratio(&subject, &baseline),
        ratio_meaning: "rate ratio",
        subject,
        baseline: Some(baseline),
        target: Target::AtLeast(0.25),
        notes: vec![
            format!(
                "1: each loader run starts from a fresh database with `CREATE EXTENSION resi_pg`; its time is the \
                 whole `resi-loader run` process (listing, admission, reading, binary COPY, the fold's trigger, the \
                 final regrouping and stale refresh), with its default batches. The COPY baseline sends the same {} \
                 rows (the 23 columns of `resi.staging_listings`, CSV rendered beforehand) from the bench process, \
                 one COPY per object. The issue's size is ≥ 1,000,000 rows (BENCH_SCALE=5). One run of this \
                 release's loader goes first and is not counted: the first load into a fresh cluster pays once for \
                 what the later ones reuse (this run's took {:.1} s).",
                thousands(total),
                warm_up.elapsed.as_secs_f64()
            ),
            stage_note("1", &stages),
        ],
    });
    let before = Side::new(
        format!("the same loader on resi_pg {PREVIOUS_RELEASE}"),
        Stats::of_rates(total as f64, &previous_times),
        unit,
    );
    let now = rows.last().expect("row 1 was pushed").subject.clone();
    rows.push(Row {
        measurement: format!("1. ingest vs {PREVIOUS_RELEASE}"),
        size: format!("the {} rows of row 1", thousands(total)),
        ratio: Row::rate_ratio(&now, &before),
        ratio_meaning: "rate ratio",
        subject: now,
        baseline: Some(before),
        target: Target::AtLeast(0.9),
        notes: vec![format!(
            "1: the \"before\" of issue 14 (ingest within 10 % of before), measured in the same run: a fresh database \
             with `CREATE EXTENSION resi_pg VERSION '{PREVIOUS_RELEASE}'` (its frozen install script, sql/install/) \
             on this build's library, loaded by the same loader (which skips what {PREVIOUS_RELEASE} lacks: the \
             regrouping pass); the two go first in turn. The aggregates' Rust code is this build's on both \
             sides; what differs is the SQL of \
             the fold, the consensus and the pass."
        )],
    });
    Ok(())
}

/// Row 2: the loader from S3 (s3s-fs on 127.0.0.1) against the local folder holding the same
/// files, for the backfill shape (objects of 5,000 rows) and the network's deltas (many small
/// objects by 250 miners, with their objects per second from S3).
pub fn s3_vs_local(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let backfill = generate::plan(bench.seed ^ 0x53, bench.size(30_000), ROWS_PER_OBJECT);
    let deltas = generate::deltas(bench.seed ^ 0x5d, bench.size(300));
    for (shape, uploads, rows_per_object) in [("backfill", backfill, ROWS_PER_OBJECT), ("deltas", deltas, 1 << 20)] {
        let total: usize = uploads.iter().map(|u| u.rows).sum();
        bench.log(format!("2. ingest from S3, {shape}: generating {} objects, {total} rows", uploads.len()));
        let staging = bench.work.join("s3-staging");
        let mut objects = Vec::new();
        for upload in &uploads {
            let path = generate::write_parquet(&staging, bench.seed ^ 0x53, upload, rows_per_object)?;
            objects.push((upload.key.clone(), path, upload.uploaded_at));
        }
        let root = bench.work.join(format!("s3-root-{shape}"));
        let server = S3Server::start(&root)?;
        server.put("uploads", &objects)?;
        std::fs::remove_dir_all(&staging)?;
        // The local side reads the very files the S3 server serves.
        let folder = server.bucket_folder("uploads");
        let (mut s3_times, mut local_times) = (Vec::new(), Vec::new());
        for run in 1..=bench.runs {
            let local = loader_run(bench, cluster, "resi_bench_ingest", &folder.to_string_lossy(), &[], total)?.elapsed;
            let s3 =
                loader_run(bench, cluster, "resi_bench_ingest", "s3://uploads/data/", &server.loader_env(), total)?
                    .elapsed;
            bench.log(format!(
                "2. ingest from S3, {shape}, run {run}/{}: S3 {:.1} s, local {:.1} s",
                bench.runs,
                s3.as_secs_f64(),
                local.as_secs_f64()
            ));
            s3_times.push(s3);
            local_times.push(local);
        }
        drop(server);
        std::fs::remove_dir_all(&root)?;
        let unit = Unit::PerSecond("rows");
        let subject = Side::new(
            "`resi-loader run --source s3://…` (s3s-fs on 127.0.0.1)",
            Stats::of_rates(total as f64, &s3_times),
            unit,
        );
        let baseline =
            Side::new("the same run from the local folder", Stats::of_rates(total as f64, &local_times), unit);
        let (measurement, size) = if shape == "backfill" {
            ("2. ingest, S3 vs local".to_string(), format!("{} rows in {} objects", thousands(total), uploads.len()))
        } else {
            (
                "2. ingest, deltas, S3 vs local".to_string(),
                format!(
                    "{} objects of 50–1,000 rows ({} rows), {} miners",
                    uploads.len(),
                    thousands(total),
                    generate::NETWORK_MINERS
                ),
            )
        };
        let objects_per_second = Side::new(
            "`resi-loader run --source s3://…` (s3s-fs on 127.0.0.1)",
            Stats::of_rates(uploads.len() as f64, &s3_times),
            Unit::PerSecond("objects"),
        );
        rows.push(Row {
            measurement,
            size: size.clone(),
            ratio: Row::rate_ratio(&subject, &baseline),
            ratio_meaning: "rate ratio",
            subject,
            baseline: Some(baseline),
            target: Target::AtLeast(0.85),
            notes: if shape == "backfill" {
                vec!["2: the objects are PUT into s3s-fs (so it keeps their ETags, as S3 does) and given the same \
                     LastModified as the local files; the local run reads the same files. Target \"within 15%\" is \
                     read as S3 rate ≥ 0.85× the local rate."
                    .into()]
            } else {
                vec![]
            },
        });
        if shape == "deltas" {
            let ratio = objects_per_second.stats.median / 300.0;
            rows.push(Row {
                measurement: "2. ingest, deltas from S3: objects per second".into(),
                size,
                ratio,
                ratio_meaning: "of 300 objects/s",
                subject: objects_per_second,
                baseline: None,
                target: Target::AtLeast(1.0),
                notes: vec!["2 (deltas): the issue's target, ≥ 300 objects/s from S3 as from a local folder; the \
                             issue's size is ≥ 20,000 objects (BENCH_SCALE=67)."
                    .into()],
            });
        }
    }
    Ok(())
}

/// Rows of the portable ingest row at BENCH_SCALE=1: the portable fold spends milliseconds per
/// row where Rust spends microseconds (docs/hosted.md, "Speed").
pub const PORTABLE_ROWS: usize = 30_000;

/// Row 1 (portable): `resi-loader run` from a local folder into a fresh database holding the
/// portable edition, against the same run into a fresh native database; the two go first in turn.
pub fn portable_vs_native(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let uploads = generate::plan(bench.seed, bench.size(PORTABLE_ROWS), ROWS_PER_OBJECT);
    let total: usize = uploads.iter().map(|u| u.rows).sum();
    let folder = bench.work.join("ingest-portable");
    bench.log(format!("1. ingest, portable edition: generating {} objects, {total} rows", uploads.len()));
    for upload in &uploads {
        generate::write_parquet(&folder, bench.seed, upload, ROWS_PER_OBJECT)?;
    }
    let source = folder.to_string_lossy();
    let (mut portable_times, mut native_times) = (Vec::new(), Vec::new());
    let (mut portable_stages, mut native_stages) = (None, None);
    for run in 1..=bench.runs {
        let releases =
            if run % 2 == 1 { [Release::Portable, Release::Current] } else { [Release::Current, Release::Portable] };
        for release in releases {
            let loaded = loader_run_at(bench, cluster, ("resi_bench_ingest", release), &source, &[], total)?;
            let (times, stages) = if release == Release::Portable {
                (&mut portable_times, &mut portable_stages)
            } else {
                (&mut native_times, &mut native_stages)
            };
            times.push(loaded.elapsed);
            *stages = loaded.stages.or(stages.take());
        }
        bench.log(format!(
            "1. ingest, portable edition, run {run}/{}: portable {:.1} s, native {:.1} s",
            bench.runs,
            portable_times[run - 1].as_secs_f64(),
            native_times[run - 1].as_secs_f64()
        ));
    }
    let unit = Unit::PerSecond("rows");
    let subject = Side::new(
        "`resi-loader run --source DIR` into the portable edition",
        Stats::of_rates(total as f64, &portable_times),
        unit,
    );
    let baseline =
        Side::new("the same run into the native edition", Stats::of_rates(total as f64, &native_times), unit);
    rows.push(Row {
        measurement: "1. ingest, portable edition".into(),
        size: upload_size(total, uploads.len()),
        ratio: Row::rate_ratio(&subject, &baseline),
        ratio_meaning: "rate ratio",
        subject,
        baseline: Some(baseline),
        target: Target::Reported,
        notes: vec![
            format!(
                "1 (portable): uploads generated as for row 1, {} rows at BENCH_SCALE=1 (fewer: the portable fold \
                 is slower). Each run starts from a fresh database: the portable side's holds resi-package's plain \
                 migration of this checkout's sql/, run by a role with no superuser and only CREATE on that \
                 database, and the loader connects as that role (as on hosted PostgreSQL); the native side's has \
                 `CREATE EXTENSION resi_pg` and the loader connects as the superuser. Same loader binary, default \
                 batches; the two go first in turn. No target: the issue asks for the cost of hosting to be \
                 reported.",
                thousands(PORTABLE_ROWS)
            ),
            stage_note("1 (portable), portable side", &portable_stages),
            stage_note("1 (portable), native side", &native_stages),
        ],
    });
    Ok(())
}

/// The raw-COPY baseline: every object's CSV in a COPY of its own into `raw_listings` (emptied
/// first), timed; checks the row count.
fn raw_copy(copy_db: &mut postgres::Client, csv: &[Vec<u8>], total: usize) -> Result<Duration> {
    copy_db.batch_execute("TRUNCATE raw_listings")?;
    let (copy_time, ()) = db::timed(|| {
        for object in csv {
            let mut writer = copy_db.copy_in("COPY raw_listings FROM STDIN (FORMAT csv)")?;
            writer.write_all(object)?;
            writer.finish()?;
        }
        Ok(())
    })?;
    let copied: i64 = copy_db.query_one("SELECT count(*) FROM raw_listings", &[])?.get(0);
    if copied != total as i64 {
        bail!("the baseline COPY wrote {copied} rows, not {total}");
    }
    Ok(copy_time)
}

/// The note with a loader run's per-stage breakdown (the last run measured).
fn stage_note(row: &str, stages: &Option<serde_json::Value>) -> String {
    match stages {
        Some(s) => format!(
            "{row}: where the loader's time went (the last run, seconds summed per stage; reading overlaps the fold): {}",
            describe_stages(s)
        ),
        None => format!("{row}: the loader recorded no stages"),
    }
}

/// Row 1's other shapes: the network's deltas (many small objects by 250 miners) and one large
/// file, each against a raw COPY of the same rows; and the deltas' objects per second.
pub fn shapes_vs_copy(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let deltas = generate::deltas(bench.seed ^ 0xde, bench.size(300));
    let one_file = vec![generate::single(bench.seed ^ 0xf1, 0, 30_000_000, bench.size(200_000), 0)];
    for (shape, uploads) in [("deltas", deltas), ("one file", one_file)] {
        let total: usize = uploads.iter().map(|u| u.rows).sum();
        let folder = bench.work.join(format!("ingest-{}", shape.replace(' ', "-")));
        bench.log(format!("1. ingest, {shape}: generating {} objects, {total} rows", uploads.len()));
        for upload in &uploads {
            generate::write_parquet(&folder, bench.seed, upload, 1 << 20)?;
        }
        let csv = csv_per_object(bench.seed, &uploads)?;
        let copy_url = cluster.fresh_database("resi_bench_copy", false)?;
        let mut copy_db = db::connect(&copy_url)?;
        copy_db.batch_execute(RAW_TABLE)?;
        let (mut loader_times, mut copy_times, mut stages) = (Vec::new(), Vec::new(), None);
        for run in 1..=bench.runs {
            let copy_time = raw_copy(&mut copy_db, &csv, total)?;
            let loaded = loader_run(bench, cluster, "resi_bench_ingest", &folder.to_string_lossy(), &[], total)?;
            bench.log(format!(
                "1. ingest, {shape}, run {run}/{}: loader {:.1} s, COPY {:.2} s",
                bench.runs,
                loaded.elapsed.as_secs_f64(),
                copy_time.as_secs_f64()
            ));
            loader_times.push(loaded.elapsed);
            copy_times.push(copy_time);
            stages = loaded.stages.or(stages);
        }
        drop(copy_db);
        cluster.drop_database("resi_bench_copy")?;
        let unit = Unit::PerSecond("rows");
        let subject = Side::new("`resi-loader run --source DIR`", Stats::of_rates(total as f64, &loader_times), unit);
        let baseline =
            Side::new("raw COPY of the same rows, one per object", Stats::of_rates(total as f64, &copy_times), unit);
        let (size, target, issue_size) = if shape == "deltas" {
            (
                format!(
                    "{} objects of 50–1,000 rows ({} rows), {} miners",
                    uploads.len(),
                    thousands(total),
                    generate::NETWORK_MINERS
                ),
                Target::AtLeast(0.15),
                "≥ 20,000 objects (BENCH_SCALE=67)",
            )
        } else {
            (format!("one file of {} rows", thousands(total)), Target::AtLeast(0.25), "1,000,000 rows (BENCH_SCALE=5)")
        };
        let objects_per_second = Side::new(
            "`resi-loader run --source DIR`",
            Stats::of_rates(uploads.len() as f64, &loader_times),
            Unit::PerSecond("objects"),
        );
        rows.push(Row {
            measurement: format!("1. ingest, {shape}"),
            size: size.clone(),
            ratio: Row::rate_ratio(&subject, &baseline),
            ratio_meaning: "rate ratio",
            subject,
            baseline: Some(baseline),
            target,
            notes: vec![
                format!(
                    "1 ({shape}): a fresh database per loader run, default batches, local folder; the issue's size is \
                     {issue_size}. The deltas are the network's shape: every upload a run of consecutive zpids, a \
                     listing reported by about four of the miners; the one file is streamed in a transaction of its \
                     own (it is larger than a batch)."
                ),
                stage_note(&format!("1 ({shape})"), &stages),
            ],
        });
        if shape == "deltas" {
            let ratio = objects_per_second.stats.median / 300.0;
            rows.push(Row {
                measurement: "1. ingest, deltas: objects per second".into(),
                size,
                ratio,
                ratio_meaning: "of 300 objects/s",
                subject: objects_per_second,
                baseline: None,
                target: Target::AtLeast(1.0),
                notes: vec![],
            });
        }
    }
    Ok(())
}

/// CSV of every object's rows (ledger ids 1, 2, …), rendered before the timing starts.
fn csv_per_object(seed: u64, uploads: &[Upload]) -> Result<Vec<Vec<u8>>> {
    uploads
        .iter()
        .enumerate()
        .map(|(i, upload)| {
            let mut out = Vec::with_capacity(upload.rows * 400);
            generate::write_csv(&mut out, seed, upload, i + 1)?;
            Ok(out)
        })
        .collect()
}

/// One `resi-loader run` into a fresh database `database`, timed; checks that every object
/// was loaded and every row attested, then drops the database.
pub fn loader_run(
    bench: &Bench,
    cluster: &mut Cluster,
    database: &str,
    source: &str,
    env: &[(&str, String)],
    expected_rows: usize,
) -> Result<LoaderRun> {
    loader_run_at(bench, cluster, (database, Release::Current), source, env, expected_rows)
}

/// A timed `resi-loader run`, and where its time went.
pub struct LoaderRun {
    pub elapsed: Duration,
    /// `resi.ingest_runs.stage_seconds` of the run (resi_pg 0.5.0 and later).
    pub stages: Option<serde_json::Value>,
}

/// "list 0.01 s, read 1.2 s, …": a run's stages in the loader's order, for the notes.
pub fn describe_stages(stages: &serde_json::Value) -> String {
    const ORDER: [&str; 9] =
        ["list", "read", "waiting_for_reads", "admit", "copy", "attest_and_claim", "consensus", "judgement", "commit"];
    let mut parts: Vec<String> = ORDER
        .iter()
        .filter_map(|k| stages.get(k)?.as_f64().map(|v| format!("{} {v:.2} s", k.replace('_', " "))))
        .collect();
    if let Some(b) = stages.get("batches").and_then(|b| b.as_u64()) {
        parts.push(format!("{b} transactions"));
    }
    parts.join(", ")
}

/// [`loader_run`] into a fresh database with resi_pg at `release`.
pub fn loader_run_at(
    bench: &Bench,
    cluster: &mut Cluster,
    (database, release): (&str, Release),
    source: &str,
    env: &[(&str, String)],
    expected_rows: usize,
) -> Result<LoaderRun> {
    let url = cluster.fresh_database_at(database, Some(release))?;
    // The portable edition's loader runs as its owner (a hosted database's role).
    let loader_url = if release == Release::Portable { cluster.installer_url(database) } else { url.clone() };
    let mut command = loader_command(&bench.loader, &loader_url, source);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let (elapsed, output) = db::timed(|| command.output().with_context(|| format!("run {}", bench.loader.display())))?;
    if !output.status.success() {
        bail!("resi-loader failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let mut client = db::connect(&url)?;
    let row = client.query_one(
        "SELECT count(*) FILTER (WHERE status <> 'loaded'), coalesce(sum(rows_attested), 0)::bigint,
                string_agg(DISTINCT reason, '; ')
           FROM resi.ingest_ledger",
        &[],
    )?;
    let (not_loaded, attested, reasons): (i64, i64, Option<String>) = (row.get(0), row.get(1), row.get(2));
    if not_loaded > 0 || attested != expected_rows as i64 {
        bail!(
            "the loader left {not_loaded} objects not loaded ({}) and attested {attested} of {expected_rows} rows; \
             its summary: {}",
            reasons.unwrap_or_default(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    // `to_jsonb(r)`: a release without the column gives NULL instead of an error.
    let stages: Option<serde_json::Value> = client
        .query_opt(
            "SELECT (to_jsonb(r) -> 'stage_seconds')::text FROM resi.ingest_runs r ORDER BY id DESC LIMIT 1",
            &[],
        )?
        .and_then(|r| r.get::<_, Option<String>>(0))
        .and_then(|text| serde_json::from_str(&text).ok())
        .filter(|v: &serde_json::Value| !v.is_null());
    drop(client);
    cluster.drop_database(database)?;
    Ok(LoaderRun { elapsed, stages })
}

/// `resi-loader run --source SOURCE --database-url URL`, logging warnings only.
pub fn loader_command(loader: &Path, url: &str, source: &str) -> Command {
    let mut command = Command::new(loader);
    command.args(["run", "--source", source, "--database-url", url]).env("RESI_LOG", "warn");
    command
}

/// The size column of the ingest rows: `total` rows in `objects` objects.
fn upload_size(total: usize, objects: usize) -> String {
    format!(
        "{} rows in {objects} objects of {}, {} miners",
        thousands(total),
        thousands(ROWS_PER_OBJECT),
        generate::MINERS
    )
}
