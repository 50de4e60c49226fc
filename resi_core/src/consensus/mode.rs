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
/// 32 bytes an entry.
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
/// `BYTES` bytes in all lives inline, without a heap allocation. The inline room is paid by
/// every state: [`FieldTallies`] sizes it for a listing's field; [`ModeState`] keeps a small
/// group in a compact form of its own and only a larger one here.
#[derive(Clone, Debug, Default)]
pub struct Tallies<const ENTRIES: usize, const BYTES: usize> {
    entries: SmallVec<[Entry; ENTRIES]>,
    bytes: SmallVec<[u8; BYTES]>,
    /// Entry indexes by value, once the group has more than [`SMALL`] distinct values.
    index: Option<Box<(HashTable<usize>, DefaultHashBuilder)>>,
}

/// One categorical field of [`crate::consensus::ListingState`], which holds 9 of them: smaller
/// inline room (2 values, 24 bytes; most fields of a listing have one or two values).
pub type FieldTallies = Tallies<2, 24>;

/// The tallies of a [`ModeState`] that outgrew its compact form: all on the heap.
type Spilled = Tallies<0, 0>;

impl<const ENTRIES: usize, const BYTES: usize> Tallies<ENTRIES, BYTES> {
    /// Count one row. NULL values and non-voting weights (see [`Weight::of_vote`]) are ignored.
    #[inline]
    pub fn add(&mut self, value: Option<&str>, weight: Option<f64>) -> Result<()> {
        self.add_bytes(value.map(str::as_bytes), weight)
    }

    /// [`Tallies::add`] for a value as bytes (a text datum in the database's encoding):
    /// values are compared and ordered as bytes.
    #[inline]
    pub fn add_bytes(&mut self, value: Option<&[u8]>, weight: Option<f64>) -> Result<()> {
        match vote(value, weight)? {
            Some((value, tally)) => self.add_tally(value, tally),
            None => Ok(()),
        }
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

    /// Each distinct value with its tally, in the order the values first came.
    fn entries(&self) -> impl Iterator<Item = (&[u8], Tally)> {
        self.entries.iter().enumerate().map(|(i, entry)| (self.value(i), entry.tally))
    }

    /// The entry of `value`, if the value is counted.
    #[inline]
    fn find(&self, value: &[u8]) -> Option<usize> {
        match self.index.as_deref() {
            Some((index, hasher)) => index.find(hasher.hash_one(value), |&i| self.value(i) == value).copied(),
            None => (0..self.entries.len()).find(|&i| self.value(i) == value),
        }
    }

    #[inline]
    fn add_tally(&mut self, value: &[u8], tally: Tally) -> Result<()> {
        if let Some(i) = self.find(value) {
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

    /// Add one vote of `weight` to `value`'s tally if the value is counted already and the sum
    /// fits: `false` (nothing changed) otherwise. Allocates nothing, raises nothing.
    #[inline]
    fn add_to_counted(&mut self, value: &[u8], weight: Weight) -> bool {
        let Some(i) = self.find(value) else { return false };
        let tally = &mut self.entries[i].tally;
        match tally.weight.sum(weight) {
            Some(sum) => {
                tally.weight = sum;
                tally.supporters += 1;
                true
            }
            None => false,
        }
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
        merge_entries(other.entries(), |value, tally| self.add_tally(value, tally))
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
        winner_of(self.entries())
    }

    /// [`Tallies::winner`] with its value as a string (values added as `&str` come back
    /// unchanged; bytes that are not UTF-8 are replaced by U+FFFD).
    pub fn result(&self) -> Result<Option<Consensus>> {
        Ok(self.winner()?.map(Winner::into_consensus))
    }

    /// The state's binary form (for `serialfunc`).
    pub fn serialize(&self) -> Vec<u8> {
        serialize_entries(self.distinct_values(), self.entries())
    }

    /// Read a state written by [`Tallies::serialize`] (for `deserialfunc`). Malformed bytes are
    /// an error, never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        let mut state = Self::default();
        state.merge_serialized(bytes)?;
        Ok(state)
    }

    /// [`Tallies::merge`] of a state written by [`Tallies::serialize`], read straight from its
    /// bytes (the combine step of a parallel plan, without building the partial state).
    /// Malformed bytes are an error, never a panic; `self` may then hold part of them, which
    /// does not matter because the error ends the query.
    pub fn merge_serialized(&mut self, bytes: &[u8]) -> Result<()> {
        read_serialized(bytes, |value, tally| self.add_tally(value, tally))
    }
}

/// Distinct values a [`ModeState`] holds in its compact form.
const COMPACT_VALUES: usize = 6;

/// Bytes of those values, in all, in the compact form: what fills the state to 128 bytes.
const COMPACT_BYTES: usize = 53;

/// The state of `resi.consensus_mode`.
///
/// The aggregate creates one per group, and a row of a many-group query finds its group's
/// state cold in memory: what a row costs is mostly the cache lines it touches. So a group of
/// up to 6 distinct values of 53 bytes in all (a category over a listing's claims), each
/// summed weight below 2^64 units (4096) and supported by fewer than 65,536 rows, is kept in
/// 128 bytes with no pointer to follow (two or three cache lines). A group that outgrows it moves, once and for good, to [`Tallies`] on
/// the heap ([`ModeState::owns_heap`]); the answer and the binary form do not depend on which
/// form holds the values.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct ModeState {
    /// The tallies, once the group outgrew the compact form below (which is then unused).
    spilled: Option<Box<Spilled>>,
    /// Number of values in the compact form.
    len: u8,
    /// Where each value ends in `bytes` (value `i` starts where value `i - 1` ends).
    ends: [u8; COMPACT_VALUES],
    /// The values, in the order they first came.
    bytes: [u8; COMPACT_BYTES],
    /// Each value's supporters.
    supporters: [u16; COMPACT_VALUES],
    /// Each value's summed weight in units of 2^-52 ([`Weight::units`]).
    weights: [u64; COMPACT_VALUES],
}

impl Default for ModeState {
    fn default() -> Self {
        ModeState {
            spilled: None,
            len: 0,
            ends: [0; COMPACT_VALUES],
            bytes: [0; COMPACT_BYTES],
            supporters: [0; COMPACT_VALUES],
            weights: [0; COMPACT_VALUES],
        }
    }
}

impl ModeState {
    /// Count one row. NULL values and non-voting weights (see [`Weight::of_vote`]) are ignored.
    #[inline]
    pub fn add(&mut self, value: Option<&str>, weight: Option<f64>) -> Result<()> {
        self.add_bytes(value.map(str::as_bytes), weight)
    }

    /// [`ModeState::add`] for a value as bytes (a text datum in the database's encoding):
    /// values are compared and ordered as bytes.
    #[inline]
    pub fn add_bytes(&mut self, value: Option<&[u8]>, weight: Option<f64>) -> Result<()> {
        match vote(value, weight)? {
            Some((value, tally)) => self.add_tally(value, tally),
            None => Ok(()),
        }
    }

    /// [`ModeState::add_bytes`] of a row that needs no memory the state does not hold: a row
    /// that is ignored (a NULL value, a non-voting weight), adds its vote to the compact form,
    /// or adds it to a value a heap state already counts. Any other row (a heap state's new
    /// value, one that moves the state to the heap, one that raises an error) is left to
    /// [`ModeState::add_bytes`]: `false`, and nothing changed.
    ///
    /// It calls nothing that can fail, panic or allocate, so that the extension can count most
    /// rows, of small groups and of large ones over values they have seen, without the guard
    /// it sets up around calls that can raise an error.
    #[inline(always)]
    pub fn add_in_place(&mut self, value: Option<&[u8]>, weight: Option<f64>) -> bool {
        // As vote(): a weight out of range is an error whatever the value; a NULL value or a
        // weight that does not vote is ignored.
        let Ok(weight) = Weight::vote(weight) else { return false };
        let (Some(value), Some(weight)) = (value, weight) else { return true };
        if let Some(spilled) = self.spilled.as_deref_mut() {
            return spilled.add_to_counted(value, weight);
        }
        let Ok(units) = u64::try_from(weight.units()) else { return false };
        let mut start = 0;
        for i in 0..self.len as usize {
            let end = self.ends[i] as usize;
            if same_bytes(&self.bytes[start..end], value) {
                return match (self.weights[i].checked_add(units), self.supporters[i].checked_add(1)) {
                    (Some(weight), Some(count)) => {
                        self.weights[i] = weight;
                        self.supporters[i] = count;
                        true
                    }
                    _ => false,
                };
            }
            start = end;
        }
        let (i, end) = (self.len as usize, start + value.len());
        if i >= COMPACT_VALUES || end > COMPACT_BYTES {
            return false;
        }
        self.bytes[start..end].copy_from_slice(value);
        self.ends[i] = end as u8;
        self.weights[i] = units;
        self.supporters[i] = 1;
        self.len += 1;
        true
    }

    /// Whether the state holds memory on the heap (it outgrew its compact form): a state that
    /// does not can be freed without being dropped.
    #[inline]
    pub fn owns_heap(&self) -> bool {
        self.spilled.is_some()
    }

    #[inline]
    fn add_tally(&mut self, value: &[u8], tally: Tally) -> Result<()> {
        if let Some(spilled) = self.spilled.as_deref_mut() {
            return spilled.add_tally(value, tally);
        }
        let units = u64::try_from(tally.weight.units()).ok();
        let supporters = u16::try_from(tally.supporters).ok();
        let mut start = 0;
        for i in 0..self.len as usize {
            let end = self.ends[i] as usize;
            if same_bytes(&self.bytes[start..end], value) {
                let weight = units.and_then(|w| self.weights[i].checked_add(w));
                let count = supporters.and_then(|s| self.supporters[i].checked_add(s));
                if let (Some(weight), Some(count)) = (weight, count) {
                    self.weights[i] = weight;
                    self.supporters[i] = count;
                    return Ok(());
                }
                return self.spill()?.add_tally(value, tally);
            }
            start = end;
        }
        let (i, end) = (self.len as usize, start + value.len());
        if let (true, Some(weight), Some(count)) = (i < COMPACT_VALUES && end <= COMPACT_BYTES, units, supporters) {
            self.bytes[start..end].copy_from_slice(value);
            self.ends[i] = end as u8;
            self.weights[i] = weight;
            self.supporters[i] = count;
            self.len += 1;
            return Ok(());
        }
        self.spill()?.add_tally(value, tally)
    }

    /// Move the compact form's values to the heap, in their order.
    #[cold]
    fn spill(&mut self) -> Result<&mut Spilled> {
        let mut spilled = Spilled::default();
        for (value, tally) in self.compact_entries() {
            spilled.add_tally(value, tally)?;
        }
        Ok(self.spilled.insert(Box::new(spilled)))
    }

    /// The compact form's values with their tallies, in the order they first came.
    fn compact_entries(&self) -> impl Iterator<Item = (&[u8], Tally)> {
        (0..self.len as usize).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            let tally =
                Tally { weight: Weight::from_units(self.weights[i].into()), supporters: self.supporters[i].into() };
            (&self.bytes[start..self.ends[i] as usize], tally)
        })
    }

    /// Fold another partial state into this one (the combine step of a parallel plan).
    pub fn merge(&mut self, other: Self) -> Result<()> {
        match other.spilled.as_deref() {
            Some(spilled) => merge_entries(spilled.entries(), |value, tally| self.add_tally(value, tally)),
            None => merge_entries(other.compact_entries(), |value, tally| self.add_tally(value, tally)),
        }
    }

    /// Number of distinct values seen.
    pub fn distinct_values(&self) -> usize {
        self.spilled.as_deref().map_or(self.len as usize, Spilled::distinct_values)
    }

    /// The vote's outcome, or `None` when no row voted: as [`Tallies::winner`].
    pub fn winner(&self) -> Result<Option<Winner<'_>>> {
        match self.spilled.as_deref() {
            Some(spilled) => spilled.winner(),
            None => winner_of(self.compact_entries()),
        }
    }

    /// [`ModeState::winner`] with its value as a string (values added as `&str` come back
    /// unchanged; bytes that are not UTF-8 are replaced by U+FFFD).
    pub fn result(&self) -> Result<Option<Consensus>> {
        Ok(self.winner()?.map(Winner::into_consensus))
    }

    /// The state's binary form (for `serialfunc`): the same as [`Tallies::serialize`] of the
    /// same values.
    pub fn serialize(&self) -> Vec<u8> {
        match self.spilled.as_deref() {
            Some(spilled) => spilled.serialize(),
            None => serialize_entries(self.len as usize, self.compact_entries()),
        }
    }

    /// Read a state written by [`ModeState::serialize`] (for `deserialfunc`). Malformed bytes are
    /// an error, never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        let mut state = Self::default();
        state.merge_serialized(bytes)?;
        Ok(state)
    }

    /// [`ModeState::merge`] of a state written by [`ModeState::serialize`], read straight from
    /// its bytes, validated as [`Tallies::merge_serialized`] does.
    pub fn merge_serialized(&mut self, bytes: &[u8]) -> Result<()> {
        read_serialized(bytes, |value, tally| self.add_tally(value, tally))
    }
}

/// `a == b`, inline for the short values of a compact state (a call to `memcmp` per value
/// compared was a tenth of a row's cost): up to 16 bytes are compared as two overlapping words.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..4 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A row's vote: its value and a tally of one supporter, or `None` when the row does not vote.
#[inline(always)]
fn vote(value: Option<&[u8]>, weight: Option<f64>) -> Result<Option<(&[u8], Tally)>> {
    let (Some(value), Some(weight)) = (value, Weight::of_vote(weight)?) else {
        return Ok(None);
    };
    Ok(Some((value, Tally { weight, supporters: 1 })))
}

/// Add every entry of a partial state with `add`.
fn merge_entries<'a>(
    entries: impl Iterator<Item = (&'a [u8], Tally)>,
    mut add: impl FnMut(&[u8], Tally) -> Result<()>,
) -> Result<()> {
    for (i, (value, tally)) in entries.enumerate() {
        crate::interrupt::check_every(i);
        add(value, tally)?;
    }
    Ok(())
}

/// The winner of distinct values with their tallies (see [`Tallies::winner`]).
fn winner_of<'a>(entries: impl Iterator<Item = (&'a [u8], Tally)>) -> Result<Option<Winner<'a>>> {
    let mut total = Weight::ZERO;
    let mut voters = 0u64;
    let mut best: Option<(&[u8], Tally)> = None;
    for (i, (value, tally)) in entries.enumerate() {
        crate::interrupt::check_every(i);
        total = total.checked_add(tally.weight)?;
        voters += tally.supporters;
        let wins = match best {
            None => true,
            Some((best_value, best_tally)) => (tally.weight, tally.supporters)
                .cmp(&(best_tally.weight, best_tally.supporters))
                .then_with(|| best_value.cmp(value))
                .is_gt(),
        };
        if wins {
            best = Some((value, tally));
        }
    }
    let Some((value, best)) = best else { return Ok(None) };
    Ok(Some(Winner {
        value,
        confidence: share(best.weight, total),
        agreement: best.supporters as f64 / voters as f64,
        supporters: count_to_i32(best.supporters, "supporter")?,
        voters: count_to_i32(voters, "voter")?,
        support_weight: best.weight.to_f64(),
        total_weight: total.to_f64(),
    }))
}

impl Winner<'_> {
    /// The result with its value as a string (bytes that are not UTF-8 are replaced by U+FFFD).
    fn into_consensus(self) -> Consensus {
        Vote {
            value: String::from_utf8_lossy(self.value).into_owned(),
            confidence: self.confidence,
            agreement: self.agreement,
            supporters: self.supporters,
            voters: self.voters,
            support_weight: self.support_weight,
            total_weight: self.total_weight,
        }
    }
}

/// The magic byte of a serialized categorical vote.
const MAGIC: u8 = b'M';

/// The binary form of `count` distinct values with their tallies.
fn serialize_entries<'a>(count: usize, entries: impl Iterator<Item = (&'a [u8], Tally)>) -> Vec<u8> {
    let mut w = Writer::new(MAGIC, 8 + count * 48);
    w.u64(count as u64);
    for (i, (value, tally)) in entries.enumerate() {
        crate::interrupt::check_every(i);
        w.bytes(value);
        w.u128(tally.weight.units());
        w.u64(tally.supporters);
    }
    w.finish()
}

/// Read a binary form written by [`serialize_entries`], passing each value with its tally to
/// `add`. Malformed bytes are an error, never a panic.
fn read_serialized(bytes: &[u8], mut add: impl FnMut(&[u8], Tally) -> Result<()>) -> Result<()> {
    let mut r = Reader::new(bytes, MAGIC, "consensus_mode")?;
    let n = r.count(8 + 16 + 8)?;
    for i in 0..n {
        crate::interrupt::check_every(i);
        let value = r.bytes()?;
        let weight = Weight::from_units(r.u128()?);
        let supporters = r.u64()?;
        if weight == Weight::ZERO || supporters == 0 {
            return Err(r.corrupt("a value has no weight or no supporters"));
        }
        add(value, Tally { weight, supporters })?;
    }
    r.finish()
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

    /// add_in_place counts a row exactly as add_bytes does, or leaves it (and the state) to it:
    /// random rows over values that fit the compact form and values that do not, more values
    /// than a heap state scans without its index, weights that do not vote, that overflow the
    /// compact sums and that are errors.
    #[test]
    fn add_in_place_counts_what_add_bytes_counts_or_leaves_the_row_to_it() {
        let long = [b'x'; 30];
        let other = [b'y'; 30];
        let values: [Option<&[u8]>; 12] = [
            None,
            Some(b""),
            Some(b"a"),
            Some(b"FOR_SALE"),
            Some(b"SOLD"),
            Some(&long),
            Some(&other),
            Some(b"PENDING"),
            Some(b"b"),
            Some(b"c"),
            Some(b"OFF_MARKET"),
            Some(b"d"),
        ];
        let weights = [
            None,
            Some(f64::NAN),
            Some(-1.0),
            Some(0.0),
            Some(1e-300),
            Some(0.25),
            Some(1.0 / 3.0),
            Some(4095.0),
            Some(5000.0),
            Some(1e15),
            Some(1e16),
            Some(f64::INFINITY),
        ];
        let mut seed = 0x5eed_0003_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut compact_rows, mut heap_rows, mut spilled) = (0, 0, 0);
        for _ in 0..3000 {
            let (mut fast, mut slow) = (ModeState::default(), ModeState::default());
            for _ in 0..next() % 80 {
                let value = values[(next() % values.len() as u64) as usize];
                // Mostly voting weights, so that groups fill and spill.
                let weight =
                    if next() % 4 == 0 { weights[(next() % weights.len() as u64) as usize] } else { Some(0.5) };
                let expected = slow.add_bytes(value, weight);
                let (on_heap, before) = (fast.owns_heap(), fast.serialize());
                let got = if fast.add_in_place(value, weight) {
                    if on_heap {
                        heap_rows += 1;
                    } else {
                        compact_rows += 1;
                    }
                    Ok(())
                } else {
                    assert_eq!(fast.serialize(), before, "a row left to add_bytes changes nothing");
                    fast.add_bytes(value, weight)
                };
                assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{value:?} {weight:?}");
                if expected.is_err() {
                    break;
                }
            }
            assert_eq!(fast.owns_heap(), slow.owns_heap());
            assert_eq!(fast.serialize(), slow.serialize());
            spilled += usize::from(slow.owns_heap());
        }
        assert!(
            compact_rows > 10_000 && heap_rows > 10_000 && spilled > 100,
            "{compact_rows} rows counted compact, {heap_rows} on the heap, {spilled} groups spilled"
        );
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

    /// The compact form answers and serializes as the heap form does, on both sides of each of
    /// its limits (distinct values, bytes, summed weight, supporters), row by row and merged.
    #[test]
    fn the_compact_form_agrees_with_the_heap_form() {
        let long = "y".repeat(50);
        let cases: Vec<Vec<(&str, f64)>> = vec![
            vec![("a", 0.5), ("bb", 0.25), ("a", 0.125)],
            (0..7).map(|i| (["a", "b", "c", "d", "e", "f", "g"][i], 1.0 + i as f64)).collect(),
            vec![("x", 1.0), (long.as_str(), 2.0), ("x", 2.5), ("zz", 0.5)],
            vec![("p", 4095.0), ("q", 1.0), ("p", 0.75), ("p", 0.5)],
            vec![("big", 1e15), ("small", 0.1)],
            std::iter::repeat_n(("many", 1e-9), 70_000).chain([("few", 1.0)]).collect(),
        ];
        for rows in &cases {
            let mut compact = ModeState::default();
            let mut heap = Spilled::default();
            for &(v, w) in rows {
                compact.add(Some(v), Some(w)).unwrap();
                heap.add(Some(v), Some(w)).unwrap();
            }
            assert_eq!(compact.result().unwrap(), heap.result().unwrap());
            assert_eq!(compact.serialize(), heap.serialize());
            assert_eq!(compact.distinct_values(), heap.distinct_values());
            let (first, second) = rows.split_at(rows.len() / 2);
            let mut halves = [ModeState::default(), ModeState::default()];
            for (half, rows) in halves.iter_mut().zip([first, second]) {
                for &(v, w) in rows {
                    half.add(Some(v), Some(w)).unwrap();
                }
            }
            let [mut merged, other] = halves;
            merged.merge_serialized(&other.serialize()).unwrap();
            assert_eq!(merged.serialize(), heap.serialize());
        }
        let mut small = ModeState::default();
        small.add(Some("FOR_SALE"), Some(0.5)).unwrap();
        assert!(!small.owns_heap());
        let mut past_the_limit = small.clone();
        past_the_limit.add(Some(long.as_str()), Some(0.5)).unwrap();
        assert!(past_the_limit.owns_heap());
    }

    #[test]
    fn same_bytes_is_equality() {
        let values: Vec<Vec<u8>> = (0..=20usize)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(37)).collect();
                let mut variants = vec![base.clone()];
                for at in 0..n {
                    let mut v = base.clone();
                    v[at] ^= 1;
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &values {
            for b in &values {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn the_compact_form_fills_128_bytes() {
        assert_eq!(std::mem::size_of::<ModeState>(), 128);
        assert_eq!(std::mem::align_of::<ModeState>(), 8);
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
