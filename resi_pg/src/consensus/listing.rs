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

use super::{fmgr_function, state_mut, take, Args};
use crate::composite::{composite, result_tuple_desc, tuple};
use crate::error::{raise_code, OrRaise};
use crate::jsonb::{jsonb_object, JsonbValue, TooLarge};
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::PgTupleDesc;
use pgrx::{pg_sys, AnyNumeric, IntoDatum};
use resi_core::consensus::listing::{decimal_parts, Member};
use resi_core::consensus::{Claim, ListingConsensus, ListingState, SourceClaim, SourceClaims};
use std::ffi::CString;

const NAME: &str = "resi.consensus_listing";

/// The claim in arguments 1–15 of either listing aggregate's transition function (zpid, uri,
/// price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow,
/// zip_code, city, state, latitude, longitude), read in place.
///
/// SAFETY: the call's arguments 1–15 have those types (sql/consensus.sql).
#[inline(always)]
unsafe fn claim_of<'a>(args: &Args) -> Claim<'a> {
    unsafe {
        Claim {
            zpid: args.str(1),
            uri: args.str(2),
            price: args.i64(3),
            address: args.str(4),
            bedrooms: args.i32(5),
            bathrooms: args.f64(6),
            living_area: args.i32(7),
            home_type: args.str(8),
            home_status: args.str(9),
            days_on_zillow: args.i32(10),
            zip_code: args.str(11),
            city: args.str(12),
            state: args.str(13),
            latitude: args.f64(14),
            longitude: args.f64(15),
        }
    }
}

fmgr_function!(
    /// `resi.consensus_listing_transition(state internal, zpid text, …, longitude double
    /// precision, weight double precision) → internal`: count one claim (sql/consensus.sql
    /// declares it).
    consensus_listing_transition_wrapper,
    pg_finfo_consensus_listing_transition_wrapper,
    listing_transition
);

/// SAFETY: PostgreSQL calls this with the aggregate's arguments; the state is a ListingState.
unsafe fn listing_transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let listing = args.state::<ListingState>();
        (*listing).add(&claim_of(&args), args.f64(16)).or_raise(NAME);
        pg_sys::Datum::from(listing)
    }
}

#[pg_extern(immutable, parallel_safe, cost = 250)]
fn consensus_listing_combine(mut first: Internal, mut second: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: both are ListingStates of this aggregate.
    unsafe {
        if let Some(other) = take::<ListingState>(&mut second) {
            state_mut::<ListingState>(&mut first, fcinfo).merge(other).or_raise(NAME);
        }
    }
    first
}

#[pg_extern(immutable, parallel_safe, cost = 1800)]
fn consensus_listing_serialize(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: a ListingState of this aggregate.
    unsafe { state.get::<ListingState>() }.map(|listing| listing.serialize().or_raise(NAME))
}

#[pg_extern(immutable, parallel_safe, cost = 250)]
fn consensus_listing_deserialize(bytes: Option<&[u8]>, _unused: Internal) -> Internal {
    match bytes {
        Some(bytes) => Internal::new(ListingState::deserialize(bytes).or_raise(NAME)),
        None => Internal::default(),
    }
}

#[pg_extern(immutable, parallel_safe, cost = 7400)]
fn consensus_listing_final(
    mut state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.consensus_listing")> {
    // SAFETY: a ListingState of this aggregate. result() sorts the median claims in place,
    // which a later call (a window frame that grows) tolerates.
    let c = unsafe { state.get_mut::<ListingState>() }?.result().or_raise(NAME)?;
    Some(composite(fcinfo, "resi.consensus_listing", &listing_datums(&c)))
}

/// The attributes of a `resi.consensus_listing`, in order.
fn listing_datums(c: &ListingConsensus) -> [Option<pg_sys::Datum>; 16] {
    let value = |f: &Option<resi_core::consensus::Consensus>| f.as_ref().map(|c| c.value.as_str()).into_datum();
    let integer =
        |f: &Option<resi_core::consensus::Consensus>| f.as_ref().and_then(|c| c.value.parse::<i32>().ok()).into_datum();
    let bathrooms = c.bathrooms.as_ref().and_then(|b| AnyNumeric::try_from(b.value.as_str()).ok()).into_datum();
    [
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
        field_consensus(c),
    ]
}

const BY_SOURCE: &str = "resi.consensus_by_source";

fmgr_function!(
    /// `resi.consensus_by_source_transition(state internal, zpid text, …, longitude double
    /// precision, trust double precision, member text, miner_hotkey text, signature bigint,
    /// submitted_at timestamptz) → internal`: keeps the claim (resi_core::consensus::sources;
    /// sql/consensus.sql declares it). NULL member, miner_hotkey or submitted_at raises 22004.
    consensus_by_source_transition_wrapper,
    pg_finfo_consensus_by_source_transition_wrapper,
    by_source_transition
);

/// SAFETY: PostgreSQL calls this with the aggregate's arguments; the state is a SourceClaims.
unsafe fn by_source_transition(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let args = Args::of(fcinfo);
        let (Some(member), Some(miner_hotkey), Some(submitted_at)) = (args.str(17), args.str(18), args.i64(20)) else {
            raise_code(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                BY_SOURCE,
                "member, miner_hotkey and submitted_at must not be NULL",
            )
        };
        let claims = args.state::<SourceClaims>();
        (*claims).add(&SourceClaim {
            claim: claim_of(&args),
            trust: args.f64(16),
            member,
            miner_hotkey,
            signature: args.i64(19),
            submitted_at,
        });
        pg_sys::Datum::from(claims)
    }
}

/// Final of `resi.consensus_by_source`: each source's leading claim weighted by trust ×
/// `resi.claim_recency` (so STABLE: it reads `resi.claim_half_life`). Always a row: `listing`
/// is NULL when no field has a consensus, `voting_groups` counts the sources with trust > 0.
#[pg_extern(stable, parallel_safe)]
fn consensus_by_source_final(
    state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.source_consensus")> {
    // SAFETY: a SourceClaims of this aggregate; NULL when it saw no row (an ungrouped call over
    // no rows), answered as a listing without claims.
    let none = SourceClaims::default();
    let claims = unsafe { state.get::<SourceClaims>() }.unwrap_or(&none);
    let mut votes = claims.votes(crate::settings::claim_half_life_seconds()).or_raise(BY_SOURCE);
    let outer = result_tuple_desc(fcinfo, "resi.source_consensus");
    let listing = votes.listing.result().or_raise(BY_SOURCE).map(|c| {
        // Attribute 2 of resi.source_consensus is its resi.consensus_listing.
        let listing_type = outer.get(1).expect("resi.source_consensus has a listing").atttypid;
        let tupdesc = PgTupleDesc::for_composite_type_by_oid(listing_type).expect("resi.consensus_listing exists");
        tuple(tupdesc, "resi.consensus_listing", &listing_datums(&c)).into_datum().expect("a composite is a value")
    });
    Some(tuple(outer, "resi.source_consensus", &[votes.voting_sources.into_datum(), listing]))
}

/// `field_consensus` as a `jsonb` datum, written in jsonb's binary format by Rust
/// ([`crate::jsonb`]) and copied into one palloc: the bytes `jsonb_in` would make from the same
/// JSON. Numbers become `numeric` from their shortest decimal digits, as
/// `to_jsonb(double precision)` makes them. Raises 54000 for an object over jsonb's 256 MB.
fn field_consensus(c: &ListingConsensus) -> Option<pg_sys::Datum> {
    let object = c
        .field_members()
        .into_iter()
        .map(|(name, members)| {
            let members = members
                .into_iter()
                .map(|(key, member)| {
                    let value = match member {
                        Member::Text(text) => JsonbValue::String(text),
                        Member::Integer(v) => JsonbValue::Decimal(v, 0),
                        Member::Number(v) => match decimal_parts(v) {
                            Some((mantissa, scale)) => JsonbValue::Decimal(mantissa, scale),
                            // The rare number whose digits do not fit an i64 (|v| >= 1e19 or so).
                            None => JsonbValue::Numeric(numeric_from_text(v)),
                        },
                    };
                    (key, value)
                })
                .collect();
            (name, JsonbValue::Object(members))
        })
        .collect();
    let bytes = jsonb_object(object).unwrap_or_else(|TooLarge| {
        raise_code(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, NAME, "field_consensus is larger than jsonb allows")
    });
    // SAFETY: palloc in the current memory context (the caller's: the result outlives this
    // call) of exactly bytes.len(), filled before it is read.
    unsafe {
        let datum = pg_sys::palloc(bytes.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), datum, bytes.len());
        Some(pg_sys::Datum::from(datum))
    }
}

/// The `numeric` varlena (4-byte header) of a number whose digits do not fit an i64, through
/// numeric_in.
fn numeric_from_text(v: f64) -> Vec<u8> {
    let text = CString::new(v.to_string()).expect("a number has no NUL");
    // SAFETY: numeric_in(cstring, oid, typmod) returns a palloc'd Numeric (4-byte header) or
    // raises; its bytes are copied out at once.
    unsafe {
        let numeric = pgrx::direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[Some(pg_sys::Datum::from(text.as_ptr())), Some(pg_sys::Oid::INVALID.into()), Some((-1i32).into())],
        )
        .expect("numeric_in returns a value")
        .cast_mut_ptr::<pg_sys::varlena>();
        std::slice::from_raw_parts(numeric as *const u8, pgrx::varsize_any(numeric)).to_vec()
    }
}
