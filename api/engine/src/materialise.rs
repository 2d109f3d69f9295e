//! A grant's view: projection, row filter, recipe and k-anonymity suppression, streamed
//! from the dataset's Parquet file into a new one.
//!
//! Only the columns needed are read (projection ∪ filter columns ∪ quasi-identifiers), one
//! batch at a time, on the calling thread; memory is bounded by a row group. With
//! `recipe.suppress` and `recipe.k` there are two passes: the first counts the classes, the
//! second writes only the rows of classes of at least `k` rows.

use std::collections::BTreeSet;
use std::io::Write;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, SchemaRef};
use arrow_select::filter::filter_record_batch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowFilter as ParquetRowFilter,
};
use parquet::file::reader::ChunkReader;

use super::anonymise::{Pseudonymiser, apply_rule, output_field};
use super::kanon::{ClassCounter, KAnonymityReport};
use super::recipe::ColumnRule;
use super::source::{BATCH_ROWS, Shared, read_error, write_error, writer};
use super::view::{ViewReport, ViewSpec};
use super::{DataError, Result, RowFilter};

/// Everything both passes share.
struct Plan<'a, R> {
    spec: &'a ViewSpec,
    input: Shared<R>,
    metadata: ArrowReaderMetadata,
    output: SchemaRef,
    pseudonymiser: Pseudonymiser,
    /// Types of the class keys (raw for kept or pseudonymised columns, else generalised).
    key_types: Vec<DataType>,
}

impl<'a, R: ChunkReader + 'static> Plan<'a, R> {
    fn open(input: R, spec: &'a ViewSpec) -> Result<Self> {
        let input = Shared::new(input);
        let metadata =
            ArrowReaderMetadata::load(&input, ArrowReaderOptions::new()).map_err(|e| {
                DataError::InvalidParquet(format!("dataset footer: {}", read_error(&e)))
            })?;
        let schema = metadata.schema().clone();
        let output = spec.output_schema(&schema)?;
        let key_types = spec
            .recipe
            .quasi_identifiers
            .iter()
            .map(|qi| {
                let field = schema
                    .field_with_name(qi)
                    .map_err(|e| DataError::internal("QI", e))?;
                Ok(match spec.recipe.rule(qi) {
                    ColumnRule::Generalise(_) => output_field(field, spec.recipe.rule(qi))
                        .map(|f| f.data_type().clone())
                        .unwrap_or(DataType::Null),
                    _ => field.data_type().clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Plan {
            spec,
            input,
            metadata,
            output,
            pseudonymiser: Pseudonymiser::new(&spec.key),
            key_types,
        })
    }

    /// Batches of the filtered rows with the named columns (plus the filter's).
    fn read(&self, columns: &BTreeSet<&str>) -> Result<FilteredBatches> {
        let schema = self.metadata.schema();
        let descr = self.metadata.metadata().file_metadata().schema_descr();
        let mask = |names: &BTreeSet<&str>| {
            let indices = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| names.contains(f.name().as_str()))
                .map(|(i, _)| i);
            ProjectionMask::roots(descr, indices)
        };
        let filter_columns = self
            .spec
            .filter
            .as_ref()
            .map(RowFilter::columns)
            .unwrap_or_default();
        let mut filter_names: BTreeSet<&str> = filter_columns.iter().map(String::as_str).collect();
        if filter_names.is_empty() {
            // A constant filter (TRUE, NULL = 1, …) still reads one column to count rows.
            filter_names.extend(schema.fields().iter().take(1).map(|f| f.name().as_str()));
        }
        // Rows are counted through a column: never read zero columns.
        let mut wanted = columns.clone();
        if wanted.is_empty() {
            wanted.extend(&filter_names);
        }
        if wanted.is_empty() {
            wanted.extend(schema.fields().iter().take(1).map(|f| f.name().as_str()));
        }
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.input.clone(),
            self.metadata.clone(),
        )
        .with_projection(mask(&wanted))
        .with_batch_size(BATCH_ROWS);
        if let Some(filter) = &self.spec.filter {
            // Pushed down: the filter's columns are decoded first, the others only for the
            // rows that pass.
            let filter = filter.clone();
            let predicate = ArrowPredicateFn::new(mask(&filter_names), move |batch| {
                filter
                    .evaluate(&batch)
                    .map_err(|e| ArrowError::ComputeError(e.to_string()))
            });
            builder = builder.with_row_filter(ParquetRowFilter::new(vec![Box::new(predicate)]));
        }
        let reader = builder
            .build()
            .map_err(|e| DataError::InvalidParquet(read_error(&e)))?;
        let rows_in = self.metadata.metadata().file_metadata().num_rows();
        Ok(FilteredBatches {
            reader,
            rows_in: u64::try_from(rows_in).unwrap_or(0),
            rows_matched: 0,
        })
    }

    /// Class-key columns of a filtered batch.
    fn keys(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.spec
            .recipe
            .quasi_identifiers
            .iter()
            .map(|qi| {
                let array = column(batch, qi)?;
                match self.spec.recipe.rule(qi) {
                    rule @ ColumnRule::Generalise(_) => {
                        apply_rule(qi, array, rule, &self.pseudonymiser)?
                            .ok_or_else(|| DataError::internal("QI", "dropped"))
                    }
                    _ => Ok(array.clone()),
                }
            })
            .collect()
    }

    /// Pass 1: class sizes over the filtered, generalised rows.
    fn count(&self) -> Result<(ClassCounter, u64, u64)> {
        let qis: BTreeSet<&str> = self
            .spec
            .recipe
            .quasi_identifiers
            .iter()
            .map(String::as_str)
            .collect();
        let mut counter = ClassCounter::new(&self.key_types)?;
        let mut batches = self.read(&qis)?;
        while let Some(batch) = batches.next_batch()? {
            counter.add(&self.keys(&batch)?, batch.num_rows())?;
        }
        Ok((counter, batches.rows_in, batches.rows_matched))
    }

    /// The view's columns of a filtered batch.
    fn project(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let mut columns = Vec::with_capacity(self.output.fields().len());
        for name in &self.spec.columns {
            let array = column(batch, name)?;
            columns.extend(apply_rule(
                name,
                array,
                self.spec.recipe.rule(name),
                &self.pseudonymiser,
            )?);
        }
        Ok(columns)
    }
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        DataError::internal("reading the dataset", format!("column {name} was not read"))
    })
}

/// Filtered batches, counting rows.
struct FilteredBatches {
    reader: ParquetRecordBatchReader,
    rows_in: u64,
    rows_matched: u64,
}

impl FilteredBatches {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        for batch in self.reader.by_ref() {
            let batch = batch.map_err(|e| DataError::InvalidParquet(format!("dataset: {e}")))?;
            self.rows_matched += batch.num_rows() as u64;
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

/// Write the view of the dataset in `input` to `out` (ZSTD Parquet).
pub fn materialise<R: ChunkReader + 'static, W: Write + Send>(
    input: R,
    spec: &ViewSpec,
    out: W,
) -> Result<ViewReport> {
    let plan = Plan::open(input, spec)?;
    let recipe = &spec.recipe;
    let suppress_k = recipe.k.filter(|_| recipe.suppress);
    let pass1 = match suppress_k {
        Some(_) => Some(plan.count()?),
        None => None,
    };
    let needed: BTreeSet<&str> = spec
        .columns
        .iter()
        .chain(&recipe.quasi_identifiers)
        .map(String::as_str)
        .collect();
    let mut counter = ClassCounter::new(&plan.key_types)?;
    let pseudonymised: Vec<&str> = spec
        .columns
        .iter()
        .filter(|c| matches!(recipe.rule(c), ColumnRule::Pseudonymise))
        .map(String::as_str)
        .collect();
    let mut writer = writer(out, plan.output.clone(), &pseudonymised)?;
    let mut batches = plan.read(&needed)?;
    let mut rows_out = 0u64;
    while let Some(batch) = batches.next_batch()? {
        let keys = plan.keys(&batch)?;
        let batch = match (&pass1, suppress_k) {
            (Some((classes, _, _)), Some(k)) => {
                let keep = classes.keep(&keys, batch.num_rows(), k)?;
                if keep.true_count() == batch.num_rows() {
                    batch
                } else {
                    filter_record_batch(&batch, &keep)
                        .map_err(|e| DataError::internal("suppressing rows", e))?
                }
            }
            _ => {
                counter.add(&keys, batch.num_rows())?;
                batch
            }
        };
        if batch.num_rows() == 0 {
            continue;
        }
        let view = RecordBatch::try_new(plan.output.clone(), plan.project(&batch)?)
            .map_err(|e| DataError::internal("building the view batch", e))?;
        rows_out += view.num_rows() as u64;
        writer.write(&view).map_err(write_error)?;
    }
    writer.close().map_err(write_error)?;
    let kanon = match &pass1 {
        Some((classes, _, _)) => classes.report(&recipe.quasi_identifiers, recipe.k, true),
        None => counter.report(&recipe.quasi_identifiers, recipe.k, false),
    };
    Ok(ViewReport {
        rows_in: batches.rows_in,
        rows_matched: batches.rows_matched,
        rows_out,
        schema: plan.output.clone(),
        kanon,
    })
}

/// Pass 1 only: the k-anonymity figures the view would have, to refuse a grant early
/// (see [`KAnonymityReport::ensure`]).
pub fn kanon_preview<R: ChunkReader + 'static>(
    input: R,
    spec: &ViewSpec,
) -> Result<KAnonymityReport> {
    let plan = Plan::open(input, spec)?;
    let (counter, _, _) = plan.count()?;
    let recipe = &spec.recipe;
    Ok(counter.report(&recipe.quasi_identifiers, recipe.k, recipe.suppress))
}

#[cfg(test)]
mod tests;
