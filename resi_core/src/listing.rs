//! One miner's report of one listing, normalised.
//!
//! Readers (Parquet, epoch JSON) extract a loosely typed [`RawListing`] from whatever the miner
//! wrote; [`normalise`] turns it into a [`Listing`] with the rules below, or says why the row
//! cannot be used. Problems that only blank one field are counted as [`RowIssue`]s; a row
//! without a recoverable zpid is dropped.
//!
//! | field | rule |
//! |---|---|
//! | every string | NUL bytes removed, trimmed, at most [`MAX_TEXT_CHARS`] characters (longer: cut, counted); empty → NULL |
//! | `zpid` | digits only (1–20); taken from `uri` (`…/{zpid}_zpid/…`) when missing or invalid; none → row dropped |
//! | `zip_code` | five digits; when missing, from `label` (`zip:77494`), else from the last five-digit group of `address` |
//! | `price` | finite, 1 ≤ price ≤ 1e12, rounded to whole dollars |
//! | `bedrooms` | finite, 0–100, rounded |
//! | `bathrooms` | finite, 0–99.9, rounded to tenths |
//! | `living_area` | finite, 1–10,000,000 sq ft, rounded |
//! | `days_on_zillow` | finite, 0–36,500, rounded |
//! | `latitude`, `longitude` | finite, within ±90 / ±180 |
//! | `scraped_at` | the row's `datetime`; years 1900–2200 only |
//!
//! Values that break a rule become NULL and are counted; NaN and ±Infinity always do.

use crate::hash;
use serde_json::{Map, Value};

/// Longest string kept, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// A listing row as a reader found it: every field optional, numbers as doubles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawListing {
    pub uri: Option<String>,
    /// Microseconds since the Unix epoch (UTC).
    pub datetime_micros: Option<i64>,
    pub label: Option<String>,
    pub zpid: Option<String>,
    pub price: Option<f64>,
    pub address: Option<String>,
    pub bedrooms: Option<f64>,
    pub bathrooms: Option<f64>,
    pub living_area: Option<f64>,
    pub home_type: Option<String>,
    pub home_status: Option<String>,
    pub days_on_zillow: Option<f64>,
    pub zip_code: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A normalised report of one listing: what becomes a row of `resi.miner_attestations`.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub zpid: String,
    pub uri: Option<String>,
    pub price: Option<i64>,
    pub address: Option<String>,
    pub bedrooms: Option<i32>,
    /// Tenths are exact: 2.5, never 2.4999.
    pub bathrooms: Option<f64>,
    pub living_area: Option<i32>,
    pub home_type: Option<String>,
    pub home_status: Option<String>,
    pub days_on_zillow: Option<i32>,
    pub zip_code: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Microseconds since the Unix epoch (UTC).
    pub scraped_at_micros: Option<i64>,
}

/// A problem with one row that blanked a field or dropped the row. The names are stable,
/// machine-readable codes (they end up in `resi.ingest_ledger.row_issues`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowIssue {
    /// No zpid in the row nor in its uri: the row is dropped.
    NoZpid,
    /// The zpid column held something other than digits (the uri's zpid was used if present).
    InvalidZpid,
    /// The zpid column and the uri name different listings (the zpid column wins).
    ZpidUriMismatch,
    /// A number was NaN or ±Infinity.
    NonFinite,
    /// A number was outside its field's range.
    OutOfRange,
    /// A string was longer than [`MAX_TEXT_CHARS`] and was cut.
    TextTruncated,
    /// A string held NUL bytes, which were removed.
    NulRemoved,
    /// A zip code that is not five digits.
    InvalidZipCode,
    /// A scrape time outside 1900–2200.
    InvalidTimestamp,
}

impl RowIssue {
    pub fn code(self) -> &'static str {
        match self {
            RowIssue::NoZpid => "no_zpid",
            RowIssue::InvalidZpid => "invalid_zpid",
            RowIssue::ZpidUriMismatch => "zpid_uri_mismatch",
            RowIssue::NonFinite => "non_finite_number",
            RowIssue::OutOfRange => "out_of_range",
            RowIssue::TextTruncated => "text_truncated",
            RowIssue::NulRemoved => "nul_removed",
            RowIssue::InvalidZipCode => "invalid_zip_code",
            RowIssue::InvalidTimestamp => "invalid_timestamp",
        }
    }
}

/// Normalise one row. `issues` receives every problem found (a row may have several);
/// `None` means the row is dropped (its issue is [`RowIssue::NoZpid`]).
pub fn normalise(raw: RawListing, issues: &mut impl FnMut(RowIssue)) -> Option<Listing> {
    let uri = text(raw.uri, issues);
    let uri_zpid = uri.as_deref().and_then(zpid_from_uri);
    let zpid = match text(raw.zpid, issues) {
        Some(z) if valid_zpid(&z) => {
            if uri_zpid.is_some_and(|u| u != z) {
                issues(RowIssue::ZpidUriMismatch);
            }
            Some(z)
        }
        Some(_) => {
            issues(RowIssue::InvalidZpid);
            uri_zpid.map(str::to_owned)
        }
        None => uri_zpid.map(str::to_owned),
    };
    let Some(zpid) = zpid else {
        issues(RowIssue::NoZpid);
        return None;
    };
    let address = text(raw.address, issues);
    let label = text(raw.label, issues);
    let zip_code = match text(raw.zip_code, issues) {
        Some(z) if is_zip(&z) => Some(z),
        Some(_) => {
            issues(RowIssue::InvalidZipCode);
            None
        }
        None => None,
    }
    .or_else(|| label.as_deref().and_then(|l| l.strip_prefix("zip:")).filter(|z| is_zip(z)).map(str::to_owned))
    .or_else(|| address.as_deref().and_then(zip_from_address));
    let scraped_at_micros = raw.datetime_micros.filter(|&m| {
        let ok = (MICROS_1900..MICROS_2200).contains(&m);
        if !ok {
            issues(RowIssue::InvalidTimestamp);
        }
        ok
    });
    Some(Listing {
        zpid,
        price: number(raw.price, 1.0, 1e12, issues).map(|p| p.round() as i64),
        bedrooms: number(raw.bedrooms, 0.0, 100.0, issues).map(|b| b.round() as i32),
        bathrooms: number(raw.bathrooms, 0.0, 99.9, issues).map(|b| (b * 10.0).round() / 10.0),
        living_area: number(raw.living_area, 1.0, 10_000_000.0, issues).map(|a| a.round() as i32),
        days_on_zillow: number(raw.days_on_zillow, 0.0, 36_500.0, issues).map(|d| d.round() as i32),
        latitude: number(raw.latitude, -90.0, 90.0, issues),
        longitude: number(raw.longitude, -180.0, 180.0, issues),
        home_type: text(raw.home_type, issues),
        home_status: text(raw.home_status, issues),
        city: text(raw.city, issues),
        state: text(raw.state, issues),
        uri,
        address,
        zip_code,
        scraped_at_micros,
    })
}

const MICROS_1900: i64 = -2_208_988_800_000_000;
const MICROS_2200: i64 = 7_258_118_400_000_000;

fn text(value: Option<String>, issues: &mut impl FnMut(RowIssue)) -> Option<String> {
    let mut s = value?;
    if s.contains('\0') {
        issues(RowIssue::NulRemoved);
        s.retain(|c| c != '\0');
    }
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return None;
    }
    let mut out = match trimmed.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => {
            issues(RowIssue::TextTruncated);
            trimmed[..cut].to_owned()
        }
        None if trimmed.len() == s.len() => s,
        None => trimmed.to_owned(),
    };
    // Cutting may expose trailing whitespace.
    out.truncate(out.trim_end().len());
    Some(out)
}

fn number(value: Option<f64>, min: f64, max: f64, issues: &mut impl FnMut(RowIssue)) -> Option<f64> {
    let v = value?;
    if !v.is_finite() {
        issues(RowIssue::NonFinite);
        None
    } else if v < min || v > max {
        issues(RowIssue::OutOfRange);
        None
    } else {
        Some(v + 0.0)
    }
}

fn valid_zpid(z: &str) -> bool {
    (1..=20).contains(&z.len()) && z.bytes().all(|b| b.is_ascii_digit())
}

/// The zpid a Zillow URL names: the 1–20 digits right before the first `_zpid` that has
/// digits before it (`…/homedetails/12-Main-St/456_zpid/` → 456). The one rule for the loader's
/// zpid recovery and the consensus's "a uri votes only for the listing it names".
pub fn zpid_from_uri(uri: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(at) = uri[from..].find("_zpid").map(|i| i + from) {
        let digits = uri[..at].rsplit(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
        if !digits.is_empty() {
            return valid_zpid(digits).then_some(digits);
        }
        from = at + 1;
    }
    None
}

fn is_zip(z: &str) -> bool {
    z.len() == 5 && z.bytes().all(|b| b.is_ascii_digit())
}

/// The last standalone five-digit group of an address ("…, Katy, TX 77494" → 77494).
fn zip_from_address(address: &str) -> Option<String> {
    address.split(|c: char| !c.is_ascii_digit()).rev().find(|part| is_zip(part)).map(str::to_owned)
}

impl Listing {
    /// The listing fields as a JSON object (NULL fields omitted): what `data_hash` hashes.
    /// The scrape time is not part of it, so the same content scraped twice hashes alike.
    pub fn to_json(&self) -> Value {
        let mut m = Map::with_capacity(16);
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("zpid", Some(Value::from(self.zpid.as_str())));
        put("uri", self.uri.as_deref().map(Value::from));
        put("price", self.price.map(Value::from));
        put("address", self.address.as_deref().map(Value::from));
        put("bedrooms", self.bedrooms.map(Value::from));
        put("bathrooms", self.bathrooms.map(Value::from));
        put("living_area", self.living_area.map(Value::from));
        put("home_type", self.home_type.as_deref().map(Value::from));
        put("home_status", self.home_status.as_deref().map(Value::from));
        put("days_on_zillow", self.days_on_zillow.map(Value::from));
        put("zip_code", self.zip_code.as_deref().map(Value::from));
        put("city", self.city.as_deref().map(Value::from));
        put("state", self.state.as_deref().map(Value::from));
        put("latitude", self.latitude.map(Value::from));
        put("longitude", self.longitude.map(Value::from));
        Value::Object(m)
    }

    /// `resi.listing_hash` of [`Listing::to_json`]: the attestation's `data_hash`.
    pub fn data_hash(&self) -> String {
        hash::listing_hash(&self.to_json()).expect("normalised listings hold finite numbers only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: RawListing) -> (Option<Listing>, Vec<RowIssue>) {
        let mut issues = Vec::new();
        let l = normalise(raw, &mut |i| issues.push(i));
        (l, issues)
    }

    fn raw() -> RawListing {
        RawListing {
            uri: Some("https://www.zillow.com/homedetails/966-Pine-Dr-Katy-TX-77494/53464097_zpid/".into()),
            zpid: Some("53464097".into()),
            label: Some("zip:77494".into()),
            address: Some("966 Pine Dr, Katy, TX 77494".into()),
            price: Some(354000.0),
            bedrooms: Some(3.0),
            bathrooms: Some(1.5),
            living_area: Some(2578.0),
            days_on_zillow: Some(254.0),
            latitude: Some(29.698058),
            longitude: Some(-95.835081),
            datetime_micros: Some(1_758_096_015_000_000),
            ..RawListing::default()
        }
    }

    #[test]
    fn a_clean_row() {
        let (l, issues) = norm(raw());
        let l = l.unwrap();
        assert!(issues.is_empty());
        assert_eq!(l.zpid, "53464097");
        assert_eq!(l.zip_code.as_deref(), Some("77494"));
        assert_eq!((l.price, l.bedrooms, l.bathrooms, l.living_area), (Some(354000), Some(3), Some(1.5), Some(2578)));
        assert_eq!(l.data_hash().len(), 64);
    }

    #[test]
    fn zpid_recovery() {
        let (l, issues) = norm(RawListing { zpid: None, ..raw() });
        assert_eq!((l.unwrap().zpid.as_str(), issues.len()), ("53464097", 0));
        let (l, issues) = norm(RawListing { zpid: Some("abc".into()), ..raw() });
        assert_eq!((l.unwrap().zpid.as_str(), issues), ("53464097", vec![RowIssue::InvalidZpid]));
        let (l, issues) = norm(RawListing { zpid: Some("111".into()), ..raw() });
        assert_eq!((l.unwrap().zpid.as_str(), issues), ("111", vec![RowIssue::ZpidUriMismatch]));
        let (l, issues) = norm(RawListing { zpid: None, uri: Some("https://example.com/x".into()), ..raw() });
        assert_eq!((l, issues), (None, vec![RowIssue::NoZpid]));
        assert_eq!(zpid_from_uri("https://www.zillow.com/homedetails/x/123_zpid"), Some("123"));
        assert_eq!(zpid_from_uri("_zpid"), None);
    }

    #[test]
    fn zip_code_sources() {
        let (l, _) = norm(RawListing { label: Some("zip:unknown".into()), ..raw() });
        assert_eq!(l.unwrap().zip_code.as_deref(), Some("77494"), "from the address");
        let (l, _) = norm(RawListing { label: Some("NULL".into()), address: Some("no zip here".into()), ..raw() });
        assert_eq!(l.unwrap().zip_code, None);
        let (l, issues) = norm(RawListing { zip_code: Some("7749".into()), ..raw() });
        assert_eq!((l.unwrap().zip_code.as_deref(), issues), (Some("77494"), vec![RowIssue::InvalidZipCode]));
        let (l, _) = norm(RawListing { zip_code: Some("78660".into()), ..raw() });
        assert_eq!(l.unwrap().zip_code.as_deref(), Some("78660"), "the column wins");
    }

    #[test]
    fn bad_numbers_become_null() {
        let (l, issues) = norm(RawListing {
            price: Some(f64::NAN),
            bedrooms: Some(f64::INFINITY),
            bathrooms: Some(150.0),
            living_area: Some(-5.0),
            latitude: Some(91.0),
            longitude: Some(f64::NEG_INFINITY),
            days_on_zillow: Some(1e300),
            datetime_micros: Some(i64::MAX),
            ..raw()
        });
        let l = l.unwrap();
        assert_eq!((l.price, l.bedrooms, l.bathrooms, l.living_area), (None, None, None, None));
        assert_eq!((l.latitude, l.longitude, l.days_on_zillow, l.scraped_at_micros), (None, None, None, None));
        assert_eq!(issues.iter().filter(|i| **i == RowIssue::NonFinite).count(), 3);
        assert_eq!(issues.iter().filter(|i| **i == RowIssue::OutOfRange).count(), 4);
        assert!(issues.contains(&RowIssue::InvalidTimestamp));
        let (l, _) = norm(RawListing { bathrooms: Some(2.4999999), price: Some(354000.4), ..raw() });
        let l = l.unwrap();
        assert_eq!((l.bathrooms, l.price), (Some(2.5), Some(354000)));
    }

    #[test]
    fn hostile_strings() {
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        let (l, issues) = norm(RawListing {
            address: Some("  12\0 Main St  ".to_string()),
            city: Some(long),
            state: Some("   ".into()),
            home_type: Some("'); DROP TABLE resi.listings; --".into()),
            ..raw()
        });
        let l = l.unwrap();
        assert_eq!(l.address.as_deref(), Some("12 Main St"));
        assert_eq!(l.city.as_ref().map(|c| c.chars().count()), Some(MAX_TEXT_CHARS));
        assert_eq!(l.state, None);
        assert_eq!(l.home_type.as_deref(), Some("'); DROP TABLE resi.listings; --"));
        assert_eq!(issues, vec![RowIssue::NulRemoved, RowIssue::TextTruncated]);
        // Multi-byte characters are cut on a character boundary.
        let (l, _) = norm(RawListing { city: Some("é".repeat(MAX_TEXT_CHARS + 1)), ..raw() });
        assert_eq!(l.unwrap().city.unwrap().chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn data_hash_ignores_scrape_time_and_absent_fields() {
        let (a, _) = norm(raw());
        let (b, _) = norm(RawListing { datetime_micros: None, home_type: Some("  ".into()), ..raw() });
        assert_eq!(a.unwrap().data_hash(), b.unwrap().data_hash());
        let (c, _) = norm(RawListing { price: Some(354001.0), ..raw() });
        let (a, _) = norm(raw());
        assert_ne!(a.unwrap().data_hash(), c.unwrap().data_hash());
    }
}
