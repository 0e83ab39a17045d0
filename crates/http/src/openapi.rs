//! The OpenAPI 3.1 document. Paths are collected from the registered services
//! (utoipa-actix-web), so a route and its documentation cannot drift apart.

use serde_json::{json, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldErrorDto, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CRM API",
        description = "Opportunity management (商机管理) backend, lead to cash. JSON over HTTP; \
            errors are RFC 9457 problem+json with a stable `code`. Lists use keyset pagination \
            (`limit`, `cursor` -> `next_cursor`). Reads return `ETag`; updates need `If-Match`. \
            POST accepts `Idempotency-Key`. Records outside the caller's data scope answer 404.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SecurityAddon),
    components(schemas(Problem, FieldErrorDto, crate::dto::fields::FieldObject)),
    tags(
        (name = "auth", description = "Login, token refresh, logout"),
        (name = "me", description = "The caller"),
        (name = "accounts", description = "Customers (accounts)"),
        (name = "contacts", description = "People at accounts"),
        (name = "leads", description = "Leads: capture, assignment, response tracking, conversion"),
        (name = "pipelines", description = "Pipelines, stages and the board"),
        (name = "opportunities", description = "Deals: stage moves with entry criteria, checklist, outputs, history"),
        (name = "activities", description = "Follow-up records"),
        (name = "tasks", description = "To-dos"),
        (name = "fields", description = "Form engine: custom fields, field permissions, metadata, layouts"),
        (name = "products", description = "Product catalogue and price books"),
        (name = "quotes", description = "Quotes: versions, server-computed totals, approval, sending, acceptance, 《报价单》 document"),
        (name = "approvals", description = "Approval process engine: definitions, inbox, decisions, delegation, escalation"),
        (name = "contracts", description = "Contracts: legal review, signing, amendments, payment plans"),
        (name = "payments", description = "Invoices, payments collected (回款), receivables and ageing"),
        (name = "organisation", description = "Directory of users and teams"),
        (name = "admin", description = "Users, teams, roles, permissions, API keys, settings"),
        (name = "ops", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Access token from /api/v1/auth/login (an API key also works as a bearer token)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "Integration API key created under /api/v1/admin/api-keys",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator's CRM_METRICS_TOKEN (Prometheus scrape)"))
                    .build(),
            ),
        );
    }
}

/// `If-Match` as the server reads it: `*`, or an ETag such as `"3"`, `W/"3"` or `3`.
pub const IF_MATCH_PATTERN: &str = r#"^\s*(\*|(W/)?"?[0-9]{1,9}"?)\s*$"#;
/// `Idempotency-Key` as the server reads it: 1 to 255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// The document exactly as served at `/api/v1/openapi.json`: what the routes declare,
/// finished by [`finish`].
pub fn spec() -> Value {
    let raw = serde_json::to_value(crate::routes::openapi()).unwrap_or(Value::Null);
    finish(raw)
}

/// Pretty JSON of the document, as committed in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let mut s = serde_json::to_string_pretty(&spec()).unwrap_or_default();
    s.push('\n');
    s
}

/// What every operation shares, written once instead of on each of them: the default
/// security (public routes say `security: []`), the shape of the `If-Match` and
/// `Idempotency-Key` headers, the response headers the server sends everywhere, and
/// free-form JSON objects marked as such (`additionalProperties`), so generated clients
/// can read and write them.
pub fn finish(mut doc: Value) -> Value {
    let default_security = json!([{"bearer_auth": []}, {"api_key": []}]);
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        let headers = components.entry("headers").or_insert_with(|| json!({}));
        if let Some(h) = headers.as_object_mut() {
            h.insert(
                "X-Request-Id".into(),
                json!({"description": "The request's id (the caller's `X-Request-Id` when sane, else a new one); logged with the request.",
                       "schema": {"type": "string", "maxLength": 128}}),
            );
            h.insert(
                "ETag".into(),
                json!({"description": "Version of the record returned: send it as `If-Match` to change it.",
                       "schema": {"type": "string", "pattern": "^\"[0-9]+\"$"}}),
            );
            h.insert(
                "Idempotent-Replayed".into(),
                json!({"description": "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.",
                       "schema": {"type": "string", "enum": ["true"]}}),
            );
            h.insert(
                "WWW-Authenticate".into(),
                json!({"description": "The authentication scheme expected.", "schema": {"type": "string"}}),
            );
            h.insert(
                "Retry-After".into(),
                json!({"description": "Seconds to wait before retrying.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}),
            );
        }
    }
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("security".into(), default_security.clone());
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, op) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    continue;
                }
                finish_operation(op, &default_security);
            }
        }
    }
    mark_free_form(&mut doc);
    doc
}

fn finish_operation(op: &mut Value, default_security: &Value) {
    let Some(op) = op.as_object_mut() else { return };
    match op.get("security") {
        None => {
            op.insert("security".into(), json!([]));
        }
        Some(s) if s == default_security => {
            op.remove("security");
        }
        Some(_) => {}
    }
    let mut idempotent = false;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            let schema = match name.as_str() {
                "If-Match" => Some(json!({"type": "string", "pattern": IF_MATCH_PATTERN, "maxLength": 16})),
                "Idempotency-Key" => {
                    idempotent = true;
                    Some(
                        json!({"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 255}),
                    )
                }
                _ => None,
            };
            if let (Some(schema), Some(p)) = (schema, p.as_object_mut()) {
                p.insert("schema".into(), schema);
            }
        }
    }
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        for (status, resp) in responses.iter_mut() {
            let Some(resp) = resp.as_object_mut() else { continue };
            let headers = resp.entry("headers").or_insert_with(|| json!({}));
            let Some(headers) = headers.as_object_mut() else {
                continue;
            };
            let mut add = |name: &str| {
                headers
                    .entry(name.to_owned())
                    .or_insert_with(|| json!({"$ref": format!("#/components/headers/{name}")}));
            };
            add("X-Request-Id");
            match status.as_str() {
                "401" => add("WWW-Authenticate"),
                "429" => add("Retry-After"),
                s if s.starts_with('2') && idempotent => add("Idempotent-Replayed"),
                _ => {}
            }
            // Headers the routes declared inline as plain strings get the shared shape.
            for (name, h) in headers.iter_mut() {
                if matches!(name.as_str(), "ETag" | "Retry-After") && h.get("$ref").is_none() {
                    *h = json!({"$ref": format!("#/components/headers/{name}")});
                }
            }
        }
    }
}

/// Object schemas with neither properties nor `additionalProperties` are free-form
/// maps: say so, or generators type them as empty objects.
fn mark_free_form(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_object = match map.get("type") {
                Some(Value::String(t)) => t == "object",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
                _ => false,
            };
            if is_object
                && !map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !map.contains_key("allOf")
                && !map.contains_key("oneOf")
                && !map.contains_key("anyOf")
            {
                map.insert("additionalProperties".into(), json!({}));
            }
            for (_, x) in map.iter_mut() {
                mark_free_form(x);
            }
        }
        Value::Array(items) => {
            for x in items {
                mark_free_form(x);
            }
        }
        _ => {}
    }
}
