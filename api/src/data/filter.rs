//! Row filter: one SQL predicate from a small, checked subset, evaluated with Arrow kernels.
//!
//! Accepted: column names (double quotes for names with spaces or capitals; unquoted names
//! match case-insensitively when unambiguous), literals (numbers, 'strings', TRUE, FALSE,
//! NULL, DATE 'yyyy-mm-dd', TIMESTAMP '…'), `= <> != < <= > >=`, AND, OR, NOT, parentheses,
//! `[NOT] IN (literals)`, `[NOT] BETWEEN`, `IS [NOT] NULL`, `[NOT] LIKE`, `[NOT] ILIKE`, and a
//! boolean column on its own. Anything else is refused with the reason. SQL's three-valued
//! logic applies: a row is kept only when the predicate is TRUE (not FALSE, not NULL).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, cast::AsArray};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, Schema};
use sqlparser::ast::{
    BinaryOperator, DataType as SqlType, Expr, Ident, InTarget, TypedString, UnaryOperator, Value,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::recipe::{is_float, is_integer, is_string, is_temporal};
use super::{DataError, Result, type_name};

mod eval;

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

/// A literal as written.
enum Lit {
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

enum Operand {
    Column(String, DataType),
    Lit(Lit),
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
        let mut compiler = Compiler {
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

struct Compiler<'a> {
    schema: &'a Schema,
    columns: BTreeSet<String>,
}

impl Compiler<'_> {
    fn predicate(&mut self, expr: &Expr) -> Result<Node> {
        use BinaryOperator as B;
        Ok(match expr {
            Expr::Nested(inner) => self.predicate(inner)?,
            Expr::BinaryOp {
                left,
                op: B::And,
                right,
            } => Node::And(
                Box::new(self.predicate(left)?),
                Box::new(self.predicate(right)?),
            ),
            Expr::BinaryOp {
                left,
                op: B::Or,
                right,
            } => Node::Or(
                Box::new(self.predicate(left)?),
                Box::new(self.predicate(right)?),
            ),
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    B::Eq => CmpOp::Eq,
                    B::NotEq => CmpOp::NotEq,
                    B::Lt => CmpOp::Lt,
                    B::LtEq => CmpOp::LtEq,
                    B::Gt => CmpOp::Gt,
                    B::GtEq => CmpOp::GtEq,
                    other => return Err(invalid(format!("operator `{other}` is not allowed"))),
                };
                self.comparison(left, op, right)?
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Node::Not(Box::new(self.predicate(expr)?)),
            Expr::IsNull(e) | Expr::IsNotNull(e) => Node::IsNull {
                column: self.column(e)?.0,
                negated: matches!(expr, Expr::IsNotNull(_)),
            },
            Expr::In {
                expr: e,
                target,
                negated,
                ..
            } => {
                let InTarget::List(list) = target else {
                    return Err(invalid(match target {
                        InTarget::Subquery(_) => "subqueries are not allowed".to_string(),
                        _ => "IN takes a list of literals: x IN (1, 2, 3)".to_string(),
                    }));
                };
                if list.len() > MAX_IN_LIST {
                    return Err(invalid(format!(
                        "IN lists hold at most {MAX_IN_LIST} values"
                    )));
                }
                let (column, t) = self.column(e)?;
                let values = list
                    .iter()
                    .map(|v| typed(&literal(v)?, &column, &t))
                    .collect::<Result<_>>()?;
                Node::InList {
                    column,
                    values,
                    negated: *negated,
                }
            }
            Expr::Between {
                expr: e,
                negated,
                low,
                high,
            } => {
                let (column, t) = self.column(e)?;
                let bound = |b: &Expr| -> Result<Literal> {
                    typed(&literal(b)?, &column, &t)?
                        .ok_or_else(|| invalid("BETWEEN bounds cannot be NULL"))
                };
                let (low, high) = (bound(low)?, bound(high)?);
                Node::Between {
                    column,
                    low,
                    high,
                    negated: *negated,
                }
            }
            Expr::Like {
                negated,
                any,
                expr: e,
                pattern,
                escape_char,
            }
            | Expr::ILike {
                negated,
                any,
                expr: e,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(invalid(
                        "LIKE ANY and LIKE … ESCAPE are not allowed (the escape character is \\)",
                    ));
                }
                let (column, t) = self.column(e)?;
                if !is_string(&t) {
                    return Err(invalid(format!(
                        "LIKE applies to string columns; \"{column}\" is {}",
                        type_name(&t)
                    )));
                }
                let Lit::Str(p) = literal(pattern)? else {
                    return Err(invalid("the LIKE pattern must be a 'quoted string'"));
                };
                let pattern = cast_literal(Arc::new(StringArray::from(vec![p])), &column, &t)?;
                let case_insensitive = matches!(expr, Expr::ILike { .. });
                Node::Like {
                    column,
                    pattern,
                    negated: *negated,
                    case_insensitive,
                }
            }
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let (column, t) = self.column(expr)?;
                if t != DataType::Boolean {
                    return Err(invalid(format!(
                        "column \"{column}\" is {}, not boolean: compare it with a value",
                        type_name(&t)
                    )));
                }
                Node::Column(column)
            }
            Expr::Value(v) => match &v.value {
                Value::Boolean(b) => Node::Const(Some(*b)),
                Value::Null => Node::Const(None),
                _ => return Err(invalid(format!("`{expr}` is not a condition"))),
            },
            other => return Err(not_allowed(other)),
        })
    }

    fn comparison(&mut self, left: &Expr, op: CmpOp, right: &Expr) -> Result<Node> {
        Ok(match (self.operand(left)?, self.operand(right)?) {
            (Operand::Column(l, lt), Operand::Column(r, rt)) => {
                if lt != rt {
                    return Err(invalid(format!(
                        "cannot compare \"{l}\" ({}) with \"{r}\" ({})",
                        type_name(&lt),
                        type_name(&rt)
                    )));
                }
                Node::CmpColumns {
                    left: l,
                    op,
                    right: r,
                }
            }
            (Operand::Column(column, t), Operand::Lit(lit)) => match typed(&lit, &column, &t)? {
                Some(value) => Node::CmpLiteral { column, op, value },
                None => Node::Const(None),
            },
            (Operand::Lit(lit), Operand::Column(column, t)) => match typed(&lit, &column, &t)? {
                Some(value) => Node::CmpLiteral {
                    column,
                    op: op.flipped(),
                    value,
                },
                None => Node::Const(None),
            },
            (Operand::Lit(a), Operand::Lit(b)) => {
                return Err(invalid(format!(
                    "`{a}` compared with `{b}`: a comparison needs a column"
                )));
            }
        })
    }

    fn operand(&mut self, expr: &Expr) -> Result<Operand> {
        match expr {
            Expr::Nested(inner) => self.operand(inner),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let (name, t) = self.column(expr)?;
                Ok(Operand::Column(name, t))
            }
            _ => Ok(Operand::Lit(literal(expr)?)),
        }
    }

    /// Resolve a column reference; unquoted names match case-insensitively if unambiguous.
    fn column(&mut self, expr: &Expr) -> Result<(String, DataType)> {
        let ident: &Ident = match expr {
            Expr::Nested(inner) => return self.column(inner),
            Expr::Identifier(ident) => ident,
            Expr::CompoundIdentifier(parts) if parts.len() == 1 => &parts[0],
            Expr::CompoundIdentifier(_) => {
                return Err(invalid(format!(
                    "qualified name `{expr}` is not allowed; quote a column name that contains a dot"
                )));
            }
            other => {
                return Err(match literal(other) {
                    Ok(_) => invalid(format!("expected a column, found `{other}`")),
                    Err(e) => e,
                });
            }
        };
        let fields = self.schema.fields();
        let exact = fields.iter().find(|f| f.name() == &ident.value);
        let field = match (exact, ident.quote_style) {
            (Some(f), _) => f,
            (None, Some(_)) => return Err(unknown(&ident.value)),
            (None, None) => {
                let mut matches = fields
                    .iter()
                    .filter(|f| f.name().eq_ignore_ascii_case(&ident.value));
                match (matches.next(), matches.next()) {
                    (Some(f), None) => f,
                    (Some(_), Some(_)) => {
                        return Err(invalid(format!(
                            "column name {} is ambiguous; quote it with the exact case",
                            ident.value
                        )));
                    }
                    _ => return Err(unknown(&ident.value)),
                }
            }
        };
        self.columns.insert(field.name().clone());
        Ok((field.name().clone(), field.data_type().clone()))
    }
}

fn unknown(name: &str) -> DataError {
    invalid(format!("unknown column \"{name}\""))
}

fn not_allowed(expr: &Expr) -> DataError {
    invalid(match expr {
        Expr::Subquery(_) | Expr::Exists { .. } => "subqueries are not allowed".to_string(),
        Expr::Function(f) => format!("function calls are not allowed (`{}`)", f.name),
        Expr::Cast { .. } => {
            "CAST is not allowed; compare with a literal of the column's type".into()
        }
        Expr::Case { .. } => "CASE is not allowed".into(),
        other => format!("`{other}` is not allowed in a filter"),
    })
}

fn literal(expr: &Expr) -> Result<Lit> {
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
fn typed(lit: &Lit, column: &str, t: &DataType) -> Result<Option<Literal>> {
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

fn cast_literal(array: ArrayRef, column: &str, t: &DataType) -> Result<Literal> {
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

/// Used by the evaluator to read boolean columns.
fn as_boolean(array: &ArrayRef) -> Option<&BooleanArray> {
    array.as_boolean_opt()
}

#[cfg(test)]
mod tests;
