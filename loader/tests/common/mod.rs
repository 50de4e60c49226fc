//! Shared by the loader's integration tests: a live database (RESI_TEST_DATABASE_URL, see
//! tests/src/lib.rs), an in-process S3 server (s3s-fs) on 127.0.0.1, generated uploads.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{Field, Schema};
use resi_loader::load::{run_pass, PassOptions, PassSummary};
use resi_loader::progress::Silent;
use resi_loader::source::{S3Source, Source};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    load_with(url, source, &PassOptions::default()).await
}

/// One loader pass with these options.
pub async fn load_with(url: &str, source: Arc<Source>, options: &PassOptions) -> PassSummary {
    let mut client = resi_loader::db::connect(Some(url)).await.expect("connect");
    run_pass(&mut client, source, options, &mut Silent, &AtomicBool::new(false)).await.expect("a pass completes")
}

pub fn local(path: &Path) -> Arc<Source> {
    Arc::new(Source::Local(resi_loader::source::LocalSource::open(path.to_str().unwrap()).unwrap()))
}

/// An S3 server (s3s-fs) serving each folder of `root` as a bucket, on a free port of
/// 127.0.0.1, with SigV4 authentication. It stops when the test's runtime ends, or at once
/// with [`S3Server::stop`] (and comes back on the same port with [`S3Server::restart`]).
pub struct S3Server {
    pub endpoint: String,
    addr: std::net::SocketAddr,
    service: s3s::service::S3Service,
    /// The accept loop and every connection, so [`S3Server::stop`] can abort them.
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    /// Bytes the server wrote to its clients (headers and bodies) since the last
    /// [`S3Server::cut_after`], and where writing stops.
    written: Arc<AtomicU64>,
    cut_at: Arc<AtomicU64>,
}

impl S3Server {
    pub async fn start(root: &Path) -> S3Server {
        let fs = s3s_fs::FileSystem::new(root).expect("an s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = S3Server {
            endpoint: format!("http://{addr}"),
            addr,
            service,
            tasks: Default::default(),
            written: Default::default(),
            cut_at: Arc::new(AtomicU64::new(u64::MAX)),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (service, tasks, written, cut_at) =
            (self.service.clone(), self.tasks.clone(), self.written.clone(), self.cut_at.clone());
        let accept = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                loop {
                    let Ok((socket, _)) = listener.accept().await else { continue };
                    // Without it, small responses wait for delayed ACKs (~40 ms a request).
                    let _ = socket.set_nodelay(true);
                    let io = Metered { inner: socket, written: written.clone(), cut_at: cut_at.clone() };
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), service.clone()).into_owned();
                    let task = tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    let mut tasks = tasks.lock().unwrap();
                    tasks.retain(|t| !t.is_finished());
                    tasks.push(task.abort_handle());
                }
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Drop the server abruptly, as a crashed or unplugged one: stop accepting (the port is
    /// closed, new connections are refused) and close every live connection wherever it is,
    /// mid-response included. Waits until the port refuses connections.
    pub fn stop(&self) {
        let abort_all = || self.tasks.lock().unwrap().drain(..).for_each(|task| task.abort());
        abort_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr).is_ok() {
            assert!(std::time::Instant::now() < deadline, "the S3 server still accepts connections after stop");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The accept loop is gone now; connections it took while being aborted go too.
        abort_all();
    }

    /// Serve again, on the same port and root, after [`S3Server::stop`] (writes uncut).
    pub async fn restart(&self) {
        self.cut_at.store(u64::MAX, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Count the bytes written to clients from now on and, once `bytes` have been written, hold
    /// every further write (a response stops mid-way, as on a stalled link) until
    /// [`S3Server::stop`]. `u64::MAX`: never.
    pub fn cut_after(&self, bytes: u64) {
        self.written.store(0, Ordering::SeqCst);
        self.cut_at.store(bytes, Ordering::SeqCst);
    }

    /// Bytes written to clients since the last [`S3Server::cut_after`].
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether writing is held at the cut.
    pub fn is_cut(&self) -> bool {
        self.bytes_written() >= self.cut_at.load(Ordering::SeqCst)
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

/// A connection of [`S3Server`]: counts what the server writes, and holds writes at the cut.
struct Metered {
    inner: tokio::net::TcpStream,
    written: Arc<AtomicU64>,
    cut_at: Arc<AtomicU64>,
}

impl tokio::io::AsyncRead for Metered {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Metered {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let (written, cut_at) = (self.written.load(Ordering::SeqCst), self.cut_at.load(Ordering::SeqCst));
        if written >= cut_at {
            // Held: never ready again; the connection ends when the server is stopped.
            return std::task::Poll::Pending;
        }
        let allowed = buf.len().min(usize::try_from(cut_at - written).unwrap_or(usize::MAX));
        let result = std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..allowed]);
        if let std::task::Poll::Ready(Ok(n)) = result {
            self.written.fetch_add(n as u64, Ordering::SeqCst);
        }
        result
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
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
/// and the ledger's statuses; then, each under a `# name` line (see [`state_section`]): the
/// attestations of every object, a `resi.listing_hash` of every listing, each miner's trust
/// and counters, the submissions per miner and day, the fold's verdict on every object, the
/// claims and the penalties. Ids, clock times and ETags are left out (they differ between two
/// runs over the same uploads, and between a folder and S3), so two databases loaded from
/// the same uploads in the same order give the same text, on any cluster.
pub fn database_state(url: &str) -> String {
    let mut client = connect(url);
    // Times as text the same way on any cluster.
    client.batch_execute("SET TimeZone = 'UTC'").unwrap();
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
    let sections: Vec<String> =
        STATE_SECTIONS.iter().map(|(name, sql)| format!("# {name}\n{}", query(&mut client, sql))).collect();
    format!("{listings}\n--\n{attestations}\n--\n{ledger}\n--\n{}", sections.join("\n--\n"))
}

/// The named sections of [`database_state`] after its first three.
const STATE_SECTIONS: [(&str, &str); 7] = [
    (
        "attestations per object",
        // A join to the counts, not a subquery per object: the ledger stays on the coordinator
        // of a Citus cluster, where the attestations are distributed.
        "SELECT coalesce(string_agg(format('%s|%s|%s|%s', l.object_key, l.status, l.rows_attested, coalesce(a.n, 0)),
                E'\\n' ORDER BY l.object_key, l.etag), '')
           FROM resi.ingest_ledger l
           LEFT JOIN (SELECT s3_file_path, count(*) AS n FROM resi.miner_attestations GROUP BY 1) a
                  ON a.s3_file_path = l.object_key",
    ),
    (
        "listing hashes",
        "SELECT coalesce(string_agg(zpid || ' ' || resi.listing_hash(to_jsonb(l) - 'first_seen_at' - 'last_updated_at'),
                E'\\n' ORDER BY zpid), '') FROM resi.listings l",
    ),
    (
        "miners",
        "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', miner_hotkey, trust_score,
                total_submissions, rows_submitted, duplicate_rows, duplicate_rate, fields_compared, fields_agreed,
                accuracy_score, validated_submissions, validations_failed, strikes, bans, banned_until IS NOT NULL),
                E'\\n' ORDER BY miner_hotkey), '') FROM resi.miner_trust",
    ),
    (
        "submission days",
        "SELECT coalesce(string_agg(format('%s|%s|%s|%s', miner_hotkey, day, submissions, over_limit_attempts),
                E'\\n' ORDER BY miner_hotkey, day), '') FROM resi.miner_submission_days",
    ),
    (
        "verdicts",
        "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', object_key, quality_score, quality_issues,
                duplicate_zpids, distinct_zip_codes, accuracy, row_agreement, trust_score), E'\\n'
                ORDER BY object_key, etag), '') FROM resi.ingest_ledger",
    ),
    (
        "claims",
        "SELECT coalesce(md5(string_agg((to_jsonb(c) - 'attestation_id')::text, E'\\n' ORDER BY zpid, miner_hotkey)), '')
                || ' ' || count(*) FROM resi.miner_claims c",
    ),
    (
        "penalties",
        "SELECT coalesce(string_agg(format('%s|%s|%s', miner_hotkey, kind, n), E'\\n' ORDER BY miner_hotkey, kind), '')
           FROM (SELECT miner_hotkey, kind, count(*) AS n FROM resi.miner_penalties GROUP BY 1, 2) p",
    ),
];

/// The parts of a [`database_state`] that do not depend on the order submissions are judged
/// in (trust, and so consensus and verdicts, do): the attestations, the ledger, the
/// attestations per object, the submission days and the claims.
pub fn order_independent(state: &str) -> Vec<&str> {
    let parts: Vec<&str> = state.split("\n--\n").collect();
    let mut out = vec![parts[1], parts[2]];
    out.extend(["attestations per object", "submission days", "claims"].map(|name| state_section(state, name)));
    out
}

/// The section of a [`database_state`] text under `# name` (panics when there is none).
pub fn state_section<'a>(state: &'a str, name: &str) -> &'a str {
    let header = format!("# {name}\n");
    state
        .split("\n--\n")
        .find_map(|s| s.strip_prefix(header.as_str()))
        .unwrap_or_else(|| panic!("no section {name:?} in the database state"))
}

pub fn count(url: &str, sql: &str) -> i64 {
    resi_e2e::scalar(&mut connect(url), sql)
}

/// Copy a folder of uploads, giving every `data_YYYYMMDD_HHMMSS_*` file that time as its
/// modification time (what S3's LastModified would say: when the miner uploaded it), so the
/// loader sees the submissions in the order and on the UTC day they were made.
pub fn copy_uploads_with_upload_times(from: &Path, to: &Path) {
    copy_tree(from, to);
    set_upload_times(to);
}

/// Give every `data_YYYYMMDD_HHMMSS_*` file under `dir` that time as its modification time
/// (whole seconds: a local folder and S3's LastModified then order the uploads alike).
pub fn set_upload_times(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_upload_times(&path);
        } else if let Some(time) = upload_time(&path) {
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(time).unwrap();
        }
    }
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
