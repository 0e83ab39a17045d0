//! Runs a POST in one transaction, honouring `Idempotency-Key`: a retry with the same
//! key (same caller, within 24 h) replays the first response and has no second effect;
//! the same key with a different request is a 422.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use crm_db::repo::idempotency::{self, Claim};
use crm_domain::secrets::sha256;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::IdempotencyKey;
use crate::state::AppState;

/// What a write produced, before it becomes a response.
pub struct Outcome {
    pub status: StatusCode,
    pub body: Value,
    pub location: Option<String>,
}

impl Outcome {
    pub fn created<T: Serialize>(body: &T, location: String) -> ApiResult<Outcome> {
        Ok(Outcome {
            status: StatusCode::CREATED,
            body: to_value(body)?,
            location: Some(location),
        })
    }

    pub fn ok<T: Serialize>(body: &T) -> ApiResult<Outcome> {
        Ok(Outcome {
            status: StatusCode::OK,
            body: to_value(body)?,
            location: None,
        })
    }

    pub fn no_content() -> Outcome {
        Outcome {
            status: StatusCode::NO_CONTENT,
            body: Value::Null,
            location: None,
        }
    }
}

pub fn to_value<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(format!("serialise response: {e}")))
}

/// Runs `write` in a transaction with idempotency-key handling; `stored` may redact
/// what is kept for replays (e.g. a secret shown once).
pub async fn post<F>(
    state: &AppState,
    auth: &Auth,
    key: IdempotencyKey,
    req: &HttpRequest,
    raw_body: &[u8],
    stored: fn(&Value) -> Value,
    write: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection) -> ApiResult<Outcome> + Send + 'static,
{
    let mut fp = Vec::with_capacity(raw_body.len() + 128);
    fp.extend_from_slice(req.method().as_str().as_bytes());
    fp.push(b' ');
    fp.extend_from_slice(req.path().as_bytes());
    fp.push(b'?');
    fp.extend_from_slice(req.query_string().as_bytes());
    fp.push(b'\n');
    fp.extend_from_slice(raw_body);
    let fingerprint = sha256(&fp);
    let owner = auth.caller_key();
    let key = key.0;

    let (outcome, replayed) = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                if let Some(k) = &key {
                    match idempotency::claim(c, &owner, k, &fingerprint)? {
                        Claim::Fresh => {}
                        Claim::Replay { status, body, location } => {
                            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                            return Ok((Outcome { status, body, location }, true));
                        }
                        Claim::Mismatch => {
                            return Err(ApiError::unprocessable(
                                "idempotency_key_reused",
                                "this Idempotency-Key was used for a different request",
                            ))
                        }
                    }
                }
                let outcome = write(c)?;
                if let Some(k) = &key {
                    idempotency::complete(
                        c,
                        &owner,
                        k,
                        outcome.status.as_u16(),
                        &stored(&outcome.body),
                        outcome.location.as_deref(),
                    )?;
                }
                Ok((outcome, false))
            })
        })
        .await?;
    let mut resp = respond(outcome);
    if replayed {
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

/// Keeps the body as is for replays.
pub fn keep(v: &Value) -> Value {
    v.clone()
}

/// Turns an outcome into a response with `Location` and an `ETag` from `version`.
pub fn respond(outcome: Outcome) -> HttpResponse {
    let mut resp = HttpResponse::build(outcome.status);
    if let Some(loc) = &outcome.location {
        resp.insert_header(("Location", loc.as_str()));
    }
    if let Some(v) = outcome.body.get("version").and_then(Value::as_i64) {
        resp.insert_header(("ETag", format!("\"{v}\"")));
    }
    if outcome.status == StatusCode::NO_CONTENT {
        resp.finish()
    } else {
        resp.json(outcome.body)
    }
}
