//! `/api/v1/admin/teams`: manage the team tree.

use actix_web::{delete, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::{audit, teams};
use crm_domain::access::Action;
use crm_domain::{diff, normalize};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use uuid::Uuid;

use super::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::{notify_auth_changed, Auth};
use crate::dto::admin::{CreateTeam, Team, UpdateTeam};
use crate::dto::Errors;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "teams";

fn to_json(t: &Team) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or_default()
}

fn sibling_conflict(e: DieselError) -> ApiError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            ApiError::conflict("duplicate", "a sibling team already has this name")
        }
        other => other.into(),
    }
}

/// Create a team.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateTeam,
    responses(
        (status = 201, description = "Created", body = Team, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/admin/teams")]
pub async fn create_team(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateTeam>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &dto.name);
    errs.into_result()?;
    let new = teams::NewTeam {
        id: Uuid::now_v7(),
        name: normalize::clean_text(&name),
        kind: dto.kind.as_str().into(),
        parent_id: dto.parent_id,
    };
    let writer = auth.clone();
    let resp = idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        if let Some(p) = new.parent_id {
            if teams::find(c, p)?.is_none() {
                return Err(ApiError::field("parent_id", "not_found", "no such team"));
            }
        }
        let row = teams::insert(c, &new).map_err(sibling_conflict)?;
        let dto = Team::from(row);
        let data = to_json(&dto);
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        notify_auth_changed(c)?;
        Outcome::created(&dto, format!("/api/v1/teams/{}", dto.id))
    })
    .await;
    state.auth_cache.invalidate_all();
    resp
}

/// Rename or move a team. Moving under one of its own descendants is refused.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Team id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateTeam,
    responses(
        (status = 200, description = "Updated", body = Team, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/admin/teams/{id}")]
pub async fn update_team(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateTeam>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    errs.into_result()?;
    let changes = teams::TeamChanges {
        name,
        kind: dto.kind.map(|k| k.as_str().into()),
        parent_id: dto.parent_id,
    };
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = teams::find(c, id)?.ok_or_else(|| ApiError::not_found("team"))?;
                if_match.0.check(before.version)?;
                if let Some(Some(parent)) = changes.parent_id {
                    if teams::find(c, parent)?.is_none() {
                        return Err(ApiError::field("parent_id", "not_found", "no such team"));
                    }
                    if teams::subtree(c, id)?.contains(&parent) {
                        return Err(ApiError::field("parent_id", "cycle", "a team cannot move under itself"));
                    }
                }
                let after = teams::update(c, id, &changes).map_err(sibling_conflict)?;
                let (b, a) = (to_json(&Team::from(before)), to_json(&Team::from(after.clone())));
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                notify_auth_changed(c)?;
                Ok(after)
            })
        })
        .await?;
    state.auth_cache.invalidate_all();
    let version = row.version;
    Ok(with_etag(&Team::from(row), version))
}

/// Delete a team that has no sub-teams, members or records.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Team id")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/admin/teams/{id}")]
pub async fn delete_team(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let writer = auth.clone();
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = teams::find(c, id)?.ok_or_else(|| ApiError::not_found("team"))?;
                let in_use = || ApiError::conflict("in_use", "the team still has sub-teams, members or records");
                if teams::in_use(c, id)? {
                    return Err(in_use());
                }
                teams::delete(c, id).map_err(|e| match e {
                    DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => in_use(),
                    other => other.into(),
                })?;
                let data = to_json(&Team::from(before));
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "deleted",
                    diff::changes(&data, &json!({})),
                    json!({"id": id}),
                )?;
                notify_auth_changed(c)?;
                Ok(())
            })
        })
        .await?;
    state.auth_cache.invalidate_all();
    Ok(HttpResponse::NoContent().finish())
}
