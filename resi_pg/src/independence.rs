//! Independence of miners' reports: `resi.claim_signature`, the fingerprint two reports share
//! exactly when one is a copy of the other (over `resi_core::fields::claim_signature`).

use pgrx::prelude::*;
use resi_core::fields::{claim_signature as signature, FieldValues};

/// `resi.claim_signature(zpid, scraped_at, uri, price, …, longitude) → bigint`: 64 bits of
/// SHA-256 over the zpid, the scrape time and every field. IMMUTABLE, PARALLEL SAFE, not
/// strict: a NULL field is part of the signature; a NULL zpid gives NULL. Never raises.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn claim_signature(
    zpid: Option<&str>,
    scraped_at: Option<TimestampWithTimeZone>,
    uri: Option<&str>,
    price: Option<i64>,
    address: Option<&str>,
    bedrooms: Option<i32>,
    bathrooms: Option<f64>,
    living_area: Option<i32>,
    home_type: Option<&str>,
    home_status: Option<&str>,
    days_on_zillow: Option<i32>,
    zip_code: Option<&str>,
    city: Option<&str>,
    state: Option<&str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
) -> Option<i64> {
    let report = FieldValues {
        uri,
        price,
        address,
        bedrooms,
        bathrooms,
        living_area,
        home_type,
        home_status,
        days_on_zillow,
        zip_code,
        city,
        state,
        latitude,
        longitude,
    };
    Some(signature(zpid?, scraped_at.map(pg_sys::TimestampTz::from), &report))
}
