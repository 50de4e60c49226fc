//! `resi.consensus_agreement(uri, price, …, longitude, consensus resi.listings) → (compared,
//! agreed)`: how one reported row compares with a listing's consensus, over
//! `resi_core::fields::agreement` (the tolerances of the listing's field table).

use pgrx::prelude::*;
use pgrx::AnyNumeric;
use resi_core::fields::{agreement, FieldValues};

/// IMMUTABLE, PARALLEL SAFE, not strict: NULL fields are not compared, a NULL `consensus`
/// compares nothing (0, 0). Exactly one row. Never raises for any input.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe, requires = ["listings"])]
fn consensus_agreement<'a>(
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
    consensus: Option<pgrx::composite_type!('a, "resi.listings")>,
) -> TableIterator<'a, (name!(compared, i32), name!(agreed, i32))> {
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
    let a = match consensus {
        None => Default::default(),
        Some(listing) => {
            let text = |name: &str| listing.get_by_name::<String>(name).ok().flatten();
            let (uri, address, home_type, home_status, zip_code, city, state) = (
                text("uri"),
                text("address"),
                text("home_type"),
                text("home_status"),
                text("zip_code"),
                text("city"),
                text("state"),
            );
            let consensus = FieldValues {
                uri: uri.as_deref(),
                price: listing.get_by_name::<i64>("price").ok().flatten(),
                address: address.as_deref(),
                bedrooms: listing.get_by_name::<i32>("bedrooms").ok().flatten(),
                bathrooms: listing
                    .get_by_name::<AnyNumeric>("bathrooms")
                    .ok()
                    .flatten()
                    .and_then(|n| f64::try_from(n).ok()),
                living_area: listing.get_by_name::<i32>("living_area").ok().flatten(),
                home_type: home_type.as_deref(),
                home_status: home_status.as_deref(),
                days_on_zillow: listing.get_by_name::<i32>("days_on_zillow").ok().flatten(),
                zip_code: zip_code.as_deref(),
                city: city.as_deref(),
                state: state.as_deref(),
                latitude: listing.get_by_name::<f64>("latitude").ok().flatten(),
                longitude: listing.get_by_name::<f64>("longitude").ok().flatten(),
            };
            agreement(&report, &consensus)
        }
    };
    TableIterator::once((a.compared as i32, a.agreed as i32))
}
