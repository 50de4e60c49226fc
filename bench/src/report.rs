//! The results table: median, min and max of each side, the ratio of the medians and the
//! target, printed on the terminal and written as Markdown.

use std::fmt::Write;
use std::time::Duration;

/// Median, min and max of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Stats { median, min: sorted[0], max: sorted[n - 1] }
    }

    /// Seconds of some durations.
    pub fn of_times(samples: &[Duration]) -> Stats {
        Stats::of(&samples.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
    }

    /// `items` per second of each duration.
    pub fn of_rates(items: f64, samples: &[Duration]) -> Stats {
        Stats::of(&samples.iter().map(|d| items / d.as_secs_f64()).collect::<Vec<_>>())
    }
}

/// How a side's samples read.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Seconds,
    /// Rows (or calls) per second.
    PerSecond(&'static str),
    MiB,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::Seconds if value < 10.0 => format!("{value:.3} s"),
            Unit::Seconds => format!("{value:.1} s"),
            Unit::PerSecond(what) => format!("{} {what}/s", group_digits(value)),
            Unit::MiB => format!("{value:.0} MiB"),
        }
    }
}

/// One side of a measurement: what ran and its samples.
#[derive(Clone, Debug)]
pub struct Side {
    pub what: String,
    pub stats: Stats,
    pub unit: Unit,
}

impl Side {
    pub fn new(what: impl Into<String>, stats: Stats, unit: Unit) -> Side {
        Side { what: what.into(), stats, unit }
    }

    fn cell(&self) -> String {
        if self.stats.median.is_nan() {
            return "—".into();
        }
        format!(
            "{} ({} – {})",
            self.unit.format(self.stats.median),
            self.unit.format(self.stats.min),
            self.unit.format(self.stats.max)
        )
    }
}

/// A target for the ratio of medians.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// Not slower than the baseline (a target of 1×), met because the subject runs the
    /// baseline's own plan (the planner chose it): the two sides are the same plan timed twice,
    /// and their ratio shows the runs' noise, not a difference to judge.
    SamePlan(f64),
    /// No target: a second baseline, shown for reference.
    Reference,
    /// No target in the issue: the figure is reported (the portable edition's costs, issue 17).
    Reported,
    /// Not measured: what it needs is missing (the row's subject says what).
    Skipped,
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(t) => ratio >= t,
            Target::AtMost(t) => ratio <= t,
            Target::SamePlan(_) | Target::Reference | Target::Reported | Target::Skipped => true,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(t) => format!("≥ {t}×"),
            Target::SamePlan(t) => format!("≥ {t}×"),
            Target::AtMost(t) => format!("≤ {t}×"),
            Target::Reference => "reference".into(),
            Target::Reported => "reported".into(),
            Target::Skipped => "skipped".into(),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// `1. ingest`, `3. consensus_mode`, …
    pub measurement: String,
    /// The data size this row used.
    pub size: String,
    pub subject: Side,
    pub baseline: Option<Side>,
    /// The ratio of medians and what it means (`rate ratio`, `speed-up`, `time ratio`).
    pub ratio: f64,
    pub ratio_meaning: &'static str,
    pub target: Target,
    /// Notes printed under the table.
    pub notes: Vec<String>,
}

impl Row {
    /// A row saying `measurement` was not measured, and why (`reason`).
    pub fn skipped(measurement: impl Into<String>, reason: impl Into<String>) -> Row {
        let nothing = Stats { median: f64::NAN, min: f64::NAN, max: f64::NAN };
        Row {
            measurement: measurement.into(),
            size: "—".into(),
            subject: Side::new(reason, nothing, Unit::Seconds),
            baseline: None,
            ratio: f64::NAN,
            ratio_meaning: "",
            target: Target::Skipped,
            notes: vec![],
        }
    }

    /// A speed-up (baseline time / subject time) shown for reference, with no target.
    pub fn reference_speedup(
        measurement: impl Into<String>,
        size: impl Into<String>,
        subject: Side,
        baseline: Side,
        notes: Vec<String>,
    ) -> Row {
        Row {
            measurement: measurement.into(),
            size: size.into(),
            ratio: Row::speedup(&subject, &baseline),
            ratio_meaning: "speed-up",
            subject,
            baseline: Some(baseline),
            target: Target::Reference,
            notes,
        }
    }

    /// Subject rate / baseline rate (both in the same unit).
    pub fn rate_ratio(subject: &Side, baseline: &Side) -> f64 {
        subject.stats.median / baseline.stats.median
    }

    /// Baseline time / subject time.
    pub fn speedup(subject: &Side, baseline: &Side) -> f64 {
        baseline.stats.median / subject.stats.median
    }

    /// Subject time / baseline time.
    pub fn time_ratio(subject: &Side, baseline: &Side) -> f64 {
        subject.stats.median / baseline.stats.median
    }

    fn verdict(&self) -> &'static str {
        if matches!(self.target, Target::Reference | Target::Reported | Target::Skipped) {
            ""
        } else if matches!(self.target, Target::SamePlan(_)) {
            "met by the plan (the serial one)"
        } else if self.target.met(self.ratio) {
            "met"
        } else {
            "MISSED"
        }
    }

    /// The ratio to two decimals, or to as many more (up to 6) as it takes for the figure shown
    /// to fall on the same side of the target as the ratio itself: a speed-up of 1.696 against
    /// ≥ 1.7× is MISSED and reads 1.696×, not 1.70×.
    fn ratio_cell(&self) -> String {
        if !self.ratio.is_finite() {
            return "—".into();
        }
        let agrees = |decimals: usize| {
            let shown: f64 = format!("{:.*}", decimals, self.ratio).parse().expect("a formatted number");
            self.target.met(shown) == self.target.met(self.ratio)
        };
        let decimals = (2..6).find(|&d| agrees(d)).unwrap_or(6);
        format!("{:.*}× ({})", decimals, self.ratio, self.ratio_meaning)
    }
}

const HEADERS: [&str; 8] = [
    "measurement",
    "size",
    "subject",
    "subject: median (min – max)",
    "baseline",
    "baseline: median (min – max)",
    "ratio of medians",
    "target",
];

fn cells(row: &Row) -> [String; 8] {
    let (baseline, baseline_cell) = match &row.baseline {
        Some(b) => (b.what.clone(), b.cell()),
        None => ("—".into(), "—".into()),
    };
    [
        row.measurement.clone(),
        row.size.clone(),
        row.subject.what.clone(),
        row.subject.cell(),
        baseline,
        baseline_cell,
        row.ratio_cell(),
        format!("{} {}", row.target.describe(), row.verdict()).trim().to_owned(),
    ]
}

/// The table for a terminal: one block per row (the cells are too wide for one line).
pub fn text_table(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let cells = cells(row);
        let _ = writeln!(out, "{}  [{}]", cells[0], cells[1]);
        let _ = writeln!(out, "    subject   {:<48} {}", cells[2], cells[3]);
        let _ = writeln!(out, "    baseline  {:<48} {}", cells[4], cells[5]);
        let _ = writeln!(out, "    ratio     {}   target {}", cells[6], cells[7]);
    }
    out
}

/// The table as Markdown (backticks kept, pipes escaped).
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for row in rows {
        let cells: Vec<String> = cells(row).iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// 1234567 → "1,234,567".
pub fn thousands(count: usize) -> String {
    group_digits(count as f64)
}

/// 1234567.8 → "1,234,568".
pub fn group_digits(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]), Stats { median: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(Stats::of(&[4.0, 1.0]).median, 2.5);
    }

    /// A ratio that two decimals would round onto the other side of its target is shown with
    /// the decimals that keep it on its own side; any other with two.
    #[test]
    fn a_ratio_is_never_shown_on_the_wrong_side_of_its_target() {
        let side = Side::new("x", Stats::of(&[1.0]), Unit::Seconds);
        let row = |ratio: f64, target: Target| Row {
            measurement: "m".into(),
            size: "s".into(),
            subject: side.clone(),
            baseline: None,
            ratio,
            ratio_meaning: "speed-up",
            target,
            notes: vec![],
        };
        for (ratio, target, cell, verdict) in [
            (1.696, Target::AtLeast(1.7), "1.696× (speed-up)", "MISSED"),
            (1.6999, Target::AtLeast(1.7), "1.6999× (speed-up)", "MISSED"),
            (1.7, Target::AtLeast(1.7), "1.70× (speed-up)", "met"),
            (1.704, Target::AtLeast(1.7), "1.70× (speed-up)", "met"),
            (1.3004, Target::AtMost(1.3), "1.3004× (speed-up)", "MISSED"),
            (1.296, Target::AtMost(1.3), "1.30× (speed-up)", "met"),
            (1.696, Target::Reference, "1.70× (speed-up)", ""),
        ] {
            let row = row(ratio, target);
            assert_eq!((row.ratio_cell().as_str(), row.verdict()), (cell, verdict), "{ratio}");
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(group_digits(1_234_567.8), "1,234,568");
        assert_eq!(group_digits(999.0), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
