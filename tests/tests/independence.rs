//! One vote per independent source: byte copies of a report count once, and miners found
//! dependent (resi.find_dependent_miners) vote as one group.

use postgres::Client;
use resi_e2e::{scalar, TestDatabase};

/// Stage one report per tuple `(miner, uploaded at, zpid, scraped at, price)`; everything else
/// equal, so two reports with the same zpid, scrape time and price are byte copies.
fn stage(client: &mut Client, reports: &[(&str, &str, &str, &str, i64)]) {
    let values: Vec<String> = reports
        .iter()
        .map(|(miner, uploaded, zpid, scraped, price)| {
            format!("('{miner}', '{uploaded}', '{zpid}', '{scraped}', {price}, 3, 'FOR_SALE')")
        })
        .collect();
    client
        .batch_execute(&format!(
            "INSERT INTO resi.staging_listings
                 (miner_hotkey, submission_timestamp, zpid, scraped_at, price, bedrooms, home_status)
             VALUES {}",
            values.join(", ")
        ))
        .unwrap();
}

/// (price, unique_miners_count, voting_miners, voting_groups) of a listing.
fn listing(client: &mut Client, zpid: &str) -> (i64, i32, i32, i32) {
    let r = client
        .query_one(
            "SELECT price, unique_miners_count, voting_miners, voting_groups FROM resi.listings WHERE zpid = $1",
            &[&zpid],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

const SOURCE_UPLOAD: &str = "2025-09-17 08:00+00";
const COPY_UPLOAD: &str = "2025-09-17 08:05+00";
const SCRAPED: &str = "2025-09-17 07:31:12.345678+00";

#[test]
fn byte_copies_of_a_report_vote_once_for_the_earliest_upload() {
    let db = TestDatabase::new("independence_copies");
    let mut client = db.client();
    // Two independent scrapers say 100,000; a source says 200,000 and three hotkeys upload its
    // bytes again (same scrape time, same fields), before and after the independent ones.
    stage(
        &mut client,
        &[
            ("source", SOURCE_UPLOAD, "1", SCRAPED, 200_000),
            ("copy1", COPY_UPLOAD, "1", SCRAPED, 200_000),
            ("honest1", SOURCE_UPLOAD, "1", "2025-09-17 07:10+00", 100_000),
            ("honest2", SOURCE_UPLOAD, "1", "2025-09-17 07:45+00", 100_000),
        ],
    );
    stage(
        &mut client,
        &[("copy2", COPY_UPLOAD, "1", SCRAPED, 200_000), ("copy3", "2025-09-17 09:00+00", "1", SCRAPED, 200_000)],
    );
    // Four hotkeys report 200,000 but they are one source: the independent pair wins.
    assert_eq!(listing(&mut client, "1"), (100_000, 6, 6, 3));
    let price: String = scalar(
        &mut client,
        "SELECT (field_consensus->'price'->>'supporters') || '/' || (field_consensus->'price'->>'voters')
           FROM resi.listings WHERE zpid = '1'",
    );
    assert_eq!(price, "2/3", "supporters and voters count sources");
    // Without a scrape time a report has no signature: identical reports then count apart.
    stage(&mut client, &[("a", SOURCE_UPLOAD, "2", SCRAPED, 1), ("b", SOURCE_UPLOAD, "2", SCRAPED, 1)]);
    client
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, home_status)
             VALUES ('x', '2025-09-17 08:00+00', '3', 5, 3, 'FOR_SALE'), ('y', '2025-09-17 08:00+00', '3', 5, 3, 'FOR_SALE')",
        )
        .unwrap();
    assert_eq!(listing(&mut client, "2").3, 1);
    assert_eq!(listing(&mut client, "3").3, 2);
    assert_eq!(
        scalar::<i64>(&mut client, "SELECT count(*) FROM resi.miner_claims WHERE zpid = '3' AND signature IS NULL"),
        2
    );
}

#[test]
fn miners_that_share_copied_claims_become_one_group_that_votes_once() {
    let db = TestDatabase::new("independence_groups");
    let mut client = db.client();
    // The independent miners have earned more trust than each ring member (six audited claims
    // against three, all right), not more than all.
    client
        .batch_execute(
            "INSERT INTO resi.miner_trust (miner_hotkey, trust_score, audited_claims)
             VALUES ('honest1', 0, 6), ('honest2', 0, 6), ('source', 0, 3), ('ring1', 0, 3), ('ring2', 0, 3);
             UPDATE resi.miner_trust t SET trust_score = resi.earned_trust(t);",
        )
        .unwrap();
    // ring1 and ring2 re-upload three of source's reports (listings 1-3); near copies only two.
    for zpid in ["1", "2", "3"] {
        stage(
            &mut client,
            &[
                ("source", SOURCE_UPLOAD, zpid, SCRAPED, 200_000),
                ("ring1", COPY_UPLOAD, zpid, SCRAPED, 200_000),
                ("ring2", COPY_UPLOAD, zpid, SCRAPED, 200_000),
            ],
        );
    }
    for zpid in ["4", "5"] {
        stage(&mut client, &[("loner", SOURCE_UPLOAD, zpid, SCRAPED, 5), ("near", COPY_UPLOAD, zpid, SCRAPED, 5)]);
    }
    // On listing 9 the ring members report for themselves (no copies): three hotkeys outweigh
    // two independent miners (3 × 0.485 > 2 × 0.623) until they are grouped and vote once.
    stage(
        &mut client,
        &[
            ("source", SOURCE_UPLOAD, "9", "2025-09-17 07:00+00", 900_000),
            ("ring1", COPY_UPLOAD, "9", "2025-09-17 07:01+00", 900_000),
            ("ring2", COPY_UPLOAD, "9", "2025-09-17 07:02+00", 900_000),
            ("honest1", COPY_UPLOAD, "9", "2025-09-17 07:03+00", 500_000),
            ("honest2", COPY_UPLOAD, "9", "2025-09-17 07:04+00", 500_000),
        ],
    );
    assert_eq!(listing(&mut client, "9"), (900_000, 5, 5, 5), "before grouping, five sources");

    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 3);
    let evidence: Vec<(String, String, i32)> = client
        .query("SELECT miner_hotkey, source_hotkey, shared_claims FROM resi.miner_dependence ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(evidence, [("ring1".into(), "source".into(), 3), ("ring2".into(), "source".into(), 3)]);
    let groups: Vec<(String, String)> = client
        .query("SELECT miner_hotkey, group_hotkey FROM resi.miner_groups ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        groups,
        [("ring1".into(), "source".into()), ("ring2".into(), "source".into()), ("source".into(), "source".into())]
    );

    // The ring's listings are stale now; refreshed, the ring votes once.
    assert!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()") >= 4);
    client.batch_execute("SELECT resi.refresh_stale_consensus(1000)").unwrap();
    assert_eq!(scalar::<i64>(&mut client, "SELECT resi.stale_listings()"), 0);
    assert_eq!(listing(&mut client, "9"), (500_000, 5, 5, 3));
    assert_eq!(listing(&mut client, "1").3, 1);
    // One source alone is not confirmation: at most medium confidence.
    assert_eq!(scalar::<f32>(&mut client, "SELECT consensus_score FROM resi.listings WHERE zpid = '1'"), 0.5);

    // The group and its evidence are explained where operators look.
    let status: (Option<String>, i32, String) = {
        let r = client
            .query_one(
                "SELECT (s).group_hotkey, (s).group_members, (s).explanation
                   FROM (SELECT resi.miner_status('ring1') AS s) x",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((status.0.as_deref(), status.1), (Some("source"), 3));
    assert!(
        status.2.contains("votes once with its group source of 3 miners (repeats source: 3 of 4 claims copied)"),
        "{}",
        status.2
    );
    let alone: String = scalar(&mut client, "SELECT (resi.miner_status('honest1')).explanation");
    assert!(alone.contains("votes alone"), "{alone}");
    let group: (String, i32, Vec<String>, i64, i64) = {
        let r = client
            .query_one(
                "SELECT group_hotkey, members, miners, copied_claims, audited_claims FROM resi.dependent_groups",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
    };
    assert_eq!(group, ("source".into(), 3, vec!["ring1".into(), "ring2".into(), "source".into()], 6, 9));
    assert_eq!(
        scalar::<String>(&mut client, "SELECT group_hotkey FROM resi.miner_leaderboard WHERE miner_hotkey = 'ring2'"),
        "source"
    );

    // Nothing new: nothing changes; a smaller threshold groups the near copies too.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 0);
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners(2)"), 2);
    let err = client.query_one("SELECT resi.find_dependent_miners(0)", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22023");
}

#[test]
fn coincidences_between_independent_scrapers_clocks_do_not_make_a_group() {
    let db = TestDatabase::new("independence_chance");
    let mut client = db.client();
    // Two independent scrapers report the same 400 listings at times of their own; on three of
    // them their clocks met (the same scrape time, every field equal): three shared signatures,
    // under 1 % of their claims. A third miner copies 5 of the first one's 400 reports (1.25 %).
    let reports: Vec<(String, String, String)> = (0..400)
        .map(|z| {
            let scraped = |minute: i32| format!("2025-09-17 07:{:02}:{:02}.{:06}+00", minute, z % 60, z);
            let alike = z < 3;
            (z.to_string(), scraped(10), if alike { scraped(10) } else { scraped(40) })
        })
        .collect();
    for chunk in reports.chunks(100) {
        let mut rows: Vec<(&str, &str, &str, &str, i64)> = Vec::new();
        for (zpid, first, second) in chunk {
            rows.push(("scraper1", SOURCE_UPLOAD, zpid, first, 100_000));
            rows.push(("scraper2", SOURCE_UPLOAD, zpid, second, 100_000));
        }
        stage(&mut client, &rows);
    }
    let copied: Vec<(&str, &str, &str, &str, i64)> = reports[100..105]
        .iter()
        .map(|(zpid, first, _)| ("copier", COPY_UPLOAD, zpid.as_str(), first.as_str(), 100_000))
        .collect();
    stage(&mut client, &copied);

    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 2);
    let evidence: Vec<(String, String, i32, i32)> = client
        .query("SELECT miner_hotkey, source_hotkey, shared_claims, miner_claims FROM resi.miner_dependence", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(evidence, [("copier".into(), "scraper1".into(), 5, 5)], "the scrapers stay independent");
}

#[test]
fn an_audit_judges_every_claim_and_its_values_hold_until_a_miner_with_weight_reports_again() {
    let db = TestDatabase::new("independence_audit");
    let mut client = db.client();
    stage(
        &mut client,
        &[
            ("ring1", SOURCE_UPLOAD, "1", "2025-09-17 07:00+00", 240_000),
            ("ring2", SOURCE_UPLOAD, "1", "2025-09-17 07:01+00", 240_000),
            ("honest", SOURCE_UPLOAD, "1", "2025-09-17 07:02+00", 200_500),
        ],
    );
    assert_eq!(listing(&mut client, "1").0, 240_000);
    let judged: i32 = scalar(
        &mut client,
        "SELECT resi.record_audit('1', '{\"price\": 200000, \"bedrooms\": 3, \"note\": \"ignored\"}', '2025-09-17 09:00+00')",
    );
    assert_eq!(judged, 3);
    // Each claim was judged on the two fields the validator saw: the ring's price is wrong, the
    // honest price is within 1 %.
    let verdicts: Vec<(String, i32, String)> = client
        .query("SELECT miner_hotkey, fields_compared, wrong::text FROM resi.audit_verdicts ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("honest".into(), 2, "{}".into()),
            ("ring1".into(), 2, r#"{"price": 240000}"#.into()),
            ("ring2".into(), 2, r#"{"price": 240000}"#.into())
        ]
    );
    let counts: String = scalar(
        &mut client,
        "SELECT string_agg(miner_hotkey || ' ' || audited_fields || '/' || audit_errors, ', ' ORDER BY miner_hotkey)
           FROM resi.miner_trust",
    );
    assert_eq!(counts, "honest 2/0, ring1 2/1, ring2 2/1");
    let price_and_audited = |client: &mut Client| -> (i64, bool) {
        let r =
            client.query_one("SELECT price, audited_at IS NOT NULL FROM resi.listings WHERE zpid = '1'", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    // The audited values are the listing's, with their provenance.
    assert_eq!(price_and_audited(&mut client), (200_000, true));
    // The audit moved weight: the honest miner earned trust, the ring members lost it.
    let trust: String = scalar(
        &mut client,
        "SELECT string_agg(miner_hotkey || ' ' || audited_claims || '/' || wrong_claims || ' '
                           || CASE WHEN trust_score > resi.initial_trust() THEN 'up' ELSE 'down' END,
                           ', ' ORDER BY miner_hotkey)
           FROM resi.miner_trust",
    );
    assert_eq!(trust, "honest 1/0 up, ring1 1/1 down, ring2 1/1 down");
    // The ring's failed check took all of its weight: re-uploading its price cannot undo the
    // check, the audited value stays in force.
    assert_eq!(
        scalar::<f64>(&mut client, "SELECT trust_score FROM resi.miner_trust WHERE miner_hotkey = 'ring1'"),
        0.0
    );
    stage(&mut client, &[("ring1", "2025-09-17 10:00+00", "1", "2025-09-17 09:30+00", 240_000)]);
    assert_eq!(price_and_audited(&mut client), (200_000, true));
    // A miner with weight reports a real change: the audit ends, and the miners' consensus is the
    // listing's again.
    stage(&mut client, &[("honest", "2025-09-17 10:05+00", "1", "2025-09-17 09:40+00", 210_000)]);
    assert_eq!(price_and_audited(&mut client), (210_000, false));
    // Bad input is refused with its reason.
    for (sql, code) in [
        ("SELECT resi.record_audit('1', '[1, 2]')", "22023"),
        ("SELECT resi.record_audit('1', NULL)", "22004"),
        ("SELECT resi.record_audit('1', '{\"price\": \"cheap\"}')", "22P02"),
    ] {
        let err = client.query_one(sql, &[]).unwrap_err();
        assert_eq!(err.code().unwrap().code(), code, "{sql}");
    }
}

/// Asserts what the shared-lies tests find: each pair of ring1..ring3 shares four false values
/// and differs on none (ring1 judged first is the source), and the three are one group.
fn the_ring_shares_four_lies_and_is_one_group(client: &mut Client) {
    let evidence: Vec<(String, String, i32, i32)> = client
        .query(
            "SELECT miner_hotkey, source_hotkey, shared_false, audit_differences FROM resi.miner_dependence ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        evidence,
        [
            ("ring2".into(), "ring1".into(), 4, 0),
            ("ring3".into(), "ring1".into(), 4, 0),
            ("ring3".into(), "ring2".into(), 4, 0)
        ]
    );
    assert_eq!(groups(client), "ring1>ring1 ring2>ring1 ring3>ring1");
}

#[test]
fn identities_that_share_audited_lies_become_one_group_and_honest_noise_does_not() {
    let db = TestDatabase::new("independence_shared_lies");
    let mut client = db.client();
    // Three identities scrape for themselves (their own scrape times: no copies) and tell the
    // same lie on listings 1-4; two honest miners each make one error of their own.
    for (i, zpid) in ["1", "2", "3", "4"].iter().enumerate() {
        let lie = 240_000 + i as i64;
        let truth = 200_000 + i as i64;
        stage(
            &mut client,
            &[
                ("ring1", SOURCE_UPLOAD, zpid, "2025-09-17 07:00+00", lie),
                ("ring2", COPY_UPLOAD, zpid, "2025-09-17 07:10+00", lie),
                ("ring3", COPY_UPLOAD, zpid, "2025-09-17 07:20+00", lie),
                ("honest1", SOURCE_UPLOAD, zpid, "2025-09-17 07:30+00", if i == 0 { 150_000 } else { truth }),
                ("honest2", SOURCE_UPLOAD, zpid, "2025-09-17 07:40+00", if i == 1 { 150_000 } else { truth }),
            ],
        );
        let judged: i32 = scalar(
            &mut client,
            &format!("SELECT resi.record_audit('{zpid}', '{{\"price\": {truth}}}', '2025-09-17 09:00+00')"),
        );
        assert_eq!(judged, 5);
    }
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 3);
    the_ring_shares_four_lies_and_is_one_group(&mut client);
    // A stricter threshold than the evidence changes nothing found so far (rows stay).
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners(3, 5)"), 0);
}

#[test]
fn identities_that_fail_validations_with_the_same_values_become_one_group_and_honest_failures_do_not() {
    let db = TestDatabase::new("independence_validated_lies");
    let mut client = db.client();
    // A validator that says only pass or fail checks every report on listings 1-5. Three
    // identities tell the same lie on all of them, each nudging it apart within the price's 1 %
    // tolerance; two honest miners each fail once with an error of their own (listings 1 and 2),
    // and only honest3 passes on listing 5.
    for (i, zpid) in ["1", "2", "3", "4", "5"].iter().enumerate() {
        let lie = 240_000 + i as i64;
        let truth = 200_000 + i as i64;
        let mut reports = vec![
            ("ring1", SOURCE_UPLOAD, *zpid, "2025-09-17 07:00+00", lie),
            ("ring2", COPY_UPLOAD, *zpid, "2025-09-17 07:10+00", lie + 700),
            ("ring3", COPY_UPLOAD, *zpid, "2025-09-17 07:20+00", lie + 1_400),
            ("honest3", SOURCE_UPLOAD, *zpid, "2025-09-17 07:50+00", truth),
        ];
        if i < 4 {
            reports.push(("honest1", SOURCE_UPLOAD, zpid, "2025-09-17 07:30+00", if i == 0 { 150_000 } else { truth }));
            reports.push(("honest2", SOURCE_UPLOAD, zpid, "2025-09-17 07:40+00", if i == 1 { 150_000 } else { truth }));
        }
        stage(&mut client, &reports);
        for (miner, _, _, _, price) in &reports {
            client.execute("SELECT resi.record_validation($1, $2, $3)", &[miner, zpid, &(*price == truth)]).unwrap();
        }
    }
    let verdicts: String = scalar(
        &mut client,
        "SELECT string_agg(zpid || ':' || miner_hotkey || '=' || validation_passed, ' ' ORDER BY zpid, miner_hotkey)
           FROM resi.miner_attestations WHERE zpid IN ('1', '5')",
    );
    assert_eq!(
        verdicts,
        "1:honest1=false 1:honest2=true 1:honest3=true 1:ring1=false 1:ring2=false 1:ring3=false \
         5:honest3=true 5:ring1=false 5:ring2=false 5:ring3=false"
    );
    // Listing 1 judged: the price honest2 and honest3 agree on stands for what the validator
    // saw. Listing 5, with one passed report, is not judged.
    let judged: String = scalar(
        &mut client,
        "SELECT string_agg(zpid || ':' || miner_hotkey || '=' || wrong::text, ' ' ORDER BY zpid, miner_hotkey)
           FROM resi.validation_verdicts WHERE zpid IN ('1', '5')",
    );
    assert_eq!(
        judged,
        "1:honest1={\"price\": 150000} 1:honest2={} 1:honest3={} 1:ring1={\"price\": 240000} \
         1:ring2={\"price\": 240700} 1:ring3={\"price\": 241400}"
    );
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 3);
    // Each ring pair shares the four lies of listings 1-4 (the same within the tolerance), where
    // two reports passed and the price they agree on stands for what the validator saw; listing
    // 5 had one passed report
    // (right on the price it was checked on, perhaps wrong on another field), so its failures
    // are no evidence. honest1 and honest2 failed on different listings: no pair.
    the_ring_shares_four_lies_and_is_one_group(&mut client);
    // The listings' consensus is the truth (the ring votes once, and with the trust its failed
    // validations left it).
    assert_eq!(scalar::<i64>(&mut client, "SELECT price FROM resi.listings WHERE zpid = '3'"), 200_002);
}

/// `audits` audits (listings 1..=audits) and their verdicts, written as resi.record_audit writes
/// them: audit `a` judged each miner of `miners`, SQL rows `(n, hotkey, wrong)` where `wrong` (the
/// fields it got wrong) may read `a`, on its attestation 10 * a + n; a NULL `wrong`: audit `a` did
/// not judge the miner.
fn record_verdicts(client: &mut Client, audits: i32, miners: &str) {
    client
        .batch_execute(&format!(
            "INSERT INTO resi.audits (id, zpid, listing, seen_at)
             SELECT a, a::text, '{{}}', '2025-09-17 09:00+00' FROM generate_series(1, {audits}) a;
             INSERT INTO resi.audit_verdicts (audit_id, miner_hotkey, attestation_id, fields_compared, wrong)
             SELECT a, m.hotkey, 10 * a + m.n, 14, m.wrong
               FROM generate_series(1, {audits}) a, LATERAL (VALUES {miners}) m(n, hotkey, wrong)
              WHERE m.wrong IS NOT NULL;"
        ))
        .unwrap();
}

#[test]
fn false_values_are_shared_within_the_tolerance_and_an_absurd_one_is_never_alike() {
    let db = TestDatabase::new("independence_alike_lies");
    let mut client = db.client();
    // Three audits' verdicts, written as resi.record_audit writes them: nudge1 and nudge2 lie
    // about the price 0.6 % apart (inside the 1 % tolerance); sane and wild got the bathrooms
    // wrong, sane with a plausible count, wild (its pairs' second claim) with one no listing holds.
    record_verdicts(
        &mut client,
        3,
        "(1, 'nudge1', jsonb_build_object('price', 240000 + a)),
         (2, 'nudge2', jsonb_build_object('price', 241400 + a)),
         (3, 'sane', '{\"bathrooms\": 3.5}'::jsonb),
         (4, 'wild', '{\"bathrooms\": 150}'::jsonb)",
    );
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 2);
    let evidence: String = scalar(
        &mut client,
        "SELECT string_agg(miner_hotkey || '>' || source_hotkey || ' ' || shared_false || '/' || audit_differences, ', ')
           FROM resi.miner_dependence",
    );
    assert_eq!(evidence, "nudge2>nudge1 3/0");
}

#[test]
fn identities_wrong_together_each_with_its_own_lie_become_one_group_and_honest_errors_do_not() {
    let db = TestDatabase::new("independence_wrong_together");
    let mut client = db.client();
    // A hundred audits' verdicts, written as resi.record_audit writes them. ring1..ring3 scrape
    // for themselves and lie about listings 1-12, each raising the price by its own share (10,
    // 20, 30 %: no two alike), and about the bedrooms too on listings 1-6; elsewhere they are
    // right. honest1 and honest2 make ten errors each, six of them on the same listings (17-22)
    // with values of their own.
    let ring = |n: i32| {
        format!(
            "({n}, 'ring{n}', CASE WHEN a <= 12 THEN jsonb_build_object('price', (200000 + a) * {} / 10)
                                      || CASE WHEN a <= 6 THEN jsonb_build_object('bedrooms', {}) ELSE '{{}}' END
                                   ELSE '{{}}' END)",
            10 + n,
            3 + n
        )
    };
    let miners = format!(
        "{}, {}, {},
         (4, 'honest1', CASE WHEN a BETWEEN 13 AND 22 THEN jsonb_build_object('price', 150000 + a) ELSE '{{}}' END),
         (5, 'honest2', CASE WHEN a BETWEEN 17 AND 26 THEN jsonb_build_object('price', 170000 + a) ELSE '{{}}' END)",
        ring(1),
        ring(2),
        ring(3)
    );
    record_verdicts(&mut client, 100, &miners);
    // Each pair judged together 100 times. A ring pair got 18 fields wrong together (12 prices,
    // 6 bedrooms), where chance makes (12 x 12 + 6 x 6) / 100 = 1.8 of them: k ln(k/λ) - k + λ
    // = 25.25, over ln 10^6 (13.8). The honest pair: 6 prices where chance makes 1: 5.75.
    let totals: String = scalar(
        &mut client,
        "SELECT string_agg(miner_hotkey || '/' || other_hotkey || ' ' || judged_together || ':' || miner_wrong::text
                           || '/' || other_wrong::text || '/' || wrong_apart, ', ' ORDER BY miner_hotkey, other_hotkey)
           FROM resi.judged_pairs('-infinity', 'infinity') WHERE wrong_apart > 0",
    );
    let ring = r#"100:{"price": 12, "bedrooms": 6}/{"price": 12, "bedrooms": 6}/18"#;
    assert_eq!(
        totals,
        format!(
            r#"honest1/honest2 100:{{"price": 10}}/{{"price": 10}}/6, ring1/ring2 {ring}, ring1/ring3 {ring}, ring2/ring3 {ring}"#
        )
    );
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 3);
    assert_eq!(
        wrong_together(&mut client),
        "ring2>ring1 18 25.25 0/18, ring3>ring1 18 25.25 0/18, ring3>ring2 18 25.25 0/18"
    );
    assert_eq!(groups(&mut client), "ring1>ring1 ring2>ring1 ring3>ring1");
    // A stricter count than the evidence finds nothing new.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners(3, 19)"), 0);
}

#[test]
fn honest_miners_that_misread_the_same_pages_are_not_grouped_but_a_ring_among_them_is() {
    let db = TestDatabase::new("independence_hard_pages");
    let mut client = db.client();
    // 500 audits' verdicts. Listings 1-128 are hard pages: miner n (0-6) misreads the price of
    // listing a when bit n of a - 1 is set, with a value of its own (10 % apart from the next
    // miner's), so each misreads 64 and every two misread 32 of them together. honest0-honest3
    // get nothing else wrong; ring4-ring6 also lie about listings 201-260, each raising the
    // price by its own share.
    let miner = |n: i32, name: &str, lies: &str| {
        format!(
            "({n}, '{name}{n}', CASE WHEN a <= 128 AND (a - 1) & {} <> 0
                                     THEN jsonb_build_object('price', (100000 + a) * {} / 10)
                                     {lies} ELSE '{{}}' END)",
            1 << n,
            10 + n
        )
    };
    let ring_lies =
        |n: i32| format!("WHEN a BETWEEN 201 AND 260 THEN jsonb_build_object('price', (200000 + a) * {} / 10)", 10 + n);
    let miners: Vec<String> =
        (0..4).map(|n| miner(n, "honest", "")).chain((4..7).map(|n| miner(n, "ring", &ring_lies(n)))).collect();
    record_verdicts(&mut client, 500, &miners.join(", "));
    // Chance alone (λ) would make an honest pair's 32 fields wrong together a millionfold
    // unlikely (64 x 64 / 500 = 8.19 by chance: a score of 19.79), and group every honest
    // miner. But each honest miner is as often wrong together with every reliable miner: with a
    // ring member (32 against 64 x 124 / 500 = 15.87 by chance) too. That excess, (32 - 15.87) /
    // 500 per judgement, is its baseline: an honest pair expects 8.19 + 16.13 = 24.32 and scores
    // 1.10. A ring pair is wrong together on 92 fields (the 32 pages and its 60 targets), against
    // 124 x 124 / 500 = 30.75 by chance plus the same baseline, 16.13 (from its members' honest
    // partners; with each other they are far above it): 16.91.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 3);
    assert_eq!(
        wrong_together(&mut client),
        "ring5>ring4 92 16.91 0/156, ring6>ring4 92 16.91 0/156, ring6>ring5 92 16.91 0/156"
    );
    assert_eq!(groups(&mut client), "ring4>ring4 ring5>ring4 ring6>ring4");
}

#[test]
fn a_ring_judged_with_many_honest_miners_each_a_little_is_still_grouped() {
    let db = TestDatabase::new("independence_thin_partners");
    let mut client = db.client();
    // 400 audits. ring1-ring3 are judged in all of them and lie about listings 1-40, each
    // raising the price by its own share. honest4-honest7 are right, each judged in 80 audits of
    // its own (1-80, 81-160, ...): a fifth of what a ring member shares with another.
    let ring = |n: i32| {
        format!("({n}, 'ring{n}', CASE WHEN a <= 40 THEN jsonb_build_object('price', (200000 + a) * {} / 10) ELSE '{{}}' END)", 10 + n)
    };
    let honest = |n: i32| format!("({n}, 'honest{n}', CASE WHEN (a - 1) / 80 = {} THEN '{{}}'::jsonb END)", n - 4);
    let miners: Vec<String> = (1..4).map(ring).chain((4..8).map(honest)).collect();
    record_verdicts(&mut client, 400, &miners.join(", "));
    // A ring pair: 40 fields wrong together against 40 x 40 / 400 = 4 by chance. No honest
    // miner alone shares a quarter of the judgements a ring member shares with another, but two
    // of them do, and with them the ring members are wrong together at chance (0): the baseline
    // is 0, and the pair scores 40 ln 10 - 40 + 4 = 56.10. Were the ring members' baselines
    // their excess with each other, chance and baseline would make all 40.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 3);
    assert_eq!(
        wrong_together(&mut client),
        "ring2>ring1 40 56.10 0/40, ring3>ring1 40 56.10 0/40, ring3>ring2 40 56.10 0/40"
    );
}

/// The groups as text, `miner>group` by miner.
fn groups(client: &mut Client) -> String {
    scalar(
        client,
        "SELECT string_agg(miner_hotkey || '>' || group_hotkey, ' ' ORDER BY miner_hotkey) FROM resi.miner_groups",
    )
}

/// The dependent pairs as text, `miner>source wrong_together together_score shared_false/
/// audit_differences` by pair.
fn wrong_together(client: &mut Client) -> String {
    scalar(
        client,
        "SELECT string_agg(miner_hotkey || '>' || source_hotkey || ' ' || wrong_together || ' '
                           || round(together_score::numeric, 2) || ' ' || shared_false || '/' || audit_differences,
                           ', ' ORDER BY miner_hotkey, source_hotkey)
           FROM resi.miner_dependence",
    )
}

/// Pairs' evidence as text, `miner/other shared_false/differences judged_together:miner_wrong/
/// other_wrong/wrong_apart` by pair (the wrong counts per field as JSON), from `pairs`:
/// resi.judged_pair_totals, or a call of resi.judged_pairs.
fn judged_pairs_in(client: &mut Client, pairs: &str) -> String {
    scalar(
        client,
        &format!(
            "SELECT coalesce(string_agg(miner_hotkey || '/' || other_hotkey || ' ' || shared_false || '/' || differences
                                        || ' ' || judged_together || ':' || miner_wrong::text || '/'
                                        || other_wrong::text || '/' || wrong_apart,
                                        ', ' ORDER BY miner_hotkey, other_hotkey), '')
               FROM {pairs}"
        ),
    )
}

/// resi.judged_pair_totals as text (judged_pairs_in).
fn judged_pair_totals(client: &mut Client) -> String {
    judged_pairs_in(client, "resi.judged_pair_totals")
}

/// resi.miner_dependence's audit evidence as text: `miner>source shared_false/differences`.
fn shared_false_evidence(client: &mut Client) -> String {
    scalar(
        client,
        "SELECT string_agg(miner_hotkey || '>' || source_hotkey || ' ' || shared_false || '/' || audit_differences,
                           ', ' ORDER BY miner_hotkey, source_hotkey)
           FROM resi.miner_dependence",
    )
}

#[test]
fn judgements_settle_once_and_later_passes_count_them_as_a_recount_would() {
    let db = TestDatabase::new("independence_settled_judgements");
    let mut client = db.client();
    // Four audits (written as resi.record_audit writes them): ring1 and ring2 lie alike about the
    // price, honest1 is right. Audits 1-3 were recorded three hours ago, audit 4 now.
    client
        .batch_execute(
            "INSERT INTO resi.audits (id, zpid, listing, seen_at, recorded_at)
             SELECT a, a::text, '{}', now(), CASE WHEN a < 4 THEN now() - interval '3 hours' ELSE now() END
               FROM generate_series(1, 4) a;
             INSERT INTO resi.audit_verdicts (audit_id, miner_hotkey, attestation_id, fields_compared, wrong)
             SELECT a, m.hotkey, 10 * a + m.n, 14, m.wrong
               FROM generate_series(1, 4) a,
                    LATERAL (VALUES (1, 'ring1', jsonb_build_object('price', 240000 + a)),
                                    (2, 'ring2', jsonb_build_object('price', 240000 + a)),
                                    (3, 'honest1', '{}'::jsonb)) m(n, hotkey, wrong);",
        )
        .unwrap();
    // Two rounds of validations: the ring fails with its lie, honest1 and honest2 pass; the
    // round of listing 10 was three hours ago, that of listing 11 is now.
    for zpid in ["10", "11"] {
        let reports = [
            ("ring1", SOURCE_UPLOAD, zpid, "2025-09-17 07:00+00", 240_000),
            ("ring2", COPY_UPLOAD, zpid, "2025-09-17 07:10+00", 240_000),
            ("honest1", SOURCE_UPLOAD, zpid, "2025-09-17 07:30+00", 200_000),
            ("honest2", SOURCE_UPLOAD, zpid, "2025-09-17 07:40+00", 200_000),
        ];
        stage(&mut client, &reports);
        for (miner, _, _, _, price) in &reports {
            client.execute("SELECT resi.record_validation($1, $2, $3)", &[miner, &zpid, &(*price == 200_000)]).unwrap();
        }
    }
    client
        .batch_execute(
            "UPDATE resi.miner_attestations SET validation_timestamp = CASE zpid
                 WHEN '10' THEN date_bin('1 hour', now() - interval '3 hours', timestamptz '2000-01-01 00:00+00')
                                + interval '10 minutes'
                 ELSE now() END
              WHERE validation_passed IS NOT NULL",
        )
        .unwrap();

    // The first pass sums what was judged before the last hour (audits 1-3, listing 10's round)
    // and judges the rest afresh; the evidence is their sum.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 2);
    assert!(
        scalar::<bool>(
            &mut client,
            "SELECT settled_until = date_bin('1 hour', now() - interval '1 hour', timestamptz '2000-01-01 00:00+00')
               FROM resi.settled_judgements"
        ),
        "the pass sums up to the last hour boundary at least an hour past"
    );
    let settled = "honest1/honest2 0/0 1:{}/{}/0, honest1/ring1 0/4 4:{}/{\"price\": 4}/0, \
                   honest1/ring2 0/4 4:{}/{\"price\": 4}/0, honest2/ring1 0/1 1:{}/{\"price\": 1}/0, \
                   honest2/ring2 0/1 1:{}/{\"price\": 1}/0, ring1/ring2 4/0 4:{\"price\": 4}/{\"price\": 4}/0";
    assert_eq!(judged_pair_totals(&mut client), settled);
    assert_eq!(shared_false_evidence(&mut client), "ring2>ring1 6/0");
    // What a pass judges afresh: audit 4 and listing 11's round only.
    let fresh = judged_pairs_in(
        &mut client,
        "resi.judged_pairs((SELECT settled_until FROM resi.settled_judgements), 'infinity')",
    );
    assert_eq!(
        fresh,
        "honest1/honest2 0/0 1:{}/{}/0, honest1/ring1 0/2 2:{}/{\"price\": 2}/0, \
         honest1/ring2 0/2 2:{}/{\"price\": 2}/0, honest2/ring1 0/1 1:{}/{\"price\": 1}/0, \
         honest2/ring2 0/1 1:{}/{\"price\": 1}/0, ring1/ring2 2/0 2:{\"price\": 2}/{\"price\": 2}/0"
    );

    // Another pass within the hour counts nothing twice.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 0);
    assert_eq!(judged_pair_totals(&mut client), settled);
    assert_eq!(shared_false_evidence(&mut client), "ring2>ring1 6/0");

    // Two hours later (every time moved back by two hours), the rest has settled too.
    client
        .batch_execute(
            "UPDATE resi.audits SET recorded_at = recorded_at - interval '2 hours';
             UPDATE resi.miner_attestations SET validation_timestamp = validation_timestamp - interval '2 hours'
              WHERE validation_passed IS NOT NULL;
             UPDATE resi.settled_judgements SET settled_until = settled_until - interval '2 hours';",
        )
        .unwrap();
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 0);
    let all = "honest1/honest2 0/0 2:{}/{}/0, honest1/ring1 0/6 6:{}/{\"price\": 6}/0, \
               honest1/ring2 0/6 6:{}/{\"price\": 6}/0, honest2/ring1 0/2 2:{}/{\"price\": 2}/0, \
               honest2/ring2 0/2 2:{}/{\"price\": 2}/0, ring1/ring2 6/0 6:{\"price\": 6}/{\"price\": 6}/0";
    assert_eq!(judged_pair_totals(&mut client), all);
    assert_eq!(shared_false_evidence(&mut client), "ring2>ring1 6/0");

    // The bound stays on the hour: one off it would cut a round of validations in two.
    let err = client
        .batch_execute("UPDATE resi.settled_judgements SET settled_until = settled_until + interval '10 minutes'")
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23514", "{err}");
    // Summed again from scratch (what an operator does after deleting an audit), the same.
    client.batch_execute("DELETE FROM resi.judged_pair_totals; DELETE FROM resi.settled_judgements;").unwrap();
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 0);
    assert_eq!(judged_pair_totals(&mut client), all);
    assert_eq!(shared_false_evidence(&mut client), "ring2>ring1 6/0");
}

#[test]
fn a_copier_that_shifts_times_and_nudges_numbers_repeats_its_sources_deviations_minutes_apart() {
    let db = TestDatabase::new("independence_near_copies");
    let mut client = db.client();
    // Thirty listings, five honest miners (a few errors of their own, two of them alike), a
    // scraper that gets bedrooms wrong on 25 of them, and a copier of the scraper that shifts
    // every scrape time by minutes and nudges every price by 0.4 % (inside the 1 % tolerance).
    let mut rows = Vec::new();
    for n in 1..=30 {
        let price = 100_000 * n;
        for h in 1..=5 {
            // honest1 and honest5 share a deviation on 25 listings, scraped 40 minutes apart.
            let bedrooms = if (h == 1 || h == 5) && n <= 25 {
                8
            } else if n == 25 + h {
                7
            } else {
                3
            };
            rows.push(format!(
                "('honest{h}', '{SOURCE_UPLOAD}', '{n}', '2025-09-17 07:{:02}+00', {price}, {bedrooms})",
                10 * h
            ));
        }
        let bedrooms = if n <= 25 { 9 } else { 3 };
        rows.push(format!("('scraper', '{SOURCE_UPLOAD}', '{n}', '2025-09-17 07:01+00', {price}, {bedrooms})"));
        rows.push(format!(
            "('copier', '{COPY_UPLOAD}', '{n}', '2025-09-17 07:04+00', {}, {bedrooms})",
            price + price * 4 / 1000
        ));
    }
    client
        .batch_execute(&format!(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, scraped_at, price, bedrooms)
             VALUES {}",
            rows.join(", ")
        ))
        .unwrap();
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 2);
    let evidence: Vec<(String, String, i32, i32)> = client
        .query(
            "SELECT miner_hotkey, source_hotkey, shared_deviations, near_copies
               FROM resi.miner_dependence ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(evidence, [("copier".into(), "scraper".into(), 25, 25)]);
    assert_eq!(
        scalar::<i64>(&mut client, "SELECT count(*) FROM resi.miner_groups WHERE miner_hotkey LIKE 'honest%'"),
        0
    );
    // Later the scraper gets the bedrooms wrong on the other five listings too, and the copier
    // copies that. The pair is dependent already: the pass does not compare its claims again,
    // and its row keeps the evidence that made it. Deleted, the row is found again with 28: on
    // listings 26 and 30 the only other deviation is honest1's or honest5's, who lost their
    // weight (alike on 25 listings), so every weighted claim agrees there and nothing is judged.
    let later: Vec<String> = (26..=30)
        .flat_map(|n| {
            let price = 100_000 * n;
            [
                format!("('scraper', '2025-09-17 10:00+00', '{n}', '2025-09-17 09:01+00', {price}, 9)"),
                format!(
                    "('copier', '2025-09-17 10:05+00', '{n}', '2025-09-17 09:04+00', {}, 9)",
                    price + price * 4 / 1000
                ),
            ]
        })
        .collect();
    client
        .batch_execute(&format!(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, scraped_at, price, bedrooms)
             VALUES {}",
            later.join(", ")
        ))
        .unwrap();
    let near_copies = "SELECT string_agg(miner_hotkey || '>' || source_hotkey || ' ' || shared_deviations || '/' || near_copies, ', ')
                         FROM resi.miner_dependence";
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 0);
    assert_eq!(scalar::<String>(&mut client, near_copies), "copier>scraper 25/25");
    client.batch_execute("DELETE FROM resi.miner_dependence").unwrap();
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.find_dependent_miners()"), 0);
    assert_eq!(scalar::<String>(&mut client, near_copies), "copier>scraper 28/28");
}

#[test]
fn audits_are_proposed_where_they_move_the_most_weight() {
    let db = TestDatabase::new("independence_proposals");
    let mut client = db.client();
    // Listing 1: three unaudited miners agree. Listing 2: two audited miners agree. Listing 3:
    // two audited miners disagree. Listing 4: a ring of three (one group) and one audited miner.
    client
        .batch_execute(
            "INSERT INTO resi.miner_trust (miner_hotkey, trust_score, audited_claims)
             VALUES ('old1', 0, 50), ('old2', 0, 50), ('old3', 0, 50), ('old4', 0, 50);
             UPDATE resi.miner_trust t SET trust_score = resi.earned_trust(t);",
        )
        .unwrap();
    stage(
        &mut client,
        &[
            ("new1", SOURCE_UPLOAD, "1", "2025-09-17 07:00+00", 100_000),
            ("new2", SOURCE_UPLOAD, "1", "2025-09-17 07:01+00", 100_000),
            ("new3", SOURCE_UPLOAD, "1", "2025-09-17 07:02+00", 100_000),
            ("old1", SOURCE_UPLOAD, "2", "2025-09-17 07:00+00", 200_000),
            ("old2", SOURCE_UPLOAD, "2", "2025-09-17 07:01+00", 200_000),
            ("old3", SOURCE_UPLOAD, "3", "2025-09-17 07:00+00", 300_000),
            ("old4", SOURCE_UPLOAD, "3", "2025-09-17 07:01+00", 900_000),
        ],
    );
    let proposals = |client: &mut Client, sql: &str| -> Vec<(String, String)> {
        client.query(sql, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    // New sources first (3 × 1/1), then disagreement between independent sources, then the
    // audited agreeing pair.
    assert_eq!(
        proposals(&mut client, "SELECT zpid, reason FROM resi.propose_audits(3, 0)"),
        [
            ("1".into(), "new sources".into()),
            ("3".into(), "independent sources disagree".into()),
            ("2".into(), "new sources".into())
        ]
    );
    // An audit of listing 1 makes its miners known and the listing audited: it drops out.
    assert_eq!(scalar::<i32>(&mut client, "SELECT resi.record_audit('1', '{\"price\": 100000}', now())"), 3);
    let after = proposals(&mut client, "SELECT zpid, reason FROM resi.propose_audits(3, 0)");
    assert_eq!(after.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["3", "2"]);
    // A random share is drawn from the rest.
    let drawn = proposals(&mut client, "SELECT zpid, reason FROM resi.propose_audits(2, 0.5)");
    assert_eq!(drawn.len(), 2);
    assert_eq!(drawn[0], ("3".into(), "independent sources disagree".into()));
    assert_eq!(drawn[1], ("2".into(), "random".into()));
    for (sql, code) in
        [("SELECT * FROM resi.propose_audits(-1)", "22023"), ("SELECT * FROM resi.propose_audits(1, 1.5)", "22023")]
    {
        let err = client.query(sql, &[]).unwrap_err();
        assert_eq!(err.code().unwrap().code(), code, "{sql}");
    }
}
