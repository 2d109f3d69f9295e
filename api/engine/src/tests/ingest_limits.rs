//! The ingest's memory, size and cancellation limits.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::bombs::{dictionary_bomb, page_bomb};
use super::read_back;
use crate::{Cancel, CsvOptions, DataError, IngestLimits, ingest_csv, ingest_parquet};

fn parquet(bytes: Vec<u8>, limits: &IngestLimits) -> Result<u64, DataError> {
    let mut out = Vec::new();
    ingest_parquet(Bytes::from(bytes), &mut out, limits, &Cancel::new()).map(|r| r.rows)
}

fn too_large(result: Result<u64, DataError>) -> String {
    match result {
        Err(e @ DataError::TooLarge(_)) => e.to_string(),
        other => panic!("expected too_large, got {other:?}"),
    }
}

#[test]
fn a_dictionary_bomb_is_refused_before_its_values_are_copied() {
    // One 16 KiB value repeated a million times: about 1 KB, 16 GiB decoded.
    let bomb = dictionary_bomb(16 * 1024, 1_000_000);
    assert!(bomb.len() < 4096, "{} bytes", bomb.len());
    let started = Instant::now();
    let message = too_large(parquet(bomb, &IngestLimits::default()));
    // The first batch is sized from its views, before any value is copied: no time to
    // expand 128 MiB, let alone 16 GiB.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for part in [
        "row group 0, rows 1–8192",
        "128.0 MiB",
        "column \"payload\"",
        "32.0 MiB",
        "--max-ingest-memory, 128.0 MiB",
        "1000000 rows",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

#[test]
fn repeated_values_within_the_batch_budget_are_accepted() {
    // 1 KiB × 8192 rows = 8 MiB a batch, under the 32 MiB of the default budget.
    let file = dictionary_bomb(1024, 20_000);
    let mut out = Vec::new();
    let report = ingest_parquet(
        Bytes::from(file),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )
    .expect("within the budget");
    assert_eq!(report.rows, 20_000);
    // Stored dictionary-encoded again: small.
    assert!(out.len() < 64 * 1024, "{} bytes", out.len());
}

#[test]
fn a_page_announcing_more_than_the_budget_is_refused_before_it_is_decompressed() {
    // The header announces 1 GiB; the decoder would allocate (and zero) it first.
    let message = too_large(parquet(page_bomb(1 << 30), &IngestLimits::default()));
    for part in [
        "row group 0",
        "1.0 GiB of pages at once",
        "column \"payload\"",
        "half of --max-ingest-memory",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

/// `rows` rows of `width`-byte distinct strings, plain-encoded and uncompressed, as
/// another tool may write them.
fn wide_rows(rows: usize, width: usize, encoding: Encoding) -> Vec<u8> {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
    let text: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("{i:08}{}", "w".repeat(width - 8))),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("text", text)]).expect("batch");
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_column_encoding(ColumnPath::from("text"), encoding)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    out
}

#[test]
fn wide_rows_the_footer_announces_are_decoded_in_smaller_batches() {
    // 2000 rows of 4 KiB: 8 MiB, twice the batch budget of a 16 MiB memory; the footer
    // announces the width, so batches are smaller rather than refused.
    let limits = IngestLimits {
        max_memory: 16 << 20,
        ..IngestLimits::default()
    };
    let mut out = Vec::new();
    let report = ingest_parquet(
        Bytes::from(wide_rows(2000, 4096, Encoding::PLAIN)),
        &mut out,
        &limits,
        &Cancel::new(),
    )
    .expect("wide but honest rows");
    assert_eq!(report.rows, 2000);
    let back = read_back(&out);
    assert_eq!(back.column(1).as_string::<i32>().value(1999).len(), 4096);
}

#[test]
fn shared_prefix_values_are_decoded_in_batches_their_pages_bound() {
    // DELTA_BYTE_ARRAY values are rebuilt while decoding, before a batch can be sized.
    let mut out = Vec::new();
    let report = ingest_parquet(
        Bytes::from(wide_rows(3000, 512, Encoding::DELTA_BYTE_ARRAY)),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )
    .expect("delta-encoded strings");
    assert_eq!(report.rows, 3000);
    let back = read_back(&out);
    assert!(
        back.column(1)
            .as_string::<i32>()
            .value(2999)
            .starts_with("00002999w")
    );
}

fn csv_err(input: impl Read, limits: &IngestLimits, cancel: &Cancel) -> DataError {
    let mut out = Vec::new();
    match ingest_csv(input, &CsvOptions::default(), &mut out, limits, cancel) {
        Ok(r) => panic!("expected an error, stored {} rows", r.rows),
        Err(e) => e,
    }
}

#[test]
fn a_giant_csv_field_is_refused_naming_its_line_and_column() {
    let mut text = b"id,text\n1,short\n2,".to_vec();
    text.resize(text.len() + (2 << 20), b'a');
    text.extend_from_slice(b"\n");
    let err = csv_err(text.as_slice(), &IngestLimits::default(), &Cancel::new());
    assert_eq!(err.category(), "too_large", "{err}");
    let message = err.to_string();
    for part in [
        "line 3, column \"text\"",
        "a field of 2.0 MiB",
        "the 1.0 MiB a field may hold",
        "--max-csv-field",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }

    // Many fields, each under the cap, past the record's cap.
    let limits = IngestLimits {
        max_field_bytes: 1024,
        max_record_bytes: 4096,
        ..IngestLimits::default()
    };
    let mut text = b"a,b,c,d,e\n1,2,3,4,5\n".to_vec();
    for _ in 0..5 {
        text.extend(std::iter::repeat_n(b'z', 1000));
        text.push(b',');
    }
    text.pop();
    text.push(b'\n');
    let err = csv_err(text.as_slice(), &limits, &Cancel::new());
    assert!(
        err.to_string()
            .contains("line 3: a record longer than the 4.0 KiB"),
        "{err}"
    );
}

#[test]
fn an_endless_csv_record_is_stopped_at_its_cap_not_buffered() {
    // A field that never ends: refused once the record passes its cap (plus the reader's
    // read-ahead), instead of growing until memory runs out.
    let endless = b"id,text\n1,".chain(std::io::repeat(b'a'));
    let err = csv_err(endless, &IngestLimits::default(), &Cancel::new());
    assert!(
        err.to_string()
            .contains("line 2: a record longer than the 4.0 MiB a record may hold"),
        "{err}"
    );
}

/// Endless CSV rows `1,2`.
struct EndlessRows {
    header: bool,
}

impl Read for EndlessRows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let pattern: &[u8] = if self.header { b"a,b\n" } else { b"1,2\n" };
        let n = if self.header { 4 } else { buf.len() / 4 * 4 };
        self.header = false;
        for chunk in buf[..n].chunks_mut(4) {
            chunk.copy_from_slice(pattern);
        }
        Ok(n)
    }
}

#[test]
fn a_cancelled_ingest_stops_promptly() {
    let cancel = Cancel::new();
    let stopper = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            cancel.cancel();
            Instant::now()
        })
    };
    let err = csv_err(
        EndlessRows { header: true },
        &IngestLimits::default(),
        &cancel,
    );
    let stopped = Instant::now();
    let cancelled_at = stopper.join().expect("stopper");
    assert!(matches!(err, DataError::Cancelled), "{err}");
    assert!(!err.is_client_error());
    assert!(
        stopped.duration_since(cancelled_at) < Duration::from_secs(5),
        "stopped {:?} after the flag",
        stopped.duration_since(cancelled_at)
    );

    // Parquet: checked before each row group and batch.
    let cancel = Cancel::new();
    cancel.cancel();
    let mut out = Vec::new();
    let err = ingest_parquet(
        Bytes::from(dictionary_bomb(16, 10)),
        &mut out,
        &IngestLimits::default(),
        &cancel,
    )
    .expect_err("cancelled");
    assert!(matches!(err, DataError::Cancelled), "{err}");
}
