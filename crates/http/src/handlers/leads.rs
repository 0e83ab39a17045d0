//! `/api/v1/leads`: capture, assignment, response tracking, qualification, conversion.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::leads::{self, LeadFilter};
use crm_domain::access::Action;
use serde_json::json;
use uuid::Uuid;

use super::{
    changed_record, created_record, BadRequest, BodyErrors, Conflict, ExportBusy, Forbidden, PreconditionFailed,
    ReadErrors, Unauthorized, Unprocessable, VersionErrors,
};
use crate::auth::Auth;
use crate::custom::Shaper;
use crate::dto::accounts::{AuditEntry, CreateQuery, HistoryQuery};
use crate::dto::leads::{
    lead_out, leads_out, AssignLeads, AssignResult, ConversionResult, ConvertLead, CreateLead, Lead, LeadListQuery,
    UpdateLead,
};
use crate::dto::{Page, SyncPage};
use crate::error::ApiResult;
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;

const RES: &str = "leads";

/// List leads in the caller's scope; `unanswered=true` is the response-SLA queue.
#[utoipa::path(
    tag = "leads",
    params(LeadListQuery),
    responses((status = 200, description = "A page of leads", body = SyncPage<Lead>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/leads")]
pub async fn list_leads(
    state: web::Data<AppState>,
    auth: Auth,
    q: ListQuery<LeadListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q, state.clock.now());
    listing::list(&state, &auth, filter, params).await
}

/// The typed filter and the shared list parameters of a list or export query.
fn list_filter(q: ListQuery<LeadListQuery>, now: chrono::DateTime<chrono::Utc>) -> (LeadFilter, listing::Params) {
    let ListQuery { query: q, custom, keys } = q;
    let params = listing::Params {
        since: q.updated_since,
        keys,
        sort: q.sort,
        cursor: q.cursor,
        limit: q.limit,
        custom,
    };
    let filter = LeadFilter {
        owner_id: q.owner_id,
        team_id: q.team_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        source: q.source.map(|s| s.as_str().to_owned()),
        campaign: q.campaign,
        region: q.region,
        industry: q.industry,
        tag: q.tag,
        unanswered: q.unanswered,
        sla: q.sla.map(|s| (s.into(), now)),
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
        updated_before: q.updated_before,
        q: q.q,
        custom: Vec::new(),
        search: Default::default(),
    };
    (filter, params)
}

crate::impl_listing!(LeadFilter, Lead, RES, "l", leads, |c, rows| leads_out(c, rows)?);

/// Export leads as CSV: every record the list with the same filters and sort returns.
///
/// Needs `leads:export`. UTF-8 with a BOM; one column per field the caller may see
/// (masked fields masked), custom fields as `custom.<key>`; `header=zh|en` puts labels
/// in the heading row. `cursor` and `limit` do not apply; more matching records than
/// `CRM_EXPORT_MAX_ROWS` (default 100,000) answer 422 `export_too_large`. Recorded in
/// the audit trail and as the
/// `lead.exported` event.
#[utoipa::path(
    tag = "leads",
    params(LeadListQuery, ExportOptions),
    responses(
        (status = 200, description = "CSV document", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String), ("X-Export-Id" = String), ("X-Export-Rows" = i64))),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ExportBusy
    )
)]
#[get("/leads/export")]
pub async fn export_leads(
    state: web::Data<AppState>,
    auth: Auth,
    q: ExportQuery<LeadListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q.list, state.clock.now());
    listing::export(&state, &auth, filter, params, q.options, q.raw).await
}

/// Capture a lead. With `owner_id` it is assigned at once; otherwise it is new and
/// owned by its creator until assigned. Duplicates (same phone, e-mail, or person at
/// the same company among visible open leads) answer 409 unless `allow_duplicate=true`.
#[utoipa::path(
    tag = "leads",
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateLead,
    responses(
        (status = 201, description = "Created", body = Lead, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/leads")]
pub async fn create_lead(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    q: web::Query<CreateQuery>,
    key: IdempotencyKey,
    body: ValidJson<CreateLead>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    let allow_duplicate = q.allow_duplicate;
    created_record(&state, &auth, (key, &req, &raw), (RES, "leads"), move |c, ctx| {
        let row = crm_app::leads::create(c, ctx, &fields, allow_duplicate)?;
        Ok(lead_out(c, row)?)
    })
    .await
}

/// Get one lead.
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id")),
    responses((status = 200, description = "The lead", body = Lead, headers(("ETag" = String))), ReadErrors)
)]
#[get("/leads/{id}")]
pub async fn get_lead(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::get_record(&state, &auth, "lead", id.into_inner(), |c, row: leads::LeadRow| {
        Ok(lead_out(c, row)?)
    })
    .await
}

/// Update a lead, including its status (contacted, qualified, disqualified with a reason).
/// A converted lead is read-only (409).
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateLead,
    responses(
        (status = 200, description = "Updated", body = Lead, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/leads/{id}")]
pub async fn update_lead(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateLead>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        let row = crm_app::leads::update(c, ctx, id, expected, &fields)?;
        Ok(lead_out(c, row)?)
    })
    .await
}

/// Delete a lead (soft).
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), ReadErrors, PreconditionFailed)
)]
#[delete("/leads/{id}")]
pub async fn delete_lead(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    super::delete_record::<leads::LeadRow>(&state, &auth, "lead", id.into_inner(), if_match, super::always).await
}

/// Restore a deleted lead.
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Restored", body = Lead), ReadErrors, Unprocessable)
)]
#[post("/leads/{id}/restore")]
pub async fn restore_lead(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let cache = state.fields.clone();
    super::restore_record(
        &state,
        &auth,
        key,
        &req,
        "deleted lead",
        id.into_inner(),
        super::always,
        move |c, w, row: leads::LeadRow| Ok(Shaper::new(&w.principal, RES, cache.get(c, RES)?).one(&lead_out(c, row)?)),
    )
    .await
}

/// Audit history of a lead, newest first.
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), HistoryQuery),
    responses((status = 200, description = "History entries", body = Page<AuditEntry>), ReadErrors)
)]
#[get("/leads/{id}/history")]
pub async fn lead_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history::<leads::LeadRow>(&state, &auth, id.into_inner(), q.into_inner()).await
}

/// Assign leads to an owner (all or nothing). Needs `leads:assign` reaching every lead
/// and the new owner. New and disqualified leads become assigned; `assigned_at` restarts.
#[utoipa::path(
    tag = "leads",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = AssignLeads,
    responses(
        (status = 200, description = "Assigned", body = AssignResult),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/leads/assign")]
pub async fn assign_leads(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<AssignLeads>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Assign)?;
    let dto = body.value?;
    let cache = state.fields.clone();
    let writer = auth.clone();
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let rows = crm_app::leads::assign(c, &ctx, &dto.lead_ids, dto.owner_id)?;
        let shaper = Shaper::new(&writer.principal, RES, cache.get(c, RES)?);
        let items: Vec<serde_json::Value> = leads_out(c, rows)?.iter().map(|l| shaper.one(l)).collect();
        Outcome::ok(&json!({ "items": items }))
    })
    .await
}

/// Convert a lead into an account (new, or an existing one you choose), a contact and
/// optionally an opportunity, in one transaction. The lead becomes converted and links to
/// all three. Repeating the call returns the same result without creating anything.
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = ConvertLead,
    responses(
        (status = 200, description = "Converted (or already converted)", body = ConversionResult),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/leads/{id}/convert")]
pub async fn convert_lead(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<ConvertLead>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let fields = body.fields()?;
    let cache = state.fields.clone();
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let done = crm_app::leads::convert(c, &ctx, id, &fields)?;
        let lead = Shaper::new(&ctx.principal, RES, cache.get(c, RES)?).one(&lead_out(c, done.lead)?);
        let (account_id, contact_id, opportunity_id) = (done.account_id, done.contact_id, done.opportunity_id);
        Outcome::ok(&json!({"lead": lead, "account_id": account_id, "contact_id": contact_id, "opportunity_id": opportunity_id}))
    })
    .await
}
