//! resi_pg 0.5 on Citus 13.2.2 (issue 18), as it is today: a coordinator and two workers on
//! 127.0.0.1 (scripts/citus-cluster), run only by `make test-citus`; without
//! `RESI_TEST_CITUS_URL` every test says it is skipped and passes.
//!
//! The extension's own tables cannot be distributed safely (issue 18: Citus does not keep the
//! workers' copies of an extension's tables in step, nor update an extension whose tables it
//! distributed), so the claims are copied into tables of a schema `dist` created `LIKE` the
//! extension's, distributed by zpid (audits co-located with them, trust and groups as reference
//! tables). The single node they are compared with is the coordinator itself: the same rows in
//! the extension's local tables, read through the extension's views, which Citus leaves alone.

use postgres::{Client, GenericClient};
use resi_e2e::{connect, scalar, CitusDatabase};

/// Shards per distributed table (citus.shard_count): two per worker. Each shard's task adds
/// planning and a connection; issue 18's measurements found many shards per node cost more than
/// they bring.
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

/// The world's tables copied into schema `dist`: claims distributed by zpid in SHARDS shards, audits
/// co-located with them (a listing's claims and audits are on one shard), trust and groups
/// as reference tables (a copy on every node, the coordinator's included), and the claims' weights
/// over them. One statement per transaction: after a statement of a transaction has read the
/// coordinator's copy of a reference table (local execution), Citus refuses to write the shards
/// in parallel in it: `cannot execute command because a local execution has accessed a placement
/// in the transaction`.
const DISTRIBUTE: &[&str] = &[
    "CREATE SCHEMA dist",
    "CREATE TABLE dist.miner_claims (LIKE resi.miner_claims INCLUDING ALL)",
    // Every unique key of a distributed table includes the distribution column.
    "CREATE TABLE dist.audits (LIKE resi.audits INCLUDING ALL EXCLUDING INDEXES, PRIMARY KEY (zpid, id))",
    "CREATE TABLE dist.miner_trust (LIKE resi.miner_trust INCLUDING ALL)",
    "CREATE TABLE dist.miner_groups (LIKE resi.miner_groups INCLUDING ALL)",
    "SELECT create_distributed_table('dist.miner_claims', 'zpid')",
    "SELECT create_distributed_table('dist.audits', 'zpid', colocate_with => 'dist.miner_claims')",
    "SELECT create_reference_table('dist.miner_trust')",
    "SELECT create_reference_table('dist.miner_groups')",
    "INSERT INTO dist.miner_claims SELECT * FROM resi.miner_claims",
    "INSERT INTO dist.audits SELECT * FROM resi.audits",
    "INSERT INTO dist.miner_trust SELECT * FROM resi.miner_trust",
    "INSERT INTO dist.miner_groups SELECT * FROM resi.miner_groups",
    "ANALYZE dist.miner_claims, dist.audits, dist.miner_trust, dist.miner_groups",
    // resi.weighted_claims computes the weight in `CROSS JOIN LATERAL (SELECT coalesce(g.trust,
    // t.trust_score, resi.initial_trust()) AS trust)`, which Citus refuses in every query over
    // it: `cannot push down this subquery` / `Subqueries without a FROM clause can only contain
    // immutable functions`. The same columns with the expression written twice:
    "CREATE VIEW dist.weighted_claims AS
     SELECT c.*, g.group_hotkey, coalesce(g.trust, t.trust_score, resi.initial_trust()) AS trust,
            resi.trust_fingerprint(c.miner_hotkey || coalesce('/' || g.group_hotkey, ''),
                                   coalesce(g.trust, t.trust_score, resi.initial_trust())) AS trust_fingerprint
       FROM dist.miner_claims c
       LEFT JOIN dist.miner_trust t ON t.miner_hotkey = c.miner_hotkey
       LEFT JOIN dist.miner_groups g ON g.miner_hotkey = c.miner_hotkey",
];

/// The tables resi.listing_consensus reads, and their distributed copies.
const CONSENSUS_TABLES: [(&str, &str); 2] =
    [("resi.weighted_claims ", "dist.weighted_claims "), ("resi.audits ", "dist.audits ")];

/// A Citus database with the world in the extension's tables (the single node) and in `dist`
/// (distributed), and `dist.listing_consensus`: the extension's own view definition with its
/// tables replaced by the distributed ones. `None` without a Citus cluster.
fn distributed_world(label: &str) -> Option<(CitusDatabase, Client)> {
    let db = CitusDatabase::new(label)?;
    let mut client = db.client();
    client.batch_execute(&format!("SET client_min_messages = warning; SET citus.shard_count = {SHARDS}")).unwrap();
    client.batch_execute(WORLD).unwrap();
    for statement in DISTRIBUTE {
        client.batch_execute(statement).unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    let mut definition: String = scalar(&mut client, "SELECT pg_get_viewdef('resi.listing_consensus')");
    for (table, copy) in CONSENSUS_TABLES {
        assert!(definition.contains(table), "resi.listing_consensus no longer reads {table}:\n{definition}");
        definition = definition.replace(table, copy);
    }
    assert!(only_functions(&definition), "resi.listing_consensus reads a table this test does not copy:\n{definition}");
    client
        .batch_execute(&format!("CREATE VIEW dist.listing_consensus AS {definition}"))
        .unwrap_or_else(|e| panic!("resi.listing_consensus over the distributed tables: {e:?}\n{definition}"));
    Some((db, client))
}

/// Whether every `resi.` name left in a view definition is a function call (`resi.name(`).
fn only_functions(definition: &str) -> bool {
    definition.split("resi.").skip(1).all(|rest| {
        let name_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        rest[name_end..].starts_with('(')
    })
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

#[test]
fn the_consensus_of_listings_distributed_by_zpid_runs_on_the_shards_and_equals_a_single_node() {
    let Some((_db, mut client)) = distributed_world("by_zpid") else { return };
    // The shards are spread over both workers.
    let workers: i64 = scalar(
        &mut client,
        "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'dist.miner_claims'::regclass",
    );
    assert_eq!(workers, 2);

    // Every claim's weight and fingerprint first (a clearer failure than a listing's).
    assert_same_rows(
        "weighted claims",
        &rows(&mut client, "SELECT * FROM resi.weighted_claims", "zpid, miner_hotkey"),
        &rows(&mut client, "SELECT * FROM dist.weighted_claims", "zpid, miner_hotkey"),
    );
    let single = rows(&mut client, "SELECT * FROM resi.listing_consensus", "zpid");
    assert_eq!(single.len() as i64, LISTINGS);
    assert_same_rows("listing consensus", &single, &rows(&mut client, "SELECT * FROM dist.listing_consensus", "zpid"));

    // Pushed down whole: each shard's task groups its claims by zpid (consensus_by_source on the
    // worker) and sends one row per listing; the coordinator only concatenates.
    let plan = DistributedPlan::of(&mut client, "SELECT * FROM dist.listing_consensus");
    assert!(plan.coordinator.is_empty(), "the coordinator works on the rows:\n{}", plan.plan);
    assert_eq!((plan.tasks, plan.rows_received), (SHARDS, LISTINGS), "{}", plan.plan);
    assert!(plan.aggregates_on_the_shard(), "{}", plan.plan);

    // The world has what the comparison is for: fewer sources than miners (groups, copies), one
    // voting source, miners without weight, audits in force and overruled.
    let r = client
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
/// update this test.
#[test]
fn a_filter_on_zpid_routes_the_sources_to_one_shard_but_the_views_audit_join_asks_every_shard() {
    let Some((_db, mut client)) = distributed_world("router") else { return };
    for zpid in ["0", "1234", "2999"] {
        let filter = format!("WHERE zpid = '{zpid}'");
        let sources = format!("SELECT * FROM ({}) s {filter}", sources_of("dist.weighted_claims"));
        let plan = DistributedPlan::of(&mut client, &sources);
        assert_eq!((plan.tasks, plan.rows_received), (1, 1), "{}", plan.plan);
        let single = format!("SELECT * FROM ({}) s {filter}", sources_of("resi.weighted_claims"));
        assert_same_rows(&sources, &rows(&mut client, &single, "zpid"), &rows(&mut client, &sources, "zpid"));

        let view = format!("SELECT * FROM dist.listing_consensus {filter}");
        let plan = DistributedPlan::of(&mut client, &view);
        assert_eq!((plan.tasks, plan.rows_received), (SHARDS, 1), "{}", plan.plan);
        let single = format!("SELECT * FROM resi.listing_consensus {filter}");
        assert_same_rows(&view, &rows(&mut client, &single, "zpid"), &rows(&mut client, &view, "zpid"));
    }
}

/// Records what Citus does with an aggregate over claims of many listings (analytics): the
/// answer is the single node's, but the consensus aggregates (`internal` state) are not split:
/// every claim travels to the coordinator, which aggregates alone. An aggregate with a concrete
/// state (sum) in the same shape is computed per shard. When this test fails on the rows
/// received, Citus (or resi_pg's aggregates) now split the work: update this record.
#[test]
fn an_aggregate_over_every_listing_equals_a_single_node_but_citus_pulls_every_claim_to_the_coordinator() {
    let Some((_db, mut client)) = distributed_world("all_zpids") else { return };
    let claims: i64 = scalar(&mut client, "SELECT count(*) FROM resi.miner_claims");
    let vote = |table: &str| {
        format!(
            "SELECT resi.consensus_mode(home_status, trust)::text || ' ' || resi.consensus_median(price, trust, 0.01)::text
               FROM {table}"
        )
    };
    let single: String = scalar(&mut client, &vote("resi.weighted_claims"));
    let distributed: String = scalar(&mut client, &vote("dist.weighted_claims"));
    assert_eq!(distributed, single);
    assert!(single.starts_with('('), "{single}");

    let consensus = DistributedPlan::of(&mut client, &vote("dist.weighted_claims"));
    assert!(!consensus.aggregates_on_the_shard(), "{}", consensus.plan);
    assert!(consensus.coordinator.iter().any(|l| l.contains("Aggregate")), "{}", consensus.plan);
    assert_eq!((consensus.tasks, consensus.rows_received), (SHARDS, claims), "{}", consensus.plan);

    let sum = DistributedPlan::of(&mut client, "SELECT sum(price * trust) FROM dist.weighted_claims");
    assert!(sum.aggregates_on_the_shard(), "{}", sum.plan);
    assert_eq!(sum.rows_received, SHARDS, "{}", sum.plan);
    eprintln!(
        "over all {claims} claims: resi.consensus_mode/median made the coordinator receive {} rows from {} shards; \
         sum() received {} rows",
        consensus.rows_received, consensus.tasks, sum.rows_received
    );
}

/// The consensus reads resi settings (resi.claim_half_life, resi.initial_trust) where it runs:
/// on the workers. A session's `SET` on the coordinator does not reach them, so the distributed
/// answer silently differs from the single node's; inside a transaction, `SET LOCAL` with
/// `citus.propagate_set_commands = 'local'` is sent to every worker the transaction uses.
#[test]
fn a_resi_setting_reaches_the_shards_only_as_set_local_with_citus_propagate_set_commands() {
    let Some((_db, mut client)) = distributed_world("settings") else { return };
    const SINGLE: &str = "SELECT * FROM resi.listing_consensus";
    const DISTRIBUTED: &str = "SELECT * FROM dist.listing_consensus";
    let defaults = rows(&mut client, SINGLE, "zpid");
    for (setting, value) in [("resi.claim_half_life", "0"), ("resi.initial_trust", "0.9")] {
        client.batch_execute(&format!("SET {setting} = '{value}'")).unwrap();
        let single = rows(&mut client, SINGLE, "zpid");
        assert!(first_difference(&single, &defaults).is_some(), "{setting} = {value} changes no listing");
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
        assert_same_rows(&format!("SET LOCAL {setting}"), &single, &rows(&mut transaction, DISTRIBUTED, "zpid"));
        transaction.rollback().unwrap();
        client.batch_execute(&format!("RESET {setting}")).unwrap();
    }
}
