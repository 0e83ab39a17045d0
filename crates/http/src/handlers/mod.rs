//! Request handlers, one module per resource, plus helpers they share.

pub mod accounts;
pub mod activities;
pub mod admin_api_keys;
pub mod admin_roles;
pub mod admin_teams;
pub mod admin_users;
pub mod approvals;
pub mod auth;
pub mod capture;
pub mod channels;
pub mod contacts;
pub mod contracts;
pub mod directory;
pub mod events;
pub mod fields;
pub mod health;
pub mod jobs;
pub mod leads;
pub mod me;
pub mod notifications;
pub mod opportunities;
pub mod pipelines;
pub mod products;
pub mod quotes;
pub mod reports;
pub mod rules;
pub mod settings;
pub mod webhooks;

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use base64::Engine as _;
use crm_domain::access::Action;
use diesel::{Connection, PgConnection};
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};

macro_rules! problem_response {
    ($($name:ident => $status:literal, $desc:literal;)+) => {$(
        #[doc = $desc]
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
                let resp = ResponseBuilder::new()
                    .description($desc)
                    .content("application/problem+json", content)
                    .build();
                BTreeMap::from([($status.to_string(), RefOr::T(resp))])
            }
        }
    )+};
}

problem_response! {
    BadRequest => "400", "Malformed request: invalid JSON, query parameter, path parameter, sort, cursor or header (`code` says which).";
    Unauthorized => "401", "Missing, invalid or expired credentials (`unauthenticated`, `invalid_token`, `token_expired`, `session_revoked`, `account_disabled`, `invalid_api_key`).";
    Forbidden => "403", "The caller lacks the permission for this action (`forbidden`).";
    NotFound => "404", "No such record, or it is outside the caller's data scope (`not_found`).";
    Conflict => "409", "Conflict with existing data: `duplicate` (with `existing`), `conflict`, `in_use`, `builtin_role`.";
    PreconditionFailed => "412", "`If-Match` names an older version (`stale_version`); reload and retry.";
    PayloadTooLarge => "413", "The body is larger than the configured limit (`payload_too_large`).";
    UnsupportedMediaType => "415", "The body is not JSON (`unsupported_media_type`).";
    Unprocessable => "422", "Validation failed (`validation_failed` with `errors[]`), a business rule is unmet, or the Idempotency-Key was reused for another request (`idempotency_key_reused`).";
    PreconditionRequired => "428", "`If-Match` is required for this change (`precondition_required`).";
    TooManyRequests => "429", "Too many failed attempts (`too_many_attempts`); see `Retry-After`.";
    ReportBusy => "429", "Other reports are running (`report_busy`); retry after `Retry-After` seconds.";
    ExportBusy => "429", "Other exports are running (`export_busy`); retry after `Retry-After` seconds.";
    ServiceUnavailable => "503", "Not ready (database unreachable or migrations pending).";
}

/// Responses that go together, listed once: `$name` documents each of its parts.
macro_rules! response_bundle {
    ($($(#[doc = $doc:literal])* $name:ident = $($part:ident),+;)+) => {$(
        $(#[doc = $doc])*
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let mut all = BTreeMap::new();
                $( all.extend(<$part as utoipa::IntoResponses>::responses()); )+
                all
            }
        }
    )+};
}

response_bundle! {
    /// Any request on one record: bad input, credentials, permission, not found.
    ReadErrors = BadRequest, Unauthorized, Forbidden, NotFound;
    /// A request with a JSON body: too large, not JSON, invalid.
    BodyErrors = PayloadTooLarge, UnsupportedMediaType, Unprocessable;
    /// A change guarded by `If-Match`: stale or missing.
    VersionErrors = PreconditionFailed, PreconditionRequired;
}

/// JSON response with an `ETag` from the record's version.
pub fn with_etag<T: Serialize>(body: &T, version: i32) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("ETag", format!("\"{version}\"")))
        .json(body)
}

/// A `before` paging id from the query: at least 1 (400 `invalid_query` otherwise).
pub fn before_id(v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        Some(b) if b < 1 => Err(ApiError::bad_request("invalid_query", "`before` must be at least 1")),
        v => Ok(v),
    }
}

/// 409 `invalid_transition` for a status machine's refusal, naming the current status.
pub fn transition_error(e: crm_domain::status::InvalidTransition) -> ApiError {
    ApiError::conflict("invalid_transition", e.to_string()).with_extra("current_status", serde_json::json!(e.status))
}

/// Runs one operation of `crm_app` for the caller, in its own transaction.
pub async fn run_op<T, F>(state: &crate::state::AppState, auth: &Auth, op: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> ApiResult<T> + Send + 'static,
{
    let ctx = auth.ctx();
    state.db.run(move |c| c.transaction(|c| op(c, &ctx))).await
}

/// The `id` and `version` of a record's representation.
fn id_and_version(v: &serde_json::Value) -> (String, i32) {
    let id = v
        .get("id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let version = v.get("version").and_then(serde_json::Value::as_i64).unwrap_or_default();
    (id, i32::try_from(version).unwrap_or_default())
}

/// Runs an operation that changes one record of `object` and answers 200 with the
/// record as the caller may read it, its version as the `ETag`.
pub async fn changed_record<D, F>(
    state: &crate::state::AppState,
    auth: &Auth,
    object: &'static str,
    op: F,
) -> ApiResult<HttpResponse>
where
    D: Serialize + Send + 'static,
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> ApiResult<D> + Send + 'static,
{
    let cache = state.fields.clone();
    let (dto, defs) = run_op(state, auth, move |c, ctx| Ok((op(c, ctx)?, cache.get(c, object)?))).await?;
    let (_, version) = id_and_version(&crate::idempotency::to_value(&dto)?);
    Ok(crate::custom::Shaper::new(&auth.principal, object, defs).respond(&dto, version))
}

/// Runs an operation that creates one record of `object` (retry-safe with an
/// `Idempotency-Key`) and answers 201 with it as the caller may read it, `Location`
/// `/api/v1/<path>/<id>`.
pub async fn created_record<D, F>(
    state: &crate::state::AppState,
    auth: &Auth,
    (key, req, raw): (crate::extract::IdempotencyKey, &actix_web::HttpRequest, &[u8]),
    (object, path): (&'static str, &'static str),
    op: F,
) -> ApiResult<HttpResponse>
where
    D: Serialize,
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> ApiResult<D> + Send + 'static,
{
    let ctx = auth.ctx();
    let cache = state.fields.clone();
    crate::idempotency::post(state, auth, key, req, raw, crate::idempotency::keep, move |c| {
        let dto = op(c, &ctx)?;
        let (id, _) = id_and_version(&crate::idempotency::to_value(&dto)?);
        let body = crate::custom::Shaper::new(&ctx.principal, object, cache.get(c, object)?).one(&dto);
        crate::idempotency::Outcome::created(&body, format!("/api/v1/{path}/{id}"))
    })
    .await
}

/// `GET /<object>/{id}`: one live record in the caller's read scope (404 otherwise),
/// as the caller may read it, its version as the `ETag`. `dto` builds the answer.
pub async fn get_record<R, D, F>(
    state: &crate::state::AppState,
    auth: &Auth,
    noun: &'static str,
    id: Uuid,
    dto: F,
) -> ApiResult<HttpResponse>
where
    R: crm_db::repo::soft_delete::SoftDelete,
    D: Serialize + Send + 'static,
    F: FnOnce(&mut PgConnection, R) -> ApiResult<D> + Send + 'static,
{
    let scope = auth.filter(R::TABLE, Action::Read)?;
    let cache = state.fields.clone();
    let (d, defs) = state
        .db
        .run(move |c| {
            let live = crm_db::repo::accounts::Liveness::Live;
            let row = R::find(c, &scope, id, live, false)?.ok_or_else(|| ApiError::not_found(noun))?;
            Ok::<_, ApiError>((dto(c, row)?, cache.get(c, R::TABLE)?))
        })
        .await?;
    let (_, version) = id_and_version(&crate::idempotency::to_value(&d)?);
    Ok(crate::custom::Shaper::new(&auth.principal, R::TABLE, defs).respond(&d, version))
}

/// No extra condition on deleting or restoring.
pub fn always<R>(_: &mut PgConnection, _: &R) -> crm_app::AppResult<()> {
    Ok(())
}

/// `DELETE /<object>/{id}`: moves the record to the recycle bin (the operation
/// `crm_app::recycle::delete`) in the caller's delete scope; 204.
pub async fn delete_record<R: crm_db::repo::soft_delete::SoftDelete>(
    state: &crate::state::AppState,
    auth: &Auth,
    noun: &'static str,
    id: Uuid,
    if_match: crate::extract::OptionalIfMatch,
    guard: fn(&mut PgConnection, &R) -> crm_app::AppResult<()>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(R::TABLE, Action::Delete)?;
    let ctx = auth.ctx();
    let expected = match if_match.0 {
        Some(crate::extract::IfMatch::Version(v)) => Some(v),
        _ => None,
    };
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                crm_app::recycle::delete::<R>(c, &ctx, &scope, id, expected, noun, guard)?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /<object>/{id}/restore`: brings a deleted record back (the operation
/// `crm_app::recycle::restore`), idempotently; `shape` answers with it as the caller
/// may read it.
#[allow(clippy::too_many_arguments)]
pub async fn restore_record<R, F>(
    state: &crate::state::AppState,
    auth: &Auth,
    key: crate::extract::IdempotencyKey,
    req: &actix_web::HttpRequest,
    noun: &'static str,
    id: Uuid,
    guard: fn(&mut PgConnection, &R) -> crm_app::AppResult<()>,
    shape: F,
) -> ApiResult<HttpResponse>
where
    R: crm_db::repo::soft_delete::SoftDelete,
    F: FnOnce(&mut PgConnection, &Auth, R) -> ApiResult<serde_json::Value> + Send + 'static,
{
    let scope = auth.filter(R::TABLE, Action::Delete)?;
    let ctx = auth.ctx();
    let writer = auth.clone();
    crate::idempotency::post(state, auth, key, req, b"", crate::idempotency::keep, move |c| {
        let row = crm_app::recycle::restore::<R>(c, &ctx, &scope, id, noun, guard)?;
        crate::idempotency::Outcome::ok(&shape(c, &writer, row)?)
    })
    .await
}

/// Opaque cursor for id-ordered lists (audit history).
pub fn encode_id_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("h:{id}"))
}

pub fn decode_id_cursor(raw: &str) -> ApiResult<i64> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("h:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is malformed"))
}
