//! The one write path of a business record: its input read from JSON fields (what the
//! API, an importer and a rule all have) with the actor's field permissions, then lock,
//! version check, change, field-level diff, audit entry and event in the caller's
//! transaction. The database refuses a business write that skips the audit entry
//! (migration `event_envelope`), so a record cannot change without its trail.

use crm_db::repo::accounts::Liveness;
use crm_db::repo::soft_delete::SoftDelete;
use crm_db::repo::{audit, storage};
use crm_domain::access::{Principal, ScopeFilter};
use crm_domain::fields::FieldAccess;
use crm_domain::{diff, FieldError};
use diesel::PgConnection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{AppError, AppResult};

/// Deserialises a present field (even `null`) as `Some(..)`, so a patch can tell
/// "absent" (leave alone) from `null` (clear).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Money, percentages and quantities in request bodies: decimal strings only
/// (`"120000.00"`), as the document says. A JSON number is refused rather than read
/// through a float.
pub mod decimal_str {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer};

    fn parse<E: serde::de::Error>(s: &str) -> Result<Decimal, E> {
        let body = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || (body.contains('.') && frac.is_empty()) {
            return Err(E::custom(format!("`{s}` is not a decimal number such as \"12.50\"")));
        }
        Decimal::from_str(s).map_err(|_| E::custom(format!("`{s}` is out of range")))
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some),
        }
    }

    /// PATCH: absent (`None`), `null` (`Some(None)`) or a value.
    pub fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Decimal>>, D::Error> {
        optional(d).map(Some)
    }
}

/// Refuses fields of `object` the principal may not change (`read_only`), custom
/// fields by `custom.<key>`.
pub fn guard_fields(p: &Principal, object: &str, fields: &Map<String, Value>) -> AppResult<()> {
    if !p.restricts(object) {
        return Ok(());
    }
    let mut keys: Vec<String> = Vec::new();
    for (k, v) in fields {
        match (k.as_str(), v) {
            ("custom", Value::Object(custom)) => keys.extend(custom.keys().map(|ck| format!("custom.{ck}"))),
            _ => keys.push(k.clone()),
        }
    }
    let errs: Vec<FieldError> = keys
        .into_iter()
        .filter(|k| p.field_access(object, k) < FieldAccess::Full)
        .map(|k| FieldError::new(k, "read_only", "you may not change this field"))
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errs))
    }
}

/// An operation's input from JSON fields under their API names, after the field
/// permission check. Unknown fields, missing ones and wrong types are field errors
/// named by their path ([`shape_error`]).
pub fn input<T: DeserializeOwned>(ctx: &Ctx, object: &str, fields: &Map<String, Value>) -> AppResult<T> {
    guard_fields(&ctx.principal, object, fields)?;
    parse(fields)
}

/// A typed value from JSON (a list an action takes); wrong types are validation errors.
pub fn parse_value<T: DeserializeOwned>(v: &Value) -> AppResult<T> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        AppError::Validation(vec![shape_error(&path, &e.into_inner().to_string())])
    })
}

/// An operation's input from JSON fields (an action's parameters rather than a
/// record's fields). Unknown fields and wrong types are validation errors.
pub fn parse<T: DeserializeOwned>(fields: &Map<String, Value>) -> AppResult<T> {
    parse_value(&Value::Object(fields.clone()))
}

/// The field error of a JSON shape error at `path` (`.` for the top level): an unknown
/// field (`unknown_field`), a missing one (`required`) or a wrong type
/// (`invalid_type`), named by its dotted path.
pub fn shape_error(path: &str, message: &str) -> FieldError {
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let named = |name: &str| {
        if path == "." {
            name.to_owned()
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = || message.split('`').nth(1).unwrap_or("");
    let (field, code) = if message.starts_with("unknown field") {
        (named(quoted()), "unknown_field")
    } else if message.starts_with("missing field") {
        (named(quoted()), "required")
    } else if path == "." {
        (String::new(), "invalid_type")
    } else {
        (path.to_owned(), "invalid_type")
    };
    FieldError::new(field, code, message)
}

/// Stored columns the audit trail never shows, and columns it names by their
/// catalogue key.
const INTERNAL: &[&str] = &["name_norm"];
const RENAMED: &[(&str, &str)] = &[("account_type", "type")];

/// A record as its audit entries describe it: storage columns under their catalogue
/// keys (`GET /meta/{object}`), internal columns and secrets left out, decimals exact;
/// a deal with its other contacts (`contacts`: `[{contact_id, role}]`), a quote with its
/// `lines`, a price book with its prices (`entries`: `[{product_id, unit_price}]`).
pub fn audit_view(c: &mut PgConnection, object: &str, id: Uuid) -> AppResult<Value> {
    let Some(table) = crm_domain::events::table_of(object) else {
        return Err(AppError::internal(format!("{object} has no storage table")));
    };
    let Some(Value::Object(mut m)) = storage::row(c, table, id)? else {
        return Ok(Value::Null);
    };
    for k in INTERNAL {
        m.remove(*k);
    }
    for (column, key) in RENAMED {
        if let Some(v) = m.remove(*column) {
            m.insert((*key).to_owned(), v);
        }
    }
    if object == "opportunities" {
        let contacts: Vec<Value> = storage::rows_of(c, "opportunity_contacts", "opportunity_id", id, "contact_id")?
            .into_iter()
            .map(|r| serde_json::json!({"contact_id": r.get("contact_id"), "role": r.get("role")}))
            .collect();
        m.insert("contacts".into(), Value::Array(contacts));
    }
    if object == "pipelines" {
        let stages = storage::rows_of(c, "stages", "pipeline_id", id, "position")?;
        m.insert("stages".into(), Value::Array(stages));
    }
    if object == "quotes" {
        let lines = storage::rows_of(c, "quote_lines", "quote_id", id, "position")?;
        m.insert("lines".into(), Value::Array(lines));
    }
    if object == "price_books" {
        let entries: Vec<Value> = storage::rows_of(c, "price_book_entries", "price_book_id", id, "product_id")?
            .into_iter()
            .map(|r| serde_json::json!({"product_id": r.get("product_id"), "unit_price": r.get("unit_price")}))
            .collect();
        m.insert("entries".into(), Value::Array(entries));
    }
    Ok(Value::Object(m))
}

/// Records the creation of `table`'s record `id`: audit entry (every set field) and
/// the `<object>.created` event.
pub fn created(c: &mut PgConnection, ctx: &Ctx, table: &'static str, id: Uuid) -> AppResult<()> {
    let after = audit_view(c, table, id)?;
    audit::record(
        c,
        &ctx.actor(),
        table,
        id,
        "created",
        diff::created(&after),
        Value::Null,
    )?;
    Ok(())
}

/// Changes one live record of `scope`: found and locked (`NotFound(noun)` otherwise),
/// then [`change_locked`].
pub fn update<R: SoftDelete>(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: &ScopeFilter,
    id: Uuid,
    expected: Option<i32>,
    noun: &'static str,
    change: impl FnOnce(&mut PgConnection, &R) -> AppResult<Option<R>>,
) -> AppResult<R> {
    let before = R::find(c, scope, id, Liveness::Live, true)?.ok_or(AppError::NotFound(noun))?;
    let version = before.version();
    change_locked(c, ctx, (R::TABLE, id), before, (version, expected), change)
}

/// Changes a record of `object` the caller found and locked: its `version` checked
/// against `expected` (an `If-Match`; stale: [`AppError::Stale`]), then `change` writes
/// it and returns the new row, or `None` when there is nothing to change (no audit
/// entry, no event, no new version). The audit entry lists every changed field.
pub fn change_locked<R>(
    c: &mut PgConnection,
    ctx: &Ctx,
    (object, id): (&str, Uuid),
    before: R,
    (version, expected): (i32, Option<i32>),
    change: impl FnOnce(&mut PgConnection, &R) -> AppResult<Option<R>>,
) -> AppResult<R> {
    if expected.is_some_and(|v| v != version) {
        return Err(AppError::Stale { current: version });
    }
    let old = audit_view(c, object, id)?;
    let Some(after) = change(c, &before)? else {
        return Ok(before);
    };
    let new = audit_view(c, object, id)?;
    audit::record(
        c,
        &ctx.actor(),
        object,
        id,
        "updated",
        diff::changes(&old, &new),
        Value::Null,
    )?;
    Ok(after)
}

/// The input's value for a patch field unless it equals the current one.
pub fn changed<T: PartialEq>(v: Option<T>, current: &T) -> Option<T> {
    v.filter(|v| v != current)
}
