//! The portable edition's update path (docs/development.md, "The portable edition's delta"):
//! every portable release kept in `sql/install/portable/`, updated by the deltas of
//! `sql/upgrade/portable/`, ends in exactly what a fresh install of this release creates. Proven
//! for the real deltas, and for a synthetic next release — a temporary copy of this repository's
//! SQL at the next patch version, whose delta adds a table the dump keeps, a function and a
//! column and replaces a comment, the same change its `sql/` files make — each way a hosted
//! database updates.

use postgres::Client;
use resi_e2e::{catalogue, connect, scalar, Catalogue, Edition, PrivateCluster, TestDatabase};
use resi_package::{migration, pg_tle_install, plain_migration, update_migration, update_migrations, Repository};
use std::path::{Path, PathBuf};

const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// Where a release keeps the portable install script of each earlier release (`resi_pg--X.sql`,
/// the file `dbdev/resi_pg--X.sql` of its release folder), as `sql/install/` keeps the native ones.
const KEPT: &str = "sql/install/portable";

/// What the synthetic release changes, as its delta and at the end of its last shared file.
const CHANGE: &str = "\
CREATE TABLE resi.synthetic_notes (version text PRIMARY KEY, note text NOT NULL);
SELECT pg_catalog.pg_extension_config_dump('resi.synthetic_notes', '');
CREATE FUNCTION api.synthetic_release() RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'synthetic';
COMMENT ON FUNCTION api.synthetic_release() IS 'Added by the synthetic release.';
ALTER TABLE resi.ingest_runs ADD COLUMN synthetic_note text;
COMMENT ON TABLE resi.listings IS 'Replaced by the synthetic release.';
";

/// A repository of the next patch release in a temporary folder, removed on drop: this
/// repository's `sql/*.sql`, `sql/portable/`, portable deltas and kept releases with [`CHANGE`]
/// appended to the last shared file, `resi_pg/src/lib.rs`, this release's portable install
/// script kept, and the delta from this release.
struct NextRelease {
    root: PathBuf,
    version: String,
}

impl NextRelease {
    fn new(label: &str) -> NextRelease {
        let (major_minor, patch) = CURRENT.rsplit_once('.').unwrap();
        let version = format!("{major_minor}.{}", patch.parse::<u64>().unwrap() + 1);
        let root = std::env::temp_dir().join(format!("resi-next-release-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let this = Repository::this();
        for dir in ["sql", "sql/portable", "sql/upgrade/portable", KEPT] {
            copy_sql_files(&this.root().join(dir), &root.join(dir));
        }
        let current = root.join(KEPT).join(format!("resi_pg--{CURRENT}.sql"));
        if !current.exists() {
            std::fs::write(current, this.portable_script().unwrap()).unwrap();
        }
        let lib = root.join("resi_pg/src/lib.rs");
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        std::fs::copy(this.root().join("resi_pg/src/lib.rs"), lib).unwrap();
        std::fs::write(root.join("Cargo.toml"), format!("[workspace.package]\nversion = \"{version}\"\n")).unwrap();
        let last = this.shared_files().unwrap().pop().unwrap();
        let shared = root.join("sql").join(last);
        let text = std::fs::read_to_string(&shared).unwrap();
        std::fs::write(&shared, format!("{text}\n{CHANGE}")).unwrap();
        std::fs::write(
            root.join(format!("sql/upgrade/portable/resi_pg--{CURRENT}--{version}.sql")),
            format!(
                "-- resi_pg {CURRENT} → {version}: a synthetic release (tests/tests/portable_updates.rs).\n{CHANGE}"
            ),
        )
        .unwrap();
        NextRelease { root, version }
    }

    fn repository(&self) -> Repository {
        Repository::at(&self.root)
    }

    /// The plain migration of its delta from this release.
    fn update_migration(&self) -> String {
        let name = format!("resi_pg--{CURRENT}--{}.migration.sql", self.version);
        let migrations = update_migrations(&self.repository()).unwrap();
        migrations.into_iter().find(|(file, _)| *file == name).unwrap_or_else(|| panic!("no {name}")).1
    }
}

impl Drop for NextRelease {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The `*.sql` files directly in `from` (none when it does not exist) copied into `to`.
fn copy_sql_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let Ok(entries) = std::fs::read_dir(from) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_some_and(|e| e == "sql") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// `script` run by `db`'s installer (the role without superuser that owns the portable edition).
fn run_as_installer(db: &TestDatabase, script: &str) -> Result<(), postgres::Error> {
    connect(&db.installer().url).batch_execute(script)
}

/// The full catalogue of `db` with its installer's name as INSTALLER: each test database has an
/// installer of its own.
fn installed_catalogue(db: &TestDatabase) -> Vec<String> {
    let installer = db.installer().name.clone();
    let mut facts: Vec<String> = catalogue(&mut db.client(), &Catalogue::Full)
        .iter()
        .map(|fact| fact.replace(&installer, "INSTALLER"))
        .collect();
    facts.sort();
    facts
}

fn schema_comment(client: &mut Client) -> Option<String> {
    scalar(client, "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'resi'")
}

fn assert_same_catalogue(fresh: &[String], updated: &[String]) {
    let only = |a: &[String], b: &[String]| a.iter().filter(|f| !b.contains(f)).cloned().collect::<Vec<_>>().join("\n");
    assert!(
        fresh == updated,
        "only in the fresh install:\n{}\n\nonly in the updated database:\n{}",
        only(fresh, updated),
        only(updated, fresh)
    );
}

/// Each portable release kept in `repository`'s [`KEPT`] folder, installed by its plain
/// migration and updated by the update migrations from it to `repository`'s release, ends in
/// exactly the catalogue of a fresh install of that release. Every delta must start at a kept
/// release. Returns the updated databases.
fn assert_kept_releases_update_to_a_fresh_install(repository: &Repository, label: &str) -> Vec<TestDatabase> {
    let release = repository.version().unwrap();
    let updates = repository.portable_updates().unwrap();
    let mut kept: Vec<(String, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(repository.root().join(KEPT)) {
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(version) = name.strip_prefix("resi_pg--").and_then(|n| n.strip_suffix(".sql")) {
                if version != release {
                    kept.push((version.to_owned(), std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
    }
    for update in &updates {
        assert!(
            kept.iter().any(|(version, _)| *version == update.from),
            "{} starts at {}, whose portable install script is not kept in {KEPT}",
            update.file_name(),
            update.from
        );
    }
    if kept.is_empty() {
        return Vec::new();
    }
    let fresh = TestDatabase::without_extension(&format!("{label}_fresh"));
    run_as_installer(&fresh, &migration(repository).unwrap()).unwrap();
    let fresh = installed_catalogue(&fresh);
    let mut updated = Vec::new();
    for (version, script) in kept {
        let db = TestDatabase::without_extension(label);
        run_as_installer(&db, &plain_migration(&version, &script)).unwrap_or_else(|e| panic!("{version}: {e:?}"));
        let mut at = version;
        while at != release {
            let update = updates.iter().find(|u| u.from == at).unwrap_or_else(|| panic!("no delta from {at}"));
            run_as_installer(&db, &update_migration(update))
                .unwrap_or_else(|e| panic!("the update migration {}: {e:?}", update.file_name()));
            at = update.to.clone();
        }
        assert_same_catalogue(&fresh, &installed_catalogue(&db));
        assert_eq!(
            schema_comment(&mut db.client()),
            Some(format!("resi_pg {release} (portable edition, plain migration)"))
        );
        updated.push(db);
    }
    updated
}

fn assert_refused(result: Result<(), postgres::Error>) {
    let error = result.expect_err("the update migration ran on a database not at its FROM version");
    let db_error = error.as_db_error().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(db_error.code().code(), "55000", "{db_error:?}");
    assert!(db_error.message().contains(&format!("is not at resi_pg {CURRENT} ")), "{db_error:?}");
}

#[test]
fn every_kept_portable_release_updated_by_the_plain_update_migrations_equals_a_fresh_install() {
    let updated = assert_kept_releases_update_to_a_fresh_install(&Repository::this(), "updates_kept");
    if updated.is_empty() {
        eprintln!("no portable release before {CURRENT} is kept in {KEPT}: the synthetic release tests the path");
    }
}

#[test]
fn the_plain_migration_then_its_update_migration_equals_a_fresh_install_of_the_next_release() {
    let next = NextRelease::new("plain");
    let updated = assert_kept_releases_update_to_a_fresh_install(&next.repository(), "updates_plain");
    assert!(!updated.is_empty());
    for db in updated {
        assert_eq!(scalar::<String>(&mut db.client(), "SELECT api.synthetic_release()"), "synthetic");
    }
}

#[test]
fn the_update_migration_refuses_a_database_not_at_its_from_version_and_changes_nothing() {
    let next = NextRelease::new("refused");
    let update = next.update_migration();

    let empty = TestDatabase::without_extension("updates_empty");
    assert_refused(run_as_installer(&empty, &update));
    let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname IN ('resi', 'api')";
    assert_eq!(scalar::<i64>(&mut empty.client(), schemas), 0);

    // Already updated (the migration run twice), or installed at the next release.
    let at_next = TestDatabase::without_extension("updates_at_next");
    run_as_installer(&at_next, &migration(&next.repository()).unwrap()).unwrap();
    let before = installed_catalogue(&at_next);
    assert_refused(run_as_installer(&at_next, &update));
    assert_eq!(installed_catalogue(&at_next), before);
    assert_eq!(
        schema_comment(&mut at_next.client()),
        Some(format!("resi_pg {} (portable edition, plain migration)", next.version))
    );

    // The native extension updates with ALTER EXTENSION, never with a migration.
    let native = TestDatabase::with_edition("updates_native", Edition::Native);
    let before = catalogue(&mut native.client(), &Catalogue::Full);
    assert_refused(native.client().batch_execute(&update));
    assert_eq!(catalogue(&mut native.client(), &Catalogue::Full), before);
}

#[test]
fn the_pg_tle_package_of_the_next_release_updates_the_extension_with_alter_extension() {
    let Some(cluster) = PrivateCluster::with_pg_tle("updates_pg_tle") else { return };
    let next = NextRelease::new("pg_tle");
    let next_package = pg_tle_install(&next.repository()).unwrap();
    let extversion = "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'";

    // This release's package and extension, then the next release's package (run twice: the
    // second run changes nothing) and ALTER EXTENSION, by a member of pgtle_admin.
    let mut updated = connect(&cluster.pg_tle_database("updated"));
    updated.batch_execute(&pg_tle_install(&Repository::this()).unwrap()).unwrap();
    updated.batch_execute(&format!("CREATE EXTENSION resi_pg VERSION '{CURRENT}'")).unwrap();
    for _ in 0..2 {
        updated.batch_execute(&next_package).unwrap_or_else(|e| panic!("the next release's package: {e:?}"));
    }
    assert_eq!(scalar::<String>(&mut updated, extversion), CURRENT);
    assert!(!scalar::<bool>(&mut updated, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"));
    updated
        .batch_execute(&format!("ALTER EXTENSION resi_pg UPDATE TO '{}'", next.version))
        .unwrap_or_else(|e| panic!("ALTER EXTENSION resi_pg UPDATE: {e:?}"));
    assert_eq!(scalar::<String>(&mut updated, extversion), next.version);

    let mut fresh = connect(&cluster.pg_tle_database("fresh"));
    fresh.batch_execute(&next_package).unwrap();
    fresh.batch_execute("CREATE EXTENSION resi_pg").unwrap();
    assert_eq!(scalar::<String>(&mut fresh, extversion), next.version);
    assert_same_catalogue(&catalogue(&mut fresh, &Catalogue::Full), &catalogue(&mut updated, &Catalogue::Full));
}
