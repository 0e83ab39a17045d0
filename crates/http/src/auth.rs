//! Authentication: access JWTs, API keys, the principal cache and the `Auth` extractor.
//!
//! The hot path verifies the token signature and reads the caller's roles, permissions
//! and team subtree from an in-process cache, so an authenticated read costs one query.
//! Org changes invalidate the cache (locally at once, other instances via NOTIFY).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::Utc;
use crm_db::repo::audit::Actor;
use crm_db::repo::{api_keys, auth as auth_repo};
use crm_domain::access::{Action, Principal, Scope, ScopeFilter};
use crm_domain::secrets;
use diesel::prelude::*;
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::HttpConfig;
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::AppState;

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: Uuid,
    /// Session (refresh-token family) id; logout revokes it.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Signing and verification keys; the algorithm is pinned to HS256.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(cfg: &HttpConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[cfg.jwt_issuer.as_str()]);
        validation.set_audience(&[cfg.jwt_audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        JwtKeys {
            encoding: EncodingKey::from_secret(&cfg.jwt_secret),
            decoding: DecodingKey::from_secret(&cfg.jwt_secret),
            validation,
            issuer: cfg.jwt_issuer.clone(),
            audience: cfg.jwt_audience.clone(),
            ttl: cfg.access_ttl,
        }
    }

    /// Issues an access token; returns it with its lifetime in seconds.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> Result<(String, i64), ApiError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(900);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + ttl,
            jti: Uuid::now_v7(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("jwt encode: {e}")))?;
        Ok((token, ttl))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::unauthorized("token_expired", "the access token has expired"),
                _ => ApiError::unauthorized("invalid_token", "the access token is not valid"),
            })
    }
}

struct UserEntry {
    loaded_at: Instant,
    generation: u64,
    principal: Arc<Principal>,
    active: bool,
    revoked_sessions: Vec<Uuid>,
}

struct KeyEntry {
    loaded_at: Instant,
    generation: u64,
    key_id: Uuid,
    hash: Vec<u8>,
    principal: Arc<Principal>,
    last_touch: Mutex<Option<Instant>>,
}

/// Cache of principals by user id and by API-key prefix.
pub struct AuthCache {
    users: RwLock<HashMap<Uuid, Arc<UserEntry>>>,
    keys: RwLock<HashMap<String, Arc<KeyEntry>>>,
    generation: AtomicU64,
    ttl: Duration,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        AuthCache {
            users: RwLock::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl,
        }
    }

    /// Drops everything cached (users, roles, teams or keys changed).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.users.write().clear();
        self.keys.write().clear();
    }

    fn fresh(&self, loaded_at: Instant, generation: u64) -> bool {
        generation == self.generation.load(Ordering::SeqCst) && loaded_at.elapsed() < self.ttl
    }
}

/// Tells every instance that org data changed; delivered when the transaction commits.
pub fn notify_auth_changed(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("NOTIFY crm_auth").execute(conn)?;
    Ok(())
}

/// The authenticated caller.
#[derive(Clone)]
pub struct Auth {
    pub principal: Arc<Principal>,
    pub request_id: Option<String>,
    /// Session (refresh-token family) of a JWT; `None` for API keys.
    pub session_id: Option<Uuid>,
    /// The server's clock, for the operation context.
    pub clock: crm_app::Clock,
}

impl std::ops::Deref for Auth {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Auth {
    /// The caller's scope for `resource:action`, or 403.
    pub fn require(&self, resource: &str, action: Action) -> Result<Scope, ApiError> {
        self.principal
            .scope(resource, action)
            .ok_or_else(|| ApiError::forbidden(format!("missing permission {resource}:{action}")))
    }

    /// The SQL scope filter for `resource:action`, or 403.
    pub fn filter(&self, resource: &str, action: Action) -> Result<ScopeFilter, ApiError> {
        Ok(self.principal.filter(self.require(resource, action)?))
    }

    /// The operation context of this caller: who acts (a user or an API key), with what
    /// permissions and scopes, for which request, on the server's clock.
    pub fn ctx(&self) -> crm_app::Ctx {
        crm_app::Ctx::user(self.principal.clone(), self.request_id.clone(), self.clock.clone())
    }

    /// Who is writing, for audit entries and events.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.principal.user_id,
            api_key_id: self.principal.api_key_id,
            rule_id: None,
            request_id: self.request_id.clone(),
        }
    }
}

enum Credential {
    Jwt(String),
    ApiKey(String),
}

fn credential(req: &HttpRequest) -> Option<Credential> {
    if let Some(v) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Credential::ApiKey(v.trim().to_owned()));
    }
    let v = req.headers().get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    Some(if token.starts_with("crm_") {
        Credential::ApiKey(token.to_owned())
    } else {
        Credential::Jwt(token.to_owned())
    })
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let cred = credential(req);
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("app state missing"))?;
            let cred = cred.ok_or_else(|| {
                ApiError::unauthorized(
                    "unauthenticated",
                    "send `Authorization: Bearer <token>` or `X-API-Key: <key>`",
                )
            })?;
            let (principal, session_id) = match cred {
                Credential::Jwt(token) => {
                    let (p, sid) = authenticate_jwt(&state, &token).await?;
                    (p, Some(sid))
                }
                Credential::ApiKey(key) => (authenticate_key(&state, &key).await?, None),
            };
            Ok(Auth {
                principal,
                request_id,
                session_id,
                clock: state.clock.clone(),
            })
        })
    }
}

/// Re-reads from the database within this window the sessions revoked by logout.
const REVOCATION_WINDOW_HOURS: i64 = 24;

async fn authenticate_jwt(state: &AppState, token: &str) -> Result<(Arc<Principal>, Uuid), ApiError> {
    let claims = state.jwt.verify(token)?;
    let cache = &state.auth_cache;
    let cached = cache.users.read().get(&claims.sub).cloned();
    let entry = match cached.filter(|e| cache.fresh(e.loaded_at, e.generation)) {
        Some(e) => e,
        None => {
            let generation = cache.generation.load(Ordering::SeqCst);
            let user_id = claims.sub;
            let loaded = state
                .db
                .run(move |c| {
                    auth_repo::load_principal(c, user_id, None, chrono::Duration::hours(REVOCATION_WINDOW_HOURS))
                        .map_err(ApiError::from)
                })
                .await?
                .ok_or_else(|| ApiError::unauthorized("invalid_token", "the access token is not valid"))?;
            let entry = Arc::new(UserEntry {
                loaded_at: Instant::now(),
                generation,
                principal: Arc::new(loaded.principal),
                active: loaded.is_active,
                revoked_sessions: loaded.revoked_sessions,
            });
            cache.users.write().insert(user_id, entry.clone());
            entry
        }
    };
    if !entry.active {
        return Err(ApiError::unauthorized("account_disabled", "the account is disabled"));
    }
    if entry.revoked_sessions.contains(&claims.sid) {
        return Err(ApiError::unauthorized(
            "session_revoked",
            "the session has been signed out",
        ));
    }
    Ok((entry.principal.clone(), claims.sid))
}

async fn authenticate_key(state: &AppState, key: &str) -> Result<Arc<Principal>, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_api_key", "the API key is not valid");
    let prefix = secrets::api_key_prefix(key).ok_or_else(invalid)?.to_owned();
    let cache = &state.auth_cache;
    let cached = cache.keys.read().get(&prefix).cloned();
    let entry = match cached.filter(|e| cache.fresh(e.loaded_at, e.generation)) {
        Some(e) => e,
        None => {
            let generation = cache.generation.load(Ordering::SeqCst);
            let p = prefix.clone();
            let loaded = state
                .db
                .run(move |c| {
                    let Some(k) = api_keys::find_usable_by_prefix(c, &p)? else {
                        return Ok::<_, ApiError>(None);
                    };
                    let principal = auth_repo::load_principal(
                        c,
                        k.user_id,
                        Some(&[k.role_id]),
                        chrono::Duration::hours(REVOCATION_WINDOW_HOURS),
                    )?;
                    Ok(principal.map(|p| (k, p)))
                })
                .await?
                .ok_or_else(invalid)?;
            let (row, loaded) = loaded;
            let mut principal = loaded.principal;
            principal.api_key_id = Some(row.id);
            let entry = Arc::new(KeyEntry {
                loaded_at: Instant::now(),
                generation,
                key_id: row.id,
                hash: row.key_hash,
                principal: Arc::new(principal),
                last_touch: Mutex::new(None),
            });
            cache.keys.write().insert(prefix, entry.clone());
            entry
        }
    };
    if !secrets::constant_time_eq(&secrets::sha256(key.as_bytes()), &entry.hash) {
        return Err(invalid());
    }
    // Record `last_used_at` at most once a minute per key and process.
    let touch = {
        let mut last = entry.last_touch.lock();
        let due = last.is_none_or(|t| t.elapsed() > Duration::from_secs(60));
        if due {
            *last = Some(Instant::now());
        }
        due
    };
    if touch {
        let db = state.db.clone();
        let id = entry.key_id;
        actix_web::rt::spawn(async move {
            if let Err(e) = db.run(move |c| api_keys::touch(c, id).map_err(ApiError::from)).await {
                tracing::warn!(error = %e, "could not record API key use");
            }
        });
    }
    Ok(entry.principal.clone())
}
