//! `/api/v1/admin/roles`: roles and their permissions; the permission catalogue.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::roles;
use crm_domain::access::{self, Grant};
use diesel::prelude::*;
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::admin::{CreateRole, PermissionCatalog, ResourcePermissions, Role, RoleList, UpdateRole};
use crate::dto::me::{DataScope, Permission, PermissionAction};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "roles";

/// Permissions as grants (the operation checks them against the catalogue).
fn grants(perms: &[Permission]) -> Vec<Grant> {
    perms
        .iter()
        .map(|p| Grant {
            resource: p.resource.clone(),
            action: p.action.into(),
            scope: p.scope.into(),
        })
        .collect()
}

fn to_permissions(gs: impl Iterator<Item = Grant>) -> Vec<Permission> {
    gs.map(|g| Permission {
        resource: g.resource,
        action: g.action.into(),
        scope: g.scope.into(),
    })
    .collect()
}

fn load_role(c: &mut PgConnection, id: Uuid) -> ApiResult<Role> {
    let row = roles::find(c, id)?.ok_or_else(|| ApiError::not_found("role"))?;
    let gs = roles::grants(c, &[id])?.into_iter().map(|(_, g)| g);
    Ok(Role::from_row(row, to_permissions(gs)))
}

/// Every role with its permissions.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Roles", body = RoleList), Unauthorized, Forbidden)
)]
#[get("/admin/roles")]
pub async fn list_roles(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Read)?;
    let items = state
        .db
        .run(|c| {
            let rows = roles::list(c)?;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let all = roles::grants(c, &ids)?;
            Ok::<_, ApiError>(
                rows.into_iter()
                    .map(|r| {
                        let role_id = r.id;
                        let gs = all.iter().filter(|(id, _)| *id == role_id).map(|(_, g)| g.clone());
                        Role::from_row(r, to_permissions(gs))
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleList { items }))
}

/// The permission catalogue: resources, their actions, and the data scopes.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Catalogue", body = PermissionCatalog), Unauthorized, Forbidden)
)]
#[get("/admin/permissions")]
pub async fn permission_catalog(auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Read)?;
    Ok(HttpResponse::Ok().json(PermissionCatalog {
        resources: access::RESOURCES
            .iter()
            .map(|r| ResourcePermissions {
                resource: r.name.to_owned(),
                actions: r.actions.iter().map(|a| PermissionAction::from(*a)).collect(),
            })
            .collect(),
        scopes: access::Scope::ALL.iter().map(|s| DataScope::from(*s)).collect(),
    }))
}

/// Create a custom role.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateRole,
    responses(
        (status = 201, description = "Created", body = Role, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/admin/roles")]
pub async fn create_role(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateRole>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Admin)?;
    let raw = body.raw.clone();
    let dto = body.value?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let role = (dto.key.as_str(), dto.name.as_str(), dto.description.clone());
        let row = crm_app::org::create_role(c, &ctx, role, &grants(&dto.permissions))?;
        let dto = load_role(c, row.id)?;
        Outcome::created(&dto, format!("/api/v1/admin/roles/{}", dto.id))
    })
    .await
}

/// Get a role.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 200, description = "The role", body = Role, headers(("ETag" = String))), ReadErrors)
)]
#[get("/admin/roles/{id}")]
pub async fn get_role(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Read)?;
    let id = id.into_inner();
    let role = state.db.run(move |c| load_role(c, id)).await?;
    let version = role.version;
    Ok(with_etag(&role, version))
}

/// Update a custom role; its users get the new permissions at once.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Role id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateRole,
    responses(
        (status = 200, description = "Updated", body = Role, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/roles/{id}")]
pub async fn update_role(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateRole>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Admin)?;
    let (id, expected, dto) = (id.into_inner(), if_match.0.expected(), body.value?);
    let role = run_op(&state, &auth, move |c, ctx| {
        let gs = dto.permissions.as_deref().map(grants);
        let change = (dto.name.as_deref(), dto.description.clone());
        crm_app::org::update_role(c, ctx, id, expected, change, gs.as_deref())?;
        load_role(c, id)
    })
    .await?;
    state.auth_cache.invalidate_all();
    let version = role.version;
    Ok(with_etag(&role, version))
}

/// Delete a custom role nobody uses.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"), ReadErrors, Conflict)
)]
#[delete("/admin/roles/{id}")]
pub async fn delete_role(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Admin)?;
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| Ok(crm_app::org::delete_role(c, ctx, id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
