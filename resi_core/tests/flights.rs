//! Truth discovery on the Flight benchmark (the Raha/HoloClean subset of Li et al.'s Flight
//! data: 38 web sources, 100 flights, 4 times each; `tests/fixtures/flights-raha/`).
//!
//! `dirty.csv` holds what each source (`src`) reported for a flight; `clean.csv` the same rows
//! with the true values. Every (flight, time) item has one true value in `clean.csv` (checked
//! below), so an item is right when the engine picks it. Run with `--nocapture` to see the
//! figures; `cargo test --release -p resi_core --test flights -- --ignored --nocapture` runs the
//! parameter sweep too.

use resi_core::truth::{discover, Audit, Claim, Discovery, Options};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

const PROPERTIES: [&str; 4] = ["sched_dep_time", "act_dep_time", "sched_arr_time", "act_arr_time"];

/// Rows of a CSV file (RFC 4180: quoted fields may hold commas, newlines and doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A reported time as `h:mm a.m.`/`h:mm p.m.` (the form of `clean.csv`), or `None` for no claim.
///
/// The sources write "7:10 a.m.", "7:10a", "7:10A 12-01-11", "12/2/11 7:10 a.m.", "Dec 02 7:10
/// a.m.", "7:10 a.m. (Estimated runway)", "7:10 a.m. (-00:10)", "12:00noon", "Thu  19:10"
/// (24-hour), and "Not Available"/"Contact Airline"/blank for nothing. The first `h:mm` in the
/// text is the time; the letters after it say a.m. or p.m.; without them it is a 24-hour time.
fn normalise_time(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let start = (0..b.len()).find(|&i| {
        (i == 0 || !digit(i - 1))
            && digit(i)
            && ((b.get(i + 1) == Some(&b':') && digit(i + 2) && digit(i + 3))
                || (digit(i + 1) && b.get(i + 2) == Some(&b':') && digit(i + 4) && digit(i + 3)))
    })?;
    let colon = start + if b[start + 1] == b':' { 1 } else { 2 };
    let hour: u32 = raw[start..colon].parse().ok()?;
    let minute: u32 = raw[colon + 1..colon + 3].parse().ok()?;
    let rest = raw[colon + 3..].trim_start().to_ascii_lowercase();
    let (hour, pm) = if rest.starts_with('a') {
        (hour, false)
    } else if rest.starts_with('p') || rest.starts_with("noon") {
        (hour, true)
    } else {
        match hour {
            0 => (12, false),
            1..=11 => (hour, false),
            12 => (12, true),
            _ => (hour - 12, true),
        }
    };
    if !(1..=12).contains(&hour) || minute > 59 {
        return None;
    }
    Some(format!("{hour}:{minute:02} {}", if pm { "p.m." } else { "a.m." }))
}

struct Flights {
    /// (flight, property, source, normalised value).
    claims: Vec<(String, &'static str, String, String)>,
    /// (flight, property) → the true value.
    truth: BTreeMap<(String, &'static str), String>,
}

fn load() -> Flights {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/flights-raha");
    let read = |name: &str| parse_csv(&std::fs::read_to_string(format!("{dir}/{name}")).expect("the fixture"));
    let (dirty, clean) = (read("dirty.csv"), read("clean.csv"));
    let header = ["tuple_id", "src", "flight", PROPERTIES[0], PROPERTIES[1], PROPERTIES[2], PROPERTIES[3]];
    assert_eq!(dirty[0], header);
    assert_eq!(clean[0], header);
    assert_eq!(dirty.len(), clean.len());
    let mut claims = Vec::new();
    let mut true_values: BTreeMap<(String, &'static str), BTreeMap<String, usize>> = BTreeMap::new();
    for (d, c) in dirty[1..].iter().zip(&clean[1..]) {
        assert_eq!(d[..3], c[..3], "rows line up");
        let (source, flight) = (&d[1], &d[2]);
        for (k, property) in PROPERTIES.into_iter().enumerate() {
            if let Some(value) = normalise_time(&d[3 + k]) {
                claims.push((flight.clone(), property, source.clone(), value));
            }
            let truth = normalise_time(&c[3 + k]).expect("clean.csv has every time");
            *true_values.entry((flight.clone(), property)).or_default().entry(truth).or_default() += 1;
        }
    }
    let conflicting = true_values.values().filter(|values| values.len() > 1).count();
    assert_eq!(conflicting, 0, "clean.csv has one true value per (flight, time)");
    // With several, the most common would be the truth (ties to the smallest).
    let truth = true_values
        .into_iter()
        .map(|(item, values)| {
            let top = values.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0))).unwrap().0.clone();
            (item, top)
        })
        .collect();
    Flights { claims, truth }
}

impl Flights {
    fn claims(&self) -> Vec<Claim<'_>> {
        self.claims.iter().map(|(object, property, source, value)| Claim { object, property, source, value }).collect()
    }

    /// Share of the items whose chosen value is the true one (items without an answer are wrong).
    fn accuracy<'a>(&self, chosen: impl IntoIterator<Item = ((&'a str, &'a str), &'a str)>) -> f64 {
        let chosen: HashMap<(&str, &str), &str> = chosen.into_iter().collect();
        let right = self.truth.iter().filter(|((f, p), t)| chosen.get(&(f.as_str(), *p)) == Some(&t.as_str())).count();
        right as f64 / self.truth.len() as f64
    }

    fn majority(&self) -> f64 {
        let mut counts: BTreeMap<(&str, &str), BTreeMap<&str, usize>> = BTreeMap::new();
        for (flight, property, _, value) in &self.claims {
            *counts.entry((flight, property)).or_default().entry(value).or_default() += 1;
        }
        self.accuracy(counts.into_iter().map(|(item, values)| {
            // Most claims; ties to the smallest value.
            (item, *values.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0))).unwrap().0)
        }))
    }

    fn engine(&self, d: &Discovery) -> f64 {
        self.accuracy(d.values.iter().map(|v| ((v.object, v.property), v.value)))
    }

    /// Mean squared error of the confidence as a probability that the value is right.
    fn brier(&self, d: &Discovery) -> f64 {
        let sum: f64 = d
            .values
            .iter()
            .map(|v| {
                let right =
                    self.truth.get(&(v.object.to_owned(), static_property(v.property))) == Some(&v.value.to_owned());
                (v.confidence - if right { 1.0 } else { 0.0 }).powi(2)
            })
            .sum();
        sum / d.values.len() as f64
    }

    /// Accuracy over the items that were not audited.
    fn unaudited_accuracy(&self, d: &Discovery, audits: &[Audit]) -> f64 {
        let audited: std::collections::HashSet<(&str, &str)> = audits.iter().map(|a| (a.object, a.property)).collect();
        let rest = self.truth.iter().filter(|((f, p), _)| !audited.contains(&(f.as_str(), *p)));
        let chosen: HashMap<(&str, &str), &str> = d.values.iter().map(|v| ((v.object, v.property), v.value)).collect();
        let (mut right, mut total) = (0, 0);
        for ((f, p), t) in rest {
            total += 1;
            right += usize::from(chosen.get(&(f.as_str(), *p)) == Some(&t.as_str()));
        }
        right as f64 / total as f64
    }

    /// `share` of the items, chosen by a seeded shuffle, with their true values.
    fn audits(&self, share: f64, seed: u64) -> Vec<Audit<'_>> {
        let mut items: Vec<(&(String, &'static str), &String)> = self.truth.iter().collect();
        let mut state = seed;
        for i in (1..items.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            items.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let count = (items.len() as f64 * share).round() as usize;
        items[..count].iter().map(|((flight, property), value)| Audit { object: flight, property, value }).collect()
    }
}

fn static_property(property: &str) -> &'static str {
    PROPERTIES.into_iter().find(|&p| p == property).expect("a known property")
}

#[test]
fn flights_times_normalise_to_one_form() {
    for (raw, want) in [
        ("7:10 a.m.", Some("7:10 a.m.")),
        ("7:10 AM", Some("7:10 a.m.")),
        ("10:08A", Some("10:08 a.m.")),
        ("2:45P 12-01-11", Some("2:45 p.m.")),
        ("5:11aDec 2", Some("5:11 a.m.")),
        ("12/2/11 12:01 a.m.", Some("12:01 a.m.")),
        ("Dec 02 5:50 a.m.", Some("5:50 a.m.")),
        ("Fri Dec 2 12:29 a.m.", Some("12:29 a.m.")),
        ("1:50 p.m. (+8:00)", Some("1:50 p.m.")),
        ("9:05 a.m. (-00:00)", Some("9:05 a.m.")),
        ("10:39 p.m.&nbsp(Estimated)", Some("10:39 p.m.")),
        ("12:35 p.m.            Delayed", Some("12:35 p.m.")),
        ("12:00noon", Some("12:00 p.m.")),
        ("Thu  10:28", Some("10:28 a.m.")),
        ("12:30", Some("12:30 p.m.")),
        ("19:05", Some("7:05 p.m.")),
        ("0:15", Some("12:15 a.m.")),
        ("Not Available", None),
        ("Dec 02 Contact Airline", None),
        ("", None),
    ] {
        assert_eq!(normalise_time(raw).as_deref(), want, "{raw:?}");
    }
    assert_eq!(parse_csv("a,\"b,\"\"c\"\"\"\n1,2\n"), [vec!["a", "b,\"c\""], vec!["1", "2"]]);
}

#[test]
fn flights_truth_discovery_beats_majority_voting() {
    let flights = load();
    let claims = flights.claims();
    let items = flights.truth.len();
    let majority = flights.majority();
    println!(
        "flights: {} claims by {} sources on {items} items",
        claims.len(),
        claims.iter().map(|c| c.source).collect::<std::collections::BTreeSet<_>>().len()
    );
    println!("flights: majority vote accuracy {majority:.4}");

    let started = Instant::now();
    let d = discover(&claims, &[], &HashMap::new(), &Options::default()).unwrap();
    let elapsed = started.elapsed();
    let engine = flights.engine(&d);
    println!(
        "flights: truth discovery accuracy {engine:.4} (Brier {:.4}; {} rounds, converged {}; {:.1} ms)",
        flights.brier(&d),
        d.iterations,
        d.converged,
        elapsed.as_secs_f64() * 1e3
    );
    // Each source's estimated accuracy next to its measured one (share of its claims that are true).
    let mut measured: HashMap<&str, (usize, usize)> = HashMap::new();
    for (flight, property, source, value) in &flights.claims {
        let m = measured.entry(source.as_str()).or_default();
        m.0 += usize::from(flights.truth[&(flight.clone(), *property)] == *value);
        m.1 += 1;
    }
    let mut by_accuracy: Vec<_> = d.sources.iter().collect();
    by_accuracy.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy).then_with(|| a.source.cmp(b.source)));
    for s in &by_accuracy {
        let (right, all) = measured[s.source];
        println!(
            "flights:   {:<22} claims {:>3}  accuracy {:.3} (measured {:.3})  lower {:.3}  weight {:.3}",
            s.source,
            s.claims,
            s.accuracy,
            right as f64 / all as f64,
            s.lower_bound,
            s.weight
        );
    }
    assert!(engine >= 0.90, "engine {engine}");
    assert!(engine > majority, "engine {engine} vs majority {majority}");

    // A seeded 5 % of the items audited; accuracy over all items and over the unaudited rest.
    let audits = flights.audits(0.05, 0x5eed_f11e);
    let with = discover(&claims, &audits, &HashMap::new(), &Options::default()).unwrap();
    let all = flights.engine(&with);
    let unaudited = flights.unaudited_accuracy(&with, &audits);
    println!(
        "flights: with {} audited items (5 %): accuracy {all:.4} over all items, {unaudited:.4} over the unaudited; \
         {} rounds",
        audits.len(),
        with.iterations
    );
    assert!(unaudited >= 0.90, "unaudited {unaudited}");
}

#[test]
fn flights_results_do_not_depend_on_claim_order() {
    let flights = load();
    let claims = flights.claims();
    let mut reversed = claims.clone();
    reversed.reverse();
    let a = discover(&claims, &[], &HashMap::new(), &Options::default()).unwrap();
    let b = discover(&reversed, &[], &HashMap::new(), &Options::default()).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// The sweep behind the defaults (run with `--ignored --nocapture`): accuracy without audits,
/// the mean accuracy on the unaudited items over ten seeded 5 % audit draws, and the Brier score.
#[test]
#[ignore]
fn flights_parameter_sweep() {
    let flights = load();
    let claims = flights.claims();
    let draws: Vec<Vec<Audit>> = (1..=10u64).map(|seed| flights.audits(0.05, seed * 0x9e37_79b9_7f4a_7c15)).collect();
    println!("flights sweep: majority {:.4}", flights.majority());
    println!("flights sweep: n    z     agree  prior  initial  accuracy  audited  brier   rounds");
    let mut by_n: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for false_values in [1, 2, 3, 4, 5, 6, 8, 10, 30, 100] {
        for z in [0.0, 1.28, 2.0] {
            for agreement_weight in [0.1, 0.3, 1.0] {
                for (prior_correct, prior_wrong) in [(1.0, 3.0), (1.0, 1.0)] {
                    for initial_accuracy in [0.6, 0.95] {
                        let options = Options {
                            false_values,
                            z,
                            agreement_weight,
                            prior_correct,
                            prior_wrong,
                            initial_accuracy,
                            ..Options::default()
                        };
                        let r = discover(&claims, &[], &HashMap::new(), &options).unwrap();
                        let accuracy = flights.engine(&r);
                        let audited = draws
                            .iter()
                            .map(|audits| {
                                let d = discover(&claims, audits, &HashMap::new(), &options).unwrap();
                                flights.unaudited_accuracy(&d, audits)
                            })
                            .sum::<f64>()
                            / draws.len() as f64;
                        by_n.entry(false_values).or_default().push(accuracy);
                        println!(
                            "flights sweep: {false_values:<4} {z:<5} {agreement_weight:<6} {prior_correct}/{prior_wrong}    \
                             {initial_accuracy:<8} {accuracy:.4}    {audited:.4}   {:.4}  {}{}",
                            flights.brier(&r),
                            r.iterations,
                            if r.converged { "" } else { " (not converged)" }
                        );
                    }
                }
            }
        }
    }
    for (n, mut accuracies) in by_n {
        accuracies.sort_by(f64::total_cmp);
        println!(
            "flights sweep: n = {n:<3} accuracy min {:.4} median {:.4} max {:.4}",
            accuracies[0],
            accuracies[accuracies.len() / 2],
            accuracies[accuracies.len() - 1]
        );
    }
}
