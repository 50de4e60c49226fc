//! The fields of a listing: one table, defined once.
//!
//! Every reported listing carries the fourteen fields of [`LISTING_FIELDS`], in this order: the
//! columns of `resi.listings`, `resi.miner_claims`, `resi.miner_attestations` and
//! `resi.staging_listings` (after their own bookkeeping columns), the arguments of
//! `resi.consensus_listing` and `resi.consensus_agreement`, and the keys of
//! `resi.listings.field_consensus`. Each field says how it votes in the consensus ([`Vote`]):
//! by weighted vote over equal values, or by weighted median with a relative tolerance. The
//! consensus ([`crate::consensus::ListingState`]), the agreement of a report with a consensus
//! ([`agreement`]) and the loader's staging columns read this table; the extension's tests
//! check the schema against it (`tests/tests/extension.rs`).

/// How a field's consensus is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    /// Weighted vote over equal values (text, or a number voting as its text form).
    Mode,
    /// Weighted lower median; a report within `ppm` millionths of the median (relative to it)
    /// supports it and agrees with it.
    Median { ppm: u32 },
}

/// The SQL type of a field, as the tables declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Bigint,
    Integer,
    /// `double precision`; bathrooms is stored as `numeric(3,1)` in `resi.listings` only.
    Double,
}

impl SqlType {
    /// The name `format_type` gives it.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Text => "text",
            SqlType::Bigint => "bigint",
            SqlType::Integer => "integer",
            SqlType::Double => "double precision",
        }
    }
}

/// One field of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub sql_type: SqlType,
    pub vote: Vote,
}

impl Field {
    /// The relative tolerance of a median field as a double (`0.01` for price), `None` for a
    /// voted one. The same double as the decimal literal (`ppm / 1e6` is correctly rounded).
    pub fn tolerance(&self) -> Option<f64> {
        match self.vote {
            Vote::Median { ppm } => Some(f64::from(ppm) / 1e6),
            Vote::Mode => None,
        }
    }
}

const fn field(name: &'static str, sql_type: SqlType, vote: Vote) -> Field {
    Field { name, sql_type, vote }
}

pub const URI: Field = field("uri", SqlType::Text, Vote::Mode);
pub const PRICE: Field = field("price", SqlType::Bigint, Vote::Median { ppm: 10_000 });
pub const ADDRESS: Field = field("address", SqlType::Text, Vote::Mode);
pub const BEDROOMS: Field = field("bedrooms", SqlType::Integer, Vote::Mode);
/// Votes as its value rounded to a tenth, only within 0..99.9 ([`crate::consensus::listing::bathrooms_tenths`]).
pub const BATHROOMS: Field = field("bathrooms", SqlType::Double, Vote::Mode);
pub const LIVING_AREA: Field = field("living_area", SqlType::Integer, Vote::Median { ppm: 20_000 });
pub const HOME_TYPE: Field = field("home_type", SqlType::Text, Vote::Mode);
pub const HOME_STATUS: Field = field("home_status", SqlType::Text, Vote::Mode);
pub const DAYS_ON_ZILLOW: Field = field("days_on_zillow", SqlType::Integer, Vote::Median { ppm: 100_000 });
pub const ZIP_CODE: Field = field("zip_code", SqlType::Text, Vote::Mode);
pub const CITY: Field = field("city", SqlType::Text, Vote::Mode);
pub const STATE: Field = field("state", SqlType::Text, Vote::Mode);
/// About 3–10 m at the network's latitudes.
pub const LATITUDE: Field = field("latitude", SqlType::Double, Vote::Median { ppm: 1 });
pub const LONGITUDE: Field = field("longitude", SqlType::Double, Vote::Median { ppm: 1 });

/// The fields of a listing, in column order.
pub const LISTING_FIELDS: [Field; 14] = [
    URI,
    PRICE,
    ADDRESS,
    BEDROOMS,
    BATHROOMS,
    LIVING_AREA,
    HOME_TYPE,
    HOME_STATUS,
    DAYS_ON_ZILLOW,
    ZIP_CODE,
    CITY,
    STATE,
    LATITUDE,
    LONGITUDE,
];

/// The field names, comma-separated in column order (for SQL column lists).
pub fn column_list() -> String {
    LISTING_FIELDS.map(|f| f.name).join(", ")
}

/// The values of one listing's fields, typed as the tables hold them: a miner's report, or a
/// listing's consensus.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FieldValues<'a> {
    pub uri: Option<&'a str>,
    pub price: Option<i64>,
    pub address: Option<&'a str>,
    pub bedrooms: Option<i32>,
    pub bathrooms: Option<f64>,
    pub living_area: Option<i32>,
    pub home_type: Option<&'a str>,
    pub home_status: Option<&'a str>,
    pub days_on_zillow: Option<i32>,
    pub zip_code: Option<&'a str>,
    pub city: Option<&'a str>,
    pub state: Option<&'a str>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// How a report compares with a consensus: `compared` fields where both have a value, `agreed`
/// of them within the field's tolerance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    pub compared: u32,
    pub agreed: u32,
}

impl Agreement {
    fn count(&mut self, verdict: Option<bool>) {
        if let Some(agrees) = verdict {
            self.compared += 1;
            self.agreed += u32::from(agrees);
        }
    }
}

/// How `report` compares with `consensus`, field by field, in [`LISTING_FIELDS`] order:
/// `Some(true)` when it agrees, `Some(false)` when not, `None` when the field is missing on
/// either side. A median field agrees within its relative tolerance of the consensus value
/// (exactly, for the integer fields), a voted field when equal; bathrooms agree when the report,
/// rounded to a tenth within 0..99.9, equals the consensus (a report outside that range
/// disagrees). Pure, total: no errors, no panics.
pub fn verdicts(report: &FieldValues<'_>, consensus: &FieldValues<'_>) -> [Option<bool>; 14] {
    use crate::consensus::listing::bathrooms_tenths;
    [
        equal(report.uri, consensus.uri),
        within_integer(PRICE, report.price, consensus.price),
        equal(report.address, consensus.address),
        equal(report.bedrooms, consensus.bedrooms),
        match (report.bathrooms, consensus.bathrooms) {
            (Some(r), Some(c)) => Some(bathrooms_tenths(r).is_some_and(|t| Some(t) == bathrooms_tenths(c))),
            _ => None,
        },
        within_integer(LIVING_AREA, report.living_area.map(i64::from), consensus.living_area.map(i64::from)),
        equal(report.home_type, consensus.home_type),
        equal(report.home_status, consensus.home_status),
        within_integer(DAYS_ON_ZILLOW, report.days_on_zillow.map(i64::from), consensus.days_on_zillow.map(i64::from)),
        equal(report.zip_code, consensus.zip_code),
        equal(report.city, consensus.city),
        equal(report.state, consensus.state),
        within_double(LATITUDE, report.latitude, consensus.latitude),
        within_double(LONGITUDE, report.longitude, consensus.longitude),
    ]
}

/// [`verdicts`] counted: how many fields were compared and how many of them agree.
pub fn agreement(report: &FieldValues<'_>, consensus: &FieldValues<'_>) -> Agreement {
    let mut a = Agreement::default();
    verdicts(report, consensus).into_iter().for_each(|v| a.count(v));
    a
}

/// [`verdicts`] counted only on the fields whose consensus value two or more independent sources
/// support (`corroborated`, in [`LISTING_FIELDS`] order; `field_consensus` has the supporters):
/// agreeing with a value that another source backs too, or disagreeing with a value two others
/// back, is evidence; agreeing with a consensus one formed alone, or disagreeing with a lone
/// other source, is not. What a miner's trust counts as agreement (`resi.corroborated_agreement`).
pub fn corroborated_agreement(
    report: &FieldValues<'_>,
    consensus: &FieldValues<'_>,
    corroborated: &[bool; 14],
) -> Agreement {
    let mut a = Agreement::default();
    verdicts(report, consensus).into_iter().zip(corroborated).filter(|(_, &c)| c).for_each(|(v, _)| a.count(v));
    a
}

fn equal<T: PartialEq>(report: Option<T>, consensus: Option<T>) -> Option<bool> {
    Some(report? == consensus?)
}

/// `|r - c| <= ppm/10^6 · |c|`, exact in integers (as SQL's numeric arithmetic is).
fn within_integer(field: Field, report: Option<i64>, consensus: Option<i64>) -> Option<bool> {
    let (r, c) = (i128::from(report?), i128::from(consensus?));
    let Vote::Median { ppm } = field.vote else { return Some(r == c) };
    Some((r - c).abs() * 1_000_000 <= i128::from(ppm) * c.abs())
}

/// `|r - c| <= tolerance · |c|` in doubles; NaN agrees with nothing.
fn within_double(field: Field, report: Option<f64>, consensus: Option<f64>) -> Option<bool> {
    let (r, c) = (report?, consensus?);
    let tolerance = field.tolerance().unwrap_or(0.0);
    Some((r - c).abs() <= tolerance * c.abs())
}

/// The signature of one report: the first 8 bytes of SHA-256 over its zpid, its scrape time
/// (microseconds since 2000-01-01, as PostgreSQL keeps timestamps) and every field, as an
/// `i64`. Two reports share it exactly when they are byte copies of each other, volatile fields
/// (`days_on_zillow`, the scrape time) included: independent scrapers of one listing differ at
/// least in their scrape times, a copied file does not. The encoding is unambiguous (a presence
/// tag, then a length-prefixed string or 8 bytes), and a cryptographic hash, so a miner cannot
/// make its report collide with another miner's without copying it. Pure, total.
pub fn claim_signature(zpid: &str, scraped_at_micros: Option<i64>, report: &FieldValues<'_>) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut text = |v: Option<&str>| match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    };
    text(Some(zpid));
    text(report.uri);
    text(report.address);
    text(report.home_type);
    text(report.home_status);
    text(report.zip_code);
    text(report.city);
    text(report.state);
    let numbers = [
        scraped_at_micros,
        report.price,
        report.bedrooms.map(i64::from),
        report.bathrooms.map(|v| v.to_bits() as i64),
        report.living_area.map(i64::from),
        report.days_on_zillow.map(i64::from),
        report.latitude.map(|v| v.to_bits() as i64),
        report.longitude.map(|v| v.to_bits() as i64),
    ];
    for n in numbers {
        match n {
            None => h.update([0u8]),
            Some(n) => {
                h.update([1u8]);
                h.update(n.to_le_bytes());
            }
        }
    }
    let digest = h.finalize();
    i64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corroborated_agreement_counts_only_fields_two_sources_back() {
        let consensus = FieldValues {
            price: Some(100_000),
            bedrooms: Some(3),
            home_status: Some("FOR_SALE"),
            ..Default::default()
        };
        let report = FieldValues {
            price: Some(100_500),
            bedrooms: Some(4),
            home_status: Some("FOR_SALE"),
            ..Default::default()
        };
        // price (1) and bedrooms (3) backed by two sources or more, home_status (7) by one.
        let mut corroborated = [false; 14];
        corroborated[1] = true;
        corroborated[3] = true;
        assert_eq!(corroborated_agreement(&report, &consensus, &corroborated), Agreement { compared: 2, agreed: 1 });
        assert_eq!(agreement(&report, &consensus), Agreement { compared: 3, agreed: 2 });
        assert_eq!(corroborated_agreement(&report, &consensus, &[false; 14]), Agreement::default());
    }

    fn report() -> FieldValues<'static> {
        FieldValues {
            uri: Some("https://www.zillow.com/homedetails/x/1_zpid/"),
            price: Some(300_000),
            address: Some("1 Oak St, Katy, TX 77494"),
            bedrooms: Some(3),
            bathrooms: Some(2.5),
            living_area: Some(2_000),
            home_type: Some("CONDO"),
            home_status: Some("FOR_SALE"),
            days_on_zillow: Some(10),
            zip_code: Some("77494"),
            city: Some("Katy"),
            state: Some("TX"),
            latitude: Some(29.7),
            longitude: Some(-95.8),
        }
    }

    #[test]
    fn a_report_agrees_with_itself_on_every_field() {
        assert_eq!(agreement(&report(), &report()), Agreement { compared: 14, agreed: 14 });
    }

    #[test]
    fn fields_missing_on_either_side_are_not_compared() {
        let partial = FieldValues { price: Some(300_000), city: Some("Houston"), ..Default::default() };
        assert_eq!(agreement(&partial, &report()), Agreement { compared: 2, agreed: 1 });
        assert_eq!(agreement(&report(), &partial), Agreement { compared: 2, agreed: 1 });
        assert_eq!(agreement(&report(), &FieldValues::default()), Agreement::default());
    }

    #[test]
    fn numbers_agree_within_their_tolerance_exactly_at_the_edge() {
        let c = report();
        let at = |price, area, days| FieldValues {
            price: Some(price),
            living_area: Some(area),
            days_on_zillow: Some(days),
            ..Default::default()
        };
        // 1 % of 300,000 = 3,000; 2 % of 2,000 = 40; 10 % of 10 = 1.
        assert_eq!(agreement(&at(303_000, 2_040, 11), &c).agreed, 3);
        assert_eq!(agreement(&at(296_999, 2_041, 12), &c).agreed, 0);
        let lat = FieldValues { latitude: Some(29.7 + 29.7e-6 * 0.9), ..Default::default() };
        assert_eq!(agreement(&lat, &c).agreed, 1);
        let lat = FieldValues { latitude: Some(29.7 + 29.7e-6 * 1.1), ..Default::default() };
        assert_eq!(agreement(&lat, &c), Agreement { compared: 1, agreed: 0 });
    }

    #[test]
    fn bathrooms_agree_as_tenths_and_out_of_range_reports_disagree() {
        let c = report();
        let b = |v| FieldValues { bathrooms: Some(v), ..Default::default() };
        assert_eq!(agreement(&b(2.54), &c).agreed, 1);
        assert_eq!(agreement(&b(2.56), &c).agreed, 0);
        assert_eq!(agreement(&b(120.0), &c), Agreement { compared: 1, agreed: 0 });
        assert_eq!(agreement(&b(f64::NAN), &c), Agreement { compared: 1, agreed: 0 });
    }

    #[test]
    fn copies_share_a_signature_and_any_difference_or_shift_breaks_it() {
        let r = report();
        let s = claim_signature("1", Some(1_000_000), &r);
        assert_eq!(s, claim_signature("1", Some(1_000_000), &r.clone()));
        assert_ne!(s, claim_signature("1", Some(1_000_001), &r));
        assert_ne!(s, claim_signature("1", None, &r));
        assert_ne!(s, claim_signature("2", Some(1_000_000), &r));
        assert_ne!(s, claim_signature("1", Some(1_000_000), &FieldValues { days_on_zillow: Some(11), ..r }));
        assert_ne!(s, claim_signature("1", Some(1_000_000), &FieldValues { city: None, ..r }));
        // Moving text between fields changes it (the encoding is unambiguous).
        let a = FieldValues { city: Some("ab"), state: Some("c"), ..r };
        let b = FieldValues { city: Some("a"), state: Some("bc"), ..r };
        assert_ne!(claim_signature("1", None, &a), claim_signature("1", None, &b));
    }

    #[test]
    fn the_table_names_each_field_once_in_column_order() {
        assert_eq!(
            column_list(),
            "uri, price, address, bedrooms, bathrooms, living_area, home_type, home_status, days_on_zillow, \
             zip_code, city, state, latitude, longitude"
        );
        assert_eq!(PRICE.tolerance(), Some(0.01));
        assert_eq!(LIVING_AREA.tolerance(), Some(0.02));
        assert_eq!(DAYS_ON_ZILLOW.tolerance(), Some(0.1));
        assert_eq!(LATITUDE.tolerance(), Some(1e-6));
        assert_eq!(CITY.tolerance(), None);
    }
}
