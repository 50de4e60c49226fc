//! Least privilege: `resi.setup_roles()` and what each role may and may not do, proven by
//! connecting as a member of each role. A denial is SQLSTATE 42501 (insufficient_privilege);
//! what a role is allowed must work, and what the writing functions do as their owner
//! (SECURITY DEFINER) must reach the tables the role itself cannot touch.

use postgres::error::SqlState;
use postgres::Client;
use resi_e2e::{connect, scalar, Edition, TestDatabase};

/// `sql` fails with insufficient_privilege (and the session stays usable).
fn denied(client: &mut Client, sql: &str) {
    match client.batch_execute(sql) {
        Ok(()) => panic!("allowed, expected a permission error: {sql}"),
        Err(e) => assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {e}"),
    }
}

fn allowed(client: &mut Client, sql: &str) {
    client.batch_execute(sql).unwrap_or_else(|e| panic!("denied, expected allowed: {sql}: {e}"));
}

/// `set` (a `SET resi.…`) does not take effect for this role. Natively it is refused (the
/// settings are SUSET GUCs). The portable edition cannot refuse a SET of a placeholder, so the
/// value is refused when read (every reader of a setting raises 42501 in such a session), and
/// the role cannot write resi.settings either.
fn setting_denied(client: &mut Client, set: &str) {
    match Edition::under_test() {
        Edition::Native => denied(client, set),
        Edition::Portable => {
            allowed(client, set);
            denied(client, "SELECT resi.ingest_settings(), resi.initial_trust(), resi.rate_limit_for(0.5)");
            allowed(client, "RESET ALL");
            denied(client, "INSERT INTO resi.settings (name, value) VALUES ('resi.initial_trust', '1')");
        }
    }
}

/// A database with the roles set up and a few folded listings (miners 5A and 5B on zpid 1).
fn database(label: &str) -> TestDatabase {
    let db = TestDatabase::new(label);
    db.setup_roles();
    db.client()
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms)
             VALUES ('5A', '2025-09-17 08:00+00', '1', 100000, 3), ('5B', '2025-09-17 08:00+00', '1', 100500, 3),
                    ('5A', '2025-09-17 08:00+00', '2', 250000, 4)",
        )
        .unwrap();
    db
}

/// Writes no role may make directly, whatever functions it may call.
const TABLE_WRITES: &[&str] = &[
    "UPDATE resi.listings SET price = 1",
    "DELETE FROM resi.listings",
    "INSERT INTO resi.listings (zpid) VALUES ('99')",
    "UPDATE resi.miner_attestations SET price = 1",
    "DELETE FROM resi.miner_attestations",
    "UPDATE resi.miner_claims SET price = 1",
    "UPDATE resi.miner_trust SET trust_score = 1",
    "INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('5Z', 1)",
    "DELETE FROM resi.miner_penalties",
    "INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'exact', '1', 'x')",
    "TRUNCATE resi.staging_listings",
];

#[test]
fn setup_roles_creates_nologin_roles_once_and_can_run_again() {
    let db = TestDatabase::new("roles_setup");
    let mut client = db.client();
    db.setup_roles();
    let again: Vec<(String, bool)> =
        client.query("SELECT * FROM resi.setup_roles()", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let names = ["resi_loader", "resi_reader", "resi_validator", "resi_admin"];
    assert_eq!(again, names.iter().map(|n| (n.to_string(), false)).collect::<Vec<_>>());
    let login: i64 = scalar(
        &mut client,
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('resi_loader', 'resi_reader', 'resi_validator', 'resi_admin')
            AND NOT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb",
    );
    assert_eq!(login, 4);
    // Only the superuser (or whoever may create roles and grant) runs it.
    let nobody = db.login(None);
    let mut as_nobody = connect(&nobody.url);
    denied(&mut as_nobody, "SELECT resi.setup_roles()");
}

#[test]
fn loader_writes_staging_and_the_ledger_and_nothing_else() {
    let db = database("roles_loader");
    let login = db.login(Some("resi_loader"));
    let mut loader = connect(&login.url);
    // What the loader does: a run, a ledger row, admission, staging (folded as the owner).
    allowed(
        &mut loader,
        "INSERT INTO resi.ingest_runs (source) VALUES ('test');
         INSERT INTO resi.ingest_ledger (object_key, etag, status) VALUES ('k', 'e', 'loaded');
         UPDATE resi.ingest_ledger SET rows_read = 1 WHERE object_key = 'k';
         UPDATE resi.ingest_runs SET status = 'completed';
         SELECT resi.admit_submission('5C', now());
         INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price)
         VALUES ('5C', '2025-09-17 09:00+00', '1', 100000);
         SELECT resi.clear_staging();
         SELECT resi.refresh_stale_consensus(10);
         SELECT count(*) FROM resi.listings;
         SELECT count(*) FROM resi.miner_attestations;
         SELECT * FROM resi.consensus_health;
         SELECT * FROM resi.ingest_by_miner;
         SELECT resi.ingest_settings();",
    );
    let mut admin = db.client();
    assert_eq!(scalar::<i32>(&mut admin, "SELECT unique_miners_count FROM resi.listings WHERE zpid = '1'"), 3);
    assert_eq!(
        scalar::<i64>(&mut admin, "SELECT total_submissions FROM resi.miner_trust WHERE miner_hotkey = '5C'"),
        1
    );
    for sql in TABLE_WRITES {
        denied(&mut loader, sql);
    }
    for sql in [
        "DELETE FROM resi.ingest_ledger",
        "SELECT * FROM resi.miner_trust",
        "SELECT * FROM resi.miner_claims",
        "SELECT resi.record_validation('5A', '1', true)",
        "SELECT resi.ban_miner('5B', 'competition')",
        "SELECT resi.unban_miner('5B')",
        "SELECT resi.add_strike('5B', 'competition')",
        "SELECT resi.add_blacklist_entry('zpid', '2', 'theirs')",
        "SELECT resi.refresh_consensus()",
        "SELECT resi.rebuild_claims()",
        "SELECT resi.record_miner_submission('5C', -1)",
        "SELECT resi.archive_batch_begin('listings', '2025-09-01', now())",
        "SELECT resi.archive_batch_delete(1, ARRAY['1'], NULL)",
    ] {
        denied(&mut loader, sql);
    }
    // The settings that judge the loader's miners are not the loader's to change.
    for sql in [
        "SET resi.max_submission_rows = 100000000",
        "SET resi.initial_trust = 1",
        "SET resi.rate_limit_tiers = '0:1000000'",
    ] {
        setting_denied(&mut loader, sql);
    }
}

#[test]
fn reader_reads_listings_and_the_public_views_only() {
    let db = database("roles_reader");
    let login = db.login(Some("resi_reader"));
    let mut reader = connect(&login.url);
    let price: i64 = scalar(&mut reader, "SELECT price FROM resi.listings WHERE zpid = '2'");
    assert_eq!(price, 250000);
    let miners: i32 = scalar(&mut reader, "SELECT unique_miners_count FROM resi.listing_consensus WHERE zpid = '1'");
    assert_eq!(miners, 2);
    // The api schema is the reader's.
    allowed(
        &mut reader,
        "SELECT * FROM api.listings; SELECT * FROM api.search_listings(zip_code := '77494');
         SELECT * FROM api.listing('1'); SELECT * FROM api.listing_history('1'); SELECT * FROM api.zip_stats('77494');
         SELECT resi.listing_tile(10, 239, 423)",
    );
    // The read-only functions work for anyone who may use the schema.
    let hash: String = scalar(&mut reader, "SELECT resi.listing_hash('{\"zpid\": \"1\"}'::jsonb)");
    assert_eq!(hash.len(), 64);
    for sql in TABLE_WRITES {
        denied(&mut reader, sql);
    }
    for sql in [
        "SELECT * FROM resi.miner_attestations",
        "SELECT * FROM resi.miner_claims",
        "SELECT * FROM resi.miner_trust",
        "SELECT * FROM resi.ingest_ledger",
        "SELECT * FROM resi.blacklist",
        "SELECT * FROM resi.listing_history",
        "SELECT * FROM resi.miner_leaderboard",
        "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid) VALUES ('5R', now(), '3')",
        "SELECT resi.record_validation('5A', '1', true)",
        "SELECT resi.admit_submission('5R', now())",
        "SELECT resi.clear_staging()",
    ] {
        denied(&mut reader, sql);
    }
    setting_denied(&mut reader, "SET resi.initial_trust = 0");
}

#[test]
fn validator_records_validations_and_nothing_else() {
    let db = database("roles_validator");
    let login = db.login(Some("resi_validator"));
    let mut validator = connect(&login.url);
    let trust: f64 = scalar(&mut validator, "SELECT resi.record_validation('5B', '1', false)");
    let mut admin = db.client();
    assert_eq!(scalar::<f64>(&mut admin, "SELECT trust_score FROM resi.miner_trust WHERE miner_hotkey = '5B'"), trust);
    assert!(trust < 0.25, "a failed validation lowers trust: {trust}");
    assert!(scalar::<bool>(
        &mut admin,
        "SELECT is_validated FROM resi.miner_attestations WHERE miner_hotkey = '5B' AND zpid = '1'"
    ));
    // It may ask where to look next, though it cannot read the claims the answer comes from.
    allowed(&mut validator, "SELECT * FROM resi.propose_audits(10)");
    for sql in TABLE_WRITES {
        denied(&mut validator, sql);
    }
    for sql in [
        "SELECT * FROM resi.listings",
        "SELECT * FROM resi.miner_claims",
        "SELECT resi.earn_trust(ARRAY['5B'])",
        "SELECT * FROM api.listings",
        "SELECT * FROM resi.miner_attestations",
        "SELECT resi.ban_miner('5A', 'x')",
        "SELECT resi.refresh_consensus()",
        "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid) VALUES ('5V', now(), '3')",
    ] {
        denied(&mut validator, sql);
    }
    setting_denied(&mut validator, "SET resi.initial_trust = 0");
}

#[test]
fn admin_bans_blacklists_and_sets_settings_but_does_not_edit_data() {
    let db = database("roles_admin");
    let login = db.login(Some("resi_admin"));
    let mut admin = connect(&login.url);
    allowed(
        &mut admin,
        "SELECT resi.ban_miner('5B', 'copies 5A', '1 day');
         SELECT resi.unban_miner('5B');
         SELECT resi.add_strike('5B', 'late');
         SELECT resi.add_blacklist_entry('zip_code', '^999', 'test area', 'pattern');
         SELECT resi.refresh_consensus();
         SELECT resi.refresh_stale_consensus(10);
         SELECT resi.rebuild_claims();
         SELECT * FROM resi.archive_batch_begin('listings', '2025-09-01', now());
         SET resi.max_submission_rows = 5000;
         SET resi.strikes_per_ban = 5;
         SET resi.database_budget = '50GB';
         SELECT * FROM resi.database_budget();
         SELECT * FROM resi.miner_leaderboard;
         SELECT * FROM api.search_listings();
         SELECT count(*) FROM resi.miner_trust;
         SELECT count(*) FROM resi.miner_attestations;
         SELECT count(*) FROM resi.ingest_ledger;",
    );
    assert_eq!(scalar::<i32>(&mut admin, "SELECT (resi.ingest_settings()).max_submission_rows"), 5000);
    // The functions run as their owner but record who called them.
    let by: String = scalar(&mut admin, "SELECT added_by FROM resi.blacklist");
    assert_eq!(by, login.name);
    let reason: String =
        scalar(&mut admin, "SELECT reason FROM resi.miner_penalties WHERE kind = 'ban' ORDER BY id LIMIT 1");
    assert_eq!(reason, format!("by {}: copies 5A", login.name));
    let removed: bool = scalar(&mut admin, "SELECT resi.remove_blacklist_entry(id) FROM resi.blacklist");
    assert!(removed);
    for sql in TABLE_WRITES {
        denied(&mut admin, sql);
    }
    for sql in [
        "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid) VALUES ('5X', now(), '3')",
        "SELECT resi.record_validation('5A', '1', true)",
        "SELECT resi.setup_roles()",
    ] {
        denied(&mut admin, sql);
    }
}

#[test]
fn a_role_without_a_resi_role_cannot_use_the_schema() {
    let db = database("roles_nobody");
    let login = db.login(None);
    let mut nobody = connect(&login.url);
    for sql in [
        "SELECT * FROM resi.listings",
        "SELECT resi.listing_hash('{}'::jsonb)",
        "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid) VALUES ('5N', now(), '3')",
        "SELECT resi.record_validation('5A', '1', true)",
    ] {
        denied(&mut nobody, sql);
    }
}

/// Every SECURITY DEFINER function pins its search_path and is not executable by PUBLIC, and no
/// function body runs dynamic SQL except setup_roles' CREATE ROLE with format('%I') and
/// resi.prepare_node, resi.distribute's step on each node, a superuser's act (it runs as its
/// caller and PUBLIC cannot execute it, nor resi.distribute or resi.prepare_workers) that formats
/// only catalogue names (regclass, %I).
#[test]
fn security_definer_functions_pin_search_path_and_run_no_dynamic_sql() {
    let db = TestDatabase::new("roles_catalogue");
    let mut client = db.client();
    let definers: Vec<(String, Option<Vec<String>>, bool)> = client
        .query(
            "SELECT p.oid::regprocedure::text, p.proconfig,
                    EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
               FROM pg_proc p WHERE p.pronamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND p.prosecdef
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(definers.len(), 26, "{definers:?}");
    for (function, config, public) in &definers {
        let config = config.clone().unwrap_or_default();
        assert!(config.iter().any(|c| c == "search_path=pg_catalog, pg_temp"), "{function}: {config:?}");
        assert!(!public, "{function} is executable by PUBLIC");
    }
    let dynamic: Vec<String> = client
        .query(
            "SELECT p.proname::text FROM pg_proc p
              WHERE p.pronamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
                AND p.prosrc ~* '\\mEXECUTE\\M' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(dynamic, ["prepare_node", "setup_roles"]);
    for function in ["resi.distribute(integer)", "resi.prepare_workers()", "resi.prepare_node(boolean)"] {
        let r = client
            .query_one(
                "SELECT p.prosecdef, has_function_privilege('public', p.oid, 'EXECUTE')
                   FROM pg_proc p WHERE p.oid = $1::text::regprocedure",
                &[&function],
            )
            .unwrap();
        let (definer, public): (bool, bool) = (r.get(0), r.get(1));
        assert_eq!((definer, public), (false, false), "{function}");
    }
    let setup: String = scalar(&mut client, "SELECT prosrc FROM pg_proc WHERE proname = 'setup_roles'");
    assert!(setup.contains("EXECUTE format('CREATE ROLE %I NOLOGIN', wanted)"), "{setup}");
}

/// A loader that puts its own tables first on its search_path (a temporary table named like
/// the fold's) does not redirect the fold: it writes the extension's tables.
#[test]
fn the_fold_ignores_the_callers_search_path() {
    let db = database("roles_search_path");
    let login = db.login(Some("resi_loader"));
    let mut loader = connect(&login.url);
    allowed(
        &mut loader,
        "CREATE TEMPORARY TABLE miner_claims (zpid text, miner_hotkey text, price bigint);
         CREATE TEMPORARY TABLE listings (zpid text);
         SET search_path = pg_temp, resi, public;
         INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price)
         VALUES ('5C', '2025-09-17 09:00+00', '3', 42000)",
    );
    assert_eq!(scalar::<i64>(&mut loader, "SELECT count(*) FROM pg_temp.miner_claims"), 0);
    let mut admin = db.client();
    assert_eq!(scalar::<i64>(&mut admin, "SELECT price FROM resi.listings WHERE zpid = '3'"), 42000);
    assert_eq!(scalar::<i64>(&mut admin, "SELECT count(*) FROM resi.miner_claims WHERE zpid = '3'"), 1);
}
