//! Health, readiness, metrics, request ids, docs and the OpenAPI document.

use actix_web::http::Method;
use crm_test_support::app::request;
use crm_test_support::app::{start, start_with};

#[actix_web::test]
async fn health_ready_and_metrics() {
    let app = start_with(|c| c.metrics_token = Some("metrics-token-for-tests".into())).await;
    let r = app.send(request(Method::GET, "/healthz", None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    let r = app.send(request(Method::GET, "/readyz", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ready");

    let token = app.token(app.org.admin);
    assert_eq!(app.get("/api/v1/accounts", &token).await.status, 200);
    let r = app
        .send(request(Method::GET, "/metrics", Some("metrics-token-for-tests")))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text
            .contains(r#"http_requests_total{method="GET",route="/api/v1/accounts",status="200"} 1"#),
        "{}",
        r.text
    );
    assert!(r.text.contains("http_request_duration_seconds_bucket"));
    assert!(r.text.contains("db_pool_connections{state=\"idle\"}"));
    // Background work, from Postgres: queue depth and each subscriber's lag.
    assert!(r.text.contains("# TYPE crm_job_queue_depth gauge"), "{}", r.text);
    assert!(r
        .text
        .contains(r#"crm_dispatcher_pending_commits{subscriber="notifications"}"#));
    assert!(r
        .text
        .contains(r#"crm_dispatcher_lag_seconds{subscriber="notifications"}"#));
    // The rule engine's backlog: its subscriber's lag and its time triggers.
    assert!(r.text.contains(r#"crm_dispatcher_pending_commits{subscriber="rules"}"#));
    assert!(r.text.contains(r#"crm_rule_timers{state="due"} 0"#), "{}", r.text);
}

#[actix_web::test]
async fn readiness_fails_when_migrations_are_pending() {
    let app = start().await;
    // Pretend the last migration has not run.
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)",
    )
    .execute(&mut app.db.conn())
    .unwrap();
    let r = app.send(request(Method::GET, "/readyz", None)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.code(), "not_ready");
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
}

#[actix_web::test]
async fn request_id_is_echoed_or_generated() {
    let app = start().await;
    let r = app
        .send(request(Method::GET, "/healthz", None).insert_header(("X-Request-Id", "abc-123")))
        .await;
    assert_eq!(r.header("x-request-id").as_deref(), Some("abc-123"));
    let r = app
        .send(request(Method::GET, "/healthz", None).insert_header(("X-Request-Id", "bad id with spaces")))
        .await;
    let generated = r.header("x-request-id").unwrap();
    assert_ne!(generated, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
}

#[actix_web::test]
async fn unknown_routes_are_problem_json() {
    let app = start().await;
    let r = app.send(request(Method::GET, "/api/v1/nope", None)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
}

#[actix_web::test]
async fn docs_and_spec_are_served() {
    let app = start().await;
    let r = app.send(request(Method::GET, "/api/v1/openapi.json", None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, serde_json::to_value(crm_http::openapi::spec()).unwrap());
    assert_eq!(r.body["openapi"], "3.1.0");
    let r = app.send(request(Method::GET, "/docs/", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.to_lowercase().contains("swagger"),
        "{}",
        &r.text[..r.text.len().min(200)]
    );
    let r = app.send(request(Method::GET, "/docs", None)).await;
    assert_eq!(r.status, 308);
}

/// The committed spec must equal what the code produces. Regenerate with
/// `UPDATE_OPENAPI=1 cargo test -p crm-api-tests committed_openapi` (or `crm openapi`).
#[test]
fn committed_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let generated = crm_http::openapi::spec_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date; run `UPDATE_OPENAPI=1 cargo test -p crm-api-tests committed_openapi`"
    );
}

/// Every operation documents its error responses and every protected one its security.
#[test]
fn every_operation_documents_errors_and_security() {
    let spec = serde_json::to_value(crm_http::openapi::spec()).unwrap();
    let public = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/capture/{form_key}",
    ];
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path} has no success response"
            );
            if public.contains(&path.as_str()) {
                continue;
            }
            assert!(responses.contains_key("401"), "{method} {path} does not document 401");
            // Security is declared once for the document; an operation overrides it
            // only to be public (`[]`) or to name another scheme.
            let security = op.get("security").unwrap_or(&spec["security"]);
            assert!(
                security.as_array().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no security"
            );
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{method} {path} does not document 404");
            }
        }
    }
}

/// Walks the spec: every protected operation refuses a caller without credentials
/// (401) and every admin operation refuses a sales rep (403), with problem+json.
#[actix_web::test]
async fn every_protected_operation_needs_credentials_and_admin_needs_admin() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let spec = serde_json::to_value(crm_http::openapi::spec()).unwrap();
    let public = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/capture/{form_key}",
    ];
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if public.contains(&path.as_str()) {
            continue;
        }
        // Jobs and webhook deliveries are numbered; every other record has a UUID.
        let id = if path.starts_with("/api/v1/admin/jobs/") {
            "1".to_owned()
        } else {
            uuid::Uuid::now_v7().to_string()
        };
        let concrete = path
            .replace("{id}", &id)
            .replace("{series}", "contract")
            .replace("{delivery_id}", "1")
            .replace("{run_id}", "1")
            .replace("{version}", "1");
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = request(m.clone(), &concrete, None);
            if matches!(method.as_str(), "post" | "patch" | "put") {
                req = req.set_json(serde_json::json!({}));
            }
            let r = app.send(req).await;
            assert_eq!(r.status, 401, "{method} {path} without credentials: {}", r.text);
            assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
            if path.starts_with("/api/v1/admin/") {
                let mut req = request(m, &concrete, Some(&rep)).insert_header(("If-Match", "\"1\""));
                if matches!(method.as_str(), "post" | "patch" | "put") {
                    req = req.set_json(serde_json::json!({}));
                }
                let r = app.send(req).await;
                assert!(
                    r.status == 403 || (r.status == 422 && method != "get" && method != "delete"),
                    "{method} {path} as a rep: {} {}",
                    r.status,
                    r.text
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations checked");
}

/// The demo seed is idempotent, and its deals have a consistent stage history.
#[actix_web::test]
async fn demo_seed_is_idempotent_and_consistent() {
    let app = start().await;
    let mut conn = app.db.conn();
    let hash = |p: &str| crm_domain::secrets::hash_password(p).unwrap();
    let first = crm_demo::seed(&mut conn, &hash).unwrap();
    assert!(first.seeded);
    assert_eq!((first.accounts, first.contacts), (2000, 5000));
    assert!(!crm_demo::seed(&mut conn, &hash).unwrap().seeded);
    let p = crm_demo::pipeline::seed(&mut conn, 300).unwrap();
    assert_eq!(p.opportunities, 300);
    assert!(p.leads >= 500);
    assert_eq!(crm_demo::pipeline::seed(&mut conn, 300).unwrap().opportunities, 0);
    let q = crm_demo::q2c::seed(&mut conn).unwrap();
    assert!(q.quotes > 0 && q.contracts > 0 && q.payments > 0, "{q:?}");
    assert_eq!(crm_demo::q2c::seed(&mut conn).unwrap().quotes, 0);
    // Quote to cash is consistent with the deals: every won deal has an accepted quote
    // whose net is the deal amount and a signed contract for the quote total; payments
    // never exceed what the plan asks; numbers are unique.
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM opportunities o WHERE o.status = 'won' AND o.amount > 0 AND NOT EXISTS \
             (SELECT 1 FROM quotes q JOIN contracts k ON k.quote_id = q.id WHERE q.opportunity_id = o.id \
              AND q.status = 'accepted' AND q.net_amount = o.amount AND k.amount = q.total \
              AND k.status IN ('signed', 'active', 'completed'))"
        ),
        0
    );
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM quotes q WHERE q.total <> (SELECT sum(l.total) FROM quote_lines l WHERE l.quote_id = q.id)"
        ),
        0
    );
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM installments i WHERE i.amount < \
             (SELECT coalesce(sum(a.amount), 0) FROM payment_allocations a WHERE a.installment_id = i.id)"
        ),
        0
    );
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM contracts k WHERE k.amount <> (SELECT sum(i.amount) FROM installments i WHERE i.contract_id = k.id)"
        ),
        0
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM quotes WHERE status = 'pending_approval'"),
        app.db
            .count("SELECT count(*) FROM approval_instances WHERE status = 'pending'")
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM users WHERE email LIKE '%@demo.local'"),
        21
    );
    assert_eq!(app.db.count("SELECT count(DISTINCT status) FROM leads"), 6);
    // Every deal has exactly one open visit, in its current stage, entered when it entered.
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM opportunities o JOIN stage_history h ON h.opportunity_id = o.id AND h.left_at IS NULL \
             WHERE h.to_stage_id = o.stage_id AND h.entered_at = o.stage_entered_at"
        ),
        300
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM stage_history WHERE left_at < entered_at"),
        0
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM opportunities WHERE status = 'lost' AND lost_reason IS NULL"),
        0
    );
    let login = app.login("rep1@demo.local", "demo1234").await;
    assert_eq!(login.status, 200);
    let token = login.body["access_token"].as_str().unwrap();
    let mine = app.get("/api/v1/accounts?limit=200", token).await;
    let rep1 = app.get("/api/v1/me", token).await.body["id"].clone();
    assert!(!mine.ids().is_empty());
    assert!(mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["owner_id"] == rep1));
}

/// A method the document does not list on a known path is 405 with `Allow`; an unknown
/// path stays 404. Literal routes win over `{id}` (`PATCH /accounts/export`).
#[actix_web::test]
async fn unlisted_methods_are_405_with_allow() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app.send(request(Method::PUT, "/api/v1/accounts", Some(&rep))).await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.code(), "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD, POST"));
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
    let r = app
        .send(request(Method::PATCH, "/api/v1/accounts/export", Some(&rep)).set_json(serde_json::json!({})))
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
    let id = uuid::Uuid::now_v7();
    let r = app
        .send(request(Method::PUT, &format!("/api/v1/accounts/{id}"), Some(&rep)))
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("DELETE, GET, HEAD, PATCH"));
    assert_eq!(
        app.send(request(Method::GET, "/api/v1/nowhere", Some(&rep)))
            .await
            .status,
        404
    );
}

/// Every `$ref` in the document points at a component that exists.
#[test]
fn every_reference_resolves() {
    fn walk(v: &serde_json::Value, spec: &serde_json::Value, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    if spec.pointer(r.trim_start_matches('#')).is_none() {
                        bad.push(r.to_owned());
                    }
                }
                m.values().for_each(|x| walk(x, spec, bad));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, spec, bad)),
            _ => {}
        }
    }
    let spec = crm_http::openapi::spec();
    let mut bad = Vec::new();
    walk(&spec, &spec, &mut bad);
    bad.sort();
    bad.dedup();
    assert!(bad.is_empty(), "unresolved references: {bad:?}");
}

/// The document states what the server accepts: enum values as sent on the wire,
/// header shapes, limits, and no outside validator on the docs page.
#[actix_web::test]
async fn the_document_describes_the_wire() {
    let spec = crm_http::openapi::spec();
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["DataScope"]["enum"],
        serde_json::json!(["own", "team", "team_and_below", "all"])
    );
    assert_eq!(
        schemas["TaskStatus"]["enum"],
        serde_json::json!(["open", "done", "cancelled"])
    );
    let op = &spec["paths"]["/api/v1/accounts/{id}"]["patch"];
    let if_match = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "If-Match")
        .unwrap();
    assert_eq!(if_match["schema"]["pattern"], crm_http::openapi::IF_MATCH_PATTERN);
    let list = &spec["paths"]["/api/v1/accounts"]["get"];
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 200);
    assert_eq!(schemas["CreateAccount"]["properties"]["name"]["maxLength"], 200);
    assert!(spec["paths"]["/api/v1/auth/login"]["post"]["security"] == serde_json::json!([]));
    assert!(list.get("security").is_none(), "the default security is declared once");
    let problem = &schemas["Problem"]["properties"];
    for member in [
        "unmet",
        "stage_id",
        "planned",
        "contract_amount",
        "current_status",
        "remaining",
    ] {
        assert!(problem.get(member).is_some(), "Problem documents `{member}`");
    }
    // Swagger UI sends the spec to no outside validator.
    let app = start().await;
    let r = app
        .send(request(Method::GET, "/docs/swagger-initializer.js", None))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("\"validatorUrl\": \"none\""), "{}", r.text);
}

/// Problem extensions never replace RFC 9457's members: an invalid transition keeps
/// the integer `status` and names the record's status `current_status`.
#[actix_web::test]
async fn problem_status_stays_the_http_status() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let (deal_id, _) = crate::q2c::deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            serde_json::json!({"opportunity_id": deal_id, "amount": "10.00"}),
        )
        .await;
    let kid = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/contracts/{kid}/activate"),
            &rep,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["status"], 409);
    assert_eq!(r.body["current_status"], "draft");
}

/// Every problem code a handler module creates is documented (`x-problem-codes`) on
/// the operations of its tags for that status, so the list cannot fall behind the code.
#[test]
fn problem_codes_in_handlers_are_documented() {
    let spec = crm_http::openapi::spec();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/http/src/handlers");
    fn tags_of(file: &str) -> Vec<String> {
        let t: &[&str] = match file {
            "activities" => &["activities", "tasks"],
            f if f.starts_with("admin_") || f == "settings" => &["admin"],
            "approvals" => &["approvals", "admin"],
            "contracts" => &["contracts", "payments"],
            "directory" => &["organisation"],
            "health" => &["ops"],
            "pipelines" => &["pipelines", "admin"],
            other => return vec![other.to_owned()],
        };
        t.iter().map(|s| (*s).to_owned()).collect()
    }
    let mut missing = Vec::new();
    // A handler module is a file or a directory of part files (`contracts/payments.rs`).
    let mut sources: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for part in std::fs::read_dir(&path).unwrap() {
                let part = part.unwrap().path();
                sources.push((file.clone(), std::fs::read_to_string(&part).unwrap()));
            }
        } else if file != "mod" {
            sources.push((file, std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(sources.len() > 30, "handler sources found: {}", sources.len());
    // The operations handlers call refuse with codes of their own (`AppError`), shown
    // on the operations of the object they belong to.
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/app/src");
    for entry in std::fs::read_dir(&app).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_stem().unwrap().to_string_lossy().into_owned();
        // A module may be a directory of part files (`reports/funnel.rs`).
        let parts: Vec<std::path::PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path).unwrap().map(|p| p.unwrap().path()).collect()
        } else {
            vec![path]
        };
        for part in parts {
            sources.push((format!("app/{file}"), std::fs::read_to_string(&part).unwrap()));
        }
    }
    for (file, src) in sources {
        for (call, status) in [
            ("ApiError::conflict(", "409"),
            ("ApiError::unprocessable(", "422"),
            ("ApiError::bad_request(", "400"),
            ("ApiError::unauthorized(", "401"),
            ("AppError::conflict(", "409"),
            ("AppError::rule(", "422"),
        ] {
            for (at, _) in src.match_indices(call) {
                let rest = src[at + call.len()..].trim_start();
                let Some(code) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                    continue;
                };
                let documented = spec["paths"].as_object().unwrap().values().any(|item| {
                    item.as_object().unwrap().values().any(|op| {
                        // An operation shared by several objects (`app/recycle`, `app/write`)
                        // is documented wherever it answers.
                        let shared = file
                            .strip_prefix("app/")
                            .is_some_and(|f| !spec["tags"].as_array().unwrap().iter().any(|t| t["name"] == f));
                        let tags = tags_of(file.strip_prefix("app/").unwrap_or(&file));
                        let tagged = shared
                            || op["tags"]
                                .as_array()
                                .is_some_and(|t| t.iter().any(|t| tags.iter().any(|x| x == t)));
                        tagged
                            && op["responses"][status]["x-problem-codes"]
                                .as_array()
                                .is_some_and(|c| c.iter().any(|c| c == code))
                    })
                });
                if !documented {
                    missing.push(format!("{file}.rs: {status} {code}"));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "undocumented problem codes: {missing:#?}");
}

/// No handler module reaches into another: they share only what `handlers/mod.rs`
/// defines and the operations of `crm_app`.
#[test]
fn handler_modules_do_not_import_each_other() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/http/src/handlers");
    let mut modules = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        if path.is_dir() {
            for part in std::fs::read_dir(&path).unwrap() {
                files.push((name.clone(), part.unwrap().path()));
            }
        } else {
            files.push((name.clone(), path));
        }
        modules.push(name);
    }
    let mut found = Vec::new();
    for (own, path) in &files {
        let src = std::fs::read_to_string(path).unwrap();
        // Collapse whitespace so a `use super::{a, b}` over several lines is one string.
        let flat: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
        for other in modules.iter().filter(|m| *m != own) {
            for prefix in ["handlers::", "super::"] {
                let direct = format!("{prefix}{other}::");
                let grouped = |s: &str| {
                    s.match_indices(&format!("{prefix}{{")).any(|(at, _)| {
                        let list = &s[at + prefix.len() + 1..];
                        let list = &list[..list.find('}').unwrap_or(list.len())];
                        list.split(',').any(|item| item.trim() == other.as_str())
                    })
                };
                if flat.contains(&direct) || grouped(&flat) {
                    found.push(format!("{} uses {other}", path.display()));
                }
            }
        }
    }
    assert!(files.len() > 30, "{} handler files", files.len());
    assert!(found.is_empty(), "handler modules import each other: {found:#?}");
}

/// Operation ids name one operation each (generated clients and spec linters need it).
#[test]
fn operation_ids_are_unique() {
    let spec = serde_json::to_value(crm_http::openapi::spec()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                    panic!("operationId `{id}` is used by {other} and {method} {path}");
                }
            }
        }
    }
}
