//! The OpenAPI 3.1 document. Paths are collected from the registered services
//! (utoipa-actix-web), so a route and its documentation cannot drift apart.

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
    components(schemas(Problem, FieldErrorDto)),
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

/// The document exactly as served at `/api/v1/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    crate::routes::openapi()
}

/// Pretty JSON of the document, as committed in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let mut s = spec().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
