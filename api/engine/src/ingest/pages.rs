//! Page headers of a Parquet column chunk, read before any page is decompressed.
//!
//! The parquet crate decompresses each page whole into a buffer of the size its header
//! announces, and decodes one page per column at a time: a page of a few bytes may announce
//! (and, decompressed, fill) a gigabyte. The footer's sizes cannot be trusted for this — the
//! reader never compares them with the pages — so the page headers themselves (Thrift
//! compact protocol, a few dozen bytes each) are walked the way the reader walks them, and
//! sized, before decoding.

use std::io::Read;

use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;

/// Thrift `PageType` values.
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;
const DATA_PAGE_V2: i32 = 3;
/// Thrift `Encoding::DELTA_BYTE_ARRAY`: each value is a prefix of the previous one plus a
/// suffix, so values are rebuilt (copied) when decoded, and each may be as long as its page.
const DELTA_BYTE_ARRAY: i32 = 7;
/// Nesting the page header never needs (statistics are the deepest, at two levels).
const MAX_DEPTH: u32 = 16;

/// What decoding one column chunk holds at once, from its page headers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ChunkPages {
    /// Largest uncompressed data page (the decoder holds one at a time).
    pub largest_page: u64,
    /// Uncompressed dictionary page, 0 without one (held for the whole chunk).
    pub dictionary: u64,
    /// A data page is DELTA_BYTE_ARRAY-encoded: its values are rebuilt in memory.
    pub rebuilt_values: bool,
}

/// The byte range of a column chunk, from its footer entry, checked (the parquet crate
/// asserts rather than checks).
pub(crate) fn chunk_range(column: &ColumnChunkMetaData) -> Result<(u64, u64), String> {
    let start = column
        .dictionary_page_offset()
        .unwrap_or_else(|| column.data_page_offset());
    match (
        u64::try_from(start),
        u64::try_from(column.compressed_size()),
    ) {
        (Ok(start), Ok(length)) => Ok((start, length)),
        _ => Err(format!(
            "the footer gives a negative position ({start}) or size ({}) for the column chunk",
            column.compressed_size()
        )),
    }
}

/// Walk the pages of the chunk at `start..start + length` as the reader will, reading only
/// their headers.
pub(crate) fn scan<R: ChunkReader>(
    input: &R,
    start: u64,
    length: u64,
) -> Result<ChunkPages, String> {
    let mut pages = ChunkPages::default();
    let mut offset = start;
    let mut remaining = length;
    while remaining > 0 {
        let read = input
            .get_read(offset)
            .map_err(|e| format!("cannot read the page at byte {offset}: {e}"))?;
        let mut thrift = Compact::new(read.take(remaining));
        let header = thrift
            .page_header()
            .map_err(|e| format!("unreadable page header at byte {offset}: {e}"))?;
        let header_len = thrift.consumed;
        let (Ok(compressed), Ok(uncompressed)) = (
            u64::try_from(header.compressed),
            u64::try_from(header.uncompressed),
        ) else {
            return Err(format!(
                "the page at byte {offset} has a negative size in its header"
            ));
        };
        let Some(left) = remaining
            .checked_sub(header_len)
            .and_then(|r| r.checked_sub(compressed))
        else {
            return Err(format!(
                "the page at byte {offset} runs past the end of its column chunk"
            ));
        };
        match header.page_type {
            DATA_PAGE | DATA_PAGE_V2 => {
                pages.largest_page = pages.largest_page.max(uncompressed);
                pages.rebuilt_values |= header.encoding == Some(DELTA_BYTE_ARRAY);
            }
            DICTIONARY_PAGE => pages.dictionary = pages.dictionary.max(uncompressed),
            _ => {}
        }
        offset += header_len + compressed;
        remaining = left;
    }
    Ok(pages)
}

/// The fields of a `PageHeader` that size it.
#[derive(Debug, Default)]
struct PageHeader {
    page_type: i32,
    uncompressed: i32,
    compressed: i32,
    /// Encoding of a data page's values.
    encoding: Option<i32>,
}

/// A reader of the Thrift compact protocol that keeps nothing but the fields asked for.
struct Compact<R> {
    inner: R,
    consumed: u64,
}

impl<R: Read> Compact<R> {
    fn new(inner: R) -> Self {
        Compact { inner, consumed: 0 }
    }

    fn byte(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| format!("truncated ({e})"))?;
        self.consumed += 1;
        Ok(b[0])
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        let skipped = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| e.to_string())?;
        self.consumed += skipped;
        if skipped == n {
            Ok(())
        } else {
            Err("truncated".into())
        }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn i32(&mut self) -> Result<i32, String> {
        let v = self.varint()?;
        let v = ((v >> 1) as i64) ^ -((v & 1) as i64);
        i32::try_from(v).map_err(|_| format!("{v} does not fit a 32-bit field"))
    }

    /// The next field's id and type, `None` at the end of the struct.
    fn field(&mut self, last_id: &mut i64) -> Result<Option<(i64, u8)>, String> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let delta = i64::from(b >> 4);
        let id = if delta == 0 {
            i64::from(self.i32()?)
        } else {
            *last_id + delta
        };
        *last_id = id;
        Ok(Some((id, b & 0x0f)))
    }

    fn skip(&mut self, ty: u8, in_collection: bool, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match ty {
            // Booleans: in the field header, or one byte in a collection.
            1 | 2 if !in_collection => Ok(()),
            1..=3 => self.byte().map(drop),
            4..=6 => self.varint().map(drop),
            7 => self.skip_bytes(8),
            8 => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            9 | 10 => {
                let header = self.byte()?;
                let size = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                for _ in 0..size {
                    self.skip(header & 0x0f, true, depth + 1)?;
                }
                Ok(())
            }
            11 => {
                let size = self.varint()?;
                if size > 0 {
                    let types = self.byte()?;
                    for _ in 0..size {
                        self.skip(types >> 4, true, depth + 1)?;
                        self.skip(types & 0x0f, true, depth + 1)?;
                    }
                }
                Ok(())
            }
            12 => self.skip_struct(depth + 1),
            13 => self.skip_bytes(16),
            other => Err(format!("unknown Thrift type {other}")),
        }
    }

    fn skip_struct(&mut self, depth: u32) -> Result<(), String> {
        let mut last = 0;
        while let Some((_, ty)) = self.field(&mut last)? {
            self.skip(ty, false, depth)?;
        }
        Ok(())
    }

    /// `encoding` of a `DataPageHeader` (field 2) or `DataPageHeaderV2` (field 4).
    fn encoding_of(&mut self, field: i64) -> Result<Option<i32>, String> {
        let mut last = 0;
        let mut encoding = None;
        while let Some((id, ty)) = self.field(&mut last)? {
            if id == field && ty == 5 {
                encoding = Some(self.i32()?);
            } else {
                self.skip(ty, false, 1)?;
            }
        }
        Ok(encoding)
    }

    fn page_header(&mut self) -> Result<PageHeader, String> {
        let mut header = PageHeader::default();
        let mut seen = [false; 3];
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            match (id, ty) {
                (1..=3, 5) => {
                    let value = self.i32()?;
                    let slot = (id - 1) as usize;
                    seen[slot] = true;
                    match id {
                        1 => header.page_type = value,
                        2 => header.uncompressed = value,
                        _ => header.compressed = value,
                    }
                }
                (5, 12) => header.encoding = self.encoding_of(2)?,
                (8, 12) => header.encoding = self.encoding_of(4)?,
                _ => self.skip(ty, false, 0)?,
            }
        }
        if seen.iter().all(|s| *s) {
            Ok(header)
        } else {
            Err("type or sizes missing".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, Encoding};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::schema::types::ColumnPath;

    use super::{ChunkPages, chunk_range, scan};

    /// Each column chunk of a file written by the parquet crate (page statistics, several
    /// pages, a dictionary, a delta-encoded column), scanned.
    fn scanned(props: WriterProperties) -> (Bytes, Vec<ChunkPages>) {
        let rows = 50_000;
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let towns: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| ["Bobigny", "Pantin", "Montreuil"][i as usize % 3]),
        ));
        let notes: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("note {i} with a shared prefix")),
        ));
        let batch =
            RecordBatch::try_from_iter([("id", ids), ("town", towns), ("note", notes)]).unwrap();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let file = Bytes::from(out);
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let pages = reader
            .metadata()
            .row_group(0)
            .columns()
            .iter()
            .map(|c| {
                let (start, length) = chunk_range(c).unwrap();
                scan(&file, start, length).unwrap()
            })
            .collect();
        (file, pages)
    }

    #[test]
    fn pages_are_walked_as_the_reader_walks_them() {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(Default::default()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_size_limit(16 * 1024)
            .set_column_dictionary_enabled(ColumnPath::from("note"), false)
            .set_column_encoding(ColumnPath::from("note"), Encoding::DELTA_BYTE_ARRAY)
            .build();
        let (_, pages) = scanned(props);
        let [id, town, note] = pages.as_slice() else {
            panic!("{pages:?}")
        };
        // Pages of about 16 KiB (the limit is checked between mini-batches).
        for chunk in [id, town, note] {
            assert!((1..=64 * 1024).contains(&chunk.largest_page), "{chunk:?}");
        }
        assert!(id.dictionary > 0 && town.dictionary > 0, "{pages:?}");
        assert_eq!(note.dictionary, 0);
        assert!(note.rebuilt_values && !town.rebuilt_values && !id.rebuilt_values);
    }

    #[test]
    fn a_truncated_or_overrunning_chunk_is_an_error() {
        let (file, _) = scanned(WriterProperties::builder().build());
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let column = reader.metadata().row_group(0).column(1);
        let (start, length) = chunk_range(column).unwrap();
        // The chunk announced one byte short: its last page overruns it.
        let err = scan(&file, start, length - 1).unwrap_err();
        assert!(err.contains("runs past the end"), "{err}");
        // Headers cut off by the end of the file.
        let cut = file.slice(..usize::try_from(start).unwrap() + 3);
        let err = scan(&cut, start, length).unwrap_err();
        assert!(err.contains("unreadable page header"), "{err}");
    }
}
