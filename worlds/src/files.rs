//! The files of a generated world, and reading them back for `audit` and `score`:
//!
//! ```text
//! DIR/uploads/data/hotkey=…/job_id=…/data_….parquet  the objects; mtime = upload time (S3 LastModified)
//! DIR/uploads.csv         cycle, uploaded_at, hotkey, kind, rows, key: one line per object, oldest first
//! DIR/truth.csv           the truth at the end (as of the last cycle's audits), as samples/hostile/truth.csv
//! DIR/truth_cycle{k}.csv  the truth of cycle k (prices drift between cycles)
//! DIR/miners.csv          hotkey, kind, operator, copies (the hotkeys a copier copies, space-separated)
//! DIR/audits.csv          cycle, zpid, seen_at, truth: the validator's re-scrape as JSON
//! DIR/world.json          the world's parameters and totals, and the ring's targets
//! ```
//!
//! Objects are Parquet as pandas 2.2 + pyarrow write them: the 18 columns in their order,
//! numbers as int64 or double, `datetime` as UTC nanoseconds, snappy.

use crate::csv::{write_record, Table};
use crate::time;
use crate::world::{audit_time, Kind, Listing, Row, Scenario, Upload, World, CYCLE_SECS, FIRST_CYCLE};
use anyhow::{bail, Context, Result};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{Field, Schema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// world.json.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: Scenario,
    pub seed: u64,
    pub listings: usize,
    pub cycles: usize,
    pub audit_rate: f64,
    pub first_cycle_at: String,
    pub hours_between_cycles: i64,
    /// Miners of each kind.
    pub miners: BTreeMap<Kind, usize>,
    /// Ring identities that upload copies instead of scraping.
    pub copiers: usize,
    pub objects: usize,
    pub rows: usize,
    pub audits: usize,
    /// At most the lowest daily allowance, so no object is deferred.
    pub max_objects_per_miner_per_day: usize,
    pub max_rows_per_object: usize,
    /// The zpids the ring lies about.
    pub ring_targets: Vec<String>,
    /// The zpids of hard pages (absent from worlds written before there were any).
    #[serde(default)]
    pub hard_pages: Vec<String>,
}

/// Write `world` into `dir`, which must not hold a world yet.
pub fn write(world: &World, dir: &Path) -> Result<Summary> {
    let uploads = dir.join("uploads");
    if uploads.exists() {
        bail!("{} already exists: generate into a new folder", uploads.display());
    }
    let mut index = String::new();
    write_record(&mut index, &["cycle", "uploaded_at", "hotkey", "kind", "rows", "key"]);
    for upload in &world.uploads {
        write_parquet(&uploads, world, upload)?;
        let miner = &world.miners[upload.miner];
        write_record(
            &mut index,
            &[
                &upload.cycle.to_string(),
                &time::rfc3339(upload.uploaded_at),
                &miner.hotkey,
                miner.kind.name(),
                &upload.rows.len().to_string(),
                &upload.key,
            ],
        );
    }
    save(dir, "uploads.csv", &index)?;

    for cycle in 1..=world.config.cycles {
        let truth = truth_csv(world, cycle);
        save(dir, &format!("truth_cycle{cycle}.csv"), &truth)?;
        if cycle == world.config.cycles {
            save(dir, "truth.csv", &truth)?;
        }
    }

    let mut miners = String::new();
    write_record(&mut miners, &["hotkey", "kind", "operator", "copies"]);
    for miner in &world.miners {
        let copies: Vec<&str> =
            miner.copies.iter().flat_map(|c| &c.sources).map(|&s| world.miners[s].hotkey.as_str()).collect();
        write_record(&mut miners, &[miner.hotkey.as_str(), miner.kind.name(), &miner.operator, &copies.join(" ")]);
    }
    save(dir, "miners.csv", &miners)?;

    let mut audits = String::new();
    write_record(&mut audits, &["cycle", "zpid", "seen_at", "truth"]);
    for audit in &world.audits {
        let listing = &world.listings[audit.listing];
        let truth = truth_json(listing, audit.cycle, audit.seen_at);
        write_record(
            &mut audits,
            &[&audit.cycle.to_string(), &listing.zpid.to_string(), &time::rfc3339(audit.seen_at), &truth.to_string()],
        );
    }
    save(dir, "audits.csv", &audits)?;

    let summary = summary(world);
    save(dir, "world.json", &(serde_json::to_string_pretty(&summary)? + "\n"))?;
    Ok(summary)
}

fn summary(world: &World) -> Summary {
    let config = &world.config;
    let mut miners = BTreeMap::new();
    for miner in &world.miners {
        *miners.entry(miner.kind).or_default() += 1;
    }
    Summary {
        scenario: config.scenario,
        seed: config.seed,
        listings: config.listings,
        cycles: config.cycles,
        audit_rate: config.audit_rate,
        first_cycle_at: time::rfc3339(FIRST_CYCLE),
        hours_between_cycles: CYCLE_SECS / 3600,
        miners,
        copiers: world.miners.iter().filter(|m| m.copies.is_some()).count(),
        objects: world.uploads.len(),
        rows: world.uploads.iter().map(|u| u.rows.len()).sum(),
        audits: world.audits.len(),
        max_objects_per_miner_per_day: world.busiest_miner_day().0,
        max_rows_per_object: world.uploads.iter().map(|u| u.rows.len()).max().unwrap_or(0),
        ring_targets: world.listings.iter().filter(|l| l.ring_target).map(|l| l.zpid.to_string()).collect(),
        hard_pages: world.listings.iter().filter(|l| l.hard).map(|l| l.zpid.to_string()).collect(),
    }
}

const TRUTH_COLUMNS: [&str; 14] = [
    "zpid",
    "price",
    "address",
    "bedrooms",
    "bathrooms",
    "living_area",
    "home_type",
    "home_status",
    "days_on_zillow",
    "zip_code",
    "city",
    "state",
    "latitude",
    "longitude",
];

/// The truth of `cycle`, days_on_zillow as of the cycle's audits.
fn truth_csv(world: &World, cycle: usize) -> String {
    let mut out = String::new();
    write_record(&mut out, &TRUTH_COLUMNS);
    for listing in &world.listings {
        let t = listing.truth(cycle);
        write_record(
            &mut out,
            &[
                listing.zpid.to_string(),
                t.price.to_string(),
                listing.address.clone(),
                t.bedrooms.to_string(),
                format!("{:.1}", t.bathrooms),
                t.living_area.to_string(),
                t.home_type.into(),
                t.home_status.into(),
                listing.days_on_zillow(audit_time(cycle)).to_string(),
                listing.place.zip.into(),
                listing.place.city.into(),
                "TX".into(),
                listing.latitude.to_string(),
                listing.longitude.to_string(),
            ],
        );
    }
    out
}

/// What the validator's re-scrape of `listing` at `seen_at` in `cycle` shows.
fn truth_json(listing: &Listing, cycle: usize, seen_at: i64) -> serde_json::Value {
    let t = listing.truth(cycle);
    serde_json::json!({
        "zpid": listing.zpid.to_string(),
        "uri": listing.uri(),
        "price": t.price,
        "address": listing.address,
        "bedrooms": t.bedrooms,
        "bathrooms": t.bathrooms,
        "living_area": t.living_area,
        "home_type": t.home_type,
        "home_status": t.home_status,
        "days_on_zillow": listing.days_on_zillow(seen_at),
        "zip_code": listing.place.zip,
        "city": listing.place.city,
        "state": "TX",
        "latitude": listing.latitude,
        "longitude": listing.longitude,
    })
}

fn save(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

/// Write `upload` at `root/key` with its modification time set to the upload time.
fn write_parquet(root: &Path, world: &World, upload: &Upload) -> Result<()> {
    let path = root.join(&upload.key);
    std::fs::create_dir_all(path.parent().expect("keys have folders"))?;
    let batch = record_batch(world, &upload.rows)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file.try_clone()?, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    file.set_modified(time::system_time(upload.uploaded_at))
        .with_context(|| format!("set the modification time of {}", path.display()))
}

/// The 18 columns of a miner's upload.
fn record_batch(world: &World, rows: &[Row]) -> Result<RecordBatch> {
    let listing = |r: &Row| &world.listings[r.listing];
    let text = |f: &dyn Fn(&Row) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let int = |f: &dyn Fn(&Row) -> i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(rows.iter().map(f))) };
    let float = |f: &dyn Fn(&Row) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(rows.iter().map(f))) };
    let datetime = TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.scraped_at * 1_000_000_000))
        .with_timezone("UTC");
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("uri", text(&|r| listing(r).uri())),
        ("datetime", Arc::new(datetime)),
        ("label", text(&|r| format!("zip:{}", listing(r).place.zip))),
        ("zpid", text(&|r| listing(r).zpid.to_string())),
        ("price", int(&|r| r.facts.price)),
        ("address", text(&|r| listing(r).address.clone())),
        ("bedrooms", int(&|r| r.facts.bedrooms)),
        ("bathrooms", float(&|r| r.facts.bathrooms)),
        ("living_area", int(&|r| r.facts.living_area)),
        ("home_type", text(&|r| r.facts.home_type.into())),
        ("home_status", text(&|r| r.facts.home_status.into())),
        ("days_on_zillow", float(&|r| r.days_on_zillow as f64)),
        ("url", text(&|r| listing(r).uri())),
        ("zip_code", text(&|r| listing(r).place.zip.into())),
        ("city", text(&|r| listing(r).place.city.into())),
        ("state", text(&|_| "TX".into())),
        ("latitude", float(&|r| listing(r).latitude)),
        ("longitude", float(&|r| listing(r).longitude)),
    ];
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())?)
}

pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("world.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {} (not a world?)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// A listing's truth, the fields the scorer compares.
#[derive(Debug)]
pub struct Truth {
    pub zpid: String,
    pub price: i64,
    pub bedrooms: i32,
    pub bathrooms: f64,
    pub living_area: i32,
    pub home_status: String,
}

/// truth.csv: the truth at the end.
pub fn read_truth(dir: &Path) -> Result<Vec<Truth>> {
    let table = Table::read(&dir.join("truth.csv"))?;
    let c = |name| table.column(name);
    let (zpid, price, bedrooms, bathrooms, living_area, home_status) =
        (c("zpid")?, c("price")?, c("bedrooms")?, c("bathrooms")?, c("living_area")?, c("home_status")?);
    table
        .rows
        .iter()
        .map(|r| {
            Ok(Truth {
                zpid: r[zpid].clone(),
                price: r[price].parse().context("truth.csv: price")?,
                bedrooms: r[bedrooms].parse().context("truth.csv: bedrooms")?,
                bathrooms: r[bathrooms].parse().context("truth.csv: bathrooms")?,
                living_area: r[living_area].parse().context("truth.csv: living_area")?,
                home_status: r[home_status].clone(),
            })
        })
        .collect()
}

/// miners.csv: every hotkey and its kind.
pub fn read_miners(dir: &Path) -> Result<Vec<(String, Kind)>> {
    let table = Table::read(&dir.join("miners.csv"))?;
    let (hotkey, kind) = (table.column("hotkey")?, table.column("kind")?);
    table
        .rows
        .iter()
        .map(|r| Ok((r[hotkey].clone(), Kind::parse(&r[kind]).with_context(|| format!("unknown kind {}", r[kind]))?)))
        .collect()
}

/// One line of audits.csv.
#[derive(Debug)]
pub struct AuditRecord {
    pub cycle: usize,
    pub zpid: String,
    pub seen_at: i64,
    pub truth: serde_json::Value,
}

pub fn read_audits(dir: &Path) -> Result<Vec<AuditRecord>> {
    let table = Table::read(&dir.join("audits.csv"))?;
    let c = |name| table.column(name);
    let (cycle, zpid, seen_at, truth) = (c("cycle")?, c("zpid")?, c("seen_at")?, c("truth")?);
    table
        .rows
        .iter()
        .map(|r| {
            Ok(AuditRecord {
                cycle: r[cycle].parse().context("audits.csv: cycle")?,
                zpid: r[zpid].clone(),
                seen_at: time::parse_rfc3339(&r[seen_at]).context("audits.csv: seen_at")?,
                truth: serde_json::from_str(&r[truth]).context("audits.csv: truth")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::tests::config;
    use std::collections::HashMap;

    fn generate(scenario: Scenario, dir: &Path) -> Summary {
        write(&World::generate(&config(scenario)).unwrap(), dir).unwrap()
    }

    /// Every file under `dir` with its bytes.
    fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.insert(path.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("resi-worlds-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn same_seed_same_bytes_and_times() {
        let (a, b) = (scratch("a"), scratch("b"));
        generate(Scenario::Jitter, &a);
        generate(Scenario::Jitter, &b);
        let (files_a, files_b) = (contents(&a), contents(&b));
        assert!(files_a.len() > 100);
        assert_eq!(files_a, files_b);
        for name in files_a.keys().filter(|n| n.ends_with(".parquet")) {
            let mtime = |dir: &Path| std::fs::metadata(dir.join(name)).unwrap().modified().unwrap();
            assert_eq!(mtime(&a), mtime(&b));
        }
        assert!(write(&World::generate(&config(Scenario::Jitter)).unwrap(), &a).is_err(), "no overwriting");
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }

    #[test]
    fn copies_are_byte_copies_uploaded_at_their_time() {
        let dir = scratch("copies");
        let summary = generate(Scenario::RingCopies, &dir);
        assert_eq!(summary.copiers, 10);
        assert_eq!(summary.ring_targets.len(), 120);
        let world = World::generate(&config(Scenario::RingCopies)).unwrap();
        let files = contents(&dir.join("uploads"));
        assert_eq!(files.len(), world.uploads.len());
        let mut by_name: HashMap<&str, Vec<&Vec<u8>>> = HashMap::new();
        for upload in &world.uploads {
            let bytes = &files[&upload.key];
            assert_eq!(&bytes[..4], b"PAR1");
            let modified = std::fs::metadata(dir.join("uploads").join(&upload.key)).unwrap().modified().unwrap();
            assert_eq!(modified, time::system_time(upload.uploaded_at));
            if world.miners[upload.miner].kind == Kind::Ring {
                by_name.entry(upload.key.rsplit('/').next().unwrap()).or_default().push(bytes);
            }
        }
        // Each scraper's object and its ten copies.
        assert!(by_name.values().all(|copies| copies.len() == 11 && copies.iter().all(|b| *b == copies[0])));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn read_back() {
        let dir = scratch("read");
        let summary = generate(Scenario::IndependentRing, &dir);
        let back = read_summary(&dir).unwrap();
        assert_eq!(
            (back.scenario, back.objects, back.max_objects_per_miner_per_day),
            (summary.scenario, summary.objects, 12)
        );
        let truth = read_truth(&dir).unwrap();
        assert_eq!(truth.len(), 300);
        let miners = read_miners(&dir).unwrap();
        assert_eq!(miners.iter().filter(|(_, k)| *k == Kind::Ring).count(), 12);
        let audits = read_audits(&dir).unwrap();
        assert_eq!(audits.len(), 45);
        let last = audits.iter().find(|a| a.cycle == 3).unwrap();
        let t = truth.iter().find(|t| t.zpid == last.zpid).unwrap();
        assert_eq!(last.truth["price"], t.price);
        assert_eq!(last.truth["zpid"], t.zpid);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
