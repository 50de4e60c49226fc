//! `resi.consensus_listing`: a listing's whole consensus, every field at once, in one pass over
//! its miners' claims.
//!
//! Per field it is exactly what [`super::ModeState`] (categories) and [`super::MedianState`] (numbers, with the
//! field's tolerance) give on their own, so `resi.consensus_mode` / `resi.consensus_median`
//! explain every value; doing all fields in one state is what makes a refresh cheap (one call
//! per claim instead of fourteen, and the per-field JSON written here instead of by fourteen
//! `to_jsonb` calls over composites).

use super::codec::{Reader, Writer};
use super::median::FieldClaims;
use super::mode::FieldTallies;
use super::{Consensus, NumericConsensus, Weight};
use crate::error::Result;
use crate::fields::{self, Field};

/// The relative tolerance of a median field of the listing table ([`crate::fields`]).
fn tolerance(field: Field) -> f64 {
    field.tolerance().expect("a median field has a tolerance")
}

/// One miner's current claim on a listing: the `resi.miner_claims` columns that vote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Claim<'a> {
    pub zpid: Option<&'a str>,
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

/// The running consensus of one listing.
#[derive(Clone, Debug)]
pub struct ListingState {
    uri: FieldTallies,
    price: FieldClaims,
    address: FieldTallies,
    bedrooms: FieldTallies,
    bathrooms: FieldTallies,
    living_area: FieldClaims,
    home_type: FieldTallies,
    home_status: FieldTallies,
    days_on_zillow: FieldClaims,
    zip_code: FieldTallies,
    city: FieldTallies,
    state: FieldTallies,
    latitude: FieldClaims,
    longitude: FieldClaims,
}

impl Default for ListingState {
    fn default() -> Self {
        ListingState {
            uri: FieldTallies::default(),
            price: FieldClaims::with_tolerance(tolerance(fields::PRICE)),
            address: FieldTallies::default(),
            bedrooms: FieldTallies::default(),
            bathrooms: FieldTallies::default(),
            living_area: FieldClaims::with_tolerance(tolerance(fields::LIVING_AREA)),
            home_type: FieldTallies::default(),
            home_status: FieldTallies::default(),
            days_on_zillow: FieldClaims::with_tolerance(tolerance(fields::DAYS_ON_ZILLOW)),
            zip_code: FieldTallies::default(),
            city: FieldTallies::default(),
            state: FieldTallies::default(),
            latitude: FieldClaims::with_tolerance(tolerance(fields::LATITUDE)),
            longitude: FieldClaims::with_tolerance(tolerance(fields::LONGITUDE)),
        }
    }
}

/// The consensus of every field (`None`: no claim voted on it), as the SQL composite
/// `resi.consensus_listing` carries it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListingConsensus {
    pub uri: Option<Consensus>,
    pub price: Option<NumericConsensus>,
    pub address: Option<Consensus>,
    pub bedrooms: Option<Consensus>,
    pub bathrooms: Option<Consensus>,
    pub living_area: Option<NumericConsensus>,
    pub home_type: Option<Consensus>,
    pub home_status: Option<Consensus>,
    pub days_on_zillow: Option<NumericConsensus>,
    pub zip_code: Option<Consensus>,
    pub city: Option<Consensus>,
    pub state: Option<Consensus>,
    pub latitude: Option<NumericConsensus>,
    pub longitude: Option<NumericConsensus>,
}

/// A field's result, for code that walks all of them in the listing's column order.
pub enum FieldResult<'a> {
    Category(&'a Option<Consensus>),
    Number(&'a Option<NumericConsensus>),
}

impl FieldResult<'_> {
    fn confidence(&self) -> Option<f64> {
        match self {
            FieldResult::Category(c) => c.as_ref().map(|c| c.confidence),
            FieldResult::Number(n) => n.as_ref().map(|n| n.confidence),
        }
    }
}

impl ListingState {
    /// Count one claim with its miner's weight. A claim whose weight does not vote (NULL, NaN,
    /// ≤ 0) counts for nothing; a weight above [`super::MAX_WEIGHT`] is an error. NULL fields,
    /// non-finite numbers and a bathrooms count outside 0..99.9 do not vote; a uri only votes
    /// when it names the claim's zpid ([`uri_names_zpid`]).
    pub fn add(&mut self, claim: &Claim<'_>, weight: Option<f64>) -> Result<()> {
        let Some(w) = Weight::of_vote(weight)? else { return Ok(()) };
        let weight = weight.expect("a voting weight is present");
        let mut digits = [0u8; 24];
        if let (Some(uri), Some(zpid)) = (claim.uri, claim.zpid) {
            if uri_names_zpid(uri, zpid) {
                self.uri.add_voting(uri, w)?;
            }
        }
        if let Some(v) = claim.price {
            self.price.add_voting(v as f64, weight);
        }
        if let Some(v) = claim.address {
            self.address.add_voting(v, w)?;
        }
        if let Some(v) = claim.bedrooms {
            self.bedrooms.add_voting(integer_text(v.into(), &mut digits), w)?;
        }
        if let Some(tenths) = claim.bathrooms.and_then(bathrooms_tenths) {
            self.bathrooms.add_voting(tenths_text(tenths, &mut digits), w)?;
        }
        if let Some(v) = claim.living_area {
            self.living_area.add_voting(v.into(), weight);
        }
        if let Some(v) = claim.home_type {
            self.home_type.add_voting(v, w)?;
        }
        if let Some(v) = claim.home_status {
            self.home_status.add_voting(v, w)?;
        }
        if let Some(v) = claim.days_on_zillow {
            self.days_on_zillow.add_voting(v.into(), weight);
        }
        if let Some(v) = claim.zip_code {
            self.zip_code.add_voting(v, w)?;
        }
        if let Some(v) = claim.city {
            self.city.add_voting(v, w)?;
        }
        if let Some(v) = claim.state {
            self.state.add_voting(v, w)?;
        }
        for (median, value) in [(&mut self.latitude, claim.latitude), (&mut self.longitude, claim.longitude)] {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                median.add_voting(v, weight);
            }
        }
        Ok(())
    }

    /// Fold another partial state into this one (the combine step of a parallel plan).
    pub fn merge(&mut self, other: ListingState) -> Result<()> {
        let ListingState {
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
        } = other;
        self.uri.merge(uri)?;
        self.price.merge(price)?;
        self.address.merge(address)?;
        self.bedrooms.merge(bedrooms)?;
        self.bathrooms.merge(bathrooms)?;
        self.living_area.merge(living_area)?;
        self.home_type.merge(home_type)?;
        self.home_status.merge(home_status)?;
        self.days_on_zillow.merge(days_on_zillow)?;
        self.zip_code.merge(zip_code)?;
        self.city.merge(city)?;
        self.state.merge(state)?;
        self.latitude.merge(latitude)?;
        self.longitude.merge(longitude)
    }

    /// Every field's consensus. `None` when no claim voted on any field (no voting weight).
    pub fn result(&mut self) -> Result<Option<ListingConsensus>> {
        let c = ListingConsensus {
            uri: self.uri.result()?,
            price: self.price.result()?,
            address: self.address.result()?,
            bedrooms: self.bedrooms.result()?,
            bathrooms: self.bathrooms.result()?,
            living_area: self.living_area.result()?,
            home_type: self.home_type.result()?,
            home_status: self.home_status.result()?,
            days_on_zillow: self.days_on_zillow.result()?,
            zip_code: self.zip_code.result()?,
            city: self.city.result()?,
            state: self.state.result()?,
            latitude: self.latitude.result()?,
            longitude: self.longitude.result()?,
        };
        Ok((c != ListingConsensus::default()).then_some(c))
    }

    const MAGIC: u8 = b'L';

    /// The state's binary form (for `serialfunc`): the fourteen field states in column order.
    /// An error only when a numeric field's summed weight is out of range.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let parts = [
            self.uri.serialize(),
            self.price.serialize()?,
            self.address.serialize(),
            self.bedrooms.serialize(),
            self.bathrooms.serialize(),
            self.living_area.serialize()?,
            self.home_type.serialize(),
            self.home_status.serialize(),
            self.days_on_zillow.serialize()?,
            self.zip_code.serialize(),
            self.city.serialize(),
            self.state.serialize(),
            self.latitude.serialize()?,
            self.longitude.serialize()?,
        ];
        let mut w = Writer::new(Self::MAGIC, parts.iter().map(|p| p.len() + 8).sum());
        for part in &parts {
            w.bytes(part);
        }
        Ok(w.finish())
    }

    /// Read a state written by [`ListingState::serialize`]. Malformed bytes, or a numeric field
    /// with another tolerance than its own, are an error, never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<ListingState> {
        let mut r = Reader::new(bytes, Self::MAGIC, "consensus_listing")?;
        let mode = |r: &mut Reader<'_>| FieldTallies::deserialize(r.bytes()?);
        let median = |r: &mut Reader<'_>, tolerance: f64| {
            let state = FieldClaims::deserialize(r.bytes()?)?;
            match state.tolerance() {
                Some(t) if t != tolerance => Err(r.corrupt("a numeric field has another tolerance")),
                _ => Ok(state),
            }
        };
        let state = ListingState {
            uri: mode(&mut r)?,
            price: median(&mut r, tolerance(fields::PRICE))?,
            address: mode(&mut r)?,
            bedrooms: mode(&mut r)?,
            bathrooms: mode(&mut r)?,
            living_area: median(&mut r, tolerance(fields::LIVING_AREA))?,
            home_type: mode(&mut r)?,
            home_status: mode(&mut r)?,
            days_on_zillow: median(&mut r, tolerance(fields::DAYS_ON_ZILLOW))?,
            zip_code: mode(&mut r)?,
            city: mode(&mut r)?,
            state: mode(&mut r)?,
            latitude: median(&mut r, tolerance(fields::LATITUDE))?,
            longitude: median(&mut r, tolerance(fields::LONGITUDE))?,
        };
        r.finish()?;
        Ok(state)
    }
}

impl ListingConsensus {
    /// The fields with their `resi.listings` column names, in column order.
    pub fn fields(&self) -> [(&'static str, FieldResult<'_>); 14] {
        use FieldResult::{Category as C, Number as N};
        [
            ("uri", C(&self.uri)),
            ("price", N(&self.price)),
            ("address", C(&self.address)),
            ("bedrooms", C(&self.bedrooms)),
            ("bathrooms", C(&self.bathrooms)),
            ("living_area", N(&self.living_area)),
            ("home_type", C(&self.home_type)),
            ("home_status", C(&self.home_status)),
            ("days_on_zillow", N(&self.days_on_zillow)),
            ("zip_code", C(&self.zip_code)),
            ("city", C(&self.city)),
            ("state", C(&self.state)),
            ("latitude", N(&self.latitude)),
            ("longitude", N(&self.longitude)),
        ]
    }

    /// The mean confidence of the fields that have a consensus (summed in column order, as
    /// SQL's `avg(double precision)` would), as `real`.
    pub fn score(&self) -> Option<f32> {
        let (sum, n) = self
            .fields()
            .iter()
            .filter_map(|(_, f)| f.confidence())
            .fold((0.0f64, 0u32), |(sum, n), c| (sum + c, n + 1));
        (n > 0).then(|| (sum / f64::from(n)) as f32)
    }

    /// `resi.listings.field_consensus`, member by member: per field with a consensus (column
    /// order), the members of its `resi.consensus` / `resi.numeric_consensus` composite — what
    /// `to_jsonb` of that composite gives. Fields without a consensus are left out.
    pub fn field_members(&self) -> Vec<(&'static str, [(&'static str, Member<'_>); 7])> {
        use Member::{Integer, Number, Text};
        self.fields()
            .into_iter()
            .filter_map(|(name, field)| {
                let members = match field {
                    FieldResult::Category(Some(c)) => [
                        ("value", Text(&c.value)),
                        ("confidence", Number(c.confidence)),
                        ("agreement", Number(c.agreement)),
                        ("supporters", Integer(c.supporters.into())),
                        ("voters", Integer(c.voters.into())),
                        ("support_weight", Number(c.support_weight)),
                        ("total_weight", Number(c.total_weight)),
                    ],
                    FieldResult::Number(Some(n)) => [
                        ("value", Number(n.value)),
                        ("confidence", Number(n.confidence)),
                        ("agreement", Number(n.agreement)),
                        ("supporters", Integer(n.supporters.into())),
                        ("voters", Integer(n.voters.into())),
                        ("low", Number(n.low)),
                        ("high", Number(n.high)),
                    ],
                    _ => return None,
                };
                Some((name, members))
            })
            .collect()
    }

    /// The consensus price as `bigint`: the median rounded half to even (SQL `round`), saturated
    /// at the `bigint` range (a median of `bigint` claims can round to 2^63).
    pub fn price_value(&self) -> Option<i64> {
        self.price.as_ref().map(|p| p.value.round_ties_even() as i64)
    }

    /// An `integer` field's median (the claims were integers, so the median is one).
    pub fn integer_value(n: &Option<NumericConsensus>) -> Option<i32> {
        n.as_ref().map(|n| n.value.round_ties_even() as i32)
    }
}

/// One member of a field's object in `field_consensus`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Member<'a> {
    Text(&'a str),
    Integer(i64),
    /// Always finite (medians, percentiles and shares of finite claims and weights).
    Number(f64),
}

/// A finite double as `mantissa / 10^scale` with the digits of its shortest round-trip decimal
/// (the text `float8out` writes), so a `numeric` can be built without parsing text; `None` when
/// the mantissa does not fit an `i64` or the value is not finite.
///
/// `0.6666666666666666` → `(6666666666666666, 16)`, `-95.8` → `(-958, 1)`, `100` → `(100, 0)`.
pub fn decimal_parts(v: f64) -> Option<(i64, u32)> {
    if !v.is_finite() {
        return None;
    }
    // Integers (prices, percentiles of integer claims, whole weights) need no digits.
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        return Some((v as i64, 0));
    }
    let mut buffer = ryu_js::Buffer::new();
    let text = buffer.format_finite(v); // shortest digits: "-0.6666666666666666", "1e-7"
    let (digits, exponent) = match text.split_once('e') {
        Some((digits, exponent)) => (digits, exponent.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (mut mantissa, mut fraction_digits, mut after_point, mut negative) = (0i64, 0i64, false, false);
    for b in digits.bytes() {
        match b {
            b'-' => negative = true,
            b'.' => after_point = true,
            b'0'..=b'9' => {
                mantissa = mantissa.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
                fraction_digits += i64::from(after_point);
            }
            _ => return None,
        }
    }
    if negative {
        mantissa = -mantissa;
    }
    let scale = fraction_digits - exponent;
    if scale >= 0 {
        Some((mantissa, u32::try_from(scale).ok()?))
    } else {
        let factor = 10i64.checked_pow(u32::try_from(-scale).ok()?)?;
        Some((mantissa.checked_mul(factor)?, 0))
    }
}

/// Whether a uri names this zpid: the digits before the first `_zpid` that follows a digit,
/// like SQL `substring(uri FROM '(\d+)_zpid') = zpid` with ASCII digits.
pub fn uri_names_zpid(uri: &str, zpid: &str) -> bool {
    crate::listing::zpid_from_uri(uri) == Some(zpid)
}

/// A bathrooms count as the category it votes for: rounded to one decimal as SQL
/// `round(v::numeric, 1)::text` does (the double's 15 significant digits, then half away from
/// zero), only for 0 ≤ v ≤ 99.9 (what `numeric(3,1)` holds); `None` outside that range.
pub fn bathrooms_text(v: f64) -> Option<String> {
    bathrooms_tenths(v).map(|t| format!("{}.{}", t / 10, t % 10))
}

/// [`bathrooms_text`] as a count of tenths (`2.5` → 25).
pub fn bathrooms_tenths(v: f64) -> Option<u32> {
    if !(0.0..=99.9).contains(&v) {
        return None;
    }
    let tenths = v * 10.0;
    // Away from a half, the 15-digit decimal rounds like the double itself (15 digits move
    // v × 10 by at most ~1e-12 here); only near a half do the decimal digits decide.
    if (tenths - tenths.floor() - 0.5).abs() > 1e-6 {
        return Some(tenths.round() as u32);
    }
    Some(decimal_tenths(v))
}

/// The slow path of [`bathrooms_tenths`], right for every v in 0..=99.9.
fn decimal_tenths(v: f64) -> u32 {
    // 15 significant digits, as float8 → numeric converts: d.dddddddddddddde±x.
    let sci = format!("{v:.14e}");
    let (mantissa, exponent) = sci.split_once('e').expect("scientific notation");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    // digits[..point] are the integer part of v × 10 (none when v < 0.1); digits[point] is the
    // digit that decides the rounding (0 when it lies before the first digit).
    let point = exponent + 2;
    let whole = usize::try_from(point).unwrap_or(0).min(digits.len());
    let mut tenths = digits[..whole].iter().fold(0u32, |t, &d| t * 10 + u32::from(d));
    let next = usize::try_from(point).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);
    if next >= 5 {
        tenths += 1;
    }
    tenths
}

/// Tenths as decimal text with one decimal in a stack buffer (`25` → `"2.5"`).
fn tenths_text(tenths: u32, buf: &mut [u8; 24]) -> &str {
    let whole = integer_text(i64::from(tenths / 10), buf).len();
    let start = buf.len() - whole;
    // integer_text wrote the whole part at the end of buf: move it left to make room.
    buf.copy_within(start.., start - 2);
    let end = buf.len();
    buf[end - 2] = b'.';
    buf[end - 1] = b'0' + (tenths % 10) as u8;
    std::str::from_utf8(&buf[start - 2..]).expect("ASCII digits")
}

/// An integer's decimal text in a stack buffer (the category key of `bedrooms`).
fn integer_text(v: i64, buf: &mut [u8; 24]) -> &str {
    let mut end = buf.len();
    let negative = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        end -= 1;
        buf[end] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        end -= 1;
        buf[end] = b'-';
    }
    std::str::from_utf8(&buf[end..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn claim<'a>(zpid: &'a str, price: i64, status: &'a str) -> Claim<'a> {
        Claim { zpid: Some(zpid), price: Some(price), home_status: Some(status), ..Claim::default() }
    }

    #[test]
    fn each_field_is_its_own_aggregate() {
        let rows = [
            (claim("1", 100_000, "FOR_SALE"), 0.5),
            (claim("1", 101_000, "SOLD"), 0.25),
            (claim("1", 300_000, "FOR_SALE"), 0.125),
        ];
        let mut listing = ListingState::default();
        let mut price = crate::consensus::MedianState::default();
        let mut status = FieldTallies::default();
        for (c, w) in &rows {
            listing.add(c, Some(*w)).unwrap();
            price.add(c.price.map(|p| p as f64), Some(*w), Some(tolerance(fields::PRICE))).unwrap();
            status.add(c.home_status, Some(*w)).unwrap();
        }
        let result = listing.result().unwrap().unwrap();
        assert_eq!(result.price, price.result().unwrap());
        assert_eq!(result.home_status, status.result().unwrap());
        assert_eq!(result.address, None);
        assert_eq!(result.price_value(), Some(100_000));
        let p = result.price.as_ref().unwrap();
        let s = result.home_status.as_ref().unwrap();
        assert_eq!(result.score(), Some(((p.confidence + s.confidence) / 2.0) as f32));
    }

    #[test]
    fn a_claim_without_voting_weight_counts_for_nothing() {
        let mut listing = ListingState::default();
        for w in [None, Some(0.0), Some(-1.0), Some(f64::NAN)] {
            listing.add(&claim("1", 5, "SOLD"), w).unwrap();
        }
        assert_eq!(listing.result().unwrap(), None);
        assert!(listing.add(&claim("1", 5, "SOLD"), Some(f64::INFINITY)).is_err());
    }

    #[test]
    fn uri_votes_only_for_its_own_zpid() {
        assert!(uri_names_zpid("https://www.zillow.com/homedetails/12-Main-St/456_zpid/", "456"));
        assert!(!uri_names_zpid("https://www.zillow.com/homedetails/12-Main-St/456_zpid/", "12"));
        assert!(uri_names_zpid("/a_zpid/77_zpid", "77"));
        assert!(uri_names_zpid("x0123_zpid_99_zpid", "0123"));
        assert!(!uri_names_zpid("_zpid", ""));
        assert!(!uri_names_zpid("no zpid here", "1"));
        assert!(!uri_names_zpid("١٢_zpid", "١٢"));
        let mut listing = ListingState::default();
        let mut c = claim("456", 1, "SOLD");
        c.uri = Some("/homedetails/456_zpid/");
        listing.add(&c, Some(1.0)).unwrap();
        c.uri = Some("/homedetails/999_zpid/");
        listing.add(&c, Some(5.0)).unwrap();
        assert_eq!(listing.result().unwrap().unwrap().uri.unwrap().value, "/homedetails/456_zpid/");
    }

    #[test]
    fn bathrooms_round_like_numeric() {
        for (v, want) in [
            (0.0, Some("0.0")),
            (2.0, Some("2.0")),
            (2.25, Some("2.3")),
            (2.35, Some("2.4")),
            (2.45, Some("2.5")),
            (0.05, Some("0.1")),
            (0.04999, Some("0.0")),
            (0.001, Some("0.0")),
            (1e-300, Some("0.0")),
            (9.95, Some("10.0")),
            (99.9, Some("99.9")),
            (99.94, None),
            (99.89, Some("99.9")),
            (1.0 / 3.0, Some("0.3")),
            (99.91, None),
            (-0.5, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
        ] {
            assert_eq!(bathrooms_text(v).as_deref(), want, "{v}");
        }
        assert_eq!(bathrooms_text(-0.0).as_deref(), Some("0.0"));
    }

    #[test]
    fn decimal_parts_are_the_shortest_digits() {
        for (v, want) in [
            (0.6666666666666666, Some((6666666666666666, 16))),
            (-95.8, Some((-958, 1))),
            (100.0, Some((100, 0))),
            (0.0, Some((0, 0))),
            (-0.0, Some((0, 0))),
            (1e-7, Some((1, 7))),
            (0.1, Some((1, 1))),
            (29.712345, Some((29712345, 6))),
            (1e15, Some((1_000_000_000_000_000, 0))),
            (1.5e20, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
        ] {
            assert_eq!(decimal_parts(v), want, "{v}");
        }
        assert_eq!(decimal_parts(5e-324), Some((5, 324)));
    }

    #[test]
    fn the_fast_bathrooms_path_agrees_with_the_decimal_one() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let values = (0..=999_000).map(|i| f64::from(i) / 10_000.0).chain((0..200_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 99.9
        }));
        for v in values {
            assert_eq!(bathrooms_tenths(v), Some(decimal_tenths(v)), "{v}");
        }
    }

    #[test]
    fn integer_keys() {
        let mut buf = [0u8; 24];
        for v in [0i64, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            assert_eq!(integer_text(v, &mut buf), v.to_string());
        }
        for t in [0u32, 5, 10, 25, 999] {
            assert_eq!(tenths_text(t, &mut buf), format!("{}.{}", t / 10, t % 10));
        }
    }

    /// [`ListingConsensus::field_members`] as JSON text: the document the extension builds as
    /// `jsonb` from the members.
    fn field_consensus_json(c: &ListingConsensus) -> String {
        let mut out = String::with_capacity(1600);
        out.push('{');
        for (i, (name, members)) in c.field_members().iter().enumerate() {
            let _ = write!(out, "{}\"{name}\": {{", if i == 0 { "" } else { ", " });
            for (j, (key, member)) in members.iter().enumerate() {
                let _ = write!(out, "{}\"{key}\": ", if j == 0 { "" } else { ", " });
                match member {
                    Member::Text(t) => out.push_str(&serde_json::to_string(t).expect("a str serialises")),
                    Member::Integer(v) => {
                        let _ = write!(out, "{v}");
                    }
                    // Display of a finite f64 is its shortest round-trip decimal, the number
                    // to_jsonb(double precision) gives.
                    Member::Number(v) => {
                        let _ = write!(out, "{v}");
                    }
                }
            }
            out.push('}');
        }
        out.push('}');
        out
    }

    #[test]
    fn field_consensus_json_lists_fields_with_a_consensus() {
        let mut listing = ListingState::default();
        let mut c = claim("1", 100, "SOLD");
        c.city = Some("Say \"hi\"\n");
        listing.add(&c, Some(1.0)).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&field_consensus_json(&listing.result().unwrap().unwrap())).unwrap();
        let fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, ["city", "home_status", "price"]);
        assert_eq!(json["city"]["value"], "Say \"hi\"\n");
        assert_eq!(json["price"]["value"], 100);
        assert_eq!(json["price"]["low"], 100);
        assert_eq!(json["home_status"]["supporters"], 1);
        assert_eq!(json["home_status"]["support_weight"], 1);
    }

    #[test]
    fn partial_states_merge_to_the_serial_answer() {
        let statuses = ["SOLD", "FOR_SALE", "PENDING"];
        let claims: Vec<(Claim<'_>, f64)> = (0..30)
            .map(|i| {
                let mut c = claim("9", 1000 + (i % 7) * 10, statuses[i as usize % 3]);
                c.bedrooms = Some((i % 4) as i32);
                c.bathrooms = Some(1.0 + (i % 3) as f64 * 0.25);
                c.latitude = Some(40.0 + (i % 5) as f64 * 1e-7);
                (c, [0.1, 0.2, 0.3, 1.0 / 3.0][i as usize % 4])
            })
            .collect();
        let mut serial = ListingState::default();
        for (c, w) in &claims {
            serial.add(c, Some(*w)).unwrap();
        }
        let expected = serial.result().unwrap();
        for parts in [2usize, 3] {
            let mut partials: Vec<ListingState> = (0..parts).map(|_| ListingState::default()).collect();
            for (i, (c, w)) in claims.iter().enumerate().rev() {
                partials[i % parts].add(c, Some(*w)).unwrap();
            }
            let mut merged = ListingState::default();
            for p in partials {
                merged.merge(ListingState::deserialize(&p.serialize().unwrap()).unwrap()).unwrap();
            }
            assert_eq!(merged.result().unwrap(), expected, "{parts} parts");
        }
    }

    #[test]
    fn corrupt_serialized_states_are_errors() {
        let mut s = ListingState::default();
        s.add(&claim("1", 5, "SOLD"), Some(1.0)).unwrap();
        let good = s.serialize().unwrap();
        assert!(ListingState::deserialize(&good).is_ok());
        for cut in 0..good.len() {
            assert!(ListingState::deserialize(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(ListingState::deserialize(&trailing).is_err());
        // A price state with another tolerance.
        let mut other = crate::consensus::MedianState::default();
        other.add(Some(5.0), Some(1.0), Some(0.5)).unwrap();
        let mut w = Writer::new(ListingState::MAGIC, 0);
        w.bytes(&FieldTallies::default().serialize());
        w.bytes(&other.serialize().unwrap());
        assert!(ListingState::deserialize(&w.finish()).is_err());
    }
}
