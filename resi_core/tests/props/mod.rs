//! The properties behind issue 6's fuzzing, shared by `properties.rs` (proptest's harness: a few
//! hundred cases each in `make test`, failures kept in proptest-regressions/) and `fuzz.rs`
//! (each property for a time budget: `make fuzz`). Each is an input strategy and a check.
#![allow(dead_code)] // each harness uses all of them, but through different paths

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use resi_core::consensus::{Claim, ListingState, MedianState, ModeState};
use resi_core::hash::{canonical_json, canonical_json_of_text, listing_hash};
use resi_core::keys::parse_s3_key;
use resi_core::listing::{normalise, RawListing, MAX_TEXT_CHARS};
use serde_json::Value;

pub type Outcome = Result<(), TestCaseError>;

pub fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        -1e7..1e7f64,
        (0u32..2000).prop_map(|t| f64::from(t) / 10.0)
    ]
}

pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[0-9]{1,12}", "[ \\t]*[A-Za-z0-9_=/.:'\";-]{0,40}[ \\t]*", Just("\0".to_string())]
}

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e300..1e300f64).prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any_text(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A key in the upload layout, from its parts, and arbitrary text.
pub type KeyInput = (String, String, u32, u32, i32, String);

pub fn key_input() -> impl Strategy<Value = KeyInput> {
    ("[1-9A-HJ-NP-Za-km-z]{48}", "[a-z_0-9]{1,30}", 1u32..=28, 0u32..24, 0i32..i32::MAX, any::<String>())
}

/// Key parsing never panics on arbitrary text and reads back the parts of a layout key.
pub fn key_parsing((hotkey, job, day, hour, rows, junk): KeyInput) -> Outcome {
    let _ = parse_s3_key(&junk);
    let key = format!("data/hotkey={hotkey}/job_id={job}/data_202509{day:02}_{hour:02}0000_{rows}.parquet");
    let parsed = parse_s3_key(&key).expect("a key in the layout parses");
    prop_assert_eq!(parsed.miner_hotkey, hotkey.as_str());
    prop_assert_eq!(parsed.job_id, Some(job.as_str()));
    prop_assert_eq!(parsed.declared_rows, Some(rows));
    Ok(())
}

pub fn raw_listing() -> impl Strategy<Value = RawListing> {
    let text = || proptest::option::of(any_text());
    let number = || proptest::option::of(any_f64());
    (
        (text(), text(), text(), text()),
        (number(), number(), number(), number(), number(), number(), number()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|((zpid, uri, address, zip), (price, bedrooms, bathrooms, area, days, lat, lon), micros)| {
            RawListing {
                uri,
                datetime_micros: micros,
                label: None,
                zpid,
                price,
                address,
                bedrooms,
                bathrooms,
                living_area: area,
                home_type: None,
                home_status: None,
                days_on_zillow: days,
                zip_code: zip,
                city: None,
                state: None,
                latitude: lat,
                longitude: lon,
            }
        })
}

/// Row normalisation never panics; a kept row has a digit zpid, no NUL, bounded texts and
/// finite numbers.
pub fn normalisation(raw: RawListing) -> Outcome {
    if let Some(row) = normalise(raw, &mut |_| {}) {
        prop_assert!(!row.zpid.is_empty() && row.zpid.bytes().all(|b| b.is_ascii_digit()));
        for text in [&row.uri, &row.address, &row.zip_code].into_iter().flatten() {
            prop_assert!(!text.contains('\0'));
            prop_assert!(text.chars().count() <= MAX_TEXT_CHARS);
        }
        for v in [row.bathrooms, row.latitude, row.longitude].into_iter().flatten() {
            prop_assert!(v.is_finite());
        }
    }
    Ok(())
}

/// The canonical form behind `resi.listing_hash` is a fixed point, the same whether read from a
/// value or from its JSON text (the server hashes text, the loader values), and member order
/// does not change the hash.
pub fn canonical_form(value: Value) -> Outcome {
    let Ok(canonical) = canonical_json(&value) else { return Ok(()) };
    prop_assert_eq!(canonical_json_of_text(&canonical).unwrap(), canonical.clone());
    prop_assert_eq!(canonical_json_of_text(&value.to_string()).unwrap(), canonical.clone());
    if let Value::Object(members) = &value {
        let reversed: serde_json::Map<String, Value> =
            members.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(listing_hash(&Value::Object(reversed)).unwrap(), listing_hash(&value).unwrap());
    }
    Ok(())
}

pub fn state_bytes() -> impl Strategy<Value = (Vec<u8>, u8)> {
    (prop::collection::vec(any::<u8>(), 0..512), prop::sample::select(vec![b'M', b'D', b'L']))
}

/// The aggregates' state readers (the deserialize functions) never panic on arbitrary bytes,
/// with or without a valid magic byte, and neither does the result of what they accept.
pub fn state_readers((bytes, magic): (Vec<u8>, u8)) -> Outcome {
    let mut tagged = vec![magic, 1];
    tagged.extend_from_slice(&bytes);
    for input in [&bytes[..], &tagged[..]] {
        let _ = ModeState::deserialize(input).map(|s| s.result());
        let _ = MedianState::deserialize(input).map(|mut s| s.result());
        let _ = ListingState::deserialize(input).map(|mut s| s.result());
    }
    Ok(())
}

pub type Votes = Vec<(String, f64, f64)>;

pub fn votes() -> impl Strategy<Value = Votes> {
    prop::collection::vec((any_text(), any_f64(), 0.0..2.0f64), 0..40)
}

/// Every state survives its binary form: the result after a round trip is the result before.
pub fn state_round_trips(rows: Votes) -> Outcome {
    let (mut mode, mut median, mut listing) = (ModeState::default(), MedianState::default(), ListingState::default());
    for (text, number, weight) in &rows {
        mode.add(Some(text), Some(*weight)).unwrap();
        median.add(Some(*number), Some(*weight), Some(0.01)).unwrap();
        let claim = Claim { zpid: Some("1"), address: Some(text), latitude: Some(*number), ..Claim::default() };
        listing.add(&claim, Some(*weight)).unwrap();
    }
    prop_assert_eq!(ModeState::deserialize(&mode.serialize()).unwrap().result().unwrap(), mode.result().unwrap());
    prop_assert_eq!(
        MedianState::deserialize(&median.serialize().unwrap()).unwrap().result().unwrap(),
        median.result().unwrap()
    );
    prop_assert_eq!(
        ListingState::deserialize(&listing.serialize().unwrap()).unwrap().result().unwrap(),
        listing.result().unwrap()
    );
    Ok(())
}
