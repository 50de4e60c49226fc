//! Crashes and concurrency: a loader killed at any point, rerun, leaves the database exactly
//! as one uninterrupted run would; four loaders at once do the work of one.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOADER: &str = env!("CARGO_BIN_EXE_resi-loader");

/// 24 uploads of 3 miners over overlapping listings (400 rows each, four row groups).
fn generate(dir: &Path) {
    for (m, miner) in ["5Alpha", "5Bravo", "5Charlie"].iter().enumerate() {
        for j in 0..8u64 {
            let key = format!("data/hotkey={miner}/job_id=zillow_zip_7749{j}/data_20250917_08{m}{j}00_400.parquet");
            write_upload(&dir.join(key), 1_000 + j * 200, 400, m as u64 * 100 + j, 100);
        }
    }
    std::fs::write(dir.join("data/hotkey=5Alpha/job_id=zillow_zip_77490/notes.txt"), b"not an upload").unwrap();
}

fn loader(url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(LOADER);
    cmd.args(["run", "--source", dir.to_str().unwrap(), "--database-url", url])
        .env("RESI_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn reference(dir: &Path) -> String {
    let db = TestDatabase::new("faults_reference");
    let pass = RT.block_on(load(&db.url, local(dir)));
    assert_eq!((pass.loaded, pass.rejected), (24, 1), "{pass:?}");
    database_state(&db.url)
}

#[test]
fn killed_loaders_rerun_to_the_same_database() {
    let dir = TempDir::new("kill");
    generate(&dir.0);
    let expected = reference(&dir.0);
    let db = TestDatabase::new("faults_kill");
    // Kill it at growing delays: during listing, mid-COPY, mid-fold, between objects.
    let mut kills = 0;
    for delay_ms in [30u64, 150, 400, 700, 1100, 1600] {
        let mut child = loader(&db.url, &dir.0).spawn().unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(delay_ms) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "the loader finished too fast to be killed mid-run ({kills} kills)");
    // Reruns finish the job (a killed backend's locks may outlive the first rerun briefly).
    for _ in 0..2 {
        let status = loader(&db.url, &dir.0).status().unwrap();
        assert!(status.success());
    }
    assert_eq!(database_state(&db.url), expected);
    let loaded = count(&db.url, "SELECT count(*) FROM resi.ingest_ledger WHERE status = 'loaded'");
    assert_eq!(loaded, 24);
}

#[test]
fn four_loaders_at_once_do_the_work_of_one() {
    let dir = TempDir::new("four");
    generate(&dir.0);
    let expected = reference(&dir.0);
    let db = TestDatabase::new("faults_four");
    let children: Vec<_> = (0..4).map(|_| loader(&db.url, &dir.0).spawn().unwrap()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Objects claimed by a loader that was still busy are picked up by a later pass.
    assert!(loader(&db.url, &dir.0).status().unwrap().success());
    // Every object and row exactly once, every claim and every miner's counters the same.
    // Trust itself follows the order the submissions were folded in (each is judged against
    // the consensus of its moment), which concurrent loaders interleave differently; so the
    // listings are checked for consistency: they are what their claims and the final trust give.
    let (_, expected_trail) = expected.split_once("\n--\n").unwrap();
    let state = database_state(&db.url);
    assert_eq!(state.split_once("\n--\n").unwrap().1, expected_trail);
    let mut client = connect(&db.url);
    let counters =
        "SELECT string_agg(format('%s %s %s %s', miner_hotkey, total_submissions, rows_submitted, duplicate_rows),
                        ', ' ORDER BY miner_hotkey) FROM resi.miner_trust";
    let got: String = client.query_one(counters, &[]).unwrap().get(0);
    assert_eq!(got, "5Alpha 8 3200 0, 5Bravo 8 3200 0, 5Charlie 8 3200 0");
    assert_eq!(count(&db.url, "SELECT resi.stale_listings()"), 0);
    let listings = resi_e2e::listing_state(&mut client);
    client.execute("SELECT resi.refresh_consensus()", &[]).unwrap();
    assert_eq!(resi_e2e::listing_state(&mut client), listings);
}

#[test]
fn unreachable_database_or_source_fails_with_a_message() {
    let dir = TempDir::new("unreachable");
    generate(&dir.0);
    let out = loader("postgresql://postgres@127.0.0.1:1/nope", &dir.0).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to the database at 127.0.0.1:1/nope"), "{stderr}");

    let db = TestDatabase::new("faults_unreachable");
    let out = loader(&db.url, Path::new("/no/such/folder")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(LOADER)
        .args(["run", "--source", "s3://resi/data/", "--database-url", &db.url])
        .env("RESI_LOG", "error")
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
    generate(&dir.0);
    let db = TestDatabase::new("faults_watch");
    let mut child = Command::new(LOADER)
        .args(["watch", "--every", "1h", "--source", dir.0.to_str().unwrap(), "--database-url", &db.url])
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
