//! The route table and the actix `App` shared by the server and the tests.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse};
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{scope, AppExt};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::extract::{json_error, path_error, query_error};
use crate::handlers::{
    accounts, activities, admin_api_keys, admin_roles, admin_teams, admin_users, approvals, auth, capture, channels,
    contacts, contracts, directory, events, fields, health, jobs, leads, me, notifications, opportunities, pipelines,
    products, quotes, reports, rules, settings, webhooks,
};
use crate::middleware::observe;
use crate::openapi::ApiDoc;
use crate::state::AppState;

fn ops(cfg: &mut ServiceConfig<'_>) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics);
}

fn api_v1(cfg: &mut ServiceConfig<'_>) {
    cfg.service(auth::login)
        .service(auth::refresh)
        .service(auth::logout)
        .service(me::me)
        .service(notifications::my_notifications)
        .service(notifications::read_all_notifications)
        .service(notifications::read_notification)
        .service(notifications::get_notification_settings)
        .service(notifications::put_notification_settings)
        .service(accounts::list_accounts)
        .service(accounts::create_account)
        .service(accounts::export_accounts)
        .service(accounts::get_account)
        .service(accounts::update_account)
        .service(accounts::delete_account)
        .service(accounts::restore_account)
        .service(accounts::account_history)
        .service(accounts::account_overview)
        .service(accounts::tier_history)
        .service(contacts::list_contacts)
        .service(contacts::create_contact)
        .service(contacts::export_contacts)
        .service(contacts::get_contact)
        .service(contacts::update_contact)
        .service(contacts::delete_contact)
        .service(contacts::restore_contact)
        .service(contacts::contact_history)
        .service(leads::list_leads)
        .service(leads::create_lead)
        .service(leads::assign_leads)
        .service(leads::export_leads)
        .service(leads::get_lead)
        .service(leads::update_lead)
        .service(leads::delete_lead)
        .service(leads::restore_lead)
        .service(leads::lead_history)
        .service(leads::convert_lead)
        .service(pipelines::list_pipelines)
        .service(pipelines::get_pipeline)
        .service(pipelines::board)
        .service(pipelines::create_pipeline)
        .service(pipelines::update_pipeline)
        .service(pipelines::create_stage)
        .service(pipelines::update_stage)
        .service(pipelines::reorder_stages)
        .service(opportunities::list_opportunities)
        .service(opportunities::create_opportunity)
        .service(opportunities::export_opportunities)
        .service(opportunities::get_opportunity)
        .service(opportunities::update_opportunity)
        .service(opportunities::delete_opportunity)
        .service(opportunities::restore_opportunity)
        .service(opportunities::move_stage)
        .service(opportunities::opportunity_history)
        .service(opportunities::stage_history)
        .service(opportunities::timeline)
        .service(opportunities::get_checklist)
        .service(opportunities::set_checklist_task)
        .service(opportunities::list_outputs)
        .service(opportunities::create_output)
        .service(opportunities::delete_output)
        .service(activities::list_activities)
        .service(activities::create_activity)
        .service(activities::get_activity)
        .service(activities::update_activity)
        .service(activities::delete_activity)
        .service(activities::list_tasks)
        .service(activities::my_tasks)
        .service(activities::create_task)
        .service(activities::get_task)
        .service(activities::update_task)
        .service(activities::delete_task)
        .service(events::event_catalogue)
        .service(fields::meta)
        .service(fields::get_layout)
        .service(fields::list_fields)
        .service(fields::create_field)
        .service(fields::get_field)
        .service(fields::update_field)
        .service(fields::archive_field)
        .service(fields::restore_field)
        .service(fields::flagged_values)
        .service(fields::get_field_permissions)
        .service(fields::put_field_permissions)
        .service(fields::put_layout)
        .service(directory::list_users)
        .service(directory::list_teams)
        .service(admin_users::list_users)
        .service(admin_users::create_user)
        .service(admin_users::get_user)
        .service(admin_users::update_user)
        .service(admin_teams::create_team)
        .service(admin_teams::update_team)
        .service(admin_teams::delete_team)
        .service(admin_roles::list_roles)
        .service(admin_roles::permission_catalog)
        .service(admin_roles::create_role)
        .service(admin_roles::get_role)
        .service(admin_roles::update_role)
        .service(admin_roles::delete_role)
        .service(admin_api_keys::list_api_keys)
        .service(admin_api_keys::create_api_key)
        .service(admin_api_keys::revoke_api_key)
        .service(products::list_products)
        .service(products::create_product)
        .service(products::get_product)
        .service(products::update_product)
        .service(products::list_price_books)
        .service(products::create_price_book)
        .service(products::get_price_book)
        .service(products::update_price_book)
        .service(quotes::list_quotes)
        .service(quotes::create_quote)
        .service(quotes::get_quote)
        .service(quotes::update_quote)
        .service(quotes::delete_quote)
        .service(quotes::submit_quote)
        .service(quotes::send_quote)
        .service(quotes::accept_quote)
        .service(quotes::decline_quote)
        .service(quotes::revise_quote)
        .service(quotes::quote_status_history)
        .service(quotes::quote_document)
        .service(approvals::list_definitions)
        .service(approvals::create_definition)
        .service(approvals::get_definition)
        .service(approvals::update_definition)
        .service(approvals::sweep_now)
        .service(approvals::my_approvals)
        .service(approvals::list_approvals)
        .service(approvals::get_approval)
        .service(approvals::approve_approval)
        .service(approvals::reject_approval)
        .service(approvals::delegate_approval)
        .service(approvals::withdraw_approval)
        .service(contracts::list_contracts)
        .service(contracts::create_contract)
        .service(contracts::get_contract)
        .service(contracts::update_contract)
        .service(contracts::submit_contract)
        .service(contracts::sign_contract)
        .service(contracts::activate_contract)
        .service(contracts::complete_contract)
        .service(contracts::terminate_contract)
        .service(contracts::contract_status_history)
        .service(contracts::list_amendments)
        .service(contracts::create_amendment)
        .service(contracts::get_payment_plan)
        .service(contracts::set_payment_plan)
        .service(contracts::list_invoices)
        .service(contracts::create_invoice)
        .service(contracts::void_invoice)
        .service(contracts::list_payments)
        .service(contracts::get_payment)
        .service(contracts::create_payment)
        .service(contracts::allocate_payment)
        .service(contracts::receivables)
        .service(settings::get_numbering)
        .service(settings::put_numbering)
        .service(settings::get_company)
        .service(settings::put_company)
        .service(settings::get_payments)
        .service(settings::put_payments)
        .service(settings::get_calendar)
        .service(settings::put_calendar)
        .service(settings::get_lead_sla)
        .service(settings::put_lead_sla)
        .service(settings::get_account_tiering)
        .service(settings::put_account_tiering)
        .service(settings::recompute_account_tiers)
        .service(jobs::jobs_overview)
        .service(jobs::retry_job)
        .service(jobs::cancel_job)
        .service(rules::list_rules)
        .service(rules::create_rule)
        .service(rules::test_rule)
        .service(rules::backtest_rule)
        .service(rules::install_default_rules)
        .service(rules::get_rule)
        .service(rules::update_rule)
        .service(rules::enable_rule)
        .service(rules::disable_rule)
        .service(rules::archive_rule)
        .service(rules::list_rule_versions)
        .service(rules::restore_rule_version)
        .service(rules::list_rule_runs)
        .service(rules::get_rule_run)
        .service(rules::retry_rule_run)
        .service(webhooks::list_webhooks)
        .service(webhooks::create_webhook)
        .service(webhooks::get_webhook)
        .service(webhooks::update_webhook)
        .service(webhooks::delete_webhook)
        .service(webhooks::rotate_webhook_secret)
        .service(webhooks::list_deliveries)
        .service(webhooks::get_delivery)
        .service(webhooks::redeliver)
        .service(webhooks::test_webhook)
        .service(capture::list_capture_forms)
        .service(capture::create_capture_form)
        .service(capture::get_capture_form)
        .service(capture::replace_capture_form)
        .service(capture::delete_capture_form)
        .service(capture::list_capture_submissions)
        .service(capture::capture)
        .service(channels::list_channels)
        .service(channels::create_channel)
        .service(channels::get_channel)
        .service(channels::disable_channel)
        .service(channels::enable_channel)
        .service(channels::delete_channel)
        .service(channels::test_channel)
        .service(channels::get_my_channel)
        .service(channels::put_my_channel)
        .service(rules::get_assignment_pause)
        .service(rules::put_assignment_pause)
        .service(reports::results)
        .service(reports::process)
        .service(reports::funnel)
        .service(reports::pipeline)
        .service(reports::receivables)
        .service(reports::leaderboard)
        .service(reports::adoption)
        .service(reports::target_attainment)
        .service(reports::list_targets)
        .service(reports::create_target)
        .service(reports::get_target)
        .service(reports::update_target)
        .service(reports::delete_target)
        .service(reports::list_saved)
        .service(reports::create_saved)
        .service(reports::get_saved)
        .service(reports::update_saved)
        .service(reports::delete_saved)
        .service(reports::run_saved)
        .service(reports::list_dashboards)
        .service(reports::create_dashboard)
        .service(reports::get_dashboard)
        .service(reports::update_dashboard)
        .service(reports::delete_dashboard)
        .service(reports::run_dashboard)
        .service(reports::list_subscriptions)
        .service(reports::create_subscription)
        .service(reports::get_subscription)
        .service(reports::update_subscription)
        .service(reports::delete_subscription)
        .service(reports::preview_subscription)
        .service(reports::list_deliveries)
        .service(reports::query)
        .service(reports::forecast_snapshots)
        .service(reports::export_query)
        .service(reports::query_chart)
        .service(reports::export_report)
        .service(reports::report_chart);
}

/// The OpenAPI document collected from the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(ops)
        .service(scope::scope("/api/v1").configure(api_v1))
        .split_for_parts()
        .1
}

/// Serves the OpenAPI document (built once).
async fn openapi_json() -> HttpResponse {
    static SPEC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = SPEC.get_or_init(|| crate::openapi::spec().to_string());
    HttpResponse::Ok().content_type("application/json").body(body.as_str())
}

/// Path templates of the document, split into segments, with their methods.
fn route_table() -> &'static [(Vec<String>, Vec<String>)] {
    static TABLE: std::sync::OnceLock<Vec<(Vec<String>, Vec<String>)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let spec = crate::openapi::spec();
        let mut out = Vec::new();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let segments = path.split('/').map(str::to_owned).collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                out.push((segments, methods));
            }
        }
        out
    })
}

/// The methods the document lists for a concrete path, if it knows the path.
pub fn allowed_methods(path: &str) -> Option<Vec<String>> {
    let given: Vec<&str> = path.split('/').collect();
    // Like the router: literal segments win over parameters (`/accounts/export` is not
    // `/accounts/{id}`), so the best match is the one with the most literal segments.
    let mut best: Option<(usize, Vec<String>)> = None;
    for (segments, methods) in route_table() {
        let matches = segments.len() == given.len()
            && segments
                .iter()
                .zip(&given)
                .all(|(s, g)| s == g || (s.starts_with('{') && s.ends_with('}') && !g.is_empty()));
        if !matches {
            continue;
        }
        let literal = segments.iter().filter(|s| !s.starts_with('{')).count();
        match &mut best {
            Some((n, m)) if *n == literal => m.extend(methods.iter().cloned()),
            Some((n, _)) if *n > literal => {}
            _ => best = Some((literal, methods.clone())),
        }
    }
    best.map(|(_, mut m)| {
        m.sort();
        m.dedup();
        m
    })
}

/// No route matched: 405 with `Allow` for a known path and another method, else 404.
async fn no_route(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    match allowed_methods(req.path()) {
        Some(methods) => Err(method_not_allowed(req.method().as_str(), methods)),
        None => Err(ApiError::not_found("route")),
    }
}

/// 405 `method_not_allowed` with `Allow`.
pub fn method_not_allowed(method: &str, methods: Vec<String>) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; allowed: {}", methods.join(", ")),
    )
    .with_allow(methods.join(", "))
}

/// The separate metrics listener (`CRM_METRICS_BIND`): `/metrics` only, no token.
pub fn metrics_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(health::OpenMetrics)
        .service(health::metrics)
        .default_service(web::to(no_route))
        .wrap(from_fn(observe))
}

/// The application: middleware, extractor error handlers, routes, docs.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = state.config.body_limit;
    let (app, _) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(web::Data::new(state))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::JsonConfig::default().limit(body_limit).error_handler(json_error))
        .configure(ops)
        .service(
            scope::scope("/api/v1")
                .configure(api_v1)
                .map(|s| s.route("/openapi.json", web::get().to(openapi_json))),
        )
        .split_for_parts();
    // No outside validator: the page would otherwise send the spec's address to
    // validator.swagger.io from every browser that opens it under a real host name.
    let docs = SwaggerUi::new("/docs/{_:.*}").config(
        utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"])
            .validator_url("none")
            .try_it_out_enabled(true),
    );
    app.service(docs)
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .default_service(web::to(no_route))
        .wrap(from_fn(observe))
}
