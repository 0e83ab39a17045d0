//! Form engine at request time: field definitions (cached), response shaping for
//! field-level permissions, validation of custom values on write, and `custom.*`
//! filters and sorts on lists.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_db::repo::fields::{self, CustomCond, FieldDefRow, NUM_MISSING};
use crm_db::sql::{SearchScope, SortColumn, SortType};
use crm_domain::access::Principal;
use crm_domain::fields::{check_value, FieldAccess, FieldType, Mode};
use diesel::PgConnection;
use parking_lot::RwLock;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

type Entry = (Instant, u64, Arc<Vec<FieldDefRow>>);

/// Field definitions per object, cached in-process (invalidated on change, and by
/// NOTIFY from other instances).
pub struct FieldCache {
    inner: RwLock<HashMap<String, Entry>>,
    generation: AtomicU64,
    ttl: Duration,
}

impl FieldCache {
    pub fn new(ttl: Duration) -> Self {
        FieldCache {
            inner: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl,
        }
    }

    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.write().clear();
    }

    /// Every definition of the object, archived included.
    pub fn get(&self, c: &mut PgConnection, object: &str) -> crm_db::QueryResult<Arc<Vec<FieldDefRow>>> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((at, g, defs)) = self.inner.read().get(object) {
            if *g == generation && at.elapsed() < self.ttl {
                return Ok(defs.clone());
            }
        }
        let defs = Arc::new(fields::list(c, object, true)?);
        self.inner
            .write()
            .insert(object.to_owned(), (Instant::now(), generation, defs.clone()));
        Ok(defs)
    }
}

/// Live (not archived) definitions.
pub fn live(defs: &[FieldDefRow]) -> impl Iterator<Item = &FieldDefRow> {
    defs.iter().filter(|d| d.archived_at.is_none())
}

/// Whether responses of this object need shaping for this caller.
pub fn needs_shaping(p: &Principal, object: &str, defs: &[FieldDefRow]) -> bool {
    p.restricts(object) || defs.iter().any(|d| d.archived_at.is_some())
}

pub use crm_app::shaping::{shape, shape_changes};

/// Serializes and shapes a record for the caller.
pub fn shaped<T: serde::Serialize>(p: &Principal, object: &str, defs: &[FieldDefRow], dto: &T) -> Value {
    let mut v = serde_json::to_value(dto).unwrap_or(Value::Null);
    if needs_shaping(p, object, defs) {
        shape(p, object, defs, &mut v);
    }
    v
}

/// Parses `custom.<key>`, `custom.<key>_gte`, `custom.<key>_lte` query parameters.
/// Hidden, masked, archived and unknown fields are all "unknown": a value the caller
/// may not read in full cannot be probed through filters.
pub fn parse_filters(
    p: &Principal,
    object: &str,
    defs: &[FieldDefRow],
    params: &[(String, String)],
) -> ApiResult<Vec<CustomCond>> {
    let visible: Vec<&FieldDefRow> = live(defs)
        .filter(|d| p.field_access(object, &format!("custom.{}", d.key)) >= FieldAccess::ReadOnly)
        .collect();
    let unknown = |name: &str| {
        let allowed: Vec<String> = visible.iter().map(|d| format!("custom.{}", d.key)).collect();
        ApiError::bad_request(
            "invalid_query",
            format!(
                "unknown filter `{name}`; custom fields you can filter on: {}",
                if allowed.is_empty() {
                    "none".into()
                } else {
                    allowed.join(", ")
                }
            ),
        )
    };
    let mut out = Vec::new();
    for (name, raw) in params {
        let rest = &name["custom.".len()..];
        let (def, op) = match visible.iter().find(|d| d.key == rest) {
            Some(d) => (*d, "="),
            None => match (rest.strip_suffix("_gte"), rest.strip_suffix("_lte")) {
                (Some(k), _) => (*visible.iter().find(|d| d.key == k).ok_or_else(|| unknown(name))?, ">="),
                (_, Some(k)) => (*visible.iter().find(|d| d.key == k).ok_or_else(|| unknown(name))?, "<="),
                _ => return Err(unknown(name)),
            },
        };
        let t = def.field_type();
        let bad = |m: String| ApiError::bad_request("invalid_query", format!("`{name}`: {m}"));
        let cond = if t.is_numeric() {
            let d: Decimal = raw.trim().parse().map_err(|_| bad("not a number".into()))?;
            CustomCond::Num {
                key: def.key.clone(),
                field_type: t,
                op,
                value: d,
            }
        } else if op != "=" && !t.is_temporal() {
            return Err(bad("range filters apply to numbers and dates".into()));
        } else if t.is_temporal() {
            let norm =
                check_value(&def.spec(), &Value::String(raw.clone()), Mode::Recheck).map_err(|e| bad(e.message))?;
            CustomCond::Text {
                key: def.key.clone(),
                field_type: t,
                op,
                value: norm.as_str().unwrap_or_default().to_owned(),
            }
        } else {
            let v = match t {
                FieldType::Boolean => Value::Bool(match raw.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("use true or false".into())),
                }),
                FieldType::MultiSelect => Value::Array(vec![Value::String(raw.clone())]),
                _ => {
                    check_value(&def.spec(), &Value::String(raw.clone()), Mode::Recheck).map_err(|e| bad(e.message))?
                }
            };
            let mut m = Map::new();
            m.insert(def.key.clone(), v);
            CustomCond::Contains(Value::Object(m))
        };
        out.push(cond);
    }
    Ok(out)
}

/// What the list's `q` search covers for this caller: the live, searchable custom
/// fields it may read in full, and the built-in searched fields it may not read in full
/// (hidden or masked), which a match must not rely on.
pub fn search_scope(p: &Principal, object: &str, defs: &[FieldDefRow]) -> SearchScope {
    let custom = live(defs)
        .filter(|d| d.searchable && p.field_access(object, &format!("custom.{}", d.key)) >= FieldAccess::ReadOnly)
        .map(|d| d.key.clone())
        .collect();
    let withheld = if p.restricts(object) {
        crate::meta::search_fields(object)
            .iter()
            .filter(|(k, _)| p.field_access(object, k) < FieldAccess::ReadOnly)
            .map(|(k, _)| (*k).to_owned())
            .collect()
    } else {
        Vec::new()
    };
    SearchScope { custom, withheld }
}

/// The resource's sort columns plus `custom.<key>` for sortable, visible custom fields.
pub fn sort_columns(
    p: &Principal,
    object: &str,
    alias: &str,
    defs: &[FieldDefRow],
    base: &[SortColumn],
) -> Vec<SortColumn> {
    // A sort (and the cursor it hands out) on a field the caller sees masked or not at
    // all would reveal its values by order; such fields are not sortable for them.
    let mut cols: Vec<SortColumn> = base
        .iter()
        .filter(|c| p.field_access(object, c.field.as_ref()) >= FieldAccess::ReadOnly)
        .cloned()
        .collect();
    for d in live(defs) {
        if p.field_access(object, &format!("custom.{}", d.key)) < FieldAccess::ReadOnly {
            continue;
        }
        let t = d.field_type();
        let sortable = t.is_numeric()
            || t.is_temporal()
            || matches!(
                t,
                FieldType::Text | FieldType::SingleSelect | FieldType::Email | FieldType::Phone | FieldType::Url
            );
        if !sortable {
            continue;
        }
        let expr = fields::value_expr(&format!("{alias}."), &d.key, t);
        let (ty, null_as) = if t.is_numeric() {
            (SortType::Decimal, NUM_MISSING.to_owned())
        } else {
            (SortType::Text, String::new())
        };
        cols.push(SortColumn::dynamic(
            format!("custom.{}", d.key),
            expr,
            ty,
            Some(null_as),
        ));
    }
    cols
}

/// Splits a query string into the `custom.*` pairs and the rest (re-encoded).
pub fn split_query(qs: &str) -> ApiResult<(String, Vec<(String, String)>)> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(qs)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query string: {e}")))?;
    let (custom, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k.starts_with("custom."));
    let rest = serde_urlencoded::to_string(&rest).unwrap_or_default();
    Ok((rest, custom))
}

/// Shapes responses of one object for one caller; a no-op fast path when nothing in
/// the object is restricted or archived.
#[derive(Clone)]
pub struct Shaper {
    principal: Arc<Principal>,
    object: &'static str,
    defs: Arc<Vec<FieldDefRow>>,
    active: bool,
}

#[derive(serde::Serialize)]
struct PageOut<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_ids: Option<Vec<uuid::Uuid>>,
}

impl Shaper {
    pub fn new(principal: &Arc<Principal>, object: &'static str, defs: Arc<Vec<FieldDefRow>>) -> Self {
        let active = needs_shaping(principal, object, &defs);
        Shaper {
            principal: principal.clone(),
            object,
            defs,
            active,
        }
    }

    pub fn defs(&self) -> &[FieldDefRow] {
        &self.defs
    }

    pub fn one<T: serde::Serialize>(&self, dto: &T) -> Value {
        let mut v = serde_json::to_value(dto).unwrap_or(Value::Null);
        if self.active {
            shape(&self.principal, self.object, &self.defs, &mut v);
        }
        v
    }

    /// A single record with its `ETag`.
    pub fn respond<T: serde::Serialize>(&self, dto: &T, version: i32) -> actix_web::HttpResponse {
        let resp = actix_web::HttpResponse::Ok()
            .insert_header(("ETag", format!("\"{version}\"")))
            .take();
        let mut resp = resp;
        if self.active {
            resp.json(self.one(dto))
        } else {
            resp.json(dto)
        }
    }

    /// A list page (`deleted_ids` only for delta sync).
    pub fn page<T: serde::Serialize>(
        &self,
        items: Vec<T>,
        next_cursor: Option<String>,
        deleted_ids: Option<Vec<uuid::Uuid>>,
    ) -> actix_web::HttpResponse {
        if self.active {
            let items: Vec<Value> = items.iter().map(|i| self.one(i)).collect();
            actix_web::HttpResponse::Ok().json(PageOut {
                items,
                next_cursor,
                deleted_ids,
            })
        } else {
            actix_web::HttpResponse::Ok().json(PageOut {
                items,
                next_cursor,
                deleted_ids,
            })
        }
    }
}
