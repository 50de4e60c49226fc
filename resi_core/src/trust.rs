//! A miner's trust: the vote weight it has earned by being checked and found right.
//!
//! Trust is a function of a miner's evidence, not a running average, so it does not depend on
//! the order audits and uploads arrive in, and it can be explained by its counts:
//!
//! * **Audits** (strong evidence): each claim of the miner a validator judged
//!   (`resi.record_audit` judges every claim on the listing; `resi.record_validation` one
//!   claim) is right when no compared field was wrong.
//! * **Agreement** (weak evidence): rows of the miner's uploads on listings that another
//!   independent source voted on, and how many of them agreed with the consensus in every
//!   compared field. Each such row counts [`AGREEMENT_WEIGHT`] of an audit, and all of them
//!   together at most [`AGREEMENT_CAP`] audits: neither patience nor numbers buys weight.
//!
//! The share of the miner's claims that are right has the posterior
//! `Beta(α₀ + right, β₀ + wrong)`; its prior is [`PRIOR_CLAIMS`] pseudo-claims whose mean is
//! chosen so that a miner without evidence has the initial trust (`resi.initial_trust`, 0.25 by
//! default): a new identity has little weight, and a few audits move it a lot. The accuracy a
//! miner is credited with is a lower confidence bound of that posterior (mean − 1 sd, a
//! one-sided bound of about 84 %), at most [`MAX_ACCURACY`]; trust is Accu's vote weight of that
//! accuracy with one way to be wrong, the log-odds `ln(A / (1 − A))`, scaled so that
//! [`MAX_ACCURACY`] is 1 and clamped to `[0, 1]` (0 for a miner no better than a coin). Consequences, checked by the tests below: a miner right on 97 % of its
//! audited claims keeps more than 0.8× the trust of a perfect one; one error among many audits
//! moves trust by about its share; a miner whose audits mostly fail has none.

use crate::error::{Error, Result};

/// How many half-lives a claim's weight keeps halving: after that it stays at 2⁻³ = 1/8 of a
/// fresh claim's, so an old claim that nobody has renewed still counts for something.
pub const RECENCY_HALVINGS: f64 = 3.0;

/// The share of its weight a claim keeps when its upload is `age_seconds` older than the
/// listing's newest claim: `0.5 ^ (age / half_life)`, at least `2^-RECENCY_HALVINGS`. 1 when the
/// claim is the newest (age ≤ 0, or NaN) or when claims do not age (a half-life ≤ 0 or NaN).
/// Never NaN, never 0, never above 1.
pub fn claim_recency(age_seconds: f64, half_life_seconds: f64) -> f64 {
    if !(age_seconds > 0.0 && half_life_seconds > 0.0) {
        return 1.0;
    }
    0.5f64.powf((age_seconds / half_life_seconds).min(RECENCY_HALVINGS))
}

/// How many audits the prior is worth.
pub const PRIOR_CLAIMS: f64 = 4.0;
/// How many audits one agreeing (or disagreeing) row is worth.
pub const AGREEMENT_WEIGHT: f64 = 0.1;
/// How many audits all agreement together is worth at most.
pub const AGREEMENT_CAP: f64 = 10.0;
/// Standard deviations between the posterior mean and the accuracy credited (a one-sided bound
/// of about 84 % under the normal approximation).
pub const LOWER_BOUND_SDS: f64 = 1.0;
/// The accuracy at which trust is 1: beyond it, more audits do not buy more weight (some
/// staleness is in the nature of scraped listings).
pub const MAX_ACCURACY: f64 = 0.95;

/// What a miner's trust is computed from; counts as kept in `resi.miner_trust`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evidence {
    /// Claims of the miner judged by audits and spot-checks.
    pub audited_claims: u64,
    /// Of those, the claims found wrong (at least one field).
    pub wrong_claims: u64,
    /// Rows uploaded on listings where a field's consensus two independent sources back could
    /// judge them (decayed: recent uploads count most, see `resi.fold_staged_listings`).
    pub corroborated_rows: f64,
    /// Of those, rows that agreed with the consensus in every judged field.
    pub agreeing_rows: f64,
}

/// The Beta posterior of the share of a miner's claims that are right.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
}

impl Posterior {
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// The accuracy credited: mean − [`LOWER_BOUND_SDS`] standard deviations, in `[0, 1]`.
    pub fn lower_bound(&self) -> f64 {
        let n = self.alpha + self.beta;
        let mean = self.mean();
        let sd = (mean * (1.0 - mean) / (n + 1.0)).sqrt();
        (mean - LOWER_BOUND_SDS * sd).clamp(0.0, 1.0)
    }

    /// Trust in `[0, 1]`: the log-odds of [`Posterior::lower_bound`] (Accu's vote weight with
    /// one way to be wrong: a claim is right or it is not), scaled so that [`MAX_ACCURACY`] is 1;
    /// 0 at accuracy 0.5 and below.
    pub fn trust(&self) -> f64 {
        weight(self.lower_bound().min(MAX_ACCURACY)) / weight(MAX_ACCURACY)
    }
}

fn weight(accuracy: f64) -> f64 {
    if accuracy <= 0.0 {
        return 0.0;
    }
    (accuracy / (1.0 - accuracy)).ln().max(0.0)
}

impl Evidence {
    fn check(&self) -> Result<()> {
        let rows_ok = self.agreeing_rows >= 0.0 && self.agreeing_rows <= self.corroborated_rows + 1e-9;
        if self.wrong_claims > self.audited_claims || !rows_ok || !self.corroborated_rows.is_finite() {
            return Err(Error::invalid_parameter(format!(
                "trust evidence needs wrong_claims <= audited_claims and agreeing_rows <= corroborated_rows, got \
                 {} wrong of {} audited claims and {} agreeing of {} corroborated rows",
                self.wrong_claims, self.audited_claims, self.agreeing_rows, self.corroborated_rows
            )));
        }
        Ok(())
    }

    /// The posterior from this evidence and the prior of a miner whose trust without evidence is
    /// `initial_trust`.
    pub fn posterior(&self, initial_trust: f64) -> Result<Posterior> {
        self.check()?;
        let prior = prior_for(initial_trust)?;
        let rows = self.corroborated_rows;
        let per_row = if rows > 0.0 { AGREEMENT_WEIGHT.min(AGREEMENT_CAP / rows) } else { 0.0 };
        let agreeing = self.agreeing_rows.min(rows);
        let right = (self.audited_claims - self.wrong_claims) as f64 + per_row * agreeing;
        let wrong = self.wrong_claims as f64 + per_row * (rows - agreeing);
        Ok(Posterior { alpha: prior.alpha + right, beta: prior.beta + wrong })
    }

    /// The miner's trust (see the module documentation). Errors
    /// ([`crate::ErrorKind::InvalidParameter`]) for counts out of order and an initial trust
    /// outside `[0, 1]` or NaN.
    pub fn trust(&self, initial_trust: f64) -> Result<f64> {
        Ok(self.posterior(initial_trust)?.trust())
    }
}

/// The prior: [`PRIOR_CLAIMS`] pseudo-claims with the mean whose trust is `initial_trust`
/// (found by bisection: trust grows with the mean).
pub fn prior_for(initial_trust: f64) -> Result<Posterior> {
    if !(0.0..=1.0).contains(&initial_trust) {
        return Err(Error::invalid_parameter(format!(
            "the initial trust must be between 0 and 1, got {initial_trust}"
        )));
    }
    let with_mean = |m: f64| Posterior { alpha: PRIOR_CLAIMS * m, beta: PRIOR_CLAIMS * (1.0 - m) };
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    for _ in 0..60 {
        let mid = 0.5 * (low + high);
        if with_mean(mid).trust() < initial_trust {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(with_mean(high))
}

/// The trust arithmetic of resi_pg 0.1.0–0.4.0 (an exponential moving average moved by each
/// submission and validation). 0.5.0's schema no longer uses it; the library keeps it because
/// databases not yet upgraded with `ALTER EXTENSION resi_pg UPDATE` still call it through
/// `resi.next_trust` and `resi.submission_trust_quality` (resi_pg/src/trust.rs).
pub mod before_0_5 {
    use crate::error::{Error, Result};

    /// Weight of the current trust in the next one (an exponential moving average).
    pub const TRUST_DECAY: f64 = 0.95;
    /// Adjustment when the submission contains fake data; it wins over every other signal.
    pub const FAKE_DATA_PENALTY: f64 = -0.5;
    /// Adjustment when a validator confirmed the submission.
    pub const VALIDATOR_BONUS: f64 = 0.1;
    /// Adjustment for a high-quality submission (quality > [`HIGH_QUALITY`]).
    pub const QUALITY_BONUS: f64 = 0.05;
    /// Adjustment for a low-quality submission (quality < [`LOW_QUALITY`]).
    pub const QUALITY_PENALTY: f64 = -0.2;
    pub const HIGH_QUALITY: f64 = 0.8;
    pub const LOW_QUALITY: f64 = 0.3;

    /// `clamp(0.95 * current + adj, 0, 1)`, where adj is -0.5 when the submission contains fake
    /// data, else +0.1 when a validator confirmed it, else +0.05 when quality > 0.8, else -0.2 when
    /// quality < 0.3, else 0.
    ///
    /// Fake data is checked first: a faker cannot buy back trust with otherwise tidy rows.
    /// Infinite inputs follow the formula (clamped); NaN in either number is an error
    /// ([`crate::ErrorKind::InvalidParameter`]), since it would poison every later update.
    pub fn next_trust(current: f64, quality: f64, validator_confirmed: bool, contains_fake_data: bool) -> Result<f64> {
        if current.is_nan() || quality.is_nan() {
            return Err(Error::invalid_parameter(format!(
                "next_trust needs numbers, got current trust {current} and quality {quality}"
            )));
        }
        let adjustment = if contains_fake_data {
            FAKE_DATA_PENALTY
        } else if validator_confirmed {
            VALIDATOR_BONUS
        } else if quality > HIGH_QUALITY {
            QUALITY_BONUS
        } else if quality < LOW_QUALITY {
            QUALITY_PENALTY
        } else {
            0.0
        };
        Ok((TRUST_DECAY * current + adjustment).clamp(0.0, 1.0))
    }

    /// Share of a submission's rows that must be corroborated (claimed by another miner too) for
    /// it to earn the high-quality bonus.
    pub const MIN_CORROBORATED_SHARE: f64 = 0.5;

    /// The quality a folded submission moves trust with (the `quality` of [`next_trust`]).
    ///
    /// `score` is the submission's quality report ([`crate::quality`]); `agreeing_rows` of its
    /// `corroborated_rows` (rows of listings another miner also claims) agree with the resulting
    /// consensus in every compared field. The result is `score × agreeing/corroborated` (just
    /// `score` when nothing is corroborated), capped at [`HIGH_QUALITY`] — no bonus — when fewer
    /// than half the rows are corroborated: unverifiable rows neither earn trust nor cost it, so
    /// a miner who is first to report an area is not punished and a fabricator is not rewarded.
    ///
    /// NaN `score` or counts out of order (agreeing > corroborated > rows) are an
    /// [`crate::ErrorKind::InvalidParameter`] error.
    pub fn submission_trust_quality(score: f64, rows: u64, corroborated_rows: u64, agreeing_rows: u64) -> Result<f64> {
        if score.is_nan() || agreeing_rows > corroborated_rows || corroborated_rows > rows {
            return Err(Error::invalid_parameter(format!(
                "submission_trust_quality needs a score and 0 <= agreeing_rows <= corroborated_rows <= rows, \
                 got score {score}, rows {rows}, corroborated_rows {corroborated_rows}, agreeing_rows {agreeing_rows}"
            )));
        }
        let agreement = if corroborated_rows == 0 { 1.0 } else { agreeing_rows as f64 / corroborated_rows as f64 };
        let quality = score * agreement;
        if (corroborated_rows as f64) < MIN_CORROBORATED_SHARE * rows as f64 {
            Ok(quality.min(HIGH_QUALITY))
        } else {
            Ok(quality)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn close(a: f64, b: f64) -> bool {
            (a - b).abs() < 1e-12
        }

        #[test]
        fn adjustments_in_priority_order() {
            assert!(close(next_trust(0.5, 0.5, false, false).unwrap(), 0.475));
            assert!(close(next_trust(0.5, 0.9, false, false).unwrap(), 0.525));
            assert!(close(next_trust(0.5, 0.1, false, false).unwrap(), 0.275));
            assert!(close(next_trust(0.5, 0.1, true, false).unwrap(), 0.575));
            // Fake data wins over a confirmation and over high quality.
            assert!(close(next_trust(0.5, 0.99, true, true).unwrap(), 0.0));
            assert!(close(next_trust(0.9, 0.99, false, true).unwrap(), 0.355));
            // Boundaries: exactly 0.8 and 0.3 are neutral.
            assert!(close(next_trust(0.4, 0.8, false, false).unwrap(), 0.38));
            assert!(close(next_trust(0.4, 0.3, false, false).unwrap(), 0.38));
        }

        #[test]
        fn clamped_to_unit_interval() {
            assert_eq!(next_trust(1.0, 1.0, true, false).unwrap(), 1.0);
            assert_eq!(next_trust(0.0, 0.0, false, false).unwrap(), 0.0);
            assert_eq!(next_trust(f64::INFINITY, 0.5, false, false).unwrap(), 1.0);
            assert_eq!(next_trust(f64::NEG_INFINITY, 0.5, false, false).unwrap(), 0.0);
            assert!(close(next_trust(0.5, f64::INFINITY, false, false).unwrap(), 0.525));
            assert!(close(next_trust(0.5, f64::NEG_INFINITY, false, false).unwrap(), 0.275));
        }

        #[test]
        fn trust_quality_needs_corroboration_for_a_bonus() {
            // All rows corroborated and agreeing: the report's score.
            assert_eq!(submission_trust_quality(1.0, 100, 100, 100).unwrap(), 1.0);
            // Disagreement scales it down: 60 of 100 agree.
            assert!(close(submission_trust_quality(1.0, 100, 100, 60).unwrap(), 0.6));
            assert!(close(submission_trust_quality(0.5, 100, 80, 40).unwrap(), 0.25));
            // Mostly uncorroborated: no bonus, but no penalty either.
            assert_eq!(submission_trust_quality(1.0, 100, 49, 49).unwrap(), HIGH_QUALITY);
            assert_eq!(submission_trust_quality(1.0, 100, 0, 0).unwrap(), HIGH_QUALITY);
            assert_eq!(submission_trust_quality(1.0, 100, 50, 50).unwrap(), 1.0);
            // A bad report still costs trust when nothing can be checked.
            assert!(close(submission_trust_quality(0.15, 10, 0, 0).unwrap(), 0.15));
            assert_eq!(submission_trust_quality(1.0, 0, 0, 0).unwrap(), 1.0);
        }

        #[test]
        fn trust_quality_rejects_inconsistent_counts() {
            assert!(submission_trust_quality(f64::NAN, 1, 1, 1).is_err());
            assert!(submission_trust_quality(1.0, 1, 2, 1).is_err());
            assert!(submission_trust_quality(1.0, 5, 2, 3).is_err());
        }

        #[test]
        fn nan_is_an_error() {
            assert!(next_trust(f64::NAN, 0.5, false, false).is_err());
            assert!(next_trust(0.5, f64::NAN, false, true).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_recency_halves_per_half_life_down_to_an_eighth() {
        let hour = 3600.0;
        assert_eq!(claim_recency(0.0, 2.0 * hour), 1.0);
        assert_eq!(claim_recency(-hour, 2.0 * hour), 1.0);
        assert_eq!(claim_recency(f64::NAN, 2.0 * hour), 1.0);
        assert!((claim_recency(2.0 * hour, 2.0 * hour) - 0.5).abs() < 1e-15);
        assert!((claim_recency(hour, 2.0 * hour) - 0.5f64.sqrt()).abs() < 1e-15);
        assert_eq!(claim_recency(6.0 * hour, 2.0 * hour), 0.125);
        assert_eq!(claim_recency(1e300, 2.0 * hour), 0.125);
        assert_eq!(claim_recency(f64::INFINITY, 2.0 * hour), 0.125);
        // Claims do not age when the half-life is 0 (or nonsense).
        assert_eq!(claim_recency(6.0 * hour, 0.0), 1.0);
        assert_eq!(claim_recency(6.0 * hour, f64::NAN), 1.0);
    }

    fn trust(audited: u64, wrong: u64, corroborated: u64, agreeing: u64) -> f64 {
        let (corroborated, agreeing) = (corroborated as f64, agreeing as f64);
        Evidence {
            audited_claims: audited,
            wrong_claims: wrong,
            corroborated_rows: corroborated,
            agreeing_rows: agreeing,
        }
        .trust(0.25)
        .unwrap()
    }

    #[test]
    fn a_miner_without_evidence_has_the_initial_trust() {
        for initial in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
            let t = Evidence::default().trust(initial).unwrap();
            assert!((t - initial).abs() < 1e-9, "initial {initial}: {t}");
        }
    }

    #[test]
    fn audits_earn_trust_and_a_97_percent_miner_keeps_most_of_it() {
        let mut last = trust(10, 0, 0, 0);
        for audited in [33_u64, 66, 100, 300, 1000, 10_000] {
            let perfect = trust(audited, 0, 0, 0);
            let good = trust(audited, (audited * 3).div_ceil(100), 0, 0);
            assert!(perfect >= last, "{audited}: {perfect} < {last}");
            assert!(good >= 0.8 * perfect, "{audited} audits: 97 % {good} vs perfect {perfect}");
            last = perfect;
        }
        assert!(trust(10, 0, 0, 0) > 0.5);
        assert_eq!(trust(10_000, 0, 0, 0), 1.0);
    }

    #[test]
    fn one_error_costs_about_its_share_and_fabrication_costs_everything() {
        let mean = |audited, wrong| {
            Evidence { audited_claims: audited, wrong_claims: wrong, ..Default::default() }
                .posterior(0.25)
                .unwrap()
                .mean()
        };
        assert!(mean(30, 0) - mean(31, 1) < 1.5 / 31.0);
        assert!(trust(31, 1, 0, 0) < trust(30, 0, 0, 0) && trust(31, 1, 0, 0) > 0.8);
        assert_eq!(trust(20, 18, 0, 0), 0.0);
        assert!(trust(20, 8, 0, 0) < 0.5 * trust(20, 0, 0, 0));
    }

    #[test]
    fn agreement_is_weak_and_capped() {
        // Agreeing on every row of a million is worth at most AGREEMENT_CAP audits.
        let agreeing = trust(0, 0, 1_000_000, 1_000_000);
        assert!(agreeing > 0.25 && agreeing < trust(20, 0, 0, 0), "{agreeing}");
        assert!((agreeing - trust(10, 0, 0, 0)).abs() < 1e-12);
        // Agreement cannot outweigh failed audits.
        assert!(trust(20, 10, 1_000_000, 1_000_000) < 0.25);
        // Disagreeing with the other sources costs.
        assert!(trust(0, 0, 1000, 600) < trust(0, 0, 1000, 970));
    }

    #[test]
    fn counts_out_of_order_and_bad_initial_trust_are_errors() {
        assert!(Evidence { audited_claims: 1, wrong_claims: 2, ..Default::default() }.trust(0.25).is_err());
        assert!(Evidence { corroborated_rows: 1.0, agreeing_rows: 2.0, ..Default::default() }.trust(0.25).is_err());
        assert!(Evidence { corroborated_rows: f64::NAN, ..Default::default() }.trust(0.25).is_err());
        assert!(Evidence { corroborated_rows: 1.0, agreeing_rows: -1.0, ..Default::default() }.trust(0.25).is_err());
        assert!(Evidence::default().trust(f64::NAN).is_err());
        assert!(Evidence::default().trust(1.5).is_err());
    }
}
