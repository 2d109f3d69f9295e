//! Evaluation of a compiled filter with Arrow kernels (SQL three-valued logic).

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, Scalar};
use arrow_buffer::BooleanBuffer;
use arrow_ord::cmp;
use arrow_schema::ArrowError;
use arrow_string::like;

use super::{CmpOp, Node, as_boolean};
use crate::{DataError, Result};

fn kernel(err: ArrowError) -> DataError {
    DataError::internal("evaluating the row filter", err)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataError::InvalidFilter(format!("column \"{name}\" is not in the batch")))
}

fn compare(
    op: CmpOp,
    left: &dyn arrow_array::Datum,
    right: &dyn arrow_array::Datum,
) -> Result<BooleanArray> {
    match op {
        CmpOp::Eq => cmp::eq(left, right),
        CmpOp::NotEq => cmp::neq(left, right),
        CmpOp::Lt => cmp::lt(left, right),
        CmpOp::LtEq => cmp::lt_eq(left, right),
        CmpOp::Gt => cmp::gt(left, right),
        CmpOp::GtEq => cmp::gt_eq(left, right),
    }
    .map_err(kernel)
}

fn constant(value: Option<bool>, len: usize) -> BooleanArray {
    match value {
        Some(true) => BooleanArray::new(BooleanBuffer::new_set(len), None),
        Some(false) => BooleanArray::new(BooleanBuffer::new_unset(len), None),
        None => BooleanArray::new_null(len),
    }
}

pub(super) fn node(node: &Node, batch: &RecordBatch) -> Result<BooleanArray> {
    let rows = batch.num_rows();
    Ok(match node {
        Node::Const(value) => constant(*value, rows),
        Node::Column(name) => {
            let array = column(batch, name)?;
            as_boolean(array).cloned().ok_or_else(|| {
                DataError::InvalidFilter(format!("column \"{name}\" is not boolean"))
            })?
        }
        Node::CmpLiteral {
            column: name,
            op,
            value,
        } => compare(*op, column(batch, name)?, &Scalar::new(value.clone()))?,
        Node::CmpColumns { left, op, right } => {
            compare(*op, column(batch, left)?, column(batch, right)?)?
        }
        Node::Not(inner) => not(&self::node(inner, batch)?).map_err(kernel)?,
        Node::And(a, b) => {
            and_kleene(&self::node(a, batch)?, &self::node(b, batch)?).map_err(kernel)?
        }
        Node::Or(a, b) => {
            or_kleene(&self::node(a, batch)?, &self::node(b, batch)?).map_err(kernel)?
        }
        Node::IsNull {
            column: name,
            negated,
        } => {
            let array = column(batch, name)?;
            if *negated {
                is_not_null(array.as_ref())
            } else {
                is_null(array.as_ref())
            }
            .map_err(kernel)?
        }
        Node::InList {
            column: name,
            values,
            negated,
        } => {
            let array = column(batch, name)?;
            let mut acc = constant(Some(false), rows);
            for value in values {
                let hit = match value {
                    Some(v) => cmp::eq(array, &Scalar::new(v.clone())).map_err(kernel)?,
                    None => constant(None, rows),
                };
                acc = or_kleene(&acc, &hit).map_err(kernel)?;
            }
            if *negated {
                not(&acc).map_err(kernel)?
            } else {
                acc
            }
        }
        Node::Between {
            column: name,
            low,
            high,
            negated,
        } => {
            let array = column(batch, name)?;
            let above = cmp::gt_eq(array, &Scalar::new(low.clone())).map_err(kernel)?;
            let below = cmp::lt_eq(array, &Scalar::new(high.clone())).map_err(kernel)?;
            let inside = and_kleene(&above, &below).map_err(kernel)?;
            if *negated {
                not(&inside).map_err(kernel)?
            } else {
                inside
            }
        }
        Node::Like {
            column: name,
            pattern,
            negated,
            case_insensitive,
        } => {
            let array = column(batch, name)?;
            let pattern = Scalar::new(pattern.clone());
            match (negated, case_insensitive) {
                (false, false) => like::like(array, &pattern),
                (true, false) => like::nlike(array, &pattern),
                (false, true) => like::ilike(array, &pattern),
                (true, true) => like::nilike(array, &pattern),
            }
            .map_err(kernel)?
        }
    })
}
