//! How a miner's trust moves after a submission or a validator's spot-check.

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
