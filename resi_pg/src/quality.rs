//! Support functions of `resi.submission_quality(zpid text, price double precision, zip_code
//! text) → resi.quality_report`, the quality of one submission.
//!
//! Declared in sql/admission.sql as `CREATE AGGREGATE … (STYPE = internal, SFUNC,
//! FINALFUNC, PARALLEL = SAFE)`; no combine function (a submission is one group). The score is
//! 1.0 times 0.5 if a price is below `resi.quality_min_price` or above `resi.quality_max_price`
//! (or NaN/±Infinity; NULL is fine), 0.3 if a non-NULL zpid repeats, 0.7 if there are more than
//! `resi.quality_max_zip_codes` distinct non-NULL zip codes, 0.1 if a zpid or zip code matches
//! `resi.blacklist`; the rules are `resi_core::quality`. No rows → NULL.

use crate::composite::composite;
use crate::consensus::aggregate_state_mut;
use crate::error::{raise_code, OrRaise};
use crate::guc;
use pgrx::datum::{DatumWithOid, Internal};
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum};
use resi_core::quality::{QualityThresholds, SubmissionQuality};

const NAME: &str = "resi.submission_quality";
const OF_NAME: &str = "resi.submission_quality_of";

/// Does any of the distinct zpids ($1) or zip codes ($2) match `resi.blacklist`? Exact entries
/// are equi-joins (hash joins or the unique index), patterns are POSIX regular expressions
/// (`~`). Operators are schema-qualified so that the caller's search_path cannot change them.
const BLACKLIST_QUERY: &str = "
SELECT EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest($1::pg_catalog.text[]) v(x)
                 ON v.x OPERATOR(pg_catalog.=) b.value
               WHERE b.field OPERATOR(pg_catalog.=) 'zpid' AND b.match OPERATOR(pg_catalog.=) 'exact')
    OR EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest($2::pg_catalog.text[]) v(x)
                 ON v.x OPERATOR(pg_catalog.=) b.value
               WHERE b.field OPERATOR(pg_catalog.=) 'zip_code' AND b.match OPERATOR(pg_catalog.=) 'exact')
    OR EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest($1::pg_catalog.text[]) v(x)
                 ON v.x OPERATOR(pg_catalog.~) b.value
               WHERE b.field OPERATOR(pg_catalog.=) 'zpid' AND b.match OPERATOR(pg_catalog.=) 'pattern')
    OR EXISTS (SELECT 1 FROM resi.blacklist b JOIN pg_catalog.unnest($2::pg_catalog.text[]) v(x)
                 ON v.x OPERATOR(pg_catalog.~) b.value
               WHERE b.field OPERATOR(pg_catalog.=) 'zip_code' AND b.match OPERATOR(pg_catalog.=) 'pattern')";

/// Transition: count one row. Every row counts, whatever is NULL. IMMUTABLE, PARALLEL SAFE, not
/// strict; callable only by the aggregate (0A000 otherwise).
#[pg_extern(immutable, parallel_safe)]
fn submission_quality_transition(
    mut state: Internal,
    zpid: Option<&str>,
    price: Option<f64>,
    zip_code: Option<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    // SAFETY: the transition value of submission_quality is always a SubmissionQuality.
    let quality = unsafe {
        aggregate_state_mut::<SubmissionQuality>(
            &mut state,
            fcinfo,
            "resi.submission_quality_transition can only be called by resi.submission_quality",
        )
    };
    quality.add(zpid, price, zip_code);
    state
}

/// Final: the report under the current settings and blacklist (one SPI query per group). NULL
/// when there were no rows. STABLE (settings and the blacklist can change between statements),
/// PARALLEL SAFE. A blacklist pattern that is not a valid regular expression raises 2201B.
#[pg_extern(stable, parallel_safe)]
fn submission_quality_final(
    state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.quality_report")> {
    // SAFETY: a SubmissionQuality of this aggregate.
    let quality = unsafe { state.get::<SubmissionQuality>() }?;
    Some(report(quality, fcinfo))
}

/// `resi.submission_quality_of(rows, zpids, prices, zip_codes)`: the report on a submission of
/// `rows` rows given column by column (`count(*)` and `array_agg`s of its rows, each in any
/// order): what the aggregate gives for those rows, without an aggregate's state per row (the
/// fold calls it in both editions; a portable aggregate's state is copied on every row). NULL
/// when rows is NULL or 0; NULL arrays and elements are ignored. STABLE, PARALLEL SAFE, not
/// strict; rows < 0 raises 22023, a count beyond integer 22003, a blacklist pattern that is not
/// a valid regular expression 2201B.
#[pg_extern(stable, parallel_safe)]
fn submission_quality_of(
    rows: Option<i64>,
    zpids: Option<Array<&str>>,
    prices: Option<Array<f64>>,
    zip_codes: Option<Array<&str>>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "resi.quality_report")> {
    let rows = rows.filter(|&rows| rows != 0)?;
    let rows = u64::try_from(rows).unwrap_or_else(|_| {
        raise_code(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, OF_NAME, &format!("rows must be >= 0, got {rows}"))
    });
    let quality = SubmissionQuality::of_columns(
        rows,
        zpids.iter().flat_map(|a| a.iter()),
        prices.iter().flat_map(|a| a.iter()),
        zip_codes.iter().flat_map(|a| a.iter()),
    );
    Some(report(&quality, fcinfo))
}

/// The report on `quality` under the current thresholds and blacklist, as `resi.quality_report`.
fn report(quality: &SubmissionQuality, fcinfo: pg_sys::FunctionCallInfo) -> PgHeapTuple<'static, AllocatedByRust> {
    let thresholds = QualityThresholds {
        min_price: guc::QUALITY_MIN_PRICE.get(),
        max_price: guc::QUALITY_MAX_PRICE.get(),
        max_zip_codes: u64::try_from(guc::QUALITY_MAX_ZIP_CODES.get()).unwrap_or(0),
    };
    let report = quality.report(&thresholds, blacklisted(quality)).or_raise(NAME);
    composite(
        fcinfo,
        "resi.quality_report",
        &[
            report.score.into_datum(),
            report.issues.into_datum(),
            report.rows.into_datum(),
            report.duplicate_zpids.into_datum(),
            report.distinct_zips.into_datum(),
        ],
    )
}

/// Whether the submission has a blacklisted zpid or zip code.
fn blacklisted(quality: &SubmissionQuality) -> bool {
    let zpids = quality.distinct_zpids();
    let zips = quality.distinct_zips();
    if zpids.is_empty() && zips.is_empty() {
        return false;
    }
    let args: [DatumWithOid; 2] = [zpids.into(), zips.into()];
    Spi::connect(|client| client.select(BLACKLIST_QUERY, Some(1), &args)?.first().get_one::<bool>())
        .unwrap_or_else(|e| error!("{NAME}: cannot read resi.blacklist: {e}"))
        .unwrap_or(false)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The report on the rows `(zpid, price, zip_code)` as text.
    fn quality(rows: &str) -> Option<String> {
        Spi::get_one::<String>(&format!(
            "SELECT resi.submission_quality(z, p, zc)::text FROM (VALUES {rows}) t(z, p, zc)"
        ))
        .unwrap()
    }

    fn score(rows: &str) -> f64 {
        Spi::get_one::<f64>(&format!(
            "SELECT (resi.submission_quality(z, p, zc)).score FROM (VALUES {rows}) t(z, p, zc)"
        ))
        .unwrap()
        .unwrap()
    }

    const CLEAN: &str = "('1'::text, 250000::float8, '77494'::text), ('2', 1000, '77494'), ('3', 1e8, '77450')";

    #[pg_test]
    fn clean_submission() {
        assert_eq!(quality(CLEAN).as_deref(), Some("(1,{},3,0,2)"));
        let expanded = Spi::get_one::<String>(&format!(
            "SELECT format('%s|%s|%s|%s|%s', q.score, q.issues, q.rows, q.duplicate_zpids, q.distinct_zips)
             FROM (SELECT (resi.submission_quality(z, p, zc)).* FROM (VALUES {CLEAN}) t(z, p, zc)) q"
        ))
        .unwrap();
        assert_eq!(expanded.as_deref(), Some("1|{}|3|0|2"));
        // The issues array is empty, not NULL.
        assert_eq!(
            Spi::get_one::<i32>(&format!(
                "SELECT cardinality((resi.submission_quality(z, p, zc)).issues) FROM (VALUES {CLEAN}) t(z, p, zc)"
            ))
            .unwrap(),
            Some(0)
        );
    }

    #[pg_test]
    fn each_issue_alone() {
        assert_eq!(
            quality("('1'::text, 999::float8, '1'::text), ('2', 5000, '1')").as_deref(),
            Some("(0.5,{suspicious_price_range},2,0,1)")
        );
        for price in ["'NaN'", "'Infinity'", "'-Infinity'", "100000001", "-1"] {
            assert_eq!(score(&format!("('1'::text, {price}::float8, '1'::text)")), 0.5, "price {price}");
        }
        assert_eq!(
            quality("('123'::text, 5000::float8, '1'::text), ('123', 5000, '1'), ('123', NULL, '1'), ('7', 5000, '1')")
                .as_deref(),
            Some("(0.3,{duplicate_zpids},4,2,1)")
        );
        let fifty = "SELECT NULL::text, 5000::float8, (10000 + i)::text FROM generate_series(1, 50) i";
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT resi.submission_quality(z, p, zc)::text FROM ({fifty}) t(z, p, zc)"
            ))
            .unwrap()
            .as_deref(),
            Some("(1,{},50,0,50)")
        );
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT resi.submission_quality(z, p, zc)::text FROM ({fifty} UNION ALL SELECT NULL, NULL, '99999') t(z, p, zc)"
            ))
            .unwrap()
            .as_deref(),
            Some("(0.7,{excessive_geographic_spread},51,0,51)")
        );
    }

    #[pg_test]
    fn zpids_are_strings() {
        // "007" and "7" are different zpids; "0x" and "x" too.
        assert_eq!(
            score("('007'::text, NULL::float8, NULL::text), ('7', NULL, NULL), ('0x', NULL, NULL), ('x', NULL, NULL)"),
            1.0
        );
        assert_eq!(score("('007'::text, NULL::float8, NULL::text), ('007', NULL, NULL)"), 0.3);
    }

    #[pg_test]
    fn issues_combine() {
        assert_eq!(
            quality("('1'::text, 1::float8, '1'::text), ('1', 5000, '2')").as_deref(),
            Some("(0.15,\"{suspicious_price_range,duplicate_zpids}\",2,1,2)")
        );
        let all = Spi::get_two::<f64, Vec<String>>(
            "SELECT q.score, q.issues FROM (SELECT (resi.submission_quality('dup', 'NaN', i::text)).*
             FROM generate_series(1, 60) i) q",
        )
        .unwrap();
        assert_eq!(all.0, Some(0.5 * 0.3 * 0.7));
        assert_eq!(
            all.1.unwrap(),
            ["suspicious_price_range", "duplicate_zpids", "excessive_geographic_spread"].map(String::from)
        );
        Spi::run("INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'exact', 'dup', 'test')")
            .unwrap();
        let all = Spi::get_two::<f64, Vec<String>>(
            "SELECT q.score, q.issues FROM (SELECT (resi.submission_quality('dup', 'NaN', i::text)).*
             FROM generate_series(1, 60) i) q",
        )
        .unwrap();
        assert_eq!(all.0, Some(0.5 * 0.3 * 0.7 * 0.1));
        assert_eq!(
            all.1.unwrap(),
            ["suspicious_price_range", "duplicate_zpids", "excessive_geographic_spread", "blacklisted"]
                .map(String::from)
        );
    }

    #[pg_test]
    fn grouped_by_submission() {
        let by_submission = Spi::get_one::<String>(
            "SELECT string_agg(format('%s=%s:%s', s, (q).score, (q).issues), ' ' ORDER BY s) FROM (
               SELECT s, resi.submission_quality(z, p, zc) q
               FROM (VALUES ('a', '1', 5000::float8, '1'), ('a', '2', 6000, '1'),
                            ('b', '1', 5000, '1'), ('b', '1', 1, '1'),
                            ('c', NULL, NULL, NULL),
                            ('d', '9', 'Infinity', '2')) t(s, z, p, zc)
               GROUP BY s) g",
        )
        .unwrap();
        assert_eq!(
            by_submission.as_deref(),
            Some("a=1:{} b=0.15:{suspicious_price_range,duplicate_zpids} c=1:{} d=0.5:{suspicious_price_range}")
        );
        // Duplicates are counted within a submission, not across them.
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT sum((q).duplicate_zpids) FROM (SELECT s, resi.submission_quality(z, NULL, NULL) q
                 FROM (VALUES (1, 'x'), (2, 'x'), (3, 'x'), (3, 'x')) t(s, z) GROUP BY s) g"
            )
            .unwrap(),
            Some(1)
        );
    }

    #[pg_test]
    fn thresholds_are_settings() {
        let rows = "('1'::text, 200000000::float8, '1'::text), ('2', 500, '2'), ('3', 5000, '3')";
        assert_eq!(score(rows), 0.5);
        Spi::run("SET resi.quality_max_price = 1e9").unwrap();
        assert_eq!(score(rows), 0.5); // 500 is still too low
        Spi::run("SET resi.quality_min_price = 100").unwrap();
        assert_eq!(score(rows), 1.0);
        Spi::run("SET resi.quality_max_price = 1e8").unwrap();
        assert_eq!(score(rows), 0.5);
        Spi::run("RESET resi.quality_max_price").unwrap();
        Spi::run("SET resi.quality_max_zip_codes = 2").unwrap();
        assert_eq!(
            quality(rows).as_deref(),
            Some("(0.35,\"{suspicious_price_range,excessive_geographic_spread}\",3,0,3)")
        );
        Spi::run("SET resi.quality_max_zip_codes = 3").unwrap();
        assert_eq!(score(rows), 0.5);
        Spi::run("RESET ALL").unwrap();
        assert_eq!(score(rows), 0.5);
    }

    #[pg_test]
    fn blacklist_exact_and_pattern() {
        let rows = "('2077000001'::text, 5000::float8, '77494'::text), ('2077000002', 5000, '02134')";
        assert_eq!(score(rows), 1.0);
        for (field, kind, value, listed) in [
            ("zpid", "exact", "2077000002", true),
            ("zpid", "exact", "207700000", false),
            ("zpid", "pattern", "^2077", true),
            ("zpid", "pattern", "^9", false),
            ("zip_code", "exact", "02134", true),
            ("zip_code", "exact", "2134", false),
            ("zip_code", "pattern", "^0[0-9]{4}$", true),
            ("zip_code", "pattern", "^7749$", false),
            // A zip code pattern does not match zpids, nor a zpid entry zip codes.
            ("zip_code", "exact", "2077000001", false),
            ("zpid", "pattern", "^77494$", false),
        ] {
            Spi::run(&format!(
                "INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('{field}', '{kind}', '{value}', 'test')"
            ))
            .unwrap();
            let expected = if listed { "(0.1,{blacklisted},2,0,2)" } else { "(1,{},2,0,2)" };
            assert_eq!(quality(rows).as_deref(), Some(expected), "{field} {kind} {value}");
            Spi::run("DELETE FROM resi.blacklist").unwrap();
        }
        // Hostile values are plain text both ways.
        Spi::run("INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'exact', $$'); DROP TABLE resi.blacklist; --$$, 'test')").unwrap();
        assert_eq!(score("($$'); DROP TABLE resi.blacklist; --$$::text, NULL::float8, NULL::text)"), 0.1);
        assert_eq!(score("($$x'); DROP TABLE resi.blacklist; --$$::text, NULL::float8, NULL::text)"), 1.0);
    }

    #[pg_test]
    fn null_only_rows() {
        assert_eq!(
            quality("(NULL::text, NULL::float8, NULL::text), (NULL, NULL, NULL)").as_deref(),
            Some("(1,{},2,0,0)")
        );
        // Even with a catch-all pattern: there is nothing to match.
        Spi::run("INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'pattern', '', 'all'), ('zip_code', 'pattern', '', 'all')").unwrap();
        assert_eq!(quality("(NULL::text, NULL::float8, NULL::text)").as_deref(), Some("(1,{},1,0,0)"));
        assert_eq!(score("(NULL::text, NULL::float8, '1'::text)"), 0.1);
    }

    #[pg_test]
    fn no_rows_is_null() {
        assert_eq!(
            Spi::get_one::<bool>(
                "SELECT resi.submission_quality(z, p, zc) IS NULL FROM (SELECT '1'::text z, 1::float8 p, '1'::text zc WHERE false) t"
            )
            .unwrap(),
            Some(true)
        );
        // Grouped, an empty input has no groups at all.
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM (SELECT g, resi.submission_quality(NULL, NULL, NULL) FROM (SELECT 1 g WHERE false) t GROUP BY g) s"
            )
            .unwrap(),
            Some(0)
        );
    }

    #[pg_test(error = "invalid regular expression: parentheses () not balanced")]
    fn invalid_blacklist_pattern_is_an_error() {
        Spi::run("INSERT INTO resi.blacklist (field, match, value, reason) VALUES ('zpid', 'pattern', '(', 'typo')")
            .unwrap();
        score("('1'::text, NULL::float8, NULL::text)");
    }

    /// The support functions take `internal`, which SQL cannot supply (and the transition
    /// function refuses to run outside an aggregate, 0A000).
    #[pg_test(error = "cannot cast type unknown to internal")]
    fn quality_support_functions_are_not_callable_from_sql() {
        Spi::run("SELECT resi.submission_quality_transition(NULL::internal, '1', 1, '1')").unwrap();
    }
}
