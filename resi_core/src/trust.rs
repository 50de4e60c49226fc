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
    fn nan_is_an_error() {
        assert!(next_trust(f64::NAN, 0.5, false, false).is_err());
        assert!(next_trust(0.5, f64::NAN, false, true).is_err());
    }
}
