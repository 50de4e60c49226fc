//! The S3 key layout of miners' uploads.
//!
//! ```text
//! …/hotkey={hotkey}/job_id={job_id}/data_{YYYYMMDD_HHMMSS}_{rows}.parquet     (kind "parquet")
//! …/hotkey={hotkey}/…/epoch={epoch}/zipcode={zip}/data_{YYYYMMDD_HHMMSS}.json  (kind "epoch_json")
//! ```
//!
//! Any prefix may come before the `hotkey=` folder. Only the hotkey folder is trustworthy (the
//! upload service issues credentials per hotkey prefix); the rest, the timestamp and the row
//! count included, are the miner's claims. [`parse_s3_key`] never fails loudly: a key that does
//! not follow the layout, or names an impossible date, gives `None`.

/// What kind of upload a key names.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UploadKind {
    Parquet,
    EpochJson,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Parquet => "parquet",
            UploadKind::EpochJson => "epoch_json",
        }
    }
}

/// A calendar timestamp from a file name (no time zone: the miner host's local clock).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileTimestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// The parts of an upload's key: the SQL composite `resi.s3_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Key<'a> {
    pub kind: UploadKind,
    pub miner_hotkey: &'a str,
    /// The `job_id=` folder (Parquet uploads; epoch uploads only when such a folder is present).
    pub job_id: Option<&'a str>,
    /// The `epoch=` folder as written, e.g. `2025-10-07T12-00-00` (epoch uploads).
    pub epoch: Option<&'a str>,
    /// The `zipcode=` folder (epoch uploads).
    pub zipcode: Option<&'a str>,
    pub file_timestamp: FileTimestamp,
    /// The row count in a Parquet file's name.
    pub declared_rows: Option<i32>,
}

/// Split `key` into its parts, or `None` when it does not follow the layout.
pub fn parse_s3_key(key: &str) -> Option<S3Key<'_>> {
    let segments: Vec<&str> = key.split('/').collect();
    // The last `hotkey=` folder: anything before it is the bucket's own prefix.
    let at = segments.iter().rposition(|s| s.starts_with("hotkey="))?;
    let miner_hotkey = value_of(segments[at], "hotkey=")?;
    let rest = &segments[at + 1..];
    match rest {
        [job, file] => {
            let job_id = value_of(job, "job_id=")?;
            let (stamp, rows) = file.strip_prefix("data_")?.strip_suffix(".parquet")?.rsplit_once('_')?;
            let rows = parse_digits(rows)?;
            Some(S3Key {
                kind: UploadKind::Parquet,
                miner_hotkey,
                job_id: Some(job_id),
                epoch: None,
                zipcode: None,
                file_timestamp: parse_file_timestamp(stamp)?,
                declared_rows: Some(i32::try_from(rows).ok()?),
            })
        }
        [between @ .., epoch, zip, file] => {
            let epoch = value_of(epoch, "epoch=")?;
            parse_epoch(epoch)?;
            let zipcode = value_of(zip, "zipcode=")?;
            let stamp = file.strip_prefix("data_")?.strip_suffix(".json")?;
            let job_id = between.iter().find_map(|s| s.strip_prefix("job_id=")).filter(|j| valid_value(j));
            Some(S3Key {
                kind: UploadKind::EpochJson,
                miner_hotkey,
                job_id,
                epoch: Some(epoch),
                zipcode: Some(zipcode),
                file_timestamp: parse_file_timestamp(stamp)?,
                declared_rows: None,
            })
        }
        _ => None,
    }
}

/// `name=value` → `value`, when value is non-empty and has no control characters.
fn value_of<'a>(segment: &'a str, name: &str) -> Option<&'a str> {
    segment.strip_prefix(name).filter(|v| valid_value(v))
}

fn valid_value(v: &str) -> bool {
    !v.is_empty() && !v.chars().any(char::is_control)
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYYMMDD_HHMMSS`, a real calendar date and time.
pub fn parse_file_timestamp(s: &str) -> Option<FileTimestamp> {
    let b = s.as_bytes();
    if b.len() != 15 || b[8] != b'_' {
        return None;
    }
    let num = |range| digits(s, range);
    timestamp(num(0..4)?, num(4..6)?, num(6..8)?, num(9..11)?, num(11..13)?, num(13..15)?)
}

/// The decimal number the bytes `range` of `s` spell, when they are all ASCII digits (None
/// when the range cuts a multi-byte character: such text is not a timestamp).
fn digits(s: &str, range: std::ops::Range<usize>) -> Option<u16> {
    let part = s.get(range)?;
    part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
}

/// `YYYY-MM-DDTHH-MM-SS`, the epoch folder's form; a real date and time.
pub fn parse_epoch(s: &str) -> Option<FileTimestamp> {
    let b = s.as_bytes();
    let dashes = [4, 7, 13, 16];
    if b.len() != 19 || b[10] != b'T' || dashes.iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let num = |range| digits(s, range);
    timestamp(num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?)
}

fn timestamp(year: u16, month: u16, day: u16, hour: u16, minute: u16, second: u16) -> Option<FileTimestamp> {
    let valid = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month as u8) as u16
        && hour < 24
        && minute < 60
        && second < 60;
    valid.then_some(FileTimestamp {
        year,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
    })
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HK: &str = "5DvggEsdjznNNvnQ4q6B52JTsSfYCWbCcJRFyMSrYvoZzutr";

    #[test]
    fn parquet_keys() {
        let key = format!("data/hotkey={HK}/job_id=zillow_testnet_all/data_20250910_161551_2201.parquet");
        let k = parse_s3_key(&key).unwrap();
        assert_eq!(k.kind, UploadKind::Parquet);
        assert_eq!(k.miner_hotkey, HK);
        assert_eq!(k.job_id, Some("zillow_testnet_all"));
        assert_eq!((k.epoch, k.zipcode, k.declared_rows), (None, None, Some(2201)));
        assert_eq!(k.file_timestamp, FileTimestamp { year: 2025, month: 9, day: 10, hour: 16, minute: 15, second: 51 });
        // Any prefix, or none.
        assert!(parse_s3_key(&format!("hotkey={HK}/job_id=j/data_20250910_161551_0.parquet")).is_some());
        assert!(parse_s3_key(&format!("a/b/c/hotkey={HK}/job_id=j/data_20250910_161551_7.parquet")).is_some());
    }

    #[test]
    fn a_multi_byte_character_where_digits_belong_is_not_a_timestamp() {
        // 'é' is two bytes: the 15-byte field is cut inside it, which must not panic.
        assert_eq!(parse_file_timestamp("202é101_000000"), None);
        assert_eq!(parse_file_timestamp("2025091é_00000"), None);
        assert_eq!(parse_epoch("2025-09-1éT08-00-0"), None);
        assert!(parse_s3_key(&format!("hotkey={HK}/job_id=j/data_202é101_000000_1.parquet")).is_none());
    }

    #[test]
    fn epoch_json_keys() {
        let key = format!("data/hotkey={HK}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json");
        let k = parse_s3_key(&key).unwrap();
        assert_eq!(k.kind, UploadKind::EpochJson);
        assert_eq!(
            (k.epoch, k.zipcode, k.job_id, k.declared_rows),
            (Some("2025-10-07T12-00-00"), Some("77494"), None, None)
        );
        let nested =
            format!("hotkey={HK}/job_id=z/x/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json");
        assert_eq!(parse_s3_key(&nested).unwrap().job_id, Some("z"));
    }

    #[test]
    fn everything_else_is_none() {
        let bad = [
            "".to_string(),
            "/".to_string(),
            "data/".to_string(),
            "notes.txt".to_string(),
            format!("data/hotkey={HK}/job_id=j/notes.txt"),
            format!("data/hotkey={HK}/job_id=j/"),
            "data/hotkey=/job_id=j/data_20250910_161551_1.parquet".to_string(),
            format!("data/hotkey={HK}/job_id=/data_20250910_161551_1.parquet"),
            format!("data/hotkey={HK}/data_20250910_161551_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250910_161551_1.parquet.tmp"),
            format!("data/hotkey={HK}/job_id=j/data_20250910_161551_-1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250910_161551_.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250910_161551_2147483648.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250910_161551_99999999999999999999999.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250230_161551_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20230229_000000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20251301_000000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250101_240000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250101_235960_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_00000101_000000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_2025010_1000000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_2025+101_100000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_２０２５0101_100000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j\n/data_20250101_100000_1.parquet"),
            format!("data/hotkey={HK}/epoch=2025-10-07T25-00-00/zipcode=77494/data_20251007_130211.json"),
            format!("data/hotkey={HK}/epoch=2025-10-07/zipcode=77494/data_20251007_130211.json"),
            format!("data/hotkey={HK}/epoch=2025-10-07T12-00-00/zipcode=/data_20251007_130211.json"),
            format!("data/hotkey={HK}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211_5.json"),
            "'; DROP TABLE resi.listings; --".to_string(),
            "hotkey=x/job_id=y/data_\u{0}.parquet".to_string(),
        ];
        for key in &bad {
            assert_eq!(parse_s3_key(key), None, "{key:?}");
        }
    }

    #[test]
    fn leap_days() {
        assert!(parse_file_timestamp("20240229_235959").is_some());
        assert!(parse_file_timestamp("20000229_000000").is_some());
        assert!(parse_file_timestamp("19000229_000000").is_none());
    }
}
