//! `resi.parse_s3_key`: the S3 key layout of miners' uploads.

use crate::composite::composite;
use pgrx::prelude::*;
use pgrx::{pg_sys, IntoDatum};

/// `resi.parse_s3_key(key text) → resi.s3_key`: the parts of an upload's key
/// (`…hotkey={hk}/job_id={job}/data_{YYYYMMDD_HHMMSS}_{rows}.parquet` or
/// `…hotkey={hk}/…epoch={epoch}/zipcode={zip}/data_{YYYYMMDD_HHMMSS}.json`, any prefix).
///
/// IMMUTABLE, STRICT, PARALLEL SAFE. Never raises: anything that does not follow the layout,
/// including impossible dates and row counts beyond `integer`, gives NULL.
#[pg_extern(immutable, strict, parallel_safe)]
fn parse_s3_key(key: &str, fcinfo: pg_sys::FunctionCallInfo) -> Option<pgrx::composite_type!('static, "resi.s3_key")> {
    let parsed = resi_core::keys::parse_s3_key(key)?;
    let t = parsed.file_timestamp;
    let file_timestamp = Timestamp::new(t.year.into(), t.month, t.day, t.hour, t.minute, t.second.into()).ok()?;
    Some(composite(
        fcinfo,
        "resi.s3_key",
        &[
            parsed.kind.as_str().into_datum(),
            parsed.miner_hotkey.into_datum(),
            parsed.job_id.into_datum(),
            parsed.epoch.into_datum(),
            parsed.zipcode.into_datum(),
            file_timestamp.into_datum(),
            parsed.declared_rows.into_datum(),
        ],
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    const HK: &str = "5DvggEsdjznNNvnQ4q6B52JTsSfYCWbCcJRFyMSrYvoZzutr";

    fn parsed(key: &str) -> Option<String> {
        Spi::get_one::<String>(&format!("SELECT resi.parse_s3_key($k${key}$k$)::text")).unwrap()
    }

    #[pg_test]
    fn parquet_and_epoch_keys() {
        assert_eq!(
            parsed(&format!("data/hotkey={HK}/job_id=zillow_zip_77494/data_20250910_161551_2201.parquet")).unwrap(),
            format!("(parquet,{HK},zillow_zip_77494,,,\"2025-09-10 16:15:51\",2201)")
        );
        assert_eq!(
            parsed(&format!("hotkey={HK}/epoch=2025-10-07T12-00-00/zipcode=77494/data_20251007_130211.json")).unwrap(),
            format!("(epoch_json,{HK},,2025-10-07T12-00-00,77494,\"2025-10-07 13:02:11\",)")
        );
        let fields = Spi::get_two::<String, i32>(&format!(
            "SELECT (k).miner_hotkey, (k).declared_rows FROM (SELECT resi.parse_s3_key('x/y/hotkey={HK}/job_id=j/data_20240229_000000_0.parquet') k) s"
        )).unwrap();
        assert_eq!(fields, (Some(HK.to_string()), Some(0)));
    }

    #[pg_test]
    fn everything_else_is_null() {
        for key in [
            "".to_string(),
            "notes.txt".to_string(),
            format!("data/hotkey={HK}/job_id=j/notes.txt"),
            format!("data/hotkey={HK}/job_id=j/data_20250230_000000_1.parquet"),
            format!("data/hotkey={HK}/job_id=j/data_20250101_000000_99999999999.parquet"),
            format!("data/hotkey={HK}/job_id=j/"),
            "'); DROP TABLE resi.listings; --".to_string(),
            "\u{fffd}\u{202e}hotkey=\u{1F3E0}".to_string(),
        ] {
            assert_eq!(parsed(&key), None, "{key:?}");
        }
        assert_eq!(Spi::get_one::<bool>("SELECT resi.parse_s3_key(NULL) IS NULL").unwrap(), Some(true));
        assert_eq!(
            Spi::get_one::<bool>("SELECT resi.parse_s3_key(repeat('hotkey=/', 100000)) IS NULL").unwrap(),
            Some(true)
        );
    }
}
