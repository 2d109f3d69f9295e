use arrow_array::types::Float64Type;
use arrow_array::{Date32Array, Float64Array, Int32Array, Int64Array, TimestampSecondArray};

use super::*;

fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn pseudonyms_are_stable_per_key_and_differ_across_keys() {
    let values: ArrayRef = Arc::new(StringArray::from(vec![
        Some("alice"),
        None,
        Some("bob"),
        Some("alice"),
    ]));
    let a = Pseudonymiser::new(&PseudonymKey::from_bytes([1; 32]));
    let b = Pseudonymiser::new(&PseudonymKey::from_bytes([2; 32]));
    let first = strings(&a.apply(values.as_ref()).expect("pseudonyms"));
    let again = strings(&a.apply(values.as_ref()).expect("pseudonyms"));
    let other = strings(&b.apply(values.as_ref()).expect("pseudonyms"));
    assert_eq!(first, again, "same key, same pseudonyms");
    assert_eq!(first[0], first[3], "same value, same pseudonym");
    assert_ne!(first[0], first[2]);
    assert_eq!(first[1], None, "nulls stay null");
    assert_ne!(first[0], other[0], "another key gives other pseudonyms");
    let code = first[0].clone().expect("pseudonym");
    assert_eq!(code.len(), 22);
    assert!(
        code.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert!(!first.iter().flatten().any(|p| p.contains("alice")));

    // Canonical text: the integer 42 and the string "42" share a pseudonym.
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None]));
    let text: ArrayRef = Arc::new(StringArray::from(vec!["42"]));
    let from_int = strings(&a.apply(ints.as_ref()).expect("pseudonyms"));
    assert_eq!(
        from_int[0],
        strings(&a.apply(text.as_ref()).expect("pseudonyms"))[0]
    );
    assert_eq!(from_int[1], None);
}

#[test]
fn derived_keys_depend_on_context_and_do_not_print() {
    let value: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
    let one = Pseudonymiser::new(&PseudonymKey::derive(b"server secret", "grant-1"));
    let two = Pseudonymiser::new(&PseudonymKey::derive(b"server secret", "grant-2"));
    assert_ne!(
        strings(&one.apply(value.as_ref()).expect("p")),
        strings(&two.apply(value.as_ref()).expect("p"))
    );
    let key = PseudonymKey::from_bytes([7; 32]);
    assert_eq!(format!("{key:?}"), "PseudonymKey(…)");
}

#[test]
fn numeric_bins_floor_to_the_lower_bound() {
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(-5),
        Some(0),
        Some(9),
        Some(10),
        Some(19),
        None,
    ]));
    let binned = generalise("age", &ints, &Generalisation::Bin(10.0)).expect("bins");
    let binned: Vec<Option<i64>> = binned.as_primitive::<Int64Type>().iter().collect();
    assert_eq!(
        binned,
        [Some(-10), Some(0), Some(0), Some(10), Some(10), None]
    );

    let small: ArrayRef = Arc::new(Int32Array::from(vec![7]));
    let binned = generalise("n", &small, &Generalisation::Bin(5.0)).expect("bins");
    assert_eq!(binned.data_type(), &DataType::Int64);
    assert_eq!(binned.as_primitive::<Int64Type>().value(0), 5);

    let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.74, -0.1, 2.5]));
    let binned = generalise("h", &floats, &Generalisation::Bin(0.5)).expect("bins");
    let binned: Vec<f64> = binned.as_primitive::<Float64Type>().values().to_vec();
    assert_eq!(binned, [1.5, -0.5, 2.5]);
}

#[test]
fn dates_truncate_to_month_and_year() {
    // 2024-03-15 = 19797, 2024-03-01 = 19783, 2024-01-01 = 19723.
    let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(19_797), None]));
    let month = generalise("d", &dates, &Generalisation::Truncate(DateUnit::Month)).expect("m");
    assert_eq!(month.as_primitive::<Date32Type>().value(0), 19_783);
    assert!(month.is_null(1));
    let year = generalise("d", &dates, &Generalisation::Truncate(DateUnit::Year)).expect("y");
    assert_eq!(year.as_primitive::<Date32Type>().value(0), 19_723);

    // 2024-03-15T23:30:00 as a timestamp becomes the date 2024-03-01.
    let ts: ArrayRef = Arc::new(TimestampSecondArray::from(vec![19_797 * 86_400 + 84_600]));
    let month = generalise("t", &ts, &Generalisation::Truncate(DateUnit::Month)).expect("m");
    assert_eq!(month.data_type(), &DataType::Date32);
    assert_eq!(month.as_primitive::<Date32Type>().value(0), 19_783);
}

#[test]
fn calendar_arithmetic_matches_chrono() {
    use chrono::{Datelike, NaiveDate};
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    for days in (-800_000..800_000).step_by(97) {
        let date = epoch + chrono::Duration::days(i64::from(days));
        let month = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).expect("month");
        let year = NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("year");
        let as_days = |d: NaiveDate| (d - epoch).num_days() as i32;
        assert_eq!(
            truncate_days(days, DateUnit::Month),
            as_days(month),
            "{date}"
        );
        assert_eq!(truncate_days(days, DateUnit::Year), as_days(year), "{date}");
    }
}

#[test]
fn prefixes_count_characters() {
    let codes: ArrayRef = Arc::new(StringArray::from(vec![
        Some("93100"),
        Some("9"),
        Some("é漢字x"),
        None,
    ]));
    let cut = generalise("postcode", &codes, &Generalisation::Prefix(2)).expect("prefix");
    assert_eq!(
        strings(&cut),
        [
            Some("93".into()),
            Some("9".into()),
            Some("é漢".into()),
            None
        ]
    );
}
