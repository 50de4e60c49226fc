//! The read API (schema `api`), the consensus history behind `api.listing_history`, the
//! monitoring views, `resi.database_budget()` and the map tiles of `resi.listing_tile`: answers
//! checked against what was folded (tiles decoded with an independent MVT decoder), as
//! `resi_reader` where the API is concerned, and every API query's plan at 2M listings.

use postgres::Client;
use resi_e2e::{connect, plan_nodes, plans_run_by, scalar, TestDatabase};

/// Three miners over 30 listings in two zip codes; listing 7 later changes price and status.
fn folded(label: &str) -> TestDatabase {
    let db = TestDatabase::new(label);
    db.client()
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, zip_code,
                                                home_status, latitude, longitude)
             SELECT m, '2025-09-17 08:00+00', z::text, 100000 * z, 3, CASE WHEN z % 2 = 0 THEN '77494' ELSE '10001' END,
                    CASE WHEN z % 3 = 0 THEN 'SOLD' ELSE 'FOR_SALE' END, 29 + z / 100.0, -95 - z / 100.0
               FROM generate_series(1, 30) z, unnest(ARRAY['5A', '5B', '5C']) m;
             INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, home_status, zip_code)
             SELECT m, '2025-09-18 08:00+00', '7', 650000, 'PENDING', '10001' FROM unnest(ARRAY['5A', '5B', '5C']) m;",
        )
        .unwrap();
    db
}

fn zpids(client: &mut Client, sql: &str) -> Vec<String> {
    client.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get(0)).collect()
}

#[test]
fn search_listings_filters_and_pages_by_keyset() {
    let db = folded("api_search");
    db.setup_roles();
    let login = db.login(Some("resi_reader"));
    let mut reader = connect(&login.url);
    let all = zpids(&mut reader, "SELECT zpid FROM api.search_listings()");
    let mut expected: Vec<String> = (1..=30).map(|z| z.to_string()).collect();
    expected.sort();
    assert_eq!(all, expected);

    let q = |reader: &mut Client, args: &str| zpids(reader, &format!("SELECT zpid FROM api.search_listings({args})"));
    assert_eq!(q(&mut reader, "zip_code := '77494', max_price := 600000"), ["2", "4", "6"]);
    assert_eq!(q(&mut reader, "min_price := 2900000"), ["29", "30"]);
    assert_eq!(q(&mut reader, "home_status := 'PENDING'"), ["7"]);
    assert_eq!(q(&mut reader, "bbox := ARRAY[-95.125, 29.095, -95.085, 29.125]"), ["10", "11", "12"]);
    assert_eq!(q(&mut reader, "min_confidence := 1.0, zip_code := '10001', max_price := 500000"), ["1", "3", "5"]);
    let recent = q(&mut reader, "updated_since := (SELECT max(last_updated_at) FROM api.listings)");
    assert!(recent.contains(&"7".to_string()), "{recent:?}");

    // Keyset pages: 7 at a time, each after the last zpid of the one before, cover all once.
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Vec<String> = reader
            .query("SELECT zpid FROM api.search_listings(\"limit\" := 7, after := $1)", &[&after])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().cloned();
        pages.extend(page);
    }
    assert_eq!(pages, expected);
    // limit is clamped to 1..1000.
    assert_eq!(q(&mut reader, "\"limit\" := 0").len(), 1);
    assert_eq!(q(&mut reader, "\"limit\" := 100000").len(), 30);
}

#[test]
fn listing_history_and_detail_and_zip_stats() {
    let db = folded("api_listing");
    let mut admin = db.client();
    admin.batch_execute("SELECT resi.record_validation('5B', '7', true)").unwrap();
    db.setup_roles();
    let login = db.login(Some("resi_reader"));
    let mut reader = connect(&login.url);

    let row = reader
        .query_one("SELECT price, home_status, miners, reports, field_consensus FROM api.listing('7')", &[])
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 650000);
    assert_eq!(row.get::<_, String>(1), "PENDING");
    assert_eq!(row.get::<_, i32>(2), 3);
    let reports: serde_json::Value = row.get(3);
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[0]["miner"], "5A");
    assert_eq!(reports[0]["attestations"], 2);
    assert_eq!(reports[0]["first_seen_at"], "2025-09-17T08:00:00+00:00");
    assert_eq!(reports[0]["last_seen_at"], "2025-09-18T08:00:00+00:00");
    assert_eq!(reports.iter().map(|r| r["validated"].as_bool().unwrap()).collect::<Vec<_>>(), [false, true, false]);
    let fields: serde_json::Value = row.get(4);
    assert_eq!(fields["price"]["value"], 650000);
    assert!(reader.query("SELECT * FROM api.listing('404')", &[]).unwrap().is_empty());

    // The first consensus, then the change; listing 8 never changed after its first consensus.
    let history: Vec<(i64, String, Option<i64>)> = reader
        .query("SELECT price, home_status, previous_price FROM api.listing_history('7')", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(history, [(700000, "FOR_SALE".into(), None), (650000, "PENDING".into(), Some(700000))]);
    assert_eq!(scalar::<i64>(&mut reader, "SELECT count(*) FROM api.listing_history('8')"), 1);
    // A refresh that changes nothing adds no history.
    admin.batch_execute("SELECT resi.refresh_consensus()").unwrap();
    assert_eq!(scalar::<i64>(&mut reader, "SELECT count(*) FROM api.listing_history('7')"), 2);

    let stats = reader.query_one("SELECT * FROM api.zip_stats('77494')", &[]).unwrap();
    assert_eq!(stats.get::<_, i64>("listings"), 15);
    // Even zpids 2..30: prices 200k..3M, median of 15 is the 8th, zpid 16.
    assert_eq!(stats.get::<_, f64>("median_price"), 1_600_000.0);
    assert_eq!((stats.get::<_, i64>("min_price"), stats.get::<_, i64>("max_price")), (200_000, 3_000_000));
    assert_eq!(stats.get::<_, i64>("high_confidence"), 15);
    assert!(reader.query("SELECT * FROM api.zip_stats('00000')", &[]).unwrap().is_empty());
    // The reader gets the history through the API only.
    let err = reader.batch_execute("SELECT * FROM resi.listing_history").unwrap_err();
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE));
}

#[test]
fn monitoring_views_and_database_budget() {
    let db = folded("api_monitoring");
    let mut admin = db.client();
    admin
        .batch_execute(
            "INSERT INTO resi.ingest_runs (id, source, status) VALUES (1, 'test', 'completed');
             INSERT INTO resi.ingest_ledger (object_key, etag, miner_hotkey, status, reason, run_id, rows_attested) VALUES
                ('a', '1', '5A', 'loaded', NULL, 1, 30), ('b', '1', '5A', 'rejected', 'truncated: no footer', 1, 0),
                ('c', '1', '5B', 'rejected', 'truncated: no footer', 1, 0), ('d', '1', '5B', 'deferred', 'rate_limited: 100 of 100', 1, 0);
             SELECT resi.ban_miner('5C', 'test');",
        )
        .unwrap();
    let by_run: serde_json::Value =
        scalar(&mut admin, "SELECT not_loaded_by_reason FROM resi.ingest_by_run WHERE run_id = 1");
    assert_eq!(by_run, serde_json::json!({"truncated": 2, "rate_limited": 1}));
    let by_miner: String = scalar(
        &mut admin,
        "SELECT string_agg(format('%s %s/%s/%s %s %s', miner_hotkey, objects_loaded, objects_rejected, objects_deferred,
                                  rows_attested, not_loaded_by_reason), '; ' ORDER BY miner_hotkey) FROM resi.ingest_by_miner",
    );
    assert_eq!(by_miner, r#"5A 1/1/0 30 {"truncated": 1}; 5B 0/1/1 0 {"truncated": 1, "rate_limited": 1}"#);
    let leaderboard: String = scalar(
        &mut admin,
        "SELECT string_agg(format('%s %s %s', rank, miner_hotkey, banned_until IS NOT NULL), ', ' ORDER BY rank, miner_hotkey)
           FROM resi.miner_leaderboard",
    );
    assert_eq!(leaderboard, "1 5A f, 1 5B f, 1 5C t");
    let health: String = scalar(
        &mut admin,
        "SELECT string_agg(format('%s %s %s', band, listings, share), ', ') FROM resi.consensus_health",
    );
    assert_eq!(health, "high 30 1.0000, medium 0 0.0000, low 0 0.0000, none 0 0.0000");
    let fields: String = scalar(
        &mut admin,
        "SELECT string_agg(format('%s %s %s', field, contested_listings, disagreeing_listings), ', ') FROM resi.field_disagreement",
    );
    // Listing 7's newer reports carry no bedrooms or coordinates (a newer claim replaces the older).
    assert_eq!(fields, "bedrooms 29 0, home_status 30 0, latitude 29 0, longitude 29 0, price 30 0, zip_code 30 0");
    let fresh: i64 = scalar(&mut admin, "SELECT listings FROM resi.zip_freshness WHERE zip_code = '77494'");
    assert_eq!(fresh, 15);

    // Sizes against the budget: the database row last, its share = its bytes / 8 GB by default.
    let rows = admin.query("SELECT relation, bytes, share_of_budget FROM resi.database_budget()", &[]).unwrap();
    let last = rows.last().unwrap();
    assert!(last.get::<_, String>(0).starts_with("database "));
    let (bytes, share): (i64, f64) = (last.get(1), last.get(2));
    assert!((share - bytes as f64 / (8192.0 * 1024.0 * 1024.0)).abs() < 1e-12);
    assert!(rows.iter().any(|r| r.get::<_, String>(0) == "resi.listings" && r.get::<_, i64>(1) > 0));
    admin.batch_execute("SET resi.database_budget = '50GB'").unwrap();
    let share: f64 =
        scalar(&mut admin, "SELECT share_of_budget FROM resi.database_budget() WHERE relation LIKE 'database %'");
    let expected = bytes as f64 / (50.0 * 1024.0 * 1024.0 * 1024.0);
    assert!((share / expected - 1.0).abs() < 0.01, "{share} vs {expected}");
}

#[test]
fn every_api_query_uses_an_index_at_2m_listings() {
    let db = TestDatabase::new("api_plans");
    let mut admin = db.client();
    // 2M consensus listings (written directly: the planner only needs the table's shape),
    // 5,000 zip codes, prices 50k..2M, four statuses, US-wide coordinates; and their history.
    admin
        .batch_execute(
            "INSERT INTO resi.listings (zpid, zip_code, price, home_status, latitude, longitude, consensus_score,
                                        unique_miners_count, voting_miners, last_updated_at)
             SELECT z::text, lpad((z % 5000)::text, 5, '0'), 50000 + (z * 7919) % 1950000,
                    (ARRAY['FOR_SALE', 'SOLD', 'PENDING', 'FOR_RENT'])[1 + z % 4],
                    25 + (z * 37 % 2400) / 100.0, -125 + (z * 53 % 5700) / 100.0, (z % 100) / 100.0, 3, 3,
                    timestamptz '2025-09-01' + (z % 10000) * interval '1 minute'
               FROM generate_series(1, 2000000::bigint) z;
             INSERT INTO resi.listing_history (zpid, price, home_status, changed_at)
             SELECT (z % 2000000)::text, 100000, 'SOLD', timestamptz '2025-09-01' + z * interval '1 second'
               FROM generate_series(1, 200000) z;
             INSERT INTO resi.miner_claims (zpid, miner_hotkey, attestation_id, submission_timestamp, first_seen_at, attestations)
             SELECT (z % 2000000)::text, 'm' || (z % 7), z, now(), now(), 1 FROM generate_series(1, 300000) z;
             INSERT INTO resi.miner_attestations (miner_hotkey, zpid, submission_timestamp)
             SELECT 'm' || (z % 7), (z % 2000000)::text, now() FROM generate_series(1, 300000) z;
             ANALYZE resi.listings, resi.listing_history, resi.miner_claims, resi.miner_attestations;",
        )
        .unwrap();
    let bounds = admin.query_one("SELECT * FROM resi.tile_bounds(10, 239, 423)", &[]).unwrap();
    let b = |i: usize| bounds.get::<_, f64>(i);
    let tile_query = format!(
        "SELECT l.zpid FROM resi.listings l
          WHERE l.latitude >= {} AND l.latitude < {} AND l.longitude >= {} AND l.longitude < {}
            AND l.consensus_score IS NOT NULL
          ORDER BY l.consensus_score DESC, l.zpid LIMIT 50000",
        b(1),
        b(3),
        b(0),
        b(2)
    );
    for query in [
        "SELECT * FROM api.search_listings()",
        "SELECT * FROM api.search_listings(after := '1500000')",
        "SELECT * FROM api.search_listings(zip_code := '01234')",
        "SELECT * FROM api.search_listings(zip_code := '01234', min_price := 100000, max_price := 400000)",
        "SELECT * FROM api.search_listings(min_price := 1999000)",
        "SELECT * FROM api.search_listings(home_status := 'SOLD', after := '999')",
        "SELECT * FROM api.search_listings(min_confidence := 0.9)",
        "SELECT * FROM api.search_listings(bbox := ARRAY[-100.0, 30.0, -99.9, 30.1])",
        "SELECT * FROM api.search_listings(updated_since := '2025-09-07 22:00+00')",
        "SELECT * FROM api.listings WHERE zpid = '12345'",
        "SELECT * FROM api.zip_stats('01234')",
        "SELECT * FROM api.listing('12345')",
        "SELECT * FROM api.listing_history('12345')",
        // resi.listing_tile's query as its custom plan sees it: a city tile's bounds.
        tile_query.as_str(),
    ] {
        // The statements the functions run, as they ran them (with the arguments' values).
        let plans = plans_run_by(&db.url, query);
        let mut nodes = Vec::new();
        for plan in &plans {
            plan_nodes(&plan["Plan"], &mut nodes);
        }
        let scans: Vec<&(String, String)> = nodes.iter().filter(|(_, relation)| !relation.is_empty()).collect();
        assert!(!scans.is_empty(), "{query}: no scan in {plans:#?}");
        for (node, relation) in scans {
            assert!(node != "Seq Scan", "{query}: a sequential scan of {relation}:\n{plans:#?}");
        }
    }
}

/// The pixel of (lon, lat) in tile z/x/y, web mercator (written out here, independently of the
/// extension's code).
fn expected_pixel(lon: f64, lat: f64, z: i32, x: i32, y: i32) -> (f32, f32) {
    let n = 2f64.powi(z);
    let world_x = (lon + 180.0) / 360.0 * n;
    let lat = lat.to_radians();
    let world_y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    (((world_x - f64::from(x)) * 4096.0).round() as f32, ((world_y - f64::from(y)) * 4096.0).round() as f32)
}

#[test]
fn listing_tiles_decode_to_the_listings_of_the_tile() {
    let db = TestDatabase::new("api_tiles");
    let mut admin = db.client();
    // Six listings around Katy, TX (tile 12/957/1692 covers -95.888..-95.801, 29.764..29.840)
    // and one in Houston, outside it; two miners agree on each.
    admin
        .batch_execute(
            "INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, bedrooms, latitude, longitude)
             SELECT m, '2025-09-17 08:00+00', z::text, 300000 + z * 1000, 3 + z % 2, 29.78 + z * 0.005, -95.87 + z * 0.01
               FROM generate_series(1, 6) z, unnest(ARRAY['5A', '5B']) m;
             INSERT INTO resi.staging_listings (miner_hotkey, submission_timestamp, zpid, price, latitude, longitude)
             SELECT m, '2025-09-17 08:00+00', '99', 500000, 29.76, -95.37 FROM unnest(ARRAY['5A', '5B']) m;",
        )
        .unwrap();
    db.setup_roles();
    let login = db.login(Some("resi_reader"));
    let mut reader = connect(&login.url);
    let (z, x, y) = (12, 957, 1692);
    let tile: Vec<u8> = reader.query_one("SELECT resi.listing_tile($1, $2, $3)", &[&z, &x, &y]).unwrap().get(0);
    let decoded = mvt_reader::Reader::new(tile).expect("an MVT tile");
    assert_eq!(decoded.get_layer_names().unwrap(), ["listings"]);
    assert_eq!(decoded.get_layer_metadata().unwrap()[0].extent, 4096);
    let mut features = decoded.get_features(0).unwrap();
    features.sort_by_key(|f| f.id);
    assert_eq!(features.iter().map(|f| f.id.unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    for feature in &features {
        let zpid = feature.id.unwrap() as i32;
        let (lon, lat) = (-95.87 + f64::from(zpid) * 0.01, 29.78 + f64::from(zpid) * 0.005);
        let point = match &feature.geometry {
            geo_types::Geometry::Point(p) => *p,
            geo_types::Geometry::MultiPoint(m) if m.0.len() == 1 => m.0[0],
            other => panic!("not one point: {other:?}"),
        };
        let (px, py) = expected_pixel(lon, lat, z, x, y);
        assert!((point.x() - px).abs() <= 1.0 && (point.y() - py).abs() <= 1.0, "{zpid}: {point:?} vs ({px}, {py})");
        assert!((0.0..=4096.0).contains(&point.x()) && (0.0..=4096.0).contains(&point.y()));
        let props = feature.properties.as_ref().unwrap();
        use mvt_reader::feature::Value;
        assert_eq!(props["zpid"], Value::String(zpid.to_string()));
        assert_eq!(props["price"], Value::Int(300000 + i64::from(zpid) * 1000));
        assert_eq!(props["bedrooms"], Value::Int(3 + i64::from(zpid) % 2));
        assert_eq!(props["confidence"], Value::Double(1.0));
    }
    // Houston's tile has the one listing; the ocean's tile none (an empty tile).
    let houston: Vec<u8> = reader.query_one("SELECT resi.listing_tile(12, 962, 1693)", &[]).unwrap().get(0);
    let houston = mvt_reader::Reader::new(houston).unwrap().get_features(0).unwrap();
    assert_eq!(houston.iter().map(|f| f.id).collect::<Vec<_>>(), [Some(99)]);
    let ocean: Vec<u8> = reader.query_one("SELECT resi.listing_tile(12, 0, 0)", &[]).unwrap().get(0);
    assert!(ocean.is_empty());
    let err = reader.batch_execute("SELECT resi.listing_tile(3, 8, 0)").unwrap_err();
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INVALID_PARAMETER_VALUE));
}
