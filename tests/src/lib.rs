//! Helpers for the end-to-end tests: they run against a live PostgreSQL 15 cluster with the
//! resi_pg extension installed, named by `RESI_TEST_DATABASE_URL` (a URL of a database the
//! tests may create other databases from). `make test` starts a throwaway cluster and sets it;
//! without it the tests fail rather than pass vacuously.

#![forbid(unsafe_code)]

use postgres::{Client, NoTls};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The admin connection URL of the test cluster.
pub fn admin_url() -> String {
    std::env::var("RESI_TEST_DATABASE_URL").expect(
        "RESI_TEST_DATABASE_URL is not set: run the end-to-end tests with `make test`, \
         or point it at a PostgreSQL 15 cluster with resi_pg installed",
    )
}

/// `url` with its database replaced by `database`.
pub fn url_for(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a postgresql:// URL with a database");
    format!("{base}/{database}")
}

pub fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// The messages of the notices PostgreSQL sends while `query` runs, on a new connection to
/// `url` where `setup` ran first (its own notices are left out). Panics, naming the statement,
/// when either fails. Tests read what the server reports of its work this way: auto_explain's
/// plans, Citus's remote commands.
pub fn notices_while(url: &str, setup: &str, query: &str) -> Vec<String> {
    use std::str::FromStr;
    use std::sync::{Arc, Mutex};
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&notices);
    let mut client = postgres::Config::from_str(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .notice_callback(move |notice| sink.lock().unwrap().push(notice.message().to_string()))
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    client.batch_execute(setup).unwrap_or_else(|e| panic!("{setup}: {e}"));
    notices.lock().unwrap().clear();
    client.batch_execute(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let messages = notices.lock().unwrap();
    messages.clone()
}

/// The plan of every statement `query` ran, those inside the functions and triggers it called
/// included, as each ran: auto_explain's JSON plans with the rows and loops of every node
/// (`Actual Rows`, `Actual Loops`; no timings), sent to the client as notices.
pub fn plans_run_by(url: &str, query: &str) -> Vec<serde_json::Value> {
    let setup = "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
                 SET auto_explain.log_analyze = on; SET auto_explain.log_timing = off;
                 SET auto_explain.log_format = 'json'; SET auto_explain.log_level = 'notice'; SET client_min_messages = 'notice'";
    // Each message: "duration: … ms  plan:\n{…}".
    notices_while(url, setup, query)
        .iter()
        .filter_map(|m| m.split_once("plan:\n"))
        .map(|(_, plan)| serde_json::from_str(plan).unwrap_or_else(|e| panic!("{e}: {plan}")))
        .collect()
}

/// Every node of an EXPLAIN (FORMAT JSON) plan: (node type, relation; "" for none).
pub fn plan_nodes(plan: &serde_json::Value, out: &mut Vec<(String, String)>) {
    let node = plan["Node Type"].as_str().unwrap_or_default().to_string();
    let relation = plan["Relation Name"].as_str().unwrap_or_default().to_string();
    out.push((node, relation));
    for child in plan["Plans"].as_array().into_iter().flatten() {
        plan_nodes(child, out);
    }
}

/// A new, empty database with `CREATE EXTENSION resi_pg` done, dropped when the value is
/// dropped. Each test gets its own, so tests run in parallel without seeing each other.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Which edition of resi_pg a test database gets: `RESI_TEST_EDITION` = `native` (the default:
/// `CREATE EXTENSION resi_pg` by the superuser) or `portable` (the plain migration of the
/// portable edition, run by a role without superuser that owns nothing but the database's
/// CREATE privilege, as on hosted PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edition {
    Native,
    Portable,
}

impl Edition {
    /// The edition `RESI_TEST_EDITION` names (native when unset).
    pub fn under_test() -> Edition {
        match std::env::var("RESI_TEST_EDITION").as_deref() {
            Err(_) | Ok("") | Ok("native") => Edition::Native,
            Ok("portable") => Edition::Portable,
            Ok(other) => panic!("RESI_TEST_EDITION={other}: expected native or portable"),
        }
    }
}

impl TestDatabase {
    /// A new database with the edition under test installed ([`Edition::under_test`]).
    pub fn new(label: &str) -> TestDatabase {
        Self::with_edition(label, Edition::under_test())
    }

    pub fn with_edition(label: &str, edition: Edition) -> TestDatabase {
        match edition {
            Edition::Native => Self::without_extension(label).with_extension(),
            Edition::Portable => Self::without_extension(label).with_portable_migration(),
        }
    }

    /// The role that installs the portable edition in this database: LOGIN, no superuser, no
    /// CREATEROLE, CREATE on this database only. Created on first use, dropped with the database.
    pub fn installer(&self) -> LoginRole {
        let name = format!("{}_installer", self.name);
        let mut admin = connect(&admin_url());
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
                         CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
                     END IF;
                 END $$;
                 GRANT CREATE ON DATABASE {} TO {name}",
                self.name
            ))
            .unwrap();
        let url = self.url.replacen("postgres@", &format!("{name}@"), 1);
        assert_ne!(url, self.url, "the test cluster's URL names its user: {}", self.url);
        LoginRole { name, url, dropped_with_database: true }
    }

    fn with_portable_migration(self) -> TestDatabase {
        let script = resi_package::migration(&resi_package::Repository::this()).unwrap_or_else(|e| panic!("{e}"));
        let installer = self.installer();
        connect(&installer.url)
            .batch_execute(&script)
            .unwrap_or_else(|e| panic!("the portable migration fails: {e:?}"));
        self
    }

    pub fn without_extension(label: &str) -> TestDatabase {
        let admin = admin_url();
        let name = format!("resi_e2e_{label}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let mut client = connect(&admin);
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        TestDatabase { url: url_for(&admin, &name), name }
    }

    fn with_extension(self) -> TestDatabase {
        self.client().batch_execute("CREATE EXTENSION resi_pg").unwrap();
        self
    }

    pub fn client(&self) -> Client {
        connect(&self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&admin_url(), NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {0} WITH (FORCE); DROP ROLE IF EXISTS {0}_installer",
                self.name
            ));
        }
    }
}

/// `resi.setup_roles()` grants cluster-wide privileges (on the resi.* settings); concurrent calls
/// would update the same catalogue rows at once, so the tests of one binary take turns.
static SETUP_ROLES: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl TestDatabase {
    /// `SELECT resi.setup_roles()` in this database: the four group roles and their grants.
    pub fn setup_roles(&self) {
        let _turn = SETUP_ROLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.client().batch_execute("SELECT resi.setup_roles()").unwrap();
    }

    /// A new LOGIN role, member of `group` only (no group: of none), and the URL of this
    /// database as that role. Dropped when the value is dropped.
    pub fn login(&self, group: Option<&str>) -> LoginRole {
        let name = format!("{}_{}", self.name, group.unwrap_or("nobody"));
        let mut client = connect(&admin_url());
        client.batch_execute(&format!("DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN")).unwrap();
        if let Some(group) = group {
            client.batch_execute(&format!("GRANT {group} TO {name}")).unwrap();
        }
        let url = self.url.replacen("postgres@", &format!("{name}@"), 1);
        assert_ne!(url, self.url, "the test cluster's URL names its user: {}", self.url);
        LoginRole { name, url, dropped_with_database: false }
    }
}

/// A LOGIN role made by [`TestDatabase::login`] or [`TestDatabase::installer`].
pub struct LoginRole {
    pub name: String,
    pub url: String,
    /// The installer owns the portable edition's objects: it goes when the database goes.
    dropped_with_database: bool,
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        if self.dropped_with_database {
            return;
        }
        if let Ok(mut client) = Client::connect(&admin_url(), NoTls) {
            let _ = client.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

/// How much of an installation [`catalogue`] describes.
pub enum Catalogue {
    /// Everything (an upgraded install against a fresh one).
    Full,
    /// What a client of the SQL API sees (one edition against the other): functions named in
    /// `implementation` (as `regprocedure` text) and aggregates by their interface only
    /// (arguments, result, volatility, parallel safety, strictness, security, settings,
    /// whether a combine function lets them run in parallel), without aggregates' support
    /// functions, and the owner's name as `OWNER`.
    Interface { implementation: Vec<String> },
}

/// Everything the extension defines in schemas `resi` and `api`, one sorted line per fact: columns
/// (type, nullability, default, compression), storage options, constraints, indexes, functions and aggregates (definition,
/// volatility, parallel safety, security), composite types, views, triggers, comments, members, the
/// tables pg_dump keeps, and privileges (now and as the extension script left them).
pub fn catalogue(client: &mut Client, kind: &Catalogue) -> Vec<String> {
    const FACTS: &str = r#"
        SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') || ' #' || a.attnum
               || CASE WHEN a.attcompression <> '' THEN ' compression ' || a.attcompression::text ELSE '' END
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'relation ' || relname || ' ' || relkind::text || relpersistence::text
               || coalesce(' ' || array_to_string(reloptions, ','), '')
          FROM pg_class WHERE relnamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'function ' || p.oid::regprocedure || ' ' || p.prokind::text || p.provolatile::text || p.proparallel::text
               || CASE WHEN p.prokind = 'a' AND $1 THEN ' returns ' || p.prorettype::regtype || ' combine '
                        || (SELECT aggcombinefn <> 0 FROM pg_aggregate WHERE aggfnoid = p.oid)
                       WHEN p.prokind = 'a' THEN ' ' || (SELECT concat_ws(' ', aggtransfn, aggfinalfn, aggcombinefn,
                        aggserialfn, aggdeserialfn, aggtranstype::regtype, aggtransspace, aggfinalmodify) FROM pg_aggregate WHERE aggfnoid = p.oid)
                       WHEN p.oid::regprocedure::text = ANY ($2) THEN ' returns ' || pg_get_function_result(p.oid)
                        || ' (' || pg_get_function_arguments(p.oid) || ')' || CASE WHEN p.proisstrict THEN ' strict' ELSE '' END
                        || CASE WHEN p.prosecdef THEN ' security definer' ELSE '' END || coalesce(' ' || p.proconfig::text, '')
                       ELSE ' ' || pg_get_functiondef(p.oid) END
          FROM pg_proc p WHERE p.pronamespace IN ('resi'::regnamespace, 'api'::regnamespace)
           AND NOT ($1 AND EXISTS (SELECT FROM pg_aggregate
                                    WHERE p.oid IN (aggtransfn, aggfinalfn, aggcombinefn, aggserialfn, aggdeserialfn)))
        UNION ALL
        SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
         WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND c.relkind = 'v'
        UNION ALL
        SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND NOT t.tgisinternal
        UNION ALL
        SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ': ' || d.description
          FROM pg_description d
         WHERE pg_describe_object(d.classoid, d.objoid, d.objsubid) LIKE ANY (ARRAY['%resi.%', '%api.%'])
        UNION ALL
        SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM pg_depend
         WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'resi_pg')
           AND NOT ($1 AND classid = 'pg_proc'::regclass AND EXISTS (SELECT FROM pg_aggregate
                        WHERE objid IN (aggtransfn, aggfinalfn, aggcombinefn, aggserialfn, aggdeserialfn)))
        UNION ALL
        SELECT 'dumped ' || c::regclass FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'resi_pg'
        UNION ALL
        SELECT 'schema ' || nspname || ' ' || coalesce(nspacl::text, 'default') FROM pg_namespace
         WHERE nspname IN ('resi', 'api')
        UNION ALL
        SELECT 'acl ' || relname || ' ' || coalesce(relacl::text, 'default') FROM pg_class
         WHERE relnamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'acl ' || p.oid::regprocedure || ' ' || coalesce(p.proacl::text, 'default') FROM pg_proc p
         WHERE p.pronamespace IN ('resi'::regnamespace, 'api'::regnamespace)
           AND NOT ($1 AND EXISTS (SELECT FROM pg_aggregate
                                    WHERE p.oid IN (aggtransfn, aggfinalfn, aggcombinefn, aggserialfn, aggdeserialfn)))
        UNION ALL
        SELECT 'initial privileges ' || pg_describe_object(classoid, objoid, objsubid) || ' ' || privtype::text
               || ' ' || initprivs::text
          FROM pg_init_privs WHERE pg_describe_object(classoid, objoid, objsubid) LIKE ANY (ARRAY['%resi.%', '%api.%'])
    "#;
    let (interface, implementation): (bool, &[String]) = match kind {
        Catalogue::Full => (false, &[]),
        Catalogue::Interface { implementation } => (true, implementation),
    };
    let rows = client.query(FACTS, &[&interface, &implementation]).unwrap();
    let mut facts: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if interface {
        // The owner's name (the superuser or the portable edition's installer) read as OWNER.
        let owner: String = scalar(client, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'resi'");
        facts = facts.iter().map(|f| rename_role(f, &owner, "OWNER")).collect();
    }
    facts.sort();
    facts
}

/// `fact` with every whole-word occurrence of role `from` (in an ACL: grantee or grantor) as `to`.
fn rename_role(fact: &str, from: &str, to: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(fact.len());
    let mut rest = fact;
    while let Some(at) = rest.find(from) {
        out.push_str(&rest[..at]);
        let after = rest[at + from.len()..].chars().next();
        out.push_str(if word(out.chars().last()) || word(after) { from } else { to });
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// The first column of the one row `sql` returns.
pub fn scalar<T: for<'a> postgres::types::FromSql<'a>>(client: &mut Client, sql: &str) -> T {
    client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// A file under tests/fixtures.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
}

/// Directory of PostgreSQL 15's programs (pg_dump, psql, ...).
pub fn pg_bindir() -> PathBuf {
    PathBuf::from(std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()))
}

/// Everything the fold decides about every listing, as text (no clock times), for comparing
/// two ways of computing it: consensus values, score, counts and per-field consensus.
pub fn listing_state(client: &mut Client) -> String {
    client
        .query_one(
            "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', zpid, uri, price,
                    address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow, zip_code, city,
                    state, latitude, longitude, consensus_score, total_attestations, unique_miners_count,
                    field_consensus), E'\\n' ORDER BY zpid), '') FROM resi.listings",
            &[],
        )
        .unwrap()
        .get(0)
}

/// The Raha/HoloClean Flight sample (`resi_core/tests/fixtures/flights-raha`: 38 web sources,
/// 100 flights, 4 times each) as tables of the connection's default schema: `claims` (flight,
/// property, source, value; the sources' claims of `dirty.csv`, distinct, without unreadable
/// times) and `truth` (flight, property, value; `clean.csv`, one value per item), times
/// normalised in SQL to `h:mm a.m./p.m.`. Also leaves the tables `raw` and `cells` and the
/// function `clock(text)` it builds them with. Panics when the fixture or a statement fails.
pub fn load_flights(client: &mut Client) {
    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../resi_core/tests/fixtures/flights-raha");
    client
        .batch_execute(
            "CREATE TABLE raw (kind text, tuple_id int, src text, flight text, sched_dep_time text,
                               act_dep_time text, sched_arr_time text, act_arr_time text);
             -- The first h:mm of a text; a following a/p (or noon) decides, else a 24-hour clock.
             CREATE FUNCTION clock(t text) RETURNS text LANGUAGE sql IMMUTABLE RETURN (
                 SELECT CASE WHEN m IS NULL OR h NOT BETWEEN 1 AND 12 OR m[2]::int > 59 THEN NULL
                             ELSE h || ':' || m[2] || CASE WHEN pm THEN ' p.m.' ELSE ' a.m.' END END
                   FROM (SELECT m,
                                CASE WHEN lower(m[3]) LIKE 'a%' OR lower(m[3]) LIKE 'p%' OR lower(m[3]) LIKE 'n%'
                                     THEN m[1]::int ELSE CASE WHEN m[1]::int % 12 = 0 THEN 12 ELSE m[1]::int % 12 END END AS h,
                                CASE WHEN lower(m[3]) LIKE 'a%' THEN false
                                     WHEN lower(m[3]) LIKE 'p%' OR lower(m[3]) LIKE 'n%' THEN true
                                     ELSE m[1]::int >= 12 END AS pm
                           FROM (SELECT regexp_match(t, '(?:^|[^0-9])([0-9]{1,2}):([0-9]{2})\\s*(\\S*)') AS m) x) y);",
        )
        .unwrap();
    for kind in ["dirty", "clean"] {
        let data = std::fs::read_to_string(format!("{FIXTURE}/{kind}.csv")).expect("the Flight fixture");
        let mut copy = client
            .copy_in("COPY raw (tuple_id, src, flight, sched_dep_time, act_dep_time, sched_arr_time, act_arr_time) FROM STDIN (FORMAT csv, HEADER)")
            .unwrap();
        copy.write_all(data.as_bytes()).unwrap();
        copy.finish().unwrap();
        client.batch_execute(&format!("UPDATE raw SET kind = '{kind}' WHERE kind IS NULL")).unwrap();
    }
    client
        .batch_execute(
            "CREATE TABLE cells AS
             SELECT r.kind, r.flight, p.property, r.src AS source, clock(p.raw) AS value
               FROM raw r CROSS JOIN LATERAL (VALUES ('sched_dep_time', r.sched_dep_time), ('act_dep_time', r.act_dep_time),
                                                     ('sched_arr_time', r.sched_arr_time), ('act_arr_time', r.act_arr_time)) p(property, raw);
             CREATE TABLE claims AS SELECT DISTINCT flight, property, source, value FROM cells WHERE kind = 'dirty' AND value IS NOT NULL;
             CREATE TABLE truth AS
             SELECT flight, property, mode() WITHIN GROUP (ORDER BY value) AS value
               FROM cells WHERE kind = 'clean' AND value IS NOT NULL GROUP BY 1, 2;",
        )
        .unwrap();
}

/// A private PostgreSQL 15 cluster of one test (`scripts/pg-cluster` in a new directory under
/// the temporary directory), for faults that would disturb other tests: it is stopped and
/// removed on drop, pass or fail.
pub struct PrivateCluster {
    pub dir: PathBuf,
    /// The URL of its `postgres` database.
    pub url: String,
    port: String,
    /// The PostgreSQL programs it runs ([`pg_bindir`], or a copy without resi_pg).
    bin: PathBuf,
    /// A copy of the PostgreSQL installation, removed with the cluster.
    installation: Option<PathBuf>,
    preload: Option<&'static str>,
}

impl PrivateCluster {
    pub fn start(label: &str) -> PrivateCluster {
        Self::start_with(label, pg_bindir(), None, None)
    }

    /// A private cluster of a PostgreSQL 15 installation that has no resi_pg files, as a hosted
    /// server: a copy of the system installation's programs and share directory without
    /// `resi_pg*` (PostgreSQL finds its share directory relative to its programs; the library
    /// directory is the system's). pg_tle refuses to install a TLE named like an extension
    /// whose control file the server has. Preloads `preload` (e.g. pg_tle).
    pub fn start_without_native_extension(label: &str, preload: Option<&'static str>) -> PrivateCluster {
        let root = std::env::temp_dir().join(format!("resi-pg-copy-{label}-{}", std::process::id()));
        let system = pg_bindir();
        let system_lib = system.parent().expect("bin is inside the installation").join("lib");
        let share = Command::new(system.join("pg_config")).arg("--sharedir").output().expect("pg_config runs");
        let share = PathBuf::from(String::from_utf8(share.stdout).unwrap().trim());
        // The same layout below root: /usr/lib/postgresql/15/{bin,lib} and /usr/share/postgresql/15.
        let bin = root.join(system.strip_prefix("/").unwrap());
        let copy_share = root.join(share.strip_prefix("/").unwrap());
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::create_dir_all(copy_share.parent().unwrap()).unwrap();
        let run = |command: &mut Command| assert!(command.status().unwrap().success(), "{command:?} failed");
        run(Command::new("cp").arg("-a").arg(&system).arg(&bin));
        run(Command::new("cp").arg("-a").arg(&share).arg(&copy_share));
        std::os::unix::fs::symlink(&system_lib, bin.parent().unwrap().join("lib")).unwrap();
        for entry in std::fs::read_dir(copy_share.join("extension")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with("resi_pg") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        Self::start_with(label, bin, Some(root), preload)
    }

    /// A private cluster as hosted Supabase has it: pg_tle preloaded, no resi_pg files
    /// ([`PrivateCluster::start_without_native_extension`]). `None`, saying so on stderr, when
    /// `RESI_TEST_PG_TLE` is unset: pg_tle is not installed (`scripts/e2e` sets it when it is).
    pub fn with_pg_tle(label: &str) -> Option<PrivateCluster> {
        if std::env::var_os("RESI_TEST_PG_TLE").is_none() {
            eprintln!(
                "skipped: pg_tle is not installed; run `PG_TLE_SRC=/path/to/pg_tle-1.4.0.tar.gz make test` \
                 (scripts/pg-tle-install) to test the portable edition as a pg_tle extension"
            );
            return None;
        }
        Some(Self::start_without_native_extension(label, Some("pg_tle")))
    }

    /// A new database `name` of this cluster with `CREATE EXTENSION pg_tle` done, as on hosted
    /// PostgreSQL; the URL of it as the role `installer` (LOGIN, no superuser, CREATEROLE or
    /// CREATEDB; member of `pgtle_admin`, CREATE on the database), created on first use.
    pub fn pg_tle_database(&self, name: &str) -> String {
        let mut admin = connect(&self.url);
        // One statement per call: CREATE DATABASE cannot run in a multi-statement string.
        for statement in [
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'installer') THEN
                     CREATE ROLE installer LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
                 END IF;
             END $$"
                .to_owned(),
            format!("CREATE DATABASE {name}"),
            format!("GRANT CREATE ON DATABASE {name} TO installer"),
        ] {
            admin.batch_execute(&statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        let url = url_for(&self.url, name);
        connect(&url).batch_execute("CREATE EXTENSION pg_tle; GRANT pgtle_admin TO installer").unwrap();
        url.replacen("postgres@", "installer@", 1)
    }

    fn start_with(
        label: &str,
        bin: PathBuf,
        installation: Option<PathBuf>,
        preload: Option<&'static str>,
    ) -> PrivateCluster {
        let dir = std::env::temp_dir().join(format!(
            "resi-cluster-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let mut cluster = PrivateCluster { dir, url: String::new(), port: String::new(), bin, installation, preload };
        let out = cluster.script("start", &[]);
        cluster.url = String::from_utf8(out).expect("a URL").trim().to_owned();
        let (_, after_host) = cluster.url.rsplit_once(':').expect("a URL with a port");
        cluster.port = after_host.split('/').next().unwrap().to_owned();
        cluster
    }

    fn script(&self, command: &str, args: &[&str]) -> Vec<u8> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster");
        let out = Command::new(script)
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .env("PG_BIN", &self.bin)
            .env("PG_CLUSTER_PRELOAD", self.preload.unwrap_or(""))
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/pg-cluster {command}: {e}"));
        assert!(
            out.status.success(),
            "scripts/pg-cluster {command} {} failed: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new database of this cluster with `CREATE EXTENSION resi_pg` done; its URL.
    pub fn database_with_extension(&self, name: &str) -> String {
        connect(&self.url).batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = url_for(&self.url, name);
        connect(&url).batch_execute("CREATE EXTENSION resi_pg").unwrap();
        url
    }

    /// Immediate shutdown: every backend is gone at once, nothing is checkpointed.
    pub fn crash(&self) {
        self.script("crash", &[]);
    }

    /// Start again on the same port (after a crash: crash recovery), waiting until it accepts
    /// connections.
    pub fn restart(&self) {
        self.script("start", &[&self.port]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster");
        let _ = Command::new(script).arg("destroy").arg(&self.dir).env("PG_BIN", &self.bin).output();
        if let Some(installation) = &self.installation {
            let _ = std::fs::remove_dir_all(installation);
        }
    }
}

/// A new database on every node of the Citus cluster of `make test-citus` (scripts/citus-cluster),
/// whose coordinator's `postgres` database `RESI_TEST_CITUS_URL` names: `CREATE DATABASE`,
/// `CREATE EXTENSION citus` and `CREATE EXTENSION resi_pg` on each node (Citus propagates none of
/// them to a database it does not know yet), then, on the coordinator, its host and every worker
/// of the cluster registered in it (Citus keeps its node metadata per database). Dropped from
/// every node when the value is dropped.
pub struct CitusDatabase {
    pub name: String,
    /// This database on the coordinator.
    pub url: String,
    /// This database on each worker, in the order the cluster registered them.
    pub workers: Vec<String>,
    /// The `postgres` database of each node, coordinator first, to drop this one from.
    admins: Vec<String>,
}

/// The tests of one binary create their Citus databases one at a time ([`CitusDatabase::new`]).
static CITUS_SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl CitusDatabase {
    /// `None`, saying so on stderr, when `RESI_TEST_CITUS_URL` is unset: only `make test-citus`
    /// starts a Citus cluster.
    pub fn new(label: &str) -> Option<CitusDatabase> {
        CitusDatabase::with_resi_version(label, None)
    }

    /// As [`CitusDatabase::new`], with `CREATE EXTENSION resi_pg VERSION 'version'` on every node
    /// (an earlier release's script, from `make install-dev`) when `version` is given.
    pub fn with_resi_version(label: &str, version: Option<&str>) -> Option<CitusDatabase> {
        CitusDatabase::create(label, version, usize::MAX)
    }

    /// As [`CitusDatabase::new`], with only the first `registered` workers registered in the
    /// database; the others have it, with citus and resi_pg, and join with
    /// [`CitusDatabase::register_every_worker`]. `None` also when the cluster has no worker left
    /// to register later.
    pub fn with_registered_workers(label: &str, registered: usize) -> Option<CitusDatabase> {
        let database = CitusDatabase::create(label, None, registered)?;
        if database.workers.len() <= registered {
            eprintln!("skipped: the Citus cluster has {} workers, no more than {registered}", database.workers.len());
            return None;
        }
        Some(database)
    }

    fn create(label: &str, version: Option<&str>, registered: usize) -> Option<CitusDatabase> {
        let Ok(coordinator) = std::env::var("RESI_TEST_CITUS_URL") else {
            eprintln!(
                "skipped: no Citus cluster (RESI_TEST_CITUS_URL is unset); run \
                 `CITUS_SRC=/path/to/citus-13.2.2.tar.gz make test-citus`"
            );
            return None;
        };
        let nodes: Vec<(String, i32)> = connect(&coordinator)
            .query(
                "SELECT nodename, nodeport FROM pg_dist_node
                  WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeid",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(!nodes.is_empty(), "the Citus cluster at {coordinator} has no worker");
        let admins: Vec<String> = std::iter::once(coordinator.clone())
            .chain(nodes.iter().map(|(host, port)| url_at(&coordinator, host, *port)))
            .collect();
        // Registering a node propagates the cluster-wide roles to it (`ALTER ROLE postgres …`):
        // two databases registering at once fail with `tuple concurrently updated`.
        let _turn = CITUS_SETUP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = format!("resi_citus_{label}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let database = CitusDatabase {
            url: url_for(&coordinator, &name),
            workers: admins[1..].iter().map(|admin| url_for(admin, &name)).collect(),
            admins,
            name,
        };
        // Workers first: the coordinator registers only nodes that already have the database.
        for admin in database.admins.iter().rev() {
            connect(admin).batch_execute(&format!("CREATE DATABASE {}", database.name)).unwrap();
            connect(&url_for(admin, &database.name))
                .batch_execute(&format!(
                    "CREATE EXTENSION citus; CREATE EXTENSION resi_pg{}",
                    version.map(|v| format!(" VERSION '{v}'")).unwrap_or_default()
                ))
                .unwrap_or_else(|e| panic!("CREATE EXTENSION on {admin}: {e}"));
        }
        let (host, port) = host_port(&coordinator);
        let mut client = database.client();
        client.execute("SELECT citus_set_coordinator_host($1, $2)", &[&host, &port]).unwrap();
        for (host, port) in nodes.iter().take(registered) {
            client.execute("SELECT citus_add_node($1, $2)", &[host, port]).unwrap();
        }
        Some(database)
    }

    /// Registers in this database every worker of the cluster not registered yet
    /// (`citus_add_node` on the coordinator; Citus copies the reference tables and its metadata
    /// to each), in the cluster's order.
    pub fn register_every_worker(&self) {
        let _turn = CITUS_SETUP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut client = self.client();
        for admin in &self.admins[1..] {
            let (host, port) = host_port(admin);
            client
                .execute(
                    "SELECT citus_add_node($1, $2) WHERE NOT EXISTS
                            (SELECT FROM pg_dist_node WHERE nodename = $1 AND nodeport = $2)",
                    &[&host, &port],
                )
                .unwrap_or_else(|e| panic!("citus_add_node({host}, {port}): {e:?}"));
        }
    }

    /// As [`CitusDatabase::new`], with `resi.distribute(shards)` done: the extension's
    /// tables distributed (or made reference tables) while still empty.
    pub fn distributed(label: &str, shards: i32) -> Option<CitusDatabase> {
        let database = CitusDatabase::new(label)?;
        database
            .client()
            .execute("SELECT resi.distribute($1)", &[&shards])
            .unwrap_or_else(|e| panic!("resi.distribute({shards}): {e:?}"));
        Some(database)
    }

    /// A connection to this database on the coordinator.
    pub fn client(&self) -> Client {
        connect(&self.url)
    }
}

impl Drop for CitusDatabase {
    fn drop(&mut self) {
        for admin in &self.admins {
            if let Ok(mut client) = Client::connect(admin, NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        }
    }
}

/// The host and port a `postgresql://user@host:port/database` URL names.
fn host_port(url: &str) -> (String, i32) {
    let (_, after_user) = url.rsplit_once('@').expect("a postgresql:// URL with a user");
    let (host_port, _) = after_user.split_once('/').expect("a postgresql:// URL with a database");
    let (host, port) = host_port.rsplit_once(':').expect("a postgresql:// URL with a port");
    (host.to_owned(), port.parse().unwrap_or_else(|_| panic!("the port of {url}")))
}

/// `url` (`postgresql://user@host:port/database`) with its host and port replaced.
fn url_at(url: &str, host: &str, port: i32) -> String {
    let (user, after_user) = url.rsplit_once('@').expect("a postgresql:// URL with a user");
    let (_, database) = after_user.split_once('/').expect("a postgresql:// URL with a database");
    format!("{user}@{host}:{port}/{database}")
}
