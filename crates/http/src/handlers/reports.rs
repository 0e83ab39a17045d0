//! Fixed reports: results, process, funnel and pipeline. Each runs in one read-only
//! transaction on the reports database (a replica when configured), with a statement
//! timeout, and at most `report_slots` at once.

use actix_web::{get, post, web, HttpResponse};
use diesel::PgConnection;

use super::{BadRequest, BodyErrors, Forbidden, ReportBusy, Unauthorized, Unprocessable};
use crate::auth::Auth;
use crate::dto::reports::{
    FunnelDto, PipelineReportDto, ReportDto, ReportQuery, ReportQueryRequest, ReportQueryResult, SnapshotDto,
    SnapshotQuery,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::ValidJson;
use crate::state::AppState;

/// Runs a report for the caller: waits for a report slot (429 `report_busy` after
/// `report_wait`), then reads in one read-only transaction.
async fn run_report<T, F>(state: &AppState, auth: &Auth, op: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> crm_app::AppResult<T> + Send + 'static,
{
    let _slot = match tokio::time::timeout(state.config.report_wait, state.reports.clone().acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        _ => {
            let mut e = ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "report_busy",
                "other reports are running; try again shortly",
            );
            e.retry_after = Some(state.config.report_wait.as_secs().max(1));
            return Err(e);
        }
    };
    let ctx = auth.ctx();
    state
        .reports_db
        .run(move |c| {
            c.build_transaction()
                .read_only()
                .run(|c| op(c, &ctx).map_err(ApiError::from))
        })
        .await
}

/// Results: sales won (amount, deals, average size), payments collected, new
/// contracts and their amount, gross profit (net amount less quote line costs of the
/// contracts signed), for the period and the previous one, per currency. Grouped by
/// `none`, `team`, `owner`, `region`, `pipeline`, `source`, `industry`, `tier` or a
/// deal's single-select `custom.<key>`. Each figure counts the records in the caller's
/// read scope of its own object (deals, payments, contracts).
#[utoipa::path(
    tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "Results", body = ReportDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/results")]
pub async fn results(state: web::Data<AppState>, auth: Auth, q: web::Query<ReportQuery>) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::results(c, ctx, &p)).await?;
    Ok(HttpResponse::Ok().json(ReportDto::from(r)))
}

/// Process: new leads, how many of them converted and the conversion rate, deals
/// closed and the win rate (won / closed), average and median sales cycle (days from
/// creation to won), activity volume by type, lead response time (average, median)
/// and SLA attainment (met / decided), for the period and the previous one.
#[utoipa::path(
    tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "Process", body = ReportDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/process")]
pub async fn process(state: web::Data<AppState>, auth: Auth, q: web::Query<ReportQuery>) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::process(c, ctx, &p)).await?;
    Ok(HttpResponse::Ok().json(ReportDto::from(r)))
}

/// The funnel of a pipeline (default: the default pipeline) from stage history: per
/// stage, deals that entered it in the period, where each entry went next (advanced,
/// moved back, lost; or still there), stages jumped over, conversion to the next stage
/// and to won, dwell time, and deals in the stage and stalled there now. `group_by`
/// `team` or `owner` gives one funnel per team or rep. Needs `opportunities:read`.
#[utoipa::path(
    tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "Funnel", body = FunnelDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/funnel")]
pub async fn funnel(state: web::Data<AppState>, auth: Auth, q: web::Query<ReportQuery>) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::funnel(c, ctx, &p)).await?;
    Ok(HttpResponse::Ok().json(FunnelDto::from(r)))
}

/// Open pipeline by expected close month and stage, per currency: deals, amount,
/// amount weighted by each deal's probability, and a forecast from each stage's
/// historical win rate. A period (`period` or `from`/`to`) limits the expected close
/// dates; without one every open deal counts. Needs `opportunities:read`.
#[utoipa::path(
    tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "Pipeline", body = PipelineReportDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/pipeline")]
pub async fn pipeline(state: web::Data<AppState>, auth: Auth, q: web::Query<ReportQuery>) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::pipeline(c, ctx, &p)).await?;
    Ok(HttpResponse::Ok().json(PipelineReportDto::from(r)))
}

/// A forecast snapshot: what the open pipeline (by owner, team, pipeline, forecast
/// category, expected close month and currency) and the quarter's won deals were on
/// `on` (default today), or on the latest day before it that has one. The worker takes
/// one per business day. Rows in the caller's `opportunities:read` scope.
#[utoipa::path(
    tag = "reports",
    params(SnapshotQuery),
    responses((status = 200, description = "The snapshot", body = SnapshotDto), BadRequest, Unauthorized, Forbidden, ReportBusy)
)]
#[get("/reports/forecast-snapshots")]
pub async fn forecast_snapshots(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<SnapshotQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let p = crm_app::reports::Params {
        owner_id: q.owner_id,
        team_id: q.team_id,
        pipeline_id: q.pipeline_id,
        ..Default::default()
    };
    let on = q.on;
    let r = run_report(&state, &auth, move |c, ctx| {
        crm_app::reports::forecast::snapshot(c, ctx, on, &p)
    })
    .await?;
    Ok(HttpResponse::Ok().json(SnapshotDto::from(r)))
}

/// An ad-hoc query: an object, measures, dimensions (fields, custom fields, related
/// fields such as `account.industry`, time buckets), a filter in the shared expression
/// format, sort and limit. Fields the caller may not read (hidden or masked), unknown
/// fields and measures on non-numeric fields answer 422 naming them. Rows are those in
/// the caller's read scope of the object; more rows than `limit` are cut and
/// `truncated` says so.
#[utoipa::path(
    tag = "reports",
    request_body = ReportQueryRequest,
    responses((status = 200, description = "The answer", body = ReportQueryResult), BadRequest, Unauthorized, Forbidden, BodyErrors, ReportBusy)
)]
#[post("/reports/query")]
pub async fn query(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<ReportQueryRequest>,
) -> ApiResult<HttpResponse> {
    let spec = body.value?.spec();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::query::run(c, ctx, &spec)).await?;
    Ok(HttpResponse::Ok().json(ReportQueryResult::from(r)))
}
