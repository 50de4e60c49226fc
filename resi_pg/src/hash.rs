//! SHA-256 helpers and the canonical listing hash.
//!
//! `resi.listing_hash(jsonb)` and `resi.canonical_listing(jsonb)` are SQL wrappers (in
//! sql/listings.sql, inlined by the planner) over the text forms defined here, which
//! parse the JSON with the same code the loader uses, so server and client hashes agree.

use crate::error::OrRaise;
use pgrx::prelude::*;
use resi_core::hash;

/// `resi.sha256_hex(bytea)`: lower-case hex SHA-256 of the bytes.
/// IMMUTABLE, STRICT, PARALLEL SAFE.
#[pg_extern(name = "sha256_hex", immutable, strict, parallel_safe)]
fn sha256_hex_bytea(data: &[u8]) -> String {
    hash::sha256_hex(data)
}

/// `resi.sha256_hex(text)`: lower-case hex SHA-256 of the text's UTF-8 bytes.
/// IMMUTABLE, STRICT, PARALLEL SAFE.
#[pg_extern(name = "sha256_hex", immutable, strict, parallel_safe)]
fn sha256_hex_text(data: &str) -> String {
    hash::sha256_hex(data.as_bytes())
}

/// `resi.listing_hash(text)`: SHA-256 hex of the canonical form of a JSON text (see the README
/// and `resi_core::hash`). IMMUTABLE, STRICT, PARALLEL SAFE. Errors: text that is not JSON or is
/// nested deeper than 128 levels → 22P02; a number outside the double range → 22003.
#[pg_extern(name = "listing_hash", immutable, strict, parallel_safe)]
fn listing_hash_text(listing: &str) -> String {
    hash::listing_hash_of_json_text(listing).or_raise("resi.listing_hash")
}

/// `resi.canonical_listing(text)`: the canonical JSON text that `resi.listing_hash` hashes.
/// IMMUTABLE, STRICT, PARALLEL SAFE; errors as `resi.listing_hash`.
#[pg_extern(name = "canonical_listing", immutable, strict, parallel_safe)]
fn canonical_listing_text(listing: &str) -> String {
    hash::canonical_json_of_text(listing).or_raise("resi.canonical_listing")
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one(sql: &str) -> Option<String> {
        Spi::get_one(sql).unwrap()
    }

    #[pg_test]
    fn sha256_of_bytes_and_text() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(one("SELECT resi.sha256_hex('abc'::text)").as_deref(), Some(abc));
        assert_eq!(one("SELECT resi.sha256_hex('\\x616263'::bytea)").as_deref(), Some(abc));
        assert_eq!(
            one("SELECT resi.sha256_hex(''::bytea)").as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        // Agrees with the built-in sha256() on arbitrary bytes, NUL bytes included.
        assert_eq!(
            Spi::get_one::<bool>("SELECT bool_and(resi.sha256_hex(b) = encode(sha256(b), 'hex')) FROM (SELECT decode(repeat(md5(i::text), i % 7) || '00ff', 'hex') b FROM generate_series(1, 200) i) s").unwrap(),
            Some(true)
        );
        assert_eq!(
            one("SELECT resi.sha256_hex(''::text)").as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(one("SELECT resi.sha256_hex(NULL::text)"), None);
        assert_eq!(one("SELECT resi.sha256_hex(NULL::bytea)"), None);
        let evil = "'); DROP TABLE resi.listings; --";
        let agrees =
            format!("SELECT resi.sha256_hex($${evil}$$::text) = encode(sha256(convert_to($${evil}$$, 'UTF8')), 'hex')");
        assert_eq!(Spi::get_one::<bool>(&agrees).unwrap(), Some(true));
    }

    #[pg_test]
    fn listing_hash_is_canonical() {
        assert_eq!(
            one(r#"SELECT resi.canonical_listing('{"b": 3.0, "a": " Katy ", "z": null, "n": [1, null, {"y": null, "x": -0.0}]}'::jsonb)"#).as_deref(),
            Some(r#"{"a":"Katy","b":3,"n":[1,null,{"x":0}]}"#)
        );
        let same = Spi::get_one::<bool>(
            r#"SELECT resi.listing_hash('{"zpid":"1","price":350000,"bathrooms":2.0,"city":"Katy "}'::jsonb)
            = resi.listing_hash('{"city":"Katy","bathrooms":2,"price":3.5e5,"zpid":"1","home_type":null}'::jsonb)"#,
        )
        .unwrap();
        assert_eq!(same, Some(true));
        // NFC: decomposed and composed "é" hash alike.
        let nfc = Spi::get_one::<bool>("SELECT resi.listing_hash(jsonb_build_object('city', 'Ste' || U&'\\0301')) = resi.listing_hash(jsonb_build_object('city', U&'St\\00E9'))").unwrap();
        assert_eq!(nfc, Some(true));
        assert_eq!(one("SELECT resi.listing_hash(NULL::jsonb)"), None);
        // Empty object and an object of nulls are the same listing.
        assert_eq!(one("SELECT resi.canonical_listing('{\"a\": null}'::jsonb)").as_deref(), Some("{}"));
        assert_eq!(
            Spi::get_one::<bool>("SELECT resi.listing_hash('{}'::jsonb) = resi.sha256_hex('{}'::text)").unwrap(),
            Some(true)
        );
        assert_eq!(one("SELECT resi.listing_hash('null'::jsonb)").map(|h| h.len()), Some(64));
        // Hostile strings are data.
        let h = one(
            r#"SELECT resi.listing_hash(jsonb_build_object('address', $$'); DROP TABLE resi.listings; --$$, 'nul', E'\\u0001'))"#,
        );
        assert_eq!(h.map(|h| h.len()), Some(64));
    }

    #[pg_test(error = "resi.listing_hash: listing holds a number outside the double range")]
    fn huge_numbers_are_an_error() {
        one("SELECT resi.listing_hash(jsonb_build_object('price', 1e400::numeric))");
    }

    #[pg_test(
        error = "resi.listing_hash: listing is not canonicalisable JSON: EOF while parsing an object at line 1 column 1"
    )]
    fn bad_json_text_is_an_error() {
        one("SELECT resi.listing_hash('{'::text)");
    }
}
