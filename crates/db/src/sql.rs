//! A small builder for dynamic SQL (filters, data scope, keyset pagination) with bound
//! parameters, on top of diesel's boxed `sql_query`.

use chrono::{DateTime, NaiveDate, Utc};
use crm_domain::access::ScopeFilter;
use crm_domain::listing::{self, Cursor, ListError, SortKey};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{self, HasSqlType};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::marker::PhantomData;
use uuid::Uuid;

use crate::QueryResult;

/// One bound value of a dynamic query.
trait BindPart<'a>: Send + 'a {
    fn walk<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct TypedBind<ST, V> {
    value: V,
    _st: PhantomData<fn() -> ST>,
}

impl<'a, ST, V> BindPart<'a> for TypedBind<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg> + Send + 'a,
    ST: 'a,
{
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

enum Part<'a> {
    Text(String),
    Bind(Box<dyn BindPart<'a>>),
}

/// A dynamic statement (filters, scope, keyset) that diesel may prepare and cache by
/// its SQL text. Unlike `sql_query`, it does not opt out of the statement cache, so a
/// list endpoint is parsed and planned once per connection and shape, not per request.
pub struct DynQuery<'a> {
    parts: Vec<Part<'a>>,
}

impl QueryFragment<Pg> for DynQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_sql(t),
                Part::Bind(b) => b.walk(out.reborrow())?,
            }
        }
        Ok(())
    }
}

impl QueryId for DynQuery<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for DynQuery<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl RunQueryDsl<PgConnection> for DynQuery<'_> {}

/// SQL text plus its bound parameters, built piece by piece.
pub struct Sql<'a> {
    parts: Vec<Part<'a>>,
}

impl<'a> Sql<'a> {
    pub fn new(sql: &str) -> Self {
        Sql {
            parts: vec![Part::Text(sql.to_owned())],
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        match self.parts.last_mut() {
            Some(Part::Text(t)) => t.push_str(sql),
            _ => self.parts.push(Part::Text(sql.to_owned())),
        }
        self
    }

    /// Appends a bind parameter (its `$n` placeholder is written by diesel).
    pub fn bind<ST, V>(&mut self, value: V) -> &mut Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'a,
        ST: Send + 'a,
    {
        self.parts.push(Part::Bind(Box::new(TypedBind::<ST, V> {
            value,
            _st: PhantomData,
        })));
        self
    }

    pub fn into_query(self) -> DynQuery<'a> {
        DynQuery { parts: self.parts }
    }

    /// Restricts `alias` (a table with `owner_id` and `team_id`) to the caller's scope.
    pub fn scope(&mut self, alias: &str, filter: &ScopeFilter) -> &mut Self {
        match filter {
            ScopeFilter::All => self,
            ScopeFilter::Owner(user) => {
                self.push(&format!(" AND {alias}.owner_id = "));
                self.bind::<sql_types::Uuid, _>(*user)
            }
            ScopeFilter::OwnerOrTeams(user, teams) => {
                self.push(&format!(" AND ({alias}.owner_id = "));
                self.bind::<sql_types::Uuid, _>(*user);
                self.push(&format!(" OR {alias}.team_id = ANY("));
                self.bind::<sql_types::Array<sql_types::Uuid>, _>(teams.clone());
                self.push("))")
            }
        }
    }

    /// `AND <expr> = $n` when a value is given.
    pub fn eq_opt<ST, V>(&mut self, expr: &str, value: Option<V>) -> &mut Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'a,
        ST: Send + 'a,
    {
        if let Some(v) = value {
            self.push(&format!(" AND {expr} = "));
            self.bind::<ST, V>(v);
        }
        self
    }

    /// `AND <expr> <op> $n` for a timestamp bound.
    pub fn cmp_ts(&mut self, expr: &str, op: &str, value: Option<DateTime<Utc>>) -> &mut Self {
        if let Some(v) = value {
            self.push(&format!(" AND {expr} {op} "));
            self.bind::<sql_types::Timestamptz, _>(v);
        }
        self
    }

    /// `AND <expr> ILIKE '%q%'` with LIKE metacharacters escaped.
    /// `q` search: a substring of `expr` (the built-in search text, which has a trigram
    /// index) or of one of the caller's searchable custom fields (each with its own
    /// trigram index, so Postgres ORs the bitmaps). When some of the built-in `fields`
    /// (key, column) are withheld from the caller (hidden or masked), a match must also
    /// hold in a field the caller may read, so search cannot probe withheld values.
    pub fn search(
        &mut self,
        expr: &str,
        fields: &[(&str, &str)],
        alias: &str,
        s: &SearchScope,
        q: Option<&str>,
    ) -> &mut Self {
        let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
            return self;
        };
        let pattern = format!("%{}%", escape_like(q));
        self.push(&format!(" AND (({expr} ILIKE "));
        self.bind::<sql_types::Text, _>(pattern.clone());
        if !s.withheld.is_empty() {
            self.push(" AND (false");
            for (_, col) in fields.iter().filter(|(k, _)| !s.withheld.iter().any(|w| w == k)) {
                self.push(&format!(" OR coalesce({col}, '') ILIKE "));
                self.bind::<sql_types::Text, _>(pattern.clone());
            }
            self.push(")");
        }
        self.push(")");
        for k in &s.custom {
            self.push(&format!(" OR ({alias}.custom->>'{k}') ILIKE "));
            self.bind::<sql_types::Text, _>(pattern.clone());
        }
        self.push(")");
        self
    }

    pub fn contains(&mut self, expr: &str, q: Option<&str>) -> &mut Self {
        if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
            self.push(&format!(" AND {expr} ILIKE "));
            self.bind::<sql_types::Text, _>(format!("%{}%", escape_like(q)));
        }
        self
    }
}

/// What the list's `q` search covers for one caller beyond the built-in search text.
#[derive(Debug, Clone, Default)]
pub struct SearchScope {
    /// Searchable custom fields the caller can see (validated identifiers).
    pub custom: Vec<String>,
    /// Built-in searched fields the caller may not read in full.
    pub withheld: Vec<String>,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The SQL type of a sortable column, used to bind cursor values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortType {
    Text,
    Timestamp,
    Date,
    Int,
    Decimal,
}

/// A column a list may be sorted on: its API name and its SQL expression.
#[derive(Debug, Clone)]
pub struct SortColumn {
    pub field: Cow<'static, str>,
    pub expr: Cow<'static, str>,
    pub ty: SortType,
    /// For nullable columns: the value `expr` coalesces NULL to (as JSON text), so a
    /// cursor taken on a row with NULL still points at the right place.
    pub null_as: Option<Cow<'static, str>>,
}

impl SortColumn {
    pub const fn new(field: &'static str, expr: &'static str, ty: SortType) -> Self {
        SortColumn {
            field: Cow::Borrowed(field),
            expr: Cow::Borrowed(expr),
            ty,
            null_as: None,
        }
    }

    pub const fn nullable(field: &'static str, expr: &'static str, ty: SortType, null_as: &'static str) -> Self {
        SortColumn {
            field: Cow::Borrowed(field),
            expr: Cow::Borrowed(expr),
            ty,
            null_as: Some(Cow::Borrowed(null_as)),
        }
    }

    /// A column known only at run time (custom fields).
    pub fn dynamic(field: String, expr: String, ty: SortType, null_as: Option<String>) -> Self {
        SortColumn {
            field: Cow::Owned(field),
            expr: Cow::Owned(expr),
            ty,
            null_as: null_as.map(Cow::Owned),
        }
    }
}

#[derive(Debug, Clone)]
enum Bound {
    Text(String),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Int(i64),
    Decimal(rust_decimal::Decimal),
}

impl Bound {
    fn parse(ty: SortType, v: &Value) -> Option<Bound> {
        Some(match ty {
            SortType::Text => Bound::Text(v.as_str()?.to_owned()),
            SortType::Timestamp => {
                Bound::Timestamp(DateTime::parse_from_rfc3339(v.as_str()?).ok()?.with_timezone(&Utc))
            }
            SortType::Date => Bound::Date(v.as_str()?.parse().ok()?),
            SortType::Int => Bound::Int(v.as_i64()?),
            SortType::Decimal => Bound::Decimal(match v {
                Value::String(s) => s.parse().ok()?,
                Value::Number(n) => n.to_string().parse().ok()?,
                _ => return None,
            }),
        })
    }

    fn bind(&self, sql: &mut Sql<'_>) {
        match self {
            Bound::Text(s) => sql.bind::<sql_types::Text, _>(s.clone()),
            Bound::Timestamp(t) => sql.bind::<sql_types::Timestamptz, _>(*t),
            Bound::Date(d) => sql.bind::<sql_types::Date, _>(*d),
            Bound::Int(i) => sql.bind::<sql_types::Int8, _>(*i),
            Bound::Decimal(d) => sql.bind::<sql_types::Numeric, _>(*d),
        };
    }
}

/// A validated list request: sort keys, page size and the position to continue from.
#[derive(Debug, Clone)]
pub struct ListSpec {
    keys: Vec<(SortColumn, bool)>,
    after: Option<(Vec<Bound>, Uuid)>,
    pub limit: i64,
    signature: String,
}

impl ListSpec {
    /// [`ListSpec::new`] for a plain list (the `list` cursor mode).
    pub fn list(
        columns: &[SortColumn],
        default_sort: &str,
        sort: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<ListSpec, ListError> {
        ListSpec::new(columns, default_sort, sort, cursor, limit, "list")
    }

    /// Validates `sort`, `cursor` and `limit` against the columns a resource allows.
    /// `mode` is folded into the cursor signature so a cursor from one filter mode
    /// (e.g. delta sync) cannot be replayed in another.
    pub fn new(
        columns: &[SortColumn],
        default_sort: &str,
        sort: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
        mode: &str,
    ) -> Result<ListSpec, ListError> {
        let names: Vec<&str> = columns.iter().map(|c| c.field.as_ref()).collect();
        let keys: Vec<SortKey<'_>> = listing::parse_sort(sort, &names, default_sort)?;
        let limit = listing::limit(limit)?;
        let signature = format!("{mode}|{}", listing::sort_signature(&keys));
        let keys: Vec<(SortColumn, bool)> = keys
            .iter()
            .filter_map(|k| columns.iter().find(|c| c.field == k.field).map(|c| (c.clone(), k.desc)))
            .collect();
        let after = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => {
                let cur = Cursor::decode(raw, &signature, keys.len())?;
                let bounds = keys
                    .iter()
                    .zip(&cur.values)
                    .map(|((col, _), v)| Bound::parse(col.ty, v))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(ListError::InvalidCursor)?;
                Some((bounds, cur.id))
            }
        };
        Ok(ListSpec {
            keys,
            after,
            limit,
            signature,
        })
    }

    /// The same request with another page size (internal readers such as exports,
    /// which read in larger pages than a client may ask for).
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Appends the keyset condition (rows strictly after the cursor).
    pub fn push_after(&self, sql: &mut Sql<'_>, id_expr: &str) {
        let Some((bounds, id)) = &self.after else { return };
        let all_same = self.keys.iter().all(|(_, d)| *d == self.keys[0].1);
        if all_same {
            // Row-value comparison lets Postgres walk a composite index.
            let op = if self.keys[0].1 { "<" } else { ">" };
            let cols: Vec<&str> = self.keys.iter().map(|(c, _)| c.expr.as_ref()).collect();
            sql.push(&format!(" AND ({}, {id_expr}) {op} (", cols.join(", ")));
            for b in bounds {
                b.bind(sql);
                sql.push(", ");
            }
            sql.bind::<sql_types::Uuid, _>(*id);
            sql.push(")");
            return;
        }
        // Mixed directions: (k1 op v1) OR (k1 = v1 AND k2 op v2) OR ... OR (all = AND id op).
        let last_desc = self.keys.last().map(|(_, d)| *d).unwrap_or(false);
        sql.push(" AND (");
        for i in 0..=self.keys.len() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(TRUE");
            for ((col, _), bound) in self.keys.iter().zip(bounds).take(i) {
                sql.push(&format!(" AND {} = ", col.expr));
                bound.bind(sql);
            }
            if i < self.keys.len() {
                let (col, desc) = (&self.keys[i].0, self.keys[i].1);
                sql.push(&format!(" AND {} {} ", col.expr, if desc { "<" } else { ">" }));
                bounds[i].bind(sql);
            } else {
                sql.push(&format!(" AND {id_expr} {} ", if last_desc { "<" } else { ">" }));
                sql.bind::<sql_types::Uuid, _>(*id);
            }
            sql.push(")");
        }
        sql.push(")");
    }

    /// Appends ORDER BY (id last as tie-breaker) and LIMIT (one extra row to detect more).
    pub fn push_order_limit(&self, sql: &mut Sql<'_>, id_expr: &str) {
        let last_desc = self.keys.last().map(|(_, d)| *d).unwrap_or(false);
        let mut parts: Vec<String> = self
            .keys
            .iter()
            .map(|(c, d)| format!("{} {}", c.expr, if *d { "DESC" } else { "ASC" }))
            .collect();
        parts.push(format!("{id_expr} {}", if last_desc { "DESC" } else { "ASC" }));
        sql.push(&format!(" ORDER BY {} LIMIT ", parts.join(", ")));
        sql.bind::<sql_types::Int8, _>(self.limit + 1);
    }

    /// Cuts the extra row and builds the cursor from the last row kept.
    pub fn finish<T: Serialize>(&self, mut rows: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| {
                let value = serde_json::to_value(last).unwrap_or(Value::Null);
                Cursor {
                    signature: self.signature.clone(),
                    values: self
                        .keys
                        .iter()
                        .map(|(c, _)| match (lookup_path(&value, &c.field), &c.null_as) {
                            (Some(v), _) if !v.is_null() => v.clone(),
                            (_, Some(default)) => Value::String(default.to_string()),
                            _ => Value::Null,
                        })
                        .collect(),
                    id: id_of(last),
                }
                .encode()
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// Runs a prepared list query: keyset condition, order, limit, cursor.
    pub fn load<T>(
        &self,
        conn: &mut PgConnection,
        mut sql: Sql<'_>,
        id_expr: &str,
        id_of: impl Fn(&T) -> Uuid,
    ) -> QueryResult<Page<T>>
    where
        T: QueryableByName<Pg> + Serialize + 'static,
    {
        self.push_after(&mut sql, id_expr);
        self.push_order_limit(&mut sql, id_expr);
        let rows: Vec<T> = sql.into_query().load(conn)?;
        Ok(self.finish(rows, id_of))
    }
}

/// Reads `a.b` style paths (custom fields live under `custom`).
fn lookup_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, part| v.get(part))
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }
}
