//! Row filter: one SQL predicate from a small, checked subset, evaluated with Arrow kernels.
//!
//! Accepted: column names (double quotes for names with spaces or capitals; unquoted names
//! match case-insensitively when unambiguous), literals (numbers, 'strings', TRUE, FALSE,
//! NULL, DATE 'yyyy-mm-dd', TIMESTAMP '…'), `= <> != < <= > >=`, AND, OR, NOT, parentheses,
//! `[NOT] IN (literals)`, `[NOT] BETWEEN`, `IS [NOT] NULL`, `[NOT] LIKE`, `[NOT] ILIKE`, and a
//! boolean column on its own. Anything else is refused with the reason. SQL's three-valued
//! logic applies: a row is kept only when the predicate is TRUE (not FALSE, not NULL).

use std::collections::BTreeSet;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, cast::AsArray};
use arrow_schema::Schema;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::{DataError, Result};

mod compile;
mod eval;
mod literal;

/// Longest predicate accepted, in bytes.
const MAX_SQL: usize = 8 * 1024;
/// Most values in one IN list.
const MAX_IN_LIST: usize = 1000;

/// A parsed, type-checked row filter.
#[derive(Debug, Clone)]
pub struct RowFilter {
    sql: String,
    root: Node,
    columns: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            same => same,
        }
    }
}

/// A literal typed as its column: one-element array.
type Literal = ArrayRef;

#[derive(Debug, Clone)]
enum Node {
    Const(Option<bool>),
    Column(String),
    CmpLiteral {
        column: String,
        op: CmpOp,
        value: Literal,
    },
    CmpColumns {
        left: String,
        op: CmpOp,
        right: String,
    },
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    IsNull {
        column: String,
        negated: bool,
    },
    InList {
        column: String,
        values: Vec<Option<Literal>>,
        negated: bool,
    },
    Between {
        column: String,
        low: Literal,
        high: Literal,
        negated: bool,
    },
    Like {
        column: String,
        pattern: Literal,
        negated: bool,
        case_insensitive: bool,
    },
}

fn invalid(msg: impl Into<String>) -> DataError {
    DataError::InvalidFilter(msg.into())
}

impl RowFilter {
    /// Parse and type-check `sql` against the dataset's schema.
    pub fn parse(sql: &str, schema: &Schema) -> Result<RowFilter> {
        if sql.len() > MAX_SQL {
            return Err(invalid(format!(
                "the filter is longer than {MAX_SQL} bytes"
            )));
        }
        if sql.trim().is_empty() {
            return Err(invalid("the filter is empty"));
        }
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .with_recursion_limit(64)
            .try_with_sql(sql)
            .map_err(|e| invalid(e.to_string()))?;
        let expr = parser.parse_expr().map_err(|e| invalid(e.to_string()))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(invalid(format!(
                "unexpected `{}` at line {} column {}: the filter is a single predicate (no ';', no second statement)",
                next.token, next.span.start.line, next.span.start.column
            )));
        }
        let mut compiler = compile::Compiler {
            schema,
            columns: BTreeSet::new(),
        };
        let root = compiler.predicate(&expr)?;
        Ok(RowFilter {
            sql: sql.to_string(),
            root,
            columns: compiler.columns,
        })
    }

    /// The predicate as written.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Columns the filter reads (they need not be in the view's projection).
    pub fn columns(&self) -> BTreeSet<String> {
        self.columns.clone()
    }

    /// TRUE, FALSE or NULL per row; keep the rows that are TRUE.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        eval::node(&self.root, batch)
    }
}

/// Used by the evaluator to read boolean columns.
fn as_boolean(array: &ArrayRef) -> Option<&BooleanArray> {
    array.as_boolean_opt()
}

#[cfg(test)]
mod tests;
