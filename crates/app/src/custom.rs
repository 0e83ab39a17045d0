//! Custom field values on write: validated against their definitions, merged with the
//! stored ones, defaults filled in, references checked, formulas computed last.

use crm_db::repo::accounts::Liveness;
use crm_db::repo::fields::FieldDefRow;
use crm_db::repo::{accounts, contacts, opportunities, users};
use crm_domain::fields::{check_value, FieldAccess, FieldSpec, FieldType, Formula, Mode, RefTarget};
use crm_domain::FieldError;
use diesel::PgConnection;
use serde_json::{Map, Value};

use crm_domain::access::{Action, Principal, Scope};

use crate::error::{AppError, AppResult};

/// Live (not archived) definitions.
pub fn live(defs: &[FieldDefRow]) -> impl Iterator<Item = &FieldDefRow> {
    defs.iter().filter(|d| d.archived_at.is_none())
}

/// A write of custom values.
pub struct CustomWrite<'a> {
    pub object: &'a str,
    pub defs: &'a [FieldDefRow],
    /// The `custom` object of the request, if any.
    pub input: Option<&'a Map<String, Value>>,
    /// The record's current custom values (None on create).
    pub existing: Option<&'a Value>,
    /// The record's built-in fields (API names), for formulas.
    pub record: &'a Value,
}

/// Validates, merges and completes custom values; returns the new `custom` object.
/// Errors name `custom.<key>`.
pub fn apply(c: &mut PgConnection, p: &Principal, w: CustomWrite<'_>) -> AppResult<Value> {
    let creating = w.existing.is_none();
    let mut out: Map<String, Value> = w.existing.and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let mut errs: Vec<FieldError> = Vec::new();
    let field = |k: &str| format!("custom.{k}");
    if let Some(input) = w.input {
        for (k, v) in input {
            let Some(def) = live(w.defs).find(|d| &d.key == k) else {
                errs.push(FieldError::new(field(k), "unknown_field", "no such custom field"));
                continue;
            };
            if p.field_access(w.object, &field(k)) < FieldAccess::Full {
                errs.push(FieldError::new(field(k), "read_only", "you may not change this field"));
                continue;
            }
            let spec = def.spec();
            match check_value(&spec, v, Mode::Write) {
                Err(e) => errs.push(FieldError::new(field(k), e.code, e.message)),
                Ok(Value::Null) => {
                    if def.required {
                        errs.push(FieldError::new(field(k), "required", "this field is required"));
                    }
                    out.remove(k);
                }
                Ok(norm) => {
                    if !reference_exists(c, p, &spec, &norm)? {
                        errs.push(FieldError::new(field(k), "not_found", "no such record"));
                        continue;
                    }
                    out.insert(k.clone(), norm);
                }
            }
        }
    }
    if creating {
        for def in live(w.defs) {
            if out.contains_key(&def.key) {
                continue;
            }
            if let Some(d) = def.default_value.clone().filter(|d| !d.is_null()) {
                out.insert(def.key.clone(), d);
            } else if def.required && def.field_type() != FieldType::Formula {
                errs.push(FieldError::new(field(&def.key), "required", "this field is required"));
            }
        }
    }
    if !errs.is_empty() {
        errs.sort_by(|a, b| a.field.cmp(&b.field));
        return Err(AppError::Validation(errs));
    }
    // Formulas last, over the merged values.
    let mut record = w.record.as_object().cloned().unwrap_or_default();
    record.insert("custom".into(), Value::Object(out.clone()));
    for def in live(w.defs).filter(|d| d.field_type() == FieldType::Formula) {
        let expr = def.spec().settings.expr.and_then(|e| Formula::parse(&e).ok());
        match expr.and_then(|f| f.eval(&record)) {
            Some(d) => {
                let d = d
                    .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                    .normalize();
                out.insert(def.key.clone(), Value::String(d.to_string()));
            }
            None => {
                out.remove(&def.key);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Whether a user or record reference points at something the actor may see (other
/// values pass). A database error is an error, not a missing record.
fn reference_exists(c: &mut PgConnection, p: &Principal, spec: &FieldSpec, v: &Value) -> AppResult<bool> {
    let Some(id) = v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) else {
        return Ok(true);
    };
    let read = |resource: &str| p.filter(p.scope(resource, Action::Read).unwrap_or(Scope::Own));
    Ok(match (spec.field_type, spec.settings.target) {
        (FieldType::UserRef, _) => users::find(c, id)?.is_some_and(|u| u.is_active),
        (FieldType::RecordRef, Some(RefTarget::Account)) => {
            accounts::find(c, &read("accounts"), id, Liveness::Live, false)?.is_some()
        }
        (FieldType::RecordRef, Some(RefTarget::Contact)) => {
            contacts::find(c, &read("contacts"), id, Liveness::Live, false)?.is_some()
        }
        (FieldType::RecordRef, Some(RefTarget::Opportunity)) => {
            opportunities::find(c, &read("opportunities"), id, Liveness::Live, false)?.is_some()
        }
        _ => true,
    })
}

/// The custom values a create (`existing: None`) or an update (`Some((id, current))`)
/// of `object` writes: the input checked against the live definitions with the actor's
/// field permissions, defaults on create, formulas recomputed. On update `None` when
/// nothing is sent and no formula could change; values sent clear their "needs review"
/// flags. `record` holds the built-in fields formulas read (`estimated_budget`).
pub fn write(
    c: &mut PgConnection,
    ctx: &crate::Ctx,
    object: &str,
    input: Option<&Map<String, Value>>,
    existing: Option<(uuid::Uuid, &Value)>,
    record: Value,
) -> AppResult<Option<Value>> {
    let defs = crm_db::repo::fields::list(c, object, true)?;
    let formulas = live(&defs).any(|d| d.field_type() == FieldType::Formula);
    if existing.is_some() && input.is_none() && !formulas {
        return Ok(None);
    }
    let values = apply(
        c,
        &ctx.principal,
        CustomWrite {
            object,
            defs: &defs,
            input,
            existing: existing.map(|(_, v)| v),
            record: &record,
        },
    )?;
    if let (Some((id, _)), Some(keys)) = (existing, input) {
        crm_db::repo::fields::unflag(c, object, id, &keys.keys().cloned().collect::<Vec<_>>())?;
    }
    Ok(Some(values))
}
