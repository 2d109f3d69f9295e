//! Uploads: CSV or Parquet in, validated and normalised Parquet out.
//!
//! Every value is parsed (CSV) or every page decoded (Parquet) before the upload is
//! accepted, so a dataset that is stored can always be read back. The output is Parquet with
//! ZSTD level 3 and row groups of at most 128 Ki rows. The caller enforces the byte limit on
//! `input`.
//!
//! Memory is bounded by [`IngestLimits::max_memory`] whatever the file's compression ratio:
//! the Parquet page headers are sized before any page is decompressed (at most half the
//! budget at once), batches are decoded with strings as views (a value repeated through a
//! dictionary is not copied) and sized before they are expanded (at most a quarter), and
//! the output's row group is flushed past a quarter. CSV fields and records have their own
//! caps. A [`Cancel`] flag, checked between batches and reads, stops an abandoned ingest.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::reader::ChunkReader;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::source::{Shared, read_error, write_error, writer};
use super::{DataError, Result, type_name};

mod csv_input;
mod pages;

pub use csv_input::ingest_csv;

/// Most rows in one decoded Parquet batch (fewer when rows are wide).
const PARQUET_BATCH_ROWS: usize = 8 * 1024;

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
    /// Bytes one ingest may hold at once (default 128 MiB): half for the Parquet pages
    /// being decoded, a quarter for a decoded batch, a quarter for the output row group.
    pub max_memory: u64,
    /// Longest CSV field, in bytes (default 1 MiB).
    pub max_field_bytes: u64,
    /// Longest CSV record, in bytes (default 4 MiB; at most an eighth of `max_memory`).
    pub max_record_bytes: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_rows: u64::MAX,
            max_columns: 1000,
            max_memory: 128 << 20,
            max_field_bytes: 1 << 20,
            max_record_bytes: 4 << 20,
        }
    }
}

impl IngestLimits {
    /// What one decoded batch (or one CSV batch of text) may take.
    pub(crate) fn batch_bytes(&self) -> u64 {
        self.max_memory / 4
    }
}

/// Set when an ingest is abandoned (the request timed out or its client went away); the
/// ingest checks it between batches and reads and stops with [`DataError::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(DataError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A byte count for messages: `16.0 KiB`, `1.0 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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

/// The type a column is decoded as: strings and binaries as views, so that a value
/// repeated through a dictionary (or read from a plain page) is not copied per row.
fn decoded_type(stored: &DataType) -> DataType {
    match stored {
        DataType::Utf8 => DataType::Utf8View,
        DataType::Binary => DataType::BinaryView,
        other => other.clone(),
    }
}

/// Check a Parquet upload completely and store it normalised, holding about
/// `limits.max_memory` at most; `cancel` stops it between batches.
pub fn ingest_parquet<R: ChunkReader + 'static, W: Write + Send>(
    input: R,
    out: W,
    limits: &IngestLimits,
    cancel: &Cancel,
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
    // The same columns, strings and binaries decoded as views.
    let decoded: SchemaRef = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .zip(target.fields())
            .map(|(f, t)| {
                f.as_ref()
                    .clone()
                    .with_data_type(decoded_type(t.data_type()))
            })
            .collect::<Vec<_>>(),
    ));
    let options = ArrowReaderOptions::new().with_schema(decoded);
    let metadata =
        ArrowReaderMetadata::try_new(metadata.metadata().clone(), options).map_err(|e| {
            DataError::InvalidParquet(format!(
                "the column types do not match the file's schema: {}",
                read_error(&e)
            ))
        })?;

    let mut out = writer(out, target.clone(), &[])?;
    let mut rows = 0u64;
    for (group, row_group) in metadata.metadata().row_groups().iter().enumerate() {
        cancel.check()?;
        let expected = u64::try_from(row_group.num_rows()).unwrap_or(0);
        let batch_rows = guarded(group, || plan_row_group(&input, &metadata, group, limits))?;
        let decoded = guarded(group, || {
            let copy = RowGroupCopy {
                input: &input,
                metadata: &metadata,
                group,
                batch_rows,
                target: &target,
                limits,
                cancel,
            };
            copy.run(&mut out)
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

/// Size row group `group` before decoding it: the pages its decoder holds at once must fit
/// half of the memory budget; returns the rows per batch that keep a batch, as the footer
/// describes it, within an eighth.
fn plan_row_group<R: ChunkReader + 'static>(
    input: &Shared<R>,
    metadata: &ArrowReaderMetadata,
    group: usize,
    limits: &IngestLimits,
) -> Result<usize> {
    let row_group = metadata.metadata().row_group(group);
    let fields = metadata.schema().fields();
    let mut held = 0u64;
    let mut widest: (u64, &str) = (0, "");
    let mut rebuilt = 0u64;
    for (column, field) in row_group.columns().iter().zip(fields.iter()) {
        let at_fault = |why: String| {
            DataError::InvalidParquet(format!(
                "row group {group}, column \"{}\": {why}",
                field.name()
            ))
        };
        let (start, length) = pages::chunk_range(column).map_err(at_fault)?;
        let chunk = pages::scan(input, start, length).map_err(at_fault)?;
        let column_held = chunk.largest_page.saturating_add(chunk.dictionary);
        held = held.saturating_add(column_held);
        if column_held > widest.0 {
            widest = (column_held, field.name());
        }
        if chunk.rebuilt_values {
            rebuilt = rebuilt.saturating_add(chunk.largest_page.max(chunk.dictionary));
        }
    }
    let pages_budget = limits.max_memory / 2;
    if held > pages_budget {
        return Err(DataError::TooLarge(format!(
            "row group {group}: decoding it holds {} of pages at once (the largest page and \
             the dictionary of each column; column \"{}\": {}), more than the {} allowed \
             (half of --max-ingest-memory, {}); write the file with smaller pages or fewer \
             columns per file",
            bytes(held),
            widest.1,
            bytes(widest.0),
            bytes(pages_budget),
            bytes(limits.max_memory),
        )));
    }

    // Bytes per row: fixed-width values, 16 per view, or what the footer announces.
    let mut fixed = 0u64;
    let mut views = 0u64;
    let mut widest: (u64, &str) = (0, "");
    for field in fields.iter() {
        let width = match field.data_type() {
            DataType::Utf8View | DataType::BinaryView => {
                views += 16;
                continue;
            }
            DataType::FixedSizeBinary(n) => u64::try_from(*n).unwrap_or(0),
            DataType::Boolean => 1,
            DataType::Null => 0,
            t => t.primitive_width().map_or(8, |w| w as u64),
        };
        fixed += width;
        if width > widest.0 {
            widest = (width, field.name());
        }
    }
    let batch_budget = limits.batch_bytes();
    if fixed > batch_budget {
        return Err(DataError::TooLarge(format!(
            "row group {group}: one row takes {} of fixed-width values (column \"{}\": {}), \
             more than the {} a batch may take (a quarter of --max-ingest-memory, {})",
            bytes(fixed),
            widest.1,
            bytes(widest.0),
            bytes(batch_budget),
            bytes(limits.max_memory),
        )));
    }
    let rows = u64::try_from(row_group.num_rows()).unwrap_or(0).max(1);
    let announced = u64::try_from(row_group.total_byte_size()).unwrap_or(0) / rows;
    let per_row = announced.max(fixed + views).max(1);
    let mut batch_rows = (batch_budget / 2 / per_row).max(1);
    // DELTA_BYTE_ARRAY values are rebuilt while decoding, before they can be sized: each
    // may be as long as its page.
    if let Some(rows) = (batch_budget / 2).checked_div(rebuilt) {
        batch_rows = batch_rows.min(rows.max(1));
    }
    Ok(usize::try_from(batch_rows)
        .unwrap_or(PARQUET_BATCH_ROWS)
        .min(PARQUET_BATCH_ROWS))
}

/// Decoding one row group into the output.
struct RowGroupCopy<'a, R: ChunkReader> {
    input: &'a Shared<R>,
    metadata: &'a ArrowReaderMetadata,
    group: usize,
    batch_rows: usize,
    target: &'a SchemaRef,
    limits: &'a IngestLimits,
    cancel: &'a Cancel,
}

impl<R: ChunkReader + 'static> RowGroupCopy<'_, R> {
    /// Decode the row group batch by batch, size each batch before expanding its views,
    /// and write it out; on failure find the column at fault.
    fn run<W: Write + Send>(&self, out: &mut ArrowWriter<W>) -> Result<u64> {
        let group = self.group;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.input.clone(),
            self.metadata.clone(),
        )
        .with_row_groups(vec![group])
        .with_batch_size(self.batch_rows)
        .build()
        .map_err(|e| self.corrupt(&e))?;
        let mut rows = 0u64;
        for batch in reader {
            self.cancel.check()?;
            let batch = batch.map_err(|e| {
                let e = parquet::errors::ParquetError::ArrowError(e.to_string());
                self.corrupt(&e)
            })?;
            let first = rows + 1;
            rows += batch.num_rows() as u64;
            self.check_size(&batch, first, rows)?;
            let columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .zip(self.target.fields())
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
            drop(batch);
            let batch = RecordBatch::try_new(self.target.clone(), columns)
                .map_err(|e| DataError::internal("rebuilding a batch", e))?;
            out.write(&batch).map_err(write_error)?;
            if out.in_progress_size() as u64 > self.limits.batch_bytes() {
                out.flush().map_err(write_error)?;
            }
        }
        Ok(rows)
    }

    /// Refuse a batch whose values, expanded, exceed a quarter of the budget.
    fn check_size(&self, batch: &RecordBatch, first: u64, last: u64) -> Result<()> {
        let sizes: Vec<u64> = batch.columns().iter().map(expanded_size).collect();
        let total: u64 = sizes.iter().sum();
        let budget = self.limits.batch_bytes();
        if total <= budget {
            return Ok(());
        }
        let (column, largest) = sizes
            .iter()
            .enumerate()
            .max_by_key(|(_, size)| **size)
            .map(|(i, size)| (batch.schema().field(i).name().clone(), *size))
            .unwrap_or_default();
        let row_group = self.metadata.metadata().row_group(self.group);
        let stored: i64 = row_group
            .columns()
            .iter()
            .map(|c| c.compressed_size())
            .sum();
        Err(DataError::TooLarge(format!(
            "row group {}, rows {first}–{last}: they decode to {} (column \"{column}\": {}), \
             more than the {} a batch may take (a quarter of --max-ingest-memory, {}); the \
             file stores the row group's {} rows in {}: values repeated through a \
             dictionary decode far larger than the file",
            self.group,
            bytes(total),
            bytes(largest),
            bytes(budget),
            bytes(self.limits.max_memory),
            row_group.num_rows(),
            bytes(u64::try_from(stored).unwrap_or(0)),
        )))
    }

    /// Name the first column of the row group that cannot be decoded on its own.
    fn corrupt(&self, err: &parquet::errors::ParquetError) -> DataError {
        let group = self.group;
        let schema = self.metadata.metadata().file_metadata().schema_descr();
        for (index, field) in self.metadata.schema().fields().iter().enumerate() {
            if self.cancel.is_cancelled() {
                return DataError::Cancelled;
            }
            let decodes = ParquetRecordBatchReaderBuilder::new_with_metadata(
                self.input.clone(),
                self.metadata.clone(),
            )
            .with_row_groups(vec![group])
            .with_projection(ProjectionMask::roots(schema, [index]))
            .with_batch_size(self.batch_rows)
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
}

/// Bytes a decoded column takes once normalised: views expanded to offsets and values.
fn expanded_size(column: &ArrayRef) -> u64 {
    fn view_bytes(views: &[u128], valid: impl Fn(usize) -> bool) -> u64 {
        let values: u64 = views
            .iter()
            .enumerate()
            .filter(|(i, _)| valid(*i))
            .map(|(_, view)| u64::from(*view as u32))
            .sum();
        values + 4 * (views.len() as u64 + 1)
    }
    match column.data_type() {
        DataType::Utf8View => {
            let array = column.as_string_view();
            view_bytes(array.views(), |i| array.is_valid(i))
        }
        DataType::BinaryView => {
            let array = column.as_binary_view();
            view_bytes(array.views(), |i| array.is_valid(i))
        }
        _ => column.to_data().get_slice_memory_size().map_or_else(
            |_| column.get_array_memory_size() as u64,
            |size| size as u64,
        ),
    }
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
