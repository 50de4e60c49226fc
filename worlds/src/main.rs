//! `resi-worlds`: seeded adversarial worlds of miners' uploads, and how well the consensus
//! recovers their truth (issue 14).
//!
//! ```text
//! resi-worlds generate --scenario S --out DIR [--listings 2000] [--cycles 3] [--seed 14]
//!                      [--honest 8] [--sloppy 2] [--spammers 1] [--ring-size 12] [--ring-targets 0.4]
//!                      [--hard-pages 0] [--audit-rate 0]
//! resi-worlds audit    --world DIR --cycle K [--audit-api validation|record_audit] --database-url URL
//! resi-worlds score    --world DIR --database-url URL [--json FILE]
//! resi-worlds table    SCORE.json...
//! ```
//!
//! A world (module `world`) is listings with a truth that drifts over upload cycles, honest,
//! sloppy and spamming miners and a ring of colluding hotkeys, and the validator's audits;
//! `generate` writes it as a bucket of Parquet objects plus truth, miners and audits (module
//! `files`). Load the uploads with `resi-loader run --source DIR/uploads` cycle by cycle
//! (uploads.csv tells which objects belong to which cycle; scripts/truth-eval does it), run the
//! cycle's audits, and `score` the consensus against the truth.

#![forbid(unsafe_code)]

mod audit;
mod csv;
mod files;
mod rng;
mod score;
mod time;
mod world;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use postgres::{Client, NoTls};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "resi-worlds",
    version,
    about = "Adversarial worlds of miners' uploads, and the consensus scored against their truth"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a world: DIR/uploads (the bucket), uploads.csv, truth.csv, truth_cycle{k}.csv,
    /// miners.csv, audits.csv, world.json.
    Generate {
        #[arg(long, value_enum)]
        scenario: world::Scenario,
        /// A new folder (or one without an uploads folder).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
        listings: u32,
        /// Upload cycles, two hours apart.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=240))]
        cycles: u32,
        #[arg(long, default_value_t = 14)]
        seed: u64,
        #[arg(long, default_value_t = 8)]
        honest: u32,
        #[arg(long, default_value_t = 2)]
        sloppy: u32,
        #[arg(long, default_value_t = 1)]
        spammers: u32,
        /// Ring identities; copying rings have two scrapers and the rest copy them.
        #[arg(long, default_value_t = 12)]
        ring_size: u32,
        /// The share of listings the ring lies about, from 0 to 1.
        #[arg(long, default_value_t = world::RING_TARGET_SHARE, value_parser = share)]
        ring_targets: f64,
        /// The share of listings whose price every scraper misreads half the time, each with a
        /// value of its own, from 0 to 1.
        #[arg(long, default_value_t = 0.0, value_parser = share)]
        hard_pages: f64,
        /// The share of listings the validator audits in each cycle, e.g. 0.05.
        #[arg(long, default_value_t = 0.0)]
        audit_rate: f64,
    },
    /// Perform the audits of one cycle (after loading its uploads).
    Audit {
        #[arg(long)]
        world: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        cycle: u32,
        #[arg(long, value_enum, default_value = "validation")]
        audit_api: audit::AuditApi,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Compare resi.listings with the world's truth; report the miners' trust per kind.
    Score {
        #[arg(long)]
        world: PathBuf,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Also write the score as JSON to this file (for `table`).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One Markdown table row per score file written by `score --json`.
    Table {
        #[arg(required = true)]
        scores: Vec<PathBuf>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("resi-worlds: {e:#}");
        std::process::exit(1);
    }
}

/// A share from 0 to 1.
fn share(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{text} is not a share from 0 to 1")),
    }
}

fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).with_context(|| format!("cannot connect to {url}"))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate {
            scenario,
            out,
            listings,
            cycles,
            seed,
            honest,
            sloppy,
            spammers,
            ring_size,
            ring_targets,
            hard_pages,
            audit_rate,
        } => {
            let config = world::Config {
                scenario,
                seed,
                listings: listings as usize,
                cycles: cycles as usize,
                honest: honest as usize,
                sloppy: sloppy as usize,
                spammers: spammers as usize,
                ring_size: ring_size as usize,
                ring_targets,
                hard_pages,
                audit_rate,
            };
            let world = world::World::generate(&config)?;
            std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
            let s = files::write(&world, &out)?;
            println!(
                "{}: {} listings, {} cycles, {} miners, {} objects, {} rows, {} audits; at most {} objects per miner \
                 per UTC day, {} rows per object -> {}",
                scenario.name(),
                s.listings,
                s.cycles,
                s.miners.values().sum::<usize>(),
                s.objects,
                s.rows,
                s.audits,
                s.max_objects_per_miner_per_day,
                s.max_rows_per_object,
                out.display()
            );
        }
        Command::Audit { world, cycle, audit_api, database_url } => {
            let mut client = connect(&database_url)?;
            let t = audit::run(&mut client, &world, cycle as usize, audit_api)?;
            let failed = t.claims_failed.map(|f| format!(", {f} failed")).unwrap_or_default();
            println!("cycle {cycle}: {} listings audited, {} claims judged{failed}", t.listings, t.claims);
        }
        Command::Score { world, database_url, json } => {
            let mut client = connect(&database_url)?;
            let score = score::score(&mut client, &world)?;
            print!("{}", score.markdown());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&score)? + "\n")
                    .with_context(|| format!("write {}", path.display()))?;
            }
        }
        Command::Table { scores } => {
            let scores = scores
                .iter()
                .map(|path| {
                    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
                })
                .collect::<Result<Vec<score::Score>>>()?;
            print!("{}", score::table(&scores));
        }
    }
    Ok(())
}
