//! CSV reading: header, type inference (arrow-csv), then every value parsed with the
//! final schema; errors name the line (1-based, header included) and the column.
//!
//! Empty fields are nulls. A record whose quoted field spans several lines counts from the
//! line it starts on.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_csv::reader::Format;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{CsvOptions, IngestLimits, IngestReport, check_column_names, finish};
use crate::data::source::{BATCH_ROWS, write_error, writer};
use crate::data::{DataError, Result, type_name};

/// Counts quote characters so that an unclosed quote is found at the end of the file.
struct QuoteCounter<R> {
    inner: R,
    quotes: Rc<Cell<u64>>,
}

impl<R: Read> Read for QuoteCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let quotes = buf[..n].iter().filter(|b| **b == b'"').count() as u64;
        self.quotes.set(self.quotes.get() + quotes);
        Ok(n)
    }
}

/// Read a CSV upload, check every value and store it as Parquet.
pub fn ingest_csv<R: Read, W: Write + Send>(
    input: R,
    options: &CsvOptions,
    out: W,
    limits: &IngestLimits,
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
    let quotes = Rc::new(Cell::new(0));
    let counted = QuoteCounter {
        inner: input,
        quotes: quotes.clone(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(counted);
    let mut lines = Lines::default();

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

    // Sample for inference.
    let mut sample: Vec<(u64, csv::StringRecord)> = Vec::new();
    if !options.header {
        sample.push((lines.last, first));
    }
    let mut record = csv::StringRecord::new();
    while sample.len() < options.infer_rows.max(1)
        && lines.next(&mut reader, &mut record, &names)?
    {
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
    let mut push = |line: u64, record: &csv::StringRecord, batch: &mut BatchBuilder| {
        rows += 1;
        if rows > limits.max_rows {
            return Err(DataError::TooLarge(format!(
                "more than {} rows (line {line})",
                limits.max_rows
            )));
        }
        batch.push(line, record);
        if batch.lines.len() >= BATCH_ROWS {
            out.write(&batch.finish(&schema)?).map_err(write_error)?;
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
    if quotes.get() % 2 == 1 {
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

/// Reads records, tracks line numbers and checks the number of fields.
#[derive(Default)]
struct Lines {
    /// Line on which the last record starts.
    last: u64,
    /// First record with a field spanning several lines, and that field's column.
    multiline: Option<(u64, String)>,
}

impl Lines {
    fn next<R: Read>(
        &mut self,
        reader: &mut csv::Reader<R>,
        record: &mut csv::StringRecord,
        names: &[String],
    ) -> Result<bool> {
        let more = reader
            .read_record(record)
            .map_err(|e| csv_error(e, names))?;
        if !more {
            return Ok(false);
        }
        self.last = record.position().map(|p| p.line()).unwrap_or(0);
        if self.multiline.is_none()
            && let Some(i) = record.iter().position(|f| f.contains('\n'))
        {
            let column = names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column_{}", i + 1));
            self.multiline = Some((self.last, column));
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
}

fn csv_error(err: csv::Error, names: &[String]) -> DataError {
    match err.into_kind() {
        csv::ErrorKind::Io(e) => DataError::Io(format!("reading the CSV upload: {e}")),
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
        }
    }

    fn push(&mut self, line: u64, record: &csv::StringRecord) {
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
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| DataError::internal("building a CSV batch", e))
    }
}
