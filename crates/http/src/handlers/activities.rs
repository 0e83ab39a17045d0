//! `/api/v1/activities` (follow-ups) and `/api/v1/tasks` (to-dos), and `/me/tasks`.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use crm_db::repo::activities::{self as acts, ActivityFilter};
use crm_db::repo::tasks::{self, TaskFilter};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, ScopeFilter};
use uuid::Uuid;

use super::{
    changed_record, created_record, BadRequest, BodyErrors, Conflict, Forbidden, PreconditionFailed, ReadErrors,
    Unauthorized, VersionErrors,
};
use crate::auth::Auth;
use crate::dto::activities::{
    Activity, ActivityListQuery, CreateActivity, CreateTask, DueWindow, MyTasksQuery, Task, TaskListQuery, TaskStatus,
    UpdateActivity, UpdateTask,
};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const ACT: &str = "activities";
const TASK: &str = "tasks";

/// List follow-ups in the caller's scope.
#[utoipa::path(
    tag = "activities",
    params(ActivityListQuery),
    responses((status = 200, description = "A page of activities", body = Page<Activity>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/activities")]
pub async fn list_activities(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ActivityListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(ACT, Action::Read)?;
    let q = q.into_inner();
    let spec = ListSpec::list(
        acts::SORT_COLUMNS,
        acts::DEFAULT_SORT,
        q.sort.as_deref(),
        q.cursor.as_deref(),
        q.limit,
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
    Ok(HttpResponse::Ok().json(Page::of(page, Activity::from)))
}

/// Log a follow-up on a lead, account, contact and/or deal (each must be visible).
///
/// Updates `last_activity_at` of the linked records; the first activity on a lead is
/// its first response (and moves a new or assigned lead to contacted).
#[utoipa::path(
    tag = "activities",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateActivity,
    responses(
        (status = 201, description = "Logged", body = Activity, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
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
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(&state, &auth, (key, &req, &raw), (ACT, "activities"), move |c, ctx| {
        Ok(Activity::from(crm_app::activities::create(c, ctx, &fields)?))
    })
    .await
}

/// Get one activity.
#[utoipa::path(
    tag = "activities",
    params(("id" = Uuid, Path, description = "Activity id")),
    responses((status = 200, description = "The activity", body = Activity, headers(("ETag" = String))), ReadErrors)
)]
#[get("/activities/{id}")]
pub async fn get_activity(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::get_record(
        &state,
        &auth,
        "activity",
        id.into_inner(),
        |_c, row: acts::ActivityRow| Ok(Activity::from(row)),
    )
    .await
}

/// Correct an activity (links cannot be changed).
#[utoipa::path(
    tag = "activities",
    params(("id" = Uuid, Path, description = "Activity id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateActivity,
    responses(
        (status = 200, description = "Updated", body = Activity, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/activities/{id}")]
pub async fn update_activity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateActivity>,
) -> ApiResult<HttpResponse> {
    auth.require(ACT, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, ACT, move |c, ctx| {
        Ok(Activity::from(crm_app::activities::update(
            c, ctx, id, expected, &fields,
        )?))
    })
    .await
}

/// Delete an activity (soft).
#[utoipa::path(
    tag = "activities",
    params(("id" = Uuid, Path, description = "Activity id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), ReadErrors, PreconditionFailed)
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
    responses((status = 200, description = "A page of tasks", body = Page<Task>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/tasks")]
pub async fn list_tasks(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<TaskListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(TASK, Action::Read)?;
    let q = q.into_inner();
    let spec = ListSpec::list(
        tasks::SORT_COLUMNS,
        tasks::DEFAULT_SORT,
        q.sort.as_deref(),
        q.cursor.as_deref(),
        q.limit,
    )?;
    let filter = task_filter(&q);
    let page = state
        .db
        .run(move |c| tasks::list(c, &scope, &filter, &spec).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page::of(page, Task::from)))
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
    responses((status = 200, description = "A page of tasks, soonest due first", body = Page<Task>), BadRequest, Unauthorized, Forbidden)
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
    Ok(HttpResponse::Ok().json(Page::of(page, Task::from)))
}

/// Create a task for yourself or (with `tasks:assign`) someone in your scope.
#[utoipa::path(
    tag = "tasks",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = Task, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
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
    let ctx = auth.ctx();
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
    responses((status = 200, description = "The task", body = Task, headers(("ETag" = String))), ReadErrors)
)]
#[get("/tasks/{id}")]
pub async fn get_task(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::get_record(&state, &auth, "task", id.into_inner(), |_c, row: tasks::TaskRow| {
        Ok(Task::from(row))
    })
    .await
}

/// Update a task: complete it (`status: done`), cancel or reopen it, reschedule,
/// reassign. Status changes follow the task status machine (open -> done | cancelled ->
/// open); another one is 409 `invalid_transition`.
#[utoipa::path(
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateTask,
    responses(
        (status = 200, description = "Updated", body = Task, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/tasks/{id}")]
pub async fn update_task(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateTask>,
) -> ApiResult<HttpResponse> {
    auth.require(TASK, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, TASK, move |c, ctx| {
        Ok(Task::from(crm_app::tasks::update(c, ctx, id, expected, &fields)?))
    })
    .await
}

/// Delete a task (soft).
#[utoipa::path(
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), ReadErrors, PreconditionFailed)
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
