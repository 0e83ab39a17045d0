//! Reports (results, process, funnel, pipeline, receivables, adoption, leaderboard,
//! targets' attainment) and the sales targets. Each report runs in one read-only
//! transaction on the reports database (a replica when configured), with a statement
//! timeout, and at most `report_slots` at once.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use diesel::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    changed_record, created_record, run_op, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors,
    ReportBusy, Unauthorized, Unprocessable, VersionErrors,
};
use crate::auth::Auth;
use crate::dto::reports::{
    ChartOptions, ExportOptions, FileFormat, FunnelDto, LeaderboardDto, LeaderboardOptions, PipelineReportDto,
    ReportDto, ReportName, ReportQuery, ReportQueryRequest, ReportQueryResult, SnapshotDto, SnapshotQuery,
};
use crate::dto::reports::{
    CreateDashboard, Dashboard, DashboardListQuery, DashboardRun, RunDashboardQuery, UpdateDashboard, WidgetDto,
    WidgetError, WidgetRun,
};
use crate::dto::reports::{
    CreateReportSubscription, DeliveryListQuery, DeliveryPreview, ReportDelivery, ReportSubscription,
    ReportSubscriptionListQuery, UpdateReportSubscription,
};
use crate::dto::reports::{
    CreateSavedReport, CreateTarget, RunSavedQuery, SalesTarget, SavedReport, SavedReportListQuery, SavedReportRun,
    TargetListQuery, TargetReportDto, UpdateSavedReport, UpdateTarget,
};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
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
/// dates; without one every open deal counts. `as_of` rebuilds the pipeline as it
/// stood at the end of a past date: each deal's stage from its stage visits, amount and
/// expected close date from the last change recorded before then (no historical
/// forecast). Needs `opportunities:read`.
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

/// Receivables: the installments of signed, active and completed contracts, per
/// currency. Due in the period and collected against installments in it (payments
/// allocated, by date received) with the collected share; at the period's end (today
/// while it runs): overdue amounts (from the day after the due date) aged 1-30, 31-60,
/// 61-90 and over 90 days, not yet due, and overdue installments. The previous period
/// is taken the same way at its end. `group_by` `none`, `owner`, `team` or `account`.
/// Contracts in the caller's `contracts:read` scope; without `payments:read` only the
/// amounts due are shown (the rest is `withheld`).
#[utoipa::path(
    tag = "reports",
    operation_id = "receivables_report",
    params(ReportQuery),
    responses((status = 200, description = "Receivables", body = ReportDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/receivables")]
pub async fn receivables(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::receivables(c, ctx, &p)).await?;
    Ok(HttpResponse::Ok().json(ReportDto::from(r)))
}

/// Adoption, per rep (`group_by=owner`) or team: records entered (leads, accounts,
/// contacts, deals, by who entered them) and follow-ups logged in the period; open
/// deals without an activity in the `idle_days` (default 14) before the period's end;
/// open deals missing the amount, the expected close date or a required custom field
/// (now; no previous figure); stage visits left only after the stage's stalled
/// threshold; deals closed after their expected close date. Counts over the records
/// the caller may read; needs `opportunities:read`.
#[utoipa::path(
    tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "Adoption", body = ReportDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/adoption")]
pub async fn adoption(state: web::Data<AppState>, auth: Auth, q: web::Query<ReportQuery>) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| crm_app::reports::adoption(c, ctx, &p)).await?;
    Ok(HttpResponse::Ok().json(ReportDto::from(r)))
}

/// A leaderboard: the owners (default) or teams of the caller's scope ranked by one
/// figure of the results or process report in the period, beside the previous
/// period's. Amounts are ranked per currency (or in `currency` only). A figure the
/// caller may not read answers 422.
#[utoipa::path(
    tag = "reports",
    params(ReportQuery, LeaderboardOptions),
    responses((status = 200, description = "The standings", body = LeaderboardDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/leaderboard")]
pub async fn leaderboard(
    state: web::Data<AppState>,
    auth: Auth,
    q: FileQuery<LeaderboardOptions>,
) -> ApiResult<HttpResponse> {
    let p = q.report.params();
    let kpi = q.options.kpi.unwrap_or_else(|| "sales_won_amount".into());
    let currency = q.options.currency;
    if let Some(c) = &currency {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "currency is three capital letters (ISO 4217)",
            ));
        }
    }
    let r = run_report(&state, &auth, move |c, ctx| {
        crm_app::reports::leaderboard::leaderboard(c, ctx, &p, &kpi, currency.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(LeaderboardDto::from(r)))
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

const TARGETS: &str = "sales_targets";
const SAVED: &str = "saved_reports";
const DASHBOARDS: &str = "dashboards";

/// How a report is written out.
enum Render {
    Csv,
    Xlsx,
    Svg,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A report's query string split into the report's parameters and the options of
/// what is made of it (a file, a chart, a leaderboard).
struct FileQuery<O> {
    report: ReportQuery,
    options: O,
}

impl<O: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for FileQuery<O> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready((|| {
            let bad = |e: serde_urlencoded::de::Error| {
                ApiError::bad_request("invalid_query", format!("invalid query string: {e}"))
            };
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).map_err(bad)?;
            let (opts, rest): (Vec<_>, Vec<_>) = pairs
                .into_iter()
                .partition(|(k, _)| matches!(k.as_str(), "format" | "kpi" | "currency"));
            let enc = |p: &[(String, String)]| serde_urlencoded::to_string(p).unwrap_or_default();
            Ok(FileQuery {
                report: serde_urlencoded::from_str(&enc(&rest)).map_err(bad)?,
                options: serde_urlencoded::from_str(&enc(&opts)).map_err(bad)?,
            })
        })())
    }
}

/// Computes a report and writes it out as `render` says. A file (CSV, XLSX) is
/// audited as the report's `exported` event (who, which report, its query, the rows),
/// written on the primary after the read; a chart is not.
async fn file(
    state: &AppState,
    auth: &Auth,
    (title, asked): (String, serde_json::Value),
    render: Render,
    build: impl FnOnce(&mut PgConnection, &crm_app::Ctx) -> crm_app::AppResult<crm_app::reports::table::Table>
        + Send
        + 'static,
) -> ApiResult<HttpResponse> {
    use crm_app::reports::table;
    let svg = matches!(render, Render::Svg);
    let (bytes, ctype, rows) = run_report(state, auth, move |c, ctx| {
        let t = build(c, ctx)?;
        let tz = crm_app::rules::calendar(c)?.offset();
        let rows = t.rows.len();
        Ok(match render {
            Render::Csv => (table::csv(&t, tz).into_bytes(), "text/csv; charset=utf-8", rows),
            Render::Xlsx => (table::xlsx(&t, tz)?, XLSX, rows),
            Render::Svg => (table::svg(&t, tz).into_bytes(), "image/svg+xml", rows),
        })
    })
    .await?;
    let mut resp = HttpResponse::Ok();
    resp.content_type(ctype);
    if !svg {
        let ext = if ctype == XLSX { "xlsx" } else { "csv" };
        let export_id = Uuid::now_v7();
        let detail = serde_json::json!({"report": title, "format": ext, "rows": rows, "query": asked});
        run_op(state, auth, move |c, ctx| {
            let mut changes = serde_json::Map::new();
            changes.insert("export".into(), detail.clone());
            crm_db::repo::audit::record(c, &ctx.actor(), "reports", export_id, "exported", changes, detail)?;
            Ok(())
        })
        .await?;
        let stamp = state.clock.now().format("%Y%m%d-%H%M%S");
        resp.insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{title}-{stamp}.{ext}\""),
        ));
        resp.insert_header(("X-Export-Id", export_id.to_string()));
    }
    Ok(resp.body(bytes))
}

fn table_of(
    name: ReportName,
    p: crm_app::reports::Params,
    kpi: Option<String>,
) -> impl FnOnce(&mut PgConnection, &crm_app::Ctx) -> crm_app::AppResult<crm_app::reports::table::Table> + Send + 'static
{
    use crm_app::reports::{self as r, table};
    move |c, ctx| match name {
        ReportName::Results => table::of_report(&r::results(c, ctx, &p)?, kpi.as_deref()),
        ReportName::Process => table::of_report(&r::process(c, ctx, &p)?, kpi.as_deref()),
        ReportName::Funnel => Ok(table::of_funnel(&r::funnel(c, ctx, &p)?)),
        ReportName::Pipeline => Ok(table::of_pipeline(&r::pipeline(c, ctx, &p)?)),
        ReportName::Receivables => table::of_report(&r::receivables(c, ctx, &p)?, kpi.as_deref()),
        ReportName::Adoption => table::of_report(&r::adoption(c, ctx, &p)?, kpi.as_deref()),
    }
}

/// A fixed report as a file: `format=csv` (UTF-8 with BOM; default) or `format=xlsx`
/// (a spreadsheet with typed number and date cells, a bold header row frozen above the
/// data). Same parameters, scope and withheld figures as the report itself.
#[utoipa::path(
    tag = "reports",
    params(("report" = inline(ReportName), Path, description = "`results`, `process`, `funnel`, `pipeline`, `receivables` or `adoption`"), ReportQuery, ExportOptions),
    responses(
        (status = 200, description = "The report as a file",
            content((String = "text/csv"), (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")),
            headers(("Content-Disposition" = String), ("X-Export-Id" = String, description = "The export's id in the audit trail"))),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy
    )
)]
#[get("/reports/{report}/export")]
pub async fn export_report(
    state: web::Data<AppState>,
    auth: Auth,
    report: web::Path<ReportName>,
    req: HttpRequest,
    q: FileQuery<ExportOptions>,
) -> ApiResult<HttpResponse> {
    let name = report.into_inner();
    let render = match q.options.format {
        Some(FileFormat::Xlsx) => Render::Xlsx,
        _ => Render::Csv,
    };
    file(
        &state,
        &auth,
        (name.as_str().into(), serde_json::Value::from(req.query_string())),
        render,
        table_of(name, q.report.params(), None),
    )
    .await
}

/// A fixed report drawn as an SVG chart (bars beside the previous period's, or a
/// line), for channels that cannot run JavaScript. `kpi` picks the figure of results
/// and process reports.
#[utoipa::path(
    tag = "reports",
    params(("report" = inline(ReportName), Path, description = "`results`, `process`, `funnel`, `pipeline`, `receivables` or `adoption`"), ReportQuery, ChartOptions),
    responses(
        (status = 200, description = "SVG chart", content_type = "image/svg+xml", body = String),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy
    )
)]
#[get("/reports/{report}/chart.svg")]
pub async fn report_chart(
    state: web::Data<AppState>,
    auth: Auth,
    report: web::Path<ReportName>,
    q: FileQuery<ChartOptions>,
) -> ApiResult<HttpResponse> {
    let name = report.into_inner();
    let kpi = q.options.kpi;
    file(
        &state,
        &auth,
        (name.as_str().into(), serde_json::Value::Null),
        Render::Svg,
        table_of(name, q.report.params(), kpi),
    )
    .await
}

/// An ad-hoc query's answer as a file: `format=csv` (default) or `format=xlsx`.
#[utoipa::path(
    tag = "reports",
    params(ExportOptions),
    request_body = ReportQueryRequest,
    responses(
        (status = 200, description = "The answer as a file",
            content((String = "text/csv"), (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")),
            headers(("Content-Disposition" = String), ("X-Export-Id" = String, description = "The export's id in the audit trail"))),
        BadRequest, Unauthorized, Forbidden, BodyErrors, ReportBusy
    )
)]
#[post("/reports/query/export")]
pub async fn export_query(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ExportOptions>,
    body: ValidJson<ReportQueryRequest>,
) -> ApiResult<HttpResponse> {
    let asked = serde_json::from_slice(&body.raw).unwrap_or(serde_json::Value::Null);
    let spec = body.value?.spec();
    let render = match q.into_inner().format {
        Some(FileFormat::Xlsx) => Render::Xlsx,
        _ => Render::Csv,
    };
    file(&state, &auth, ("query".into(), asked), render, move |c, ctx| {
        Ok(crm_app::reports::table::of_query(&crm_app::reports::query::run(
            c, ctx, &spec,
        )?))
    })
    .await
}

/// An ad-hoc query's answer drawn as an SVG chart: its first dimension against its
/// first measure (a line over time buckets, bars otherwise).
#[utoipa::path(
    tag = "reports",
    request_body = ReportQueryRequest,
    responses(
        (status = 200, description = "SVG chart", content_type = "image/svg+xml", body = String),
        BadRequest, Unauthorized, Forbidden, BodyErrors, ReportBusy
    )
)]
#[post("/reports/query/chart.svg")]
pub async fn query_chart(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<ReportQueryRequest>,
) -> ApiResult<HttpResponse> {
    let spec = body.value?.spec();
    file(
        &state,
        &auth,
        ("query".into(), serde_json::Value::Null),
        Render::Svg,
        move |c, ctx| {
            Ok(crm_app::reports::table::of_query(&crm_app::reports::query::run(
                c, ctx, &spec,
            )?))
        },
    )
    .await
}

/// Sales targets in the caller's `sales_targets:read` scope (reps their own, managers
/// their teams'), newest period first.
#[utoipa::path(
    tag = "reports",
    params(TargetListQuery),
    responses((status = 200, description = "A page of targets", body = Page<SalesTarget>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/sales-targets")]
pub async fn list_targets(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<TargetListQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let overlaps = match (q.from, q.to) {
        (Some(from), Some(to)) if from <= to => Some((from, to)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`from` and `to` go together, `from` first",
            ))
        }
    };
    let filter = crm_db::repo::targets::TargetFilter {
        owner_id: q.owner_id,
        team_id: q.team_id,
        metric: q.metric.map(|m| m.as_str().to_owned()),
        overlaps,
    };
    let page = run_op(&state, &auth, move |c, ctx| {
        let spec = crm_db::sql::ListSpec::list(
            crm_db::repo::targets::SORT_COLUMNS,
            "-period_from",
            q.sort.as_deref(),
            q.cursor.as_deref(),
            q.limit,
        )?;
        Ok(crm_app::reports::targets::list(c, ctx, &filter, &spec)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(SalesTarget::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One sales target.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Target id")),
    responses((status = 200, description = "The target", body = SalesTarget, headers(("ETag" = String))), ReadErrors)
)]
#[get("/sales-targets/{id}")]
pub async fn get_target(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::targets::get(c, ctx, id)?)
    })
    .await?;
    let version = row.version;
    Ok(with_etag(&SalesTarget::from(row), version))
}

/// Set a sales target for a rep or a team in the caller's `sales_targets:create` scope
/// (admins and directors: anyone; managers: their teams). One per rep or team, figure,
/// period and currency (`duplicate`, 409).
#[utoipa::path(
    tag = "reports",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateTarget,
    responses(
        (status = 201, description = "Created", body = SalesTarget, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/sales-targets")]
pub async fn create_target(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateTarget>,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        (TARGETS, "sales-targets"),
        move |c, ctx| Ok(SalesTarget::from(crm_app::reports::targets::create(c, ctx, &fields)?)),
    )
    .await
}

/// Change a target's value or note (`If-Match` required).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Target id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateTarget,
    responses(
        (status = 200, description = "Updated", body = SalesTarget, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/sales-targets/{id}")]
pub async fn update_target(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateTarget>,
) -> ApiResult<HttpResponse> {
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, TARGETS, move |c, ctx| {
        Ok(SalesTarget::from(crm_app::reports::targets::update(
            c, ctx, id, expected, &fields,
        )?))
    })
    .await
}

/// Delete a target.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Target id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/sales-targets/{id}")]
pub async fn delete_target(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::targets::delete(c, ctx, id)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Attainment: the targets (in the caller's `sales_targets:read` scope) whose period
/// overlaps the report's (default this month), each beside the figure reached over the
/// target's own dates for its rep (or team and sub-teams), the attainment and the share
/// of the target's days gone by. `owner_id` / `team_id` narrow the targets.
#[utoipa::path(
    tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "Attainment", body = TargetReportDto), BadRequest, Unauthorized, Forbidden, Unprocessable, ReportBusy)
)]
#[get("/reports/targets")]
pub async fn target_attainment(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let p = q.into_inner().params();
    let r = run_report(&state, &auth, move |c, ctx| {
        crm_app::reports::targets::attainment(c, ctx, &p)
    })
    .await?;
    Ok(HttpResponse::Ok().json(TargetReportDto::from(r)))
}

/// Checks a saved report's parameters as the report's own endpoint reads them (the
/// same patterns and ranges), naming what is wrong.
fn check_params(report: &str, params: &serde_json::Value) -> Result<(), String> {
    let mut map = params.as_object().cloned().unwrap_or_default();
    if report == "query" {
        let q: ReportQueryRequest =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
        return validator::Validate::validate(&q).map_err(|e| e.to_string());
    }
    let mut options = serde_json::Map::new();
    if report == "leaderboard" {
        for k in ["kpi", "currency"] {
            if let Some(v) = map.remove(k) {
                options.insert(k.to_owned(), v);
            }
        }
    }
    let _: ReportQuery = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
    let _: LeaderboardOptions =
        serde_json::from_value(serde_json::Value::Object(options)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Computes a saved report for the caller, the period replaced when `run` gives one.
fn run_saved_report(
    c: &mut PgConnection,
    ctx: &crm_app::Ctx,
    report: &str,
    params: &serde_json::Value,
    run: RunSavedQuery,
    granularity: Option<&str>,
) -> crm_app::AppResult<serde_json::Value> {
    use crm_app::reports::saved::{compute, Computed, RunPeriod};
    let run = RunPeriod {
        period: run.period.map(crate::dto::reports::PeriodPreset::model),
        from: run.from,
        to: run.to,
    };
    let v = match compute(c, ctx, report, params, run, granularity)? {
        Computed::Query(q) => serde_json::to_value(ReportQueryResult::from(q)),
        Computed::Report(r) => serde_json::to_value(ReportDto::from(r)),
        Computed::Funnel(f) => serde_json::to_value(FunnelDto::from(f)),
        Computed::Pipeline(p) => serde_json::to_value(PipelineReportDto::from(p)),
        Computed::Leaderboard(l) => serde_json::to_value(LeaderboardDto::from(l)),
        Computed::Targets(t) => serde_json::to_value(TargetReportDto::from(t)),
    };
    v.map_err(|e| crm_app::AppError::internal(e.to_string()))
}

/// Saved reports the caller may see: their own, those shared with one of their roles or
/// their team (admins: all).
#[utoipa::path(
    tag = "reports",
    params(SavedReportListQuery),
    responses((status = 200, description = "A page of saved reports", body = Page<SavedReport>), BadRequest, Unauthorized)
)]
#[get("/saved-reports")]
pub async fn list_saved(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<SavedReportListQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let page = run_op(&state, &auth, move |c, ctx| {
        let spec = crm_db::sql::ListSpec::list(
            crm_db::repo::saved_reports::SORT_COLUMNS,
            "name",
            q.sort.as_deref(),
            q.cursor.as_deref(),
            q.limit,
        )?;
        let kind = q.report.map(|k| k.as_str().to_owned());
        Ok(crm_app::reports::saved::list(c, ctx, kind, &spec)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(SavedReport::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One saved report.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Saved report id")),
    responses((status = 200, description = "The saved report", body = SavedReport, headers(("ETag" = String))), ReadErrors)
)]
#[get("/saved-reports/{id}")]
pub async fn get_saved(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::saved::get(c, ctx, id)?)
    })
    .await?;
    let version = row.version;
    Ok(with_etag(&SavedReport::from(row), version))
}

/// Save a report with its parameters (checked as a run reads them: `invalid_params`),
/// shared with roles or teams. Anyone signed in may save reports.
#[utoipa::path(
    tag = "reports",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateSavedReport,
    responses(
        (status = 201, description = "Created", body = SavedReport, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, BodyErrors
    )
)]
#[post("/saved-reports")]
pub async fn create_saved(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateSavedReport>,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        (SAVED, "saved-reports"),
        move |c, ctx| {
            Ok(SavedReport::from(crm_app::reports::saved::create(
                c,
                ctx,
                &fields,
                check_params,
            )?))
        },
    )
    .await
}

/// Change a saved report's name, parameters or sharing (its owner or an admin;
/// `If-Match` required).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Saved report id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateSavedReport,
    responses(
        (status = 200, description = "Updated", body = SavedReport, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/saved-reports/{id}")]
pub async fn update_saved(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateSavedReport>,
) -> ApiResult<HttpResponse> {
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, SAVED, move |c, ctx| {
        Ok(SavedReport::from(crm_app::reports::saved::update(
            c,
            ctx,
            id,
            expected,
            &fields,
            check_params,
        )?))
    })
    .await
}

/// Delete a saved report (its owner or an admin).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Saved report id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/saved-reports/{id}")]
pub async fn delete_saved(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::saved::delete(c, ctx, id)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Run a saved report as the caller: the same answer its report gives for these
/// parameters, over the caller's own data scope and fields (sharing shows the
/// definition, never the owner's data). `period` or `from`/`to` replace the saved
/// period (a dashboard switching every widget at once).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Saved report id"), RunSavedQuery),
    responses((status = 200, description = "The answer", body = SavedReportRun), ReadErrors, Unprocessable, ReportBusy)
)]
#[get("/saved-reports/{id}/run")]
pub async fn run_saved(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<RunSavedQuery>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::saved::get(c, ctx, id)?)
    })
    .await?;
    let (report, params, run) = (row.report.clone(), row.params.clone(), q.into_inner());
    let result = run_report(&state, &auth, move |c, ctx| {
        run_saved_report(c, ctx, &report, &params, run, None)
    })
    .await?;
    Ok(HttpResponse::Ok().json(SavedReportRun {
        saved_report: row.into(),
        result,
    }))
}

/// Dashboards the caller may see: their own, shared with their roles or team, and the
/// seeded sales dashboard (everyone in sales) and manager cockpit (managers up).
#[utoipa::path(
    tag = "reports",
    params(DashboardListQuery),
    responses((status = 200, description = "A page of dashboards", body = Page<Dashboard>), BadRequest, Unauthorized)
)]
#[get("/dashboards")]
pub async fn list_dashboards(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<DashboardListQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let page = run_op(&state, &auth, move |c, ctx| {
        let spec = crm_db::sql::ListSpec::list(
            crm_db::repo::saved_reports::SORT_COLUMNS,
            "name",
            q.sort.as_deref(),
            q.cursor.as_deref(),
            q.limit,
        )?;
        Ok(crm_app::reports::saved::list_dashboards(c, ctx, &spec)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Dashboard::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One dashboard.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Dashboard id")),
    responses((status = 200, description = "The dashboard", body = Dashboard, headers(("ETag" = String))), ReadErrors)
)]
#[get("/dashboards/{id}")]
pub async fn get_dashboard(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::saved::get_dashboard(c, ctx, id)?)
    })
    .await?;
    let version = row.version;
    Ok(with_etag(&Dashboard::from(row), version))
}

/// Create a dashboard: ordered widgets (saved reports the author may see), a period and
/// a granularity, shared with roles or teams.
#[utoipa::path(
    tag = "reports",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateDashboard,
    responses(
        (status = 201, description = "Created", body = Dashboard, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, BodyErrors
    )
)]
#[post("/dashboards")]
pub async fn create_dashboard(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateDashboard>,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        (DASHBOARDS, "dashboards"),
        move |c, ctx| {
            Ok(Dashboard::from(crm_app::reports::saved::create_dashboard(
                c, ctx, &fields,
            )?))
        },
    )
    .await
}

/// Change a dashboard (its owner or an admin; `If-Match` required).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Dashboard id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateDashboard,
    responses(
        (status = 200, description = "Updated", body = Dashboard, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/dashboards/{id}")]
pub async fn update_dashboard(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateDashboard>,
) -> ApiResult<HttpResponse> {
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, DASHBOARDS, move |c, ctx| {
        Ok(Dashboard::from(crm_app::reports::saved::update_dashboard(
            c, ctx, id, expected, &fields,
        )?))
    })
    .await
}

/// Delete a dashboard (its owner or an admin).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Dashboard id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/dashboards/{id}")]
pub async fn delete_dashboard(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::saved::delete_dashboard(c, ctx, id)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Run a dashboard for the caller: every widget's saved report over the caller's own
/// scope, all under one period (the dashboard's, or `period` / `from`-`to` given here)
/// and granularity (the time bucket of ad-hoc query widgets). A widget the caller may
/// not compute (no permission, a saved report no longer shared) carries an `error`; the
/// others are answered.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Dashboard id"), RunDashboardQuery),
    responses((status = 200, description = "Every widget's answer", body = DashboardRun), ReadErrors, Unprocessable, ReportBusy)
)]
#[get("/dashboards/{id}/run")]
pub async fn run_dashboard(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<RunDashboardQuery>,
) -> ApiResult<HttpResponse> {
    use crate::dto::reports::{PeriodPreset, WidgetChart, WidgetSize};
    let id = id.into_inner();
    let q = q.into_inner();
    let (row, widgets) = run_op(&state, &auth, move |c, ctx| {
        let d = crm_app::reports::saved::get_dashboard(c, ctx, id)?;
        let w = crm_app::reports::saved::widgets_of(c, ctx, &d)?;
        Ok((d, w))
    })
    .await?;
    let period = match (q.period, q.from, q.to) {
        (None, None, None) => PeriodPreset::parse(&row.period),
        (p, _, _) => p,
    };
    let granularity = q
        .granularity
        .map_or(row.granularity.as_str(), |g| g.as_str())
        .to_owned();
    let (from, to) = (q.from, q.to);
    let runs = run_report(&state, &auth, move |c, ctx| {
        let mut out = Vec::with_capacity(widgets.len());
        for (w, saved) in widgets {
            let widget = WidgetDto {
                saved_report_id: w.saved_report_id,
                chart: WidgetChart::parse(&w.chart).unwrap_or(WidgetChart::Table),
                size: WidgetSize::parse(&w.size).unwrap_or(WidgetSize::Medium),
            };
            let Some(saved) = saved else {
                out.push(WidgetRun {
                    widget,
                    saved_report: None,
                    result: None,
                    error: Some(WidgetError {
                        status: 404,
                        code: "not_found".into(),
                        detail: "the saved report is not shared with you".into(),
                    }),
                });
                continue;
            };
            let run = RunSavedQuery { period, from, to };
            // Each widget in a savepoint: one that fails leaves the others' reads intact.
            let answer =
                c.transaction(|c| run_saved_report(c, ctx, &saved.report, &saved.params, run, Some(&granularity)));
            let (result, error) = match answer {
                Ok(v) => (Some(v), None),
                Err(e) => {
                    let e = ApiError::from(e);
                    if e.status.is_server_error() {
                        tracing::error!(widget = %w.saved_report_id, cause = ?e.cause, "dashboard widget failed");
                    }
                    let error = WidgetError {
                        status: e.status.as_u16(),
                        code: e.code.to_owned(),
                        detail: e.detail.clone(),
                    };
                    (None, Some(error))
                }
            };
            out.push(WidgetRun {
                widget,
                saved_report: Some(saved.into()),
                result,
                error,
            });
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok().json(DashboardRun {
        dashboard: row.into(),
        widgets: runs,
    }))
}

const SUBSCRIPTIONS: &str = "report_subscriptions";

/// The caller's report subscriptions (admins: everyone's, or `owner_id`'s).
#[utoipa::path(
    tag = "reports",
    params(ReportSubscriptionListQuery),
    responses((status = 200, description = "A page of report subscriptions", body = Page<ReportSubscription>), BadRequest, Unauthorized)
)]
#[get("/report-subscriptions")]
pub async fn list_subscriptions(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ReportSubscriptionListQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let page = run_op(&state, &auth, move |c, ctx| {
        let spec = crm_db::sql::ListSpec::list(
            crm_db::repo::report_subscriptions::SORT_COLUMNS,
            "name",
            q.sort.as_deref(),
            q.cursor.as_deref(),
            q.limit,
        )?;
        let filter = crm_db::repo::report_subscriptions::SubscriptionFilter {
            owner: q.owner_id,
            saved_report_id: q.saved_report_id,
            dashboard_id: q.dashboard_id,
        };
        Ok(crm_app::reports::delivery::list(c, ctx, filter, &spec)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(ReportSubscription::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One report subscription (its owner's or an admin's).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, description = "The subscription", body = ReportSubscription, headers(("ETag" = String))), ReadErrors)
)]
#[get("/report-subscriptions/{id}")]
pub async fn get_subscription(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let view = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::delivery::get(c, ctx, id)?)
    })
    .await?;
    let version = view.row.version;
    Ok(with_etag(&ReportSubscription::from(view), version))
}

/// Subscribe to a saved report or a dashboard: delivered on `schedule` (cron, business
/// time zone, at most hourly) to in-app notifications of `recipients` (each over their
/// own scope; they must be able to see the report) and to a DingTalk / WeCom channel
/// (over the owner's scope). With `alert`, a delivery is sent only when the figure
/// crosses its threshold; the figure is looked up in the report's answer now, so an
/// unknown figure or stage is refused (422 `unknown_figure`).
#[utoipa::path(
    tag = "reports",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateReportSubscription,
    responses(
        (status = 201, description = "Created", body = ReportSubscription, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/report-subscriptions")]
pub async fn create_subscription(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateReportSubscription>,
) -> ApiResult<HttpResponse> {
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        (SUBSCRIPTIONS, "report-subscriptions"),
        move |c, ctx| {
            Ok(ReportSubscription::from(crm_app::reports::delivery::create(
                c, ctx, &fields,
            )?))
        },
    )
    .await
}

/// Change a subscription (its owner or an admin; `If-Match` required); its schedule
/// restarts from now.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Subscription id"), ("If-Match" = String, Header, description = "The ETag read")),
    request_body = UpdateReportSubscription,
    responses(
        (status = 200, description = "Changed", body = ReportSubscription, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/report-subscriptions/{id}")]
pub async fn update_subscription(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateReportSubscription>,
) -> ApiResult<HttpResponse> {
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, SUBSCRIPTIONS, move |c, ctx| {
        Ok(ReportSubscription::from(crm_app::reports::delivery::update(
            c, ctx, id, expected, &fields,
        )?))
    })
    .await
}

/// Delete a subscription (its owner or an admin).
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/report-subscriptions/{id}")]
pub async fn delete_subscription(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::delivery::delete(c, ctx, id)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What the subscription would send now to its owner, and whether its alert fires
/// (value, baseline, threshold): computed, not sent. Test one before trusting it.
#[utoipa::path(
    tag = "reports",
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, description = "The message a delivery now would send", body = DeliveryPreview), ReadErrors, Conflict, ReportBusy)
)]
#[post("/report-subscriptions/{id}/preview")]
pub async fn preview_subscription(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let outcome = run_report(&state, &auth, move |c, ctx| {
        crm_app::reports::delivery::preview(c, ctx, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(DeliveryPreview::from(outcome)))
}

/// The latest deliveries of a subscription, newest first: per occurrence, whether it
/// was sent, the alert's evaluation per recipient, and who was skipped and why.
#[utoipa::path(
    tag = "reports",
    operation_id = "list_report_deliveries",
    params(("id" = Uuid, Path, description = "Subscription id"), DeliveryListQuery),
    responses((status = 200, description = "Deliveries", body = Vec<ReportDelivery>), ReadErrors)
)]
#[get("/report-subscriptions/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<DeliveryListQuery>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit is between 1 and 200"));
    }
    let rows = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::reports::delivery::deliveries(c, ctx, id, limit)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(ReportDelivery::from).collect::<Vec<_>>()))
}
