//! `/api/v1/admin/roles`: roles and their permissions; the permission catalogue.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::{audit, roles};
use crm_domain::access::{self, Grant};
use crm_domain::diff;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use uuid::Uuid;

use super::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::{notify_auth_changed, Auth};
use crate::dto::admin::{CreateRole, PermissionCatalog, ResourcePermissions, Role, RoleList, UpdateRole};
use crate::dto::me::{DataScope, Permission, PermissionAction};
use crate::dto::Errors;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "roles";

fn to_json(r: &Role) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// Checks permissions against the catalogue; each problem is reported at its index.
fn grants(perms: &[Permission], errs: &mut Errors) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    for (i, p) in perms.iter().enumerate() {
        let g = Grant {
            resource: p.resource.clone(),
            action: p.action.into(),
            scope: p.scope.into(),
        };
        if let Err(msg) = g.validate() {
            errs.add(&format!("permissions[{i}]"), "invalid_permission", msg);
            continue;
        }
        if out.iter().any(|o| o.resource == g.resource && o.action == g.action) {
            errs.add(
                &format!("permissions[{i}]"),
                "duplicate",
                format!("{}:{} is listed twice", g.resource, g.action),
            );
            continue;
        }
        out.push(g);
    }
    out
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
    responses((status = 200, description = "Roles", body = RoleList), Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Catalogue", body = PermissionCatalog), Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let dto = body.value?;
    let mut errs = Errors::default();
    let valid_key = dto.key.len() >= 2
        && dto.key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && dto
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_key {
        errs.add(
            "key",
            "invalid_format",
            "lower-case letters, digits and _, starting with a letter",
        );
    }
    let name = errs.required_text("name", &dto.name);
    let description = errs.text(dto.description);
    let gs = grants(&dto.permissions, &mut errs);
    errs.into_result()?;
    let new = roles::NewRole {
        id: Uuid::now_v7(),
        key: dto.key,
        name,
        description,
        builtin: false,
    };
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        roles::insert(c, &new).map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                ApiError::conflict("duplicate", "a role with this key exists")
            }
            other => other.into(),
        })?;
        roles::set_grants(c, new.id, &gs)?;
        let dto = load_role(c, new.id)?;
        let data = to_json(&dto);
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        Outcome::created(&dto, format!("/api/v1/admin/roles/{}", dto.id))
    })
    .await
}

/// Get a role.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 200, description = "The role", body = Role, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    let description = dto.description.map(|d| errs.text(d));
    let gs = dto.permissions.as_ref().map(|p| grants(p, &mut errs));
    errs.into_result()?;
    let writer = auth.clone();
    let role = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = roles::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("role"))?;
                if_match.0.check(row.version)?;
                if row.builtin {
                    return Err(ApiError::conflict(
                        "builtin_role",
                        "built-in roles cannot be changed; create a custom role",
                    ));
                }
                let before = load_role(c, id)?;
                if let Some(gs) = &gs {
                    roles::set_grants(c, id, gs)?;
                }
                roles::update(c, id, &roles::RoleChanges { name, description })?;
                let after = load_role(c, id)?;
                let (b, a) = (to_json(&before), to_json(&after));
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                notify_auth_changed(c)?;
                Ok(after)
            })
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
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/admin/roles/{id}")]
pub async fn delete_role(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, access::Action::Admin)?;
    let id = id.into_inner();
    let writer = auth.clone();
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = roles::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("role"))?;
                if row.builtin {
                    return Err(ApiError::conflict("builtin_role", "built-in roles cannot be deleted"));
                }
                let in_use = || ApiError::conflict("in_use", "the role is assigned to users or API keys");
                if roles::in_use(c, id)? {
                    return Err(in_use());
                }
                let before = load_role(c, id)?;
                roles::delete(c, id).map_err(|e| match e {
                    DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => in_use(),
                    other => other.into(),
                })?;
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "deleted",
                    diff::changes(&to_json(&before), &json!({})),
                    json!({"id": id}),
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
