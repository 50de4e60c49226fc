//! `resi.consensus_median`: the trust-weighted median of numeric claims.

use super::codec::{Reader, Writer};
use super::{count_to_i32, share, value_order, OutOfRange, Weight};
use crate::error::{Error, Result};
use smallvec::SmallVec;

/// The result of a numeric vote: the SQL composite `resi.numeric_consensus`.
#[derive(Clone, Debug, PartialEq)]
pub struct NumericConsensus {
    /// The lower weighted median.
    pub value: f64,
    /// Weight share of the supporters.
    pub confidence: f64,
    /// `supporters / voters`.
    pub agreement: f64,
    /// Voters within the tolerance of the median: `|v - m| <= tolerance * |m|`.
    pub supporters: i32,
    pub voters: i32,
    /// The lower weighted 25th percentile.
    pub low: f64,
    /// The lower weighted 75th percentile.
    pub high: f64,
}

/// The claims of one value, summed: all the final step needs of them, since a weighted median,
/// its quartiles and its support depend only on each distinct value's summed weight and count.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    value: f64,
    weight: Weight,
    count: u64,
}

/// Claims of one group, kept until the final step (a median needs them all).
///
/// Rows are kept as they come (`claims`); [`NumericClaims::collapse`] sums them into one run
/// per distinct value (`runs`, sorted by value), which is how a partial state travels between
/// parallel workers and how the final step reads them: a group of many claims over few values
/// (a listing's price, a category of prices) is as small as its distinct values. A group of up
/// to `INLINE` rows keeps them inline, without a heap allocation; the room is paid by every
/// state: [`FieldClaims`] sizes it for a listing's field; [`MedianState`] keeps a small group
/// in a compact form of its own and only a larger one here.
///
/// The layout is pinned (`repr(C)`): the tolerance, the runs and the first claims share the
/// state's first cache line, which the final step reads first (a group's state is cold in
/// memory by then); the claims' length follows their inline room (`SmallVec` keeps it there).
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct NumericClaims<const INLINE: usize> {
    /// The group's tolerance, fixed by the first row.
    tolerance: Option<f64>,
    /// The collapsed claims: one run per distinct value, by increasing value.
    runs: Vec<Run>,
    /// (value, weight) of every voting row not yet collapsed; weights are validated, converted
    /// to exact units when collapsed.
    claims: SmallVec<[(f64, f64); INLINE]>,
}

/// One numeric field of [`crate::consensus::ListingState`], which holds 6 of them: 4 claims
/// inline.
pub type FieldClaims = NumericClaims<4>;

/// Check a tolerance argument: NULL means 0 (exact agreement); it must be finite and >= 0.
pub fn check_tolerance(tolerance: Option<f64>) -> Result<f64> {
    match tolerance {
        None => Ok(0.0),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(t + 0.0), // + 0.0 turns -0 into 0
        Some(t) => {
            Err(Error::invalid_parameter(format!("consensus_median tolerance must be a finite number >= 0, got {t}")))
        }
    }
}

/// The units of a weight kept in a state (validated as voting on input, so in range and at
/// least one unit).
#[inline(always)]
fn units(weight: f64) -> Weight {
    debug_assert!(matches!(Weight::of_vote(Some(weight)), Ok(Some(_))), "only voting weights are kept");
    Weight::from_units(super::units_of(weight))
}

/// Rows of a group whose final step reads them as runs of one row each (see
/// [`NumericClaims::result`]).
const SMALL_GROUP: usize = 16;

/// Sort claims by value (by their [`value_order::key`]s: every kept value is finite and -0
/// is kept as 0); equal values end up adjacent in some order, which the exact sums over them
/// do not see.
#[inline]
fn sort_by_value(claims: &mut [(f64, f64)]) {
    value_order::sort_by_key(claims, |claim| value_order::key(claim.0));
}

/// `a` and `b` (each sorted by value, one run per value) as one such list: runs of the same
/// value are summed.
fn merge_runs(a: &[Run], b: &[Run]) -> Result<Vec<Run>> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        crate::interrupt::check_every(i + j);
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.value == y.value => {
                i += 1;
                j += 1;
                Run { value: x.value, weight: x.weight.checked_add(y.weight)?, count: x.count + y.count }
            }
            (Some(x), Some(y)) if x.value < y.value => {
                i += 1;
                *x
            }
            (Some(x), None) => {
                i += 1;
                *x
            }
            (_, Some(y)) => {
                j += 1;
                *y
            }
            (None, None) => unreachable!("the loop runs while one list has runs left"),
        };
        merged.push(next);
    }
    Ok(merged)
}

/// The runs of claims sorted by value: each distinct value with its summed weight and count.
struct RunsOf<'a> {
    claims: &'a [(f64, f64)],
}

impl Iterator for RunsOf<'_> {
    type Item = Result<Run>;

    fn next(&mut self) -> Option<Result<Run>> {
        let (&(value, weight), rest) = self.claims.split_first()?;
        let mut run = Run { value, weight: units(weight), count: 1 };
        let same = rest.iter().take_while(|c| c.0 == value).count();
        for (i, &(_, w)) in rest[..same].iter().enumerate() {
            crate::interrupt::check_every(i);
            run.weight = match run.weight.checked_add(units(w)) {
                Ok(sum) => sum,
                Err(e) => return Some(Err(e)),
            };
        }
        run.count += same as u64;
        self.claims = &rest[same..];
        Some(Ok(run))
    }
}

/// The weighted median and its support from `runs` (by increasing value), or `None` when
/// there is none. Runs of the same value may follow each other (a serial group's claims, one
/// run each): the first run at which the cumulative weight reaches a quantile's threshold has
/// the value of the first summed run that does, and the sums are exact, so the answer is the
/// one of the runs summed per value.
///
/// `runs` gives them anew for each of the three passes, so a small group's claims are read in
/// place rather than copied into runs first.
fn consensus_of<I: Iterator<Item = Run>>(
    runs: impl Fn() -> I,
    tolerance: Option<f64>,
) -> Result<Option<NumericConsensus>> {
    let mut total = Weight::ZERO;
    let mut voters = 0u64;
    for (i, run) in runs().enumerate() {
        crate::interrupt::check_every(i);
        total = total.checked_add(run.weight)?;
        voters += run.count;
    }
    if voters == 0 {
        return Ok(None);
    }
    let t = total.units();
    // Lower weighted quantile q: the first value whose cumulative weight reaches q * total.
    // Thresholds are exact integers: ceil(t/4), ceil(t/2), ceil(3t/4) = t - floor(t/4).
    let thresholds = [t.div_ceil(4), t.div_ceil(2), t - t / 4];
    let mut found = [None; 3];
    let mut cumulative = 0u128;
    for (i, run) in runs().enumerate() {
        crate::interrupt::check_every(i);
        cumulative += run.weight.units();
        for (slot, &threshold) in found.iter_mut().zip(&thresholds) {
            if slot.is_none() && cumulative >= threshold {
                *slot = Some(run.value);
            }
        }
        if found[2].is_some() {
            break;
        }
    }
    let [low, median, high] = found.map(|v| v.expect("cumulative weight reaches the total"));
    let tolerance = tolerance.unwrap_or(0.0);
    let mut support = Weight::ZERO;
    let mut supporters = 0u64;
    for (i, run) in runs().enumerate() {
        crate::interrupt::check_every(i);
        if (run.value - median).abs() <= tolerance * median.abs() {
            support = support.checked_add(run.weight)?;
            supporters += run.count;
        }
    }
    Ok(Some(NumericConsensus {
        value: median,
        confidence: share(support, total),
        agreement: supporters as f64 / voters as f64,
        supporters: count_to_i32(supporters, "supporter")?,
        voters: count_to_i32(voters, "voter")?,
        low,
        high,
    }))
}

impl<const INLINE: usize> NumericClaims<INLINE> {
    /// Count one row. NULL, NaN and infinite values and non-voting weights are ignored; the
    /// tolerance is checked on every row and must be the same for the whole group.
    #[inline]
    pub fn add(&mut self, value: Option<f64>, weight: Option<f64>, tolerance: Option<f64>) -> Result<()> {
        self.fix_row_tolerance(tolerance)?;
        let Some(value) = value.filter(|v| v.is_finite()) else { return Ok(()) };
        if Weight::of_vote(weight)?.is_some() {
            // -0.0 and 0.0 are the same claim.
            self.claims.push((value + 0.0, weight.expect("a voting weight is present")));
        }
        Ok(())
    }

    /// An empty state whose group tolerance is fixed (a field of the listing aggregate).
    pub(crate) fn with_tolerance(tolerance: f64) -> Self {
        NumericClaims { tolerance: Some(tolerance), runs: Vec::new(), claims: SmallVec::new() }
    }

    /// The group's tolerance, once a row or the constructor has fixed it.
    pub fn tolerance(&self) -> Option<f64> {
        self.tolerance
    }

    /// Count one finite value whose weight is already validated as voting.
    #[inline]
    pub(crate) fn add_voting(&mut self, value: f64, weight: f64) {
        debug_assert!(value.is_finite() && matches!(Weight::of_vote(Some(weight)), Ok(Some(_))));
        self.claims.push((value + 0.0, weight));
    }

    /// Check a row's tolerance argument and fix the group's with it. A row repeating the fixed
    /// tolerance's bits (every row of a group but the first, in practice) is accepted without
    /// checking it again: the fixed one was checked.
    #[inline(always)]
    fn fix_row_tolerance(&mut self, tolerance: Option<f64>) -> Result<()> {
        if self.tolerance.is_some_and(|fixed| tolerance.is_some_and(|t| t.to_bits() == fixed.to_bits())) {
            return Ok(());
        }
        self.set_tolerance(check_tolerance(tolerance)?)
    }

    fn set_tolerance(&mut self, tolerance: f64) -> Result<()> {
        match self.tolerance {
            None => {
                self.tolerance = Some(tolerance);
                Ok(())
            }
            Some(fixed) => same_tolerance(fixed, tolerance),
        }
    }

    /// Fold another partial state into this one (the combine step of a parallel plan).
    pub fn merge(&mut self, other: Self) -> Result<()> {
        if let Some(t) = other.tolerance {
            self.set_tolerance(t)?;
        }
        if self.claims.is_empty() {
            self.claims = other.claims;
        } else {
            self.claims.reserve(other.claims.len());
            for (i, chunk) in other.claims.chunks(crate::interrupt::STRIDE).enumerate() {
                crate::interrupt::check_every(i * crate::interrupt::STRIDE);
                self.claims.extend_from_slice(chunk);
            }
        }
        if self.runs.is_empty() {
            self.runs = other.runs;
        } else if !other.runs.is_empty() {
            self.runs = merge_runs(&self.runs, &other.runs)?;
        }
        Ok(())
    }

    /// Number of voting rows.
    pub fn len(&self) -> usize {
        self.claims.len() + self.runs.iter().map(|r| r.count as usize).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.runs.is_empty()
    }

    /// Whether the state holds memory on the heap (more claims than its inline room, or
    /// collapsed runs): a state that does not can be freed without being dropped.
    #[inline]
    pub fn owns_heap(&self) -> bool {
        self.claims.spilled() || self.runs.capacity() > 0
    }

    /// Sum the rows kept as they came into the runs (one per distinct value, sorted): the same
    /// claims, as the final step and the binary form read them. A parallel worker collapses its
    /// partial state before serializing it, so what it sends is as small as its distinct values
    /// and the leader's final step only merges sorted runs.
    pub fn collapse(&mut self) -> Result<()> {
        if self.claims.is_empty() {
            return Ok(());
        }
        crate::interrupt::check();
        sort_by_value(&mut self.claims);
        let mut collapsed = Vec::new();
        for (i, run) in (RunsOf { claims: &self.claims }).enumerate() {
            crate::interrupt::check_every(i);
            collapsed.push(run?);
        }
        self.claims.clear();
        self.runs = if self.runs.is_empty() { collapsed } else { merge_runs(&self.runs, &collapsed)? };
        Ok(())
    }

    /// The weighted median and its support, or `None` when no row voted.
    ///
    /// Summing exact weights per distinct value makes the answer independent of the order of
    /// rows and of how a parallel plan split them. A state holding only rows as they came (a
    /// serial group) is sorted in place and read as one run per row, in place, when it has up
    /// to [`SMALL_GROUP`] rows, else as one run per distinct value.
    pub fn result(&mut self) -> Result<Option<NumericConsensus>> {
        if !self.runs.is_empty() {
            self.collapse()?;
            return consensus_of(|| self.runs.iter().copied(), self.tolerance);
        }
        if self.claims.is_empty() {
            return Ok(None);
        }
        crate::interrupt::check();
        sort_by_value(&mut self.claims);
        if self.claims.len() <= SMALL_GROUP {
            let claims = &self.claims;
            return consensus_of(
                || claims.iter().map(|&(value, weight)| Run { value, weight: units(weight), count: 1 }),
                self.tolerance,
            );
        }
        let mut runs: SmallVec<[Run; SMALL_GROUP]> = SmallVec::new();
        for (i, run) in (RunsOf { claims: &self.claims }).enumerate() {
            crate::interrupt::check_every(i);
            runs.push(run?);
        }
        consensus_of(|| runs.iter().copied(), self.tolerance)
    }

    /// The state's binary form (for `serialfunc`): its runs, the rows not yet collapsed summed
    /// in (a copy is sorted; [`NumericClaims::collapse`] first avoids it).
    pub fn serialize(&self) -> Result<Vec<u8>> {
        self.serialize_as(Encoding::Fixed)
    }

    /// [`NumericClaims::serialize`] with the runs in `encoding`.
    fn serialize_as(&self, encoding: Encoding) -> Result<Vec<u8>> {
        let mut copy;
        let state = if self.claims.is_empty() {
            self
        } else {
            copy = self.clone();
            copy.collapse()?;
            &copy
        };
        Ok(write_runs(state.tolerance, &state.runs, encoding))
    }

    /// Read a state written by [`NumericClaims::serialize`]; every run is re-validated, so
    /// malformed bytes are an error, never a panic or a wrong answer.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        let mut state = Self::default();
        state.merge_serialized(bytes)?;
        Ok(state)
    }

    /// [`NumericClaims::merge`] of a state written by [`NumericClaims::serialize`], read straight
    /// from its bytes (the combine step of a parallel plan, without building the partial
    /// state), validated as [`read_runs`] says. On an error `self` may hold part of them,
    /// which does not matter because the error ends the query.
    pub fn merge_serialized(&mut self, bytes: &[u8]) -> Result<()> {
        let runs = read_runs(bytes, |tolerance| self.set_tolerance(tolerance))?;
        self.merge_sorted_runs(runs)
    }

    /// Fold runs sorted by value, one per value, into the collapsed claims.
    fn merge_sorted_runs(&mut self, runs: Vec<Run>) -> Result<()> {
        self.runs = if self.runs.is_empty() { runs } else { merge_runs(&self.runs, &runs)? };
        Ok(())
    }
}

/// An error unless a group's fixed tolerance and a row's (both checked) are the same.
fn same_tolerance(fixed: f64, tolerance: f64) -> Result<()> {
    if fixed == tolerance {
        Ok(())
    } else {
        Err(Error::invalid_parameter(format!(
            "consensus_median tolerance must be the same for every row of a group, got {fixed} and {tolerance}"
        )))
    }
}

/// The magic byte of a serialized numeric vote.
const MAGIC: u8 = b'D';

/// How the binary form writes its runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// Each run's value, units and count in 8, 16 and 8 bytes: the form
    /// [`MedianState::serialize`] writes (and the distributed aggregate's tally is).
    Fixed,
    /// Each run in as few whole bytes as the state's runs need ([`Packing`]): its value as the
    /// step from the previous run's [`value_order::key`], its units and its count, each without
    /// the low zero bits all runs share, in widths written once. What
    /// [`MedianState::serialize_partial`] writes for a parallel plan's partial states: each
    /// worker copies them into tuples to sort them by group and sends them to the leader
    /// through a queue of 64 kB, and the leader copies them again. A group of prices on a grid
    /// of 500 weighed in multiples of 1/1024 takes 4 bytes a run instead of 32.
    Packed,
}

/// Flag bits of the binary form's first byte after the version.
const HAS_TOLERANCE: u8 = 1;
const PACKED_RUNS: u8 = 2;

/// The widths of [`Encoding::Packed`] runs: a run is `step_width` bytes of the step from the
/// previous run's key (0 for the first run, whose key the header holds) shifted right by
/// `step_shift`, `units_width` bytes of its units shifted right by `units_shift`, and
/// `count_width` bytes of its count, all little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packing {
    step_shift: u8,
    step_width: u8,
    units_shift: u8,
    units_width: u8,
    count_width: u8,
}

/// Whole bytes `x` needs (0 for 0).
fn bytes_for(x: u128) -> u8 {
    (128 - x.leading_zeros()).div_ceil(8) as u8
}

/// The unsigned integer in the `width` (at most 8) little-endian bytes of `bytes` at `at`: one
/// load of the word there, masked, unless fewer than 8 bytes remain (a state's last run or
/// two). Reading the packed runs was the leader's combine step, which the workers wait for.
#[inline(always)]
fn uint_at(bytes: &[u8], at: usize, width: u8) -> u64 {
    match bytes.get(at..at + 8) {
        Some(word) => u64::from_le_bytes(word.try_into().expect("8 bytes")) & mask_of(width),
        None => {
            let mut word = [0u8; 8];
            word[..usize::from(width)].copy_from_slice(&bytes[at..at + usize::from(width)]);
            u64::from_le_bytes(word)
        }
    }
}

/// The mask of an integer's low `width` bytes (at most 8).
#[inline(always)]
fn mask_of(width: u8) -> u64 {
    u64::MAX.checked_shr(64 - 8 * u32::from(width)).unwrap_or(0)
}

impl Packing {
    /// The narrowest widths for `runs` (sorted by value, one per value, each with weight and
    /// claims), in one pass over them.
    fn of(runs: &[Run]) -> Packing {
        let (mut any_step, mut max_step, mut any_units, mut max_units, mut max_count) =
            (0u64, 0u64, 0u128, 0u128, 0u64);
        let mut previous = runs.first().map_or(0, |run| value_order::key(run.value));
        for run in runs {
            let key = value_order::key(run.value);
            any_step |= key - previous;
            max_step = max_step.max(key - previous);
            any_units |= run.weight.units();
            max_units = max_units.max(run.weight.units());
            max_count = max_count.max(run.count);
            previous = key;
        }
        let step_shift = any_step.trailing_zeros() % 64;
        let units_shift = any_units.trailing_zeros() % 128;
        Packing {
            step_shift: step_shift as u8,
            step_width: bytes_for(u128::from(max_step >> step_shift)),
            units_shift: units_shift as u8,
            units_width: bytes_for(max_units >> units_shift).max(1),
            count_width: bytes_for(u128::from(max_count)).max(1),
        }
    }

    /// Bytes a run takes.
    fn run_width(self) -> usize {
        usize::from(self.step_width) + usize::from(self.units_width) + usize::from(self.count_width)
    }
}

/// The binary form of a state: its tolerance, then its runs (sorted by value, one per value)
/// in `encoding`.
fn write_runs(tolerance: Option<f64>, runs: &[Run], encoding: Encoding) -> Vec<u8> {
    let packing = (encoding == Encoding::Packed).then(|| Packing::of(runs));
    let run_width = packing.map_or(32, Packing::run_width);
    let mut w = Writer::new(MAGIC, 32 + runs.len() * run_width);
    let packed = if packing.is_some() { PACKED_RUNS } else { 0 };
    match tolerance {
        Some(t) => {
            w.u8(HAS_TOLERANCE | packed);
            w.f64(t);
        }
        None => w.u8(packed),
    }
    let Some(p) = packing else {
        w.u64(runs.len() as u64);
        for (i, run) in runs.iter().enumerate() {
            crate::interrupt::check_every(i);
            w.f64(run.value);
            w.u128(run.weight.units());
            w.u64(run.count);
        }
        return w.finish();
    };
    w.raw(&[p.step_shift, p.step_width, p.units_shift, p.units_width, p.count_width]);
    w.u64(runs.len() as u64);
    let Some(first) = runs.first() else { return w.finish() };
    let mut previous = value_order::key(first.value);
    w.u64(previous);
    for (i, run) in runs.iter().enumerate() {
        crate::interrupt::check_every(i);
        let key = value_order::key(run.value);
        w.uint((key - previous) >> p.step_shift, p.step_width);
        let units = run.weight.units() >> p.units_shift;
        w.uint(units as u64, p.units_width.min(8));
        if p.units_width > 8 {
            w.uint((units >> 64) as u64, p.units_width - 8);
        }
        w.uint(run.count, p.count_width);
        previous = key;
    }
    w.finish()
}

/// The runs of a binary form written by [`write_runs`] (in either encoding), its tolerance
/// (if any) passed to `set_tolerance` first. Every run is re-validated: finite values in
/// increasing order (-0 never), each with a weight and a count, no bit of a shifted field
/// lost; malformed bytes are an error, never a panic or a wrong answer.
///
/// The runs' bytes must be exactly as many as the header says, so that each run is read from
/// a slice of its own size, without a check per field: reading was most of the combine step
/// of a parallel plan's leader, which the other processes wait for.
fn read_runs(bytes: &[u8], mut set_tolerance: impl FnMut(f64) -> Result<()>) -> Result<Vec<Run>> {
    let mut r = Reader::new(bytes, MAGIC, "consensus_median")?;
    let flags = r.u8()?;
    if flags & !(HAS_TOLERANCE | PACKED_RUNS) != 0 {
        return Err(r.corrupt("invalid flags"));
    }
    if flags & HAS_TOLERANCE != 0 {
        let tolerance = check_tolerance(Some(r.f64()?)).map_err(|_| r.corrupt("invalid tolerance"))?;
        set_tolerance(tolerance)?;
    }
    if flags & PACKED_RUNS == 0 {
        let n = r.count(32)?;
        let body = r.rest_exactly(n * 32)?;
        let mut runs: Vec<Run> = Vec::with_capacity(n);
        for (i, run) in body.chunks_exact(32).enumerate() {
            crate::interrupt::check_every(i);
            let value = f64::from_le_bytes(run[..8].try_into().expect("8 bytes"));
            let units = u128::from_le_bytes(run[8..24].try_into().expect("16 bytes"));
            let count = u64::from_le_bytes(run[24..].try_into().expect("8 bytes"));
            push_read_run(&mut runs, value, units, count).map_err(|why| r.corrupt(why))?;
        }
        return Ok(runs);
    }
    let p = Packing {
        step_shift: r.u8()?,
        step_width: r.u8()?,
        units_shift: r.u8()?,
        units_width: r.u8()?,
        count_width: r.u8()?,
    };
    if p.step_shift > 63
        || p.step_width > 8
        || p.units_shift > 127
        || !(1..=16).contains(&p.units_width)
        || !(1..=8).contains(&p.count_width)
    {
        return Err(r.corrupt("invalid widths"));
    }
    let run_width = p.run_width();
    let n = r.count(run_width)?;
    if n == 0 {
        r.rest_exactly(0)?;
        return Ok(Vec::new());
    }
    let key = r.u64()?;
    let body = r.rest_exactly(n * run_width)?;
    let mut runs: Vec<Run> = Vec::with_capacity(n);
    // Units of at most 64 bits once shifted back (every light weight's): summed in u64.
    let valid = if u32::from(p.units_shift) + 8 * u32::from(p.units_width) <= 64 {
        read_packed::<false>(body, p, key, n, &mut runs)
    } else {
        read_packed::<true>(body, p, key, n, &mut runs)
    };
    if !valid {
        return Err(r.corrupt("a run is out of order or out of range, or has no weight or no claims"));
    }
    Ok(runs)
}

/// Append the `n` runs packed in `body` (exactly as many bytes as they take),
/// the first at `key`, to `runs`: `false` if one is invalid (a value not above the last or
/// not finite or -0, a field whose shift loses bits, no weight, no claims), which is checked
/// for all of them at once rather than with a branch each. `WIDE` when the units, shifted
/// back, may need more than 64 bits.
fn read_packed<const WIDE: bool>(body: &[u8], p: Packing, mut key: u64, n: usize, runs: &mut Vec<Run>) -> bool {
    debug_assert_eq!(body.len(), n * p.run_width());
    let run_width = p.run_width();
    let (units_at, count_at) = (usize::from(p.step_width), usize::from(p.step_width) + usize::from(p.units_width));
    let (low_width, high_width) = (p.units_width.min(8), p.units_width.saturating_sub(8));
    let (step_shift, units_shift) = (u32::from(p.step_shift), u32::from(p.units_shift));
    // The first key must be a finite value's; later ones only step up from it, and each must
    // stay at most the largest finite value's key and differ from -0's.
    let mut valid = value_order::value(key).is_finite();
    for i in 0..n {
        crate::interrupt::check_every(i);
        let at = i * run_width;
        let step = uint_at(body, at, p.step_width);
        let low = uint_at(body, at + units_at, low_width);
        let count = uint_at(body, at + count_at, p.count_width);
        let (next, carry) = key.overflowing_add(step << step_shift);
        let units = if WIDE {
            let high = if high_width > 0 { uint_at(body, at + units_at + 8, high_width) } else { 0 };
            let shifted = u128::from(low) | u128::from(high) << 64;
            let units = shifted << units_shift;
            valid &= units >> units_shift == shifted;
            units
        } else {
            // At most 64 bits in all: nothing is shifted out.
            u128::from(low << units_shift)
        };
        valid &= (i == 0) == (step == 0)
            && !carry
            && (step << step_shift) >> step_shift == step
            && next <= value_order::key(f64::MAX)
            && next != value_order::key(-0.0)
            && units != 0
            && count != 0;
        key = next;
        runs.push(Run { value: value_order::value(key), weight: Weight::from_units(units), count });
    }
    valid
}

/// Append a run read from a binary form, checked: a finite value (not -0) above the last
/// run's, a weight and a count.
#[inline(always)]
fn push_read_run(runs: &mut Vec<Run>, value: f64, units: u128, count: u64) -> std::result::Result<(), &'static str> {
    let increasing = runs.last().is_none_or(|last| last.value < value);
    if !value.is_finite() || value.to_bits() == (-0.0f64).to_bits() || !increasing {
        return Err("a value is not finite or out of order");
    }
    if units == 0 || count == 0 {
        return Err("a value has no weight or no claims");
    }
    runs.push(Run { value, weight: Weight::from_units(units), count });
    Ok(())
}

/// Claims a [`MedianState`] holds in its compact form.
const COMPACT_CLAIMS: usize = 11;

/// The state of `resi.consensus_median`.
///
/// The aggregate creates one per group, and a row of a many-group query finds its group's
/// state cold in memory: what a row costs is mostly the cache lines it touches and, at the
/// final step, the work per claim. So a group of up to 11 voting rows (a listing's field over
/// its claims), each weighing less than 2^64 units (4096), is kept in 192 bytes (three cache
/// lines) with no pointer to follow: each row's value with its weight already in exact units,
/// which the final step sums without converting a weight again. A group that outgrows it
/// moves, once and for good, to vectors on the heap ([`MedianState::owns_heap`]), held in the
/// same 192 bytes ([`Spilled`]): its rows as [`NumericClaims`] keeps them and, once it has a
/// chunk of them, a [`Tally`] that sums them per distinct value. The answer and the binary
/// form do not depend on which form holds the claims.
#[derive(Clone, Debug, Default)]
pub struct MedianState {
    form: Form,
}

/// The two forms of a [`MedianState`]: the compact form's flag byte leaves room for the tag,
/// so the state is no larger than the compact form.
#[derive(Clone, Debug)]
enum Form {
    Compact(Compact),
    Spilled(Spilled),
}

/// The claims of a [`MedianState`] that outgrew its compact form, in vectors on the heap:
/// rows as [`NumericClaims`] keeps them and, in a large group, a [`Tally`] of the earlier rows.
/// The state's claims are those of both.
///
/// It lies in the state itself, not behind a pointer of its own, and its rows' tolerance and
/// vector come first (`repr(C)`: `NumericClaims<0>` is 64 bytes, the state's first cache line):
/// a row of a large group reads them from its state and writes its claim into the vector, one
/// cold line fewer to wait for than when the state pointed to a box of them (6-7 % less time,
/// serial, over 500 groups of 10,000 rows; the two builds alternating on one cluster).
#[derive(Clone, Debug, Default)]
#[repr(C)]
struct Spilled {
    claims: NumericClaims<0>,
    tally: Tally,
}

/// Rows a large group keeps as they came before it sums them into its [`Tally`] (2 kB). Each
/// parallel process holds a large group's whole state, and on a VM first-touched memory is
/// dear: over 500 groups of 256 prices a state is 11 kB with 128 rows, 17.5 kB with 512 (the
/// chunk, 256 runs of 32 bytes, 512 slots), and the query no slower for the smaller chunk
/// (the tally is read in order before a chunk is summed, [`Tally::warm`]).
const CHUNK: usize = 128;

/// Distinct values a [`Tally`] takes: once it holds more, the group's later rows are kept as
/// they come.
const TALLY_VALUES: usize = 1024;

/// Rows a [`Tally`] sums before it is flushed: each weighs less than 2^102 units (at most
/// [`MAX_WEIGHT`] < 2^50, in units of 2^-52), so that no sum of fewer than 2^26 of them
/// overflows a u128.
const TALLY_ROWS: u64 = 1 << 26;

/// The rows of a large group summed per distinct value: the runs the final step and the
/// binary form read, found by a hash table rather than by sorting every row. Rows come as
/// they came, a chunk of [`CHUNK`] at a time, so that the table is read for a chunk rather
/// than for each row (a group's state is cold when its next row comes). A large group over
/// few distinct values (a price on a grid, a category of prices) then holds a chunk and a run
/// per value instead of 16 bytes per row and a sort of them all: in each parallel worker and
/// in the serial plan, fresh memory (the kernel clearing its pages) and that sort were most
/// of the median's own time over large groups. A group of more than [`TALLY_VALUES`] distinct
/// values closes its tally and keeps its later rows as they come, as before.
///
/// Nothing is summed across values until [`Spilled::flush`], which only the steps that sum
/// every claim call (collapse, result, serialize, merge): a row raises no error it did not
/// raise before. No run's sum can overflow ([`TALLY_ROWS`]).
#[derive(Clone, Debug, Default)]
struct Tally {
    /// One run per distinct value, in the order they came.
    runs: Vec<Run>,
    /// Open addressing with linear probing over `runs`: 0 for an empty slot, else a run's
    /// index + 1. None before the first chunk, else a power of two of them, at most half used.
    slots: Vec<u16>,
    /// Rows summed in the runs.
    rows: u64,
    /// Whether the tally takes no more rows: too many distinct values, or rows.
    closed: bool,
}

/// The first slot to probe for `value` in a table of `mask + 1` slots (a power of two, at
/// least 2): the high bits of a multiplicative hash of its bits, which depend on all of them
/// (a price's low mantissa bits are all zero).
#[inline(always)]
fn slot_of(value: f64, mask: usize) -> usize {
    (value.to_bits().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (mask.leading_zeros() & 63)) as usize
}

impl Tally {
    /// Sum a voting claim (its value finite, -0 as 0) into its run.
    #[inline(always)]
    fn add(&mut self, value: f64, units: Weight) {
        debug_assert!(value.is_finite() && value.to_bits() != (-0.0f64).to_bits());
        let mask = self.slots.len() - 1;
        let mut i = slot_of(value, mask);
        loop {
            match self.slots[i] {
                0 => break,
                slot => {
                    let run = &mut self.runs[usize::from(slot) - 1];
                    if run.value.to_bits() == value.to_bits() {
                        // Fewer than TALLY_ROWS weights: no overflow.
                        run.weight = Weight::from_units(run.weight.units() + units.units());
                        run.count += 1;
                        return;
                    }
                }
            }
            i = (i + 1) & mask;
        }
        self.runs.push(Run { value, weight: units, count: 1 });
        // At most TALLY_VALUES + CHUNK runs: an index + 1 fits.
        self.slots[i] = self.runs.len() as u16;
        if 2 * self.runs.len() > self.slots.len() {
            self.grow();
        }
    }

    /// Double the slots, closing the tally once it holds more than [`TALLY_VALUES`] values.
    #[cold]
    fn grow(&mut self) {
        self.closed |= self.runs.len() > TALLY_VALUES;
        self.slots = vec![0; 2 * self.slots.len()];
        self.index_runs();
    }

    /// Read one word of each cache line of the slots and the runs, in order, before a chunk is
    /// summed into them. A large group's tally is cold by its next chunk (the other groups'
    /// rows came between), and a chunk's rows reach its runs in no order: each run's line was
    /// a miss its row waited for, half of the summing's time. Read in order, the lines come
    /// in parallel and the processor's prefetcher streams them: over 500 groups of 10,000
    /// rows and 256 prices, in chunks of 512 rows, the summing and this took 37 % less than
    /// the summing alone, and the median's query 4 % less, serial and parallel; in chunks of
    /// 128, adding the rows takes 2 % less with it than without (a microbenchmark of the
    /// state alone, 8 runs each).
    #[inline(never)]
    fn warm(&self) {
        let mut seen = 0u64;
        for slots in self.slots.chunks(32) {
            seen ^= u64::from(slots[0]);
        }
        for runs in self.runs.chunks(2) {
            seen ^= runs[0].count;
        }
        std::hint::black_box(seen);
    }

    /// Fill the (empty) slots with the runs.
    fn index_runs(&mut self) {
        let mask = self.slots.len() - 1;
        for (n, run) in self.runs.iter().enumerate() {
            let mut i = slot_of(run.value, mask);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = n as u16 + 1;
        }
    }
}

impl Spilled {
    /// Count one row, as [`NumericClaims::add`] does; a chunk of them is summed into the
    /// tally while it is open.
    #[inline]
    fn add(&mut self, value: Option<f64>, weight: Option<f64>, tolerance: Option<f64>) -> Result<()> {
        self.claims.add(value, weight, tolerance)?;
        if self.claims.claims.len() >= CHUNK && !self.tally.closed {
            self.fold();
        }
        Ok(())
    }

    /// Keep a voting claim as it came if that needs no allocation and leaves no chunk due to
    /// be summed into the open tally: `false` when it does not (nothing is kept then). As
    /// [`Spilled::add`] of the claim's row, which would keep it the same way.
    #[inline(always)]
    fn push_in_place(&mut self, value: f64, weight: f64) -> bool {
        let rows = &mut self.claims.claims;
        let room = rows.len() < rows.capacity() && (rows.len() + 1 < CHUNK || self.tally.closed);
        if room {
            rows.push((value, weight));
        }
        room
    }

    /// Move the rows kept as they came into the open tally (which may close it), unless it
    /// cannot take as many rows more (then it closes).
    #[cold]
    fn fold(&mut self) {
        let rows = self.claims.claims.len() as u64;
        if self.tally.rows + rows >= TALLY_ROWS {
            self.tally.closed = true;
            return;
        }
        if self.tally.slots.is_empty() {
            self.tally.slots = vec![0; 128];
        }
        self.tally.warm();
        for &(value, weight) in &self.claims.claims {
            self.tally.add(value, units(weight));
        }
        self.tally.rows += rows;
        self.claims.claims.clear();
    }

    /// Sum the rows kept as they came into the tally while it is open, then the tally into
    /// the runs (an error if a sum overflows, as the final step's would be), leaving it empty
    /// and as open or closed as it was.
    fn flush(&mut self) -> Result<()> {
        if !self.tally.slots.is_empty() && !self.tally.closed && !self.claims.claims.is_empty() {
            self.fold();
        }
        if self.tally.runs.is_empty() {
            return Ok(());
        }
        crate::interrupt::check();
        let mut runs = std::mem::take(&mut self.tally.runs);
        value_order::sort_by_key(&mut runs, |run| value_order::key(run.value));
        self.tally.slots.fill(0);
        self.tally.rows = 0;
        self.claims.merge_sorted_runs(runs)
    }

    /// Number of voting rows.
    fn len(&self) -> usize {
        self.claims.len() + self.tally.rows as usize
    }

    /// [`NumericClaims::merge`], the tallies summed in first.
    fn merge(&mut self, mut other: Spilled) -> Result<()> {
        self.flush()?;
        other.flush()?;
        self.claims.merge(other.claims)
    }

    /// [`NumericClaims::collapse`], the tally summed in first.
    fn collapse(&mut self) -> Result<()> {
        self.flush()?;
        self.claims.collapse()
    }

    /// [`NumericClaims::result`], the tally summed in first.
    fn result(&mut self) -> Result<Option<NumericConsensus>> {
        self.flush()?;
        self.claims.result()
    }

    /// [`NumericClaims::serialize_as`] of all the claims (a copy is flushed; a flush first
    /// avoids it).
    fn serialize_as(&self, encoding: Encoding) -> Result<Vec<u8>> {
        if self.tally.runs.is_empty() {
            return self.claims.serialize_as(encoding);
        }
        let mut copy = self.clone();
        copy.flush()?;
        copy.claims.serialize_as(encoding)
    }
}

/// A small group's claims, as they came.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Compact {
    /// The group's tolerance, once `tolerance_fixed`.
    tolerance: f64,
    /// (value, weight in units of 2^-52) of the first `len` voting rows; values are finite, -0
    /// kept as 0. The other slots hold +Infinity, so that sorting all of them (see
    /// [`sort_compact`]) leaves the claims first.
    claims: [(f64, u64); COMPACT_CLAIMS],
    len: u8,
    /// Whether a row fixed the group's tolerance.
    tolerance_fixed: bool,
}

impl Default for Form {
    fn default() -> Self {
        Form::Compact(Compact {
            tolerance: 0.0,
            claims: [(f64::INFINITY, 0); COMPACT_CLAIMS],
            len: 0,
            tolerance_fixed: false,
        })
    }
}

impl Compact {
    /// The claims held.
    #[inline(always)]
    fn claims(&self) -> &[(f64, u64)] {
        &self.claims[..self.len as usize]
    }

    /// The group's tolerance, once fixed.
    #[inline(always)]
    fn tolerance(&self) -> Option<f64> {
        self.tolerance_fixed.then_some(self.tolerance)
    }

    /// Check a row's tolerance argument and fix the group's with it, as
    /// [`NumericClaims::add`] does. A row repeating the fixed tolerance's bits (every row of a
    /// group but the first, in practice) is accepted without checking it again: the fixed one
    /// was checked.
    #[inline(always)]
    fn set_tolerance(&mut self, tolerance: Option<f64>) -> Result<()> {
        if self.tolerance_fixed && tolerance.is_some_and(|t| t.to_bits() == self.tolerance.to_bits()) {
            return Ok(());
        }
        self.fix_tolerance(check_tolerance(tolerance)?)
    }

    /// Fix the group's tolerance to a checked one, or check it is the one fixed.
    fn fix_tolerance(&mut self, tolerance: f64) -> Result<()> {
        if self.tolerance_fixed {
            return same_tolerance(self.tolerance, tolerance);
        }
        self.tolerance = tolerance;
        self.tolerance_fixed = true;
        Ok(())
    }

    /// Keep a voting row, if there is room and its weight fits the compact form: `false` when
    /// it does not (nothing is kept then).
    #[inline(always)]
    fn push(&mut self, value: f64, weight: Weight) -> bool {
        let len = self.len as usize;
        match u64::try_from(weight.units()) {
            Ok(units) if len < COMPACT_CLAIMS => {
                // -0.0 and 0.0 are the same claim.
                self.claims[len] = (value + 0.0, units);
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// The weighted median of the claims, as [`consensus_of`] finds it in their runs: sorted
    /// in place, each claim read as a run of its own (see there why that is the same answer).
    /// At most 11 sums of weights below 2^64 units cannot overflow and need no check, nor do
    /// so few claims need a check for interrupts: the final step's work per group, in
    /// straight loops.
    fn result(&mut self) -> Option<NumericConsensus> {
        let tolerance = self.tolerance().unwrap_or(0.0);
        if self.len == 0 {
            return None;
        }
        sort_compact(&mut self.claims);
        let claims = &self.claims[..self.len as usize];
        let total: u128 = claims.iter().map(|&(_, units)| u128::from(units)).sum();
        // The lower weighted quartiles and median: the first value whose cumulative weight
        // reaches each threshold, ceil(t/4), ceil(t/2), ceil(3t/4) (in that order).
        let thresholds = [total.div_ceil(4), total.div_ceil(2), total - total / 4];
        let mut found = [0.0; 3];
        let mut reached = 0;
        let mut cumulative = 0u128;
        for &(value, units) in claims.iter() {
            cumulative += u128::from(units);
            while reached < 3 && cumulative >= thresholds[reached] {
                found[reached] = value;
                reached += 1;
            }
        }
        let [low, median, high] = found;
        let mut support = 0u128;
        let mut supporters = 0u8;
        for &(value, units) in claims.iter() {
            if (value - median).abs() <= tolerance * median.abs() {
                support += u128::from(units);
                supporters += 1;
            }
        }
        Some(NumericConsensus {
            value: median,
            confidence: share(Weight::from_units(support), Weight::from_units(total)),
            agreement: f64::from(supporters) / f64::from(self.len),
            supporters: supporters.into(),
            voters: self.len.into(),
            low,
            high,
        })
    }

    /// The claims summed per distinct value, sorted: the runs the binary form holds.
    fn runs(&self) -> SmallVec<[Run; COMPACT_CLAIMS]> {
        let mut claims = self.claims;
        sort_compact(&mut claims);
        let claims = &claims[..self.len as usize];
        let mut runs: SmallVec<[Run; COMPACT_CLAIMS]> = SmallVec::new();
        for &(value, units) in claims {
            match runs.last_mut() {
                // At most 11 sums below 2^64 units each: no overflow.
                Some(run) if run.value == value => {
                    run.weight = Weight::from_units(run.weight.units() + u128::from(units));
                    run.count += 1;
                }
                _ => runs.push(Run { value, weight: Weight::from_units(units.into()), count: 1 }),
            }
        }
        runs
    }
}

/// Sort a compact state's slots by value (claims first, then the +Infinity of the empty
/// slots) with a sorting network for 11 values (35 compare-exchanges in 8 layers, the fewest
/// known; a unit test checks it sorts every input of zeros and ones, so every input): the same
/// operations whatever the values, without a branch on them. The final step sorts a state
/// whose claims are still on their way from memory (a group's state is cold by then), and the
/// comparison branches of an insertion sort, wrong one time in two on claims in no order,
/// each waited for their data. Equal values end up adjacent in some order, which the exact
/// sums over them do not see.
#[inline(always)]
fn sort_compact(claims: &mut [(f64, u64); COMPACT_CLAIMS]) {
    macro_rules! network {
        ($(($a:literal, $b:literal)),* $(,)?) => { $(compare_exchange(claims, $a, $b);)* };
    }
    #[rustfmt::skip]
    network![
        (0, 9), (1, 6), (2, 4), (3, 7), (5, 8),
        (0, 1), (3, 5), (4, 10), (6, 9), (7, 8),
        (1, 3), (2, 5), (4, 7), (8, 10),
        (0, 4), (1, 2), (3, 7), (5, 9), (6, 8),
        (0, 1), (2, 6), (4, 5), (7, 8), (9, 10),
        (2, 4), (3, 6), (5, 7), (8, 9),
        (1, 2), (3, 4), (5, 6), (7, 8),
        (2, 3), (4, 5), (6, 7),
    ];
}

/// Order slots `a < b` by value, exchanging them by a mask rather than a branch.
#[inline(always)]
fn compare_exchange(claims: &mut [(f64, u64); COMPACT_CLAIMS], a: usize, b: usize) {
    let ((x, x_units), (y, y_units)) = (claims[a], claims[b]);
    let swap = 0u64.wrapping_sub(u64::from(y < x));
    let (value, units) = ((x.to_bits() ^ y.to_bits()) & swap, (x_units ^ y_units) & swap);
    claims[a] = (f64::from_bits(x.to_bits() ^ value), x_units ^ units);
    claims[b] = (f64::from_bits(y.to_bits() ^ value), y_units ^ units);
}

/// A weight of `units` (as a compact state keeps it) for [`NumericClaims`], whose claims keep
/// weights as floats: `units × 2^-52`, exact, so that its units are `units` again. A kept
/// weight below 1 has fewer than 52 units' bits and one of 1 or more is a float times 2^52,
/// so `units` has at most 53 significant bits and converts to a float exactly.
fn weight_of_units(units: u64) -> f64 {
    units as f64 / (1u64 << super::WEIGHT_FRACTION_BITS) as f64
}

/// What [`MedianState::add`] does with a row of a group whose tolerance is the row's, judged
/// without raising: `Ok(None)` when the row does not vote (its value NULL or not finite, its
/// weight as [`Weight::vote`] judges it), `Err` for a weight out of range, else the claim: its
/// value (-0 as 0), its weight and the weight's units.
#[inline(always)]
fn vote_in_place(
    value: Option<f64>,
    weight: Option<f64>,
) -> std::result::Result<Option<(f64, f64, Weight)>, OutOfRange> {
    let Some(value) = value.filter(|v| v.is_finite()) else { return Ok(None) };
    // -0.0 and 0.0 are the same claim.
    Ok(Weight::vote(weight)?.map(|units| (value + 0.0, weight.expect("a voting weight is present"), units)))
}

impl MedianState {
    /// Count one row. NULL, NaN and infinite values and non-voting weights are ignored; the
    /// tolerance is checked on every row and must be the same for the whole group.
    #[inline]
    pub fn add(&mut self, value: Option<f64>, weight: Option<f64>, tolerance: Option<f64>) -> Result<()> {
        let compact = match &mut self.form {
            Form::Compact(compact) => compact,
            Form::Spilled(spilled) => return spilled.add(value, weight, tolerance),
        };
        compact.set_tolerance(tolerance)?;
        let Some(value) = value.filter(|v| v.is_finite()) else { return Ok(()) };
        let Some(units) = Weight::of_vote(weight)? else { return Ok(()) };
        if !compact.push(value, units) {
            self.spill().claims.add_voting(value, weight.expect("a voting weight is present"));
        }
        Ok(())
    }

    /// [`MedianState::add`] of a row that needs no memory the state does not hold: a row whose
    /// tolerance has the bits of the group's fixed one and which is ignored, fits the compact
    /// form, or joins the rows a heap state keeps as they came while they have room and no
    /// chunk of them is due to be summed ([`CHUNK`]). Any other row (a group's first, one that
    /// moves the state to the heap or grows it, one that raises an error) is left to
    /// [`MedianState::add`]: `false`, and nothing changed.
    ///
    /// It calls nothing that can fail, panic or allocate, so that the extension can count most
    /// rows, of small groups and of large ones, without the guard it sets up around calls that
    /// can raise an error.
    #[inline(always)]
    pub fn add_in_place(&mut self, value: Option<f64>, weight: Option<f64>, tolerance: Option<f64>) -> bool {
        let fixed = match &self.form {
            Form::Compact(compact) => compact.tolerance(),
            Form::Spilled(spilled) => spilled.claims.tolerance,
        };
        let same_tolerance = fixed.zip(tolerance).is_some_and(|(fixed, t)| t.to_bits() == fixed.to_bits());
        if !same_tolerance {
            return false;
        }
        match vote_in_place(value, weight) {
            Err(OutOfRange) => false,
            Ok(None) => true,
            Ok(Some((value, weight, units))) => match &mut self.form {
                Form::Compact(compact) => compact.push(value, units),
                Form::Spilled(spilled) => spilled.push_in_place(value, weight),
            },
        }
    }

    /// Move the compact form's claims to the heap.
    #[cold]
    fn spill(&mut self) -> &mut Spilled {
        if let Form::Compact(compact) = &self.form {
            let mut spilled = Spilled {
                claims: match compact.tolerance() {
                    Some(tolerance) => NumericClaims::with_tolerance(tolerance),
                    None => NumericClaims::default(),
                },
                tally: Tally::default(),
            };
            spilled.claims.claims.reserve(COMPACT_CLAIMS + 1);
            for &(value, units) in compact.claims() {
                spilled.claims.add_voting(value, weight_of_units(units));
            }
            self.form = Form::Spilled(spilled);
        }
        match &mut self.form {
            Form::Spilled(spilled) => spilled,
            Form::Compact(_) => unreachable!("the claims were just moved to the heap"),
        }
    }

    /// The group's tolerance, once a row has fixed it.
    pub fn tolerance(&self) -> Option<f64> {
        match &self.form {
            Form::Compact(compact) => compact.tolerance(),
            Form::Spilled(spilled) => spilled.claims.tolerance(),
        }
    }

    /// Fold another partial state into this one (the combine step of a parallel plan).
    pub fn merge(&mut self, other: Self) -> Result<()> {
        let other = match other.form {
            Form::Compact(other) => other,
            Form::Spilled(other) => return self.spill().merge(other),
        };
        if let Some(tolerance) = other.tolerance() {
            match &mut self.form {
                Form::Compact(compact) => compact.fix_tolerance(tolerance)?,
                Form::Spilled(spilled) => spilled.claims.set_tolerance(tolerance)?,
            }
        }
        for &(value, units) in other.claims() {
            let kept = match &mut self.form {
                Form::Compact(compact) => compact.push(value, Weight::from_units(units.into())),
                Form::Spilled(_) => false,
            };
            if !kept {
                self.spill().claims.add_voting(value, weight_of_units(units));
            }
        }
        Ok(())
    }

    /// Number of voting rows.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Compact(compact) => compact.len as usize,
            Form::Spilled(spilled) => spilled.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the state holds memory on the heap (it outgrew its compact form): a state that
    /// does not can be freed without being dropped.
    #[inline]
    pub fn owns_heap(&self) -> bool {
        matches!(self.form, Form::Spilled(_))
    }

    /// [`NumericClaims::collapse`]: sum the rows kept as they came into one run per distinct
    /// value, so that a parallel worker sends as few runs as there are distinct values. A
    /// compact state is left as it is: its few claims are summed on the stack when it is
    /// serialized, and a heap form only for that would cost more than it saves.
    pub fn collapse(&mut self) -> Result<()> {
        match &mut self.form {
            Form::Compact(_) => Ok(()),
            Form::Spilled(spilled) => spilled.collapse(),
        }
    }

    /// The weighted median and its support, or `None` when no row voted (see
    /// [`NumericClaims::result`]). The claims may be reordered or collapsed: a later row or
    /// call sees the same claims.
    pub fn result(&mut self) -> Result<Option<NumericConsensus>> {
        match &mut self.form {
            Form::Compact(compact) => Ok(compact.result()),
            Form::Spilled(spilled) => spilled.result(),
        }
    }

    /// The state's binary form (for `serialfunc`): the same bytes as [`NumericClaims::serialize`]
    /// of the same claims, whichever form holds them.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        self.serialize_as(Encoding::Fixed)
    }

    /// [`MedianState::serialize`] with the runs in as few bytes as they need
    /// ([`Encoding::Packed`]: 4 a run instead of 32 for 256 prices on a grid weighed in
    /// multiples of 1/1024), for a parallel plan's partial states: as deterministic, and read
    /// by [`MedianState::merge_serialized`] as well. The
    /// distributed aggregate's tally keeps the form [`MedianState::serialize`] writes.
    pub fn serialize_partial(&self) -> Result<Vec<u8>> {
        self.serialize_as(Encoding::Packed)
    }

    fn serialize_as(&self, encoding: Encoding) -> Result<Vec<u8>> {
        match &self.form {
            Form::Compact(compact) => Ok(write_runs(compact.tolerance(), &compact.runs(), encoding)),
            Form::Spilled(spilled) => spilled.serialize_as(encoding),
        }
    }

    /// Read a state written by [`MedianState::serialize`], validated as
    /// [`MedianState::merge_serialized`] does.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        let mut state = Self::default();
        state.merge_serialized(bytes)?;
        Ok(state)
    }

    /// [`MedianState::merge`] of a state written by [`MedianState::serialize`], read straight
    /// from its bytes (the combine step of a parallel plan, without building the partial
    /// state), validated as [`read_runs`] says. Runs move the state to the heap (a run sums
    /// claims, which the compact form does not hold); bytes with only a tolerance do not. On an
    /// error `self` may hold part of them, which does not matter because the error ends the
    /// query.
    pub fn merge_serialized(&mut self, bytes: &[u8]) -> Result<()> {
        let runs = match &mut self.form {
            Form::Compact(compact) => read_runs(bytes, |tolerance| compact.fix_tolerance(tolerance))?,
            Form::Spilled(spilled) => return spilled.claims.merge_serialized(bytes),
        };
        if runs.is_empty() {
            return Ok(());
        }
        self.spill().claims.merge_sorted_runs(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn median(rows: &[(Option<f64>, Option<f64>)], tolerance: f64) -> Option<NumericConsensus> {
        let mut s = MedianState::default();
        for (v, w) in rows {
            s.add(*v, *w, Some(tolerance)).unwrap();
        }
        s.result().unwrap()
    }

    fn ones(values: &[f64]) -> Vec<(Option<f64>, Option<f64>)> {
        values.iter().map(|&v| (Some(v), Some(1.0))).collect()
    }

    #[test]
    fn lower_weighted_median_and_quartiles() {
        let c = median(&ones(&[1.0, 2.0, 3.0, 4.0]), 0.0).unwrap();
        assert_eq!((c.value, c.low, c.high), (2.0, 1.0, 3.0));
        let c = median(&ones(&[5.0, 1.0, 3.0]), 0.0).unwrap();
        assert_eq!((c.value, c.low, c.high), (3.0, 1.0, 5.0));
        // A heavy voter pulls the median to its value.
        let c = median(&[(Some(100.0), Some(3.0)), (Some(1.0), Some(1.0)), (Some(2.0), Some(1.0))], 0.0).unwrap();
        assert_eq!((c.value, c.supporters, c.voters), (100.0, 1, 3));
        assert_eq!(c.confidence, 0.6);
    }

    #[test]
    fn tolerance_decides_supporters() {
        let rows = ones(&[100.0, 104.0, 96.0, 150.0, 100.0]);
        let exact = median(&rows, 0.0).unwrap();
        assert_eq!((exact.value, exact.supporters, exact.voters), (100.0, 2, 5));
        let loose = median(&rows, 0.05).unwrap();
        assert_eq!(loose.supporters, 4);
        assert_eq!(loose.agreement, 0.8);
        assert_eq!(loose.confidence, 0.8);
    }

    #[test]
    fn zero_median_needs_exact_zero() {
        let c = median(&ones(&[0.0, -0.0, 0.0, 1e-300]), 0.5).unwrap();
        assert_eq!((c.value, c.supporters), (0.0, 3));
        assert!(c.value.is_sign_positive());
    }

    #[test]
    fn ignored_rows() {
        assert_eq!(median(&[], 0.0), None);
        let rows = [
            (None, Some(1.0)),
            (Some(f64::NAN), Some(1.0)),
            (Some(f64::INFINITY), Some(1.0)),
            (Some(f64::NEG_INFINITY), Some(1.0)),
            (Some(1.0), None),
            (Some(1.0), Some(f64::NAN)),
            (Some(1.0), Some(0.0)),
        ];
        assert_eq!(median(&rows, 0.0), None);
        let mut with_one = rows.to_vec();
        with_one.push((Some(7.0), Some(2.0)));
        let c = median(&with_one, 0.0).unwrap();
        assert_eq!((c.value, c.voters, c.low, c.high), (7.0, 1, 7.0, 7.0));
    }

    #[test]
    fn bad_tolerances_are_errors() {
        for t in [f64::NAN, -0.1, f64::INFINITY, f64::NEG_INFINITY] {
            let mut s = MedianState::default();
            assert_eq!(s.add(Some(1.0), Some(1.0), Some(t)).unwrap_err().kind, crate::ErrorKind::InvalidParameter);
        }
        let mut s = MedianState::default();
        s.add(Some(1.0), Some(1.0), Some(0.1)).unwrap();
        assert!(s.add(Some(1.0), Some(1.0), Some(0.2)).is_err());
        assert!(s.add(Some(1.0), Some(1.0), None).is_err(), "NULL tolerance means 0, which differs");
        let mut a = MedianState::default();
        a.add(Some(1.0), Some(1.0), Some(0.1)).unwrap();
        let mut b = MedianState::default();
        b.add(Some(1.0), Some(1.0), Some(0.3)).unwrap();
        assert!(a.merge(b).is_err());
    }

    #[test]
    fn partial_states_merge_to_the_serial_answer() {
        let rows: Vec<(f64, f64)> =
            (0..101).map(|i| (((i * 37) % 29) as f64 * 1.5 - 3.0, [0.1, 0.2, 0.3, 1.0 / 3.0][i % 4])).collect();
        let mut serial = MedianState::default();
        for &(v, w) in &rows {
            serial.add(Some(v), Some(w), Some(0.1)).unwrap();
        }
        let expected = serial.result().unwrap();
        for parts in [2usize, 5] {
            let mut partials: Vec<MedianState> = (0..parts).map(|_| MedianState::default()).collect();
            for (i, &(v, w)) in rows.iter().enumerate().rev() {
                partials[(i * 3) % parts].add(Some(v), Some(w), Some(0.1)).unwrap();
            }
            // As the combine step reads them: deserialized and merged, or merged from the bytes.
            let mut merged = MedianState::default();
            let mut merged_from_bytes = MedianState::default();
            for p in partials {
                merged.merge(MedianState::deserialize(&p.serialize().unwrap()).unwrap()).unwrap();
                merged_from_bytes.merge_serialized(&p.serialize().unwrap()).unwrap();
            }
            assert_eq!(merged.result().unwrap(), expected);
            assert_eq!(merged_from_bytes.result().unwrap(), expected);
        }
    }

    #[test]
    fn corrupt_serialized_states_are_errors() {
        let mut s = MedianState::default();
        s.add(Some(2.5), Some(1.0), Some(0.1)).unwrap();
        s.add(Some(3.5), Some(1.0), Some(0.1)).unwrap();
        let good = s.serialize().unwrap();
        assert!(MedianState::deserialize(&good).is_ok());
        for cut in 0..good.len() {
            assert!(MedianState::deserialize(&good[..cut]).is_err());
        }
        // magic, version, flag, tolerance (8), count (8), then runs of value (8), units (16), count (8).
        let first = 19;
        let mut nan_value = good.clone();
        nan_value[first..first + 8].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(MedianState::deserialize(&nan_value).is_err());
        let mut out_of_order = good.clone();
        out_of_order[first..first + 8].copy_from_slice(&4.0f64.to_le_bytes());
        assert!(MedianState::deserialize(&out_of_order).is_err());
        let mut no_weight = good.clone();
        no_weight[first + 8..first + 24].copy_from_slice(&0u128.to_le_bytes());
        assert!(MedianState::deserialize(&no_weight).is_err());
        let mut no_claims = good.clone();
        no_claims[first + 24..first + 32].copy_from_slice(&0u64.to_le_bytes());
        assert!(MedianState::deserialize(&no_claims).is_err());
        let mut bad_flag = good;
        bad_flag[2] = 7;
        assert!(MedianState::deserialize(&bad_flag).is_err());
    }

    /// A small group read as one run per row answers as its runs summed per value, with many
    /// equal values and weights that put quantile thresholds exactly on a run's end.
    #[test]
    fn small_groups_read_row_by_row_give_the_answer_of_their_runs() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..3000 {
            let rows = 1 + next(SMALL_GROUP as u64) as usize;
            let mut state = NumericClaims::<11>::default();
            for _ in 0..rows {
                let value = [0.0, -0.0, 1.0, 2.0, 2.5, 100.0][next(6) as usize];
                let weight = [0.25, 0.5, 1.0, 0.125, 1.0 / 3.0][next(5) as usize];
                state.add(Some(value), Some(weight), Some(0.3)).unwrap();
            }
            let mut collapsed = state.clone();
            collapsed.collapse().unwrap();
            assert_eq!(state.result().unwrap(), collapsed.result().unwrap());
        }
    }

    /// Collapsing the rows into runs, at any point and in any split, gives the answer of the
    /// rows kept as they came: many rows over few values, equal values from different parts.
    #[test]
    fn collapsed_runs_give_the_answer_of_the_rows() {
        let rows: Vec<(f64, f64)> =
            (0..400).map(|i| (((i * 7) % 13) as f64 * 250.0, [0.1, 0.25, 1.0 / 3.0][i % 3])).collect();
        let mut rows_only = NumericClaims::<11>::default();
        for &(v, w) in &rows {
            rows_only.add(Some(v), Some(w), Some(0.05)).unwrap();
        }
        let mut once = rows_only.clone();
        let expected = rows_only.result().unwrap().unwrap();
        assert_eq!(expected.voters, 400);
        // Collapsed halfway, then more rows, then merged with a collapsed partial.
        once.claims.truncate(150);
        once.runs.clear();
        once.collapse().unwrap();
        for &(v, w) in &rows[150..300] {
            once.add(Some(v), Some(w), Some(0.05)).unwrap();
        }
        let mut rest = NumericClaims::<11>::default();
        for &(v, w) in &rows[300..] {
            rest.add(Some(v), Some(w), Some(0.05)).unwrap();
        }
        rest.collapse().unwrap();
        once.merge(rest).unwrap();
        assert_eq!(once.result().unwrap().unwrap(), expected);
        assert_eq!(once.runs.len(), 13);
    }

    /// The rows of each case through the compact form and through the heap form
    /// ([`NumericClaims`], which every state was before the compact form).
    fn both_forms(rows: &[(Option<f64>, Option<f64>)], tolerance: Option<f64>) -> (MedianState, NumericClaims<11>) {
        let (mut compact, mut heap) = (MedianState::default(), NumericClaims::<11>::default());
        for &(v, w) in rows {
            compact.add(v, w, tolerance).unwrap();
            heap.add(v, w, tolerance).unwrap();
        }
        (compact, heap)
    }

    /// The compact form answers and serializes as the heap form does, on both sides of each of
    /// its limits (claims, a weight's units), row by row, merged from bytes and from states.
    #[test]
    fn the_compact_form_agrees_with_the_heap_form() {
        let weights = [0.1, 0.25, 1.0 / 3.0, 1.0, 2.5, 4095.999, 4096.0, 1e15, 2f64.powi(-53), 1e-17];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut cases: Vec<Vec<(Option<f64>, Option<f64>)>> = vec![
            vec![],
            vec![(None, Some(1.0)), (Some(f64::NAN), Some(1.0)), (Some(2.0), Some(0.0))],
            vec![(Some(-0.0), Some(0.5)), (Some(0.0), Some(0.25)), (Some(1.0), Some(1.0))],
            (0..COMPACT_CLAIMS).map(|i| (Some(i as f64 * 1.5), Some(0.5))).collect(),
            (0..=COMPACT_CLAIMS).map(|i| (Some(i as f64 * 1.5), Some(0.5))).collect(),
            (0..40).map(|i| (Some((i % 3) as f64), Some(1.0 / 3.0))).collect(),
            vec![(Some(1.0), Some(0.5)), (Some(2.0), Some(4096.0)), (Some(3.0), Some(0.5))],
            vec![(Some(1.0), Some(4095.999)), (Some(2.0), Some(4095.999)), (Some(1.0), Some(1e15))],
        ];
        for _ in 0..2000 {
            let rows = next(2 * COMPACT_CLAIMS as u64 + 2) as usize;
            cases.push(
                (0..rows)
                    .map(|_| {
                        let value = [0.0, -0.0, 1.0, 2.0, 2.5, 100.0, -7.0][next(7) as usize];
                        (Some(value), Some(weights[next(weights.len() as u64) as usize]))
                    })
                    .collect(),
            );
        }
        for rows in &cases {
            for tolerance in [Some(0.3), None] {
                let (compact, heap) = both_forms(rows, tolerance);
                let spills = rows
                    .iter()
                    .filter(|(v, w)| v.is_some_and(f64::is_finite) && Weight::of_vote(*w).unwrap().is_some());
                let heavy = spills.clone().any(|(_, w)| w.unwrap() >= 4096.0);
                assert_eq!(compact.owns_heap(), heavy || spills.count() > COMPACT_CLAIMS, "{rows:?}");
                assert_eq!(compact.serialize().unwrap(), heap.serialize().unwrap(), "{rows:?}");
                assert_eq!((compact.len(), compact.tolerance()), (heap.len(), heap.tolerance()));
                assert_eq!(compact.clone().result().unwrap(), heap.clone().result().unwrap(), "{rows:?}");
                // Split in two partial states, merged as states and from their bytes, into an
                // empty state and into a state holding the first part.
                let (first, second) = rows.split_at(rows.len() / 3);
                let (a, _) = both_forms(first, tolerance);
                let (b, _) = both_forms(second, tolerance);
                let mut merged = a.clone();
                merged.merge(b.clone()).unwrap();
                let mut from_bytes = MedianState::deserialize(&a.serialize().unwrap()).unwrap();
                from_bytes.merge_serialized(&b.serialize().unwrap()).unwrap();
                let mut into_compact = a.clone();
                into_compact.merge_serialized(&b.serialize().unwrap()).unwrap();
                for mut state in [merged, from_bytes, into_compact] {
                    assert_eq!(state.serialize().unwrap(), heap.serialize().unwrap(), "{rows:?}");
                    assert_eq!(state.result().unwrap(), heap.clone().result().unwrap(), "{rows:?}");
                }
            }
        }
    }

    /// A state that spilled keeps its tolerance and its claims, and the limits are where the
    /// compact form says: 11 claims, weights below 4096.
    #[test]
    fn the_compact_form_spills_at_its_limits() {
        let mut state = MedianState::default();
        for i in 0..COMPACT_CLAIMS {
            state.add(Some(i as f64), Some(1.0), Some(0.25)).unwrap();
        }
        assert!(!state.owns_heap(), "{COMPACT_CLAIMS} claims fit");
        let mut full = state.clone();
        full.add(Some(-1.0), Some(1.0), Some(0.25)).unwrap();
        assert!(full.owns_heap());
        assert_eq!((full.len(), full.tolerance()), (COMPACT_CLAIMS + 1, Some(0.25)));
        assert!(full.add(Some(1.0), Some(1.0), Some(0.5)).is_err(), "the spilled state kept the tolerance");
        let mut heavy = MedianState::default();
        heavy.add(Some(1.0), Some(4096.0 - 2f64.powi(-40)), None).unwrap();
        assert!(!heavy.owns_heap());
        heavy.add(Some(1.0), Some(4096.0), None).unwrap();
        assert!(heavy.owns_heap());
        // Only a tolerance, from bytes, keeps a compact state compact.
        let mut tolerance_only = MedianState::default();
        tolerance_only.add(None, None, Some(0.5)).unwrap();
        let mut merged = MedianState::default();
        merged.merge_serialized(&tolerance_only.serialize().unwrap()).unwrap();
        assert!(!merged.owns_heap());
        assert_eq!(merged.tolerance(), Some(0.5));
        assert!(merged.merge_serialized(&full.serialize().unwrap()).is_err(), "tolerances differ");
    }

    /// A weight kept in units converts back to a float of the same units, for every weight
    /// the compact form keeps (below 4096): the heap form then sums the same weights.
    #[test]
    fn kept_units_convert_back_exactly() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let w = f64::from_bits(seed >> 1);
            let Ok(Some(weight)) = Weight::of_vote(Some(w)) else { continue };
            let Ok(units) = u64::try_from(weight.units()) else { continue };
            assert_eq!(super::super::units_of(weight_of_units(units)), u128::from(units), "{w:e}");
        }
        for w in [2f64.powi(-53), 0.1, 1.0, 1.0 + f64::EPSILON, 4095.999999999999] {
            let units = u64::try_from(Weight::of_vote(Some(w)).unwrap().unwrap().units()).unwrap();
            assert_eq!(super::super::units_of(weight_of_units(units)), u128::from(units), "{w:e}");
        }
    }

    /// The 0-1 principle: a network that sorts every sequence of zeros and ones sorts every
    /// sequence. The claims' weights follow their values (a permutation of the slots).
    #[test]
    fn the_network_sorts_every_input() {
        for bits in 0..1u32 << COMPACT_CLAIMS {
            let mut claims: [(f64, u64); COMPACT_CLAIMS] =
                std::array::from_fn(|i| (f64::from(bits >> i & 1), i as u64));
            let mut expected = claims;
            expected.sort_by(|a, b| a.0.total_cmp(&b.0));
            sort_compact(&mut claims);
            assert!(claims.iter().map(|c| c.0).eq(expected.iter().map(|c| c.0)), "{bits:b}");
            let mut slots: Vec<u64> = claims.iter().map(|c| c.1).collect();
            slots.sort_unstable();
            assert!(slots.iter().copied().eq(0..COMPACT_CLAIMS as u64));
        }
    }

    #[test]
    fn the_compact_form_fills_192_bytes() {
        assert_eq!(std::mem::size_of::<MedianState>(), 192);
        assert_eq!(std::mem::align_of::<MedianState>(), 8);
    }

    /// Rows counted by [`MedianState::add_in_place`] where it takes them, else by
    /// [`MedianState::add`], give the state `add` alone gives, and a row it leaves changes
    /// nothing: ignored rows, errors, tolerances of other bits, spills.
    #[test]
    fn add_in_place_counts_rows_as_add_does() {
        let values = [Some(1.0), Some(-0.0), Some(2.5), None, Some(f64::NAN), Some(f64::INFINITY)];
        let weights = [
            Some(0.5),
            Some(1.0 / 3.0),
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(1e-17),
            Some(2f64.powi(-53)),
            Some(4096.0),
            Some(1e15),
            Some(1e16),
            Some(f64::INFINITY),
        ];
        let tolerances = [Some(0.25), Some(0.25), Some(0.25), Some(0.25), None, Some(-0.0), Some(0.0), Some(f64::NAN)];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let (mut both, mut add_only) = (MedianState::default(), MedianState::default());
            for _ in 0..next(20) {
                let (v, w, t) = (values[next(values.len())], weights[next(weights.len())], tolerances[next(8)]);
                let before = format!("{both:?}");
                let taken = both.add_in_place(v, w, t);
                if !taken {
                    assert_eq!(format!("{both:?}"), before, "a row left to add changes nothing");
                }
                let by_add = add_only.add(v, w, t);
                let by_both = if taken { Ok(()) } else { both.add(v, w, t) };
                assert_eq!(by_both.map_err(|e| e.kind), by_add.map_err(|e| e.kind), "{v:?} {w:?} {t:?}");
                assert_eq!(format!("{both:?}"), format!("{add_only:?}"));
            }
        }
    }

    /// The same over large groups, whose rows mostly join a heap state's rows kept as they
    /// came: on either side of each chunk's sum, with the tally open (few distinct values) and
    /// closed (many), among rows that are ignored, raise an error or bring another tolerance.
    #[test]
    fn add_in_place_counts_large_groups_rows_as_add_does() {
        let odd = [
            (Some(f64::NAN), Some(1.0), Some(0.25)),
            (Some(1.0), Some(0.0), Some(0.25)),
            (Some(1.0), Some(1e-17), Some(0.25)),
            (Some(1.0), Some(1e16), Some(0.25)),
            (Some(1.0), Some(1.0), Some(0.5)),
            (Some(1.0), Some(1.0), None),
        ];
        let mut in_place_on_the_heap = 0;
        for (group, distinct) in [(1u64, 40u64), (2, 3000), (3, 7)] {
            let (mut both, mut add_only) = (MedianState::default(), MedianState::default());
            for (i, (v, w)) in grid_rows(5000, distinct, group).into_iter().enumerate() {
                let (v, w, t) = if i % 601 == 600 { odd[(i / 601) % odd.len()] } else { (v, w, Some(0.25)) };
                let spilled = both.owns_heap();
                let before = both.clone();
                let taken = both.add_in_place(v, w, t);
                if !taken {
                    assert_eq!(format!("{both:?}"), format!("{before:?}"), "a row left to add changes nothing");
                }
                in_place_on_the_heap += usize::from(taken && spilled);
                let by_add = add_only.add(v, w, t);
                let by_both = if taken { Ok(()) } else { both.add(v, w, t) };
                assert_eq!(by_both.map_err(|e| e.kind), by_add.map_err(|e| e.kind), "row {i}: {v:?} {w:?} {t:?}");
                // Every row the states could part at, and some others (formatting is dear).
                if !taken || i % 61 == 0 {
                    assert_eq!(format!("{both:?}"), format!("{add_only:?}"), "row {i}");
                }
            }
            assert_eq!(format!("{both:?}"), format!("{add_only:?}"));
            assert_eq!(both.result().unwrap(), add_only.result().unwrap());
        }
        assert!(in_place_on_the_heap > 10_000, "most rows of large groups are counted in place");
    }

    /// The forms a state takes, as a test builds them from rows: compact, spilled with its rows
    /// as they came, spilled with an open tally (and rows after its last chunk), spilled with
    /// a closed tally (too many distinct values).
    fn form_of(state: &MedianState) -> &'static str {
        match &state.form {
            Form::Compact(_) => "compact",
            Form::Spilled(s) if s.tally.slots.is_empty() => "rows",
            Form::Spilled(s) if s.tally.closed => "closed tally",
            Form::Spilled(_) => "open tally",
        }
    }

    /// Rows of a group over `distinct` values (a grid, as prices are, and -0 among them) with
    /// weights of many magnitudes, from `seed`.
    fn grid_rows(n: usize, distinct: u64, seed: u64) -> Vec<(Option<f64>, Option<f64>)> {
        let weights = [0.1, 0.25, 1.0 / 3.0, 1.0, 2.5, 4096.0, 1e15, 2f64.powi(-53), 1e-17, 0.0];
        let mut seed = seed | 1;
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = seed % distinct;
                let value = if k == 0 {
                    -0.0
                } else {
                    200_000.0 + k as f64 * 500.0 * if k.is_multiple_of(3) { -1.0 } else { 1.0 }
                };
                (Some(value), Some(weights[(seed >> 20) as usize % weights.len()]))
            })
            .collect()
    }

    /// A large group through the tally answers, counts and serializes as its rows kept as they
    /// came ([`NumericClaims`], which every large group was before the tally), on both sides of
    /// each limit: a chunk of rows, the distinct values a tally takes; and after a result, more
    /// rows (a window aggregate's running state).
    #[test]
    fn the_tally_agrees_with_the_rows_as_they_came() {
        let sizes = [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7, 5000];
        let distincts = [1, 3, 256, TALLY_VALUES as u64 - 1, TALLY_VALUES as u64 + 1, 4000];
        let mut forms = std::collections::BTreeSet::new();
        for (i, &n) in sizes.iter().enumerate() {
            for (j, &distinct) in distincts.iter().enumerate() {
                let rows = grid_rows(n, distinct, (i * 31 + j) as u64);
                for tolerance in [Some(0.01), None] {
                    let (mut tallied, mut heap) = both_forms(&rows, tolerance);
                    forms.insert(form_of(&tallied));
                    assert_eq!((tallied.len(), tallied.tolerance()), (heap.len(), heap.tolerance()));
                    assert_eq!(tallied.serialize().unwrap(), heap.serialize().unwrap(), "{n} {distinct}");
                    assert_eq!(tallied.clone().result().unwrap(), heap.clone().result().unwrap(), "{n} {distinct}");
                    let mut collapsed = tallied.clone();
                    collapsed.collapse().unwrap();
                    assert_eq!(collapsed.serialize().unwrap(), heap.serialize().unwrap());
                    // A result, then more rows, then a result again.
                    assert_eq!(tallied.result().unwrap(), heap.result().unwrap());
                    for &(v, w) in &rows[..n / 2] {
                        tallied.add(v, w, tolerance).unwrap();
                        heap.add(v, w, tolerance).unwrap();
                    }
                    assert_eq!(tallied.len(), heap.len());
                    assert_eq!(tallied.serialize().unwrap(), heap.serialize().unwrap(), "{n} {distinct}");
                    assert_eq!(tallied.result().unwrap(), heap.result().unwrap(), "{n} {distinct}");
                }
            }
        }
        assert_eq!(forms.into_iter().collect::<Vec<_>>(), ["closed tally", "open tally", "rows"]);
    }

    /// Partial states of every form merged into one another, as states and from their bytes,
    /// give the state of all their rows.
    #[test]
    fn merges_of_every_form_pair_agree() {
        let parts: Vec<Vec<(Option<f64>, Option<f64>)>> = vec![
            grid_rows(5, 4, 1),
            grid_rows(40, 7, 2),
            grid_rows(3 * CHUNK + 11, 300, 3),
            grid_rows(3 * TALLY_VALUES, 4000, 4),
        ];
        let states: Vec<MedianState> = parts.iter().map(|rows| both_forms(rows, Some(0.05)).0).collect();
        let forms: Vec<&str> = states.iter().map(form_of).collect();
        assert_eq!(forms, ["compact", "rows", "open tally", "closed tally"]);
        for (a, first) in parts.iter().enumerate() {
            for (b, second) in parts.iter().enumerate() {
                let all: Vec<_> = first.iter().chain(second).copied().collect();
                let (_, heap) = both_forms(&all, Some(0.05));
                let mut merged = states[a].clone();
                merged.merge(states[b].clone()).unwrap();
                let mut from_bytes = states[a].clone();
                from_bytes.merge_serialized(&states[b].serialize().unwrap()).unwrap();
                let mut from_empty = MedianState::default();
                from_empty.merge_serialized(&states[a].serialize().unwrap()).unwrap();
                from_empty.merge_serialized(&states[b].serialize().unwrap()).unwrap();
                for mut state in [merged, from_bytes, from_empty] {
                    assert_eq!(state.len(), heap.len(), "{} + {}", forms[a], forms[b]);
                    assert_eq!(state.serialize().unwrap(), heap.serialize().unwrap(), "{} + {}", forms[a], forms[b]);
                    assert_eq!(state.result().unwrap(), heap.clone().result().unwrap(), "{} + {}", forms[a], forms[b]);
                }
            }
        }
        assert!(heap_result_of_all(&parts).is_some());
    }

    fn heap_result_of_all(parts: &[Vec<(Option<f64>, Option<f64>)>]) -> Option<NumericConsensus> {
        let all: Vec<_> = parts.iter().flatten().copied().collect();
        both_forms(&all, Some(0.05)).1.result().unwrap()
    }

    /// A tally takes no chunk that could make a run's sum overflow: it closes a row before
    /// [`TALLY_ROWS`], and the group keeps its later rows as they come.
    #[test]
    fn the_tally_closes_before_its_sums_could_overflow() {
        let rows: Vec<_> = (0..3 * CHUNK).map(|i| (Some((i % 10) as f64), Some(0.5 + (i % 7) as f64))).collect();
        for (before, closes) in [(TALLY_ROWS - 2 * CHUNK as u64 - 1, false), (TALLY_ROWS - 2 * CHUNK as u64, true)] {
            let (mut state, heap) = both_forms(&rows[..CHUNK], None);
            let Form::Spilled(spilled) = &mut state.form else { panic!("a chunk spills") };
            assert!(spilled.claims.claims.is_empty() && !spilled.tally.closed);
            let folded = spilled.tally.rows;
            // As if the tally had summed `before` rows (their runs are not there: only the
            // limit is checked here).
            spilled.tally.rows = before;
            for &(v, w) in &rows[CHUNK..] {
                state.add(v, w, None).unwrap();
            }
            let Form::Spilled(spilled) = &mut state.form else { unreachable!() };
            assert_eq!(spilled.tally.closed, closes, "{before}");
            assert!(spilled.tally.rows < TALLY_ROWS);
            assert_eq!(spilled.claims.claims.len(), if closes { CHUNK } else { 0 });
            spilled.tally.rows -= before - folded;
            let mut all = heap;
            for &(v, w) in &rows[CHUNK..] {
                all.add(v, w, None).unwrap();
            }
            assert_eq!(state.serialize().unwrap(), all.serialize().unwrap());
            assert_eq!(state.result().unwrap(), all.result().unwrap());
        }
    }

    /// The heaviest weights summed in a tally (a run's units far above 2^64) give the sums of
    /// the rows kept as they came.
    #[test]
    fn heavy_weights_sum_in_a_tally_as_in_rows() {
        let mut state = MedianState::default();
        let mut heap = NumericClaims::<11>::default();
        for i in 0..2 * CHUNK {
            state.add(Some((i % 2) as f64), Some(1e15), None).unwrap();
            heap.add(Some((i % 2) as f64), Some(1e15), None).unwrap();
        }
        assert_eq!(form_of(&state), "open tally");
        assert_eq!(state.clone().result().unwrap(), heap.clone().result().unwrap());
        assert_eq!(state.serialize().unwrap(), heap.serialize().unwrap());
    }

    /// The widths [`Encoding::Packed`] should take for `runs`, found by trying every width: for
    /// each field, the most low zero bits all runs share, then the fewest whole bytes that hold
    /// every field without them (the first run's step, 0, needs none).
    fn narrowest_packing(runs: &[Run]) -> Packing {
        let steps: Vec<u128> = runs
            .windows(2)
            .map(|pair| u128::from(value_order::key(pair[1].value) - value_order::key(pair[0].value)))
            .collect();
        let units: Vec<u128> = runs.iter().map(|run| run.weight.units()).collect();
        let counts: Vec<u128> = runs.iter().map(|run| u128::from(run.count)).collect();
        let shift = |fields: &[u128], most: u32| (0..most).rev().find(|&s| fields.iter().all(|f| f % (1 << s) == 0));
        let width = |fields: &[u128], shift: u32, least: u8| {
            (least..=16)
                .find(|&w| fields.iter().all(|f| w == 16 || (f >> shift) < 1u128 << (8 * u32::from(w))))
                .unwrap()
        };
        let step_shift = if steps.iter().all(|&s| s == 0) { 0 } else { shift(&steps, 64).unwrap() };
        let units_shift = if runs.is_empty() { 0 } else { shift(&units, 128).unwrap() };
        Packing {
            step_shift: step_shift as u8,
            step_width: width(&steps, step_shift, 0),
            units_shift: units_shift as u8,
            units_width: width(&units, units_shift, 1),
            count_width: width(&counts, 0, 1),
        }
    }

    /// Packed partial states read back to the runs of the fixed form, at the edges of every
    /// field's width (units, counts, steps between values of either sign, the whole range of
    /// finite values), in the narrowest widths and as many bytes as those widths say; and
    /// every state form's partial bytes merge as its fixed bytes do.
    #[test]
    fn the_packed_encoding_reads_back_the_runs() {
        let edges: [(u128, u64); 10] = [
            (1, 1),
            (u128::from(u64::MAX), 255),
            (u128::from(u64::MAX) + 1, 256),
            (3 << 40, 65_535),
            (5 << 60, 65_536),
            (7, u64::from(u32::MAX)),
            (9, u64::from(u32::MAX) + 1),
            (u128::MAX >> 1, u64::MAX),
            (1 << 100, 2),
            (12_345 << 42, 3),
        ];
        let value_sets: [&[f64]; 4] = [
            &[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            &[-f64::MAX, -1e-300, -f64::MIN_POSITIVE, 0.0, 5e-324, 1e-10, 0.75, 1e10, 1e300, f64::MAX],
            &[200_000.0, 200_500.0, 201_000.0, 262_000.0, 262_144.0, 262_500.0, 300_000.0, 1e6, 1.5e6, 2e6],
            &[0.1, 0.2, 0.3, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        ];
        for values in value_sets {
            for first in 0..edges.len() {
                for last in first..=edges.len() {
                    let runs: Vec<Run> = edges[first..last]
                        .iter()
                        .zip(&values[first..last])
                        .map(|(&(units, count), &value)| Run { value, weight: Weight::from_units(units), count })
                        .collect();
                    let packing = narrowest_packing(&runs);
                    assert_eq!(Packing::of(&runs), packing, "{runs:?}");
                    for tolerance in [None, Some(0.5)] {
                        let packed = write_runs(tolerance, &runs, Encoding::Packed);
                        let mut read_tolerance = None;
                        let read = read_runs(&packed, |t| {
                            read_tolerance = Some(t);
                            Ok(())
                        })
                        .unwrap();
                        assert_eq!((read, read_tolerance), (runs.clone(), tolerance));
                        // magic, version, flags, tolerance, widths, count, the first key, the runs.
                        let header = 3 + if tolerance.is_some() { 8 } else { 0 } + 5 + 8;
                        let first_key = if runs.is_empty() { 0 } else { 8 };
                        assert_eq!(packed.len(), header + first_key + runs.len() * packing.run_width());
                    }
                }
            }
        }
        let parts =
            [grid_rows(5, 4, 1), grid_rows(40, 7, 2), grid_rows(3 * CHUNK + 11, 300, 3), grid_rows(4 * CHUNK, 4000, 4)];
        for rows in &parts {
            let (state, heap) = both_forms(rows, Some(0.05));
            let mut from_packed = MedianState::default();
            from_packed.merge_serialized(&state.serialize_partial().unwrap()).unwrap();
            from_packed.merge_serialized(&state.serialize_partial().unwrap()).unwrap();
            let mut from_fixed = NumericClaims::<11>::default();
            from_fixed.merge_serialized(&heap.serialize().unwrap()).unwrap();
            from_fixed.merge_serialized(&heap.serialize().unwrap()).unwrap();
            assert_eq!(from_packed.serialize().unwrap(), from_fixed.serialize().unwrap(), "{}", form_of(&state));
            assert_eq!(from_packed.result().unwrap(), from_fixed.result().unwrap());
            assert!(state.serialize_partial().unwrap().len() < state.serialize().unwrap().len() || state.is_empty());
        }
    }

    /// A large group of 256 prices on a grid of 500 weighed in multiples of 1/1024 (the
    /// benchmark's) packs its runs in 4 bytes each: a step in 1 byte, units in 2, a count in 1.
    #[test]
    fn prices_on_a_grid_pack_in_four_bytes_a_run() {
        let mut state = MedianState::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let price = 200_000.0 + (seed & 255) as f64 * 500.0;
            state.add(Some(price), Some((1 + (seed >> 20) % 1024) as f64 / 1024.0), Some(0.01)).unwrap();
        }
        state.collapse().unwrap();
        let Form::Spilled(spilled) = &state.form else { panic!("3000 rows spill") };
        // A step of 500 is 125 · 2^37 keys below 2^18 and 125 · 2^36 above, the step across
        // it 161 · 2^36: shifted by 36 each fits a byte. Units are multiples of 2^42.
        let packing = Packing { step_shift: 36, step_width: 1, units_shift: 42, units_width: 2, count_width: 1 };
        assert_eq!((spilled.claims.runs.len(), Packing::of(&spilled.claims.runs)), (256, packing));
        assert_eq!(state.serialize_partial().unwrap().len(), 3 + 8 + 5 + 8 + 8 + 256 * 4);
    }

    /// Malformed packed bytes are errors: every truncation, trailing bytes, widths it does not
    /// write, unknown flags, a first run that steps or a later one that does not, a value that
    /// overflows its key or is not finite or is -0, a weight whose shift loses bits, a run
    /// with no weight or no claims.
    #[test]
    fn corrupt_packed_states_are_errors() {
        let runs = [
            Run { value: 1.0, weight: Weight::from_units(7), count: 300 },
            Run { value: 2.0, weight: Weight::from_units(9), count: 1 },
        ];
        let good = write_runs(Some(0.25), &runs, Encoding::Packed);
        assert_eq!(read_runs(&good, |_| Ok(())).unwrap(), runs);
        let corrupt = |bytes: &[u8]| MedianState::deserialize(bytes).map(|_| ()).map_err(|e| e.kind);
        for cut in 0..good.len() {
            assert_eq!(corrupt(&good[..cut]), Err(crate::ErrorKind::CorruptState), "{cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(corrupt(&longer), Err(crate::ErrorKind::CorruptState));
        // magic, version, flags, tolerance (8), widths (5) at 11, count (8) at 16, the first key
        // (8) at 24, then runs of step (1: 1.0 to 2.0 is 2^52 keys, shifted 52), units (1) and
        // count (2), at 32 and 36.
        assert_eq!(&good[11..16], &[52, 1, 0, 1, 2]);
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut with = |what: &'static str, at: usize, bytes: &[u8]| {
            let mut bad = good.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            cases.push((what, bad));
        };
        with("unknown flag", 2, &[4 | PACKED_RUNS | HAS_TOLERANCE]);
        with("step shift 64", 11, &[64]);
        with("step width 9", 12, &[9]);
        with("units shift 128", 13, &[128]);
        with("units width 0", 14, &[0]);
        with("units width 17", 14, &[17]);
        with("count width 0", 15, &[0]);
        with("count width 9", 15, &[9]);
        with("more runs than bytes", 16, &3u64.to_le_bytes());
        with("a first run that steps", 32, &[1]);
        with("a later run that does not", 36, &[0]);
        with("no weight", 33, &[0]);
        with("no claims", 38, &[0, 0]);
        with("a weight shifted out of range", 13, &[126]);
        with("a first key that is not a value's", 24, &(u64::MAX - 1).to_le_bytes());
        with("-0", 24, &value_order::key(-0.0).to_le_bytes());
        with("NaN", 24, &value_order::key(f64::NAN).to_le_bytes());
        with("infinity", 24, &value_order::key(f64::NEG_INFINITY).to_le_bytes());
        let mut past_the_last = good.clone();
        past_the_last[24..32].copy_from_slice(&value_order::key(f64::MAX).to_le_bytes());
        past_the_last[36] = 255;
        cases.push(("a step past the last key", past_the_last));
        for (what, bad) in cases {
            assert_eq!(corrupt(&bad), Err(crate::ErrorKind::CorruptState), "{what}");
        }
    }
}
