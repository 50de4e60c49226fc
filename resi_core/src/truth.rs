//! Truth discovery for any claims: which value each (object, property) has, given conflicting
//! claims of sources whose accuracy is unknown, a few audited true values, and which sources are
//! known to depend on each other.
//!
//! # Method
//!
//! An Accu-style fixed point (Dong, Berti-Equille, Srivastava, VLDB 2009) with three changes for
//! an open network: accuracies are Beta posteriors (a new identity starts low), votes use a lower
//! confidence bound of the accuracy (a source with few claims cannot earn a large weight by
//! luck), and dependent sources vote once per group.
//!
//! - **Items and claims.** An item is an (object, property) pair; a claim says that a source
//!   reports a value for an item. Values are compared as strings (normalise numbers and spellings
//!   before). A source has at most one value per item: the same claim twice counts once, two
//!   different values are an error.
//! - **Groups.** `groups` maps a source to the name of its group (sources run by one operator,
//!   or copying each other). A source not in the map is a group of its own. Per item a group
//!   casts one vote, for the value of its heaviest member (largest own vote weight; ties go to the
//!   smallest source name), with the group's weight.
//! - **Vote.** The score of a value is `C(v) = Σ weight(g)` over the groups voting for it. Its
//!   confidence is the posterior `P(v) = exp C(v) / (Σ_v' exp C(v') + u)` over the values claimed
//!   for the item, where `u = max(0, n + 1 − k)` is the mass of the `n + 1 − k` values of Accu's
//!   domain (one true and `n` plausible false values) that nobody claimed (each with score 0),
//!   `k` the number of distinct claimed values. The mass keeps a lone weak claim from looking
//!   certain: one claim of weight 0 gets `P = 1/(n + 1)`, not 1. The item's value is the one with
//!   the greatest score; ties go to more voting groups, then more supporting sources, then the
//!   smallest value (byte order).
//! - **Audits.** An audited item takes its audited value with confidence 1, whatever the votes.
//! - **Evidence.** Each claim on an unaudited item counts as `agreement_weight · P(v)` correct and
//!   `agreement_weight · (1 − P(v))` wrong for its source; a claim on an audited item counts as
//!   `audit_weight` correct or wrong (hard evidence). A group's evidence is pooled per item: on each
//!   item, the mean of its claiming members' evidence — so ten identical copies weigh what one
//!   does, and a member's failed audit lowers the whole group.
//! - **Accuracy.** `A = (α + correct) / (α + β + correct + wrong)`, the mean of the Beta posterior
//!   with prior `Beta(α, β)` = `Beta(prior_correct, prior_wrong)`, default `Beta(1, 3)`: an identity
//!   without evidence has accuracy 0.25.
//! - **Weight.** `L` is the Wilson score lower bound of `A` with `N = α + β + correct + wrong`
//!   observations, `L = (A + z²/2N − z·√(A(1−A)/N + z²/4N²)) / (1 + z²/N)`; the vote weight is
//!   `ln(n · L / (1 − L))`, clipped at 0 (a source no better than a guess among `n + 1` values does
//!   not vote). Without evidence, `L ≈ 0.078` and the weight is 0.
//! - **Iteration.** The first vote gives every group the weight of accuracy `initial_accuracy`
//!   (Accu's 0.8); then evidence → accuracies → weights → vote, until no item's value changes and no
//!   accuracy moves by `tolerance` or more, or after `max_iterations` rounds. The values returned
//!   are the vote cast with the weights returned.
//!
//! # Parameters ([`Options`], defaults)
//!
//! | field | default | meaning |
//! |---|---|---|
//! | `false_values` | 3 | `n`, plausible false values per item |
//! | `prior_correct`, `prior_wrong` | 1, 3 | the Beta prior of every accuracy |
//! | `z` | 1.28 | Wilson bound (one-sided 90 %) |
//! | `agreement_weight` | 1.0 | weight of soft evidence (agreement with the posterior) |
//! | `audit_weight` | 1.0 | weight of an audited claim |
//! | `initial_accuracy` | 0.8 | accuracy every group votes with in the first round |
//! | `max_iterations` | 20 | rounds at most |
//! | `tolerance` | 1e-6 | accuracies moving less than this have converged |
//!
//! Why `n` = 3 and not a large domain size: in real data the wrong values are not spread over
//! many alternatives but concentrated on a few (a stale value, a format slip, an error copied from
//! site to site), and with a large `n` every weight is mostly the constant `ln n`, so the vote
//! falls back to counting heads — which copy rings win. With `n = β/α` a source also votes exactly
//! when its lower bound beats a new identity's prior mean (`ln(3L/(1−L)) > 0 ⇔ L > 1/4`).
//!
//! On the Flight benchmark (`tests/flights.rs`: 38 web sources, 100 flights, 4 times, no groups
//! given) the defaults pick 0.9375 of the 400 values correctly (Brier score 0.061) against 0.8025
//! for majority voting; with 5 % of the items audited, 0.94 of the others. A sweep over the other
//! parameters (`z` 0–2, `agreement_weight` 0.1–1, prior `Beta(1,3)` or `Beta(1,1)`,
//! `initial_accuracy` 0.6–0.95) stays within 0.935–0.94 for `n` from 2 to 5; from `n` = 6 on
//! some settings, and from `n` = 10 all of them, settle at 0.82–0.87 (n = 10: 0.83; n = 100: 0.80).
//!
//! # Promises
//!
//! - The output does not depend on the order of claims, audits or the map: inputs are sorted
//!   into one canonical order, and every sum runs in that order, so results are bit-identical.
//! - Long loops call [`crate::interrupt::check_every`]; the sorts of the inputs are the only
//!   stretches without checks.
//! - Bad options and contradictory input (a source with two values for one item, two different
//!   audited values for one item) are [`crate::ErrorKind::InvalidParameter`] errors.

use crate::error::{Error, Result};
use crate::interrupt::check_every;
use std::collections::HashMap;

/// One source's report of one item's value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub object: &'a str,
    pub property: &'a str,
    pub source: &'a str,
    pub value: &'a str,
}

/// An item's value known to be true (a spot check).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Audit<'a> {
    pub object: &'a str,
    pub property: &'a str,
    pub value: &'a str,
}

/// The method's parameters (see the module documentation).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Options {
    /// `n`, the number of plausible false values of an item (at least 1).
    pub false_values: u32,
    /// `α` of the Beta prior of accuracies (> 0).
    pub prior_correct: f64,
    /// `β` of the Beta prior of accuracies (> 0).
    pub prior_wrong: f64,
    /// Standard score of the Wilson lower bound (≥ 0; 0 votes with the posterior mean).
    pub z: f64,
    /// Weight of one claim's soft evidence (≥ 0).
    pub agreement_weight: f64,
    /// Weight of one audited claim's evidence (≥ 0).
    pub audit_weight: f64,
    /// Accuracy every group votes with in the first round (strictly between `1/(n+1)` and 1).
    pub initial_accuracy: f64,
    /// Rounds at most (at least 1).
    pub max_iterations: u32,
    /// Convergence threshold on accuracies (≥ 0).
    pub tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            false_values: 3,
            prior_correct: 1.0,
            prior_wrong: 3.0,
            z: 1.28,
            agreement_weight: 1.0,
            audit_weight: 1.0,
            initial_accuracy: 0.8,
            max_iterations: 20,
            tolerance: 1e-6,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::invalid_parameter(format!("truth discovery option {name} is {value}; it must be {rule}")))
        };
        if self.false_values < 1 {
            return bad("false_values", self.false_values as f64, "at least 1");
        }
        for (name, value) in [("prior_correct", self.prior_correct), ("prior_wrong", self.prior_wrong)] {
            if !(value.is_finite() && value > 0.0) {
                return bad(name, value, "a finite number above 0");
            }
        }
        for (name, value) in [
            ("z", self.z),
            ("agreement_weight", self.agreement_weight),
            ("audit_weight", self.audit_weight),
            ("tolerance", self.tolerance),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(name, value, "a finite number at least 0");
            }
        }
        let guess = 1.0 / (self.false_values as f64 + 1.0);
        if !(self.initial_accuracy > guess && self.initial_accuracy < 1.0) {
            return bad("initial_accuracy", self.initial_accuracy, "above 1/(false_values + 1) and below 1");
        }
        if self.max_iterations < 1 {
            return bad("max_iterations", self.max_iterations as f64, "at least 1");
        }
        Ok(())
    }
}

/// The value found for one item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemValue<'a> {
    pub object: &'a str,
    pub property: &'a str,
    pub value: &'a str,
    /// The posterior `P(value)`; 1 for an audited item.
    pub confidence: f64,
    /// Sources claiming `value`.
    pub supporters: usize,
    /// Groups (independent voters) whose vote went to `value`.
    pub groups: usize,
    /// Whether the value comes from an audit.
    pub audited: bool,
}

/// What was learned about one source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceAccuracy<'a> {
    pub source: &'a str,
    /// Its group, when the caller named one.
    pub group: Option<&'a str>,
    /// Items it claims a value for.
    pub claims: usize,
    /// The Beta posterior mean of its own evidence.
    pub accuracy: f64,
    /// The Wilson lower bound of `accuracy`.
    pub lower_bound: f64,
    /// The vote weight its own evidence earns (what it votes with alone; within a group it
    /// decides which member's value the group votes for).
    pub weight: f64,
    /// The weight its group votes with (from the group's pooled evidence); `weight` for a source
    /// without a group.
    pub group_weight: f64,
}

/// The result of [`discover`]: items sorted by (object, property), sources by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Discovery<'a> {
    pub values: Vec<ItemValue<'a>>,
    pub sources: Vec<SourceAccuracy<'a>>,
    /// Rounds run.
    pub iterations: u32,
    /// Whether the fixed point was reached within `max_iterations`.
    pub converged: bool,
}

/// Find each item's value and each source's accuracy (see the module documentation).
///
/// Items are the (object, property) pairs of `claims` and `audits`; `groups` maps sources to
/// group names (entries for sources without claims are ignored).
pub fn discover<'a>(
    claims: &[Claim<'a>],
    audits: &[Audit<'a>],
    groups: &HashMap<&'a str, &'a str>,
    options: &Options,
) -> Result<Discovery<'a>> {
    options.validate()?;
    let problem = Problem::new(claims, audits, groups)?;
    Ok(problem.solve(options))
}

/// A claim with its source and value as indexes (its item is the range it lies in).
#[derive(Copy, Clone, Debug)]
struct Indexed {
    source: usize,
    /// Index into `Problem::values` (the item's values are a sorted slice of it).
    value: usize,
}

/// The input in canonical order.
struct Problem<'a> {
    /// Sorted (object, property) pairs.
    items: Vec<(&'a str, &'a str)>,
    /// Item `i`'s claims are `claims[item_claims[i]..item_claims[i + 1]]`, sorted by source.
    item_claims: Vec<usize>,
    claims: Vec<Indexed>,
    /// Item `i`'s distinct claimed values are `values[item_values[i]..item_values[i + 1]]`, sorted.
    item_values: Vec<usize>,
    values: Vec<&'a str>,
    /// The audited value of each item.
    audits: Vec<Option<&'a str>>,
    /// Sorted source names.
    sources: Vec<&'a str>,
    source_group: Vec<usize>,
    source_claims: Vec<usize>,
    /// Each group's name (`None` for a source alone), numbered by its first member.
    group_names: Vec<Option<&'a str>>,
}

impl<'a> Problem<'a> {
    fn new(claims: &[Claim<'a>], audits: &[Audit<'a>], groups: &HashMap<&'a str, &'a str>) -> Result<Self> {
        let mut sorted: Vec<Claim<'a>> = claims.to_vec();
        sorted.sort_unstable_by(|a, b| {
            (a.object, a.property, a.source, a.value).cmp(&(b.object, b.property, b.source, b.value))
        });
        sorted.dedup();
        for (i, pair) in sorted.windows(2).enumerate() {
            check_every(i);
            let (a, b) = (&pair[0], &pair[1]);
            if (a.object, a.property, a.source) == (b.object, b.property, b.source) {
                return Err(Error::invalid_parameter(format!(
                    "source {:?} claims two values for ({:?}, {:?}): {:?} and {:?}",
                    a.source, a.object, a.property, a.value, b.value
                )));
            }
        }
        let mut audited: Vec<Audit<'a>> = audits.to_vec();
        audited.sort_unstable_by(|a, b| (a.object, a.property, a.value).cmp(&(b.object, b.property, b.value)));
        audited.dedup();
        for (i, pair) in audited.windows(2).enumerate() {
            check_every(i);
            let (a, b) = (&pair[0], &pair[1]);
            if (a.object, a.property) == (b.object, b.property) {
                return Err(Error::invalid_parameter(format!(
                    "({:?}, {:?}) has two audited values: {:?} and {:?}",
                    a.object, a.property, a.value, b.value
                )));
            }
        }

        let mut sources: Vec<&'a str> = sorted.iter().map(|c| c.source).collect();
        sources.sort_unstable();
        sources.dedup();
        let source_index: HashMap<&'a str, usize> = sources.iter().enumerate().map(|(i, &s)| (s, i)).collect();
        let mut group_names: Vec<Option<&'a str>> = Vec::new();
        let mut named: HashMap<&'a str, usize> = HashMap::new();
        let mut source_group = Vec::with_capacity(sources.len());
        for (i, source) in sources.iter().enumerate() {
            check_every(i);
            let g = match groups.get(source) {
                Some(&name) => *named.entry(name).or_insert_with(|| {
                    group_names.push(Some(name));
                    group_names.len() - 1
                }),
                None => {
                    group_names.push(None);
                    group_names.len() - 1
                }
            };
            source_group.push(g);
        }

        // Merge the claimed and the audited items, both sorted.
        let mut problem = Problem {
            items: Vec::new(),
            item_claims: vec![0],
            claims: Vec::with_capacity(sorted.len()),
            item_values: vec![0],
            values: Vec::new(),
            audits: Vec::new(),
            source_claims: vec![0; sources.len()],
            sources,
            source_group,
            group_names,
        };
        let (mut c, mut a) = (0, 0);
        let mut item_values: Vec<&'a str> = Vec::new();
        while c < sorted.len() || a < audited.len() {
            check_every(problem.items.len());
            let claimed = sorted.get(c).map(|x| (x.object, x.property));
            let checked = audited.get(a).map(|x| (x.object, x.property));
            let item = match (claimed, checked) {
                (Some(x), Some(y)) => x.min(y),
                (Some(x), None) => x,
                (None, Some(y)) => y,
                (None, None) => unreachable!(),
            };
            let audit = if checked == Some(item) {
                a += 1;
                Some(audited[a - 1].value)
            } else {
                None
            };
            let start = c;
            while c < sorted.len() && (sorted[c].object, sorted[c].property) == item {
                c += 1;
            }
            item_values.clear();
            item_values.extend(sorted[start..c].iter().map(|x| x.value));
            item_values.sort_unstable();
            item_values.dedup();
            let base = problem.values.len();
            for (i, claim) in sorted[start..c].iter().enumerate() {
                check_every(start + i);
                let source = source_index[claim.source];
                let value = base + item_values.binary_search(&claim.value).expect("a claimed value");
                problem.source_claims[source] += 1;
                problem.claims.push(Indexed { source, value });
            }
            problem.values.extend_from_slice(&item_values);
            problem.items.push(item);
            problem.audits.push(audit);
            problem.item_claims.push(problem.claims.len());
            problem.item_values.push(problem.values.len());
        }
        Ok(problem)
    }

    fn solve(&self, options: &Options) -> Discovery<'a> {
        let n = options.false_values as f64;
        let first = Estimate::initial(options.initial_accuracy, n);
        let mut sources = vec![first; self.sources.len()];
        let mut groups = vec![first; self.group_names.len()];
        let mut round = Round::new(self);
        let mut previous_choice: Option<Vec<usize>> = None;
        let mut iterations = 0;
        let mut converged = false;
        while iterations < options.max_iterations {
            iterations += 1;
            round.vote(self, &sources, &groups, options);
            let new_sources = Estimate::all(&round.source_evidence, options);
            let new_groups = Estimate::all(&round.group_evidence, options);
            let moved = sources
                .iter()
                .zip(&new_sources)
                .chain(groups.iter().zip(&new_groups))
                .map(|(old, new)| (old.accuracy - new.accuracy).abs())
                .fold(0.0, f64::max);
            let same_values = previous_choice.as_deref() == Some(&round.choice[..]);
            previous_choice = Some(round.choice.clone());
            sources = new_sources;
            groups = new_groups;
            if same_values && moved < options.tolerance {
                converged = true;
                break;
            }
        }
        // The values reported are the vote cast with the weights reported.
        round.vote(self, &sources, &groups, options);
        self.report(&round, &sources, &groups, iterations, converged)
    }

    fn report(
        &self,
        round: &Round,
        sources: &[Estimate],
        groups: &[Estimate],
        iterations: u32,
        converged: bool,
    ) -> Discovery<'a> {
        let values = self
            .items
            .iter()
            .enumerate()
            .map(|(i, &(object, property))| {
                check_every(i);
                let choice = round.choice[i];
                let (value, audited) = match self.audits[i] {
                    Some(value) => (value, true),
                    None => (self.values[choice], false),
                };
                ItemValue {
                    object,
                    property,
                    value,
                    confidence: round.confidence[i],
                    supporters: round.supporters[i],
                    groups: round.groups[i],
                    audited,
                }
            })
            .collect();
        let sources = self
            .sources
            .iter()
            .enumerate()
            .map(|(s, &source)| {
                check_every(s);
                SourceAccuracy {
                    source,
                    group: self.group_names[self.source_group[s]],
                    claims: self.source_claims[s],
                    accuracy: sources[s].accuracy,
                    lower_bound: sources[s].lower_bound,
                    weight: sources[s].weight,
                    group_weight: groups[self.source_group[s]].weight,
                }
            })
            .collect();
        Discovery { values, sources, iterations, converged }
    }
}

/// An accuracy, its lower bound and the vote weight it earns.
#[derive(Copy, Clone, Debug)]
struct Estimate {
    accuracy: f64,
    lower_bound: f64,
    weight: f64,
}

impl Estimate {
    fn initial(accuracy: f64, n: f64) -> Self {
        Estimate { accuracy, lower_bound: accuracy, weight: vote_weight(accuracy, n) }
    }

    fn all(evidence: &[(f64, f64)], options: &Options) -> Vec<Self> {
        let estimate = |(i, &(correct, wrong)): (usize, &(f64, f64))| {
            check_every(i);
            Estimate::from_evidence(correct, wrong, options)
        };
        evidence.iter().enumerate().map(estimate).collect()
    }

    fn from_evidence(correct: f64, wrong: f64, options: &Options) -> Self {
        let a = options.prior_correct + correct;
        let observations = a + options.prior_wrong + wrong;
        let accuracy = a / observations;
        let lower_bound = wilson_lower_bound(accuracy, observations, options.z);
        Estimate { accuracy, lower_bound, weight: vote_weight(lower_bound, options.false_values as f64) }
    }
}

/// The Wilson score lower bound of a proportion `p` observed over `n` trials.
fn wilson_lower_bound(p: f64, n: f64, z: f64) -> f64 {
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).clamp(0.0, p)
}

/// `ln(n·a/(1−a))` clipped at 0 (also for `a` = 0).
fn vote_weight(a: f64, n: f64) -> f64 {
    let w = (n * a / (1.0 - a)).ln();
    if w > 0.0 {
        w
    } else {
        0.0
    }
}

/// One vote over all items, and the evidence it gives about sources and groups.
struct Round {
    /// Per item: the chosen value (index into `Problem::values`; meaningless for an audited item).
    choice: Vec<usize>,
    confidence: Vec<f64>,
    supporters: Vec<usize>,
    groups: Vec<usize>,
    /// Per source and per group: (correct, wrong).
    source_evidence: Vec<(f64, f64)>,
    group_evidence: Vec<(f64, f64)>,
    // Scratch, per value of the current item.
    score: Vec<f64>,
    votes: Vec<usize>,
    claimed: Vec<usize>,
    posterior: Vec<f64>,
    // Scratch, per group: the heaviest member's (weight, value) and the item's pooled evidence.
    best: Vec<Option<(f64, usize)>>,
    pooled: Vec<(f64, f64, u32)>,
    touched: Vec<usize>,
}

impl Round {
    fn new(problem: &Problem) -> Self {
        let items = problem.items.len();
        let groups = problem.group_names.len();
        Round {
            choice: vec![0; items],
            confidence: vec![0.0; items],
            supporters: vec![0; items],
            groups: vec![0; items],
            source_evidence: vec![(0.0, 0.0); problem.sources.len()],
            group_evidence: vec![(0.0, 0.0); groups],
            score: Vec::new(),
            votes: Vec::new(),
            claimed: Vec::new(),
            posterior: Vec::new(),
            best: vec![None; groups],
            pooled: vec![(0.0, 0.0, 0); groups],
            touched: Vec::new(),
        }
    }

    fn vote(&mut self, problem: &Problem, sources: &[Estimate], groups: &[Estimate], options: &Options) {
        self.source_evidence.fill((0.0, 0.0));
        self.group_evidence.fill((0.0, 0.0));
        let unclaimed_values = options.false_values as f64 + 1.0;
        let mut seen = 0;
        for item in 0..problem.items.len() {
            let claims = &problem.claims[problem.item_claims[item]..problem.item_claims[item + 1]];
            let base = problem.item_values[item];
            let k = problem.item_values[item + 1] - base;
            for v in [&mut self.score, &mut self.posterior] {
                v.clear();
                v.resize(k, 0.0);
            }
            for v in [&mut self.votes, &mut self.claimed] {
                v.clear();
                v.resize(k, 0);
            }

            // Each group votes for its heaviest member's value (claims are sorted by source, so
            // the first of equally heavy members has the smallest name).
            self.touched.clear();
            for claim in claims {
                check_every(seen);
                seen += 1;
                let v = claim.value - base;
                self.claimed[v] += 1;
                let g = problem.source_group[claim.source];
                let w = sources[claim.source].weight;
                match self.best[g] {
                    None => {
                        self.best[g] = Some((w, v));
                        self.touched.push(g);
                    }
                    Some((heaviest, _)) if w > heaviest => self.best[g] = Some((w, v)),
                    Some(_) => {}
                }
            }
            for &g in &self.touched {
                let (_, v) = self.best[g].take().expect("a touched group has a vote");
                self.score[v] += groups[g].weight;
                self.votes[v] += 1;
            }

            // The posterior over the claimed values plus the unclaimed rest of the domain.
            let top = self.score.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut total = (unclaimed_values - k as f64).max(0.0) * (-top).exp();
            for (p, &s) in self.posterior.iter_mut().zip(&self.score) {
                *p = (s - top).exp();
                total += *p;
            }
            for p in &mut self.posterior {
                *p /= total;
            }
            let mut choice = 0;
            for v in 1..k {
                let wins = (self.score[v], self.votes[v], self.claimed[v]).partial_cmp(&(
                    self.score[choice],
                    self.votes[choice],
                    self.claimed[choice],
                )) == Some(std::cmp::Ordering::Greater);
                if wins {
                    choice = v;
                }
            }

            let audit = problem.audits[item];
            match audit {
                Some(value) => {
                    let at = problem.values[base..base + k].binary_search(&value);
                    self.choice[item] = base + at.unwrap_or(0);
                    self.confidence[item] = 1.0;
                    self.supporters[item] = at.map_or(0, |v| self.claimed[v]);
                    self.groups[item] = at.map_or(0, |v| self.votes[v]);
                }
                None => {
                    self.choice[item] = base + choice;
                    self.confidence[item] = self.posterior[choice];
                    self.supporters[item] = self.claimed[choice];
                    self.groups[item] = self.votes[choice];
                }
            }

            // Evidence: hard on audited items, soft elsewhere; groups pool per item.
            for claim in claims {
                let (correct, wrong) = match audit {
                    Some(value) if problem.values[claim.value] == value => (options.audit_weight, 0.0),
                    Some(_) => (0.0, options.audit_weight),
                    None => {
                        let p = self.posterior[claim.value - base];
                        (options.agreement_weight * p, options.agreement_weight * (1.0 - p))
                    }
                };
                let e = &mut self.source_evidence[claim.source];
                e.0 += correct;
                e.1 += wrong;
                let pooled = &mut self.pooled[problem.source_group[claim.source]];
                pooled.0 += correct;
                pooled.1 += wrong;
                pooled.2 += 1;
            }
            for &g in &self.touched {
                let (correct, wrong, members) = std::mem::take(&mut self.pooled[g]);
                let e = &mut self.group_evidence[g];
                e.0 += correct / members as f64;
                e.1 += wrong / members as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(object: &'a str, property: &'a str, source: &'a str, value: &'a str) -> Claim<'a> {
        Claim { object, property, source, value }
    }

    fn run<'a>(claims: &[Claim<'a>], audits: &[Audit<'a>], groups: &HashMap<&'a str, &'a str>) -> Discovery<'a> {
        discover(claims, audits, groups, &Options::default()).unwrap()
    }

    fn value_of<'d, 'a>(d: &'d Discovery<'a>, object: &str) -> &'d ItemValue<'a> {
        d.values.iter().find(|v| v.object == object).expect("the item")
    }

    fn source<'d, 'a>(d: &'d Discovery<'a>, name: &str) -> &'d SourceAccuracy<'a> {
        d.sources.iter().find(|s| s.source == name).expect("the source")
    }

    /// Names that live for the whole test run.
    fn names(prefix: &str, count: usize) -> Vec<&'static str> {
        (0..count).map(|i| &*Box::leak(format!("{prefix}{i:02}").into_boxed_str())).collect()
    }

    #[test]
    fn unanimous_claims_win_with_high_confidence() {
        let sources = names("s", 5);
        let objects = names("o", 20);
        let claims: Vec<Claim> = objects
            .iter()
            .flat_map(|&o| sources.iter().map(move |&s| claim(o, "p", s, if o == "o07" { "x" } else { "t" })))
            .collect();
        let d = run(&claims, &[], &HashMap::new());
        assert!(d.converged);
        assert_eq!(d.values.len(), 20);
        for v in &d.values {
            assert_eq!(v.value, if v.object == "o07" { "x" } else { "t" });
            assert!(v.confidence > 0.999, "{v:?}");
            assert_eq!((v.supporters, v.groups, v.audited), (5, 5, false));
        }
        for s in &d.sources {
            assert!(s.accuracy > 0.8 && s.weight > 2.0, "{s:?}");
            assert_eq!(s.claims, 20);
        }
    }

    /// Three accurate sources and five inaccurate ones: on 40 items the accurate ones agree on
    /// the truth and the inaccurate ones each say something else; on the last item the five
    /// inaccurate ones agree on a wrong value.
    fn minority_case() -> Vec<Claim<'static>> {
        let good = names("good", 3);
        let bad = names("bad", 5);
        let objects = names("item", 41);
        let wrong = names("wrong", 5);
        let mut claims = Vec::new();
        for &o in &objects[..40] {
            claims.extend(good.iter().map(|&s| claim(o, "p", s, "true")));
            claims.extend(bad.iter().zip(&wrong).map(|(&s, &w)| claim(o, "p", s, w)));
        }
        claims.extend(good.iter().map(|&s| claim(objects[40], "p", s, "true")));
        claims.extend(bad.iter().map(|&s| claim(objects[40], "p", s, "copied")));
        claims
    }

    #[test]
    fn an_accurate_minority_beats_an_inaccurate_majority_once_accuracies_are_learned() {
        let claims = minority_case();
        let d = run(&claims, &[], &HashMap::new());
        let last = value_of(&d, "item40");
        // A plain vote would pick "copied" (5 against 3).
        assert_eq!((last.value, last.supporters, last.groups), ("true", 3, 3));
        assert!(last.confidence > 0.99, "{last:?}");
        for s in &d.sources {
            if s.source.starts_with("good") {
                assert!(s.accuracy > 0.9 && s.weight > 2.0, "{s:?}");
            } else {
                assert!(s.accuracy < 0.1 && s.weight == 0.0, "{s:?}");
            }
        }
    }

    #[test]
    fn a_group_of_ten_dependent_sources_votes_once() {
        // Three honest sources; a ring copies the truth on 16 items and agrees on "x" on 4.
        let honest = names("honest", 3);
        let ring = names("ring", 10);
        let objects = names("o", 20);
        let case = |ring: &[&'static str]| -> Vec<Claim<'static>> {
            let mut claims = Vec::new();
            for (i, &o) in objects.iter().enumerate() {
                claims.extend(honest.iter().map(|&s| claim(o, "p", s, "t")));
                claims.extend(ring.iter().map(|&s| claim(o, "p", s, if i < 16 { "t" } else { "x" })));
            }
            claims
        };
        let ten = case(&ring);
        let one = case(&ring[..1]);
        let ungrouped = run(&ten, &[], &HashMap::new());
        assert_eq!(value_of(&ungrouped, "o19").value, "x", "ten identities outvote three");

        let grouped_map: HashMap<&str, &str> = ring.iter().map(|&s| (s, "operator")).collect();
        let grouped = run(&ten, &[], &grouped_map);
        let single = run(&one, &[], &HashMap::new());
        assert_eq!(value_of(&grouped, "o19").value, "t");
        assert_eq!(grouped.values.len(), single.values.len());
        for (g, s) in grouped.values.iter().zip(&single.values) {
            assert_eq!((g.object, g.value, g.groups), (s.object, s.value, s.groups));
            assert!((g.confidence - s.confidence).abs() < 1e-12, "{g:?} vs {s:?}");
        }
        let member = source(&grouped, "ring00");
        assert_eq!(member.group, Some("operator"));
        assert!((member.group_weight - source(&single, "ring00").weight).abs() < 1e-9);
        for &h in &honest {
            assert!((source(&grouped, h).accuracy - source(&single, h).accuracy).abs() < 1e-12);
        }
    }

    #[test]
    fn audits_override_the_vote_and_raise_the_confirmed_sources_accuracy() {
        // Four sources agree on everything but the last item, where three say "a" and one "b".
        let sources = names("s", 4);
        let objects = names("o", 10);
        let mut claims = Vec::new();
        for &o in &objects {
            for &s in &sources {
                let value = if o == "o09" && s != "s03" {
                    "a"
                } else if o == "o09" {
                    "b"
                } else {
                    "t"
                };
                claims.push(claim(o, "p", s, value));
            }
        }
        let before = run(&claims, &[], &HashMap::new());
        assert_eq!(value_of(&before, "o09").value, "a");
        let audit = [Audit { object: "o09", property: "p", value: "b" }];
        let after = run(&claims, &audit, &HashMap::new());
        let item = value_of(&after, "o09");
        assert_eq!((item.value, item.confidence, item.audited, item.supporters, item.groups), ("b", 1.0, true, 1, 1));
        assert!(source(&after, "s03").accuracy > source(&before, "s03").accuracy);
        assert!(source(&after, "s00").accuracy < source(&before, "s00").accuracy);
        // An audit of an item nobody claims is reported as it is.
        let audit = [Audit { object: "zz", property: "p", value: "v" }];
        let d = run(&claims, &audit, &HashMap::new());
        let item = value_of(&d, "zz");
        assert_eq!((item.value, item.confidence, item.supporters, item.groups, item.audited), ("v", 1.0, 0, 0, true));
    }

    #[test]
    fn the_same_claims_in_any_order_give_bit_identical_output() {
        let mut claims = minority_case();
        claims.extend(minority_case().iter().map(|c| Claim { property: "q", ..*c }));
        let audits = [
            Audit { object: "item03", property: "q", value: "true" },
            Audit { object: "item40", property: "q", value: "x" },
        ];
        let groups: HashMap<&str, &str> = [("bad00", "g"), ("bad01", "g"), ("good02", "h")].into();
        let reference = run(&claims, &audits, &groups);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5 {
            // Fisher-Yates with xorshift, deterministic.
            for i in (1..claims.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                claims.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut twice = claims.clone();
            twice.extend_from_slice(&claims[..7]);
            let audits = [audits[1], audits[0], audits[1]];
            let shuffled = run(&twice, &audits, &groups);
            assert_eq!(format!("{shuffled:?}"), format!("{reference:?}"));
            for (a, b) in shuffled.values.iter().zip(&reference.values) {
                assert_eq!(a.confidence.to_bits(), b.confidence.to_bits());
            }
            for (a, b) in shuffled.sources.iter().zip(&reference.sources) {
                let bits = |s: &SourceAccuracy| [s.accuracy, s.lower_bound, s.weight, s.group_weight].map(f64::to_bits);
                assert_eq!(bits(a), bits(b));
            }
        }
    }

    #[test]
    fn a_new_source_with_one_claim_gets_little_weight() {
        let sources = names("old", 3);
        let objects = names("o", 30);
        let mut claims: Vec<Claim> =
            objects.iter().flat_map(|&o| sources.iter().map(move |&s| claim(o, "p", s, "t"))).collect();
        claims.push(claim("o00", "p", "newcomer", "t"));
        // Two newcomers against one established source on a fresh item.
        claims.push(claim("fresh", "p", "old00", "t"));
        claims.push(claim("fresh", "p", "new1", "y"));
        claims.push(claim("fresh", "p", "new2", "y"));
        let d = run(&claims, &[], &HashMap::new());
        let newcomer = source(&d, "newcomer");
        let old = source(&d, "old00");
        assert!(newcomer.accuracy <= 0.4, "{newcomer:?}");
        assert!(newcomer.weight < old.weight / 3.0, "{newcomer:?} vs {old:?}");
        assert!(source(&d, "new1").weight < 0.5, "{:?}", source(&d, "new1"));
        assert_eq!(value_of(&d, "fresh").value, "t");
    }

    #[test]
    fn an_identity_without_evidence_has_accuracy_one_quarter_and_no_vote() {
        let prior = Estimate::from_evidence(0.0, 0.0, &Options::default());
        assert_eq!(prior.accuracy, 0.25);
        assert!(prior.lower_bound > 0.07 && prior.lower_bound < 0.08, "{prior:?}");
        assert_eq!(prior.weight, 0.0);
        // With all weights zero the vote falls back to counting groups.
        let options = Options { agreement_weight: 0.0, ..Options::default() };
        let claims = [
            claim("o", "p", "a", "x"),
            claim("o", "p", "b", "y"),
            claim("o", "p", "c", "y"),
            claim("o", "p", "d", "z"),
        ];
        let d = discover(&claims, &[], &HashMap::new(), &options).unwrap();
        assert_eq!(d.values[0].value, "y");
        assert_eq!(d.values[0].confidence, 1.0 / (options.false_values as f64 + 1.0));
    }

    #[test]
    fn contradictory_input_and_bad_options_are_errors() {
        let claims = [claim("o", "p", "s", "a"), claim("o", "p", "s", "b")];
        let err = discover(&claims, &[], &HashMap::new(), &Options::default()).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidParameter);
        assert!(err.message.contains("two values"), "{err}");
        // The same claim twice counts once.
        let claims = [claim("o", "p", "s", "a"), claim("o", "p", "s", "a")];
        assert_eq!(run(&claims, &[], &HashMap::new()).sources[0].claims, 1);

        let audits =
            [Audit { object: "o", property: "p", value: "a" }, Audit { object: "o", property: "p", value: "b" }];
        let err = discover(&[], &audits, &HashMap::new(), &Options::default()).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidParameter);

        let d = Options::default();
        for bad in [
            Options { false_values: 0, ..d },
            Options { prior_correct: 0.0, ..d },
            Options { prior_wrong: f64::NAN, ..d },
            Options { z: -1.0, ..d },
            Options { agreement_weight: f64::INFINITY, ..d },
            Options { audit_weight: -0.5, ..d },
            Options { initial_accuracy: 1.0, ..d },
            Options { initial_accuracy: 0.05, ..d },
            Options { max_iterations: 0, ..d },
            Options { tolerance: f64::NAN, ..d },
        ] {
            let err = discover(&claims, &[], &HashMap::new(), &bad).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidParameter, "{bad:?}");
        }
    }

    #[test]
    fn no_claims_give_an_empty_discovery() {
        let d = run(&[], &[], &HashMap::new());
        assert!(d.values.is_empty() && d.sources.is_empty());
    }
}
