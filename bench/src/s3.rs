//! An S3 server (s3s-fs, SigV4) on 127.0.0.1 inside the bench process, as the loader's tests
//! run it, and the environment that points `resi-loader` at it.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const ACCESS_KEY: &str = "resi-bench-access";
pub const SECRET_KEY: &str = "resi-bench-secret-key";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    pub endpoint: String,
    root: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl S3Server {
    /// Serve each folder of `root` as a bucket, on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> Result<S3Server> {
        std::fs::create_dir_all(root)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("an s3s-fs root: {e:?}"))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        runtime.spawn(async move {
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
        Ok(S3Server { endpoint, root: root.to_owned(), runtime })
    }

    /// PUT each `(key, file, last_modified)` into `bucket` (so the server records its ETag, as
    /// S3 does), then give the stored file that modification time: S3's LastModified, which
    /// orders and dates the submissions exactly as the local folder's mtimes do.
    pub fn put(&self, bucket: &str, objects: &[(String, PathBuf, SystemTime)]) -> Result<()> {
        std::fs::create_dir_all(self.root.join(bucket))?;
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench"))
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        self.runtime.block_on(async {
            for (key, file, _) in objects {
                let body = aws_sdk_s3::primitives::ByteStream::from(std::fs::read(file)?);
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body)
                    .send()
                    .await
                    .with_context(|| format!("PUT {key}"))?;
            }
            anyhow::Ok(())
        })?;
        for (key, _, last_modified) in objects {
            let stored = self.root.join(bucket).join(key);
            std::fs::File::options().write(true).open(&stored)?.set_modified(*last_modified)?;
        }
        Ok(())
    }

    /// The folder that holds `bucket`'s objects (laid out like the bucket: a local source).
    pub fn bucket_folder(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// Environment variables that point `resi-loader` (aws-sdk-s3's standard chain) here.
    pub fn loader_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent/resi-bench-aws-config".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/resi-bench-aws-credentials".into()),
        ]
    }
}
