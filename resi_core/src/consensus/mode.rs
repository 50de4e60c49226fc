//! `resi.consensus_mode`: the trust-weighted vote over categorical values.

use super::codec::{Reader, Writer};
use super::{count_to_i32, share, Weight};
use crate::error::Result;
use hashbrown::{DefaultHashBuilder, HashTable};
use smallvec::SmallVec;
use std::hash::BuildHasher;

/// The result of a categorical vote (the SQL composite `resi.consensus`), its value a `V`: a
/// `String` ([`Consensus`]) or bytes borrowed from the state ([`Winner`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Vote<V> {
    /// The value with the greatest summed weight.
    pub value: V,
    /// `support_weight / total_weight`.
    pub confidence: f64,
    /// `supporters / voters`.
    pub agreement: f64,
    pub supporters: i32,
    pub voters: i32,
    pub support_weight: f64,
    pub total_weight: f64,
}

/// A vote's result with its value as a string.
pub type Consensus = Vote<String>;

/// A vote's result borrowing its value from the state (see [`ModeState::winner`]).
pub type Winner<'a> = Vote<&'a [u8]>;

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

/// One distinct value. Values are appended to their [`Tallies`]' buffer in the order of their
/// entries, so entry `i`'s bytes run from its `start` to the next entry's (see [`value_at`]):
/// 32 bytes an entry, which keeps a whole [`ModeState`] in a 256-byte allocation.
#[derive(Copy, Clone, Debug)]
struct Entry {
    tally: Tally,
    start: usize,
}

/// The bytes of entry `i` (of `entries`, whose values are in `bytes`).
#[inline(always)]
fn value_at<'a>(entries: &[Entry], bytes: &'a [u8], i: usize) -> &'a [u8] {
    let end = entries.get(i + 1).map_or(bytes.len(), |next| next.start);
    &bytes[entries[i].start..end]
}

/// Up to this many distinct values a group is a linear scan of its entries (most listings
/// have a handful); beyond it a hash index over the entries is built, so a hostile group of a
/// million distinct values stays linear.
const SMALL: usize = 8;

/// Tallies of one group: distinct value → summed weight and supporter count.
///
/// The values' bytes live in one buffer, and a group of up to `ENTRIES` distinct values of
/// `BYTES` bytes in all lives inline, without a heap allocation: the aggregate creates one state
/// per group, and the allocations were a fifth of its time. The inline room is paid by every
/// state, so the two users size it apart: [`ModeState`] and [`FieldTallies`].
#[derive(Clone, Debug, Default)]
pub struct Tallies<const ENTRIES: usize, const BYTES: usize> {
    entries: SmallVec<[Entry; ENTRIES]>,
    bytes: SmallVec<[u8; BYTES]>,
    /// Entry indexes by value, once the group has more than [`SMALL`] distinct values.
    index: Option<Box<(HashTable<usize>, DefaultHashBuilder)>>,
}

/// The state of `resi.consensus_mode`: a group of up to 4 distinct values of 48 bytes in all
/// (a category field over a listing's claims) lives inline.
pub type ModeState = Tallies<4, 48>;

/// One categorical field of [`crate::consensus::ListingState`], which holds 9 of them: smaller
/// inline room (2 values, 24 bytes; most fields of a listing have one or two values).
pub type FieldTallies = Tallies<2, 24>;

impl<const ENTRIES: usize, const BYTES: usize> Tallies<ENTRIES, BYTES> {
    /// Count one row. NULL values and non-voting weights (see [`Weight::of_vote`]) are ignored.
    #[inline]
    pub fn add(&mut self, value: Option<&str>, weight: Option<f64>) -> Result<()> {
        self.add_bytes(value.map(str::as_bytes), weight)
    }

    /// [`ModeState::add`] for a value as bytes (a text datum in the database's encoding):
    /// values are compared and ordered as bytes.
    #[inline]
    pub fn add_bytes(&mut self, value: Option<&[u8]>, weight: Option<f64>) -> Result<()> {
        let (Some(value), Some(weight)) = (value, Weight::of_vote(weight)?) else {
            return Ok(());
        };
        self.add_tally(value, Tally { weight, supporters: 1 })
    }

    /// Count one vote whose weight is already validated (the listing aggregate checks a
    /// claim's weight once for all its fields).
    #[inline]
    pub(crate) fn add_voting(&mut self, value: &str, weight: Weight) -> Result<()> {
        self.add_tally(value.as_bytes(), Tally { weight, supporters: 1 })
    }

    fn value(&self, i: usize) -> &[u8] {
        value_at(&self.entries, &self.bytes, i)
    }

    #[inline]
    fn add_tally(&mut self, value: &[u8], tally: Tally) -> Result<()> {
        let found = match self.index.as_deref() {
            Some((index, hasher)) => index.find(hasher.hash_one(value), |&i| self.value(i) == value).copied(),
            None => (0..self.entries.len()).find(|&i| self.value(i) == value),
        };
        if let Some(i) = found {
            return self.entries[i].tally.add(tally);
        }
        let entry = Entry { tally, start: self.bytes.len() };
        self.bytes.extend_from_slice(value);
        self.entries.push(entry);
        let i = self.entries.len() - 1;
        match self.index.as_deref_mut() {
            Some((index, hasher)) => {
                let (entries, bytes) = (&self.entries, &self.bytes);
                index.insert_unique(hasher.hash_one(value), i, |&j| hasher.hash_one(value_at(entries, bytes, j)));
            }
            None if self.entries.len() > SMALL => self.build_index(),
            None => {}
        }
        Ok(())
    }

    fn build_index(&mut self) {
        let hasher = DefaultHashBuilder::default();
        let mut index = HashTable::with_capacity(self.entries.len() * 2);
        for i in 0..self.entries.len() {
            index.insert_unique(hasher.hash_one(self.value(i)), i, |&j: &usize| hasher.hash_one(self.value(j)));
        }
        self.index = Some(Box::new((index, hasher)));
    }

    /// Fold another partial state into this one (the combine step of a parallel plan).
    pub fn merge(&mut self, other: Self) -> Result<()> {
        for (i, entry) in other.entries.iter().enumerate() {
            crate::interrupt::check_every(i);
            self.add_tally(other.value(i), entry.tally)?;
        }
        Ok(())
    }

    /// Number of distinct values seen.
    pub fn distinct_values(&self) -> usize {
        self.entries.len()
    }

    /// The vote's outcome, or `None` when no row voted.
    ///
    /// The winner has the greatest summed weight; ties go to more supporters, then to the
    /// smallest value in byte order (C collation). All three are exact, so the result does not
    /// depend on the order in which rows or partial states arrived.
    pub fn winner(&self) -> Result<Option<Winner<'_>>> {
        let mut total = Weight::ZERO;
        let mut voters = 0u64;
        let mut best: Option<usize> = None;
        for (i, entry) in self.entries.iter().enumerate() {
            crate::interrupt::check_every(i);
            total = total.checked_add(entry.tally.weight)?;
            voters += entry.tally.supporters;
            let wins = match best {
                None => true,
                Some(b) => {
                    let b_tally = self.entries[b].tally;
                    (entry.tally.weight, entry.tally.supporters)
                        .cmp(&(b_tally.weight, b_tally.supporters))
                        .then_with(|| self.value(b).cmp(self.value(i)))
                        .is_gt()
                }
            };
            if wins {
                best = Some(i);
            }
        }
        let Some(b) = best else { return Ok(None) };
        let best = &self.entries[b];
        Ok(Some(Winner {
            value: self.value(b),
            confidence: share(best.tally.weight, total),
            agreement: best.tally.supporters as f64 / voters as f64,
            supporters: count_to_i32(best.tally.supporters, "supporter")?,
            voters: count_to_i32(voters, "voter")?,
            support_weight: best.tally.weight.to_f64(),
            total_weight: total.to_f64(),
        }))
    }

    /// [`ModeState::winner`] with its value as a string (values added as `&str` come back
    /// unchanged; bytes that are not UTF-8 are replaced by U+FFFD).
    pub fn result(&self) -> Result<Option<Consensus>> {
        Ok(self.winner()?.map(|w| Vote {
            value: String::from_utf8_lossy(w.value).into_owned(),
            confidence: w.confidence,
            agreement: w.agreement,
            supporters: w.supporters,
            voters: w.voters,
            support_weight: w.support_weight,
            total_weight: w.total_weight,
        }))
    }

    const MAGIC: u8 = b'M';

    /// The state's binary form (for `serialfunc`).
    pub fn serialize(&self) -> Vec<u8> {
        let mut w = Writer::new(Self::MAGIC, 8 + self.distinct_values() * 48);
        w.u64(self.distinct_values() as u64);
        for (i, entry) in self.entries.iter().enumerate() {
            crate::interrupt::check_every(i);
            w.bytes(self.value(i));
            w.u128(entry.tally.weight.units());
            w.u64(entry.tally.supporters);
        }
        w.finish()
    }

    /// Read a state written by [`ModeState::serialize`] (for `deserialfunc`). Malformed bytes are
    /// an error, never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        let mut state = Self::default();
        state.merge_serialized(bytes)?;
        Ok(state)
    }

    /// [`ModeState::merge`] of a state written by [`ModeState::serialize`], read straight from
    /// its bytes (the combine step of a parallel plan, without building the partial state).
    /// Malformed bytes are an error, never a panic; `self` may then hold part of them, which
    /// does not matter because the error ends the query.
    pub fn merge_serialized(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(bytes, Self::MAGIC, "consensus_mode")?;
        let n = r.count(8 + 16 + 8)?;
        for i in 0..n {
            crate::interrupt::check_every(i);
            let value = r.bytes()?;
            let weight = Weight::from_units(r.u128()?);
            let supporters = r.u64()?;
            if weight == Weight::ZERO || supporters == 0 {
                return Err(r.corrupt("a value has no weight or no supporters"));
            }
            self.add_tally(value, Tally { weight, supporters })?;
        }
        r.finish()
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
            // As the combine step reads them: deserialized and merged, or merged from the bytes.
            let mut merged = ModeState::default();
            let mut merged_from_bytes = ModeState::default();
            for p in partials.into_iter().rev() {
                merged.merge(ModeState::deserialize(&p.serialize()).unwrap()).unwrap();
                merged_from_bytes.merge_serialized(&p.serialize()).unwrap();
            }
            assert_eq!(merged.result().unwrap(), expected, "{parts} parts");
            assert_eq!(merged_from_bytes.result().unwrap(), expected, "{parts} parts, from bytes");
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
        let mut zero_weight = good.clone();
        let weight_at = good.len() - 24;
        zero_weight[weight_at..weight_at + 16].copy_from_slice(&0u128.to_le_bytes());
        assert!(ModeState::deserialize(&zero_weight).is_err());
        assert!(ModeState::deserialize(b"D\x01").is_err());
        assert!(ModeState::deserialize(b"M\x02").is_err());
    }
}
