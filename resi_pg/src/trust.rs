//! Trust evolution: `resi.next_trust` and `resi.initial_trust`.

use crate::error::OrRaise;
use pgrx::prelude::*;

/// `resi.next_trust(current, quality, validator_confirmed DEFAULT false, contains_fake_data DEFAULT false)`:
/// the miner's trust after one submission or validation,
/// `clamp(0.95 * current + adj, 0, 1)` with adj = -0.5 if contains_fake_data, else +0.1 if
/// validator_confirmed, else +0.05 if quality > 0.8, else -0.2 if quality < 0.3, else 0.
///
/// IMMUTABLE, STRICT (any NULL argument gives NULL), PARALLEL SAFE. ±Infinity follows the
/// formula and is clamped; NaN in `current` or `quality` raises 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn next_trust(
    current: f64,
    quality: f64,
    validator_confirmed: default!(bool, false),
    contains_fake_data: default!(bool, false),
) -> f64 {
    resi_core::trust::next_trust(current, quality, validator_confirmed, contains_fake_data).or_raise("resi.next_trust")
}

/// `resi.submission_trust_quality(score, rows, corroborated_rows, agreeing_rows)`: the quality a
/// folded submission moves its miner's trust with: `score × agreeing_rows / corroborated_rows`
/// (`score` when nothing is corroborated), at most 0.8 (no bonus) when fewer than half the rows
/// are corroborated. See resi_core::trust::submission_trust_quality.
///
/// IMMUTABLE, STRICT, PARALLEL SAFE. NaN score, negative counts or counts out of order
/// (agreeing > corroborated > rows) raise 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn submission_trust_quality(score: f64, rows: i64, corroborated_rows: i64, agreeing_rows: i64) -> f64 {
    let count = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| resi_core::Error::invalid_parameter(format!("{what} must be >= 0, got {n}")))
    };
    let name = "resi.submission_trust_quality";
    resi_core::trust::submission_trust_quality(
        score,
        count(rows, "rows").or_raise(name),
        count(corroborated_rows, "corroborated_rows").or_raise(name),
        count(agreeing_rows, "agreeing_rows").or_raise(name),
    )
    .or_raise(name)
}

/// `resi.initial_trust()`: the trust of a miner not yet in `resi.miner_trust`, from the
/// `resi.initial_trust` setting (default 0.25). STABLE (a setting can change), PARALLEL SAFE.
#[pg_extern(stable, parallel_safe)]
fn initial_trust() -> f64 {
    crate::guc::INITIAL_TRUST.get()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn next(sql_args: &str) -> Option<f64> {
        Spi::get_one(&format!("SELECT resi.next_trust({sql_args})")).unwrap()
    }

    #[pg_test]
    fn defaults_and_priorities() {
        assert!((next("0.5, 0.9").unwrap() - 0.525).abs() < 1e-12);
        assert!((next("0.5, 0.1").unwrap() - 0.275).abs() < 1e-12);
        assert!((next("0.5, 0.5, true").unwrap() - 0.575).abs() < 1e-12);
        assert!((next("0.9, 0.99, true, true").unwrap() - 0.355).abs() < 1e-12);
        assert!((next("0.5, 0.9, contains_fake_data => true").unwrap() - 0.0).abs() < 1e-12);
    }

    #[pg_test]
    fn nulls_and_infinities() {
        assert_eq!(next("NULL, 0.5"), None);
        assert_eq!(next("0.5, NULL"), None);
        assert_eq!(next("0.5, 0.5, NULL"), None);
        assert_eq!(next("0.5, 0.5, false, NULL"), None);
        assert_eq!(next("'Infinity', 0.5"), Some(1.0));
        assert_eq!(next("'-Infinity', 0.5"), Some(0.0));
        assert!((next("0.5, 'Infinity'").unwrap() - 0.525).abs() < 1e-12);
    }

    #[pg_test(error = "resi.next_trust: next_trust needs numbers, got current trust NaN and quality 0.5")]
    fn nan_is_an_error() {
        next("'NaN', 0.5");
    }

    #[pg_test]
    fn trust_quality_of_a_submission() {
        let q = |args: &str| Spi::get_one::<f64>(&format!("SELECT resi.submission_trust_quality({args})")).unwrap();
        assert_eq!(q("1.0, 100, 100, 90"), Some(0.9));
        assert_eq!(q("1.0, 100, 10, 10"), Some(0.8));
        assert_eq!(q("0.15, 100, 0, 0"), Some(0.15));
        assert_eq!(q("NULL, 1, 1, 1"), None);
    }

    #[pg_test(error = "resi.submission_trust_quality: corroborated_rows must be >= 0, got -1")]
    fn trust_quality_negative_count() {
        Spi::get_one::<f64>("SELECT resi.submission_trust_quality(1.0, 1, -1, 0)").unwrap();
    }

    #[pg_test]
    fn initial_trust_follows_the_setting() {
        assert_eq!(Spi::get_one::<f64>("SELECT resi.initial_trust()").unwrap(), Some(0.25));
        Spi::run("SET resi.initial_trust = 0.1").unwrap();
        assert_eq!(Spi::get_one::<f64>("SELECT resi.initial_trust()").unwrap(), Some(0.1));
    }
}
