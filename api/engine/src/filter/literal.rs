//! Literals of the filter language, typed as the column they are compared with.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::DataType;
use sqlparser::ast::{DataType as SqlType, Expr, TypedString, UnaryOperator, Value};

use super::compile::not_allowed;
use super::{Literal, invalid};
use crate::recipe::{is_float, is_integer, is_string, is_temporal};
use crate::{Result, type_name};

/// A literal as written.
pub(super) enum Lit {
    Number(String),
    Str(String),
    Bool(bool),
    Null,
    Date(String),
    Timestamp(String),
}

impl std::fmt::Display for Lit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lit::Number(n) => write!(f, "{n}"),
            Lit::Str(s) => write!(f, "'{s}'"),
            Lit::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Lit::Null => write!(f, "NULL"),
            Lit::Date(s) => write!(f, "DATE '{s}'"),
            Lit::Timestamp(s) => write!(f, "TIMESTAMP '{s}'"),
        }
    }
}

pub(super) fn literal(expr: &Expr) -> Result<Lit> {
    match expr {
        Expr::Nested(inner) => literal(inner),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Ok(Lit::Number(n.clone())),
            Value::SingleQuotedString(s) => Ok(Lit::Str(s.clone())),
            Value::Boolean(b) => Ok(Lit::Bool(*b)),
            Value::Null => Ok(Lit::Null),
            other => Err(invalid(format!(
                "literal `{other}` is not allowed; use 'single quotes' for strings"
            ))),
        },
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => match literal(inner)? {
            Lit::Number(n) if *op == UnaryOperator::Minus => Ok(Lit::Number(format!("-{n}"))),
            Lit::Number(n) => Ok(Lit::Number(n)),
            _ => Err(invalid(format!("`{expr}`: a sign applies to numbers only"))),
        },
        Expr::TypedString(TypedString {
            data_type, value, ..
        }) => {
            let text = value.value.clone().into_string().unwrap_or_default();
            match data_type {
                SqlType::Date => Ok(Lit::Date(text)),
                SqlType::Timestamp(_, _) => Ok(Lit::Timestamp(text)),
                other => Err(invalid(format!("{other} literals are not allowed"))),
            }
        }
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Err(invalid(format!(
            "expected a literal, found the column `{expr}`"
        ))),
        other => Err(not_allowed(other)),
    }
}

/// A literal as a one-element array of the column's type; `None` for NULL.
pub(super) fn typed(lit: &Lit, column: &str, t: &DataType) -> Result<Option<Literal>> {
    let mismatch = || {
        invalid(format!(
            "column \"{column}\" is {} but is compared with {lit}",
            type_name(t)
        ))
    };
    let array: ArrayRef = match lit {
        Lit::Null => return Ok(None),
        Lit::Number(n) if is_integer(t) => {
            let v: i64 = n.parse().map_err(|_| {
                invalid(format!(
                    "column \"{column}\" is {}; {n} is not a whole number",
                    type_name(t)
                ))
            })?;
            Arc::new(arrow_array::Int64Array::from(vec![v]))
        }
        Lit::Number(n) if is_float(t) => {
            let v: f64 = n.parse().map_err(|_| mismatch())?;
            Arc::new(arrow_array::Float64Array::from(vec![v]))
        }
        Lit::Str(s) if is_string(t) || is_temporal(t) => {
            Arc::new(StringArray::from(vec![s.clone()]))
        }
        Lit::Date(s) | Lit::Timestamp(s) if is_temporal(t) => {
            Arc::new(StringArray::from(vec![s.clone()]))
        }
        Lit::Bool(b) if *t == DataType::Boolean => Arc::new(BooleanArray::from(vec![*b])),
        _ => return Err(mismatch()),
    };
    cast_literal(array, column, t).map(Some)
}

pub(super) fn cast_literal(array: ArrayRef, column: &str, t: &DataType) -> Result<Literal> {
    if array.data_type() == t {
        return Ok(array);
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let shown = arrow_cast::display::array_value_to_string(&array, 0).unwrap_or_default();
    cast_with_options(&array, t, &options).map_err(|_| {
        invalid(format!(
            "'{shown}' is not a valid {} value for column \"{column}\"",
            type_name(t)
        ))
    })
}
