//! `/api/v1/admin/webhooks`: outgoing webhook subscriptions, their delivery log,
//! redelivery, test events and secret rotation.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_app::webhooks::{self as app, Redeliver, WebhookInput, WebhookPatch};
use crm_db::repo::roles;
use crm_db::repo::webhooks::WebhookRow;
use diesel::PgConnection;
use serde_json::Value;
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::integrations::{
    CreateWebhook, DeliveryQuery, RedeliverRequest, Redelivered, RotateSecret, TestEventQueued, UpdateWebhook, Webhook,
    WebhookAttempt, WebhookDelivery, WebhookDeliveryDetail, WebhookDeliveryPage, WebhookList, WebhookWithSecret,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

fn dto(c: &mut PgConnection, rows: Vec<WebhookRow>) -> ApiResult<Vec<Webhook>> {
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.role_id).collect();
    ids.sort();
    ids.dedup();
    let roles = roles::find_by_ids(c, &ids)?;
    Ok(rows
        .into_iter()
        .map(|r| Webhook {
            role: roles
                .iter()
                .find(|x| x.id == r.role_id)
                .map_or_else(String::new, |x| x.key.clone()),
            id: r.id,
            url: r.url,
            description: r.description,
            event_types: r.event_types,
            condition: r.condition,
            owner_id: r.owner_id,
            enabled: r.enabled,
            previous_secret_until: r.previous_secret_until,
            failing_since: r.failing_since,
            disabled_at: r.disabled_at,
            disabled_reason: r.disabled_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
        .collect())
}

fn one(c: &mut PgConnection, row: WebhookRow) -> ApiResult<Webhook> {
    dto(c, vec![row])?
        .pop()
        .ok_or_else(|| ApiError::internal("webhook vanished"))
}

/// A replayed creation must not hand out the secret again.
fn without_secret(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("secret".into(), Value::Null);
    }
    v
}

/// Every webhook subscription (secrets are never shown again).
#[utoipa::path(
    tag = "webhooks",
    responses((status = 200, description = "Subscriptions", body = WebhookList), Unauthorized, Forbidden)
)]
#[get("/admin/webhooks")]
pub async fn list_webhooks(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let items = run_op(&state, &auth, |c, ctx| {
        let rows = app::list(c, ctx)?;
        dto(c, rows)
    })
    .await?;
    Ok(HttpResponse::Ok().json(WebhookList { items }))
}

/// Subscribe a URL to events. It acts as the caller limited to `role`: that role's data
/// scope picks the records, its field permissions shape the payload. The signing secret
/// is in this answer only.
#[utoipa::path(
    tag = "webhooks",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created", body = WebhookWithSecret, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/admin/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateWebhook>,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let dto = body.value?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, without_secret, move |c| {
        let input = WebhookInput {
            url: dto.url,
            description: dto.description,
            event_types: dto.event_types,
            condition: dto.condition,
            role: dto.role,
            enabled: dto.enabled,
        };
        let (row, secret) = app::create(c, &ctx, input)?;
        let webhook = one(c, row)?;
        let id = webhook.id;
        let created = WebhookWithSecret {
            webhook,
            secret: Some(secret),
        };
        Outcome::created(&created, format!("/api/v1/admin/webhooks/{id}"))
    })
    .await
}

/// One subscription.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The subscription", body = Webhook, headers(("ETag" = String))), ReadErrors)
)]
#[get("/admin/webhooks/{id}")]
pub async fn get_webhook(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let w = run_op(&state, &auth, move |c, ctx| {
        let row = app::get(c, ctx, id)?;
        one(c, row)
    })
    .await?;
    let version = w.version;
    Ok(with_etag(&w, version))
}

/// Change a subscription; `enabled: true` on a disabled one clears its failure streak
/// and sends what waited.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "Updated", body = Webhook, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/webhooks/{id}")]
pub async fn update_webhook(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateWebhook>,
) -> ApiResult<HttpResponse> {
    let (id, expected, dto) = (id.into_inner(), if_match.0.expected(), body.value?);
    let w = run_op(&state, &auth, move |c, ctx| {
        let patch = WebhookPatch {
            url: dto.url,
            description: dto.description,
            event_types: dto.event_types,
            condition: dto.condition,
            role: dto.role,
            enabled: dto.enabled,
        };
        let row = app::update(c, ctx, id, patch, expected)?;
        one(c, row)
    })
    .await?;
    let version = w.version;
    Ok(with_etag(&w, version))
}

/// Delete a subscription with its delivery log; nothing more is sent.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/admin/webhooks/{id}")]
pub async fn delete_webhook(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| Ok(app::delete(c, ctx, id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new signing secret (in this answer only); the old one keeps signing beside it for
/// `grace_hours` (default 24), so receivers can switch without losing deliveries.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = RotateSecret,
    responses((status = 200, description = "Rotated", body = WebhookWithSecret), ReadErrors, BodyErrors)
)]
#[post("/admin/webhooks/{id}/rotate-secret")]
pub async fn rotate_webhook_secret(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    body: ValidJson<RotateSecret>,
) -> ApiResult<HttpResponse> {
    let (id, dto) = (id.into_inner(), body.value?);
    let out = run_op(&state, &auth, move |c, ctx| {
        let (row, secret) = app::rotate_secret(c, ctx, id, dto.grace_hours.unwrap_or(24))?;
        Ok(WebhookWithSecret {
            webhook: one(c, row)?,
            secret: Some(secret),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The delivery log, newest first: status, latency, attempts, response excerpt.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), DeliveryQuery),
    responses((status = 200, description = "Deliveries", body = WebhookDeliveryPage), ReadErrors)
)]
#[get("/admin/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<DeliveryQuery>,
) -> ApiResult<HttpResponse> {
    let (id, q) = (id.into_inner(), q.into_inner());
    let limit = crm_domain::listing::limit(q.limit)?;
    let before = super::before_id(q.before)?;
    let rows = run_op(&state, &auth, move |c, ctx| {
        Ok(app::deliveries(c, ctx, id, q.state.map(|s| s.as_str()), before, limit)?)
    })
    .await?;
    let next_before = if i64::try_from(rows.len()).unwrap_or(0) == limit {
        rows.last().map(|d| d.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(WebhookDeliveryPage {
        items: rows.into_iter().map(WebhookDelivery::from).collect(),
        next_before,
    }))
}

/// One delivery: the exact body sent and every attempt.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ("delivery_id" = i64, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery", body = WebhookDeliveryDetail), ReadErrors)
)]
#[get("/admin/webhooks/{id}/deliveries/{delivery_id}")]
pub async fn get_delivery(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, i64)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery) = path.into_inner();
    let (d, attempts) = run_op(&state, &auth, move |c, ctx| Ok(app::delivery(c, ctx, id, delivery)?)).await?;
    let body = d.body.clone();
    Ok(HttpResponse::Ok().json(WebhookDeliveryDetail {
        delivery: WebhookDelivery::from(d),
        body,
        attempts_log: attempts
            .into_iter()
            .map(|a| WebhookAttempt {
                attempt: a.attempt,
                attempted_at: a.attempted_at,
                status: a.status,
                latency_ms: a.latency_ms,
                outcome: a.outcome,
                error: a.error,
                response: a.response,
            })
            .collect(),
    }))
}

/// Deliver again, as new deliveries with the same bodies and event ids: one delivery
/// (`delivery_id`) or every delivery created in a window (`from`, `to`).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = RedeliverRequest,
    responses((status = 202, description = "Queued", body = Redelivered), ReadErrors, BodyErrors)
)]
#[post("/admin/webhooks/{id}/redeliver")]
pub async fn redeliver(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    body: ValidJson<RedeliverRequest>,
) -> ApiResult<HttpResponse> {
    let (id, dto) = (id.into_inner(), body.value?);
    let what = match (dto.delivery_id, dto.from, dto.to) {
        (Some(d), None, None) => Redeliver::One(d),
        (None, Some(from), Some(to)) => Redeliver::Window { from, to },
        _ => {
            return Err(crm_app::AppError::field(
                "delivery_id",
                "invalid",
                "give either `delivery_id`, or both `from` and `to`",
            )
            .into())
        }
    };
    let delivery_ids = run_op(&state, &auth, move |c, ctx| Ok(app::redeliver(c, ctx, id, what)?)).await?;
    Ok(HttpResponse::Accepted().json(Redelivered { delivery_ids }))
}

/// Queue a `webhook.test` event to the subscription (see its delivery in the log).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Queued", body = TestEventQueued),
        ReadErrors,
        (status = 409, description = "The webhook is disabled (`webhook_disabled`)", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/admin/webhooks/{id}/test")]
pub async fn test_webhook(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let delivery_id = run_op(&state, &auth, move |c, ctx| Ok(app::send_test(c, ctx, id)?)).await?;
    Ok(HttpResponse::Accepted().json(TestEventQueued { delivery_id }))
}
