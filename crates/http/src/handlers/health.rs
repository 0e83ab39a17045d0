//! Liveness, readiness and metrics.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::ServiceUnavailable;
use crate::error::ApiError;
use crate::state::AppState;

/// Health status.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// Liveness: the process is up.
#[utoipa::path(tag = "ops", responses((status = 200, description = "Alive", body = Health)), security(()))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into() })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "Ready", body = Health), ServiceUnavailable),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pending = state
        .db
        .run(|c| crm_db::migrations::pending_count(c).map_err(|e| ApiError::internal(format!("readiness: {e}"))))
        .await;
    let unavailable = |detail: &str| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            detail.to_owned(),
        )
    };
    match pending {
        Ok(0) => Ok(HttpResponse::Ok().json(Health { status: "ready".into() })),
        Ok(n) => Err(unavailable(&format!("{n} database migrations are pending"))),
        Err(_) => Err(unavailable("the database is not reachable")),
    }
}

/// Marks an app whose `/metrics` needs no token (the separate metrics listener).
#[derive(Clone, Copy)]
pub struct OpenMetrics;

/// Prometheus metrics: requests by route and status, latency histogram, pool usage.
///
/// On the API listener it needs `Authorization: Bearer <CRM_METRICS_TOKEN>` (401
/// otherwise) and is not served at all when no token is configured (404); a separate
/// listener (`CRM_METRICS_BIND`) serves it without a token.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong metrics token", body = crate::error::Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "Not served on this listener", body = crate::error::Problem,
            content_type = "application/problem+json")
    ),
    security(("metrics_token" = []))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.app_data::<OpenMetrics>().is_none() {
        let Some(expected) = state.config.metrics_token.as_deref() else {
            return Err(ApiError::not_found("route"));
        };
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crm_domain::secrets::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::unauthorized(
                "metrics_token_required",
                "send Authorization: Bearer <metrics token>",
            ));
        }
    }
    let (open, idle) = state.db.state();
    let max = state.db.pool().max_size();
    let mut text = state.metrics.render(open, idle, max);
    // A scrape still answers (with the in-process figures) when the database does not.
    let now = state.clock.now();
    let background = state
        .db
        .run(move |c| {
            Ok::<_, ApiError>((
                crm_db::repo::jobs::stats(c)?,
                crm_db::repo::outbox::lag(c)?,
                crm_app::rules::backlog(c, now)?,
            ))
        })
        .await;
    match background {
        Ok((queues, lag, (pending, due))) => {
            text.push_str(&background_gauges(&queues, &lag));
            gauge(
                &mut text,
                "crm_rule_timers",
                "Time triggers of automation rules: pending, and due but not fired yet.",
                &[
                    ("state=\"pending\"".to_owned(), pending as f64),
                    ("state=\"due\"".to_owned(), due as f64),
                ],
            );
        }
        Err(e) => tracing::warn!(error = %e, "metrics: background gauges unavailable"),
    }
    if let Some(extra) = &state.extra_metrics {
        text.push_str(&extra());
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text))
}

/// Queue depth and dispatcher lag, from Postgres (the same for every instance).
fn background_gauges(queues: &[crm_db::repo::jobs::QueueStats], lag: &[crm_db::repo::outbox::Lag]) -> String {
    let mut out = String::new();
    let depth: Vec<(String, f64)> = queues
        .iter()
        .flat_map(|q| {
            [
                ("ready", q.ready),
                ("scheduled", q.scheduled),
                ("running", q.running),
                ("dead", q.dead),
            ]
            .map(|(state, n)| (format!("queue=\"{}\",state=\"{state}\"", q.queue), n as f64))
        })
        .collect();
    gauge(
        &mut out,
        "crm_job_queue_depth",
        "Jobs by queue and state (ready: due now; scheduled: later).",
        &depth,
    );
    let oldest: Vec<_> = queues
        .iter()
        .map(|q| (format!("queue=\"{}\"", q.queue), q.oldest_ready_age_secs.unwrap_or(0.0)))
        .collect();
    gauge(
        &mut out,
        "crm_job_oldest_ready_seconds",
        "Age of the oldest due job not yet running.",
        &oldest,
    );
    let pending: Vec<_> = lag
        .iter()
        .map(|l| (format!("subscriber=\"{}\"", l.name), l.pending_commits as f64))
        .collect();
    gauge(
        &mut out,
        "crm_dispatcher_pending_commits",
        "Committed transactions a subscriber has not handled yet.",
        &pending,
    );
    let age: Vec<_> = lag
        .iter()
        .map(|l| {
            (
                format!("subscriber=\"{}\"", l.name),
                l.oldest_pending_age_secs.unwrap_or(0.0),
            )
        })
        .collect();
    gauge(
        &mut out,
        "crm_dispatcher_lag_seconds",
        "Age of the oldest event a subscriber has not handled yet.",
        &age,
    );
    out
}

/// One gauge family in the Prometheus text format.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}
