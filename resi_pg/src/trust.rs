//! Trust: `resi.earned_trust` and `resi.initial_trust`.

use crate::error::OrRaise;
use pgrx::prelude::*;

/// `resi.claim_recency(age interval) → double precision`: the share of its weight a claim keeps
/// when its upload is `age` older than the listing's newest claim (resi_core::trust::claim_recency):
/// `0.5 ^ (age / resi.claim_half_life)`, at least 1/8; 1 when age ≤ 0 or the setting is 0. A
/// month counts 30 days (ages are differences of timestamps, which have none). STABLE (reads
/// the setting), STRICT (NULL age → NULL), PARALLEL SAFE; never raises.
#[pg_extern(stable, strict, parallel_safe)]
fn claim_recency(age: pgrx::datum::Interval) -> f64 {
    resi_core::trust::claim_recency(age.as_micros() as f64 / 1e6, crate::settings::claim_half_life_seconds())
}

/// `resi.earned_trust(audited_claims, wrong_claims, corroborated_rows, agreeing_rows, initial_trust)`:
/// the trust a miner has earned with this evidence (resi_core::trust): the scaled log-odds of a
/// lower confidence bound of the share of its claims that are right, from audits (strong
/// evidence) and agreement with the consensus other independent sources voted for (weak and
/// capped), under a prior that gives a miner without evidence `initial_trust`.
///
/// The rows are decayed counts (double precision). IMMUTABLE, STRICT (any NULL argument gives
/// NULL), PARALLEL SAFE. Negative claim counts, counts out of order (wrong > audited, agreeing >
/// corroborated, negative or non-finite rows) and an initial trust outside [0, 1] or NaN raise
/// 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn earned_trust(
    audited_claims: i64,
    wrong_claims: i64,
    corroborated_rows: f64,
    agreeing_rows: f64,
    initial_trust: f64,
) -> f64 {
    let name = "resi.earned_trust";
    let count = |n: i64, what: &str| {
        u64::try_from(n)
            .map_err(|_| resi_core::Error::invalid_parameter(format!("{what} must be >= 0, got {n}")))
            .or_raise(name)
    };
    resi_core::trust::Evidence {
        audited_claims: count(audited_claims, "audited_claims"),
        wrong_claims: count(wrong_claims, "wrong_claims"),
        corroborated_rows,
        agreeing_rows,
    }
    .trust(initial_trust)
    .or_raise(name)
}

// Functions of resi_pg 0.1.0–0.4.0 that 0.5.0's schema dropped. `sql = false`: no install script
// creates them any more, but the shared library keeps their symbols, so that the frozen install
// scripts of those versions still load (sql/install/, CREATE EXTENSION … VERSION) and a database
// not yet upgraded keeps working on the new library until ALTER EXTENSION resi_pg UPDATE.

/// `resi.next_trust(current, quality, validator_confirmed DEFAULT false, contains_fake_data DEFAULT false)`:
/// the miner's trust after one submission or validation,
/// `clamp(0.95 * current + adj, 0, 1)` with adj = -0.5 if contains_fake_data, else +0.1 if
/// validator_confirmed, else +0.05 if quality > 0.8, else -0.2 if quality < 0.3, else 0.
///
/// IMMUTABLE, STRICT (any NULL argument gives NULL), PARALLEL SAFE. ±Infinity follows the
/// formula and is clamped; NaN in `current` or `quality` raises 22023.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn next_trust(
    current: f64,
    quality: f64,
    validator_confirmed: default!(bool, false),
    contains_fake_data: default!(bool, false),
) -> f64 {
    resi_core::trust::before_0_5::next_trust(current, quality, validator_confirmed, contains_fake_data)
        .or_raise("resi.next_trust")
}

/// `resi.submission_trust_quality(score, rows, corroborated_rows, agreeing_rows)`: the quality a
/// folded submission moves its miner's trust with: `score × agreeing_rows / corroborated_rows`
/// (`score` when nothing is corroborated), at most 0.8 (no bonus) when fewer than half the rows
/// are corroborated. See resi_core::trust::before_0_5.
///
/// IMMUTABLE, STRICT, PARALLEL SAFE. NaN score, negative counts or counts out of order
/// (agreeing > corroborated > rows) raise 22023.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn submission_trust_quality(score: f64, rows: i64, corroborated_rows: i64, agreeing_rows: i64) -> f64 {
    let count = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| resi_core::Error::invalid_parameter(format!("{what} must be >= 0, got {n}")))
    };
    let name = "resi.submission_trust_quality";
    resi_core::trust::before_0_5::submission_trust_quality(
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

    fn earned(sql_args: &str) -> Option<f64> {
        Spi::get_one(&format!("SELECT resi.earned_trust({sql_args})")).unwrap()
    }

    #[pg_test]
    fn earned_trust_grows_with_audits_and_starts_at_the_initial_trust() {
        assert!((earned("0, 0, 0, 0, 0.25").unwrap() - 0.25).abs() < 1e-9);
        assert!((earned("0, 0, 0, 0, 0.1").unwrap() - 0.1).abs() < 1e-9);
        assert!(earned("10, 0, 0, 0, 0.25").unwrap() > 0.5);
        assert_eq!(earned("100, 0, 0, 0, 0.25"), Some(1.0));
        assert_eq!(earned("20, 18, 0, 0, 0.25"), Some(0.0));
        assert_eq!(earned("NULL, 0, 0, 0, 0.25"), None);
        assert_eq!(earned("0, 0, 0, 0, NULL"), None);
    }

    #[pg_test(error = "resi.earned_trust: audited_claims must be >= 0, got -1")]
    fn earned_trust_negative_count() {
        earned("-1, 0, 0, 0, 0.25");
    }

    #[pg_test(
        error = "resi.earned_trust: trust evidence needs wrong_claims <= audited_claims and agreeing_rows <= corroborated_rows, got 2 wrong of 1 audited claims and 0 agreeing of 0 corroborated rows"
    )]
    fn earned_trust_counts_out_of_order() {
        earned("1, 2, 0, 0, 0.25");
    }

    #[pg_test]
    fn initial_trust_follows_the_setting() {
        assert_eq!(Spi::get_one::<f64>("SELECT resi.initial_trust()").unwrap(), Some(0.25));
        Spi::run("SET resi.initial_trust = 0.1").unwrap();
        assert_eq!(Spi::get_one::<f64>("SELECT resi.initial_trust()").unwrap(), Some(0.1));
    }
}
