//! `resi-loader`: loads miners' uploads (S3 or a local folder) into the resi schema.
//!
//! ```text
//! resi-loader run    --source SOURCE [--refresh-limit N] [--database-url URL]            one pass
//! resi-loader watch  --source SOURCE --every 2h [--refresh-limit N] [--database-url URL] a pass on a schedule
//! resi-loader status [--database-url URL]                            what the ledger holds
//! resi-loader archive --older-than 6months --to DEST [--batch-rows N]  move old rows to Parquet
//! resi-loader export --to DEST [--batch-rows N]                        a consensus snapshot as Parquet
//! ```
//!
//! DEST is `s3://bucket/prefix` or a folder, as for sources.
//!
//! Exit status: 0 when the pass completed (rejected uploads are data, not failures); 1 with a
//! message when the database or the source is unreachable or misconfigured.

#![forbid(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};
use resi_loader::batch::BatchPolicy;
use resi_loader::pass::{run_pass, PassOptions};
use resi_loader::{archive, db, export, progress, source::Source, status};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "resi-loader", version, about = "Load miners' uploads into the resi schema, exactly once")]
struct Cli {
    /// PostgreSQL URL (postgresql://user@host:port/db); without it, libpq's PG* variables.
    #[arg(long, global = true, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One pass: load every upload not yet in the ledger.
    Run {
        /// `s3://bucket/prefix` or a folder laid out like the bucket.
        #[arg(long, env = "RESI_SOURCE")]
        source: String,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// A pass every `--every`, until SIGINT/SIGTERM (checked between batches).
    Watch {
        #[arg(long, env = "RESI_SOURCE")]
        source: String,
        /// Time between the starts of two passes, e.g. 2h, 30m.
        #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
        every: Duration,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Summarise the ledger: objects loaded / rejected / deferred, rows, last run, per miner.
    Status,
    /// Move listings and attestations older than the active window to Parquet files
    /// (archive/{listings,attestations}/month=YYYY-MM/…), verified before they are deleted.
    Archive {
        /// The active window, e.g. 6months, 180days.
        #[arg(long, default_value = "6months", value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// `s3://bucket/prefix` or a folder.
        #[arg(long)]
        to: String,
        /// Rows per file.
        #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(i64).range(1..))]
        batch_rows: i64,
    },
    /// Write the consensus listings as Parquet: export/snapshot=…/listings-NNNNN.parquet and a
    /// manifest.json, the open dataset.
    Export {
        /// `s3://bucket/prefix` or a folder.
        #[arg(long)]
        to: String,
        /// Rows per file.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(i64).range(1..))]
        batch_rows: i64,
    },
}

#[derive(clap::Args)]
struct PassArgs {
    /// After the objects, refresh at most this many listings whose consensus predates a trust
    /// change of one of their miners (0: none).
    #[arg(long, default_value_t = PassOptions::default().refresh_limit, value_parser = clap::value_parser!(i32).range(0..))]
    refresh_limit: i32,
    /// Objects folded per transaction: a batch closes after this many objects or --batch-rows
    /// rows, and holds uploads within --batch-span of its first (1: every object alone).
    #[arg(long, default_value_t = BatchPolicy::default().max_objects as u64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_objects: u64,
    /// Rows per batch; an object with more rows is streamed in a transaction of its own.
    #[arg(long, default_value_t = BatchPolicy::default().max_rows, value_parser = clap::value_parser!(u64).range(1..))]
    batch_rows: u64,
    /// A batch holds objects uploaded (S3 LastModified) within this span of its first [default: 2h].
    #[arg(long, value_parser = humantime::parse_duration)]
    batch_span: Option<Duration>,
    /// Objects fetched and decoded at once while the database folds.
    #[arg(long, default_value_t = BatchPolicy::default().read_ahead as u64, value_parser = clap::value_parser!(u64).range(1..=256))]
    read_ahead: u64,
}

impl PassArgs {
    fn options(&self) -> PassOptions {
        PassOptions {
            refresh_limit: self.refresh_limit,
            batch: BatchPolicy {
                max_objects: self.batch_objects as usize,
                max_rows: self.batch_rows,
                max_span: self.batch_span.unwrap_or(BatchPolicy::default().max_span),
                read_ahead: self.read_ahead as usize,
            },
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RESI_LOG").unwrap_or_else(|_| "resi_loader=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("resi-loader: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    let mut client = db::connect(cli.database_url.as_deref()).await?;
    match cli.command {
        Command::Run { source, pass } => {
            let source = Arc::new(Source::open(&source).await?);
            let summary =
                run_pass(&mut client, source, &pass.options(), progress::for_stderr().as_mut(), &stop).await?;
            println!("{}", status::summary_line(&summary));
        }
        Command::Watch { source, every, pass } => {
            let source = Arc::new(Source::open(&source).await?);
            while !stop.load(Ordering::SeqCst) {
                let started = tokio::time::Instant::now();
                let summary =
                    run_pass(&mut client, source.clone(), &pass.options(), progress::for_stderr().as_mut(), &stop)
                        .await?;
                println!("{}", status::summary_line(&summary));
                let next = started + every;
                while !stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < next {
                    tokio::time::sleep(Duration::from_millis(200).min(next - tokio::time::Instant::now())).await;
                }
            }
        }
        Command::Status => print!("{}", status::report(&client).await?),
        Command::Archive { older_than, to, batch_rows } => {
            let store = Source::open(&to).await?;
            let options = archive::ArchiveOptions { older_than, batch_rows };
            let s = archive::run_archive(&mut client, &store, &options).await?;
            println!(
                "archive to {}: {} batches ({} resumed), {} listings, {} attestations",
                store.describe(),
                s.batches,
                s.resumed,
                s.listings,
                s.attestations
            );
        }
        Command::Export { to, batch_rows } => {
            let store = Source::open(&to).await?;
            let s = export::run_export(&mut client, &store, batch_rows).await?;
            println!("export to {}: {} with {} files, {} listings", store.describe(), s.snapshot, s.files, s.listings);
        }
    }
    Ok(())
}

/// SIGINT/SIGTERM set `stop`; a second SIGINT exits at once.
fn watch_signals(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("resi-loader: interrupted twice, exiting now");
                std::process::exit(130);
            }
            tracing::warn!("stopping after the current object");
        }
    });
}
