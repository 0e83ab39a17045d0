//! `/api/v1/admin/rules`: automation rules, their versions and run log, testing a rule
//! on a record and backtesting it over past events.

use actix_web::{get, patch, post, put, web, HttpRequest, HttpResponse};
use crm_app::rules::{self as app, RuleInput, RulePatch, Subject};
use crm_db::repo::rules::RuleRow;
use diesel::PgConnection;
use serde_json::Value;
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::rules::{
    AssignmentPause, BacktestRule, CreateRule, InstallDefaults, Rule, RuleBacktestResult, RuleList, RuleQuery, RuleRun,
    RuleRunPage, RuleTestResult, RuleVersion, RuleVersionList, RunQuery, TestRule, UpdateRule,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

fn dto(c: &mut PgConnection, r: RuleRow) -> ApiResult<Rule> {
    let pending_timers = app::pending_timers(c, r.id)?;
    let d = &r.definition;
    Ok(Rule {
        triggers: d.get("triggers").cloned().unwrap_or(Value::Array(vec![])),
        condition: d.get("condition").cloned().filter(|v| !v.is_null()),
        actions: d.get("actions").cloned().unwrap_or(Value::Array(vec![])),
        re_enroll: d.get("re_enroll").and_then(Value::as_bool).unwrap_or(false),
        id: r.id,
        name: r.name,
        description: r.description,
        object: r.object,
        rule_version: r.rule_version,
        acts_as: r.acts_as,
        enabled: r.enabled,
        archived_at: r.archived_at,
        max_runs_per_hour: r.max_runs_per_hour,
        paused_at: r.paused_at,
        paused_reason: r.paused_reason,
        pause_factor: r.pause_factor,
        baseline_per_hour: r.baseline_per_hour,
        baseline_at: r.baseline_at,
        seed_key: r.seed_key,
        pending_timers,
        created_at: r.created_at,
        updated_at: r.updated_at,
        version: r.version,
    })
}

fn input(d: CreateRule) -> RuleInput {
    RuleInput {
        name: d.name,
        description: d.description,
        object: d.object.as_str().to_owned(),
        triggers: d.triggers,
        condition: d.condition,
        actions: d.actions,
        re_enroll: d.re_enroll,
        acts_as: d.acts_as,
        enabled: d.enabled,
        max_runs_per_hour: d.max_runs_per_hour,
        pause_factor: d.pause_factor,
    }
}

fn subject(rule_id: Option<Uuid>, rule: Option<CreateRule>) -> ApiResult<Subject> {
    match (rule_id, rule) {
        (Some(id), None) => Ok(Subject::Saved(id)),
        (None, Some(r)) => Ok(Subject::Draft(Box::new(input(r)))),
        _ => Err(ApiError::from(crm_app::AppError::field(
            "rule_id",
            "one_of_required",
            "give exactly one of rule_id and rule",
        ))),
    }
}

/// Every rule (archived ones with `archived=true`), newest first.
#[utoipa::path(
    tag = "rules",
    params(RuleQuery),
    responses((status = 200, description = "Rules", body = RuleList), BadRequest, Unauthorized, Forbidden)
)]
#[get("/admin/rules")]
pub async fn list_rules(state: web::Data<AppState>, auth: Auth, q: web::Query<RuleQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let items = run_op(&state, &auth, move |c, ctx| {
        let rows = app::list(c, ctx, q.object.map(|o| o.as_str()), q.archived.unwrap_or(false))?;
        rows.into_iter().map(|r| dto(c, r)).collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    Ok(HttpResponse::Ok().json(RuleList { items }))
}

/// Create a rule (version 1). It is checked against the field catalogue and what the
/// user it acts as may do; every problem is named (`triggers[0].field`, `actions[1]`).
#[utoipa::path(
    tag = "rules",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateRule,
    responses(
        (status = 201, description = "Created", body = Rule, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/admin/rules")]
pub async fn create_rule(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateRule>,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let d = body.value?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, Value::clone, move |c| {
        let row = app::create(c, &ctx, input(d))?;
        let rule = dto(c, row)?;
        let id = rule.id;
        Outcome::created(&rule, format!("/api/v1/admin/rules/{id}"))
    })
    .await
}

/// One rule.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id")),
    responses((status = 200, description = "The rule", body = Rule, headers(("ETag" = String))), ReadErrors)
)]
#[get("/admin/rules/{id}")]
pub async fn get_rule(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let r = run_op(&state, &auth, move |c, ctx| {
        let row = app::get(c, ctx, id)?;
        dto(c, row)
    })
    .await?;
    let v = r.version;
    Ok(with_etag(&r, v))
}

/// Change a rule. A changed definition or name is a new version (runs record the
/// version they ran); its time triggers are scheduled again.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateRule,
    responses(
        (status = 200, description = "Updated", body = Rule, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/rules/{id}")]
pub async fn update_rule(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateRule>,
) -> ApiResult<HttpResponse> {
    let (id, expected, d) = (id.into_inner(), if_match.0.expected(), body.value?);
    let r = run_op(&state, &auth, move |c, ctx| {
        let patch = RulePatch {
            name: d.name,
            description: d.description,
            triggers: d.triggers,
            condition: d.condition,
            actions: d.actions,
            re_enroll: d.re_enroll,
            acts_as: d.acts_as,
            max_runs_per_hour: d.max_runs_per_hour,
            pause_factor: d.pause_factor,
        };
        let row = app::update(c, ctx, id, expected, patch)?;
        dto(c, row)
    })
    .await?;
    let v = r.version;
    Ok(with_etag(&r, v))
}

async fn switch(state: &AppState, auth: &Auth, id: Uuid, what: &'static str) -> ApiResult<HttpResponse> {
    let r = run_op(state, auth, move |c, ctx| {
        let row = match what {
            "enable" => app::set_enabled(c, ctx, id, true)?,
            "disable" => app::set_enabled(c, ctx, id, false)?,
            _ => app::archive(c, ctx, id)?,
        };
        dto(c, row)
    })
    .await?;
    let v = r.version;
    Ok(with_etag(&r, v))
}

/// Enable a rule: its time triggers are scheduled over every record; an automatic
/// pause is cleared.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id")),
    responses((status = 200, description = "Enabled", body = Rule), ReadErrors, Conflict, BodyErrors)
)]
#[post("/admin/rules/{id}/enable")]
pub async fn enable_rule(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    switch(&state, &auth, id.into_inner(), "enable").await
}

/// Disable a rule: nothing more fires; its pending timers are dropped.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id")),
    responses((status = 200, description = "Disabled", body = Rule), ReadErrors)
)]
#[post("/admin/rules/{id}/disable")]
pub async fn disable_rule(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    switch(&state, &auth, id.into_inner(), "disable").await
}

/// Archive a rule: disabled and out of the default list; its runs and versions stay.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id")),
    responses((status = 200, description = "Archived", body = Rule), ReadErrors)
)]
#[post("/admin/rules/{id}/archive")]
pub async fn archive_rule(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    switch(&state, &auth, id.into_inner(), "archive").await
}

/// Every version of a rule's definition, newest first.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id")),
    responses((status = 200, description = "Versions", body = RuleVersionList), ReadErrors)
)]
#[get("/admin/rules/{id}/versions")]
pub async fn list_rule_versions(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let rows = run_op(&state, &auth, move |c, ctx| Ok(app::versions(c, ctx, id)?)).await?;
    Ok(HttpResponse::Ok().json(RuleVersionList {
        items: rows
            .into_iter()
            .map(|v| RuleVersion {
                version: v.version,
                name: v.name,
                definition: v.definition,
                created_by: v.created_by,
                created_at: v.created_at,
            })
            .collect(),
    }))
}

/// Make an old version current again (recorded as a new version).
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id"), ("version" = i32, Path, description = "Version", minimum = 1)),
    responses((status = 200, description = "Restored", body = Rule), ReadErrors, Conflict, BodyErrors)
)]
#[post("/admin/rules/{id}/versions/{version}/restore")]
pub async fn restore_rule_version(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, i32)>,
) -> ApiResult<HttpResponse> {
    let (id, version) = path.into_inner();
    let r = run_op(&state, &auth, move |c, ctx| {
        let row = app::restore_version(c, ctx, id, version)?;
        dto(c, row)
    })
    .await?;
    let v = r.version;
    Ok(with_etag(&r, v))
}

/// The run log, newest first: event or timer, version, matched or not and why, each
/// action's result, errors.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id"), RunQuery),
    responses((status = 200, description = "Runs", body = RuleRunPage), ReadErrors)
)]
#[get("/admin/rules/{id}/runs")]
pub async fn list_rule_runs(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<RunQuery>,
) -> ApiResult<HttpResponse> {
    let (id, q) = (id.into_inner(), q.into_inner());
    let limit = crm_domain::listing::limit(q.limit)?;
    let before = super::before_id(q.before)?;
    let rows = run_op(&state, &auth, move |c, ctx| {
        Ok(app::runs(c, ctx, id, q.status.map(|s| s.as_str()), before, limit)?)
    })
    .await?;
    let next_before = if i64::try_from(rows.len()).unwrap_or(0) == limit {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(RuleRunPage {
        items: rows.into_iter().map(RuleRun::from).collect(),
        next_before,
    }))
}

/// One run.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id"), ("run_id" = i64, Path, description = "Run id", minimum = 1)),
    responses((status = 200, description = "The run", body = RuleRun), ReadErrors)
)]
#[get("/admin/rules/{id}/runs/{run_id}")]
pub async fn get_rule_run(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, i64)>,
) -> ApiResult<HttpResponse> {
    let (id, run_id) = path.into_inner();
    let r = run_op(&state, &auth, move |c, ctx| Ok(app::run(c, ctx, id, run_id)?)).await?;
    Ok(HttpResponse::Ok().json(RuleRun::from(r)))
}

/// Retry a failed run from the action that failed (the ones before it are not done
/// again), with the version it ran.
#[utoipa::path(
    tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id"), ("run_id" = i64, Path, description = "Run id", minimum = 1)),
    responses((status = 200, description = "The run after the retry", body = RuleRun), ReadErrors, Conflict, BodyErrors)
)]
#[post("/admin/rules/{id}/runs/{run_id}/retry")]
pub async fn retry_rule_run(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, i64)>,
) -> ApiResult<HttpResponse> {
    let (id, run_id) = path.into_inner();
    let r = run_op(&state, &auth, move |c, ctx| Ok(app::retry(c, ctx, id, run_id)?)).await?;
    Ok(HttpResponse::Ok().json(RuleRun::from(r)))
}

/// Test a rule (saved, or not saved yet) on a record: whether it would enrol it, each
/// condition's value, each action it would take with its arguments. Nothing is
/// written, sent or queued.
#[utoipa::path(
    tag = "rules",
    request_body = TestRule,
    responses((status = 200, description = "What it would do", body = RuleTestResult), ReadErrors, BodyErrors)
)]
#[post("/admin/rules/test")]
pub async fn test_rule(state: web::Data<AppState>, auth: Auth, body: ValidJson<TestRule>) -> ApiResult<HttpResponse> {
    let d = body.value?;
    let s = subject(d.rule_id, d.rule)?;
    let out = run_op(&state, &auth, move |c, ctx| Ok(app::test(c, ctx, s, d.record_id)?)).await?;
    Ok(HttpResponse::Ok().json(RuleTestResult {
        would_enrol: out.would_enrol,
        matches: out.matches,
        reason: out.reason,
        conditions: out.conditions,
        actions: serde_json::to_value(out.actions).unwrap_or_default(),
    }))
}

/// Backtest a rule over a past window: how often it would have fired, on which
/// records, a sample of each, from the stored events. Nothing is written.
#[utoipa::path(
    tag = "rules",
    request_body = BacktestRule,
    responses((status = 200, description = "What it would have done", body = RuleBacktestResult), ReadErrors, BodyErrors)
)]
#[post("/admin/rules/backtest")]
pub async fn backtest_rule(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<BacktestRule>,
) -> ApiResult<HttpResponse> {
    let d = body.value?;
    let s = subject(d.rule_id, d.rule)?;
    let out = run_op(&state, &auth, move |c, ctx| Ok(app::backtest(c, ctx, s, d.from, d.to)?)).await?;
    Ok(HttpResponse::Ok().json(RuleBacktestResult {
        events_considered: out.events_considered,
        fired: out.fired,
        records: out.records,
        samples: Value::Array(out.samples),
        time_occurrences: out.time_occurrences,
        truncated: out.truncated,
    }))
}

/// Install the default rules (the seed's scenarios: new-lead to-do and response SLA,
/// stalled deal, stage tasks for presales and legal, birthday greetings) that are not
/// installed yet; they stay editable.
#[utoipa::path(
    tag = "rules",
    request_body = InstallDefaults,
    responses((status = 200, description = "Installed now", body = RuleList), BadRequest, Unauthorized, Forbidden, BodyErrors)
)]
#[post("/admin/rules/defaults")]
pub async fn install_default_rules(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<InstallDefaults>,
) -> ApiResult<HttpResponse> {
    let d = body.value?;
    let items = run_op(&state, &auth, move |c, ctx| {
        let rows = app::install_defaults(c, ctx, d.enabled.unwrap_or(false))?;
        rows.into_iter().map(|r| dto(c, r)).collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    Ok(HttpResponse::Ok().json(RuleList { items }))
}

/// Whether the caller is out of automatic assignment, and until when.
#[utoipa::path(
    tag = "rules",
    responses((status = 200, description = "The pause", body = AssignmentPause), Unauthorized)
)]
#[get("/me/assignment-pause")]
pub async fn get_assignment_pause(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let p = run_op(&state, &auth, |c, ctx| Ok(app::my_assignment_pause(c, ctx)?)).await?;
    Ok(HttpResponse::Ok().json(AssignmentPause {
        until: p.as_ref().map(|p| p.0),
        reason: p.and_then(|p| p.1),
    }))
}

/// Take yourself out of rules' automatic assignment (round robin and least loaded
/// skip you) until a moment, or back in with `until: null`.
#[utoipa::path(
    tag = "rules",
    request_body = AssignmentPause,
    responses((status = 200, description = "Saved", body = AssignmentPause), BadRequest, Unauthorized, Forbidden, BodyErrors)
)]
#[put("/me/assignment-pause")]
pub async fn put_assignment_pause(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<AssignmentPause>,
) -> ApiResult<HttpResponse> {
    let d = body.value?;
    let pause = d.until.map(|u| (u, d.reason.clone()));
    let p = run_op(&state, &auth, move |c, ctx| {
        Ok(app::set_my_assignment_pause(c, ctx, pause)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(AssignmentPause {
        until: p.as_ref().map(|p| p.0),
        reason: p.and_then(|p| p.1),
    }))
}
