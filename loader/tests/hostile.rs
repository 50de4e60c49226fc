//! Hostile uploads, one kind per object, generated here (issue 6): each ends `rejected` with a
//! specific reason, or `loaded` with its bad values dropped or kept verbatim as the rules say,
//! while a good object in the same pass loads normally.

mod common;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::TimestampNanosecondArray;
use arrow_array::{ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray, StructArray};
use arrow_schema::{DataType, Field};
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const HK: &str = "data/hotkey=5HostileMinerHotkeyXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";

fn key(job: &str, stamp: &str, rows: usize) -> String {
    format!("{HK}/job_id={job}/data_20250917_{stamp}_{rows}.parquet")
}

fn text(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn zpids(first: u64, rows: usize) -> ArrayRef {
    text((0..rows as u64).map(|i| (first + i).to_string()))
}

/// What the pass decided for one object: status, the reason's code, rows attested.
fn outcomes(url: &str) -> BTreeMap<String, (String, String, i64)> {
    connect(url)
        .query(
            "SELECT object_key, status, coalesce(split_part(reason, ':', 1), ''), coalesce(rows_attested, 0)::bigint
               FROM resi.ingest_ledger",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

#[test]
fn every_kind_of_hostile_upload_has_its_outcome_and_the_good_one_loads() {
    let dir = TempDir::new("hostile");
    let root = dir.0.as_path();
    let at = |k: &str| root.join(k);
    let mut expected: BTreeMap<String, (&str, &str, i64)> = BTreeMap::new();

    // A good upload: it loads whatever the others do.
    let good = key("zillow_zip_77494", "080000", 20);
    write_upload(&at(&good), 90_000_000, 20, 1, 1024);
    expected.insert(good.clone(), ("loaded", "", 20));
    let good_bytes = std::fs::read(at(&good)).unwrap();

    // 1. A zero-byte file.
    let k = key("empty", "080100", 10);
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), b"").unwrap();
    expected.insert(k, ("rejected", "empty_file", 0));

    // 2. A truncated footer (the last 100 bytes cut).
    let k = key("truncated", "080200", 20);
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), &good_bytes[..good_bytes.len() - 100]).unwrap();
    expected.insert(k, ("rejected", "truncated", 0));

    // 3. Wrong magic: the trailing PAR1 overwritten.
    let k = key("magic", "080300", 20);
    let mut bytes = good_bytes.clone();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(b"XXXX");
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), &bytes).unwrap();
    expected.insert(k, ("rejected", "truncated", 0)); // no Parquet footer at the end

    // 4. A valid footer over corrupt pages: the column data overwritten with garbage.
    let k = key("pages", "080400", 20);
    let mut bytes = good_bytes.clone();
    for b in &mut bytes[8..72] {
        *b = 0xA5;
    }
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), &bytes).unwrap();
    expected.insert(k, ("rejected", "corrupt_data", 0));

    // 5. JSON where Parquet is expected.
    let k = key("json_in_parquet", "080500", 1);
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), br#"{"zpid": "1", "price": 100000}"#).unwrap();
    expected.insert(k, ("rejected", "not_parquet", 0));

    // 6. Parquet where epoch JSON is expected.
    let k = format!("{HK}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json");
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), &good_bytes).unwrap();
    expected.insert(k, ("rejected", "not_json", 0));

    // 7. A Parquet file with no column we know.
    let k = key("unknown_columns", "080700", 3);
    write_columns(&at(&k), vec![("foo", text(["a", "b", "c"].map(String::from))), ("bar", zpids(1, 3))], 1024);
    expected.insert(k, ("rejected", "no_known_columns", 0));

    // 8. Every zpid NULL: no row can be attested.
    let k = key("null_zpids", "080800", 3);
    write_columns(
        &at(&k),
        vec![
            ("zpid", Arc::new(StringArray::from(vec![None::<&str>, None, None]))),
            ("price", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        ],
        1024,
    );
    expected.insert(k, ("rejected", "no_zpid", 0));

    // 9-11. A zpid column of an unexpected type: list, struct, binary.
    let k = key("zpid_list", "080900", 2);
    let mut list = ListBuilder::new(StringBuilder::new());
    list.values().append_value("1");
    list.append(true);
    list.values().append_value("2");
    list.append(true);
    write_columns(
        &at(&k),
        vec![("zpid", Arc::new(list.finish())), ("price", Arc::new(Int64Array::from(vec![1, 2])))],
        1024,
    );
    expected.insert(k, ("rejected", "no_zpid", 0)); // no zpid can be read from a list

    let k = key("zpid_struct", "081000", 2);
    let inner: ArrayRef = text(["1", "2"].map(String::from));
    let structure = StructArray::from(vec![(Arc::new(Field::new("id", DataType::Utf8, true)), inner)]);
    write_columns(
        &at(&k),
        vec![("zpid", Arc::new(structure)), ("price", Arc::new(Int64Array::from(vec![1, 2])))],
        1024,
    );
    expected.insert(k, ("rejected", "unsupported_column_type", 0));

    let k = key("zpid_binary", "081100", 2);
    let binary = BinaryArray::from(vec![&b"1"[..], &b"\xff\xfe"[..]]);
    write_columns(&at(&k), vec![("zpid", Arc::new(binary)), ("price", Arc::new(Int64Array::from(vec![1, 2])))], 1024);
    // Binary zpids are read as text where they are UTF-8: the invalid one is a dropped row.
    expected.insert(k, ("loaded", "", 1));

    // 12. A key outside the layout.
    let k = format!("{HK}/somewhere/else.parquet");
    std::fs::create_dir_all(at(&k).parent().unwrap()).unwrap();
    std::fs::write(at(&k), &good_bytes).unwrap();
    expected.insert(k, ("rejected", "key_layout", 0));

    // 13. A huge number of tiny row groups: 3,000 groups of one row each.
    let k = key("tiny_row_groups", "081300", 3000);
    write_upload(&at(&k), 91_000_000, 3000, 2, 1);
    expected.insert(k, ("loaded", "", 3000));

    // 14. A lying row count: the name says 4,000, the file holds 5.
    let k = key("lying_count", "081400", 4000);
    write_upload(&at(&k), 92_000_000, 5, 3, 1024);
    expected.insert(k, ("loaded", "", 5));

    let f = |v: [f64; 4]| -> ArrayRef { Arc::new(Float64Array::from(v.to_vec())) };
    // 15. NaN and ±Infinity in every number column.
    let k = key("nan_everywhere", "081500", 4);
    write_columns(
        &at(&k),
        vec![
            ("zpid", zpids(93_000_000, 4)),
            ("price", f([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN])),
            ("bedrooms", f([f64::NEG_INFINITY, f64::NAN, f64::INFINITY, f64::NAN])),
            ("bathrooms", f([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN])),
            ("living_area", f([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN])),
            ("days_on_zillow", f([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN])),
            ("latitude", f([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN])),
            ("longitude", f([f64::INFINITY, f64::NAN, f64::NEG_INFINITY, f64::NAN])),
        ],
        1024,
    );
    expected.insert(k, ("loaded", "", 4));

    // 16. Negative and absurd numbers.
    let k = key("absurd_numbers", "081510", 4);
    write_columns(
        &at(&k),
        vec![
            ("zpid", zpids(93_100_000, 4)),
            ("price", f([-5.0, 1e300, 9.3e18, 0.5])),
            ("bedrooms", f([-3.0, 1e12, 2.7, 3.0])),
            ("bathrooms", f([-1.0, 1e9, 2.5, 1e-300])),
            ("living_area", Arc::new(Int64Array::from(vec![i64::MIN, -1, i64::MAX, 0]))),
            ("latitude", f([1000.0, -91.0, 29.7, -1e308])),
            ("longitude", f([-1e308, 181.0, -95.8, 1e-320])),
        ],
        1024,
    );
    expected.insert(k, ("loaded", "", 4));

    // 17. Timestamps far in the past and future (the limits of nanosecond time: 1677 and 2262).
    let k = key("far_timestamps", "081520", 4);
    write_columns(
        &at(&k),
        vec![
            ("zpid", zpids(93_200_000, 4)),
            (
                "datetime",
                Arc::new(
                    TimestampNanosecondArray::from(vec![i64::MIN + 1, i64::MAX, 0, 4_102_444_800_000_000_000])
                        .with_timezone("UTC"),
                ),
            ),
        ],
        1024,
    );
    expected.insert(k, ("loaded", "", 4));

    // 18-20. Hostile strings: SQL injection (stored verbatim), a million characters, NUL bytes.
    let injection = "'); DROP TABLE resi.listings; --";
    for (i, (job, value)) in [
        ("sql_injection", injection.to_string()),
        ("million_chars", "x".repeat(1_000_000)),
        ("nul_bytes", "Oak\0St".to_string()),
    ]
    .into_iter()
    .enumerate()
    {
        let k = key(job, &format!("0816{i}0"), 2);
        write_columns(
            &at(&k),
            vec![
                ("zpid", zpids(94_000_000 + 10 * i as u64, 2)),
                ("address", text([value.clone(), value])),
                ("city", text(["Robert'); DROP TABLE students;--".to_string(), "Katy".into()])),
            ],
            1024,
        );
        expected.insert(k, ("loaded", "", 2));
    }

    // 21. Duplicate column names: two `price` columns.
    let k = key("duplicate_columns", "081700", 2);
    write_columns(
        &at(&k),
        vec![
            ("zpid", zpids(95_000_000, 2)),
            ("price", Arc::new(Int64Array::from(vec![100_000, 200_000]))),
            ("price", Arc::new(Int64Array::from(vec![1, 2]))),
        ],
        1024,
    );
    expected.insert(k, ("rejected", "duplicate_columns", 0));

    // 22. Invalid UTF-8 in a text column (a binary `city`).
    let k = key("invalid_utf8", "081800", 2);
    let city = BinaryArray::from(vec![&b"Katy"[..], &b"K\xffty"[..]]);
    write_columns(&at(&k), vec![("zpid", zpids(96_000_000, 2)), ("city", Arc::new(city))], 1024);
    expected.insert(k, ("loaded", "", 2));

    // 23. A nested type where a scalar belongs (`address` as a struct).
    let k = key("nested_address", "081900", 2);
    let inner: ArrayRef = text(["1 Oak St", "2 Oak St"].map(String::from));
    let nested = StructArray::from(vec![(Arc::new(Field::new("street", DataType::Utf8, true)), inner)]);
    write_columns(&at(&k), vec![("zpid", zpids(97_000_000, 2)), ("address", Arc::new(nested))], 1024);
    expected.insert(k, ("rejected", "unsupported_column_type", 0));

    let db = TestDatabase::new("loader_hostile_kinds");
    let summary = RT.block_on(load(&db.url, local(root)));
    let got = outcomes(&db.url);
    let got_view: BTreeMap<String, (&str, &str, i64)> =
        got.iter().map(|(k, (s, r, n))| (k.clone(), (s.as_str(), r.as_str(), *n))).collect();
    let differences: Vec<String> = expected
        .keys()
        .chain(got_view.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got_view.get(*k) != expected.get(*k))
        .map(|k| format!("{k}: got {:?}, expected {:?}", got_view.get(k), expected.get(k)))
        .collect();
    assert!(differences.is_empty(), "{}\npass summary: {summary:?}", differences.join("\n"));
    assert_eq!(expected.len(), 24, "one object per kind, and the good one");

    // The injection strings are stored verbatim; nothing was dropped.
    let mut client = connect(&db.url);
    let stored: i64 = client
        .query_one("SELECT count(*) FROM resi.miner_attestations WHERE address = $1", &[&injection])
        .unwrap()
        .get(0);
    assert_eq!(stored, 2);
    for (job, sql, want) in [
        ("nan_everywhere", "count(*) FILTER (WHERE price IS NULL AND bathrooms IS NULL AND latitude IS NULL)", 4),
        ("sql_injection", "count(*) FILTER (WHERE city = 'Robert''); DROP TABLE students;--')", 1),
        ("nul_bytes", "count(*) FILTER (WHERE address = 'OakSt')", 2),
        ("invalid_utf8", "count(*) FILTER (WHERE city = 'Katy')", 1),
        ("million_chars", "count(*) FILTER (WHERE length(address) = 2000)", 2),
        ("far_timestamps", "count(scraped_at)", 2),
        ("absurd_numbers", "count(*) FILTER (WHERE price < 0 OR price > 1e12 OR bedrooms < 0 OR latitude > 90)", 0),
    ] {
        let got: i64 = client
            .query_one(&format!("SELECT {sql} FROM resi.miner_attestations WHERE job_id = $1"), &[&job])
            .unwrap()
            .get(0);
        assert_eq!(got, want, "{job}: {sql}");
    }
    println!("{}", row_report(&mut client));
    assert_eq!(count(&db.url, "SELECT count(*) FROM resi.listings WHERE zpid = '90000000'"), 1);
}

/// The attested values of the numeric hostile objects, for the failure message and the note.
fn row_report(client: &mut postgres::Client) -> String {
    client
        .query(
            "SELECT job_id || ' ' || zpid || ': ' || concat_ws(' ', price, bedrooms, bathrooms, living_area, latitude,
                    longitude, scraped_at, length(address)) FROM resi.miner_attestations
              WHERE job_id IN ('nan_everywhere', 'absurd_numbers', 'far_timestamps', 'million_chars') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file that changes while it is read: the ranged GETs carry `If-Match` with the listed ETag,
/// so a read after an overwrite fails as `Changed` (the pass defers the object as
/// `changed_while_reading` and reads the new version next pass) instead of mixing two versions.
#[test]
fn an_object_overwritten_while_it_is_read_is_refused_not_mixed() {
    let root = TempDir::new("s3_changed");
    let key = "data/hotkey=5Changer/job_id=zillow_zip_77494/data_20250917_080000_20.parquet";
    let path = root.0.join("resi").join(key);
    write_upload(&path, 98_000_000, 20, 1, 1024);
    let server = RT.block_on(S3Server::start(&root.0));
    let source = server.source("resi", "data/");
    let object = RT.block_on(source.list()).unwrap().into_iter().find(|o| o.key == key).expect("listed");
    let head = RT.block_on(source.read_range(&object, 0..4)).expect("the listed version reads");
    assert_eq!(&head[..], b"PAR1");
    // A new version of the object (other rows, so other bytes and another ETag), PUT as a
    // miner would overwrite it.
    let new_version = root.0.join("new.parquet");
    write_upload(&new_version, 98_000_100, 20, 2, 1024);
    let body = std::fs::read(&new_version).unwrap();
    RT.block_on(server.client().put_object().bucket("resi").key(key).body(body.into()).send()).unwrap();
    match RT.block_on(source.read_range(&object, 0..4)) {
        Err(resi_loader::source::ReadError::Changed) => {}
        other => panic!("expected ReadError::Changed after the overwrite, got {other:?}"),
    }
    // The new version is listed with its new ETag and reads.
    let again = RT.block_on(source.list()).unwrap().into_iter().find(|o| o.key == key).expect("listed");
    assert_ne!(again.etag, object.etag);
    assert!(RT.block_on(source.read_range(&again, 0..4)).is_ok());
}

/// A folder marker (an empty object whose key ends in `/`, as S3 consoles create) next to a
/// good upload does not disturb the pass. s3s-fs keeps a marker as a folder and does not list
/// it; real S3 lists it, and the loader rejects such keys as `folder_marker` before parsing them
/// (load.rs), which this server cannot show.
#[test]
fn s3_folder_markers_do_not_disturb_the_pass() {
    let root = TempDir::new("s3_marker");
    let good = format!("{HK}/job_id=zillow_zip_77494/data_20250917_080000_20.parquet");
    write_upload(&root.0.join("resi").join(&good), 99_000_000, 20, 1, 1024);
    let db = TestDatabase::new("loader_folder_marker");
    let server = RT.block_on(S3Server::start(&root.0));
    let marker = format!("{HK}/job_id=zillow_zip_77494/");
    RT.block_on(server.client().put_object().bucket("resi").key(&marker).body(Vec::new().into()).send()).unwrap();
    let summary = RT.block_on(load(&db.url, server.source("resi", "data/")));
    let got = outcomes(&db.url);
    assert_eq!(got.get(&good), Some(&("loaded".to_string(), String::new(), 20)), "{got:?} {summary:?}");
    assert!(got.keys().all(|k| k == &good || k == &marker), "{got:?}");
    if let Some(outcome) = got.get(&marker) {
        assert_eq!(outcome, &("rejected".to_string(), "folder_marker".to_string(), 0));
    }
}
