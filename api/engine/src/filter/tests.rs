use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field};

use super::*;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
        Field::new("active", DataType::Boolean, true),
        Field::new("born", DataType::Date32, true),
        Field::new("Post Code", DataType::Utf8, true),
    ])
}

#[test]
fn accepted_predicates() {
    let accepted = [
        "age > 30",
        "AGE >= 30 AND name <> 'x'",
        "30 < age",
        "age != -5",
        "score <= 2.5e3 OR score = 1",
        "NOT (age = 1 OR age = 2)",
        "age IN (1, 2, NULL)",
        "name NOT IN ('a', 'b')",
        "age BETWEEN 18 AND 65",
        "age NOT BETWEEN 18 AND 65",
        "name IS NULL OR born IS NOT NULL",
        "name LIKE 'A%' AND name NOT LIKE '%z'",
        "name ILIKE 'a%'",
        "active",
        "active = TRUE",
        "born >= DATE '2000-01-01'",
        "born < '2000-01-01'",
        "\"Post Code\" = '93100'",
        "name = \"Post Code\"",
        "TRUE",
        "age = NULL",
    ];
    for sql in accepted {
        RowFilter::parse(sql, &schema()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let f = RowFilter::parse("age > 1 AND \"Post Code\" LIKE '9%'", &schema()).expect("valid");
    let columns: Vec<String> = f.columns().into_iter().collect();
    assert_eq!(columns, ["Post Code", "age"]);
}

#[test]
fn refused_predicates_say_why() {
    let refused = [
        ("1=1; DROP TABLE x", "single predicate"),
        ("age > 1; SELECT 1", "single predicate"),
        ("(SELECT 1)", "subqueries are not allowed"),
        ("age IN (SELECT age FROM t)", "subqueries are not allowed"),
        ("EXISTS (SELECT 1)", "subqueries are not allowed"),
        (
            "lower(name) = 'a'",
            "function calls are not allowed (`lower`)",
        ),
        ("nope = 1", "unknown column \"nope\""),
        ("\"post code\" = '1'", "unknown column \"post code\""),
        (
            "age = 'abc'",
            "column \"age\" is int64 but is compared with 'abc'",
        ),
        ("age = 2.5", "2.5 is not a whole number"),
        ("name = 3", "column \"name\" is string"),
        (
            "born = DATE '2020-13-45'",
            "not a valid date value for column \"born\"",
        ),
        ("age + 1 > 3", "not allowed"),
        (
            "age = score",
            "cannot compare \"age\" (int64) with \"score\" (float64)",
        ),
        ("1 = 1", "a comparison needs a column"),
        ("age", "not boolean"),
        ("CAST(age AS TEXT) = '1'", "CAST is not allowed"),
        ("name LIKE 'a%' ESCAPE '!'", "ESCAPE"),
        ("age LIKE '1%'", "LIKE applies to string columns"),
        ("t.age = 1", "qualified name"),
        ("", "empty"),
        ("DROP TABLE x", ""),
        ("age > ", ""),
        ("CASE WHEN age > 1 THEN TRUE END", "CASE is not allowed"),
    ];
    for (sql, expected) in refused {
        let err = RowFilter::parse(sql, &schema()).expect_err(sql);
        assert_eq!(err.category(), "invalid_filter", "{sql}: {err}");
        assert!(err.to_string().contains(expected), "{sql}: {err}");
    }
}

fn batch() -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "name",
            Arc::new(StringArray::from(vec![
                Some("ann"),
                Some("bob"),
                None,
                Some("al"),
            ])),
        ),
        (
            "age",
            Arc::new(Int64Array::from(vec![Some(10), None, Some(30), Some(40)])),
        ),
        (
            "score",
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                Some(2.0),
                None,
                Some(4.0),
            ])),
        ),
        (
            "active",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
            ])),
        ),
        (
            "born",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(10_957),
                None,
                Some(20_000),
            ])),
        ),
        (
            "Post Code",
            Arc::new(StringArray::from(vec![
                Some("93100"),
                Some("75001"),
                None,
                None,
            ])),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("batch")
}

#[test]
fn evaluation_follows_sql_null_logic() {
    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const N: Option<bool> = None;
    let cases: [(&str, [Option<bool>; 4]); 17] = [
        ("age > 15", [F, N, T, T]),
        ("NOT (age > 15)", [T, N, F, F]),
        ("age > 15 OR name = 'bob'", [F, T, T, T]),
        ("age > 15 AND name = 'al'", [F, F, N, T]),
        ("age > 15 AND name = 'bob'", [F, N, N, F]),
        ("age IS NULL", [F, T, F, F]),
        ("age IN (10, NULL)", [T, N, N, N]),
        ("age NOT IN (10, 30)", [F, N, F, T]),
        ("age BETWEEN 10 AND 30", [T, N, T, F]),
        ("name LIKE 'a%'", [T, F, N, T]),
        ("name NOT LIKE 'a%'", [F, T, N, F]),
        ("active", [T, N, F, T]),
        ("age = NULL", [N, N, N, N]),
        ("10 < age", [F, N, T, T]),
        ("born >= DATE '2000-01-01'", [F, T, N, T]),
        ("\"Post Code\" LIKE '93%'", [T, F, N, N]),
        ("name = \"Post Code\"", [F, F, N, N]),
    ];
    let batch = batch();
    for (sql, expected) in cases {
        let filter = RowFilter::parse(sql, batch.schema().as_ref()).expect(sql);
        let got: Vec<Option<bool>> = filter.evaluate(&batch).expect(sql).iter().collect();
        assert_eq!(got, expected, "{sql}");
    }
}
