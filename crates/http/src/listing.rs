//! Record lists shared by accounts, contacts, leads and opportunities: one path from a
//! query to a page (data scope, `custom.*` filters and sorts, keyset paging, delta
//! sync, field-level shaping), and the CSV export that walks the same path.

use actix_web::http::header;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use crm_db::repo::audit;
use crm_db::repo::fields::{CustomCond, FieldDefRow};
use crm_db::sql::{ListSpec, SearchScope, SortColumn};
use crm_domain::access::{Action, Principal, ScopeFilter};
use crm_domain::fields::FieldAccess;
use diesel::PgConnection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Auth;
use crate::custom::{self, Shaper};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::state::AppState;

/// Rows read per query while exporting.
const EXPORT_PAGE: i64 = 1_000;

/// What every list query shares besides its typed filters.
pub struct Params {
    /// Names of the built-in query parameters given.
    pub keys: Vec<String>,
    pub since: Option<DateTime<Utc>>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub custom: Vec<(String, String)>,
}

/// A page as a list loads it: items, next cursor and (delta sync) deleted ids.
pub type Loaded<T> = (Vec<T>, Option<String>, Vec<Uuid>);

/// The typed filter of one listable object and how to load a page with it.
pub trait Listing: Send + 'static {
    /// Resource (permission and field-definition object) name.
    const RES: &'static str;
    /// Table alias the repository's list query uses.
    const ALIAS: &'static str;
    const DEFAULT_SORT: &'static str;
    type Item: Serialize + Send + 'static;

    fn columns() -> &'static [SortColumn];
    /// The caller's `custom.*` filters and the searchable custom fields `q` covers.
    fn set_custom(&mut self, conds: Vec<CustomCond>, search: SearchScope);
    /// One page; with `since`, the changed records and (when `with_deleted`) the ids
    /// deleted since.
    fn load(
        &self,
        c: &mut PgConnection,
        scope: &ScopeFilter,
        spec: &ListSpec,
        since: Option<DateTime<Utc>>,
        with_deleted: bool,
    ) -> ApiResult<Loaded<Self::Item>>;
}

/// Implements [`Listing`] for a repository filter whose module has `list`,
/// `list_changed`, `SORT_COLUMNS` and `DEFAULT_SORT`; `$map` turns a page's rows
/// (with the connection at hand) into response items.
#[macro_export]
macro_rules! impl_listing {
    ($filter:ty, $item:ty, $res:expr, $alias:literal, $repo:ident, |$c:ident, $rows:ident| $map:expr) => {
        impl $crate::listing::Listing for $filter {
            const RES: &'static str = $res;
            const ALIAS: &'static str = $alias;
            const DEFAULT_SORT: &'static str = $repo::DEFAULT_SORT;
            type Item = $item;

            fn columns() -> &'static [crm_db::sql::SortColumn] {
                $repo::SORT_COLUMNS
            }

            fn set_custom(&mut self, conds: Vec<crm_db::repo::fields::CustomCond>, search: crm_db::sql::SearchScope) {
                self.custom = conds;
                self.search = search;
            }

            fn load(
                &self,
                $c: &mut diesel::PgConnection,
                scope: &crm_domain::access::ScopeFilter,
                spec: &crm_db::sql::ListSpec,
                since: Option<chrono::DateTime<chrono::Utc>>,
                with_deleted: bool,
            ) -> $crate::error::ApiResult<$crate::listing::Loaded<$item>> {
                let (page, deleted) = match since {
                    Some(s) => $repo::list_changed($c, scope, self, s, spec, with_deleted)?,
                    None => ($repo::list($c, scope, self, spec)?, Vec::new()),
                };
                let $rows = page.items;
                Ok(($map, page.next_cursor, deleted))
            }
        }
    };
}

fn check(p: &Params) -> ApiResult<()> {
    if p.since.is_some() && p.sort.as_deref().is_some_and(|s| !s.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "invalid_sort",
            "updated_since lists are in updated_at order; omit sort",
        ));
    }
    Ok(())
}

/// Refuses filters on built-in fields the caller sees masked or not at all: each
/// answer would confirm or deny a guess at the value (`amount_gte=...`).
pub fn guard_filters(principal: &Principal, object: &str, keys: &[String]) -> ApiResult<()> {
    for k in keys {
        if let Some(field) = meta::filter_field(object, k) {
            if principal.field_access(object, field) < FieldAccess::ReadOnly {
                return Err(ApiError::bad_request(
                    "filter_not_allowed",
                    format!("`{k}` filters on `{field}`, which you may not read"),
                ));
            }
        }
    }
    Ok(())
}

/// Validates the list parameters against the field definitions and loads one page.
fn load_page<L: Listing>(
    c: &mut PgConnection,
    (principal, scope): (&Principal, &ScopeFilter),
    filter: &mut L,
    defs: &[FieldDefRow],
    p: &Params,
    cursor: Option<&str>,
    page_size: Option<i64>,
) -> ApiResult<Loaded<L::Item>> {
    guard_filters(principal, L::RES, &p.keys)?;
    filter.set_custom(
        custom::parse_filters(principal, L::RES, defs, &p.custom)?,
        custom::search_scope(principal, L::RES, defs),
    );
    let cols = custom::sort_columns(principal, L::RES, L::ALIAS, defs, L::columns());
    let spec = match p.since {
        Some(_) => ListSpec::new(&cols, "updated_at", None, cursor, p.limit, "sync")?,
        None => ListSpec::new(&cols, L::DEFAULT_SORT, p.sort.as_deref(), cursor, p.limit, "list")?,
    };
    let spec = match page_size {
        Some(n) => spec.with_limit(n),
        None => spec,
    };
    filter.load(c, scope, &spec, p.since, cursor.is_none())
}

/// `GET /<object>`: a page of records in the caller's read scope.
pub async fn list<L: Listing>(state: &AppState, auth: &Auth, mut filter: L, p: Params) -> ApiResult<HttpResponse> {
    let scope = auth.filter(L::RES, Action::Read)?;
    check(&p)?;
    let principal = auth.principal.clone();
    let cache = state.fields.clone();
    let since = p.since;
    let (shaper, (items, next, deleted)) = state
        .db
        .run(move |c| {
            let defs = cache.get(c, L::RES)?;
            let page = load_page(
                c,
                (&principal, &scope),
                &mut filter,
                &defs,
                &p,
                p.cursor.as_deref(),
                None,
            )?;
            Ok::<_, ApiError>((Shaper::new(&principal, L::RES, defs), page))
        })
        .await?;
    Ok(shaper.page(items, next, since.map(|_| deleted)))
}

/// Column headings of an export.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Heading {
    /// Field keys (`name`, `custom.budget_source`): stable, for re-import.
    #[default]
    Key,
    /// Chinese labels.
    Zh,
    /// English labels.
    En,
}

/// Export options, on top of the list's filters and sort.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportOptions {
    /// Column headings: `key` (default), `zh` or `en`.
    #[param(inline)]
    pub header: Option<Heading>,
}

/// One export column: where the value sits in the shaped record, and its heading.
struct Column {
    custom: bool,
    key: String,
    heading: String,
}

/// The caller's columns: visible built-in fields, then live visible custom fields.
fn columns(p: &Principal, object: &str, defs: &[FieldDefRow], heading: Heading) -> Vec<Column> {
    let pick = |key: String, zh: &str, en: &str| match heading {
        Heading::Key => key,
        Heading::Zh => zh.to_owned(),
        Heading::En => en.to_owned(),
    };
    let mut out: Vec<Column> = meta::builtins(object)
        .into_iter()
        .filter(|b| p.field_access(object, b.key) != FieldAccess::Hidden)
        .map(|b| Column {
            custom: false,
            key: b.key.to_owned(),
            heading: pick(b.key.to_owned(), b.label_zh, b.label_en),
        })
        .collect();
    let mut live: Vec<&FieldDefRow> = custom::live(defs)
        .filter(|d| p.field_access(object, &format!("custom.{}", d.key)) != FieldAccess::Hidden)
        .collect();
    live.sort_by_key(|d| (d.position, d.key.clone()));
    out.extend(live.into_iter().map(|d| Column {
        custom: true,
        key: d.key.clone(),
        heading: pick(format!("custom.{}", d.key), &d.label_zh, &d.label_en),
    }));
    out
}

/// A JSON value as one CSV cell: scalars as text, lists of scalars joined by `; `,
/// anything else as compact JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join("; ")
        }
        Some(other) => other.to_string(),
    }
}

/// Appends one RFC 4180 field. Text a spreadsheet would run as a formula (`=`, `+`,
/// `-`, `@` and control characters first, unless it is a number) is prefixed with `'`.
fn push_field(out: &mut String, raw: &str) {
    let risky = raw.starts_with(['=', '+', '-', '@', '\t', '\r']) && raw.parse::<f64>().is_err();
    let text = if risky { format!("'{raw}") } else { raw.to_owned() };
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, c);
    }
    out.push_str("\r\n");
}

/// `GET /<object>/export`: every record the list with the same filters and sort would
/// return, as one CSV document (UTF-8 with BOM so spreadsheet programs read Chinese
/// text), read in one snapshot. Needs `<object>:export`; the rows are those in both the
/// read and the export scope, and the columns those the caller may see (masked ones
/// masked). Each export is recorded in the audit trail and as a `<object>.exported`
/// event. At most `export_slots` exports run at once; one that waits longer than
/// `export_wait` for a slot answers 429 `export_busy` with `Retry-After`.
pub async fn export<L: Listing>(
    state: &AppState,
    auth: &Auth,
    mut filter: L,
    p: Params,
    opts: ExportOptions,
    query: String,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let read = auth.require(L::RES, Action::Read)?;
    let allowed = auth.require(L::RES, Action::Export)?;
    let scope = auth.principal.filter(read.min(allowed));
    check(&p)?;
    if p.cursor.is_some() || p.limit.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "an export holds every matching record; cursor and limit do not apply",
        ));
    }
    // Each export holds its document in memory: a few run at once, the rest wait.
    let slot = match tokio::time::timeout(state.config.export_wait, state.exports.clone().acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        _ => {
            let mut e = ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "export_busy",
                "other exports are running; try again shortly",
            );
            e.retry_after = Some(state.config.export_wait.as_secs().max(1));
            return Err(e);
        }
    };
    let principal = auth.principal.clone();
    let actor = auth.actor();
    let cache = state.fields.clone();
    let heading = opts.header.unwrap_or_default();
    let max_rows = state.config.export_max_rows;
    let export_id = Uuid::now_v7();
    let (body, rows) = state
        .db
        .run(move |c| {
            c.build_transaction().repeatable_read().run(|c| {
                let defs = cache.get(c, L::RES)?;
                let shaper = Shaper::new(&principal, L::RES, defs.clone());
                let cols = columns(&principal, L::RES, &defs, heading);
                let mut out = String::from("\u{feff}");
                push_row(&mut out, cols.iter().map(|c| c.heading.as_str()));
                let (mut rows, mut cursor) = (0usize, None::<String>);
                loop {
                    let (items, next, _) = load_page(
                        c,
                        (&principal, &scope),
                        &mut filter,
                        &defs,
                        &p,
                        cursor.as_deref(),
                        Some(EXPORT_PAGE),
                    )?;
                    rows += items.len();
                    if rows > max_rows {
                        return Err(ApiError::unprocessable(
                            "export_too_large",
                            format!("more than {max_rows} records match; narrow the filters"),
                        )
                        .with_extra("max_rows", json!(max_rows)));
                    }
                    for item in &items {
                        let v = shaper.one(item);
                        let none = Map::new();
                        let custom = v.get("custom").and_then(Value::as_object).unwrap_or(&none);
                        let cells: Vec<String> = cols
                            .iter()
                            .map(|col| match col.custom {
                                true => cell(custom.get(&col.key)),
                                false => cell(v.get(&col.key)),
                            })
                            .collect();
                        push_row(&mut out, cells.iter().map(String::as_str));
                    }
                    match next {
                        Some(n) if !items.is_empty() => cursor = Some(n),
                        _ => break,
                    }
                }
                let detail = json!({ "rows": rows, "query": query, "columns": cols.len() });
                let mut changes = Map::new();
                changes.insert("export".into(), detail.clone());
                audit::record(c, &actor, L::RES, export_id, "exported", changes, detail)?;
                Ok::<_, ApiError>((out, rows))
            })
        })
        .await?;
    drop(slot);
    let file = format!("{}-{}.csv", L::RES, now.format("%Y%m%d-%H%M%S"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")))
        .insert_header(("X-Export-Id", export_id.to_string()))
        .insert_header(("X-Export-Rows", rows.to_string()))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> String {
        let mut s = String::new();
        push_row(&mut s, cells.iter().copied());
        s
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(row(&["a", "b c", "北京"]), "a,b c,北京\r\n");
        assert_eq!(
            row(&["x,y", "say \"hi\"", "two\nlines"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
    }

    #[test]
    fn formulas_are_neutralised_but_numbers_kept() {
        assert_eq!(
            row(&["=HYPERLINK(\"x\")", "-12.50", "+86 138", "@cmd"]),
            "\"'=HYPERLINK(\"\"x\"\")\",-12.50,'+86 138,'@cmd\r\n"
        );
    }

    #[test]
    fn cells_flatten_json() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(["a", "b"]))), "a; b");
        assert_eq!(cell(Some(&json!(3.5))), "3.5");
        assert_eq!(cell(Some(&json!({"k": 1}))), "{\"k\":1}");
    }
}
