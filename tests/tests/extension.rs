//! The extension as a DBA meets it: CREATE EXTENSION, the SQL API's catalogue contract,
//! pg_dump keeping the data, DROP EXTENSION.

use resi_e2e::{pg_bindir, TestDatabase};
use std::process::Command;

/// The SQL API's declaration, one line per function, aggregate and view of schemas `resi` and
/// `api`: signature with argument names and defaults, result, volatility, strictness, parallel
/// safety, kind, security, and the `COMMENT ON` that is its one-line promise. Other tools call
/// these, so the declaration is a contract: a change shows up as a diff of
/// tests/fixtures/sql-api.txt (write it anew with RESI_BLESS=1 and review the diff).
const SQL_API: &str = r#"
    SELECT p.oid::regprocedure::text || ' (' || pg_catalog.pg_get_function_arguments(p.oid) || ') -> '
           || pg_catalog.pg_get_function_result(p.oid)
           || ' | ' || CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure' ELSE 'function' END
           || ' ' || CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END
           || CASE WHEN p.proisstrict AND p.prokind = 'f' THEN ' strict' ELSE '' END
           || ' parallel ' || CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END
           || CASE WHEN p.prosecdef THEN ' security definer' ELSE '' END
           || E'\n    ' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '(no comment)')
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace IN ('resi'::regnamespace, 'api'::regnamespace)
    UNION ALL
    SELECT c.oid::regclass::text || ' | view'
           || E'\n    ' || coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '(no comment)')
      FROM pg_catalog.pg_class c
     WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND c.relkind = 'v'
"#;

#[test]
fn sql_api_is_declared_as_the_committed_snapshot_says() {
    let db = TestDatabase::new("api");
    let mut lines: Vec<String> = db.client().query(SQL_API, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    lines.sort();
    let snapshot = lines.join("\n") + "\n";
    let path = resi_e2e::fixture("sql-api.txt");
    if std::env::var_os("RESI_BLESS").is_some() {
        std::fs::write(&path, &snapshot).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != snapshot {
        let (old, new): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), snapshot.lines().collect());
        let gone: Vec<&str> = old.iter().filter(|l| !new.contains(l)).copied().collect();
        let added: Vec<&str> = new.iter().filter(|l| !old.contains(l)).copied().collect();
        panic!(
            "the SQL API differs from {}:\n- {}\n+ {}\n(RESI_BLESS=1 writes the new snapshot)",
            path.display(),
            gone.join("\n- "),
            added.join("\n+ ")
        );
    }
    assert!(lines.len() > 60, "the query sees the extension ({} objects)", lines.len());
}

/// Every function, aggregate and view of the SQL API is described in docs/sql-api.md, and
/// every `resi.name(` or `api.name(` the page mentions exists.
#[test]
fn sql_api_reference_names_every_object_and_only_real_ones() {
    let db = TestDatabase::new("api_docs");
    let names: Vec<String> = db
        .client()
        .query(
            "SELECT DISTINCT n.nspname || '.' || p.proname FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname IN ('resi', 'api')
                AND NOT (n.nspname = 'resi' AND p.proname ~ '_(transition|combine|serialize|deserialize|final)$')
              UNION
             SELECT c.oid::regclass::text FROM pg_catalog.pg_class c
              WHERE c.relnamespace IN ('resi'::regnamespace, 'api'::regnamespace) AND c.relkind IN ('v', 'r', 'p')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sql-api.md")).expect("docs/sql-api.md");
    let missing: Vec<&String> = names.iter().filter(|n| !page.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "docs/sql-api.md does not describe: {missing:?}");
    let mentioned = page
        .match_indices("resi.")
        .chain(page.match_indices("api."))
        .map(|(at, prefix)| {
            let rest = &page[at + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let called = rest[name.len()..].starts_with('(');
            (format!("{prefix}{name}"), called)
        })
        .filter_map(|(name, called)| called.then_some(name))
        .collect::<std::collections::BTreeSet<_>>();
    let unknown: Vec<&String> = mentioned.iter().filter(|n| !names.contains(n)).collect();
    assert!(unknown.is_empty(), "docs/sql-api.md calls functions that do not exist: {unknown:?}");
}

#[test]
fn schema_has_tables_indexes_and_dump_registration() {
    let db = TestDatabase::new("schema");
    let mut client = db.client();
    let indexes: Vec<String> = client
        .query("SELECT indexdef FROM pg_indexes WHERE schemaname = 'resi' ORDER BY indexname", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for wanted in [
        "ON resi.listings USING btree (zip_code)",
        "ON resi.listings USING btree (price)",
        "ON resi.listings USING btree (latitude, longitude)",
        "ON resi.listings USING btree (last_updated_at)",
        "ON resi.listings USING btree (home_status)",
        "ON resi.listings USING btree (zip_code, price)",
        "ON resi.listing_history USING btree (zpid, changed_at)",
        "UNIQUE INDEX listings_uri_key ON resi.listings USING btree (uri)",
        "UNIQUE INDEX listings_pkey ON resi.listings USING btree (zpid)",
        "ON resi.miner_attestations USING btree (miner_hotkey)",
        "ON resi.miner_attestations USING btree (submission_timestamp)",
        "ON resi.miner_attestations USING btree (zpid)",
        "UNIQUE INDEX miner_trust_pkey ON resi.miner_trust USING btree (miner_hotkey)",
    ] {
        assert!(indexes.iter().any(|i| i.contains(wanted)), "no index {wanted} in {indexes:#?}");
    }
    let dumped: Vec<String> = client
        .query("SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'resi_pg' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        dumped,
        [
            "resi.archive_batches",
            "resi.archive_batches_id_seq",
            "resi.audit_verdicts",
            "resi.audits",
            "resi.audits_id_seq",
            "resi.blacklist",
            "resi.blacklist_id_seq",
            "resi.ingest_ledger",
            "resi.ingest_ledger_id_seq",
            "resi.ingest_runs",
            "resi.ingest_runs_id_seq",
            "resi.judged_pair_totals",
            "resi.listing_history",
            "resi.listing_history_id_seq",
            "resi.listings",
            "resi.miner_attestations",
            "resi.miner_attestations_id_seq",
            "resi.miner_claims",
            "resi.miner_dependence",
            "resi.miner_groups",
            "resi.miner_penalties",
            "resi.miner_penalties_id_seq",
            "resi.miner_submission_days",
            "resi.miner_trust",
            "resi.settled_judgements"
        ]
    );
    // The attestation row keeps every reported field next to the attestation metadata.
    let columns: Vec<String> = client
        .query("SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'resi' AND table_name = 'miner_attestations'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for c in [
        "id",
        "miner_hotkey",
        "miner_uid",
        "zpid",
        "submission_timestamp",
        "job_id",
        "s3_file_path",
        "record_count",
        "data_hash",
        "is_validated",
        "validation_timestamp",
        "validation_score",
        "uri",
        "price",
        "address",
        "bedrooms",
        "bathrooms",
        "living_area",
        "home_type",
        "home_status",
        "days_on_zillow",
        "zip_code",
        "city",
        "state",
        "latitude",
        "longitude",
    ] {
        assert!(columns.iter().any(|x| x == c), "miner_attestations has no column {c}");
    }
    // Constraints guard the data: a malformed hash and an out-of-range trust are refused.
    let bad_hash = client.batch_execute(
        "INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp, data_hash) VALUES ('m', '1', now(), 'NOTAHASH')",
    );
    assert_eq!(bad_hash.unwrap_err().code().unwrap().code(), "23514");
    let bad_trust = client.batch_execute("INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('m', 1.5)");
    assert_eq!(bad_trust.unwrap_err().code().unwrap().code(), "23514");
}

#[test]
fn pg_dump_keeps_the_rows() {
    let source = TestDatabase::new("dump_src");
    source
        .client()
        .batch_execute(
            "INSERT INTO resi.listings (zpid, uri, price, bathrooms, field_consensus)
                 VALUES ('123', 'https://www.zillow.com/homedetails/123_zpid/', 350000, 2.5, '{\"price\": {\"value\": 350000}}');
             INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp, data_hash, price)
                 VALUES ('m1', '123', '2025-09-17 08:00:15+00', resi.listing_hash('{\"zpid\": \"123\"}'::jsonb), 350000),
                        ('m2', '123', '2025-09-17 09:00:15+00', NULL, 349000);
             INSERT INTO resi.miner_trust (miner_hotkey, trust_score) VALUES ('m1', 0.7);
             SELECT resi.record_miner_submission('m2', 4, '2025-09-17 09:00:15+00');",
        )
        .unwrap();
    let target = TestDatabase::without_extension("dump_dst");
    let dump = std::env::temp_dir().join(format!("{}.dump", source.name));
    let status = Command::new(pg_bindir().join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(&source.url)
        .status()
        .expect("run pg_dump");
    assert!(status.success(), "pg_dump failed");
    let status = Command::new(pg_bindir().join("pg_restore"))
        .args(["--exit-on-error", "--dbname", &target.url])
        .arg(&dump)
        .status()
        .expect("run pg_restore");
    assert!(status.success(), "pg_restore failed");
    let _ = std::fs::remove_file(&dump);
    let summary = |url: &str| -> String {
        resi_e2e::connect(url)
            .query_one(
                "SELECT format('%s|%s|%s|%s|%s', (SELECT string_agg(zpid || ':' || price || ':' || bathrooms || ':' || field_consensus::text, ',') FROM resi.listings),
                        (SELECT string_agg(id || ':' || miner_hotkey || ':' || coalesce(data_hash, '-'), ',' ORDER BY id) FROM resi.miner_attestations),
                        (SELECT string_agg(miner_hotkey || ':' || trust_score || ':' || total_submissions, ',' ORDER BY miner_hotkey) FROM resi.miner_trust),
                        (SELECT string_agg(miner_hotkey || ':' || day || ':' || submissions, ',') FROM resi.miner_submission_days),
                        nextval('resi.miner_attestations_id_seq'))",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let restored = summary(&target.url);
    assert!(restored.contains("123:350000:2.5:"), "{restored}");
    assert_eq!(restored, summary(&source.url));
}

#[test]
fn drop_extension_removes_everything() {
    let db = TestDatabase::new("drop");
    let mut client = db.client();
    client.batch_execute("DROP EXTENSION resi_pg").unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid WHERE n.nspname = 'resi'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let functions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'resi'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(functions, 0);
    // And it installs again into the same database.
    client.batch_execute("DROP SCHEMA IF EXISTS resi; CREATE EXTENSION resi_pg").unwrap();
}

/// The tables that hold a listing's fields hold exactly the field table of resi_core
/// (`resi_core::fields::LISTING_FIELDS`): every field, in its order, with its type (the
/// consensus keeps bathrooms as numeric(3,1)).
#[test]
fn listing_tables_hold_the_field_table() {
    use resi_core::fields::{BATHROOMS, LISTING_FIELDS};
    let db = TestDatabase::new("fields");
    let mut client = db.client();
    for table in ["resi.listings", "resi.miner_claims", "resi.miner_attestations", "resi.staging_listings"] {
        let columns: Vec<(String, String)> = client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
                  WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&table],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let fields: Vec<(String, String)> =
            columns.into_iter().filter(|(name, _)| LISTING_FIELDS.iter().any(|f| f.name == name)).collect();
        let expected: Vec<(String, String)> = LISTING_FIELDS
            .iter()
            .map(|f| {
                let ty = if table == "resi.listings" && *f == BATHROOMS { "numeric(3,1)" } else { f.sql_type.name() };
                (f.name.to_string(), ty.to_string())
            })
            .collect();
        assert_eq!(fields, expected, "{table}");
    }
}
