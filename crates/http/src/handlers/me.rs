//! `/api/v1/me`: the caller.

use std::collections::BTreeMap;

use actix_web::{get, HttpResponse};
use crm_domain::access::Action;

use super::Unauthorized;
use crate::auth::Auth;
use crate::dto::me::{Me, Permission};
use crate::error::ApiResult;

/// The caller: profile, roles, permissions and data scope.
#[utoipa::path(
    tag = "me",
    responses((status = 200, description = "The caller", body = Me), Unauthorized)
)]
#[get("/me")]
pub async fn me(auth: Auth) -> ApiResult<HttpResponse> {
    let p = &auth.principal;
    let permissions: Vec<Permission> = p
        .permissions
        .grants()
        .map(|g| Permission {
            resource: g.resource,
            action: g.action.into(),
            scope: g.scope.into(),
        })
        .collect();
    let data_scope: BTreeMap<_, _> = p
        .permissions
        .grants()
        .filter(|g| g.action == Action::Read)
        .map(|g| (g.resource, g.scope.into()))
        .collect();
    Ok(HttpResponse::Ok().json(Me {
        id: p.user_id,
        email: p.email.clone(),
        name: p.name.clone(),
        team_id: p.team_id,
        roles: p.role_keys.clone(),
        permissions,
        data_scope,
        api_key_id: p.api_key_id,
    }))
}
