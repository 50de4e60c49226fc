//! `resi.consensus_mode`: the trust-weighted vote over categorical values.

use super::codec::{Reader, Writer};
use super::{count_to_i32, share, Weight};
use crate::error::Result;
use hashbrown::HashMap;

/// The result of a categorical vote: the SQL composite `resi.consensus`.
#[derive(Clone, Debug, PartialEq)]
pub struct Consensus {
    /// The value with the greatest summed weight.
    pub value: String,
    /// `support_weight / total_weight`.
    pub confidence: f64,
    /// `supporters / voters`.
    pub agreement: f64,
    pub supporters: i32,
    pub voters: i32,
    pub support_weight: f64,
    pub total_weight: f64,
}

#[derive(Copy, Clone, Debug, Default, PartialEq)]
struct Tally {
    weight: Weight,
    supporters: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) -> Result<()> {
        self.weight = self.weight.checked_add(other.weight)?;
        self.supporters += other.supporters;
        Ok(())
    }
}

/// Up to this many distinct values a group is a linear scan of a small vector (most listings
/// have a handful); beyond it the tallies move to a hash map, so a hostile group of a million
/// distinct values stays linear.
const SMALL: usize = 8;

/// Tallies of one group: distinct value → summed weight and supporter count.
#[derive(Clone, Debug)]
pub struct ModeState {
    few: Vec<(String, Tally)>,
    many: Option<HashMap<String, Tally>>,
}

impl Default for ModeState {
    fn default() -> Self {
        ModeState { few: Vec::with_capacity(2), many: None }
    }
}

impl ModeState {
    /// Count one row. NULL values and non-voting weights (see [`Weight::of_vote`]) are ignored.
    #[inline]
    pub fn add(&mut self, value: Option<&str>, weight: Option<f64>) -> Result<()> {
        let (Some(value), Some(weight)) = (value, Weight::of_vote(weight)?) else {
            return Ok(());
        };
        self.add_tally(value, Tally { weight, supporters: 1 }, || value.to_owned())
    }

    /// Count one vote whose weight is already validated (the listing aggregate checks a
    /// claim's weight once for all its fields).
    #[inline]
    pub(crate) fn add_voting(&mut self, value: &str, weight: Weight) -> Result<()> {
        self.add_tally(value, Tally { weight, supporters: 1 }, || value.to_owned())
    }

    fn add_tally(&mut self, value: &str, tally: Tally, owned: impl FnOnce() -> String) -> Result<()> {
        if let Some(map) = &mut self.many {
            return match map.get_mut(value) {
                Some(t) => t.add(tally),
                None => {
                    map.insert(owned(), tally);
                    Ok(())
                }
            };
        }
        if let Some((_, t)) = self.few.iter_mut().find(|(v, _)| v == value) {
            return t.add(tally);
        }
        if self.few.len() < SMALL {
            self.few.push((owned(), tally));
        } else {
            let mut map: HashMap<String, Tally> = self.few.drain(..).collect();
            map.insert(owned(), tally);
            self.many = Some(map);
        }
        Ok(())
    }

    /// Fold another partial state into this one (the combine step of a parallel plan).
    pub fn merge(&mut self, other: ModeState) -> Result<()> {
        for (i, (value, tally)) in other.into_tallies().enumerate() {
            crate::interrupt::check_every(i);
            self.add_tally(&value.clone(), tally, || value)?;
        }
        Ok(())
    }

    fn tallies(&self) -> Box<dyn Iterator<Item = (&String, &Tally)> + '_> {
        match &self.many {
            Some(map) => Box::new(map.iter()),
            None => Box::new(self.few.iter().map(|(v, t)| (v, t))),
        }
    }

    fn into_tallies(self) -> Box<dyn Iterator<Item = (String, Tally)>> {
        match self.many {
            Some(map) => Box::new(map.into_iter()),
            None => Box::new(self.few.into_iter()),
        }
    }

    /// Number of distinct values seen.
    pub fn distinct_values(&self) -> usize {
        self.many.as_ref().map_or(self.few.len(), |m| m.len())
    }

    /// The vote's outcome, or `None` when no row voted.
    ///
    /// The winner has the greatest summed weight; ties go to more supporters, then to the
    /// smallest value in byte order (C collation). All three are exact, so the result does not
    /// depend on the order in which rows or partial states arrived.
    pub fn result(&self) -> Result<Option<Consensus>> {
        let mut total = Weight::ZERO;
        let mut voters = 0u64;
        let mut best: Option<(&String, &Tally)> = None;
        for (i, (value, tally)) in self.tallies().enumerate() {
            crate::interrupt::check_every(i);
            total = total.checked_add(tally.weight)?;
            voters += tally.supporters;
            let wins = match best {
                None => true,
                Some((best_value, best_tally)) => (tally.weight, tally.supporters)
                    .cmp(&(best_tally.weight, best_tally.supporters))
                    .then_with(|| best_value.as_bytes().cmp(value.as_bytes()))
                    .is_gt(),
            };
            if wins {
                best = Some((value, tally));
            }
        }
        let Some((value, tally)) = best else { return Ok(None) };
        Ok(Some(Consensus {
            value: value.clone(),
            confidence: share(tally.weight, total),
            agreement: tally.supporters as f64 / voters as f64,
            supporters: count_to_i32(tally.supporters, "supporter")?,
            voters: count_to_i32(voters, "voter")?,
            support_weight: tally.weight.to_f64(),
            total_weight: total.to_f64(),
        }))
    }

    const MAGIC: u8 = b'M';

    /// The state's binary form (for `serialfunc`).
    pub fn serialize(&self) -> Vec<u8> {
        let mut w = Writer::new(Self::MAGIC, 8 + self.distinct_values() * 48);
        w.u64(self.distinct_values() as u64);
        for (i, (value, tally)) in self.tallies().enumerate() {
            crate::interrupt::check_every(i);
            w.bytes(value.as_bytes());
            w.u128(tally.weight.units());
            w.u64(tally.supporters);
        }
        w.finish()
    }

    /// Read a state written by [`ModeState::serialize`] (for `deserialfunc`). Malformed bytes are
    /// an error, never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<ModeState> {
        let mut r = Reader::new(bytes, Self::MAGIC, "consensus_mode")?;
        let n = r.count(8 + 16 + 8)?;
        let mut state = ModeState::default();
        for i in 0..n {
            crate::interrupt::check_every(i);
            let value = std::str::from_utf8(r.bytes()?).map_err(|_| r.corrupt("a value is not UTF-8"))?.to_owned();
            let weight = Weight::from_units(r.u128()?);
            let supporters = r.u64()?;
            if weight == Weight::ZERO || supporters == 0 {
                return Err(r.corrupt("a value has no weight or no supporters"));
            }
            state.add_tally(&value.clone(), Tally { weight, supporters }, || value)?;
        }
        r.finish()?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(rows: &[(Option<&str>, Option<f64>)]) -> Option<Consensus> {
        let mut s = ModeState::default();
        for (v, w) in rows {
            s.add(*v, *w).unwrap();
        }
        s.result().unwrap()
    }

    #[test]
    fn heaviest_value_wins_with_shares() {
        let c = vote(&[(Some("a"), Some(0.9)), (Some("b"), Some(0.5)), (Some("b"), Some(0.3)), (Some("a"), Some(0.1))])
            .unwrap();
        assert_eq!(c.value, "a");
        assert_eq!((c.supporters, c.voters), (2, 4));
        assert!((c.confidence - 1.0 / 1.8).abs() < 1e-12);
        assert_eq!(c.agreement, 0.5);
        assert!((c.support_weight - 1.0).abs() < 1e-12);
        assert!((c.total_weight - 1.8).abs() < 1e-12);
    }

    #[test]
    fn ties_go_to_more_supporters_then_smallest_value() {
        let c = vote(&[(Some("x"), Some(1.0)), (Some("y"), Some(0.5)), (Some("y"), Some(0.5))]).unwrap();
        assert_eq!(c.value, "y");
        let c = vote(&[(Some("b"), Some(1.0)), (Some("a"), Some(1.0)), (Some("c"), Some(1.0))]).unwrap();
        assert_eq!(c.value, "a");
        assert_eq!(c.confidence, 1.0 / 3.0);
    }

    #[test]
    fn nulls_nan_and_non_positive_weights_are_ignored() {
        assert_eq!(vote(&[]), None);
        assert_eq!(
            vote(&[
                (None, Some(1.0)),
                (Some("a"), None),
                (Some("a"), Some(f64::NAN)),
                (Some("a"), Some(0.0)),
                (Some("a"), Some(-2.0)),
                (Some("a"), Some(f64::NEG_INFINITY))
            ]),
            None
        );
        let c = vote(&[(None, Some(5.0)), (Some("a"), Some(1.0)), (Some("b"), Some(f64::NAN))]).unwrap();
        assert_eq!((c.value.as_str(), c.voters, c.confidence), ("a", 1, 1.0));
    }

    #[test]
    fn infinite_weight_is_an_error() {
        let mut s = ModeState::default();
        assert_eq!(s.add(Some("a"), Some(f64::INFINITY)).unwrap_err().kind, crate::ErrorKind::OutOfRange);
    }

    #[test]
    fn hostile_strings_are_plain_values() {
        let evil = ["'); DROP TABLE resi.listings; --", "", " ", "\u{0}", "é", "e\u{301}", "🏠", &"x".repeat(100_000)];
        let mut s = ModeState::default();
        for (i, v) in evil.iter().enumerate() {
            s.add(Some(v), Some(1.0 + i as f64)).unwrap();
        }
        let c = s.result().unwrap().unwrap();
        assert_eq!(c.value, "x".repeat(100_000));
        let back = ModeState::deserialize(&s.serialize()).unwrap();
        assert_eq!(back.result().unwrap().unwrap(), c);
    }

    /// Every split of the input into partial states, merged in any order, gives the same answer
    /// as one pass, including exact ties, across the small/large representation switch.
    #[test]
    fn partial_states_merge_to_the_serial_answer() {
        let values: Vec<String> = (0..40).map(|i| format!("v{}", i % 13)).collect();
        let weights: Vec<f64> = (0..40).map(|i| [0.1, 0.2, 0.3, 0.7, 1.0 / 3.0][i % 5]).collect();
        let mut serial = ModeState::default();
        for (v, w) in values.iter().zip(&weights) {
            serial.add(Some(v), Some(*w)).unwrap();
        }
        let expected = serial.result().unwrap();
        for parts in [2usize, 3, 7] {
            let mut partials: Vec<ModeState> = (0..parts).map(|_| ModeState::default()).collect();
            for (i, (v, w)) in values.iter().zip(&weights).enumerate().rev() {
                partials[(i * 7) % parts].add(Some(v), Some(*w)).unwrap();
            }
            let mut merged = ModeState::default();
            for p in partials.into_iter().rev() {
                merged.merge(ModeState::deserialize(&p.serialize()).unwrap()).unwrap();
            }
            assert_eq!(merged.result().unwrap(), expected, "{parts} parts");
        }
    }

    #[test]
    fn corrupt_serialized_states_are_errors() {
        let mut s = ModeState::default();
        s.add(Some("abc"), Some(1.0)).unwrap();
        let good = s.serialize();
        for cut in 0..good.len() {
            assert!(ModeState::deserialize(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(ModeState::deserialize(&trailing).is_err());
        let mut huge_count = good.clone();
        huge_count[2..10].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(ModeState::deserialize(&huge_count).is_err());
        let mut bad_utf8 = good.clone();
        bad_utf8[18] = 0xff;
        assert!(ModeState::deserialize(&bad_utf8).is_err());
        assert!(ModeState::deserialize(b"D\x01").is_err());
        assert!(ModeState::deserialize(b"M\x02").is_err());
    }
}
