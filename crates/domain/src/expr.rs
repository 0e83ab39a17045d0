//! A small, general condition language over a record's fields, shared by stage entry
//! criteria, the rule engine and the approval engine.
//!
//! ```json
//! {"all": [{"field": "amount", "op": "gt", "value": "100000"},
//!          {"any": [{"field": "industry", "op": "in", "value": ["finance", "energy"]},
//!                   {"not": {"field": "discount_pct", "op": "lte", "value": 15}}]}]}
//! ```
//! Numbers compare exactly (decimal strings and JSON numbers alike); dates and
//! timestamps compare as ISO-8601 text.

use std::cmp::Ordering;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A boolean expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Expr {
    All {
        all: Vec<Expr>,
    },
    Any {
        any: Vec<Expr>,
    },
    Not {
        not: Box<Expr>,
    },
    Compare {
        /// Dotted path into the record, e.g. `amount` or `custom.region_code`.
        field: String,
        op: Op,
        #[serde(default, skip_serializing_if = "Value::is_null")]
        value: Value,
    },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    /// The field has a non-empty value (value ignored).
    Present,
    /// The field is null, missing, empty text or an empty list (value ignored).
    Blank,
    /// Text contains (case-insensitive), or a list contains the value.
    Contains,
}

/// An expression that cannot be evaluated as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ExprError {
    pub path: String,
    pub message: String,
}

impl Expr {
    /// Checks the shape: operators get the value they need, nesting is bounded.
    pub fn validate(&self) -> Result<(), ExprError> {
        self.validate_at("expr", 0)
    }

    fn validate_at(&self, path: &str, depth: usize) -> Result<(), ExprError> {
        let err = |m: &str| {
            Err(ExprError {
                path: path.to_owned(),
                message: m.to_owned(),
            })
        };
        if depth > 16 {
            return err("nested too deeply (max 16)");
        }
        match self {
            Expr::All { all: list } | Expr::Any { any: list } => {
                if list.is_empty() {
                    return err("needs at least one condition");
                }
                for (i, e) in list.iter().enumerate() {
                    e.validate_at(&format!("{path}[{i}]"), depth + 1)?;
                }
                Ok(())
            }
            Expr::Not { not } => not.validate_at(&format!("{path}.not"), depth + 1),
            Expr::Compare { field, op, value } => {
                if field.is_empty()
                    || !field
                        .split('.')
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    return err("field must be a dotted path of letters, digits and _");
                }
                match op {
                    Op::Present | Op::Blank => Ok(()),
                    Op::In | Op::NotIn if !value.is_array() => err("`in` and `not_in` need a list value"),
                    _ if value.is_null() && !matches!(op, Op::Eq | Op::Ne) => err("this operator needs a value"),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Evaluates against a JSON object.
    pub fn eval(&self, record: &Value) -> bool {
        match self {
            Expr::All { all } => all.iter().all(|e| e.eval(record)),
            Expr::Any { any } => any.iter().any(|e| e.eval(record)),
            Expr::Not { not } => !not.eval(record),
            Expr::Compare { field, op, value } => compare(lookup(record, field), *op, value),
        }
    }

    /// Every field the expression reads.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::All { all: l } | Expr::Any { any: l } => l.iter().for_each(|e| e.collect_fields(out)),
            Expr::Not { not } => not.collect_fields(out),
            Expr::Compare { field, .. } => out.push(field),
        }
    }
}

/// Reads a dotted path from a JSON object.
pub fn lookup<'a>(record: &'a Value, path: &str) -> &'a Value {
    let mut cur = record;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return &Value::Null,
        };
    }
    cur
}

/// Whether a value counts as filled in.
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .ok()
            .or_else(|| n.as_f64().and_then(|f| Decimal::try_from(f).ok())),
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// Orders two values: as decimals when both are numeric, else as text or booleans.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_decimal(a), as_decimal(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match order(a, b) {
        Some(o) => o == Ordering::Equal,
        None => a == b,
    }
}

fn compare(actual: &Value, op: Op, expected: &Value) -> bool {
    match op {
        Op::Present => !is_blank(actual),
        Op::Blank => is_blank(actual),
        Op::Eq => equal(actual, expected),
        Op::Ne => !equal(actual, expected),
        Op::Gt => order(actual, expected) == Some(Ordering::Greater),
        Op::Gte => matches!(order(actual, expected), Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => order(actual, expected) == Some(Ordering::Less),
        Op::Lte => matches!(order(actual, expected), Some(Ordering::Less | Ordering::Equal)),
        Op::In => expected.as_array().is_some_and(|l| l.iter().any(|e| equal(actual, e))),
        Op::NotIn => expected.as_array().is_some_and(|l| !l.iter().any(|e| equal(actual, e))),
        Op::Contains => match actual {
            Value::String(s) => expected
                .as_str()
                .is_some_and(|e| s.to_lowercase().contains(&e.to_lowercase())),
            Value::Array(l) => l.iter().any(|x| equal(x, expected)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Expr {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn compares_money_exactly_and_dates_as_text() {
        let rec = json!({"amount": "100000.10", "discount_pct": 15, "close": "2026-12-31", "tags": ["vip"], "custom": {"score": 7}});
        assert!(parse(json!({"field": "amount", "op": "gt", "value": "100000.09"})).eval(&rec));
        assert!(!parse(json!({"field": "amount", "op": "gt", "value": 100000.10})).eval(&rec));
        assert!(parse(json!({"field": "discount_pct", "op": "lte", "value": "15.00"})).eval(&rec));
        assert!(parse(json!({"field": "close", "op": "lt", "value": "2027-01-01"})).eval(&rec));
        assert!(parse(json!({"field": "tags", "op": "contains", "value": "vip"})).eval(&rec));
        assert!(parse(json!({"field": "custom.score", "op": "in", "value": [5, 7]})).eval(&rec));
        assert!(!parse(json!({"field": "missing", "op": "gt", "value": 1})).eval(&rec));
        assert!(parse(json!({"field": "missing", "op": "blank"})).eval(&rec));
    }

    #[test]
    fn combinators_nest() {
        let e = parse(json!({"all": [
            {"field": "a", "op": "eq", "value": 1},
            {"any": [{"field": "b", "op": "present"}, {"not": {"field": "c", "op": "eq", "value": "x"}}]}
        ]}));
        assert!(e.validate().is_ok());
        assert!(e.eval(&json!({"a": 1, "c": "y"})));
        assert!(!e.eval(&json!({"a": 1, "c": "x"})));
        assert!(e.eval(&json!({"a": "1.0", "b": "z", "c": "x"})));
        assert_eq!(e.fields(), vec!["a", "b", "c"]);
    }

    #[test]
    fn invalid_shapes_are_reported() {
        assert!(parse(json!({"all": []})).validate().is_err());
        assert!(parse(json!({"field": "a", "op": "in", "value": 3})).validate().is_err());
        assert!(parse(json!({"field": "a; drop", "op": "eq", "value": 3}))
            .validate()
            .is_err());
        assert!(parse(json!({"field": "a", "op": "gt"})).validate().is_err());
        assert!(serde_json::from_value::<Expr>(json!({"field": "a", "op": "approx", "value": 1})).is_err());
    }
}
