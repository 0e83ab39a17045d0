//! `/api/v1/admin/api-keys`: keys for integrations (DingTalk, WeCom, finance software).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use crm_db::repo::{api_keys, audit, roles, users};
use crm_domain::access::Action;
use crm_domain::{diff, secrets};
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable, UnsupportedMediaType};
use crate::auth::{notify_auth_changed, Auth};
use crate::dto::admin::{ApiKey, ApiKeyList, CreateApiKey, CreatedApiKey};
use crate::dto::Errors;
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
    responses((status = 200, description = "API keys", body = ApiKeyList), Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/admin/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    auth.require(RES, Action::Admin)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &dto.name);
    if dto.expires_at.is_some_and(|e| e <= now) {
        errs.add("expires_at", "out_of_range", "must be in the future");
    }
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, without_secret, move |c| {
        let user = users::find(c, dto.user_id)?
            .filter(|u| u.is_active)
            .ok_or_else(|| ApiError::field("user_id", "not_found", "no active user with this id"))?;
        if !user.is_service {
            return Err(ApiError::field(
                "user_id",
                "not_service_user",
                "API keys belong to service users",
            ));
        }
        let role = roles::find_by_keys(c, std::slice::from_ref(&dto.role))?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::field("role", "not_found", "no such role"))?;
        let generated = secrets::new_api_key();
        let row = api_keys::insert(
            c,
            &api_keys::NewApiKey {
                id: Uuid::now_v7(),
                name,
                user_id: user.id,
                role_id: role.id,
                prefix: generated.prefix,
                key_hash: generated.hash,
                created_by: writer.user_id,
                expires_at: dto.expires_at,
            },
        )?;
        let api_key = ApiKey::from(row);
        let data = serde_json::to_value(&api_key).unwrap_or_default();
        audit::record(
            c,
            &writer.actor(),
            RES,
            api_key.id,
            "created",
            diff::created(&data),
            data,
        )?;
        let id = api_key.id;
        Outcome::created(
            &CreatedApiKey {
                api_key,
                key: Some(generated.key),
            },
            format!("/api/v1/admin/api-keys/{id}"),
        )
    })
    .await
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/admin/api-keys/{id}")]
pub async fn revoke_api_key(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let writer = auth.clone();
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = api_keys::find(c, id)?.ok_or_else(|| ApiError::not_found("API key"))?;
                if row.revoked_at.is_none() {
                    let after = api_keys::revoke(c, id)?;
                    let change = json!({"revoked_at": {"before": null, "after": after.revoked_at}});
                    audit::record(
                        c,
                        &writer.actor(),
                        RES,
                        id,
                        "revoked",
                        change.as_object().cloned().unwrap_or_default(),
                        json!({"id": id}),
                    )?;
                    notify_auth_changed(c)?;
                }
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    state.auth_cache.invalidate_all();
    Ok(HttpResponse::NoContent().finish())
}
