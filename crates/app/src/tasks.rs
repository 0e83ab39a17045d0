//! To-dos: creating one, from the API, a rule or an approval (`origin` says which).

use chrono::{DateTime, Utc};
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::tasks::{self, NewTask, TaskChanges, TaskRow};
use crm_db::repo::{audit, contacts, leads, opportunities as opps};
use crm_domain::access::{Action, Scope};
use crm_domain::status::{TaskAction, TaskStatus};
use diesel::PgConnection;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::checks::{patch, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::owners::resolve_owner;
use crate::prune_changes;
use crate::write::{self, double_option};

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

/// Priorities of a task.
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

/// A change of a task: reschedule, reassign, complete (`status: done`), cancel, reopen.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    pub title: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "double_option")]
    pub reminder_at: Option<Option<DateTime<Utc>>>,
    pub priority: Option<String>,
    /// Reassign (needs `tasks:assign`).
    pub owner_id: Option<Uuid>,
    /// By the task status machine: `done` completes, `cancelled` cancels an open task,
    /// `open` reopens.
    pub status: Option<String>,
}

/// Changes a task; a status change goes through the task status machine (a wrong one
/// is [`AppError::Transition`]) and completing records `completed_at`.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<TaskRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: TaskPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let title = input.title.as_deref().map(|t| errs.required_text("title", t));
    if input.priority.as_deref().is_some_and(|p| !PRIORITIES.contains(&p)) {
        errs.add(
            "priority",
            "invalid_choice",
            format!("one of {}", PRIORITIES.join(", ")),
        );
    }
    let to = match input.status.as_deref() {
        None => None,
        Some(s) => {
            let parsed = TaskStatus::parse(s);
            if parsed.is_none() {
                errs.add("status", "invalid_choice", "one of open, done, cancelled");
            }
            parsed
        }
    };
    let mut ch = TaskChanges {
        title: title.and_then(|t| errs.max_len("title", Some(t), 300)),
        description: patch(input.description, |v| errs.text_max("description", v, 10_000)),
        due_at: input.due_at,
        reminder_at: input.reminder_at,
        priority: input.priority,
        owner_id: input.owner_id,
        team_id: None,
        status: None,
        completed_at: None,
    };
    errs.into_result()?;
    write::update(c, ctx, &scope, id, expected, "task", |c, before: &TaskRow| {
        let due = ch.due_at.unwrap_or(before.due_at);
        let reminder = ch.reminder_at.unwrap_or(before.reminder_at);
        if let (Some(r), Some(d)) = (reminder, due) {
            if r > d {
                return Err(AppError::field(
                    "reminder_at",
                    "out_of_range",
                    "must not be after due_at",
                ));
            }
        }
        if let Some(owner) = ch.owner_id.filter(|o| *o != before.owner_id) {
            ctx.require(RES, Action::Assign)?;
            ch.team_id = Some(resolve_owner(c, ctx, RES, owner)?);
        }
        let from = TaskStatus::parse(&before.status).unwrap_or(TaskStatus::Open);
        if let Some(to) = to.filter(|t| *t != from) {
            let action = match to {
                TaskStatus::Done => TaskAction::Complete,
                TaskStatus::Cancelled => TaskAction::Cancel,
                TaskStatus::Open => TaskAction::Reopen,
            };
            ch.status = Some(from.apply(action)?.as_str().to_owned());
            ch.completed_at = Some((to == TaskStatus::Done).then(|| ctx.now()));
        }
        if prune_changes!(ch, before; title, description, due_at, reminder_at, priority, owner_id, team_id, status, completed_at)
        {
            return Ok(None);
        }
        Ok(Some(tasks::update(c, id, &ch)?))
    })
}
