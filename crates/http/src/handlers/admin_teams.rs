//! `/api/v1/admin/teams`: manage the team tree.

use actix_web::{delete, patch, post, web, HttpRequest, HttpResponse};
use crm_domain::access::Action;
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::admin::{CreateTeam, Team, UpdateTeam};
use crate::error::ApiResult;
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "teams";

/// Create a team.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateTeam,
    responses(
        (status = 201, description = "Created", body = Team, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
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
    let raw = body.raw.clone();
    let dto = body.value?;
    let ctx = auth.ctx();
    let resp = idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let row = crm_app::org::create_team(
            c,
            &ctx,
            &dto.name,
            dto.kind.as_str(),
            dto.parent_id,
            dto.region.as_deref(),
        )?;
        let dto = Team::from(row);
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
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
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
    let (id, expected, dto) = (id.into_inner(), if_match.0.expected(), body.value?);
    let row = run_op(&state, &auth, move |c, ctx| {
        let region = dto.region.as_ref().map(|r| r.as_deref());
        let change = (dto.name.as_deref(), dto.kind.map(|k| k.as_str()), dto.parent_id, region);
        Ok(crm_app::org::update_team(c, ctx, id, expected, change)?)
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
    responses((status = 204, description = "Deleted"), ReadErrors, Conflict)
)]
#[delete("/admin/teams/{id}")]
pub async fn delete_team(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| Ok(crm_app::org::delete_team(c, ctx, id)?)).await?;
    state.auth_cache.invalidate_all();
    Ok(HttpResponse::NoContent().finish())
}
