//! The portable agreement, signature and submission-quality functions (sql/portable/agreement.sql,
//! independence.sql, quality.sql) against the native extension: the same counts, field lists and
//! signatures, bit-for-bit equal scores, NULL where native gives NULL, and the same SQLSTATE and
//! message for errors. Each test loads the same seeded pseudo-random rows into a native database
//! and into one with the portable edition, runs the same queries in both and compares the text
//! of every answer.

use postgres::Client;
use resi_e2e::{scalar, Edition, TestDatabase};

/// A small deterministic generator (xorshift64*), so failures reproduce. `RESI_TEST_SEED` (an
/// integer) varies every test's rows.
struct Rng(u64);

impl Rng {
    fn seeded(base: u64) -> Rng {
        let extra: u64 = std::env::var("RESI_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        if extra != 0 {
            eprintln!("RESI_TEST_SEED={extra}");
        }
        Rng(base ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

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
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A native database and a portable one (the whole portable edition, installed by a role
/// without superuser).
fn databases(label: &str) -> (TestDatabase, TestDatabase) {
    let native = TestDatabase::with_edition(&format!("{label}_n"), Edition::Native);
    // Load the library, so that the resi.* settings are its GUCs (a SET before that would only
    // make a placeholder).
    native.client().batch_execute("SELECT resi.corroborated_fields('{}')").unwrap();
    let portable = TestDatabase::with_edition(&format!("{label}_p"), Edition::Portable);
    (native, portable)
}

/// An error as the client sees it.
#[derive(Debug, PartialEq)]
struct Failure {
    code: String,
    message: String,
}

/// Every row of a query, each row's columns as text joined by ` | ` (NULL: `∅`), or its error.
fn rows(client: &mut Client, sql: &str) -> Result<Vec<String>, Failure> {
    let result = client.query(sql, &[]).map_err(|e| {
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        Failure { code: db.code().code().to_owned(), message: db.message().to_owned() }
    })?;
    Ok(result
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<String>>(i).unwrap_or_else(|| "∅".into()))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect())
}

/// Run `sql` in both databases and require the same rows (or the same error); the rows.
fn same(native: &mut Client, portable: &mut Client, sql: &str) -> Result<Vec<String>, Failure> {
    let (n, p) = (rows(native, sql), rows(portable, sql));
    match (&n, &p) {
        (Ok(n), Ok(p)) => {
            assert_eq!(n.len(), p.len(), "{sql}: row counts differ");
            if let Some((a, b)) = n.iter().zip(p).find(|(a, b)| a != b) {
                panic!("{sql}\nnative:   {a}\nportable: {b}");
            }
        }
        _ => assert_eq!(n, p, "{sql}"),
    }
    n
}

fn execute_both(native: &mut Client, portable: &mut Client, sql: &str) {
    native.batch_execute(sql).unwrap();
    portable.batch_execute(sql).unwrap();
}

// ---------------------------------------------------------------------------------------------
// SQL literals
// ---------------------------------------------------------------------------------------------

fn text(v: Option<&str>) -> String {
    v.map_or("NULL".into(), |s| format!("'{}'", s.replace('\'', "''")))
}

fn double(v: Option<f64>) -> String {
    match v {
        None => "NULL::float8".into(),
        Some(v) if v.is_nan() => "'NaN'::float8".into(),
        Some(v) if v == f64::INFINITY => "'Infinity'::float8".into(),
        Some(v) if v == f64::NEG_INFINITY => "'-Infinity'::float8".into(),
        Some(v) => format!("'{v:?}'::float8"),
    }
}

fn integer<T: std::fmt::Display>(v: Option<T>, sql_type: &str) -> String {
    v.map_or(format!("NULL::{sql_type}"), |v| format!("'{v}'::{sql_type}"))
}

fn next_up(v: f64) -> f64 {
    if v.is_nan() || v == f64::INFINITY {
        return v;
    }
    if v == 0.0 {
        return f64::from_bits(1);
    }
    let bits = v.to_bits();
    f64::from_bits(if v > 0.0 { bits + 1 } else { bits - 1 })
}

fn next_down(v: f64) -> f64 {
    -next_up(-v)
}

// ---------------------------------------------------------------------------------------------
// Random listings and reports
// ---------------------------------------------------------------------------------------------

const TEXTS: &[&str] = &[
    "",
    "a",
    "A",
    "Katy",
    "katy",
    "Houston",
    "TX",
    "tx",
    "77494",
    "077494",
    "02134",
    "2134",
    "FOR_SALE",
    "SOLD",
    "CONDO",
    "SINGLE_FAMILY",
    "é",
    "e\u{301}",
    "🏠",
    "O'Brien",
    "back\\slash",
    "quote\"d",
    "{braces}",
    "comma,sep",
    "NULL",
    " space ",
    "tab\there",
    "ß",
    "ẞ",
    "日本",
];

/// Doubles where IEEE 754 and PostgreSQL's float8 part ways.
const SPECIAL_DOUBLES: &[f64] = &[
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    1e-310,
    -1e-310,
    2.225_073_858_507_201e-308,
    2.2250738585072014e-308,
    1e-300,
    1.0,
    -1.0,
    1e308,
    -1e308,
    f64::MAX,
    -f64::MAX,
    8.98846567431158e307,
    -8.98846567431158e307,
    29.7,
    -95.8,
];

/// A listing's fields (bathrooms as the numeric(3,1) text resi.listings holds).
#[derive(Clone, Default)]
struct Fields {
    uri: Option<String>,
    price: Option<i64>,
    address: Option<String>,
    bedrooms: Option<i32>,
    bathrooms: Option<f64>,
    bathrooms_numeric: Option<String>,
    living_area: Option<i32>,
    home_type: Option<String>,
    home_status: Option<String>,
    days_on_zillow: Option<i32>,
    zip_code: Option<String>,
    city: Option<String>,
    state: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Fields {
    /// The 14 fields as SQL literals in column order (bathrooms as a double).
    fn values(&self) -> String {
        [
            text(self.uri.as_deref()),
            integer(self.price, "bigint"),
            text(self.address.as_deref()),
            integer(self.bedrooms, "integer"),
            double(self.bathrooms),
            integer(self.living_area, "integer"),
            text(self.home_type.as_deref()),
            text(self.home_status.as_deref()),
            integer(self.days_on_zillow, "integer"),
            text(self.zip_code.as_deref()),
            text(self.city.as_deref()),
            text(self.state.as_deref()),
            double(self.latitude),
            double(self.longitude),
        ]
        .join(", ")
    }
}

fn some_text(rng: &mut Rng) -> Option<String> {
    (!rng.chance(12)).then(|| {
        if rng.chance(3) {
            "x".repeat(1 + rng.below(400) as usize)
        } else {
            rng.pick(TEXTS).to_owned()
        }
    })
}

fn some_double(rng: &mut Rng, low: f64, high: f64) -> Option<f64> {
    match rng.below(10) {
        0 => None,
        1 | 2 => Some(rng.pick(SPECIAL_DOUBLES)),
        _ => Some(low + (high - low) * rng.unit()),
    }
}

fn some_integer(rng: &mut Rng, low: i64, high: i64, extremes: &[i64]) -> Option<i64> {
    match rng.below(10) {
        0 => None,
        1 => Some(rng.pick(extremes)),
        _ => Some(low + rng.below((high - low + 1) as u64) as i64),
    }
}

/// A listing as resi.listings would hold it.
fn listing(rng: &mut Rng, id: usize) -> Fields {
    let bathrooms_numeric = match rng.below(10) {
        0 => None,
        1 => Some(rng.pick(&["NaN", "99.9", "-99.9", "0.0", "-0.1", "0.1"]).to_owned()),
        2 => Some(format!("{:.1}", rng.below(1999) as f64 / 10.0 - 99.9)),
        _ => Some(format!("{:.1}", rng.below(100) as f64 / 10.0)),
    };
    let i32_extremes = [i32::MIN as i64, i32::MAX as i64, 0, -1];
    Fields {
        uri: (!rng.chance(15)).then(|| format!("https://www.zillow.com/homedetails/x/{id}_zpid/")),
        price: some_integer(rng, 1_000, 2_000_000, &[i64::MIN, i64::MAX, 0, -1, 100_000, 1]),
        address: some_text(rng),
        bedrooms: some_integer(rng, 0, 6, &i32_extremes).map(|v| v as i32),
        bathrooms: bathrooms_numeric.as_deref().map(|s| s.parse().unwrap()),
        bathrooms_numeric,
        living_area: some_integer(rng, 300, 6_000, &i32_extremes).map(|v| v as i32),
        home_type: some_text(rng),
        home_status: some_text(rng),
        days_on_zillow: some_integer(rng, 0, 400, &i32_extremes).map(|v| v as i32),
        zip_code: some_text(rng),
        city: some_text(rng),
        state: some_text(rng),
        latitude: some_double(rng, 25.0, 49.0),
        longitude: some_double(rng, -125.0, -67.0),
    }
}

/// An integer report near `c`: equal, or at, inside and outside the tolerance of ppm millionths.
fn near_integer(rng: &mut Rng, c: i64, ppm: i64, low: i64, high: i64) -> i64 {
    let edge = (c as i128).abs() * ppm as i128 / 1_000_000;
    let delta = rng.pick(&[0, edge, edge + 1, edge - 1, -edge, -edge - 1, 1, -1]);
    (c as i128 + delta).clamp(low as i128, high as i128) as i64
}

/// A double report near `c`: at the edge of the tolerance (c ± tolerance·|c| and its neighbours),
/// inside or outside it, or special.
fn near_double(rng: &mut Rng, c: f64, tolerance: f64) -> f64 {
    let edge = tolerance * c.abs();
    match rng.below(9) {
        0 => c,
        1 => c + edge,
        2 => c - edge,
        3 => next_up(c + edge),
        4 => next_down(c - edge),
        5 => next_down(c + edge),
        6 => c * (1.0 + tolerance * rng.pick(&[0.5, 0.9, 1.1, 2.0])),
        7 => next_up(c),
        _ => rng.pick(SPECIAL_DOUBLES),
    }
}

/// A bathrooms report near a count: on and around the half tenths.
fn near_bathrooms(rng: &mut Rng, c: f64) -> f64 {
    let half = c + rng.pick(&[0.05, -0.05, 0.15, -0.15]);
    match rng.below(8) {
        0 => c,
        1 => half,
        2 => next_up(half),
        3 => next_down(half),
        4 => c + rng.pick(&[0.049_999_999_999_999, 0.050_000_000_000_001, -0.049_999_999_999_999]),
        5 => rng.pick(&[99.9, 99.95, next_up(99.9), 100.0, 250.0, -0.0, -0.05, f64::NAN, f64::INFINITY]),
        6 => (rng.below(1000) as f64) / 100.0,
        _ => rng.pick(&[0.05, 0.15, 0.25, 0.35, 0.45, 1.05, 2.25, 2.35, 8.45, 10.05, 99.85]),
    }
}

/// A report of a listing: per field NULL, equal, near the tolerance, or anything.
fn report(rng: &mut Rng, of: &Fields) -> Fields {
    let mut r = listing(rng, 0);
    // mode: 0 NULL, 1 equal, 2 near, 3 independent
    macro_rules! field {
        ($name:ident, $near:expr) => {{
            let mode = rng.below(4);
            r.$name = match (mode, of.$name.clone()) {
                (0, _) => None,
                (1, v) => v,
                (2, Some(c)) => Some($near(rng, c)),
                _ => r.$name.clone(),
            };
        }};
    }
    field!(uri, |rng: &mut Rng, c: String| if rng.chance(50) { c.to_uppercase() } else { c + "/" });
    field!(price, |rng: &mut Rng, c| near_integer(rng, c, 10_000, i64::MIN, i64::MAX));
    field!(address, |_: &mut Rng, c: String| c.to_lowercase());
    field!(bedrooms, |rng: &mut Rng, c: i32| near_integer(rng, c.into(), 0, i32::MIN.into(), i32::MAX.into()) as i32);
    field!(bathrooms, near_bathrooms);
    field!(living_area, |rng: &mut Rng, c: i32| near_integer(rng, c.into(), 20_000, i32::MIN.into(), i32::MAX.into())
        as i32);
    field!(home_type, |_: &mut Rng, c: String| c + " ");
    field!(home_status, |_: &mut Rng, c: String| c.to_lowercase());
    field!(days_on_zillow, |rng: &mut Rng, c: i32| near_integer(
        rng,
        c.into(),
        100_000,
        i32::MIN.into(),
        i32::MAX.into()
    ) as i32);
    field!(zip_code, |_: &mut Rng, c: String| format!("0{c}"));
    field!(city, |_: &mut Rng, c: String| c.to_uppercase());
    field!(state, |_: &mut Rng, c: String| c.to_lowercase());
    field!(latitude, |rng: &mut Rng, c| near_double(rng, c, 1e-6));
    field!(longitude, |rng: &mut Rng, c| near_double(rng, c, 1e-6));
    r.bathrooms_numeric = None;
    r
}

/// `n` listings (zpid 1..n, some absent) and reports of them (resi.miner_claims, hotkeys 'r' and
/// 'o': two reports of each listing), the same rows in both databases.
fn load_listings_and_claims(native: &mut Client, portable: &mut Client, seed: u64, n: usize) {
    let mut rng = Rng::seeded(seed);
    let mut listings = Vec::new();
    let mut claims = Vec::new();
    for id in 1..=n {
        let l = listing(&mut rng, id);
        if !rng.chance(8) {
            listings.push(format!(
                "('{id}', {}, {}, {}, {}, {}::numeric(3,1), {}, {}, {}, {}, {}, {}, {}, {}, {})",
                text(l.uri.as_deref()),
                integer(l.price, "bigint"),
                text(l.address.as_deref()),
                integer(l.bedrooms, "integer"),
                text(l.bathrooms_numeric.as_deref()),
                integer(l.living_area, "integer"),
                text(l.home_type.as_deref()),
                text(l.home_status.as_deref()),
                integer(l.days_on_zillow, "integer"),
                text(l.zip_code.as_deref()),
                text(l.city.as_deref()),
                text(l.state.as_deref()),
                double(l.latitude),
                double(l.longitude),
            ));
        }
        let first = report(&mut rng, &l);
        // The second claim: a report of the listing, or one near the first claim.
        let second = if rng.chance(50) { report(&mut rng, &first) } else { report(&mut rng, &l) };
        for (hotkey, r) in [("r", first), ("o", second)] {
            claims.push(format!("('{id}', '{hotkey}', {id}, now(), now(), 1, {})", r.values()));
        }
    }
    let sql = format!(
        "INSERT INTO resi.listings (zpid, uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status,
                                    days_on_zillow, zip_code, city, state, latitude, longitude) VALUES {};
         INSERT INTO resi.miner_claims (zpid, miner_hotkey, attestation_id, submission_timestamp, first_seen_at,
                                        attestations, uri, price, address, bedrooms, bathrooms, living_area, home_type,
                                        home_status, days_on_zillow, zip_code, city, state, latitude, longitude)
         VALUES {};
         ANALYZE resi.listings; ANALYZE resi.miner_claims;",
        listings.join(",\n"),
        claims.join(",\n")
    );
    execute_both(native, portable, &sql);
}

const REPORT_FIELDS: &str = "r.uri, r.price, r.address, r.bedrooms, r.bathrooms, r.living_area, r.home_type, \
     r.home_status, r.days_on_zillow, r.zip_code, r.city, r.state, r.latitude, r.longitude";

const FORCE_PARALLEL: &str = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
    SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;";
const FORCE_SERIAL: &str = "SET max_parallel_workers_per_gather = 0;";

fn plan(client: &mut Client, query: &str) -> String {
    rows(client, &format!("EXPLAIN (COSTS OFF) {query}")).unwrap().join("\n")
}

#[test]
fn reports_agree_with_listings_as_natively_field_by_field() {
    let (native, portable) = databases("agreement");
    let (mut n, mut p) = (native.client(), portable.client());
    load_listings_and_claims(&mut n, &mut p, 0x5eed_0001, 1500);
    // Per report: against its listing (NULL when the listing is absent), against a listing whose
    // fields are all NULL, and on corroborated field lists of every kind.
    let query = format!(
        "SELECT r.zpid, a.compared::text, a.agreed::text, resi.claim_errors({REPORT_FIELDS}, l)::text,
                e.compared::text, e.agreed::text, resi.claim_errors({REPORT_FIELDS}, e.empty)::text,
                c.compared::text, c.agreed::text
           FROM resi.miner_claims r
           LEFT JOIN resi.listings l ON l.zpid = r.zpid
          CROSS JOIN LATERAL resi.consensus_agreement({REPORT_FIELDS}, l) a
          CROSS JOIN LATERAL (SELECT x.*, jsonb_populate_record(NULL::resi.listings, '{{}}') AS empty
                                FROM resi.consensus_agreement({REPORT_FIELDS}, jsonb_populate_record(NULL::resi.listings, '{{}}')) x) e
          CROSS JOIN LATERAL resi.corroborated_agreement({REPORT_FIELDS}, l,
                 CASE r.zpid::int % 6
                      WHEN 0 THEN NULL
                      WHEN 1 THEN '{{}}'::text[]
                      WHEN 2 THEN ARRAY['uri', 'price', 'address', 'bedrooms', 'bathrooms', 'living_area', 'home_type',
                                        'home_status', 'days_on_zillow', 'zip_code', 'city', 'state', 'latitude', 'longitude']
                      WHEN 3 THEN ARRAY['price', NULL, 'nonsense', 'price', 'LATITUDE', 'latitude', 'bathrooms']
                      WHEN 4 THEN ARRAY[NULL]::text[]
                      ELSE ARRAY['bathrooms', 'zip_code', 'city', 'longitude', 'days_on_zillow'] END) c
          ORDER BY r.zpid::int, r.miner_hotkey"
    );
    p.batch_execute(FORCE_SERIAL).unwrap();
    let answer = same(&mut n, &mut p, &query).unwrap();
    assert_eq!(answer.len(), 3000);
    // Not vacuous: every verdict occurs.
    let all = answer.join("\n");
    for expected in ["latitude", "bathrooms", "price", "uri", "days_on_zillow", "living_area", "| 0 | 0 |"] {
        assert!(all.contains(expected), "no {expected:?} in the answers");
    }
    assert!(answer.iter().any(|a| {
        let columns: Vec<&str> = a.split(" | ").collect();
        columns[1] == columns[2] && columns[1] != "0"
    }));
    // The functions run in parallel workers too, with the same answers.
    p.batch_execute(FORCE_PARALLEL).unwrap();
    let parallel_query = query.replace("ORDER BY r.zpid::int, r.miner_hotkey", "");
    assert!(plan(&mut p, &parallel_query).contains("Gather"), "{}", plan(&mut p, &parallel_query));
    let mut serial = rows(&mut n, &parallel_query).unwrap();
    serial.sort();
    let mut parallel = rows(&mut p, &parallel_query).unwrap();
    parallel.sort();
    assert_eq!(serial, parallel);
}

#[test]
fn doubles_at_the_edges_of_their_tolerance_agree_as_natively() {
    let (native, portable) = databases("edges");
    let (mut n, mut p) = (native.client(), portable.client());
    // Latitude and longitude: every pair of special doubles, and reports at c ± 10^-6·|c| and one
    // ulp either side, for special and ordinary consensus values (subnormal ones included, where
    // 10^-6·|c| underflows).
    let mut consensus: Vec<f64> = SPECIAL_DOUBLES.to_vec();
    consensus.extend([f64::from_bits(0x000F_FFFF_FFFF_FFFF), f64::from_bits(3_000_000), 4e-318, 1e-9, 45.0, -122.4194]);
    let mut pairs = Vec::new();
    for &c in &consensus {
        pairs.extend(SPECIAL_DOUBLES.iter().map(|&r| (r, c)));
        let edge = 1e-6 * c.abs();
        for r in [c + edge, c - edge, next_up(c + edge), next_down(c + edge), next_up(c - edge), next_down(c - edge)] {
            pairs.push((r, c));
        }
        pairs.extend([(next_up(c), c), (next_down(c), c), (-c, c)]);
    }
    // Bathrooms: reports every 0.005 from -0.1 to 12.1 and from 99.8 to 100.1, and one ulp
    // either side of each, against the listing's count nearest to them.
    let mut bathrooms = Vec::new();
    for k in (-20..=2_420).chain(19_960..=20_020) {
        let r = k as f64 * 0.005;
        let c = format!("{:.1}", r.clamp(-99.9, 99.9));
        bathrooms.extend([(r, c.clone()), (next_up(r), c.clone()), (next_down(r), c)]);
    }
    let mut listings = Vec::new();
    let mut claims = Vec::new();
    for (id, (r, c)) in pairs.iter().enumerate() {
        let (br, bc) = &bathrooms[id * 97 % bathrooms.len()];
        listings.push(format!("('{id}', {}, {}, '{bc}')", double(Some(*c)), double(Some(-c))));
        claims.push(format!("('{id}', 'r', {}, {}, {})", double(Some(*r)), double(Some(-r)), double(Some(*br))));
        claims.push(format!("('{id}', 'o', {}, {}, {})", double(Some(*c)), double(Some(-c)), double(bc.parse().ok())));
    }
    for (id, (r, c)) in bathrooms.iter().enumerate() {
        let id = id + pairs.len();
        listings.push(format!("('{id}', NULL, NULL, '{c}')"));
        claims.push(format!("('{id}', 'r', NULL, NULL, {})", double(Some(*r))));
        claims.push(format!("('{id}', 'o', NULL, NULL, {})", double(c.parse().ok())));
    }
    execute_both(
        &mut n,
        &mut p,
        &format!(
            "INSERT INTO resi.listings (zpid, latitude, longitude, bathrooms) VALUES {};
             INSERT INTO resi.miner_claims (zpid, miner_hotkey, attestation_id, submission_timestamp, first_seen_at,
                                            attestations, latitude, longitude, bathrooms)
             SELECT z, h, 1, now(), now(), 1, la, lo, b FROM (VALUES {}) v(z, h, la, lo, b);",
            listings.join(", "),
            claims.join(", ")
        ),
    );
    let query = format!(
        "SELECT r.zpid, a.compared::text, a.agreed::text, resi.claim_errors({REPORT_FIELDS}, l)::text,
                resi.claim_differences(r, o)::text, resi.claim_differences(o, r)::text
           FROM resi.miner_claims r
           JOIN resi.miner_claims o ON o.zpid = r.zpid AND o.miner_hotkey = 'o'
           JOIN resi.listings l ON l.zpid = r.zpid
          CROSS JOIN LATERAL resi.consensus_agreement({REPORT_FIELDS}, l) a
          WHERE r.miner_hotkey = 'r'
          ORDER BY r.zpid::int"
    );
    let answer = same(&mut n, &mut p, &query).unwrap();
    assert_eq!(answer.len(), pairs.len() + bathrooms.len());
    for verdict in ["{latitude,longitude}", "{bathrooms}", "| 3 | 3 |", "| 3 | 0 |", "| 3 | 1 |", "| 1 | 0 |"] {
        assert!(answer.iter().any(|a| a.contains(verdict)), "no {verdict}");
    }
}

#[test]
fn claim_differences_are_the_native_ones_for_random_claim_pairs() {
    let (native, portable) = databases("differences");
    let (mut n, mut p) = (native.client(), portable.client());
    load_listings_and_claims(&mut n, &mut p, 0x5eed_0002, 1500);
    let query = "SELECT a.zpid, resi.claim_differences(a, b)::text, resi.claim_differences(b, a)::text,
                        resi.claim_differences(a, a)::text, resi.claim_differences(a, NULL)::text,
                        resi.claim_differences(NULL, b)::text
                   FROM resi.miner_claims a JOIN resi.miner_claims b ON b.zpid = a.zpid AND b.miner_hotkey = 'o'
                  WHERE a.miner_hotkey = 'r' ORDER BY a.zpid::int";
    let answer = same(&mut n, &mut p, query).unwrap();
    assert_eq!(answer.len(), 1500);
    assert!(answer.iter().any(|a| a.contains("bathrooms")) && answer.iter().any(|a| a.contains("{} |")));
    // A row of a claims table whose fields are all NULL is not NULL: nothing to judge.
    same(
        &mut n,
        &mut p,
        "SELECT resi.claim_differences(jsonb_populate_record(NULL::resi.miner_claims, '{}'), c)::text
           FROM resi.miner_claims c ORDER BY zpid::int, miner_hotkey LIMIT 20",
    )
    .unwrap();
}

#[test]
fn corroborated_fields_read_supporters_as_natively() {
    let (native, portable) = databases("corroborated");
    let (mut n, mut p) = (native.client(), portable.client());
    let names = [
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
        "URI",
        "nonsense",
        "",
    ];
    let supporters = [
        "2",
        "1",
        "3",
        "0",
        "-2",
        "1.5",
        "1.49",
        "1.4999999999",
        "2.5",
        "2147483647",
        "2147483647.4",
        "2147483647.5",
        "2147483648",
        "-2147483648.6",
        "1e10",
        "2e0",
        "20e-1",
        "\"2\"",
        "null",
        "true",
        "[2]",
        "{\"n\": 2}",
        "0.0000000000000000000001",
    ];
    let mut rng = Rng::seeded(0x5eed_0003);
    let mut cases =
        vec!["'[1, 2]'", "'7'", "'\"text\"'", "'null'", "'{}'", "'true'", "'{\"price\": [2]}'", "'{\"price\": 2}'"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
    for _ in 0..600 {
        let members: Vec<String> = (0..rng.below(16))
            .map(|_| {
                let value = match rng.below(6) {
                    0 => rng.pick(&supporters).to_owned(),
                    1 => format!("{{\"value\": 1, \"supporters\": {}, \"voters\": 9}}", rng.pick(&supporters)),
                    2 => "{\"value\": \"x\"}".to_owned(),
                    _ => format!("{{\"supporters\": {}}}", rng.pick(&supporters)),
                };
                format!("\"{}\": {value}", rng.pick(&names))
            })
            .collect();
        cases.push(format!("'{{{}}}'", members.join(", ")));
    }
    let values = cases.iter().enumerate().map(|(i, c)| format!("({i}, {c}::jsonb)")).collect::<Vec<_>>().join(", ");
    let query = format!(
        "SELECT i::text, resi.corroborated_fields(j)::text FROM (VALUES {values}, (-1, NULL)) t(i, j) ORDER BY i"
    );
    let answer = same(&mut n, &mut p, &query).unwrap();
    assert!(answer.iter().any(|a| a.ends_with("{}")) && answer.iter().any(|a| a.contains("latitude,longitude")));
    assert_eq!(answer[0], "-1 | ∅");
    // The portable body names the fields itself: they are the field table's, in its order.
    let every_field = "SELECT resi.corroborated_fields(jsonb_object_agg(name, '{\"supporters\": 2}'::jsonb))
                         = array_agg(name ORDER BY ordinal) FROM resi.agreement_fields()";
    assert!(scalar::<bool>(&mut p, every_field));
}

#[test]
fn claim_signatures_equal_the_native_ones_for_every_report() {
    let (native, portable) = databases("signature");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng::seeded(0x5eed_0004);
    let times = [
        "NULL",
        "'infinity'",
        "'-infinity'",
        "'2000-01-01 00:00:00+00'",
        "'1999-12-31 23:59:59.999999+00'",
        "'4713-01-01 00:00:00+00 BC'",
        "'294276-12-31 23:59:59.999999+00'",
        "'2025-10-07 12:00:00.123456+02'",
        "'1970-01-01 00:00:00+00'",
    ];
    let mut values = Vec::new();
    for id in 0..2500 {
        let l = listing(&mut rng, id);
        let r = if rng.chance(50) { report(&mut rng, &l) } else { l };
        let zpid = match rng.below(10) {
            0 => None,
            1 => Some(rng.pick(TEXTS).to_owned()),
            _ => Some((2_000_000_000 + rng.below(1_000_000)).to_string()),
        };
        let at = if rng.chance(70) {
            format!(
                "to_timestamp({})::timestamptz + '{} microseconds'::interval",
                rng.below(2_000_000_000),
                rng.below(1_000_000)
            )
        } else {
            rng.pick(&times).to_owned()
        };
        values.push(format!("({id}, {}, ({at})::timestamptz, {})", text(zpid.as_deref()), r.values()));
    }
    let sql = format!(
        "CREATE TABLE reports (id int, zpid text, scraped_at timestamptz, uri text, price bigint, address text,
             bedrooms integer, bathrooms double precision, living_area integer, home_type text, home_status text,
             days_on_zillow integer, zip_code text, city text, state text, latitude double precision,
             longitude double precision);
         INSERT INTO reports VALUES {};",
        values.join(",\n")
    );
    execute_both(&mut n, &mut p, &sql);
    let query = "SELECT id::text, resi.claim_signature(zpid, scraped_at, uri, price, address, bedrooms, bathrooms,
                        living_area, home_type, home_status, days_on_zillow, zip_code, city, state, latitude,
                        longitude)::text FROM reports ORDER BY id";
    let answer = same(&mut n, &mut p, query).unwrap();
    assert!(answer.iter().any(|a| a.ends_with('∅')));
    let distinct: std::collections::HashSet<_> = answer.iter().map(|a| a.split(" | ").nth(1).unwrap()).collect();
    assert!(distinct.len() > 2000, "{} distinct signatures", distinct.len());
    // The signature of resi_core (what the loader and the fold store) for one report, exactly.
    let signature = resi_core::fields::claim_signature(
        "1",
        Some(1_000_000),
        &resi_core::fields::FieldValues { city: Some("Katy"), bathrooms: Some(-0.0), ..Default::default() },
    );
    let query = "SELECT resi.claim_signature('1', '2000-01-01 00:00:01+00', NULL, NULL, NULL, NULL, '-0', NULL, NULL,
                        NULL, NULL, NULL, 'Katy', NULL, NULL, NULL)::text";
    assert_eq!(same(&mut n, &mut p, query).unwrap(), [signature.to_string()]);
}

// ---------------------------------------------------------------------------------------------
// Submission quality
// ---------------------------------------------------------------------------------------------

/// `count` submissions of random sizes into table `submissions (s, n, zpid, price, zip_code)`.
fn load_submissions(native: &mut Client, portable: &mut Client, seed: u64, count: usize) {
    let mut rng = Rng::seeded(seed);
    let odd_zpids =
        ["007", "7", "07", "", " 7", "x", "é", "e\u{301}", "\"", "\\", "{", "}", ",", "NULL", "a\"b\\c,{d}", "🏠"];
    let prices = [
        1000.0,
        next_down(1000.0),
        next_up(1000.0),
        1e8,
        next_up(1e8),
        next_down(1e8),
        0.0,
        -0.0,
        -1.0,
        5e-324,
        1e300,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        250_000.0,
    ];
    let mut values = Vec::new();
    for s in 0..count {
        let size = rng.pick(&[1, 2, 3, 10, 40, 120, 300]);
        let zip_spread = rng.pick(&[1, 2, 49, 50, 51, 60, 500]);
        let zpid_pool = rng.pick(&[3, 50, 1_000_000]);
        let price_chance = rng.pick(&[0, 2, 30]);
        for i in 0..size {
            let zpid = match rng.below(12) {
                0 => None,
                1 => Some(rng.pick(&odd_zpids).to_owned()),
                _ => Some((2_077_000_000 + rng.below(zpid_pool)).to_string()),
            };
            let price = if rng.chance(10) {
                None
            } else if rng.chance(price_chance) {
                Some(rng.pick(&prices))
            } else {
                Some((1000 + rng.below(1_000_000)) as f64)
            };
            let zip = match rng.below(15) {
                0 => None,
                1 => Some(rng.pick(&odd_zpids).to_owned()),
                _ => Some(format!("{:05}", 2134 + rng.below(zip_spread))),
            };
            values.push(format!("({s}, {i}, {}, {}, {})", text(zpid.as_deref()), double(price), text(zip.as_deref())));
        }
    }
    let sql = format!(
        "CREATE TABLE submissions (s int, n int, zpid text, price double precision, zip_code text);
         INSERT INTO submissions VALUES {}; ANALYZE submissions;",
        values.join(",\n")
    );
    execute_both(native, portable, &sql);
}

const BY_SUBMISSION: &str = "SELECT s::text, resi.submission_quality(zpid, price, zip_code)::text
    FROM submissions GROUP BY s ORDER BY s";

/// The same reports from columns (resi.submission_quality_of, what the fold calls).
const BY_COLUMNS: &str = "SELECT s::text,
           resi.submission_quality_of(count(*), array_agg(zpid), array_agg(price), array_agg(zip_code))::text
      FROM submissions GROUP BY s ORDER BY s";

/// Both editions give the same reports by rows and by columns, and the two forms agree.
fn same_reports(native: &mut Client, portable: &mut Client) -> Vec<String> {
    let by_rows = same(native, portable, BY_SUBMISSION).unwrap();
    assert_eq!(same(native, portable, BY_COLUMNS).unwrap(), by_rows);
    by_rows
}

#[test]
fn submission_quality_reports_equal_native_ones_under_every_setting_and_blacklist() {
    let (native, portable) = databases("quality");
    let (mut n, mut p) = (native.client(), portable.client());
    load_submissions(&mut n, &mut p, 0x5eed_0005, 150);
    execute_both(&mut n, &mut p, "SET extra_float_digits = 3");
    let plain = same_reports(&mut n, &mut p);
    assert_eq!(plain.len(), 150);
    for issue in ["suspicious_price_range", "duplicate_zpids", "excessive_geographic_spread", "(1,{},"] {
        assert!(plain.iter().any(|a| a.contains(issue)), "no {issue}");
    }
    // Columns given apart: NULL or 0 rows, more rows than values, NULL arrays, rows < 0 (22023).
    for call in [
        "(NULL, '{1}', '{1}', '{1}')",
        "(0, '{1}', '{1}', '{1}')",
        "(5, '{1,1,NULL}', '{NaN,NULL}', NULL)",
        "(1, NULL, NULL, NULL)",
        "(2, '{a,b,a,a}', '{2000,3000}', '{x,y,x}')",
        "(-1, '{1}', '{1}', '{1}')",
        "(3000000000, '{1}', '{1}', '{1}')",
    ] {
        same(&mut n, &mut p, &format!("SELECT resi.submission_quality_of{call}::text")).unwrap_or_default();
    }
    let negative = rows(&mut p, "SELECT resi.submission_quality_of(-1, NULL, NULL, NULL)::text").unwrap_err();
    assert_eq!(negative.code, "22023");
    for settings in [
        "SET resi.quality_min_price = 0; SET resi.quality_max_price = 1e300",
        "SET resi.quality_min_price = 1e300; SET resi.quality_max_price = 0",
        "SET resi.quality_min_price = '999.9999999999999'; SET resi.quality_max_price = '100000000.00000001'",
        "SET resi.quality_min_price = '0x1p10'; SET resi.quality_max_price = ' 1.0000000000000002e8 '",
        "SET resi.quality_max_zip_codes = 0",
        "SET resi.quality_max_zip_codes = 2",
        "SET resi.quality_max_zip_codes = '2.5'",
        "SET resi.quality_max_zip_codes = '010'",
        "SET resi.quality_max_zip_codes = '0x31'",
        "SET resi.quality_max_zip_codes = '5e1'",
        "SET resi.quality_max_zip_codes = 2147483647",
        "RESET resi.quality_max_zip_codes; RESET resi.quality_min_price; RESET resi.quality_max_price",
    ] {
        execute_both(&mut n, &mut p, settings);
        same_reports(&mut n, &mut p);
    }
    // Blacklist entries, exact and patterns, zpids and zip codes (the same in both databases).
    for (field, kind, value) in [
        ("zpid", "exact", "\""),
        ("zip_code", "exact", "02135"),
        ("zpid", "pattern", "^207700000[0-4]$"),
        ("zip_code", "pattern", "^021[0-9]9$"),
        ("zpid", "pattern", "[{}]"),
        ("zip_code", "exact", "é"),
    ] {
        execute_both(
            &mut n,
            &mut p,
            &format!(
                "INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('{field}', '{kind}', {}, 'test')",
                text(Some(value))
            ),
        );
        let answer = same_reports(&mut n, &mut p);
        assert!(answer.iter().any(|a| a.contains("blacklisted")), "{field} {kind} {value}");
        execute_both(&mut n, &mut p, "DELETE FROM resi.blacklist");
    }
    // No rows: NULL; grouped, no groups.
    same(&mut n, &mut p, "SELECT resi.submission_quality(zpid, price, zip_code)::text FROM submissions WHERE false")
        .unwrap();
    assert!(same(
        &mut n,
        &mut p,
        "SELECT resi.submission_quality(zpid, price, zip_code)::text FROM submissions WHERE false GROUP BY s"
    )
    .unwrap()
    .is_empty());
}

#[test]
fn submission_quality_under_a_forced_parallel_plan_gives_the_serial_answer() {
    let (native, portable) = databases("quality_parallel");
    let (mut n, mut p) = (native.client(), portable.client());
    load_submissions(&mut n, &mut p, 0x5eed_0006, 120);
    let declared =
        "SELECT a.aggcombinefn::text, p.proparallel::text FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
                     WHERE a.aggfnoid = 'resi.submission_quality'::regproc";
    assert_eq!(same(&mut n, &mut p, declared).unwrap(), ["- | s"]);
    execute_both(&mut n, &mut p, "SET extra_float_digits = 3");
    execute_both(&mut n, &mut p, FORCE_SERIAL);
    let serial = same(&mut n, &mut p, BY_SUBMISSION).unwrap();
    execute_both(&mut n, &mut p, FORCE_PARALLEL);
    // Without a combine function (as natively) the scan runs in parallel under the aggregate.
    for client in [&mut n, &mut p] {
        let explain = plan(client, BY_SUBMISSION);
        assert!(explain.contains("Gather") && !explain.contains("Partial"), "{explain}");
    }
    assert_eq!(same(&mut n, &mut p, BY_SUBMISSION).unwrap(), serial);
}

#[test]
fn quality_errors_have_the_native_sqlstate_and_message() {
    let (native, portable) = databases("quality_errors");
    let (mut n, mut p) = (native.client(), portable.client());
    let one =
        "SELECT resi.submission_quality(z, p, c)::text FROM (VALUES ('1'::text, 5000::float8, '1'::text)) t(z, p, c)";
    let nulls =
        "SELECT resi.submission_quality(z, p, c)::text FROM (VALUES (NULL::text, 5000::float8, NULL::text)) t(z, p, c)";
    // An invalid pattern raises 2201B when a value is matched against it, not when there is none.
    execute_both(
        &mut n,
        &mut p,
        "INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'pattern', '(', 'typo')",
    );
    let failure = same(&mut n, &mut p, one).unwrap_err();
    assert_eq!(failure.code, "2201B");
    assert_eq!(same(&mut n, &mut p, nulls).unwrap(), ["(1,{},1,0,0)"]);
    execute_both(&mut n, &mut p, "DELETE FROM resi.blacklist");
    // Settings natively refused by SET are refused here when read, with the same error.
    for (setting, value) in [
        ("resi.quality_min_price", "abc"),
        ("resi.quality_min_price", "NaN"),
        ("resi.quality_min_price", "-1"),
        ("resi.quality_max_price", "2e300"),
        ("resi.quality_max_price", "Infinity"),
        ("resi.quality_max_zip_codes", "-1"),
        ("resi.quality_max_zip_codes", "many"),
        ("resi.quality_max_zip_codes", "3000000000"),
        ("resi.quality_max_zip_codes", "-1.5"),
        ("resi.quality_max_zip_codes", "-010"),
        ("resi.quality_min_price", "1e-310"),
        ("resi.quality_min_price", "1e400"),
        ("resi.quality_min_price", "-123456.5"),
        ("resi.quality_min_price", "5 apples"),
    ] {
        let set = format!("SET {setting} = '{value}'");
        let native_error = n.batch_execute(&set).unwrap_err();
        let native_error = native_error.as_db_error().unwrap();
        p.batch_execute(&set).unwrap();
        let portable_error = rows(&mut p, one).unwrap_err();
        assert_eq!(portable_error.code, native_error.code().code(), "{set}");
        assert_eq!(portable_error.code, "22023", "{set}");
        assert_eq!(portable_error.message, native_error.message(), "{set}");
        p.batch_execute(&format!("RESET {setting}")).unwrap();
        assert_eq!(rows(&mut p, one).unwrap(), ["(1,{},1,0,1)"]);
    }
}

#[test]
fn portable_declarations_match_the_native_ones() {
    let (native, portable) = databases("declarations");
    let (mut n, mut p) = (native.client(), portable.client());
    let query = "SELECT p.oid::regprocedure::text, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                        p.provolatile::text, p.proisstrict::text, p.proparallel::text, p.proretset::text,
                        p.prorows::text, p.prokind::text, p.prosecdef::text
                   FROM pg_proc p
                  WHERE p.pronamespace = 'resi'::regnamespace
                    AND p.proname IN ('consensus_agreement', 'corroborated_agreement', 'corroborated_fields',
                                      'claim_errors', 'claim_differences', 'claim_signature', 'submission_quality')
                  ORDER BY 1";
    let answer = same(&mut n, &mut p, query).unwrap();
    assert_eq!(answer.len(), 7);
}
