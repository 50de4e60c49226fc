//! resi_pg 0.5 on Citus 13.2.2 (issue 18): a coordinator and two workers on 127.0.0.1
//! (scripts/citus-cluster), run only by `make test-citus`; without `RESI_TEST_CITUS_URL` every
//! test says it is skipped and passes.
//!
//! `resi.distribute()` (sql/distribute.sql) turns the extension's own tables into Citus tables:
//! listings, claims, attestations, history and audits distributed by zpid and co-located, the
//! per-miner tables, the blacklist and the audit verdicts reference tables, the loader's tables
//! left on the coordinator. The single node each comparison is made with is a plain database
//! (`TestDatabase`, native edition) of the cluster `RESI_TEST_DATABASE_URL` names (the
//! coordinator's, under `make test-citus`) holding the same rows, or given the same uploads.

use postgres::error::SqlState;
use postgres::{Client, GenericClient};
use resi_e2e::{connect, notices_while, scalar, CitusDatabase, Edition, TestDatabase};

/// Shards per distributed table: two per worker. Each shard's task adds planning and a
/// connection; issue 18's measurements found many shards per node cost more than they bring.
const SHARDS: i64 = 4;

/// Listings of the generated world.
const LISTINGS: i64 = 3000;

/// 3,000 listings with 27,000 claims from 36 miners of mixed-case hotkeys, in the extension's own
/// tables: trust rows for 30 of them (some 0), two groups of three with pooled trust (one member
/// without a trust row), byte copies (shared signatures) and claims with signatures of their own, upload
/// times that tie and differ, and audits of every 40th listing seen at 02:00 (later claims with
/// weight overrule them) or 08:00 (after every claim).
const WORLD: &str = "
    INSERT INTO resi.miner_trust (miner_hotkey, trust_score)
    SELECT (ARRAY['m', 'N', 'o'])[1 + i % 3] || i, CASE WHEN i % 8 = 3 THEN 0 ELSE ((i * 29) % 9 + 1) / 10.0 END
      FROM generate_series(0, 29) i;
    INSERT INTO resi.miner_groups (miner_hotkey, group_hotkey, trust)
    SELECT (ARRAY['m', 'N', 'o'])[1 + i % 3] || i, 'G' || (i % 4 / 2), CASE WHEN i % 4 = 1 THEN 0.4 ELSE 0.7 END
      FROM generate_series(0, 35) i WHERE i % 6 = 1;
    INSERT INTO resi.miner_claims (zpid, miner_hotkey, attestation_id, submission_timestamp, first_seen_at,
                                   attestations, uri, price, address, bedrooms, bathrooms, living_area, home_type,
                                   home_status, days_on_zillow, zip_code, city, state, latitude, longitude, signature)
    SELECT z::text, (ARRAY['m', 'N', 'o'])[1 + i % 3] || i, z * 100 + i,
           timestamptz '2025-09-01' + ((z * 3 + i) % 7) * interval '1 hour',
           timestamptz '2025-08-01' + (i % 4) * interval '1 day', 1 + i % 3,
           'https://www.zillow.com/homedetails/' || z || '_zpid/',
           CASE WHEN i % 3 = 1 THEN 250000 + z ELSE 250000 + (z * (i % 5) * 811) % 12000 END,
           z || ' Elm St', 3 + (i % 5 = 4)::int, 2.0 + (i % 2) * 0.5, 1800 + (i % 3) * 25, 'SINGLE_FAMILY',
           (ARRAY['FOR_SALE', 'PENDING', 'SOLD'])[1 + (z + i / 5) % 3], i % 30, '78701', 'Austin', 'TX',
           30.25 + z * 1e-5, -97.75 - (i % 3) * 1e-4,
           CASE WHEN i % 3 = 1 THEN z WHEN i % 7 = 2 THEN z * 100 + i END
      FROM generate_series(0, 2999) z, generate_series(0, 35) i
     WHERE (z * 5 + i * 11) % 4 <> 0 AND (z + i) % 3 = 0;
    INSERT INTO resi.audits (zpid, listing, seen_at)
    SELECT z::text, jsonb_build_object('price', 199999, 'home_status', 'SOLD', 'consensus_score', 1),
           timestamptz '2025-09-01 02:00' + (z % 80 = 0)::int * interval '6 hours'
      FROM generate_series(0, 2999, 40) z;
    ANALYZE;";

/// `resi.distribute(SHARDS)` on the coordinator.
fn distribute(client: &mut impl GenericClient) {
    client
        .execute("SELECT resi.distribute($1::integer)", &[&(SHARDS as i32)])
        .unwrap_or_else(|e| panic!("resi.distribute: {e:?}"));
}

/// The same world twice: in a plain database (the single node) and in a Citus database
/// distributed by `resi.distribute`. `None` without a
/// Citus cluster. Both databases are dropped with the value: a pattern taking it apart binds
/// `_citus` and `_single_database` (fields it leaves out would be dropped at once).
struct Worlds {
    single: Client,
    distributed: Client,
    _citus: CitusDatabase,
    _single_database: TestDatabase,
}

impl Worlds {
    fn new(label: &str) -> Option<Worlds> {
        let citus = CitusDatabase::new(label)?;
        let single_database = TestDatabase::with_edition(&format!("{label}_single"), Edition::Native);
        let (mut single, mut distributed) = (single_database.client(), citus.client());
        for client in [&mut single, &mut distributed] {
            client.batch_execute("SET client_min_messages = warning").unwrap();
            client.batch_execute(WORLD).unwrap();
        }
        distribute(&mut distributed);
        distributed.batch_execute("ANALYZE").unwrap();
        Some(Worlds { single, distributed, _citus: citus, _single_database: single_database })
    }
}

/// Each row of `query` as its text (`row(q.*)::text`), ordered by `order` (outside the query:
/// Citus does not keep the order of a subquery's rows).
fn rows(client: &mut impl GenericClient, query: &str, order: &str) -> Vec<String> {
    let sql = format!("SELECT row(q.*)::text FROM ({query}) q ORDER BY {order}");
    client.query(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e:?}")).iter().map(|r| r.get(0)).collect()
}

/// The index of the first row where `a` and `b` differ (a missing row counts), if any.
fn first_difference(a: &[String], b: &[String]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

/// Panics at the first row where `single` and `distributed` differ.
fn assert_same_rows(what: &str, single: &[String], distributed: &[String]) {
    if let Some(i) = first_difference(single, distributed) {
        panic!(
            "{what}: row {i} of {} differs:\nsingle node: {:?}\ndistributed: {:?}",
            single.len(),
            single.get(i),
            distributed.get(i)
        );
    }
}

/// How Citus ran a query over distributed tables, from `EXPLAIN ANALYZE`.
#[derive(Debug)]
struct DistributedPlan {
    /// The plan nodes the coordinator ran above Citus's scan (e.g. an Aggregate over what the
    /// workers sent).
    coordinator: Vec<String>,
    /// Rows the coordinator received from the workers.
    rows_received: i64,
    /// Tasks: one per shard the query needed.
    tasks: i64,
    /// The plan of the task shown (one of them).
    task: Vec<String>,
    plan: String,
}

impl DistributedPlan {
    fn of(client: &mut Client, query: &str) -> DistributedPlan {
        let lines: Vec<String> = client
            .query(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {query}"), &[])
            .unwrap_or_else(|e| panic!("EXPLAIN {query}: {e:?}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = lines.join("\n");
        let scan = lines
            .iter()
            .position(|l| l.contains("Custom Scan (Citus Adaptive)"))
            .unwrap_or_else(|| panic!("not a distributed plan:\n{plan}"));
        let number_after = |line: &str, label: &str| -> i64 {
            let at = line.find(label).unwrap_or_else(|| panic!("no {label} in {line}")) + label.len();
            line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
        };
        let tasks = lines.iter().find(|l| l.trim_start().starts_with("Task Count: ")).expect("a task count");
        let task = lines.iter().position(|l| l.trim() == "->  Task").expect("a task shown");
        DistributedPlan {
            coordinator: lines[..scan].to_vec(),
            rows_received: number_after(&lines[scan], "actual rows="),
            tasks: number_after(tasks, "Task Count: "),
            task: lines[task + 1..].to_vec(),
            plan,
        }
    }

    /// Whether the task shown aggregates on its shard before sending.
    fn aggregates_on_the_shard(&self) -> bool {
        self.task.iter().any(|l| l.contains("Aggregate"))
    }
}

#[test]
fn resi_pg_installs_beside_citus_and_its_functions_and_aggregates_run_on_every_worker() {
    let Some(db) = CitusDatabase::new("nodes") else { return };
    const VOTE: &str = "SELECT resi.edition() || ' ' || resi.consensus_mode(v, w)::text || ' '
                               || resi.consensus_median(p, w, 0.01)::text
                          FROM (VALUES ('SOLD', 0.9, 100.0), ('FOR_SALE', 0.4, 101.0), ('FOR_SALE', 0.4, 250.0),
                                       (NULL, 1.0, NULL)) t(v, w, p)";
    const VERSION: &str = "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'";
    let mut coordinator = db.client();
    let (expected, version): (String, String) = (scalar(&mut coordinator, VOTE), scalar(&mut coordinator, VERSION));
    assert!(expected.starts_with("native (SOLD,"), "{expected}");
    assert_eq!(db.workers.len(), 2);
    for worker in &db.workers {
        let mut client = connect(worker);
        assert_eq!(scalar::<String>(&mut client, VERSION), version, "{worker}");
        assert_eq!(scalar::<String>(&mut client, VOTE), expected, "{worker}");
    }
    // The same through Citus: the coordinator runs the query on each worker.
    let results: Vec<(bool, String)> = coordinator
        .query("SELECT success, result FROM run_command_on_workers($1)", &[&VOTE])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(results, vec![(true, expected.clone()), (true, expected)]);
}

/// Rows in every table resi.distribute moves, besides the world's claims, trust, groups and
/// audits: listings and their history (a refresh), attestations, audit verdicts, the blacklist,
/// strikes, day counts and a dependence.
const MORE_ROWS: &str = "
    SELECT resi.refresh_consensus();
    INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp, price, home_status)
    SELECT miner_hotkey, zpid, submission_timestamp, price, home_status FROM resi.miner_claims WHERE zpid::int % 7 = 0;
    INSERT INTO resi.audit_verdicts (audit_id, miner_hotkey, attestation_id, fields_compared, wrong)
    SELECT a.id, c.miner_hotkey, c.attestation_id, 14, jsonb_build_object('price', c.price)
      FROM resi.audits a JOIN resi.miner_claims c ON c.zpid = a.zpid;
    INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'exact', '17', 'test'), ('zip_code', 'pattern', '^999', 'test');
    INSERT INTO resi.miner_penalties (miner_hotkey, kind, reason) VALUES ('m0', 'strike', 'test'), ('N1', 'strike', 'test');
    INSERT INTO resi.miner_submission_days (miner_hotkey, day, submissions) VALUES ('m0', '2025-09-01', 3), ('o2', '2025-09-02', 1);
    INSERT INTO resi.miner_dependence (miner_hotkey, source_hotkey, shared_claims) VALUES ('N1', 'm0', 12);
    INSERT INTO resi.judged_pair_totals
        (miner_hotkey, other_hotkey, first_attestation, other_first_attestation, shared_false, differences,
         judged_together, miner_wrong, other_wrong, wrong_apart)
        VALUES ('N1', 'm0', 5, 3, 4, 1, 6, '{\"price\": 5}', '{\"price\": 4}', 1);
    INSERT INTO resi.settled_judgements (settled_until) VALUES ('2025-09-17 10:00+00');
    ANALYZE;";

/// Where resi.distribute puts each table: distributed by zpid (`h`, co-located with the
/// listings), a reference table (`n`) or left a plain table of the coordinator (`-`; so are
/// the loader's tables, which hold no rows here).
const PLACEMENT: [(&str, &str); 15] = [
    ("resi.audit_verdicts", "n"),
    ("resi.audits", "h"),
    ("resi.blacklist", "n"),
    ("resi.judged_pair_totals", "n"),
    ("resi.listing_history", "h"),
    ("resi.listing_refresh", "h"),
    ("resi.listings", "h"),
    ("resi.miner_attestations", "h"),
    ("resi.miner_claims", "h"),
    ("resi.miner_dependence", "n"),
    ("resi.miner_groups", "n"),
    ("resi.miner_penalties", "n"),
    ("resi.miner_submission_days", "-"),
    ("resi.miner_trust", "n"),
    ("resi.settled_judgements", "n"),
];

/// What resi.distribute takes out of the extension: its Citus tables and the attestations'
/// sequence.
fn moved() -> Vec<&'static str> {
    PLACEMENT.iter().filter(|(_, m)| *m != "-").map(|(t, _)| *t).chain(["resi.miner_attestations_id_seq"]).collect()
}

/// Each table's row count and an MD5 of its rows as text, in order.
fn contents(client: &mut Client) -> Vec<(String, i64, String)> {
    PLACEMENT
        .iter()
        .map(|(table, _)| {
            let sql =
                format!("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t");
            let row = client.query_one(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            (table.to_string(), row.get(0), row.get(1))
        })
        .collect()
}

/// Which of `relations` (regclass text) are members of resi_pg in the database of `client`.
fn members(client: &mut Client, relations: &[&str]) -> Vec<String> {
    let relations: Vec<String> = relations.iter().map(|r| r.to_string()).collect();
    client
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c
               JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
               JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'resi_pg'
              WHERE c.oid::regclass::text = ANY ($1) ORDER BY 1",
            &[&relations],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn distributing_a_database_keeps_every_row_and_places_each_table_as_designed() {
    let Some(db) = CitusDatabase::new("keeps") else { return };
    let mut client = db.client();
    client.batch_execute("SET client_min_messages = warning").unwrap();
    client.batch_execute(WORLD).unwrap();
    client.batch_execute(MORE_ROWS).unwrap();
    let before = contents(&mut client);
    // resi.listing_refresh holds rows only inside a refresh.
    assert!(
        before.iter().all(|(table, rows, _)| *rows > 0 || table == "resi.listing_refresh"),
        "a table without rows proves nothing: {before:?}"
    );
    let last_attestation: i64 = scalar(&mut client, "SELECT max(id) FROM resi.miner_attestations");
    // A call that fails after preparing the workers (here: rolled back) leaves them ready for
    // the next.
    let mut transaction = client.transaction().unwrap();
    distribute(&mut transaction);
    transaction.rollback().unwrap();
    distribute(&mut client);

    // Every row kept: counts and contents equal, read through Citus from the shards.
    assert_eq!(contents(&mut client), before);
    let placement: Vec<(String, String, bool)> = client
        .query(
            "SELECT p.logicalrelid::text, p.partmethod::text,
                    p.colocationid = (SELECT l.colocationid FROM pg_dist_partition l
                                       WHERE l.logicalrelid = 'resi.listings'::regclass)
               FROM pg_dist_partition p ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(String, String, bool)> =
        PLACEMENT.iter().filter(|(_, m)| *m != "-").map(|(t, m)| (t.to_string(), m.to_string(), *m == "h")).collect();
    assert_eq!(placement, expected);
    let shards: i64 =
        scalar(&mut client, "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'resi.listings'::regclass");
    assert_eq!(shards, SHARDS);
    // The coordinator keeps no copy of the rows under the shell tables.
    let hidden: i64 =
        scalar(&mut client, "SELECT sum(pg_relation_size(p.logicalrelid))::bigint FROM pg_dist_partition p");
    assert_eq!(hidden, 0);

    // The moved tables and their sequences left the extension on every node; the views and the
    // loader's tables did not.
    let moved = moved();
    let kept = [
        "resi.listing_consensus",
        "resi.weighted_claims",
        "resi.staging_listings",
        "resi.ingest_ledger",
        "resi.miner_submission_days",
    ];
    for url in std::iter::once(&db.url).chain(&db.workers) {
        let mut node = connect(url);
        assert_eq!(members(&mut node, &moved), Vec::<String>::new(), "{url}");
        assert_eq!(members(&mut node, &kept).len(), kept.len(), "{url}");
    }

    // Ids stay unique across nodes: the coordinator's sequences go on from the rows kept; a row
    // a worker inserts (through its shell table) takes an id of the worker's own range.
    let next: i64 = scalar(
        &mut client,
        "INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp) VALUES ('m0', '1', now()) RETURNING id",
    );
    assert_eq!(next, last_attestation + 1);
    for url in &db.workers {
        let mut worker = connect(url);
        let group: i32 = scalar(&mut worker, "SELECT groupid FROM pg_dist_local_group");
        let id: i64 = scalar(
            &mut worker,
            "INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp) VALUES ('m0', '2', now()) RETURNING id",
        );
        assert_eq!(id, ((group as i64) << 48) + 1, "{url}");
    }
    let ids: i64 = scalar(&mut client, "SELECT count(DISTINCT id) FROM resi.miner_attestations WHERE zpid IN ('1', '2') AND miner_hotkey = 'm0' AND job_id IS NULL AND price IS NULL");
    assert_eq!(ids, 1 + db.workers.len() as i64);
}

/// How a node holds its copies of the tables resi.distribute moves: the primary keys of the
/// tables with ids, the copies without Citus's TRUNCATE trigger, the moved relations still in the
/// extension, and whether the attestations' sequence starts at the node's own range.
fn copies(url: &str) -> String {
    let mut node = connect(url);
    let moved = moved();
    let description: String = scalar(
        &mut node,
        "SELECT (SELECT string_agg(c.conrelid::regclass || ' ' || pg_get_constraintdef(c.oid), ', '
                                     ORDER BY c.conrelid::regclass::text)
                   FROM pg_constraint c
                  WHERE c.contype = 'p' AND c.conrelid IN ('resi.miner_attestations'::regclass,
                                                           'resi.listing_history'::regclass, 'resi.audits'::regclass))
                || '; without trigger: '
                || (SELECT count(*) FROM unnest(resi.citus_tables(true) || resi.citus_tables(false)) t
                     WHERE NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = t::regclass
                                          AND g.tgfoid = 'citus_truncate_trigger'::regproc))
                || '; own ids: '
                || (SELECT s.seqmin = ((l.groupid::bigint) << 48) + 1
                      FROM pg_sequence s, pg_dist_local_group l
                     WHERE s.seqrelid = 'resi.miner_attestations_id_seq'::regclass)",
    );
    format!("{description}; members: {:?}", members(&mut node, &moved))
}

/// Update scripts written into the server's extension directory for one test, removed with the
/// value.
struct ProbeUpdates(Vec<std::path::PathBuf>);

impl ProbeUpdates {
    /// `resi_pg--{from}--{to}.sql` for each (to, script) in `dir`; `None`, saying so, when the
    /// directory is not writable (make test-citus runs as root).
    fn write(dir: &std::path::Path, from: &str, scripts: &[(&str, &str)]) -> Option<ProbeUpdates> {
        let mut written = ProbeUpdates(Vec::new());
        for (to, script) in scripts {
            let path = dir.join(format!("resi_pg--{from}--{to}.sql"));
            if let Err(e) = std::fs::write(&path, script) {
                eprintln!("skipped: cannot write {}: {e}", path.display());
                return None;
            }
            written.0.push(path);
        }
        Some(written)
    }
}

impl Drop for ProbeUpdates {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An update of the extension's functions reaches every node of a distributed database:
/// `ALTER EXTENSION resi_pg UPDATE` on the coordinator, which Citus runs on every worker too,
/// leaves each node at the new version with the new functions, and the database folds uploads
/// as before. An update script that changes a distributed table fails on Citus (a worker refuses
/// the change Citus sends it on top of the script's own) and changes no node: a release
/// that changes those tables ships the change as a migration of its own, run on the coordinator
/// after the update (docs/scaling-out.md). The two updates are probe versions written for this
/// test beside the installed scripts and removed after it. When the second assertion fails,
/// Citus now runs such scripts: update this record and the guide.
#[test]
fn an_update_of_the_functions_reaches_every_node_and_one_changing_a_distributed_table_changes_none() {
    let Some(citus) = CitusDatabase::new("update") else { return };
    let mut client = citus.client();
    distribute(&mut client);
    let version: String = scalar(&mut client, "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'");
    let dir: String = scalar(&mut client, "SELECT setting || '/extension' FROM pg_config WHERE name = 'SHAREDIR'");
    let (functions, table) = (format!("{version}-probe-functions"), format!("{version}-probe-table"));
    let Some(_probes) = ProbeUpdates::write(
        std::path::Path::new(&dir),
        &version,
        &[
            (
                &functions,
                "CREATE FUNCTION resi.update_probe() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'updated' $$;
                 COMMENT ON FUNCTION resi.edition() IS 'probe';",
            ),
            (&table, "ALTER TABLE resi.listings ADD COLUMN probe text;"),
        ],
    ) else {
        return;
    };
    let nodes: Vec<String> = std::iter::once(citus.url.clone()).chain(citus.workers.iter().cloned()).collect();
    let state = |node: &str| -> String {
        let mut node = connect(node);
        scalar(
            &mut node,
            "SELECT concat_ws(' ', (SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'),
                              obj_description('resi.edition()'::regprocedure, 'pg_proc'),
                              to_regprocedure('resi.update_probe()') IS NOT NULL,
                              (SELECT count(*) FROM pg_attribute WHERE attname = 'probe' AND NOT attisdropped))",
        )
    };
    let before: Vec<String> = nodes.iter().map(|n| state(n)).collect();

    // The script runs on each worker (changing its shell table) and Citus sends the coordinator's
    // change to the workers as well: "column … already exists" there, or with an index too
    // "cannot insert multiple commands into a prepared statement".
    let refused = client.batch_execute(&format!("ALTER EXTENSION resi_pg UPDATE TO '{table}'")).unwrap_err();
    assert!(
        refused.as_db_error().and_then(|e| e.where_()).is_some_and(|w| w.contains("while executing command on")),
        "an update changing a distributed table, refused by a worker: {refused:?}"
    );
    let after_refusal: Vec<String> = nodes.iter().map(|n| state(n)).collect();
    assert_eq!(after_refusal, before, "the failed update changed a node");

    client.batch_execute(&format!("ALTER EXTENSION resi_pg UPDATE TO '{functions}'")).unwrap();
    for node in &nodes {
        assert_eq!(state(node), format!("{functions} probe t 0"), "{node} after the update");
    }
    client.batch_execute(&uploads(1)).unwrap_or_else(|e| panic!("a fold after the update: {e:?}"));
    let folded: i64 = scalar(&mut client, "SELECT count(*) FROM resi.listings WHERE consensus_score IS NOT NULL");
    assert!(folded > 0, "the fold after the update made no listing");
}

/// A worker added to a distributed database (citus_add_node) has its own CREATE EXTENSION's
/// copies of the tables; resi.prepare_workers prepares them as resi.distribute prepared the first
/// worker's (and changes nothing on a second call). After rebalance_table_shards the new worker
/// holds shards and the database answers as before.
#[test]
fn a_worker_added_after_distributing_is_prepared_like_the_first_and_takes_shards() {
    let Some(db) = CitusDatabase::with_registered_workers("added", 1) else { return };
    let mut client = db.client();
    client.batch_execute("SET client_min_messages = warning").unwrap();
    client.batch_execute(WORLD).unwrap();
    distribute(&mut client);
    const CONSENSUS: &str = "SELECT * FROM resi.listing_consensus";
    let before = rows(&mut client, CONSENSUS, "zpid");
    assert_eq!(before.len() as i64, LISTINGS);
    let prepared = copies(&db.workers[0]);
    assert!(prepared.ends_with("without trigger: 0; own ids: true; members: []"), "{prepared}");

    db.register_every_worker();
    let added = &db.workers[1..];
    for url in added {
        assert_ne!(copies(url), prepared, "{url}, before resi.prepare_workers");
    }
    for _ in 0..2 {
        let workers: i32 = scalar(&mut client, "SELECT resi.prepare_workers()");
        assert_eq!(workers as usize, db.workers.len());
        for url in &db.workers {
            assert_eq!(copies(url), prepared, "{url}");
        }
    }

    client.batch_execute("SELECT rebalance_table_shards(shard_transfer_mode := 'block_writes')").unwrap();
    for url in added {
        let shards: i64 = scalar(
            &mut connect(url),
            "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid)
              WHERE s.logicalrelid = 'resi.listings'::regclass
                AND p.groupid = (SELECT groupid FROM pg_dist_local_group)",
        );
        assert!(shards > 0, "{url} holds no shard of resi.listings after rebalancing");
    }
    assert_same_rows(CONSENSUS, &before, &rows(&mut client, CONSENSUS, "zpid"));
}

/// A role of the Citus cluster (Citus creates it on every node), dropped with the value.
struct CitusRole<'a> {
    name: String,
    db: &'a CitusDatabase,
}

impl Drop for CitusRole<'_> {
    fn drop(&mut self) {
        let _ = self.db.client().batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name));
    }
}

/// The SQLSTATE and message of the error `sql` ends with.
fn refusal(client: &mut Client, sql: &str) -> (SqlState, String) {
    let error = client.batch_execute(sql).expect_err(sql);
    let db_error = error.as_db_error().unwrap_or_else(|| panic!("{sql}: {error:?}"));
    (db_error.code().clone(), db_error.message().to_owned())
}

#[test]
fn resi_distribute_refuses_a_second_call_a_non_superuser_a_worker_and_a_database_without_citus() {
    let Some(db) = CitusDatabase::new("refusals") else { return };
    let mut client = db.client();

    let role = CitusRole { name: format!("{}_operator", db.name), db: &db };
    client
        .batch_execute(&format!(
            "CREATE ROLE {0} LOGIN; GRANT USAGE ON SCHEMA resi TO {0}; GRANT EXECUTE ON FUNCTION resi.distribute(integer) TO {0}",
            role.name
        ))
        .unwrap();
    let mut operator = connect(&db.url.replacen("postgres@", &format!("{}@", role.name), 1));
    let (code, message) = refusal(&mut operator, "SELECT resi.distribute()");
    assert_eq!((code, message.contains("only a superuser")), (SqlState::INSUFFICIENT_PRIVILEGE, true), "{message}");

    // Every worker has the function too (its own CREATE EXTENSION resi_pg).
    let (code, message) = refusal(&mut connect(&db.workers[0]), "SELECT resi.distribute()");
    assert_eq!(
        (code, message.contains("Citus worker")),
        (SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, true),
        "{message}"
    );

    let (code, message) = refusal(&mut client, "SELECT resi.distribute(0)");
    assert_eq!((code, message.contains("shard_count")), (SqlState::INVALID_PARAMETER_VALUE, true), "{message}");

    distribute(&mut client);
    let (code, message) = refusal(&mut client, "SELECT resi.distribute()");
    assert_eq!(
        (code, message.contains("already distributed")),
        (SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, true),
        "{message}"
    );
}

/// Runs in `make test` too (no Citus cluster needed), in the edition under test.
#[test]
fn resi_distribute_without_citus_refuses_and_changes_nothing() {
    let db = TestDatabase::new("no_citus");
    let mut client = db.client();
    let members: i64 = scalar(&mut client, MEMBERS);
    let (code, message) = refusal(&mut client, "SELECT resi.distribute()");
    assert_eq!(
        (code, message.contains("Citus is not installed")),
        (SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, true),
        "{message}"
    );
    assert_eq!(scalar::<i64>(&mut client, MEMBERS), members);
}

/// Objects of the extension resi_pg.
const MEMBERS: &str = "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                        WHERE e.extname = 'resi_pg' AND d.deptype = 'e'";

#[test]
fn the_consensus_of_the_distributed_tables_runs_on_the_shards_and_equals_a_single_node() {
    let Some(Worlds { mut single, mut distributed, _citus, _single_database }) = Worlds::new("by_zpid") else { return };
    // The shards are spread over both workers.
    let workers: i64 = scalar(
        &mut distributed,
        "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'resi.miner_claims'::regclass",
    );
    assert_eq!(workers, 2);

    // Every claim's weight and fingerprint first (a clearer failure than a listing's).
    assert_same_rows(
        "weighted claims",
        &rows(&mut single, "SELECT * FROM resi.weighted_claims", "zpid, miner_hotkey"),
        &rows(&mut distributed, "SELECT * FROM resi.weighted_claims", "zpid, miner_hotkey"),
    );
    let expected = rows(&mut single, "SELECT * FROM resi.listing_consensus", "zpid");
    assert_eq!(expected.len() as i64, LISTINGS);
    assert_same_rows(
        "listing consensus",
        &expected,
        &rows(&mut distributed, "SELECT * FROM resi.listing_consensus", "zpid"),
    );

    // Pushed down whole: each shard's task groups its claims by zpid (consensus_by_source on the
    // worker) and sends one row per listing; the coordinator only concatenates.
    let plan = DistributedPlan::of(&mut distributed, "SELECT * FROM resi.listing_consensus");
    assert!(plan.coordinator.is_empty(), "the coordinator works on the rows:\n{}", plan.plan);
    assert_eq!((plan.tasks, plan.rows_received), (SHARDS, LISTINGS), "{}", plan.plan);
    assert!(plan.aggregates_on_the_shard(), "{}", plan.plan);

    // The world has what the comparison is for: fewer sources than miners (groups, copies), one
    // voting source, miners without weight, audits in force and overruled.
    let r = single
        .query_one(
            "SELECT count(*) FILTER (WHERE voting_groups < voting_miners), count(*) FILTER (WHERE voting_groups = 1),
                    count(*) FILTER (WHERE voting_miners < unique_miners_count),
                    count(*) FILTER (WHERE audited_at IS NOT NULL),
                    count(*) FILTER (WHERE audited_at IS NULL AND zpid IN (SELECT zpid FROM resi.audits))
               FROM resi.listing_consensus",
            &[],
        )
        .unwrap();
    let world: Vec<i64> = (0..5).map(|i| r.get(i)).collect();
    assert!(world[0] > 500 && world[1] > 0 && world[2] > 500 && world[3] > 0 && world[4] > 0, "{world:?}");
}

/// The extension's consensus views run on the distributed tables (resi.weighted_claims writes
/// the weight's expression inline: Citus refuses a LATERAL subquery without FROM calling a
/// non-immutable function), and so does resi.listing_consensus_of(zpids), what
/// resi.refresh_consensus writes: PL/pgSQL, whose query Citus plans with `zpids` known (it
/// refuses an SQL function over distributed tables: `parameterized queries for SQL functions
/// referencing distributed tables are not supported`).
#[test]
fn the_extensions_consensus_views_and_listing_consensus_of_run_on_citus_as_on_a_single_node() {
    let Some(Worlds { mut single, distributed: mut client, _citus, _single_database }) = Worlds::new("views") else {
        return;
    };
    for view in ["resi.weighted_claims", "resi.listing_consensus"] {
        let count = format!("SELECT count(*) FROM {view}");
        assert_eq!(scalar::<i64>(&mut client, &count), scalar::<i64>(&mut single, &count), "{view}");
    }
    for zpids in ["ARRAY['1', '2', '1234', '2999', 'none']", "NULL"] {
        let query = format!("SELECT * FROM resi.listing_consensus_of({zpids})");
        let expected = rows(&mut single, &query, "zpid");
        assert!(expected.len() >= 4, "{query}: {}", expected.len());
        assert_same_rows(&query, &expected, &rows(&mut client, &query, "zpid"));
    }
}

/// Three folds as the loader stages them (a ledger row per submission, one INSERT per fold),
/// for `fold` 1 to 3: six submissions each, by miners of the world (with trust, in groups or
/// not) and new ones, on listings of the world and new ones (zpids 2,900 on), overlapping
/// within a fold and from fold to fold; every third miner reports other prices, one submission
/// a fold repeats a zpid, and one reports nothing but copies of its first row (a low-quality
/// submission: a strike).
fn uploads(fold: i64) -> String {
    format!(
        "INSERT INTO resi.ingest_ledger (id, object_key, etag, status, miner_hotkey)
         SELECT 100 * {fold} + m, 'fold{fold}/' || m, 'e', 'loaded', (ARRAY['m', 'N', 'o'])[1 + m * 7 % 3] || (m * 7 + {fold})
           FROM generate_series(0, 5) m;
         INSERT INTO resi.staging_listings (ledger_id, miner_hotkey, submission_timestamp, s3_file_path, zpid, uri, price,
                                            bedrooms, bathrooms, home_status, zip_code, latitude, longitude, scraped_at)
         SELECT 100 * {fold} + m, (ARRAY['m', 'N', 'o'])[1 + m * 7 % 3] || (m * 7 + {fold}),
                timestamptz '2025-09-17 08:00+00' + {fold} * interval '1 hour' + m * interval '1 minute', 'fold{fold}/' || m,
                z::text, 'https://www.zillow.com/homedetails/' || z || '_zpid/',
                250000 + z + (m % 3 = 2)::int * 5000 * {fold}, 3 + (z % 2), 2, (ARRAY['FOR_SALE', 'PENDING', 'SOLD'])[1 + (z + {fold}) % 3],
                '787' || lpad((z % 100)::text, 2, '0'), 30.25 + z * 1e-5, -97.75, timestamptz '2025-09-17 07:00+00' + z * interval '1 second'
           FROM generate_series(0, 5) m,
                LATERAL (SELECT CASE WHEN m = 5 THEN 2900 + {fold} ELSE z END AS z
                           FROM generate_series(2900 + 40 * {fold} + 9 * m, 3000 + 40 * {fold} + 9 * m) z
                         UNION ALL
                         SELECT 2950 + {fold} WHERE m = 1) r;"
    )
}

/// What a fold writes, compared without ids and the times a transaction takes from the clock:
/// each query's rows as JSON.
const FOLDED: [(&str, &str, &str); 7] = [
    ("listings", "SELECT zpid, to_jsonb(l) - 'last_updated_at' AS r FROM resi.listings l", "zpid"),
    (
        "listing history",
        "SELECT zpid, to_jsonb(h) - 'id' - 'changed_at' AS r FROM resi.listing_history h",
        "zpid, r::text",
    ),
    (
        "attestations",
        "SELECT zpid, to_jsonb(a) - 'id' - 'validation_timestamp' AS r FROM resi.miner_attestations a",
        "zpid, r::text",
    ),
    ("claims", "SELECT zpid, miner_hotkey, to_jsonb(c) - 'attestation_id' AS r FROM resi.miner_claims c", "zpid, miner_hotkey"),
    (
        "miner trust",
        "SELECT miner_hotkey, to_jsonb(t) - 'first_seen_at' - 'updated_at' - 'trust_changed_at' AS r FROM resi.miner_trust t",
        "miner_hotkey",
    ),
    ("day counts", "SELECT * FROM resi.miner_submission_days", "miner_hotkey, day"),
    (
        "ledger verdicts",
        "SELECT id, to_jsonb(g) - 'started_at' - 'finished_at' AS r FROM resi.ingest_ledger g",
        "id",
    ),
];

/// The loader's fold (INSERTs into resi.staging_listings on the coordinator, as the loader's
/// COPY) gives a distributed database the single node's listings, history, attestations,
/// claims, trust, day counts and ledger verdicts: the same statements as on a single node, but
/// resi.refresh_consensus takes one advisory lock instead of locking the listings' rows, and the
/// fold writes over one connection per worker (a strike's trust row, then the claims, read
/// together by the refresh's nested query).
#[test]
fn the_loaders_fold_on_a_distributed_database_writes_what_it_writes_on_a_single_node() {
    let Some(Worlds { mut single, mut distributed, _citus, _single_database }) = Worlds::new("fold") else { return };
    // Every listing of the world from its claims (a refresh of all: zpids NULL), then three folds.
    for client in [&mut single, &mut distributed] {
        client.batch_execute("SELECT resi.refresh_consensus()").unwrap();
        for fold in 1..=3 {
            client.batch_execute(&uploads(fold)).unwrap_or_else(|e| panic!("fold {fold}: {e:?}"));
        }
    }
    for (what, query, order) in FOLDED {
        assert_same_rows(what, &rows(&mut single, query, order), &rows(&mut distributed, query, order));
    }
    // The folds did what the comparison is for: new listings and changed ones (history after
    // the first consensus), verdicts on corroborated rows, a strike.
    let r = single
        .query_one(
            "SELECT (SELECT count(*) FROM resi.listings WHERE zpid::int >= 3000),
                    (SELECT count(*) FROM resi.listing_history WHERE previous_price IS NOT NULL),
                    (SELECT count(*) FROM resi.ingest_ledger WHERE row_agreement IS NOT NULL),
                    (SELECT count(*) FROM resi.miner_penalties WHERE kind = 'strike')",
            &[],
        )
        .unwrap();
    let shape: Vec<i64> = (0..4).map(|i| r.get(i)).collect();
    assert!(shape.iter().all(|&n| n > 0), "{shape:?}");
}

/// Calls of the operator's, the validators' and the readers' functions after the folds of
/// `uploads`, each with its answer compared (times left out). In this order: the independence
/// pass regroups miners and staleness follows; audits and validations change trust.
const CALLS: [(&str, &str); 27] = [
    ("SELECT resi.find_dependent_miners() AS changed", "1"),
    ("SELECT resi.stale_listings() AS stale", "1"),
    ("SELECT resi.refresh_stale_consensus(400) AS refreshed", "1"),
    ("SELECT resi.stale_listings() AS stale", "1"),
    ("SELECT resi.record_audit('3000', '{\"price\": 253000, \"home_status\": \"SOLD\"}', '2025-09-17 12:00+00') AS judged", "1"),
    ("SELECT resi.record_audit('3010', '{\"price\": 100, \"bedrooms\": 3}', '2025-09-17 12:00+00') AS judged", "1"),
    ("SELECT resi.record_validation('m1', '2990', true, 0.9) AS trust", "1"),
    ("SELECT resi.record_validation('N8', '2990', false) AS trust", "1"),
    // A round of validations of a listing with two passed reports that agree (the third fold's
    // m3 and N10): the failed ones (o17 and o16, each its own price) are judged against them,
    // and the independence pass reads the verdicts.
    ("SELECT resi.record_validation('m3', '3060', true) AS trust", "1"),
    ("SELECT resi.record_validation('N10', '3060', true) AS trust", "1"),
    (
        "SELECT cardinality(ARRAY[resi.record_validation('o17', '3060', false),
                resi.record_validation('o16', '3060', false)]) AS failed",
        "1",
    ),
    ("SELECT zpid, miner_hotkey, passed, wrong FROM resi.validation_verdicts", "miner_hotkey"),
    ("SELECT resi.find_dependent_miners(3, 1) AS changed", "1"),
    ("SELECT resi.add_strike('m22', 'test') IS NULL AS not_banned", "1"),
    ("SELECT resi.ban_miner('o15', 'test', '1 day') > now() AS banned", "1"),
    ("SELECT resi.unban_miner('o15') AS unbanned", "1"),
    ("SELECT (s).* FROM (SELECT resi.miner_status('m1') AS s) x", "1"),
    ("SELECT * FROM resi.propose_audits(25, 0)", "zpid"),
    ("SELECT x.zpid, to_jsonb(x) - 'last_updated_at' AS r FROM api.search_listings(after := '2990', \"limit\" := 30) x", "zpid"),
    (
        "SELECT x.zpid, to_jsonb(x) - 'last_updated_at' AS r FROM api.search_listings(min_price := 252000, home_status := 'SOLD') x",
        "zpid",
    ),
    ("SELECT x.zpid, to_jsonb(x) - 'last_updated_at' AS r FROM api.listing('3000') x", "zpid"),
    ("SELECT price, home_status, confidence, previous_price FROM api.listing_history('3000')", "1"),
    ("SELECT to_jsonb(x) - 'last_updated_at' AS r FROM api.zip_stats('78700') x", "1"),
    ("SELECT * FROM resi.archivable_listings('2025-09-01 06:00+00')", "zpid"),
    ("SELECT * FROM resi.archivable_attestations('2025-09-17 12:00+00')", "id"),
    (
        "SELECT (SELECT count(*) FROM resi.ingest_by_miner) AS by_miner, (SELECT count(*) FROM resi.miner_leaderboard) AS leaders,
                (SELECT count(*) FROM resi.dependent_groups) AS groups, (SELECT count(*) FROM resi.consensus_health) AS health,
                (SELECT count(*) FROM resi.field_disagreement) AS fields, (SELECT count(*) FROM resi.zip_freshness) AS zips",
        "1",
    ),
    ("SELECT resi.add_blacklist_entry('zpid', '3001', 'test') > 0 AS entered", "1"),
];

/// What the calls write besides `FOLDED`, compared without ids and times.
const CALLED: [(&str, &str, &str); 4] = [
    (
        "dependence",
        "SELECT miner_hotkey, source_hotkey, to_jsonb(d) - 'first_seen_at' - 'updated_at' AS r FROM resi.miner_dependence d",
        "miner_hotkey, source_hotkey",
    ),
    ("groups", "SELECT miner_hotkey, group_hotkey, trust FROM resi.miner_groups", "miner_hotkey"),
    ("penalties", "SELECT miner_hotkey, kind, reason FROM resi.miner_penalties", "miner_hotkey, kind, reason"),
    (
        "audit verdicts",
        "SELECT a.zpid, v.miner_hotkey, v.fields_compared, v.wrong FROM resi.audit_verdicts v JOIN resi.audits a ON a.id = v.audit_id",
        "zpid, miner_hotkey",
    ),
];

/// After the same folds, every function an operator, a validator or a reader calls answers on a
/// distributed database what it answers on a single node, and writes the same: the
/// independence pass (its recursive grouping reads only reference tables there), the stale
/// listings (a join of co-located tables), audits, validations, strikes and bans (ON CONFLICT
/// takes the time from the inserted row), the API and the archive's selections (PL/pgSQL:
/// Citus plans no SQL function over distributed tables that takes parameters or is inlined).
#[test]
fn the_operators_validators_and_readers_functions_answer_on_citus_as_on_a_single_node() {
    let Some(Worlds { mut single, mut distributed, _citus: citus, _single_database }) = Worlds::new("calls") else {
        return;
    };
    for client in [&mut single, &mut distributed] {
        client.batch_execute("SELECT resi.refresh_consensus()").unwrap();
        for fold in 1..=3 {
            client.batch_execute(&uploads(fold)).unwrap_or_else(|e| panic!("fold {fold}: {e:?}"));
        }
    }
    let mut answered = 0;
    for (call, order) in CALLS {
        let expected = rows(&mut single, call, order);
        assert_same_rows(call, &expected, &rows(&mut distributed, call, order));
        answered += usize::from(!expected.is_empty() && expected[0] != "(0)" && expected[0] != "(f)");
    }
    // The calls did something to compare: most answered with rows that are not "nothing".
    assert!(answered >= CALLS.len() - 3, "only {answered} calls of {} answered something", CALLS.len());
    // Later, once the judgements have settled (their times, and the hour until which the passes
    // above summed them, moved to one hour of the past: Citus refuses a stable timestamp -
    // interval in an UPDATE; each listing's validations stay one round), the next pass sums the audits and validations into resi.judged_pair_totals (an
    // upsert of a reference table) and finds what the passes above found, as on a single node.
    for client in [&mut single, &mut distributed] {
        client
            .batch_execute(
                "UPDATE resi.audits SET recorded_at = '2025-09-17 12:10+00';
                 UPDATE resi.miner_attestations SET validation_timestamp = '2025-09-17 12:20+00'
                  WHERE validation_passed IS NOT NULL;
                 UPDATE resi.settled_judgements SET settled_until = '2025-09-17 12:00+00';",
            )
            .unwrap();
    }
    for (call, order) in [
        ("SELECT resi.find_dependent_miners(3, 1) AS changed", "1"),
        (
            "SELECT miner_hotkey, other_hotkey, shared_false, differences, judged_together, miner_wrong::text,
                    other_wrong::text, wrong_apart
               FROM resi.judged_pair_totals",
            "1",
        ),
        (
            "SELECT count(*) FROM resi.judged_pairs((SELECT settled_until FROM resi.settled_judgements), 'infinity')",
            "1",
        ),
    ] {
        let expected = rows(&mut single, call, order);
        assert!(!expected.is_empty(), "{call}: no rows");
        assert_same_rows(call, &expected, &rows(&mut distributed, call, order));
    }
    for (what, query, order) in FOLDED.iter().chain(CALLED.iter()) {
        let expected = rows(&mut single, query, order);
        assert!(!expected.is_empty(), "{what}: no rows");
        assert_same_rows(what, &expected, &rows(&mut distributed, query, order));
    }
    readers_read_the_api_and_not_the_claims(&mut single, &mut distributed, &citus.workers);
}

/// What a reader gets from the API and the tiles, as PostgREST asks (a login switching to
/// `resi_reader`), after `resi.setup_roles()`: the single node's answers, from the coordinator
/// and from every worker where `resi.setup_roles()` ran too (each has Citus's metadata and plans
/// the calls itself: readers may be spread over the nodes); the claims are refused on both. On Citus the node reads the shards as
/// `resi_reader`, which may log in to the workers only because resi.setup_roles allowed it there.
fn readers_read_the_api_and_not_the_claims(single: &mut Client, distributed: &mut Client, workers: &[String]) {
    const READS: [(&str, &str); 4] = [
        ("SELECT zpid, price, confidence FROM api.search_listings(zip_code := '78790')", "zpid"),
        ("SELECT zpid, jsonb_array_length(reports) AS reports FROM api.listing('3000')", "zpid"),
        ("SELECT listings, median_price FROM api.zip_stats('78790')", "1"),
        ("SELECT md5(resi.listing_tile(10, 233, 421)) AS tile", "1"),
    ];
    let as_reader = |client: &mut Client, query: &str, order: &str| {
        let mut reader = client.transaction().unwrap();
        reader.batch_execute("SET LOCAL ROLE resi_reader").unwrap();
        let sql = format!("SELECT row(q.*)::text FROM ({query}) q ORDER BY {order}");
        reader.query(&sql, &[]).map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<String>>())
    };
    for client in [&mut *single, &mut *distributed] {
        client.batch_execute("SELECT resi.setup_roles()").unwrap();
    }
    for worker in workers {
        connect(worker).batch_execute("SELECT resi.setup_roles()").unwrap_or_else(|e| panic!("{worker}: {e:?}"));
    }
    for (query, order) in READS {
        let expected = as_reader(single, query, order).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert!(!expected.is_empty() && !expected[0].contains("(,"), "{query}: {expected:?}");
        let got = as_reader(distributed, query, order).unwrap_or_else(|e| panic!("{query} on Citus: {e}"));
        assert_same_rows(&format!("{query} as resi_reader"), &expected, &got);
        for worker in workers {
            let got =
                as_reader(&mut connect(worker), query, order).unwrap_or_else(|e| panic!("{query} on {worker}: {e:?}"));
            assert_same_rows(&format!("{query} as resi_reader on {worker}"), &expected, &got);
        }
    }
    for client in [single, distributed] {
        let refused = as_reader(client, "SELECT count(*) FROM resi.miner_claims", "1").unwrap_err();
        assert_eq!(refused.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{refused}");
    }
}

/// One row per listing of `weighted_claims` (a view of resi.weighted_claims' columns): its
/// sources' consensus as text, resi.consensus_by_source called as resi.listing_consensus calls it.
fn sources_of(weighted_claims: &str) -> String {
    format!(
        "SELECT zpid, resi.consensus_by_source(c.zpid, c.uri, c.price, c.address, c.bedrooms, c.bathrooms, c.living_area,
                                               c.home_type, c.home_status, c.days_on_zillow, c.zip_code, c.city, c.state,
                                               c.latitude, c.longitude, c.trust, coalesce(c.group_hotkey, c.miner_hotkey),
                                               c.miner_hotkey, c.signature, c.submission_timestamp)::text AS sources
           FROM {weighted_claims} c GROUP BY zpid"
    )
}

/// A filter on zpid prunes the claims to the listing's one shard (a router query: one task),
/// unless the query joins another distributed table on zpid without filtering it: the view's
/// `LEFT JOIN LATERAL` to the listing's newest audit runs a task on every shard (the answer is
/// still the one listing's). When the view task count drops to 1, the view became routable:
/// update this test. `api.listing` filters every table by the zpid itself: one task (it asked
/// every shard while its subqueries were correlated on the listing's zpid).
#[test]
fn a_filter_on_zpid_routes_the_sources_to_one_shard_but_the_views_audit_join_asks_every_shard() {
    let Some(Worlds { mut single, distributed: mut client, _citus: citus, _single_database }) = Worlds::new("router")
    else {
        return;
    };
    for zpid in ["0", "1234", "2999"] {
        // A listing's detail (every distributed table filtered by the zpid itself) is one task.
        let detail = format!("SELECT * FROM api.listing('{zpid}')");
        let selects = remote_commands(&citus.url, &detail).iter().filter(|c| c.starts_with("SELECT")).count();
        assert_eq!(selects, 1, "{detail}");
        let filter = format!("WHERE zpid = '{zpid}'");
        let sources = format!("SELECT * FROM ({}) s {filter}", sources_of("resi.weighted_claims"));
        let plan = DistributedPlan::of(&mut client, &sources);
        assert_eq!((plan.tasks, plan.rows_received), (1, 1), "{}", plan.plan);
        let expected = format!("SELECT * FROM ({}) s {filter}", sources_of("resi.weighted_claims"));
        assert_same_rows(&sources, &rows(&mut single, &expected, "zpid"), &rows(&mut client, &sources, "zpid"));

        let view = format!("SELECT * FROM resi.listing_consensus {filter}");
        let plan = DistributedPlan::of(&mut client, &view);
        assert_eq!((plan.tasks, plan.rows_received), (SHARDS, 1), "{}", plan.plan);
        let expected = format!("SELECT * FROM resi.listing_consensus {filter}");
        assert_same_rows(&view, &rows(&mut single, &expected, "zpid"), &rows(&mut client, &view, "zpid"));
    }
}

/// The refresh of the consensus runs on the shards: Citus sends each shard the statements that
/// compute the consensus into resi.listing_refresh and write the listings from it, and no query
/// that brings consensus rows (the per-listing aggregate's results) back to the coordinator. The
/// listings are the single node's.
#[test]
fn a_refresh_on_citus_computes_and_writes_the_consensus_on_the_shards() {
    let Some(Worlds { mut single, distributed: mut client, _citus: citus, _single_database }) = Worlds::new("refresh")
    else {
        return;
    };
    let commands = remote_commands(&citus.url, "SELECT resi.refresh_consensus()");
    let sent = |prefix: &str| commands.iter().filter(|c| c.starts_with(prefix)).count() as i64;
    assert_eq!(sent("INSERT INTO resi.listing_refresh_"), SHARDS, "{commands:#?}");
    assert_eq!(sent("INSERT INTO resi.listings_"), SHARDS, "{commands:#?}");
    let pulled: Vec<&String> =
        commands.iter().filter(|c| c.starts_with("SELECT") && c.contains("consensus_by_source")).collect();
    assert!(pulled.is_empty(), "consensus rows read back to the coordinator: {pulled:#?}");
    single.execute("SELECT resi.refresh_consensus()", &[]).unwrap();
    let listings = "SELECT zpid, price, home_status, consensus_score, field_consensus FROM resi.listings";
    assert_same_rows(listings, &rows(&mut single, listings, "zpid"), &rows(&mut client, listings, "zpid"));
}

/// The statements the coordinator sent to the workers while `query` ran, from the notices of
/// `citus.log_remote_commands` ("issuing …"), without the "issuing " prefix.
fn remote_commands(url: &str, query: &str) -> Vec<String> {
    notices_while(url, "SET citus.log_remote_commands = on", query)
        .iter()
        .filter_map(|m| m.strip_prefix("issuing ").map(str::to_string))
        .collect()
}

/// An aggregate over claims of many listings (analytics) gives the single node's answer. The
/// consensus aggregates (`internal` state) are not split: every claim travels to the
/// coordinator, which aggregates alone. Their variants with a state of a concrete type
/// (`resi.distributed_consensus_mode` / `_median`, the same answer) are computed per shard, as
/// `sum` is: each worker sends one state per group, as text, which the coordinator combines.
/// When the first plan's assertion fails, Citus now splits `internal` states: update this record.
#[test]
fn an_aggregate_over_every_listing_equals_a_single_node_and_only_the_distributed_variants_run_on_the_shards() {
    let Some(Worlds { mut single, distributed: mut client, _citus, _single_database }) = Worlds::new("all_zpids")
    else {
        return;
    };
    let claims: i64 = scalar(&mut single, "SELECT count(*) FROM resi.miner_claims");
    let vote = |table: &str| {
        format!(
            "SELECT resi.consensus_mode(home_status, trust)::text || ' ' || resi.consensus_median(price, trust, 0.01)::text
               FROM {table}"
        )
    };
    let expected: String = scalar(&mut single, &vote("resi.weighted_claims"));
    let distributed: String = scalar(&mut client, &vote("resi.weighted_claims"));
    assert_eq!(distributed, expected);
    assert!(expected.starts_with('('), "{expected}");

    let consensus = DistributedPlan::of(&mut client, &vote("resi.weighted_claims"));
    assert!(!consensus.aggregates_on_the_shard(), "{}", consensus.plan);
    assert!(consensus.coordinator.iter().any(|l| l.contains("Aggregate")), "{}", consensus.plan);
    assert_eq!((consensus.tasks, consensus.rows_received), (SHARDS, claims), "{}", consensus.plan);

    let sum = DistributedPlan::of(&mut client, "SELECT sum(price * trust) FROM resi.weighted_claims");
    assert!(sum.aggregates_on_the_shard(), "{}", sum.plan);
    assert_eq!(sum.rows_received, SHARDS, "{}", sum.plan);

    // The variants with a concrete state: the same answer, aggregated on every shard (Citus's
    // worker_partial_agg, whose state travels as text; EXPLAIN ANALYZE cannot show such a plan:
    // "column field_0 has pseudo-type cstring", so the statements sent to the workers are read).
    let split = vote("resi.weighted_claims").replace("resi.consensus_m", "resi.distributed_consensus_m");
    assert_eq!(scalar::<String>(&mut client, &split), expected);
    let on_shards = |query: &str| {
        let commands = remote_commands(&_citus.url, query);
        let partial = commands.iter().filter(|c| c.contains("worker_partial_agg(")).count();
        assert_eq!(partial, SHARDS as usize, "{query}: one partial aggregate per shard:\n{commands:#?}");
    };
    on_shards(&split);
    // Grouped by a column other than zpid.
    let by_bedrooms =
        "SELECT bedrooms, resi.consensus_mode(home_status, trust), resi.consensus_median(price, trust, 0.01)
                         FROM resi.weighted_claims GROUP BY bedrooms";
    let split_by_bedrooms = by_bedrooms.replace("resi.consensus_m", "resi.distributed_consensus_m");
    let groups = rows(&mut single, by_bedrooms, "1");
    assert!(groups.len() >= 2, "{groups:?}");
    assert_same_rows("by bedrooms", &groups, &rows(&mut client, &split_by_bedrooms, "1"));
    on_shards(&split_by_bedrooms);
    eprintln!(
        "over all {claims} claims: resi.consensus_mode/median made the coordinator receive {} rows from {} shards; \
         sum() {} rows; resi.distributed_consensus_mode/median ran on every shard",
        consensus.rows_received, consensus.tasks, sum.rows_received
    );
}

/// The consensus reads resi settings (resi.claim_half_life, resi.initial_trust) where it runs:
/// on the workers. A session's `SET` on the coordinator does not reach them, so the distributed
/// answer silently differs from the single node's; inside a transaction, `SET LOCAL` with
/// `citus.propagate_set_commands = 'local'` is sent to every worker the transaction uses.
#[test]
fn a_resi_setting_reaches_the_shards_only_as_set_local_with_citus_propagate_set_commands() {
    let Some(Worlds { mut single, distributed: mut client, _citus, _single_database }) = Worlds::new("settings") else {
        return;
    };
    const SINGLE: &str = "SELECT * FROM resi.listing_consensus";
    const DISTRIBUTED: &str = "SELECT * FROM resi.listing_consensus";
    let defaults = rows(&mut single, SINGLE, "zpid");
    for (setting, value) in [("resi.claim_half_life", "0"), ("resi.initial_trust", "0.9")] {
        let set = format!("SET {setting} = '{value}'");
        single.batch_execute(&set).unwrap();
        client.batch_execute(&set).unwrap();
        let expected = rows(&mut single, SINGLE, "zpid");
        assert!(first_difference(&expected, &defaults).is_some(), "{setting} = {value} changes no listing");
        assert_same_rows(
            &format!("SET {setting} (the workers keep their default)"),
            &defaults,
            &rows(&mut client, DISTRIBUTED, "zpid"),
        );

        let mut transaction = client.transaction().unwrap();
        transaction
            .batch_execute(&format!(
                "SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL {setting} = '{value}'"
            ))
            .unwrap();
        assert_same_rows(&format!("SET LOCAL {setting}"), &expected, &rows(&mut transaction, DISTRIBUTED, "zpid"));
        transaction.rollback().unwrap();
        let reset = format!("RESET {setting}");
        single.batch_execute(&reset).unwrap();
        client.batch_execute(&reset).unwrap();
    }
}

/// The fold's statement that judges each submission is planned without nested loops on the
/// workers too (statistics of a shard can mislead its planner as a single node's do; see
/// tests/fold.rs): the coordinator sends the setting to the workers as SET LOCAL before the
/// statement's shard queries and puts it back after them.
#[test]
fn the_folds_judgement_is_planned_without_nested_loops_on_the_workers_too() {
    let Some(Worlds { mut distributed, _citus, .. }) = Worlds::new("fold_plan") else { return };
    distributed.batch_execute("SELECT resi.refresh_consensus()").unwrap();
    let commands = remote_commands(&_citus.url, &uploads(1));
    let at =
        |sent: &dyn Fn(&str) -> bool| -> Vec<usize> { (0..commands.len()).filter(|&i| sent(&commands[i])).collect() };
    let off = at(&|c| c == "SET LOCAL enable_nestloop = off");
    let on = at(&|c| c == "SET LOCAL enable_nestloop = on");
    let judged = at(&|c| c.contains("resi.corroborated_agreement("));
    assert!(!judged.is_empty() && !off.is_empty(), "{commands:#?}");
    // Once to every worker connection, before the first shard query of the statement; put back
    // on the same connections after the last.
    assert_eq!(off.len(), on.len(), "{commands:#?}");
    assert!(off.iter().all(|&i| i < judged[0]) && on.iter().all(|&i| i > judged[judged.len() - 1]), "{commands:#?}");
}
