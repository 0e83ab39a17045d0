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
#[utoipa::path(tag = "ops", responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into() })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "Ready", body = Health), ServiceUnavailable)
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

/// Prometheus metrics: requests by route and status, latency histogram, pool usage.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (open, idle) = state.db.state();
    let max = state.db.pool().max_size();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(open, idle, max))
}
