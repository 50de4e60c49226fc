//! Helpers for the end-to-end tests: they run against a live PostgreSQL 15 cluster with the
//! resi_pg extension installed, named by `RESI_TEST_DATABASE_URL` (a URL of a database the
//! tests may create other databases from). `make test` starts a throwaway cluster and sets it;
//! without it the tests fail rather than pass vacuously.

#![forbid(unsafe_code)]

use postgres::{Client, NoTls};
use std::path::PathBuf;
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

/// A new, empty database with `CREATE EXTENSION resi_pg` done, dropped when the value is
/// dropped. Each test gets its own, so tests run in parallel without seeing each other.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl TestDatabase {
    pub fn new(label: &str) -> TestDatabase {
        Self::without_extension(label).with_extension()
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
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
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
        LoginRole { name, url }
    }
}

/// A LOGIN role made by [`TestDatabase::login`].
pub struct LoginRole {
    pub name: String,
    pub url: String,
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&admin_url(), NoTls) {
            let _ = client.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
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

/// A private PostgreSQL 15 cluster of one test (`scripts/pg-cluster` in a new directory under
/// the temporary directory), for faults that would disturb other tests: it is stopped and
/// removed on drop, pass or fail.
pub struct PrivateCluster {
    pub dir: PathBuf,
    /// The URL of its `postgres` database.
    pub url: String,
    port: String,
}

impl PrivateCluster {
    pub fn start(label: &str) -> PrivateCluster {
        let dir = std::env::temp_dir().join(format!(
            "resi-cluster-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let mut cluster = PrivateCluster { dir, url: String::new(), port: String::new() };
        let out = cluster.script("start", &[]);
        cluster.url = String::from_utf8(out).expect("a URL").trim().to_owned();
        let (_, after_host) = cluster.url.rsplit_once(':').expect("a URL with a port");
        cluster.port = after_host.split('/').next().unwrap().to_owned();
        cluster
    }

    fn script(&self, command: &str, args: &[&str]) -> Vec<u8> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster");
        let out = std::process::Command::new(script)
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .env("PG_BIN", pg_bindir())
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
        let _ = std::process::Command::new(script).arg("destroy").arg(&self.dir).env("PG_BIN", pg_bindir()).output();
    }
}
