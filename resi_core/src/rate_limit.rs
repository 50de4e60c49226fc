//! Daily submission limits by trust tier.
//!
//! The tiers are a list of `min_trust:limit` pairs, e.g. the default
//! `0.8:10000, 0.6:5000, 0.4:1000, 0:100`: a miner whose trust is at least `min_trust` may make
//! `limit` submissions (uploaded objects) per UTC day, taking the highest tier it reaches. The
//! lowest tier is also the floor: trust below every threshold (or NaN) gets the lowest tier's limit.

use crate::error::{Error, Result};
use std::fmt;

/// The tiers of the design document.
pub const DEFAULT_TIERS: &str = "0.8:10000, 0.6:5000, 0.4:1000, 0:100";

/// Parsed rate-limit tiers, highest threshold first.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitTiers {
    tiers: Vec<(f64, i32)>,
}

impl RateLimitTiers {
    /// Parse `min_trust:limit` pairs separated by commas (whitespace allowed, any order).
    pub fn parse(text: &str) -> Result<RateLimitTiers> {
        let bad = |why: String| {
            Error::invalid_parameter(format!(
                "invalid rate limit tiers {text:?}: {why} (expected comma-separated min_trust:limit pairs, e.g. {DEFAULT_TIERS:?})"
            ))
        };
        let mut tiers = Vec::new();
        for pair in text.split(',') {
            let pair = pair.trim();
            let (threshold, limit) = pair.split_once(':').ok_or_else(|| bad(format!("{pair:?} has no ':'")))?;
            let threshold: f64 = threshold
                .trim()
                .parse()
                .ok()
                .filter(|t: &f64| t.is_finite())
                .ok_or_else(|| bad(format!("{:?} is not a finite trust threshold", threshold.trim())))?;
            let limit: i32 = limit
                .trim()
                .parse()
                .ok()
                .filter(|l| *l >= 0)
                .ok_or_else(|| bad(format!("{:?} is not a limit between 0 and 2147483647", limit.trim())))?;
            tiers.push((threshold + 0.0, limit));
        }
        tiers.sort_by(|a, b| b.0.total_cmp(&a.0));
        if tiers.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(bad("a threshold appears twice".into()));
        }
        Ok(RateLimitTiers { tiers })
    }

    /// Submissions per UTC day for a miner of this trust.
    pub fn limit_for(&self, trust: f64) -> i32 {
        self.tiers
            .iter()
            .find(|(threshold, _)| trust >= *threshold)
            .or(self.tiers.last())
            .map_or(0, |&(_, limit)| limit)
    }
}

impl Default for RateLimitTiers {
    fn default() -> Self {
        RateLimitTiers::parse(DEFAULT_TIERS).expect("the default tiers parse")
    }
}

impl fmt::Display for RateLimitTiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (threshold, limit)) in self.tiers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{threshold}:{limit}")?;
        }
        Ok(())
    }
}

/// Whether a miner who already made `used` submissions on a day may make `more`.
/// Never overflows: `used + more` is computed in 64 bits.
pub fn within_limit(used: i64, more: i32, limit: i32) -> bool {
    used.saturating_add(i64::from(more)) <= i64::from(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tiers() {
        let t = RateLimitTiers::default();
        let cases = [
            (1.0, 10000),
            (0.8, 10000),
            (0.79999, 5000),
            (0.6, 5000),
            (0.5, 1000),
            (0.4, 1000),
            (0.39, 100),
            (0.0, 100),
            (-5.0, 100),
            (f64::NAN, 100),
            (f64::INFINITY, 10000),
            (f64::NEG_INFINITY, 100),
        ];
        for (trust, limit) in cases {
            assert_eq!(t.limit_for(trust), limit, "{trust}");
        }
        assert_eq!(t.to_string(), "0.8:10000, 0.6:5000, 0.4:1000, 0:100");
    }

    #[test]
    fn custom_tiers_any_order() {
        let t = RateLimitTiers::parse(" 0.5 : 20 ,0.9:50").unwrap();
        assert_eq!((t.limit_for(0.95), t.limit_for(0.7), t.limit_for(0.1)), (50, 20, 20));
        assert_eq!(RateLimitTiers::parse("0:0").unwrap().limit_for(1.0), 0);
    }

    #[test]
    fn invalid_tiers() {
        for text in
            ["", "0.8", "x:1", "0.5:-1", "0.5:1.5", "NaN:5", "inf:5", "0.5:1,0.5:2", "0.5:99999999999", "0.8:1;0.2:3"]
        {
            let err = RateLimitTiers::parse(text).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidParameter, "{text}");
        }
    }

    #[test]
    fn limit_arithmetic_does_not_overflow() {
        assert!(within_limit(99, 1, 100));
        assert!(!within_limit(100, 1, 100));
        assert!(!within_limit(i64::MAX, i32::MAX, 100));
        assert!(within_limit(0, 0, 0));
    }
}
