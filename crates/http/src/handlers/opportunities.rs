//! `/api/v1/opportunities`: deals, stage moves with entry criteria, checklist, outputs,
//! stage history and timeline.

use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::opportunities::{self as opps, OpportunityChanges, OpportunityFilter, OpportunityRow};
use crm_db::repo::{audit, pipelines};
use crm_domain::access::Action;
use crm_domain::{diff, normalize};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::{
    prune_changes, resolve_owner, BadRequest, Conflict, ExportBusy, Forbidden, NotFound, PayloadTooLarge,
    PreconditionFailed, PreconditionRequired, Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crm_app::opportunities;

use crate::auth::Auth;
use crate::custom::{self, Shaper};
use crate::dto::accounts::HistoryQuery;
use crate::dto::accounts::{AuditEntry, CreateQuery};
use crate::dto::opportunities::{
    Checklist, ChecklistItem, ChecklistStage, CreateOpportunity, CreateOutput, DealContact, MoveStage, Opportunity,
    OpportunityListQuery, Output, OutputList, OutputStatus, SetTask, StageHistory, StageVisit, TimelineEntry,
    UpdateOpportunity,
};
use crate::dto::pipelines::{Stage, StageItem};
use crate::dto::{check_amount, patch, Errors, Page, SyncPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;
use crate::views::with_contacts;

const RES: &str = "opportunities";

fn one(c: &mut PgConnection, row: OpportunityRow) -> ApiResult<Opportunity> {
    Ok(with_contacts(c, vec![row])?.remove(0))
}

fn to_json(o: &Opportunity) -> serde_json::Value {
    serde_json::to_value(o).unwrap_or_default()
}

fn check_currency(errs: &mut Errors, v: &str) -> String {
    let up = v.trim().to_ascii_uppercase();
    if normalize::currency(&up).is_none() {
        errs.add(
            "currency",
            "invalid_format",
            "an active ISO 4217 currency code such as CNY or USD",
        );
    }
    up
}

fn clean_list(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = v
        .into_iter()
        .map(|s| normalize::clean_text(&s))
        .filter(|s| !s.is_empty())
        .collect();
    out.dedup();
    out
}

/// The other contacts as (contact id, role).
fn links_of(list: &[DealContact]) -> Vec<(Uuid, String)> {
    list.iter()
        .map(|d| (d.contact_id, d.role.as_str().to_owned()))
        .collect()
}

/// List deals in the caller's scope (keyset; `updated_since` for sync).
#[utoipa::path(
    tag = "opportunities",
    params(OpportunityListQuery),
    responses((status = 200, description = "A page of deals", body = SyncPage<Opportunity>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities")]
pub async fn list_opportunities(
    state: web::Data<AppState>,
    auth: Auth,
    q: ListQuery<OpportunityListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q);
    listing::list(&state, &auth, filter, params).await
}

/// The typed filter and the shared list parameters of a list or export query.
fn list_filter(q: ListQuery<OpportunityListQuery>) -> (OpportunityFilter, listing::Params) {
    let ListQuery { query: q, custom, keys } = q;
    let params = listing::Params {
        since: q.updated_since,
        keys,
        sort: q.sort,
        cursor: q.cursor,
        limit: q.limit,
        custom,
    };
    let filter = OpportunityFilter {
        pipeline_id: q.pipeline_id,
        stage_id: q.stage_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        owner_id: q.owner_id,
        team_id: q.team_id,
        account_id: q.account_id,
        amount_gte: q.amount_gte,
        amount_lte: q.amount_lte,
        close_after: q.close_after,
        close_before: q.close_before,
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
        updated_before: q.updated_before,
        stalled: q.stalled,
        q: q.q,
        custom: Vec::new(),
        search: Default::default(),
    };
    (filter, params)
}

crate::impl_listing!(OpportunityFilter, Opportunity, RES, "o", opps, |c, rows| with_contacts(
    c, rows
)?);

/// Export opportunities as CSV: every record the list with the same filters and sort returns.
///
/// Needs `opportunities:export`. UTF-8 with a BOM; one column per field the caller may see
/// (masked fields masked), custom fields as `custom.<key>`; `header=zh|en` puts labels
/// in the heading row. `cursor` and `limit` do not apply; more matching records than
/// `CRM_EXPORT_MAX_ROWS` (default 100,000) answer 422 `export_too_large`. Recorded in
/// the audit trail and as the
/// `opportunity.exported` event.
#[utoipa::path(
    tag = "opportunities",
    params(OpportunityListQuery, ExportOptions),
    responses(
        (status = 200, description = "CSV document", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String), ("X-Export-Id" = String), ("X-Export-Rows" = i64))),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ExportBusy
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/export")]
pub async fn export_opportunities(
    state: web::Data<AppState>,
    auth: Auth,
    q: ExportQuery<OpportunityListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q.list);
    listing::export(&state, &auth, filter, params, q.options, q.raw).await
}

/// Create a deal in a pipeline (default pipeline, first stage unless given; a later
/// stage must meet its entry criteria).
#[utoipa::path(
    tag = "opportunities",
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateOpportunity,
    responses(
        (status = 201, description = "Created", body = Opportunity, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/opportunities")]
pub async fn create_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateOpportunity>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    custom::guard_write(&auth.principal, RES, &body.raw)?;
    let cache = state.fields.clone();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &dto.name);
    let amount = check_amount(&mut errs, "amount", dto.amount);
    let currency = check_currency(&mut errs, dto.currency.as_deref().unwrap_or("CNY"));
    let next_step = errs.text(dto.next_step);
    let competitors = clean_list(dto.competitors);
    errs.into_result()?;
    let ctx = auth.ctx(&state.clock);
    let principal = auth.principal.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let row = opportunities::create(
            c,
            &ctx,
            opportunities::NewDeal {
                name,
                account_id: dto.account_id,
                primary_contact_id: dto.primary_contact_id,
                contacts: links_of(&dto.contacts),
                pipeline_id: dto.pipeline_id,
                stage_id: dto.stage_id,
                amount,
                currency,
                expected_close_date: dto.expected_close_date,
                probability: dto.probability,
                owner_id: dto.owner_id.unwrap_or(ctx.user_id()),
                source_lead_id: None,
                competitors,
                next_step,
                custom: dto.custom,
            },
        )?;
        let o = one(c, row)?;
        let shaper = Shaper::new(&principal, RES, cache.get(c, RES)?);
        Outcome::created(&shaper.one(&o), format!("/api/v1/opportunities/{}", o.id))
    })
    .await
}

/// Get one deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "The deal", body = Opportunity, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/{id}")]
pub async fn get_opportunity(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let principal = auth.principal.clone();
    let cache = state.fields.clone();
    let (shaper, o) = state
        .db
        .run(move |c| {
            let row =
                opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>((Shaper::new(&principal, RES, cache.get(c, RES)?), one(c, row)?))
        })
        .await?;
    let v = o.version;
    Ok(shaper.respond(&o, v))
}

/// Update a deal (partial, `If-Match` required). Stage and status only change through
/// `POST /opportunities/{id}/stage`.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateOpportunity,
    responses(
        (status = 200, description = "Updated", body = Opportunity, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/opportunities/{id}")]
pub async fn update_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateOpportunity>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    custom::guard_write(&auth.principal, RES, &body.raw)?;
    let cache = state.fields.clone();
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    let amount = dto.amount.map(|a| check_amount(&mut errs, "amount", a));
    let currency = dto.currency.as_deref().map(|c| check_currency(&mut errs, c));
    let next_step = patch(dto.next_step, |v| errs.text(v));
    errs.into_result()?;
    let mut ch = OpportunityChanges {
        name,
        account_id: dto.account_id,
        primary_contact_id: dto.primary_contact_id,
        amount,
        currency,
        expected_close_date: dto.expected_close_date,
        probability: dto.probability,
        owner_id: dto.owner_id,
        team_id: None,
        competitors: dto.competitors.map(clean_list),
        next_step,
        custom: None,
    };
    let contacts_in = dto.contacts;
    let custom_in = dto.custom;
    let writer = auth.clone();
    let ctx = auth.ctx(&state.clock);
    let o = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before_row = opps::find(c, &scope, id, Liveness::Live, true)?
                    .ok_or_else(|| ApiError::not_found("opportunity"))?;
                if_match.0.check(before_row.version)?;
                if ch.probability.is_some_and(|p| p != before_row.probability) && before_row.status != "open" {
                    return Err(ApiError::field(
                        "probability",
                        "closed_deal",
                        "a won or lost deal's probability follows its stage",
                    ));
                }
                let before = one(c, before_row.clone())?;
                let defs = cache.get(c, RES)?;
                if custom_in.is_some()
                    || custom::live(&defs).any(|d| d.field_type() == crm_domain::fields::FieldType::Formula)
                {
                    let amount = ch.amount.unwrap_or(before_row.amount);
                    let probability = ch.probability.unwrap_or(before_row.probability);
                    ch.custom = Some(crm_app::custom::apply(
                        c,
                        &writer.principal,
                        crm_app::custom::CustomWrite {
                            object: RES,
                            defs: &defs,
                            input: custom_in.as_ref(),
                            existing: Some(&before_row.custom),
                            record: &json!({"amount": amount, "probability": probability}),
                        },
                    )?);
                    if let Some(keys) = &custom_in {
                        crm_db::repo::fields::unflag(c, RES, id, &keys.keys().cloned().collect::<Vec<_>>())?;
                    }
                }
                if let Some(a) = ch.account_id.filter(|a| *a != before_row.account_id) {
                    opportunities::check_account(c, &ctx, a)?;
                }
                let account = ch.account_id.unwrap_or(before_row.account_id);
                let primary = ch.primary_contact_id.unwrap_or(before_row.primary_contact_id);
                if let Some(p) = primary {
                    if ch.primary_contact_id.is_some() || ch.account_id.is_some() {
                        opportunities::check_primary(c, &ctx, p, account)?;
                    }
                }
                if let Some(owner) = ch.owner_id.filter(|o| *o != before_row.owner_id) {
                    writer.require(RES, Action::Assign)?;
                    ch.team_id = Some(resolve_owner(c, &writer, RES, owner)?);
                }
                let mut contacts_changed = false;
                if let Some(list) = &contacts_in {
                    let links = links_of(list);
                    opportunities::check_contacts(c, &ctx, &links)?;
                    let current: Vec<(Uuid, String)> = before
                        .contacts
                        .iter()
                        .map(|d| (d.contact_id, d.role.as_str().to_owned()))
                        .collect();
                    let mut a = links.clone();
                    a.sort();
                    let mut b = current;
                    b.sort();
                    if a != b {
                        opps::set_contacts(c, id, &links)?;
                        contacts_changed = true;
                    }
                }
                let cmp = before_row.clone();
                let unchanged = prune_changes!(ch, cmp;
                    name, account_id, primary_contact_id, amount, currency, expected_close_date, probability,
                    owner_id, team_id, competitors, next_step, custom);
                if unchanged && !contacts_changed {
                    return Ok((before, defs));
                }
                let after_row = opps::update(c, id, &ch)?;
                let after = one(c, after_row)?;
                let (b, a) = (to_json(&before), to_json(&after));
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>((after, defs))
            })
        })
        .await?;
    let (o, defs) = o;
    let v = o.version;
    Ok(Shaper::new(&auth.principal, RES, defs).respond(&o, v))
}

/// Move a deal to another stage of its pipeline.
///
/// Every entry into an open or won stage checks that stage's entry criteria, whether
/// the deal advances, wins or comes back from won or lost: when any is unmet the answer
/// is 422 `stage_criteria_unmet` with `unmet` listing every missing field, task or
/// output. Moving backwards and losing (the reason becomes the lost reason) need a
/// `reason`; moving a won or lost deal anywhere (reopening) needs a `reason` and the
/// `opportunities:reopen` permission (403 otherwise). Every move is recorded in the
/// stage history.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"),
        ("If-Match" = Option<String>, Header, description = "Optional ETag guard"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = MoveStage,
    responses(
        (status = 200, description = "Moved", body = Opportunity, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/opportunities/{id}/stage")]
pub async fn move_stage(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
    body: ValidJson<MoveStage>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let reason = dto.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    let ctx = auth.ctx(&state.clock);
    let cache = state.fields.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let before_row =
            opps::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
        if let Some(m) = if_match.0 {
            m.check(before_row.version)?;
        }
        let moved = opportunities::move_deal(c, &ctx, before_row, dto.stage_id, reason)?;
        let after = one(c, moved)?;
        Outcome::ok(&Shaper::new(&ctx.principal, RES, cache.get(c, RES)?).one(&after))
    })
    .await
}

/// Delete a deal (soft). `If-Match` is honoured when sent.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/opportunities/{id}")]
pub async fn delete_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Delete)?;
    let id = id.into_inner();
    let writer = auth.clone();
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = opps::find(c, &scope, id, Liveness::Live, true)?
                    .ok_or_else(|| ApiError::not_found("opportunity"))?;
                if let Some(m) = if_match.0 {
                    m.check(before.version)?;
                }
                let row = opps::set_deleted(c, id, true)?;
                let change = json!({"deleted_at": {"before": null, "after": row.deleted_at}});
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "deleted",
                    change.as_object().cloned().unwrap_or_default(),
                    json!({"id": id}),
                )?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore a deleted deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Restored", body = Opportunity), BadRequest, Unauthorized, Forbidden, NotFound, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/opportunities/{id}/restore")]
pub async fn restore_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Delete)?;
    let id = id.into_inner();
    let writer = auth.clone();
    let cache = state.fields.clone();
    idempotency::post(&state, &auth, key, &req, b"", idempotency::keep, move |c| {
        let before = opps::find(c, &scope, id, Liveness::Deleted, true)?
            .ok_or_else(|| ApiError::not_found("deleted opportunity"))?;
        if !accounts::exists_live(c, before.account_id)? {
            return Err(ApiError::unprocessable(
                "account_deleted",
                "the deal's account is deleted; restore the account first",
            ));
        }
        let row = opps::set_deleted(c, id, false)?;
        let dto = one(c, row)?;
        let change = json!({"deleted_at": {"before": before.deleted_at, "after": null}});
        audit::record(
            c,
            &writer.actor(),
            RES,
            id,
            "restored",
            change.as_object().cloned().unwrap_or_default(),
            to_json(&dto),
        )?;
        Outcome::ok(&Shaper::new(&writer.principal, RES, cache.get(c, RES)?).one(&dto))
    })
    .await
}

/// Audit history of a deal (field-level changes), newest first.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), HistoryQuery),
    responses((status = 200, description = "History entries", body = Page<AuditEntry>), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/{id}/history")]
pub async fn opportunity_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history(&state, &auth, RES, id.into_inner(), q.into_inner(), |c, s, id| {
        Ok(opps::find(c, s, id, Liveness::Live, false)?.is_some())
    })
    .await
}

/// Stage history: one entry per stay in a stage, with dwell time.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Stage visits, oldest first", body = StageHistory), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/{id}/stage-history")]
pub async fn stage_history(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>(opps::stage_history(c, id)?)
        })
        .await?;
    // The amount and probability a deal entered each stage with are the fields' own
    // history: readable only as far as the fields are.
    let readable = |f: &str| auth.principal.field_access(RES, f) >= crm_domain::fields::FieldAccess::ReadOnly;
    let (amount, probability) = (readable("amount"), readable("probability"));
    Ok(HttpResponse::Ok().json(StageHistory {
        items: rows
            .into_iter()
            .map(StageVisit::from)
            .map(|mut v| {
                if !amount {
                    v.amount = None;
                }
                if !probability {
                    v.probability = None;
                }
                v
            })
            .collect(),
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TimelineCursor {
    at: DateTime<Utc>,
    id: String,
}

/// One merged timeline: stage changes, field changes, activities, tasks and outputs,
/// newest first.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), HistoryQuery),
    responses((status = 200, description = "Timeline entries", body = Page<TimelineEntry>), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/{id}/timeline")]
pub async fn timeline(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let q = q.into_inner();
    let limit = crm_domain::listing::limit(q.limit)?;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let before = match q.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let c: TimelineCursor = engine
                .decode(raw.trim())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is malformed"))?;
            Some((c.at, c.id))
        }
    };
    // Quote, contract and payment entries only as far as the caller may read those.
    let part = |resource: &str| auth.scope(resource, Action::Read).map(|s| auth.principal.filter(s));
    let access = opps::TimelineAccess {
        quotes: part("quotes"),
        contracts: part("contracts"),
        payments: part("payments"),
    };
    let rows = state
        .db
        .run(move |c| {
            opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>(opps::timeline(c, id, &access, before, limit + 1)?)
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let mut rows = rows;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if more {
        rows.last().map(|r| {
            engine.encode(
                serde_json::to_vec(&TimelineCursor {
                    at: r.at,
                    id: r.ref_id.clone(),
                })
                .unwrap_or_default(),
            )
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: rows
            .into_iter()
            .map(|r| {
                let mut e = TimelineEntry::from(r);
                shape_timeline(&auth.principal, &mut e);
                e
            })
            .collect(),
        next_cursor,
    }))
}

/// Field permissions on timeline entries: field changes shaped like history, and the
/// deal's amount and probability in stage changes hidden or masked like the fields.
fn shape_timeline(p: &crm_domain::access::Principal, e: &mut TimelineEntry) {
    if !p.restricts(RES) {
        return;
    }
    match e.kind.as_str() {
        "field_change" => {
            if let Some(ch) = e.data.get_mut("changes") {
                custom::shape_changes(p, RES, ch);
            }
        }
        "stage_change" => {
            if let Some(map) = e.data.as_object_mut() {
                for k in ["amount", "probability"] {
                    match p.field_access(RES, k) {
                        crm_domain::fields::FieldAccess::Hidden => {
                            map.remove(k);
                        }
                        crm_domain::fields::FieldAccess::Masked => {
                            if let Some(v) = map.get_mut(k) {
                                *v = crm_domain::fields::mask(v);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        _ => {}
    }
}

fn build_checklist(c: &mut PgConnection, row: &OpportunityRow) -> ApiResult<Checklist> {
    let stages = pipelines::stages_of(c, &[row.pipeline_id], false)?;
    let state = opps::checklist(c, row.id)?;
    let attached = opps::output_codes(c, row.id)?;
    let stages = stages
        .into_iter()
        .filter(|s| s.kind != "lost")
        .map(|s| {
            let st = Stage::from(s);
            let tasks = st
                .key_tasks
                .iter()
                .map(|t: &StageItem| {
                    let entry = state.iter().find(|r| r.stage_id == st.id && r.task_code == t.code);
                    ChecklistItem {
                        code: t.code.clone(),
                        title: t.title.clone(),
                        done: entry.is_some_and(|e| e.done),
                        changed_by: entry.and_then(|e| e.changed_by),
                        changed_at: entry.map(|e| e.changed_at),
                    }
                })
                .collect();
            let outputs = st
                .required_outputs
                .iter()
                .map(|o| OutputStatus {
                    code: o.code.clone(),
                    title: o.title.clone(),
                    attached: attached.contains(&o.code),
                })
                .collect();
            ChecklistStage {
                stage_id: st.id,
                stage_code: st.code,
                stage_name: st.name,
                tasks,
                outputs,
            }
        })
        .collect();
    Ok(Checklist { stages })
}

/// The key-task checklist of every stage, with who did what when, and which required
/// outputs are attached.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Checklist", body = Checklist), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/{id}/checklist")]
pub async fn get_checklist(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let list = state
        .db
        .run(move |c| {
            let row =
                opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            build_checklist(c, &row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Mark a key task of a stage done or undone.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("stage_id" = Uuid, Path, description = "Stage id"),
        ("task_code" = String, Path, description = "Key task code")),
    request_body = SetTask,
    responses((status = 200, description = "The updated checklist", body = Checklist), BadRequest, Unauthorized, Forbidden, NotFound,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[put("/opportunities/{id}/checklist/{stage_id}/{task_code}")]
pub async fn set_checklist_task(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, Uuid, String)>,
    body: ValidJson<SetTask>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let (id, stage_id, task) = path.into_inner();
    let done = body.value?.done;
    let writer = auth.clone();
    let list = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = opps::find(c, &scope, id, Liveness::Live, true)?
                    .ok_or_else(|| ApiError::not_found("opportunity"))?;
                let stage = pipelines::find_stage(c, stage_id)?
                    .filter(|s| s.pipeline_id == row.pipeline_id)
                    .ok_or_else(|| ApiError::not_found("stage"))?;
                let st = Stage::from(stage.clone());
                if !st.key_tasks.iter().any(|t| t.code == task) {
                    return Err(ApiError::not_found("key task"));
                }
                let (before, _) = opps::set_task_done(c, id, stage_id, &task, done, writer.user_id)?;
                if before != Some(done) {
                    let mut changes = serde_json::Map::new();
                    changes.insert(
                        format!("checklist.{}.{}", stage.code, task),
                        json!({"before": before.unwrap_or(false), "after": done}),
                    );
                    audit::record(
                        c,
                        &writer.actor(),
                        RES,
                        id,
                        "checklist_updated",
                        changes,
                        json!({"opportunity_id": id, "stage": stage.code, "task": task, "done": done}),
                    )?;
                }
                build_checklist(c, &row)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Deliverables attached to a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Outputs", body = OutputList), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/opportunities/{id}/outputs")]
pub async fn list_outputs(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>(opps::outputs(c, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OutputList {
        items: rows.into_iter().map(Output::from).collect(),
    }))
}

/// Attach a deliverable (e.g. 《首次沟通纪要》) to a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateOutput,
    responses((status = 201, description = "Attached", body = Output, headers(("Location" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/opportunities/{id}/outputs")]
pub async fn create_output(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<CreateOutput>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let title = errs.required_text("title", &dto.title);
    let url = errs.website("url", dto.url);
    let notes = errs.text(dto.notes);
    let file_ref = errs.line(dto.file_ref);
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let row = opps::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
        let stages = pipelines::stages_of(c, &[row.pipeline_id], true)?;
        let stage_id = dto.stage_id.unwrap_or(row.stage_id);
        if !stages.iter().any(|s| s.id == stage_id) {
            return Err(ApiError::field(
                "stage_id",
                "not_found",
                "no such stage in this deal's pipeline",
            ));
        }
        if let Some(code) = &dto.output_code {
            let defined = stages
                .into_iter()
                .map(Stage::from)
                .any(|s| s.required_outputs.iter().any(|o| &o.code == code));
            if !defined {
                return Err(ApiError::field(
                    "output_code",
                    "not_found",
                    "no stage of this pipeline requires such an output",
                ));
            }
        }
        let out = opps::insert_output(
            c,
            &opps::NewOutput {
                id: Uuid::now_v7(),
                opportunity_id: id,
                stage_id,
                output_code: dto.output_code.clone(),
                title,
                notes,
                url,
                file_ref,
                author_id: Some(writer.user_id),
            },
        )?;
        let dto = Output::from(out);
        let data = serde_json::to_value(&dto).unwrap_or_default();
        let mut changes = serde_json::Map::new();
        changes.insert("outputs".into(), json!({"before": null, "after": data}));
        audit::record(c, &writer.actor(), RES, id, "output_attached", changes, data)?;
        Outcome::created(&dto, format!("/api/v1/opportunities/{id}/outputs/{}", dto.id))
    })
    .await
}

/// Remove a deliverable from a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("output_id" = Uuid, Path, description = "Output id")),
    responses((status = 204, description = "Removed"), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/opportunities/{id}/outputs/{output_id}")]
pub async fn delete_output(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let (id, output_id) = path.into_inner();
    let writer = auth.clone();
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                opps::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
                if !opps::delete_output(c, id, output_id)? {
                    return Err(ApiError::not_found("output"));
                }
                let mut changes = serde_json::Map::new();
                changes.insert("outputs".into(), json!({"before": {"id": output_id}, "after": null}));
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "output_removed",
                    changes,
                    json!({"opportunity_id": id, "output_id": output_id}),
                )?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
