//! The portable edition's scalar functions (sql/portable/hash.sql, settings.sql, trust.sql,
//! keys.sql, rate_limit.sql) against the native extension: the same text, bit-for-bit equal
//! floats, NULL where native gives NULL, and the same SQLSTATE (and message, where both
//! editions write it) for errors. Each test runs the same queries in a native database and in
//! one with the portable edition (the whole of it, installed by a role without superuser).

use postgres::types::ToSql;
use postgres::Client;
use resi_e2e::{Edition, TestDatabase};

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
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

/// A native and a portable database.
fn databases(label: &str) -> (TestDatabase, TestDatabase) {
    let native = TestDatabase::with_edition(&format!("{label}_n"), Edition::Native);
    let portable = TestDatabase::with_edition(&format!("{label}_p"), Edition::Portable);
    (native, portable)
}

/// An error as the client sees it: SQLSTATE, message, detail, hint.
#[derive(Debug, PartialEq)]
struct Failure {
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

fn failure(sql: &str, e: postgres::Error) -> Failure {
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    Failure {
        code: db.code().code().to_owned(),
        message: db.message().to_owned(),
        // pgrx puts a Rust backtrace in the DETAIL of some native errors (when the server runs
        // with RUST_BACKTRACE): not part of the contract.
        detail: db.detail().filter(|d| !d.starts_with("\n   0: ")).map(str::to_owned),
        hint: db.hint().map(str::to_owned),
    }
}

/// The one text value a query returns (NULL: None), or its error.
fn outcome(client: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<String>, Failure> {
    client.query_one(sql, params).map(|row| row.get(0)).map_err(|e| failure(sql, e))
}

fn run(client: &mut Client, sql: &str) -> Result<(), Failure> {
    client.batch_execute(sql).map_err(|e| failure(sql, e))
}

#[test]
fn declarations_match_native() {
    let (native, portable) = databases("scalar_decl");
    let query = "SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
                   SELECT format('%s(%s) -> %s | volatility %s, strict %s, parallel %s, security definer %s', p.proname,
                                 pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.provolatile, p.proisstrict,
                                 p.proparallel, p.prosecdef) AS d
                     FROM pg_proc p
                    WHERE p.pronamespace = 'resi'::regnamespace AND p.oid = ANY ($1::text[]::regprocedure[]::oid[])) s";
    let functions = vec![
        "resi.sha256_hex(bytea)",
        "resi.sha256_hex(text)",
        "resi.listing_hash(text)",
        "resi.canonical_listing(text)",
        "resi.ingest_settings()",
        "resi.database_budget_bytes()",
        "resi.claim_half_life_seconds()",
        "resi.initial_trust()",
        "resi.earned_trust(bigint,bigint,double precision,double precision,double precision)",
        "resi.claim_recency(interval)",
        "resi.parse_s3_key(text)",
        "resi.rate_limit_for(double precision)",
        "resi.check_miner_rate_limit(text,integer,date)",
    ];
    let native_decl = outcome(&mut native.client(), query, &[&functions]).unwrap().unwrap();
    assert_eq!(native_decl.lines().count(), functions.len(), "{native_decl}");
    assert_eq!(outcome(&mut portable.client(), query, &[&functions]).unwrap().unwrap(), native_decl);
}

// ---------------------------------------------------------------------------------------------
// Hashes and the canonical form
// ---------------------------------------------------------------------------------------------

/// A JSON string token with the awkward parts of real data: padding of every Unicode space,
/// decomposed and composed letters, Hangul jamo, escapes of every kind, \u0000, surrogate pairs.
fn json_string(rng: &mut Rng) -> String {
    let pieces = [
        "a",
        "Katy",
        "Main St",
        " ",
        "  ",
        "\u{3000}",
        "\u{a0}",
        "\u{2028}",
        "\u{2029}",
        "\u{85}",
        "\u{1680}",
        "\u{2000}",
        "\u{200a}",
        "\u{202f}",
        "\u{205f}",
        "\u{200b}",
        "\u{feff}",
        "\u{180e}",
        "e\u{301}",
        "\u{e9}",
        "\u{1100}\u{1161}",
        "\u{1100}\u{1161}\u{11a8}",
        "\u{ac00}",
        "\u{212b}",
        "\u{1e9b}\u{323}",
        "\u{344}",
        "o\u{308}\u{301}",
        "\u{3b1}\u{313}\u{301}",
        "🏠",
        "\u{7f}",
        "/",
        "\u{fb01}",
        "\u{fdd0}",
        "\u{10ffff}",
        "'",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\u0001",
        "\\u001F",
        "\\u001f",
        "\\u007f",
        "\\u00e9",
        "\\u0065\\u0301",
        "\\ud83c\\udfe0",
        "\\uD83D\\uDE00",
        "\\u0000",
        "\\u0020",
        "\\u3000",
        "\\u00a0",
        "\\uFDD0",
        "\\u2028",
        "\\u0041",
    ];
    let mut s = String::from("\"");
    for _ in 0..rng.below(6) {
        s.push_str(rng.pick(&pieces));
    }
    s.push('"');
    s
}

/// A JSON number token of any magnitude and form.
fn json_number(rng: &mut Rng) -> String {
    let sign = if rng.below(3) == 0 { "-" } else { "" };
    match rng.below(9) {
        0 => rng
            .pick(&[
                "0",
                "-0",
                "7",
                "-12",
                "0.0",
                "-0.0",
                "100e-2",
                "1E+2",
                "1e21",
                "1e20",
                "1e-7",
                "1e-6",
                "0.000001",
                "5e-324",
                "2.4703282292062328e-324",
                "2.4703282292062327e-324",
                "1e-400",
                "0e99999",
                "0.0e-99999999999999",
                "1.7976931348623157e308",
                "1.7976931348623158e308",
                "9007199254740993",
                "123456789012345678901234567890",
                "2.2250738585072011e-308",
                "2.2250738585072014e-308",
                "4.9406564584124654e-324",
                "1e-99999999999999",
            ])
            .to_owned(),
        1 => format!("{sign}{}", rng.below(1_000_000)),
        2 => {
            let n = 1 + rng.below(25) as usize;
            format!("{sign}{}{}", 1 + rng.below(9), rng.digits(n))
        }
        3 => {
            let (a, b) = (1 + rng.below(8) as usize, 1 + rng.below(20) as usize);
            format!("{sign}{}.{}", rng.digits(a).trim_start_matches('0').to_owned() + "1", rng.digits(b))
        }
        4 => {
            let e = rng.below(640) as i64 - 330;
            let n = 1 + rng.below(20) as usize;
            let marker = if e < 0 { rng.pick(&["e", "E"]) } else { rng.pick(&["e", "E", "e+", "E+0"]) };
            format!("{sign}{}.{}{marker}{e}", 1 + rng.below(9), rng.digits(n))
        }
        5 | 6 => {
            // A random finite double, written as Rust writes it (shortest digits).
            let f = loop {
                let f = f64::from_bits(rng.next());
                if f.is_finite() {
                    break f;
                }
            };
            if rng.below(2) == 0 {
                format!("{f:e}")
            } else {
                format!("{f:.20e}")
            }
        }
        7 => format!("{sign}0.{}{}", "0".repeat(rng.below(12) as usize), 1 + rng.below(999)),
        _ => format!("{sign}{}e{}", 1 + rng.below(9), rng.below(30)),
    }
}

fn ws(rng: &mut Rng) -> &'static str {
    ["", "", "", " ", "\n", "\t", " \r\n "][rng.below(7) as usize]
}

/// A JSON text (not built by a serializer: duplicate keys, escapes and number forms as written).
fn json_value(rng: &mut Rng, depth: u32) -> String {
    let kind = if depth == 0 { 3 + rng.below(6) } else { rng.below(9) };
    match kind {
        0 | 1 => {
            let keys = [
                "zpid", "price", "city", "a", "b", "", "é", "e\u{301}", "Z", "\\u0000", "\\u0000a", "\\u0001", "🏠",
                "ﬁ", "aa",
            ];
            let members: Vec<String> = (0..rng.below(6))
                .map(|_| {
                    let key = if rng.below(4) == 0 { json_string(rng) } else { format!("\"{}\"", rng.pick(&keys)) };
                    let value = if rng.below(5) == 0 { "null".to_owned() } else { json_value(rng, depth - 1) };
                    format!("{}{key}{}:{}{value}{}", ws(rng), ws(rng), ws(rng), ws(rng))
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        2 => {
            let items: Vec<String> =
                (0..rng.below(5)).map(|_| format!("{}{}{}", ws(rng), json_value(rng, depth - 1), ws(rng))).collect();
            format!("[{}]", items.join(","))
        }
        3 | 4 => json_string(rng),
        5 | 6 => json_number(rng),
        _ => rng.pick(&["true", "false", "null"]).to_owned(),
    }
}

fn hashes(client: &mut Client, docs: &[String], via_jsonb: bool) -> (Vec<String>, Vec<String>) {
    let sql = if via_jsonb {
        "SELECT array_agg(resi.canonical_listing(t::jsonb::text) ORDER BY i), array_agg(resi.listing_hash(t::jsonb::text) ORDER BY i) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)"
    } else {
        "SELECT array_agg(resi.canonical_listing(t) ORDER BY i), array_agg(resi.listing_hash(t) ORDER BY i) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)"
    };
    let row = client.query_one(sql, &[&docs]).unwrap_or_else(|e| panic!("{e:?}"));
    (row.get(0), row.get(1))
}

#[test]
fn canonical_form_and_hash_equal_native_and_the_client_on_random_json() {
    let (native, portable) = databases("scalar_hash");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5EED_0017_0000_0001);
    let docs: Vec<String> = (0..1500).map(|_| json_value(&mut rng, 4)).collect();
    for doc in &docs {
        assert!(serde_json::from_str::<serde_json::Value>(doc).is_ok(), "the generator wrote bad JSON: {doc}");
    }
    let (native_canonical, native_hash) = hashes(&mut n, &docs, false);
    let (portable_canonical, portable_hash) = hashes(&mut p, &docs, false);
    for (i, doc) in docs.iter().enumerate() {
        let client = resi_core::hash::canonical_json_of_text(doc).unwrap();
        assert_eq!(native_canonical[i], client, "{doc}");
        assert_eq!(portable_canonical[i], native_canonical[i], "{doc}");
        assert_eq!(portable_hash[i], native_hash[i], "{doc}");
    }
    // The jsonb forms (sql/listings.sql: the text form of listing::text); jsonb holds no \u0000
    // and no exponent of numeric's overflow.
    let jsonb_docs: Vec<String> =
        docs.iter().filter(|d| !d.contains("\\u0000") && !d.contains("99999")).cloned().collect();
    let native_jsonb = n
        .query_one("SELECT array_agg(resi.listing_hash(t::jsonb) ORDER BY i) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)", &[&jsonb_docs])
        .unwrap()
        .get::<_, Vec<String>>(0);
    assert_eq!(hashes(&mut p, &jsonb_docs, true).1, native_jsonb);

    // PARALLEL SAFE: the same answers from parallel workers.
    p.batch_execute("CREATE TABLE docs (i integer, t text); ANALYZE docs").unwrap();
    p.execute("INSERT INTO docs SELECT i, t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)", &[&docs]).unwrap();
    p.batch_execute(
        "ANALYZE docs; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off",
    )
    .unwrap();
    let query = "SELECT i, resi.listing_hash(t) FROM docs";
    let plan: String =
        p.query(&format!("EXPLAIN {query}"), &[]).unwrap().iter().map(|r| r.get::<_, String>(0) + "\n").collect();
    assert!(plan.contains("Gather"), "{plan}");
    let mut parallel: Vec<(i32, String)> = p.query(query, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    parallel.sort();
    assert_eq!(parallel.into_iter().map(|(_, h)| h).collect::<Vec<_>>(), native_hash);
}

#[test]
fn malformed_json_raises_the_native_sqlstate() {
    let (native, portable) = databases("scalar_badjson");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut cases: Vec<String> = [
        "", " ", "{", "}", "not json", "{\"a\":1,}", "[1,]", "{\"a\"}", "{\"a\" 1}", "01", "1.", ".5", "+1", "-", "1e", "1e+",
        "NaN", "Infinity", "[1 2]", "\"\t\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
        "{\"\\ud800\":1}", "1e400", "-1e400", "[1e400, 2]", "{\"a\":1e400,\"a\":1}", "[1.7976931348623159e308]",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791",
        "[1e99999999999]", "[1e-99999999999]", "true false", "nul", "\"a\" x", "[\"\\u0000\", 1e400]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for depth in [126, 127, 128, 129, 5000] {
        cases.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        cases.push(format!("{}1{}", "{\"a\":[".repeat(depth / 2), "]}".repeat(depth / 2)));
    }
    cases.push("[".repeat(200));
    cases.push(format!("{}1{}", "[\n ".repeat(130), "]".repeat(130)));
    cases.push(format!("[\"é[{{\",\r\n{}]", "[ ".repeat(140)));
    cases.push(format!("{{\"a\":{{\"🏠\":{}}}}}", "{\"\\\"[\":[".repeat(70)));
    cases.push(format!("[\"{}\",{}]", "[".repeat(300), "[".repeat(100) + &"]".repeat(100)));
    for doc in &cases {
        for function in ["canonical_listing", "listing_hash"] {
            let sql = format!("SELECT resi.{function}($1::text)");
            let (want, got) = (outcome(&mut n, &sql, &[doc]), outcome(&mut p, &sql, &[doc]));
            match (&want, &got) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{doc:?}"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.code, b.code, "{doc:?}: {a:?} / {b:?}");
                    // Our own messages match; not-JSON text carries PostgreSQL's message.
                    if a.code == "22003" || a.message.contains("recursion limit") {
                        assert_eq!(a.message, b.message, "{doc:?}");
                    }
                }
                _ => panic!("{doc:?}: native {want:?}, portable {got:?}"),
            }
        }
    }
}

#[test]
fn sha256_hex_equals_native_on_bytes_and_text() {
    let (native, portable) = databases("scalar_sha");
    let mut rng = Rng(0x5EED_0017_0000_0002);
    let bytes: Vec<Vec<u8>> = (0..300).map(|i| (0..(i % 97)).map(|_| rng.next() as u8).collect()).collect();
    let texts: Vec<String> = (0..300)
        .map(|i| (0..(i % 13)).map(|_| rng.pick(&["a", "é", "🏠", "\u{1}", "'", "\\", " "])).collect())
        .collect();
    let query = "SELECT (SELECT array_agg(resi.sha256_hex(b) ORDER BY i) FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, i))
                     || (SELECT array_agg(resi.sha256_hex(t) ORDER BY i) FROM unnest($2::text[]) WITH ORDINALITY AS u(t, i))
                     || ARRAY[coalesce(resi.sha256_hex(NULL::text), 'null'), coalesce(resi.sha256_hex(NULL::bytea), 'null')]";
    let answer = |db: &TestDatabase| db.client().query_one(query, &[&bytes, &texts]).unwrap().get::<_, Vec<String>>(0);
    let native_answer = answer(&native);
    assert_eq!(native_answer[0], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(answer(&portable), native_answer);
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// How each setting is seen in effect in both editions.
fn effective(setting: &str) -> &'static str {
    match setting {
        "resi.rate_limit_tiers" => {
            "SELECT string_agg(resi.rate_limit_for(x)::text, ',' ORDER BY o) FROM unnest('{1,0.95,0.9,0.8,0.7999,0.6,0.5,0.4,0.3999,0.1,0,-0,-1,NaN,Infinity,-Infinity,5e-324,-5e-324}'::float8[]) WITH ORDINALITY AS u(x, o)"
        }
        "resi.initial_trust" => "SELECT encode(float8send(resi.initial_trust()), 'hex')",
        "resi.max_submission_rows" | "resi.over_limit_strike_attempts" | "resi.strikes_per_ban" | "resi.ban_duration"
        | "resi.max_ban_duration" => "SELECT resi.ingest_settings()::text",
        "resi.database_budget" => "SELECT resi.database_budget_bytes()::text",
        "resi.claim_half_life" => "SELECT encode(float8send(resi.claim_half_life_seconds()), 'hex')",
        _ => "", // the quality settings: compared through their display (below)
    }
}

/// The setting in effect in a session of `client`, as text comparable across editions.
fn setting_in_effect(client: &mut Client, setting: &str, portable: bool) -> Result<Option<String>, Failure> {
    match effective(setting) {
        "" if portable => match setting {
            "resi.quality_max_zip_codes" => outcome(client, "SELECT resi.setting($1)", &[&setting]),
            _ => outcome(client, "SELECT resi.c_format_g(resi.setting($1)::float8)", &[&setting]),
        },
        "" => outcome(client, "SELECT current_setting($1)", &[&setting]),
        sql => outcome(client, sql, &[]),
    }
}

const SETTING_CASES: &[(&str, &[&str])] = &[
    (
        "resi.initial_trust",
        &[
            "0.1",
            " 0.5 ",
            "1",
            "0",
            "1.5",
            "-0.1",
            "abc",
            "inf",
            "-Infinity",
            "NaN",
            "1e-310",
            "0x1p-2",
            ".5",
            "5e-1",
            "0.25x",
            "1e400",
            "2.5e-1 ",
        ],
    ),
    (
        "resi.quality_min_price",
        &["1234565", "-1234565", "-1234575", "2e300", "1e300", "123.4567", "0", "Infinity", "1e-5", "0.000123456789"],
    ),
    ("resi.quality_max_price", &["5e7", "1e301", "-0.5", "99999999"]),
    (
        "resi.quality_max_zip_codes",
        &[
            "0",
            "-1",
            "50",
            "010",
            "0x1F",
            "08",
            "1.5",
            "2.5",
            "1e3",
            " 7 ",
            "7 x",
            "2147483648",
            "99999999999",
            "1e10",
            "-0",
            "+3",
            "0x",
            ".5",
            "0x1.8",
            "1e",
        ],
    ),
    (
        "resi.ban_duration",
        &[
            "2h",
            "90",
            "10s",
            "30s",
            "0",
            "1x",
            "1 min",
            "1min ",
            "1.5h",
            "1d",
            "2147483647",
            "2147483648",
            "1e10",
            "1e400",
            "1h x",
            "min",
            "3 d",
            "100000000d",
            "0x10",
            "7ms",
            "60000ms",
            "1e-310h",
            "NaN",
            "89s",
            "91s",
            "2.5min",
            "1 h",
            "1hh",
        ],
    ),
    ("resi.max_ban_duration", &["7d", "30d", "0.5", "1us", "90000000us"]),
    (
        "resi.database_budget",
        &["1.5GB", "1kB", "1TB", "2048", "8GB", "1 GB", "1gb", "1B", "1048576B", "3000TB", "1536kB", "1.9MB"],
    ),
    ("resi.claim_half_life", &["0", "2h", "-1", "1s", "45s", "29s"]),
    ("resi.strikes_per_ban", &["1min", "2", "0"]),
    ("resi.max_submission_rows", &["10", "0"]),
    ("resi.over_limit_strike_attempts", &["1", "0"]),
    (
        "resi.rate_limit_tiers",
        &[
            "0.9:50, 0.1:5",
            "0.9=50",
            "",
            " 0.5 : 20 ,0.9:50",
            "0:0",
            "x:1",
            "0.5:-1",
            "0.5:1.5",
            "NaN:5",
            "inf:5",
            "0.5:1,0.5:2",
            "0.5:99999999999",
            "0.8:1;0.2:3",
            "1e-400:5, 0:6",
            "-0:1, 0:2",
            "1e400:5",
            "+.5:+7",
            "1.:3",
            ".5e1:2",
            "x\u{301}\"\t:1",
            "0.5:1,",
            ",0.5:1",
            "\u{a0}0.5:1\u{3000}",
            "0.5 :1: 2",
            ":5",
            "0.5:",
            "-1e-5:3, 0.5:9",
            "0.5:-0",
            "2147483647:2147483647",
            "0.5:2147483648",
        ],
    ),
];

#[test]
fn settings_have_the_native_defaults_and_validation_messages() {
    let (native, portable) = databases("scalar_settings");
    let (mut n, mut p) = (native.client(), portable.client());
    n.batch_execute("SELECT resi.initial_trust()").unwrap(); // loads the library: its GUCs exist
    let (mut accepted, mut refused) = (0, 0);
    for (setting, values) in SETTING_CASES {
        assert_eq!(
            setting_in_effect(&mut p, setting, true),
            setting_in_effect(&mut n, setting, false),
            "default of {setting}"
        );
        for value in *values {
            let set = format!("SET {setting} = '{}'", value.replace('\'', "''"));
            // Natively SET refuses a bad value; the portable edition refuses it when read.
            let want = run(&mut n, &set).and_then(|()| setting_in_effect(&mut n, setting, false));
            run(&mut p, &set).unwrap();
            let got = setting_in_effect(&mut p, setting, true);
            if value.is_empty() {
                // A placeholder set to '' reads as one RESET: the portable edition takes it as
                // unset (the default), where native SET refuses ''.
                assert_eq!(got, setting_in_effect(&mut n, setting, false), "SET {setting} = ''");
            } else {
                assert_eq!(got, want, "SET {setting} = {value:?}");
            }
            if want.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
            // The same through the settings table, checked when written.
            run(&mut p, &format!("RESET {setting}")).unwrap();
            let insert = p.execute("INSERT INTO resi.settings (name, value) VALUES ($1, $2)", &[setting, value]);
            let got = insert.map_err(|e| failure("INSERT", e)).and_then(|_| setting_in_effect(&mut p, setting, true));
            assert_eq!(got, want, "INSERT {setting} = {value:?}");
            p.execute("DELETE FROM resi.settings", &[]).unwrap();
            run(&mut n, &format!("RESET {setting}")).unwrap();
        }
        assert_eq!(
            setting_in_effect(&mut p, setting, true),
            setting_in_effect(&mut n, setting, false),
            "reset {setting}"
        );
    }
    assert!(accepted > 60 && refused > 60, "{accepted} values accepted, {refused} refused");
    let unknown = p.execute("INSERT INTO resi.settings (name, value) VALUES ('resi.no_such_setting', '1')", &[]);
    assert_eq!(unknown.map_err(|e| failure("INSERT", e)).unwrap_err().code, "42704");
    assert_eq!(outcome(&mut p, "SELECT resi.setting('work_mem')", &[]).unwrap_err().code, "42704");
}

#[test]
fn a_loader_cannot_raise_its_own_limits() {
    let (native, portable) = databases("scalar_loader");
    for db in [&native, &portable] {
        db.client()
            .batch_execute(
                "DO $$ BEGIN CREATE ROLE resi_admin NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
                 GRANT USAGE ON SCHEMA resi TO PUBLIC",
            )
            .unwrap();
    }
    let sql = "SELECT resi.rate_limit_for(0.5)::text";
    for (db, portable) in [(&native, false), (&portable, true)] {
        let loader = db.login(None);
        let mut client = resi_e2e::connect(&loader.url);
        client.batch_execute("SELECT resi.initial_trust()").unwrap();
        // Natively SET is refused (42501); the portable edition refuses the value when read.
        let refused =
            run(&mut client, "SET resi.rate_limit_tiers = '0:1000000'").and_then(|()| outcome(&mut client, sql, &[]));
        assert_eq!(refused.unwrap_err().code, "42501", "portable: {portable}");
        if portable {
            run(&mut client, "RESET resi.rate_limit_tiers").unwrap();
        }
        assert_eq!(outcome(&mut client, sql, &[]).unwrap().as_deref(), Some("1000"));
        if portable {
            // Nor may it write the settings table; a session-level value from its connection
            // options is refused like SET.
            let write = client
                .execute("INSERT INTO resi.settings (name, value) VALUES ('resi.rate_limit_tiers', '0:1000000')", &[]);
            assert_eq!(write.map_err(|e| failure("INSERT", e)).unwrap_err().code, "42501");
            let mut with_options = resi_e2e::connect(&format!("{}?options=-c%20resi.initial_trust%3D0.9", loader.url));
            assert_eq!(outcome(&mut with_options, "SELECT resi.initial_trust()::text", &[]).unwrap_err().code, "42501");
            // A member of resi_admin may SET them for its session, as natively.
            let admin = db.login(Some("resi_admin"));
            let mut client = resi_e2e::connect(&admin.url);
            run(&mut client, "SET resi.rate_limit_tiers = '0:7'").unwrap();
            assert_eq!(outcome(&mut client, sql, &[]).unwrap().as_deref(), Some("7"));
            run(&mut client, "SET resi.rate_limit_tiers = '0=7'").unwrap();
            assert_eq!(outcome(&mut client, sql, &[]).unwrap_err().code, "22023");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trust
// ---------------------------------------------------------------------------------------------

type Evidence = (i64, i64, f64, f64, f64);

fn earned(client: &mut Client, cases: &[Evidence]) -> Vec<String> {
    let audited: Vec<i64> = cases.iter().map(|c| c.0).collect();
    let wrong: Vec<i64> = cases.iter().map(|c| c.1).collect();
    let corroborated: Vec<f64> = cases.iter().map(|c| c.2).collect();
    let agreeing: Vec<f64> = cases.iter().map(|c| c.3).collect();
    let initial: Vec<f64> = cases.iter().map(|c| c.4).collect();
    client
        .query_one(
            "SELECT array_agg(encode(float8send(resi.earned_trust(a, w, c, g, t)), 'hex') ORDER BY o)
               FROM unnest($1::int8[], $2::int8[], $3::float8[], $4::float8[], $5::float8[]) WITH ORDINALITY AS u(a, w, c, g, t, o)",
            &[&audited, &wrong, &corroborated, &agreeing, &initial],
        )
        .unwrap()
        .get(0)
}

#[test]
fn earned_trust_is_bit_identical_to_native() {
    let (native, portable) = databases("scalar_trust");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5EED_0017_0000_0003);
    let rows = [
        0.0,
        5e-324,
        1e-310,
        2.5e-308,
        1e-20,
        0.3,
        1.0,
        7.5,
        99.99999999999999,
        100.0,
        1234.5,
        1e6,
        1e15,
        1e300,
        1.7976931348623157e308,
    ];
    let initials = [0.0, 1.0, 0.25, 0.1, 0.5, 0.9999999999999999, 1e-300, 5e-324];
    let mut cases: Vec<Evidence> = Vec::new();
    for _ in 0..2500 {
        let audited = match rng.below(4) {
            0 => rng.below(5) as i64,
            1 => rng.below(1000) as i64,
            2 => (rng.next() >> 1) as i64,
            _ => i64::MAX - rng.below(3) as i64,
        };
        let wrong = if audited == 0 { 0 } else { (rng.next() % (audited as u64 + 1)) as i64 };
        let corroborated = if rng.below(2) == 0 {
            rows[rng.below(rows.len() as u64) as usize]
        } else {
            rng.below(100_000) as f64 / 8.0
        };
        let agreeing = match rng.below(5) {
            0 => corroborated,
            1 => 0.0,
            2 => corroborated + 1e-10,
            3 => corroborated * (rng.below(1000) as f64 / 1000.0),
            _ => f64::min(5e-324 * rng.below(4) as f64, corroborated),
        };
        let initial = if rng.below(2) == 0 {
            initials[rng.below(initials.len() as u64) as usize]
        } else {
            rng.below(1 << 53) as f64 / (1u64 << 53) as f64
        };
        cases.push((audited, wrong, corroborated, agreeing, initial));
    }
    assert_eq!(earned(&mut p, &cases), earned(&mut n, &cases));

    // Errors: negative counts, counts out of order, non-finite rows, bad initial trust, NULLs.
    let bad = [
        "-1, 0, 0, 0, 0.25",
        "0, -1, 0, 0, 0.25",
        "1, 2, 0, 0, 0.25",
        "1, 0, 1, 2, 0.25",
        "1, 0, 'NaN', 0, 0.25",
        "1, 0, 1, 'NaN', 0.25",
        "1, 0, 1, -1, 0.25",
        "1, 0, 'Infinity', 1, 0.25",
        "1, 0, '-Infinity', 0, 0.25",
        "1, 0, 1, 'Infinity', 0.25",
        "1, 0, 0, 0, 1.5",
        "1, 0, 0, 0, -0.1",
        "1, 0, 0, 0, 'NaN'",
        "1, 0, 0, 0, 'Infinity'",
        "1, 0, 1e21, 2e21, 0.5",
        "1, 0, 1e-7, 1, 0.5",
        "1, 0, 5e-324, 1e-300, 0.5",
        "1, 0, 0, 0, 1e22",
        "1, 0, 0, 0, -1e-7",
        // Display's digits where float8out's differ: an integer above 2^53 (…830, not …832) and
        // a tie between two shortest candidates (…312.3, not …312.2).
        "1, 0, 0, 0, 19163991894051832",
        "1, 0, 1, 562949953421312.25, 0.25",
        "NULL, 0, 0, 0, 0.25",
        "0, 0, 0, 0, NULL",
    ];
    for args in bad {
        let sql = format!("SELECT encode(float8send(resi.earned_trust({args})), 'hex')");
        assert_eq!(outcome(&mut p, &sql, &[]), outcome(&mut n, &sql, &[]), "{args}");
    }
}

#[test]
fn claim_recency_and_initial_trust_are_bit_identical_to_native() {
    let (native, portable) = databases("scalar_recency");
    let (mut n, mut p) = (native.client(), portable.client());
    let mut rng = Rng(0x5EED_0017_0000_0004);
    let mut ages: Vec<String> = [
        "0",
        "-1 hour",
        "1 microsecond",
        "-1 microsecond",
        "1 hour",
        "2 hours",
        "3 hours",
        "6 hours",
        "6 hours 1 microsecond",
        "1 mon",
        "1 year",
        "-1 mon 3 days",
        "1 mon -30 days",
        "1 mon -30 days 1 microsecond",
        "100 years",
        "-100 years",
        "23:59:59.999999",
        "1 day -24:00:00",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..1500 {
        let months = rng.below(40) as i64 - 10;
        let days = rng.below(90) as i64 - 20;
        let micros = (rng.next() % 100_000_000_000) as i64 - 20_000_000_000;
        ages.push(format!("{months} mons {days} days {micros} microseconds"));
        // Within three half-lives, where the weight is 0.5^(age / half-life).
        let scale = 10u64.pow(6 + rng.below(7) as u32);
        ages.push(format!("{} microseconds", rng.below(scale)));
    }
    let query = "SELECT array_agg(coalesce(encode(float8send(resi.claim_recency(a::interval)), 'hex'), 'null') ORDER BY o)::text
                   || encode(float8send(resi.initial_trust()), 'hex') FROM unnest($1::text[] || NULL::text) WITH ORDINALITY AS u(a, o)";
    for half_life in ["DEFAULT", "'0'", "'1min'", "'45s'", "'7'", "'2147483647'"] {
        for (client, portable) in [(&mut n, false), (&mut p, true)] {
            run(client, &format!("SET resi.claim_half_life = {half_life}; SET resi.initial_trust = 0.3"))
                .unwrap_or_else(|e| panic!("{portable}: {e:?}"));
        }
        let want = outcome(&mut n, query, &[&ages]);
        assert!(want.is_ok(), "{want:?}");
        assert_eq!(outcome(&mut p, query, &[&ages]), want, "half-life {half_life}");
    }
}

#[test]
fn claim_recency_seconds_is_resi_core_claim_recency() {
    let portable = TestDatabase::with_edition("scalar_recency_s", Edition::Portable);
    let mut rng = Rng(0x5EED_0017_0000_0006);
    let special = [
        0.0,
        -0.0,
        1e-6,
        1.0,
        59.0,
        60.0,
        7200.0,
        21600.0,
        1e-20,
        5e-324,
        1e-310,
        0.5,
        1e300,
        f64::MAX,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for &a in &special {
        for &h in &special {
            pairs.push((a, h));
        }
    }
    for _ in 0..3000 {
        let a = if rng.below(3) == 0 { f64::from_bits(rng.next()) } else { rng.below(1 << 40) as f64 / 1e6 };
        let h = if rng.below(3) == 0 { f64::from_bits(rng.next()) } else { (rng.below(3000) * 60) as f64 };
        pairs.push((a, h));
    }
    let (ages, halves): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let got: Vec<f64> = portable
        .client()
        .query_one(
            "SELECT array_agg(resi.claim_recency_seconds(a, h) ORDER BY o) FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(a, h, o)",
            &[&ages, &halves],
        )
        .unwrap()
        .get(0);
    for (i, (a, h)) in pairs.iter().enumerate() {
        let want = resi_core::trust::claim_recency(*a, *h);
        assert_eq!(got[i].to_bits(), want.to_bits(), "claim_recency({a:e}, {h:e}): {} against {want}", got[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_s3_key_equals_native_on_valid_and_malformed_keys() {
    let (native, portable) = databases("scalar_keys");
    let (mut n, mut p) = (native.client(), portable.client());
    let hk = "5DvggEsdjznNNvnQ4q6B52JTsSfYCWbCcJRFyMSrYvoZzutr";
    let mut keys: Vec<String> = vec![
        format!("data/hotkey={hk}/job_id=zillow_zip_77494/data_20250910_161551_2201.parquet"),
        format!("hotkey={hk}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("x/y/hotkey={hk}/job_id=j/data_20240229_000000_0.parquet"),
        format!("hotkey={hk}/job_id=z/x/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("hotkey={hk}/a/job_id=/job_id=z/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("hotkey={hk}/job_id=\u{1}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("hotkey=old/x/hotkey={hk}/job_id=j/data_20250910_161551_7.parquet"),
        format!("hotkey={hk}/x/hotkey=/job_id=j/data_20250910_161551_7.parquet"),
        String::new(),
        "/".into(),
        "data/".into(),
        "notes.txt".into(),
        "hotkey=".into(),
        "hotkey=a".into(),
        "hotkey=a/".into(),
        format!("data/hotkey={hk}/job_id=j/notes.txt"),
        format!("data/hotkey={hk}/job_id=j/"),
        "data/hotkey=/job_id=j/data_20250910_161551_1.parquet".into(),
        format!("data/hotkey={hk}/job_id=/data_20250910_161551_1.parquet"),
        format!("data/hotkey={hk}/data_20250910_161551_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_1.parquet.tmp"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_-1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_2147483647.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_2147483648.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_0000000000000000001.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_00000000000000000001.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_99999999999999999999999.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250910_161551_1_2.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_.parquet"),
        format!("data/hotkey={hk}/job_id=j/data__1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250230_161551_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20230229_000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_19000229_000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20000229_000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20251301_000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250101_240000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250101_235960_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_20250101_235959_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_00000101_000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_00010101_000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_99991231_235959_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_2025010_1000000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_2025+101_100000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j/data_２０２５0101_100000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j\n/data_20250101_100000_1.parquet"),
        format!("data/hotkey={hk}/job_id=j\u{85}/data_20250101_100000_1.parquet"),
        format!("data/hotkey={hk}\u{7f}/job_id=j/data_20250101_100000_1.parquet"),
        format!("data/hotkey={hk}\u{a0}/job_id=j/data_20250101_100000_1.parquet"),
        format!("data/hotkey={hk}/epoch=2025-10-07T25-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("data/hotkey={hk}/epoch=2025-10-07/zipcode=77494/data_20251007_130211.json"),
        format!("data/hotkey={hk}/epoch=2025-02-29T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("data/hotkey={hk}/epoch=2025-10-07T12-00-00/zipcode=/data_20251007_130211.json"),
        format!("data/hotkey={hk}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211_5.json"),
        format!("data/hotkey={hk}/epoch=2025-10-07T12-00-00/zipcode=77494/data_2025-10-07T12-00-00.json"),
        format!("data/hotkey={hk}/epoch=20251007_120000/zipcode=77494/data_20251007_130211.json"),
        format!("data/hotkey={hk}/epoch=2025-10-07t12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("data/hotkey={hk}/zipcode=77494/data_20251007_130211.json"),
        "'; DROP TABLE resi.listings; --".into(),
        "hotkey=x/job_id=y/data_\u{1}.parquet".into(),
        "\u{fffd}\u{202e}hotkey=\u{1F3E0}".into(),
        "hotkey=\u{1F3E0}/job_id=\u{e9}/data_20250101_000000_3.parquet".into(),
        "hotkey=/hotkey=a/job_id=j/data_20250101_000000_3.parquet".into(),
        "repeat".repeat(2000) + "/hotkey=a/job_id=j/data_20250101_000000_3.parquet",
        "hotkey=/".repeat(10_000),
    ];
    // Mutations of valid keys: a character replaced, inserted or removed.
    let mut rng = Rng(0x5EED_0017_0000_0005);
    let seeds = [keys[0].clone(), keys[1].clone(), keys[3].clone()];
    let alphabet = [
        "/", "_", "-", "=", ".", "0", "1", "9", "T", "t", "a", "\u{1}", "\u{e9}", "é", " ", "json", "parquet",
        "hotkey=", "job_id=",
    ];
    for _ in 0..1500 {
        let seed: Vec<char> = seeds[rng.below(3) as usize].chars().collect();
        let at = rng.below(seed.len() as u64) as usize;
        let mut key: String = seed[..at].iter().collect();
        match rng.below(3) {
            0 => key.push_str(rng.pick(&alphabet)),
            1 => {
                key.push_str(rng.pick(&alphabet));
                key.push(seed[at]);
            }
            _ => {}
        }
        key.extend(&seed[at + 1..]);
        keys.push(key);
    }
    // resi_core 0.5.0 panics (XX000) on a file name of 15 bytes whose digit groups split a
    // multi-byte character; the portable edition gives NULL, as the function promises.
    keys.push(format!("hotkey={hk}/job_id=j/data_202é101_000000_1.parquet"));
    keys.push(format!("hotkey={hk}/job_id=j/data_20250101_1é000_1.parquet"));
    let sql = "SELECT resi.parse_s3_key($1)::text";
    let mut parsed = 0;
    for key in &keys {
        let (want, got) = (outcome(&mut n, sql, &[key]), outcome(&mut p, sql, &[key]));
        match want {
            Err(native_panic) if native_panic.code == "XX000" && native_panic.message.contains("char boundary") => {
                assert_eq!(got, Ok(None), "{key:?}")
            }
            want => assert_eq!(got, want, "{key:?}"),
        }
        parsed += usize::from(matches!(got, Ok(Some(_))));
    }
    assert!(parsed > 100, "the mutations keep some keys valid: {parsed}");
    assert_eq!(outcome(&mut p, "SELECT resi.parse_s3_key(NULL)::text", &[]), Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

#[test]
fn rate_limit_for_equals_native_for_every_trust() {
    let (native, portable) = databases("scalar_rate");
    let trusts: Vec<f64> = vec![
        1.0,
        0.8,
        0.7999,
        0.6,
        0.4,
        0.3999,
        0.0,
        -0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        0.799_999_999_999_999_9,
        1e300,
    ];
    let query = "SELECT array_agg(coalesce(resi.rate_limit_for(t)::text, 'null') ORDER BY o)::text FROM unnest($1::float8[] || NULL::float8) WITH ORDINALITY AS u(t, o)";
    for tiers in [
        "DEFAULT",
        "'0.9:50, 0.1:5'",
        "'0:0'",
        "' 0.5 : 20 ,0.9:50'",
        "'-1e-5:3, 0.5:9, 1e-400:4'",
        "'0.79999999999999993:1, 0.8:2'",
    ] {
        let answers: Vec<_> = [&native, &portable]
            .iter()
            .map(|db| {
                let mut client = db.client();
                client.batch_execute("SELECT resi.initial_trust()").unwrap();
                run(&mut client, &format!("SET resi.rate_limit_tiers = {tiers}")).unwrap();
                outcome(&mut client, query, &[&trusts])
            })
            .collect();
        assert!(answers[0].is_ok(), "{:?}", answers[0]);
        assert_eq!(answers[1], answers[0], "tiers {tiers}");
    }
}

#[test]
fn check_miner_rate_limit_equals_native_with_its_privileges() {
    let (native, portable) = databases("scalar_check");
    let rows = "INSERT INTO resi.miner_trust (miner_hotkey, trust_score, banned_until, ban_reason) VALUES
                    ('good', 0.85, NULL, NULL), ('mid', 0.5, NULL, NULL), ('low', 0.1, NULL, NULL),
                    ('bad', 0.9, 'infinity', 'fake'), ('was-bad', 0.9, now() - interval '1 day', 'served'),
                    ('x''); DROP TABLE resi.miner_trust; --', 0.65, NULL, NULL);
                INSERT INTO resi.miner_submission_days (miner_hotkey, day, submissions) VALUES
                    ('good', '2025-09-17', 9990), ('mid', '2025-09-10', 1000), ('low', '2025-09-10', 99),
                    ('new-miner', '2025-09-10', 100), ('bad', '2025-09-10', 0), ('was-bad', '2025-09-10', 9999)";
    let calls = [
        "'new-miner'",
        "'new-miner', 100",
        "'new-miner', 101",
        "'new-miner', 0, '2025-09-10'",
        "'new-miner', 1, '2025-09-10'",
        "'good', 10, '2025-09-17'",
        "'good', 11, '2025-09-17'",
        "'good', 10000, '2025-09-18'",
        "'mid', 1, '2025-09-10'",
        "'mid', 1, '2025-09-11'",
        "'mid', 0, '2025-09-10'",
        "'low', 1, '2025-09-10'",
        "'low', 2, '2025-09-10'",
        "'bad'",
        "'bad', 0",
        "'was-bad', 1, '2025-09-10'",
        "'was-bad', 2, '2025-09-10'",
        "'', 100",
        "'', 101",
        "'good', 2147483647",
        "'mid', -1",
        "NULL",
        "'mid', NULL",
        "'mid', 1, NULL",
        "'x''); DROP TABLE resi.miner_trust; --', 5000",
        "'x''); DROP TABLE resi.miner_trust; --', 5001",
    ];
    let answers = |db: &TestDatabase| -> Vec<_> {
        let mut client = db.client();
        client.batch_execute(rows).unwrap();
        calls
            .iter()
            .map(|args| outcome(&mut client, &format!("SELECT resi.check_miner_rate_limit({args})::text"), &[]))
            .collect()
    };
    assert_eq!(answers(&portable), answers(&native));

    // The check reads the tables as its caller: SELECT on both is needed, in the same order.
    let denied = |db: &TestDatabase| -> Vec<_> {
        let outsider = db.login(None);
        db.client().batch_execute(&format!("GRANT USAGE ON SCHEMA resi TO {}", outsider.name)).unwrap();
        let mut client = resi_e2e::connect(&outsider.url);
        let mut seen = vec![outcome(&mut client, "SELECT resi.check_miner_rate_limit('good')::text", &[])];
        db.client().batch_execute(&format!("GRANT SELECT ON resi.miner_trust TO {}", outsider.name)).unwrap();
        for args in ["'bad'", "'good'"] {
            seen.push(outcome(&mut client, &format!("SELECT resi.check_miner_rate_limit({args})::text"), &[]));
        }
        db.client()
            .batch_execute(&format!(
                "REVOKE ALL ON SCHEMA resi FROM {0}; REVOKE ALL ON resi.miner_trust FROM {0}",
                outsider.name
            ))
            .unwrap();
        seen
    };
    let native_denied = denied(&native);
    assert_eq!(native_denied[0].as_ref().unwrap_err().code, "42501");
    assert_eq!(denied(&portable), native_denied);
}
