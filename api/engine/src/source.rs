//! Shared Parquet plumbing: a cloneable input, the output writer settings and error mapping.

use std::io::Write;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::ColumnPath;

use super::{DataError, Result};

/// Rows per output row group.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per decoded batch.
pub(crate) const BATCH_ROWS: usize = 64 * 1024;

/// A [`ChunkReader`] that can be opened several times (one reader per row group, two passes).
pub(crate) struct Shared<R>(Arc<R>);

impl<R> Shared<R> {
    pub(crate) fn new(inner: R) -> Self {
        Shared(Arc::new(inner))
    }
}

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<R: ChunkReader> Length for Shared<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for Shared<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// ZSTD level 3, row groups of [`ROW_GROUP_ROWS`] rows; no dictionary for the columns
/// named (unique values such as pseudonyms, where it would be built and thrown away).
pub(crate) fn writer_properties(no_dictionary: &[&str]) -> WriterProperties {
    let level = ZstdLevel::try_new(3).unwrap_or_default();
    let mut builder = WriterProperties::builder();
    for name in no_dictionary {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    builder
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_write_page_header_statistics(false)
        .build()
}

/// Output writer with the engine's settings.
pub(crate) fn writer<W: Write + Send>(
    out: W,
    schema: SchemaRef,
    no_dictionary: &[&str],
) -> Result<ArrowWriter<W>> {
    ArrowWriter::try_new(out, schema, Some(writer_properties(no_dictionary)))
        .map_err(|e| DataError::internal("creating the Parquet writer", e))
}

/// A failure while writing the output: the sink is at fault (disk full, closed pipe) unless
/// the parquet crate says otherwise.
pub(crate) fn write_error(err: ParquetError) -> DataError {
    match err {
        ParquetError::External(e) => DataError::Io(format!("writing Parquet output: {e}")),
        other => DataError::internal("writing Parquet output", other),
    }
}

/// A failure while reading a Parquet input, said in words a data team can act on.
pub(crate) fn read_error(err: &ParquetError) -> String {
    let text = err.to_string();
    if text.contains("Disabled feature at compile time") {
        format!("{text} (supported compressions: uncompressed, snappy, zstd; re-export the file)")
    } else {
        text
    }
}
