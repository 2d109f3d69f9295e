//! Shared test helpers and the ingest tests.

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Parquet files built page by page (shared with the HTTP tests).
#[path = "../../../tests/ingest_limits/bombs.rs"]
mod bombs;
mod ingest;
mod ingest_limits;

/// A Parquet file as another tool would write it (row groups of 2000 rows).
pub(crate) fn parquet_of(
    batches: &[RecordBatch],
    compression: parquet::basic::Compression,
) -> Bytes {
    let mut out = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(2000))
        .build();
    let mut writer =
        ArrowWriter::try_new(&mut out, batches[0].schema(), Some(props)).expect("test writer");
    for batch in batches {
        writer.write(batch).expect("test write");
    }
    writer.close().expect("test close");
    Bytes::from(out)
}

/// Every row of a Parquet file, as one batch.
pub(crate) fn read_back(bytes: &[u8]) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(bytes))
        .expect("readable output")
        .build()
        .expect("reader");
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    arrow_select::concat::concat_batches(&schema, &batches).expect("concat")
}
