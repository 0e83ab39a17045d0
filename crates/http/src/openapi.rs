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
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
        contact(name = "CRM API team")
    ),
    modifiers(&SecurityAddon),
    components(schemas(Problem, FieldErrorDto, crate::dto::fields::FieldObject, crate::dto::settings::NumberingSeries)),
    tags(
        (name = "auth", description = "Login, token refresh, logout"),
        (name = "me", description = "The caller"),
        (name = "notifications", description = "The caller's in-app notifications and which kinds they get"),
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
        (name = "jobs", description = "Background work (admin): queues, dead jobs, event subscribers' lag"),
        (name = "webhooks", description = "Outgoing webhooks (admin): signed deliveries of events, delivery log, redelivery, test events"),
        (name = "capture", description = "Web-to-lead: the public capture endpoint for website forms, and capture forms (admin)"),
        (name = "channels", description = "DingTalk and WeCom group robots (admin), and the caller's channel for personal notifications"),
        (name = "rules", description = "Automation rules (admin): triggers, conditions, actions; versions, run log and retry; test on a record; backtest"),
        (name = "reports", description = "Fixed reports: results, process, funnel from stage history, open pipeline and forecast; in the caller's data scope, per currency, beside the previous period"),
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
/// security (public routes say `security(())`, written out as `security: []`), the shape of the `If-Match` and
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
        // Relative: the document describes the server that serves it.
        obj.insert(
            "servers".into(),
            json!([{"url": "/", "description": "The server this document is served from"}]),
        );
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
    reference_page_items(&mut doc);
    relax_restrictable(&mut doc);
    describe_inputs(&mut doc);
    add_links(&mut doc);
    bound_criteria(&mut doc);
    document_problem_codes(&mut doc);
    mark_free_form(&mut doc);
    doc
}

/// Entry criteria nest (`any_of` / `all_of`) at most three levels deep, as the server
/// checks: the document spells the levels out as `Criterion`, `CriterionNested` and
/// `CriterionLeaf` rather than one recursive schema (which several generators drop),
/// each a `oneOf` of named variants with `kind` as the discriminator.
fn bound_criteria(doc: &mut Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(Value::Array(variants)) = schemas.get("Criterion").and_then(|c| c.get("oneOf")).cloned() else {
        return;
    };
    let kind_of = |v: &Value| {
        v.pointer("/properties/kind/enum/0")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let pascal = |k: &str| {
        k.split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>()
    };
    schemas.insert(
        "Expression".into(),
        json!({"type": "object", "additionalProperties": {},
               "description": "A condition over a record's fields: `{\"all\"|\"any\": [...]}`, `{\"not\": ...}` or \
                `{\"field\", \"op\", \"value\"}` with op eq, ne, gt, gte, lt, lte, in, not_in, present, blank or contains."}),
    );
    let mut leaves: Vec<(String, String)> = Vec::new();
    let mut groups: Vec<(String, Value)> = Vec::new();
    for v in variants {
        let Some(kind) = kind_of(&v) else { continue };
        if kind == "any_of" || kind == "all_of" {
            groups.push((kind, v));
            continue;
        }
        let name = format!("Criterion{}", pascal(&kind));
        let mut v = v;
        if v.pointer("/properties/expr").is_some() {
            v["properties"]["expr"] = json!({"$ref": "#/components/schemas/Expression"});
        }
        schemas.insert(name.clone(), v);
        leaves.push((kind, name));
    }
    let union = |members: &[(String, String)], description: &str| {
        let refs: Vec<Value> = members
            .iter()
            .map(|(_, n)| json!({"$ref": format!("#/components/schemas/{n}")}))
            .collect();
        let mapping: serde_json::Map<String, Value> = members
            .iter()
            .map(|(k, n)| (k.clone(), json!(format!("#/components/schemas/{n}"))))
            .collect();
        json!({"description": description, "oneOf": refs,
               "discriminator": {"propertyName": "kind", "mapping": mapping}})
    };
    schemas.insert(
        "CriterionLeaf".into(),
        union(
            &leaves,
            "A criterion inside a nested `any_of` / `all_of` (no further nesting).",
        ),
    );
    // Two group levels: `Criterion` groups hold `CriterionNested`, whose groups hold leaves.
    for (level, items, prefix, description) in [
        (
            "CriterionNested",
            "CriterionLeaf",
            "CriterionNested",
            "A criterion inside `any_of` / `all_of`.",
        ),
        (
            "Criterion",
            "CriterionNested",
            "Criterion",
            "An entry criterion. `unmet` lists in 422 answers use the same objects.",
        ),
    ] {
        let mut members = leaves.clone();
        for (kind, v) in &groups {
            let name = format!("{prefix}{}", pascal(kind));
            let mut g = v.clone();
            g["properties"]["criteria"]["items"] = json!({"$ref": format!("#/components/schemas/{items}")});
            g["properties"]["criteria"]["minItems"] = json!(1);
            schemas.insert(name.clone(), g);
            members.push((kind.clone(), name));
        }
        schemas.insert(level.into(), union(&members, description));
    }
}

/// Problem `code`s by status that any operation with such a response may carry.
const GENERIC_CODES: &[(&str, &[&str])] = &[
    (
        "401",
        &[
            "unauthenticated",
            "invalid_token",
            "token_expired",
            "session_revoked",
            "account_disabled",
            "invalid_api_key",
        ],
    ),
    ("403", &["forbidden"]),
    ("404", &["not_found"]),
    ("409", &["conflict", "concurrent_update"]),
    ("412", &["stale_version"]),
    ("413", &["payload_too_large"]),
    ("415", &["unsupported_media_type"]),
    (
        "422",
        &["validation_failed", "invalid_reference", "constraint_violation"],
    ),
    ("428", &["precondition_required"]),
    ("503", &["not_ready"]),
];

/// Problem `code`s particular to the operations of one tag, by status.
const TAG_CODES: &[(&str, &str, &[&str])] = &[
    ("reports", "429", &["report_busy"]),
    ("reports", "409", &["duplicate", "owner_inactive"]),
    ("auth", "400", &["not_a_session"]),
    (
        "auth",
        "401",
        &[
            "invalid_credentials",
            "invalid_refresh_token",
            "refresh_token_expired",
            "refresh_token_reused",
        ],
    ),
    ("auth", "429", &["too_many_attempts"]),
    ("accounts", "409", &["duplicate"]),
    ("contacts", "409", &["duplicate"]),
    ("contacts", "422", &["account_deleted"]),
    ("leads", "409", &["duplicate", "lead_converted"]),
    ("leads", "422", &["lead_not_convertible"]),
    ("opportunities", "409", &["same_stage"]),
    (
        "opportunities",
        "422",
        &[
            "stage_criteria_unmet",
            "account_deleted",
            "no_default_pipeline",
            "no_open_stage",
        ],
    ),
    ("pipelines", "409", &["default_pipeline", "duplicate", "stage_in_use"]),
    ("fields", "409", &["definition_conflicts_with_data", "duplicate"]),
    ("products", "409", &["duplicate"]),
    (
        "quotes",
        "409",
        &[
            "invalid_transition",
            "locked",
            "immutable",
            "already_accepted",
            "not_draft",
        ],
    ),
    (
        "quotes",
        "422",
        &["no_lines", "deal_deleted", "quote_expired", "no_approver"],
    ),
    (
        "approvals",
        "409",
        &["already_decided", "already_approver", "approval_pending", "not_pending"],
    ),
    ("approvals", "422", &["no_approver"]),
    (
        "contracts",
        "409",
        &[
            "invalid_transition",
            "locked",
            "immutable",
            "duplicate",
            "plan_in_use",
            "approval_pending",
        ],
    ),
    (
        "contracts",
        "422",
        &["plan_total_mismatch", "quote_not_accepted", "no_approver"],
    ),
    ("payments", "409", &["invalid_transition", "contract_not_signed"]),
    (
        "payments",
        "422",
        &[
            "exceeds_contract",
            "exceeds_installment",
            "exceeds_due",
            "exceeds_payment",
            "unknown_installment",
            "not_positive",
        ],
    ),
    (
        "admin",
        "409",
        &[
            "duplicate",
            "in_use",
            "builtin_role",
            "default_pipeline",
            "stage_in_use",
        ],
    ),
    ("ops", "401", &["metrics_token_required"]),
    ("tasks", "409", &["invalid_transition"]),
    ("jobs", "409", &["job_running"]),
    ("webhooks", "409", &["webhook_disabled"]),
    ("capture", "400", &["invalid_body"]),
    ("capture", "403", &["origin_not_allowed"]),
    ("capture", "429", &["rate_limited"]),
    ("admin", "422", &["invalid_calendar", "invalid_sla"]),
    ("admin", "409", &["tiering_disabled"]),
    ("rules", "409", &["rule_archived", "run_not_failed"]),
    (
        "rules",
        "422",
        &[
            "rule_actor_inactive",
            "action_not_available",
            "no_assignee",
            "invalid_pause",
        ],
    ),
];

/// Each error response names the problem codes it can carry: `x-problem-codes` and
/// the description list the generic codes of its status, the codes of its tag, and
/// those its parameters bring (`invalid_query`, `invalid_if_match`, ...), so a client
/// can switch on `code`.
fn document_problem_codes(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            let tags: Vec<String> = op
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let params: Vec<(String, String)> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap_or("").to_owned(),
                                p["in"].as_str().unwrap_or("").to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let has = |name: &str| params.iter().any(|(n, _)| n == name);
            let has_in = |place: &str| params.iter().any(|(_, i)| i == place);
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, resp) in responses.iter_mut() {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let mut codes: Vec<&str> = GENERIC_CODES
                    .iter()
                    .filter(|(s, _)| s == status)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                for (tag, s, c) in TAG_CODES {
                    if s == status && tags.iter().any(|t| t == tag) {
                        codes.extend(c.iter().copied());
                    }
                }
                match status.as_str() {
                    "400" => {
                        codes.push("invalid_character");
                        if has_body {
                            codes.push("malformed_json");
                            codes.push("unreadable_body");
                        }
                        if has_in("query") {
                            codes.push("invalid_query");
                        }
                        if has_in("path") {
                            codes.push("invalid_path");
                        }
                        if has("cursor") {
                            codes.extend(["invalid_cursor", "invalid_limit"]);
                        }
                        if has("sort") {
                            codes.extend(["invalid_sort", "filter_not_allowed"]);
                        }
                        if has("If-Match") {
                            codes.push("invalid_if_match");
                        }
                        if has("Idempotency-Key") {
                            codes.push("invalid_idempotency_key");
                        }
                    }
                    "422" if has("Idempotency-Key") => codes.push("idempotency_key_reused"),
                    "422" if has("header") => codes.push("export_too_large"),
                    "429" if has("header") => codes.push("export_busy"),
                    _ => {}
                }
                let mut seen = std::collections::BTreeSet::new();
                codes.retain(|c| seen.insert(*c));
                if codes.is_empty() {
                    continue;
                }
                if let Some(r) = resp.as_object_mut() {
                    let listed = codes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
                    let desc = r.get("description").and_then(Value::as_str).unwrap_or("").to_owned();
                    r.insert("description".into(), json!(format!("{desc} Codes: {listed}.")));
                    r.insert("x-problem-codes".into(), json!(codes));
                }
            }
        }
    }
}

/// OpenAPI links from each create (`POST /x` answering 201 with the record) to the
/// operations on the created record (`/x/{id}`, `/x/{id}/...`): the id from the body,
/// and for changes the `If-Match` from the `ETag`. Clients and stateful testers can
/// chain them.
fn add_links(doc: &mut Value) {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return;
    };
    let mut plan: Vec<(String, Value)> = Vec::new();
    for (path, item) in paths {
        let creates = item
            .pointer("/post/responses/201/content/application~1json/schema")
            .is_some();
        if !creates {
            continue;
        }
        let prefix = format!("{path}/{{id}}");
        let mut links = serde_json::Map::new();
        for (other, ops) in paths {
            if !(other == &prefix || other.starts_with(&format!("{prefix}/"))) {
                continue;
            }
            for (method, op) in ops.as_object().into_iter().flatten() {
                let Some(op_id) = op.get("operationId").and_then(Value::as_str) else {
                    continue;
                };
                let mut params = serde_json::Map::new();
                params.insert("path.id".into(), json!("$response.body#/id"));
                let takes_if_match = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match"));
                if takes_if_match {
                    params.insert("header.If-Match".into(), json!("$response.header.ETag"));
                }
                links.insert(
                    op_id.to_owned(),
                    json!({"operationId": op_id, "parameters": params,
                           "description": format!("{} the created record", method.to_ascii_uppercase())}),
                );
            }
        }
        if !links.is_empty() {
            plan.push((path.clone(), Value::Object(links)));
        }
    }
    for (path, links) in plan {
        if let Some(resp) = doc.pointer_mut(&format!(
            "/paths/{}/post/responses/201",
            path.replace('~', "~0").replace('/', "~1")
        )) {
            resp["links"] = links;
        }
    }
}

/// Text without NUL characters (Postgres stores none).
pub const TEXT_PATTERN: &str = "^[^\\u0000]*$";
/// Text that is not blank (and has no NUL).
pub const NON_BLANK_PATTERN: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";
/// Money as input: a decimal string, at most two decimals, not negative, below 10^16.
pub const MONEY_PATTERN: &str = "^[0-9]{1,16}(\\.[0-9]{1,2})?$";
/// Money that must be positive (payments, invoices, installments, allocations).
pub const POSITIVE_MONEY_PATTERN: &str = "^([1-9][0-9]{0,15}(\\.[0-9]{1,2})?|0\\.([1-9][0-9]?|0[1-9]))$";
/// A percentage 0..=100 with at most two decimals.
pub const PERCENT_PATTERN: &str = "^(100(\\.00?)?|[0-9]{1,2}(\\.[0-9]{1,2})?)$";
/// A positive quantity below 10^12 with at most four decimals.
pub const QUANTITY_PATTERN: &str = "^([1-9][0-9]{0,11}(\\.[0-9]{1,4})?|0\\.[0-9]{0,3}[1-9])$";
/// A phone number: digits with + ( ) - . and spaces, 5 to 20 digits; blank means none.
pub const PHONE_PATTERN: &str = "^( *|\\+?[ ().-]*([0-9][ ().-]*){5,20})$";
/// An e-mail address; blank means none.
pub const EMAIL_PATTERN: &str = "^( *|[!-?A-~]{1,64}@[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+)$";
/// A web address (`https://` assumed without a scheme); blank means none.
pub const WEB_PATTERN: &str = "^( *|(https?://)?[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+(:[0-9]{1,5})?([/?#][!-~]*)?)$";

/// Request bodies state what the server accepts: formats of money, percentages,
/// quantities, phones, e-mails, web addresses and currencies (by property), non-blank
/// names, and text without NUL everywhere else.
fn describe_inputs(doc: &mut Value) {
    let mut roots: Vec<String> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for item in paths.values() {
            for op in item.as_object().into_iter().flat_map(|m| m.values()) {
                if let Some(content) = op.pointer("/requestBody/content").and_then(Value::as_object) {
                    for c in content.values() {
                        if let Some(r) = c.pointer("/schema/$ref").and_then(Value::as_str) {
                            roots.push(r.trim_start_matches("#/components/schemas/").to_owned());
                        }
                    }
                }
            }
        }
    }
    // Every schema a request body reaches.
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    while let Some(name) = roots.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = schemas.get(&name) {
            collect_refs(schema, &mut roots);
        }
    }
    let currencies: Vec<Value> = crm_domain::normalize::CURRENCIES.iter().map(|c| json!(c)).collect();
    for name in &seen {
        if let Some(schema) = schemas.get_mut(name) {
            describe_properties(name, schema, &currencies);
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                out.push(r.trim_start_matches("#/components/schemas/").to_owned());
            }
            for x in map.values() {
                collect_refs(x, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn is_string_schema(v: &Value) -> bool {
    match v.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// The pattern a request property has by its schema and name.
fn input_pattern(schema: &str, property: &str) -> Option<&'static str> {
    // The company block printed on quotes is free text, phone included.
    if schema == "CompanyInfo" && property != "name" {
        return None;
    }
    let positive_money = matches!(
        (schema, property),
        (
            "CreatePayment" | "CreateInvoice" | "InstallmentInput" | "Allocation",
            "amount"
        )
    );
    Some(match property {
        _ if positive_money => POSITIVE_MONEY_PATTERN,
        "amount" | "list_price" | "standard_cost" | "unit_price" | "estimated_budget" | "overpayment_tolerance" => {
            MONEY_PATTERN
        }
        "discount_pct" | "header_discount_pct" | "tax_rate" | "prepayment_wins_pct" => PERCENT_PATTERN,
        "quantity" => QUANTITY_PATTERN,
        "phone" | "mobile" => PHONE_PATTERN,
        "email" => EMAIL_PATTERN,
        "website" => WEB_PATTERN,
        _ if NON_BLANK.contains(&(schema, property)) => NON_BLANK_PATTERN,
        _ => return None,
    })
}

/// Request properties the server refuses blank (`Errors::required_text`).
const NON_BLANK: &[(&str, &str)] = &[
    ("CreateAccount", "name"),
    ("UpdateAccount", "name"),
    ("CreateContact", "name"),
    ("UpdateContact", "name"),
    ("CreateLead", "person_name"),
    ("UpdateLead", "person_name"),
    ("CreateOpportunity", "name"),
    ("UpdateOpportunity", "name"),
    ("CreateOutput", "title"),
    ("CreateActivity", "subject"),
    ("UpdateActivity", "subject"),
    ("CreateTask", "title"),
    ("UpdateTask", "title"),
    ("CreateApiKey", "name"),
    ("CreateRole", "name"),
    ("UpdateRole", "name"),
    ("CreateTeam", "name"),
    ("UpdateTeam", "name"),
    ("CreateUser", "name"),
    ("UpdateUser", "name"),
    ("UpdateContract", "title"),
    ("CreateAmendment", "description"),
    ("CreatePipeline", "name"),
    ("UpdatePipeline", "name"),
    ("CreateStage", "name"),
    ("UpdateStage", "name"),
    ("CreateProduct", "name"),
    ("UpdateProduct", "name"),
    ("UpdateProduct", "unit"),
];

fn describe_properties(schema_name: &str, schema: &mut Value, currencies: &[Value]) {
    let Some(map) = schema.as_object_mut() else { return };
    // Request bodies refuse unknown fields (serde `deny_unknown_fields`), nested ones too.
    if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), json!(false));
    }
    for (key, v) in map.iter_mut() {
        match (key.as_str(), v) {
            ("properties", Value::Object(props)) => {
                for (name, prop) in props.iter_mut() {
                    describe_property(schema_name, name, prop, currencies);
                }
            }
            ("oneOf" | "anyOf" | "allOf", Value::Array(items)) => {
                for x in items.iter_mut() {
                    describe_properties(schema_name, x, currencies);
                }
            }
            ("items", x) => describe_properties(schema_name, x, currencies),
            _ => {}
        }
    }
}

fn describe_property(schema: &str, name: &str, prop: &mut Value, currencies: &[Value]) {
    if name == "custom" {
        // Keys of custom fields: which exist is configuration (`GET /meta/{object}`).
        prop["propertyNames"] = json!({"pattern": "^[a-z][a-z0-9_]{0,39}$"});
        return;
    }
    // Arrays of strings: the items.
    if let Some(items) = prop.get_mut("items") {
        if is_string_schema(items)
            && items.get("pattern").is_none()
            && items.get("format").is_none()
            && items.get("enum").is_none()
        {
            items["pattern"] = json!(TEXT_PATTERN);
        }
    }
    if !is_string_schema(prop) || prop.get("enum").is_some() || prop.get("format").is_some() {
        return;
    }
    if name == "currency" {
        prop["enum"] = Value::Array(
            currencies
                .iter()
                .cloned()
                .chain(prop.get("type").filter(|t| t.is_array()).map(|_| Value::Null))
                .collect(),
        );
        if let Some(m) = prop.as_object_mut() {
            m.remove("minLength");
            m.remove("maxLength");
        }
        return;
    }
    if prop.get("pattern").is_none() {
        prop["pattern"] = json!(input_pattern(schema, name).unwrap_or(TEXT_PATTERN));
    }
}

/// `Page<T>` schemas inline their items; point them at the item's component instead,
/// so there is one schema per record type (and generated clients get one type).
fn reference_page_items(doc: &mut Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in names {
        let Some(item) = name.strip_prefix("Page_").or_else(|| name.strip_prefix("SyncPage_")) else {
            continue;
        };
        let component = schemas.get(item).cloned();
        if let (Some(component), Some(page)) = (component, schemas.get_mut(&name)) {
            if let Some(items) = page.pointer_mut("/properties/items/items") {
                if *items == component {
                    *items = json!({"$ref": format!("#/components/schemas/{item}")});
                }
            }
        }
    }
}

/// Records whose fields a role may hide: only the fields no role can lose are
/// required in responses (`meta::protected`); the others are absent for a caller who
/// may not read them.
fn relax_restrictable(doc: &mut Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let objects = [
        ("Account", "accounts"),
        ("Contact", "contacts"),
        ("Lead", "leads"),
        ("Opportunity", "opportunities"),
        ("Product", "products"),
        ("Quote", "quotes"),
    ];
    for (name, schema) in schemas.iter_mut() {
        for (record, object) in objects {
            let target = if name == record {
                Some(&mut *schema)
            } else if *name == format!("Page_{record}") || *name == format!("SyncPage_{record}") {
                schema.pointer_mut("/properties/items/items")
            } else {
                None
            };
            let Some(target) = target else { continue };
            if target.get("$ref").is_some() {
                continue;
            }
            let protected = crate::meta::protected(object);
            if let Some(req) = target.get_mut("required").and_then(Value::as_array_mut) {
                req.retain(|f| f.as_str().is_some_and(|f| protected.contains(&f)));
            }
            if let Some(desc) = target.get_mut("description") {
                if let Some(d) = desc.as_str() {
                    let meta = if matches!(object, "products" | "quotes") {
                        String::new()
                    } else {
                        format!(" `GET /api/v1/meta/{object}` lists the caller's access.")
                    };
                    *desc = json!(format!(
                        "{d}\n\nFields a role may not read are absent (hidden) or masked text.{meta}"
                    ));
                }
            }
        }
    }
}

fn finish_operation(op: &mut Value, default_security: &Value) {
    let Some(op) = op.as_object_mut() else { return };
    // Operations inherit the document's security; a public one says `security(())`
    // (`[{}]`), written out as no security at all.
    match op.get("security") {
        Some(s) if s == &json!([{}]) => {
            op.insert("security".into(), json!([]));
        }
        Some(s) if s == default_security => {
            op.remove("security");
        }
        _ => {}
    }
    let mut idempotent = false;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            if p.get("in").and_then(Value::as_str) == Some("query") {
                if let Some(schema) = p.get_mut("schema") {
                    let free = is_string_schema(schema)
                        && schema.get("format").is_none()
                        && schema.get("enum").is_none()
                        && schema.get("pattern").is_none();
                    if free {
                        let pattern = match name.as_str() {
                            "amount_gte" | "amount_lte" => MONEY_PATTERN,
                            _ => TEXT_PATTERN,
                        };
                        schema["pattern"] = json!(pattern);
                    }
                }
            }
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
        // A reused Idempotency-Key with another body is a 422 wherever a key is taken.
        if idempotent && !responses.contains_key("422") {
            responses.insert(
                "422".into(),
                json!({"description": "The Idempotency-Key was used for a different request (`idempotency_key_reused`).",
                       "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
            );
        }
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
