//! `/api/v1/admin/api-keys`: keys for integrations (DingTalk, WeCom, finance software).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use crm_db::repo::api_keys;
use crm_domain::access::Action;
use serde_json::Value;
use uuid::Uuid;

use super::{run_op, BadRequest, BodyErrors, Forbidden, ReadErrors, Unauthorized};
use crate::auth::Auth;
use crate::dto::admin::{ApiKey, ApiKeyList, CreateApiKey, CreatedApiKey};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "api_keys";

/// A replayed creation must not hand out the secret again: it is not stored.
fn without_secret(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("key".into(), Value::Null);
    }
    v
}

/// Every API key (secrets are never shown again).
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "API keys", body = ApiKeyList), Unauthorized, Forbidden)
)]
#[get("/admin/api-keys")]
pub async fn list_api_keys(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let rows = state.db.run(|c| api_keys::list(c).map_err(ApiError::from)).await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        items: rows.into_iter().map(ApiKey::from).collect(),
    }))
}

/// Create an API key for a service user, scoped to one role. The key is in this
/// response only; a replay with the same Idempotency-Key returns `key: null`.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created", body = CreatedApiKey, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/admin/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let raw = body.raw.clone();
    let dto = body.value?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, without_secret, move |c| {
        let which = (dto.name.as_str(), dto.user_id, dto.role.as_str());
        let (row, secret) = crm_app::org::create_api_key(c, &ctx, which, dto.expires_at)?;
        let api_key = ApiKey::from(row);
        let id = api_key.id;
        let created = CreatedApiKey {
            api_key,
            key: Some(secret),
        };
        Outcome::created(&created, format!("/api/v1/admin/api-keys/{id}"))
    })
    .await
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"), ReadErrors)
)]
#[delete("/admin/api-keys/{id}")]
pub async fn revoke_api_key(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::org::revoke_api_key(c, ctx, id)?)
    })
    .await?;
    state.auth_cache.invalidate_all();
    Ok(HttpResponse::NoContent().finish())
}
