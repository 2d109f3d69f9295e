//! The anonymisation recipe of a grant.
//!
//! A grant lists its projection (`ViewSpec::columns`) separately; the recipe applies to
//! the projected columns. A projected column the recipe does not mention is kept as is. A
//! recipe rule for a column outside the projection has no effect.
//!
//! JSON shape:
//! ```json
//! { "columns": { "name": "drop", "id": "pseudonymise", "age": { "generalise": { "bin": 10 } },
//!                "birth": { "generalise": { "truncate": "year" } },
//!                "postcode": { "generalise": { "prefix": 2 } } },
//!   "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use arrow_schema::{DataType, Schema};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DataError, Result, type_name};

/// What a grant's view does with the dataset's columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recipe {
    /// Rule per column; projected columns not listed are kept.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRule>,
    /// Columns that together could identify a person (after generalisation).
    #[serde(default)]
    pub quasi_identifiers: Vec<String>,
    /// Minimum number of rows sharing the same quasi-identifier values.
    #[serde(default)]
    pub k: Option<u32>,
    /// Remove the rows of classes smaller than `k` instead of refusing the view.
    #[serde(default)]
    pub suppress: bool,
}

/// What happens to one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ColumnRule {
    /// Copied unchanged.
    Keep,
    /// Removed from the view.
    Drop,
    /// Replaced by a keyed HMAC-SHA-256 pseudonym (string); nulls stay null.
    Pseudonymise,
    /// Replaced by a coarser value.
    Generalise(Generalisation),
}

/// A coarser value for a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Generalisation {
    /// Numbers: floor to a multiple of the width, the lower bound is output. Integer columns
    /// need an integer width and come out as int64; float columns come out as float64.
    Bin(f64),
    /// Dates and timestamps: the first day of the period, output as a date.
    Truncate(DateUnit),
    /// Strings: the first `n` characters (e.g. postcode 93100 → 93 with 2).
    Prefix(u32),
}

/// Period for [`Generalisation::Truncate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum DateUnit {
    Day,
    Month,
    Year,
}

pub(crate) fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

pub(crate) fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

pub(crate) fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

impl Recipe {
    /// The rule for a column (keep when the recipe does not mention it).
    pub fn rule(&self, column: &str) -> &ColumnRule {
        self.columns.get(column).unwrap_or(&ColumnRule::Keep)
    }

    /// Check the recipe against the dataset's schema; errors name the column.
    pub fn validate(&self, schema: &Schema) -> Result<()> {
        let invalid = |msg: String| Err(DataError::InvalidRecipe(msg));
        for (name, rule) in &self.columns {
            let Ok(field) = schema.field_with_name(name) else {
                return invalid(format!("column \"{name}\" is not in the dataset"));
            };
            if let ColumnRule::Generalise(g) = rule {
                check_generalisation(name, field.data_type(), g)?;
            }
        }
        let mut seen = BTreeSet::new();
        for qi in &self.quasi_identifiers {
            if schema.field_with_name(qi).is_err() {
                return invalid(format!("quasi-identifier \"{qi}\" is not in the dataset"));
            }
            if matches!(self.rule(qi), ColumnRule::Drop) {
                return invalid(format!(
                    "quasi-identifier \"{qi}\" is dropped; remove it from the quasi-identifiers or keep the column"
                ));
            }
            if !seen.insert(qi) {
                return invalid(format!("quasi-identifier \"{qi}\" is listed twice"));
            }
        }
        match self.k {
            Some(0) => return invalid("k must be at least 1".into()),
            Some(_) if self.quasi_identifiers.is_empty() => {
                return invalid("k is set but no quasi-identifiers are listed".into());
            }
            None if self.suppress => {
                return invalid("suppress needs k (the minimum class size)".into());
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_generalisation(name: &str, t: &DataType, g: &Generalisation) -> Result<()> {
    let mismatch = |what: &str| {
        Err(DataError::InvalidRecipe(format!(
            "column \"{name}\" is {}; {what}",
            type_name(t)
        )))
    };
    match g {
        Generalisation::Bin(width) => {
            if !(width.is_finite() && *width > 0.0) {
                return mismatch(&format!("bin width must be a positive number, got {width}"));
            }
            if is_integer(t) {
                if width.fract() != 0.0 || *width > i64::MAX as f64 {
                    return mismatch(&format!(
                        "bin width for an integer column must be a whole number, got {width}"
                    ));
                }
            } else if !is_float(t) {
                return mismatch("numeric bins apply to integer and float columns only");
            }
        }
        Generalisation::Truncate(_) if !is_temporal(t) => {
            return mismatch("truncation applies to date and timestamp columns only");
        }
        Generalisation::Prefix(n) => {
            if !is_string(t) {
                return mismatch("prefix applies to string columns only");
            }
            if *n == 0 {
                return mismatch("prefix length must be at least 1");
            }
        }
        Generalisation::Truncate(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("age", DataType::Int64, true),
            Field::new("score", DataType::Float64, true),
            Field::new("birth", DataType::Date32, true),
        ])
    }

    fn recipe(json: serde_json::Value) -> Recipe {
        serde_json::from_value(json).expect("recipe JSON")
    }

    #[test]
    fn json_shape_round_trips() {
        let r = recipe(serde_json::json!({
            "columns": {"name": "pseudonymise", "age": {"generalise": {"bin": 10}},
                        "birth": {"generalise": {"truncate": "year"}}, "score": "drop"},
            "quasiIdentifiers": ["age"], "k": 3, "suppress": true
        }));
        assert_eq!(
            r.rule("age"),
            &ColumnRule::Generalise(Generalisation::Bin(10.0))
        );
        assert_eq!(r.rule("unlisted"), &ColumnRule::Keep);
        r.validate(&schema()).expect("valid");
        let unknown = serde_json::from_value::<Recipe>(serde_json::json!({"colums": {}}));
        assert!(unknown.is_err(), "unknown fields are refused");
    }

    #[test]
    fn validation_names_the_column() {
        let cases = [
            (
                serde_json::json!({"columns": {"nope": "keep"}}),
                "\"nope\" is not in the dataset",
            ),
            (
                serde_json::json!({"columns": {"name": {"generalise": {"bin": 5}}}}),
                "column \"name\" is string",
            ),
            (
                serde_json::json!({"columns": {"age": {"generalise": {"bin": 2.5}}}}),
                "whole number",
            ),
            (
                serde_json::json!({"columns": {"age": {"generalise": {"prefix": 2}}}}),
                "column \"age\" is int64",
            ),
            (
                serde_json::json!({"columns": {"score": {"generalise": {"truncate": "month"}}}}),
                "\"score\"",
            ),
            (
                serde_json::json!({"quasiIdentifiers": ["zip"], "k": 2}),
                "\"zip\" is not in the dataset",
            ),
            (
                serde_json::json!({"columns": {"age": "drop"}, "quasiIdentifiers": ["age"], "k": 2}),
                "\"age\" is dropped",
            ),
            (
                serde_json::json!({"quasiIdentifiers": ["age"], "k": 0}),
                "k must be at least 1",
            ),
            (serde_json::json!({"suppress": true}), "suppress needs k"),
        ];
        for (json, expected) in cases {
            let err = recipe(json.clone())
                .validate(&schema())
                .expect_err("invalid");
            assert_eq!(err.category(), "invalid_recipe");
            assert!(err.to_string().contains(expected), "{json}: {err}");
        }
    }
}
