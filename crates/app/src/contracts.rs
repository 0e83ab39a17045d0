//! Contract lifecycle operations shared by the API and the approval engine.

use chrono::{DateTime, Utc};
use crm_db::repo::contracts::{self as repo, ContractRow, PaymentRow};
use crm_db::repo::{audit, workflow};
use crm_domain::access::ScopeFilter;
use crm_domain::money::{allocate, AllocationError, Due};
use crm_domain::status::ContractStatus;
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::approvals::Outcome;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};

const RES: &str = "contracts";

/// Changes a contract's status with the transition log, audit entry and
/// `contract.<action>` event. `signed` is (when, the signed copy) for signing.
pub fn set_status(
    c: &mut PgConnection,
    actor: &audit::Actor,
    before: &ContractRow,
    to: ContractStatus,
    action: &str,
    signed: Option<(DateTime<Utc>, String)>,
    reason: Option<&str>,
) -> AppResult<ContractRow> {
    let termination = if to == ContractStatus::Terminated { reason } else { None };
    let row = repo::set_status(c, before.id, to.as_str(), signed, termination)?;
    let user = Some(actor.user_id).filter(|u| !u.is_nil());
    workflow::transition(
        c,
        "contract",
        before.id,
        Some(&before.status),
        to.as_str(),
        user,
        reason,
    )?;
    let mut changes = serde_json::Map::new();
    changes.insert("status".into(), json!({"before": before.status, "after": to.as_str()}));
    let detail = json!({"from": before.status, "to": to.as_str(), "reason": reason});
    audit::record(c, actor, RES, row.id, action, changes, detail)?;
    Ok(row)
}

/// Applies the legal-review outcome to the contract (nothing when it no longer waits).
pub fn on_approval(c: &mut PgConnection, actor: &audit::Actor, contract_id: Uuid, outcome: Outcome) -> AppResult<()> {
    let Some(row) = repo::find(c, &ScopeFilter::All, contract_id, true)? else {
        return Ok(());
    };
    if row.status != ContractStatus::LegalReview.as_str() {
        return Ok(());
    }
    let (to, action, reason) = match outcome {
        Outcome::Pending => return Ok(()),
        Outcome::Approved => (ContractStatus::PendingSignature, "review_passed", None),
        Outcome::Rejected => (ContractStatus::Draft, "review_rejected", Some("legal review rejected")),
        Outcome::Withdrawn => (ContractStatus::Draft, "review_withdrawn", Some("review withdrawn")),
    };
    set_status(c, actor, &row, to, action, None, reason)?;
    Ok(())
}

/// What each instalment of a contract still has outstanding, in plan order.
pub fn dues(c: &mut PgConnection, contract_id: Uuid) -> AppResult<Vec<Due>> {
    Ok(repo::plan(c, &[contract_id])?
        .into_iter()
        .map(|i| Due {
            installment_id: i.id,
            due_date: i.due_date,
            outstanding: (i.amount - i.paid).max(Decimal::ZERO),
        })
        .collect())
}

/// An allocation refused by the rules (422 with the error's code).
pub fn allocation_error(e: AllocationError) -> AppError {
    let code = match e {
        AllocationError::UnknownInstallment(_) => "unknown_installment",
        AllocationError::ExceedsDue(_) => "exceeds_due",
        AllocationError::ExceedsPayment => "exceeds_payment",
        AllocationError::NotPositive => "not_positive",
    };
    AppError::rule(code, e.to_string())
}

/// The part of a payment not yet applied to instalments.
pub fn unapplied(c: &mut PgConnection, payment: &PaymentRow) -> AppResult<Decimal> {
    let applied: Decimal = repo::allocations(c, &[payment.id])?
        .into_iter()
        .map(|(_, _, amount)| amount)
        .sum();
    Ok(payment.amount - applied)
}

/// Applies (part of) a payment's unapplied amount to its contract's instalments: the
/// `wanted` (instalment, amount) pairs, or oldest due first. Only a signed contract's
/// payments are applied; the plan is locked so two allocations cannot both take the
/// same outstanding amount. Returns the payment; records `payment.allocated`.
pub fn allocate_payment(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: &ScopeFilter,
    payment_id: Uuid,
    wanted: Option<&[(Uuid, Decimal)]>,
) -> AppResult<PaymentRow> {
    let row = repo::find_payment(c, scope, payment_id, true)?.ok_or(AppError::NotFound("payment"))?;
    let k = repo::find(c, &ScopeFilter::All, row.contract_id, true)?
        .ok_or_else(|| AppError::internal("payment without contract"))?;
    if !ContractStatus::parse(&k.status).is_some_and(ContractStatus::is_signed) {
        return Err(AppError::conflict(
            "contract_not_signed",
            format!("the contract is {}; payments are applied once it is signed", k.status),
        ));
    }
    repo::lock_plan(c, row.contract_id)?;
    let before = unapplied(c, &row)?;
    let allocs = allocate(before, &dues(c, row.contract_id)?, wanted).map_err(allocation_error)?;
    repo::add_allocations(c, payment_id, &allocs)?;
    let after = unapplied(c, &row)?;
    let mut changes = serde_json::Map::new();
    changes.insert(
        "unapplied".into(),
        json!({"before": crate::checks::money(before), "after": crate::checks::money(after)}),
    );
    audit::record(
        c,
        &ctx.actor(),
        "payments",
        payment_id,
        "allocated",
        changes,
        Value::Null,
    )?;
    Ok(row)
}
