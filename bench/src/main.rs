//! `resi-bench`: the measurements of issue 5, each against its baseline in the same run.
//!
//! ```text
//! resi-bench --database-url URL --loader target/release/resi-loader --out bench/results.md
//!            [--runs 3] [--only ingest,s3,aggregates,refresh,helpers,memory,independence,citus]
//!            [--editions native,portable]                       (BENCH_SCALE=1.0, BENCH_EDITIONS)
//!            [--citus-url COORDINATOR_URL]                      (RESI_BENCH_CITUS_URL)
//! ```
//!
//! `URL` is a superuser connection to a throwaway cluster with resi_pg installed (`make bench`
//! starts one); every measurement creates and drops its own databases there. Data is generated
//! from a fixed seed; each measurement runs `--runs` times, alternating with its baseline, and
//! the table gives median, min and max of each side and the ratio of the medians.
//!
//! The portable edition's rows (issue 17: ingest, the aggregates, refresh) install
//! resi-package's plain migration of this checkout's `sql/` as a role without superuser and
//! measure it against the native edition (and the aggregates against the floor), at their own,
//! smaller sizes. `--editions native` (or `BENCH_EDITIONS=native`) skips them; `--editions
//! portable` measures only them.
//!
//! Group `citus` (issue 18) measures a distributed database of the Citus cluster whose
//! coordinator `--citus-url` names (a superuser URL of its `postgres` database, Citus and resi_pg
//! installed on every node; `make bench` starts one when Citus is installed) against a single
//! node of the bench cluster; without it, its one row says it was skipped.

#![forbid(unsafe_code)]

mod aggregates;
mod citus;
mod db;
mod generate;
mod helpers;
mod independence;
mod ingest;
mod machine;
mod memory;
mod refresh;
mod report;
mod s3;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "resi-bench", about = "Benchmarks of resi_pg and resi-loader against their natural baselines")]
struct Cli {
    /// Superuser URL of the bench cluster's maintenance database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The resi-loader binary to measure (a release build).
    #[arg(long, default_value = "target/release/resi-loader")]
    loader: PathBuf,
    /// Where to write the Markdown report.
    #[arg(long, default_value = "bench/results.md")]
    out: PathBuf,
    /// Runs of each measurement and of its baseline.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// Multiplies every data size.
    #[arg(long, env = "BENCH_SCALE", default_value_t = 1.0)]
    scale: f64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 20_250_917)]
    seed: u64,
    /// Only these groups (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Group>,
    /// Only the rows about these editions (default: both). The portable edition's rows are in
    /// groups ingest, aggregates and refresh.
    #[arg(long, value_enum, value_delimiter = ',', env = "BENCH_EDITIONS")]
    editions: Vec<Edition>,
    /// Superuser URL of a Citus cluster's coordinator (its `postgres` database, workers
    /// registered), for group `citus`; without it that group is skipped.
    #[arg(long, env = "RESI_BENCH_CITUS_URL")]
    citus_url: Option<String>,
    /// Scratch folder for generated uploads (default: a new folder under $TMPDIR, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Group {
    /// 1. loader (local folder) vs raw COPY
    Ingest,
    /// 2. loader from S3 vs from a local folder
    S3,
    /// 3./4. consensus aggregates vs plain SQL, parallel vs serial
    Aggregates,
    /// 5. refresh_consensus vs GROUP BY
    Refresh,
    /// 6./7. listing_hash vs sha256, check_miner_rate_limit vs a primary-key SELECT
    Helpers,
    /// 8. loader peak memory
    Memory,
    /// 9./9b. find_dependent_miners vs one grouped scan of the claims (a tenth of the network),
    /// and vs one read of the judged pairs (the whole network)
    Independence,
    /// 10. Citus: the fold, the consensus and api.listing per shard count vs a single node
    Citus,
}

const GROUPS: [Group; 8] = [
    Group::Ingest,
    Group::S3,
    Group::Aggregates,
    Group::Refresh,
    Group::Helpers,
    Group::Memory,
    Group::Independence,
    Group::Citus,
];

/// Which edition of resi_pg a measurement's rows are about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Edition {
    /// The extension (`CREATE EXTENSION resi_pg`, Rust)
    Native,
    /// The portable edition (SQL and PL/pgSQL, issue 17) against the native one
    Portable,
}

const EDITIONS: [Edition; 2] = [Edition::Native, Edition::Portable];

/// One measurement: pushes its rows.
type Measurement = fn(&Bench, &mut db::Cluster, &mut Vec<report::Row>) -> Result<()>;

/// A group's measurements of `edition`'s rows, in the order they run.
fn measurements(group: Group, edition: Edition) -> Vec<Measurement> {
    match (group, edition) {
        (Group::Ingest, Edition::Native) => vec![ingest::local_vs_copy, ingest::shapes_vs_copy],
        (Group::Ingest, Edition::Portable) => vec![ingest::portable_vs_native],
        (Group::S3, Edition::Native) => vec![ingest::s3_vs_local],
        (Group::Aggregates, Edition::Native) => vec![aggregates::run],
        (Group::Aggregates, Edition::Portable) => vec![aggregates::portable],
        (Group::Refresh, Edition::Native) => vec![refresh::run],
        (Group::Refresh, Edition::Portable) => vec![refresh::portable_vs_native],
        (Group::Helpers, Edition::Native) => vec![helpers::run],
        (Group::Memory, Edition::Native) => vec![memory::run],
        (Group::Independence, Edition::Native) => vec![independence::run, independence::judged],
        (Group::Citus, Edition::Native) => vec![citus::run],
        (Group::S3 | Group::Helpers | Group::Memory | Group::Independence | Group::Citus, Edition::Portable) => {
            vec![]
        }
    }
}

/// What every measurement needs.
pub struct Bench {
    pub seed: u64,
    pub scale: f64,
    pub runs: usize,
    pub loader: PathBuf,
    pub work: PathBuf,
    /// The Citus coordinator of `--citus-url`, for group `citus`.
    pub citus_url: Option<String>,
    started: Instant,
}

impl Bench {
    /// `base` (the size at BENCH_SCALE = 1) times the scale, at least 1.
    pub fn size(&self, base: usize) -> usize {
        ((base as f64 * self.scale).round() as usize).max(1)
    }

    pub fn log(&self, message: impl AsRef<str>) {
        eprintln!("[bench {:>6.1} s] {}", self.started.elapsed().as_secs_f64(), message.as_ref());
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("resi-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if !(cli.scale > 0.0 && cli.scale.is_finite()) {
        bail!("BENCH_SCALE must be a positive number, not {}", cli.scale);
    }
    let loader = std::fs::canonicalize(&cli.loader).with_context(|| {
        format!("no loader binary at {} (cargo build --release -p resi-loader)", cli.loader.display())
    })?;
    let (work, remove_work) = match &cli.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("resi-bench-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&work)?;
    let bench = Bench {
        seed: cli.seed,
        scale: cli.scale,
        runs: cli.runs.into(),
        loader,
        work,
        citus_url: cli.citus_url.clone(),
        started: Instant::now(),
    };
    let groups: Vec<Group> = if cli.only.is_empty() { GROUPS.to_vec() } else { cli.only.clone() };
    let editions: Vec<Edition> =
        EDITIONS.into_iter().filter(|e| cli.editions.is_empty() || cli.editions.contains(e)).collect();

    let mut cluster = db::Cluster::open(&cli.database_url)?;
    let version = cluster.server_version()?;
    let library = cluster.installed_library()?;
    let machine = machine::Machine::describe();
    let mut ours = vec![cluster.postmaster_pid()?];
    if let (Some(url), true) = (&bench.citus_url, groups.contains(&Group::Citus)) {
        // The Citus nodes' CPU is the bench's own; a cluster that cannot be reached fails its group.
        match citus::CitusCluster::open(url).and_then(|c| c.postmaster_pids()) {
            Ok(pids) => ours.extend(pids),
            Err(e) => bench.log(format!("the Citus cluster's processes are counted as others': {e:#}")),
        }
    }
    let contention = machine::Contention::start(ours);
    let date = machine::now_utc();
    bench.log(format!(
        "{} runs per measurement, BENCH_SCALE={}, groups {groups:?}, editions {editions:?}",
        bench.runs, bench.scale
    ));

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut by_group = Vec::new();
    // Each group's native rows, then its portable rows beside them.
    for (group, edition) in groups.iter().flat_map(|g| editions.iter().map(move |e| (*g, *e))) {
        let measured = measurements(group, edition);
        if measured.is_empty() {
            continue;
        }
        let name = match edition {
            Edition::Native => format!("{group:?}"),
            Edition::Portable => format!("{group:?} (portable)"),
        };
        let (started, foreign_before) = (Instant::now(), contention.foreign_cpu_seconds());
        for measurement in measured {
            // A failed measurement loses its own rows only.
            if let Err(e) = measurement(&bench, &mut cluster, &mut rows) {
                bench.log(format!("{name} FAILED: {e:#}"));
                failures.push(format!("{name}: {e:#}"));
            }
        }
        // Sampled once a second: the last second of a group may count for the next one.
        let foreign = contention.foreign_cpu_seconds() - foreign_before;
        let seconds = started.elapsed().as_secs_f64();
        by_group.push(format!(
            "{name} {seconds:.0} s ({:.1} % taken by other processes)",
            100.0 * foreign / (seconds * machine.cores as f64)
        ));
    }
    let elapsed = bench.started.elapsed();
    let mut contention = contention.finish(machine.cores);
    let library_after = cluster.installed_library()?;
    if library_after != library {
        contention.push_str(&format!(
            "; WARNING: the installed extension changed during the run (was {library}, now {library_after})"
        ));
    }
    if remove_work {
        let _ = std::fs::remove_dir_all(&bench.work);
    }

    let contention = format!("{contention}; by group: {}", by_group.join(", "));
    println!("\n{}", report::text_table(&rows));
    println!("{contention}");
    let run = RunInfo { machine, version, library, date, elapsed: elapsed.as_secs_f64(), contention, editions };
    let markdown = markdown(&cli, &bench, &run, &rows, &failures);
    std::fs::write(&cli.out, markdown).with_context(|| format!("write {}", cli.out.display()))?;
    println!("written to {}", cli.out.display());
    if !failures.is_empty() {
        bail!("{} group(s) failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

/// What the report says about the run.
struct RunInfo {
    machine: machine::Machine,
    version: String,
    library: String,
    date: String,
    elapsed: f64,
    contention: String,
    editions: Vec<Edition>,
}

fn markdown(cli: &Cli, bench: &Bench, run: &RunInfo, rows: &[report::Row], failures: &[String]) -> String {
    let RunInfo { machine, version, library, date, elapsed, contention, .. } = run;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks (`make bench`)\n");
    let _ = writeln!(
        out,
        "Written by `resi-bench` (bench/): each measurement against its natural baseline, in the same run on the \
         same machine; we claim ratios, not absolute times (issue 5). Data is generated from a fixed seed. Each \
         side ran {} times, alternating with the other; cells show the median (min – max), and the ratio is taken \
         between the medians.\n",
        bench.runs
    );
    let _ = writeln!(out, "## Run\n");
    let _ = writeln!(out, "- date: {date}");
    let _ = writeln!(out, "- machine: {}, {} cores, {:.1} GiB RAM", machine.cpu, machine.cores, machine.memory_gib);
    let _ = writeln!(out, "- PostgreSQL: {version}");
    let _ = writeln!(
        out,
        "- cluster: private (`scripts/pg-cluster`: fsync off, synchronous_commit off, shared_buffers 256MB); \
         resi_pg and resi-loader release builds"
    );
    let _ = writeln!(out, "- extension: {library}");
    let _ = writeln!(
        out,
        "- scale: BENCH_SCALE={} (sizes below), seed {}, {} runs, {:.0} s for the measurements{}",
        bench.scale,
        bench.seed,
        bench.runs,
        elapsed,
        if cli.only.is_empty() { String::new() } else { format!(", groups {:?} only", cli.only) }
    );
    if run.editions.contains(&Edition::Portable) {
        let _ = writeln!(
            out,
            "- portable edition: {}, resi-package's plain migration of this checkout's sql/, installed into each of \
             its fresh databases by a role without superuser (CREATE on that database only)",
            resi_package::Repository::this().version().map_or_else(|e| e.to_string(), |v| format!("resi_pg {v}"))
        );
    }
    if run.editions != EDITIONS {
        let _ = writeln!(out, "- editions: {:?} only", run.editions);
    }
    let _ = writeln!(out, "- contention: {contention}\n");
    let _ = writeln!(out, "## Results\n");
    out.push_str(&report::markdown_table(rows));
    if !failures.is_empty() {
        let _ = writeln!(out, "\nNot measured (failed):\n");
        for f in failures {
            let _ = writeln!(out, "- {}", f.replace('\n', " "));
        }
    }
    let _ = writeln!(out, "\n## How each row was measured\n");
    for note in rows.iter().flat_map(|r| &r.notes) {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "\n## Sizes\n\nThe default sizes (BENCH_SCALE=1) keep `make bench` under 20 minutes on 2 cores; every size \
         is multiplied by BENCH_SCALE. The issue's sizes and the scale that reaches them: ingest ≥ 1M rows \
         (BENCH_SCALE=5); aggregates 5M rows / 500k groups (5); refresh 1M listings / 10M attestations (50); \
         listing_hash and rate limit 1M (1); loader memory 1M and 5M-row files (2.5 gives 2.5M and 5M; the \
         ratio between the two files stays 2). The portable edition's rows (issue 17, which sets them no size) \
         have their own, smaller sizes at BENCH_SCALE=1: ingest {} rows, aggregates {} rows in groups of 10, \
         refresh {} listings ({} attestations); `--editions native` (BENCH_EDITIONS=native) skips them. The \
         Citus rows (issue 18, no size set) load {} rows at BENCH_SCALE=1 into each database.",
        report::thousands(ingest::PORTABLE_ROWS),
        report::thousands(aggregates::PORTABLE_ROWS),
        report::thousands(refresh::PORTABLE_LISTINGS),
        report::thousands(refresh::PORTABLE_LISTINGS * refresh::MINERS),
        report::thousands(citus::ROWS)
    );
    out
}
