//! `resi.submission_quality`: the quality of one submission (an uploaded object's rows).
//!
//! The score starts at 1.0 and is multiplied by the factor of every issue found:
//!
//! | issue | factor | when |
//! |---|---|---|
//! | [`SUSPICIOUS_PRICE_RANGE`] | 0.5 | a price below `min_price` or above `max_price`, or NaN/±Infinity |
//! | [`DUPLICATE_ZPIDS`] | 0.3 | a (non-NULL) zpid appears more than once |
//! | [`EXCESSIVE_GEOGRAPHIC_SPREAD`] | 0.7 | more than `max_zip_codes` distinct (non-NULL) zip codes |
//! | [`BLACKLISTED`] | 0.1 | a zpid or zip code is blacklisted (decided by the caller) |
//!
//! The transition state ([`SubmissionQuality`]) does not depend on the thresholds: they are
//! applied by [`SubmissionQuality::report`], so they can be settings read once per group.
//! Counting is exact. zpids and zip codes are kept as distinct sets (the blacklist needs them):
//! canonical decimal numbers as `u64`, anything else as strings.

use crate::error::{Error, Result};
use hashbrown::HashSet;

/// Issue code: a price outside the plausible range (or not a finite number).
pub const SUSPICIOUS_PRICE_RANGE: &str = "suspicious_price_range";
/// Issue code: a zpid appears more than once in the submission.
pub const DUPLICATE_ZPIDS: &str = "duplicate_zpids";
/// Issue code: the submission covers too many zip codes.
pub const EXCESSIVE_GEOGRAPHIC_SPREAD: &str = "excessive_geographic_spread";
/// Issue code: a zpid or zip code of the submission is blacklisted.
pub const BLACKLISTED: &str = "blacklisted";

/// Score factor of [`SUSPICIOUS_PRICE_RANGE`].
pub const SUSPICIOUS_PRICE_RANGE_FACTOR: f64 = 0.5;
/// Score factor of [`DUPLICATE_ZPIDS`].
pub const DUPLICATE_ZPIDS_FACTOR: f64 = 0.3;
/// Score factor of [`EXCESSIVE_GEOGRAPHIC_SPREAD`].
pub const EXCESSIVE_GEOGRAPHIC_SPREAD_FACTOR: f64 = 0.7;
/// Score factor of [`BLACKLISTED`].
pub const BLACKLISTED_FACTOR: f64 = 0.1;

/// The thresholds of the checks (the `resi.quality_*` settings).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct QualityThresholds {
    /// Prices below this are suspicious (the bound itself is fine).
    pub min_price: f64,
    /// Prices above this are suspicious (the bound itself is fine).
    pub max_price: f64,
    /// More distinct zip codes than this is an excessive spread.
    pub max_zip_codes: u64,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        QualityThresholds { min_price: 1000.0, max_price: 100_000_000.0, max_zip_codes: 50 }
    }
}

/// The verdict on one submission: the SQL composite `resi.quality_report`.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityReport {
    /// 1.0 times the factor of every issue found.
    pub score: f64,
    /// Issue codes in the fixed order of the module table (empty: none).
    pub issues: Vec<&'static str>,
    /// Rows aggregated, NULLs included.
    pub rows: i32,
    /// Rows whose zpid already appeared earlier in the submission.
    pub duplicate_zpids: i32,
    /// Distinct non-NULL zip codes.
    pub distinct_zips: i32,
}

/// A set of distinct strings, compact for the usual case of decimal identifiers: a string that
/// is the canonical form of a `u64` (ASCII digits, no leading zero unless it is `"0"`) is kept
/// as that number, anything else (`"007"`, `"12a"`, `""`, 21 digits) as the string itself. The
/// two never collide, since a number stands only for its one canonical string.
#[derive(Clone, Debug, Default)]
pub struct DistinctKeys {
    numbers: HashSet<u64>,
    strings: HashSet<Box<str>>,
}

impl DistinctKeys {
    /// Add `key`; `true` if it was not there yet.
    pub fn insert(&mut self, key: &str) -> bool {
        match canonical_u64(key) {
            Some(n) => self.numbers.insert(n),
            None if self.strings.contains(key) => false,
            None => self.strings.insert(key.into()),
        }
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.numbers.len() + self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys as the strings they were added as, in no particular order.
    pub fn to_strings(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.numbers.iter().map(u64::to_string));
        out.extend(self.strings.iter().map(|s| String::from(&**s)));
        out
    }
}

/// `Some(n)` when `s` is exactly `n.to_string()`.
fn canonical_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 || (b[0] == b'0' && b.len() > 1) || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok() // fails only above u64::MAX
}

/// Transition state of `resi.submission_quality`: what the checks need, independent of the
/// thresholds.
#[derive(Clone, Debug)]
pub struct SubmissionQuality {
    rows: u64,
    duplicate_zpids: u64,
    zpids: DistinctKeys,
    zips: DistinctKeys,
    /// Smallest and largest finite price seen (+∞/−∞ when none).
    min_price: f64,
    max_price: f64,
    /// A NaN or ±Infinity price was seen.
    non_finite_price: bool,
}

impl Default for SubmissionQuality {
    fn default() -> Self {
        SubmissionQuality {
            rows: 0,
            duplicate_zpids: 0,
            zpids: DistinctKeys::default(),
            zips: DistinctKeys::default(),
            min_price: f64::INFINITY,
            max_price: f64::NEG_INFINITY,
            non_finite_price: false,
        }
    }
}

impl SubmissionQuality {
    /// Count one row. Every row counts, NULLs included; a NULL zpid is never a duplicate, a
    /// NULL price never suspicious, a NULL zip code not a zip code.
    #[inline]
    pub fn add(&mut self, zpid: Option<&str>, price: Option<f64>, zip: Option<&str>) {
        self.rows += 1;
        self.add_zpid(zpid);
        self.add_price(price);
        self.add_zip(zip);
    }

    /// The state of a submission given column by column: `rows` rows (NULLs included) whose
    /// zpids, prices and zip codes are these, each column in any order and NULLs ignored (what
    /// `resi.submission_quality_of` reads from `count(*)` and `array_agg`s). Equal to
    /// [`add`](Self::add) of each row.
    pub fn of_columns<'a>(
        rows: u64,
        zpids: impl IntoIterator<Item = Option<&'a str>>,
        prices: impl IntoIterator<Item = Option<f64>>,
        zips: impl IntoIterator<Item = Option<&'a str>>,
    ) -> SubmissionQuality {
        let mut quality = SubmissionQuality { rows, ..SubmissionQuality::default() };
        zpids.into_iter().for_each(|zpid| quality.add_zpid(zpid));
        prices.into_iter().for_each(|price| quality.add_price(price));
        zips.into_iter().for_each(|zip| quality.add_zip(zip));
        quality
    }

    #[inline]
    fn add_zpid(&mut self, zpid: Option<&str>) {
        if let Some(zpid) = zpid {
            if !self.zpids.insert(zpid) {
                self.duplicate_zpids += 1;
            }
        }
    }

    #[inline]
    fn add_price(&mut self, price: Option<f64>) {
        if let Some(price) = price {
            if price.is_finite() {
                self.min_price = self.min_price.min(price);
                self.max_price = self.max_price.max(price);
            } else {
                self.non_finite_price = true;
            }
        }
    }

    #[inline]
    fn add_zip(&mut self, zip: Option<&str>) {
        if let Some(zip) = zip {
            self.zips.insert(zip);
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The distinct non-NULL zpids, as strings, in no particular order.
    pub fn distinct_zpids(&self) -> Vec<String> {
        self.zpids.to_strings()
    }

    /// The distinct non-NULL zip codes, as strings, in no particular order.
    pub fn distinct_zips(&self) -> Vec<String> {
        self.zips.to_strings()
    }

    /// The verdict under `thresholds`; `blacklisted` says whether any of
    /// [`distinct_zpids`](Self::distinct_zpids) or [`distinct_zips`](Self::distinct_zips)
    /// matches the blacklist. Counts beyond `i32` are an out-of-range error.
    ///
    /// A NaN threshold flags nothing (only non-finite prices are then suspicious); a
    /// `min_price` above `max_price` makes every finite price suspicious.
    pub fn report(&self, thresholds: &QualityThresholds, blacklisted: bool) -> Result<QualityReport> {
        let suspicious_price =
            self.non_finite_price || self.min_price < thresholds.min_price || self.max_price > thresholds.max_price;
        let checks = [
            (suspicious_price, SUSPICIOUS_PRICE_RANGE, SUSPICIOUS_PRICE_RANGE_FACTOR),
            (self.duplicate_zpids > 0, DUPLICATE_ZPIDS, DUPLICATE_ZPIDS_FACTOR),
            (
                self.zips.len() as u64 > thresholds.max_zip_codes,
                EXCESSIVE_GEOGRAPHIC_SPREAD,
                EXCESSIVE_GEOGRAPHIC_SPREAD_FACTOR,
            ),
            (blacklisted, BLACKLISTED, BLACKLISTED_FACTOR),
        ];
        let mut score = 1.0;
        let mut issues = Vec::new();
        for (found, code, factor) in checks {
            if found {
                score *= factor;
                issues.push(code);
            }
        }
        Ok(QualityReport {
            score,
            issues,
            rows: to_i32(self.rows, "row")?,
            duplicate_zpids: to_i32(self.duplicate_zpids, "duplicate zpid")?,
            distinct_zips: to_i32(self.zips.len() as u64, "zip code")?,
        })
    }
}

fn to_i32(count: u64, what: &str) -> Result<i32> {
    i32::try_from(count).map_err(|_| Error::out_of_range(format!("{what} count {count} does not fit in an integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row<'a> = (Option<&'a str>, Option<f64>, Option<&'a str>);

    fn state(rows: &[Row]) -> SubmissionQuality {
        let mut s = SubmissionQuality::default();
        for (zpid, price, zip) in rows {
            s.add(*zpid, *price, *zip);
        }
        s
    }

    fn report_with(rows: &[Row], thresholds: &QualityThresholds, blacklisted: bool) -> QualityReport {
        state(rows).report(thresholds, blacklisted).unwrap()
    }

    fn report(rows: &[Row]) -> QualityReport {
        report_with(rows, &QualityThresholds::default(), false)
    }

    fn row<'a>(zpid: &'a str, price: f64, zip: &'a str) -> Row<'a> {
        (Some(zpid), Some(price), Some(zip))
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn a_submission_given_as_columns_is_the_same_as_row_by_row() {
        let rows: Vec<Row> = vec![
            (Some("1"), Some(250_000.0), Some("77494")),
            (Some("1"), None, None),
            (None, Some(f64::NAN), Some("77450")),
            (Some("2"), Some(10.0), Some("77494")),
            (None, None, None),
        ];
        let by_row = report(&rows);
        let by_column = SubmissionQuality::of_columns(
            rows.len() as u64,
            rows.iter().rev().map(|r| r.0),
            rows.iter().map(|r| r.1),
            rows.iter().map(|r| r.2).filter(Option::is_some),
        )
        .report(&QualityThresholds::default(), false)
        .unwrap();
        assert_eq!(by_column, by_row);
        assert_eq!((by_row.rows, by_row.duplicate_zpids, by_row.distinct_zips), (5, 1, 2));
    }

    #[test]
    fn clean_submission() {
        let r = report(&[row("1", 250_000.0, "77494"), row("2", 1000.0, "77494"), row("3", 1e8, "77450")]);
        assert_eq!(r, QualityReport { score: 1.0, issues: vec![], rows: 3, duplicate_zpids: 0, distinct_zips: 2 });
    }

    #[test]
    fn empty_state() {
        let s = SubmissionQuality::default();
        assert_eq!(s.rows(), 0);
        assert!(s.distinct_zpids().is_empty() && s.distinct_zips().is_empty());
        assert_eq!(
            s.report(&QualityThresholds::default(), false).unwrap(),
            QualityReport { score: 1.0, issues: vec![], rows: 0, duplicate_zpids: 0, distinct_zips: 0 }
        );
    }

    #[test]
    fn suspicious_price_alone() {
        for price in [999.99, 1e8 + 1.0, 0.0, -5.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX] {
            let r = report(&[row("1", 250_000.0, "77494"), row("2", price, "77494")]);
            assert_eq!((r.score, r.issues), (0.5, vec![SUSPICIOUS_PRICE_RANGE]), "price {price}");
        }
    }

    #[test]
    fn price_bounds_are_inclusive() {
        for price in [1000.0, 1e8] {
            assert_eq!(report(&[row("1", price, "1")]).score, 1.0, "price {price}");
        }
        let t = QualityThresholds { min_price: 10.0, max_price: 20.0, ..Default::default() };
        assert_eq!(report_with(&[row("1", 10.0, "1"), row("2", 20.0, "1")], &t, false).score, 1.0);
        assert_eq!(report_with(&[row("1", 9.0, "1")], &t, false).issues, vec![SUSPICIOUS_PRICE_RANGE]);
        assert_eq!(report_with(&[row("1", 21.0, "1")], &t, false).issues, vec![SUSPICIOUS_PRICE_RANGE]);
        // The default-suspicious 500 is fine under a lower minimum.
        let low = QualityThresholds { min_price: 100.0, ..Default::default() };
        assert_eq!(report_with(&[row("1", 500.0, "1")], &low, false).score, 1.0);
    }

    #[test]
    fn odd_thresholds() {
        let inverted = QualityThresholds { min_price: 2000.0, max_price: 1000.0, ..Default::default() };
        assert_eq!(report_with(&[row("1", 1500.0, "1")], &inverted, false).issues, vec![SUSPICIOUS_PRICE_RANGE]);
        let nan = QualityThresholds { min_price: f64::NAN, max_price: f64::NAN, ..Default::default() };
        assert_eq!(report_with(&[row("1", -1.0, "1")], &nan, false).score, 1.0);
        assert_eq!(report_with(&[row("1", f64::NAN, "1")], &nan, false).issues, vec![SUSPICIOUS_PRICE_RANGE]);
    }

    #[test]
    fn null_prices_are_fine() {
        let r = report(&[(Some("1"), None, Some("1")), (Some("2"), None, None)]);
        assert_eq!((r.score, r.rows), (1.0, 2));
    }

    #[test]
    fn duplicate_zpids_alone() {
        let r = report(&[row("123", 5000.0, "1"), row("123", 5000.0, "1"), row("9", 5000.0, "1")]);
        assert_eq!((r.score, r.issues, r.duplicate_zpids), (0.3, vec![DUPLICATE_ZPIDS], 1));
        // Three copies of one zpid and two of another: 2 + 1 repeated rows.
        let r = report(&[
            row("a", 5000.0, "1"),
            row("7", 5000.0, "1"),
            row("a", 5000.0, "1"),
            row("7", 5000.0, "1"),
            row("a", 5000.0, "1"),
        ]);
        assert_eq!((r.duplicate_zpids, r.rows), (3, 5));
    }

    #[test]
    fn zpids_are_compared_as_strings() {
        // "007", "7", "07", " 7", "+7" and "7 " are all different zpids, and so are the rest.
        let zpids = ["007", "7", "07", " 7", "+7", "7 ", "", "x", "18446744073709551615", "18446744073709551616"];
        let mut s = SubmissionQuality::default();
        for z in zpids {
            s.add(Some(z), None, None);
        }
        let r = s.report(&QualityThresholds::default(), false).unwrap();
        assert_eq!((r.duplicate_zpids, r.score), (0, 1.0));
        let mut expected: Vec<String> = zpids.iter().map(|z| z.to_string()).collect();
        expected.sort();
        assert_eq!(sorted(s.distinct_zpids()), expected);
        // Each of them repeated is a duplicate, numbers and strings alike.
        for z in zpids {
            s.add(Some(z), None, None);
        }
        assert_eq!(s.report(&QualityThresholds::default(), false).unwrap().duplicate_zpids, zpids.len() as i32);
        assert_eq!(s.distinct_zpids().len(), zpids.len());
    }

    #[test]
    fn canonical_numbers() {
        for (s, n) in [("0", Some(0)), ("7", Some(7)), ("18446744073709551615", Some(u64::MAX))] {
            assert_eq!(canonical_u64(s), n, "{s:?}");
        }
        for s in ["", "00", "07", "+7", "-7", " 7", "7 ", "1e3", "١٢", "18446744073709551616", "123456789012345678901"]
        {
            assert_eq!(canonical_u64(s), None, "{s:?}");
        }
    }

    #[test]
    fn null_zpids_are_never_duplicates() {
        let r = report(&[(None, Some(5000.0), Some("1")), (None, Some(5000.0), Some("1")), (None, None, None)]);
        assert_eq!((r.score, r.duplicate_zpids, r.rows, r.distinct_zips), (1.0, 0, 3, 1));
    }

    #[test]
    fn geographic_spread_alone() {
        let zips: Vec<String> = (0..51).map(|i| format!("{:05}", 10_000 + i)).collect();
        let rows =
            |n: usize| -> Vec<Row> { zips[..n].iter().map(|z| (None, Some(5000.0), Some(z.as_str()))).collect() };
        let fifty = rows(50);
        let r = report(&fifty);
        assert_eq!((r.score, r.distinct_zips), (1.0, 50));
        let r = report(&rows(51));
        assert_eq!((r.score, r.issues, r.distinct_zips), (0.7, vec![EXCESSIVE_GEOGRAPHIC_SPREAD], 51));
        // Repeated and NULL zip codes do not add to the count.
        let mut repeated = fifty.clone();
        repeated.extend(fifty.iter().copied());
        repeated.push((None, None, None));
        assert_eq!(report(&repeated).distinct_zips, 50);
        // The threshold is a setting, 0 included.
        let none_allowed = QualityThresholds { max_zip_codes: 0, ..Default::default() };
        assert_eq!(report_with(&[(None, None, None)], &none_allowed, false).score, 1.0);
        assert_eq!(report_with(&[(None, None, Some("1"))], &none_allowed, false).score, 0.7);
    }

    #[test]
    fn zip_codes_keep_their_leading_zeros() {
        let s = state(&[(None, None, Some("02134")), (None, None, Some("2134")), (None, None, Some("02134"))]);
        assert_eq!(sorted(s.distinct_zips()), vec!["02134".to_string(), "2134".to_string()]);
    }

    #[test]
    fn blacklisted_alone() {
        let r = report_with(&[row("1", 5000.0, "1")], &QualityThresholds::default(), true);
        assert_eq!((r.score, r.issues), (0.1, vec![BLACKLISTED]));
        // Even an empty submission, if the caller says so.
        let r = SubmissionQuality::default().report(&QualityThresholds::default(), true).unwrap();
        assert_eq!(r.issues, vec![BLACKLISTED]);
    }

    #[test]
    fn issues_combine_in_a_fixed_order() {
        let r = report(&[row("1", 1.0, "1"), row("1", 5000.0, "1")]);
        assert_eq!(r.issues, vec![SUSPICIOUS_PRICE_RANGE, DUPLICATE_ZPIDS]);
        assert_eq!(r.score, 0.15);
        assert_eq!(r.score, 0.5 * 0.3);

        let mut rows: Vec<Row> = Vec::new();
        let zips: Vec<String> = (0..60).map(|i| i.to_string()).collect();
        for z in &zips {
            rows.push((Some("dup"), Some(f64::NAN), Some(z.as_str())));
        }
        let r = report_with(&rows, &QualityThresholds::default(), true);
        assert_eq!(r.issues, vec![SUSPICIOUS_PRICE_RANGE, DUPLICATE_ZPIDS, EXCESSIVE_GEOGRAPHIC_SPREAD, BLACKLISTED]);
        assert_eq!(r.score, 0.5 * 0.3 * 0.7 * 0.1);
        assert_eq!((r.rows, r.duplicate_zpids, r.distinct_zips), (60, 59, 60));

        let r = report_with(&rows[..1], &QualityThresholds::default(), true);
        assert_eq!((r.score, r.issues), (0.5 * 0.1, vec![SUSPICIOUS_PRICE_RANGE, BLACKLISTED]));
        let spread_and_dup = report(&rows.iter().map(|(z, _, c)| (*z, Some(5000.0), *c)).collect::<Vec<_>>());
        assert_eq!(spread_and_dup.issues, vec![DUPLICATE_ZPIDS, EXCESSIVE_GEOGRAPHIC_SPREAD]);
        assert_eq!(spread_and_dup.score, 0.3 * 0.7);
    }

    #[test]
    fn hostile_strings_are_plain_values() {
        let evil = ["'); DROP TABLE resi.listings; --", "\u{0}", "é", "e\u{301}", "🏠", "{\"a\",NULL}"];
        let mut s = SubmissionQuality::default();
        for v in evil {
            s.add(Some(v), Some(5000.0), Some(v));
        }
        let long = "9".repeat(100_000);
        s.add(Some(&long), None, Some(&long));
        let mut expected: Vec<String> = evil.iter().map(|v| v.to_string()).chain([long.clone()]).collect();
        expected.sort();
        assert_eq!(sorted(s.distinct_zpids()), expected);
        assert_eq!(sorted(s.distinct_zips()), expected);
        assert_eq!(s.report(&QualityThresholds::default(), false).unwrap().score, 1.0);
    }

    #[test]
    fn many_rows_stay_exact() {
        let mut s = SubmissionQuality::default();
        for i in 0..200_000u64 {
            s.add(Some(&(i % 150_000).to_string()), Some(1e5), Some(&format!("{:05}", i % 40)));
        }
        let r = s.report(&QualityThresholds::default(), false).unwrap();
        assert_eq!((r.rows, r.duplicate_zpids, r.distinct_zips), (200_000, 50_000, 40));
        assert_eq!(s.distinct_zpids().len(), 150_000);
    }
}
