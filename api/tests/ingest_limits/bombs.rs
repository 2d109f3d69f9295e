//! Parquet files that decode far larger than they are, written page by page: the parquet
//! crate's own writer would have to encode (hash, compare) every repeated value, which takes
//! minutes in a debug build. Shared by the HTTP tests (`tests/ingest_limits.rs`) and the
//! data engine's unit tests (both include it by path; each uses part of it).
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::SchemaDescriptor;

/// One required string column `payload` of `rows` rows, each the same `value_len`-byte
/// value through a one-entry dictionary: the dictionary page holds the value once, the data
/// page one RLE run of index 0, both Snappy-compressed. A 16 KiB value and a million rows
/// make a file of about 1 KB that decodes to 16 GiB.
pub fn dictionary_bomb(value_len: usize, rows: u32) -> Vec<u8> {
    let mut plain = u32::try_from(value_len)
        .expect("value length")
        .to_le_bytes()
        .to_vec();
    plain.resize(4 + value_len, b'x');
    let dictionary = Page::DictionaryPage {
        buf: snappy(&plain),
        num_values: 1,
        encoding: Encoding::PLAIN,
        is_sorted: false,
    };
    // RLE_DICTIONARY: the bit width (1), then one RLE run: varint(rows << 1), value 0.
    let mut indices = vec![1u8];
    let mut run = u64::from(rows) << 1;
    while run >= 0x80 {
        indices.push((run as u8) | 0x80);
        run >>= 7;
    }
    indices.push(run as u8);
    indices.push(0);
    let data = Page::DataPage {
        buf: snappy(&indices),
        num_values: rows,
        encoding: Encoding::RLE_DICTIONARY,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    };
    one_column_file(vec![(dictionary, plain.len()), (data, indices.len())], rows)
}

/// The same column, one row (`"x"`), in a data page whose header announces `announced`
/// uncompressed bytes: the decoder allocates (and, for Snappy, zeroes) what the header
/// announces before it finds that the page decompresses to 5 bytes.
pub fn page_bomb(announced: usize) -> Vec<u8> {
    let plain = [1, 0, 0, 0, b'x'];
    let data = Page::DataPage {
        buf: snappy(&plain),
        num_values: 1,
        encoding: Encoding::PLAIN,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    };
    one_column_file(vec![(data, announced)], 1)
}

fn snappy(bytes: &[u8]) -> Bytes {
    Bytes::from(
        snap::raw::Encoder::new()
            .compress_vec(bytes)
            .expect("snappy"),
    )
}

/// A file of one row group holding `pages` (each with its announced uncompressed size) as
/// its one column chunk.
fn one_column_file(pages: Vec<(Page, usize)>, rows: u32) -> Vec<u8> {
    let schema = Arc::new(
        parse_message_type("message bomb { required binary payload (STRING); }").expect("schema"),
    );
    let descr = SchemaDescriptor::new(schema.clone());
    let mut chunk = TrackedWrite::new(Vec::new());
    let mut dictionary_offset = None;
    let mut data_offset = None;
    let mut uncompressed = 0i64;
    {
        let mut writer = SerializedPageWriter::new(&mut chunk);
        for (page, announced) in pages {
            let is_dictionary = matches!(page, Page::DictionaryPage { .. });
            let spec = writer
                .write_page(CompressedPage::new(page, announced))
                .expect("page");
            let offset = i64::try_from(spec.offset).expect("offset");
            if is_dictionary {
                dictionary_offset = Some(offset);
            } else {
                data_offset.get_or_insert(offset);
            }
            uncompressed += i64::try_from(spec.uncompressed_size).expect("size");
        }
        writer.close().expect("close pages");
    }
    let bytes = chunk.into_inner().expect("chunk");
    let total = i64::try_from(bytes.len()).expect("size");
    let metadata = ColumnChunkMetaData::builder(descr.column(0))
        .set_compression(Compression::SNAPPY)
        .set_encodings(vec![
            Encoding::PLAIN,
            Encoding::RLE,
            Encoding::RLE_DICTIONARY,
        ])
        .set_num_values(i64::from(rows))
        .set_total_compressed_size(total)
        .set_total_uncompressed_size(uncompressed)
        .set_data_page_offset(data_offset.expect("a data page"))
        .set_dictionary_page_offset(dictionary_offset)
        .build()
        .expect("column metadata");
    let close = ColumnCloseResult {
        bytes_written: total as u64,
        rows_written: u64::from(rows),
        metadata,
        bloom_filter: None,
        column_index: None,
        offset_index: None,
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut file = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props)).expect("writer");
    let mut group = file.next_row_group().expect("row group");
    group
        .append_column(&Bytes::from(bytes), close)
        .expect("append the column chunk");
    group.close().expect("close the row group");
    file.into_inner().expect("footer")
}
