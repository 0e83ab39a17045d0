//! The recycle bin: soft delete and restore of any record with one (accounts,
//! contacts, leads, deals, activities, tasks, quotes), with the version check, the
//! audit entry and the event. Accounts take their contacts along (`accounts`).

use crm_db::repo::accounts::Liveness;
use crm_db::repo::audit;
use crm_db::repo::soft_delete::{set_deleted, SoftDelete};
use crm_domain::access::ScopeFilter;
use diesel::PgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{AppError, AppResult};

fn deleted_change(before: Value, after: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("deleted_at".into(), json!({"before": before, "after": after}));
    m
}

/// Moves a live record of `scope` to the recycle bin at the context's time. `expected`
/// is the version an `If-Match` named (stale: [`AppError::Stale`]); `guard` refuses
/// records that may not be deleted in their state (a sent quote).
pub fn delete<R: SoftDelete>(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: &ScopeFilter,
    id: Uuid,
    expected: Option<i32>,
    noun: &'static str,
    guard: impl FnOnce(&mut PgConnection, &R) -> AppResult<()>,
) -> AppResult<R> {
    let before = R::find(c, scope, id, Liveness::Live, true)?.ok_or(AppError::NotFound(noun))?;
    if expected.is_some_and(|v| v != before.version()) {
        return Err(AppError::Stale {
            current: before.version(),
        });
    }
    guard(c, &before)?;
    let row: R = set_deleted(c, id, Some(ctx.clock.now()))?;
    let change = deleted_change(Value::Null, json!(row.deleted_at()));
    audit::record(c, &ctx.actor(), R::TABLE, id, "deleted", change, Value::Null)?;
    Ok(row)
}

/// Brings a deleted record of `scope` back from the recycle bin; `guard` refuses one
/// that cannot come back yet (a deal whose account is still deleted).
pub fn restore<R: SoftDelete>(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: &ScopeFilter,
    id: Uuid,
    noun: &'static str,
    guard: impl FnOnce(&mut PgConnection, &R) -> AppResult<()>,
) -> AppResult<R> {
    let before = R::find(c, scope, id, Liveness::Deleted, true)?.ok_or(AppError::NotFound(noun))?;
    guard(c, &before)?;
    let row: R = set_deleted(c, id, None)?;
    let change = deleted_change(json!(before.deleted_at()), Value::Null);
    audit::record(c, &ctx.actor(), R::TABLE, id, "restored", change, Value::Null)?;
    Ok(row)
}

/// A contact or deal comes back only under a live account (`account_deleted`
/// otherwise): `what` names it in the refusal.
pub fn under_live_account(c: &mut PgConnection, account_id: Uuid, what: &str) -> AppResult<()> {
    if crm_db::repo::accounts::exists_live(c, account_id)? {
        Ok(())
    } else {
        Err(AppError::rule(
            "account_deleted",
            format!("the {what}'s account is deleted; restore the account first"),
        ))
    }
}
