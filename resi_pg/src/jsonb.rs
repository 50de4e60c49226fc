//! `jsonb` values written by Rust in PostgreSQL's own binary format, in one buffer.
//!
//! The consensus aggregate's final function writes one `field_consensus` object per listing:
//! 14 fields × 7 members, 84 of them numbers. Built with PostgreSQL's `pushJsonbValue`, every
//! key, value and `numeric` was a call into PostgreSQL behind pgrx's error guard (a
//! `sigsetjmp`) plus a palloc, and that was ~40 % of computing a listing's consensus. Here the
//! object is written straight into a `Vec<u8>`: the layout of `jsonb.h` (`JsonbContainer`,
//! `JEntry`) and the canonical `numeric` of `numeric.c` (`make_result`), both stable on disk
//! since PostgreSQL 9.4 because `pg_upgrade` keeps jsonb and numeric columns as they are. The
//! pg_tests below prove the bytes equal what `jsonb_in` makes from the same JSON text.
//!
//! Only what the consensus needs: objects (nested), strings and numbers.

use std::cmp::Ordering;

/// A value of a jsonb object.
pub(crate) enum JsonbValue<'a> {
    String(&'a str),
    /// `mantissa / 10^scale` as a `numeric` with display scale `scale` (what
    /// `int64_div_fast_to_numeric(mantissa, scale)` makes; `scale` 0 is `int64_to_numeric`).
    Decimal(i64, u32),
    /// A `numeric` varlena made by PostgreSQL (4-byte header), copied as it is.
    Numeric(Vec<u8>),
    /// Keys in any order; they must be distinct.
    Object(Vec<(&'a str, JsonbValue<'a>)>),
}

/// An object too large for jsonb (its data over 256 MB): PostgreSQL raises 54000 for it too.
#[derive(Debug)]
pub(crate) struct TooLarge;

// jsonb.h
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const JB_FOBJECT: u32 = 0x2000_0000;

// numeric.c
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_SHORT: u16 = 0x8000;
const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
const NUMERIC_SHORT_DSCALE_SHIFT: u16 = 7;
const NUMERIC_SHORT_DSCALE_MAX: u32 = 63;
const NUMERIC_SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const NUMERIC_SHORT_WEIGHT_MASK: u16 = 0x003F;
const NUMERIC_DSCALE_MASK: u16 = 0x3FFF;
const NBASE: u128 = 10_000;
const DEC_DIGITS: u32 = 4;

/// The varlena bytes (4-byte header included) of the jsonb object `pairs`, ready to be copied
/// into a palloc'd datum.
pub(crate) fn jsonb_object(pairs: Vec<(&str, JsonbValue<'_>)>) -> Result<Vec<u8>, TooLarge> {
    // A listing's field_consensus is ~2.7 kB: one allocation in the common case.
    let mut buffer = Vec::with_capacity(4096);
    buffer.extend_from_slice(&[0u8; 4]); // the varlena header, set below
    write_object(&mut buffer, pairs)?;
    let len = u32::try_from(buffer.len()).map_err(|_| TooLarge)?;
    buffer[..4].copy_from_slice(&varlena_header(len));
    Ok(buffer)
}

/// The order jsonb keeps an object's keys in: shorter first, then by bytes.
fn jsonb_key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// `convertJsonbObject`: alignment padding, the header, a JEntry per key and per value (every
/// 32nd an end offset instead of a length), the keys' bytes, then the values'. Returns the
/// JEntry that describes the object to its parent.
fn write_object(buffer: &mut Vec<u8>, mut pairs: Vec<(&str, JsonbValue<'_>)>) -> Result<u32, TooLarge> {
    pairs.sort_unstable_by(|a, b| jsonb_key_order(a.0, b.0));
    debug_assert!(pairs.windows(2).all(|w| w[0].0 != w[1].0), "jsonb object keys must be distinct");
    let base = buffer.len();
    pad_to_int(buffer);
    let n = pairs.len();
    buffer.extend_from_slice(&(u32::try_from(n).map_err(|_| TooLarge)? | JB_FOBJECT).to_ne_bytes());
    let mut entry = buffer.len();
    buffer.resize(entry + 4 * 2 * n, 0);
    let mut total: u32 = 0;
    let mut set_entry = |buffer: &mut Vec<u8>, index: usize, meta: u32| -> Result<(), TooLarge> {
        total = total.checked_add(meta & JENTRY_OFFLENMASK).filter(|t| *t <= JENTRY_OFFLENMASK).ok_or(TooLarge)?;
        let meta = if index.is_multiple_of(JB_OFFSET_STRIDE) {
            (meta & JENTRY_TYPEMASK) | total | JENTRY_HAS_OFF
        } else {
            meta
        };
        buffer[entry..entry + 4].copy_from_slice(&meta.to_ne_bytes());
        entry += 4;
        Ok(())
    };
    for (i, (key, _)) in pairs.iter().enumerate() {
        buffer.extend_from_slice(key.as_bytes());
        set_entry(buffer, i, JENTRY_ISSTRING | length(key.len())?)?;
    }
    for (i, (_, value)) in pairs.into_iter().enumerate() {
        let meta = write_value(buffer, value)?;
        set_entry(buffer, i + n, meta)?;
    }
    Ok(JENTRY_ISCONTAINER | length(buffer.len() - base)?)
}

/// `convertJsonbValue` / `convertJsonbScalar`: a numeric is aligned to 4 bytes, the padding
/// counting as its data.
fn write_value(buffer: &mut Vec<u8>, value: JsonbValue<'_>) -> Result<u32, TooLarge> {
    match value {
        JsonbValue::String(text) => {
            buffer.extend_from_slice(text.as_bytes());
            Ok(JENTRY_ISSTRING | length(text.len())?)
        }
        JsonbValue::Decimal(mantissa, scale) => {
            let start = buffer.len();
            pad_to_int(buffer);
            write_numeric(buffer, mantissa, scale);
            Ok(JENTRY_ISNUMERIC | length(buffer.len() - start)?)
        }
        JsonbValue::Numeric(bytes) => {
            let start = buffer.len();
            pad_to_int(buffer);
            buffer.extend_from_slice(&bytes);
            Ok(JENTRY_ISNUMERIC | length(buffer.len() - start)?)
        }
        JsonbValue::Object(pairs) => write_object(buffer, pairs),
    }
}

fn length(len: usize) -> Result<u32, TooLarge> {
    u32::try_from(len).ok().filter(|l| *l <= JENTRY_OFFLENMASK).ok_or(TooLarge)
}

/// `padBufferToInt`: zeroes up to the next multiple of 4 from the start of the varlena.
fn pad_to_int(buffer: &mut Vec<u8>) {
    buffer.resize(buffer.len().next_multiple_of(4), 0);
}

/// `SET_VARSIZE` of a 4-byte varlena header.
fn varlena_header(len: u32) -> [u8; 4] {
    if cfg!(target_endian = "little") {
        (len << 2).to_le_bytes()
    } else {
        (len & 0x3FFF_FFFF).to_be_bytes()
    }
}

/// The `numeric` `make_result` builds for `mantissa / 10^scale` with display scale `scale`:
/// base-10000 digits with leading and trailing zero digits dropped, weight = the power of 10000
/// of the first digit, the short header when the scale and weight fit it (zero: no digits,
/// weight 0, positive). Appends the varlena (4-byte header included).
fn write_numeric(buffer: &mut Vec<u8>, mantissa: i64, scale: u32) {
    // Append decimal zeros so the point falls between two base-10000 digits.
    let pad = (DEC_DIGITS - scale % DEC_DIGITS) % DEC_DIGITS;
    let fraction_digits = (scale + pad) / DEC_DIGITS;
    let mut digits = [0i16; 8]; // least significant first; |i64| × 1000 < 10000^6
    let mut count = 0;
    let mut magnitude = u128::from(mantissa.unsigned_abs()) * 10u128.pow(pad);
    while magnitude > 0 {
        // u64 arithmetic once it fits (every mantissa below 1.8e16: 128-bit division is a call).
        let (rest, digit) = match u64::try_from(magnitude) {
            Ok(m) => (u128::from(m / NBASE as u64), (m % NBASE as u64) as i16),
            Err(_) => (magnitude / NBASE, (magnitude % NBASE) as i16),
        };
        digits[count] = digit;
        magnitude = rest;
        count += 1;
    }
    let lowest = digits[..count].iter().position(|d| *d != 0).unwrap_or(count);
    let kept = &digits[lowest..count];
    let (weight, negative) =
        if kept.is_empty() { (0i32, false) } else { (count as i32 - 1 - fraction_digits as i32, mantissa < 0) };
    let short = scale <= NUMERIC_SHORT_DSCALE_MAX && (-64..=63).contains(&weight);
    let header_len = if short { 6 } else { 8 };
    let len = (header_len + 2 * kept.len()) as u32;
    buffer.extend_from_slice(&varlena_header(len));
    if short {
        let header = NUMERIC_SHORT
            | if negative { NUMERIC_SHORT_SIGN_MASK } else { 0 }
            | ((scale as u16) << NUMERIC_SHORT_DSCALE_SHIFT)
            | if weight < 0 { NUMERIC_SHORT_WEIGHT_SIGN_MASK } else { 0 }
            | (weight as u16 & NUMERIC_SHORT_WEIGHT_MASK);
        buffer.extend_from_slice(&header.to_ne_bytes());
    } else {
        debug_assert!(scale <= u32::from(NUMERIC_DSCALE_MASK), "a double has at most 1074 fraction digits");
        let sign_dscale = if negative { NUMERIC_NEG } else { 0 } | (scale as u16 & NUMERIC_DSCALE_MASK);
        buffer.extend_from_slice(&sign_dscale.to_ne_bytes());
        buffer.extend_from_slice(&(weight as i16).to_ne_bytes());
    }
    for digit in kept.iter().rev() {
        buffer.extend_from_slice(&digit.to_ne_bytes());
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{jsonb_object, JsonbValue};
    use pgrx::prelude::*;
    use std::ffi::CString;

    /// The bytes of the varlena `jsonb_in` makes from `text`.
    fn jsonb_in(text: &str) -> Vec<u8> {
        let text = CString::new(text).unwrap();
        // SAFETY: jsonb_in(cstring) returns a palloc'd jsonb or raises; varsize_any reads its
        // header, and the slice is copied before anything else is allocated.
        unsafe {
            let datum =
                pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(text.as_ptr()))])
                    .unwrap();
            let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
            std::slice::from_raw_parts(ptr as *const u8, pgrx::varsize_any(ptr)).to_vec()
        }
    }

    /// `mantissa / 10^scale` written with exactly `scale` fraction digits.
    fn decimal_text(mantissa: i64, scale: u32) -> String {
        let digits = mantissa.unsigned_abs().to_string();
        let sign = if mantissa < 0 { "-" } else { "" };
        let scale = scale as usize;
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        format!("{sign}{whole}.{fraction}")
    }

    fn json_text(value: &JsonbValue<'_>) -> String {
        match value {
            JsonbValue::String(s) => serde_json::to_string(s).unwrap(),
            JsonbValue::Decimal(m, s) => decimal_text(*m, *s),
            JsonbValue::Numeric(_) => unreachable!("the tests write numbers as decimals"),
            JsonbValue::Object(pairs) => format!(
                "{{{}}}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap(), json_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn assert_same_bytes_as_jsonb_in(pairs: Vec<(&str, JsonbValue<'_>)>) {
        let object = JsonbValue::Object(pairs);
        let text = json_text(&object);
        let JsonbValue::Object(pairs) = object else { unreachable!() };
        assert_eq!(jsonb_object(pairs).unwrap(), jsonb_in(&text), "{text}");
    }

    #[pg_test]
    fn numbers_are_the_numerics_postgres_makes() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases: Vec<(i64, u32)> = vec![
            (0, 0),
            (0, 3),
            (1, 0),
            (-1, 0),
            (10000, 0),
            (100000000, 0),
            (-958, 1),
            (6666666666666666, 16),
            (1, 7),
            (5, 324),
            (i64::MAX, 0),
            (i64::MIN + 1, 0),
            (i64::MAX, 30),
            (29712345, 6),
            (-955000000, 7),
            (12, 70),
            (123456789, 290),
        ];
        for _ in 0..2000 {
            let magnitude = next() >> (next() % 64);
            let mantissa = if next() % 2 == 0 { magnitude as i64 / 2 } else { -(magnitude as i64 / 2) };
            cases.push((mantissa, (next() % 40) as u32));
        }
        for (mantissa, scale) in cases {
            assert_same_bytes_as_jsonb_in(vec![("n", JsonbValue::Decimal(mantissa, scale))]);
        }
    }

    #[pg_test]
    fn objects_are_the_jsonb_postgres_makes() {
        // Nested objects, keys out of order and of many lengths, multibyte strings, and more
        // than 32 children (every 32nd JEntry holds an offset).
        assert_same_bytes_as_jsonb_in(vec![]);
        assert_same_bytes_as_jsonb_in(vec![("a", JsonbValue::String(""))]);
        let names: Vec<String> = (0..40).map(|i| "k".repeat(1 + i % 7) + &i.to_string()).collect();
        let mut pairs: Vec<(&str, JsonbValue<'_>)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = match i % 3 {
                    0 => JsonbValue::String("Zürich — 東京"),
                    1 => JsonbValue::Decimal(-(i as i64) * 12345, (i % 9) as u32),
                    _ => JsonbValue::Object(vec![
                        ("value", JsonbValue::String("FOR_SALE")),
                        ("confidence", JsonbValue::Decimal(6666666666666666, 16)),
                        ("voters", JsonbValue::Decimal(3, 0)),
                        ("low", JsonbValue::Decimal(-958, 1)),
                    ]),
                };
                (name.as_str(), value)
            })
            .collect();
        let long = "x".repeat(5000);
        pairs.push(("address", JsonbValue::String(&long)));
        assert_same_bytes_as_jsonb_in(pairs);
    }
}
