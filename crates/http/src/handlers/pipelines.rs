//! Pipelines and stages: read for everyone, configure for admins; the board.

use std::collections::HashSet;

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::board as totals;
use crm_db::repo::opportunities::{self as opps, OpportunityFilter};
use crm_db::repo::{audit, pipelines};
use crm_db::sql::ListSpec;
use crm_domain::access::Action;
use crm_domain::fields::FieldAccess;
use crm_domain::pipeline::split_months;
use crm_domain::pipeline::{check_criteria, Item};
use crm_domain::{diff, normalize};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::Auth;
use crate::dto::pipelines::{
    Board, BoardColumn, BoardQuery, CreatePipeline, CreateStage, Criterion, Pipeline, PipelineList, PipelineQuery,
    ReorderStages, Stage, StageItem, UpdatePipeline, UpdateStage,
};
use crate::dto::Errors;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "pipelines";

/// Opportunity fields that entry criteria may require.
pub const OPPORTUNITY_FIELDS: &[&str] = &[
    "name",
    "account_id",
    "primary_contact_id",
    "contacts",
    "amount",
    "currency",
    "expected_close_date",
    "probability",
    "owner_id",
    "competitors",
    "next_step",
    "source_lead_id",
];

fn load(c: &mut PgConnection, id: Uuid, include_archived: bool) -> ApiResult<Pipeline> {
    let p = pipelines::find(c, id)?
        .filter(|p| include_archived || p.archived_at.is_none())
        .ok_or_else(|| ApiError::not_found("pipeline"))?;
    let stages = pipelines::stages_of(c, &[id], include_archived)?;
    Ok(Pipeline::from_rows(p, stages))
}

fn to_json(p: &Pipeline) -> serde_json::Value {
    serde_json::to_value(p).unwrap_or_default()
}

fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_items(errs: &mut Errors, field: &str, items: &[StageItem]) {
    let mut seen = HashSet::new();
    for (i, it) in items.iter().enumerate() {
        if !valid_code(&it.code) {
            errs.add(
                &format!("{field}[{i}].code"),
                "invalid_format",
                "lower-case letters, digits and _, starting with a letter",
            );
        } else if !seen.insert(it.code.clone()) {
            errs.add(
                &format!("{field}[{i}].code"),
                "duplicate",
                "codes must be unique within a stage",
            );
        }
        if it.title.trim().is_empty() {
            errs.add(&format!("{field}[{i}].title"), "required", "must not be blank");
        }
    }
}

/// A stage definition as the pipeline-wide checks see it.
struct StageDef {
    code: String,
    kind: String,
    key_tasks: Vec<StageItem>,
    outputs: Vec<StageItem>,
    criteria: Vec<Criterion>,
}

/// Cross-stage checks: unique codes, at least one open stage, criteria that refer to
/// defined stages, tasks, outputs and fields. `prefix(i)` names stage i in errors.
fn check_pipeline(errs: &mut Errors, defs: &[StageDef], prefix: &dyn Fn(usize) -> String) {
    let mut codes = HashSet::new();
    for (i, d) in defs.iter().enumerate() {
        if !codes.insert(d.code.clone()) {
            errs.add(
                &format!("{}.code", prefix(i)),
                "duplicate",
                "stage codes must be unique in a pipeline",
            );
        }
    }
    if !defs.iter().any(|d| d.kind == "open") {
        errs.add("stages", "required", "a pipeline needs at least one open stage");
    }
    let catalogue: Vec<(String, Vec<Item>, Vec<Item>)> = defs
        .iter()
        .map(|d| {
            let conv = |v: &[StageItem]| {
                v.iter()
                    .map(|x| Item {
                        code: x.code.clone(),
                        title: x.title.clone(),
                    })
                    .collect()
            };
            (d.code.clone(), conv(&d.key_tasks), conv(&d.outputs))
        })
        .collect();
    for (i, d) in defs.iter().enumerate() {
        let mut domain = Vec::new();
        for (j, c) in d.criteria.iter().enumerate() {
            match c.to_domain() {
                Ok(x) => domain.push((j, x)),
                Err(e) => errs.add(&format!("{}.entry_criteria[{j}]", prefix(i)), "invalid", e),
            }
        }
        let list: Vec<_> = domain.iter().map(|(_, c)| c.clone()).collect();
        for (k, msg) in check_criteria(&list, OPPORTUNITY_FIELDS, &catalogue) {
            errs.add(
                &format!("{}.entry_criteria[{}]", prefix(i), domain[k].0),
                "invalid",
                msg,
            );
        }
    }
}

fn stage_values(s: &CreateStage) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    (
        serde_json::to_value(&s.key_tasks).unwrap_or_default(),
        serde_json::to_value(&s.required_outputs).unwrap_or_default(),
        serde_json::to_value(&s.entry_criteria).unwrap_or_default(),
    )
}

/// Pipelines with their stages.
#[utoipa::path(
    tag = "pipelines",
    params(PipelineQuery),
    responses((status = 200, description = "Pipelines", body = PipelineList), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/pipelines")]
pub async fn list_pipelines(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<PipelineQuery>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Read)?;
    let all = q.include_archived;
    let items = state
        .db
        .run(move |c| {
            let ps = pipelines::list(c, all)?;
            let ids: Vec<Uuid> = ps.iter().map(|p| p.id).collect();
            let stages = pipelines::stages_of(c, &ids, all)?;
            Ok::<_, ApiError>(
                ps.into_iter()
                    .map(|p| Pipeline::from_rows(p, stages.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(PipelineList { items }))
}

/// One pipeline with its stages, key tasks, outputs and entry criteria.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = Uuid, Path, description = "Pipeline id"), PipelineQuery),
    responses((status = 200, description = "The pipeline", body = Pipeline, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/pipelines/{id}")]
pub async fn get_pipeline(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<PipelineQuery>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Read)?;
    let (id, all) = (id.into_inner(), q.include_archived);
    let p = state.db.run(move |c| load(c, id, all)).await?;
    let v = p.version;
    Ok(with_etag(&p, v))
}

/// The kanban board: per stage the count, amount, weighted amount and first cards, in
/// the caller's data scope. Each column's `next_cursor` continues with `GET /opportunities`.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = Uuid, Path, description = "Pipeline id"), BoardQuery),
    responses((status = 200, description = "The board", body = Board), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/pipelines/{id}/board")]
pub async fn board(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<BoardQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter("opportunities", Action::Read)?;
    let id = id.into_inner();
    let q = q.into_inner();
    let per_stage = match q.limit {
        None => 20,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 100",
            ))
        }
    };
    let spec = ListSpec::new(
        opps::SORT_COLUMNS,
        opps::DEFAULT_SORT,
        Some(opps::BOARD_SORT),
        None,
        Some(per_stage),
        "list",
    )?;
    let given: Vec<String> = [
        ("owner_id", q.owner_id.is_some()),
        ("team_id", q.team_id.is_some()),
        ("amount_gte", q.amount_gte.is_some()),
        ("amount_lte", q.amount_lte.is_some()),
        ("close_after", q.close_after.is_some()),
        ("close_before", q.close_before.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k.to_owned())
    .collect();
    crate::listing::guard_filters(&auth.principal, "opportunities", &given)?;
    // Sums over a field the caller may not read would reveal it (one deal per column
    // is enough): they are null for such callers.
    let readable = |f: &str| auth.principal.field_access("opportunities", f) >= FieldAccess::ReadOnly;
    let (show_amount, show_weighted) = (readable("amount"), readable("weighted_amount"));
    let mut filter = OpportunityFilter {
        owner_id: q.owner_id,
        team_id: q.team_id,
        amount_gte: q.amount_gte,
        amount_lte: q.amount_lte,
        close_after: q.close_after,
        close_before: q.close_before,
        q: q.q,
        ..OpportunityFilter::default()
    };
    let principal = auth.principal.clone();
    let cache = state.fields.clone();
    let (stages, totals, cards, shaper) = state
        .db
        .run(move |c| {
            pipelines::find(c, id)?.ok_or_else(|| ApiError::not_found("pipeline"))?;
            let defs = cache.get(c, "opportunities")?;
            filter.search = crate::custom::search_scope(&principal, "opportunities", &defs);
            let stages = pipelines::stages_of(c, &[id], false)?;
            let ids: Vec<Uuid> = stages.iter().map(|s| s.id).collect();
            // Scope, owner and team filters read the trigger-maintained rollups (per
            // stage, or per stage and close month for close-date ranges); amount and
            // text filters need the live aggregate over the matching deals.
            let rollup = filter.amount_gte.is_none()
                && filter.amount_lte.is_none()
                && filter.q.as_deref().is_none_or(|q| q.trim().is_empty());
            let by_close = filter.close_after.is_some() || filter.close_before.is_some();
            let totals = match (rollup, by_close) {
                (true, false) => totals::board_totals_rollup(c, &ids, &scope, filter.owner_id, filter.team_id)?,
                (true, true) => {
                    let split = split_months(filter.close_after, filter.close_before);
                    totals::board_totals_by_close(c, &ids, &scope, filter.owner_id, filter.team_id, &split)?
                }
                (false, _) => totals::board_totals(c, &ids, &scope, &filter)?,
            };
            let rows = totals::board_cards(c, &ids, &scope, &filter, per_stage)?;
            let cards = crate::views::with_contacts(c, rows)?;
            let shaper = crate::custom::Shaper::new(&principal, "opportunities", defs);
            Ok::<_, ApiError>((stages, totals, cards, shaper))
        })
        .await?;
    let mut cards = cards;
    let mut columns = Vec::with_capacity(stages.len());
    let (mut total_count, mut total_amount, mut total_weighted) = (0i64, Decimal::ZERO, Decimal::ZERO);
    for s in stages {
        let t = totals.iter().find(|t| t.stage_id == s.id);
        let (count, amount, weighted) =
            t.map_or((0, Decimal::ZERO, Decimal::ZERO), |t| (t.count, t.amount, t.weighted));
        total_count += count;
        total_amount += amount;
        total_weighted += weighted;
        let mine: Vec<_> = {
            let (mine, rest): (Vec<_>, Vec<_>) = cards.into_iter().partition(|o| o.stage_id == s.id);
            cards = rest;
            mine
        };
        let page = spec.finish(mine, |o| o.id);
        columns.push(BoardColumn {
            stage: Stage::from(s),
            count,
            amount: show_amount.then(|| crate::dto::money(amount)),
            weighted_amount: show_weighted.then(|| crate::dto::money(weighted)),
            cards: page.items.iter().map(|o| shaper.one(o)).collect(),
            next_cursor: page.next_cursor,
        });
    }
    Ok(HttpResponse::Ok().json(Board {
        pipeline_id: id,
        columns,
        total_count,
        total_amount: show_amount.then(|| crate::dto::money(total_amount)),
        total_weighted_amount: show_weighted.then(|| crate::dto::money(total_weighted)),
    }))
}

/// Create a pipeline with its stages.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreatePipeline,
    responses(
        (status = 201, description = "Created", body = Pipeline, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/admin/pipelines")]
pub async fn create_pipeline(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreatePipeline>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &dto.name);
    for (i, s) in dto.stages.iter().enumerate() {
        if !valid_code(&s.code) {
            errs.add(
                &format!("stages[{i}].code"),
                "invalid_format",
                "lower-case letters, digits and _, starting with a letter",
            );
        }
        if s.name.trim().is_empty() {
            errs.add(&format!("stages[{i}].name"), "required", "must not be blank");
        }
        check_items(&mut errs, &format!("stages[{i}].key_tasks"), &s.key_tasks);
        check_items(&mut errs, &format!("stages[{i}].required_outputs"), &s.required_outputs);
    }
    let defs: Vec<StageDef> = dto
        .stages
        .iter()
        .map(|s| StageDef {
            code: s.code.clone(),
            kind: s.kind.as_str().into(),
            key_tasks: s.key_tasks.clone(),
            outputs: s.required_outputs.clone(),
            criteria: s.entry_criteria.clone(),
        })
        .collect();
    check_pipeline(&mut errs, &defs, &|i| format!("stages[{i}]"));
    errs.into_result()?;
    let writer = auth.clone();
    let description = dto.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let p = pipelines::insert(
            c,
            &pipelines::NewPipeline {
                id: Uuid::now_v7(),
                name: normalize::clean_text(&name),
                description,
                is_default: dto.is_default,
            },
        )
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                ApiError::conflict("duplicate", "a pipeline with this name exists")
            }
            other => other.into(),
        })?;
        for (i, s) in dto.stages.iter().enumerate() {
            let (tasks, outputs, criteria) = stage_values(s);
            pipelines::insert_stage(
                c,
                &pipelines::NewStage {
                    id: Uuid::now_v7(),
                    pipeline_id: p.id,
                    code: s.code.clone(),
                    name: normalize::clean_text(&s.name),
                    kind: s.kind.as_str().into(),
                    position: i32::try_from(i).unwrap_or(0) + 1,
                    probability: s.probability,
                    key_tasks: tasks,
                    required_outputs: outputs,
                    entry_criteria: criteria,
                    stalled_after_days: s.stalled_after_days,
                },
            )?;
        }
        let dto = load(c, p.id, true)?;
        let data = to_json(&dto);
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        // The pipeline that lost the default flag, if this one took it.
        audit::record_pending(c, &writer.actor(), RES, "updated")?;
        Outcome::created(&dto, format!("/api/v1/pipelines/{}", dto.id))
    })
    .await
}

/// Rename, describe, make default, archive or restore a pipeline.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Pipeline id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdatePipeline,
    responses(
        (status = 200, description = "Updated", body = Pipeline, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/admin/pipelines/{id}")]
pub async fn update_pipeline(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdatePipeline>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    if dto.archived == Some(true) && dto.is_default == Some(true) {
        errs.add("archived", "conflict", "the default pipeline cannot be archived");
    }
    errs.into_result()?;
    let writer = auth.clone();
    let p = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = pipelines::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("pipeline"))?;
                if_match.0.check(row.version)?;
                if dto.archived == Some(true) && (row.is_default && dto.is_default != Some(false)) {
                    return Err(ApiError::conflict(
                        "default_pipeline",
                        "make another pipeline the default before archiving this one",
                    ));
                }
                let before = load(c, id, true)?;
                let changes = pipelines::PipelineChanges {
                    name,
                    description: dto
                        .description
                        .map(|d| d.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())),
                    is_default: dto.is_default,
                    archived_at: dto.archived.map(|a| if a { Some(now) } else { None }),
                };
                pipelines::update(c, id, &changes)?;
                let after = load(c, id, true)?;
                let (b, a) = (to_json(&before), to_json(&after));
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                audit::record_pending(c, &writer.actor(), RES, "updated")?;
                Ok(after)
            })
        })
        .await?;
    let v = p.version;
    Ok(with_etag(&p, v))
}

/// Add a stage to a pipeline (appended, or inserted at `position`).
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Pipeline id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateStage,
    responses(
        (status = 201, description = "Created; the whole pipeline", body = Pipeline, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/admin/pipelines/{id}/stages")]
pub async fn create_stage(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<CreateStage>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let s = body.value?;
    let mut errs = Errors::default();
    if !valid_code(&s.code) {
        errs.add(
            "code",
            "invalid_format",
            "lower-case letters, digits and _, starting with a letter",
        );
    }
    let name = errs.required_text("name", &s.name);
    check_items(&mut errs, "key_tasks", &s.key_tasks);
    check_items(&mut errs, "required_outputs", &s.required_outputs);
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        pipelines::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("pipeline"))?;
        let before = load(c, id, true)?;
        let existing = pipelines::stages_of(c, &[id], true)?;
        let mut defs: Vec<StageDef> = existing
            .iter()
            .map(|r| {
                let st = Stage::from(r.clone());
                StageDef {
                    code: st.code,
                    kind: st.kind.as_str().into(),
                    key_tasks: st.key_tasks,
                    outputs: st.required_outputs,
                    criteria: st.entry_criteria,
                }
            })
            .collect();
        defs.push(StageDef {
            code: s.code.clone(),
            kind: s.kind.as_str().into(),
            key_tasks: s.key_tasks.clone(),
            outputs: s.required_outputs.clone(),
            criteria: s.entry_criteria.clone(),
        });
        let last = defs.len() - 1;
        let mut errs = Errors::default();
        check_pipeline(&mut errs, &defs, &|i| {
            if i == last {
                "stage".into()
            } else {
                format!("existing[{i}]")
            }
        });
        errs.0
            .iter_mut()
            .for_each(|e| e.field = e.field.trim_start_matches("stage.").to_owned());
        errs.into_result()?;
        let live: Vec<Uuid> = existing
            .iter()
            .filter(|r| r.archived_at.is_none())
            .map(|r| r.id)
            .collect();
        let (tasks, outputs, criteria) = stage_values(&s);
        let new = pipelines::insert_stage(
            c,
            &pipelines::NewStage {
                id: Uuid::now_v7(),
                pipeline_id: id,
                code: s.code.clone(),
                name: name.clone(),
                kind: s.kind.as_str().into(),
                position: i32::try_from(live.len()).unwrap_or(0) + 1,
                probability: s.probability,
                key_tasks: tasks,
                required_outputs: outputs,
                entry_criteria: criteria,
                stalled_after_days: s.stalled_after_days,
            },
        )?;
        if let Some(pos) = s.position {
            let mut order = live.clone();
            let at = usize::try_from(pos - 1).unwrap_or(0).min(order.len());
            order.insert(at, new.id);
            pipelines::reorder(c, &order)?;
        }
        let after = load(c, id, true)?;
        let (b, a) = (to_json(&before), to_json(&after));
        audit::record(
            c,
            &writer.actor(),
            RES,
            id,
            "stage_added",
            diff::changes(&b, &a),
            json!({"pipeline_id": id, "stage_id": new.id}),
        )?;
        Outcome::created(&after, format!("/api/v1/pipelines/{id}"))
    })
    .await
}

/// Change a stage (its code is fixed). Archiving is refused while open deals sit in it.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Stage id"), ("If-Match" = String, Header, description = "ETag of the stage")),
    request_body = UpdateStage,
    responses(
        (status = 200, description = "Updated; the whole pipeline", body = Pipeline),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/admin/stages/{id}")]
pub async fn update_stage(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateStage>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    if let Some(t) = &dto.key_tasks {
        check_items(&mut errs, "key_tasks", t);
    }
    if let Some(o) = &dto.required_outputs {
        check_items(&mut errs, "required_outputs", o);
    }
    errs.into_result()?;
    let writer = auth.clone();
    let p = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = pipelines::find_stage_for_update(c, id)?.ok_or_else(|| ApiError::not_found("stage"))?;
                if_match.0.check(row.version)?;
                let pid = row.pipeline_id;
                let before = load(c, pid, true)?;
                if dto.archived == Some(true) && row.archived_at.is_none() {
                    let n = pipelines::open_deals_in_stage(c, id)?;
                    if n > 0 {
                        return Err(ApiError::conflict(
                            "stage_in_use",
                            format!("{n} open deals are in this stage; move them first"),
                        ));
                    }
                }
                let all = pipelines::stages_of(c, &[pid], true)?;
                let defs: Vec<StageDef> = all
                    .iter()
                    .filter(|r| !(r.id == id && dto.archived == Some(true)))
                    .map(|r| {
                        let st = Stage::from(r.clone());
                        if r.id == id {
                            StageDef {
                                code: st.code,
                                kind: dto.kind.map_or(st.kind.as_str().into(), |k| k.as_str().into()),
                                key_tasks: dto.key_tasks.clone().unwrap_or(st.key_tasks),
                                outputs: dto.required_outputs.clone().unwrap_or(st.required_outputs),
                                criteria: dto.entry_criteria.clone().unwrap_or(st.entry_criteria),
                            }
                        } else {
                            StageDef {
                                code: st.code,
                                kind: st.kind.as_str().into(),
                                key_tasks: st.key_tasks,
                                outputs: st.required_outputs,
                                criteria: st.entry_criteria,
                            }
                        }
                    })
                    .collect();
                let mut errs = Errors::default();
                check_pipeline(&mut errs, &defs, &|i| format!("stages[{i}]"));
                errs.into_result()?;
                let changes = pipelines::StageChanges {
                    name,
                    kind: dto.kind.map(|k| k.as_str().into()),
                    probability: dto.probability,
                    key_tasks: dto
                        .key_tasks
                        .as_ref()
                        .map(|v| serde_json::to_value(v).unwrap_or_default()),
                    required_outputs: dto
                        .required_outputs
                        .as_ref()
                        .map(|v| serde_json::to_value(v).unwrap_or_default()),
                    entry_criteria: dto
                        .entry_criteria
                        .as_ref()
                        .map(|v| serde_json::to_value(v).unwrap_or_default()),
                    stalled_after_days: dto.stalled_after_days,
                    archived_at: dto.archived.map(|a| if a { Some(now) } else { None }),
                };
                pipelines::update_stage(c, id, &changes)?;
                if dto.archived.is_some() {
                    // Keep live stages numbered 1..n; archived ones go last.
                    let mut order: Vec<_> = pipelines::stages_of(c, &[pid], true)?;
                    order.sort_by_key(|s| (s.archived_at.is_some(), s.position));
                    pipelines::reorder(c, &order.iter().map(|s| s.id).collect::<Vec<_>>())?;
                }
                let after = load(c, pid, true)?;
                let (b, a) = (to_json(&before), to_json(&after));
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    pid,
                    "stage_updated",
                    diff::changes(&b, &a),
                    json!({"pipeline_id": pid, "stage_id": id}),
                )?;
                Ok(after)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

/// Reorder the live stages of a pipeline. History keeps pointing at the same stages.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Pipeline id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = ReorderStages,
    responses(
        (status = 200, description = "Reordered; the whole pipeline", body = Pipeline),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/admin/pipelines/{id}/stages/order")]
pub async fn reorder_stages(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<ReorderStages>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let order = body.value?.stage_ids;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        pipelines::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("pipeline"))?;
        let before = load(c, id, true)?;
        let live: HashSet<Uuid> = pipelines::stages_of(c, &[id], false)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let given: HashSet<Uuid> = order.iter().copied().collect();
        if given.len() != order.len() || given != live {
            return Err(ApiError::field(
                "stage_ids",
                "mismatch",
                "list every live stage of the pipeline exactly once",
            ));
        }
        pipelines::reorder(c, &order)?;
        let after = load(c, id, true)?;
        let (b, a) = (to_json(&before), to_json(&after));
        audit::record(
            c,
            &writer.actor(),
            RES,
            id,
            "stages_reordered",
            diff::changes(&b, &a),
            json!({"pipeline_id": id}),
        )?;
        Outcome::ok(&after)
    })
    .await
}
