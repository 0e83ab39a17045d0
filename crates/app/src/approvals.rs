//! The approval process engine: picks the definition that matches a submitted record,
//! opens its steps, takes decisions, delegations, withdrawals and escalations.
//!
//! Every call runs inside the caller's transaction. The instance row is locked for each
//! change, so concurrent decisions on one instance queue: one decision per approver,
//! one outcome per step.

use chrono::{DateTime, Utc};
use crm_db::repo::approvals::{self as repo, DefinitionRow, InstanceRow, TaskRow};
use crm_db::repo::audit::{self, Actor};
use crm_db::repo::users;
use crm_domain::approvals::{next_step, Approvers, Mode, Step, Within};
use crm_domain::expr::Expr;
use diesel::PgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{AppError, AppResult};

const RES: &str = "approvals";

/// What is submitted: the record and who it belongs to.
pub struct Submission<'a> {
    pub object_type: &'a str,
    pub object_id: Uuid,
    pub requester: Uuid,
    pub owner_id: Uuid,
    pub owner_team: Option<Uuid>,
    /// The record as JSON; conditions are evaluated against it and it is kept as the
    /// instance snapshot approvers see.
    pub record: Value,
    /// How it is routed when a rule's `start_approval` says; otherwise a routing rule
    /// (`approval_requested`) or the first matching definition decides.
    pub route: Option<Route>,
}

/// A routing decided by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This definition's steps.
    Definition(Uuid),
    /// Approved at once, for this reason.
    Auto(String),
}

/// Where an instance stands after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
}

impl Outcome {
    fn of(status: &str) -> Outcome {
        match status {
            "approved" | "auto_approved" => Outcome::Approved,
            "rejected" => Outcome::Rejected,
            "withdrawn" => Outcome::Withdrawn,
            _ => Outcome::Pending,
        }
    }
}

fn steps_of(def: &DefinitionRow) -> AppResult<Vec<Step>> {
    serde_json::from_value(def.steps.clone())
        .map_err(|e| AppError::internal(format!("approval definition {} has unreadable steps: {e}", def.id)))
}

fn condition_of(def: &DefinitionRow) -> AppResult<Option<Expr>> {
    match &def.condition {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            AppError::internal(format!(
                "approval definition {} has an unreadable condition: {e}",
                def.id
            ))
        }),
    }
}

/// The first active definition (by priority) whose condition holds for the record.
pub fn matching_definition(
    c: &mut PgConnection,
    object_type: &str,
    record: &Value,
) -> AppResult<Option<DefinitionRow>> {
    for def in repo::active_definitions(c, object_type)? {
        if condition_of(&def)?.is_none_or(|e| e.eval(record)) {
            return Ok(Some(def));
        }
    }
    Ok(None)
}

/// Who approves `step` for this requester and owner. The requester never approves
/// their own request; when nobody else qualifies, the requester's manager does.
fn resolve(c: &mut PgConnection, step: &Step, requester: Uuid, owner_team: Option<Uuid>) -> AppResult<Vec<Uuid>> {
    let requester_row = users::find(c, requester)?;
    let requester_team = requester_row.as_ref().and_then(|u| u.team_id);
    let mut ids = match &step.approvers {
        Approvers::User { user_id } => match users::find(c, *user_id)? {
            Some(u) if u.is_active => vec![u.id],
            _ => Vec::new(),
        },
        Approvers::Role { role, within } => {
            let teams = match (within, requester_team) {
                (None, _) => None,
                (Some(_), None) => Some(Vec::new()),
                (Some(Within::Team), Some(t)) => Some(vec![t]),
                (Some(Within::Region), Some(t)) => {
                    let up = repo::team_ancestry(c, t)?;
                    let region = up.iter().find(|(_, k)| k == "region").map(|(id, _)| *id).unwrap_or(t);
                    Some(crm_db::repo::teams::subtree(c, region)?)
                }
            };
            repo::role_holders(c, role, teams.as_deref())?
        }
        Approvers::Manager => repo::manager_chain(c, requester, 1)?,
        Approvers::ManagerChain { levels } => repo::manager_chain(c, requester, i32::from(*levels))?,
        Approvers::TeamLead => {
            let mut found = Vec::new();
            if let Some(team) = owner_team {
                for (t, _) in repo::team_ancestry(c, team)? {
                    found = repo::role_holders(c, "sales_manager", Some(&[t]))?;
                    found.retain(|u| *u != requester);
                    if !found.is_empty() {
                        break;
                    }
                }
            }
            found
        }
    };
    ids.retain(|u| *u != requester);
    ids.dedup();
    if ids.is_empty() {
        ids = repo::manager_chain(c, requester, 1)?;
    }
    Ok(ids)
}

/// Opens `index` of `steps`: one pending task per approver.
fn open_step(
    c: &mut PgConnection,
    inst: &InstanceRow,
    steps: &[Step],
    index: usize,
    now: DateTime<Utc>,
    owner_team: Option<Uuid>,
) -> AppResult<Vec<Uuid>> {
    let step = &steps[index];
    let approvers = resolve(c, step, inst.requester_id, owner_team)?;
    if approvers.is_empty() {
        return Err(AppError::rule(
            "no_approver",
            format!(
                "nobody can approve step `{}`; ask an administrator to fix the approval definition",
                step.name
            ),
        )
        .with_extra("step", json!(index)));
    }
    let due_at = step.due_hours.map(|h| now + chrono::Duration::hours(i64::from(h)));
    let rows: Vec<TaskRow> = approvers
        .iter()
        .map(|a| TaskRow {
            id: Uuid::now_v7(),
            instance_id: inst.id,
            step_index: index as i32,
            approver_id: *a,
            status: "pending".into(),
            comment: None,
            delegated_from: None,
            due_at,
            decided_at: None,
            created_at: now,
        })
        .collect();
    repo::insert_tasks(c, &rows)?;
    repo::log(
        c,
        inst.id,
        now,
        None,
        "step_opened",
        Some(index as i32),
        None,
        json!({"step": step.name, "approvers": approvers, "mode": step.mode, "due_at": due_at}),
    )?;
    Ok(approvers)
}

fn event(c: &mut PgConnection, actor: &Actor, inst: &InstanceRow, action: &str, extra: Value) -> AppResult<()> {
    let mut payload = json!({
        "instance_id": inst.id, "object_type": inst.object_type, "object_id": inst.object_id,
        "status": inst.status, "current_step": inst.current_step, "requester_id": inst.requester_id,
    });
    if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        p.extend(extra);
    }
    audit::record(c, actor, RES, inst.id, action, serde_json::Map::new(), payload)?;
    Ok(())
}

/// Submits a record: the matching definition opens its first applicable step; with no
/// matching definition (or no applicable step) the record is auto-approved, and that is
/// recorded as an instance too.
pub fn submit(c: &mut PgConnection, actor: &Actor, now: DateTime<Utc>, s: Submission<'_>) -> AppResult<InstanceRow> {
    if repo::pending_for(c, s.object_type, s.object_id)?.is_some() {
        return Err(AppError::conflict(
            "approval_pending",
            "an approval of this record is already pending",
        ));
    }
    let route = match s.route.clone() {
        Some(r) => Some(r),
        None => crate::rules::route_approval(c, s.object_type, s.object_id, &s.record, now)?,
    };
    let def = match &route {
        Some(Route::Definition(id)) => Some(repo::find_definition(c, *id, false)?.ok_or_else(|| {
            AppError::rule(
                "no_approver",
                "the approval definition a rule routes to no longer exists; ask an administrator to fix the rule",
            )
        })?),
        Some(Route::Auto(_)) => None,
        None => matching_definition(c, s.object_type, &s.record)?,
    };
    let steps = match &def {
        Some(d) => steps_of(d)?,
        None => Vec::new(),
    };
    let first = next_step(&steps, 0, &s.record);
    let auto = first.is_none();
    let mut snapshot = json!({"record": s.record});
    if let Some(team) = s.owner_team {
        snapshot["owner_team_id"] = json!(team);
    }
    let inst = repo::insert_instance(
        c,
        &InstanceRow {
            id: Uuid::now_v7(),
            definition_id: def.as_ref().map(|d| d.id),
            object_type: s.object_type.to_owned(),
            object_id: s.object_id,
            status: if auto { "auto_approved" } else { "pending" }.into(),
            requester_id: s.requester,
            owner_id: s.owner_id,
            current_step: first.map(|i| i as i32),
            snapshot,
            created_at: now,
            decided_at: auto.then_some(now),
            version: 1,
        },
    )?;
    let user = Some(actor.user_id).filter(|u| !u.is_nil());
    let details = json!({"definition_id": def.as_ref().map(|d| d.id), "definition": def.as_ref().map(|d| &d.name)});
    repo::log(c, inst.id, now, user, "submitted", None, None, details.clone())?;
    if auto {
        let why = match (&route, &def) {
            (Some(Route::Auto(reason)), _) => reason.as_str(),
            (_, None) => "no approval definition matches",
            (_, Some(_)) => "no step of the matching definition applies",
        };
        repo::log(c, inst.id, now, None, "auto_approved", None, Some(why), json!({}))?;
        event(
            c,
            actor,
            &inst,
            "decided",
            json!({"outcome": "approved", "auto": true, "reason": why}),
        )?;
        return Ok(inst);
    }
    let approvers = open_step(c, &inst, &steps, first.unwrap_or(0), now, s.owner_team)?;
    event(c, actor, &inst, "submitted", json!({"approvers": approvers}))?;
    Ok(inst)
}

fn owner_team(inst: &InstanceRow) -> Option<Uuid> {
    inst.snapshot
        .get("owner_team_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn definition_steps(c: &mut PgConnection, inst: &InstanceRow) -> AppResult<Vec<Step>> {
    let Some(id) = inst.definition_id else {
        return Ok(Vec::new());
    };
    let def = repo::find_definition(c, id, false)?.ok_or_else(|| AppError::internal("approval definition missing"))?;
    steps_of(&def)
}

/// Locks the instance and finds the caller's pending task on it.
fn my_task(c: &mut PgConnection, instance_id: Uuid, user: Uuid) -> AppResult<(InstanceRow, TaskRow)> {
    let inst = repo::find_instance(c, instance_id, true)?.ok_or_else(|| AppError::NotFound("approval"))?;
    let tasks = repo::tasks_of(c, &[inst.id])?;
    let mine: Vec<&TaskRow> = tasks.iter().filter(|t| t.approver_id == user).collect();
    if mine.is_empty() {
        return Err(AppError::NotFound("approval"));
    }
    if let Some(t) = mine.iter().find(|t| t.status == "pending") {
        if inst.status == "pending" {
            return Ok((inst, (*t).clone()));
        }
    }
    let last = mine.last().map(|t| t.status.clone()).unwrap_or_default();
    Err(AppError::conflict(
        "already_decided",
        format!(
            "nothing to decide here: the approval is {} and your task is {last}",
            inst.status
        ),
    )
    .with_extra("task_status", json!(last))
    .with_extra("approval_status", json!(inst.status)))
}

/// Approves or rejects with the caller's pending task on the instance. Returns the instance and its outcome.
pub fn decide(
    c: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
    instance_id: Uuid,
    approve: bool,
    comment: Option<&str>,
) -> AppResult<(InstanceRow, Outcome)> {
    let (inst, task) = my_task(c, instance_id, actor.user_id)?;
    let step = task.step_index;
    let verdict = if approve { "approved" } else { "rejected" };
    repo::decide_task(c, task.id, verdict, comment, now)?;
    repo::log(
        c,
        inst.id,
        now,
        Some(actor.user_id),
        verdict,
        Some(step),
        comment,
        json!({"task_id": task.id}),
    )?;
    if !approve {
        repo::close_pending(c, inst.id, None, "skipped", now)?;
        let inst = repo::set_instance(c, inst.id, "rejected", Some(step), Some(now))?;
        event(
            c,
            actor,
            &inst,
            "decided",
            json!({"outcome": "rejected", "comment": comment, "step": step}),
        )?;
        return Ok((inst, Outcome::Rejected));
    }
    let steps = definition_steps(c, &inst)?;
    let mode = steps.get(step as usize).map(|s| s.mode).unwrap_or_default();
    let step_done = match mode {
        Mode::Any => {
            repo::close_pending(c, inst.id, Some(step), "skipped", now)?;
            true
        }
        Mode::All => repo::pending_in_step(c, inst.id, step)?.is_empty(),
    };
    if !step_done {
        event(
            c,
            actor,
            &inst,
            "step_approved",
            json!({"step": step, "comment": comment}),
        )?;
        return Ok((inst, Outcome::Pending));
    }
    let record = inst.snapshot.get("record").cloned().unwrap_or(Value::Null);
    match next_step(&steps, step as usize + 1, &record) {
        Some(n) => {
            let inst = repo::set_instance(c, inst.id, "pending", Some(n as i32), None)?;
            open_step(c, &inst, &steps, n, now, owner_team(&inst))?;
            event(
                c,
                actor,
                &inst,
                "step_approved",
                json!({"step": step, "next_step": n, "comment": comment}),
            )?;
            Ok((inst, Outcome::Pending))
        }
        None => {
            let inst = repo::set_instance(c, inst.id, "approved", Some(step), Some(now))?;
            repo::log(
                c,
                inst.id,
                now,
                None,
                "completed",
                Some(step),
                None,
                json!({"outcome": "approved"}),
            )?;
            event(
                c,
                actor,
                &inst,
                "decided",
                json!({"outcome": "approved", "comment": comment, "step": step}),
            )?;
            Ok((inst, Outcome::Approved))
        }
    }
}

/// Hands the caller's pending task on the instance to another active user.
pub fn delegate(
    c: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
    instance_id: Uuid,
    to: Uuid,
    comment: Option<&str>,
) -> AppResult<InstanceRow> {
    let (inst, task) = my_task(c, instance_id, actor.user_id)?;
    if to == actor.user_id {
        return Err(AppError::field("user_id", "invalid", "delegate to someone else"));
    }
    if to == inst.requester_id {
        return Err(AppError::field(
            "user_id",
            "requester",
            "the requester cannot approve their own request",
        ));
    }
    match users::find(c, to)? {
        Some(u) if u.is_active && !u.is_service => {}
        _ => return Err(AppError::field("user_id", "not_found", "no active user with this id")),
    }
    if repo::pending_in_step(c, inst.id, task.step_index)?
        .iter()
        .any(|t| t.approver_id == to)
    {
        return Err(AppError::conflict(
            "already_approver",
            "this user already has this decision to make",
        ));
    }
    repo::decide_task(c, task.id, "delegated", comment, now)?;
    repo::insert_tasks(
        c,
        &[TaskRow {
            id: Uuid::now_v7(),
            instance_id: inst.id,
            step_index: task.step_index,
            approver_id: to,
            status: "pending".into(),
            comment: None,
            delegated_from: Some(task.id),
            due_at: task.due_at,
            decided_at: None,
            created_at: now,
        }],
    )?;
    repo::log(
        c,
        inst.id,
        now,
        Some(actor.user_id),
        "delegated",
        Some(task.step_index),
        comment,
        json!({"from": actor.user_id, "to": to}),
    )?;
    event(
        c,
        actor,
        &inst,
        "delegated",
        json!({"from": actor.user_id, "to": to, "step": task.step_index}),
    )?;
    Ok(inst)
}

/// Withdraws a pending instance (its requester only).
pub fn withdraw(
    c: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
    instance_id: Uuid,
    comment: Option<&str>,
) -> AppResult<InstanceRow> {
    let inst = repo::find_instance(c, instance_id, true)?.ok_or_else(|| AppError::NotFound("approval"))?;
    if inst.requester_id != actor.user_id {
        return Err(AppError::forbidden("only the requester can withdraw a request"));
    }
    if inst.status != "pending" {
        return Err(AppError::conflict(
            "not_pending",
            format!("this approval is already {}", inst.status),
        ));
    }
    repo::close_pending(c, inst.id, None, "withdrawn", now)?;
    let inst = repo::set_instance(c, inst.id, "withdrawn", inst.current_step, Some(now))?;
    repo::log(
        c,
        inst.id,
        now,
        Some(actor.user_id),
        "withdrawn",
        inst.current_step,
        comment,
        json!({}),
    )?;
    event(c, actor, &inst, "withdrawn", json!({"comment": comment}))?;
    Ok(inst)
}

/// Escalates pending tasks past their due time to the approver's manager (who gets a
/// fresh due time). Tasks whose approver has no manager stay as they are. Returns the
/// number escalated.
pub fn escalate_due(c: &mut PgConnection, now: DateTime<Utc>) -> AppResult<usize> {
    let actor = Actor::system();
    let mut done = 0;
    for task in repo::overdue_tasks(c, now, 200)? {
        let Some(inst) = repo::find_instance(c, task.instance_id, true)? else {
            continue;
        };
        let Some(current) = repo::find_task(c, task.id)?.filter(|t| t.status == "pending") else {
            continue;
        };
        let Some(manager) = repo::manager_chain(c, current.approver_id, 1)?.into_iter().next() else {
            continue;
        };
        let steps = definition_steps(c, &inst)?;
        let hours = steps
            .get(current.step_index as usize)
            .and_then(|s| s.due_hours)
            .unwrap_or(24);
        let open = repo::pending_in_step(c, inst.id, current.step_index)?;
        if manager == inst.requester_id || open.iter().any(|t| t.approver_id == manager) {
            // Nobody new to hand it to; it stays with the approver.
            continue;
        }
        repo::decide_task(c, current.id, "escalated", None, now)?;
        {
            repo::insert_tasks(
                c,
                &[TaskRow {
                    id: Uuid::now_v7(),
                    instance_id: inst.id,
                    step_index: current.step_index,
                    approver_id: manager,
                    status: "pending".into(),
                    comment: None,
                    delegated_from: Some(current.id),
                    due_at: Some(now + chrono::Duration::hours(i64::from(hours))),
                    decided_at: None,
                    created_at: now,
                }],
            )?;
        }
        repo::log(
            c,
            inst.id,
            now,
            None,
            "escalated",
            Some(current.step_index),
            None,
            json!({"from": current.approver_id, "to": manager, "due_at": current.due_at}),
        )?;
        event(
            c,
            &actor,
            &inst,
            "escalated",
            json!({"from": current.approver_id, "to": manager}),
        )?;
        done += 1;
    }
    Ok(done)
}

/// The outcome an instance stands at.
pub fn outcome(inst: &InstanceRow) -> Outcome {
    Outcome::of(&inst.status)
}

/// Applies an instance's outcome to the record it is about (a quote or a contract).
pub fn apply_outcome(c: &mut PgConnection, actor: &Actor, inst: &InstanceRow, outcome: Outcome) -> AppResult<()> {
    match inst.object_type.as_str() {
        "quote" => crate::quotes::on_approval(c, actor, inst.object_id, outcome),
        "contract" => crate::contracts::on_approval(c, actor, inst.object_id, outcome),
        _ => Ok(()),
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub escalated: usize,
    pub quotes_expired: usize,
    pub sla_breached: usize,
}

/// The time-based sweep, inside the caller's transaction: overdue decisions escalate to
/// the approver's manager, sent quotes past their validity expire.
pub fn sweep(c: &mut PgConnection, ctx: &crate::Ctx) -> AppResult<Swept> {
    Ok(Swept {
        escalated: escalate_due(c, ctx.now())?,
        quotes_expired: crate::quotes::expire_due(c, ctx.today())?,
        sla_breached: crate::leads::mark_sla_breaches(c, ctx)?,
    })
}

/// Object types a definition can be about.
pub const DEFINITION_OBJECTS: &[&str] = &["quote", "contract", "opportunity"];

/// A new approval definition: which records (object type, a condition over the record
/// view), in which order (`priority`, lowest first), and the steps.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionInput {
    pub name: String,
    pub object_type: String,
    pub condition: Option<Value>,
    pub priority: Option<i32>,
    pub steps: Value,
    pub active: Option<bool>,
}

/// A change of a definition; pending approvals open their later steps from it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::write::double_option")]
    pub condition: Option<Option<Value>>,
    pub priority: Option<i32>,
    pub steps: Option<Value>,
    pub active: Option<bool>,
}

fn check_condition(c: Option<&Value>) -> AppResult<Option<Value>> {
    match c {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let e: crm_domain::expr::Expr = serde_json::from_value(v.clone())
                .map_err(|e| AppError::field("condition", "invalid", format!("not a condition: {e}")))?;
            e.validate()
                .map_err(|e| AppError::field("condition", "invalid", e.to_string()))?;
            Ok(Some(v.clone()))
        }
    }
}

fn check_definition_steps(c: &mut PgConnection, v: &Value) -> AppResult<Value> {
    use crm_domain::approvals::{check_steps, Approvers};
    let steps: Vec<Step> = serde_json::from_value(v.clone())
        .map_err(|e| AppError::field("steps", "invalid", format!("not a list of steps: {e}")))?;
    if steps.len() > 20 {
        return Err(AppError::field("steps", "too_long", "at most 20 steps"));
    }
    if let Some((i, msg)) = check_steps(&steps).into_iter().next() {
        return Err(AppError::field(&format!("steps[{i}]"), "invalid", msg));
    }
    for (i, s) in steps.iter().enumerate() {
        match &s.approvers {
            Approvers::Role { role, .. }
                if crm_db::repo::roles::find_by_keys(c, std::slice::from_ref(role))?.is_empty() =>
            {
                return Err(AppError::field(
                    &format!("steps[{i}].approvers.role"),
                    "not_found",
                    "no such role",
                ));
            }
            Approvers::User { user_id } if !crm_db::repo::users::find(c, *user_id)?.is_some_and(|u| u.is_active) => {
                return Err(AppError::field(
                    &format!("steps[{i}].approvers.user_id"),
                    "not_found",
                    "no active user with this id",
                ));
            }
            _ => {}
        }
    }
    serde_json::to_value(&steps).map_err(|e| AppError::internal(e.to_string()))
}

fn clean_name(name: &str) -> AppResult<String> {
    let name = crm_domain::normalize::clean_text(name);
    if name.is_empty() {
        return Err(AppError::field("name", "required", "must not be blank"));
    }
    Ok(name)
}

/// Creates an approval definition (`approvals:admin`).
pub fn create_definition(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<DefinitionRow> {
    ctx.require("approvals", crm_domain::access::Action::Admin)?;
    let input: DefinitionInput = crate::write::parse(fields)?;
    let name = clean_name(&input.name)?;
    if !DEFINITION_OBJECTS.contains(&input.object_type.as_str()) {
        return Err(AppError::field(
            "object_type",
            "invalid_choice",
            "one of quote, contract, opportunity",
        ));
    }
    let condition = check_condition(input.condition.as_ref())?;
    let steps = check_definition_steps(c, &input.steps)?;
    let new = repo::NewDefinition {
        id: Uuid::now_v7(),
        name,
        object_type: input.object_type,
        condition,
        priority: input.priority.unwrap_or(100),
        steps,
        active: input.active.unwrap_or(true),
    };
    let row = repo::insert_definition(c, &new)?;
    crate::write::created(c, ctx, "approval_definitions", row.id)?;
    Ok(row)
}

/// Changes an approval definition.
pub fn update_definition(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<DefinitionRow> {
    ctx.require("approvals", crm_domain::access::Action::Admin)?;
    let input: DefinitionPatch = crate::write::parse(fields)?;
    let name = input.name.as_deref().map(clean_name).transpose()?;
    let condition = match &input.condition {
        Some(c) => Some(check_condition(c.as_ref())?),
        None => None,
    };
    let before = repo::find_definition(c, id, true)?.ok_or(AppError::NotFound("approval definition"))?;
    let version = before.version;
    crate::write::change_locked(
        c,
        ctx,
        ("approval_definitions", id),
        before,
        (version, expected),
        |c, _| {
            let steps = input.steps.as_ref().map(|s| check_definition_steps(c, s)).transpose()?;
            let ch = repo::DefinitionChanges {
                name,
                condition,
                priority: input.priority,
                steps,
                active: input.active,
            };
            Ok(Some(repo::update_definition(c, id, &ch)?))
        },
    )
}

/// Whether the actor may see an approval: its requester, one of its approvers, an
/// approvals admin, or someone who can read the record it is about.
pub fn visible(c: &mut PgConnection, ctx: &Ctx, inst: &InstanceRow) -> AppResult<bool> {
    use crm_domain::access::Action;
    let p = &ctx.principal;
    if inst.requester_id == p.user_id || p.scope("approvals", Action::Admin).is_some() {
        return Ok(true);
    }
    if repo::tasks_of(c, &[inst.id])?
        .iter()
        .any(|t| t.approver_id == p.user_id)
    {
        return Ok(true);
    }
    let live = crm_db::repo::accounts::Liveness::Live;
    Ok(match inst.object_type.as_str() {
        "quote" => match p.scope("quotes", Action::Read) {
            Some(s) => crm_db::repo::quotes::find(c, &p.filter(s), inst.object_id, live, false)?.is_some(),
            None => false,
        },
        "contract" => match p.scope("contracts", Action::Read) {
            Some(s) => crm_db::repo::contracts::find(c, &p.filter(s), inst.object_id, false)?.is_some(),
            None => false,
        },
        _ => false,
    })
}

/// Approves or rejects (a rejection says why) with the actor's pending decision, and
/// applies the outcome to the record (an approved quote, a contract passing review).
pub fn approve_or_reject(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    approve: bool,
    comment: Option<&str>,
) -> AppResult<InstanceRow> {
    let comment = comment.map(str::trim).filter(|s| !s.is_empty());
    if !approve && comment.is_none() {
        return Err(AppError::field(
            "comment",
            "required",
            "say why the request is rejected",
        ));
    }
    let actor = ctx.actor();
    let (inst, outcome) = decide(c, &actor, ctx.now(), id, approve, comment)?;
    apply_outcome(c, &actor, &inst, outcome)?;
    repo::find_instance(c, inst.id, false)?.ok_or_else(|| AppError::internal("approval vanished"))
}

/// Withdraws a pending approval the actor can see (its requester only) and returns the
/// record to draft.
pub fn withdraw_request(c: &mut PgConnection, ctx: &Ctx, id: Uuid, comment: Option<&str>) -> AppResult<InstanceRow> {
    // An approval the actor cannot see is not found, as reading and deciding say.
    match repo::find_instance(c, id, false)? {
        Some(inst) if visible(c, ctx, &inst)? => {}
        _ => return Err(AppError::NotFound("approval")),
    }
    let comment = comment.map(str::trim).filter(|s| !s.is_empty());
    let actor = ctx.actor();
    let inst = withdraw(c, &actor, ctx.now(), id, comment)?;
    apply_outcome(c, &actor, &inst, Outcome::Withdrawn)?;
    Ok(inst)
}

/// Hands the actor's pending decision to another user.
pub fn delegate_to(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    user_id: Uuid,
    comment: Option<&str>,
) -> AppResult<InstanceRow> {
    let comment = comment.map(str::trim).filter(|s| !s.is_empty());
    delegate(c, &ctx.actor(), ctx.now(), id, user_id, comment)
}
