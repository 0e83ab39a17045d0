//! `/api/v1/auth`: login, token refresh, logout.

use actix_web::HttpMessage;
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use crm_db::repo::{audit, auth as auth_repo, users};
use crm_domain::{normalize, secrets};
use diesel::prelude::*;
use uuid::Uuid;

use super::{BadRequest, BodyErrors, TooManyRequests, Unauthorized};
use crate::auth::{notify_auth_changed, Auth};
use crate::dto::auth::{LoginRequest, RefreshRequest, TokenResponse};
use crate::error::{ApiError, ApiResult};
use crate::extract::{client_ip, ValidJson};
use crate::state::AppState;

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "e-mail or password is incorrect")
}

fn new_refresh_token() -> (String, Vec<u8>) {
    let token = secrets::random_secret(32);
    let hash = secrets::sha256(token.as_bytes());
    (token, hash)
}

fn refresh_ttl(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.refresh_ttl).unwrap_or(chrono::Duration::days(30))
}

/// Addresses an account logged in from within this time are "known" to it.
const KNOWN_ADDRESS_DAYS: i64 = 90;

/// Log in with e-mail and password.
///
/// Failures are throttled per account and address together (5 failures lock that pair,
/// for a time that doubles with every further failure), per address over all accounts,
/// and per account over all addresses (a distributed guess). The owner logging in from
/// an address they used before is not held by the account-wide lock, and an
/// administrator's password reset lifts every lock of the account. A lock is recorded
/// as the `user.login_locked` event for the user's and admins' attention, and the next
/// successful login reports the failures since the last one. Throttled: 429 with
/// `Retry-After`. The answer never tells whether the e-mail exists.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        BadRequest, Unauthorized, BodyErrors, TooManyRequests
    ),
    security(())
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ValidJson<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { email, password } = body.value?;
    let email = normalize::fold_width(email.trim()).to_lowercase();
    let ip = client_ip(&req, state.config.trust_proxy);
    let pair_key = format!("pair:{email}|{ip}");
    let ip_key = format!("ip:{ip}");
    let account_key = format!("account:{email}");

    let keys = vec![pair_key.clone(), ip_key.clone(), account_key.clone()];
    let (lookup, addr) = (email.clone(), ip.clone());
    let (locked, user) = state
        .db
        .run(move |c| {
            let locks = auth_repo::locks(c, &keys)?;
            let user = users::find_by_email(c, &lookup)?;
            let known = match &user {
                Some(u) => auth_repo::known_address(c, u.id, &addr, chrono::Duration::days(KNOWN_ADDRESS_DAYS))?,
                None => false,
            };
            // The account-wide lock holds strangers only; the pair and address locks
            // hold everyone.
            let locked = locks
                .into_iter()
                .filter(|(k, _)| !(known && k.starts_with("account:")))
                .map(|(_, until)| until)
                .max();
            Ok::<_, ApiError>((locked, user.filter(|_| locked.is_none())))
        })
        .await?;
    if let Some(until) = locked {
        let secs = (until - Utc::now()).num_seconds().max(1);
        return Err(ApiError::too_many_requests(u64::try_from(secs).unwrap_or(1)));
    }

    // Hashing is CPU-bound: keep it off the async workers and off a pooled connection.
    let hash = user
        .as_ref()
        .filter(|u| u.is_active && !u.is_service)
        .and_then(|u| u.password_hash.clone());
    let verified = web::block(move || match hash {
        Some(h) => secrets::verify_password(&password, &h),
        None => {
            secrets::burn_password_check(&password);
            false
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("password check: {e}")))?;

    let user = match (verified, user) {
        (true, Some(u)) => u,
        (_, user) => {
            let rules = (
                state.config.email_throttle,
                state.config.ip_throttle,
                state.config.account_throttle,
            );
            let request_id = req
                .extensions()
                .get::<crate::middleware::RequestId>()
                .map(|r| r.0.clone());
            let victim = user.map(|u| u.id);
            let from = ip.clone();
            state
                .db
                .run(move |c| {
                    c.transaction(|c| {
                        let pair = auth_repo::record_failure(c, &pair_key, rules.0)?;
                        auth_repo::record_failure(c, &ip_key, rules.1)?;
                        let account = auth_repo::record_failure(c, &account_key, rules.2)?;
                        if let Some(user_id) = victim {
                            auth_repo::note_failed_login(c, user_id, &from)?;
                            if let Some(until) = pair.max(account) {
                                // For the user's and the admins' attention (notifications
                                // read the event).
                                let actor = audit::Actor {
                                    user_id: Uuid::nil(),
                                    api_key_id: None,
                                    rule_id: None,
                                    request_id,
                                };
                                let scope = if account.is_some() { "account" } else { "address" };
                                audit::record(
                                    c,
                                    &actor,
                                    "users",
                                    user_id,
                                    "login_locked",
                                    serde_json::Map::new(),
                                    serde_json::json!({"user_id": user_id, "address": from,
                                                       "locked_until": until, "lock": scope}),
                                )?;
                            }
                        }
                        Ok::<_, diesel::result::Error>(())
                    })
                    .map_err(ApiError::from)
                })
                .await?;
            return Err(invalid_credentials());
        }
    };

    let (refresh_token, refresh_hash) = new_refresh_token();
    let family = Uuid::now_v7();
    let ttl = refresh_ttl(&state);
    let user_id = user.id;
    let security = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                auth_repo::clear_failures(c, &pair_key)?;
                let security = auth_repo::note_login(c, user_id, &ip)?;
                auth_repo::insert_refresh_token(c, user_id, family, &refresh_hash, ttl)?;
                users::touch_login(c, user_id)?;
                Ok::<_, diesel::result::Error>(security)
            })
            .map_err(ApiError::from)
        })
        .await?;
    let (access, expires_in) = state.jwt.issue(user_id, family)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token: access,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in,
            failed_logins_since_last: security.failed_since_login,
            last_failed_login_at: security.last_failed_at.filter(|_| security.failed_since_login > 0),
        }))
}

enum RefreshOutcome {
    Issued { user_id: Uuid, family: Uuid, token: String },
    Reused,
}

/// Exchange a refresh token for new tokens. The refresh token rotates: each one works
/// once, and presenting a used one again revokes the whole session, with one
/// exception for flaky networks: within 30 seconds of its use, while the token that
/// replaced it has not been used, a client that never got the answer may retry; the
/// unused replacement is discarded and new tokens are issued. Clients should not run
/// two refreshes at once.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        BadRequest, Unauthorized, BodyErrors
    ),
    security(())
)]
#[post("/auth/refresh")]
pub async fn refresh(state: web::Data<AppState>, body: ValidJson<RefreshRequest>) -> ApiResult<HttpResponse> {
    let hash = secrets::sha256(body.value?.refresh_token.as_bytes());
    let ttl = refresh_ttl(&state);
    let grace = chrono::Duration::from_std(state.config.refresh_reuse_grace).unwrap_or_default();
    let outcome = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = auth_repo::find_refresh_token(c, &hash)?
                    .ok_or_else(|| ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid"))?;
                // A disabled account says so, whatever became of its tokens (disabling
                // revokes them, which would otherwise read as re-use).
                let user = users::find(c, row.user_id)?
                    .filter(|u| u.is_active)
                    .ok_or_else(|| ApiError::unauthorized("account_disabled", "the account is disabled"))?;
                // A rotated token presented again is theft (someone else may hold it:
                // end the session), unless it is the client retrying a refresh whose
                // answer it never got: within the grace period, while the token that
                // replaced it is still unused, that one is discarded and a new one issued.
                let retry = match (row.revoked_at, row.used_at) {
                    (None, None) => false,
                    (None, Some(used)) if used > Utc::now() - grace => {
                        auth_repo::discard_unused_successor(c, row.family_id, used)? == 1
                    }
                    _ => false,
                };
                if (row.used_at.is_some() || row.revoked_at.is_some()) && !retry {
                    auth_repo::revoke_family(c, row.family_id)?;
                    notify_auth_changed(c)?;
                    return Ok(RefreshOutcome::Reused);
                }
                if row.expires_at <= Utc::now() {
                    return Err(ApiError::unauthorized(
                        "refresh_token_expired",
                        "the refresh token has expired",
                    ));
                }
                // (On a retry this moves `used_at` to the new successor's creation.)
                auth_repo::mark_used(c, row.id)?;
                let (token, new_hash) = new_refresh_token();
                auth_repo::insert_refresh_token(c, user.id, row.family_id, &new_hash, ttl)?;
                Ok(RefreshOutcome::Issued {
                    user_id: user.id,
                    family: row.family_id,
                    token,
                })
            })
        })
        .await?;
    match outcome {
        RefreshOutcome::Reused => {
            state.auth_cache.invalidate_all();
            Err(ApiError::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked",
            ))
        }
        RefreshOutcome::Issued { user_id, family, token } => {
            let (access, expires_in) = state.jwt.issue(user_id, family)?;
            Ok(HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(TokenResponse {
                    access_token: access,
                    refresh_token: token,
                    token_type: "Bearer".into(),
                    expires_in,
                    failed_logins_since_last: 0,
                    last_failed_login_at: None,
                }))
        }
    }
}

/// Log out: revokes the session of the access token (its refresh tokens stop working
/// and so does the access token).
#[utoipa::path(
    tag = "auth",
    responses((status = 204, description = "Logged out"), BadRequest, Unauthorized),
    security(("bearer_auth" = []))
)]
#[post("/auth/logout")]
pub async fn logout(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let family = auth
        .session_id
        .ok_or_else(|| ApiError::bad_request("not_a_session", "API keys have no session to log out of"))?;
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                auth_repo::revoke_family(c, family)?;
                notify_auth_changed(c)
            })
            .map_err(ApiError::from)
        })
        .await?;
    state.auth_cache.invalidate_all();
    Ok(HttpResponse::NoContent().finish())
}
