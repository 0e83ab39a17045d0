//! Request id, one log line per request, and metrics.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use crate::error::{ApiError, InternalCause};
use crate::state::AppState;

/// The request's id: the caller's `X-Request-Id` when sane, else a new UUIDv7.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn sane_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A NUL in the path or query (`%00`): Postgres stores no NUL in text, so such input
/// is refused up front instead of failing deep inside a query.
fn has_nul(req: &ServiceRequest) -> bool {
    let raw = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

/// `from_fn` middleware: assigns the request id, answers `HEAD` like `GET` (without the
/// body), refuses NUL in the URL, sets the security headers, logs the outcome and
/// records metrics.
pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().as_str().to_owned();
    // The HTTP/1 codec knows the request was HEAD and sends no body; routing sees GET.
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let authenticated = req.headers().contains_key(header::AUTHORIZATION) || req.headers().contains_key("x-api-key");

    let mut res = if has_nul(&req) {
        let err = ApiError::bad_request(
            "invalid_character",
            "the path and query must not contain NUL characters",
        );
        req.error_response(err).map_into_right_body()
    } else {
        // Handler errors arrive here as responses; an `Err` only comes from inner
        // middleware and is passed on unchanged.
        next.call(req).await?.map_into_left_body()
    };

    let elapsed = start.elapsed();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    if let Some(state) = &state {
        state.metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    }
    if let Some(cause) = res.response().extensions().get::<InternalCause>() {
        tracing::error!(request_id = %request_id, method = %method, route = %route, cause = %cause.0, "request failed");
    }
    tracing::info!(
        target: "http",
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
    );
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // What an authenticated caller reads is theirs alone: no shared or browser cache.
    if authenticated && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
