//! From the SQL syntax tree to a type-checked [`Node`] tree.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::StringArray;
use arrow_schema::{DataType, Schema};
use sqlparser::ast::{BinaryOperator, Expr, Ident, InTarget, UnaryOperator, Value};

use super::literal::{Lit, cast_literal, literal, typed};
use super::{CmpOp, Literal, MAX_IN_LIST, Node, invalid};
use crate::recipe::is_string;
use crate::{DataError, Result, type_name};

enum Operand {
    Column(String, DataType),
    Lit(Lit),
}

pub(super) struct Compiler<'a> {
    pub(super) schema: &'a Schema,
    pub(super) columns: BTreeSet<String>,
}

impl Compiler<'_> {
    pub(super) fn predicate(&mut self, expr: &Expr) -> Result<Node> {
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

pub(super) fn not_allowed(expr: &Expr) -> DataError {
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
