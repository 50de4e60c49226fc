//! Transition states of the trust-weighted consensus aggregates.
//!
//! The aggregates promise that their answer never depends on row order or on how a parallel plan
//! splits the input. Floating-point sums would break that promise in the last bits (and then in
//! tie-breaks), so weights are summed exactly: every weight is rounded once, on input, to a
//! multiple of 2^-52 ([`Weight`]) and the sums are 128-bit integers.

mod codec;
pub mod listing;
pub mod median;
pub mod mode;
pub mod sources;
mod value_order;

pub use listing::{Claim, ListingConsensus, ListingState};
pub use median::{MedianState, NumericConsensus};
pub use mode::{Consensus, ModeState};
pub use sources::{SourceClaim, SourceClaims, SourceVotes};

use crate::error::{Error, Result};

/// Fraction bits of a [`Weight`]: weights are multiples of 2^-52 (about 2.2e-16, the
/// precision of a double near 1).
pub const WEIGHT_FRACTION_BITS: i32 = 52;

/// The largest accepted weight. Larger (or infinite) weights are an error, not silently clipped.
pub const MAX_WEIGHT: f64 = 1e15;

/// A weight above [`MAX_WEIGHT`] (+Infinity among them): [`Weight::of_vote`]'s error.
pub(crate) struct OutOfRange;

/// A vote weight in exact fixed point, so that sums are associative and commutative.
///
/// The u128 is kept as two words (high first, so the derived order is the numeric one):
/// aligned to 8 bytes, not u128's 16, since a state holds one per distinct value and the
/// padding would push a small group's state past a 256-byte allocation.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight {
    high: u64,
    low: u64,
}

impl Weight {
    pub const ZERO: Weight = Weight { high: 0, low: 0 };

    /// The weight of one vote, or `None` when the row does not vote.
    ///
    /// NULL, NaN, zero, negative (including -Infinity) and weights below 2^-53 (which round to
    /// zero) do not vote. Weights above [`MAX_WEIGHT`], +Infinity among them, are an error
    /// ([`crate::ErrorKind::OutOfRange`]).
    #[inline]
    pub fn of_vote(weight: Option<f64>) -> Result<Option<Weight>> {
        Weight::vote(weight).map_err(|OutOfRange| {
            let w = weight.unwrap_or(f64::NAN);
            Error::out_of_range(format!(
                "consensus weight {w} is out of range (weights must be at most {MAX_WEIGHT:e})"
            ))
        })
    }

    /// [`Weight::of_vote`] without its error's message: it builds nothing and raises nothing,
    /// for the transition functions' rows counted outside pgrx's guard.
    #[inline(always)]
    pub(crate) fn vote(weight: Option<f64>) -> std::result::Result<Option<Weight>, OutOfRange> {
        let Some(w) = weight else { return Ok(None) };
        // NaN compares as neither greater nor less: it is caught here too.
        if w.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Ok(None);
        }
        if w > MAX_WEIGHT {
            return Err(OutOfRange);
        }
        let units = units_of(w);
        Ok((units > 0).then_some(Weight::from_units(units)))
    }

    /// The raw fixed-point units (multiples of 2^-52).
    #[inline]
    pub fn units(self) -> u128 {
        (self.high as u128) << 64 | self.low as u128
    }

    /// Rebuild a weight from its units, as read back from a serialised state.
    #[inline]
    pub fn from_units(units: u128) -> Weight {
        Weight { high: (units >> 64) as u64, low: units as u64 }
    }

    /// The weight as a float (correctly rounded from the exact sum). A sum below 2^64 units
    /// (4096) converts from 64 bits, to the same float as from 128 bits (both round the same
    /// integer once) without the software 128-bit conversion.
    #[inline]
    pub fn to_f64(self) -> f64 {
        let scale = (1u128 << WEIGHT_FRACTION_BITS) as f64;
        if self.high == 0 {
            self.low as f64 / scale
        } else {
            self.units() as f64 / scale
        }
    }

    #[inline]
    pub fn checked_add(self, other: Weight) -> Result<Weight> {
        self.sum(other).ok_or_else(|| Error::out_of_range("sum of consensus weights is out of range (more than 2^76)"))
    }

    /// `self + other`, or `None` when the sum is out of range ([`Weight::checked_add`]'s error,
    /// without building it).
    #[inline(always)]
    pub(crate) fn sum(self, other: Weight) -> Option<Weight> {
        self.units().checked_add(other.units()).map(Weight::from_units)
    }
}

/// `round(w × 2^52)` (halves away from zero) for a finite `w` in (0, MAX_WEIGHT], in integer
/// arithmetic on `w`'s bits: `w = m × 2^e` exactly, so the result is `m` shifted by `e + 52`,
/// rounded when that shift is to the right. The same number as the float expression
/// `(w * 2^52).round() as u128` (both are exact; a test compares them), without libm's `round`
/// and a float-to-u128 conversion on every row. Below 2^102, well inside u128.
#[inline(always)]
pub(crate) fn units_of(w: f64) -> u128 {
    let bits = w.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // Subnormals have no implicit leading bit and the smallest exponent.
    let (m, e) = if biased == 0 { (fraction, -1074) } else { (fraction | 1u64 << 52, biased - 1075) };
    let shift = e + WEIGHT_FRACTION_BITS;
    if shift >= 0 {
        (m as u128) << shift
    } else if shift > -64 {
        let s = -shift as u32;
        // m < 2^53 and the half below 2^63: no overflow.
        ((m + (1u64 << (s - 1))) >> s) as u128
    } else {
        0
    }
}

/// `part / whole` as a share in [0, 1]; 0 when `whole` is zero.
#[inline]
fn share(part: Weight, whole: Weight) -> f64 {
    if whole == Weight::ZERO {
        0.0
    } else {
        part.to_f64() / whole.to_f64()
    }
}

/// A count as SQL `integer`; more than 2^31-1 voters in one group is reported, not wrapped.
#[inline]
fn count_to_i32(count: u64, what: &str) -> Result<i32> {
    i32::try_from(count).map_err(|_| Error::out_of_range(format!("{what} count {count} does not fit in an integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_that_do_not_vote() {
        for w in [None, Some(f64::NAN), Some(0.0), Some(-0.0), Some(-1.0), Some(f64::NEG_INFINITY), Some(1e-17)] {
            assert_eq!(Weight::of_vote(w).unwrap(), None, "{w:?}");
        }
    }

    #[test]
    fn weights_out_of_range_are_errors() {
        for w in [f64::INFINITY, 1e15 * 1.0000001, f64::MAX] {
            let err = Weight::of_vote(Some(w)).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::OutOfRange);
        }
        assert!(Weight::of_vote(Some(MAX_WEIGHT)).unwrap().is_some());
    }

    #[test]
    fn exact_sums_do_not_depend_on_order() {
        let ws = [0.1, 0.2, 0.3, 1e-9, 123456.789, 0.7];
        let sum = |order: &[usize]| {
            order
                .iter()
                .fold(Weight::ZERO, |acc, &i| acc.checked_add(Weight::of_vote(Some(ws[i])).unwrap().unwrap()).unwrap())
        };
        assert_eq!(sum(&[0, 1, 2, 3, 4, 5]), sum(&[5, 4, 3, 2, 1, 0]));
        assert_eq!(sum(&[2, 0, 4, 1, 5, 3]), sum(&[3, 5, 1, 4, 0, 2]));
        // 0.1 + 0.2 ties with 0.3 within the 2^-52 grid.
        let a = Weight::of_vote(Some(0.1))
            .unwrap()
            .unwrap()
            .checked_add(Weight::of_vote(Some(0.2)).unwrap().unwrap())
            .unwrap();
        let b = Weight::of_vote(Some(0.3)).unwrap().unwrap();
        assert!(a.units().abs_diff(b.units()) <= 1);
    }

    #[test]
    fn integer_units_equal_the_float_rounding() {
        let float_units = |w: f64| (w * (1u128 << WEIGHT_FRACTION_BITS) as f64).round() as u128;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for _ in 0..200_000 {
            // Random bit patterns over the whole positive range, and values near the grid.
            let w = f64::from_bits(next() >> 1);
            if !(w > 0.0 && w <= MAX_WEIGHT) {
                continue;
            }
            assert_eq!(units_of(w), float_units(w), "{w:e}");
            checked += 1;
        }
        assert!(checked > 10_000, "too few samples in range: {checked}");
        let tiny = f64::from_bits(1);
        let half = 2f64.powi(-53);
        for w in [tiny, 1e-300, 1e-17, half, half * (1.0 + f64::EPSILON), half * 1.5, 2f64.powi(-52), 0.1, 1.0, 1e15]
            .into_iter()
            .chain((1..2000).map(|k| k as f64 * 2f64.powi(-54)))
            .chain((1..2000).map(|k| k as f64 / 1024.0))
        {
            assert_eq!(units_of(w), float_units(w), "{w:e}");
        }
    }

    /// The extension allocates a state with a 24-byte callback in front (resi_pg's
    /// `place_in_context`, for the listing aggregate's state; mode and median states without
    /// it); a small group's state then fits PostgreSQL's 256-byte chunk, not the next size up
    /// (twice the memory per group of a hash aggregate).
    #[test]
    fn small_group_states_fit_a_256_byte_chunk() {
        assert!(std::mem::size_of::<ModeState>() + 24 <= 256, "{}", std::mem::size_of::<ModeState>());
        assert!(std::mem::size_of::<MedianState>() + 24 <= 256, "{}", std::mem::size_of::<MedianState>());
        assert!(std::mem::align_of::<ModeState>() <= 8 && std::mem::align_of::<ListingState>() <= 8);
    }

    #[test]
    fn to_f64_from_64_bits_is_the_128_bit_conversion() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let units = (seed >> (seed % 64)) as u128;
            let scale = (1u128 << WEIGHT_FRACTION_BITS) as f64;
            assert_eq!(Weight::from_units(units).to_f64().to_bits(), (units as f64 / scale).to_bits(), "{units}");
        }
    }

    #[test]
    fn to_f64_round_trips_representable_weights() {
        for w in [1.0, 0.5, 0.25, 1000.0, 0.75] {
            assert_eq!(Weight::of_vote(Some(w)).unwrap().unwrap().to_f64(), w);
        }
    }
}
