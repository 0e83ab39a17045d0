//! Record views: the documented, stable shape conditions (stage criteria, approval
//! conditions, rules) read a record in, built from storage and the field catalogue
//! (`crm_domain::catalogue`, served at `GET /meta/{object}`), never from an API response:
//!
//! - every stored column under its catalogue key (`accounts.account_type` is `type`),
//!   internal columns (`name_norm`) and secrets left out; decimals are exact strings
//!   (`"5000.00"`), integers numbers, times RFC 3339;
//! - custom fields by key under `custom`;
//! - derived catalogue fields: a deal's `weighted_amount` and `contacts`
//!   (`[{contact_id, role}]`), a lead's `response_minutes`, `sla_due_at` and `sla_status`
//!   (its response SLA), a quote's `lines` and the
//!   approval aliases `discount_pct` (the effective discount), `amount` (the total),
//!   `free_text_lines` and `free_text_amount` (lines without a product, their net);
//! - an account's `first_contract_signed_at` (its cooperation anniversary);
//! - related records: `account` (its own view, without relations) for contacts, deals,
//!   quotes, contracts, activities and tasks; `owner` (`id`, `name`, `email`,
//!   `team_id`, `manager_id`, `is_active`); a deal's `stage` (`id`, `code`, `name`,
//!   `kind`, `probability`); a quote's or contract's `opportunity` (its own view).
//!
//! Conditions address these by dotted path (`account.industry`, `custom.budget`).

use crm_db::repo::opportunities::OpportunityRow;
use crm_db::repo::storage;
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Objects with a record view: (object, table).
pub const VIEWED: &[(&str, &str)] = &[
    ("accounts", "accounts"),
    ("contacts", "contacts"),
    ("leads", "leads"),
    ("opportunities", "opportunities"),
    ("activities", "activities"),
    ("tasks", "tasks"),
    ("products", "products"),
    ("quotes", "quotes"),
    ("contracts", "contracts"),
    ("invoices", "invoices"),
    ("payments", "payments"),
];

/// Stored columns no view shows.
const INTERNAL: &[&str] = &["name_norm"];

/// Columns whose catalogue key differs: (object, column, key).
const RENAMED: &[(&str, &str, &str)] = &[("accounts", "account_type", "type")];

fn table_of(object: &str) -> AppResult<&'static str> {
    VIEWED
        .iter()
        .find(|(o, _)| *o == object)
        .map(|(_, t)| *t)
        .ok_or_else(|| AppError::internal(format!("no record view for {object}")))
}

/// The record's own fields: storage columns under their catalogue keys.
fn own(object: &str, row: Value) -> Map<String, Value> {
    let Value::Object(mut m) = row else {
        return Map::new();
    };
    for k in INTERNAL {
        m.remove(*k);
    }
    for (o, column, key) in RENAMED {
        if *o == object {
            if let Some(v) = m.remove(*column) {
                m.insert((*key).to_owned(), v);
            }
        }
    }
    m
}

fn uuid_of(m: &Map<String, Value>, key: &str) -> Option<Uuid> {
    m.get(key).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

fn decimal_of(m: &Map<String, Value>, key: &str) -> Option<Decimal> {
    match m.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

fn related(c: &mut PgConnection, object: &str, table: &'static str, id: Option<Uuid>) -> AppResult<Value> {
    let Some(id) = id else {
        return Ok(Value::Null);
    };
    Ok(storage::row(c, table, id)?.map_or(Value::Null, |r| Value::Object(own(object, r))))
}

fn owner(c: &mut PgConnection, id: Option<Uuid>) -> AppResult<Value> {
    let Some(id) = id else {
        return Ok(Value::Null);
    };
    Ok(storage::row(c, "users", id)?.map_or(Value::Null, |u| {
        let pick = |k: &str| u.get(k).cloned().unwrap_or(Value::Null);
        json!({
            "id": pick("id"), "name": pick("name"), "email": pick("email"),
            "team_id": pick("team_id"), "manager_id": pick("manager_id"), "is_active": pick("is_active"),
        })
    }))
}

/// The record view of one record, `None` when there is no such record (deleted ones
/// included: conditions may look at a record in the recycle bin).
pub fn view(c: &mut PgConnection, object: &str, id: Uuid) -> AppResult<Option<Value>> {
    let table = table_of(object)?;
    let Some(row) = storage::row(c, table, id)? else {
        return Ok(None);
    };
    let mut m = own(object, row);
    if !m.contains_key("custom") && matches!(object, "accounts" | "contacts" | "leads" | "opportunities") {
        m.insert("custom".into(), json!({}));
    }
    match object {
        "opportunities" => {
            let contacts: Vec<Value> = storage::rows_of(c, "opportunity_contacts", "opportunity_id", id, "contact_id")?
                .into_iter()
                .map(|r| json!({"contact_id": r.get("contact_id"), "role": r.get("role")}))
                .collect();
            m.insert("contacts".into(), Value::Array(contacts));
            let probability = m.get("probability").and_then(Value::as_i64).unwrap_or(0);
            let weighted = weighted_amount(decimal_of(&m, "amount"), i32::try_from(probability).unwrap_or(0));
            m.insert("weighted_amount".into(), json!(weighted));
            let stage =
                storage::row(c, "stages", uuid_of(&m, "stage_id").unwrap_or_default())?.map_or(Value::Null, |s| {
                    let pick = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
                    json!({"id": pick("id"), "code": pick("code"), "name": pick("name"), "kind": pick("kind"),
                       "probability": pick("probability")})
                });
            m.insert("stage".into(), stage);
        }
        "leads" => {
            let at = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            };
            let minutes = match (at("assigned_at"), at("first_response_at")) {
                (Some(a), Some(f)) => Some((f - a).num_minutes().max(0)),
                _ => None,
            };
            m.insert("response_minutes".into(), json!(minutes));
            let sla = crm_db::repo::leads::slas(c, &[id])?.into_iter().next();
            m.insert("sla_due_at".into(), json!(sla.as_ref().map(|s| s.due_at)));
            m.insert("sla_status".into(), json!(sla.as_ref().map(|s| s.status.clone())));
        }
        "quotes" => {
            let lines = storage::rows_of(c, "quote_lines", "quote_id", id, "position")?;
            let free: Vec<&Value> = lines
                .iter()
                .filter(|l| l.get("product_id").is_none_or(Value::is_null))
                .collect();
            let free_amount: Decimal = free
                .iter()
                .filter_map(|l| {
                    l.get("net_amount")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<Decimal>().ok())
                })
                .sum();
            m.insert("free_text_lines".into(), json!(free.len()));
            m.insert("free_text_amount".into(), json!(money(free_amount)));
            m.insert(
                "discount_pct".into(),
                m.get("effective_discount_pct").cloned().unwrap_or(Value::Null),
            );
            m.insert("amount".into(), m.get("total").cloned().unwrap_or(Value::Null));
            m.insert("lines".into(), Value::Array(lines));
        }
        _ => {}
    }
    if object == "accounts" {
        m.insert("first_contract_signed_at".into(), first_contract_signed_at(c, id)?);
    }
    if matches!(object, "quotes" | "contracts") {
        let deal = related(c, "opportunities", "opportunities", uuid_of(&m, "opportunity_id"))?;
        let account_id = uuid_of(&m, "account_id").or_else(|| {
            deal.get("account_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
        });
        m.insert("opportunity".into(), deal);
        m.insert("account".into(), related(c, "accounts", "accounts", account_id)?);
    } else if object != "accounts" && object != "leads" && object != "products" {
        let account = related(c, "accounts", "accounts", uuid_of(&m, "account_id"))?;
        m.insert("account".into(), account);
    }
    if object != "products" {
        let owner_id = uuid_of(&m, "owner_id");
        m.insert("owner".into(), owner(c, owner_id)?);
    }
    Ok(Some(Value::Object(m)))
}

/// When the account's first contract was signed (its cooperation anniversary).
fn first_contract_signed_at(c: &mut PgConnection, account: Uuid) -> AppResult<Value> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    }
    let t: T = diesel::sql_query(
        "SELECT min(signed_at) AS at FROM contracts \
         WHERE account_id = $1 AND deleted_at IS NULL AND signed_at IS NOT NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(account)
    .get_result(c)?;
    Ok(json!(t.at))
}

fn money(d: Decimal) -> Decimal {
    let mut d = d;
    d.rescale(2);
    d
}

/// A deal's weighted amount: amount x probability / 100, rounded half away from zero.
pub fn weighted_amount(amount: Option<Decimal>, probability: i32) -> Option<Decimal> {
    amount.map(|a| {
        money(
            (a * Decimal::from(probability) / Decimal::from(100))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        )
    })
}

/// The view of a deal. `contacts` are its other contacts as (contact id, role).
pub fn opportunity(r: &OpportunityRow, contacts: &[(Uuid, String)]) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "account_id": r.account_id,
        "primary_contact_id": r.primary_contact_id,
        "contacts": contacts.iter().map(|(id, role)| json!({"contact_id": id, "role": role})).collect::<Vec<_>>(),
        "pipeline_id": r.pipeline_id,
        "stage_id": r.stage_id,
        "amount": r.amount,
        "currency": r.currency,
        "expected_close_date": r.expected_close_date,
        "probability": r.probability,
        "weighted_amount": weighted_amount(r.amount, r.probability),
        "owner_id": r.owner_id,
        "team_id": r.team_id,
        "source_lead_id": r.source_lead_id,
        "competitors": r.competitors,
        "next_step": r.next_step,
        "forecast_category": r.forecast_category,
        "status": r.status,
        "lost_reason": r.lost_reason,
        "closed_at": r.closed_at,
        "stage_entered_at": r.stage_entered_at,
        "last_activity_at": r.last_activity_at,
        "custom": r.custom,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "version": r.version,
    })
}
