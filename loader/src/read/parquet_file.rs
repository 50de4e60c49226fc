//! Parquet uploads, streamed one record batch at a time over byte-range reads.
//!
//! Only the 18 known columns are read (a projection: extra columns cost nothing). Each column
//! may drift in type between files — numbers as int64, double or the null type, zpid as string
//! or int64, timestamps in any unit — so every column is cast to the type we want with arrow's
//! safe cast (a value that does not convert becomes NULL). A column whose type cannot be cast
//! at all (a list, a struct) refuses the file.

use super::{Rejection, UploadError};
use crate::source::{ObjectInfo, ReadError, Source};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::{can_cast_types, cast_with_options, CastOptions};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use resi_core::listing::RawListing;
use std::ops::Range;
use std::sync::Arc;

/// Rows per decoded batch: bounded memory whatever the file's row-group size.
const BATCH_ROWS: usize = 8192;

/// Byte ranges of one row group closer than this are fetched in one request.
const COALESCE_GAP: u64 = 1024 * 1024;

#[derive(Copy, Clone, PartialEq)]
enum Want {
    Text,
    Number,
    Time,
}

/// The columns we read, in the order of [`RawListing`]'s fields, with the type we want.
const COLUMNS: [(&str, Want); 17] = [
    ("uri", Want::Text),
    ("datetime", Want::Time),
    ("label", Want::Text),
    ("zpid", Want::Text),
    ("price", Want::Number),
    ("address", Want::Text),
    ("bedrooms", Want::Number),
    ("bathrooms", Want::Number),
    ("living_area", Want::Number),
    ("home_type", Want::Text),
    ("home_status", Want::Text),
    ("days_on_zillow", Want::Number),
    ("zip_code", Want::Text),
    ("city", Want::Text),
    ("state", Want::Text),
    ("latitude", Want::Number),
    ("longitude", Want::Number),
];

impl Want {
    fn data_type(self) -> DataType {
        match self {
            Want::Text => DataType::Utf8,
            Want::Number => DataType::Float64,
            Want::Time => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// An open Parquet upload: its row count and a stream of rows.
pub struct ParquetUpload {
    /// Rows the file's metadata says it holds.
    pub rows_in_file: u64,
    stream: ParquetRecordBatchStream<RangeReader>,
    /// For each of [`COLUMNS`], its index in the projected batches (None: absent).
    positions: [Option<usize>; 17],
    /// A source failure seen by the reader inside the stream.
    failure: Failure,
}

/// Where the range reader leaves a source failure, so a failed read of the source (retry
/// later) is told apart from a corrupt file (reject).
type Failure = Arc<std::sync::Mutex<Option<ReadError>>>;

fn take_failure(failure: &Failure) -> Option<ReadError> {
    failure.lock().map(|mut f| f.take()).unwrap_or(None)
}

impl ParquetUpload {
    /// Read the footer and check the schema. A file that is empty, not Parquet, truncated,
    /// corrupt or without a column we know is [`UploadError::Rejected`]; a source failure is
    /// [`UploadError::Source`].
    pub async fn open(source: Arc<Source>, object: ObjectInfo) -> Result<ParquetUpload, UploadError> {
        ParquetUpload::open_whole(Bytes::new(), source, object).await
    }

    /// [`ParquetUpload::open`] over the object's bytes already read whole (one GET for a small
    /// object instead of a request per footer and row group). `whole` must be the object's
    /// bytes as read at its ETag; an empty `whole` reads ranges from the source.
    pub async fn open_whole(
        whole: Bytes,
        source: Arc<Source>,
        object: ObjectInfo,
    ) -> Result<ParquetUpload, UploadError> {
        if object.size == 0 {
            return Err(Rejection::new("empty_file", "the object has zero bytes").into());
        }
        if object.size < 12 {
            return Err(Rejection::new(
                "not_parquet",
                format!("{} bytes is too small for a Parquet file", object.size),
            )
            .into());
        }
        let reader = RangeReader { source, object, whole, failure: Failure::default() };
        let head = reader.read(0..4).await?;
        let tail = reader.read(reader.object.size - 4..reader.object.size).await?;
        if &head[..] != b"PAR1" || &tail[..] != b"PAR1" {
            let what =
                if head.first() == Some(&b'{') || head.first() == Some(&b'[') { " (it looks like JSON)" } else { "" };
            let code = if &head[..] == b"PAR1" { "truncated" } else { "not_parquet" };
            return Err(Rejection::new(code, format!("no Parquet magic bytes at both ends{what}")).into());
        }
        let failure = reader.failure.clone();
        let builder = match ParquetRecordBatchStreamBuilder::new_with_options(reader, ArrowReaderOptions::new()).await {
            Ok(b) => b,
            Err(e) => {
                return Err(match take_failure(&failure) {
                    Some(source_failure) => source_failure.into(),
                    None => Rejection::new("corrupt_footer", e.to_string()).into(),
                })
            }
        };
        let schema = builder.schema().clone();
        let mut seen = std::collections::HashSet::new();
        for field in schema.fields() {
            if !seen.insert(field.name().as_str()) {
                return Err(
                    Rejection::new("duplicate_columns", format!("column {:?} appears twice", field.name())).into()
                );
            }
        }
        // Project the known columns (top-level leaves only: a nested column is refused below).
        let parquet_schema = builder.parquet_schema();
        let mut roots = Vec::new();
        for (name, want) in COLUMNS {
            if let Some((i, field)) = schema.fields().iter().enumerate().find(|(_, f)| f.name() == name) {
                let from = field.data_type();
                if !matches!(from, DataType::Null) && !can_cast_types(from, &want.data_type()) {
                    return Err(Rejection::new(
                        "unsupported_column_type",
                        format!("column {name:?} has type {from}, which cannot be read as {}", want.data_type()),
                    )
                    .into());
                }
                roots.push(i);
            }
        }
        if roots.is_empty() {
            return Err(Rejection::new("no_known_columns", "none of the 18 listing columns is present").into());
        }
        if !roots.iter().any(|&i| matches!(schema.field(i).name().as_str(), "zpid" | "uri")) {
            return Err(Rejection::new("no_zpid_column", "neither a zpid nor a uri column is present").into());
        }
        roots.sort_unstable();
        let mask = ProjectionMask::roots(parquet_schema, roots.iter().copied());
        let projected: Vec<&str> = roots.iter().map(|&i| schema.field(i).name().as_str()).collect();
        let positions = COLUMNS.map(|(name, _)| projected.iter().position(|p| *p == name));
        let rows_in_file = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let stream = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| Rejection::new("corrupt_footer", e.to_string()))?;
        Ok(ParquetUpload { rows_in_file, stream, positions, failure })
    }

    /// The next batch of rows, `None` at the end. A decoding failure mid-file is
    /// [`UploadError::Rejected`] (`corrupt_data`); a source failure (object changed, I/O) is
    /// [`UploadError::Source`].
    pub async fn next_rows(&mut self) -> Result<Option<Vec<RawListing>>, UploadError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(batch)) => Ok(Some(rows(&batch, &self.positions))),
            Some(Err(e)) => Err(match take_failure(&self.failure) {
                Some(source_failure) => source_failure.into(),
                None => Rejection::new("corrupt_data", e.to_string()).into(),
            }),
        }
    }
}

/// Convert one batch to rows, casting each known column to the type we want.
fn rows(batch: &RecordBatch, positions: &[Option<usize>; 17]) -> Vec<RawListing> {
    let n = batch.num_rows();
    let options = CastOptions { safe: true, ..Default::default() };
    let columns: Vec<Option<ArrayRef>> = COLUMNS
        .iter()
        .zip(positions)
        .map(|((_, want), pos)| {
            let col = batch.column((*pos)?);
            if col.data_type() == &DataType::Null {
                return None;
            }
            cast_with_options(col, &want.data_type(), &options).ok()
        })
        .collect();
    let text = |i: usize, row: usize| -> Option<String> {
        let a = columns[i].as_ref()?.as_string::<i32>();
        a.is_valid(row).then(|| a.value(row).to_owned())
    };
    let number = |i: usize, row: usize| -> Option<f64> {
        let a = columns[i].as_ref()?.as_primitive::<Float64Type>();
        a.is_valid(row).then(|| a.value(row))
    };
    let time = |i: usize, row: usize| -> Option<i64> {
        let a = columns[i].as_ref()?.as_primitive::<TimestampMicrosecondType>();
        a.is_valid(row).then(|| a.value(row))
    };
    (0..n)
        .map(|r| RawListing {
            uri: text(0, r),
            datetime_micros: time(1, r),
            label: text(2, r),
            zpid: text(3, r),
            price: number(4, r),
            address: text(5, r),
            bedrooms: number(6, r),
            bathrooms: number(7, r),
            living_area: number(8, r),
            home_type: text(9, r),
            home_status: text(10, r),
            days_on_zillow: number(11, r),
            zip_code: text(12, r),
            city: text(13, r),
            state: text(14, r),
            latitude: number(15, r),
            longitude: number(16, r),
        })
        .collect()
}

/// Parquet's view of an object: byte ranges from the source.
struct RangeReader {
    source: Arc<Source>,
    object: ObjectInfo,
    /// The object's bytes when they were read whole (else empty: ranges come from the source).
    whole: Bytes,
    failure: Failure,
}

impl RangeReader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes, ReadError> {
        if self.whole.is_empty() {
            return self.source.read_range(&self.object, range).await;
        }
        let len = self.whole.len() as u64;
        if range.start > range.end || range.end > len {
            return Err(ReadError::Other(anyhow::anyhow!("range {range:?} is outside the object's {len} bytes")));
        }
        Ok(self.whole.slice(range.start as usize..range.end as usize))
    }
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.read(range).await.map_err(|e| {
                let message = e.to_string();
                if let Ok(mut slot) = self.failure.lock() {
                    *slot = Some(e);
                }
                ParquetError::General(format!("reading the object failed: {message}"))
            })
        }
        .boxed()
    }

    /// The column chunks of a row group, fetched with as few requests as possible: ranges
    /// closer than [`COALESCE_GAP`] are read as one and sliced.
    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let mut out = vec![Bytes::new(); ranges.len()];
            let mut order: Vec<usize> = (0..ranges.len()).collect();
            order.sort_by_key(|&i| ranges[i].start);
            let mut i = 0;
            while i < order.len() {
                let start = ranges[order[i]].start;
                let mut end = ranges[order[i]].end;
                let mut j = i + 1;
                while j < order.len() && ranges[order[j]].start <= end + COALESCE_GAP {
                    end = end.max(ranges[order[j]].end);
                    j += 1;
                }
                let merged = self.get_bytes(start..end).await?;
                for &k in &order[i..j] {
                    let r = &ranges[k];
                    out[k] = merged.slice((r.start - start) as usize..(r.end - start) as usize);
                }
                i = j;
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.object.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
