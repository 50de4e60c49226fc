//! `ALTER EXTENSION resi_pg UPDATE` from the previous release keeps every row and ends in
//! exactly the catalogue a fresh `CREATE EXTENSION` gives. The released 0.1.0 install script is
//! kept in sql/releases/ (installed by `make install-dev`) so this test can create 0.1.0.

use postgres::Client;
use resi_e2e::{scalar, TestDatabase};

/// Everything the extension defines in schema `resi`, one sorted line per fact: columns
/// (type, nullability, default), constraints, indexes, functions and aggregates (definition,
/// volatility, parallel safety), composite types, views, triggers, comments, members and the
/// tables pg_dump keeps.
fn catalogue(client: &mut Client) -> Vec<String> {
    const FACTS: &str = r#"
        SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') || ' #' || a.attnum
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'resi'::regnamespace
        UNION ALL
        SELECT 'relation ' || relname || ' ' || relkind::text || relpersistence::text FROM pg_class WHERE relnamespace = 'resi'::regnamespace
        UNION ALL
        SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'resi'::regnamespace
        UNION ALL
        SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relnamespace = 'resi'::regnamespace
        UNION ALL
        SELECT 'function ' || p.oid::regprocedure || ' ' || p.prokind::text || p.provolatile::text || p.proparallel::text
               || CASE WHEN p.prokind = 'a' THEN ' ' || (SELECT concat_ws(' ', aggtransfn, aggfinalfn, aggcombinefn,
                        aggserialfn, aggdeserialfn, aggtranstype::regtype) FROM pg_aggregate WHERE aggfnoid = p.oid)
                       ELSE ' ' || pg_get_functiondef(p.oid) END
          FROM pg_proc p WHERE p.pronamespace = 'resi'::regnamespace
        UNION ALL
        SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
         WHERE c.relnamespace = 'resi'::regnamespace AND c.relkind = 'v'
        UNION ALL
        SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'resi'::regnamespace AND NOT t.tgisinternal
        UNION ALL
        SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ': ' || d.description
          FROM pg_description d
         WHERE pg_describe_object(d.classoid, d.objoid, d.objsubid) LIKE '%resi.%'
        UNION ALL
        SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM pg_depend
         WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'resi_pg')
        UNION ALL
        SELECT 'dumped ' || c::regclass FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'resi_pg'
    "#;
    let mut facts: Vec<String> = client.query(FACTS, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    facts.sort();
    facts
}

#[test]
fn upgrade_from_0_1_0_keeps_data_and_equals_a_fresh_install() {
    let old = TestDatabase::without_extension("upgrade_old");
    let mut client = old.client();
    client.batch_execute("CREATE EXTENSION resi_pg VERSION '0.1.0'").unwrap();
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms)
             VALUES ('a', '2025-09-17 08:00+00', '1', 100000, 3), ('b', '2025-09-17 08:00+00', '1', 100500, 3),
                    ('a', '2025-09-17 08:00+00', '2', 250000, 4);
             SELECT resi.record_miner_submission('a', 1, '2025-09-17 08:00+00')",
        )
        .unwrap();
    let before: String = scalar(
        &mut client,
        "SELECT string_agg(format('%s %s %s %s', zpid, price, bedrooms, unique_miners_count), ', ' ORDER BY zpid)
           FROM resi.listings",
    );

    client.batch_execute("ALTER EXTENSION resi_pg UPDATE").unwrap();
    assert_eq!(scalar::<String>(&mut client, "SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'"), "0.2.0");
    let after: String = scalar(
        &mut client,
        "SELECT string_agg(format('%s %s %s %s', zpid, price, bedrooms, unique_miners_count), ', ' ORDER BY zpid)
           FROM resi.listings",
    );
    assert_eq!(after, before);
    assert_eq!(scalar::<i64>(&mut client, "SELECT count(*) FROM resi.miner_attestations"), 3);
    assert_eq!(
        scalar::<i64>(&mut client, "SELECT total_submissions FROM resi.miner_trust WHERE miner_hotkey = 'a'"),
        1
    );

    let fresh = TestDatabase::new("upgrade_fresh");
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

    // The upgraded database folds with 0.2.0's rules: the new submission moves trust.
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms)
             VALUES ('b', '2025-09-17 10:00+00', '2', 250000, 4)",
        )
        .unwrap();
    let b_trust: f64 = scalar(&mut client, "SELECT trust_score FROM resi.miner_trust WHERE miner_hotkey = 'b'");
    assert!((b_trust - (0.25 * 0.95 + 0.05)).abs() < 1e-12, "{b_trust}");
    assert_eq!(scalar::<i32>(&mut client, "SELECT voting_miners FROM resi.listings WHERE zpid = '2'"), 2);
}
