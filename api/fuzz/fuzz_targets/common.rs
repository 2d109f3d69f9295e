//! The property both targets check on an `Ok` result: the output is readable Parquet whose
//! row count (decoded and in the footer) equals the report's, with the report's schema.

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serre_api::data::{DataError, IngestReport};

pub fn check(result: Result<IngestReport, DataError>, out: Vec<u8>) {
    let report = match result {
        Ok(report) => report,
        // Any DataError is an acceptable answer to a bad input; a panic is not.
        Err(_) => return,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(out))
        .expect("ingest returned Ok but its output has no readable Parquet footer");
    let footer_rows = builder.metadata().file_metadata().num_rows();
    assert_eq!(
        u64::try_from(footer_rows).ok(),
        Some(report.rows),
        "footer row count differs from the report"
    );
    assert_eq!(
        builder.metadata().num_row_groups() as u64,
        report.row_groups,
        "row group count differs from the report"
    );
    let schema = builder.schema().clone();
    assert_eq!(
        schema.fields().len(),
        report.schema.fields().len(),
        "column count differs from the report"
    );
    for (stored, reported) in schema.fields().iter().zip(report.schema.fields()) {
        assert_eq!(
            stored.name(),
            reported.name(),
            "column name differs from the report"
        );
        assert_eq!(
            stored.data_type(),
            reported.data_type(),
            "column type differs from the report"
        );
    }
    let reader = builder
        .build()
        .expect("ingest returned Ok but its output cannot be decoded");
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.expect("ingest returned Ok but a batch of its output cannot be decoded");
        rows += batch.num_rows() as u64;
    }
    assert_eq!(
        rows, report.rows,
        "decoded row count differs from the report"
    );
}
