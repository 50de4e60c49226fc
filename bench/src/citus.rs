//! 10. The overhead of Citus per shard count (issue 18): the same work on a distributed database
//!     (`resi.distribute(n)`, n = 2, 4, 8, 16) of a Citus cluster on this machine against a
//!     single node (a plain database of the bench cluster):
//!     - the loader's fold: `resi-loader run` of the same generated uploads;
//!     - its fixed cost: the fold of one small object into the empty database, first;
//!     - the consensus of every listing (`resi.listing_consensus`, a count and a checksum),
//!       whose checksum must equal the single node's;
//!     - its fixed cost: the same query on the empty database;
//!     - single-listing reads: `api.listing(z)` for 200 zpids, whose checksum must equal too.
//!
//! The Citus cluster is the one `--citus-url` names (`scripts/bench` starts a coordinator and two
//! workers with `scripts/citus-cluster` when Citus is installed): its nodes share this machine's
//! cores, so the rows measure what Citus adds, not a speed-up. Each row also gives the cost per
//! shard, (t_n − t_single) / n, from which docs/scaling-out.md ("Throughput on paper") projects a
//! cluster of separate machines.

use crate::db::{self, Cluster};
use crate::generate;
use crate::ingest::{self, ROWS_PER_OBJECT};
use crate::report::{thousands, Row, Side, Stats, Target, Unit};
use crate::Bench;
use anyhow::{bail, Context, Result};
use postgres::Client;
use std::time::Duration;

/// Rows loaded at BENCH_SCALE=1 (3 objects: 5,000 listings, each reported by three miners):
/// about 1.5 s of `resi-loader run` on a single node, 7 s with 16 shards, on a quiet 2-core
/// machine (the group takes about 40 s a run there).
pub const ROWS: usize = 15_000;
/// The shard counts measured (shards per distributed table).
const SHARDS: [i32; 4] = [2, 4, 8, 16];
/// The listings `api.listing` reads, spread over the loaded zpids.
const READS: usize = 200;
/// The rows of the small object folded first (the fold's fixed cost), below the uploads' zpids.
const SMALL_ROWS: usize = 100;
const SMALL_FIRST_ZPID: u64 = 10_000_000;
/// The distributed database on the Citus cluster and the single node's on the bench cluster.
const DATABASE: &str = "resi_bench_citus";
const SINGLE_DATABASE: &str = "resi_bench_citus_single";

const CONSENSUS: &str = "SELECT count(*), coalesce(sum(hashtext(c::text)), 0)::bigint FROM resi.listing_consensus c";
/// One listing's answer without its `last_updated_at` (when the fold wrote it): a count and a
/// checksum.
const READ: &str = "SELECT count(*), coalesce(sum(hashtext((to_jsonb(l) - 'last_updated_at')::text)), 0)::bigint
  FROM api.listing($1) l";

/// The Citus cluster of `--citus-url`: its coordinator's maintenance database, which knows the
/// workers (`pg_dist_node`).
pub struct CitusCluster {
    /// The maintenance database of every node, coordinator first (the workers' as the
    /// coordinator registered them, in the coordinator's URL).
    admins: Vec<String>,
    /// The coordinator as the workers reach it, then each worker as the coordinator reaches it.
    nodes: Vec<(String, i32)>,
    pub version: String,
}

impl CitusCluster {
    /// Fails when `url` is not reachable, has no `citus` extension or no worker.
    pub fn open(url: &str) -> Result<CitusCluster> {
        let mut client = db::connect(url)?;
        let version: Option<String> =
            client.query_opt("SELECT extversion FROM pg_extension WHERE extname = 'citus'", &[])?.map(|r| r.get(0));
        let Some(version) = version else {
            bail!("{url} has no citus extension (scripts/citus-cluster start prepares its `postgres` database)");
        };
        let row = client.query_one("SELECT host(inet_server_addr()), inet_server_port()", &[])?;
        let (Some(host), Some(port)) = (row.get::<_, Option<String>>(0), row.get::<_, Option<i32>>(1)) else {
            bail!("connect to the coordinator over TCP (host:port), not a Unix socket: {url}");
        };
        let mut nodes = vec![(host, port)];
        nodes.extend(
            client
                .query(
                    "SELECT nodename, nodeport FROM pg_dist_node
                      WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeid",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1))),
        );
        if nodes.len() < 2 {
            bail!("the Citus cluster at {url} has no worker");
        }
        let admins = std::iter::once(url.to_owned())
            .chain(nodes[1..].iter().map(|(host, port)| url_at(url, host, *port)))
            .collect();
        Ok(CitusCluster { admins, nodes, version })
    }

    /// How many workers the coordinator has.
    pub fn workers(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The postmasters' process ids of the coordinator and the workers (their backends' parent),
    /// coordinator first: for the contention sampler (the nodes' CPU is the bench's own) and the
    /// fold's CPU per node. Fails for a node that is not on this machine.
    pub fn postmaster_pids(&self) -> Result<Vec<u32>> {
        self.admins
            .iter()
            .map(|url| {
                let backend: i32 = db::connect(url)?.query_one("SELECT pg_backend_pid()", &[])?.get(0);
                crate::machine::parent_pid(backend as u32).with_context(|| format!("the postmaster of {url}"))
            })
            .collect()
    }

    /// An empty database `name` on every node (dropped first if it exists), distributed over
    /// `shards` shards per table; returns its URL on the coordinator. Citus propagates neither
    /// CREATE DATABASE nor the extensions to a database it does not know: each node gets
    /// `CREATE DATABASE`, `CREATE EXTENSION citus` and `CREATE EXTENSION resi_pg`, workers first;
    /// then the coordinator registers itself and the workers in it (Citus keeps its node metadata
    /// per database) and runs `resi.distribute(shards)`.
    pub fn fresh_database(&self, name: &str, shards: i32) -> Result<String> {
        self.drop_database(name)?;
        for admin in self.admins.iter().rev() {
            db::connect(admin)?.batch_execute(&format!("CREATE DATABASE {name}"))?;
            db::connect(&db::url_for(admin, name))?
                .batch_execute("CREATE EXTENSION citus; CREATE EXTENSION resi_pg")
                .with_context(|| format!("CREATE EXTENSION citus, resi_pg in {name} of {admin}"))?;
        }
        let url = db::url_for(&self.admins[0], name);
        let mut client = db::connect(&url)?;
        let ((host, port), workers) = self.nodes.split_first().expect("the coordinator is a node");
        client.execute("SELECT citus_set_coordinator_host($1, $2)", &[host, port])?;
        for (host, port) in workers {
            client.execute("SELECT citus_add_node($1, $2)", &[host, port])?;
        }
        client.execute("SELECT resi.distribute($1)", &[&shards]).context("resi.distribute")?;
        Ok(url)
    }

    /// Drop `name` from every node, ending any session still in it.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        for admin in &self.admins {
            db::connect(admin)?.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        }
        Ok(())
    }
}

/// `url` (`scheme://[user@]host:port/database…`) with its host and port replaced.
fn url_at(url: &str, host: &str, port: i32) -> String {
    let authority = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[authority..].find(['/', '?']).map(|i| authority + i).unwrap_or(url.len());
    let at = url[authority..end].rfind('@').map(|i| authority + i + 1).unwrap_or(authority);
    format!("{}{host}:{port}{}", &url[..at], &url[end..])
}

/// What a database answered: the consensus's and the reads' counts and checksums.
type Answers = ((i64, i64), (i64, i64));

/// Where the measured work runs: the single node, or a distributed database of `n` shards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Single,
    Shards(i32),
}

impl Place {
    fn describe(self) -> String {
        match self {
            Place::Single => "single node".into(),
            Place::Shards(n) => format!("{n} shards"),
        }
    }
}

/// The rows of group `citus`; one row saying why when no Citus cluster was given.
pub fn run(bench: &Bench, cluster: &mut Cluster, rows: &mut Vec<Row>) -> Result<()> {
    let Some(url) = &bench.citus_url else {
        let reason = if citus_installed(cluster)? {
            "no Citus cluster given (`--citus-url`, RESI_BENCH_CITUS_URL; `make bench` starts one)"
        } else {
            "Citus is not installed: `CITUS_SRC=/path/to/citus-13.2.2.tar.gz scripts/citus-install`"
        };
        bench.log(format!("10. Citus: skipped, {reason}"));
        rows.push(Row::skipped("10. Citus overhead per shard count", format!("skipped: {reason}")));
        return Ok(());
    };
    let citus = CitusCluster::open(url)?;
    let seed = bench.seed ^ 0xc17;
    let uploads = generate::plan(seed, bench.size(ROWS), ROWS_PER_OBJECT);
    let total: usize = uploads.iter().map(|u| u.rows).sum();
    let folder = bench.work.join("citus");
    bench.log(format!("10. Citus: generating {} objects, {total} rows", uploads.len()));
    for upload in &uploads {
        generate::write_parquet(&folder, seed, upload, ROWS_PER_OBJECT)?;
    }
    let small_folder = bench.work.join("citus-small");
    let small = generate::single(seed, 0, SMALL_FIRST_ZPID, SMALL_ROWS, uploads.len());
    generate::write_parquet(&small_folder, seed, &small, ROWS_PER_OBJECT)?;
    let zpids: std::collections::BTreeSet<u64> = uploads.iter().flat_map(|u| u.zpids()).collect();
    let step = (zpids.len() / READS).max(1);
    let work = Work {
        source: folder.to_string_lossy().into_owned(),
        small_source: small_folder.to_string_lossy().into_owned(),
        rows: total + SMALL_ROWS,
        reads: zpids.iter().step_by(step).take(READS).map(u64::to_string).collect(),
    };

    // Whose CPU the fold uses: the single node's, or the coordinator's and the workers'.
    let single_postmaster = [cluster.postmaster_pid()?];
    let citus_postmasters = citus.postmaster_pids()?;
    let places: Vec<Place> = std::iter::once(Place::Single).chain(SHARDS.map(Place::Shards)).collect();
    let mut samples: Vec<Vec<Times>> = places.iter().map(|_| Vec::new()).collect();
    let mut single: Option<Answers> = None;
    let mut differing = Vec::new();
    for run in 1..=bench.runs {
        // The single node first, then the shard counts up; in the next run the other way round.
        let order: Vec<usize> =
            if run % 2 == 1 { (0..places.len()).collect() } else { (0..places.len()).rev().collect() };
        for i in order {
            let place = places[i];
            let postmasters = if place == Place::Single { &single_postmaster[..] } else { &citus_postmasters };
            let (times, answers) = measure(bench, cluster, &citus, place, &work, postmasters)?;
            bench.log(format!(
                "10. Citus run {run}/{}, {}: fold {:.2} s (small object {:.2} s), consensus {:.3} s (empty {:.3} s), \
                 {READS} reads {:.3} s",
                bench.runs,
                place.describe(),
                times.fold.as_secs_f64(),
                times.small_fold.as_secs_f64(),
                times.consensus.as_secs_f64(),
                times.empty_consensus.as_secs_f64(),
                times.reads.as_secs_f64()
            ));
            samples[i].push(times);
            // The first run measures the single node first.
            let expected = *single.get_or_insert(answers);
            match place {
                _ if answers == expected => {}
                Place::Single => bail!("the single node answered {answers:?}, then {expected:?}: not deterministic"),
                Place::Shards(n) => {
                    bench.log(format!("10. Citus, {n} shards: answered {answers:?}, the single node {expected:?}"));
                    differing.push(n);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&folder);
    let _ = std::fs::remove_dir_all(&small_folder);

    let loaded = format!(
        "{} rows in {} objects of {}, {} miners ({} listings); a coordinator and {} workers on this machine",
        thousands(total),
        uploads.len(),
        thousands(ROWS_PER_OBJECT),
        generate::MINERS,
        thousands(zpids.len()),
        citus.workers()
    );
    // The last run's stages of each database, for the fold's notes.
    let stages: Vec<String> = places
        .iter()
        .zip(&samples)
        .map(|(place, times)| match times.last().and_then(|t| t.stages.as_ref()) {
            Some(stages) => format!("{}: {}", place.describe(), ingest::describe_stages(stages)),
            None => format!("{}: no stages recorded", place.describe()),
        })
        .collect();
    let cpu = fold_cpu_note(&places, &samples);
    let kinds = [
        Kind {
            measurement: "10. Citus fold",
            what: "`resi-loader run --source DIR`",
            size: loaded.clone(),
            time: |t| t.fold,
            notes: vec![
                format!(
                    "10 (fold): each run loads the same uploads into a fresh database: on the single node `CREATE \
                 EXTENSION resi_pg` in the bench cluster; distributed, `CREATE EXTENSION citus; CREATE EXTENSION \
                 resi_pg` on every node of the Citus cluster (Citus {}, `scripts/citus-cluster`: a coordinator and \
                 {} workers on 127.0.0.1, each a private cluster with the bench cluster's settings), the \
                 coordinator and the workers registered in it, then `SELECT resi.distribute(n)`, untimed. The time \
                 is the whole `resi-loader run` process against the coordinator (default batches), checked to load \
                 every object and attest every row. The nodes share this machine's cores: the ratio is Citus's \
                 overhead, not a speed-up. Per shard: (t_n − t_single) / n of the medians. The single node goes \
                 first in odd runs, last in even ones.",
                    citus.version,
                    citus.workers()
                ),
                format!(
                    "10 (fold): where the uploads' fold spent its time (the last run, seconds summed per stage; \
                 reading overlaps the fold): {}",
                    stages.join("; ")
                ),
                cpu,
            ],
        },
        Kind {
            measurement: "10. Citus fold of one small object",
            what: "`resi-loader run --source DIR`",
            size: format!("one object of {SMALL_ROWS} rows into the empty database"),
            time: |t| t.small_fold,
            notes: vec![format!(
                "10 (small fold): the fold's fixed cost: before the uploads, each fresh database gets one object \
                 of {SMALL_ROWS} rows (new listings, zpids below the uploads'), loaded by its own `resi-loader run`; \
                 the uploads' fold then runs after it everywhere alike."
            )],
        },
        Kind {
            measurement: "10. Citus consensus of every listing",
            what: "`SELECT count(*), sum(hashtext(c::text)) FROM resi.listing_consensus c`",
            size: loaded,
            time: |t| t.consensus,
            notes: vec!["10 (consensus): after each load, on a new connection, the query once untimed (plans, the \
                   coordinator's connections to the workers), then timed; Citus pushes it down to the shards whole \
                   and adds up the shards' counts and sums; the two workers run their shards' queries at once, on \
                   the machine's two cores, so the distributed query can take less time than the single node's. \
                   Its count and checksum must equal the single node's (a shard count that differs fails and loses \
                   its rows)."
                .into()],
        },
        Kind {
            measurement: "10. Citus consensus, no listings",
            what: "the same query",
            size: "the empty database".into(),
            time: |t| t.empty_consensus,
            notes: vec![
                "10 (consensus, no listings): the query's fixed cost: the same query (once untimed, then timed) on \
                   each fresh database before anything is loaded."
                    .into(),
            ],
        },
        Kind {
            measurement: "10. Citus `api.listing`",
            what: "`SELECT * FROM api.listing(z)`",
            size: format!("{READS} calls after the fold of {} rows", thousands(total)),
            time: |t| t.reads,
            notes: vec![format!(
                "10 (reads): after the consensus, on a new connection, {READS} calls of one prepared \
                 `api.listing(z)`, zpids spread over the loaded ones. Their checksum (each answer without \
                 `last_updated_at`) must equal the single node's. Each call is planned on the coordinator and \
                 its query (`resi.listing_detail`) routed to the zpid's shard: what grows is the coordinator's \
                 planning and a round trip to a worker per call, not the work."
            )],
        },
    ];
    for kind in kinds {
        let single = Stats::of(&seconds(&samples[0], kind.time));
        let medians: Vec<(f64, f64)> = places
            .iter()
            .zip(&samples)
            .filter_map(|(place, times)| match place {
                Place::Shards(n) => Some((f64::from(*n), Stats::of(&seconds(times, kind.time)).median)),
                Place::Single => None,
            })
            .collect();
        let (intercept, slope) = fit(&medians);
        let mut notes = kind.notes;
        notes.push(format!(
            "{}, fitted over the shard counts (least squares of the medians): t ≈ {intercept:.3} s {:+.1} ms × \
             shards; the step from the single node ({:.3} s) to a distributed database, whatever its shards: \
             {:+.3} s",
            kind.measurement,
            1000.0 * slope,
            single.median,
            intercept - single.median
        ));
        for (place, times) in places.iter().zip(&samples) {
            let Place::Shards(n) = *place else { continue };
            if differing.contains(&n) {
                continue;
            }
            let stats = Stats::of(&seconds(times, kind.time));
            let per_shard_ms = 1000.0 * (stats.median - single.median) / f64::from(n);
            let subject =
                Side::new(format!("{}, {n} shards: {per_shard_ms:+.1} ms per shard", kind.what), stats, Unit::Seconds);
            let baseline = Side::new(format!("{}, single node", kind.what), single, Unit::Seconds);
            rows.push(Row {
                measurement: format!("{}, {n} shards", kind.measurement),
                size: kind.size.clone(),
                ratio: Row::time_ratio(&subject, &baseline),
                ratio_meaning: "time ratio",
                subject,
                baseline: Some(baseline),
                target: Target::Reported,
                notes: if n == SHARDS[0] { std::mem::take(&mut notes) } else { vec![] },
            });
        }
    }
    if !differing.is_empty() {
        differing.sort_unstable();
        differing.dedup();
        bail!(
            "a distributed database answered differently from the single node ({} shards): its rows are left out",
            differing.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// The note on the CPU the nodes used during the uploads' fold, relative to the single node's.
fn fold_cpu_note(places: &[Place], samples: &[Vec<Times>]) -> String {
    // The median over the runs of the coordinator's (or single node's) and of the workers' ticks.
    let median = |times: &[Times], of: fn(&[u64]) -> u64| {
        Stats::of(&times.iter().map(|t| of(&t.fold_cpu) as f64).collect::<Vec<_>>()).median
    };
    let node: fn(&[u64]) -> u64 = |cpu| cpu.first().copied().unwrap_or(0);
    let workers: fn(&[u64]) -> u64 = |cpu| cpu.iter().skip(1).sum();
    let single = median(&samples[0], node);
    if single <= 0.0 {
        return "10 (fold): the nodes' CPU could not be read (/proc)".into();
    }
    let parts: Vec<String> = places
        .iter()
        .zip(samples)
        .skip(1)
        .map(|(place, times)| {
            let (coordinator, workers) = (median(times, node) / single, median(times, workers) / single);
            format!(
                "{}: {:.2}× (coordinator {coordinator:.2}×, workers {workers:.2}×)",
                place.describe(),
                coordinator + workers
            )
        })
        .collect();
    format!(
        "10 (fold): the CPU the database's PostgreSQL processes used during the uploads' fold (from /proc: each \
         node's postmaster, its reaped children and its live descendants; the loader's own excluded), median of \
         the runs, relative to the single node's: {}",
        parts.join("; ")
    )
}

/// One time of each run, in seconds.
fn seconds(times: &[Times], time: fn(&Times) -> Duration) -> Vec<f64> {
    times.iter().map(|t| time(t).as_secs_f64()).collect()
}

/// The least-squares line through `points` (x, y): (intercept, slope).
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (mean_x, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let slope = covariance / variance;
    (mean_y - slope * mean_x, slope)
}

/// One kind of row: a measured time of each database.
struct Kind {
    measurement: &'static str,
    what: &'static str,
    size: String,
    time: fn(&Times) -> Duration,
    notes: Vec<String>,
}

/// What each measured database is given and asked.
struct Work {
    /// The uploads' folder.
    source: String,
    /// The folder of the small object folded first.
    small_source: String,
    /// Rows the two folds attest.
    rows: usize,
    /// The zpids `api.listing` reads.
    reads: Vec<String>,
}

/// The times of one measured database.
struct Times {
    empty_consensus: Duration,
    small_fold: Duration,
    fold: Duration,
    consensus: Duration,
    reads: Duration,
    /// Where the uploads' fold spent its time (`resi.ingest_runs.stage_seconds`).
    stages: Option<serde_json::Value>,
    /// The CPU the database's nodes used during the uploads' fold, in clock ticks: the node
    /// (the coordinator), then each worker.
    fold_cpu: Vec<u64>,
}

/// A fresh database at `place`: the consensus of its empty tables, the small object's fold, the
/// uploads' fold, the consensus of every listing and `api.listing` of the zpids to read; drops
/// the database.
fn measure(
    bench: &Bench,
    cluster: &mut Cluster,
    citus: &CitusCluster,
    place: Place,
    work: &Work,
    postmasters: &[u32],
) -> Result<(Times, Answers)> {
    let url = match place {
        Place::Single => cluster.fresh_database(SINGLE_DATABASE, true)?,
        Place::Shards(n) => citus.fresh_database(DATABASE, n)?,
    };
    let (empty_consensus, _) = consensus(&url)?;
    let small_fold = fold(bench, &url, &work.small_source)?;
    let cpu_before: Vec<u64> = postmasters.iter().map(|&pid| node_cpu_ticks(pid)).collect();
    let fold = fold(bench, &url, &work.source)?;
    let fold_cpu = postmasters.iter().zip(cpu_before).map(|(&pid, before)| node_cpu_ticks(pid) - before).collect();
    let (consensus, consensus_answer) = consensus(&url)?;
    let mut client = db::connect(&url)?;
    check_loaded(&mut client, work.rows)?;
    let stages = client
        .query_one("SELECT stage_seconds::text FROM resi.ingest_runs ORDER BY id DESC LIMIT 1", &[])?
        .get::<_, Option<String>>(0)
        .and_then(|text| serde_json::from_str(&text).ok());
    let (reads, reads_answer) = db::timed(|| read_listings(&mut client, &work.reads))?;
    drop(client);
    match place {
        Place::Single => cluster.drop_database(SINGLE_DATABASE)?,
        Place::Shards(_) => citus.drop_database(DATABASE)?,
    }
    let times = Times { empty_consensus, small_fold, fold, consensus, reads, stages, fold_cpu };
    Ok((times, (consensus_answer, reads_answer)))
}

/// The CPU time a PostgreSQL node has used, in clock ticks: its postmaster's own and its reaped
/// children's (`utime + stime + cutime + cstime`) and that of every process still descending from
/// it. 0 for a process not found (not on this machine).
fn node_cpu_ticks(postmaster: u32) -> u64 {
    // pid → (ppid, utime + stime, cutime + cstime), from `pid (comm) state ppid … utime stime cutime cstime`.
    let processes: std::collections::HashMap<u32, (u32, u64, u64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<u64> =
                stat[stat.rfind(')')? + 1..].split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
            Some((pid, (*fields.first()? as u32, fields.get(10)? + fields.get(11)?, fields.get(12)? + fields.get(13)?)))
        })
        .collect();
    let descends = |mut pid: u32| {
        for _ in 0..64 {
            match processes.get(&pid) {
                Some(&(parent, _, _)) if parent == postmaster => return true,
                Some(&(parent, _, _)) if parent > 1 => pid = parent,
                _ => return false,
            }
        }
        false
    };
    let own = processes.get(&postmaster).map_or(0, |&(_, cpu, children)| cpu + children);
    own + processes.iter().filter(|(&pid, _)| descends(pid)).map(|(_, &(_, cpu, _))| cpu).sum::<u64>()
}

/// `resi-loader run --source SOURCE` into `url`, timed; fails if the loader does.
fn fold(bench: &Bench, url: &str, source: &str) -> Result<Duration> {
    let (elapsed, output) = db::timed(|| {
        ingest::loader_command(&bench.loader, url, source)
            .output()
            .with_context(|| format!("run {}", bench.loader.display()))
    })?;
    if !output.status.success() {
        bail!("resi-loader failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(elapsed)
}

/// [`CONSENSUS`] on a new connection to `url`: once untimed, then timed.
fn consensus(url: &str) -> Result<(Duration, (i64, i64))> {
    let mut client = db::connect(url)?;
    client.query_one(CONSENSUS, &[])?;
    db::timed_checksum(&mut client, CONSENSUS)
}

/// Every object loaded and every row attested.
fn check_loaded(client: &mut Client, total: usize) -> Result<()> {
    let row = client.query_one(
        "SELECT count(*) FILTER (WHERE status <> 'loaded'), coalesce(sum(rows_attested), 0)::bigint
           FROM resi.ingest_ledger",
        &[],
    )?;
    let (not_loaded, attested): (i64, i64) = (row.get(0), row.get(1));
    if not_loaded > 0 || attested != total as i64 {
        bail!("the loader left {not_loaded} objects not loaded and attested {attested} of {total} rows");
    }
    Ok(())
}

/// `api.listing(z)` for each zpid: the rows returned and the sum of their checksums.
fn read_listings(client: &mut Client, zpids: &[String]) -> Result<(i64, i64)> {
    let statement = client.prepare(READ)?;
    let mut answer = (0i64, 0i64);
    for zpid in zpids {
        let row = client.query_one(&statement, &[zpid])?;
        let (count, checksum): (i64, i64) = (row.get(0), row.get(1));
        answer = (answer.0 + count, answer.1.wrapping_add(checksum));
    }
    if answer.0 != zpids.len() as i64 {
        bail!("api.listing found {} of {} listings", answer.0, zpids.len());
    }
    Ok(answer)
}

/// Whether `citus.so` is in the bench cluster's library directory.
fn citus_installed(cluster: &mut Cluster) -> Result<bool> {
    let dir: String = cluster.admin().query_one("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'", &[])?.get(0);
    Ok(std::path::Path::new(&dir).join("citus.so").exists())
}

#[cfg(test)]
mod tests {
    use super::{fit, url_at};

    #[test]
    fn fits_a_line() {
        let (intercept, slope) = fit(&[(2.0, 5.0), (4.0, 9.0), (8.0, 17.0), (16.0, 33.0)]);
        assert!((intercept - 1.0).abs() < 1e-9 && (slope - 2.0).abs() < 1e-9, "{intercept} {slope}");
    }

    #[test]
    fn replaces_the_host_and_port() {
        assert_eq!(
            url_at("postgresql://postgres@127.0.0.1:23900/postgres", "10.0.0.2", 5432),
            "postgresql://postgres@10.0.0.2:5432/postgres"
        );
        assert_eq!(url_at("postgres://h:1/db?sslmode=disable", "w", 2), "postgres://w:2/db?sslmode=disable");
        assert_eq!(url_at("postgresql://u:pw@h:1/db", "w", 2), "postgresql://u:pw@w:2/db");
    }
}
