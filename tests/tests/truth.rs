//! Truth discovery for any claims through SQL (resi.discover_truth), measured on a public data
//! set with truth: the Raha/HoloClean Flight sample (38 web sources, 100 flights, 4 times each;
//! resi_core/tests/fixtures/flights-raha). Majority voting gets ~0.80 of its 400 items right,
//! the best published methods ~0.94.

use postgres::Client;
use resi_e2e::{load_flights, scalar, TestDatabase};

/// Share of the 400 items whose found value is the true one; `audited` items get their truth as
/// an audit row (source NULL).
fn accuracy(client: &mut Client, audited: &str) -> f64 {
    scalar(
        client,
        &format!(
            "WITH audits AS ({audited}),
                  found AS (
                 SELECT resi.discover_truth(x.flight, x.property, x.source, x.value, NULL) AS result
                   FROM (SELECT flight, property, source, value FROM claims
                         UNION ALL
                         SELECT t.flight, t.property, NULL, t.value FROM truth t JOIN audits a USING (flight, property)) x)
             SELECT (count(*) FILTER (WHERE v.value = t.value))::float8 / count(*)
               FROM truth t
               LEFT JOIN (SELECT r.* FROM found, jsonb_to_recordset(found.result -> 'values')
                                 AS r(object text, property text, value text, confidence float8)) v
                      ON v.object = t.flight AND v.property = t.property"
        ),
    )
}

#[test]
fn flight_claims_through_sql_beat_majority_voting() {
    let db = TestDatabase::new("truth_flights");
    let mut client = db.client();
    load_flights(&mut client);
    assert_eq!(scalar::<i64>(&mut client, "SELECT count(*) FROM truth"), 400);
    let majority: f64 = scalar(
        &mut client,
        "SELECT (count(*) FILTER (WHERE m.value = t.value))::float8 / count(*)
           FROM truth t
           LEFT JOIN (SELECT DISTINCT ON (flight, property) flight, property, value FROM claims
                       GROUP BY flight, property, value ORDER BY flight, property, count(*) DESC, value) m
                  USING (flight, property)",
    );
    let found = accuracy(&mut client, "SELECT NULL::text AS flight, NULL::text AS property WHERE false");
    // 5 % of the items audited (every 20th in a fixed order).
    let with_audits = accuracy(
        &mut client,
        "SELECT flight, property FROM (SELECT flight, property, row_number() OVER (ORDER BY md5(flight || property)) AS n
                                          FROM truth) x WHERE n % 20 = 0",
    );
    println!(
        "Flight (400 items): majority {majority:.4}, resi.discover_truth {found:.4}, with 5 % audits {with_audits:.4}"
    );
    assert!((0.78..0.83).contains(&majority), "majority {majority}");
    assert!(found >= 0.92 && found > majority + 0.1, "discover_truth {found} vs majority {majority}");
    assert!(with_audits >= found, "audits {with_audits} vs none {found}");
}

#[test]
fn dependent_sources_vote_once_and_audits_decide() {
    let db = TestDatabase::new("truth_groups");
    let mut client = db.client();
    let result = |client: &mut Client, rows: &str| -> String {
        scalar(
            client,
            &format!(
                "SELECT string_agg(r.object || '=' || r.value || '/' || r.groups, ' ' ORDER BY r.object)
                   FROM (SELECT resi.discover_truth(o, p, s, v, g) AS result FROM (VALUES {rows}) x(o, p, s, v, g)) f,
                        jsonb_to_recordset(f.result -> 'values') AS r(object text, value text, groups int)"
            ),
        )
    };
    // Three copies in one group against two independent sources, on two items.
    let rows = "('a','p','c1','x','ring'), ('a','p','c2','x','ring'), ('a','p','c3','x','ring'),
                ('a','p','h1','y',NULL), ('a','p','h2','y',NULL),
                ('b','p','c1','u','ring'), ('b','p','c2','u','ring'), ('b','p','c3','u','ring'),
                ('b','p','h1','w',NULL), ('b','p','h2','w',NULL)";
    assert_eq!(result(&mut client, rows), "a=y/2 b=w/2");
    let ungrouped = rows.replace("'ring'", "NULL");
    assert_eq!(result(&mut client, &ungrouped), "a=x/3 b=u/3");
    // An audit (NULL source) decides its item.
    assert_eq!(result(&mut client, &format!("{ungrouped}, ('a','p',NULL,'y',NULL)")), "a=y/2 b=u/3");
    let err = client
        .query_one("SELECT resi.discover_truth(o, 'p', 's', v, NULL) FROM (VALUES ('a','x'), ('a','y')) x(o, v)", &[])
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22023");
}
