//! `resi-loader run` against the coordinator of a Citus cluster (issue 18), run only by `make
//! test-citus` (`RESI_TEST_CITUS_URL`; without it every test says it is skipped and passes).
//! The loader is unchanged: it COPYs into staging on the coordinator, whose fold writes the
//! distributed tables. Each test compares with a single node (`RESI_TEST_DATABASE_URL`) given
//! the same uploads.

mod common;

use common::*;
use resi_e2e::CitusDatabase;
use resi_loader::batch::BatchPolicy;
use resi_loader::pass::PassOptions;

/// Shards per distributed table, as in tests/tests/citus.rs.
const SHARDS: i32 = 4;

/// The basic samples, then the hostile ones, loaded into a distributed database leave what they
/// leave in a single node: the same listings, attestations, ledger (statuses and reasons:
/// rejections, a ban's deferrals), trust, day counts, verdicts, claims and penalties; a second
/// pass loads nothing on either.
#[test]
fn resi_loader_run_on_a_coordinator_leaves_what_it_leaves_on_a_single_node() {
    let Some(citus) = CitusDatabase::distributed("loader_run", SHARDS) else { return };
    let single = TestDatabase::new("loader_run_single");
    for url in [&single.url, &citus.url] {
        for samples in ["samples/basic", "samples/hostile"] {
            let pass = RT.block_on(load(url, local(&fixture(samples))));
            assert!(pass.loaded > 0 && pass.rows_attested > 0, "{samples}: {pass:?}");
        }
    }
    let expected = database_state(&single.url);
    assert_eq!(database_state(&citus.url), expected);
    let again = RT.block_on(load(&citus.url, local(&fixture("samples/basic"))));
    assert_eq!(again.loaded, 0, "{again:?}");
    assert_eq!(database_state(&citus.url), expected);
}

/// The way from a single node on the previous release: a database loaded on 0.4.0, updated with
/// `ALTER EXTENSION resi_pg UPDATE` on the coordinator (Citus updates the workers' too), then
/// distributed, holds what a single node loaded and updated the same way holds, and loads new
/// uploads as that single node does.
#[test]
fn a_database_of_the_previous_release_updated_then_distributed_loads_on_as_a_single_node() {
    let Some(citus) = CitusDatabase::with_resi_version("loader_update", Some("0.4.0")) else { return };
    let single = TestDatabase::without_extension("loader_update_single");
    connect(&single.url).batch_execute("CREATE EXTENSION resi_pg VERSION '0.4.0'").unwrap();
    for url in [&single.url, &citus.url] {
        let pass = RT.block_on(load(url, local(&fixture("samples/basic"))));
        assert!(pass.loaded > 0, "{pass:?}");
        connect(url).batch_execute("ALTER EXTENSION resi_pg UPDATE").unwrap();
    }
    let version = "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'";
    for url in citus.workers.iter().chain([&citus.url]) {
        let updated: String = connect(url).query_one(version, &[]).unwrap().get(0);
        assert_eq!(updated, "0.5.0", "{url}");
    }
    citus.client().execute("SELECT resi.distribute($1)", &[&SHARDS]).unwrap();
    assert_eq!(database_state(&citus.url), database_state(&single.url));
    for url in [&single.url, &citus.url] {
        let pass = RT.block_on(load(url, local(&fixture("samples/hostile"))));
        assert!(pass.loaded > 0, "{pass:?}");
    }
    assert_eq!(database_state(&citus.url), database_state(&single.url));
}

/// Two loaders running at once against the coordinator load every object and row once: the
/// attestations, ledger, claims and day counts are those of one loader on a single node (trust
/// follows the order submissions are judged in, which the two interleave), and the listings
/// are what their claims and the final trust give.
#[test]
fn two_loaders_at_once_on_a_coordinator_do_the_work_of_one() {
    let Some(citus) = CitusDatabase::distributed("loader_two", SHARDS) else { return };
    let single = TestDatabase::new("loader_two_single");
    // Upload times from the keys, as S3's would be (a checkout gives every file one time).
    let dir = TempDir::new("loader_two");
    copy_uploads_with_upload_times(&fixture("samples/basic"), &dir.0);
    let samples = dir.0.clone();
    RT.block_on(load(&single.url, local(&samples)));
    // Batches of five objects, so each loader finds objects the other has not claimed.
    let options =
        PassOptions { batch: BatchPolicy { max_objects: 5, ..BatchPolicy::default() }, ..PassOptions::default() };
    let (a, b) = RT.block_on(async {
        tokio::join!(load_with(&citus.url, local(&samples), &options), load_with(&citus.url, local(&samples), &options))
    });
    // How the two share the objects depends on timing (on a busy machine one may find every
    // object claimed); whichever way, nothing is loaded twice. Objects one loader found claimed
    // by the other are picked up by a later pass.
    let later = RT.block_on(load(&citus.url, local(&samples)));
    let single_loaded = count(&single.url, "SELECT count(*) FROM resi.ingest_ledger WHERE status = 'loaded'");
    assert_eq!((a.loaded + b.loaded + later.loaded) as i64, single_loaded, "{a:?} {b:?} {later:?}");
    let (expected, state) = (database_state(&single.url), database_state(&citus.url));
    assert_eq!(order_independent(&state), order_independent(&expected));
    let mut client = citus.client();
    assert_eq!(count(&citus.url, "SELECT resi.stale_listings()"), 0);
    let listings = resi_e2e::listing_state(&mut client);
    client.execute("SELECT resi.refresh_consensus()", &[]).unwrap();
    assert_eq!(resi_e2e::listing_state(&mut client), listings);
}
