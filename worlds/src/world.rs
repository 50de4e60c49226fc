//! A world: listings and their truth in every cycle, the miners, every object they upload and
//! when, and the validator's audits. All of it is a function of a `Config`, so of one seed.
//!
//! Time runs in upload cycles two hours apart. Within cycle k (1-based, starting at
//! `cycle_start(k)`):
//!
//! ```text
//! 0-35 min    miners scrape (the rows' `datetime`); truth is that of cycle k
//! 43-55 min   a ring that uploads first (ring-copies-first)
//! 60-89 min   everyone else, and rings that upload with everyone
//! 95-109 min  a ring that uploads after everyone (ring-copies-after)
//! 115 min     the validator re-scrapes the cycle's audited listings
//! ```
//!
//! Between two cycles the truth drifts: a few % of prices change, a few statuses move on
//! (for sale → pending → sold), and days_on_zillow counts up with the clock, so miners that
//! did not re-scrape a listing hold stale values.
//!
//! Miners (see `Kind`): each scraper covers its share of the listings in every cycle (a fresh
//! random subset each time) and uploads one object per zip code. Honest and sloppy miners get
//! fields wrong at their error rate (wrong values are random plausible ones); spammers report
//! every listing with random values. Ring members tell the same lies — price +20 %, one more
//! bedroom — about the same 40 % of listings (their targets) whenever they report one, and the
//! truth elsewhere; apart from the lies they scrape like honest miners. A nudging ring lies about
//! the price alone, each identity moving each lie by up to 0.4 % (inside the 1 % tolerance, so
//! the lies agree but are rarely the same number). A spreading ring lies about the price alone,
//! each identity with its own lie, 10-30 % above the truth (rarely within the tolerance of
//! another's, but all on the same side). A copying ring has two
//! scrapers; each of its other identities uploads, a little after them, every object they
//! upload: byte-identical, or jittered (scrape times shifted by minutes, prices and living
//! areas nudged within the consensus tolerance, ~15 % of rows dropped, rows reordered).

use crate::rng::{Rng, Stream};
use crate::time;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// 2025-09-17 08:00:00 UTC: the start of cycle 1.
pub const FIRST_CYCLE: i64 = 1_758_096_000;
/// Seconds between two cycles.
pub const CYCLE_SECS: i64 = 2 * 3600;
/// Rows are scraped within this many seconds from the start of their cycle.
const SCRAPE_SECS: i64 = 35 * 60;
/// When the validator re-scrapes audited listings, from the start of the cycle.
const AUDIT_AT_SECS: i64 = 115 * 60;
/// Seconds between two objects of one miner in one cycle.
const OBJECT_SPACING_SECS: i64 = 20;
/// A copier uploads each copy this many seconds after its source object (from..to).
const COPY_DELAY_SECS: (i64, i64) = (30, 180);
/// A jittering copier shifts each row's scrape time by this many seconds, either way (from..to).
const JITTER_SHIFT_SECS: (i64, i64) = (60, 300);
/// A jittering copier drops this share of the rows.
const JITTER_DROP: f64 = 0.15;
/// A jittering copier moves a price by up to this share (the consensus tolerance is 1 %).
const JITTER_PRICE: f64 = 0.004;
/// A jittering copier moves a living area by up to this share (the tolerance is 2 %).
const JITTER_AREA: f64 = 0.015;
/// The share of listings a ring lies about, unless the world's [`Config::ring_targets`] says.
pub const RING_TARGET_SHARE: f64 = 0.4;
/// How often a scraper misreads a hard page's price (see [`Config::hard_pages`]).
const HARD_PAGE_ERROR: f64 = 0.5;
/// The ring's false price, a multiple of the true one.
const RING_PRICE_FACTOR: f64 = 1.2;
/// A nudging ring moves each false price by up to this share either way (the consensus
/// tolerance is 1 %, so two of its lies are within 0.8 % of each other).
const RING_NUDGE: f64 = 0.004;
/// A spreading ring raises each false price by this share of the true one (from..to), a draw
/// of its own for each identity, listing and cycle: two of its lies are rarely within the 1 %
/// tolerance of each other; all lie the same way.
const RING_SPREAD: (f64, f64) = (0.1, 0.3);
/// The share of listings whose price changes between two cycles.
const PRICE_DRIFT: f64 = 0.03;
/// The share of listings whose status moves on between two cycles.
const STATUS_DRIFT: f64 = 0.01;
/// A miner's object allowance per UTC day at the lowest trust (`resi.rate_limit_tiers`,
/// `0:100`); more objects would be deferred, so a world never needs more.
const DAILY_ALLOWANCE: usize = 100;
/// The first zpid; listings follow in steps of 40.
const FIRST_ZPID: u64 = 20_000_000;

const HOME_TYPES: [&str; 4] = ["SINGLE_FAMILY", "TOWNHOUSE", "CONDO", "MULTI_FAMILY"];
const HOME_STATUSES: [&str; 4] = ["FOR_SALE", "PENDING", "RECENTLY_SOLD", "FOR_RENT"];
const BEDROOMS: [i64; 6] = [1, 2, 3, 4, 5, 6];
const BATHROOMS: [f64; 8] = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5];
const STREETS: [&str; 8] = ["Oak", "Pine", "Cedar", "Elm", "Maple", "Willow", "Magnolia", "Pecan"];
const SUFFIXES: [&str; 4] = ["St", "Dr", "Ln", "Ct"];

/// A zip code and where it is.
#[derive(Debug)]
pub struct Place {
    pub zip: &'static str,
    pub city: &'static str,
    latitude: f64,
    longitude: f64,
}

/// The four zip codes of every world.
pub static PLACES: [Place; 4] = [
    Place { zip: "77494", city: "Katy", latitude: 29.74, longitude: -95.83 },
    Place { zip: "77450", city: "Katy", latitude: 29.75, longitude: -95.75 },
    Place { zip: "77079", city: "Houston", latitude: 29.77, longitude: -95.60 },
    Place { zip: "78660", city: "Pflugerville", latitude: 30.44, longitude: -97.62 },
];

/// A generated world's scenario: who the adversary is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Honest majority only: honest, sloppy and spamming miners, no ring.
    Honest,
    /// One operator: two scrapers, and copiers uploading byte copies of all their objects, with everyone.
    RingCopies,
    /// The copying ring uploads before everyone else in each cycle.
    RingCopiesFirst,
    /// The copying ring uploads after everyone else in each cycle.
    RingCopiesAfter,
    /// The copiers jitter their copies: scrape times, prices, areas, dropped and reordered rows.
    Jitter,
    /// Every ring identity scrapes for itself, but they all tell the same lies.
    IndependentRing,
    /// As `IndependentRing`, but the lie is the price alone, and each identity nudges it apart
    /// within the consensus tolerance: one lie, hardly ever the same value twice.
    NudgedRing,
    /// As `IndependentRing`, but the lie is the price alone, each identity's its own: the truth
    /// raised by 10-30 %, so the ring's lies are rarely alike, only all too high.
    SpreadRing,
}

impl Scenario {
    #[cfg(test)]
    pub const ALL: [Scenario; 8] = [
        Scenario::Honest,
        Scenario::RingCopies,
        Scenario::RingCopiesFirst,
        Scenario::RingCopiesAfter,
        Scenario::Jitter,
        Scenario::IndependentRing,
        Scenario::NudgedRing,
        Scenario::SpreadRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Honest => "honest",
            Scenario::RingCopies => "ring-copies",
            Scenario::RingCopiesFirst => "ring-copies-first",
            Scenario::RingCopiesAfter => "ring-copies-after",
            Scenario::Jitter => "jitter",
            Scenario::IndependentRing => "independent-ring",
            Scenario::NudgedRing => "nudged-ring",
            Scenario::SpreadRing => "spread-ring",
        }
    }

    fn ring(self) -> Option<Ring> {
        match self {
            Scenario::Honest => None,
            Scenario::RingCopies => Some(Ring::Copies { window: EVERYONE, jitter: false }),
            Scenario::RingCopiesFirst => Some(Ring::Copies { window: RING_FIRST, jitter: false }),
            Scenario::RingCopiesAfter => Some(Ring::Copies { window: RING_AFTER, jitter: false }),
            Scenario::Jitter => Some(Ring::Copies { window: EVERYONE, jitter: true }),
            Scenario::IndependentRing => Some(Ring::Independent { lie: Lie::Same }),
            Scenario::NudgedRing => Some(Ring::Independent { lie: Lie::Nudged }),
            Scenario::SpreadRing => Some(Ring::Independent { lie: Lie::Spread }),
        }
    }
}

/// How a scenario's ring works.
enum Ring {
    /// Two scrapers; the other identities copy their objects.
    Copies { window: Window, jitter: bool },
    /// Every identity scrapes for itself and tells `lie` on the targeted listings.
    Independent { lie: Lie },
}

/// What an independent ring's identities tell about a targeted listing.
enum Lie {
    /// The same false price and bedrooms.
    Same,
    /// The same false price, each identity moving it by up to [`RING_NUDGE`] either way.
    Nudged,
    /// A false price of each identity's own, the truth raised by [`RING_SPREAD`].
    Spread,
}

/// The ring's scrapers when it copies.
const RING_SCRAPERS: usize = 2;

/// When a miner uploads its first object of a cycle: `start` plus up to `length` seconds
/// after the cycle's start.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: i64,
    length: i64,
}

const RING_FIRST: Window = Window { start: 43 * 60, length: 8 * 60 };
const EVERYONE: Window = Window { start: 60 * 60, length: 25 * 60 };
const RING_AFTER: Window = Window { start: 95 * 60, length: 10 * 60 };

/// Everything a world is made from.
#[derive(Clone, Debug)]
pub struct Config {
    pub scenario: Scenario,
    pub seed: u64,
    pub listings: usize,
    pub cycles: usize,
    pub honest: usize,
    pub sloppy: usize,
    pub spammers: usize,
    /// Ring identities (scrapers and copiers); unused by the `honest` scenario.
    pub ring_size: usize,
    /// The share of listings the ring lies about (0 to 1): few targets are few chances for
    /// an audit to catch a lie.
    pub ring_targets: f64,
    /// The share of listings that are hard pages (0 to 1): every scraper, honest or not,
    /// misreads a hard page's price half the time, each time with a value of its own (5-30 %
    /// off). Honest errors that fall on the same listings: independent miners are then wrong
    /// together far more often than their error rates alone would make them.
    pub hard_pages: f64,
    /// The share of listings the validator audits in each cycle.
    pub audit_rate: f64,
}

/// What kind of miner, as miners.csv and the scorer name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Scrapes for itself; 1-3 % of its field values are wrong.
    Honest,
    /// Scrapes for itself; 10-20 % of its field values are wrong.
    Sloppy,
    /// Reports every listing with random values.
    Spammer,
    /// A member of the colluding ring (a scraper, a copier or an independent liar).
    Ring,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Honest, Kind::Sloppy, Kind::Spammer, Kind::Ring];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Honest => "honest",
            Kind::Sloppy => "sloppy",
            Kind::Spammer => "spammer",
            Kind::Ring => "ring",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A listing's values that change over time or that miners get wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Facts {
    pub price: i64,
    pub bedrooms: i64,
    pub bathrooms: f64,
    pub living_area: i64,
    pub home_type: &'static str,
    pub home_status: &'static str,
}

/// A property, with its truth in every cycle.
#[derive(Debug)]
pub struct Listing {
    pub zpid: u64,
    pub place: &'static Place,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    /// When it was listed (days_on_zillow counts from here).
    listed_at: i64,
    /// The truth in cycle k at `truth[k - 1]`.
    truth: Vec<Facts>,
    /// One of the listings the ring lies about.
    pub ring_target: bool,
    /// A page scrapers misread (see [`Config::hard_pages`]).
    pub hard: bool,
}

impl Listing {
    pub fn truth(&self, cycle: usize) -> &Facts {
        &self.truth[cycle - 1]
    }

    pub fn days_on_zillow(&self, at: i64) -> i64 {
        (at - self.listed_at).div_euclid(86_400)
    }

    pub fn uri(&self) -> String {
        format!("https://www.zillow.com/homedetails/{}_zpid/", self.zpid)
    }
}

/// A copier's sources and manner.
#[derive(Clone, Debug)]
pub struct Copying {
    /// The miners whose objects it uploads (the ring's scrapers).
    pub sources: Vec<usize>,
    /// Whether it disguises its copies.
    pub jitter: bool,
}

/// A hotkey and how it behaves.
#[derive(Debug)]
pub struct Miner {
    pub hotkey: String,
    pub kind: Kind,
    /// Who runs it: its own name, or `ring` for every ring identity.
    pub operator: String,
    /// Some for a copier: it uploads another miner's objects instead of scraping.
    pub copies: Option<Copying>,
    /// The share of a scraper's field values that are wrong.
    error_rate: f64,
    /// The share of listings a scraper reports in each cycle.
    coverage: f64,
    window: Window,
}

/// One reported row; the listing's identity (uri, address, zip code, place) is always true.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Index into `World::listings`.
    pub listing: usize,
    /// Scrape time, Unix seconds.
    pub scraped_at: i64,
    pub facts: Facts,
    pub days_on_zillow: i64,
}

/// One object in the bucket.
#[derive(Clone, Debug)]
pub struct Upload {
    pub cycle: usize,
    /// Index into `World::miners`.
    pub miner: usize,
    /// `data/hotkey=…/job_id=zillow_zip_…/data_YYYYMMDD_HHMMSS_rows.parquet`.
    pub key: String,
    /// S3 LastModified, Unix seconds (the file's mtime).
    pub uploaded_at: i64,
    pub rows: Vec<Row>,
}

/// A listing the validator re-scrapes after a cycle's uploads.
#[derive(Clone, Copy, Debug)]
pub struct Audit {
    pub cycle: usize,
    /// Index into `World::listings`.
    pub listing: usize,
    pub seen_at: i64,
}

pub struct World {
    pub config: Config,
    pub listings: Vec<Listing>,
    pub miners: Vec<Miner>,
    /// In the loader's order: oldest first, then by key.
    pub uploads: Vec<Upload>,
    /// Per cycle in the validator's order.
    pub audits: Vec<Audit>,
}

/// The start of cycle `cycle` (1-based).
pub fn cycle_start(cycle: usize) -> i64 {
    FIRST_CYCLE + (cycle as i64 - 1) * CYCLE_SECS
}

/// When the validator re-scrapes in `cycle`; the truth of a cycle is as of this time.
pub fn audit_time(cycle: usize) -> i64 {
    cycle_start(cycle) + AUDIT_AT_SECS
}

impl World {
    pub fn generate(config: &Config) -> Result<World> {
        if config.listings == 0 || config.cycles == 0 {
            bail!("a world needs at least one listing and one cycle");
        }
        if !(0.0..=1.0).contains(&config.audit_rate) {
            bail!("the audit rate is a share of the listings, between 0 and 1, not {}", config.audit_rate);
        }
        let ring = config.scenario.ring();
        let listings = listings(config, ring.is_some());
        let miners = miners(config, ring.as_ref());
        let mut uploads = Vec::new();
        for cycle in 1..=config.cycles {
            let first_of_cycle = uploads.len();
            for (m, miner) in miners.iter().enumerate().filter(|(_, m)| m.copies.is_none()) {
                uploads.extend(scrape(config, &listings, m, miner, cycle));
            }
            let mut copies = Vec::new();
            for (m, miner) in miners.iter().enumerate() {
                if let Some(copying) = &miner.copies {
                    let mut rng = Rng::new(config.seed, Stream::Coverage, m as u64, cycle as u64);
                    let delay = rng.between(COPY_DELAY_SECS.0, COPY_DELAY_SECS.1);
                    let sources = uploads[first_of_cycle..].iter().filter(|u| copying.sources.contains(&u.miner));
                    for (n, source) in sources.enumerate() {
                        copies.push(copy(config, &listings, source, m, miner, delay, n));
                    }
                }
            }
            uploads.extend(copies);
        }
        uploads.sort_by(|a, b| (a.uploaded_at, &a.key).cmp(&(b.uploaded_at, &b.key)));
        let audits = audits(config);
        let world = World { config: config.clone(), listings, miners, uploads, audits };
        world.check_objects()?;
        Ok(world)
    }

    /// Every object has a key of its own, and objects per miner and UTC day stay within the
    /// lowest daily allowance, so no object is deferred whatever a miner's trust.
    fn check_objects(&self) -> Result<()> {
        let mut keys = std::collections::HashSet::new();
        if let Some(twice) = self.uploads.iter().find(|u| !keys.insert(&u.key)) {
            bail!("two objects with the key {}", twice.key);
        }
        let (most, hotkey) = self.busiest_miner_day();
        if most > DAILY_ALLOWANCE {
            bail!("miner {hotkey} uploads {most} objects in one UTC day, over the allowance of {DAILY_ALLOWANCE}");
        }
        Ok(())
    }

    /// The most objects one miner uploads in one UTC day, and that miner.
    pub fn busiest_miner_day(&self) -> (usize, &str) {
        let mut per_day: BTreeMap<(usize, i64), usize> = BTreeMap::new();
        for upload in &self.uploads {
            *per_day.entry((upload.miner, time::day(upload.uploaded_at))).or_default() += 1;
        }
        per_day
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map(|((miner, _), n)| (n, self.miners[miner].hotkey.as_str()))
            .unwrap_or((0, ""))
    }
}

/// The listings, their truth in every cycle, and (with a ring) the ring's targets.
fn listings(config: &Config, with_ring: bool) -> Vec<Listing> {
    let mut listings: Vec<Listing> = (0..config.listings)
        .map(|i| {
            let mut rng = Rng::new(config.seed, Stream::Listing, i as u64, 0);
            let zpid = FIRST_ZPID + 40 * i as u64 + rng.below(40);
            let place = &PLACES[rng.below(PLACES.len() as u64) as usize];
            let address = format!(
                "{} {} {}, {}, TX {}",
                rng.between(100, 9999),
                rng.pick(&STREETS),
                rng.pick(&SUFFIXES),
                place.city,
                place.zip
            );
            let latitude = round6(place.latitude + rng.uniform(-0.05, 0.05));
            let longitude = round6(place.longitude + rng.uniform(-0.05, 0.05));
            let listed_at = FIRST_CYCLE - rng.between(86_400, 365 * 86_400);
            let first = Facts {
                price: rng.between(150, 1000) * 1000,
                bedrooms: rng.pick(&BEDROOMS),
                bathrooms: rng.pick(&BATHROOMS),
                living_area: rng.between(700, 4700),
                home_type: rng.pick(&HOME_TYPES),
                home_status: rng.pick(&["FOR_SALE", "FOR_SALE", "FOR_SALE", "PENDING", "RECENTLY_SOLD", "FOR_RENT"]),
            };
            let mut truth = vec![first];
            for cycle in 2..=config.cycles {
                let mut rng = Rng::new(config.seed, Stream::Drift, i as u64, cycle as u64);
                let mut facts = *truth.last().expect("cycle 1 is there");
                if rng.chance(PRICE_DRIFT) {
                    let change = rng.uniform(0.02, 0.08) * if rng.chance(0.7) { -1.0 } else { 1.0 };
                    facts.price = round_to(facts.price as f64 * (1.0 + change), 100);
                }
                if rng.chance(STATUS_DRIFT) {
                    facts.home_status = match facts.home_status {
                        "FOR_SALE" => "PENDING",
                        "PENDING" => "RECENTLY_SOLD",
                        other => other,
                    };
                }
                truth.push(facts);
            }
            Listing { zpid, place, address, latitude, longitude, listed_at, truth, ring_target: false, hard: false }
        })
        .collect();
    let mut order: Vec<usize> = (0..listings.len()).collect();
    Rng::new(config.seed, Stream::HardPages, 0, 0).shuffle(&mut order);
    let hard = (listings.len() as f64 * config.hard_pages).round() as usize;
    for &i in &order[..hard] {
        listings[i].hard = true;
    }
    if with_ring {
        let mut order: Vec<usize> = (0..listings.len()).collect();
        Rng::new(config.seed, Stream::RingTargets, 0, 0).shuffle(&mut order);
        let targets = (listings.len() as f64 * config.ring_targets).round() as usize;
        for &i in &order[..targets] {
            listings[i].ring_target = true;
        }
    }
    listings
}

/// The miners: honest, sloppy, spammers, then the ring.
fn miners(config: &Config, ring: Option<&Ring>) -> Vec<Miner> {
    let mut miners = Vec::new();
    let mut add = |kind: Kind, operator: String, copies: Option<Copying>, window: Window| {
        let m = miners.len() as u64;
        let mut rng = Rng::new(config.seed, Stream::Profile, m, 0);
        let (error_rate, coverage) = match kind {
            Kind::Honest | Kind::Ring => (rng.uniform(0.01, 0.03), rng.uniform(0.5, 0.7)),
            Kind::Sloppy => (rng.uniform(0.10, 0.20), rng.uniform(0.5, 0.7)),
            Kind::Spammer => (1.0, 1.0),
        };
        let hotkey = hotkey(config.seed, m);
        miners.push(Miner { hotkey, kind, operator, copies, error_rate, coverage, window });
    };
    for (kind, count) in
        [(Kind::Honest, config.honest), (Kind::Sloppy, config.sloppy), (Kind::Spammer, config.spammers)]
    {
        for n in 1..=count {
            add(kind, format!("{}-{n}", kind.name()), None, EVERYONE);
        }
    }
    let first_member = config.honest + config.sloppy + config.spammers;
    match ring {
        None => {}
        Some(Ring::Independent { .. }) => {
            for _ in 0..config.ring_size {
                add(Kind::Ring, "ring".into(), None, EVERYONE);
            }
        }
        Some(&Ring::Copies { window, jitter }) => {
            let scrapers = config.ring_size.min(RING_SCRAPERS);
            for n in 0..config.ring_size {
                let sources = (first_member..first_member + scrapers).collect();
                let copies = (n >= scrapers).then_some(Copying { sources, jitter });
                add(Kind::Ring, "ring".into(), copies, window);
            }
        }
    }
    miners
}

/// A miner's hotkey: 48 base58 characters starting with 5, like an SS58 address.
fn hotkey(seed: u64, miner: u64) -> String {
    const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut rng = Rng::new(seed, Stream::Hotkey, miner, 0);
    let mut key = String::from("5");
    key.extend((0..47).map(|_| B58[rng.below(58) as usize] as char));
    key
}

/// What a scraping miner uploads in `cycle`: the listings it covers, one object per zip code.
fn scrape(config: &Config, listings: &[Listing], m: usize, miner: &Miner, cycle: usize) -> Vec<Upload> {
    let mut rng = Rng::new(config.seed, Stream::Coverage, m as u64, cycle as u64);
    let first_upload = cycle_start(cycle) + miner.window.start + rng.below(miner.window.length as u64) as i64;
    let mut by_zip: BTreeMap<&str, Vec<Row>> = BTreeMap::new();
    for (i, listing) in listings.iter().enumerate() {
        if miner.kind == Kind::Spammer || rng.chance(miner.coverage) {
            by_zip.entry(listing.place.zip).or_default().push(report(config, listing, i, m, miner, cycle));
        }
    }
    by_zip
        .into_iter()
        .enumerate()
        .map(|(n, (zip, mut rows))| {
            rows.sort_by_key(|r| (r.scraped_at, r.listing));
            let uploaded_at = first_upload + n as i64 * OBJECT_SPACING_SECS;
            let key = key(&miner.hotkey, zip, uploaded_at, rows.len());
            Upload { cycle, miner: m, key, uploaded_at, rows }
        })
        .collect()
}

/// What `miner` reports about `listing` in `cycle`.
fn report(config: &Config, listing: &Listing, i: usize, m: usize, miner: &Miner, cycle: usize) -> Row {
    let mut rng = Rng::new(config.seed, Stream::Row, m as u64, ((cycle as u64) << 32) | i as u64);
    let scraped_at = cycle_start(cycle) + rng.below(SCRAPE_SECS as u64) as i64;
    let truth = *listing.truth(cycle);
    let mut days_on_zillow = listing.days_on_zillow(scraped_at);
    let mut facts = truth;
    if miner.kind == Kind::Spammer {
        facts = Facts {
            price: rng.between(50, 2000) * 1000,
            bedrooms: rng.pick(&BEDROOMS),
            bathrooms: rng.pick(&BATHROOMS),
            living_area: rng.between(500, 6000),
            home_type: rng.pick(&HOME_TYPES),
            home_status: rng.pick(&HOME_STATUSES),
        };
        days_on_zillow = rng.between(0, 365);
    } else {
        let e = miner.error_rate;
        if rng.chance(e) {
            let change = rng.uniform(0.05, 0.3) * if rng.chance(0.5) { -1.0 } else { 1.0 };
            facts.price = round_to(truth.price as f64 * (1.0 + change), 100);
        }
        if rng.chance(e) {
            facts.bedrooms = rng.pick_other(&BEDROOMS, truth.bedrooms);
        }
        if rng.chance(e) {
            facts.bathrooms = rng.pick_other(&BATHROOMS, truth.bathrooms);
        }
        if rng.chance(e) {
            let change = rng.uniform(0.05, 0.3) * if rng.chance(0.5) { -1.0 } else { 1.0 };
            facts.living_area = (truth.living_area as f64 * (1.0 + change)).round() as i64;
        }
        if rng.chance(e) {
            facts.home_type = rng.pick_other(&HOME_TYPES, truth.home_type);
        }
        if rng.chance(e) {
            facts.home_status = rng.pick_other(&HOME_STATUSES, truth.home_status);
        }
        if rng.chance(e) {
            days_on_zillow = rng.between(0, 365);
        }
        if listing.hard {
            // Drawn from a stream of their own, so that a world without hard pages is unchanged.
            let mut misread = Rng::new(config.seed, Stream::HardPages, 1 + m as u64, ((cycle as u64) << 32) | i as u64);
            if misread.chance(HARD_PAGE_ERROR) {
                let change = misread.uniform(0.05, 0.3) * if misread.chance(0.5) { -1.0 } else { 1.0 };
                facts.price = round_to(truth.price as f64 * (1.0 + change), 100);
            }
        }
    }
    if miner.kind == Kind::Ring && listing.ring_target {
        match config.scenario.ring() {
            Some(Ring::Independent { lie: Lie::Nudged }) => {
                let nudge = rng.uniform(-RING_NUDGE, RING_NUDGE);
                facts.price = round_to(truth.price as f64 * RING_PRICE_FACTOR * (1.0 + nudge), 100);
            }
            Some(Ring::Independent { lie: Lie::Spread }) => {
                let raise = rng.uniform(RING_SPREAD.0, RING_SPREAD.1);
                facts.price = round_to(truth.price as f64 * (1.0 + raise), 100);
            }
            _ => {
                facts.price = round_to(truth.price as f64 * RING_PRICE_FACTOR, 100);
                facts.bedrooms = truth.bedrooms + 1;
            }
        }
    }
    Row { listing: i, scraped_at, facts, days_on_zillow }
}

/// A copier's upload of `source`, `delay` seconds after it; `n` numbers the copier's objects
/// of the cycle.
fn copy(
    config: &Config,
    listings: &[Listing],
    source: &Upload,
    m: usize,
    miner: &Miner,
    delay: i64,
    n: usize,
) -> Upload {
    let uploaded_at = source.uploaded_at + delay;
    let zip = listings[source.rows[0].listing].place.zip;
    if !miner.copies.as_ref().is_some_and(|c| c.jitter) {
        // The same file under the copier's prefix: same name, same bytes.
        let name = source.key.rsplit('/').next().expect("keys have a file name");
        let key = format!("data/hotkey={}/job_id=zillow_zip_{zip}/{name}", miner.hotkey);
        return Upload { cycle: source.cycle, miner: m, key, uploaded_at, rows: source.rows.clone() };
    }
    let mut rng = Rng::new(config.seed, Stream::Jitter, m as u64, ((source.cycle as u64) << 32) | n as u64);
    let mut rows = Vec::with_capacity(source.rows.len());
    for row in &source.rows {
        if rng.chance(JITTER_DROP) {
            continue;
        }
        let mut row = row.clone();
        let shift = rng.between(JITTER_SHIFT_SECS.0, JITTER_SHIFT_SECS.1);
        row.scraped_at += if rng.chance(0.5) { -shift } else { shift };
        let price = row.facts.price as f64 * (1.0 + rng.uniform(-JITTER_PRICE, JITTER_PRICE));
        row.facts.price = price.round() as i64;
        let area = row.facts.living_area as f64 * (1.0 + rng.uniform(-JITTER_AREA, JITTER_AREA));
        row.facts.living_area = area.round() as i64;
        rows.push(row);
    }
    rng.shuffle(&mut rows);
    let key = key(&miner.hotkey, zip, uploaded_at, rows.len());
    Upload { cycle: source.cycle, miner: m, key, uploaded_at, rows }
}

/// The audits of every cycle: `audit_rate` of the listings, a fresh sample each cycle.
fn audits(config: &Config) -> Vec<Audit> {
    let per_cycle = (config.listings as f64 * config.audit_rate).round() as usize;
    (1..=config.cycles)
        .flat_map(|cycle| {
            let mut order: Vec<usize> = (0..config.listings).collect();
            Rng::new(config.seed, Stream::Audits, cycle as u64, 0).shuffle(&mut order);
            order.truncate(per_cycle);
            order.into_iter().map(move |listing| Audit { cycle, listing, seen_at: audit_time(cycle) })
        })
        .collect()
}

fn key(hotkey: &str, zip: &str, uploaded_at: i64, rows: usize) -> String {
    format!("data/hotkey={hotkey}/job_id=zillow_zip_{zip}/data_{}_{rows}.parquet", time::compact(uploaded_at))
}

fn round_to(value: f64, step: i64) -> i64 {
    (value / step as f64).round() as i64 * step
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    pub fn config(scenario: Scenario) -> Config {
        Config {
            scenario,
            seed: 14,
            listings: 300,
            cycles: 3,
            honest: 8,
            sloppy: 2,
            spammers: 1,
            ring_size: 12,
            ring_targets: RING_TARGET_SHARE,
            hard_pages: 0.0,
            audit_rate: 0.05,
        }
    }

    #[test]
    fn counts_per_miner() {
        let world = World::generate(&config(Scenario::RingCopies)).unwrap();
        assert_eq!(world.miners.len(), 8 + 2 + 1 + 12);
        assert_eq!(world.miners.iter().filter(|m| m.copies.is_some()).count(), 10);
        let hotkeys: HashSet<&str> = world.miners.iter().map(|m| m.hotkey.as_str()).collect();
        assert_eq!(hotkeys.len(), world.miners.len());
        for (m, miner) in world.miners.iter().enumerate() {
            let objects = PLACES.len() * if miner.copies.is_some() { RING_SCRAPERS } else { 1 };
            for cycle in 1..=3 {
                let uploads: Vec<&Upload> = world.uploads.iter().filter(|u| u.miner == m && u.cycle == cycle).collect();
                assert_eq!(uploads.len(), objects, "{} in cycle {cycle}", miner.operator);
                let covered: HashSet<usize> = uploads.iter().flat_map(|u| u.rows.iter().map(|r| r.listing)).collect();
                let share = covered.len() as f64 / 300.0;
                let expected = match (miner.kind, &miner.copies) {
                    (Kind::Spammer, _) => 1.0..=1.0,
                    (_, Some(_)) => 0.7..=0.95, // the union of two scrapers' shares
                    _ => 0.4..=0.8,
                };
                assert!(expected.contains(&share), "{} covers {share}", miner.operator);
            }
        }
        assert_eq!(world.listings.iter().filter(|l| l.ring_target).count(), 120);
        assert_eq!(world.audits.len(), 3 * 15);
        assert_eq!(world.busiest_miner_day().0, 3 * PLACES.len() * RING_SCRAPERS);
    }

    #[test]
    fn objects_are_clean_and_scraped_before_upload() {
        for scenario in Scenario::ALL {
            let world = World::generate(&config(scenario)).unwrap();
            let keys: HashSet<&str> = world.uploads.iter().map(|u| u.key.as_str()).collect();
            assert_eq!(keys.len(), world.uploads.len(), "{scenario:?}: keys are unique");
            for upload in &world.uploads {
                let zpids: HashSet<u64> = upload.rows.iter().map(|r| world.listings[r.listing].zpid).collect();
                assert_eq!(zpids.len(), upload.rows.len(), "no zpid twice in an object");
                let zips: BTreeSet<&str> = upload.rows.iter().map(|r| world.listings[r.listing].place.zip).collect();
                assert_eq!(zips.len(), 1);
                assert!(upload.rows.iter().all(|r| r.scraped_at < upload.uploaded_at));
                assert!(upload.uploaded_at < audit_time(upload.cycle));
                assert!(upload.rows.iter().all(|r| (1000..100_000_000).contains(&r.facts.price)));
            }
            assert!(world.uploads.windows(2).all(|w| w[0].uploaded_at <= w[1].uploaded_at));
        }
    }

    /// The scrapers' object a copy was made from: same cycle and zip code, holding every
    /// listing of the copy.
    fn source_of<'w>(world: &'w World, copy: &Upload) -> &'w Upload {
        let copying = world.miners[copy.miner].copies.as_ref().expect("a copier");
        let zip = |u: &Upload| world.listings[u.rows[0].listing].place.zip;
        let mut sources = world.uploads.iter().filter(|u| {
            copying.sources.contains(&u.miner)
                && u.cycle == copy.cycle
                && zip(u) == zip(copy)
                && copy.rows.iter().all(|r| u.rows.iter().any(|o| o.listing == r.listing))
        });
        let source = sources.next().expect("a copy has a source");
        assert!(sources.next().is_none(), "a copy has one source");
        source
    }

    #[test]
    fn ring_copies_share_exact_rows() {
        let world = World::generate(&config(Scenario::RingCopies)).unwrap();
        for copy in world.uploads.iter().filter(|u| world.miners[u.miner].copies.is_some()) {
            let source = source_of(&world, copy);
            assert_eq!(world.miners[source.miner].kind, Kind::Ring);
            assert_eq!(copy.rows, source.rows);
            assert_eq!(copy.key.rsplit('/').next(), source.key.rsplit('/').next(), "the same file name");
            assert!(copy.key.contains(&world.miners[copy.miner].hotkey));
            assert!(copy.uploaded_at > source.uploaded_at);
        }
    }

    #[test]
    fn a_nudging_rings_price_lies_agree_within_the_tolerance_but_rarely_to_the_dollar() {
        let world = World::generate(&config(Scenario::NudgedRing)).unwrap();
        let mut lies: BTreeMap<(usize, usize), Vec<i64>> = BTreeMap::new();
        let mut right_bedrooms = 0;
        for upload in world.uploads.iter().filter(|u| world.miners[u.miner].kind == Kind::Ring) {
            for row in upload.rows.iter().filter(|r| world.listings[r.listing].ring_target) {
                let truth = world.listings[row.listing].truth(upload.cycle);
                let lie = truth.price as f64 * 1.2;
                assert!((row.facts.price as f64 - lie).abs() <= 0.004 * lie + 50.0, "{} for {lie}", row.facts.price);
                // The price is the only lie (bedrooms are wrong only at the miner's error rate).
                right_bedrooms += usize::from(row.facts.bedrooms == truth.bedrooms);
                lies.entry((upload.cycle, row.listing)).or_default().push(row.facts.price);
            }
        }
        // Two members' lies about one listing in one cycle: hardly ever the same price.
        let (mut pairs, mut equal) = (0, 0);
        for prices in lies.values() {
            for (a, b) in prices.iter().zip(prices.iter().skip(1)) {
                pairs += 1;
                equal += usize::from(a == b);
            }
        }
        assert!(pairs > 1000 && equal * 10 < pairs, "{equal} of {pairs} pairs of lies are equal");
        let rows: usize = lies.values().map(Vec::len).sum();
        assert!(right_bedrooms * 10 > rows * 9, "{right_bedrooms} of {rows} lies keep the true bedrooms");
    }

    #[test]
    fn a_spreading_rings_price_lies_are_all_too_high_and_rarely_alike() {
        let world = World::generate(&config(Scenario::SpreadRing)).unwrap();
        let mut lies: BTreeMap<(usize, usize), Vec<i64>> = BTreeMap::new();
        for upload in world.uploads.iter().filter(|u| world.miners[u.miner].kind == Kind::Ring) {
            for row in upload.rows.iter().filter(|r| world.listings[r.listing].ring_target) {
                let truth = world.listings[row.listing].truth(upload.cycle).price as f64;
                let raise = row.facts.price as f64 / truth - 1.0;
                assert!((0.1 - 1e-3..=0.3 + 1e-3).contains(&raise), "{} for {truth}", row.facts.price);
                lies.entry((upload.cycle, row.listing)).or_default().push(row.facts.price);
            }
        }
        // Two members' lies about one listing in one cycle: rarely within the 1 % tolerance.
        let (mut pairs, mut alike) = (0, 0);
        for prices in lies.values() {
            for (a, b) in prices.iter().zip(prices.iter().skip(1)) {
                pairs += 1;
                alike += usize::from((a - b).abs() as f64 <= 0.01 * *a.max(b) as f64);
            }
        }
        assert!(pairs > 1000 && alike * 5 < pairs, "{alike} of {pairs} pairs of lies are alike");
    }

    #[test]
    fn ring_members_lie_alike_on_targets_only() {
        let world = World::generate(&config(Scenario::IndependentRing)).unwrap();
        let ring: Vec<usize> = (0..world.miners.len()).filter(|&m| world.miners[m].kind == Kind::Ring).collect();
        assert_eq!(ring.len(), 12);
        let (mut rows, mut lies) = (0, 0);
        for upload in world.uploads.iter().filter(|u| ring.contains(&u.miner)) {
            for row in &upload.rows {
                let listing = &world.listings[row.listing];
                let truth = listing.truth(upload.cycle);
                rows += 1;
                if listing.ring_target {
                    lies += 1;
                    assert_eq!(row.facts.price, round_to(truth.price as f64 * 1.2, 100));
                    assert_eq!(row.facts.bedrooms, truth.bedrooms + 1);
                }
            }
        }
        let lie_share = lies as f64 / rows as f64;
        assert!((0.35..0.45).contains(&lie_share), "{lie_share} of the ring's rows are lies");
        // Elsewhere ring members are as accurate as honest miners.
        let price_accuracy = |kind: Kind| {
            let rows: Vec<(&Upload, &Row)> = world
                .uploads
                .iter()
                .filter(|u| world.miners[u.miner].kind == kind)
                .flat_map(|u| u.rows.iter().map(move |r| (u, r)))
                .filter(|(_, r)| !world.listings[r.listing].ring_target)
                .collect();
            let right = rows.iter().filter(|(u, r)| r.facts.price == world.listings[r.listing].truth(u.cycle).price);
            right.count() as f64 / rows.len() as f64
        };
        assert!(price_accuracy(Kind::Ring) > 0.96);
        assert!(price_accuracy(Kind::Honest) > 0.96);
        assert!(price_accuracy(Kind::Sloppy) < 0.92);
    }

    /// A world's ring lies about the share of listings it is told to, and about none without a
    /// ring.
    #[test]
    fn the_ring_targets_the_share_of_listings_it_is_given() {
        for (scenario, share, expected) in
            [(Scenario::SpreadRing, 0.05, 15), (Scenario::IndependentRing, 0.0, 0), (Scenario::Honest, 0.4, 0)]
        {
            let world = World::generate(&Config { ring_targets: share, ..config(scenario) }).unwrap();
            assert_eq!(world.listings.len(), 300);
            let targets = world.listings.iter().filter(|l| l.ring_target).count();
            assert_eq!(targets, expected, "{scenario:?} at {share}");
        }
    }

    /// Hard pages: scrapers misread their price about half the time, each misreading a value
    /// of its own, and every other value is what the same world without hard pages reports.
    #[test]
    fn scrapers_misread_hard_pages_half_the_time_and_nothing_else_changes() {
        let plain = World::generate(&config(Scenario::Honest)).unwrap();
        let world = World::generate(&Config { hard_pages: 0.1, ..config(Scenario::Honest) }).unwrap();
        assert_eq!(world.listings.iter().filter(|l| l.hard).count(), 30);
        assert!(plain.listings.iter().all(|l| !l.hard));
        assert_eq!(plain.uploads.len(), world.uploads.len());
        let (mut hard_rows, mut misread, mut prices) = (0, 0, HashSet::new());
        for (before, after) in plain.uploads.iter().zip(&world.uploads) {
            assert_eq!(before.key, after.key);
            for (b, a) in before.rows.iter().zip(&after.rows) {
                let listing = &world.listings[a.listing];
                let honest = Facts { price: b.facts.price, ..a.facts };
                assert_eq!(
                    (b.listing, b.scraped_at, b.facts, b.days_on_zillow),
                    (a.listing, a.scraped_at, honest, a.days_on_zillow)
                );
                if !listing.hard {
                    assert_eq!(a.facts.price, b.facts.price);
                    continue;
                }
                hard_rows += 1;
                if a.facts.price != b.facts.price {
                    misread += 1;
                    let off = (a.facts.price - listing.truth(after.cycle).price).abs() as f64;
                    assert!(off >= 0.04 * listing.truth(after.cycle).price as f64);
                    prices.insert((a.listing, after.cycle, a.facts.price));
                }
            }
        }
        let share = misread as f64 / hard_rows as f64;
        assert!((0.4..0.6).contains(&share), "{misread} of {hard_rows} hard rows misread");
        assert!(prices.len() as f64 > 0.9 * misread as f64, "misreadings rarely alike: {} values", prices.len());
    }

    #[test]
    fn jitter_copies_differ_but_stay_within_tolerance() {
        let world = World::generate(&config(Scenario::Jitter)).unwrap();
        let (mut copied, mut kept, mut same_price, mut reordered) = (0, 0, 0, false);
        for copy in world.uploads.iter().filter(|u| world.miners[u.miner].copies.is_some()) {
            let source = source_of(&world, copy);
            copied += source.rows.len();
            kept += copy.rows.len();
            reordered |= !copy.rows.windows(2).all(|w| w[0].scraped_at <= w[1].scraped_at);
            for row in &copy.rows {
                let o = source.rows.iter().find(|o| o.listing == row.listing).unwrap();
                assert!((row.facts.price - o.facts.price).abs() as f64 <= 0.005 * o.facts.price as f64);
                assert!(
                    (row.facts.living_area - o.facts.living_area).abs() as f64 <= 0.02 * o.facts.living_area as f64
                );
                assert!((60..=300).contains(&(row.scraped_at - o.scraped_at).abs()));
                same_price += usize::from(row.facts.price == o.facts.price);
            }
        }
        let share = kept as f64 / copied as f64;
        assert!((0.83..0.87).contains(&share), "kept {share} of the rows");
        assert!(same_price < kept / 4, "prices are nudged");
        assert!(reordered);
    }

    #[test]
    fn ring_timing() {
        for (scenario, first) in [(Scenario::RingCopiesFirst, true), (Scenario::RingCopiesAfter, false)] {
            let world = World::generate(&config(scenario)).unwrap();
            for cycle in 1..=3 {
                let (mut ring, mut others) = (Vec::new(), Vec::new());
                for upload in world.uploads.iter().filter(|u| u.cycle == cycle) {
                    let times = if world.miners[upload.miner].kind == Kind::Ring { &mut ring } else { &mut others };
                    times.push(upload.uploaded_at);
                }
                let (ring, others) = (ring.into_iter(), others.into_iter());
                if first {
                    assert!(ring.max() < others.min());
                } else {
                    assert!(ring.min() > others.max());
                }
            }
        }
    }

    #[test]
    fn truth_drifts_a_little() {
        let world = World::generate(&config(Scenario::Honest)).unwrap();
        let changed = world.listings.iter().filter(|l| l.truth(1).price != l.truth(3).price).count();
        assert!((3..=40).contains(&changed), "{changed} prices changed");
        assert!(world.listings.iter().all(|l| !l.ring_target));
        let l = &world.listings[0];
        assert_eq!(l.days_on_zillow(l.listed_at + 86_400 * 3 + 5), 3);
    }

    #[test]
    fn same_seed_same_world() {
        let a = World::generate(&config(Scenario::Jitter)).unwrap();
        let b = World::generate(&config(Scenario::Jitter)).unwrap();
        assert_eq!(a.uploads.len(), b.uploads.len());
        for (x, y) in a.uploads.iter().zip(&b.uploads) {
            assert_eq!((&x.key, x.uploaded_at, &x.rows), (&y.key, y.uploaded_at, &y.rows));
        }
        let c = World::generate(&Config { seed: 15, ..config(Scenario::Jitter) }).unwrap();
        assert_ne!(a.uploads[0].key, c.uploads[0].key);
    }
}
