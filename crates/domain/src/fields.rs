//! Custom fields: types, settings, value validation and normalisation, formulas, and
//! field-level access.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::normalize;

/// Type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    Integer,
    Decimal,
    Money,
    Percent,
    Date,
    Datetime,
    Boolean,
    SingleSelect,
    MultiSelect,
    Email,
    Phone,
    Url,
    UserRef,
    RecordRef,
    Formula,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Money => "money",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Boolean => "boolean",
            FieldType::SingleSelect => "single_select",
            FieldType::MultiSelect => "multi_select",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::UserRef => "user_ref",
            FieldType::RecordRef => "record_ref",
            FieldType::Formula => "formula",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }

    /// Stored as a number-like decimal string; filtered and sorted numerically.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Integer | FieldType::Decimal | FieldType::Money | FieldType::Percent | FieldType::Formula
        )
    }

    /// Stored as ISO text that orders like time.
    pub fn is_temporal(self) -> bool {
        matches!(self, FieldType::Date | FieldType::Datetime)
    }
}

/// Kind of record a `record_ref` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefTarget {
    Account,
    Contact,
    Opportunity,
}

/// A choice of a select field. Retired options stay valid on old records but cannot be
/// chosen again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectOption {
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default)]
    pub retired: bool,
}

/// Type-specific settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// text / long_text: maximum length in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// text: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// decimal: total significant digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    /// decimal: digits after the decimal point (money: 2, percent: 2 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Numeric types: inclusive bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Decimal>,
    /// single_select / multi_select.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<SelectOption>,
    /// record_ref: what it points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RefTarget>,
    /// formula: arithmetic over numeric fields, e.g. `custom.seats * custom.unit_price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

/// What validating a value needs to know about its field.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub key: String,
    pub field_type: FieldType,
    pub settings: Settings,
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> ValueError {
    ValueError {
        code,
        message: message.into(),
    }
}

/// How a value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A value being written: retired options are refused.
    Write,
    /// An existing value re-checked against a changed definition: retired options pass.
    Recheck,
}

fn decimal_of(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

fn bounds(s: &Settings, d: Decimal) -> Result<(), ValueError> {
    if s.min.is_some_and(|m| d < m) || s.max.is_some_and(|m| d > m) {
        let range = match (s.min, s.max) {
            (Some(a), Some(b)) => format!("between {a} and {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            _ => String::new(),
        };
        return Err(err("out_of_range", format!("must be {range}")));
    }
    Ok(())
}

/// Checks a value against its field and returns the stored form (numbers as exact
/// decimal strings, phones and e-mails normalised, datetimes in UTC). `Null` clears.
/// References are only checked for shape here; their existence is checked by the caller.
pub fn check_value(spec: &FieldSpec, v: &Value, mode: Mode) -> Result<Value, ValueError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let s = &spec.settings;
    let text = || v.as_str().ok_or_else(|| err("invalid_type", "must be a string"));
    match spec.field_type {
        FieldType::Text | FieldType::LongText => {
            let t = text()?.trim().to_owned();
            let max = s.max_length.unwrap_or(if spec.field_type == FieldType::Text {
                255
            } else {
                10_000
            });
            if t.chars().count() > max as usize {
                return Err(err("too_long", format!("at most {max} characters")));
            }
            if let Some(p) = &s.pattern {
                let re = regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|_| err("invalid_pattern", "the field's pattern is invalid"))?;
                if !re.is_match(&t) {
                    return Err(err("invalid_format", format!("must match {p}")));
                }
            }
            Ok(if t.is_empty() { Value::Null } else { Value::String(t) })
        }
        FieldType::Integer => {
            let d = decimal_of(v).ok_or_else(|| err("invalid_type", "must be an integer"))?;
            if d.fract() != Decimal::ZERO || d.abs() > Decimal::from(i64::MAX / 2) {
                return Err(err("invalid_type", "must be an integer"));
            }
            bounds(s, d)?;
            // A JSON integer, as `/meta` and the spec say (within ±2^62, exact).
            let n = rust_decimal::prelude::ToPrimitive::to_i64(&d.trunc())
                .ok_or_else(|| err("invalid_type", "must be an integer"))?;
            Ok(Value::from(n))
        }
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            let d = decimal_of(v).ok_or_else(|| {
                err(
                    "invalid_type",
                    "must be a number (a string such as \"12.50\" keeps it exact)",
                )
            })?;
            let scale = s
                .scale
                .unwrap_or(if spec.field_type == FieldType::Decimal { 4 } else { 2 });
            if d.normalize().scale() > scale {
                return Err(err("too_precise", format!("at most {scale} decimal places")));
            }
            let precision = s.precision.unwrap_or(18);
            let digits = d.normalize().mantissa().unsigned_abs().to_string().len() as u32;
            if digits > precision {
                return Err(err("too_precise", format!("at most {precision} significant digits")));
            }
            if spec.field_type == FieldType::Percent
                && (d < Decimal::ZERO || d > Decimal::from(100))
                && s.min.is_none()
                && s.max.is_none()
            {
                return Err(err("out_of_range", "must be between 0 and 100"));
            }
            bounds(s, d)?;
            let mut stored = d;
            stored.rescale(scale);
            Ok(Value::String(stored.to_string()))
        }
        FieldType::Date => {
            let t = text()?;
            let d: chrono::NaiveDate = t
                .trim()
                .parse()
                .map_err(|_| err("invalid_format", "must be a date like 2026-12-31"))?;
            Ok(Value::String(d.to_string()))
        }
        FieldType::Datetime => {
            let t = text()?;
            let d = chrono::DateTime::parse_from_rfc3339(t.trim())
                .map_err(|_| err("invalid_format", "must be an RFC 3339 timestamp"))?;
            Ok(Value::String(
                d.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ))
        }
        FieldType::Boolean => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| err("invalid_type", "must be true or false")),
        FieldType::SingleSelect => {
            let k = text()?;
            check_option(s, k, mode)?;
            Ok(Value::String(k.to_owned()))
        }
        FieldType::MultiSelect => {
            let list = v
                .as_array()
                .ok_or_else(|| err("invalid_type", "must be a list of option keys"))?;
            let mut keys: Vec<String> = Vec::new();
            for item in list {
                let k = item
                    .as_str()
                    .ok_or_else(|| err("invalid_type", "must be a list of option keys"))?;
                check_option(s, k, mode)?;
                if !keys.iter().any(|x| x == k) {
                    keys.push(k.to_owned());
                }
            }
            Ok(Value::Array(keys.into_iter().map(Value::String).collect()))
        }
        FieldType::Email => normalize::normalize_email(text()?)
            .map(Value::String)
            .map_err(|e| err("invalid_format", e.to_string())),
        FieldType::Phone => normalize::normalize_phone(text()?)
            .map(Value::String)
            .map_err(|e| err("invalid_format", e.to_string())),
        FieldType::Url => {
            let t = text()?.trim();
            let ok = (t.starts_with("http://") || t.starts_with("https://"))
                && t.len() > 10
                && !t.chars().any(char::is_whitespace);
            if ok {
                Ok(Value::String(t.to_owned()))
            } else {
                Err(err("invalid_format", "must be an http(s) URL"))
            }
        }
        FieldType::UserRef | FieldType::RecordRef => {
            let id = Uuid::parse_str(text()?.trim()).map_err(|_| err("invalid_format", "must be an id (UUID)"))?;
            Ok(Value::String(id.to_string()))
        }
        FieldType::Formula => Err(err("read_only", "a formula field is computed")),
    }
}

fn check_option(s: &Settings, k: &str, mode: Mode) -> Result<(), ValueError> {
    match s.options.iter().find(|o| o.key == k) {
        None => Err(err("invalid_option", format!("`{k}` is not an option of this field"))),
        Some(o) if o.retired && mode == Mode::Write => Err(err("retired_option", format!("`{k}` is retired"))),
        Some(_) => Ok(()),
    }
}

/// Checks a definition's settings for its type; returns (setting, message) problems.
pub fn check_settings(t: FieldType, s: &Settings) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let is_select = matches!(t, FieldType::SingleSelect | FieldType::MultiSelect);
    if is_select {
        if s.options.is_empty() {
            out.push(("options", "select fields need at least one option".into()));
        }
        let mut seen = Vec::new();
        for o in &s.options {
            if !crate::fields::valid_key(&o.key) {
                out.push(("options", format!("option key `{}` must be snake_case", o.key)));
            }
            if seen.contains(&&o.key) {
                out.push(("options", format!("option key `{}` is listed twice", o.key)));
            }
            seen.push(&o.key);
        }
    } else if !s.options.is_empty() {
        out.push(("options", "only select fields have options".into()));
    }
    if t == FieldType::RecordRef && s.target.is_none() {
        out.push((
            "target",
            "a record reference needs a target: account, contact or opportunity".into(),
        ));
    }
    if t != FieldType::RecordRef && s.target.is_some() {
        out.push(("target", "only record references have a target".into()));
    }
    if t == FieldType::Formula {
        match &s.expr {
            None => out.push(("expr", "a formula needs an expression".into())),
            Some(e) => {
                if let Err(m) = Formula::parse(e) {
                    out.push(("expr", m));
                }
            }
        }
    } else if s.expr.is_some() {
        out.push(("expr", "only formula fields have an expression".into()));
    }
    if let Some(p) = &s.pattern {
        if t != FieldType::Text {
            out.push(("pattern", "only text fields have a pattern".into()));
        } else if regex::Regex::new(p).is_err() {
            out.push(("pattern", "not a valid regular expression".into()));
        }
    }
    if let (Some(a), Some(b)) = (s.min, s.max) {
        if a > b {
            out.push(("min", "min is greater than max".into()));
        }
    }
    if (s.min.is_some() || s.max.is_some()) && !t.is_numeric() {
        out.push(("min", "only numeric fields have bounds".into()));
    }
    if s.scale.is_some_and(|x| x > 10) || s.precision.is_some_and(|p| p == 0 || p > 30) {
        out.push(("scale", "scale up to 10, precision 1..=30".into()));
    }
    out
}

/// Field and option keys: snake_case, starting with a letter, at most 40 characters.
pub fn valid_key(k: &str) -> bool {
    (1..=40).contains(&k.len())
        && k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Field-level access for a role (ordered from least to most).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    /// Absent from responses, filters, sorts, exports and reports.
    Hidden,
    /// Shown masked (e.g. 138****1234); read-only.
    Masked,
    /// Shown, not writable.
    ReadOnly,
    /// Shown and writable.
    Full,
}

impl FieldAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldAccess::Hidden => "hidden",
            FieldAccess::Masked => "masked",
            FieldAccess::ReadOnly => "read_only",
            FieldAccess::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }

    /// A user's access from the restrictions of each of their roles (`None` for a role
    /// without a restriction on the field): the most permissive wins.
    pub fn combine(per_role: &[Option<FieldAccess>]) -> FieldAccess {
        per_role
            .iter()
            .map(|r| r.unwrap_or(FieldAccess::Full))
            .max()
            .unwrap_or(FieldAccess::Full)
    }
}

/// A field qualified by its object: (object, field).
pub type FieldRef = (&'static str, &'static str);

/// A derived field: (object, field, sources).
pub type Derived = (&'static str, &'static str, &'static [FieldRef]);

/// Built-in fields computed from other fields, as (object, field, sources), each source
/// `(object, field)`. A derived field is never more visible than its least visible
/// source: with a deal's amount hidden, its weighted amount (amount x probability) is
/// hidden too, and with product costs hidden, quote cost totals and margins are.
pub const DERIVED: &[Derived] = &[
    (
        "opportunities",
        "weighted_amount",
        &[("opportunities", "amount"), ("opportunities", "probability")],
    ),
    ("quotes", "cost_total", &[("products", "standard_cost")]),
    ("quotes", "gross_margin", &[("quotes", "cost_total")]),
    ("quotes", "gross_margin_pct", &[("quotes", "cost_total")]),
];

/// The sources of a derived built-in field (empty for a stored one).
pub fn derived_from(object: &str, field: &str) -> &'static [FieldRef] {
    DERIVED
        .iter()
        .find(|(o, f, _)| *o == object && *f == field)
        .map_or(&[], |(_, _, src)| src)
}

/// Masks a value: phones keep head and tail (138****1234), other text keeps its first
/// character.
pub fn mask(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().filter(|c| c.is_ascii_digit()).count() >= 7 => {
            Value::String(normalize::mask_phone(s))
        }
        Value::String(s) => {
            let mut out: String = s.chars().take(1).collect();
            out.push_str("***");
            Value::String(out)
        }
        Value::Null => Value::Null,
        _ => Value::String("***".into()),
    }
}

/// An arithmetic formula over numeric fields: `+ - * /`, parentheses, decimal numbers
/// and field references (`amount`, `custom.seats`).
#[derive(Debug, Clone, PartialEq)]
pub enum Formula {
    Num(Decimal),
    Field(String),
    Neg(Box<Formula>),
    Bin(Box<Formula>, char, Box<Formula>),
}

impl Formula {
    pub fn parse(src: &str) -> Result<Formula, String> {
        let tokens = tokenize(src)?;
        let mut p = Parser { tokens, pos: 0 };
        let f = p.expr(0)?;
        if p.pos != p.tokens.len() {
            return Err(format!("unexpected `{}`", p.tokens[p.pos]));
        }
        Ok(f)
    }

    /// Field references, for checking they exist and are numeric.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Formula::Num(_) => Vec::new(),
            Formula::Field(f) => vec![f.as_str()],
            Formula::Neg(a) => a.fields(),
            Formula::Bin(a, _, b) => {
                let mut v = a.fields();
                v.extend(b.fields());
                v
            }
        }
    }

    /// Evaluates over a record (custom values under `custom`); `None` when a field is
    /// missing or a division by zero occurs.
    pub fn eval(&self, record: &Map<String, Value>) -> Option<Decimal> {
        match self {
            Formula::Num(d) => Some(*d),
            Formula::Field(f) => {
                let v = match f.strip_prefix("custom.") {
                    Some(k) => record.get("custom").and_then(|c| c.get(k)),
                    None => record.get(f.as_str()),
                }?;
                decimal_of(v)
            }
            Formula::Neg(a) => a.eval(record).map(|d| -d),
            Formula::Bin(a, op, b) => {
                let (x, y) = (a.eval(record)?, b.eval(record)?);
                match op {
                    '+' => x.checked_add(y),
                    '-' => x.checked_sub(y),
                    '*' => x.checked_mul(y),
                    _ => x.checked_div(y),
                }
            }
        }
    }
}

fn tokenize(src: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
        if out.len() > 200 {
            return Err("formula too long".into());
        }
    }
    if out.is_empty() {
        return Err("empty formula".into());
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn expr(&mut self, depth: usize) -> Result<Formula, String> {
        if depth > 32 {
            return Err("formula nested too deeply".into());
        }
        let mut lhs = self.term(depth)?;
        while let Some(op) = self.tokens.get(self.pos).filter(|t| *t == "+" || *t == "-").cloned() {
            self.pos += 1;
            let rhs = self.term(depth)?;
            lhs = Formula::Bin(Box::new(lhs), op.chars().next().unwrap_or('+'), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn term(&mut self, depth: usize) -> Result<Formula, String> {
        let mut lhs = self.atom(depth)?;
        while let Some(op) = self.tokens.get(self.pos).filter(|t| *t == "*" || *t == "/").cloned() {
            self.pos += 1;
            let rhs = self.atom(depth)?;
            lhs = Formula::Bin(Box::new(lhs), op.chars().next().unwrap_or('*'), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn atom(&mut self, depth: usize) -> Result<Formula, String> {
        let tok = self.tokens.get(self.pos).cloned().ok_or("formula ends too early")?;
        self.pos += 1;
        match tok.as_str() {
            "(" => {
                let inner = self.expr(depth + 1)?;
                if self.tokens.get(self.pos).map(String::as_str) != Some(")") {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            "-" => Ok(Formula::Neg(Box::new(self.atom(depth + 1)?))),
            t if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') => Decimal::from_str(t)
                .map(Formula::Num)
                .map_err(|_| format!("bad number `{t}`")),
            t if t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => Ok(Formula::Field(t.to_owned())),
            t => Err(format!("unexpected `{t}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(t: FieldType, s: serde_json::Value) -> FieldSpec {
        FieldSpec {
            key: "k".into(),
            field_type: t,
            settings: serde_json::from_value(s).unwrap(),
        }
    }

    fn ok(t: FieldType, s: serde_json::Value, v: serde_json::Value) -> serde_json::Value {
        check_value(&spec(t, s), &v, Mode::Write).unwrap()
    }

    fn bad(t: FieldType, s: serde_json::Value, v: serde_json::Value) -> &'static str {
        check_value(&spec(t, s), &v, Mode::Write).unwrap_err().code
    }

    #[test]
    fn every_type_validates_and_normalises() {
        use FieldType::*;
        assert_eq!(ok(Text, json!({"max_length": 5}), json!(" abc ")), json!("abc"));
        assert_eq!(bad(Text, json!({"max_length": 2}), json!("abc")), "too_long");
        assert_eq!(
            bad(Text, json!({"pattern": "[A-Z]{2}-[0-9]+"}), json!("ab-1")),
            "invalid_format"
        );
        assert_eq!(
            ok(Text, json!({"pattern": "[A-Z]{2}-[0-9]+"}), json!("SH-01")),
            json!("SH-01")
        );
        assert_eq!(bad(Text, json!({}), json!(5)), "invalid_type");
        assert_eq!(
            ok(LongText, json!({}), json!("长文本".repeat(100)))
                .as_str()
                .unwrap()
                .chars()
                .count(),
            300
        );
        assert_eq!(ok(Integer, json!({"min": 0, "max": 10}), json!(7)), json!(7));
        assert_eq!(ok(Integer, json!({}), json!("42")), json!(42));
        assert_eq!(ok(Integer, json!({}), json!("-42.0")), json!(-42));
        assert_eq!(bad(Integer, json!({}), json!(1.5)), "invalid_type");
        assert_eq!(bad(Integer, json!({"max": 10}), json!(11)), "out_of_range");
        assert_eq!(ok(Decimal, json!({"scale": 3}), json!("1.5")), json!("1.500"));
        assert_eq!(bad(Decimal, json!({"scale": 2}), json!("1.555")), "too_precise");
        assert_eq!(
            bad(Decimal, json!({"precision": 4, "scale": 2}), json!("123.45")),
            "too_precise"
        );
        assert_eq!(ok(Money, json!({}), json!("1999.9")), json!("1999.90"));
        assert_eq!(bad(Money, json!({"min": "0"}), json!("-1")), "out_of_range");
        assert_eq!(ok(Percent, json!({}), json!(15)), json!("15.00"));
        assert_eq!(bad(Percent, json!({}), json!(101)), "out_of_range");
        assert_eq!(ok(Date, json!({}), json!("2026-02-28")), json!("2026-02-28"));
        assert_eq!(bad(Date, json!({}), json!("2026-02-30")), "invalid_format");
        assert_eq!(
            ok(Datetime, json!({}), json!("2026-01-01T08:00:00+08:00")),
            json!("2026-01-01T00:00:00Z")
        );
        assert_eq!(ok(Boolean, json!({}), json!(true)), json!(true));
        assert_eq!(bad(Boolean, json!({}), json!("yes")), "invalid_type");
        let opts = json!({"options": [{"key": "east", "label_zh": "华东", "label_en": "East"},
                                      {"key": "old", "label_zh": "旧", "label_en": "Old", "retired": true}]});
        assert_eq!(ok(SingleSelect, opts.clone(), json!("east")), json!("east"));
        assert_eq!(bad(SingleSelect, opts.clone(), json!("west")), "invalid_option");
        assert_eq!(bad(SingleSelect, opts.clone(), json!("old")), "retired_option");
        assert!(check_value(&spec(SingleSelect, opts.clone()), &json!("old"), Mode::Recheck).is_ok());
        assert_eq!(ok(MultiSelect, opts.clone(), json!(["east", "east"])), json!(["east"]));
        assert_eq!(bad(MultiSelect, opts, json!("east")), "invalid_type");
        assert_eq!(ok(Email, json!({}), json!(" A@B.CN ")), json!("a@b.cn"));
        assert_eq!(bad(Email, json!({}), json!("nope")), "invalid_format");
        assert_eq!(ok(Phone, json!({}), json!("+86 138 0000 1111")), json!("13800001111"));
        assert_eq!(
            ok(Url, json!({}), json!("https://example.com/x")),
            json!("https://example.com/x")
        );
        assert_eq!(bad(Url, json!({}), json!("ftp://x")), "invalid_format");
        assert_eq!(bad(UserRef, json!({}), json!("not-a-uuid")), "invalid_format");
        assert_eq!(bad(Formula, json!({"expr": "1"}), json!(1)), "read_only");
        assert_eq!(ok(Text, json!({}), json!(null)), json!(null));
    }

    #[test]
    fn settings_are_checked_per_type() {
        assert!(!check_settings(FieldType::SingleSelect, &Settings::default()).is_empty());
        assert!(!check_settings(FieldType::RecordRef, &Settings::default()).is_empty());
        assert!(!check_settings(
            FieldType::Text,
            &Settings {
                min: Some(Decimal::ONE),
                ..Settings::default()
            }
        )
        .is_empty());
        assert!(!check_settings(
            FieldType::Formula,
            &Settings {
                expr: Some("1 +".into()),
                ..Settings::default()
            }
        )
        .is_empty());
        assert!(check_settings(
            FieldType::Formula,
            &Settings {
                expr: Some("custom.a * (1 + amount)".into()),
                ..Settings::default()
            }
        )
        .is_empty());
    }

    #[test]
    fn formulas_compute_exactly() {
        let f = Formula::parse("custom.seats * custom.price - amount / 2").unwrap();
        assert_eq!(f.fields(), vec!["custom.seats", "custom.price", "amount"]);
        let rec: Map<String, Value> =
            serde_json::from_value(json!({"amount": "10", "custom": {"seats": "3", "price": "0.10"}})).unwrap();
        assert_eq!(f.eval(&rec), Some(Decimal::from_str("-4.70").unwrap()));
        assert_eq!(
            Formula::parse("-(1 + 2) * 3").unwrap().eval(&Map::new()),
            Some(Decimal::from(-9))
        );
        assert_eq!(Formula::parse("1 / 0").unwrap().eval(&Map::new()), None);
        assert_eq!(Formula::parse("custom.missing + 1").unwrap().eval(&rec), None);
        assert!(Formula::parse("(1").is_err());
        assert!(Formula::parse("1 + ;").is_err());
    }

    #[test]
    fn most_permissive_role_wins_and_masks_keep_the_ends() {
        assert_eq!(
            FieldAccess::combine(&[Some(FieldAccess::Hidden), None]),
            FieldAccess::Full
        );
        assert_eq!(
            FieldAccess::combine(&[Some(FieldAccess::Hidden), Some(FieldAccess::Masked)]),
            FieldAccess::Masked
        );
        assert_eq!(FieldAccess::combine(&[]), FieldAccess::Full);
        assert_eq!(mask(&json!("13812341234")), json!("138****1234"));
        assert_eq!(mask(&json!("wangfang")), json!("w***"));
    }
}
