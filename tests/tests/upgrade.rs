//! `ALTER EXTENSION resi_pg UPDATE` from every earlier release keeps every row and ends in
//! exactly the catalogue a fresh `CREATE EXTENSION` gives. The released install scripts are kept
//! in sql/install/ (installed by `make install-dev`) so this test can create those versions.

use postgres::Client;
use resi_e2e::{scalar, TestDatabase};

/// Everything the extension defines in schemas `resi` and `api`, one sorted line per fact: columns
/// (type, nullability, default, compression), storage options, constraints, indexes, functions and aggregates (definition,
/// volatility, parallel safety, security), composite types, views, triggers, comments, members, the
/// tables pg_dump keeps, and privileges (now and as the extension script left them).
fn catalogue(client: &mut Client) -> Vec<String> {
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
               || CASE WHEN p.prokind = 'a' THEN ' ' || (SELECT concat_ws(' ', aggtransfn, aggfinalfn, aggcombinefn,
                        aggserialfn, aggdeserialfn, aggtranstype::regtype, aggtransspace, aggfinalmodify) FROM pg_aggregate WHERE aggfnoid = p.oid)
                       ELSE ' ' || pg_get_functiondef(p.oid) END
          FROM pg_proc p WHERE p.pronamespace IN ('resi'::regnamespace, 'api'::regnamespace)
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
        UNION ALL
        SELECT 'dumped ' || c::regclass FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'resi_pg'
        UNION ALL
        SELECT 'schema ' || nspname || ' ' || coalesce(nspacl::text, 'default') FROM pg_namespace
         WHERE nspname IN ('resi', 'api')
        UNION ALL
        SELECT 'acl ' || relname || ' ' || coalesce(relacl::text, 'default') FROM pg_class
         WHERE relnamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'acl ' || oid::regprocedure || ' ' || coalesce(proacl::text, 'default') FROM pg_proc
         WHERE pronamespace IN ('resi'::regnamespace, 'api'::regnamespace)
        UNION ALL
        SELECT 'initial privileges ' || pg_describe_object(classoid, objoid, objsubid) || ' ' || privtype::text
               || ' ' || initprivs::text
          FROM pg_init_privs WHERE pg_describe_object(classoid, objoid, objsubid) LIKE ANY (ARRAY['%resi.%', '%api.%'])
    "#;
    let mut facts: Vec<String> = client.query(FACTS, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    facts.sort();
    facts
}

const CURRENT: &str = env!("CARGO_PKG_VERSION");

#[test]
fn upgrade_from_0_1_0_keeps_data_and_equals_a_fresh_install() {
    upgrade_from("0.1.0");
}

#[test]
fn upgrade_from_0_2_0_keeps_data_and_equals_a_fresh_install() {
    upgrade_from("0.2.0");
}

#[test]
fn upgrade_from_0_3_0_keeps_data_and_equals_a_fresh_install() {
    upgrade_from("0.3.0");
}

#[test]
fn upgrade_from_0_4_0_keeps_data_and_equals_a_fresh_install() {
    upgrade_from("0.4.0");
}

/// Create `version`, fold a few rows, update to the current version: the rows stay, the
/// catalogue equals a fresh install's, and the next fold follows the current rules.
fn upgrade_from(version: &str) {
    let old = TestDatabase::without_extension(&format!("upgrade_from_{}", version.replace('.', "_")));
    let mut client = old.client();
    client.batch_execute(&format!("CREATE EXTENSION resi_pg VERSION '{version}'")).unwrap();
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms)
             VALUES ('a', '2025-09-17 08:00+00', '1', 100000, 3), ('b', '2025-09-17 08:00+00', '1', 100500, 3),
                    ('a', '2025-09-17 08:00+00', '2', 250000, 4);
             SELECT resi.record_miner_submission('a', 1, '2025-09-17 08:00+00')",
        )
        .unwrap();
    const LISTINGS: &str =
        "SELECT string_agg(format('%s %s %s %s', zpid, price, bedrooms, unique_miners_count), ', ' ORDER BY zpid)
           FROM resi.listings";
    const SUBMISSIONS: &str = "SELECT total_submissions FROM resi.miner_trust WHERE miner_hotkey = 'a'";
    let before: String = scalar(&mut client, LISTINGS);
    let submissions: i64 = scalar(&mut client, SUBMISSIONS);

    client.batch_execute("ALTER EXTENSION resi_pg UPDATE").unwrap();
    assert_eq!(scalar::<String>(&mut client, "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'"), CURRENT);
    assert_eq!(scalar::<String>(&mut client, LISTINGS), before);
    assert_eq!(before, "1 100000 3 2, 2 250000 4 1");
    assert_eq!(scalar::<i64>(&mut client, "SELECT count(*) FROM resi.miner_attestations"), 3);
    assert_eq!(scalar::<i64>(&mut client, SUBMISSIONS), submissions);
    assert!(submissions >= 1);

    let fresh = TestDatabase::new(&format!("upgrade_fresh_{}", version.replace('.', "_")));
    let upgraded = catalogue(&mut client);
    let installed = catalogue(&mut fresh.client());
    let only = |a: &[String], b: &[String]| a.iter().filter(|x| !b.contains(x)).cloned().collect::<Vec<_>>();
    assert!(
        upgraded == installed,
        "only after the upgrade:\n{}\n\nonly in a fresh install:\n{}",
        only(&upgraded, &installed).join("\n"),
        only(&installed, &upgraded).join("\n")
    );
    assert!(upgraded.len() > 300, "the catalogue query sees the extension ({} facts)", upgraded.len());

    // The upgraded database folds with the current rules: trust is what the evidence earns, and
    // the new submission agrees with the consensus another source voted for (weak evidence).
    const B_TRUST: &str =
        "SELECT coalesce(max(trust_score), resi.initial_trust()) FROM resi.miner_trust WHERE miner_hotkey = 'b'";
    let b_before: f64 = scalar(&mut client, B_TRUST);
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms)
             VALUES ('b', '2025-09-17 10:00+00', '2', 250000, 4)",
        )
        .unwrap();
    let b_trust: f64 = scalar(&mut client, B_TRUST);
    let earned: f64 = scalar(
        &mut client,
        "SELECT resi.earned_trust(t) FROM resi.miner_trust t WHERE miner_hotkey = 'b' AND agreeing_rows = 1",
    );
    assert!((b_trust - earned).abs() < 1e-12 && b_trust > b_before, "{b_before} → {b_trust}");
    assert_eq!(scalar::<i32>(&mut client, "SELECT voting_miners FROM resi.listings WHERE zpid = '2'"), 2);
}
