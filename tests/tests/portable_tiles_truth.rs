//! The portable edition's map tiles and truth discovery (sql/portable/tiles.sql, truth.sql)
//! against the native extension: resi.tile_bounds with bit-for-bit equal floats, tiles of
//! resi.listing_tile_layer byte for byte, resi.discover_truth's jsonb as the same text, and the
//! same SQLSTATE and message for errors. Each test runs the same queries in a native database
//! and in one with the portable edition (the whole of it, installed by a role without superuser).

use postgres::Client;
use resi_e2e::{load_flights, Edition, TestDatabase};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A native and a portable database.
fn databases(label: &str) -> (TestDatabase, TestDatabase) {
    let native = TestDatabase::with_edition(&format!("{label}_n"), Edition::Native);
    let portable = TestDatabase::with_edition(&format!("{label}_p"), Edition::Portable);
    (native, portable)
}

/// An error as the client sees it: SQLSTATE and message.
#[derive(Debug, PartialEq)]
struct Failure {
    code: String,
    message: String,
}

/// Each row of `sql` as its columns' text joined by `|` (NULL as `∅`), or its error.
fn outcome(client: &mut Client, sql: &str) -> Result<Vec<String>, Failure> {
    match client.simple_query(sql) {
        Ok(messages) => Ok(messages
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|i| row.get(i).unwrap_or("∅")).collect::<Vec<_>>().join("|"))
                }
                _ => None,
            })
            .collect()),
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
            Err(Failure { code: db.code().code().to_owned(), message: db.message().to_owned() })
        }
    }
}

/// `sql` gives the same rows (or the same error) in both databases; the rows.
fn same(native: &mut Client, portable: &mut Client, sql: &str) -> Result<Vec<String>, Failure> {
    let expected = outcome(native, sql);
    let got = outcome(portable, sql);
    assert_eq!(got, expected, "{sql}");
    expected
}

fn run(clients: [&mut Client; 2], sql: &str) {
    for client in clients {
        client.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error().map(|d| d.message())));
    }
}

/// A float as a PostgreSQL literal that reads back to the same bits.
fn float(x: f64) -> String {
    if x.is_nan() {
        "'NaN'::float8".into()
    } else if x.is_infinite() {
        format!("'{}Infinity'::float8", if x < 0.0 { "-" } else { "" })
    } else {
        format!("({x:?})::float8")
    }
}

fn real(x: f32) -> String {
    if x.is_nan() {
        "'NaN'::real".into()
    } else if x.is_infinite() {
        format!("'{}Infinity'::real", if x < 0.0 { "-" } else { "" })
    } else {
        format!("({x:?})::real")
    }
}

/// A string as a PostgreSQL literal (E'' with every backslash doubled, so it reads the same
/// whatever standard_conforming_strings says).
fn text(s: Option<&str>) -> String {
    match s {
        None => "NULL".into(),
        Some(s) => format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
    }
}

#[test]
fn declarations_match_native() {
    let (native, portable) = databases("tt_decl");
    let query = "SELECT format('%s(%s) -> %s | kind %s, volatility %s, strict %s, parallel %s, security definer %s, rows %s, combine %s',
                               p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prokind,
                               p.provolatile, p.proisstrict, p.proparallel, p.prosecdef, p.prorows,
                               (SELECT a.aggcombinefn <> 0 FROM pg_aggregate a WHERE a.aggfnoid = p.oid))
                   FROM pg_proc p
                  WHERE p.pronamespace = 'resi'::regnamespace
                    AND p.proname IN ('tile_bounds', 'listing_tile_layer', 'discover_truth')
                  ORDER BY 1";
    let rows = same(&mut native.client(), &mut portable.client(), query).unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
}

// ---------------------------------------------------------------------------------------------
// Tiles
// ---------------------------------------------------------------------------------------------

/// Tiles over the world: the corners of every zoom, and seeded ones at zooms 0–30.
fn tiles(rng: &mut Rng) -> Vec<(i32, i32, i32)> {
    let mut tiles = Vec::new();
    for z in 0..=30 {
        let last = (1i64 << z) - 1;
        tiles.push((z, 0, 0));
        tiles.push((z, last as i32, last as i32));
        for _ in 0..3 {
            tiles.push((z, rng.below(last as u64 + 1) as i32, rng.below(last as u64 + 1) as i32));
        }
    }
    tiles
}

#[test]
fn tile_bounds_are_bit_identical_to_native_at_every_zoom() {
    let (native, portable) = databases("tt_bounds");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5eed_0001);
    let values: Vec<String> = tiles(&mut rng).iter().map(|(z, x, y)| format!("({z}, {x}, {y})")).collect();
    let query = format!(
        "SELECT t.z, t.x, t.y, float8send(b.min_longitude), float8send(b.min_latitude),
                float8send(b.max_longitude), float8send(b.max_latitude)
           FROM (VALUES {}) t(z, x, y), resi.tile_bounds(t.z, t.x, t.y) b ORDER BY 1, 2, 3",
        values.join(", ")
    );
    let rows = same(&mut n, &mut p, &query).unwrap();
    assert_eq!(rows.len(), values.len());
    // And as text, as a client reads them.
    same(&mut n, &mut p, "SELECT * FROM resi.tile_bounds(10, 239, 423)").unwrap();
}

#[test]
fn tiles_that_do_not_exist_are_the_same_errors() {
    let (native, portable) = databases("tt_bounds_err");
    let (mut n, mut p) = (native.client(), portable.client());
    for (z, x, y) in [(-1, 0, 0), (31, 0, 0), (1, 2, 0), (1, 0, 2), (3, -1, 0), (3, 8, 0), (30, 1 << 30, 0), (0, 0, -1)]
    {
        let err = same(&mut n, &mut p, &format!("SELECT * FROM resi.tile_bounds({z}, {x}, {y})")).unwrap_err();
        assert_eq!(err.code, "22023");
        let err = same(&mut n, &mut p, &format!("SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, {z}, {x}, {y})"))
            .unwrap_err();
        assert_eq!(err.code, "22023");
    }
    // STRICT: NULL in, no row out.
    assert_eq!(same(&mut n, &mut p, "SELECT count(*) FROM resi.tile_bounds(NULL, 0, 0)").unwrap(), ["0"]);
}

#[test]
fn a_layer_is_one_tile_and_needs_its_coordinates() {
    let (native, portable) = databases("tt_layer_err");
    let (mut n, mut p) = (native.client(), portable.client());
    for query in [
        "SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, 3, 1, v ORDER BY v DESC) FROM (VALUES (2), (1)) t(v)",
        "SELECT resi.listing_tile_layer('1', NULL, 0, 1, 1, 1, 3, 1, v ORDER BY v DESC) FROM (VALUES (2), (1)) t(v)",
        "SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, NULL, 1, 1)",
        "SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, 3, NULL, 1)",
        "SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, z, 0, 0 ORDER BY z) FROM (VALUES (0), (NULL)) t(z)",
        "SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, 3, 9, 1)",
    ] {
        assert_eq!(same(&mut n, &mut p, query).unwrap_err().code, "22023", "{query}");
    }
    // No rows: NULL; rows without usable coordinates: an empty tile.
    let empty = "SELECT encode(resi.listing_tile_layer(zpid, lon, lat, 1, 2, 0.5, 4, 3, 6), 'hex') FROM
                 (VALUES ('1', NULL::float8, 1::float8), ('2', 1, NULL), ('3', 'NaN', 1), ('4', 1, '-Infinity')) t(zpid, lon, lat)";
    assert_eq!(same(&mut n, &mut p, empty).unwrap(), [""]);
    assert_eq!(same(&mut n, &mut p, &format!("{empty} WHERE false")).unwrap(), ["∅"]);
}

/// Longitudes and latitudes of tile (z, x, y) worth testing: inside, exactly on each edge (the
/// bounds the tile arithmetic gives), one ulp either side, the middle, beyond web mercator,
/// far away, zero, tiny and non-finite.
fn coordinates(rng: &mut Rng, (z, x, y): (i32, i32, i32)) -> (f64, f64) {
    let b = resi_core::tile::tile_bounds(z, x, y).unwrap();
    let ulp = |v: f64, d: i64| if v == 0.0 { v } else { f64::from_bits((v.to_bits() as i64 + d) as u64) };
    let lon = match rng.below(12) {
        0 => b.min_longitude,
        1 => b.max_longitude,
        2 => ulp(b.min_longitude, if rng.chance(50) { 1 } else { -1 }),
        3 => ulp(b.max_longitude, if rng.chance(50) { 1 } else { -1 }),
        4 => [1e300, -1e300, 1e15, -1e16, 180.0, -180.0, 0.0, -0.0, 5e-324][rng.below(9) as usize],
        5 => [f64::NAN, f64::INFINITY][rng.below(2) as usize],
        6 => (b.min_longitude + b.max_longitude) / 2.0,
        _ => b.min_longitude + rng.unit() * (b.max_longitude - b.min_longitude),
    };
    let lat = match rng.below(12) {
        0 => b.min_latitude,
        1 => b.max_latitude,
        2 => ulp(b.min_latitude, if rng.chance(50) { 1 } else { -1 }),
        3 => ulp(b.max_latitude, if rng.chance(50) { 1 } else { -1 }),
        4 => [90.0, -90.0, 85.06, -85.06, 85.051_128_779_806_59, 0.0, -0.0, 1e-310, -3e-21, 2e-20, 1e300]
            [rng.below(11) as usize],
        5 => [f64::NAN, f64::NEG_INFINITY][rng.below(2) as usize],
        6 => (b.min_latitude + b.max_latitude) / 2.0,
        _ => b.min_latitude + rng.unit() * (b.max_latitude - b.min_latitude),
    };
    (lon, lat)
}

/// `count` listings of tile `tile` (numbered from `first`) as rows of VALUES: zpids numeric,
/// with leading zeros, at and beyond 2^64, empty, NULL, unicode, with spaces and newlines, long
/// (200 and 18,000 bytes), and repeated; prices and bedrooms sharing values, extremes and NULLs; confidences with -0, NaN,
/// ±Infinity, subnormals and repeats; coordinates as [`coordinates`] and NULL.
fn listings(rng: &mut Rng, tile: (i32, i32, i32), first: usize, count: usize) -> Vec<String> {
    let zpids = [
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775808",
        "0",
        "000123",
        "",
        "zpid ü 🏠",
        "12 34",
        "line\nbreak",
        "back\\slash 'quoted'",
        "٣٤",
        "-5",
    ];
    let mut rows = Vec::new();
    for i in 0..count {
        let (lon, lat) = coordinates(rng, tile);
        let zpid = match rng.below(10) {
            0..=3 => Some((10_000_000 + rng.below(90_000_000)).to_string()),
            4 if rng.chance(5) => Some(["x".repeat(200), "é".repeat(9000)][rng.below(2) as usize].clone()),
            4 => Some((10_000_000 + rng.below(90_000_000)).to_string()),
            5 => None,
            6 => Some(format!("{}", 1000 + rng.below(5))),
            _ => Some(rng.pick(&zpids).to_owned()),
        };
        let price = match rng.below(8) {
            0 => "NULL".into(),
            1 => ["-9223372036854775808", "9223372036854775807", "-1", "0", "3"][rng.below(5) as usize].to_owned(),
            2 => (rng.below(6)).to_string(),
            _ => (100_000 + 5_000 * rng.below(40)).to_string(),
        };
        let bedrooms = match rng.below(6) {
            0 => "NULL".into(),
            1 => ["-2147483648", "2147483647", "0"][rng.below(3) as usize].to_owned(),
            _ => rng.below(6).to_string(),
        };
        let confidence = match rng.below(8) {
            0 => "NULL".into(),
            1 => real([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1e-45, f32::MAX][rng.below(7) as usize]),
            2 => real(0.5),
            _ => real(rng.unit() as f32),
        };
        let (lon, lat) = match rng.below(15) {
            0 => ("NULL".into(), float(lat)),
            1 => (float(lon), "NULL".into()),
            _ => (float(lon), float(lat)),
        };
        let (z, x, y) = tile;
        rows.push(format!(
            "({}, {}, {lon}, {lat}, ({price})::bigint, ({bedrooms})::int, {confidence}, {z}, {x}, {y})",
            first + i,
            text(zpid.as_deref())
        ));
    }
    rows
}

const LISTINGS: &str = "CREATE TABLE listings (id int, zpid text, lon float8, lat float8, price bigint, bedrooms int,
                                                 confidence real, z int, x int, y int)";

#[test]
fn tile_layers_are_byte_identical_to_native_over_random_listings() {
    let (native, portable) = databases("tt_layers");
    let (mut n, mut p) = (native.client(), portable.client());
    run([&mut n, &mut p], LISTINGS);
    let mut rng = Rng(0x5eed_0002);
    let mut chosen: Vec<(i32, i32, i32)> = tiles(&mut rng).into_iter().filter(|_| rng.chance(25)).collect();
    chosen.extend([(0, 0, 0), (10, 239, 423), (14, 3835, 6776), (30, 0, (1 << 30) - 1)]);
    let mut first = 0;
    for &tile in &chosen {
        let count = [1, 2, 5, 40, 150][rng.below(5) as usize];
        let rows = listings(&mut rng, tile, first, count);
        first += count;
        run([&mut n, &mut p], &format!("INSERT INTO listings VALUES {}", rows.join(", ")));
    }
    // Per tile in row order; the tiles in a fixed order, as hex.
    let query = "SELECT z, x, y, encode(resi.listing_tile_layer(zpid, lon, lat, price, bedrooms, confidence, z, x, y ORDER BY id), 'hex')
                   FROM listings GROUP BY z, x, y ORDER BY z, x, y";
    let tiles = same(&mut n, &mut p, query).unwrap();
    assert_eq!(tiles.len(), chosen.iter().collect::<std::collections::BTreeSet<_>>().len());
    // The column form (what resi.listing_tile calls) gives the aggregate's bytes in both editions.
    let by_columns =
        "SELECT z, x, y, encode(resi.listing_tile_layer_of(array_agg(zpid ORDER BY id), array_agg(lon ORDER BY id),
                          array_agg(lat ORDER BY id), array_agg(price ORDER BY id), array_agg(bedrooms ORDER BY id),
                          array_agg(confidence ORDER BY id), z, x, y), 'hex')
                        FROM listings GROUP BY z, x, y ORDER BY z, x, y";
    assert_eq!(same(&mut n, &mut p, by_columns).unwrap(), tiles);
    // The order the map server's query gives (most confident first); and the whole table as
    // tile 0/0/0 (every point a feature, most far outside their pixel grid).
    same(
        &mut n,
        &mut p,
        "SELECT md5(resi.listing_tile_layer(zpid, lon, lat, price, bedrooms, confidence, 10, 239, 423
                                             ORDER BY confidence DESC, zpid, id))
           FROM listings WHERE (z, x, y) = (10, 239, 423)",
    )
    .unwrap();
    for (z, x, y) in [(0, 0, 0), (3, 1, 2), (22, 1_000_000, 2_000_000)] {
        same(
            &mut n,
            &mut p,
            &format!(
                "SELECT md5(resi.listing_tile_layer(zpid, lon, lat, price, bedrooms, confidence, {z}, {x}, {y} ORDER BY id))
                   FROM listings"
            ),
        )
        .unwrap();
    }
}

#[test]
fn the_column_form_checks_its_arrays_and_tile_as_natively() {
    let (native, portable) = databases("tt_columns");
    let (mut n, mut p) = (native.client(), portable.client());
    for call in [
        // No listing: NULL, whatever the tile.
        "(NULL, NULL, NULL, NULL, NULL, NULL, 3, 1, 1)",
        "('{}', '{}', '{}', '{}', '{}', '{}', NULL, NULL, NULL)",
        // NULL arrays are columns of NULLs; listings without coordinates are skipped.
        "('{1,2}', '{-95.4,NULL}', '{29.7,29.8}', NULL, NULL, NULL, 3, 1, 3)",
        "(NULL, '{-95.4}', '{29.7}', '{250000}', '{3}', '{0.75}', 0, 0, 0)",
        "('{7}', '{NaN}', '{29.7}', NULL, NULL, NULL, 0, 0, 0)",
        // Arrays of different lengths, a missing or impossible tile: 22023.
        "('{1,2}', '{-95.4}', '{29.7}', NULL, NULL, NULL, 3, 1, 3)",
        "('{1}', '{-95.4}', '{29.7}', NULL, NULL, NULL, NULL, 1, 3)",
        "('{1}', '{-95.4}', '{29.7}', NULL, NULL, NULL, 3, 8, 3)",
        "('{1}', '{-95.4}', '{29.7}', NULL, NULL, NULL, 31, 0, 0)",
        // Arrays whose lower bound is not 1 are read in order.
        "('[0:1]={1,2}', '{-95.4,-95.5}', '[5:6]={29.7,29.8}', NULL, NULL, NULL, 3, 1, 3)",
    ] {
        same(&mut n, &mut p, &format!("SELECT encode(resi.listing_tile_layer_of{call}, 'hex')")).unwrap_or_default();
    }
    let mismatch =
        outcome(&mut p, "SELECT resi.listing_tile_layer_of('{1,2}', '{1}', NULL, NULL, NULL, NULL, 0, 0, 0)");
    assert_eq!(mismatch.unwrap_err().code, "22023");
}

#[test]
fn a_tile_read_back_holds_the_listings_in_row_order() {
    // Beyond equality with native: the portable tile decodes, its features in row order with
    // the pixels Rust's tile arithmetic gives.
    let portable = TestDatabase::with_edition("tt_decode", Edition::Portable);
    let mut client = portable.client();
    let (z, x, y) = (10, 239, 423);
    let b = resi_core::tile::tile_bounds(z, x, y).unwrap();
    let points: Vec<(f64, f64)> = (0..20)
        .map(|i| {
            let f = f64::from(i) / 20.0;
            (
                b.min_longitude + f * (b.max_longitude - b.min_longitude),
                b.max_latitude - f * (b.max_latitude - b.min_latitude),
            )
        })
        .collect();
    let values: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (lon, lat))| format!("({i}, '{}', {}, {})", 1000 + i, float(*lon), float(*lat)))
        .collect();
    let tile: Vec<u8> = client
        .query_one(
            &format!(
                "SELECT resi.listing_tile_layer(zpid, lon, lat, 300000, 3, 0.75, {z}, {x}, {y} ORDER BY i)
                   FROM (VALUES {}) t(i, zpid, lon, lat)",
                values.join(", ")
            ),
            &[],
        )
        .unwrap()
        .get(0);
    let reader = mvt_reader::Reader::new(tile).unwrap();
    let layers = reader.get_layer_metadata().unwrap();
    assert_eq!((layers.len(), layers[0].name.as_str(), layers[0].extent), (1, "listings", 4096));
    let features = reader.get_features(0).unwrap();
    assert_eq!(features.len(), points.len());
    for (i, (feature, (lon, lat))) in features.iter().zip(&points).enumerate() {
        assert_eq!(feature.id, Some(1000 + i as u64));
        let (px, py) = resi_core::tile::tile_pixel(*lon, *lat, z, x, y);
        let point = match &feature.geometry {
            geo_types::Geometry::Point(p) => *p,
            geo_types::Geometry::MultiPoint(m) if m.0.len() == 1 => m.0[0],
            other => panic!("{other:?}"),
        };
        assert_eq!((point.x(), point.y()), (px as f32, py as f32));
    }
}

#[test]
fn a_tile_of_a_thousand_listings_is_the_same_and_takes_under_five_seconds() {
    let (native, portable) = databases("tt_speed");
    let (mut n, mut p) = (native.client(), portable.client());
    run([&mut n, &mut p], LISTINGS);
    let mut rng = Rng(0x5eed_0003);
    let rows = listings(&mut rng, (12, 958, 1693), 0, 1000);
    run([&mut n, &mut p], &format!("INSERT INTO listings VALUES {}", rows.join(", ")));
    let query =
        "SELECT md5(resi.listing_tile_layer(zpid, lon, lat, price, bedrooms, confidence, 12, 958, 1693 ORDER BY id))
                   FROM listings";
    let start = std::time::Instant::now();
    outcome(&mut n, query).unwrap();
    let native_time = start.elapsed();
    let start = std::time::Instant::now();
    outcome(&mut p, query).unwrap();
    let portable_time = start.elapsed();
    println!("1,000 listings: native {native_time:?}, portable {portable_time:?}");
    same(&mut n, &mut p, query).unwrap();
    assert!(portable_time.as_secs_f64() < 5.0, "{portable_time:?}");
}

/// The map server's function reads a tile as columns (resi.listing_tile_layer_of): 20,000
/// listings, over which the portable aggregate (its state copied on every row) would take most
/// of a minute, give the native bytes (the time is printed; `make bench` measures speed).
#[test]
fn a_tile_of_twenty_thousand_listings_gives_the_native_bytes() {
    let (native, portable) = databases("tt_big");
    let (mut n, mut p) = (native.client(), portable.client());
    run(
        [&mut n, &mut p],
        "INSERT INTO resi.listings (zpid, price, bedrooms, latitude, longitude, consensus_score)
         SELECT (40000000 + i)::text, 200000 + i % 997 * 1000, i % 6, 29.6 + (i % 1000) / 2500.0,
                -95.9 + (i / 1000) / 40.0, ((i * 7919) % 1000) / 1000.0
           FROM generate_series(1, 20000) i",
    );
    let query = "SELECT md5(t), length(t) FROM resi.listing_tile(8, 59, 105) t";
    let start = std::time::Instant::now();
    let tile = outcome(&mut p, query).unwrap();
    let portable_time = start.elapsed();
    println!("20,000 listings: portable {portable_time:?}");
    assert_eq!(same(&mut n, &mut p, query).unwrap(), tile);
    assert!(!tile[0].ends_with("|0"), "{tile:?}");
}

#[test]
fn a_parallel_plan_gives_the_serial_tile() {
    let (native, portable) = databases("tt_parallel");
    let (mut n, mut p) = (native.client(), portable.client());
    run([&mut n, &mut p], LISTINGS);
    let mut rng = Rng(0x5eed_0004);
    let rows = listings(&mut rng, (9, 119, 211), 0, 600);
    run([&mut n, &mut p], &format!("INSERT INTO listings VALUES {}; ANALYZE listings", rows.join(", ")));
    let query =
        "SELECT md5(resi.listing_tile_layer(zpid, lon, lat, price, bedrooms, confidence, 9, 119, 211 ORDER BY id))
                   FROM listings WHERE id % 7 <> 3";
    let serial = same(&mut n, &mut p, query).unwrap();
    run(
        [&mut n, &mut p],
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2",
    );
    let plan = outcome(&mut p, &format!("EXPLAIN (COSTS OFF) {query}")).unwrap().join("\n");
    assert!(plan.contains("Parallel Seq Scan"), "{plan}");
    assert_eq!(same(&mut n, &mut p, query).unwrap(), serial);
}

#[test]
fn the_map_servers_tile_function_gives_native_bytes() {
    // resi.listing_tile (sql/tiles.sql, shared) over resi.listings, with each edition's
    // resi.listing_tile_layer under it.
    let (native, portable) = databases("tt_listing_tile");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5eed_0007);
    let mut rows = Vec::new();
    for i in 0..500 {
        let score = match rng.below(10) {
            0 => "NULL".to_owned(),
            1 => real(0.5),
            _ => real(rng.unit() as f32),
        };
        rows.push(format!(
            "('{}', {}, {}, {}, {}, {score})",
            if i % 50 == 0 { format!("z{i}") } else { (30_000_000 + i * 7).to_string() },
            if i % 9 == 0 { "NULL".to_owned() } else { (200_000 + 1_000 * rng.below(300)).to_string() },
            if i % 11 == 0 { "NULL".to_owned() } else { rng.below(7).to_string() },
            float(29.6 + 0.4 * rng.unit()),
            float(-95.9 + 0.5 * rng.unit()),
        ));
    }
    run(
        [&mut n, &mut p],
        &format!(
            "INSERT INTO resi.listings (zpid, price, bedrooms, latitude, longitude, consensus_score) VALUES {}",
            rows.join(", ")
        ),
    );
    let mut features = 0;
    for (z, x, y) in
        [(0, 0, 0), (8, 59, 105), (10, 239, 423), (12, 958, 1693), (14, 3835, 6776), (16, 15000, 27000), (3, 0, 0)]
    {
        let tile =
            same(&mut n, &mut p, &format!("SELECT md5(t), length(t) FROM resi.listing_tile({z}, {x}, {y}) t")).unwrap();
        features += usize::from(!tile[0].ends_with("|0"));
    }
    assert!(features >= 4, "{features} tiles with listings");
}

// ---------------------------------------------------------------------------------------------
// Truth discovery
// ---------------------------------------------------------------------------------------------

/// A small random world as rows (ord, object, property, source, value, group): a few objects
/// and properties; honest sources (mostly the truth), noisy ones, rings copying one member
/// (named groups, sometimes renamed by a later row), values from a small alphabet (ties),
/// audits (sometimes of values nobody claims, or of items nobody claims), exact duplicates,
/// rows without object, property or value, and names with unicode, tabs, newlines, quotes and
/// backslashes.
fn world(rng: &mut Rng) -> Vec<String> {
    let names = ["a", "b", "é", "o\tx", "line\nbreak", "back\\slash", "q'uote\"", "🏠", "A", "aa", ""];
    let objects: Vec<String> = (0..1 + rng.below(6)).map(|i| format!("{}{i}", rng.pick(&names))).collect();
    let properties: Vec<String> =
        (0..1 + rng.below(3)).map(|i| format!("p{i}{}", rng.pick(&["", "é", "\\"]))).collect();
    let alphabet = ["x", "y", "z", "w", "x ", "X", "ü"];
    let truth: Vec<Vec<&str>> =
        objects.iter().map(|_| properties.iter().map(|_| rng.pick(&alphabet)).collect()).collect();
    let sources = 2 + rng.below(9) as usize;
    let mut rows = Vec::new();
    let push = |rows: &mut Vec<String>,
                o: Option<&str>,
                p: Option<&str>,
                s: Option<&str>,
                v: Option<&str>,
                g: Option<&str>| {
        rows.push(format!("({}, {}, {}, {}, {}, {})", rows.len(), text(o), text(p), text(s), text(v), text(g)));
    };
    for s in 0..sources {
        let name = format!("s{s}{}", rng.pick(&names));
        let kind = rng.below(4); // 0, 1: honest, 2: noisy, 3: copies source 0
        let group = match (kind, rng.below(4)) {
            (3, 0..=2) => Some("ring".to_owned()),
            (_, 0) => Some(format!("g{}", rng.below(3))),
            _ => None,
        };
        let accuracy = [90, 70, 30, 95][kind as usize];
        for (i, o) in objects.iter().enumerate() {
            for (j, p) in properties.iter().enumerate() {
                if rng.chance(25) {
                    continue;
                }
                let v = if kind == 3 {
                    // The copy of source 0 is the truth on even objects, an agreed error on odd.
                    if i % 2 == 0 {
                        truth[i][j]
                    } else {
                        "copied"
                    }
                } else if rng.chance(accuracy) {
                    truth[i][j]
                } else {
                    rng.pick(&alphabet)
                };
                push(&mut rows, Some(o), Some(p), Some(&name), Some(v), group.as_deref());
                if rng.chance(5) {
                    // The same claim again, sometimes with another group: the last one counts.
                    let g = if rng.chance(50) { Some("renamed") } else { group.as_deref() };
                    push(&mut rows, Some(o), Some(p), Some(&name), Some(v), g);
                }
            }
        }
    }
    for (i, o) in objects.iter().enumerate() {
        for (j, p) in properties.iter().enumerate() {
            if rng.chance(15) {
                let v = if rng.chance(70) { truth[i][j] } else { "nobody" };
                push(&mut rows, Some(o), Some(p), None, Some(v), rng.chance(20).then_some("ignored"));
            }
        }
    }
    if rng.chance(30) {
        push(&mut rows, Some("unclaimed"), Some("p"), None, Some("v"), None);
    }
    for _ in 0..rng.below(3) {
        let o = Some(objects[0].as_str());
        match rng.below(3) {
            0 => push(&mut rows, None, Some("p"), Some("s"), Some("v"), None),
            1 => push(&mut rows, o, None, Some("s"), Some("v"), None),
            _ => push(&mut rows, o, Some("p"), Some("s"), None, Some("g")),
        }
    }
    rows
}

fn discover(rows: &[String]) -> String {
    format!(
        "SELECT resi.discover_truth(o, p, s, v, g ORDER BY ord)::text FROM (VALUES {}) AS t(ord, o, p, s, v, g)",
        rows.join(", ")
    )
}

#[test]
fn discovery_over_random_small_worlds_is_the_same_jsonb_as_native() {
    let (native, portable) = databases("tt_worlds");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5eed_0005);
    let mut converged = 0;
    for round in 0..60 {
        let rows = world(&mut rng);
        let result = same(&mut n, &mut p, &discover(&rows)).unwrap_or_else(|e| panic!("world {round}: {e:?}"));
        converged += usize::from(result[0].contains("\"converged\": true"));
    }
    assert!(converged > 10, "{converged}");
}

#[test]
fn results_do_not_depend_on_the_session_settings() {
    let (native, portable) = databases("tt_settings");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5eed_0006);
    let rows = world(&mut rng);
    let expected = outcome(&mut n, &discover(&rows)).unwrap();
    p.batch_execute("SET extra_float_digits = 0; SET standard_conforming_strings = off; SET search_path = pg_catalog")
        .unwrap();
    assert_eq!(outcome(&mut p, &discover(&rows)).unwrap(), expected);
    n.batch_execute("SET extra_float_digits = 0; SET standard_conforming_strings = off").unwrap();
    same(&mut n, &mut p, "SELECT encode(resi.listing_tile_layer('7', 1.5, 2.5, 3, 4, 0.1, 4, 8, 7), 'hex')").unwrap();
}

#[test]
fn discovery_without_rows_or_with_only_skipped_rows_matches_native() {
    let (native, portable) = databases("tt_empty");
    let (mut n, mut p) = (native.client(), portable.client());
    let base = "SELECT resi.discover_truth(o, p, s, v, g)::text FROM (VALUES ('o', 'p', 's', NULL::text, 'g'), (NULL, 'p', 's', 'v', NULL)) t(o, p, s, v, g)";
    assert_eq!(same(&mut n, &mut p, &format!("{base} WHERE false")).unwrap(), ["∅"]);
    same(&mut n, &mut p, base).unwrap();
    // Only audits: items without sources.
    same(
        &mut n,
        &mut p,
        "SELECT resi.discover_truth(o, 'p', NULL, v, NULL)::text FROM (VALUES ('b', '1'), ('a', '2'), ('a', '2')) t(o, v)",
    )
    .unwrap();
}

#[test]
fn contradictions_are_the_same_errors() {
    let (native, portable) = databases("tt_errors");
    let (mut n, mut p) = (native.client(), portable.client());
    for rows in [
        "('o', 'p', 's', 'b'), ('o', 'p', 's', 'a'), ('o', 'p', 's', 'c'), ('n', 'p', 't', 'x'), ('n', 'p', 't', 'y')",
        "('o', 'p', E'q\"uo\\\\te', E'tab\\there'), ('o', 'p', E'q\"uo\\\\te', E'new\\nline\\r'), ('o', 'p', 'x', 'ü')",
        "('o', 'p', NULL, 'a'), ('o', 'p', NULL, 'b'), ('o', 'p', 's', 'a')",
        "('o', E'\\x01', NULL, E'\\x7f'), ('o', E'\\x01', NULL, E'\\u0085é'), ('o', 'p', 's', 'a')",
        // Strings compare as bytes: f (0x66) comes before é (0xc3 0xa9), whatever the collation.
        "('é', 'p', 's', 'a'), ('é', 'p', 's', 'b'), ('f', 'p', 's', 'b'), ('f', 'p', 's', 'a')",
    ] {
        let err = same(
            &mut n,
            &mut p,
            &format!("SELECT resi.discover_truth(o, p, s, v, NULL) FROM (VALUES {rows}) t(o, p, s, v)"),
        )
        .unwrap_err();
        assert_eq!(err.code, "22023", "{err:?}");
    }
}

#[test]
fn discovery_with_weights_too_large_for_exp_matches_native() {
    // 840 agreeing sources out-vote a lone dissenter by more than exp can tell from 0 (each
    // weighs about 0.9 after 5 items; 2.5 in the first round): exp of the dissenting value's
    // score and of the unclaimed values' underflows to 0, where PostgreSQL's exp would raise.
    let (native, portable) = databases("tt_underflow");
    let (mut n, mut p) = (native.client(), portable.client());
    let query = "SELECT resi.discover_truth(o, 'p', s, CASE WHEN s = 's000' AND o = 'o0' THEN 'dissent' ELSE 't' END, NULL
                                            ORDER BY o, s)::text
                   FROM (SELECT 'o' || i AS o, 's' || lpad(j::text, 3, '0') AS s FROM generate_series(0, 4) i, generate_series(0, 839) j) x";
    let result = same(&mut n, &mut p, query).unwrap();
    let top: f64 =
        outcome(&mut n, &format!("SELECT 840 * ((({query}))::jsonb -> 'sources' -> 1 ->> 'group_weight')::float8"))
            .unwrap()[0]
            .parse()
            .unwrap();
    assert!(top > 750.0, "{top}");
    assert!(result[0].contains("\"confidence\": 1.0"), "{}", &result[0][..300]);
}

#[test]
fn discovery_over_the_flight_sample_is_the_same_jsonb_as_native() {
    let (native, portable) = databases("tt_flights");
    let (mut n, mut p) = (native.client(), portable.client());
    load_flights(&mut n);
    load_flights(&mut p);
    // 5 % of the items audited, as in tests/tests/truth.rs; the sources whose name starts with
    // `a` (aa, airtravelcenter, allegiantair, …) one group; in a fixed row order.
    let query = "WITH audits AS (
                     SELECT flight, property
                       FROM (SELECT flight, property, row_number() OVER (ORDER BY md5(flight || property)) AS n
                               FROM truth) x
                      WHERE n % 20 = 0)
                 SELECT resi.discover_truth(x.flight, x.property, x.source, x.value,
                                            CASE WHEN x.source LIKE 'a%' THEN 'a-sources' END
                                            ORDER BY x.flight, x.property, x.source, x.value)::text
                   FROM (SELECT flight, property, source, value FROM claims
                         UNION ALL
                         SELECT t.flight, t.property, NULL, t.value FROM truth t JOIN audits a USING (flight, property)) x";
    let result = same(&mut n, &mut p, query).unwrap();
    assert!(result[0].contains("\"audited\": true") && result[0].contains("\"group\": \"a-sources\""));
    println!("Flight discovery: {} characters of jsonb", result[0].len());
}
