//! `/api/v1/admin/jobs`: the state of background work (queues, dead jobs, event
//! subscribers' lag); retry or cancel a job.

use actix_web::{get, post, web, HttpResponse};
use crm_db::repo::{jobs, outbox};
use crm_domain::access::Action;

use super::{BadRequest, Forbidden, ReadErrors, Unauthorized};
use crate::auth::Auth;
use crate::dto::background::{Job, JobState, JobsOverview, JobsQuery, QueueSummary, RuleTimerBacklog, SubscriberLag};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const RES: &str = "settings";

/// Counts by queue and state with the oldest due job's age, the event subscribers'
/// lag, and the jobs in one state (default `dead`, with their last error).
#[utoipa::path(
    tag = "jobs",
    params(JobsQuery),
    responses((status = 200, description = "Background work", body = JobsOverview), BadRequest, Unauthorized, Forbidden)
)]
#[get("/admin/jobs")]
pub async fn jobs_overview(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<JobsQuery>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let q = q.into_inner();
    let limit = crm_domain::listing::limit(q.limit)?;
    let wanted = q.state.unwrap_or(JobState::Dead);
    let now = state.clock.now();
    let (queues, lag, rows, timers) = state
        .db
        .run(move |c| {
            Ok::<_, ApiError>((
                jobs::stats(c)?,
                outbox::lag(c)?,
                jobs::list(c, wanted.as_str(), limit)?,
                crm_app::rules::backlog(c, now)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(JobsOverview {
        queues: queues
            .into_iter()
            .map(|q| QueueSummary {
                queue: q.queue,
                ready: q.ready,
                scheduled: q.scheduled,
                running: q.running,
                dead: q.dead,
                oldest_ready_age_secs: q.oldest_ready_age_secs,
            })
            .collect(),
        rule_timers: RuleTimerBacklog {
            pending: timers.0,
            due: timers.1,
        },
        subscribers: lag
            .into_iter()
            .map(|l| SubscriberLag {
                name: l.name,
                position: l.position,
                pending_commits: l.pending_commits,
                oldest_pending_age_secs: l.oldest_pending_age_secs,
            })
            .collect(),
        jobs: rows.into_iter().map(Job::from).collect(),
    }))
}

fn running_or_missing(found: Option<jobs::Job>) -> ApiError {
    match found {
        Some(_) => ApiError::conflict("job_running", "the job is running; wait for it to finish or fail"),
        None => ApiError::not_found("job"),
    }
}

/// Run a dead (or waiting) job again now, with fresh attempts.
#[utoipa::path(
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, waiting", body = Job),
        ReadErrors,
        (status = 409, description = "The job is running", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/admin/jobs/{id}/retry")]
pub async fn retry_job(state: web::Data<AppState>, auth: Auth, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let job = state
        .db
        .run(move |c| match jobs::retry(c, id)? {
            Some(j) => Ok(j),
            None => Err(running_or_missing(jobs::find(c, id)?)),
        })
        .await?;
    tracing::info!(job = id, user = %auth.user_id, "job retried by an admin");
    Ok(HttpResponse::Ok().json(Job::from(job)))
}

/// Remove a waiting or dead job.
#[utoipa::path(
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 204, description = "Cancelled"),
        ReadErrors,
        (status = 409, description = "The job is running", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/admin/jobs/{id}/cancel")]
pub async fn cancel_job(state: web::Data<AppState>, auth: Auth, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    state
        .db
        .run(move |c| match jobs::cancel(c, id)? {
            true => Ok(()),
            false => Err(running_or_missing(jobs::find(c, id)?)),
        })
        .await?;
    tracing::info!(job = id, user = %auth.user_id, "job cancelled by an admin");
    Ok(HttpResponse::NoContent().finish())
}
