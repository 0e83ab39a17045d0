//! Lead assignment, from the API, a rule (round robin, territory, least loaded) or an
//! import.

use crm_db::repo::audit;
use crm_db::repo::leads::{self, LeadChanges, LeadRow};
use crm_domain::access::Action;
use diesel::PgConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::AppResult;
use crate::owners::resolve_owner;

const RES: &str = "leads";

/// Assigns leads in the actor's assign scope to `owner_id` (who takes their team): new
/// and disqualified leads become `assigned`, the assignment time starts the response
/// clock. Unknown or converted leads are field errors (`lead_ids[i]`) and nothing is
/// assigned. Records `lead.assigned` for each.
pub fn assign(c: &mut PgConnection, ctx: &Ctx, lead_ids: &[Uuid], owner_id: Uuid) -> AppResult<Vec<LeadRow>> {
    let scope = ctx.filter(RES, Action::Assign)?;
    let rows = leads::find_many_for_update(c, &scope, lead_ids)?;
    let mut errs = Errors::default();
    for (i, id) in lead_ids.iter().enumerate() {
        match rows.iter().find(|r| r.id == *id) {
            None => errs.add(&format!("lead_ids[{i}]"), "not_found", "no such lead"),
            Some(r) if r.status == "converted" => errs.add(
                &format!("lead_ids[{i}]"),
                "lead_converted",
                "a converted lead cannot be reassigned",
            ),
            Some(_) => {}
        }
    }
    errs.into_result()?;
    let team = resolve_owner(c, ctx, RES, owner_id)?;
    if owner_id == ctx.user_id() {
        ctx.require(RES, Action::Assign)?;
    }
    let now = ctx.now();
    let mut out = Vec::with_capacity(rows.len());
    for before in rows {
        let reopen = matches!(before.status.as_str(), "new" | "disqualified");
        let ch = LeadChanges {
            owner_id: Some(owner_id),
            team_id: Some(team),
            status: reopen.then(|| "assigned".to_owned()),
            disqualify_reason: (before.status == "disqualified").then_some(None),
            assigned_at: Some(Some(now)),
            ..LeadChanges::default()
        };
        let after = leads::update(c, before.id, &ch)?;
        audit::record(c, &ctx.actor(), RES, after.id, "assigned", Map::new(), Value::Null)?;
        out.push(after);
    }
    Ok(out)
}
