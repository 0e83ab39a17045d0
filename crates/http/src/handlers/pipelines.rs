//! Pipelines and stages: read for everyone, configure for admins; the board.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::board as totals;
use crm_db::repo::opportunities::{self as opps, OpportunityFilter};
use crm_db::repo::pipelines;
use crm_db::sql::ListSpec;
use crm_domain::access::Action;
use crm_domain::fields::FieldAccess;
use crm_domain::pipeline::split_months;
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::pipelines::{
    Board, BoardColumn, BoardQuery, CreatePipeline, CreateStage, CurrencyTotal, Pipeline, PipelineList, PipelineQuery,
    ReorderStages, Stage, UpdatePipeline, UpdateStage,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "pipelines";

fn load(c: &mut PgConnection, id: Uuid, include_archived: bool) -> ApiResult<Pipeline> {
    let p = pipelines::find(c, id)?
        .filter(|p| include_archived || p.archived_at.is_none())
        .ok_or_else(|| ApiError::not_found("pipeline"))?;
    let stages = pipelines::stages_of(c, &[id], include_archived)?;
    Ok(Pipeline::from_rows(p, stages))
}

/// Pipelines with their stages.
#[utoipa::path(
    tag = "pipelines",
    params(PipelineQuery),
    responses((status = 200, description = "Pipelines", body = PipelineList), BadRequest, Unauthorized, Forbidden)
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
    responses((status = 200, description = "The pipeline", body = Pipeline, headers(("ETag" = String))), ReadErrors)
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
    responses((status = 200, description = "The board", body = Board), ReadErrors)
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
    let spec = ListSpec::list(
        opps::SORT_COLUMNS,
        opps::DEFAULT_SORT,
        Some(opps::BOARD_SORT),
        None,
        Some(per_stage),
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
    let mut total_count = 0i64;
    for s in stages {
        let mine_totals: Vec<&totals::StageTotals> = totals.iter().filter(|t| t.stage_id == s.id).collect();
        let (count, amount, weighted, by_currency) = per_currency(&mine_totals, show_amount, show_weighted);
        total_count += count;
        let mine: Vec<_> = {
            let (mine, rest): (Vec<_>, Vec<_>) = cards.into_iter().partition(|o| o.stage_id == s.id);
            cards = rest;
            mine
        };
        let page = spec.finish(mine, |o| o.id);
        columns.push(BoardColumn {
            stage: Stage::from(s),
            count,
            amount,
            weighted_amount: weighted,
            totals: by_currency,
            cards: page.items.iter().map(|o| shaper.one(o)).collect(),
            next_cursor: page.next_cursor,
        });
    }
    let every: Vec<&totals::StageTotals> = totals.iter().collect();
    let (_, total_amount, total_weighted_amount, by_currency) = per_currency(&every, show_amount, show_weighted);
    Ok(HttpResponse::Ok().json(Board {
        pipeline_id: id,
        columns,
        total_count,
        total_amount,
        total_weighted_amount,
        totals: by_currency,
    }))
}

/// Count, single-currency sums (zero without deals, null when currencies mix or the
/// caller may not read them) and sums per currency (most deals first) of totals rows.
fn per_currency(
    rows: &[&totals::StageTotals],
    show_amount: bool,
    show_weighted: bool,
) -> (i64, Option<Decimal>, Option<Decimal>, Vec<CurrencyTotal>) {
    let mut sums: Vec<(String, i64, Decimal, Decimal)> = Vec::new();
    for r in rows {
        match sums.iter_mut().find(|(c, ..)| *c == r.currency) {
            Some(e) => {
                e.1 += r.count;
                e.2 += r.amount;
                e.3 += r.weighted;
            }
            None => sums.push((r.currency.clone(), r.count, r.amount, r.weighted)),
        }
    }
    sums.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let count = sums.iter().map(|s| s.1).sum();
    let amount = crate::dto::single_currency_sum(&sums.iter().map(|s| s.2).collect::<Vec<_>>());
    let weighted = crate::dto::single_currency_sum(&sums.iter().map(|s| s.3).collect::<Vec<_>>());
    let by_currency = sums
        .into_iter()
        .map(|(currency, count, a, w)| CurrencyTotal {
            currency,
            count,
            amount: show_amount.then(|| crate::dto::money(a)),
            weighted_amount: show_weighted.then(|| crate::dto::money(w)),
        })
        .collect();
    (
        count,
        amount.filter(|_| show_amount).map(crate::dto::money),
        weighted.filter(|_| show_weighted).map(crate::dto::money),
        by_currency,
    )
}

/// Create a pipeline with its stages.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreatePipeline,
    responses(
        (status = 201, description = "Created", body = Pipeline, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
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
    let raw = body.raw.clone();
    let fields = body.fields()?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let p = crm_app::pipelines::create(c, &ctx, &fields)?;
        Outcome::created(&load(c, p.id, true)?, format!("/api/v1/pipelines/{}", p.id))
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
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/pipelines/{id}")]
pub async fn update_pipeline(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdatePipeline>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    let p = run_op(&state, &auth, move |c, ctx| {
        crm_app::pipelines::update(c, ctx, id, expected, &fields)?;
        load(c, id, true)
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
        ReadErrors, BodyErrors
    )
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
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let fields = body.fields()?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        crm_app::pipelines::add_stage(c, &ctx, id, &fields)?;
        Outcome::created(&load(c, id, true)?, format!("/api/v1/pipelines/{id}"))
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
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/stages/{id}")]
pub async fn update_stage(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateStage>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    let p = run_op(&state, &auth, move |c, ctx| {
        let stage = crm_app::pipelines::update_stage(c, ctx, id, expected, &fields)?;
        load(c, stage.pipeline_id, true)
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
        ReadErrors, BodyErrors
    )
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
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let order = body.value?.stage_ids;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        crm_app::pipelines::reorder(c, &ctx, id, &order)?;
        Outcome::ok(&load(c, id, true)?)
    })
    .await
}
