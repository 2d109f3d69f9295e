use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use bytes::Bytes;

use super::*;
use crate::tests::read_back;
use crate::{Cancel, CsvOptions, IngestLimits, ingest_csv};
use crate::{PseudonymKey, Recipe};
use arrow_schema::Schema;

const ROWS: i64 = 70_000;

fn department(i: i64) -> &'static str {
    if i % 10_000 == 0 {
        "77"
    } else {
        ["75", "93", "94", "92"][(i % 4) as usize]
    }
}

fn age(i: i64) -> i64 {
    18 + (i * 7919) % 70
}

/// More rows than one batch, so both passes see several batches.
fn dataset() -> Bytes {
    let mut text = String::from("id,name,age,postcode,score\n");
    for i in 0..ROWS {
        let line = format!(
            "{i},p{i},{},{}{:03},{}\n",
            age(i),
            department(i),
            i % 500,
            i % 100
        );
        text.push_str(&line);
    }
    let mut options = CsvOptions::default();
    options
        .column_types
        .insert("postcode".into(), crate::ColumnType::String);
    let mut out = Vec::new();
    ingest_csv(
        text.as_bytes(),
        &options,
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    )
    .expect("dataset");
    Bytes::from(out)
}

fn spec(suppress: bool) -> ViewSpec {
    let schema = Schema::new(vec![
        arrow_schema::Field::new("age", DataType::Int64, true),
        arrow_schema::Field::new("score", DataType::Int64, true),
    ]);
    let recipe: Recipe = serde_json::from_value(serde_json::json!({
        "columns": {
            "id": "pseudonymise",
            "name": "drop",
            "age": {"generalise": {"bin": 10}},
            "postcode": {"generalise": {"prefix": 2}}
        },
        "quasiIdentifiers": ["age", "postcode"],
        "k": 5,
        "suppress": suppress
    }))
    .expect("recipe");
    ViewSpec {
        columns: ["id", "age", "postcode", "name"].map(String::from).to_vec(),
        filter: Some(RowFilter::parse("age >= 30 AND score < 90", &schema).expect("filter")),
        recipe,
        key: PseudonymKey::from_bytes([9; 32]),
    }
}

/// The same view computed row by row.
fn expected() -> (u64, HashMap<(i64, &'static str), u64>) {
    let mut classes = HashMap::new();
    let mut matched = 0;
    for i in 0..ROWS {
        if age(i) >= 30 && i % 100 < 90 {
            matched += 1;
            *classes
                .entry((age(i) / 10 * 10, department(i)))
                .or_insert(0) += 1;
        }
    }
    (matched, classes)
}

#[test]
fn view_is_projected_filtered_anonymised_and_suppressed() {
    let data = dataset();
    let (matched, classes) = expected();
    let small: u64 = classes.values().filter(|n| **n < 5).sum();
    assert!(small > 0, "the fixture has small classes");

    let mut out = Vec::new();
    let spec = spec(true);
    let report = materialise(data.clone(), &spec, &mut out).expect("view");
    assert_eq!(report.rows_in, ROWS as u64);
    assert_eq!(report.rows_matched, matched);
    assert_eq!(report.rows_out, matched - small);
    assert_eq!(report.kanon.rows_suppressed, small);
    assert_eq!(report.kanon.classes, classes.len() as u64);
    assert_eq!(
        report.kanon.smallest_class,
        *classes.values().min().expect("classes")
    );
    assert!(report.kanon.smallest_class_out >= 5);
    report.kanon.ensure(5).expect("5-anonymous");

    let view = read_back(&out);
    let schema = view.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["id", "age", "postcode"],
        "projection only, name dropped"
    );
    assert_eq!(view.num_rows() as u64, report.rows_out);
    let ages = view.column(1).as_primitive::<Int64Type>();
    let codes = view.column(2).as_string::<i32>();
    let mut seen: HashMap<(i64, String), u64> = HashMap::new();
    for row in 0..view.num_rows() {
        assert!(
            ages.value(row) >= 30 && ages.value(row) % 10 == 0,
            "filtered and binned"
        );
        assert_eq!(codes.value(row).len(), 2);
        *seen
            .entry((ages.value(row), codes.value(row).to_string()))
            .or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|n| *n >= 5),
        "no class below k in the output"
    );
    let ids = view.column(0).as_string::<i32>();
    assert!(ids.iter().all(|p| p.is_some_and(|p| p.len() == 22)));

    let preview = kanon_preview(data, &spec).expect("preview");
    assert_eq!(preview, report.kanon);
}

#[test]
fn without_suppression_every_matching_row_is_written() {
    let data = dataset();
    let (matched, _) = expected();
    let mut out = Vec::new();
    let spec = spec(false);
    let report = materialise(data.clone(), &spec, &mut out).expect("view");
    assert_eq!(report.rows_out, matched);
    assert_eq!(report.kanon.rows_suppressed, 0);
    assert!(report.kanon.classes_below_k > 0);
    let err = kanon_preview(data, &spec)
        .expect("preview")
        .ensure(5)
        .expect_err("personal");
    assert!(
        err.to_string()
            .contains("dataset is personal: smallest class is"),
        "{err}"
    );
}

#[test]
fn view_spec_is_checked_against_the_dataset() {
    let data = dataset();
    let mut spec = spec(true);
    spec.columns = vec!["id".into(), "age".into()];
    let err = materialise(data.clone(), &spec, Vec::new()).expect_err("QI not projected");
    assert_eq!(err.category(), "invalid_recipe");
    assert!(
        err.to_string()
            .contains("\"postcode\" is not among the view's columns"),
        "{err}"
    );
    spec.columns.push("nope".into());
    let err = kanon_preview(data, &spec).expect_err("unknown column");
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

#[test]
fn constant_filters_keep_all_or_nothing() {
    let data = dataset();
    let schema = crate::dataset_schema(&data).expect("schema");
    for (sql, expected) in [("TRUE", ROWS as u64), ("FALSE", 0), ("age = NULL", 0)] {
        let mut spec = spec(false);
        spec.filter = Some(RowFilter::parse(sql, &schema).expect(sql));
        let mut out = Vec::new();
        let report = materialise(data.clone(), &spec, &mut out).expect(sql);
        assert_eq!(report.rows_out, expected, "{sql}");
        assert_eq!(read_back(&out).num_rows() as u64, expected, "{sql}");
    }
}
