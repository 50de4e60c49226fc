//! Deterministic miner-shaped uploads: the same seed gives the same files, byte for byte.
//!
//! Eight miners report listings of Katy/Houston, TX. Each listing has one true set of values
//! (a function of its zpid); each miner reports it with a few wrong fields at its own error
//! rate (2–12 %), so the fold sees realistic disagreement. Every block of `rows_per_object`
//! consecutive zpids is reported by three different miners in three passes, one object per
//! block and pass, uploaded ten minutes apart: a listing has three claims, and no miner
//! exceeds the initial daily allowance (100 objects per UTC day). Files are Parquet written
//! the way pandas + pyarrow write them (18 columns, numbers as int64 or double, a UTC
//! nanosecond `datetime`), with at most 20 zip codes and no duplicate zpid per object, so no
//! upload is a low-quality strike.

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{Field, Schema};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Miners taking part in the generated uploads.
pub const MINERS: usize = 8;
/// 2025-09-17 00:00:00 UTC: the first upload.
const FIRST_UPLOAD: u64 = 1_758_067_200;
/// Seconds between two uploads.
const UPLOAD_SPACING: u64 = 600;
/// The first generated zpid.
const FIRST_ZPID: u64 = 20_000_000;
/// Each miner's share of wrong fields.
const ERROR_RATE_PERCENT: [u64; MINERS] = [2, 3, 5, 2, 8, 3, 12, 4];

const HOME_TYPES: [&str; 4] = ["SINGLE_FAMILY", "TOWNHOUSE", "CONDO", "MULTI_FAMILY"];
const HOME_STATUSES: [&str; 4] = ["FOR_SALE", "FOR_RENT", "RECENTLY_SOLD", "PENDING"];
const CITIES: [&str; 5] = ["Katy", "Houston", "Sugar Land", "Cypress", "Richmond"];
const STREETS: [&str; 8] = ["Oak", "Pine", "Cedar", "Elm", "Maple", "Willow", "Magnolia", "Pecan"];
const SUFFIXES: [&str; 4] = ["St", "Dr", "Ln", "Ct"];

/// SplitMix64 of `seed` and two integers: a stateless, reproducible random source.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A miner's hotkey: 48 base58 characters starting with 5, like an SS58 address.
pub fn hotkey(seed: u64, miner: usize) -> String {
    const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut key = String::from("5");
    key.extend((0..47).map(|i| B58[(mix(seed, 0x004b_4559 + miner as u64, i) % 58) as usize] as char));
    key
}

/// One reported row, already in the form the loader's normalisation keeps unchanged.
pub struct Row {
    pub zpid: u64,
    pub uri: String,
    pub scraped_at_nanos: i64,
    pub label: String,
    pub price: i64,
    pub address: String,
    pub bedrooms: i64,
    pub bathrooms: f64,
    pub living_area: i64,
    pub home_type: &'static str,
    pub home_status: &'static str,
    pub days_on_zillow: i64,
    pub zip_code: String,
    pub city: &'static str,
    pub state: &'static str,
    pub latitude: f64,
    pub longitude: f64,
}

/// What `miner` reports about listing `zpid`.
pub fn row(seed: u64, miner: usize, zpid: u64) -> Row {
    let truth = |field: u64| mix(seed, zpid, field);
    let wrong = |field: u64| mix(seed, zpid * 64 + field, 1 + miner as u64) % 100 < ERROR_RATE_PERCENT[miner % MINERS];
    let zip = 77_000 + (zpid / 250) % 1000;
    let city = CITIES[(zip % CITIES.len() as u64) as usize];
    let mut price = (150_000 + truth(1) % 850 * 1000) as i64;
    if wrong(1) {
        price += price / 20;
    }
    let mut status = (truth(2) % 4) as usize;
    if wrong(2) {
        status = (status + 1) % 4;
    }
    let mut days = (truth(3) % 365) as i64;
    if wrong(3) {
        days += 30;
    }
    let mut bedrooms = (1 + truth(4) % 5) as i64;
    if wrong(4) {
        bedrooms += 1;
    }
    let street_number = 100 + truth(5) % 9900;
    Row {
        zpid,
        uri: format!("https://www.zillow.com/homedetails/{zpid}_zpid/"),
        // Each miner scrapes on its own schedule, to the microsecond, within the hour before the
        // first upload: independent scrapers never report the same scrape time of a listing.
        scraped_at_nanos: ((FIRST_UPLOAD - 3600) * 1_000_000_000
            + mix(seed, zpid * 64 + 6, 1 + miner as u64) % 3_600_000_000 * 1000) as i64,
        label: format!("zip:{zip}"),
        price,
        address: format!(
            "{street_number} {} {}, {city}, TX {zip}",
            STREETS[(truth(7) % 8) as usize],
            SUFFIXES[(truth(8) % 4) as usize]
        ),
        bedrooms,
        bathrooms: 1.0 + (truth(9) % 7) as f64 / 2.0,
        living_area: (700 + truth(10) % 4000) as i64,
        home_type: HOME_TYPES[(truth(11) % 4) as usize],
        home_status: HOME_STATUSES[status],
        days_on_zillow: days,
        zip_code: zip.to_string(),
        city,
        state: "TX",
        latitude: 29.5 + (truth(12) % 500_000) as f64 / 1e6,
        longitude: -95.9 + (truth(13) % 500_000) as f64 / 1e6,
    }
}

/// One generated object: a miner's upload of `rows` consecutive zpids.
pub struct Upload {
    /// The key relative to the bucket, `data/hotkey=…/job_id=…/data_YYYYMMDD_HHMMSS_rows.parquet`.
    pub key: String,
    pub miner: usize,
    pub hotkey: String,
    pub first_zpid: u64,
    pub rows: usize,
    pub uploaded_at: SystemTime,
}

impl Upload {
    pub fn zpids(&self) -> std::ops::Range<u64> {
        self.first_zpid..self.first_zpid + self.rows as u64
    }
}

/// About `total_rows` rows in objects of `rows_per_object`: every block of zpids reported by
/// three miners (at least three objects).
pub fn plan(seed: u64, total_rows: usize, rows_per_object: usize) -> Vec<Upload> {
    let objects = total_rows.div_ceil(rows_per_object).max(3);
    let blocks = objects.div_ceil(3);
    (0..objects)
        .map(|j| {
            let (block, pass) = (j % blocks, j / blocks);
            let miner = (block + 3 * pass) % MINERS;
            let first_zpid = FIRST_ZPID + (block * rows_per_object) as u64;
            single(seed, miner, first_zpid, rows_per_object, j)
        })
        .collect()
}

/// The `index`-th upload of the schedule: `rows` zpids from `first_zpid`, by `miner`.
pub fn single(seed: u64, miner: usize, first_zpid: u64, rows: usize, index: usize) -> Upload {
    upload(seed, miner, first_zpid, rows, FIRST_UPLOAD + index as u64 * UPLOAD_SPACING)
}

/// Miners of the network's deltas ([`deltas`]).
pub const NETWORK_MINERS: usize = 250;

/// The network's two-hourly deltas: `objects` small uploads (50–1,000 rows, uniformly) by
/// [`NETWORK_MINERS`] miners, one every 30 s (250 miners × 12 uploads a day, about 2 h for
/// 250), each a run of consecutive zpids in a universe about a quarter of the rows, so a
/// listing is reported by about four miners. Miners beyond [`MINERS`] reuse their error rates.
pub fn deltas(seed: u64, objects: usize) -> Vec<Upload> {
    let universe = (objects as u64 * 525 / 4).max(2_000);
    (0..objects)
        .map(|j| {
            let j64 = j as u64;
            let miner = (mix(seed, j64, 1) % NETWORK_MINERS as u64) as usize;
            let rows = 50 + (mix(seed, j64, 2) % 951) as usize;
            let first_zpid = FIRST_ZPID + mix(seed, j64, 3) % (universe - rows as u64);
            upload(seed, miner, first_zpid, rows, FIRST_UPLOAD + j64 * 30)
        })
        .collect()
}

fn upload(seed: u64, miner: usize, first_zpid: u64, rows: usize, uploaded_secs: u64) -> Upload {
    let hotkey = hotkey(seed, miner);
    let zip = 77_000 + (first_zpid / 250) % 1000;
    let key =
        format!("data/hotkey={hotkey}/job_id=zillow_zip_{zip}/data_{}_{rows}.parquet", compact_time(uploaded_secs));
    Upload { key, miner, hotkey, first_zpid, rows, uploaded_at: UNIX_EPOCH + Duration::from_secs(uploaded_secs) }
}

/// Write `upload` under `root` (at `root/key`) as Parquet with row groups of at most
/// `row_group_rows`, its modification time set to the upload time. Returns the path.
pub fn write_parquet(root: &Path, seed: u64, upload: &Upload, row_group_rows: usize) -> Result<PathBuf> {
    let path = root.join(&upload.key);
    std::fs::create_dir_all(path.parent().expect("keys have folders"))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut writer = None;
    // Batches of at most 64k rows keep the generator's memory small for multi-million-row files.
    let zpids: Vec<u64> = upload.zpids().collect();
    for chunk in zpids.chunks(65_536) {
        let rows: Vec<Row> = chunk.iter().map(|&z| row(seed, upload.miner, z)).collect();
        let batch = record_batch(&rows)?;
        let writer = match &mut writer {
            Some(w) => w,
            None => writer.insert(parquet::arrow::ArrowWriter::try_new(
                file.try_clone()?,
                batch.schema(),
                Some(props.clone()),
            )?),
        };
        writer.write(&batch)?;
    }
    writer.expect("an upload has rows").close()?;
    std::fs::File::options().write(true).open(&path)?.set_modified(upload.uploaded_at)?;
    Ok(path)
}

fn record_batch(rows: &[Row]) -> Result<RecordBatch> {
    fn text<'a>(rows: &'a [Row], f: impl Fn(&'a Row) -> &'a str) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    }
    fn int(rows: &[Row], f: impl Fn(&Row) -> i64) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    }
    fn float(rows: &[Row], f: impl Fn(&Row) -> f64) -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    }
    let zpids: Vec<String> = rows.iter().map(|r| r.zpid.to_string()).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("uri", text(rows, |r| &r.uri)),
        (
            "datetime",
            Arc::new(
                TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.scraped_at_nanos))
                    .with_timezone("UTC"),
            ),
        ),
        ("label", text(rows, |r| &r.label)),
        ("zpid", Arc::new(StringArray::from_iter_values(zpids.iter()))),
        ("price", int(rows, |r| r.price)),
        ("address", text(rows, |r| &r.address)),
        ("bedrooms", int(rows, |r| r.bedrooms)),
        ("bathrooms", float(rows, |r| r.bathrooms)),
        ("living_area", int(rows, |r| r.living_area)),
        ("home_type", text(rows, |r| r.home_type)),
        ("home_status", text(rows, |r| r.home_status)),
        ("days_on_zillow", float(rows, |r| r.days_on_zillow as f64)),
        ("url", text(rows, |r| &r.uri)),
        ("zip_code", text(rows, |r| &r.zip_code)),
        ("city", text(rows, |r| r.city)),
        ("state", text(rows, |r| r.state)),
        ("latitude", float(rows, |r| r.latitude)),
        ("longitude", float(rows, |r| r.longitude)),
    ];
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())?)
}

/// The rows of `upload` as CSV with the columns of `resi.staging_listings` (what the loader
/// sends), for the raw-COPY baseline. `data_hash` is computed like the loader does.
pub fn write_csv(out: &mut Vec<u8>, seed: u64, upload: &Upload, ledger_id: usize) -> Result<()> {
    let submitted = timestamp_text(upload.uploaded_at);
    let job_id = upload.key.split("job_id=").nth(1).and_then(|s| s.split('/').next()).unwrap_or_default();
    for zpid in upload.zpids() {
        let r = row(seed, upload.miner, zpid);
        let listing = resi_core::listing::Listing {
            zpid: r.zpid.to_string(),
            uri: Some(r.uri.clone()),
            price: Some(r.price),
            address: Some(r.address.clone()),
            bedrooms: Some(r.bedrooms as i32),
            bathrooms: Some(r.bathrooms),
            living_area: Some(r.living_area as i32),
            home_type: Some(r.home_type.into()),
            home_status: Some(r.home_status.into()),
            days_on_zillow: Some(r.days_on_zillow as i32),
            zip_code: Some(r.zip_code.clone()),
            city: Some(r.city.into()),
            state: Some(r.state.into()),
            latitude: Some(r.latitude),
            longitude: Some(r.longitude),
            scraped_at_micros: Some(r.scraped_at_nanos / 1000),
        };
        let scraped = timestamp_text(UNIX_EPOCH + Duration::from_nanos(r.scraped_at_nanos as u64));
        writeln!(
            out,
            "{ledger_id},{},{submitted},{job_id},{},{},{zpid},{},{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{scraped},{}",
            upload.hotkey,
            upload.key,
            upload.rows,
            r.uri,
            r.price,
            r.address,
            r.bedrooms,
            r.bathrooms,
            r.living_area,
            r.home_type,
            r.home_status,
            r.days_on_zillow,
            r.zip_code,
            r.city,
            r.state,
            r.latitude,
            r.longitude,
            listing.data_hash()
        )?;
    }
    Ok(())
}

/// `YYYYMMDD_HHMMSS` of a Unix time (UTC), as in upload file names.
fn compact_time(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}")
}

/// `YYYY-MM-DD HH:MM:SS+00`.
pub fn timestamp_text(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}+00")
}

/// The UTC civil time of a Unix time (Howard Hinnant's algorithm).
fn civil(secs: u64) -> (i64, u64, u64, u64, u64, u64) {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(compact_time(FIRST_UPLOAD), "20250917_000000");
        assert_eq!(timestamp_text(UNIX_EPOCH + Duration::from_secs(1_758_096_015)), "2025-09-17 08:00:15+00");
        assert_eq!(compact_time(951_782_400), "20000229_000000");
    }

    #[test]
    fn every_block_has_three_different_miners() {
        let uploads = plan(7, 60_000, 5000);
        assert_eq!(uploads.len(), 12);
        for block in uploads.iter().map(|u| u.first_zpid).collect::<std::collections::BTreeSet<_>>() {
            let miners: std::collections::BTreeSet<_> =
                uploads.iter().filter(|u| u.first_zpid == block).map(|u| u.miner).collect();
            assert_eq!(miners.len(), 3);
        }
    }

    #[test]
    fn hotkeys_are_fixed_by_the_seed() {
        assert_eq!(hotkey(1, 0), hotkey(1, 0));
        assert_ne!(hotkey(1, 0), hotkey(1, 1));
        assert_eq!(hotkey(1, 0).len(), 48);
    }
}
