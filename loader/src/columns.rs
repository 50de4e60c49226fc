//! The columns of archive and export files, and the Parquet plumbing: rows selected with
//! [`select_list`] become one ZSTD-compressed Parquet file ([`parquet_of`]), and a file read
//! back yields its keys ([`keys_of`]).

use anyhow::{bail, ensure, Result};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use resi_core::fields::{SqlType, LISTING_FIELDS};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_postgres::Row;

/// A column of an archive or export file: its name and the type it is read from SQL as.
#[derive(Clone, Copy)]
pub(crate) enum Column {
    Text(&'static str),
    Int(&'static str),
    Float(&'static str),
    Bool(&'static str),
    Time(&'static str),
}

impl Column {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Column::Text(n) | Column::Int(n) | Column::Float(n) | Column::Bool(n) | Column::Time(n) => n,
        }
    }

    fn field(self) -> Field {
        let data_type = match self {
            Column::Text(_) => DataType::Utf8,
            Column::Int(_) => DataType::Int64,
            Column::Float(_) => DataType::Float64,
            Column::Bool(_) => DataType::Boolean,
            Column::Time(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        };
        Field::new(self.name(), data_type, true)
    }

    /// The SQL that reads the column as this type from alias `t`.
    fn select(self) -> String {
        match self {
            Column::Text(n) => format!("t.{n}::text"),
            Column::Int(n) => format!("t.{n}::bigint"),
            Column::Float(n) => format!("t.{n}::float8"),
            Column::Bool(n) => format!("t.{n}"),
            Column::Time(n) => format!("t.{n}"),
        }
    }
}

/// The fields every reported row and every listing has, in table order
/// (`resi_core::fields::LISTING_FIELDS`).
fn fields() -> impl Iterator<Item = Column> {
    LISTING_FIELDS.into_iter().map(|f| match f.sql_type {
        SqlType::Text => Column::Text(f.name),
        SqlType::Bigint | SqlType::Integer => Column::Int(f.name),
        SqlType::Double => Column::Float(f.name),
    })
}

pub(crate) fn listing_columns() -> Vec<Column> {
    let mut c = vec![Column::Text("zpid")];
    c.extend(fields());
    c.extend([
        Column::Float("consensus_score"),
        Column::Int("total_attestations"),
        Column::Int("unique_miners_count"),
        Column::Int("voting_miners"),
        Column::Int("voting_groups"),
        Column::Time("first_seen_at"),
        Column::Time("last_updated_at"),
        Column::Text("field_consensus"),
    ]);
    c
}

pub(crate) fn attestation_columns() -> Vec<Column> {
    let mut c = vec![
        Column::Int("id"),
        Column::Text("miner_hotkey"),
        Column::Int("miner_uid"),
        Column::Text("zpid"),
        Column::Time("submission_timestamp"),
        Column::Text("job_id"),
        Column::Text("s3_file_path"),
        Column::Int("record_count"),
        Column::Text("data_hash"),
        Column::Bool("is_validated"),
        Column::Time("validation_timestamp"),
        Column::Float("validation_score"),
    ];
    c.extend(fields());
    c.extend([Column::Time("scraped_at"), Column::Int("signature")]);
    c
}

pub(crate) fn select_list(columns: &[Column]) -> String {
    columns.iter().map(|c| c.select()).collect::<Vec<_>>().join(", ")
}

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Rows (read with [`Column::select`]) as one Parquet file.
pub(crate) fn parquet_of(rows: &[Row], columns: &[Column]) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(columns.iter().map(|c| c.field()).collect::<Vec<_>>()));
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let array: ArrayRef = match column {
            Column::Text(_) => {
                let mut b = StringBuilder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<&str>>(i)));
                Arc::new(b.finish())
            }
            Column::Int(_) => {
                let mut b = Int64Builder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<i64>>(i)));
                Arc::new(b.finish())
            }
            Column::Float(_) => {
                let mut b = Float64Builder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<f64>>(i)));
                Arc::new(b.finish())
            }
            Column::Bool(_) => {
                let mut b = BooleanBuilder::new();
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<bool>>(i)));
                Arc::new(b.finish())
            }
            Column::Time(_) => {
                let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                rows.iter().for_each(|r| b.append_option(r.get::<_, Option<SystemTime>>(i).map(micros)));
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// The keys of a Parquet file written by [`parquet_of`]: its first column, text or integer.
pub(crate) enum Keys {
    Zpids(Vec<String>),
    Ids(Vec<i64>),
}

pub(crate) fn keys_of(bytes: Bytes) -> Result<Keys> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let (mut zpids, mut ids) = (Vec::new(), Vec::new());
    for batch in reader {
        let column = batch?.column(0).clone();
        if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
            ensure!(a.null_count() == 0, "a key is NULL");
            zpids.extend(a.iter().flatten().map(str::to_owned));
        } else if let Some(a) = column.as_any().downcast_ref::<Int64Array>() {
            ensure!(a.null_count() == 0, "a key is NULL");
            ids.extend(a.iter().flatten());
        } else {
            bail!("the first column is neither text nor bigint");
        }
    }
    Ok(if ids.is_empty() { Keys::Zpids(zpids) } else { Keys::Ids(ids) })
}
