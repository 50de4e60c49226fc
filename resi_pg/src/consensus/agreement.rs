//! How one reported row compares with a listing, over the tolerances of the listing's field
//! table (`resi_core::fields`): `resi.consensus_agreement(uri, price, …, longitude, consensus
//! resi.listings) → (compared, agreed)` against a consensus, and `resi.claim_errors(…, audited
//! resi.listings) → text[]` against what a validator saw.

use pgrx::prelude::*;
use pgrx::AnyNumeric;
use resi_core::fields::{agreement, corroborated_agreement as corroborated, verdicts, FieldValues, LISTING_FIELDS};

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
            let text = ListingText::of(&listing);
            agreement(&report, &text.values(&listing))
        }
    };
    TableIterator::once((a.compared as i32, a.agreed as i32))
}

/// `resi.corroborated_agreement(uri, price, …, longitude, consensus resi.listings) → (compared,
/// agreed)`: [`consensus_agreement`] counted only on fields whose consensus value two or more
/// independent sources support (`supporters` in the listing's `field_consensus`): what the fold
/// counts as a miner's agreement (resi_core::fields::corroborated_agreement). IMMUTABLE,
/// PARALLEL SAFE, not strict: a NULL `consensus`, or one without `field_consensus`, compares
/// nothing (0, 0). Exactly one row. Never raises.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe, requires = ["listings"])]
fn corroborated_agreement<'a>(
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
            let mut supporters = [None; 14];
            if let Ok(Some(pgrx::JsonB(fields))) = listing.get_by_name::<pgrx::JsonB>("field_consensus") {
                for (slot, field) in supporters.iter_mut().zip(LISTING_FIELDS.iter()) {
                    *slot = fields
                        .get(field.name)
                        .and_then(|f| f.get("supporters"))
                        .and_then(|s| s.as_u64())
                        .and_then(|s| u32::try_from(s).ok());
                }
            }
            let text = ListingText::of(&listing);
            corroborated(&report, &text.values(&listing), &supporters)
        }
    };
    TableIterator::once((a.compared as i32, a.agreed as i32))
}

/// `resi.claim_errors(uri, price, …, longitude, audited resi.listings) → text[]`: the fields,
/// in column order, where a report disagrees with an audited listing (within the consensus
/// tolerances; a field missing on either side is not judged). IMMUTABLE, PARALLEL SAFE, not
/// strict: a NULL `audited` gives NULL. Never raises.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe, requires = ["listings"])]
fn claim_errors<'a>(
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
    audited: Option<pgrx::composite_type!('a, "resi.listings")>,
) -> Option<Vec<&'static str>> {
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
    let audited = audited?;
    let text = ListingText::of(&audited);
    let verdicts = verdicts(&report, &text.values(&audited));
    Some(LISTING_FIELDS.iter().zip(verdicts).filter(|(_, v)| *v == Some(false)).map(|(f, _)| f.name).collect())
}

/// The text fields of a `resi.listings` row, owned, so [`FieldValues`] can borrow them.
struct ListingText {
    uri: Option<String>,
    address: Option<String>,
    home_type: Option<String>,
    home_status: Option<String>,
    zip_code: Option<String>,
    city: Option<String>,
    state: Option<String>,
}

impl ListingText {
    fn of(listing: &pgrx::composite_type!('_, "resi.listings")) -> ListingText {
        let text = |name: &str| listing.get_by_name::<String>(name).ok().flatten();
        ListingText {
            uri: text("uri"),
            address: text("address"),
            home_type: text("home_type"),
            home_status: text("home_status"),
            zip_code: text("zip_code"),
            city: text("city"),
            state: text("state"),
        }
    }

    fn values<'s>(&'s self, listing: &pgrx::composite_type!('_, "resi.listings")) -> FieldValues<'s> {
        FieldValues {
            uri: self.uri.as_deref(),
            price: listing.get_by_name::<i64>("price").ok().flatten(),
            address: self.address.as_deref(),
            bedrooms: listing.get_by_name::<i32>("bedrooms").ok().flatten(),
            bathrooms: listing
                .get_by_name::<AnyNumeric>("bathrooms")
                .ok()
                .flatten()
                .and_then(|n| f64::try_from(n).ok()),
            living_area: listing.get_by_name::<i32>("living_area").ok().flatten(),
            home_type: self.home_type.as_deref(),
            home_status: self.home_status.as_deref(),
            days_on_zillow: listing.get_by_name::<i32>("days_on_zillow").ok().flatten(),
            zip_code: self.zip_code.as_deref(),
            city: self.city.as_deref(),
            state: self.state.as_deref(),
            latitude: listing.get_by_name::<f64>("latitude").ok().flatten(),
            longitude: listing.get_by_name::<f64>("longitude").ok().flatten(),
        }
    }
}
