//! Quote lifecycle operations shared by the API, the approval engine and scheduled work.

use chrono::NaiveDate;
use crm_db::repo::accounts::Liveness;
use crm_db::repo::quotes::{self, QuoteRow};
use crm_db::repo::{audit, workflow};
use crm_domain::access::ScopeFilter;
use crm_domain::status::QuoteStatus;
use diesel::PgConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::approvals::Outcome;
use crate::error::AppResult;

const RES: &str = "quotes";

/// The quote in storage form with its lines, as audit entries and events carry it.
pub fn view(c: &mut PgConnection, row: &QuoteRow) -> AppResult<Value> {
    let lines = quotes::lines(c, &[row.id])?;
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["lines"] = serde_json::to_value(lines).unwrap_or_default();
    Ok(v)
}

/// Changes a quote's status: the transition log, the audit entry and the
/// `quote.<action>` event.
pub fn set_status(
    c: &mut PgConnection,
    actor: &audit::Actor,
    before: &QuoteRow,
    to: QuoteStatus,
    action: &str,
    reason: Option<&str>,
) -> AppResult<QuoteRow> {
    let row = quotes::set_status(c, before.id, to.as_str())?;
    let user = Some(actor.user_id).filter(|u| !u.is_nil());
    workflow::transition(c, "quote", before.id, Some(&before.status), to.as_str(), user, reason)?;
    let mut changes = serde_json::Map::new();
    changes.insert("status".into(), json!({"before": before.status, "after": to.as_str()}));
    let detail = json!({"from": before.status, "to": to.as_str(), "reason": reason});
    audit::record(c, actor, RES, row.id, action, changes, detail)?;
    Ok(row)
}

/// Applies an approval outcome to the quote it was about (nothing when the quote no
/// longer waits for it).
pub fn on_approval(c: &mut PgConnection, actor: &audit::Actor, quote_id: Uuid, outcome: Outcome) -> AppResult<()> {
    let Some(row) = quotes::find(c, &ScopeFilter::All, quote_id, Liveness::Live, true)? else {
        return Ok(());
    };
    if row.status != QuoteStatus::PendingApproval.as_str() {
        return Ok(());
    }
    match outcome {
        Outcome::Pending => {}
        Outcome::Approved => {
            set_status(c, actor, &row, QuoteStatus::Approved, "approved", None)?;
        }
        Outcome::Rejected => {
            set_status(c, actor, &row, QuoteStatus::Rejected, "rejected", None)?;
        }
        Outcome::Withdrawn => {
            set_status(
                c,
                actor,
                &row,
                QuoteStatus::Draft,
                "withdrawn",
                Some("approval withdrawn"),
            )?;
        }
    }
    Ok(())
}

/// Marks sent quotes past their validity expired (as the system). Returns how many.
pub fn expire_due(c: &mut PgConnection, today: NaiveDate) -> AppResult<usize> {
    let actor = audit::Actor::system();
    let rows = quotes::expired_candidates(c, today)?;
    for row in &rows {
        set_status(c, &actor, row, QuoteStatus::Expired, "expired", Some("validity ended"))?;
    }
    Ok(rows.len())
}
