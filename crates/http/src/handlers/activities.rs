//! `/api/v1/activities` (follow-ups) and `/api/v1/tasks` (to-dos), and `/me/tasks`.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use crm_db::repo::accounts::Liveness;
use crm_db::repo::activities::{self as acts, ActivityChanges, ActivityFilter, NewActivity};
use crm_db::repo::tasks::{self, TaskChanges, TaskFilter};
use crm_db::repo::{audit, contacts, leads, opportunities as opps};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::diff;
use diesel::prelude::*;
use uuid::Uuid;

use super::{
    prune_changes, resolve_owner, with_etag, BadRequest, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    PreconditionRequired, Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::Auth;
use crate::dto::activities::{
    Activity, ActivityListQuery, CreateActivity, CreateTask, DueWindow, MyTasksQuery, Task, TaskListQuery, TaskStatus,
    UpdateActivity, UpdateTask,
};
use crate::dto::{patch, Errors, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const ACT: &str = "activities";
const TASK: &str = "tasks";

/// Whether the caller can read the record (the same check tasks make).
fn visible(c: &mut PgConnection, auth: &Auth, kind: &str, id: Uuid) -> ApiResult<bool> {
    let ctx = auth.ctx(&crm_app::Clock::default());
    Ok(crm_app::tasks::visible(c, &ctx, kind, id)?)
}

/// A follow-up is logged when it happened: not in the future (5 minutes of clock
/// skew allowed) and at most a year back (older history comes in by import).
fn check_occurred(errs: &mut Errors, at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) {
    if at > now + Duration::minutes(5) {
        errs.add("occurred_at", "out_of_range", "must not be in the future");
    } else if at < now - Duration::days(366) {
        errs.add("occurred_at", "out_of_range", "must be within the last year");
    }
}

/// List follow-ups in the caller's scope.
#[utoipa::path(
    tag = "activities",
    params(ActivityListQuery),
    responses((status = 200, description = "A page of activities", body = Page<Activity>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/activities")]
pub async fn list_activities(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ActivityListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(ACT, Action::Read)?;
    let q = q.into_inner();
    let spec = ListSpec::new(
        acts::SORT_COLUMNS,
        acts::DEFAULT_SORT,
        q.sort.as_deref(),
        q.cursor.as_deref(),
        q.limit,
        "list",
    )?;
    let filter = ActivityFilter {
        lead_id: q.lead_id,
        account_id: q.account_id,
        contact_id: q.contact_id,
        opportunity_id: q.opportunity_id,
        owner_id: q.owner_id,
        team_id: q.team_id,
        activity_type: q.activity_type.map(|t| t.as_str().to_owned()),
        occurred_after: q.occurred_after,
        occurred_before: q.occurred_before,
        q: q.q,
    };
    let page = state
        .db
        .run(move |c| acts::list(c, &scope, &filter, &spec).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Activity::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Log a follow-up on a lead, account, contact and/or deal (each must be visible).
///
/// Updates `last_activity_at` of the linked records; the first activity on a lead is
/// its first response (and moves a new or assigned lead to contacted).
#[utoipa::path(
    tag = "activities",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateActivity,
    responses((status = 201, description = "Logged", body = Activity, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/activities")]
pub async fn create_activity(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateActivity>,
) -> ApiResult<HttpResponse> {
    auth.require(ACT, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let subject = errs.required_text("subject", &dto.subject);
    let now = state.clock.now();
    let occurred_at = dto.occurred_at.unwrap_or(now);
    check_occurred(&mut errs, occurred_at, now);
    if dto.lead_id.is_none() && dto.account_id.is_none() && dto.contact_id.is_none() && dto.opportunity_id.is_none() {
        errs.add(
            "lead_id",
            "required",
            "link at least one of lead_id, account_id, contact_id, opportunity_id",
        );
    }
    let mut new = NewActivity {
        id: Uuid::now_v7(),
        activity_type: dto.activity_type.as_str().into(),
        subject,
        content: errs.text(dto.content),
        occurred_at,
        duration_minutes: dto.duration_minutes,
        outcome: errs.text(dto.outcome),
        next_step: errs.text(dto.next_step),
        lead_id: dto.lead_id,
        account_id: dto.account_id,
        contact_id: dto.contact_id,
        opportunity_id: dto.opportunity_id,
        owner_id: auth.user_id,
        team_id: auth.team_id,
        created_by: Some(auth.user_id),
    };
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        for (field, kind, id) in [
            ("lead_id", "lead", new.lead_id),
            ("account_id", "account", new.account_id),
            ("contact_id", "contact", new.contact_id),
            ("opportunity_id", "opportunity", new.opportunity_id),
        ] {
            if let Some(id) = id {
                if !visible(c, &writer, kind, id)? {
                    return Err(ApiError::field(field, "not_found", format!("no such {kind}")));
                }
            }
        }
        // Fill the account from the contact or deal so account timelines are complete.
        if new.account_id.is_none() {
            if let Some(ct) = new.contact_id {
                new.account_id = contacts::find(c, &ScopeFilter::All, ct, Liveness::Live, false)?.map(|x| x.account_id);
            } else if let Some(o) = new.opportunity_id {
                new.account_id = opps::find(c, &ScopeFilter::All, o, Liveness::Live, false)?.map(|x| x.account_id);
            }
        }
        let row = acts::insert(c, &new)?;
        let at = row.occurred_at.min(now);
        if let Some(id) = row.account_id {
            opps::touch_activity(c, "accounts", id, at)?;
        }
        if let Some(id) = row.contact_id {
            opps::touch_activity(c, "contacts", id, at)?;
        }
        if let Some(id) = row.opportunity_id {
            opps::touch_activity(c, "opportunities", id, at)?;
        }
        if let Some(id) = row.lead_id {
            if let Some((before, after)) = leads::record_response(c, id, at)? {
                let (b, a) = (
                    serde_json::to_value(crate::dto::leads::Lead::from(before)).unwrap_or_default(),
                    serde_json::to_value(crate::dto::leads::Lead::from(after)).unwrap_or_default(),
                );
                audit::record(c, &writer.actor(), "leads", id, "responded", diff::changes(&b, &a), a)?;
            }
        }
        let dto = Activity::from(row);
        let data = serde_json::to_value(&dto).unwrap_or_default();
        audit::record(c, &writer.actor(), ACT, dto.id, "created", diff::created(&data), data)?;
        Outcome::created(&dto, format!("/api/v1/activities/{}", dto.id))
    })
    .await
}

/// Get one activity.
#[utoipa::path(
    tag = "activities",
    params(("id" = Uuid, Path, description = "Activity id")),
    responses((status = 200, description = "The activity", body = Activity, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/activities/{id}")]
pub async fn get_activity(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(ACT, Action::Read)?;
    let id = id.into_inner();
    let row = state
        .db
        .run(move |c| acts::find(c, &scope, id, Liveness::Live, false).map_err(ApiError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    let v = row.version;
    Ok(with_etag(&Activity::from(row), v))
}

/// Correct an activity (links cannot be changed).
#[utoipa::path(
    tag = "activities",
    params(("id" = Uuid, Path, description = "Activity id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateActivity,
    responses((status = 200, description = "Updated", body = Activity, headers(("ETag" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, PreconditionRequired),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/activities/{id}")]
pub async fn update_activity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateActivity>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(ACT, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let subject = dto.subject.as_deref().map(|s| errs.required_text("subject", s));
    if let Some(at) = dto.occurred_at {
        check_occurred(&mut errs, at, state.clock.now());
    }
    let mut ch = ActivityChanges {
        activity_type: dto.activity_type.map(|t| t.as_str().to_owned()),
        subject,
        content: patch(dto.content, |v| errs.text(v)),
        occurred_at: dto.occurred_at,
        duration_minutes: dto.duration_minutes,
        outcome: patch(dto.outcome, |v| errs.text(v)),
        next_step: patch(dto.next_step, |v| errs.text(v)),
    };
    errs.into_result()?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = acts::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("activity"))?;
                if_match.0.check(before.version)?;
                let cmp = before.clone();
                if prune_changes!(ch, cmp; activity_type, subject, content, occurred_at, duration_minutes, outcome, next_step) {
                    return Ok(before);
                }
                let after = acts::update(c, id, &ch)?;
                let (b, a) = (
                    serde_json::to_value(Activity::from(before)).unwrap_or_default(),
                    serde_json::to_value(Activity::from(after.clone())).unwrap_or_default(),
                );
                audit::record(c, &writer.actor(), ACT, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = row.version;
    Ok(with_etag(&Activity::from(row), v))
}

/// Delete an activity (soft).
#[utoipa::path(
    tag = "activities",
    params(("id" = Uuid, Path, description = "Activity id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/activities/{id}")]
pub async fn delete_activity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    super::delete_record::<acts::ActivityRow>(&state, &auth, "activity", id.into_inner(), if_match, super::always).await
}

fn task_filter(q: &TaskListQuery) -> TaskFilter {
    TaskFilter {
        owner_id: q.owner_id,
        team_id: q.team_id,
        statuses: q.status.map(|s| vec![s.as_str().to_owned()]),
        priority: q.priority.map(|p| p.as_str().to_owned()),
        related_type: q.related_type.map(|r| r.as_str().to_owned()),
        related_id: q.related_id,
        due_after: q.due_after,
        due_before: q.due_before,
        q: q.q.clone(),
    }
}

/// List tasks in the caller's scope.
#[utoipa::path(
    tag = "tasks",
    params(TaskListQuery),
    responses((status = 200, description = "A page of tasks", body = Page<Task>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/tasks")]
pub async fn list_tasks(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<TaskListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(TASK, Action::Read)?;
    let q = q.into_inner();
    let spec = ListSpec::new(
        tasks::SORT_COLUMNS,
        tasks::DEFAULT_SORT,
        q.sort.as_deref(),
        q.cursor.as_deref(),
        q.limit,
        "list",
    )?;
    let filter = task_filter(&q);
    let page = state
        .db
        .run(move |c| tasks::list(c, &scope, &filter, &spec).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Task::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn parse_offset(raw: Option<&str>) -> ApiResult<FixedOffset> {
    let raw = raw.unwrap_or("+08:00");
    let bad = || ApiError::bad_request("invalid_query", "utc_offset must look like +08:00 or -05:30");
    // Exactly `[+-]HH:MM` or `[+-]H:MM`, hours 0..=14 (the documented pattern).
    let (sign, rest) = match raw.as_bytes().first() {
        Some(b'+') => (1, &raw[1..]),
        Some(b'-') => (-1, &raw[1..]),
        _ => (1, raw),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

/// The caller's own tasks: overdue, due today (in `utc_offset`) or upcoming.
#[utoipa::path(
    tag = "tasks",
    params(MyTasksQuery),
    responses((status = 200, description = "A page of tasks, soonest due first", body = Page<Task>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/me/tasks")]
pub async fn my_tasks(state: web::Data<AppState>, auth: Auth, q: web::Query<MyTasksQuery>) -> ApiResult<HttpResponse> {
    auth.require(TASK, Action::Read)?;
    let q = q.into_inner();
    let offset = parse_offset(q.utc_offset.as_deref())?;
    let now = state.clock.now();
    let local_midnight = now
        .with_timezone(&offset)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let start_today: DateTime<Utc> =
        (local_midnight - Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc();
    let end_today = start_today + Duration::days(1);
    let (after, before) = match q.due {
        Some(DueWindow::Overdue) => (None, Some(now)),
        Some(DueWindow::Today) => (Some(start_today), Some(end_today)),
        Some(DueWindow::Upcoming) => (Some(end_today), None),
        None => (None, None),
    };
    let spec = ListSpec::new(
        tasks::SORT_COLUMNS,
        tasks::DEFAULT_SORT,
        None,
        q.cursor.as_deref(),
        q.limit,
        &format!("me:{:?}", q.due),
    )?;
    let filter = TaskFilter {
        owner_id: Some(auth.user_id),
        statuses: Some(vec![q.status.unwrap_or(TaskStatus::Open).as_str().to_owned()]),
        due_after: after,
        due_before: before,
        ..TaskFilter::default()
    };
    let page = state
        .db
        .run(move |c| tasks::list(c, &ScopeFilter::All, &filter, &spec).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Task::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a task for yourself or (with `tasks:assign`) someone in your scope.
#[utoipa::path(
    tag = "tasks",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateTask,
    responses((status = 201, description = "Created", body = Task, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/tasks")]
pub async fn create_task(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateTask>,
) -> ApiResult<HttpResponse> {
    auth.require(TASK, Action::Create)?;
    let dto = body.value?;
    if dto.related_type.is_some() != dto.related_id.is_some() {
        return Err(ApiError::field(
            "related_id",
            "required",
            "give related_type and related_id together",
        ));
    }
    let input = crm_app::tasks::TaskInput {
        title: dto.title,
        description: dto.description,
        due_at: dto.due_at,
        reminder_at: dto.reminder_at,
        priority: dto.priority.map_or("normal", |p| p.as_str()).to_owned(),
        owner_id: dto.owner_id,
        related: dto.related_type.map(|r| r.as_str().to_owned()).zip(dto.related_id),
        origin: "manual".into(),
    };
    let ctx = auth.ctx(&state.clock);
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let dto = Task::from(crm_app::tasks::create(c, &ctx, input)?);
        Outcome::created(&dto, format!("/api/v1/tasks/{}", dto.id))
    })
    .await
}

/// Get one task.
#[utoipa::path(
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task", body = Task, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/tasks/{id}")]
pub async fn get_task(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(TASK, Action::Read)?;
    let id = id.into_inner();
    let row = state
        .db
        .run(move |c| tasks::find(c, &scope, id, Liveness::Live, false).map_err(ApiError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    let v = row.version;
    Ok(with_etag(&Task::from(row), v))
}

/// Update a task: complete it (`status: done`), reopen, reschedule, reassign.
#[utoipa::path(
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateTask,
    responses((status = 200, description = "Updated", body = Task, headers(("ETag" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, PreconditionRequired),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/tasks/{id}")]
pub async fn update_task(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateTask>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let scope = auth.filter(TASK, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let title = dto.title.as_deref().map(|t| errs.required_text("title", t));
    let mut ch = TaskChanges {
        title,
        description: patch(dto.description, |v| errs.text(v)),
        due_at: dto.due_at,
        reminder_at: dto.reminder_at,
        priority: dto.priority.map(|p| p.as_str().to_owned()),
        owner_id: dto.owner_id,
        team_id: None,
        status: dto.status.map(|s| s.as_str().to_owned()),
        completed_at: None,
    };
    errs.into_result()?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = tasks::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("task"))?;
                if_match.0.check(before.version)?;
                let due = ch.due_at.unwrap_or(before.due_at);
                let reminder = ch.reminder_at.unwrap_or(before.reminder_at);
                if let (Some(r), Some(d)) = (reminder, due) {
                    if r > d {
                        return Err(ApiError::field("reminder_at", "out_of_range", "must not be after due_at"));
                    }
                }
                if let Some(owner) = ch.owner_id.filter(|o| *o != before.owner_id) {
                    writer.require(TASK, Action::Assign)?;
                    ch.team_id = Some(resolve_owner(c, &writer, TASK, owner)?);
                }
                if let Some(s) = ch.status.as_deref().filter(|s| *s != before.status) {
                    ch.completed_at = Some(if s == "done" { Some(now) } else { None });
                }
                let cmp = before.clone();
                if prune_changes!(ch, cmp; title, description, due_at, reminder_at, priority, owner_id, team_id, status, completed_at) {
                    return Ok(before);
                }
                let after = tasks::update(c, id, &ch)?;
                let (b, a) = (
                    serde_json::to_value(Task::from(before)).unwrap_or_default(),
                    serde_json::to_value(Task::from(after.clone())).unwrap_or_default(),
                );
                audit::record(c, &writer.actor(), TASK, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = row.version;
    Ok(with_etag(&Task::from(row), v))
}

/// Delete a task (soft).
#[utoipa::path(
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/tasks/{id}")]
pub async fn delete_task(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    super::delete_record::<tasks::TaskRow>(&state, &auth, "task", id.into_inner(), if_match, super::always).await
}
