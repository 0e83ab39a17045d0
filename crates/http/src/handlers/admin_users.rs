//! `/api/v1/admin/users`: manage users, their teams, managers and roles.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::{auth as auth_repo, users};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::secrets;
use diesel::prelude::*;
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::admin::{CreateUser, UpdateUser, User, UserListQuery};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "users";

fn load_user(c: &mut PgConnection, id: Uuid) -> ApiResult<User> {
    let row = users::find(c, id)?.ok_or_else(|| ApiError::not_found("user"))?;
    let roles = users::role_keys(c, &[id])?.into_iter().map(|(_, k)| k).collect();
    Ok(User::from_row(row, roles))
}

async fn hash(password: Option<String>) -> ApiResult<Option<String>> {
    match password {
        None => Ok(None),
        Some(p) => web::block(move || secrets::hash_password(&p))
            .await
            .map_err(|e| ApiError::internal(format!("hash: {e}")))?
            .map(Some)
            .map_err(|e| ApiError::internal(format!("hash: {e}"))),
    }
}

/// List users (admin view).
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_users",
    params(UserListQuery),
    responses((status = 200, description = "A page of users", body = Page<User>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<UserListQuery>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let q = q.into_inner();
    let spec = ListSpec::new(
        users::SORT_COLUMNS,
        users::DEFAULT_SORT,
        q.sort.as_deref(),
        q.cursor.as_deref(),
        q.limit,
        "admin-users",
    )?;
    let filter = users::UserFilter {
        team_id: q.team_id,
        is_active: q.is_active,
        role: q.role,
        q: q.q,
    };
    let (page, roles) = state
        .db
        .run(move |c| {
            let page = users::list(c, &ScopeFilter::All, &filter, &spec)?;
            let ids: Vec<Uuid> = page.items.iter().map(|u| u.id).collect();
            let roles = users::role_keys(c, &ids)?;
            Ok::<_, ApiError>((page, roles))
        })
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|u| {
            let r = roles
                .iter()
                .filter(|(id, _)| *id == u.id)
                .map(|(_, k)| k.clone())
                .collect();
            User::from_row(u, r)
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Create a user. Service users (for API keys) have no password.
#[utoipa::path(
    tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateUser>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let raw = body.raw.clone();
    let dto = body.value?;
    let password_hash = hash(dto.password).await?;
    let input = crm_app::org::NewUserInput {
        email: dto.email,
        name: dto.name,
        password_hash,
        phone: dto.phone,
        team_id: dto.team_id,
        manager_id: dto.manager_id,
        roles: dto.roles,
        is_service: dto.is_service,
    };
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let row = crm_app::org::create_user(c, &ctx, input)?;
        let dto = load_user(c, row.id)?;
        Outcome::created(&dto, format!("/api/v1/admin/users/{}", dto.id))
    })
    .await
}

/// Get a user (admin view).
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User, headers(("ETag" = String))), ReadErrors)
)]
#[get("/admin/users/{id}")]
pub async fn get_user(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let user = state
        .db
        .run(move |c| {
            let mut user = load_user(c, id)?;
            let s = auth_repo::login_security(c, id)?;
            user.login_security = Some(crate::dto::admin::LoginSecurity {
                failed_since_login: s.failed_since_login,
                last_failed_at: s.last_failed_at,
                last_failed_from: s.last_failed_from,
            });
            Ok::<_, ApiError>(user)
        })
        .await?;
    let version = user.version;
    Ok(with_etag(&user, version))
}

/// Update a user: profile, team, manager, roles, password, active flag.
///
/// Disabling a user or setting a new password ends all their sessions at once.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "User id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "Updated", body = User, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateUser>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (id, expected, dto) = (id.into_inner(), if_match.0.expected(), body.value?);
    let input = crm_app::org::UserPatch {
        email: dto.email,
        name: dto.name,
        password_hash: hash(dto.password).await?,
        phone: dto.phone,
        team_id: dto.team_id,
        manager_id: dto.manager_id,
        roles: dto.roles,
        is_active: dto.is_active,
    };
    let user = run_op(&state, &auth, move |c, ctx| {
        crm_app::org::update_user(c, ctx, id, expected, input)?;
        load_user(c, id)
    })
    .await?;
    state.auth_cache.invalidate_all();
    let version = user.version;
    Ok(with_etag(&user, version))
}
