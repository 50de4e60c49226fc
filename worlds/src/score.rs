//! The consensus in `resi.listings` against a world's truth at the end, and the miners' trust.
//!
//! A field is right when it is within the consensus tolerance of the truth: price within 1 %,
//! living_area within 2 %, bedrooms, bathrooms and home_status equal. A listing without a
//! consensus value counts as wrong. Accuracy is reported over all listings, the audited and the
//! unaudited ones, the ring's targets and the rest, and the hard pages; trust as min / mean /
//! max per miner kind, and how many of each kind were grouped with another miner.

use crate::files::{read_audits, read_miners, read_summary, read_truth, Truth};
use crate::world::{Kind, Scenario};
use anyhow::Result;
use postgres::Client;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Serialize, Deserialize)]
pub struct Score {
    /// The resi_pg version of the scored database.
    pub extension_version: String,
    pub scenario: Scenario,
    pub seed: u64,
    pub listings: usize,
    pub cycles: usize,
    pub audit_rate: f64,
    pub ledger: Ledger,
    /// Accuracy over groups of listings: all, audited, unaudited, ring targets, not targeted.
    pub groups: Vec<Accuracy>,
    /// Per miner kind present in the world.
    pub trust: Vec<KindTrust>,
    /// Whether every honest miner's trust is above every ring member's (None without a ring).
    pub honest_above_ring: Option<bool>,
}

/// What `resi.ingest_ledger` and `resi.miner_penalties` say about the loading.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ledger {
    pub loaded: i64,
    pub rejected: i64,
    pub deferred: i64,
    pub strikes: i64,
    /// "status: reason (count)" of objects not loaded, most frequent first.
    pub not_loaded: Vec<String>,
}

/// The share of right values per field over a group of listings.
#[derive(Debug, Serialize, Deserialize)]
pub struct Accuracy {
    pub group: String,
    pub listings: usize,
    pub without_consensus: usize,
    pub price: f64,
    pub bedrooms: f64,
    pub bathrooms: f64,
    pub living_area: f64,
    pub home_status: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KindTrust {
    pub kind: Kind,
    pub miners: usize,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    /// Miners of the kind that `resi.miner_groups` puts in a group with another miner (absent
    /// from scores written before it was counted).
    #[serde(default)]
    pub grouped: usize,
}

/// One listing's consensus as `resi.listings` holds it.
struct Consensus {
    price: Option<i64>,
    bedrooms: Option<i32>,
    bathrooms: Option<f64>,
    living_area: Option<i32>,
    home_status: Option<String>,
}

/// Which fields of a listing's consensus are right.
#[derive(Default)]
struct Verdict {
    price: bool,
    bedrooms: bool,
    bathrooms: bool,
    living_area: bool,
    home_status: bool,
}

fn judge(truth: &Truth, consensus: Option<&Consensus>) -> Verdict {
    let Some(c) = consensus else { return Verdict::default() };
    let within = |value: Option<f64>, truth: f64, tolerance: f64| {
        value.is_some_and(|v| (v - truth).abs() <= tolerance * truth.abs())
    };
    Verdict {
        price: within(c.price.map(|p| p as f64), truth.price as f64, 0.01),
        bedrooms: c.bedrooms == Some(truth.bedrooms),
        bathrooms: c.bathrooms.is_some_and(|b| (b - truth.bathrooms).abs() < 0.05),
        living_area: within(c.living_area.map(f64::from), f64::from(truth.living_area), 0.02),
        home_status: c.home_status.as_deref() == Some(truth.home_status.as_str()),
    }
}

/// Score the database at `client` against the world in `world`.
pub fn score(client: &mut Client, world: &Path) -> Result<Score> {
    let summary = read_summary(world)?;
    let truth = read_truth(world)?;
    let miners = read_miners(world)?;
    let audited: HashSet<String> = read_audits(world)?.into_iter().map(|a| a.zpid).collect();
    let targets: HashSet<&str> = summary.ring_targets.iter().map(String::as_str).collect();
    let hard: HashSet<&str> = summary.hard_pages.iter().map(String::as_str).collect();

    let zpids: Vec<&str> = truth.iter().map(|t| t.zpid.as_str()).collect();
    let consensus: HashMap<String, Consensus> = client
        .query(
            "SELECT zpid, price, bedrooms, bathrooms::float8, living_area, home_status
               FROM resi.listings WHERE zpid = ANY ($1)",
            &[&zpids],
        )?
        .into_iter()
        .map(|r| {
            let c = Consensus {
                price: r.get(1),
                bedrooms: r.get(2),
                bathrooms: r.get(3),
                living_area: r.get(4),
                home_status: r.get(5),
            };
            (r.get(0), c)
        })
        .collect();
    let verdicts: Vec<(&Truth, Verdict)> = truth.iter().map(|t| (t, judge(t, consensus.get(&t.zpid)))).collect();
    let group = |name: &str, member: &dyn Fn(&Truth) -> bool| -> Option<Accuracy> {
        let members: Vec<&(&Truth, Verdict)> = verdicts.iter().filter(|(t, _)| member(t)).collect();
        let n = members.len();
        let share =
            |right: &dyn Fn(&Verdict) -> bool| members.iter().filter(|(_, v)| right(v)).count() as f64 / n as f64;
        (n > 0).then(|| Accuracy {
            group: name.into(),
            listings: n,
            without_consensus: members.iter().filter(|(t, _)| !consensus.contains_key(&t.zpid)).count(),
            price: share(&|v| v.price),
            bedrooms: share(&|v| v.bedrooms),
            bathrooms: share(&|v| v.bathrooms),
            living_area: share(&|v| v.living_area),
            home_status: share(&|v| v.home_status),
        })
    };
    let mut groups: Vec<Accuracy> = group("all", &|_| true).into_iter().collect();
    if !audited.is_empty() {
        groups.extend(group("audited", &|t| audited.contains(&t.zpid)));
        groups.extend(group("unaudited", &|t| !audited.contains(&t.zpid)));
    }
    if !targets.is_empty() {
        groups.extend(group("ring targets", &|t| targets.contains(t.zpid.as_str())));
        groups.extend(group("not targeted", &|t| !targets.contains(t.zpid.as_str())));
    }
    if !hard.is_empty() {
        groups.extend(group("hard pages", &|t| hard.contains(t.zpid.as_str())));
    }

    // A miner without a row in resi.miner_trust votes with resi.initial_trust().
    let hotkeys: Vec<&str> = miners.iter().map(|(h, _)| h.as_str()).collect();
    let trust_of: HashMap<String, f64> = client
        .query(
            "SELECT h, coalesce(t.trust_score, resi.initial_trust())
               FROM unnest($1::text[]) h LEFT JOIN resi.miner_trust t ON t.miner_hotkey = h",
            &[&hotkeys],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let grouped: HashSet<String> = client
        .query(
            "SELECT g.miner_hotkey FROM resi.miner_groups g
              WHERE EXISTS (SELECT FROM resi.miner_groups o
                             WHERE o.group_hotkey = g.group_hotkey AND o.miner_hotkey <> g.miner_hotkey)",
            &[],
        )?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let trust_of_kind =
        |kind: Kind| -> Vec<f64> { miners.iter().filter(|(_, k)| *k == kind).map(|(h, _)| trust_of[h]).collect() };
    let trust: Vec<KindTrust> = Kind::ALL
        .into_iter()
        .filter_map(|kind| {
            let values = trust_of_kind(kind);
            (!values.is_empty()).then(|| KindTrust {
                kind,
                miners: values.len(),
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                mean: values.iter().sum::<f64>() / values.len() as f64,
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                grouped: miners.iter().filter(|(h, k)| *k == kind && grouped.contains(h)).count(),
            })
        })
        .collect();
    let bound = |kind: Kind| trust.iter().find(|t| t.kind == kind);
    let honest_above_ring = match (bound(Kind::Honest), bound(Kind::Ring)) {
        (Some(honest), Some(ring)) => Some(honest.min > ring.max),
        _ => None,
    };

    let extension_version =
        client.query_one("SELECT extversion FROM pg_extension WHERE extname = 'resi_pg'", &[])?.get(0);
    Ok(Score {
        extension_version,
        scenario: summary.scenario,
        seed: summary.seed,
        listings: summary.listings,
        cycles: summary.cycles,
        audit_rate: summary.audit_rate,
        ledger: ledger(client)?,
        groups,
        trust,
        honest_above_ring,
    })
}

fn ledger(client: &mut Client) -> Result<Ledger> {
    let counts = client.query_one(
        "SELECT count(*) FILTER (WHERE status = 'loaded'), count(*) FILTER (WHERE status = 'rejected'),
                count(*) FILTER (WHERE status = 'deferred'),
                (SELECT count(*) FROM resi.miner_penalties WHERE kind = 'strike')
           FROM resi.ingest_ledger",
        &[],
    )?;
    let not_loaded = client
        .query(
            "SELECT format('%s: %s (%s)', status, coalesce(split_part(reason, ':', 1), 'no reason'), count(*))
               FROM resi.ingest_ledger WHERE status <> 'loaded'
              GROUP BY status, split_part(reason, ':', 1) ORDER BY count(*) DESC",
            &[],
        )?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Ledger {
        loaded: counts.get(0),
        rejected: counts.get(1),
        deferred: counts.get(2),
        strikes: counts.get(3),
        not_loaded,
    })
}

impl Score {
    /// The full report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## {}, audit rate {} (resi_pg {}, seed {}, {} listings, {} cycles)\n",
            self.scenario.name(),
            self.audit_rate,
            self.extension_version,
            self.seed,
            self.listings,
            self.cycles
        );
        let l = &self.ledger;
        let _ = writeln!(
            out,
            "Objects: {} loaded, {} rejected, {} deferred; {} strikes.{}\n",
            l.loaded,
            l.rejected,
            l.deferred,
            l.strikes,
            if l.not_loaded.is_empty() { String::new() } else { format!(" Not loaded: {}.", l.not_loaded.join("; ")) }
        );
        out.push_str(
            "| listings | count | no consensus | price | bedrooms | bathrooms | living_area | home_status |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for g in &self.groups {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                g.group,
                g.listings,
                g.without_consensus,
                g.price,
                g.bedrooms,
                g.bathrooms,
                g.living_area,
                g.home_status
            );
        }
        out.push_str(
            "\n| miner kind | miners | trust min | trust mean | trust max | grouped |\n|---|---:|---:|---:|---:|---:|\n",
        );
        for t in &self.trust {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {:.3} | {} |",
                t.kind.name(),
                t.miners,
                t.min,
                t.mean,
                t.max,
                t.grouped
            );
        }
        let check = self.honest_above_ring.map_or("n/a (no ring)".to_string(), |b| b.to_string());
        let _ = writeln!(out, "\nEvery honest miner's trust above every ring member's: {check}");
        out
    }

    fn group(&self, name: &str) -> Option<&Accuracy> {
        self.groups.iter().find(|g| g.group == name)
    }

    fn trust(&self, kind: Kind) -> Option<&KindTrust> {
        self.trust.iter().find(|t| t.kind == kind)
    }
}

/// One row per score: the headline numbers of several runs side by side.
pub fn table(scores: &[Score]) -> String {
    let mut out = String::from(
        "| scenario | audit rate | resi_pg | price | bedrooms | bathrooms | living_area | home_status | price audited \
         | price unaudited | price ring targets | price hard pages | honest trust min / mean | ring trust mean / max \
         | honest > ring | grouped honest / ring | objects loaded / rejected / deferred |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n",
    );
    let price = |s: &Score, group: &str| s.group(group).map_or("–".to_string(), |g| format!("{:.3}", g.price));
    for s in scores {
        let Some(all) = s.group("all") else { continue };
        let honest = s.trust(Kind::Honest).map_or("–".to_string(), |t| format!("{:.2} / {:.2}", t.min, t.mean));
        let ring = s.trust(Kind::Ring).map_or("–".to_string(), |t| format!("{:.2} / {:.2}", t.mean, t.max));
        let grouped = |kind: Kind| s.trust(kind).map_or("–".to_string(), |t| format!("{}/{}", t.grouped, t.miners));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {honest} | {ring} | {} | {} / {} \
             | {} / {} / {} |",
            s.scenario.name(),
            s.audit_rate,
            s.extension_version,
            all.price,
            all.bedrooms,
            all.bathrooms,
            all.living_area,
            all.home_status,
            price(s, "audited"),
            price(s, "unaudited"),
            price(s, "ring targets"),
            price(s, "hard pages"),
            s.honest_above_ring.map_or("n/a", |b| if b { "yes" } else { "no" }),
            grouped(Kind::Honest),
            grouped(Kind::Ring),
            s.ledger.loaded,
            s.ledger.rejected,
            s.ledger.deferred,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> Truth {
        Truth {
            zpid: "1".into(),
            price: 500_000,
            bedrooms: 3,
            bathrooms: 2.5,
            living_area: 2000,
            home_status: "FOR_SALE".into(),
        }
    }

    #[test]
    fn tolerances() {
        let c = |price, living_area| Consensus {
            price: Some(price),
            bedrooms: Some(3),
            bathrooms: Some(2.5),
            living_area: Some(living_area),
            home_status: Some("FOR_SALE".into()),
        };
        let v = judge(&truth(), Some(&c(505_000, 2040)));
        assert!(v.price && v.bedrooms && v.bathrooms && v.living_area && v.home_status);
        let v = judge(&truth(), Some(&c(505_001, 2041)));
        assert!(!v.price && !v.living_area && v.bedrooms);
        let v = judge(&truth(), None);
        assert!(!v.price && !v.bedrooms && !v.home_status);
        let missing = Consensus { price: None, bedrooms: None, bathrooms: None, living_area: None, home_status: None };
        assert!(!judge(&truth(), Some(&missing)).bathrooms);
    }
}
