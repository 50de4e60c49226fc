//! Faults (issue 6): whatever interrupts a pass, a rerun ends with exactly the database of an
//! undisturbed run over the same uploads: the same listings (and `resi.listing_hash` of each),
//! attestations (and their count per object), claims, ledger statuses and verdicts, miners'
//! trust and counters (`common::database_state`). The interruptions: the `resi-loader` binary
//! killed with SIGKILL at random points (while it lists, mid-COPY, mid-fold, between objects),
//! PostgreSQL stopped with an immediate shutdown in the middle of a fold, the S3 server dropped
//! in the middle of a download. A `pg_dump`/`pg_restore` of a loaded database into a fresh
//! one gives the same installation and rows, and the loader resumes there without reloading
//! anything. Four loaders at once do the work of one; an unreachable database or source is a
//! clear error; `watch` stops cleanly on SIGTERM.
//!
//! Environment: `RESI_FAULT_KILLS` (default 10) SIGKILLs over `RESI_FAULT_OBJECTS` (default
//! 120) uploads; `RESI_FAULT_SEED` repeats a run's random choices (each kill's delay as a share
//! of the work left, the S3 cut; each test prints its seed, and a failing test's output shows
//! it). `make test-faults` runs a longer loop.

mod common;

use common::*;
use resi_e2e::{Catalogue, Edition, PrivateCluster};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const LOADER: &str = env!("CARGO_BIN_EXE_resi-loader");

/// The loader's `application_name`, to find its backend in `pg_stat_activity`.
const APP: &str = "resi-fault-loader";

/// What the tests run over, from the environment (see the module documentation).
struct Settings {
    kills: usize,
    objects: usize,
}

fn settings() -> Settings {
    let var = |name: &str, default: usize| -> usize {
        std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
    };
    Settings { kills: var("RESI_FAULT_KILLS", 10), objects: var("RESI_FAULT_OBJECTS", 120).max(24) }
}

/// `RESI_FAULT_SEED`, else a new one; printed so a failure can be repeated.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("RESI_FAULT_SEED").map_or_else(
        |_| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        },
        |v| v.parse().expect("RESI_FAULT_SEED is a number"),
    );
    println!("{test}: RESI_FAULT_SEED={seed} repeats this run's random choices");
    seed
}

/// SplitMix64: a small seeded generator, the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `objects` uploads of 300 rows in three row groups, of five miners (more beyond 300 objects:
/// at most 60 each, within a new miner's daily allowance of 100), job after job over 1,350
/// listings that every miner reports and consecutive jobs share; seven seconds apart on
/// 2025-09-17 (file times say so: a folder and S3 give the same order and day). Plus a file
/// outside the key layout and a truncated upload, both rejected.
fn generate(dir: &Path, objects: usize) {
    let miners = (objects / 60).max(5);
    for i in 0..objects {
        let job = i / miners;
        let secs = i * 7;
        let key = format!(
            "data/hotkey=5Miner{:02}/job_id=zillow_zip_{}/data_20250917_{:02}{:02}{:02}_300.parquet",
            i % miners,
            77_000 + job,
            8 + secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        write_upload(&dir.join(key), 1_000 + (job % 8) as u64 * 150, 300, i as u64, 100);
    }
    let broken = dir.join("data/hotkey=5Miner00/job_id=zillow_zip_broken/data_20250917_080500_10.parquet");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, b"PAR1 the upload stopped here").unwrap();
    std::fs::write(dir.join("data/hotkey=5Miner00/notes.txt"), b"not an upload").unwrap();
    set_upload_times(dir);
}

/// A `resi-loader run` of `source` into `url`, with the tests' application name; stdout (the
/// summary line) and stderr piped.
fn loader(url: &str, source: &str) -> Command {
    let mut cmd = Command::new(LOADER);
    // Batches of five objects: a job is many batches, so kills land between, inside and after
    // them (the default batch would hold the whole job).
    cmd.args(["run", "--source", source, "--database-url", &format!("{url}?application_name={APP}")])
        .args(["--batch-objects", "5"])
        .env("RESI_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn folder(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

/// Run to the end; it must succeed. Its summary line.
fn completed_run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "the loader failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The database an undisturbed run of the binary over `generate(objects)` leaves, and how
/// long the run took.
fn undisturbed(objects: usize) -> (String, Duration) {
    let dir = TempDir::new("undisturbed");
    generate(&dir.0, objects);
    let db = TestDatabase::new("faults_reference");
    let started = Instant::now();
    let summary = completed_run(loader(&db.url, folder(&dir.0)));
    let took = started.elapsed();
    assert!(summary.contains(&format!(" {objects} loaded, 2 rejected, 0 deferred, 0 skipped")), "{summary}");
    (database_state(&db.url), took)
}

/// [`undisturbed`] over the default number of objects, computed once for the tests that share it.
fn reference() -> &'static (String, Duration) {
    static REFERENCE: OnceLock<(String, Duration)> = OnceLock::new();
    REFERENCE.get_or_init(|| undisturbed(settings().objects))
}

/// Poll `check` every few milliseconds until it gives a value; fail after `timeout`.
fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Objects the ledger has settled (loaded or rejected).
fn settled(client: &mut postgres::Client) -> i64 {
    resi_e2e::scalar(client, "SELECT count(*) FROM resi.ingest_ledger WHERE status <> 'deferred'")
}

/// What an interrupted pass may leave: every object all or nothing. Each loaded object has
/// exactly its attested rows, nothing else has any, and the listings and claims count every
/// attestation once. Empty when it holds, else the violations. (Joins to the attestations'
/// counts, not subqueries per object: on a Citus coordinator the ledger is local and the
/// attestations distributed.)
fn broken_invariants(client: &mut postgres::Client) -> String {
    client
        .query_one(
            "WITH attested AS (SELECT s3_file_path, count(*) AS n FROM resi.miner_attestations GROUP BY 1)
             SELECT concat_ws(E'\\n',
                (SELECT string_agg(format('%s: %s %s, %s attestations', object_key, status, rows_attested, n), E'\\n')
                   FROM (SELECT l.object_key, l.status, l.rows_attested, coalesce(a.n, 0) AS n
                           FROM resi.ingest_ledger l LEFT JOIN attested a ON a.s3_file_path = l.object_key) o
                  WHERE n <> CASE WHEN status = 'loaded' THEN rows_attested ELSE 0 END),
                (SELECT format('%s attestations of no ledger object', sum(a.n)) FROM attested a
                   LEFT JOIN resi.ingest_ledger l ON l.object_key = a.s3_file_path
                  WHERE l.object_key IS NULL
                 HAVING count(*) > 0),
                (SELECT format('listings count %s attestations, claims %s, there are %s', l, c, a)
                   FROM (SELECT (SELECT coalesce(sum(total_attestations), 0) FROM resi.listings) l,
                                (SELECT coalesce(sum(attestations), 0) FROM resi.miner_claims) c,
                                (SELECT count(*) FROM resi.miner_attestations) a) t
                  WHERE l <> a OR c <> a))",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Where a loader is in its pass, from its backend's `pg_stat_activity` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// The process starts and connects (no backend yet, or it checks the extension).
    Starting,
    /// The pass begins: run row, staging cleared, the source listed, the ledger read.
    Listing,
    /// Between objects: the last one committed, the next one's rows not yet sent (claim,
    /// ledger row, admission, footer).
    Between,
    /// Rows streaming into `resi.staging_listings`.
    Copy,
    /// The COPY ended and the extension's trigger is folding the rows (it holds a lock on
    /// `resi.miner_attestations`).
    Fold,
    /// The fold is done: ledger counts, COMMIT.
    Commit,
    /// After the objects: stale listings refreshed, the run row closed.
    Finishing,
}

fn phase_of(state: &str, query: &str, folding: bool) -> Phase {
    let q = query.trim_start();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| q.starts_with(p));
    if starts(&["COPY resi.staging_listings"]) {
        match (state, folding) {
            ("active", true) => Phase::Fold,
            ("active", false) => Phase::Copy,
            _ => Phase::Commit,
        }
    } else if q == "COMMIT" {
        if state == "active" {
            Phase::Commit
        } else {
            Phase::Between
        }
    } else if starts(&["UPDATE resi.ingest_ledger", "ROLLBACK TO SAVEPOINT", "SELECT current_setting('resi_fold"]) {
        Phase::Commit
    } else if starts(&[
        "BEGIN",
        "SELECT pg_try_advisory_xact_lock",
        "SELECT array_agg(pg_try_advisory_xact_lock",
        "SELECT status, reason FROM resi.ingest_ledger",
        "SELECT u.n::integer - 1, l.status",
        "SELECT resi.admit_submission",
        "SELECT u.n::integer - 1, resi.admit_submission",
        "INSERT INTO resi.ingest_ledger",
        "WITH u AS",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
    ]) {
        Phase::Between
    } else if starts(&["SELECT resi.refresh_stale_consensus", "UPDATE resi.ingest_runs"]) {
        Phase::Finishing
    } else if starts(&[
        "INSERT INTO resi.ingest_runs",
        "SELECT resi.clear_staging",
        "SELECT object_key, etag FROM resi.ingest_ledger",
        "SELECT (resi.ingest_settings())",
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc",
    ]) {
        Phase::Listing
    } else {
        Phase::Starting
    }
}

/// The phase of the loader connected to the database of `client` (the one `APP` backend;
/// `Starting` when there is none yet).
fn phase(client: &mut postgres::Client) -> Phase {
    activity(client).0
}

/// [`phase`], and the backend's state and statement (shortened).
fn activity(client: &mut postgres::Client) -> (Phase, String) {
    let rows = client
        .query(
            "SELECT a.state, a.query,
                    EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.relation = 'resi.miner_attestations'::regclass)
               FROM pg_stat_activity a
              WHERE a.datname = current_database() AND a.application_name = $1 AND a.backend_type = 'client backend'",
            &[&APP],
        )
        .unwrap();
    match rows.first() {
        None => (Phase::Starting, "no backend".into()),
        Some(r) => {
            let (state, query): (Option<&str>, Option<&str>) = (r.get(0), r.get(1));
            let (state, query) = (state.unwrap_or(""), query.unwrap_or("").trim_start());
            let short: String = query.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
            (phase_of(state, query, r.get(2)), format!("{state}: {short}"))
        }
    }
}

/// Wait until no backend of a loader is left in the database (a killed loader's backend ends
/// when it notices the lost client, after the statement it was running, e.g. a fold).
fn wait_for_no_loader_backend(client: &mut postgres::Client) {
    poll("the loader's backend to end", Duration::from_secs(120), || {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
                &[&APP],
            )
            .unwrap()
            .get(0);
        (n == 0).then_some(())
    });
}

/// The phases the kill loop aims at, in turn.
const AIMS: [Phase; 4] = [Phase::Fold, Phase::Copy, Phase::Listing, Phase::Between];

/// SIGKILL the loader `RESI_FAULT_KILLS` times at seeded random points spread over the whole
/// job, each aimed at a phase in turn (after a random delay, the next moment the loader is in
/// it); after each kill every object is all or nothing. Then reruns finish the job, and the
/// database is the undisturbed one.
#[test]
fn killed_loaders_rerun_to_the_same_database() {
    let db = TestDatabase::new("faults_kill");
    kill_and_rerun("killed_loaders_rerun_to_the_same_database", &db.url);
}

/// [`killed_loaders_rerun_to_the_same_database`] through the coordinator of a Citus cluster
/// (`make test-citus`; skipped without `RESI_TEST_CITUS_URL`), the tables distributed: every
/// object all or nothing after each kill, and the reruns end with the single node's
/// undisturbed database.
#[test]
fn killed_loaders_on_a_citus_coordinator_rerun_to_the_single_nodes_database() {
    let Some(citus) = resi_e2e::CitusDatabase::distributed("faults_kill", 4) else { return };
    kill_and_rerun("killed_loaders_on_a_citus_coordinator_rerun_to_the_single_nodes_database", &citus.url);
}

/// The kills and reruns of [`killed_loaders_rerun_to_the_same_database`] against the empty
/// database at `url`.
fn kill_and_rerun(test: &str, url: &str) {
    let Settings { kills, objects } = settings();
    let seed = seed(test);
    let mut rng = Rng(seed);
    let (expected, took) = reference();
    let dir = TempDir::new("kill");
    generate(&dir.0, objects);
    let mut client = connect(url);
    let total = objects as i64 + 2;
    let mut hits: Vec<(Phase, Phase)> = Vec::new();
    let mut log = String::new();
    // The time an object takes: the undisturbed run's at first, then what the killed runs show.
    let (mut spent, mut progressed) = (*took, total);
    // After the planned kills, more (at most one per phase) aimed at any phase not hit yet.
    while hits.len() < kills + AIMS.len() {
        let missing: Vec<Phase> = AIMS.iter().copied().filter(|a| !hits.iter().any(|(_, hit)| hit == a)).collect();
        let aim = match hits.len() {
            n if n < kills => AIMS[n % AIMS.len()],
            _ if missing.is_empty() => break,
            _ => missing[0],
        };
        let done = settled(&mut client);
        assert!(done < total, "seed {seed}: the job ended after {} kills\n{log}", hits.len());
        // A random delay, so that about `kills` of them spread over what is left of the job.
        let left = spent.mul_f64((total - done) as f64 / progressed as f64);
        let kills_left = kills.saturating_sub(hits.len()).max(1);
        let delay = match aim {
            Phase::Listing => Duration::ZERO,
            _ => left.mul_f64((2.0 * rng.unit() / (kills_left + 1) as f64).min(0.5)),
        };
        let mut child = loader(url, folder(&dir.0)).spawn().unwrap();
        let started = Instant::now();
        let exited = |child: &mut Child| child.try_wait().unwrap().is_some();
        while started.elapsed() < delay && !exited(&mut child) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Then the next moment it is in the phase aimed at (for the listing: before any object).
        let (mut hit, mut doing) = activity(&mut client);
        while hit != aim && !(aim == Phase::Listing && hit > Phase::Listing) && !exited(&mut child) {
            assert!(started.elapsed() < Duration::from_secs(120), "seed {seed}: never saw {aim:?}");
            (hit, doing) = activity(&mut client);
        }
        assert!(!exited(&mut child), "seed {seed}: the loader finished before kill {}\n{log}", hits.len() + 1);
        child.kill().unwrap(); // SIGKILL
        let at = started.elapsed();
        child.wait().unwrap();
        // The invariants are checked once the killed loader's backend is gone (a pass started
        // at once waits for it: `a_rerun_right_after_a_kill_loads_in_upload_order`).
        wait_for_no_loader_backend(&mut client);
        let broken = broken_invariants(&mut client);
        assert!(broken.is_empty(), "seed {seed}: after kill {} ({hit:?}): {broken}\n{log}", hits.len() + 1);
        hits.push((aim, hit));
        if aim != Phase::Listing {
            spent += at;
            progressed += settled(&mut client) - done;
        }
        log += &format!(
            "kill {:2} at {:5} ms (delay {:5} ms) aimed at {aim:?}, hit {hit:?} ({doing}); {}/{total} objects settled\n",
            hits.len(),
            at.as_millis(),
            delay.as_millis(),
            settled(&mut client)
        );
    }
    println!("{log}");
    for aim in AIMS {
        assert!(hits.iter().any(|(_, hit)| *hit == aim), "seed {seed}: no kill while {aim:?}\n{log}");
    }
    // A rerun finishes the job, a second one finds nothing to do.
    let done = settled(&mut client);
    let rerun = completed_run(loader(url, folder(&dir.0)));
    assert!(rerun.contains(&format!(" {total} objects seen, ")), "{rerun}");
    assert!(rerun.contains(&format!(" deferred, {done} skipped;")), "seed {seed}: {rerun}");
    let again = completed_run(loader(url, folder(&dir.0)));
    assert!(again.contains(&format!(" 0 loaded, 0 rejected, 0 deferred, {total} skipped;")), "{again}");
    let state = database_state(url);
    assert!(state == *expected, "seed {seed}: the database differs from the undisturbed run's\n{log}");
    // A killed pass's run row (if it got as far as writing it) is marked interrupted by the
    // next pass, which finds its backend gone.
    let runs = |status: &str| count(url, &format!("SELECT count(*) FROM resi.ingest_runs WHERE status = '{status}'"));
    assert_eq!((runs("completed"), runs("running")), (2, 0));
    let all = count(url, "SELECT count(*) FROM resi.ingest_runs");
    let interrupted = runs("interrupted");
    assert!(interrupted <= hits.len() as i64 && interrupted + 2 == all, "{interrupted} interrupted of {all}");
}

/// A pass started at once after a loader was killed mid-fold (as a service manager restarting
/// it would) finds the object still locked by the killed loader's backend, which finishes (or
/// abandons) the fold before it notices the lost client. The pass waits for that object instead
/// of skipping it (it used to skip it and load every later object first: out of upload order,
/// so the fold's verdicts differed from an undisturbed run's), and ends with the undisturbed
/// run's database.
#[test]
fn a_rerun_right_after_a_kill_loads_in_upload_order() {
    let (expected, _) = undisturbed(60);
    let dir = TempDir::new("rerun-at-once");
    generate(&dir.0, 60);
    let db = TestDatabase::new("faults_rerun_at_once");
    let mut client = db.client();
    let mut child = loader(&db.url, folder(&dir.0)).spawn().unwrap();
    poll("a fold after ten objects", Duration::from_secs(120), || {
        (settled(&mut client) >= 10 && phase(&mut client) == Phase::Fold).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let rerun = completed_run(loader(&db.url, folder(&dir.0)));
    let left_out = 62 - settled(&mut client);
    assert_eq!(left_out, 0, "the rerun left {left_out} object(s) out: {rerun}");
    assert!(database_state(&db.url) == expected, "the database differs from the undisturbed run's");
}

/// A new database `name` of `cluster` with the edition under test, as [`TestDatabase::new`]
/// installs it; its URL. Natively `CREATE EXTENSION resi_pg`. The portable edition is a copy of
/// a fresh plain migration of the shared test cluster ([`dump`], [`restore`]: what
/// `dump_and_restore_keep_the_database_and_the_loader_resumes` shows to be the same
/// installation), owned as there by its installer, a role without superuser that may only
/// create in this database.
fn database_under_test(cluster: &PrivateCluster, name: &str) -> String {
    if Edition::under_test() == Edition::Native {
        return cluster.database_with_extension(name);
    }
    let fresh = TestDatabase::new("faults_fresh");
    let files = TempDir::new("fresh-dump");
    let file = files.0.join("fresh.dump");
    dump(&fresh.url, &file);
    let owner: String = resi_e2e::scalar(
        &mut fresh.client(),
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'resi'",
    );
    let mut admin = resi_e2e::connect(&cluster.url);
    for statement in [
        format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB"),
        format!("CREATE DATABASE {name}"),
        format!("GRANT CREATE ON DATABASE {name} TO {owner}"),
    ] {
        admin.batch_execute(&statement).unwrap();
    }
    let url = resi_e2e::url_for(&cluster.url, name);
    restore(&file, &url);
    url
}

/// PostgreSQL stops with an immediate shutdown (every backend gone at once, no checkpoint: as
/// after a power cut) while the extension folds an object; after crash recovery the database
/// holds every committed object whole and nothing of the one being folded, the loader has
/// failed with a message, and a rerun ends with the undisturbed run's database. On a private
/// cluster, destroyed afterwards pass or fail.
#[test]
fn immediate_shutdown_mid_fold_then_rerun() {
    let objects = settings().objects;
    let (expected, _) = reference();
    let cluster = PrivateCluster::start("crash");
    let url = database_under_test(&cluster, "resi_crash");
    // The throwaway clusters run with synchronous_commit = off, which may lose the last commits
    // in a crash (the rerun would load those objects again); here a commit is a commit.
    resi_e2e::connect(&cluster.url).batch_execute("ALTER DATABASE resi_crash SET synchronous_commit = on").unwrap();
    let dir = TempDir::new("crash");
    generate(&dir.0, objects);
    let mut client = resi_e2e::connect(&url);
    let mut child = loader(&url, folder(&dir.0)).spawn().unwrap();
    // A fold, once a third of the objects are in.
    let before = poll("a fold after a third of the objects", Duration::from_secs(300), || {
        assert!(child.try_wait().unwrap().is_none(), "the loader finished before the crash");
        let done = settled(&mut client);
        (done >= objects as i64 / 3 && phase(&mut client) == Phase::Fold).then_some(done)
    });
    drop(client);
    cluster.crash();
    let out = wait_with_timeout(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // It names the object it was loading, and the lost connection.
    let lost = ["connection closed", "terminating connection", "Connection reset"];
    assert!(
        stderr.contains("resi-loader: loading data/hotkey=") && lost.iter().any(|m| stderr.contains(m)),
        "{stderr}"
    );
    cluster.restart();
    let log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap();
    assert!(log.contains("database system was not properly shut down; automatic recovery in progress"), "{log}");
    let mut client = resi_e2e::connect(&url);
    let after = settled(&mut client);
    // At most the batch being committed (five objects) settled after the last look.
    assert!((before..=before + 5).contains(&after), "{before} objects settled before the crash, {after} after");
    assert_eq!(broken_invariants(&mut client), "");
    // The staging table is unlogged: crash recovery emptied it.
    assert_eq!(resi_e2e::scalar::<i64>(&mut client, "SELECT count(*) FROM resi.staging_listings"), 0);
    let rerun = completed_run(loader(&url, folder(&dir.0)));
    assert!(rerun.contains(&format!(" deferred, {after} skipped;")), "{rerun}");
    assert!(database_state(&url) == *expected, "the database differs from the undisturbed run's");
}

/// Wait for a child, killing it (and failing) after `timeout`.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > timeout {
            child.kill().unwrap();
            panic!("the loader did not end within {timeout:?}: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// The S3 server goes away in the middle of a download: it holds a response part-way (at a
/// seeded random byte between 30% and 70% of what the undisturbed pass downloads) and is then
/// stopped, connections dropped. The pass completes: what it read before is loaded, the
/// object cut off and every later one are deferred (`source_error`), and nothing of them is
/// in the database. With the server back, a rerun loads exactly the deferred objects and the
/// database is the undisturbed pass's.
#[test]
fn s3_server_dropped_mid_download_then_rerun() {
    let seed = seed("s3_server_dropped_mid_download_then_rerun");
    let root = TempDir::new("s3-drop");
    // 12 uploads of 1,200 rows in eight row groups: each read is many ranged GETs.
    let bucket = root.0.join("resi");
    for i in 0..12usize {
        let secs = i * 7;
        let key = format!(
            "data/hotkey=5Miner{:02}/job_id=zillow_zip_{}/data_20250917_08{:02}{:02}_1200.parquet",
            i % 3,
            77_000 + i / 3,
            secs / 60,
            secs % 60
        );
        write_upload(&bucket.join(key), 1_000 + (i / 3 % 4) as u64 * 600, 1_200, i as u64, 150);
    }
    set_upload_times(&bucket);
    let server = RT.block_on(S3Server::start(&root.0));
    let s3_loader = |url: &str| -> Command {
        let mut cmd = loader(url, "s3://resi/data/");
        cmd.env("AWS_ENDPOINT_URL", &server.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
        cmd
    };
    let reference = TestDatabase::new("faults_s3_reference");
    let summary = completed_run(s3_loader(&reference.url));
    assert!(summary.contains(" 12 loaded, 0 rejected, 0 deferred"), "{summary}");
    let downloaded = server.bytes_written();
    let expected = database_state(&reference.url);

    let db = TestDatabase::new("faults_s3_drop");
    let cut = (downloaded as f64 * (0.3 + 0.4 * Rng(seed).unit())) as u64;
    server.cut_after(cut);
    let child = s3_loader(&db.url).spawn().unwrap();
    poll("the S3 server to reach the cut", Duration::from_secs(120), || server.is_cut().then_some(()));
    server.stop();
    let dropped = Instant::now();
    let out = wait_with_timeout(child, Duration::from_secs(300));
    let ended = dropped.elapsed();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&out.stderr));
    let mut client = db.client();
    let before = settled(&mut client);
    assert!(
        summary.contains(&format!(" {before} loaded, 0 rejected, {} deferred, 0 skipped", 12 - before)) && before < 12,
        "seed {seed}: cut at {cut} of {downloaded} bytes: {summary}"
    );
    // Every object from the one cut off on is deferred, as unreadable, and has no rows.
    let deferred: Vec<(String, String)> = client
        .query(
            "SELECT object_key, reason FROM resi.ingest_ledger WHERE status = 'deferred' ORDER BY last_modified, object_key",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(deferred.len() as i64, 12 - before);
    for (key, reason) in &deferred {
        assert!(reason.starts_with("source_error: "), "{key}: {reason}");
    }
    let last_loaded: Option<std::time::SystemTime> =
        resi_e2e::scalar(&mut client, "SELECT max(last_modified) FROM resi.ingest_ledger WHERE status = 'loaded'");
    let first_deferred: std::time::SystemTime =
        resi_e2e::scalar(&mut client, "SELECT min(last_modified) FROM resi.ingest_ledger WHERE status = 'deferred'");
    assert!(last_loaded.is_none_or(|t| t < first_deferred), "an object after the cut was loaded");
    assert_eq!(broken_invariants(&mut client), "");
    println!(
        "cut at {cut} of {downloaded} bytes: {before} loaded; the pass ended {:?} after the server went; first deferred: {:?}",
        ended,
        deferred[0]
    );

    RT.block_on(server.restart());
    let rerun = completed_run(s3_loader(&db.url));
    assert!(rerun.contains(&format!(" {} loaded, 0 rejected, 0 deferred, {before} skipped", 12 - before)), "{rerun}");
    assert!(database_state(&db.url) == expected, "seed {seed}: the database differs from the undisturbed run's");
}

/// `pg_dump --format=custom` of the database at `url` into `file`.
fn dump(url: &str, file: &Path) {
    let status = Command::new(resi_e2e::pg_bindir().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(file)
        .arg(url)
        .status();
    assert!(status.unwrap().success(), "pg_dump failed");
}

/// `pg_restore --exit-on-error` of `file` into the (empty) database at `url`, owners kept.
fn restore(file: &Path, url: &str) {
    let status = Command::new(resi_e2e::pg_bindir().join("pg_restore"))
        .args(["--exit-on-error", "--dbname", url])
        .arg(file)
        .status();
    assert!(status.unwrap().success(), "pg_restore failed");
}

/// Every row of every table and sequence a dump keeps (ids and times included), in a
/// comparable text: natively those the extension registers for dumping; in the portable
/// edition's plain migration, every table and sequence of its schemas (a plain dump keeps all).
fn dumped_rows(client: &mut postgres::Client) -> String {
    let relations_sql = match Edition::under_test() {
        Edition::Native => {
            "SELECT c.oid::regclass::text, c.relkind::text FROM pg_extension e, unnest(e.extconfig) r JOIN pg_class c ON c.oid = r
              WHERE e.extname = 'resi_pg' ORDER BY 1"
        }
        Edition::Portable => {
            "SELECT c.oid::regclass::text, c.relkind::text FROM pg_class c
              WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND c.relkind IN ('r', 'p', 'S') ORDER BY 1"
        }
    };
    let relations: Vec<(String, String)> =
        client.query(relations_sql, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(relations.len() >= 10, "{relations:?}");
    let mut out = String::new();
    for (name, kind) in relations {
        let sql = if kind == "S" {
            format!("SELECT format('%s %s', last_value, is_called) FROM {name}")
        } else {
            format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {name} t")
        };
        let value: String = resi_e2e::scalar(client, &sql);
        out += &format!("{name}: {value}\n");
    }
    out
}

/// The installation as the catalogue knows it: the extension's row (version, relocatable,
/// dump conditions; "no extension" for a plain migration), `resi.edition()`, the schema's
/// comment (the plain migration's version), whether the staging table's triggers fire, and
/// every object with its definition, owner, privileges, comment and extension membership
/// (`resi_e2e::catalogue`), the staging table's trigger included.
fn installation_catalogue(client: &mut postgres::Client) -> Vec<String> {
    let installed: String = resi_e2e::scalar(
        client,
        "SELECT concat_ws(E'\\n',
                coalesce((SELECT format('%s %s %s', extversion, extrelocatable, extcondition) FROM pg_extension
                           WHERE extname = 'resi_pg'), 'no extension'),
                resi.edition(), obj_description('resi'::regnamespace, 'pg_namespace'),
                (SELECT string_agg(format('trigger %s enabled %s', tgname, tgenabled), E'\\n' ORDER BY tgname)
                   FROM pg_trigger WHERE tgrelid = 'resi.staging_listings'::regclass AND NOT tgisinternal))",
    );
    // pg_restore re-creates a SQL-standard body (RETURN, BEGIN ATOMIC: the portable edition's)
    // from its deparsed text, which PostgreSQL parses back with nested ANDs and ORs flattened:
    // the same expression with fewer parentheses. So those definitions compare without them;
    // a dollar-quoted body (pg_get_functiondef's $function$) is kept as written and compared
    // exactly.
    let facts = resi_e2e::catalogue(client, &Catalogue::Full).into_iter().map(|fact| {
        if fact.starts_with("function ") && !fact.contains("$function$") {
            fact.replace(['(', ')'], "")
        } else {
            fact
        }
    });
    std::iter::once(installed).chain(facts).collect()
}

/// `pg_dump -Fc` of a loaded database restored into a fresh database without resi_pg: the same
/// installation (natively the extension: version, members; in either edition every object,
/// the staging trigger included), every dumped row and sequence position, the same
/// `database_state`. The loader resumes there: a pass over the same
/// uploads loads nothing; a new upload loads alone, with ids after the restored ones, and
/// gives the same database as loading it into the original.
#[test]
fn dump_and_restore_keep_the_database_and_the_loader_resumes() {
    let dir = TempDir::new("dump");
    generate(&dir.0, 24);
    let source = TestDatabase::new("faults_dump_src");
    let first = RT.block_on(load(&source.url, local(&dir.0)));
    assert_eq!((first.loaded, first.rejected, first.deferred), (24, 2, 0), "{first:?}");
    let dumps = TempDir::new("dump-file");
    let file = dumps.0.join("loaded.dump");
    dump(&source.url, &file);
    let restored = TestDatabase::without_extension("faults_dump_dst");
    restore(&file, &restored.url);
    let (mut original, mut copy) = (source.client(), restored.client());
    let catalogue = installation_catalogue(&mut original);
    let trigger = "CREATE TRIGGER fold_staged_listings AFTER INSERT ON resi.staging_listings";
    assert!(catalogue.iter().any(|fact| fact.contains(trigger)), "no staging trigger: {catalogue:#?}");
    let restored_catalogue = installation_catalogue(&mut copy);
    // What one has more of than the other (facts may repeat: a table and a view of one name).
    let only = |a: &[String], b: &[String]| {
        let mut rest = b.to_vec();
        a.iter()
            .filter(|f| match rest.iter().position(|g| g == *f) {
                Some(at) => {
                    rest.swap_remove(at);
                    false
                }
                None => true,
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        restored_catalogue == catalogue,
        "the restored installation differs; only in the original: {:#?}\nonly in the copy: {:#?}",
        only(&catalogue, &restored_catalogue),
        only(&restored_catalogue, &catalogue)
    );
    let rows = dumped_rows(&mut original);
    assert_eq!(dumped_rows(&mut copy), rows);
    let state = database_state(&source.url);
    assert_eq!(database_state(&restored.url), state);

    // The loader resumes on the restored database: nothing to load again.
    let again = RT.block_on(load(&restored.url, local(&dir.0)));
    assert_eq!((again.loaded, again.rejected, again.deferred, again.skipped), (0, 0, 0, 26), "{again:?}");
    assert_eq!(database_state(&restored.url), state);

    // A new upload loads alone, into both, with new ids after the restored ones.
    let max_ids = |client: &mut postgres::Client| -> (i64, i64, i64) {
        let r = client
            .query_one(
                "SELECT (SELECT max(id) FROM resi.miner_attestations), (SELECT max(id) FROM resi.ingest_ledger),
                        (SELECT max(id) FROM resi.ingest_runs)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let before = max_ids(&mut copy);
    let key = "data/hotkey=5Miner01/job_id=zillow_zip_77999/data_20250917_090000_300.parquet";
    write_upload(&dir.0.join(key), 1_100, 300, 99, 100);
    set_upload_times(&dir.0);
    for db in [&restored, &source] {
        let next = RT.block_on(load(&db.url, local(&dir.0)));
        assert_eq!((next.loaded, next.rejected, next.skipped, next.rows_attested), (1, 0, 26, 300), "{next:?}");
    }
    let new_ids = copy
        .query_one(
            "SELECT min(a.id), max(l.id), max(r.id) FROM resi.miner_attestations a, resi.ingest_ledger l, resi.ingest_runs r
              WHERE a.s3_file_path = $1 AND l.object_key = $1",
            &[&key],
        )
        .unwrap();
    let (attestation, ledger, run): (i64, i64, i64) = (new_ids.get(0), new_ids.get(1), new_ids.get(2));
    assert!(
        attestation > before.0 && ledger > before.1 && run > before.2,
        "{before:?} then {attestation} {ledger} {run}"
    );
    assert_eq!(database_state(&restored.url), database_state(&source.url));
}

#[test]
fn four_loaders_at_once_do_the_work_of_one() {
    let (expected, _) = undisturbed(24);
    let dir = TempDir::new("four");
    generate(&dir.0, 24);
    let db = TestDatabase::new("faults_four");
    let children: Vec<_> = (0..4).map(|_| loader(&db.url, folder(&dir.0)).spawn().unwrap()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Objects claimed by a loader that was still busy are picked up by a later pass.
    completed_run(loader(&db.url, folder(&dir.0)));
    // Every object and row exactly once, every claim and every miner's counters the same.
    // Trust itself follows the order the submissions were folded in (each is judged against
    // the consensus of its moment), which concurrent loaders interleave differently; so the
    // listings are checked for consistency: they are what their claims and the final trust give.
    let state = database_state(&db.url);
    assert_eq!(order_independent(&state), order_independent(&expected));
    let mut client = connect(&db.url);
    let counters =
        "SELECT string_agg(format('%s %s %s %s', miner_hotkey, total_submissions, rows_submitted, duplicate_rows),
                        ', ' ORDER BY miner_hotkey) FROM resi.miner_trust";
    let got: String = client.query_one(counters, &[]).unwrap().get(0);
    assert_eq!(got, "5Miner00 5 1500 0, 5Miner01 5 1500 0, 5Miner02 5 1500 0, 5Miner03 5 1500 0, 5Miner04 4 1200 0");
    assert_eq!(count(&db.url, "SELECT resi.stale_listings()"), 0);
    let listings = resi_e2e::listing_state(&mut client);
    client.execute("SELECT resi.refresh_consensus()", &[]).unwrap();
    assert_eq!(resi_e2e::listing_state(&mut client), listings);
}

#[test]
fn unreachable_database_or_source_fails_with_a_message() {
    let dir = TempDir::new("unreachable");
    generate(&dir.0, 24);
    let out = loader("postgresql://postgres@127.0.0.1:1/nope", folder(&dir.0)).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to the database at 127.0.0.1:1/nope"), "{stderr}");

    let db = TestDatabase::new("faults_unreachable");
    let out = loader(&db.url, "/no/such/folder").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = loader(&db.url, "s3://resi/data/")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("S3 source is not reachable"), "{stderr}");
}

#[test]
fn watch_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("watch");
    generate(&dir.0, 24);
    let db = TestDatabase::new("faults_watch");
    let mut child = Command::new(LOADER)
        .args(["watch", "--every", "1h", "--source", folder(&dir.0), "--database-url", &db.url])
        .env("RESI_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first pass ends with its summary line; then the loader waits for the next one.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("run ") && first.contains("24 loaded"), "{first}");
    let started = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM between passes is a clean stop");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped in {:?}", started.elapsed());
    assert!(lines.next().is_none(), "no second pass");
    let run: String = connect(&db.url)
        .query_one("SELECT string_agg(status, ',' ORDER BY id) FROM resi.ingest_runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(run, "completed");
}
