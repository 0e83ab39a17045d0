//! To-dos: creating one, from the API, a rule or an approval (`origin` says which).

use chrono::{DateTime, Utc};
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::tasks::{self, NewTask, TaskRow};
use crm_db::repo::{audit, contacts, leads, opportunities as opps};
use crm_domain::access::{Action, Scope};
use diesel::PgConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::owners::resolve_owner;

const RES: &str = "tasks";

/// A task to create.
#[derive(Debug, Clone)]
pub struct TaskInput {
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub reminder_at: Option<DateTime<Utc>>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// Defaults to the actor.
    pub owner_id: Option<Uuid>,
    /// (`lead` | `account` | `contact` | `opportunity`, id): must be visible to the actor.
    pub related: Option<(String, Uuid)>,
    /// `manual`, `rule`, `approval` ...
    pub origin: String,
}

/// Whether the actor can read the record a task is about (404-style: not visible and
/// not existing look the same).
pub fn visible(c: &mut PgConnection, ctx: &Ctx, kind: &str, id: Uuid) -> AppResult<bool> {
    let scope = |resource: &str| {
        ctx.principal
            .filter(ctx.principal.scope(resource, Action::Read).unwrap_or(Scope::Own))
    };
    Ok(match kind {
        "lead" => leads::find(c, &scope("leads"), id, Liveness::Live, false)?.is_some(),
        "account" => accounts::find(c, &scope("accounts"), id, Liveness::Live, false)?.is_some(),
        "contact" => contacts::find(c, &scope("contacts"), id, Liveness::Live, false)?.is_some(),
        "opportunity" => opps::find(c, &scope("opportunities"), id, Liveness::Live, false)?.is_some(),
        _ => false,
    })
}

/// Creates a task: checks the input, the related record's visibility and who may own
/// it; records `task.created`.
pub fn create(c: &mut PgConnection, ctx: &Ctx, input: TaskInput) -> AppResult<TaskRow> {
    ctx.require(RES, Action::Create)?;
    let mut errs = Errors::default();
    let title = errs.required_text("title", &input.title);
    if let (Some(r), Some(d)) = (input.reminder_at, input.due_at) {
        if r > d {
            errs.add("reminder_at", "out_of_range", "must not be after due_at");
        }
    }
    let description = errs.text(input.description);
    errs.into_result()?;
    if let Some((kind, id)) = &input.related {
        if !visible(c, ctx, kind, *id)? {
            return Err(AppError::field("related_id", "not_found", format!("no such {kind}")));
        }
    }
    let owner_id = input.owner_id.unwrap_or_else(|| ctx.user_id());
    let team_id = resolve_owner(c, ctx, RES, owner_id)?;
    let by = Some(ctx.user_id()).filter(|u| !u.is_nil());
    let row = tasks::insert(
        c,
        &NewTask {
            id: Uuid::now_v7(),
            title,
            description,
            due_at: input.due_at,
            reminder_at: input.reminder_at,
            priority: input.priority,
            owner_id,
            team_id,
            status: "open".into(),
            related_type: input.related.as_ref().map(|(k, _)| k.clone()),
            related_id: input.related.map(|(_, id)| id),
            origin: input.origin,
            created_by: by,
        },
    )?;
    audit::record(c, &ctx.actor(), RES, row.id, "created", Map::new(), Value::Null)?;
    Ok(row)
}
