//! Uploads: CSV or Parquet in, validated and normalised Parquet out.
//!
//! Every value is parsed (CSV) or every page decoded (Parquet) before the upload is
//! accepted, so a dataset that is stored can always be read back. The output is Parquet with
//! ZSTD level 3 and row groups of 128 Ki rows. The caller enforces the byte limit on `input`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::reader::ChunkReader;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::source::{BATCH_ROWS, Shared, read_error, write_error, writer};
use super::{DataError, Result, type_name};

mod csv_input;

pub use csv_input::ingest_csv;

/// Column type a CSV upload may declare for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    Boolean,
    Date,
    /// Without time zone, microsecond precision; values with an offset are converted to UTC.
    Timestamp,
}

impl ColumnType {
    /// The Arrow type a column of this type is stored as.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// How to read a CSV upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The first line holds the column names (default true). Without a header the columns
    /// are named `column_1`, `column_2`, …
    pub header: bool,
    /// Field separator, one ASCII character (default `,`).
    #[schema(value_type = String, example = ",")]
    pub delimiter: char,
    /// Declared types by column name; they override inference.
    pub column_types: BTreeMap<String, ColumnType>,
    /// Rows read to infer the types of undeclared columns (default 1000).
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: ',',
            column_types: BTreeMap::new(),
            infer_rows: 1000,
        }
    }
}

/// Limits checked while reading; the byte limit is the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most data rows accepted (default: no limit).
    pub max_rows: u64,
    /// Most columns accepted (default 1000).
    pub max_columns: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_rows: u64::MAX,
            max_columns: 1000,
        }
    }
}

/// What was stored.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub schema: SchemaRef,
    pub rows: u64,
    pub row_groups: u64,
}

/// `[{"name", "type", "nullable"}]` for the API; see [`type_name`] for the type names.
pub fn schema_json(schema: &Schema) -> serde_json::Value {
    let columns: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "type": type_name(f.data_type()),
                "nullable": f.is_nullable(),
            })
        })
        .collect();
    serde_json::Value::Array(columns)
}

/// Column names must be non-empty, unique and free of control characters; at most
/// `max_columns` of them.
pub(crate) fn check_column_names<'a>(
    names: impl ExactSizeIterator<Item = &'a str>,
    max_columns: usize,
) -> Result<()> {
    if names.len() > max_columns {
        return Err(DataError::TooLarge(format!(
            "{} columns, the limit is {max_columns}",
            names.len()
        )));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        let position = i + 1;
        if name.trim().is_empty() {
            return Err(DataError::InvalidSchema(format!(
                "column {position} has an empty name"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(DataError::InvalidSchema(format!(
                "column {position} name {name:?} contains control characters"
            )));
        }
        if let Some(first) = seen.insert(name, position) {
            return Err(DataError::InvalidSchema(format!(
                "column name \"{name}\" appears twice (columns {first} and {position})"
            )));
        }
    }
    Ok(())
}

/// Stored type of a Parquet column: strings and binaries in their plain form, dictionaries
/// decoded; nested types are refused.
fn normalised_type(name: &str, data_type: &DataType) -> Result<DataType> {
    Ok(match data_type {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => normalised_type(name, value)?,
        t if t.is_nested() => {
            return Err(DataError::InvalidSchema(format!(
                "column \"{name}\" has nested type {t}; only flat columns are supported"
            )));
        }
        t => t.clone(),
    })
}

/// Check a Parquet upload completely and store it normalised.
/// Run `decode` on row group `group`, turning a panic of the parquet crate into an error:
/// some malformed pages still panic in it (parquet 60: a dictionary-encoded page without a
/// dictionary page, found by fuzzing `ingest_parquet`), and an upload must get a 422, not
/// a failed task.
fn guarded<T>(group: usize, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "undecodable page".to_owned());
            Err(DataError::InvalidParquet(format!(
                "row group {group}: malformed page ({why})"
            )))
        }
    }
}

pub fn ingest_parquet<R: ChunkReader + 'static, W: Write + Send>(
    input: R,
    out: W,
    limits: &IngestLimits,
) -> Result<IngestReport> {
    let input = Shared::new(input);
    let metadata = ArrowReaderMetadata::load(&input, ArrowReaderOptions::new()).map_err(|e| {
        DataError::InvalidParquet(format!("cannot read the file footer: {}", read_error(&e)))
    })?;
    let schema = metadata.schema().clone();
    check_column_names(
        schema.fields().iter().map(|f| f.name().as_str()),
        limits.max_columns,
    )?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            Ok(Field::new(
                f.name(),
                normalised_type(f.name(), f.data_type())?,
                true,
            ))
        })
        .collect::<Result<_>>()?;
    let target: SchemaRef = Arc::new(Schema::new(fields));
    let total_rows = u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    if total_rows > limits.max_rows {
        return Err(DataError::TooLarge(format!(
            "{total_rows} rows, the limit is {}",
            limits.max_rows
        )));
    }

    let mut out = writer(out, target.clone(), &[])?;
    let mut rows = 0u64;
    for (group, row_group) in metadata.metadata().row_groups().iter().enumerate() {
        let expected = u64::try_from(row_group.num_rows()).unwrap_or(0);
        let decoded = guarded(group, || {
            copy_row_group(&input, &metadata, group, &target, &mut out)
        })?;
        if decoded != expected {
            return Err(DataError::InvalidParquet(format!(
                "row group {group}: the footer announces {expected} rows but {decoded} were decoded"
            )));
        }
        rows += decoded;
    }
    finish(out, target, rows)
}

/// Decode one row group fully and write it out; on failure find the column at fault.
fn copy_row_group<R: ChunkReader + 'static, W: Write + Send>(
    input: &Shared<R>,
    metadata: &ArrowReaderMetadata,
    group: usize,
    target: &SchemaRef,
    out: &mut ArrowWriter<W>,
) -> Result<u64> {
    let reader =
        ParquetRecordBatchReaderBuilder::new_with_metadata(input.clone(), metadata.clone())
            .with_row_groups(vec![group])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| corrupt(input, metadata, group, &e))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| {
            let e = parquet::errors::ParquetError::ArrowError(e.to_string());
            corrupt(input, metadata, group, &e)
        })?;
        rows += batch.num_rows() as u64;
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(column.clone())
                } else {
                    cast(column, field.data_type()).map_err(|e| {
                        DataError::InvalidParquet(format!(
                            "row group {group}, column \"{}\": {e}",
                            field.name()
                        ))
                    })
                }
            })
            .collect::<Result<_>>()?;
        let batch = RecordBatch::try_new(target.clone(), columns)
            .map_err(|e| DataError::internal("rebuilding a batch", e))?;
        out.write(&batch).map_err(write_error)?;
    }
    Ok(rows)
}

/// Name the first column of `group` that cannot be decoded on its own.
fn corrupt<R: ChunkReader + 'static>(
    input: &Shared<R>,
    metadata: &ArrowReaderMetadata,
    group: usize,
    err: &parquet::errors::ParquetError,
) -> DataError {
    let schema = metadata.metadata().file_metadata().schema_descr();
    for (index, field) in metadata.schema().fields().iter().enumerate() {
        let decodes =
            ParquetRecordBatchReaderBuilder::new_with_metadata(input.clone(), metadata.clone())
                .with_row_groups(vec![group])
                .with_projection(ProjectionMask::roots(schema, [index]))
                .with_batch_size(BATCH_ROWS)
                .build()
                .map(|reader| reader.into_iter().all(|batch| batch.is_ok()))
                .unwrap_or(false);
        if !decodes {
            return DataError::InvalidParquet(format!(
                "row group {group}, column \"{}\": {}",
                field.name(),
                read_error(err)
            ));
        }
    }
    DataError::InvalidParquet(format!("row group {group}: {}", read_error(err)))
}

pub(crate) fn finish<W: Write + Send>(
    out: ArrowWriter<W>,
    schema: SchemaRef,
    rows: u64,
) -> Result<IngestReport> {
    let metadata = out.close().map_err(write_error)?;
    Ok(IngestReport {
        schema,
        rows,
        row_groups: metadata.num_row_groups() as u64,
    })
}
