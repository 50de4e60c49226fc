//! Shared by the loader's integration tests: a live database (RESI_TEST_DATABASE_URL, see
//! tests/src/lib.rs), an in-process S3 server (s3s-fs) on 127.0.0.1, generated uploads.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{Field, Schema};
use resi_loader::load::{run_pass, PassOptions, PassSummary};
use resi_loader::progress::Silent;
use resi_loader::source::{S3Source, Source};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use resi_e2e::{connect, fixture, TestDatabase};

/// The runtime the tests drive the (async) loader and S3 server with; the tests themselves
/// are synchronous, like the `postgres` client they check the database with.
pub static RT: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
});

pub const ACCESS_KEY: &str = "resi-test-access";
pub const SECRET_KEY: &str = "resi-test-secret-key";

/// One loader pass from `source` into the database at `url`.
pub async fn load(url: &str, source: Arc<Source>) -> PassSummary {
    let mut client = resi_loader::db::connect(Some(url)).await.expect("connect");
    run_pass(&mut client, source, &PassOptions::default(), &mut Silent, &AtomicBool::new(false))
        .await
        .expect("a pass completes")
}

pub fn local(path: &Path) -> Arc<Source> {
    Arc::new(Source::Local(resi_loader::source::LocalSource::open(path.to_str().unwrap()).unwrap()))
}

/// An S3 server (s3s-fs) serving each folder of `root` as a bucket, on a free port of
/// 127.0.0.1, with SigV4 authentication. It stops when the test's runtime ends.
pub struct S3Server {
    pub endpoint: String,
}

impl S3Server {
    pub async fn start(root: &Path) -> S3Server {
        let fs = s3s_fs::FileSystem::new(root).expect("an s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                // Without it, small responses wait for delayed ACKs (~40 ms a request).
                let _ = socket.set_nodelay(true);
                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3Server { endpoint }
    }

    /// A loader source for `s3://bucket/prefix` on this server, with the given secret.
    pub fn source_with_secret(&self, bucket: &str, prefix: &str, secret: &str) -> Arc<Source> {
        Arc::new(Source::S3(S3Source::with_config(self.config(secret), bucket, prefix)))
    }

    fn config(&self, secret: &str) -> aws_sdk_s3::Config {
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(ACCESS_KEY, secret, None, None, "test"))
            .force_path_style(true)
            .build()
    }

    /// An S3 client of this server, for writing objects as an uploader would.
    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.config(SECRET_KEY))
    }

    pub fn source(&self, bucket: &str, prefix: &str) -> Arc<Source> {
        self.source_with_secret(bucket, prefix, SECRET_KEY)
    }
}

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("resi-loader-test-{label}-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Copy a folder tree (files get new mtimes).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Write a Parquet upload shaped like the miners' (pandas + pyarrow): 18 columns, the
/// numeric ones int64 or double, four null-typed. `seed` varies the values; `rows` listings
/// `first_zpid..first_zpid+rows`.
pub fn write_upload(path: &Path, first_zpid: u64, rows: usize, seed: u64, row_group_rows: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let zpids: Vec<u64> = (0..rows as u64).map(|i| first_zpid + i).collect();
    let noise = |z: u64| (z.wrapping_mul(6364136223846793005).wrapping_add(seed) >> 33) % 100;
    let strings = |f: &dyn Fn(u64) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(zpids.iter().map(|&z| f(z))))
    };
    let nulls = || -> ArrayRef { Arc::new(arrow_array::NullArray::new(rows)) };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("uri", strings(&|z| format!("https://www.zillow.com/homedetails/{z}_zpid/"))),
        (
            "datetime",
            Arc::new(
                TimestampNanosecondArray::from_iter_values(zpids.iter().map(|_| 1_758_096_015_000_000_000i64))
                    .with_timezone("UTC"),
            ),
        ),
        ("label", strings(&|z| format!("zip:{}", 77000 + z % 1000))),
        ("zpid", strings(&|z| z.to_string())),
        (
            "price",
            Arc::new(Int64Array::from_iter_values(
                zpids.iter().map(|&z| (200_000 + (z % 500) * 1000 + if noise(z) < 10 { 5000 } else { 0 }) as i64),
            )),
        ),
        ("address", strings(&|z| format!("{} Oak St, Katy, TX {}", z % 9999, 77000 + z % 1000))),
        ("bedrooms", Arc::new(Int64Array::from_iter_values(zpids.iter().map(|&z| (1 + z % 5) as i64)))),
        ("bathrooms", Arc::new(Float64Array::from_iter_values(zpids.iter().map(|&z| 1.0 + (z % 4) as f64 / 2.0)))),
        ("living_area", Arc::new(Int64Array::from_iter_values(zpids.iter().map(|&z| (800 + z % 3000) as i64)))),
        ("home_type", nulls()),
        ("home_status", nulls()),
        ("days_on_zillow", Arc::new(Float64Array::from_iter_values(zpids.iter().map(|&z| (z % 300) as f64)))),
        ("url", nulls()),
        ("zip_code", nulls()),
        ("city", strings(&|_| "Katy".into())),
        ("state", strings(&|_| "TX".into())),
        (
            "latitude",
            Arc::new(Float64Array::from_iter_values(zpids.iter().map(|&z| 29.0 + (z % 1000) as f64 / 1000.0))),
        ),
        (
            "longitude",
            Arc::new(Float64Array::from_iter_values(zpids.iter().map(|&z| -95.0 - (z % 1000) as f64 / 1000.0))),
        ),
    ];
    write_columns(path, columns, row_group_rows);
}

/// A Snappy-compressed Parquet file of these columns (all nullable, in this order, names may
/// repeat), in row groups of `row_group_rows`.
pub fn write_columns(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group_rows: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Everything the loader and fold decide, as text, for comparing two databases: listings'
/// consensus, the attestation trail (by object and zpid, without ids or clock times),
/// and the ledger's statuses.
pub fn database_state(url: &str) -> String {
    let mut client = connect(url);
    let query = |client: &mut postgres::Client, sql: &str| -> String { client.query_one(sql, &[]).unwrap().get(0) };
    let listings = resi_e2e::listing_state(&mut client);
    let attestations = query(
        &mut client,
        "SELECT coalesce(md5(string_agg(format('%s|%s|%s|%s|%s', s3_file_path, zpid, miner_hotkey, data_hash, price), E'\\n'
                ORDER BY s3_file_path, zpid, data_hash)), '') || ' ' || count(*) FROM resi.miner_attestations",
    );
    let ledger = query(
        &mut client,
        "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s', object_key, status, split_part(reason, ':', 1), rows_read,
                rows_attested), E'\\n' ORDER BY object_key, etag), '') FROM resi.ingest_ledger",
    );
    format!("{listings}\n--\n{attestations}\n--\n{ledger}")
}

pub fn count(url: &str, sql: &str) -> i64 {
    resi_e2e::scalar(&mut connect(url), sql)
}

/// Copy a folder of uploads, giving every `data_YYYYMMDD_HHMMSS_*` file that time as its
/// modification time (what S3's LastModified would say: when the miner uploaded it), so the
/// loader sees the submissions in the order and on the UTC day they were made.
pub fn copy_uploads_with_upload_times(from: &Path, to: &Path) {
    copy_tree(from, to);
    fn walk(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path);
            } else if let Some(time) = upload_time(&path) {
                std::fs::File::options().write(true).open(&path).unwrap().set_modified(time).unwrap();
            }
        }
    }
    walk(to);
}

/// The time in an upload's name, `data_20250917_080015_96.parquet` → 2025-09-17 08:00:15 UTC.
fn upload_time(path: &Path) -> Option<std::time::SystemTime> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.strip_prefix("data_")?.split('_');
    let (date, time) = (parts.next()?, parts.next()?);
    let n = |s: &str, r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(date, 0..4)?, n(date, 4..6)?, n(date, 6..8)?);
    let (h, mi, s) = (n(time, 0..2)?, n(time, 2..4)?, n(time, 4..6)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?))
}
