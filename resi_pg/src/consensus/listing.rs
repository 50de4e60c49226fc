//! Support functions of `resi.consensus_listing(zpid, uri, price, …, longitude, weight) →
//! resi.consensus_listing`: every field's consensus of one listing in one aggregate.
//!
//! Per field the result is what `resi.consensus_mode` (categories) or `resi.consensus_median`
//! (price 0.01, living_area 0.02, days_on_zillow 0.1, latitude/longitude 1e-6 relative
//! tolerance) would give over the same rows; a uri only votes when it names the row's zpid;
//! bathrooms vote as `round(v::numeric, 1)` within 0..99.9. A row whose weight is NULL, NaN or
//! ≤ 0 counts for nothing; a weight above 1e15 raises 22003. No voting row → NULL. The final
//! function also writes `field_consensus` (the per-field JSON of `resi.listings`) and
//! `consensus_score` (the mean field confidence), so a refresh is one aggregate per listing.

use super::{state_mut, take};
use crate::composite::composite;
use crate::error::OrRaise;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyNumeric, IntoDatum};
use resi_core::consensus::listing::{decimal_parts, Member};
use resi_core::consensus::{Claim, ListingConsensus, ListingState};
use std::ffi::CString;

const NAME: &str = "resi.consensus_listing";

#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn consensus_listing_transition(
    mut state: Internal,
    zpid: Option<&str>,
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
    state_code: Option<&str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    weight: Option<f64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    // SAFETY: the transition value of consensus_listing is always a ListingState.
    let listing = unsafe { state_mut::<ListingState>(&mut state, fcinfo) };
    let claim = Claim {
        zpid,
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
        state: state_code,
        latitude,
        longitude,
    };
    listing.add(&claim, weight).or_raise(NAME);
    state
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_listing_combine(mut first: Internal, mut second: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: both are ListingStates of this aggregate.
    unsafe {
        if let Some(other) = take::<ListingState>(&mut second) {
            state_mut::<ListingState>(&mut first, fcinfo).merge(other).or_raise(NAME);
        }
    }
    first
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_listing_serialize(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: a ListingState of this aggregate.
    unsafe { state.get::<ListingState>() }.map(ListingState::serialize)
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_listing_deserialize(bytes: Option<&[u8]>, _unused: Internal) -> Internal {
    match bytes {
        Some(bytes) => Internal::new(ListingState::deserialize(bytes).or_raise(NAME)),
        None => Internal::default(),
    }
}

#[pg_extern(immutable, parallel_safe)]
fn consensus_listing_final(
    mut state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.consensus_listing")> {
    // SAFETY: a ListingState of this aggregate. result() sorts the median claims in place,
    // which a later call (a window frame that grows) tolerates.
    let c = unsafe { state.get_mut::<ListingState>() }?.result().or_raise(NAME)?;
    let value = |f: &Option<resi_core::consensus::Consensus>| f.as_ref().map(|c| c.value.as_str()).into_datum();
    let integer =
        |f: &Option<resi_core::consensus::Consensus>| f.as_ref().and_then(|c| c.value.parse::<i32>().ok()).into_datum();
    let bathrooms = c.bathrooms.as_ref().and_then(|b| AnyNumeric::try_from(b.value.as_str()).ok()).into_datum();
    Some(composite(
        fcinfo,
        "resi.consensus_listing",
        &[
            value(&c.uri),
            c.price_value().into_datum(),
            value(&c.address),
            integer(&c.bedrooms),
            bathrooms,
            ListingConsensus::integer_value(&c.living_area).into_datum(),
            value(&c.home_type),
            value(&c.home_status),
            ListingConsensus::integer_value(&c.days_on_zillow).into_datum(),
            value(&c.zip_code),
            value(&c.city),
            value(&c.state),
            c.latitude.as_ref().map(|n| n.value).into_datum(),
            c.longitude.as_ref().map(|n| n.value).into_datum(),
            c.score().into_datum(),
            field_consensus(&c),
        ],
    ))
}

/// `field_consensus` as a `jsonb` datum, built with PostgreSQL's own `pushJsonbValue` from the
/// members (no JSON text to print and parse again); numbers become `numeric` from their shortest
/// decimal digits, as `to_jsonb(double precision)` makes them.
fn field_consensus(c: &ListingConsensus) -> Option<pg_sys::Datum> {
    // jsonb keeps an object's keys sorted (shorter first, then by bytes) and sorts the pairs of
    // every object it builds; its sort swaps the pairs byte by byte, which cost more than a third
    // of a refresh. Pushed already in that order, the sort's presorted check returns at once.
    let mut fields = c.field_members();
    fields.sort_unstable_by(|a, b| jsonb_key_order(a.0, b.0));
    for (_, members) in &mut fields {
        members.sort_unstable_by(|a, b| jsonb_key_order(a.0, b.0));
    }
    let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
    // SAFETY: the JsonbValues point into `fields` (and static keys), which outlive the
    // JsonbValueToJsonb call that copies them into the result; push/convert palloc in the
    // current memory context and raise PostgreSQL errors, which pgrx turns into Rust panics.
    unsafe {
        pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, std::ptr::null_mut());
        for (name, members) in &fields {
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_KEY, &mut string(name));
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, std::ptr::null_mut());
            for (key, member) in members {
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_KEY, &mut string(key));
                let mut value = match *member {
                    Member::Text(text) => string(text),
                    Member::Integer(v) => numeric(pg_sys::int64_to_numeric(v)),
                    Member::Number(v) => numeric(match decimal_parts(v) {
                        Some((mantissa, 0)) => pg_sys::int64_to_numeric(mantissa),
                        Some((mantissa, scale)) => pg_sys::int64_div_fast_to_numeric(mantissa, scale as i32),
                        None => numeric_from_text(v),
                    }),
                };
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_VALUE, &mut value);
            }
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, std::ptr::null_mut());
        }
        let object =
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, std::ptr::null_mut());
        Some(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object)))
    }
}

/// The order jsonb keeps an object's keys in: shorter first, then by bytes.
fn jsonb_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// A jsonb string (or key) pointing at `text`'s bytes.
fn string(text: &str) -> pg_sys::JsonbValue {
    // SAFETY: the union is plain old data; all zeroes is a valid value, overwritten below.
    let mut value = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvString, val: unsafe { std::mem::zeroed() } };
    value.val.string = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 {
        len: i32::try_from(text.len()).expect("a text datum is shorter than 1 GB"),
        val: text.as_ptr() as *mut std::ffi::c_char,
    };
    value
}

fn numeric(n: pg_sys::Numeric) -> pg_sys::JsonbValue {
    // SAFETY: the union is plain old data; all zeroes is a valid value, overwritten below.
    let mut value = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNumeric, val: unsafe { std::mem::zeroed() } };
    value.val.numeric = n;
    value
}

/// The rare number whose digits do not fit an i64 (|v| ≥ 1e19 or so): through numeric_in.
fn numeric_from_text(v: f64) -> pg_sys::Numeric {
    let text = CString::new(v.to_string()).expect("a number has no NUL");
    // SAFETY: numeric_in(cstring, oid, typmod) returns a palloc'd Numeric or raises.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[Some(pg_sys::Datum::from(text.as_ptr())), Some(pg_sys::Oid::INVALID.into()), Some((-1i32).into())],
        )
        .expect("numeric_in returns a value")
        .cast_mut_ptr()
    }
}
