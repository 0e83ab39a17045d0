//! `/api/v1/admin/users`: manage users, their teams, managers and roles.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::{audit, auth as auth_repo, roles, teams, users};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::{diff, secrets};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::{
    prune_changes, with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    PreconditionRequired, Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::{notify_auth_changed, Auth};
use crate::dto::admin::{CreateUser, UpdateUser, User, UserListQuery};
use crate::dto::{Errors, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "users";

fn to_json(u: &User) -> serde_json::Value {
    serde_json::to_value(u).unwrap_or_default()
}

fn email_taken(e: DieselError) -> ApiError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            ApiError::conflict("duplicate", "another user has this e-mail address")
        }
        other => other.into(),
    }
}

/// Role ids for role keys; unknown keys are a 422 on `roles`.
fn role_ids(c: &mut PgConnection, keys: &[String]) -> ApiResult<Vec<Uuid>> {
    let rows = roles::find_by_keys(c, keys)?;
    let unknown: Vec<&str> = keys
        .iter()
        .filter(|k| !rows.iter().any(|r| &r.key == *k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::field(
            "roles",
            "not_found",
            format!("unknown roles: {}", unknown.join(", ")),
        ));
    }
    Ok(rows.into_iter().map(|r| r.id).collect())
}

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
    responses((status = 200, description = "A page of users", body = Page<User>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &dto.name);
    let email = errs.email("email", Some(dto.email)).unwrap_or_default();
    let phone = errs.phone("phone", dto.phone);
    match (dto.is_service, &dto.password) {
        (true, Some(_)) => errs.add("password", "not_allowed", "service users cannot have a password"),
        (false, None) => errs.add("password", "required", "a password is required"),
        _ => {}
    }
    errs.into_result()?;
    let password_hash = hash(dto.password).await?;
    let new = users::NewUser {
        id: Uuid::now_v7(),
        email,
        name,
        password_hash,
        phone,
        team_id: dto.team_id,
        manager_id: dto.manager_id,
        is_active: true,
        is_service: dto.is_service,
    };
    let role_keys = dto.roles;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        if let Some(t) = new.team_id {
            if teams::find(c, t)?.is_none() {
                return Err(ApiError::field("team_id", "not_found", "no such team"));
            }
        }
        if let Some(m) = new.manager_id {
            if users::find(c, m)?.is_none_or(|u| !u.is_active) {
                return Err(ApiError::field(
                    "manager_id",
                    "not_found",
                    "no active user with this id",
                ));
            }
        }
        let ids = role_ids(c, &role_keys)?;
        let row = users::insert(c, &new).map_err(email_taken)?;
        users::set_roles(c, row.id, &ids)?;
        let dto = load_user(c, row.id)?;
        let data = to_json(&dto);
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        Outcome::created(&dto, format!("/api/v1/admin/users/{}", dto.id))
    })
    .await
}

/// Get a user (admin view).
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    let email = dto.email.map(|e| errs.email("email", Some(e)).unwrap_or_default());
    let phone = super::super::dto::patch(dto.phone, |v| errs.phone("phone", v));
    if id == auth.user_id && dto.is_active == Some(false) {
        errs.add("is_active", "not_allowed", "you cannot disable yourself");
    }
    errs.into_result()?;
    let new_password = dto.password.is_some();
    let password_hash = hash(dto.password).await?;
    let mut ch = users::UserChanges {
        email,
        name,
        password_hash: password_hash.map(Some),
        phone,
        team_id: dto.team_id,
        manager_id: dto.manager_id,
        is_active: dto.is_active,
    };
    let role_keys = dto.roles;
    let writer = auth.clone();
    let user = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before_row = users::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("user"))?;
                if_match.0.check(before_row.version)?;
                if before_row.is_service && new_password {
                    return Err(ApiError::field(
                        "password",
                        "not_allowed",
                        "service users cannot have a password",
                    ));
                }
                let before = load_user(c, id)?;
                if let Some(Some(t)) = ch.team_id {
                    if teams::find(c, t)?.is_none() {
                        return Err(ApiError::field("team_id", "not_found", "no such team"));
                    }
                }
                if let Some(Some(m)) = ch.manager_id {
                    if users::find(c, m)?.is_none_or(|u| !u.is_active) {
                        return Err(ApiError::field(
                            "manager_id",
                            "not_found",
                            "no active user with this id",
                        ));
                    }
                    if users::manages_transitively(c, id, m)? {
                        return Err(ApiError::field(
                            "manager_id",
                            "cycle",
                            "a user cannot report to themself or a subordinate",
                        ));
                    }
                }
                let mut role_change = false;
                if let Some(keys) = &role_keys {
                    let ids = role_ids(c, keys)?;
                    let mut sorted = keys.clone();
                    sorted.sort();
                    sorted.dedup();
                    if sorted != before.roles {
                        users::set_roles(c, id, &ids)?;
                        role_change = true;
                    }
                }
                let password_changed = ch.password_hash.is_some();
                let cmp = before_row.clone();
                let unchanged = prune_changes!(ch, cmp; email, name, phone, team_id, manager_id, is_active);
                if !unchanged || password_changed {
                    users::update(c, id, &ch).map_err(email_taken)?;
                } else if role_change {
                    users::update(c, id, &users::UserChanges::default()).map_err(email_taken)?;
                }
                if ch.is_active == Some(false) || password_changed {
                    auth_repo::revoke_user(c, id)?;
                }
                if password_changed {
                    // A reset lifts the account's login locks (the owner gets straight in).
                    auth_repo::clear_account_throttles(c, &before_row.email)?;
                }
                let after = load_user(c, id)?;
                let mut changes = diff::changes(&to_json(&before), &to_json(&after));
                if password_changed {
                    changes.insert("password".into(), serde_json::json!({"before": "***", "after": "***"}));
                }
                if !changes.is_empty() {
                    audit::record(c, &writer.actor(), RES, id, "updated", changes, to_json(&after))?;
                    notify_auth_changed(c)?;
                }
                Ok(after)
            })
        })
        .await?;
    state.auth_cache.invalidate_all();
    let version = user.version;
    Ok(with_etag(&user, version))
}
