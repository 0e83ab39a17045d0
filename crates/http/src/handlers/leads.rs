//! `/api/v1/leads`: capture, assignment, response tracking, qualification, conversion.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::accounts::{self, Liveness, NewAccount};
use crm_db::repo::audit;
use crm_db::repo::contacts::{self, NewContact};
use crm_db::repo::leads::{self, LeadChanges, LeadFilter, LeadRow, NewLead};
use crm_domain::access::{Action, Scope, ScopeFilter};
use crm_domain::pipeline::LeadStatus;
use crm_domain::{diff, normalize};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::{
    prune_changes, resolve_owner, BadRequest, Conflict, ExportBusy, Forbidden, NotFound, PayloadTooLarge,
    PreconditionFailed, PreconditionRequired, Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::Auth;
use crate::custom::{self, Shaper};
use crate::dto::accounts::{AccountType, AuditEntry, CreateQuery, HistoryQuery};
use crate::dto::check_amount;
use crate::dto::leads::{
    AssignLeads, AssignResult, ConversionResult, ConvertLead, CreateLead, Lead, LeadListQuery, UpdateLead,
};
use crate::dto::{patch, Errors, Page, SyncPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;

const RES: &str = "leads";

fn to_json(l: &Lead) -> serde_json::Value {
    serde_json::to_value(l).unwrap_or_default()
}

fn scope_or_own(auth: &Auth, resource: &str, action: Action) -> ScopeFilter {
    auth.principal
        .filter(auth.scope(resource, action).unwrap_or(Scope::Own))
}

fn clean_tags(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = tags
        .into_iter()
        .map(|t| normalize::clean_text(&t))
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// List leads in the caller's scope; `unanswered=true` is the response-SLA queue.
#[utoipa::path(
    tag = "leads",
    params(LeadListQuery),
    responses((status = 200, description = "A page of leads", body = SyncPage<Lead>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/leads")]
pub async fn list_leads(
    state: web::Data<AppState>,
    auth: Auth,
    q: ListQuery<LeadListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q);
    listing::list(&state, &auth, filter, params).await
}

/// The typed filter and the shared list parameters of a list or export query.
fn list_filter(q: ListQuery<LeadListQuery>) -> (LeadFilter, listing::Params) {
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

crate::impl_listing!(LeadFilter, Lead, RES, "l", leads, |c, rows| rows
    .into_iter()
    .map(Lead::from)
    .collect());

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
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/leads/export")]
pub async fn export_leads(
    state: web::Data<AppState>,
    auth: Auth,
    q: ExportQuery<LeadListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q.list);
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
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let now = state.clock.now();
    auth.require(RES, Action::Create)?;
    custom::guard_write(&auth.principal, RES, &body.raw)?;
    let cache = state.fields.clone();
    let read = scope_or_own(&auth, RES, Action::Read);
    let allow_duplicate = q.allow_duplicate;
    let dto = body.value?;
    let custom_in = dto.custom.clone();
    let mut errs = Errors::default();
    let person_name = errs.required_text("person_name", &dto.person_name);
    let assigned = dto.owner_id.is_some();
    let mut new = NewLead {
        id: Uuid::now_v7(),
        person_name,
        company: errs.line(dto.company),
        title: errs.line(dto.title),
        mobile: errs.phone("mobile", dto.mobile),
        phone: errs.phone("phone", dto.phone),
        email: errs.email("email", dto.email),
        source: dto.source.as_str().to_owned(),
        campaign: errs.line(dto.campaign),
        region: errs.line(dto.region),
        industry: errs.line(dto.industry),
        tags: clean_tags(dto.tags),
        estimated_budget: check_amount(&mut errs, "estimated_budget", dto.estimated_budget),
        notes: errs.text(dto.notes),
        owner_id: dto.owner_id.unwrap_or(auth.user_id),
        team_id: None,
        status: if assigned { "assigned" } else { "new" }.into(),
        assigned_at: if assigned { Some(now) } else { None },
        custom: json!({}),
        created_by: Some(auth.user_id),
    };
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        new.team_id = if assigned {
            if new.owner_id != writer.user_id {
                writer.require(RES, Action::Assign)?;
            }
            resolve_owner(c, &writer, RES, new.owner_id)?
        } else {
            resolve_owner(c, &writer, RES, new.owner_id)?
        };
        if !allow_duplicate {
            let phones: Vec<&str> = new.mobile.iter().chain(new.phone.iter()).map(String::as_str).collect();
            let company_key = new.company.as_deref().map(normalize::name_key).unwrap_or_default();
            if let Some((row, on)) = leads::find_duplicate(
                c,
                &read,
                &new.person_name.to_lowercase(),
                &company_key,
                &phones,
                new.email.as_deref(),
            )? {
                return Err(ApiError::conflict(
                    "duplicate",
                    format!(
                        "an open lead with the same {on} already exists; pass allow_duplicate=true to create anyway"
                    ),
                )
                .with_extra(
                    "existing",
                    json!({"id": row.id, "person_name": row.person_name, "matched_on": on}),
                ));
            }
        }
        let defs = cache.get(c, RES)?;
        let record = json!({"estimated_budget": new.estimated_budget});
        new.custom = crm_app::custom::apply(
            c,
            &writer.principal,
            crm_app::custom::CustomWrite {
                object: RES,
                defs: &defs,
                input: custom_in.as_ref(),
                existing: None,
                record: &record,
            },
        )?;
        let row = leads::insert(c, &new)?;
        let dto = Lead::from(row);
        let data = to_json(&dto);
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        Outcome::created(
            &Shaper::new(&writer.principal, RES, defs).one(&dto),
            format!("/api/v1/leads/{}", dto.id),
        )
    })
    .await
}

/// Get one lead.
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id")),
    responses((status = 200, description = "The lead", body = Lead, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/leads/{id}")]
pub async fn get_lead(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let principal = auth.principal.clone();
    let cache = state.fields.clone();
    let (shaper, row) = state
        .db
        .run(move |c| {
            let row = leads::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("lead"))?;
            Ok::<_, ApiError>((Shaper::new(&principal, RES, cache.get(c, RES)?), row))
        })
        .await?;
    let v = row.version;
    Ok(shaper.respond(&Lead::from(row), v))
}

/// Update a lead, including its status (contacted, qualified, disqualified with a reason).
/// A converted lead is read-only (409).
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateLead,
    responses(
        (status = 200, description = "Updated", body = Lead, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/leads/{id}")]
pub async fn update_lead(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateLead>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    custom::guard_write(&auth.principal, RES, &body.raw)?;
    let cache = state.fields.clone();
    let id = id.into_inner();
    let dto = body.value?;
    let custom_in = dto.custom.clone();
    let mut errs = Errors::default();
    let person_name = dto.person_name.as_deref().map(|n| errs.required_text("person_name", n));
    let budget = dto
        .estimated_budget
        .map(|b| check_amount(&mut errs, "estimated_budget", b));
    let reason = dto
        .disqualify_reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let mut ch = LeadChanges {
        person_name,
        company: patch(dto.company, |v| errs.line(v)),
        title: patch(dto.title, |v| errs.line(v)),
        mobile: patch(dto.mobile, |v| errs.phone("mobile", v)),
        phone: patch(dto.phone, |v| errs.phone("phone", v)),
        email: patch(dto.email, |v| errs.email("email", v)),
        source: dto.source.map(|s| s.as_str().to_owned()),
        campaign: patch(dto.campaign, |v| errs.line(v)),
        region: patch(dto.region, |v| errs.line(v)),
        industry: patch(dto.industry, |v| errs.line(v)),
        tags: dto.tags.map(clean_tags),
        estimated_budget: budget,
        notes: patch(dto.notes, |v| errs.text(v)),
        ..LeadChanges::default()
    };
    errs.into_result()?;
    let to_status = dto.status;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before =
                    leads::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("lead"))?;
                if_match.0.check(before.version)?;
                if before.status == "converted" {
                    return Err(ApiError::conflict("lead_converted", "a converted lead is read-only"));
                }
                let defs = cache.get(c, RES)?;
                if custom_in.is_some()
                    || custom::live(&defs).any(|d| d.field_type() == crm_domain::fields::FieldType::Formula)
                {
                    let budget = ch.estimated_budget.unwrap_or(before.estimated_budget);
                    ch.custom = Some(crm_app::custom::apply(
                        c,
                        &writer.principal,
                        crm_app::custom::CustomWrite {
                            object: RES,
                            defs: &defs,
                            input: custom_in.as_ref(),
                            existing: Some(&before.custom),
                            record: &json!({"estimated_budget": budget}),
                        },
                    )?);
                    if let Some(keys) = &custom_in {
                        crm_db::repo::fields::unflag(c, RES, id, &keys.keys().cloned().collect::<Vec<_>>())?;
                    }
                }
                let from = LeadStatus::parse(&before.status).unwrap_or(LeadStatus::New);
                if let Some(to) = to_status.map(|s| LeadStatus::parse(s.as_str()).unwrap_or(LeadStatus::New)) {
                    if to != from {
                        if !from.can_become(to) {
                            let hint = match to {
                                LeadStatus::Assigned => "; use POST /leads/assign",
                                LeadStatus::Converted => "; use POST /leads/{id}/convert",
                                _ => "",
                            };
                            return Err(ApiError::field(
                                "status",
                                "invalid_transition",
                                format!("a {} lead cannot become {}{hint}", from.as_str(), to.as_str()),
                            ));
                        }
                        if to == LeadStatus::Disqualified && reason.is_none() {
                            return Err(ApiError::field(
                                "disqualify_reason",
                                "required",
                                "give a reason to disqualify",
                            ));
                        }
                        ch.status = Some(to.as_str().into());
                        ch.disqualify_reason = Some(if to == LeadStatus::Disqualified {
                            reason.clone()
                        } else {
                            None
                        });
                    }
                }
                if reason.is_some() && ch.status.is_none() {
                    if from == LeadStatus::Disqualified {
                        ch.disqualify_reason = Some(reason.clone());
                    } else {
                        return Err(ApiError::field(
                            "disqualify_reason",
                            "not_allowed",
                            "only with status disqualified",
                        ));
                    }
                }
                let cmp = before.clone();
                let unchanged = prune_changes!(ch, cmp;
                    person_name, company, title, mobile, phone, email, source, campaign, region, industry, tags,
                    estimated_budget, notes, status, disqualify_reason, custom);
                if unchanged {
                    return Ok((before, defs));
                }
                let after = leads::update(c, id, &ch)?;
                let (b, a) = (to_json(&Lead::from(before)), to_json(&Lead::from(after.clone())));
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>((after, defs))
            })
        })
        .await?;
    let (row, defs) = row;
    let v = row.version;
    Ok(Shaper::new(&auth.principal, RES, defs).respond(&Lead::from(row), v))
}

/// Delete a lead (soft).
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Restored", body = Lead), BadRequest, Unauthorized, Forbidden, NotFound, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
        move |c, w, row: leads::LeadRow| Ok(Shaper::new(&w.principal, RES, cache.get(c, RES)?).one(&Lead::from(row))),
    )
    .await
}

/// Audit history of a lead, newest first.
#[utoipa::path(
    tag = "leads",
    params(("id" = Uuid, Path, description = "Lead id"), HistoryQuery),
    responses((status = 200, description = "History entries", body = Page<AuditEntry>), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/leads/{id}/history")]
pub async fn lead_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history(&state, &auth, RES, id.into_inner(), q.into_inner(), |c, s, id| {
        Ok(leads::find(c, s, id, Liveness::Live, false)?.is_some())
    })
    .await
}

/// Assign leads to an owner (all or nothing). Needs `leads:assign` reaching every lead
/// and the new owner. New and disqualified leads become assigned; `assigned_at` restarts.
#[utoipa::path(
    tag = "leads",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = AssignLeads,
    responses((status = 200, description = "Assigned", body = AssignResult), BadRequest, Unauthorized, Forbidden,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let ctx = auth.ctx(&state.clock);
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let rows = crm_app::leads::assign(c, &ctx, &dto.lead_ids, dto.owner_id)?;
        let shaper = Shaper::new(&writer.principal, RES, cache.get(c, RES)?);
        let items: Vec<serde_json::Value> = rows.into_iter().map(|r| shaper.one(&Lead::from(r))).collect();
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
    responses((status = 200, description = "Converted (or already converted)", body = ConversionResult), BadRequest, Unauthorized,
        Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let now = state.clock.now();
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let cache = state.fields.clone();
    let writer = auth.clone();
    let ctx = auth.ctx(&state.clock);
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let lead = leads::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("lead"))?;
        if let (Some(account_id), Some(contact_id)) = (lead.converted_account_id, lead.converted_contact_id) {
            let opportunity_id = lead.converted_opportunity_id;
            return Outcome::ok(&{
            let lead = Shaper::new(&writer.principal, RES, cache.get(c, RES)?).one(&Lead::from(lead));
            json!({"lead": lead, "account_id": account_id, "contact_id": contact_id, "opportunity_id": opportunity_id})
        });
        }
        let status = LeadStatus::parse(&lead.status).unwrap_or(LeadStatus::New);
        if !status.convertible() {
            return Err(ApiError::unprocessable(
                "lead_not_convertible",
                format!("a {} lead cannot be converted", status.as_str()),
            ));
        }
        let account_id = convert_account(c, &writer, &lead, dto.account.as_ref())?;
        let contact_id = convert_contact(c, &writer, &lead, account_id, dto.contact_id)?;
        let opportunity_id = match &dto.opportunity {
            None => None,
            Some(o) => {
                writer.require("opportunities", Action::Create)?;
                let mut errs = Errors::default();
                let amount = check_amount(&mut errs, "opportunity.amount", o.amount.or(lead.estimated_budget));
                errs.into_result()?;
                let default_name = format!(
                    "{} - {}",
                    lead.company.clone().unwrap_or_else(|| lead.person_name.clone()),
                    lead.person_name
                );
                let name = o
                    .name
                    .as_deref()
                    .map(normalize::clean_text)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(default_name);
                let deal = crm_app::opportunities::create(
                    c,
                    &ctx,
                    crm_app::opportunities::NewDeal {
                        name,
                        account_id,
                        primary_contact_id: Some(contact_id),
                        contacts: Vec::new(),
                        pipeline_id: o.pipeline_id,
                        stage_id: None,
                        amount,
                        currency: "CNY".into(),
                        expected_close_date: o.expected_close_date,
                        probability: None,
                        owner_id: lead.owner_id,
                        source_lead_id: Some(lead.id),
                        competitors: Vec::new(),
                        next_step: None,
                        custom: None,
                    },
                )
                .map_err(|e| prefix_fields(ApiError::from(e), "opportunity."))?;
                Some(deal.id)
            }
        };
        let ch = LeadChanges {
            status: Some("converted".into()),
            converted_at: Some(Some(now)),
            converted_account_id: Some(Some(account_id)),
            converted_contact_id: Some(Some(contact_id)),
            converted_opportunity_id: Some(opportunity_id),
            ..LeadChanges::default()
        };
        let after = leads::update(c, id, &ch)?;
        let (b, a) = (to_json(&Lead::from(lead)), to_json(&Lead::from(after.clone())));
        audit::record(c, &writer.actor(), RES, id, "converted", diff::changes(&b, &a), a)?;
        Outcome::ok(&{
            let lead = Shaper::new(&writer.principal, RES, cache.get(c, RES)?).one(&Lead::from(after));
            json!({"lead": lead, "account_id": account_id, "contact_id": contact_id, "opportunity_id": opportunity_id})
        })
    })
    .await
}

fn prefix_fields(mut e: ApiError, prefix: &str) -> ApiError {
    for f in e.errors.iter_mut() {
        f.field = format!("{prefix}{}", f.field);
    }
    e
}

fn convert_account(
    c: &mut PgConnection,
    auth: &Auth,
    lead: &LeadRow,
    spec: Option<&crate::dto::leads::ConvertAccount>,
) -> ApiResult<Uuid> {
    let read = scope_or_own(auth, "accounts", Action::Read);
    if let Some(existing) = spec.and_then(|s| s.id) {
        return match accounts::find(c, &read, existing, Liveness::Live, false)? {
            Some(a) => Ok(a.id),
            None => Err(ApiError::field("account.id", "not_found", "no such account")),
        };
    }
    auth.require("accounts", Action::Create)?;
    let name = spec
        .and_then(|s| s.name.as_deref())
        .map(normalize::clean_text)
        .filter(|n| !n.is_empty())
        .or_else(|| lead.company.clone())
        .unwrap_or_else(|| lead.person_name.clone());
    let name_norm = normalize::name_key(&name);
    if !spec.is_some_and(|s| s.allow_duplicate) {
        if let Some((row, on)) = accounts::find_duplicate(c, &read, &name_norm, lead.phone.as_deref(), None)? {
            return Err(ApiError::conflict(
                "duplicate",
                format!("an account with the same {on} exists; convert into it with account.id, or set account.allow_duplicate"),
            )
            .with_extra("existing", json!({"id": row.id, "name": row.name, "matched_on": on})));
        }
    }
    let row = accounts::insert(
        c,
        &NewAccount {
            id: Uuid::now_v7(),
            name,
            name_norm,
            account_type: spec
                .and_then(|s| s.account_type)
                .unwrap_or(AccountType::Prospect)
                .as_str()
                .into(),
            industry: lead.industry.clone(),
            region: lead.region.clone(),
            address: None,
            phone: lead.phone.clone(),
            email: None,
            website: None,
            tier: None,
            source: Some(lead.source.clone()),
            parent_id: None,
            owner_id: lead.owner_id,
            team_id: lead.team_id,
            notes: None,
            custom: json!({}),
            created_by: Some(auth.user_id),
        },
    )?;
    let data = serde_json::to_value(crate::dto::accounts::Account::from(row.clone())).unwrap_or_default();
    audit::record(
        c,
        &auth.actor(),
        "accounts",
        row.id,
        "created",
        diff::created(&data),
        data,
    )?;
    Ok(row.id)
}

fn convert_contact(
    c: &mut PgConnection,
    auth: &Auth,
    lead: &LeadRow,
    account_id: Uuid,
    existing: Option<Uuid>,
) -> ApiResult<Uuid> {
    if let Some(id) = existing {
        let read = scope_or_own(auth, "contacts", Action::Read);
        return match contacts::find(c, &read, id, Liveness::Live, false)? {
            Some(ct) if ct.account_id == account_id => Ok(ct.id),
            Some(_) => Err(ApiError::field(
                "contact_id",
                "wrong_account",
                "the contact belongs to another account",
            )),
            None => Err(ApiError::field("contact_id", "not_found", "no such contact")),
        };
    }
    auth.require("contacts", Action::Create)?;
    let row = contacts::insert(
        c,
        &NewContact {
            id: Uuid::now_v7(),
            account_id,
            name: lead.person_name.clone(),
            name_norm: normalize::name_key(&lead.person_name),
            title: lead.title.clone(),
            department: None,
            mobile: lead.mobile.clone(),
            phone: lead.phone.clone(),
            email: lead.email.clone(),
            wechat: None,
            birthday: None,
            decision_role: None,
            preferences: None,
            pain_points: None,
            notes: lead.notes.clone(),
            owner_id: lead.owner_id,
            team_id: lead.team_id,
            custom: json!({}),
            created_by: Some(auth.user_id),
        },
    )?;
    let data = serde_json::to_value(crate::dto::contacts::Contact::from(row.clone())).unwrap_or_default();
    audit::record(
        c,
        &auth.actor(),
        "contacts",
        row.id,
        "created",
        diff::created(&data),
        data,
    )?;
    Ok(row.id)
}
