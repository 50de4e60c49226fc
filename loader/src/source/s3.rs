//! An S3 bucket, through aws-sdk-s3 with the standard credential chain and region.
//! `AWS_ENDPOINT_URL` points it at an S3-compatible server (path-style addressing is used
//! whenever an endpoint is set).

use super::{ObjectInfo, ReadError};
use anyhow::{Context, Result};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::ops::Range;
use std::time::SystemTime;

pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Source {
    /// Configured from the environment: the standard AWS credential chain and region, and
    /// `AWS_ENDPOINT_URL` (with path-style addressing) for S3-compatible servers.
    pub async fn connect(bucket: &str, prefix: &str) -> Result<S3Source> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let mut builder = aws_sdk_s3::config::Builder::from(&config);
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
            builder = builder.force_path_style(true);
        }
        Ok(Self::with_config(builder.build(), bucket, prefix))
    }

    /// With an explicit client configuration (tests point it at a server of their own).
    pub fn with_config(config: aws_sdk_s3::Config, bucket: &str, prefix: &str) -> S3Source {
        S3Source { client: Client::from_conf(config), bucket: bucket.to_owned(), prefix: prefix.to_owned() }
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    pub async fn check(&self) -> Result<()> {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(explain)
            .with_context(|| format!("cannot list {}", self.describe()))?;
        Ok(())
    }

    /// Every page of ListObjectsV2 (continuation tokens), with a HEAD for entries that carry no ETag.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&self.prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(explain).with_context(|| format!("cannot list {}", self.describe()))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let size = object.size().unwrap_or(0).max(0) as u64;
                let last_modified = object.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
                let (etag, size, last_modified) = match (object.e_tag(), last_modified) {
                    (Some(etag), Some(at)) => (unquote(etag), size, at),
                    _ => self.head(key).await?,
                };
                out.push(ObjectInfo { key: key.to_owned(), etag, size, last_modified });
            }
        }
        Ok(out)
    }

    async fn head(&self, key: &str) -> Result<(String, u64, SystemTime)> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(explain)
            .with_context(|| format!("HEAD {key}"))?;
        let etag = head.e_tag().map(unquote).unwrap_or_default();
        let at = head.last_modified().and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or(SystemTime::UNIX_EPOCH);
        Ok((etag, head.content_length().unwrap_or(0).max(0) as u64, at))
    }

    /// A ranged GET with `If-Match` on the listed ETag: an object overwritten mid-read fails
    /// with [`ReadError::Changed`] instead of mixing two versions. The ETag of every response is
    /// checked too, for servers that ignore `If-Match` on GET (s3s-fs does).
    pub async fn read_range(&self, object: &ObjectInfo, range: Range<u64>) -> Result<Bytes, ReadError> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(&object.key).range(format!(
            "bytes={}-{}",
            range.start,
            range.end - 1
        ));
        if !object.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", object.etag));
        }
        let response = request.send().await.map_err(|e| match e.code() {
            Some("PreconditionFailed") => ReadError::Changed,
            Some("NoSuchKey") => ReadError::Vanished,
            _ => ReadError::Other(explain(e).context(format!("GET {}", object.key))),
        })?;
        if let Some(etag) = response.e_tag() {
            if !object.etag.is_empty() && unquote(etag) != object.etag {
                return Err(ReadError::Changed);
            }
        }
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| ReadError::Other(anyhow::Error::new(e).context(format!("read body of {}", object.key))))?
            .into_bytes();
        if body.len() as u64 != range.end - range.start {
            return Err(ReadError::Other(anyhow::anyhow!(
                "GET {} returned {} bytes for a range of {}",
                object.key,
                body.len(),
                range.end - range.start
            )));
        }
        Ok(body)
    }
}

impl S3Source {
    /// `key` under the prefix (the prefix as a folder).
    fn full_key(&self, key: &str) -> String {
        match self.prefix.trim_end_matches('/') {
            "" => key.to_owned(),
            prefix => format!("{prefix}/{key}"),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let key = self.full_key(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .map_err(explain)
            .with_context(|| format!("PUT s3://{}/{key}", self.bucket))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let key = self.full_key(key);
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(explain)
            .with_context(|| format!("GET s3://{}/{key}", self.bucket))?;
        Ok(response
            .body
            .collect()
            .await
            .with_context(|| format!("read body of s3://{}/{key}", self.bucket))?
            .into_bytes())
    }
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// An SDK error with the service's code and message, not just "service error".
fn explain<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> anyhow::Error {
    match e.code() {
        Some(code) => anyhow::anyhow!("{code}: {}", e.message().unwrap_or("(no message)")),
        // Dispatch and timeout failures: the full chain says why (connection refused, DNS, ...).
        None => anyhow::anyhow!("{}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
    }
}
