use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int32Array, LargeStringArray, ListArray, RecordBatch,
};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;

use super::{parquet_of, read_back};
use crate::{
    Cancel, ColumnType, CsvOptions, DataError, IngestLimits, IngestReport, ingest_csv,
    ingest_parquet, schema_json,
};

fn csv(text: &str, options: &CsvOptions) -> Result<(IngestReport, Vec<u8>), DataError> {
    let mut out = Vec::new();
    let report = ingest_csv(
        text.as_bytes(),
        options,
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )?;
    Ok((report, out))
}

fn csv_err(text: &str, options: &CsvOptions) -> DataError {
    match csv(text, options) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e,
    }
}

#[test]
fn csv_types_are_inferred() {
    let text = "id,name,score,active,born,seen\n\
                1,Ana,1.5,true,2001-02-03,2024-01-01T10:00:00\n\
                2,,2,false,,\n";
    let (report, out) = csv(text, &CsvOptions::default()).expect("valid CSV");
    assert_eq!(report.rows, 2);
    assert_eq!(report.row_groups, 1);
    let types: Vec<String> = schema_json(&report.schema)
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["type"].as_str().expect("type").to_string())
        .collect();
    assert_eq!(
        types,
        ["int64", "string", "float64", "boolean", "date", "timestamp"]
    );

    let batch = read_back(&out);
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().values(),
        &[1, 2]
    );
    assert!(batch.column(1).is_null(1), "empty field is null");
    assert_eq!(batch.column(4).as_primitive::<Date32Type>().value(0), 11356);

    let meta = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(out)).expect("parquet");
    let column = meta.metadata().row_group(0).column(0);
    assert!(matches!(column.compression(), Compression::ZSTD(_)));
}

#[test]
fn declared_types_override_inference() {
    let mut options = CsvOptions {
        delimiter: ';',
        ..CsvOptions::default()
    };
    options
        .column_types
        .insert("zip".into(), ColumnType::String);
    options.column_types.insert("n".into(), ColumnType::Float64);
    options
        .column_types
        .insert("at".into(), ColumnType::Timestamp);
    let (report, out) =
        csv("zip;n;at\n01234;3;2024-05-06 07:08:09\n", &options).expect("valid CSV");
    assert_eq!(report.schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(report.schema.field(1).data_type(), &DataType::Float64);
    assert_eq!(
        report.schema.field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        read_back(&out).column(0).as_string::<i32>().value(0),
        "01234"
    );

    options
        .column_types
        .insert("missing".into(), ColumnType::Int64);
    let err = csv_err("zip;n;at\n1;2;2024-01-01\n", &options);
    assert!(err.to_string().contains("\"missing\""), "{err}");
}

#[test]
fn no_header_names_columns() {
    let options = CsvOptions {
        header: false,
        ..CsvOptions::default()
    };
    let (report, _) = csv("1,a\n2,b\n", &options).expect("valid CSV");
    assert_eq!(report.rows, 2);
    assert_eq!(report.schema.field(1).name(), "column_2");
}

#[test]
fn bad_csv_names_line_and_column() {
    let default = CsvOptions::default();
    let mut declared = CsvOptions::default();
    declared.column_types.insert("b".into(), ColumnType::Int64);
    let small_sample = CsvOptions {
        infer_rows: 2,
        ..CsvOptions::default()
    };
    let cases: Vec<(&str, &CsvOptions, &str, &str)> = vec![
        (
            "a,b\n1,2\n3\n",
            &default,
            "invalid_csv",
            "line 3: expected 2 fields, found 1",
        ),
        (
            "a,b\n1,2\n3,4,5\n",
            &default,
            "invalid_csv",
            "line 3: expected 2 fields, found 3",
        ),
        (
            "a,b\n1,\"x\n2,y\n",
            &default,
            "invalid_csv",
            "line 2, column \"b\": a quote opened here is never closed",
        ),
        (
            "a,b\n1,x\n2,y\n",
            &declared,
            "invalid_csv",
            "line 2, column \"b\": expected int64, got \"x\"",
        ),
        (
            "n,s\n1,a\n2,b\nabc,c\n",
            &small_sample,
            "invalid_csv",
            "line 4, column \"n\": expected int64, got \"abc\"",
        ),
        (
            "d\n2024-01-01\n2024-13-45\n",
            &small_sample,
            "invalid_csv",
            "line 3, column \"d\": expected date",
        ),
        ("", &default, "invalid_csv", "empty file"),
        ("a,b\n", &default, "invalid_csv", "empty file"),
        (
            "a,a\n1,2\n",
            &default,
            "invalid_schema",
            "\"a\" appears twice (columns 1 and 2)",
        ),
        (
            "a,,c\n1,2,3\n",
            &default,
            "invalid_schema",
            "column 2 has an empty name",
        ),
        (
            "a,b\u{7}\n1,2\n",
            &default,
            "invalid_schema",
            "control characters",
        ),
    ];
    for (text, options, category, message) in cases {
        let err = csv_err(text, options);
        assert_eq!(err.category(), category, "{text:?}: {err}");
        assert!(err.to_string().contains(message), "{text:?}: {err}");
    }
}

#[test]
fn invalid_utf8_names_the_line() {
    let mut bytes = b"a,b\n1,ok\n2,".to_vec();
    bytes.extend([0xff, 0xfe, b'\n']);
    let mut out = Vec::new();
    let err = ingest_csv(
        bytes.as_slice(),
        &CsvOptions::default(),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )
    .expect_err("invalid UTF-8");
    assert!(err.to_string().contains("line 3, column \"b\""), "{err}");
}

#[test]
fn limits_are_enforced() {
    let limits = IngestLimits {
        max_rows: 2,
        max_columns: 2,
        ..IngestLimits::default()
    };
    let mut out = Vec::new();
    let err = ingest_csv(
        "a\n1\n2\n3\n".as_bytes(),
        &CsvOptions::default(),
        &mut out,
        &limits,
        &Cancel::new(),
    )
    .expect_err("too many rows");
    assert_eq!(err.category(), "too_large");
    assert!(err.to_string().contains("line 4"), "{err}");
    let err = ingest_csv(
        "a,b,c\n1,2,3\n".as_bytes(),
        &CsvOptions::default(),
        &mut out,
        &limits,
        &Cancel::new(),
    )
    .expect_err("too many columns");
    assert_eq!(err.category(), "too_large");
}

fn sample_parquet(compression: Compression) -> Bytes {
    let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(0..5000));
    let names: ArrayRef = Arc::new(LargeStringArray::from_iter_values(
        (0..5000).map(|i| format!("person number {i} with some padding text")),
    ));
    let towns: DictionaryArray<Int32Type> = (0..5000)
        .map(|i| ["Paris", "Bobigny", "Saint-Denis"][i % 3])
        .collect();
    let batch = RecordBatch::try_from_iter([
        ("id", ids),
        ("name", names),
        ("town", Arc::new(towns) as ArrayRef),
    ])
    .expect("batch");
    parquet_of(&[batch], compression)
}

#[test]
fn parquet_is_checked_and_normalised() {
    let mut out = Vec::new();
    let report = ingest_parquet(
        sample_parquet(Compression::SNAPPY),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )
    .expect("valid Parquet");
    assert_eq!(report.rows, 5000);
    assert_eq!(report.schema.field(0).data_type(), &DataType::Int32);
    assert_eq!(report.schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(report.schema.field(2).data_type(), &DataType::Utf8);
    let batch = read_back(&out);
    assert_eq!(batch.column(2).as_string::<i32>().value(4), "Bobigny");
}

#[test]
fn corrupt_and_truncated_parquet_are_refused() {
    // Without page checksums (no common writer emits them) only compressed pages reveal
    // flipped bytes reliably; ZSTD is what the engine itself writes.
    let good = sample_parquet(Compression::ZSTD(Default::default()));
    // Flip bytes in the middle of the file, on the page headers of the "name" column chunk
    // of the second row group. Flipped value bytes are only detectable when the writer
    // stored page checksums (verified when present) or the values stop decoding.
    let meta = ParquetRecordBatchReaderBuilder::try_new(good.clone()).expect("parquet");
    let chunk = meta.metadata().row_group(1).column(1);
    let start = usize::try_from(chunk.byte_range().0).expect("offset");
    let data_page = usize::try_from(chunk.data_page_offset()).expect("offset");
    let flip = |at: usize| {
        let mut bytes = good.to_vec();
        for byte in &mut bytes[at..at + 32] {
            *byte ^= 0xff;
        }
        Bytes::from(bytes)
    };
    let cut = good.slice(..good.len() - 100);
    let tiny = good.slice(..3);
    for (what, bytes) in [
        ("flipped dictionary page", flip(start)),
        ("flipped data page", flip(data_page)),
        ("cut", cut),
        ("tiny", tiny),
    ] {
        let mut out = Vec::new();
        let err = ingest_parquet(bytes, &mut out, &IngestLimits::default(), &Cancel::new())
            .expect_err("corrupt Parquet");
        assert_eq!(err.category(), "invalid_parquet", "{what}: {err}");
        if what.starts_with("flipped") {
            assert!(
                err.to_string().contains("row group 1, column \"name\""),
                "{what}: {err}"
            );
        }
    }
}

#[test]
fn nested_parquet_columns_are_refused() {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
    let batch = RecordBatch::try_from_iter([("tags", Arc::new(list) as ArrayRef)]).expect("batch");
    let mut out = Vec::new();
    let err = ingest_parquet(
        parquet_of(&[batch], Compression::SNAPPY),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )
    .expect_err("nested");
    assert_eq!(err.category(), "invalid_schema");
    assert!(err.to_string().contains("\"tags\""), "{err}");
}

#[test]
fn byte_order_mark_is_not_part_of_the_first_name() {
    let (report, _) = csv("\u{feff}id,name\n1,a\n", &CsvOptions::default()).expect("valid CSV");
    assert_eq!(report.schema.field(0).name(), "id");
}

/// Inputs on which the fuzzer made the parquet crate panic: each must be a 422-style
/// `invalid_parquet`, never a panic (api/fuzz/regressions/).
#[test]
fn fuzzer_found_parquet_inputs_are_refused_not_panics() {
    let inputs: [&[u8]; 1] = [include_bytes!(
        "../../../fuzz/regressions/ingest_parquet/crash-06816614a4ac135bd19ab8d6e347fe4c15b25cce"
    )];
    for input in inputs {
        let err = crate::ingest_parquet(
            Bytes::copy_from_slice(input),
            Vec::new(),
            &crate::IngestLimits::default(),
            &crate::Cancel::new(),
        )
        .expect_err("malformed");
        assert_eq!(err.category(), "invalid_parquet", "{err}");
        assert!(err.to_string().contains("row group"), "{err}");
    }
}
