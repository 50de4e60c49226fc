//! The two editions of resi_pg offer one SQL API: the native extension (Rust, `CREATE EXTENSION`
//! by a superuser) and the portable edition (SQL and PL/pgSQL from the same sql/ files, installed
//! by a role without superuser, as on hosted PostgreSQL). Their outputs are compared function by
//! function in the tests/tests/portable_*.rs files; here, their catalogues.

use postgres::Client;
use resi_e2e::{catalogue, connect, scalar, Catalogue, Edition, PrivateCluster, TestDatabase};

const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// The one table only the portable edition has: its settings (sql/portable/settings.sql; the
/// native edition has GUCs), with its primary key.
const PORTABLE_RELATIONS: [&str; 2] = ["settings", "settings_pkey"];

/// Whether `fact`, found only in the portable installation, is one it may hold beyond the native
/// one: its own functions (the helpers of its bodies, the state functions of its aggregates),
/// composite types (aggregate states, `composites`) and `resi.settings`, with their columns,
/// comments, privileges, constraints, indexes, triggers and extension membership; and, as a
/// pg_tle extension, schema `resi` as a member. Never a change to anything the native edition
/// has.
fn only_portable(fact: &str, composites: &[String]) -> bool {
    let relation = |name: &str| {
        [
            format!("relation {name} "),
            format!("column {name}."),
            format!("acl {name} "),
            format!("constraint resi.{name} "),
            format!("comment table resi.{name}:"),
            format!("member table resi.{name}"),
            format!("dumped resi.{name}"),
            format!("initial privileges table resi.{name} "),
        ]
        .iter()
        .any(|prefix| fact.starts_with(prefix.as_str()))
            || (fact.starts_with("index ") || fact.starts_with("trigger "))
                && fact.contains(&format!(" ON resi.{name} "))
    };
    // The portable script creates schema resi itself (a native extension's control file names it).
    fact == "member schema resi"
        || composites.iter().any(|c| relation(c))
        || PORTABLE_RELATIONS.iter().any(|r| relation(r))
        || ["function ", "acl resi.", "comment function ", "comment type ", "member function ", "member type "]
            .iter()
            .any(|prefix| fact.starts_with(prefix))
}

#[test]
fn the_portable_edition_is_installed_by_a_role_without_superuser() {
    let db = TestDatabase::with_edition("editions_installer", Edition::Portable);
    let installer = db.installer();
    let mut client = connect(&installer.url);
    assert!(!scalar::<bool>(
        &mut client,
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ));
    assert_eq!(
        scalar::<String>(&mut client, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'resi'"),
        installer.name
    );
    assert_eq!(scalar::<String>(&mut client, "SELECT resi.edition()"), "portable");
    assert_eq!(
        scalar::<String>(&mut db.client(), "SELECT obj_description('resi'::regnamespace)"),
        format!("resi_pg {} (portable edition, plain migration)", env!("CARGO_PKG_VERSION"))
    );
}

/// The plain migration is one transaction: when its last statement fails, nothing of it stays
/// (no statement inside it ends the transaction early, as a stray `END;` would).
#[test]
fn a_migration_that_fails_leaves_nothing_behind() {
    let db = TestDatabase::without_extension("editions_atomic");
    let script = resi_package::migration(&resi_package::Repository::this()).unwrap();
    let commit = script.rfind("COMMIT;").expect("the migration ends with COMMIT");
    let failing = format!("{}SELECT 1 / 0;\n{}", &script[..commit], &script[commit..]);
    let error = connect(&db.installer().url).batch_execute(&failing).unwrap_err();
    assert_eq!(error.as_db_error().map(|e| e.code().code()), Some("22012"), "{error:?}");
    let mut client = db.client();
    assert!(client.query("SELECT 1 FROM pg_namespace WHERE nspname IN ('resi', 'api')", &[]).unwrap().is_empty());
}

#[test]
fn both_editions_offer_the_same_sql_api() {
    let native = TestDatabase::with_edition("editions_native", Edition::Native);
    let portable = TestDatabase::with_edition("editions_portable", Edition::Portable);
    assert_same_api(&mut native.client(), &mut portable.client(), false);
}

#[test]
fn the_pg_tle_package_installs_with_create_extension_by_a_role_without_superuser() {
    // A server as hosted Supabase has it: pg_tle preloaded, no resi_pg files.
    let Some(cluster) = PrivateCluster::with_pg_tle("pg_tle") else { return };
    let installer = cluster.pg_tle_database("hosted");
    let hosted = installer.replacen("installer@", "postgres@", 1);
    let package = resi_package::pg_tle_install(&resi_package::Repository::this()).unwrap();
    let mut client = connect(&installer);
    client.batch_execute(&package).unwrap_or_else(|e| panic!("pgtle.install_extension: {e:?}"));
    client.batch_execute("CREATE EXTENSION resi_pg").unwrap_or_else(|e| panic!("CREATE EXTENSION resi_pg: {e:?}"));
    assert_eq!(scalar::<String>(&mut client, "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'"), CURRENT);
    assert_eq!(scalar::<String>(&mut client, "SELECT resi.edition()"), "portable");

    let native = TestDatabase::with_edition("editions_tle_native", Edition::Native);
    assert_same_api(&mut native.client(), &mut connect(&hosted), true);

    client.batch_execute("DROP EXTENSION resi_pg").unwrap();
    assert_eq!(scalar::<i64>(&mut client, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('resi', 'api')"), 0);
}

/// Whether `fact`, found only in the native installation, belongs to one of its own state types
/// (`types`: base types implemented in Rust, the portable edition's being composites): the type's
/// comment and membership, and the functions named after it (its input and output functions).
/// Never an aggregate: the aggregates over such a state are compared by interface like any other.
fn only_native(fact: &str, types: &[String]) -> bool {
    types.iter().any(|t| {
        let (name, prefix) = (format!("resi.{t}"), format!("resi.{t}_"));
        fact.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .any(|word| word == name || word.starts_with(&prefix))
    })
}

/// The two installations' catalogues are equal but for how the functions the native edition
/// implements in Rust are implemented (compared by interface), each edition's own state types
/// and, when `as_extensions` is false, what only an extension has (members, dumped tables,
/// initial privileges).
fn assert_same_api(native: &mut Client, portable: &mut Client, as_extensions: bool) {
    // What the native edition implements in C (Rust), resi.edition() and resi.listing_consensus_of
    // (a set-based body in the portable edition): compared by interface.
    let mut implementation: Vec<String> = native
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = 'resi'::regnamespace AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(implementation.len() > 20, "{implementation:?}");
    implementation.push("resi.edition()".to_owned());
    implementation.push("resi.listing_consensus_of(text[])".to_owned());
    let kind = Catalogue::Interface { implementation };
    let compared = |fact: &String| {
        as_extensions
            || !(fact.starts_with("member ") || fact.starts_with("dumped ") || fact.starts_with("initial privileges "))
    };
    let native_facts: Vec<String> = catalogue(native, &kind).into_iter().filter(compared).collect();
    let portable_facts: Vec<String> = catalogue(portable, &kind).into_iter().filter(compared).collect();
    let state_types: Vec<String> = native
        .query(
            "SELECT typname::text FROM pg_type
              WHERE typnamespace = 'resi'::regnamespace AND typtype = 'b' AND typcategory <> 'A'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&String> =
        native_facts.iter().filter(|f| !portable_facts.contains(f) && !only_native(f, &state_types)).collect();
    let composites: Vec<String> = portable_facts
        .iter()
        .filter_map(|f| f.strip_prefix("relation ")?.strip_suffix(" cp").map(str::to_owned))
        .collect();
    let extra: Vec<&String> =
        portable_facts.iter().filter(|f| !native_facts.contains(f) && !only_portable(f, &composites)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "native only ({}):\n{}\n\nportable only ({}):\n{}",
        missing.len(),
        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
        extra.len(),
        extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
