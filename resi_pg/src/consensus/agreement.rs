//! How one reported row compares with a listing, over the tolerances of the listing's field
//! table (`resi_core::fields`): `resi.consensus_agreement(uri, price, …, longitude, consensus
//! resi.listings) → (compared, agreed)` against a consensus, and `resi.claim_errors(…, audited
//! resi.listings) → text[]` against what a validator saw.

use pgrx::heap_tuple::PgHeapTuple;
use pgrx::prelude::*;
use pgrx::AllocatedByRust;
use pgrx::{pg_sys, AnyNumeric};
use resi_core::consensus::listing::bathrooms_tenths;
use resi_core::fields::{self, agreement, verdicts, FieldValues, LISTING_FIELDS};
use std::num::NonZeroUsize;

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

/// `resi.corroborated_agreement(uri, price, …, longitude, consensus resi.listings, corroborated
/// text[]) → (compared, agreed)`: [`consensus_agreement`] counted only on the fields named in
/// `corroborated`, those whose consensus value two or more independent sources support
/// (`resi.corroborated_fields(field_consensus)`): what the fold counts as a miner's agreement
/// (resi_core::fields::corroborated_agreement). The fields come as an argument, not from the
/// listing's jsonb, because reading jsonb here costs a text round trip per row. IMMUTABLE,
/// PARALLEL SAFE, not strict: a NULL `consensus` or `corroborated` compares nothing (0, 0); NULL
/// elements and unknown names are ignored. Exactly one row. Never raises.
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
    corroborated: Option<pgrx::Array<'a, &'a str>>,
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
    let a = match (consensus, corroborated) {
        (Some(listing), Some(names)) => {
            let mut corroborated_fields = [false; 14];
            for name in names.iter().flatten() {
                if let Some(i) = LISTING_FIELDS.iter().position(|f| f.name == name) {
                    corroborated_fields[i] = true;
                }
            }
            let text = ListingText::of(&listing);
            fields::corroborated_agreement(&report, &text.values(&listing), &corroborated_fields)
        }
        _ => Default::default(),
    };
    TableIterator::once((a.compared as i32, a.agreed as i32))
}

/// `resi.corroborated_fields(field_consensus jsonb) → text[]`: the fields of a listing's
/// `field_consensus` whose consensus value two or more independent sources support (`supporters`
/// ≥ 2), in [`LISTING_FIELDS`] order; what the fold passes to `resi.corroborated_agreement`.
/// IMMUTABLE, STRICT, PARALLEL SAFE. Reads the jsonb where it lies (PostgreSQL's binary key
/// lookups; no text round trip, no set-returning `jsonb_each`): one call per staged row. Anything
/// that is not an object of objects, or a `supporters` that is not a number (rounded to an
/// integer), counts as no support; never raises.
#[pg_extern(
    immutable,
    strict,
    parallel_safe,
    sql = "CREATE FUNCTION resi.corroborated_fields(field_consensus jsonb) RETURNS text[]
    IMMUTABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'corroborated_fields_wrapper';"
)]
fn corroborated_fields(field_consensus: pgrx::AnyElement) -> Vec<&'static str> {
    if field_consensus.oid() != pg_sys::JSONBOID {
        return Vec::new();
    }
    // SAFETY: the argument is a non-NULL jsonb datum (checked type, STRICT); detoasting gives a
    // Jsonb that lives in the current memory context for the rest of this call, and every
    // container is checked to be an object before keys are looked up in it.
    unsafe {
        let jsonb = pg_sys::pg_detoast_datum(field_consensus.datum().cast_mut_ptr()) as *mut pg_sys::Jsonb;
        let root = std::ptr::addr_of_mut!((*jsonb).root);
        LISTING_FIELDS
            .iter()
            .filter(|field| {
                let supporters = object_key(root, field.name).and_then(|f| match f.type_ {
                    pg_sys::jbvType::jbvBinary => object_key(f.val.binary.data, "supporters"),
                    _ => None,
                });
                supporters.is_some_and(|s| s.type_ == pg_sys::jbvType::jbvNumeric && at_least_two(s.val.numeric))
            })
            .map(|field| field.name)
            .collect()
    }
}

/// The value of `key` in a jsonb container, when the container is an object that has it.
///
/// # Safety
/// `container` points to a valid jsonb container that outlives the returned value's pointers.
unsafe fn object_key(container: *mut pg_sys::JsonbContainer, key: &str) -> Option<pg_sys::JsonbValue> {
    // SAFETY: the caller passes a valid container; the header says whether it is an object (the
    // lookup assumes one), and the lookup fills `value` when it returns non-NULL.
    unsafe {
        if (*container).header & pg_sys::JB_FOBJECT == 0 {
            return None;
        }
        let mut value: pg_sys::JsonbValue = std::mem::zeroed();
        let found = pg_sys::getKeyJsonValueFromContainer(
            container,
            key.as_ptr() as *const std::ffi::c_char,
            key.len() as std::ffi::c_int,
            &mut value,
        );
        (!found.is_null()).then_some(value)
    }
}

/// Whether a numeric is an integer of at least 2 (non-integers and out-of-range values: no).
///
/// # Safety
/// `n` points to a valid numeric.
unsafe fn at_least_two(n: pg_sys::Numeric) -> bool {
    let mut error = false;
    // SAFETY: a valid numeric; with an error flag numeric_int4_opt_error reports instead of raising.
    let v = unsafe { pg_sys::numeric_int4_opt_error(n, &mut error) };
    !error && v >= 2
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

/// `resi.claim_differences(claim resi.miner_claims, other resi.miner_claims) → text[]`: the
/// fields, in column order, where two claims disagree within the consensus tolerances (a field
/// missing on either side is not judged; bathrooms compare as tenths, as the consensus holds
/// them) — what `resi.claim_errors` gives against a listing, between two reports: which of two
/// miners' shared deviations are the same (`resi.find_dependent_miners`). IMMUTABLE, STRICT,
/// PARALLEL SAFE. Never raises.
#[pg_extern(immutable, strict, parallel_safe, requires = ["listings"])]
fn claim_differences<'a>(
    claim: pgrx::composite_type!('a, "resi.miner_claims"),
    other: pgrx::composite_type!('a, "resi.miner_claims"),
) -> Vec<&'static str> {
    let (a, b) = (ListingText::of(&claim), ListingText::of(&other));
    // `other` stands where a listing would: its bathrooms as a listing holds them (none outside
    // 0..99.9).
    let mut theirs = b.values(&other);
    theirs.bathrooms = theirs.bathrooms.filter(|&v| bathrooms_tenths(v).is_some());
    let verdicts = verdicts(&a.values(&claim), &theirs);
    LISTING_FIELDS.iter().zip(verdicts).filter(|(_, v)| *v == Some(false)).map(|(f, _)| f.name).collect()
}

/// A row's 14 listing fields (a `resi.listings` row or a `resi.miner_claims` one: found by name):
/// the text ones owned, so [`FieldValues`] can borrow them, and where each field lies in the row.
struct ListingText {
    /// The attribute number of each [`LISTING_FIELDS`] field (`None`: not in the row).
    at: [Option<NonZeroUsize>; 14],
    uri: Option<String>,
    address: Option<String>,
    home_type: Option<String>,
    home_status: Option<String>,
    zip_code: Option<String>,
    city: Option<String>,
    state: Option<String>,
}

impl ListingText {
    /// One pass over the row's attributes finds the fields (a lookup by name per field would
    /// scan them fourteen times; this runs once per staged row in the fold).
    fn of(listing: &PgHeapTuple<'_, AllocatedByRust>) -> ListingText {
        let mut at = [None; 14];
        for (attnum, attribute) in listing.attributes() {
            if attribute.attisdropped {
                continue;
            }
            let name = attribute.name();
            if let Some(i) = LISTING_FIELDS.iter().position(|f| f.name == name) {
                at[i] = Some(attnum);
            }
        }
        let mut text = ListingText {
            at,
            uri: None,
            address: None,
            home_type: None,
            home_status: None,
            zip_code: None,
            city: None,
            state: None,
        };
        text.uri = text.get(listing, "uri");
        text.address = text.get(listing, "address");
        text.home_type = text.get(listing, "home_type");
        text.home_status = text.get(listing, "home_status");
        text.zip_code = text.get(listing, "zip_code");
        text.city = text.get(listing, "city");
        text.state = text.get(listing, "state");
        text
    }

    /// The value of field `name` (one of [`LISTING_FIELDS`]); `None` when NULL, missing, or of
    /// another type.
    fn get<'t, T>(&self, listing: &'t PgHeapTuple<'_, AllocatedByRust>, name: &str) -> Option<T>
    where
        T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum + pgrx::datum::UnboxDatum<As<'t> = T> + 't,
    {
        let i = LISTING_FIELDS.iter().position(|f| f.name == name)?;
        listing.get_by_index::<T>(self.at[i]?).ok().flatten()
    }

    /// The fields as typed; bathrooms is `numeric` in `resi.listings` and `double precision` in
    /// the claims, and read as either.
    fn values<'s>(&'s self, listing: &PgHeapTuple<'_, AllocatedByRust>) -> FieldValues<'s> {
        FieldValues {
            uri: self.uri.as_deref(),
            price: self.get(listing, "price"),
            address: self.address.as_deref(),
            bedrooms: self.get(listing, "bedrooms"),
            bathrooms: self
                .get::<f64>(listing, "bathrooms")
                .or_else(|| self.get::<AnyNumeric>(listing, "bathrooms").and_then(|n| f64::try_from(n).ok())),
            living_area: self.get(listing, "living_area"),
            home_type: self.home_type.as_deref(),
            home_status: self.home_status.as_deref(),
            days_on_zillow: self.get(listing, "days_on_zillow"),
            zip_code: self.zip_code.as_deref(),
            city: self.city.as_deref(),
            state: self.state.as_deref(),
            latitude: self.get(listing, "latitude"),
            longitude: self.get(listing, "longitude"),
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// `(compared, agreed)` of a report with price 102,000 and 4 bedrooms against a listing with
    /// 100,000 and 3, judged on the fields `corroborated` (an SQL text[] expression) names.
    fn judged(corroborated: &str) -> String {
        Spi::get_one::<String>(&format!(
            "SELECT (compared, agreed)::text FROM resi.corroborated_agreement(
                 NULL, 102000, NULL, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 jsonb_populate_record(NULL::resi.listings, '{{\"price\": 100000, \"bedrooms\": 3}}'), {corroborated})"
        ))
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn corroborated_agreement_judges_only_the_fields_two_sources_back() {
        // price is backed by two sources, bedrooms by one: only price is judged (and is 2 % off).
        let fields = "resi.corroborated_fields('{\"price\": {\"supporters\": 2}, \"bedrooms\": {\"supporters\": 1}}')";
        assert_eq!(Spi::get_one::<String>(&format!("SELECT {fields}::text")).unwrap().unwrap(), "{price}");
        assert_eq!(judged(fields), "(1,0)");
        assert_eq!(judged("ARRAY['price', 'bedrooms']"), "(2,0)");
        // Unknown names and NULL elements are ignored; a NULL list judges nothing.
        assert_eq!(judged("ARRAY['nonsense', NULL, 'bedrooms']"), "(1,0)");
        assert_eq!(judged("NULL"), "(0,0)");
        assert_eq!(judged("'{}'"), "(0,0)");
    }

    #[pg_test]
    fn claim_differences_compares_two_claims_within_the_consensus_tolerances() {
        let differences = |a: &str, b: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT resi.claim_differences(jsonb_populate_record(NULL::resi.miner_claims, '{a}'),
                                               jsonb_populate_record(NULL::resi.miner_claims, '{b}'))::text"
            ))
            .unwrap()
            .unwrap()
        };
        // Price within 1 % agrees; bedrooms differ; a field missing on one side is not judged.
        assert_eq!(
            differences(r#"{"price": 100000, "bedrooms": 3, "city": "Katy"}"#, r#"{"price": 100900, "bedrooms": 4}"#),
            "{bedrooms}"
        );
        // Bathrooms compare as tenths; the other claim's count outside 0..99.9 is not judged, as a
        // listing would not hold it.
        assert_eq!(differences(r#"{"bathrooms": 2.04}"#, r#"{"bathrooms": 1.96}"#), "{}");
        assert_eq!(differences(r#"{"bathrooms": 2.5}"#, r#"{"bathrooms": 250}"#), "{}");
        assert_eq!(differences(r#"{"bathrooms": 250}"#, r#"{"bathrooms": 2.5}"#), "{bathrooms}");
    }

    #[pg_test]
    fn corroborated_fields_reads_supporters_and_ignores_anything_else() {
        let fields = |json: &str| {
            Spi::get_one::<String>(&format!("SELECT resi.corroborated_fields('{json}'::jsonb)::text")).unwrap().unwrap()
        };
        // In the field table's order, whatever the jsonb's.
        assert_eq!(
            fields(r#"{"state": {"supporters": 3}, "uri": {"supporters": 2}, "price": {"supporters": 1}}"#),
            "{uri,state}"
        );
        // Not objects, not numbers, unknown keys: no support; never an error.
        assert_eq!(fields(r#"{"uri": {"supporters": "2"}, "city": 2, "nonsense": {"supporters": 9}}"#), "{}");
        for other in ["[1, 2]", "7", "\"text\"", "null", "{}"] {
            assert_eq!(fields(other), "{}", "{other}");
        }
        assert_eq!(Spi::get_one::<Vec<String>>("SELECT resi.corroborated_fields(NULL)").unwrap(), None);
    }
}
