//! Approval processes: definitions (admin), the approver's inbox, decisions,
//! delegation, withdrawal, and the escalation sweep.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use crm_db::repo::approvals::{self as repo, InstanceRow};
use crm_domain::access::Action;
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::{
    run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, NotFound, ReadErrors, Unauthorized, VersionErrors,
};
use crate::auth::Auth;
use crate::dto::approvals::{
    Approval, ApprovalDefinition, ApprovalDefinitionList, ApprovalList, ApprovalObject, ApprovalStatus, ApprovalTask,
    ApprovalsQuery, CreateApprovalDefinition, Decision, Delegate, InboxItem, InboxQuery, SweepResult,
    UpdateApprovalDefinition,
};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;
use crm_app::approvals::{self as approval};

const RES: &str = "approvals";

/// Whether the caller may see an approval (the operation `approvals::visible`).
fn may_see(c: &mut PgConnection, auth: &Auth, inst: &InstanceRow) -> ApiResult<bool> {
    let ctx = auth.ctx();
    Ok(approval::visible(c, &ctx, inst)?)
}

fn build(c: &mut PgConnection, auth: &Auth, inst: InstanceRow) -> ApiResult<Approval> {
    let tasks = repo::tasks_of(c, &[inst.id])?;
    let history = repo::history(c, &[inst.id])?;
    let mut a = Approval::build(inst, tasks, history);
    shape_record(auth, a.object_type, &mut a.record);
    Ok(a)
}

/// The submitted record as the caller may read it: field permissions of its object
/// apply to the snapshot too (a quote's cost and margin, say).
fn shape_record(auth: &Auth, object: ApprovalObject, record: &mut Value) {
    let resource = match object {
        ApprovalObject::Quote => "quotes",
        ApprovalObject::Contract => "contracts",
        ApprovalObject::Opportunity => "opportunities",
    };
    if auth.principal.restricts(resource) {
        crate::custom::shape(&auth.principal, resource, &[], record);
    }
}

/// List approval definitions.
#[utoipa::path(
    tag = "approvals",
    responses((status = 200, description = "Definitions", body = ApprovalDefinitionList), Unauthorized, Forbidden)
)]
#[get("/admin/approval-definitions")]
pub async fn list_definitions(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let rows = state
        .db
        .run(move |c| Ok::<_, ApiError>(repo::list_definitions(c, None)?))
        .await?;
    Ok(HttpResponse::Ok().json(ApprovalDefinitionList {
        items: rows.into_iter().map(ApprovalDefinition::from).collect(),
    }))
}

/// Get one approval definition.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Definition id")),
    responses(
        (status = 200, description = "The definition", body = ApprovalDefinition, headers(("ETag" = String))),
        ReadErrors
    )
)]
#[get("/admin/approval-definitions/{id}")]
pub async fn get_definition(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let row = state
        .db
        .run(move |c| repo::find_definition(c, id, false)?.ok_or_else(|| ApiError::not_found("approval definition")))
        .await?;
    let v = row.version;
    Ok(with_etag(&ApprovalDefinition::from(row), v))
}

/// Create an approval definition: object type, trigger condition, priority and steps.
#[utoipa::path(
    tag = "approvals",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateApprovalDefinition,
    responses(
        (status = 201, description = "Created", body = ApprovalDefinition, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/admin/approval-definitions")]
pub async fn create_definition(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateApprovalDefinition>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let d = ApprovalDefinition::from(approval::create_definition(c, &ctx, &fields)?);
        Outcome::created(&d, format!("/api/v1/admin/approval-definitions/{}", d.id))
    })
    .await
}

/// Change an approval definition (`If-Match` required). Pending approvals open their
/// later steps from the new version.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Definition id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateApprovalDefinition,
    responses(
        (status = 200, description = "Updated", body = ApprovalDefinition, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/approval-definitions/{id}")]
pub async fn update_definition(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateApprovalDefinition>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(approval::update_definition(c, ctx, id, expected, &fields)?)
    })
    .await?;
    let v = row.version;
    Ok(with_etag(&ApprovalDefinition::from(row), v))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct InboxCursor {
    at: DateTime<Utc>,
    id: Uuid,
}

/// The caller's approval inbox: decisions to make (default `status=pending`), newest
/// first, each with the record as submitted.
#[utoipa::path(
    tag = "approvals",
    params(InboxQuery),
    responses((status = 200, description = "Inbox", body = Page<InboxItem>), BadRequest, Unauthorized)
)]
#[get("/me/approvals")]
pub async fn my_approvals(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<InboxQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let limit = crm_domain::listing::limit(q.limit)?;
    let status = match q.status.unwrap_or(crate::dto::approvals::InboxStatus::Pending) {
        crate::dto::approvals::InboxStatus::All => None,
        s => Some(s.as_str().to_owned()),
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let before = match q.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let c: InboxCursor = engine
                .decode(raw.trim())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is malformed"))?;
            Some((c.at, c.id))
        }
    };
    let user = auth.user_id;
    let rows = state
        .db
        .run(move |c| Ok::<_, ApiError>(repo::inbox(c, user, status.as_deref(), before, limit + 1)?))
        .await?;
    let more = rows.len() as i64 > limit;
    let mut rows = rows;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if more {
        rows.last().map(|(t, _)| {
            engine.encode(
                serde_json::to_vec(&InboxCursor {
                    at: t.created_at,
                    id: t.id,
                })
                .unwrap_or_default(),
            )
        })
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|(t, i)| InboxItem {
            approval_id: i.id,
            object_type: ApprovalObject::parse(&i.object_type).unwrap_or(ApprovalObject::Quote),
            object_id: i.object_id,
            approval_status: ApprovalStatus::parse(&i.status).unwrap_or(ApprovalStatus::Pending),
            requester_id: i.requester_id,
            record: {
                let object = ApprovalObject::parse(&i.object_type).unwrap_or(ApprovalObject::Quote);
                let mut record = i.snapshot.get("record").cloned().unwrap_or(Value::Null);
                shape_record(&auth, object, &mut record);
                record
            },
            task: ApprovalTask::from(t),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// Approvals of one record, newest first, with tasks and history.
#[utoipa::path(
    tag = "approvals",
    params(ApprovalsQuery),
    responses((status = 200, description = "Approvals", body = ApprovalList), ReadErrors)
)]
#[get("/approvals")]
pub async fn list_approvals(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ApprovalsQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let viewer = auth.clone();
    let items = state
        .db
        .run(move |c| {
            let rows = repo::instances_for(c, q.object_type.as_str(), q.object_id)?;
            let mut out = Vec::new();
            for inst in rows {
                if may_see(c, &viewer, &inst)? {
                    out.push(build(c, &viewer, inst)?);
                }
            }
            Ok::<_, ApiError>(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ApprovalList { items }))
}

/// One approval with its tasks and full history.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Approval id")),
    responses((status = 200, description = "The approval", body = Approval), BadRequest, Unauthorized, NotFound)
)]
#[get("/approvals/{id}")]
pub async fn get_approval(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let viewer = auth.clone();
    let a = state
        .db
        .run(move |c| {
            let inst = repo::find_instance(c, id, false)?.ok_or_else(|| ApiError::not_found("approval"))?;
            if !may_see(c, &viewer, &inst)? {
                return Err(ApiError::not_found("approval"));
            }
            build(c, &viewer, inst)
        })
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

/// Runs an approval operation (retry-safe with an `Idempotency-Key`) and answers 200
/// with the approval as the caller may read it.
async fn approval_action<F>(
    state: &AppState,
    auth: &Auth,
    (key, req, raw): (IdempotencyKey, &HttpRequest, &[u8]),
    op: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> crm_app::AppResult<InstanceRow> + Send + 'static,
{
    let ctx = auth.ctx();
    let viewer = auth.clone();
    idempotency::post(state, auth, key, req, raw, idempotency::keep, move |c| {
        let inst = op(c, &ctx)?;
        Outcome::ok(&build(c, &viewer, inst)?)
    })
    .await
}

async fn decide(
    state: web::Data<AppState>,
    auth: Auth,
    (req, key): (HttpRequest, IdempotencyKey),
    id: Uuid,
    body: ValidJson<Decision>,
    approve: bool,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let comment = body.value?.comment;
    approval_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        approval::approve_or_reject(c, ctx, id, approve, comment.as_deref())
    })
    .await
}

/// Approve with the caller's pending decision on this approval. In an `any` step the
/// first approval completes the step; in an `all` step every approver must approve.
/// A decision already taken (by the caller, or the step completed by someone else) is
/// 409 `already_decided`.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Approval id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = Decision,
    responses(
        (status = 200, description = "The approval after the decision", body = Approval),
        BadRequest, Unauthorized, NotFound, Conflict, BodyErrors
    )
)]
#[post("/approvals/{id}/approve")]
pub async fn approve_approval(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<Decision>,
) -> ApiResult<HttpResponse> {
    decide(state, auth, (req, key), id.into_inner(), body, true).await
}

/// Reject (a `comment` is required). The approval ends rejected and the record returns
/// to the requester.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Approval id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = Decision,
    responses(
        (status = 200, description = "The approval after the decision", body = Approval),
        BadRequest, Unauthorized, NotFound, Conflict, BodyErrors
    )
)]
#[post("/approvals/{id}/reject")]
pub async fn reject_approval(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<Decision>,
) -> ApiResult<HttpResponse> {
    decide(state, auth, (req, key), id.into_inner(), body, false).await
}

/// Hand the caller's pending decision to another user.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Approval id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = Delegate,
    responses(
        (status = 200, description = "The approval after delegation", body = Approval),
        BadRequest, Unauthorized, NotFound, Conflict, BodyErrors
    )
)]
#[post("/approvals/{id}/delegate")]
pub async fn delegate_approval(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<Delegate>,
) -> ApiResult<HttpResponse> {
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let dto = body.value?;
    approval_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        approval::delegate_to(c, ctx, id, dto.user_id, dto.comment.as_deref())
    })
    .await
}

/// Withdraw a pending approval (the requester only). The record returns to draft.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path, description = "Approval id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = Decision,
    responses(
        (status = 200, description = "Withdrawn", body = Approval),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/approvals/{id}/withdraw")]
pub async fn withdraw_approval(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<Decision>,
) -> ApiResult<HttpResponse> {
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let comment = body.value?.comment;
    approval_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        approval::withdraw_request(c, ctx, id, comment.as_deref())
    })
    .await
}

/// Runs the time-based sweep now: escalates overdue approval decisions to the
/// approver's manager and expires sent quotes past their validity. The server also
/// runs it every minute.
#[utoipa::path(
    tag = "approvals",
    responses((status = 200, description = "What the sweep did", body = SweepResult), Unauthorized, Forbidden)
)]
#[post("/admin/approvals/sweep")]
pub async fn sweep_now(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let r = sweep(&state).await?;
    Ok(HttpResponse::Ok().json(r))
}

/// The sweep itself, one transaction.
pub async fn sweep(state: &AppState) -> ApiResult<SweepResult> {
    let ctx = crm_app::Ctx::system(state.clock.clone());
    let swept = state
        .db
        .run(move |c| c.transaction(|c| approval::sweep(c, &ctx)).map_err(ApiError::from))
        .await?;
    Ok(SweepResult {
        escalated: swept.escalated,
        quotes_expired: swept.quotes_expired,
    })
}
