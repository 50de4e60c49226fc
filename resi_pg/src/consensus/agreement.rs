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
        Some(listing) => agreement(&report, &ListingRow::of(listing).values()),
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
            fields::corroborated_agreement(&report, &ListingRow::of(listing).values(), &corroborated_fields)
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
    let audited = ListingRow::of(audited?);
    let verdicts = verdicts(&report, &audited.values());
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
    let (ours, theirs) = (ListingRow::of(claim), ListingRow::of(other));
    // `other` stands where a listing would: its bathrooms as a listing holds them (none outside
    // 0..99.9).
    let mut theirs = theirs.values();
    theirs.bathrooms = theirs.bathrooms.filter(|&v| bathrooms_tenths(v).is_some());
    let verdicts = verdicts(&ours.values(), &theirs);
    LISTING_FIELDS.iter().zip(verdicts).filter(|(_, v)| *v == Some(false)).map(|(f, _)| f.name).collect()
}

/// A row's 14 listing fields (a `resi.listings` row or a `resi.miner_claims` one: found by
/// name), read from the row deformed once: the text ones owned, so [`FieldValues`] can borrow
/// them. A field missing from the row, NULL, or of another type than the field table's (but
/// bathrooms, `numeric` in `resi.listings` and `double precision` in the claims) is `None`.
#[derive(Default)]
struct ListingRow {
    uri: Option<String>,
    price: Option<i64>,
    address: Option<String>,
    bedrooms: Option<i32>,
    bathrooms: Option<f64>,
    living_area: Option<i32>,
    home_type: Option<String>,
    home_status: Option<String>,
    days_on_zillow: Option<i32>,
    zip_code: Option<String>,
    city: Option<String>,
    state: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl ListingRow {
    /// One `heap_deform_tuple` and one pass over the row's attributes, comparing their names as
    /// bytes. (Reading field by field through pgrx walked the tuple from its start for every
    /// field past a variable-length one and turned every attribute name into a `&str`: half the
    /// time of `resi.claim_differences`, which the regrouping pass calls per pair of claims, and
    /// a share of every staged row's `resi.corroborated_agreement` in the fold.)
    fn of(row: PgHeapTuple<'_, AllocatedByRust>) -> ListingRow {
        let mut listing = ListingRow::default();
        // SAFETY: `row` is a composite argument of the calling function: its tuple header is
        // valid (pgrx detoasted it) for the call, and so are the datums deformed from it; the
        // row type's descriptor is pinned by lookup_rowtype_tupdesc until released below.
        unsafe {
            let tuple = row.into_pg();
            let header = (*tuple).t_data;
            let descriptor = pg_sys::lookup_rowtype_tupdesc(
                pgrx::heap_tuple_header_get_type_id(header),
                pgrx::heap_tuple_header_get_typmod(header),
            );
            let attributes = (*descriptor).attrs.as_slice((*descriptor).natts as usize);
            let mut values = vec![pg_sys::Datum::from(0); attributes.len()];
            let mut nulls = vec![true; attributes.len()];
            pg_sys::heap_deform_tuple(tuple, descriptor, values.as_mut_ptr(), nulls.as_mut_ptr());
            for (i, attribute) in attributes.iter().enumerate() {
                if attribute.attisdropped || nulls[i] {
                    continue;
                }
                let name = std::ffi::CStr::from_ptr(attribute.attname.data.as_ptr()).to_bytes();
                listing.read(name, values[i], attribute.atttypid);
            }
            pgrx::release_tupdesc(descriptor);
        }
        listing
    }

    /// Keep `value` (not NULL, of type `type_oid`) when `name` is a field of the table and the
    /// type is the field's.
    ///
    /// SAFETY: `value` is a valid datum of type `type_oid`.
    unsafe fn read(&mut self, name: &[u8], value: pg_sys::Datum, type_oid: pg_sys::Oid) {
        unsafe {
            let text = || (type_oid == pg_sys::TEXTOID).then(|| String::from_datum(value, false)).flatten();
            let int4 = || (type_oid == pg_sys::INT4OID).then(|| i32::from_datum(value, false)).flatten();
            let float8 = || (type_oid == pg_sys::FLOAT8OID).then(|| f64::from_datum(value, false)).flatten();
            match name {
                b"uri" => self.uri = text(),
                b"price" => self.price = (type_oid == pg_sys::INT8OID).then(|| i64::from_datum(value, false)).flatten(),
                b"address" => self.address = text(),
                b"bedrooms" => self.bedrooms = int4(),
                b"bathrooms" => {
                    self.bathrooms = float8().or_else(|| {
                        (type_oid == pg_sys::NUMERICOID)
                            .then(|| AnyNumeric::from_datum(value, false))
                            .flatten()
                            .and_then(|n| f64::try_from(n).ok())
                    })
                }
                b"living_area" => self.living_area = int4(),
                b"home_type" => self.home_type = text(),
                b"home_status" => self.home_status = text(),
                b"days_on_zillow" => self.days_on_zillow = int4(),
                b"zip_code" => self.zip_code = text(),
                b"city" => self.city = text(),
                b"state" => self.state = text(),
                b"latitude" => self.latitude = float8(),
                b"longitude" => self.longitude = float8(),
                _ => {}
            }
        }
    }

    /// The fields as [`FieldValues`] (the text ones borrowed).
    fn values(&self) -> FieldValues<'_> {
        FieldValues {
            uri: self.uri.as_deref(),
            price: self.price,
            address: self.address.as_deref(),
            bedrooms: self.bedrooms,
            bathrooms: self.bathrooms,
            living_area: self.living_area,
            home_type: self.home_type.as_deref(),
            home_status: self.home_status.as_deref(),
            days_on_zillow: self.days_on_zillow,
            zip_code: self.zip_code.as_deref(),
            city: self.city.as_deref(),
            state: self.state.as_deref(),
            latitude: self.latitude,
            longitude: self.longitude,
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
