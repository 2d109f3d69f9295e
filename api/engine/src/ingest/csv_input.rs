//! CSV reading: header, type inference (arrow-csv), then every value parsed with the
//! final schema; errors name the line (1-based, header included) and the column.
//!
//! Empty fields are nulls. A record whose quoted field spans several lines counts from the
//! line it starts on. Fields and records have a size cap ([`IngestLimits`]), enforced
//! while the record is read (it is never buffered past its cap); the inference sample and
//! each batch of text are bounded in bytes as well as in rows.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_csv::reader::Format;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{Cancel, CsvOptions, IngestLimits, IngestReport, bytes, check_column_names, finish};
use crate::source::{BATCH_ROWS, write_error, writer};
use crate::{DataError, Result, type_name};

/// Bytes the CSV reader buffers ahead of the record it parses (its own buffer, 8 KiB, and
/// some margin): a record is refused once this much more than its cap was read into it.
const READ_AHEAD: u64 = 64 * 1024;

/// What the input wrapper and the record reader share.
#[derive(Default)]
struct ReadState {
    /// Quote characters read, so that an unclosed quote is found at the end of the file.
    quotes: Cell<u64>,
    /// Bytes read from the input.
    read: Cell<u64>,
    /// Byte offset and line where the record being read starts.
    record_start: Cell<u64>,
    record_line: Cell<u64>,
}

/// Why the input wrapper stopped the CSV reader (carried in an `io::Error`).
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("cancelled")]
    Cancelled,
    #[error("record too long")]
    RecordTooLong,
}

/// Counts quotes and bytes, stops a record that grows past its cap before the CSV reader
/// buffers it, and stops everything once cancelled.
struct Guard<'a, R> {
    inner: R,
    state: Rc<ReadState>,
    record_cap: u64,
    cancel: &'a Cancel,
}

impl<R: Read> Read for Guard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::other(Stop::Cancelled));
        }
        let state = &self.state;
        if state.read.get().saturating_sub(state.record_start.get()) > self.record_cap {
            return Err(std::io::Error::other(Stop::RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        let quotes = buf[..n].iter().filter(|b| **b == b'"').count() as u64;
        state.quotes.set(state.quotes.get() + quotes);
        state.read.set(state.read.get() + n as u64);
        Ok(n)
    }
}

/// Read a CSV upload, check every value and store it as Parquet, holding about
/// `limits.max_memory` at most; `cancel` stops it between reads and batches.
pub fn ingest_csv<R: Read, W: Write + Send>(
    input: R,
    options: &CsvOptions,
    out: W,
    limits: &IngestLimits,
    cancel: &Cancel,
) -> Result<IngestReport> {
    let delimiter = match u8::try_from(options.delimiter) {
        Ok(d) if d.is_ascii() && !matches!(d, b'"' | b'\n' | b'\r') => d,
        _ => {
            return Err(DataError::InvalidCsv(format!(
                "delimiter {:?} must be one ASCII character other than a quote or a line break",
                options.delimiter
            )));
        }
    };
    let state = Rc::new(ReadState::default());
    state.record_line.set(1);
    let guarded = Guard {
        inner: input,
        state: state.clone(),
        record_cap: limits.max_record_bytes.saturating_add(READ_AHEAD),
        cancel,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(guarded);
    let mut lines = Lines {
        last: 0,
        multiline: None,
        state: state.clone(),
        limits,
    };

    // Header, or the first record that gives the number of columns.
    let mut first = csv::StringRecord::new();
    if !lines.next(&mut reader, &mut first, &[])? {
        return Err(DataError::InvalidCsv("empty file: no header line".into()));
    }
    let names: Vec<String> = if options.header {
        first.iter().map(str::to_string).collect()
    } else {
        (1..=first.len()).map(|i| format!("column_{i}")).collect()
    };
    check_column_names(names.iter().map(String::as_str), limits.max_columns)?;
    for declared in options.column_types.keys() {
        if !names.contains(declared) {
            return Err(DataError::InvalidCsv(format!(
                "a type is declared for column \"{declared}\", which is not in the file"
            )));
        }
    }

    // Sample for inference, at most an eighth of the memory budget (it is copied once more
    // to infer).
    let sample_budget = limits.batch_bytes() / 2;
    let mut sample: Vec<(u64, csv::StringRecord)> = Vec::new();
    let mut sampled = 0u64;
    if !options.header {
        sampled += first.as_slice().len() as u64;
        sample.push((lines.last, first));
    }
    let mut record = csv::StringRecord::new();
    while sample.len() < options.infer_rows.max(1)
        && sampled < sample_budget
        && lines.next(&mut reader, &mut record, &names)?
    {
        sampled += record.as_slice().len() as u64 + 16 * names.len() as u64;
        sample.push((lines.last, record.clone()));
    }
    if sample.is_empty() {
        return Err(DataError::InvalidCsv(
            "empty file: the header has no data rows below it".into(),
        ));
    }
    let schema = infer(&names, &sample, delimiter, options)?;

    let mut out = writer(out, schema.clone(), &[])?;
    let mut batch = BatchBuilder::new(&schema);
    let mut rows = 0u64;
    // Text and parsed values of a batch stay within a quarter of the memory budget.
    let batch_budget = limits.batch_bytes() / 2;
    let mut push = |line: u64, record: &csv::StringRecord, batch: &mut BatchBuilder| {
        rows += 1;
        if rows > limits.max_rows {
            return Err(DataError::TooLarge(format!(
                "more than {} rows (line {line})",
                limits.max_rows
            )));
        }
        batch.push(line, record);
        if batch.lines.len() >= BATCH_ROWS || batch.bytes >= batch_budget {
            cancel.check()?;
            out.write(&batch.finish(&schema)?).map_err(write_error)?;
            if out.in_progress_size() as u64 > limits.batch_bytes() {
                out.flush().map_err(write_error)?;
            }
        }
        Ok(())
    };
    for (line, record) in &sample {
        push(*line, record, &mut batch)?;
    }
    drop(sample);
    while lines.next(&mut reader, &mut record, &names)? {
        push(lines.last, &record, &mut batch)?;
    }
    if state.quotes.get() % 2 == 1 {
        let end = reader.position().line();
        return Err(DataError::InvalidCsv(match lines.multiline {
            Some((line, column)) => format!(
                "line {line}, column \"{column}\": a quote opened here is never closed (the field runs to line {end})"
            ),
            None => "the file has an odd number of quote characters; a quote is not closed or a stray '\"' sits inside a field".into(),
        }));
    }
    if !batch.lines.is_empty() {
        out.write(&batch.finish(&schema)?).map_err(write_error)?;
    }
    finish(out, schema, rows)
}

/// Reads records, tracks line numbers and checks the number and size of fields.
struct Lines<'a> {
    /// Line on which the last record starts.
    last: u64,
    /// First record with a field spanning several lines, and that field's column.
    multiline: Option<(u64, String)>,
    state: Rc<ReadState>,
    limits: &'a IngestLimits,
}

impl Lines<'_> {
    fn next<R: Read>(
        &mut self,
        reader: &mut csv::Reader<R>,
        record: &mut csv::StringRecord,
        names: &[String],
    ) -> Result<bool> {
        let read = reader.read_record(record);
        let end = reader.position();
        let line = self.state.record_line.replace(end.line());
        self.state.record_start.set(end.byte());
        let more = read.map_err(|e| self.csv_error(e, names, line))?;
        if !more {
            return Ok(false);
        }
        self.last = record.position().map(|p| p.line()).unwrap_or(0);
        let column_name = |i: usize| {
            names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column_{}", i + 1))
        };
        let caps = self.limits;
        if let Some((i, field)) = record
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() as u64 > caps.max_field_bytes)
        {
            return Err(DataError::TooLarge(format!(
                "line {}, column \"{}\": a field of {}, more than the {} a field may hold \
                 (--max-csv-field)",
                self.last,
                column_name(i),
                bytes(field.len() as u64),
                bytes(caps.max_field_bytes),
            )));
        }
        if record.as_slice().len() as u64 > caps.max_record_bytes {
            return Err(self.record_too_long(self.last));
        }
        if self.multiline.is_none()
            && let Some(i) = record.iter().position(|f| f.contains('\n'))
        {
            self.multiline = Some((self.last, column_name(i)));
        }
        if !names.is_empty() && record.len() != names.len() {
            let hint = if self
                .multiline
                .as_ref()
                .is_some_and(|(l, _)| *l == self.last)
            {
                "; a quote opened on this line may not be closed"
            } else {
                ""
            };
            return Err(DataError::InvalidCsv(format!(
                "line {}: expected {} fields, found {}{hint}",
                self.last,
                names.len(),
                record.len()
            )));
        }
        Ok(true)
    }

    fn record_too_long(&self, line: u64) -> DataError {
        DataError::TooLarge(format!(
            "line {line}: a record longer than the {} a record may hold (--max-csv-record)",
            bytes(self.limits.max_record_bytes),
        ))
    }

    /// `line`: where the record being read starts.
    fn csv_error(&self, err: csv::Error, names: &[String], line: u64) -> DataError {
        match err.into_kind() {
            csv::ErrorKind::Io(e) => match e.get_ref().and_then(|e| e.downcast_ref::<Stop>()) {
                Some(Stop::Cancelled) => DataError::Cancelled,
                Some(Stop::RecordTooLong) => self.record_too_long(line),
                None => DataError::Io(format!("reading the CSV upload: {e}")),
            },
            csv::ErrorKind::Utf8 { pos, err } => {
                let line = pos.map(|p| p.line()).unwrap_or(0);
                let column = names
                    .get(err.field())
                    .cloned()
                    .unwrap_or_else(|| format!("column_{}", err.field() + 1));
                DataError::InvalidCsv(format!(
                    "line {line}, column \"{column}\": the text is not valid UTF-8 (save the file as UTF-8)"
                ))
            }
            other => DataError::InvalidCsv(format!("{other:?}")),
        }
    }
}

/// Arrow-csv inference over the sample (re-serialised), declared types on top. Columns with
/// no value in the sample are strings.
fn infer(
    names: &[String],
    sample: &[(u64, csv::StringRecord)],
    delimiter: u8,
    options: &CsvOptions,
) -> Result<SchemaRef> {
    let mut text = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    let written = text
        .write_record(names)
        .and_then(|()| sample.iter().try_for_each(|(_, r)| text.write_record(r)));
    written.map_err(|e| DataError::internal("re-serialising the inference sample", e))?;
    let text = text
        .into_inner()
        .map_err(|e| DataError::internal("re-serialising the inference sample", e))?;
    let (inferred, _) = Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(text.as_slice(), None)
        .map_err(|e| DataError::internal("inferring CSV types", e))?;
    let fields: Vec<Field> = names
        .iter()
        .zip(inferred.fields())
        .map(|(name, f)| {
            let data_type = match options.column_types.get(name) {
                Some(declared) => declared.data_type(),
                None if *f.data_type() == DataType::Null => DataType::Utf8,
                None => f.data_type().clone(),
            };
            Field::new(name, data_type, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// One batch of raw text, parsed to the schema's types on [`BatchBuilder::finish`].
struct BatchBuilder {
    columns: Vec<StringBuilder>,
    lines: Vec<u64>,
    /// Text held, plus room for each value parsed (8 bytes) and its offset (4).
    bytes: u64,
}

impl BatchBuilder {
    fn new(schema: &Schema) -> Self {
        BatchBuilder {
            columns: schema
                .fields()
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            lines: Vec::with_capacity(BATCH_ROWS),
            bytes: 0,
        }
    }

    fn push(&mut self, line: u64, record: &csv::StringRecord) {
        self.bytes += record.as_slice().len() as u64 + 12 * self.columns.len() as u64;
        for (column, value) in self.columns.iter_mut().zip(record.iter()) {
            if value.is_empty() {
                column.append_null();
            } else {
                column.append_value(value);
            }
        }
        self.lines.push(line);
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let options = CastOptions::default();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (column, field) in self.columns.iter_mut().zip(schema.fields()) {
            let text: StringArray = column.finish();
            if *field.data_type() == DataType::Utf8 {
                arrays.push(Arc::new(text));
                continue;
            }
            let parsed = cast_with_options(&text, field.data_type(), &options)
                .map_err(|e| DataError::internal("parsing CSV values", e))?;
            if parsed.null_count() != text.null_count() {
                let bad = (0..text.len()).find(|&i| text.is_valid(i) && parsed.is_null(i));
                if let Some(i) = bad {
                    let mut value: String = text.value(i).chars().take(64).collect();
                    if value.len() < text.value(i).len() {
                        value.push('…');
                    }
                    return Err(DataError::InvalidCsv(format!(
                        "line {}, column \"{}\": expected {}, got {value:?}",
                        self.lines.get(i).copied().unwrap_or(0),
                        field.name(),
                        type_name(field.data_type()),
                    )));
                }
            }
            arrays.push(parsed);
        }
        self.lines.clear();
        self.bytes = 0;
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| DataError::internal("building a CSV batch", e))
    }
}
