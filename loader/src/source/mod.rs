//! Where uploads come from: an S3 bucket (any S3-compatible server) or a local folder laid
//! out like the bucket. Both list objects with a fingerprint (ETag) and serve byte ranges, so
//! Parquet files are read row group by row group, never whole. The archive and the export
//! write to the same kinds of place (`put`, read back with `get`).

mod local;
mod s3;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::ops::Range;
use std::time::SystemTime;

pub use local::LocalSource;
pub use s3::S3Source;

/// One object of the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key relative to the bucket (`data/hotkey=…/…`).
    pub key: String,
    /// S3's ETag (quotes removed), or for a local file `{size}-{mtime in ns}`: a new value means
    /// the object was overwritten.
    pub etag: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

/// An upload source.
pub enum Source {
    Local(LocalSource),
    S3(S3Source),
}

/// Why reading an object failed: it changed under us (retry later) or it cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("object changed while it was read (new ETag)")]
    Changed,
    #[error("object vanished while it was read")]
    Vanished,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Source {
    /// `s3://bucket/prefix` or a folder path.
    pub async fn open(spec: &str) -> Result<Source> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("source {spec:?} names no bucket (expected s3://bucket/prefix)");
            }
            Ok(Source::S3(S3Source::connect(bucket, prefix).await?))
        } else {
            Ok(Source::Local(LocalSource::open(spec)?))
        }
    }

    /// A short description for logs and the runs table.
    pub fn describe(&self) -> String {
        match self {
            Source::Local(s) => s.describe(),
            Source::S3(s) => s.describe(),
        }
    }

    /// Every object under the source's prefix, sorted by key (all pages of the listing).
    pub async fn list(&self) -> Result<Vec<ObjectInfo>> {
        let mut objects = match self {
            Source::Local(s) => s.list().await?,
            Source::S3(s) => s.list().await?,
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// `length` bytes from `offset`, provided the object still has this fingerprint.
    pub async fn read_range(&self, object: &ObjectInfo, range: Range<u64>) -> Result<Bytes, ReadError> {
        if range.end > object.size || range.start > range.end {
            return Err(ReadError::Other(anyhow::anyhow!(
                "range {range:?} is outside the object's {} bytes",
                object.size
            )));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        match self {
            Source::Local(s) => s.read_range(object, range).await,
            Source::S3(s) => s.read_range(object, range).await,
        }
    }

    /// The whole object, refused beyond `limit` bytes (for small JSON uploads).
    pub async fn read_all(&self, object: &ObjectInfo, limit: u64) -> Result<Bytes, ReadError> {
        if object.size > limit {
            return Err(ReadError::Other(anyhow::anyhow!(
                "object is {} bytes, more than the {limit} allowed",
                object.size
            )));
        }
        self.read_range(object, 0..object.size).await
    }

    /// Write `bytes` at `key` (relative to the folder, or under the S3 prefix), whole: readers
    /// never see a partial object (a folder: a temporary file, synced, renamed into place; S3:
    /// one PUT). What `resi-loader archive` and `export` write with.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        match self {
            Source::Local(s) => s.put(key, bytes).await,
            Source::S3(s) => s.put(key, bytes).await,
        }
    }

    /// The whole object at `key` (relative, as for [`Source::put`]): reading back what was written.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        match self {
            Source::Local(s) => s.get(key).await,
            Source::S3(s) => s.get(key).await,
        }
    }

    /// Check the connection before a run: a misconfigured source fails here with a clear message.
    pub async fn check(&self) -> Result<()> {
        match self {
            Source::Local(_) => Ok(()),
            Source::S3(s) => s.check().await.context("the S3 source is not reachable"),
        }
    }
}
