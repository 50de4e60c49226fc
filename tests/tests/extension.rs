//! The extension as a DBA meets it: CREATE EXTENSION, the SQL API's catalogue contract,
//! pg_dump keeping the data, DROP EXTENSION.

use resi_e2e::{pg_bindir, TestDatabase};
use std::process::Command;

/// (signature, result, volatility, strict, parallel, kind) of every SQL API function: other
/// tools call these, so their declaration is a contract.
const API: &[(&str, &str, &str, bool, &str, &str)] = &[
    ("resi.consensus_mode(text,double precision)", "resi.consensus", "i", false, "s", "a"),
    (
        "resi.consensus_median(double precision,double precision,double precision)",
        "resi.numeric_consensus",
        "i",
        false,
        "s",
        "a",
    ),
    ("resi.parse_s3_key(text)", "resi.s3_key", "i", true, "s", "f"),
    ("resi.sha256_hex(bytea)", "text", "i", true, "s", "f"),
    ("resi.sha256_hex(text)", "text", "i", true, "s", "f"),
    ("resi.listing_hash(jsonb)", "text", "i", true, "s", "f"),
    ("resi.listing_hash(text)", "text", "i", true, "s", "f"),
    ("resi.canonical_listing(jsonb)", "text", "i", true, "s", "f"),
    ("resi.canonical_listing(text)", "text", "i", true, "s", "f"),
    ("resi.rate_limit_for(double precision)", "integer", "s", true, "s", "f"),
    ("resi.check_miner_rate_limit(text,integer,date)", "boolean", "s", true, "s", "f"),
    ("resi.record_miner_submission(text,integer,timestamp with time zone)", "integer", "v", true, "u", "f"),
    ("resi.next_trust(double precision,double precision,boolean,boolean)", "double precision", "i", true, "s", "f"),
    ("resi.initial_trust()", "double precision", "s", true, "s", "f"),
    // 0.2.0: quality, admission, penalties, validation, stale refresh, blacklist.
    ("resi.submission_quality(text,double precision,text)", "resi.quality_report", "i", false, "s", "a"),
    ("resi.submission_trust_quality(double precision,bigint,bigint,bigint)", "double precision", "i", true, "s", "f"),
    ("resi.ingest_settings()", "resi.ingest_settings", "s", true, "s", "f"),
    ("resi.admit_submission(text,timestamp with time zone,boolean)", "text", "v", true, "u", "f"),
    ("resi.add_strike(text,text)", "timestamp with time zone", "v", true, "u", "f"),
    ("resi.ban_miner(text,text,interval)", "timestamp with time zone", "v", false, "u", "f"),
    ("resi.unban_miner(text)", "boolean", "v", true, "u", "f"),
    ("resi.miner_status(text)", "resi.miner_status", "s", true, "s", "f"),
    ("resi.record_validation(text,text,boolean,double precision)", "double precision", "v", false, "u", "f"),
    ("resi.refresh_stale_consensus(integer)", "integer", "v", true, "u", "f"),
    ("resi.stale_listings()", "bigint", "s", false, "s", "f"),
    ("resi.add_blacklist_entry(text,text,text,text)", "bigint", "v", true, "u", "f"),
    ("resi.remove_blacklist_entry(bigint)", "boolean", "v", true, "u", "f"),
    // 0.4.0: roles, the read API, the storage budget.
    ("resi.setup_roles()", "record", "v", false, "u", "f"),
    (
        "api.search_listings(text,bigint,bigint,text,real,double precision[],timestamp with time zone,integer,text)",
        "api.listings",
        "s",
        false,
        "s",
        "f",
    ),
    ("api.listing(text)", "record", "s", true, "s", "f"),
    ("api.listing_history(text)", "record", "s", true, "s", "f"),
    ("api.zip_stats(text)", "record", "s", false, "s", "f"),
    ("resi.database_budget()", "record", "s", false, "s", "f"),
    ("resi.database_budget_bytes()", "bigint", "s", true, "s", "f"),
    ("resi.tile_bounds(integer,integer,integer)", "record", "i", true, "s", "f"),
    ("resi.listing_tile(integer,integer,integer)", "bytea", "s", true, "s", "f"),
    (
        "resi.listing_tile_layer(text,double precision,double precision,bigint,integer,real,integer,integer,integer)",
        "bytea",
        "i",
        false,
        "s",
        "a",
    ),
];

#[test]
fn sql_api_is_declared_as_documented() {
    let db = TestDatabase::new("api");
    let mut client = db.client();
    for &(signature, result, volatility, strict, parallel, kind) in API {
        let row = client
            .query_opt(
                "SELECT pg_catalog.format_type(p.prorettype, NULL), p.provolatile::text, p.proisstrict,
                        p.proparallel::text, p.prokind::text
                   FROM pg_catalog.pg_proc p WHERE p.oid = $1::text::regprocedure",
                &[&signature],
            )
            .unwrap_or_else(|e| panic!("{signature}: {e}"))
            .unwrap_or_else(|| panic!("{signature} is missing"));
        let got: (String, String, bool, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        // Aggregates are never STRICT in pg_proc; their transition function decides.
        let expected =
            (result.to_string(), volatility.to_string(), strict && kind == "f", parallel.to_string(), kind.to_string());
        let got_cmp = (got.0.clone(), got.1.clone(), got.2 && kind == "f", got.3.clone(), got.4.clone());
        assert_eq!(got_cmp, expected, "{signature}");
    }
    let defaults: String = client
        .query_one(
            "SELECT pg_get_function_arguments('resi.check_miner_rate_limit(text,integer,date)'::regprocedure)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        defaults,
        "hotkey text, submissions integer DEFAULT 1, on_day date DEFAULT ((now() AT TIME ZONE 'UTC'::text))::date"
    );
    let defaults: String = client
        .query_one("SELECT pg_get_function_arguments('resi.next_trust(float8,float8,bool,bool)'::regprocedure)", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        defaults,
        "current double precision, quality double precision, validator_confirmed boolean DEFAULT false, contains_fake_data boolean DEFAULT false"
    );
    let defaults: String = client
        .query_one(
            "SELECT pg_get_function_arguments('resi.record_validation(text,text,bool,float8)'::regprocedure)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        defaults,
        "miner_hotkey text, zpid text, passed boolean, score double precision DEFAULT NULL::double precision"
    );
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
            "resi.blacklist",
            "resi.blacklist_id_seq",
            "resi.ingest_ledger",
            "resi.ingest_ledger_id_seq",
            "resi.ingest_runs",
            "resi.ingest_runs_id_seq",
            "resi.listing_history",
            "resi.listing_history_id_seq",
            "resi.listings",
            "resi.miner_attestations",
            "resi.miner_attestations_id_seq",
            "resi.miner_claims",
            "resi.miner_penalties",
            "resi.miner_penalties_id_seq",
            "resi.miner_submission_days",
            "resi.miner_trust"
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
