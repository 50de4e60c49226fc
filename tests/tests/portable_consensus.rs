//! The portable consensus aggregates (sql/portable/consensus.sql) against the native ones:
//! resi.consensus_mode, resi.consensus_median, resi.consensus_listing and
//! resi.consensus_by_source over the same seeded random groups (many small, a few large) and
//! hand-picked edge cases give the same text for every output column (extra_float_digits = 3,
//! so every double is compared to the bit), the same NULLs, and the same SQLSTATE and message
//! for errors; forced parallel plans give the serial answer.
//!
//! The portable side is the whole portable edition, installed by a role without superuser;
//! the queries run as the cluster's superuser in both databases.

use postgres::{Client, SimpleQueryMessage};
use resi_e2e::{Edition, TestDatabase};

/// What a query gives: its rows as text (columns joined by `|`, NULL as `∅`), or its error as
/// `SQLSTATE: message`.
type Answer = Result<Vec<String>, String>;

fn answer(client: &mut Client, sql: &str) -> Answer {
    match client.simple_query(sql) {
        Ok(messages) => Ok(messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|i| row.get(i).unwrap_or("∅")).collect::<Vec<_>>().join("|"))
                }
                _ => None,
            })
            .collect()),
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
            Err(format!("{}: {}", db.code().code(), db.message()))
        }
    }
}

/// A native database and a portable one, both with `setup` run and extra_float_digits = 3.
struct Editions {
    native: Client,
    portable: Client,
    _databases: (TestDatabase, TestDatabase),
}

impl Editions {
    fn new(label: &str, setup: &str) -> Editions {
        let native_db = TestDatabase::with_edition(&format!("{label}_n"), Edition::Native);
        let portable_db = TestDatabase::with_edition(&format!("{label}_p"), Edition::Portable);
        let mut native = native_db.client();
        let mut portable = portable_db.client();
        for client in [&mut native, &mut portable] {
            client.batch_execute("SET extra_float_digits = 3").unwrap();
            client.batch_execute(setup).unwrap();
        }
        Editions { native, portable, _databases: (native_db, portable_db) }
    }

    /// Both editions' answers to `sql`, asserted equal; the answer.
    fn same(&mut self, sql: &str) -> Answer {
        let native = answer(&mut self.native, sql);
        let portable = answer(&mut self.portable, sql);
        if native != portable {
            let show = |a: &Answer| match a {
                Ok(rows) => rows.join("\n"),
                Err(e) => format!("ERROR {e}"),
            };
            let (n, p) = (show(&native), show(&portable));
            let first = n.lines().zip(p.lines()).find(|(a, b)| a != b);
            panic!("{sql}\nfirst difference: {first:?}\n--- native:\n{n}\n--- portable:\n{p}");
        }
        native
    }

    /// [`Editions::same`] of a query that must succeed with at least one row.
    fn same_rows(&mut self, sql: &str) -> Vec<String> {
        let rows = self.same(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(!rows.is_empty(), "{sql}: no rows");
        rows
    }
}

/// xorshift64: the same rows on every run. `RESI_TEST_SEED` (an integer) varies every test's rows.
struct Random(u64);

impl Random {
    fn seeded(base: u64) -> Random {
        let extra: u64 = std::env::var("RESI_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        if extra != 0 {
            eprintln!("RESI_TEST_SEED={extra}");
        }
        Random((base ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15)).max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    /// A double in [0, scale).
    fn uniform(&mut self, scale: f64) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * scale
    }
}

/// A double as an exact SQL literal (shortest round-trip digits).
fn float(x: Option<f64>) -> String {
    match x {
        None => "NULL::float8".into(),
        Some(x) if x.is_nan() => "'NaN'::float8".into(),
        Some(x) if x == f64::INFINITY => "'Infinity'::float8".into(),
        Some(x) if x == f64::NEG_INFINITY => "'-Infinity'::float8".into(),
        Some(x) => format!("'{x:e}'::float8"),
    }
}

fn text(s: Option<&str>) -> String {
    match s {
        None => "NULL::text".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

fn int<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

/// `INSERT INTO table VALUES …` in chunks.
fn insert(table: &str, rows: &[String]) -> String {
    rows.chunks(500).map(|chunk| format!("INSERT INTO {table} VALUES {};\n", chunk.join(","))).collect()
}

const HALF: f64 = 1.1102230246251565e-16; // 2^-53: the smallest weight that votes

/// Weights: not voting (NULL, NaN, ≤ 0, below 2^-53), tiny and huge voting ones, exact binary
/// fractions (ties), decimal fractions that are not, and random ones.
fn weight(r: &mut Random) -> Option<f64> {
    let pool = [
        None,
        Some(f64::NAN),
        Some(0.0),
        Some(-0.0),
        Some(-1.0),
        Some(f64::NEG_INFINITY),
        Some(5e-324),
        Some(1e-300),
        Some(1e-17),
        Some(HALF),
        Some(HALF * (1.0 - f64::EPSILON / 2.0)),
        Some(HALF * (1.0 + f64::EPSILON)),
        Some(HALF * 1.5),
        Some(1e-16),
        Some(1e-9),
        Some(0.1),
        Some(0.2),
        Some(0.3),
        Some(1.0 / 3.0),
        Some(0.7),
        Some(0.25),
        Some(0.5),
        Some(0.5),
        Some(0.25),
        Some(1.0),
        Some(2.5),
        Some(123456.789),
        Some(999999999999999.9),
        Some(1e15),
    ];
    if r.below(4) == 0 {
        let scale = r.pick(&[1.0, 1e-10, 1e6, 1e15]);
        Some(r.uniform(scale))
    } else {
        r.pick(&pool)
    }
}

fn category(r: &mut Random) -> Option<&'static str> {
    r.pick(&[
        None,
        Some(""),
        Some(" "),
        Some("a"),
        Some("B"),
        Some("b"),
        Some("A"),
        Some("é"),
        Some("e\u{301}"),
        Some("ä"),
        Some("Ä"),
        Some("🏠"),
        Some("FOR_SALE"),
        Some("SOLD"),
        Some("SOLD"),
        Some("PENDING"),
        Some("it's"),
        Some("z"),
    ])
}

/// Numbers for the median: extremes (±max, subnormals, ±0), NaN and infinities (ignored),
/// values within and just outside the usual tolerances, and random ones.
fn number(r: &mut Random) -> Option<f64> {
    let pool = [
        None,
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        Some(0.0),
        Some(-0.0),
        Some(1.0),
        Some(2.0),
        Some(99.0),
        Some(100.0),
        Some(101.0),
        Some(102.0),
        Some(100000.0),
        Some(101000.0),
        Some(1e308),
        Some(-1e308),
        Some(f64::MAX),
        Some(-f64::MAX),
        Some(5e-324),
        Some(-5e-324),
        Some(1e-320),
        Some(1e-300),
        Some(9007199254740993.0),
        Some(29.7),
        Some(29.7000001),
        Some(-95.8),
    ];
    if r.below(3) == 0 {
        Some(r.uniform(200.0) - 50.0)
    } else {
        r.pick(&pool)
    }
}

/// Group sizes: many small groups and a few large ones.
fn sizes(r: &mut Random, small: usize, large: &[usize]) -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..small).map(|_| 1 + r.below(7)).collect();
    sizes.extend_from_slice(large);
    sizes
}

#[test]
fn consensus_mode_gives_the_native_answer_over_random_groups() {
    let mut r = Random::seeded(0x5eed_0001);
    let mut rows = Vec::new();
    for (g, size) in sizes(&mut r, 2500, &[3000, 2000]).into_iter().enumerate() {
        for i in 0..size {
            let value =
                if size == 2000 { Some(format!("v{}", r.below(300))) } else { category(&mut r).map(str::to_owned) };
            rows.push(format!("({g}, {i}, {}, {})", text(value.as_deref()), float(weight(&mut r))));
        }
    }
    let setup =
        format!("CREATE TABLE votes (g int, i int, v text, w float8);\n{}ANALYZE votes;", insert("votes", &rows));
    let mut editions = Editions::new("pc_mode", &setup);
    let grouped = editions.same_rows("SELECT g, resi.consensus_mode(v, w) FROM votes GROUP BY g ORDER BY g");
    assert!(grouped.iter().any(|row| row.ends_with("|∅")), "some group without a vote");
    // The variant with a state of a concrete type (native: resi.consensus_mode_tally) too.
    let distributed = "SELECT g, resi.distributed_consensus_mode(v, w) FROM votes GROUP BY g ORDER BY g";
    assert_eq!(editions.same_rows(distributed), grouped);
    editions.same_rows("SELECT resi.consensus_mode(v, w) FROM votes");
    // The values compare as bytes whatever the collation of the input, a case-insensitive one too.
    editions.native.batch_execute(CASE_INSENSITIVE).unwrap();
    editions.portable.batch_execute(CASE_INSENSITIVE).unwrap();
    editions.same_rows("SELECT g, resi.consensus_mode(v COLLATE case_insensitive, w) FROM votes GROUP BY g ORDER BY g");
    editions.same_rows("SELECT g, resi.consensus_mode(v COLLATE \"en-x-icu\", w) FROM votes GROUP BY g ORDER BY g");
    // As a window aggregate: the final function runs on a growing frame.
    let window = "SELECT g, i, resi.consensus_mode(v, w) OVER (PARTITION BY g ORDER BY i) FROM votes WHERE g < 300 ORDER BY g, i";
    let running = editions.same_rows(window);
    assert_eq!(editions.same_rows(&window.replace("resi.consensus_mode", "resi.distributed_consensus_mode")), running);
}

const CASE_INSENSITIVE: &str =
    "CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false)";

#[test]
fn consensus_median_gives_the_native_answer_over_random_groups() {
    let mut r = Random::seeded(0x5eed_0002);
    let tolerances = [
        None,
        Some(0.0),
        Some(-0.0),
        Some(1e-6),
        Some(0.01),
        Some(0.05),
        Some(0.5),
        Some(1.0),
        Some(2.0),
        Some(1e10),
        Some(1e300),
        Some(1e-300),
        Some(5e-324),
        Some(0.16666666666666666),
        Some(0.75),
    ];
    let mut rows = Vec::new();
    for (g, size) in sizes(&mut r, 1500, &[3000, 1500]).into_iter().enumerate() {
        let tolerance = r.pick(&tolerances);
        for i in 0..size {
            let value = if size == 1500 { Some(r.below(400) as f64 * 0.5) } else { number(&mut r) };
            rows.push(format!("({g}, {i}, {}, {}, {})", float(value), float(weight(&mut r)), float(tolerance)));
        }
    }
    let setup = format!(
        "CREATE TABLE numbers (g int, i int, v float8, w float8, t float8);\n{}ANALYZE numbers;",
        insert("numbers", &rows)
    );
    let mut editions = Editions::new("pc_median", &setup);
    let grouped = editions.same_rows("SELECT g, resi.consensus_median(v, w, t) FROM numbers GROUP BY g ORDER BY g");
    assert!(grouped.iter().any(|row| row.ends_with("|∅")), "some group without a vote");
    // The variant with a state of a concrete type (native: resi.consensus_median_tally) too.
    let distributed = "SELECT g, resi.distributed_consensus_median(v, w, t) FROM numbers GROUP BY g ORDER BY g";
    assert_eq!(editions.same_rows(distributed), grouped);
    editions.same_rows("SELECT resi.consensus_median(v, w, 0.02) FROM numbers");
    let window = "SELECT g, i, resi.consensus_median(v, w, t) OVER (PARTITION BY g ORDER BY i) FROM numbers WHERE g < 300 ORDER BY g, i";
    let running = editions.same_rows(window);
    assert_eq!(
        editions.same_rows(&window.replace("resi.consensus_median", "resi.distributed_consensus_median")),
        running
    );
}

/// Claims of listing `g`: uris that name it, another zpid or none, prices up to the bigint
/// limits, bathrooms at rounding halves and out of range, coordinates at the extremes.
fn claim(r: &mut Random, g: usize) -> Vec<String> {
    let zpid = g.to_string();
    let uri = match r.below(9) {
        0 => None,
        1 => Some(format!("https://www.zillow.com/homedetails/12-Main-St/{zpid}_zpid/")),
        2 => Some(format!("https://z/{}_zpid/", g + 1)),
        3 => Some(format!("/a_zpid/{zpid}_zpid")),
        4 => Some(format!("x{zpid}_zpid_99_zpid")),
        5 => Some(format!("{}{zpid}_zpid", "1".repeat(20))),
        6 => Some("١٢_zpid".to_owned()),
        7 => Some(String::new()),
        _ => Some(format!("https://z/{zpid}_zpid/")),
    };
    let price = r.pick(&[
        None,
        Some(100_000i64),
        Some(100_500),
        Some(101_000),
        Some(99_000),
        Some(250_000),
        Some(0),
        Some(-5),
        Some(i64::MAX),
        Some(i64::MAX - 1),
        Some(i64::MIN),
        Some(9_007_199_254_740_993),
    ]);
    let bedrooms = r.pick(&[None, Some(0i32), Some(1), Some(2), Some(3), Some(3), Some(-1), Some(i32::MAX)]);
    let bathrooms = if r.below(4) == 0 {
        Some(r.uniform(101.0) - 0.5)
    } else {
        r.pick(&[
            None,
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(-0.0),
            Some(0.0),
            Some(2.25),
            Some(2.35),
            Some(2.45),
            Some(0.05),
            Some(0.04999),
            Some(9.95),
            Some(99.9),
            Some(99.94),
            Some(99.95),
            Some(-0.5),
            Some(1.0 / 3.0),
            Some(1e-300),
        ])
    };
    let living_area = r.pick(&[
        None,
        Some(1500i32),
        Some(1520),
        Some(1480),
        Some(1531),
        Some(0),
        Some(-3),
        Some(i32::MAX),
        Some(i32::MIN),
    ]);
    let days = r.pick(&[None, Some(0i32), Some(1), Some(5), Some(10), Some(11), Some(100)]);
    let coordinate = |r: &mut Random, base: f64| {
        r.pick(&[
            None,
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(base),
            Some(base),
            Some(base + 1e-7),
            Some(base * (1.0 + 1e-6)),
            Some(-0.0),
            Some(1e308),
            Some(-f64::MAX),
            Some(5e-324),
        ])
    };
    let latitude = coordinate(r, 29.7);
    let longitude = coordinate(r, -95.8);
    vec![
        text(Some(&zpid)),
        text(uri.as_deref()),
        int(price),
        text(category(r)),
        int(bedrooms),
        float(bathrooms),
        int(living_area),
        text(category(r)),
        text(r.pick(&[None, Some("FOR_SALE"), Some("SOLD"), Some("PENDING")])),
        int(days),
        text(r.pick(&[None, Some("77494"), Some("77450"), Some("")])),
        text(category(r)),
        text(r.pick(&[None, Some("TX"), Some("tx"), Some("CA")])),
        float(latitude),
        float(longitude),
    ]
}

const CLAIM_COLUMNS: &str = "zpid text, uri text, price bigint, address text, bedrooms int, bathrooms float8, \
    living_area int, home_type text, home_status text, days_on_zillow int, zip_code text, city text, state text, \
    latitude float8, longitude float8";
const CLAIM_ARGUMENTS: &str = "zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, \
    days_on_zillow, zip_code, city, state, latitude, longitude";

#[test]
fn consensus_listing_gives_the_native_answer_over_random_listings() {
    let mut r = Random::seeded(0x5eed_0003);
    let mut rows = Vec::new();
    for (g, size) in sizes(&mut r, 1000, &[200, 120]).into_iter().enumerate() {
        for i in 0..size {
            let mut columns = vec![g.to_string(), i.to_string()];
            columns.extend(claim(&mut r, g));
            columns.push(float(weight(&mut r)));
            rows.push(format!("({})", columns.join(", ")));
        }
    }
    let setup = format!(
        "CREATE TABLE claims (g int, i int, {CLAIM_COLUMNS}, w float8);\n{}ANALYZE claims;",
        insert("claims", &rows)
    );
    let mut editions = Editions::new("pc_listing", &setup);
    let listings = editions.same_rows(&format!(
        "SELECT g, resi.consensus_listing({CLAIM_ARGUMENTS}, w) FROM claims GROUP BY g ORDER BY g"
    ));
    assert!(listings.iter().any(|row| row.ends_with("|∅")), "some listing without a vote");
    assert!(listings.iter().any(|row| row.contains("_zpid")), "some uri voted");
    // The columns one by one, the way callers read them.
    editions.same_rows(&format!(
        "SELECT g, i, (l).uri, (l).price, (l).bathrooms, (l).consensus_score, (l).field_consensus::text
           FROM (SELECT g, i, resi.consensus_listing({CLAIM_ARGUMENTS}, w) OVER (PARTITION BY g ORDER BY i) AS l
                   FROM claims WHERE g < 200) s
          ORDER BY g, i"
    ));
}

#[test]
fn consensus_by_source_gives_the_native_answer_over_random_listings() {
    let mut r = Random::seeded(0x5eed_0004);
    let mut rows = Vec::new();
    let members = ["g1", "g2", "a", "B", "é", "m1", "m2", "m3", "m4", "m5", "m6", "m7"];
    let hotkeys = ["a", "B", "b", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "é"];
    for (g, size) in sizes(&mut r, 1000, &[150, 90]).into_iter().enumerate() {
        for i in 0..size {
            let mut columns = vec![g.to_string(), i.to_string()];
            columns.extend(claim(&mut r, g));
            let trust = r.pick(&[
                None,
                Some(f64::NAN),
                Some(0.0),
                Some(-0.5),
                Some(f64::NEG_INFINITY),
                Some(0.1),
                Some(0.25),
                Some(0.25),
                Some(0.3),
                Some(0.5),
                Some(1.0),
                Some(1e-300),
                Some(1e-320),
                Some(1e15),
            ]);
            columns.push(float(trust));
            columns.push(text(Some(r.pick(&members))));
            columns.push(text(Some(r.pick(&hotkeys))));
            columns.push(int(r.pick(&[None, None, Some(1i64), Some(2), Some(7), Some(-3)])));
            // Upload times with ties, a few microseconds apart, and hours apart (recency).
            let at = r.pick(&["0", "0", "1 microsecond", "3 seconds", "1 hour", "2 hours", "5 hours", "30 hours"]);
            columns.push(format!("timestamptz '2025-01-01 00:00:00+00' + interval '{at}'"));
            rows.push(format!("({})", columns.join(", ")));
        }
    }
    let setup = format!(
        "CREATE TABLE claims (g int, i int, {CLAIM_COLUMNS}, trust float8, member text, hotkey text, signature bigint, at timestamptz);
         {}ANALYZE claims;",
        insert("claims", &rows)
    );
    let mut editions = Editions::new("pc_sources", &setup);
    let listings = editions.same_rows(&format!(
        "SELECT g, resi.consensus_by_source({CLAIM_ARGUMENTS}, trust, member, hotkey, signature, at ORDER BY i)
           FROM claims GROUP BY g ORDER BY g"
    ));
    assert!(listings.iter().any(|row| row.ends_with("|(0,)")), "some listing without a voting source");
    let three = answer(
        &mut editions.native,
        &format!(
            "SELECT count(*) FROM (SELECT resi.consensus_by_source({CLAIM_ARGUMENTS}, trust, member, hotkey, signature, at) s
                                     FROM claims GROUP BY g) t
              WHERE (((s).listing).field_consensus->'home_status'->>'voters')::int >= 3"
        ),
    );
    assert_ne!(three, Ok(vec!["0".to_owned()]), "some field with three voting sources");
    // The order of the claims only matters among claims equal in everything the order looks at.
    editions.same_rows(&format!(
        "SELECT g, resi.consensus_by_source({CLAIM_ARGUMENTS}, trust, member, hotkey, signature, at ORDER BY i DESC)
           FROM claims GROUP BY g ORDER BY g"
    ));
}

/// Doubles the shortest-digit writers disagree on: random bit patterns over the whole range,
/// integers above 2^53 (where float8out can need one more digit than ryu_js), and values that
/// lie exactly halfway between two shortest candidates (where Rust's Display rounds up).
fn awkward_double(r: &mut Random) -> f64 {
    match r.below(5) {
        0 => loop {
            let x = f64::from_bits(r.next() >> 1);
            if x.is_finite() {
                break x;
            }
        },
        1 => (r.next() >> 11) as f64 * [1.0, 2.0, 4.0, 1024.0][r.below(4)],
        2 => (1u64 << 49) as f64 + r.below(1 << 20) as f64 + [0.25, 0.75, 0.5, 0.125][r.below(4)],
        3 => 0.5 + r.below(1 << 16) as f64 * 2f64.powi(-17),
        _ => r.uniform(1e20),
    }
}

#[test]
fn doubles_are_written_as_the_native_edition_writes_them() {
    let mut r = Random::seeded(0x5eed_0005);
    let values: Vec<f64> = (0..3000).map(|_| awkward_double(&mut r)).collect();
    let rows: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("({i}, {})", float(Some(*v)))).collect();
    let setup = format!("CREATE TABLE doubles (i int, x float8);\n{}", insert("doubles", &rows));
    let mut editions = Editions::new("pc_doubles", &setup);
    // In field_consensus (ryu_js's digits): as a coordinate, a weight and a price.
    editions.same_rows(
        "SELECT i, (resi.consensus_listing('1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                           x, NULL, least(x, 1e15))).field_consensus::text
           FROM doubles GROUP BY i ORDER BY i",
    );
    editions.same_rows(
        "SELECT i, (resi.consensus_listing('1', NULL, (x / 1e4)::bigint, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                           NULL, NULL, NULL, NULL, 1)).field_consensus::text
           FROM doubles WHERE x < 9e22 GROUP BY i ORDER BY i",
    );
    // In messages (Rust's Display): a weight above 1e15, a negative tolerance.
    for x in values.iter().take(400) {
        let _ = editions
            .same(&format!("SELECT resi.consensus_mode('a', {})", float(Some(x.max(1e15 * (1.0 + f64::EPSILON))))));
        let _ = editions.same(&format!("SELECT resi.consensus_median(1, 1, {})", float(Some(-x))));
    }
}

/// Force a parallel plan with two workers that only aggregate partially (the leader combines).
const FORCE_PARALLEL: &str = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
    SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
    SET parallel_leader_participation = off;";
const FORCE_SERIAL: &str = "SET max_parallel_workers_per_gather = 0;";

#[test]
fn parallel_plans_give_the_serial_and_native_answer() {
    let setup = "
        CREATE TABLE attestations AS
        SELECT (i % 400)::text AS zpid,
               (ARRAY['FOR_SALE', 'SOLD', 'PENDING', NULL, 'é'])[1 + (i * 7919) % 5] AS status,
               CASE WHEN i % 97 = 0 THEN 'NaN'::float8 WHEN i % 89 = 0 THEN NULL WHEN i % 83 = 0 THEN 0
                    ELSE ((i * 104729) % 40 + 1) / 41.0 END AS trust,
               CASE WHEN i % 53 = 0 THEN 1e9 WHEN i % 61 = 0 THEN 'NaN' ELSE 300000 + ((i * 31) % 50) * 1000 END::float8 AS price,
               format('https://z/%s_zpid/', CASE WHEN i % 3 = 0 THEN i % 700 ELSE i END) AS uri,
               1 + i % 4 AS bedrooms, (i % 9) * 0.55::float8 AS bathrooms, 29.7 + (i % 5) * 1e-7::float8 AS latitude
          FROM generate_series(1::bigint, 30000) i;
        ANALYZE attestations;";
    let mut editions = Editions::new("pc_parallel", setup);
    let queries = [
        "SELECT resi.consensus_mode(status, trust), resi.consensus_median(price, trust, 0.02) FROM attestations",
        "SELECT zpid, resi.consensus_mode(status, trust), resi.consensus_median(price, trust, 0.02)
           FROM attestations GROUP BY zpid ORDER BY zpid",
        "SELECT zpid, resi.consensus_listing(zpid, uri, nullif(price, 'NaN')::bigint, NULL, bedrooms::int, bathrooms, NULL::int, NULL, status,
                                             NULL::int, NULL, NULL, NULL, latitude, NULL::float8, trust)
           FROM attestations GROUP BY zpid ORDER BY zpid",
    ];
    let mut serial = Vec::new();
    for query in queries {
        editions.native.batch_execute(FORCE_SERIAL).unwrap();
        editions.portable.batch_execute(FORCE_SERIAL).unwrap();
        serial.push(editions.same_rows(query));
    }
    editions.portable.batch_execute(FORCE_PARALLEL).unwrap();
    for (query, serial) in queries.iter().zip(&serial) {
        let plan =
            answer(&mut editions.portable, &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {query}"))
                .unwrap()
                .join("\n");
        assert!(plan.contains("Partial"), "{plan}");
        assert!(plan.contains("Workers Launched: 2"), "workers did not run:\n{plan}");
        assert_eq!(&answer(&mut editions.portable, query).unwrap(), serial, "{query}");
    }
}

#[test]
fn edge_cases_give_the_native_answer() {
    let mut editions = Editions::new("pc_edges", "");
    let mode = |rows: &str| format!("SELECT resi.consensus_mode(v, w) FROM (VALUES {rows}) t(v, w)");
    let median = |rows: &str, tolerance: &str| {
        format!("SELECT resi.consensus_median(v, w, {tolerance}) FROM (VALUES {rows}) t(v, w)")
    };
    let cases = [
        // Empty input, all weights not voting, one voter.
        "SELECT resi.consensus_mode(v, w) FROM (SELECT 'a'::text, 1::float8 WHERE false) t(v, w)".to_owned(),
        "SELECT resi.consensus_median(v, w, 0) FROM (SELECT 1::float8, 1::float8 WHERE false) t(v, w)".to_owned(),
        format!("SELECT resi.consensus_listing({}) FROM (SELECT 1 WHERE false) t", ["NULL"; 16].join(", ")),
        format!("SELECT resi.consensus_by_source({}, 'm', 'h', NULL, now()) FROM (SELECT 1 WHERE false) t", ["NULL"; 16].join(", ")),
        mode("('a', NULL::float8), ('a', 'NaN'), ('a', 0), ('a', '-0'), ('a', -1), ('a', '-Infinity'), ('a', 1e-17), (NULL, 5)"),
        mode("('a', 1.1102230246251565e-16::float8)"),
        mode("('a', 1.1102230246251564e-16::float8)"),
        mode("('', 1::float8)"),
        mode("('🏠', 0.1::float8), ('é', 0.1), ('e\u{301}', 0.1)"),
        mode("('b', 1::float8), ('a', 0.5), ('a', 0.5)"),
        mode("('b', 1::float8), ('a', 1), ('c', 1), ('B', 1)"),
        mode("('x', 1e15::float8), ('y', 1e15), ('y', 5e-324), ('z', 1e-300)"),
        mode("('x', 0.1::float8), ('x', 0.2), ('y', 0.3)"),
        median("(1::float8, 1::float8), (2, 1), (3, 1), (4, 1)", "0"),
        median("(5::float8, 1::float8), (1, 1), (3, 1)", "NULL"),
        median("(NULL::float8, 1::float8), ('NaN', 9), ('Infinity', 1), ('-Infinity', 2), (7, 2)", "0.1"),
        median("('-0'::float8, 1::float8), (0, 1), (1e-300, 1), ('-0', 1)", "0.5"),
        median("(1e308::float8, 1::float8), (-1e308, 1), ('1.7976931348623157e308', 1), ('-1.7976931348623157e308', 1)", "2"),
        median("(1e308::float8, 1::float8), (1.7e308, 1), (-1e308, 1)", "1.7976931348623157"),
        median("(1e308::float8, 1::float8), (1.7e308, 1)", "1e300"),
        median("(1e-320::float8, 1::float8), (2e-320, 1)", "1e-6"),
        // Near 2^-1075: the tolerance bound rounds to 0 or to the smallest subnormal.
        median("(5e-324::float8, 1::float8), (1e-323, 1)", "0.5"),
        median("(5e-324::float8, 1::float8), (1e-323, 1)", "0.75"),
        median("(5e-324::float8, 1::float8), (1e-323, 1)", "0.25"),
        median("(1.5e-323::float8, 1::float8), (1e-323, 1), (2e-323, 1)", "0.16666666666666666"),
        median("(1.5e-323::float8, 1::float8), (1e-323, 1), (2e-323, 1)", "0.16666666666666669"),
        median("(1.5e-323::float8, 1::float8), (1e-323, 1), (2e-323, 1)", "0.3333333333333333"),
        median("(100::float8, 1e-300::float8), (101, 1e15), (99, 1e15)", "0.01"),
        // Window use: the final function on a growing frame.
        "SELECT resi.consensus_median(v, 1, 0) OVER (ORDER BY i) FROM (VALUES (1, 5::float8), (2, 1), (3, 9), (4, 2)) t(i, v)".to_owned(),
        // Errors: SQLSTATE and message.
        mode("('a', 'Infinity'::float8)"),
        mode("(NULL, 'Infinity'::float8)"),
        mode("('a', 1e300::float8)"),
        mode("('a', 1.0000000000000002e15::float8)"),
        mode("('a', 1000000000000000.1::float8)"),
        median("(1::float8, 1::float8)", "'NaN'"),
        median("(1::float8, 1::float8)", "-0.1"),
        median("(1::float8, 1::float8)", "'Infinity'"),
        median("(1::float8, 1::float8)", "'-Infinity'"),
        median("(1::float8, 1::float8)", "'-0'"),
        median("(1::float8, 1::float8)", "-1e-320"),
        "SELECT resi.consensus_median(v, 1, t) FROM (VALUES (1::float8, 0.1::float8), (2, 0.2)) x(v, t)".to_owned(),
        "SELECT resi.consensus_median(v, 1, t) FROM (VALUES (1::float8, NULL::float8), (2, 0)) x(v, t)".to_owned(),
        "SELECT resi.consensus_median(v, 1, t) FROM (VALUES (1::float8, NULL::float8), (2, 1e-7)) x(v, t)".to_owned(),
        "SELECT resi.consensus_median(v, w, 0) FROM (VALUES (NULL::float8, 'Infinity'::float8), ('NaN', 'Infinity')) x(v, w)".to_owned(),
        median("(1::float8, 'Infinity'::float8)", "0"),
        median("(1::float8, 2e15::float8)", "0"),
    ];
    for case in &cases {
        let _ = editions.same(case);
    }
}

#[test]
fn listing_edge_cases_give_the_native_answer() {
    let mut editions = Editions::new("pc_listing_edges", "");
    let listing = |claims: &str| {
        format!("SELECT resi.consensus_listing({CLAIM_ARGUMENTS}, w) FROM (VALUES {claims}) t({}, w)", CLAIM_ARGUMENTS)
    };
    let one = |fields: &str, w: &str| {
        listing(&format!(
            "('1'::text, NULL::text, NULL::bigint, NULL::text, NULL::int, NULL::float8, NULL::int, NULL::text, NULL::text, NULL::int, NULL::text, NULL::text, NULL::text, NULL::float8, NULL::float8, {w}::float8), ({fields}, {w})"
        ))
    };
    let cases = [
        one("'1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'1', NULL, 9223372036854775807, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "0.5"),
        one("'1', NULL, -9223372036854775808, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "0.5"),
        one("'1', NULL, 1152921504606846977, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "0.5"),
        one("'1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1e-7, '1.5e20'", "0.1"),
        one("'1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 5e-324, '-1.7976931348623157e308'", "0.1"),
        one("'12', 'x0123_zpid_12_zpid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'0123', 'x0123_zpid_99_zpid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'123456789012345678901', '123456789012345678901_zpid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'12345678901234567890', '12345678901234567890_zpid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'5', 'a_zpid5_zpid_zpid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'5', '5_ZPID', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'', '_zpid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1"),
        one("'1', NULL, NULL, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN', 'Infinity'", "1"),
        one("'1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "'NaN'"),
        one("'1', NULL, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "'Infinity'"),
        one("'1', NULL, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1e300"),
        one("'1', NULL, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", "1e-300"),
        one("'1', NULL, 5, 'x', 2, 2.45, 1000, 'a', 'b', 3, 'z', 'c', 's', 1, 2", "5e-324"),
        // Bathrooms round as round(v::numeric, 1) does, halves included, over a sweep.
        "SELECT v, (resi.consensus_listing('1', NULL, NULL, NULL, NULL, v, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1)).bathrooms
               FROM (SELECT i / 100.0::float8 FROM generate_series(-10, 10010) i
                     UNION ALL SELECT i * 0.05::float8 FROM generate_series(0, 2000) i
                     UNION ALL SELECT 1.0 / i FROM generate_series(1, 500) i) t(v)
              GROUP BY v ORDER BY v".to_owned(),
    ];
    for case in &cases {
        let _ = editions.same(case);
    }
}

#[test]
fn consensus_by_source_edge_cases_give_the_native_answer() {
    let mut editions = Editions::new("pc_sources_edges", "");
    let sources = |claims: &str| {
        format!(
            "SELECT resi.consensus_by_source('1', NULL, price, NULL, NULL, NULL, NULL, NULL, status, NULL, NULL, NULL, NULL, NULL, NULL,
                                             trust, member, hotkey, signature,
                                             CASE WHEN at = 'Infinity' THEN 'infinity'::timestamptz WHEN at = '-Infinity' THEN '-infinity'
                                                  ELSE timestamptz '2025-01-01 00:00+00' + at * interval '1 hour' END ORDER BY i)
               FROM (VALUES {claims}) t(i, price, status, trust, member, hotkey, signature, at)"
        )
    };
    let cases = [
        // A group votes once, with its heaviest member's claim.
        sources(
            "(1, 200::bigint, 'SOLD', 0.3::float8, 'g', 'a', NULL::bigint, 1::float8), (2, 200, 'SOLD', 0.4, 'g', 'b', NULL, 2), (3, 200, 'SOLD', 0.2, 'g', 'c', NULL, 3), (4, 100, 'FOR_SALE', 0.5, 'x', 'x', NULL, 1)",
        ),
        // Copies vote for the source of the earliest upload; ties on time go to the smaller hotkey as bytes.
        sources(
            "(1, 200::bigint, 'SOLD', 0.2::float8, 'x', 'x', 7::bigint, 1::float8), (2, 200, 'SOLD', 0.3, 'y', 'y', 7, 2), (3, 200, 'SOLD', 0.3, 'z', 'z', 7, 3), (4, 100, 'FOR_SALE', 0.25, 'w', 'w', NULL, 1)",
        ),
        sources(
            "(1, 200::bigint, 'SOLD', 0.3::float8, 'a', 'a', 7::bigint, 1::float8), (2, 200, 'SOLD', 0.3, 'B', 'B', 7, 1), (3, 100, 'FOR_SALE', 0.3, 'a', 'a2', NULL, 1)",
        ),
        // Older claims give way by their age; zero, NaN and NULL trust do not vote (NULL leads its source).
        sources(
            "(1, 200::bigint, 'SOLD', 0.3::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 100, 'FOR_SALE', 0.1, 'y', 'y', NULL, 4)",
        ),
        sources(
            "(1, 200::bigint, 'SOLD', 0::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 100, 'FOR_SALE', 0.1, 'y', 'y', NULL, 1)",
        ),
        sources(
            "(1, 200::bigint, 'SOLD', 'NaN'::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 100, 'FOR_SALE', 0.1, 'x', 'y', NULL, 1), (3, 100, 'FOR_SALE', NULL, 'z', 'z', NULL, 1), (4, 150, 'SOLD', 0.5, 'z', 'z2', NULL, 1)",
        ),
        sources(
            "(1, 200::bigint, 'SOLD', 1e-320::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 100, 'FOR_SALE', '-Infinity', 'y', 'y', NULL, 1)",
        ),
        sources(
            "(1, 200::bigint, 'SOLD', 1e15::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 100, 'FOR_SALE', 1e15, 'y', 'y', NULL, 1000)",
        ),
        // An upload time of infinity: natively the largest int64 (-infinity overflows the native
        // subtraction: a panic in a debug build, wrapping around in a release build, as here).
        sources("(1, 100::bigint, 'SOLD', 0.5::float8, 'a', 'a', NULL::bigint, 'Infinity'::float8), (2, 200, 'FOR_SALE', 0.4, 'b', 'b', NULL, 0)"),
        // A single voter; every claim without voting weight.
        sources("(1, 200::bigint, 'SOLD', 0.5::float8, 'x', 'x', NULL::bigint, 0::float8)"),
        sources(
            "(1, 200::bigint, 'SOLD', NULL::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 200, 'SOLD', -1, 'y', 'y', NULL, 0)",
        ),
        // Errors.
        sources("(1, 200::bigint, 'SOLD', 'Infinity'::float8, 'x', 'x', NULL::bigint, 0::float8)"),
        sources(
            "(1, 200::bigint, 'SOLD', 1e300::float8, 'x', 'x', NULL::bigint, 0::float8), (2, 200, 'SOLD', 0.5, 'y', 'y', NULL, 100)",
        ),
        sources("(1, 200::bigint, 'SOLD', 0.5::float8, NULL, 'x', NULL::bigint, 0::float8)"),
        sources("(1, 200::bigint, 'SOLD', 0.5::float8, 'x', NULL, NULL::bigint, 0::float8)"),
        sources("(1, 200::bigint, 'SOLD', 0.5::float8, 'x', 'x', NULL::bigint, NULL::float8)"),
    ];
    for case in &cases {
        let _ = editions.same(case);
    }
}
