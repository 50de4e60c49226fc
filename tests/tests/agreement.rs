//! The extension and the loader share code through resi_core: what the server computes in SQL
//! must be exactly what a client computes in Rust.

use resi_e2e::{fixture, TestDatabase};
use serde_json::{json, Map, Value};
use std::path::Path;

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
}

/// A listing-like JSON object with the awkward parts of real data: padded and decomposed
/// strings, control characters, integral floats, tiny and huge numbers, nulls, nesting.
fn listing(rng: &mut Rng) -> Value {
    let strings = [
        "  Katy ",
        "Ste\u{301}phane",
        "St\u{e9}phane",
        "'); DROP TABLE resi.listings; --",
        "tab\there",
        "line\nbreak",
        "quote\"back\\slash",
        "\u{1}\u{1f}",
        "🏠 home",
        "",
        " ",
        "\u{3000}wide space\u{a0}",
        "NULL",
        "ﬁ ligature",
    ];
    let mut m = Map::new();
    m.insert("zpid".into(), json!(rng.next().to_string()));
    m.insert("address".into(), json!(rng.pick(&strings)));
    m.insert("city".into(), if rng.below(4) == 0 { Value::Null } else { json!(rng.pick(&strings)) });
    let number = match rng.below(6) {
        0 => json!(rng.below(100_000_000) as f64), // integral float: 350000.0 → 350000
        1 => json!(rng.below(1000) as f64 / 8.0),  // 2.5-style
        2 => json!(f64::from_bits(rng.next() >> 2) * 1e-300), // tiny
        3 => json!((rng.next() >> 11) as f64 * 1e10), // beyond 2^53 and 1e21
        4 => json!(-(rng.below(1_000_000) as i64)), // negative integer
        _ => json!(0.1 + rng.below(10) as f64 * 0.2), // inexact decimals
    };
    m.insert("price".into(), number);
    m.insert("bathrooms".into(), json!(rng.below(10) as f64 / 2.0));
    m.insert("latitude".into(), json!(29.0 + rng.below(1_000_000) as f64 / 1e6));
    m.insert("nested".into(), json!([1, null, {"b": " x ", "a": null}, [true, false]]));
    Value::Object(m)
}

#[test]
fn listing_hash_agrees_with_the_client() {
    let db = TestDatabase::new("hash");
    let mut client = db.client();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let statement = client
        .prepare("SELECT resi.listing_hash($1::text::jsonb), resi.listing_hash($1::text), resi.canonical_listing($1::text::jsonb)")
        .unwrap();
    for _ in 0..2000 {
        let value = listing(&mut rng);
        let text = value.to_string();
        let client_hash = resi_core::hash::listing_hash(&value).unwrap();
        let row = client.query_one(&statement, &[&text]).unwrap();
        let (via_jsonb, via_text, canonical): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(canonical, resi_core::hash::canonical_json(&value).unwrap(), "{text}");
        assert_eq!(via_jsonb, client_hash, "{text}");
        assert_eq!(via_text, client_hash, "{text}");
    }
}

/// Every key under the sample buckets, plus hand-made awkward ones.
fn keys() -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut keys = Vec::new();
    for sample in ["samples/basic", "samples/hostile"] {
        walk(&fixture(sample), &fixture(sample), &mut keys);
    }
    let hk = "hotkey=5DvggEsdjznNNvnQ4q6B52JTsSfYCWbCcJRFyMSrYvoZzutr";
    keys.extend([
        format!("{hk}/job_id=j/data_20240229_235959_1.parquet"),
        format!("{hk}/job_id=j/data_20230229_235959_1.parquet"),
        format!("{hk}/job_id=j/data_20240101_000000_2147483647.parquet"),
        format!("{hk}/job_id=j/data_20240101_000000_2147483648.parquet"),
        format!("prefix/{hk}/job_id=j/x/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("{hk}/epoch=2025-02-29T12-00-00/zipcode=77494/data_20251007_130211.json"),
        format!("{hk}/job_id=j/"),
        "hotkey=a/job_id=b/data_99991231_235959_0.parquet".to_string(),
        "'); DROP TABLE resi.listings; --".to_string(),
        "\u{202e}hotkey=\u{1F3E0}/job_id=\u{0301}/data_20250101_000000_1.parquet".to_string(),
    ]);
    keys
}

#[test]
fn parse_s3_key_agrees_with_the_client() {
    let db = TestDatabase::new("keys");
    let mut client = db.client();
    let statement = client
        .prepare(
            "SELECT (k).kind, (k).miner_hotkey, (k).job_id, (k).epoch, (k).zipcode,
                    to_char((k).file_timestamp, 'YYYYMMDD_HH24MISS'), (k).declared_rows
               FROM (SELECT resi.parse_s3_key($1) k) s WHERE (k).kind IS NOT NULL",
        )
        .unwrap();
    let keys = keys();
    assert!(keys.len() > 100, "fixtures are missing: {} keys", keys.len());
    let mut parsed = 0;
    for key in &keys {
        let server = client.query_opt(&statement, &[key]).unwrap().map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, Option<String>>(3),
                r.get::<_, Option<String>>(4),
                r.get::<_, String>(5),
                r.get::<_, Option<i32>>(6),
            )
        });
        let local = resi_core::keys::parse_s3_key(key).map(|k| {
            let t = k.file_timestamp;
            (
                k.kind.as_str().to_string(),
                k.miner_hotkey.to_string(),
                k.job_id.map(str::to_string),
                k.epoch.map(str::to_string),
                k.zipcode.map(str::to_string),
                format!("{:04}{:02}{:02}_{:02}{:02}{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second),
                k.declared_rows,
            )
        });
        assert_eq!(server, local, "{key:?}");
        parsed += usize::from(local.is_some());
    }
    // The samples hold Parquet and epoch uploads that parse, and junk that does not.
    assert!(parsed > 90 && parsed < keys.len(), "{parsed} of {} parsed", keys.len());
}
