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
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
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
    Canonical(&mut out).deserialize(value).map_err(json_error)?;
    Ok(out)
}

/// `sha256_hex(canonical_json(listing))`: the `data_hash` of a listing.
pub fn listing_hash(listing: &Value) -> Result<String> {
    Ok(sha256_hex(canonical_json(listing)?.as_bytes()))
}

/// Parse JSON text and return its [`listing_hash`]. Text that is not JSON, is nested deeper
/// than 128 levels or holds a number outside the double range is an error.
pub fn listing_hash_of_json_text(text: &str) -> Result<String> {
    Ok(sha256_hex(canonical_json_of_text(text)?.as_bytes()))
}

/// Parse JSON text and return its [`canonical_json`]: the same text as parsing it into a
/// [`Value`] first (a member given twice keeps its last value, as there), written while it is
/// parsed, without building the tree.
pub fn canonical_json_of_text(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut parser = serde_json::Deserializer::from_str(text);
    Canonical(&mut out).deserialize(&mut parser).and_then(|_| parser.end()).map_err(json_error)?;
    Ok(out)
}

fn json_error(e: serde_json::Error) -> Error {
    if e.to_string().starts_with(OUT_OF_RANGE) {
        Error::out_of_range("listing holds a number outside the double range")
    } else {
        Error::invalid_text(format!("listing is not canonicalisable JSON: {e}"))
    }
}

/// serde_json's message for a number outside the double range, which [`Canonical`] also uses.
const OUT_OF_RANGE: &str = "number out of range";

/// Appends the canonical text of the JSON value it reads (from text or from a [`Value`]) to its
/// buffer, and yields whether that value was `null` (which an object then drops).
struct Canonical<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, from: D) -> std::result::Result<bool, D::Error> {
        from.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<bool, E> {
        self.0.push_str("null");
        Ok(true)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<bool, E> {
        self.0.push_str(if b { "true" } else { "false" });
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<bool, E> {
        self.visit_f64(n as f64)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<bool, E> {
        self.visit_f64(n as f64)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<bool, E> {
        write_number(n, self.0).ok_or_else(|| E::custom(OUT_OF_RANGE))?;
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<bool, E> {
        write_string(s, self.0);
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> std::result::Result<bool, A::Error> {
        let out = self.0;
        out.push('[');
        let open = out.len();
        loop {
            let before = out.len();
            if before > open {
                out.push(',');
            }
            if items.next_element_seed(Canonical(&mut *out))?.is_none() {
                out.truncate(before);
                break;
            }
        }
        out.push(']');
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> std::result::Result<bool, A::Error> {
        // Each member's value is written to `values` as it comes; the members are then sorted
        // by key and copied out.
        let mut values = String::new();
        let mut present: Vec<(Cow<'de, str>, std::ops::Range<usize>, bool)> = Vec::new();
        while let Some(key) = members.next_key_seed(Key)? {
            let start = values.len();
            let null = members.next_value_seed(Canonical(&mut values))?;
            present.push((key, start..values.len(), null));
        }
        // Stable: a key given twice keeps its order, and the last one wins below.
        present.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let out = self.0;
        out.push('{');
        let open = out.len();
        for (i, (key, value, null)) in present.iter().enumerate() {
            if *null || present.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if out.len() > open {
                out.push(',');
            }
            write_escaped(key, out);
            out.push(':');
            out.push_str(&values[value.clone()]);
        }
        out.push('}');
        Ok(false)
    }
}

/// An object's key, borrowed from the text when it holds no escape.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, from: D) -> std::result::Result<Cow<'de, str>, D::Error> {
        from.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> std::result::Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}

/// Writes a finite number; `None` for ±Infinity and NaN.
fn write_number(n: f64, out: &mut String) -> Option<()> {
    if !n.is_finite() {
        return None;
    }
    let mut buf = ryu_js::Buffer::new();
    // ECMAScript writes -0 as "0".
    out.push_str(buf.format_finite(if n == 0.0 { 0.0 } else { n }));
    Some(())
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
    // Runs of bytes that need no escape are copied whole: every byte that does is ASCII, so a
    // run always ends on a character boundary.
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < b' ' => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
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
    fn text_with_a_member_given_twice_keeps_the_last() {
        assert_eq!(canonical_json_of_text(r#"{"b":1,"a":2,"b":3}"#).unwrap(), r#"{"a":2,"b":3}"#);
        assert_eq!(canonical_json_of_text(r#"{"b":1,"b":null,"a":[]}"#).unwrap(), r#"{"a":[]}"#);
        assert_eq!(canonical_json_of_text(r#"{"b":null,"b":{"\u0063":" x "}}"#).unwrap(), r#"{"b":{"c":"x"}}"#);
        assert_eq!(
            canonical_json_of_text(r#"{"b":null,"b":{"\u0063":" x "}}"#).unwrap(),
            canonical_json(&serde_json::from_str(r#"{"b":null,"b":{"\u0063":" x "}}"#).unwrap()).unwrap()
        );
    }

    #[test]
    fn bad_text_is_an_error() {
        for text in ["", "{", "not json", "{\"a\":1,}", &"[".repeat(200)] {
            assert_eq!(listing_hash_of_json_text(text).unwrap_err().kind, crate::ErrorKind::InvalidText, "{text}");
        }
    }
}
