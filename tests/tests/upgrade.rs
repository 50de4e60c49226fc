//! `ALTER EXTENSION resi_pg UPDATE` from every earlier release keeps every row and ends in
//! exactly the catalogue a fresh `CREATE EXTENSION` gives. The released install scripts are kept
//! in sql/install/ (installed by `make install-dev`) so this test can create those versions.

use resi_e2e::{catalogue, scalar, Catalogue, Edition, TestDatabase};

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

    let fresh = TestDatabase::with_edition(&format!("upgrade_fresh_{}", version.replace('.', "_")), Edition::Native);
    let upgraded = catalogue(&mut client, &Catalogue::Full);
    let installed = catalogue(&mut fresh.client(), &Catalogue::Full);
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
