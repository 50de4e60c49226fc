//! Epoch JSON uploads: one document per zip code per 4-hour epoch,
//! `{epoch_id, zipcode, miner_hotkey, submission_timestamp, listing_count, listings: [...]}`,
//! whose listings use their own field names (`source_url`, `property_type`, `sqft`, ...).

use super::Rejection;
use resi_core::listing::RawListing;
use serde_json::Value;

/// The listings of an epoch document as rows. Not JSON, not an object, or no `listings`
/// array is a [`Rejection`]; a listing that is not an object is skipped and counted by the caller as a row
/// without zpid.
pub fn read_epoch_json(bytes: &[u8]) -> Result<Vec<RawListing>, Rejection> {
    if bytes.starts_with(b"PAR1") {
        return Err(Rejection::new("not_json", "the object is a Parquet file under a .json key"));
    }
    let document: Value = serde_json::from_slice(bytes).map_err(|e| Rejection::new("invalid_json", e.to_string()))?;
    let Some(listings) = document.get("listings").and_then(Value::as_array) else {
        return Err(Rejection::new("invalid_json", "the document has no \"listings\" array"));
    };
    let zipcode = document.get("zipcode").and_then(text);
    Ok(listings.iter().map(|l| row(l, zipcode.as_deref())).collect())
}

fn row(listing: &Value, envelope_zip: Option<&str>) -> RawListing {
    let field = |name: &str| listing.get(name);
    RawListing {
        uri: field("source_url").and_then(text),
        datetime_micros: field("scraped_timestamp").and_then(Value::as_str).and_then(parse_rfc3339_micros),
        label: envelope_zip.map(|z| format!("zip:{z}")),
        zpid: field("zpid").and_then(text),
        price: field("price").and_then(number),
        address: field("address").and_then(text),
        bedrooms: field("bedrooms").and_then(number),
        bathrooms: field("bathrooms").and_then(number),
        living_area: field("sqft").and_then(number),
        home_type: field("property_type").and_then(text),
        home_status: field("listing_status").and_then(text),
        days_on_zillow: field("days_on_market").and_then(number),
        zip_code: field("zipcode").and_then(text),
        city: field("city").and_then(text),
        state: field("state").and_then(text),
        latitude: field("latitude").and_then(number),
        longitude: field("longitude").and_then(number),
    }
}

/// Strings as they are, numbers (a zpid written as a number) as their decimal text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers, and numeric strings ("354000").
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → microseconds since the epoch (UTC).
fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<6}", &frac[..digits.min(6)]);
        micros = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_micros("2025-10-07T13:00:00+00:00"), Some(1_759_842_000_000_000));
        assert_eq!(parse_rfc3339_micros("2025-10-07T15:00:00.5+02:00"), Some(1_759_842_000_500_000));
        assert_eq!(parse_rfc3339_micros("not a time"), None);
        assert_eq!(parse_rfc3339_micros("2025-13-07T13:00:00Z"), None);
    }

    #[test]
    fn envelope_fields_map_to_rows() {
        let doc = br#"{"zipcode": "77494", "listings": [
            {"zpid": 53464097, "price": "354000", "property_type": "MULTI_FAMILY", "listing_status": "FOR_RENT",
             "source_url": "https://www.zillow.com/homedetails/53464097_zpid/", "sqft": 2578, "days_on_market": 254,
             "scraped_timestamp": "2025-10-07T13:00:00+00:00"}, 7]}"#;
        let rows = read_epoch_json(doc).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].zpid.as_deref(), Some("53464097"));
        assert_eq!(
            (rows[0].price, rows[0].living_area, rows[0].days_on_zillow),
            (Some(354000.0), Some(2578.0), Some(254.0))
        );
        assert_eq!(rows[0].label.as_deref(), Some("zip:77494"));
        assert_eq!(rows[1].zpid, None);
    }

    #[test]
    fn bad_documents_are_rejected() {
        assert_eq!(read_epoch_json(b"PAR1....").unwrap_err().code, "not_json");
        assert_eq!(read_epoch_json(b"{").unwrap_err().code, "invalid_json");
        assert_eq!(read_epoch_json(b"{\"listings\": 3}").unwrap_err().code, "invalid_json");
        assert_eq!(read_epoch_json(b"").unwrap_err().code, "invalid_json");
    }
}
