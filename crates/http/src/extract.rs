//! Extractors that answer in problem+json: validated JSON bodies, `If-Match`,
//! `Idempotency-Key`, and the error handlers for actix's query and path extractors.

use std::borrow::Cow;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use crm_domain::FieldError;
use futures_util::future::{ready, LocalBoxFuture, Ready};
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body that parsed (unknown fields rejected) and passed `validator` rules.
/// Keeps the raw bytes for the idempotency fingerprint.
///
/// Only an oversized body is refused while extracting. A wrong content type, bad JSON
/// or a failed rule is kept in `value` and surfaces where the handler takes the value
/// (`body.value?`), after its permission checks: a caller without the permission gets
/// 403, never a 422 that describes what a valid request would look like.
pub struct ValidJson<T> {
    pub value: Result<T, ApiError>,
    pub raw: web::Bytes,
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.body_limit)
            .unwrap_or(1024 * 1024);
        let content_type_ok = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        let declared_too_big = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > limit);
        let payload = web::Payload::from_request(req, payload);
        Box::pin(async move {
            if declared_too_big {
                return Err(too_large(limit));
            }
            let payload = payload
                .await
                .map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
            let raw: web::Bytes = match payload.to_bytes_limited(limit).await {
                Err(_) => return Err(too_large(limit)),
                Ok(Err(e)) => return Err(ApiError::bad_request("unreadable_body", e.to_string())),
                Ok(Ok(b)) => b,
            };
            let is_object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            let value = if content_type_ok && !is_object && !raw.iter().all(u8::is_ascii_whitespace) {
                // Serde would read a struct from an array (`[null, null]`) too.
                parse_json::<serde_json::Value>(&raw).and_then(|_| {
                    Err(ApiError::validation(vec![FieldError::new(
                        "",
                        "invalid_type",
                        "the body must be a JSON object",
                    )]))
                })
            } else if content_type_ok {
                parse_json::<T>(&raw).and_then(|v| {
                    v.validate().map_err(|e| ApiError::validation(field_errors(&e)))?;
                    Ok(v)
                })
            } else {
                Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the body must be JSON (Content-Type: application/json)",
                ))
            };
            Ok(ValidJson { value, raw })
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body exceeds {limit} bytes"),
    )
}

impl<T> ValidJson<T> {
    /// The body's fields as an operation reads them (`crm_app::write::input`), once
    /// the body has passed the request schema.
    pub fn fields(self) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        self.value?;
        parse_json(&self.raw)
    }
}

/// Parses JSON: syntax errors are 400, shape errors (unknown field, wrong type, missing
/// field) are 422 naming the field path.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    // Text can carry a NUL only as the escape `\u0000`; Postgres stores no NUL in text.
    if raw.windows(6).any(|w| w == b"\\u0000") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) {
            let mut found = Vec::new();
            nul_paths(&v, String::new(), &mut found);
            if !found.is_empty() {
                return Err(ApiError::validation(
                    found
                        .into_iter()
                        .map(|f| FieldError::new(f, "invalid_character", "must not contain NUL characters"))
                        .collect(),
                ));
            }
        }
    }
    // JSON Schema counts 82.0 as an integer; so does the server (numbers with no
    // fraction become integers before the typed parse).
    let normalised;
    let raw = if has_integral_float(raw) {
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(mut v) => {
                integral_floats_to_integers(&mut v);
                normalised = serde_json::to_vec(&v).unwrap_or_default();
                normalised.as_slice()
            }
            Err(_) => raw,
        }
    } else {
        raw
    };
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::validation(vec![crm_app::write::shape_error(&path, &inner.to_string())])
            }
            _ => ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Whether the body may hold a number like `82.0` or `1e3` (a cheap byte scan first).
fn has_integral_float(raw: &[u8]) -> bool {
    raw.windows(2)
        .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'.' | b'e' | b'E'))
}

/// Numbers with no fraction (`82.0`, `1e3`) become integers.
fn integral_floats_to_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Paths (`name`, `lines[0].description`, keys too) of strings holding a NUL.
fn nul_paths(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => out.push(path),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                nul_paths(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                if k.contains('\0') {
                    out.push(join(&k.replace('\0', "")));
                }
                nul_paths(x, join(k), out);
            }
        }
        _ => {}
    }
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Flattens `validator` errors into field errors with dotted paths, sorted by field.
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .clone()
                        .unwrap_or_else(|| Cow::Owned(default_message(&e.code, &e.params)));
                    out.push(FieldError::new(path.clone(), e.code.to_string(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(inner, &format!("{path}[{i}]"), out);
                }
            }
        }
    }
}

fn default_message(code: &str, params: &std::collections::HashMap<Cow<'static, str>, serde_json::Value>) -> String {
    match code {
        "length" => match (params.get("min"), params.get("max")) {
            (Some(min), Some(max)) => format!("length must be between {min} and {max}"),
            (Some(min), None) => format!("length must be at least {min}"),
            (None, Some(max)) => format!("length must be at most {max}"),
            _ => "invalid length".into(),
        },
        "range" => match (params.get("min"), params.get("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            _ => "out of range".into(),
        },
        "email" => "not a valid e-mail address".into(),
        "url" => "not a valid URL".into(),
        other => format!("invalid ({other})"),
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"` or `3`); `*` matches any version.
#[derive(Debug, Clone, Copy)]
pub enum IfMatch {
    Any,
    Version(i32),
}

impl IfMatch {
    pub fn check(self, current: i32) -> Result<(), ApiError> {
        match self {
            IfMatch::Any => Ok(()),
            IfMatch::Version(v) if v == current => Ok(()),
            IfMatch::Version(_) => Err(ApiError::stale(current)),
        }
    }

    fn parse(raw: &str) -> Option<IfMatch> {
        let raw = raw.trim();
        if raw == "*" {
            return Some(IfMatch::Any);
        }
        let raw = raw.strip_prefix("W/").unwrap_or(raw);
        raw.trim_matches('"').parse().ok().map(IfMatch::Version)
    }
}

impl IfMatch {
    /// The version an operation expects (`None` for `*`).
    pub fn expected(&self) -> Option<i32> {
        match self {
            IfMatch::Any => None,
            IfMatch::Version(v) => Some(*v),
        }
    }
}

/// Required `If-Match`: 428 when missing, 400 when unreadable.
pub struct RequiredIfMatch(pub IfMatch);

impl FromRequest for RequiredIfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match OptionalIfMatch::read(req) {
            Ok(Some(m)) => Ok(RequiredIfMatch(m)),
            Ok(None) => Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the ETag of the version you are changing",
            )),
            Err(e) => Err(e),
        })
    }
}

/// Optional `If-Match` (e.g. on DELETE).
pub struct OptionalIfMatch(pub Option<IfMatch>);

impl OptionalIfMatch {
    /// The version an operation expects, if one was named.
    pub fn expected(&self) -> Option<i32> {
        self.0.as_ref().and_then(IfMatch::expected)
    }

    fn read(req: &HttpRequest) -> Result<Option<IfMatch>, ApiError> {
        match req.headers().get("if-match") {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(IfMatch::parse)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request("invalid_if_match", "If-Match must be an ETag such as \"3\"")),
        }
    }
}

impl FromRequest for OptionalIfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::read(req).map(OptionalIfMatch))
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.headers().get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => match v.to_str() {
                Ok(s) if (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) => {
                    Ok(IdempotencyKey(Some(s.to_owned())))
                }
                _ => Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                )),
            },
        })
    }
}

/// Client address for throttling: the peer, or the forwarded client behind a proxy.
pub fn client_ip(req: &HttpRequest, trust_proxy: bool) -> String {
    let info = req.connection_info();
    let addr = if trust_proxy {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    addr.map(|a| {
        // Strip a port, keeping IPv6 addresses intact.
        match a.parse::<std::net::SocketAddr>() {
            Ok(sa) => sa.ip().to_string(),
            Err(_) => a.to_owned(),
        }
    })
    .unwrap_or_else(|| "unknown".to_owned())
}

/// Error handler for `web::Query`: 400 naming what was wrong (including allowed fields).
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let msg = match &err {
        actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::bad_request("invalid_query", format!("invalid query string: {msg}")).into()
}

/// Error handler for `web::Path`: 400 for a malformed id or segment.
pub fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    // `PATCH /accounts/export` reached `PATCH /accounts/{id}`: the path is another
    // route's, which does not take this method.
    if let Some(methods) = crate::routes::allowed_methods(req.path()) {
        if !methods.iter().any(|m| m == req.method().as_str()) {
            return crate::routes::method_not_allowed(req.method().as_str(), methods).into();
        }
    }
    let msg = match &err {
        actix_web::error::PathError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::bad_request("invalid_path", format!("invalid path parameter: {msg}")).into()
}

/// Error handler for `web::Json` (used by a few simple bodies).
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => too_large(limit).into(),
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        )
        .into(),
        E::Deserialize(e) if e.is_data() => ApiError::validation(vec![FieldError::new(
            "",
            "invalid_type",
            strip_position(&e.to_string()),
        )])
        .into(),
        other => ApiError::bad_request("malformed_json", other.to_string()).into(),
    }
}

/// Query of a list endpoint: the typed parameters plus any `custom.<key>[_gte|_lte]`
/// filters (checked later against the field definitions).
pub struct ListQuery<T> {
    pub query: T,
    pub custom: Vec<(String, String)>,
    /// Names of the other parameters given (checked against field permissions).
    pub keys: Vec<String>,
}

/// Names of the parameters of a query string.
fn param_names(qs: &str) -> Vec<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(qs)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

impl<T: DeserializeOwned> FromRequest for ListQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let (rest, custom) = crate::custom::split_query(req.query_string())?;
            let query = serde_urlencoded::from_str::<T>(&rest)
                .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query string: {e}")))?;
            let keys = param_names(&rest);
            Ok(ListQuery { query, custom, keys })
        })())
    }
}

/// Query of an export endpoint: the list's parameters, the export options (`header`)
/// and the raw query string (recorded with the export).
pub struct ExportQuery<T> {
    pub list: ListQuery<T>,
    pub options: crate::listing::ExportOptions,
    pub raw: String,
}

impl<T: DeserializeOwned> FromRequest for ExportQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let bad = |e: serde_urlencoded::de::Error| {
                ApiError::bad_request("invalid_query", format!("invalid query string: {e}"))
            };
            let (rest, custom) = crate::custom::split_query(req.query_string())?;
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&rest).map_err(bad)?;
            let (opts, list): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k == "header");
            let enc = |p: &[(String, String)]| serde_urlencoded::to_string(p).unwrap_or_default();
            let options = serde_urlencoded::from_str(&enc(&opts)).map_err(bad)?;
            let query = serde_urlencoded::from_str::<T>(&enc(&list)).map_err(bad)?;
            let keys = list.iter().map(|(k, _)| k.clone()).collect();
            Ok(ExportQuery {
                list: ListQuery { query, custom, keys },
                options,
                raw: req.query_string().to_owned(),
            })
        })())
    }
}
