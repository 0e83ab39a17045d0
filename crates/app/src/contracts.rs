//! Contract lifecycle operations shared by the API and the approval engine.

use chrono::{DateTime, Utc};
use crm_db::repo::contracts::{self as repo, ContractRow};
use crm_db::repo::{audit, workflow};
use crm_domain::access::ScopeFilter;
use crm_domain::status::ContractStatus;
use diesel::PgConnection;
use serde_json::json;
use uuid::Uuid;

use crate::approvals::Outcome;
use crate::error::AppResult;

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
