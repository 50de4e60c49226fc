//! A local folder laid out like the bucket (the demo's and tests' default source).

use super::{ObjectInfo, ReadError};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub struct LocalSource {
    root: PathBuf,
}

impl LocalSource {
    pub fn open(path: &str) -> Result<LocalSource> {
        let root = PathBuf::from(path);
        if !root.is_dir() {
            bail!("source folder {path:?} does not exist or is not a folder");
        }
        Ok(LocalSource { root })
    }

    pub fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    pub async fn list(&self) -> Result<Vec<ObjectInfo>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root, &mut out)?;
            Ok(out)
        })
        .await?
    }

    pub async fn read_range(&self, object: &ObjectInfo, range: Range<u64>) -> Result<Bytes, ReadError> {
        let path = self.root.join(&object.key);
        let expected = object.etag.clone();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ReadError::Vanished,
                _ => ReadError::Other(anyhow::Error::new(e).context(format!("open {}", path.display()))),
            })?;
            let meta = file.metadata().map_err(|e| ReadError::Other(e.into()))?;
            if fingerprint(&meta) != expected {
                return Err(ReadError::Changed);
            }
            let mut buf = vec![0u8; (range.end - range.start) as usize];
            file.read_exact_at(&mut buf, range.start)
                .map_err(|e| ReadError::Other(anyhow::Error::new(e).context(format!("read {}", path.display()))))?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| ReadError::Other(e.into()))?
    }
}

impl LocalSource {
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || {
            let dir = path.parent().context("a key names a file")?;
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            let name = path.file_name().context("a key names a file")?.to_string_lossy();
            let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut file = std::fs::File::create(&temporary)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &path)?;
                std::fs::File::open(dir)?.sync_all()
            };
            write().with_context(|| format!("write {}", path.display()))
        })
        .await?
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.root.join(key);
        let bytes = tokio::fs::read(&path).await.with_context(|| format!("read {}", path.display()))?;
        Ok(Bytes::from(bytes))
    }
}

/// `{size}-{mtime in ns}`: changes when the file is rewritten.
fn fingerprint(meta: &std::fs::Metadata) -> String {
    format!("{}-{}{:09}", meta.len(), meta.mtime(), meta.mtime_nsec())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let key = path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
            // Whole seconds, like S3's LastModified: the same files give the same submission
            // times (and so the same "newest claim") from a folder and from a bucket.
            let last_modified = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64);
            out.push(ObjectInfo { key, etag: fingerprint(&meta), size: meta.len(), last_modified });
        }
    }
    Ok(())
}
