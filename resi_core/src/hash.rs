//! SHA-256 helpers and the canonical form of a listing behind `resi.listing_hash`.
//!
//! The loader hashes each row client-side and the extension hashes `jsonb` server-side; both
//! call [`listing_hash`], so the two always agree.
//!
//! # The canonical form (version 1)
//!
//! A JSON text, no insignificant whitespace, built recursively:
//! - **objects**: members whose value is `null` are dropped; the remaining keys are sorted by
//!   their UTF-8 bytes (= Unicode code point order); keys themselves are written as given (not
//!   trimmed or normalised: they are field names, not data);
//! - **arrays**: elements in order, each canonicalised (`null` elements are kept, since dropping
//!   them would shift positions);
//! - **strings**: leading and trailing Unicode `White_Space` trimmed, then Unicode NFC; written
//!   with the escapes of RFC 8785 (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control
//!   characters as `\u00xx`, everything else as literal UTF-8);
//! - **numbers**: as IEEE-754 doubles in the shortest form that reads back to the same double,
//!   as ECMAScript's `Number.prototype.toString` writes them (RFC 8785): `3.0` → `3`,
//!   `-0` → `0`, `1e21` → `1e+21`, `0.000001` → `0.000001`, `1e-7` → `1e-7`. Integers beyond 2^53
//!   lose precision like every double (send ids as strings). A number outside the double range
//!   is an error;
//! - `true`, `false`, `null` as themselves.
//!
//! The hash is the lower-case hex SHA-256 of the canonical text's UTF-8 bytes.

use crate::error::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// The canonical text of a JSON value (see the module documentation).
pub fn canonical_json(value: &Value) -> Result<String> {
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// `sha256_hex(canonical_json(listing))`: the `data_hash` of a listing.
pub fn listing_hash(listing: &Value) -> Result<String> {
    Ok(sha256_hex(canonical_json(listing)?.as_bytes()))
}

/// Parse JSON text and return its [`listing_hash`]. Text that is not JSON, is nested deeper
/// than 128 levels or holds a number outside the double range is an error.
pub fn listing_hash_of_json_text(text: &str) -> Result<String> {
    listing_hash(&parse_json(text)?)
}

/// Parse JSON text and return its [`canonical_json`].
pub fn canonical_json_of_text(text: &str) -> Result<String> {
    canonical_json(&parse_json(text)?)
}

fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        if e.to_string().starts_with("number out of range") {
            Error::out_of_range("listing holds a number outside the double range")
        } else {
            Error::invalid_text(format!("listing is not canonicalisable JSON: {e}"))
        }
    })
}

fn write_canonical(value: &Value, out: &mut String) -> Result<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n.as_f64(), out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut present: Vec<(&String, &Value)> = members.iter().filter(|(_, v)| !v.is_null()).collect();
            present.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in present.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_escaped(key, out);
                out.push(':');
                write_canonical(value, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: Option<f64>, out: &mut String) -> Result<()> {
    match n {
        Some(f) if f.is_finite() => {
            let mut buf = ryu_js::Buffer::new();
            // ECMAScript writes -0 as "0".
            out.push_str(buf.format_finite(if f == 0.0 { 0.0 } else { f }));
            Ok(())
        }
        _ => Err(Error::out_of_range("listing holds a number outside the double range")),
    }
}

fn write_string(s: &str, out: &mut String) {
    let trimmed = s.trim();
    if is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        write_escaped(trimmed, out);
    } else {
        write_escaped(&trimmed.nfc().collect::<String>(), out);
    }
}

fn write_escaped(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn canonical_form_rules() {
        let v = json!({"b": 3.0, "a": " Katy\t", "z": null, "n": [1, null, {"y": null, "x": -0.0}], "t": true});
        assert_eq!(canonical_json(&v).unwrap(), r#"{"a":"Katy","b":3,"n":[1,null,{"x":0}],"t":true}"#);
    }

    #[test]
    fn numbers_follow_ecmascript() {
        let cases = [
            ("3.0", "3"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("0.1", "0.1"),
            ("-1.5", "-1.5"),
            ("123456789012", "123456789012"),
            ("9007199254740993", "9007199254740992"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical_json_of_text(input).unwrap(), expected, "{input}");
        }
        assert_eq!(canonical_json_of_text("1e400").unwrap_err().kind, crate::ErrorKind::OutOfRange);
    }

    #[test]
    fn strings_are_trimmed_nfc_and_escaped() {
        // "é" decomposed becomes the composed form.
        assert_eq!(canonical_json(&json!("  e\u{301}  ")).unwrap(), "\"\u{e9}\"");
        assert_eq!(canonical_json(&json!("a\"b\\c\u{1}\u{7f}\n")).unwrap(), "\"a\\\"b\\\\c\\u0001\u{7f}\"");
        assert_eq!(canonical_json(&json!("\u{3000}x\u{a0}")).unwrap(), "\"x\"");
    }

    #[test]
    fn equal_listings_hash_equal() {
        let a = json!({"zpid": "123", "price": 350000, "bathrooms": 2.0, "city": "Katy "});
        let b = json!({"city": "Katy", "bathrooms": 2, "price": 350000.0, "zpid": "123", "home_type": null});
        assert_eq!(listing_hash(&a).unwrap(), listing_hash(&b).unwrap());
        let c = json!({"zpid": "123", "price": 350001, "bathrooms": 2, "city": "Katy"});
        assert_ne!(listing_hash(&a).unwrap(), listing_hash(&c).unwrap());
    }

    #[test]
    fn bad_text_is_an_error() {
        for text in ["", "{", "not json", "{\"a\":1,}", &"[".repeat(200)] {
            assert_eq!(listing_hash_of_json_text(text).unwrap_err().kind, crate::ErrorKind::InvalidText, "{text}");
        }
    }
}
