//! Saved reports: a fixed report with its parameters, or an ad-hoc query, owned by the
//! user who saved it and shared with roles or teams. Sharing shows the definition;
//! whoever runs it sees only their own data scope and fields.

use crm_db::repo::saved_reports::{
    self as repo, DashboardChanges, DashboardRow, NewDashboard, NewSavedReport, SavedReportChanges, SavedReportRow,
    Viewer,
};
use crm_db::sql::{ListSpec, Page};
use crm_domain::access::Action;
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write;

const RES: &str = "saved_reports";

/// The reports that can be saved.
pub const REPORTS: [&str; 9] = [
    "results",
    "process",
    "funnel",
    "pipeline",
    "receivables",
    "adoption",
    "leaderboard",
    "targets",
    "query",
];

/// A new saved report, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedInput {
    pub name: String,
    pub report: String,
    /// The report's query parameters (fixed reports) or the query (`query`).
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub shared_with_roles: Vec<String>,
    #[serde(default)]
    pub shared_with_teams: Vec<Uuid>,
}

/// A change of a saved report (the report kind stays).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPatch {
    pub name: Option<String>,
    pub params: Option<Map<String, Value>>,
    pub shared_with_roles: Option<Vec<String>>,
    pub shared_with_teams: Option<Vec<Uuid>>,
}

/// Sharing lists are kept sorted and without repeats.
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// Who may see what: admins (`settings:admin`) see and change every saved report.
fn viewer(ctx: &Ctx) -> Viewer {
    Viewer {
        user_id: ctx.user_id(),
        role_keys: ctx.principal.role_keys.clone(),
        team_id: ctx.principal.team_id,
        all: ctx.principal.scope("settings", Action::Admin).is_some(),
    }
}

fn check_sharing(c: &mut PgConnection, errs: &mut Errors, roles: &[String], teams: &[Uuid]) -> AppResult<()> {
    #[derive(QueryableByName)]
    struct K {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
    }
    let known: Vec<K> = diesel::sql_query("SELECT key FROM roles WHERE key = ANY($1)")
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(roles.to_vec())
        .load(c)?;
    for (i, r) in roles.iter().enumerate() {
        if !known.iter().any(|k| &k.key == r) {
            errs.add(&format!("shared_with_roles[{i}]"), "not_found", "no such role");
        }
    }
    if let Some(missing) = crm_db::repo::missing_ids(c, "teams", teams)?.first() {
        let i = teams.iter().position(|t| t == missing).unwrap_or(0);
        errs.add(&format!("shared_with_teams[{i}]"), "not_found", "no such team");
    }
    Ok(())
}

/// Saves a report for the caller. `check` validates the parameters for the report (the
/// same reading a run uses), naming what is wrong.
pub fn create(
    c: &mut PgConnection,
    ctx: &Ctx,
    fields: &Map<String, Value>,
    check: impl Fn(&str, &Value) -> Result<(), String>,
) -> AppResult<SavedReportRow> {
    let input: SavedInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    if name.chars().count() > 200 {
        errs.add("name", "too_long", "at most 200 characters");
    }
    if !REPORTS.contains(&input.report.as_str()) {
        errs.add("report", "invalid_choice", format!("one of {}", REPORTS.join(", ")));
    } else if let Err(e) = check(&input.report, &Value::Object(input.params.clone())) {
        errs.add("params", "invalid_params", e);
    }
    check_sharing(c, &mut errs, &input.shared_with_roles, &input.shared_with_teams)?;
    errs.into_result()?;
    let row = repo::insert(
        c,
        &NewSavedReport {
            id: Uuid::now_v7(),
            owner_id: Some(ctx.user_id()),
            team_id: ctx.principal.team_id,
            name,
            report: input.report,
            params: Value::Object(input.params),
            shared_with_roles: sorted(input.shared_with_roles),
            shared_with_teams: sorted(input.shared_with_teams),
        },
    )?;
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

/// A saved report the caller may see (their own, shared with them, or any for admins).
pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<SavedReportRow> {
    repo::find(c, &viewer(ctx), id, false)?.ok_or(AppError::NotFound("saved report"))
}

/// Saved reports the caller may see.
pub fn list(
    c: &mut PgConnection,
    ctx: &Ctx,
    report: Option<String>,
    spec: &ListSpec,
) -> AppResult<Page<SavedReportRow>> {
    Ok(repo::list(c, &viewer(ctx), report, spec)?)
}

/// The saved report, locked, when the caller may change it (its owner or an admin);
/// shared viewers get 403, others 404.
fn own(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<SavedReportRow> {
    let v = viewer(ctx);
    let row = repo::find(c, &v, id, true)?.ok_or(AppError::NotFound("saved report"))?;
    if row.owner_id != Some(ctx.user_id()) && !v.all {
        return Err(AppError::forbidden("only its owner changes a saved report"));
    }
    Ok(row)
}

/// Changes a saved report's name, parameters or sharing.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
    check: impl Fn(&str, &Value) -> Result<(), String>,
) -> AppResult<SavedReportRow> {
    let input: SavedPatch = write::parse(fields)?;
    let before = own(c, ctx, id)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        errs.add("name", "too_long", "at most 200 characters");
    }
    if let Some(p) = &input.params {
        if let Err(e) = check(&before.report, &Value::Object(p.clone())) {
            errs.add("params", "invalid_params", e);
        }
    }
    let roles = input.shared_with_roles.clone().unwrap_or_default();
    let teams = input.shared_with_teams.clone().unwrap_or_default();
    check_sharing(c, &mut errs, &roles, &teams)?;
    errs.into_result()?;
    let version = before.version;
    write::change_locked(c, ctx, (RES, id), before, (version, expected), |c, row| {
        let ch = SavedReportChanges {
            name: write::changed(name, &row.name),
            params: write::changed(input.params.map(Value::Object), &row.params),
            shared_with_roles: write::changed(input.shared_with_roles.map(sorted), &row.shared_with_roles),
            shared_with_teams: write::changed(input.shared_with_teams.map(sorted), &row.shared_with_teams),
        };
        if ch.name.is_none() && ch.params.is_none() && ch.shared_with_roles.is_none() && ch.shared_with_teams.is_none()
        {
            return Ok(None);
        }
        Ok(Some(repo::update(c, id, &ch)?))
    })
}

/// Deletes a saved report (its owner or an admin).
pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    own(c, ctx, id)?;
    repo::delete(c, id)?;
    crm_db::repo::audit::record(c, &ctx.actor(), RES, id, "deleted", Map::new(), Value::Null)?;
    // Its subscriptions go with it.
    crm_db::repo::audit::record_pending(c, &ctx.actor(), super::delivery::RES, "deleted")?;
    Ok(())
}

/// How a widget draws its report.
pub const CHARTS: [&str; 6] = ["number", "bar", "line", "table", "funnel", "pie"];
/// How much of the dashboard a widget takes.
pub const SIZES: [&str; 3] = ["small", "medium", "large"];
/// Widgets one dashboard holds at most.
pub const MAX_WIDGETS: usize = 24;
/// The period presets a dashboard (or a subscription) names.
pub const PERIODS: [&str; 8] = [
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
];
const GRANULARITIES: [&str; 5] = ["day", "week", "month", "quarter", "year"];

/// One widget: a saved report drawn as `chart`, `size` wide.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    pub saved_report_id: Uuid,
    pub chart: String,
    pub size: String,
}

/// A new dashboard, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardInput {
    pub name: String,
    pub period: Option<String>,
    pub granularity: Option<String>,
    #[serde(default)]
    pub widgets: Vec<Widget>,
    #[serde(default)]
    pub shared_with_roles: Vec<String>,
    #[serde(default)]
    pub shared_with_teams: Vec<Uuid>,
}

/// A change of a dashboard.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardPatch {
    pub name: Option<String>,
    pub period: Option<String>,
    pub granularity: Option<String>,
    pub widgets: Option<Vec<Widget>>,
    pub shared_with_roles: Option<Vec<String>>,
    pub shared_with_teams: Option<Vec<Uuid>>,
}

fn check_choice(errs: &mut Errors, field: &str, v: Option<&str>, allowed: &[&str]) {
    if let Some(v) = v {
        if !allowed.contains(&v) {
            errs.add(field, "invalid_choice", format!("one of {}", allowed.join(", ")));
        }
    }
}

/// Widgets are saved reports the author may see, drawn in a known way.
fn check_widgets(c: &mut PgConnection, ctx: &Ctx, errs: &mut Errors, widgets: &[Widget]) -> AppResult<()> {
    if widgets.len() > MAX_WIDGETS {
        errs.add("widgets", "too_many", format!("at most {MAX_WIDGETS} widgets"));
    }
    let v = viewer(ctx);
    for (i, w) in widgets.iter().enumerate() {
        check_choice(errs, &format!("widgets[{i}].chart"), Some(&w.chart), &CHARTS);
        check_choice(errs, &format!("widgets[{i}].size"), Some(&w.size), &SIZES);
        if repo::find(c, &v, w.saved_report_id, false)?.is_none() {
            errs.add(
                &format!("widgets[{i}].saved_report_id"),
                "not_found",
                "no saved report you may see",
            );
        }
    }
    Ok(())
}

fn widgets_json(w: Vec<Widget>) -> AppResult<Value> {
    serde_json::to_value(w).map_err(|e| AppError::internal(e.to_string()))
}

/// Creates a dashboard for the caller.
pub fn create_dashboard(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<DashboardRow> {
    let input: DashboardInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    check_choice(&mut errs, "period", input.period.as_deref(), &PERIODS);
    check_choice(&mut errs, "granularity", input.granularity.as_deref(), &GRANULARITIES);
    check_widgets(c, ctx, &mut errs, &input.widgets)?;
    check_sharing(c, &mut errs, &input.shared_with_roles, &input.shared_with_teams)?;
    errs.into_result()?;
    let row = repo::insert_dashboard(
        c,
        &NewDashboard {
            id: Uuid::now_v7(),
            owner_id: Some(ctx.user_id()),
            team_id: ctx.principal.team_id,
            name,
            period: input.period.unwrap_or_else(|| "this_month".into()),
            granularity: input.granularity.unwrap_or_else(|| "month".into()),
            widgets: widgets_json(input.widgets)?,
            shared_with_roles: sorted(input.shared_with_roles),
            shared_with_teams: sorted(input.shared_with_teams),
        },
    )?;
    write::created(c, ctx, "dashboards", row.id)?;
    Ok(row)
}

/// A dashboard the caller may see.
pub fn get_dashboard(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<DashboardRow> {
    repo::find_dashboard(c, &viewer(ctx), id, false)?.ok_or(AppError::NotFound("dashboard"))
}

/// Dashboards the caller may see (the seeded ones by role).
pub fn list_dashboards(c: &mut PgConnection, ctx: &Ctx, spec: &ListSpec) -> AppResult<Page<DashboardRow>> {
    Ok(repo::list_dashboards(c, &viewer(ctx), spec)?)
}

fn own_dashboard(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<DashboardRow> {
    let v = viewer(ctx);
    let row = repo::find_dashboard(c, &v, id, true)?.ok_or(AppError::NotFound("dashboard"))?;
    if row.owner_id != Some(ctx.user_id()) && !v.all {
        return Err(AppError::forbidden("only its owner changes a dashboard"));
    }
    Ok(row)
}

/// Changes a dashboard (its owner or an admin).
pub fn update_dashboard(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<DashboardRow> {
    let input: DashboardPatch = write::parse(fields)?;
    let before = own_dashboard(c, ctx, id)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    check_choice(&mut errs, "period", input.period.as_deref(), &PERIODS);
    check_choice(&mut errs, "granularity", input.granularity.as_deref(), &GRANULARITIES);
    if let Some(w) = &input.widgets {
        check_widgets(c, ctx, &mut errs, w)?;
    }
    check_sharing(
        c,
        &mut errs,
        input.shared_with_roles.as_deref().unwrap_or_default(),
        input.shared_with_teams.as_deref().unwrap_or_default(),
    )?;
    errs.into_result()?;
    let widgets = input.widgets.map(widgets_json).transpose()?;
    let version = before.version;
    write::change_locked(c, ctx, ("dashboards", id), before, (version, expected), |c, row| {
        let ch = DashboardChanges {
            name: write::changed(name, &row.name),
            period: write::changed(input.period, &row.period),
            granularity: write::changed(input.granularity, &row.granularity),
            widgets: write::changed(widgets, &row.widgets),
            shared_with_roles: write::changed(input.shared_with_roles.map(sorted), &row.shared_with_roles),
            shared_with_teams: write::changed(input.shared_with_teams.map(sorted), &row.shared_with_teams),
        };
        if ch.name.is_none()
            && ch.period.is_none()
            && ch.granularity.is_none()
            && ch.widgets.is_none()
            && ch.shared_with_roles.is_none()
            && ch.shared_with_teams.is_none()
        {
            return Ok(None);
        }
        Ok(Some(repo::update_dashboard(c, id, &ch)?))
    })
}

/// Deletes a dashboard (its owner or an admin).
pub fn delete_dashboard(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    own_dashboard(c, ctx, id)?;
    repo::delete_dashboard(c, id)?;
    crm_db::repo::audit::record(c, &ctx.actor(), "dashboards", id, "deleted", Map::new(), Value::Null)?;
    crm_db::repo::audit::record_pending(c, &ctx.actor(), super::delivery::RES, "deleted")?;
    Ok(())
}

/// The widgets of a dashboard with the saved report each shows (none when the caller
/// may not see it any more).
pub fn widgets_of(
    c: &mut PgConnection,
    ctx: &Ctx,
    d: &DashboardRow,
) -> AppResult<Vec<(Widget, Option<SavedReportRow>)>> {
    let widgets: Vec<Widget> = serde_json::from_value(d.widgets.clone()).unwrap_or_default();
    let v = viewer(ctx);
    let mut out = Vec::with_capacity(widgets.len());
    for w in widgets {
        let r = repo::find(c, &v, w.saved_report_id, false)?;
        out.push((w, r));
    }
    Ok(out)
}

/// A saved report's answer, by its kind.
pub enum Computed {
    /// results, process, receivables, adoption.
    Report(super::Report),
    Funnel(super::Funnel),
    Pipeline(super::Pipeline),
    Leaderboard(super::leaderboard::Leaderboard),
    Targets(super::targets::TargetReport),
    Query(super::query::QueryResult),
}

/// A run's period: replaces the saved one when any part is given.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunPeriod {
    pub period: Option<crm_domain::reports::Preset>,
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
}

impl RunPeriod {
    fn given(&self) -> bool {
        self.period.is_some() || self.from.is_some() || self.to.is_some()
    }
}

/// The leaderboard's options kept beside the report parameters.
#[derive(Debug, Default, Deserialize)]
struct BoardOptions {
    kpi: Option<String>,
    currency: Option<String>,
}

/// Computes a saved report (`report` and its saved `params`) for the caller over their
/// own scope; `run` replaces the period, `granularity` the time buckets of an ad-hoc
/// query (a dashboard's). The parameters were checked when they were saved.
pub fn compute(
    c: &mut PgConnection,
    ctx: &Ctx,
    report: &str,
    params: &Value,
    run: RunPeriod,
    granularity: Option<&str>,
) -> AppResult<Computed> {
    use super as r;
    let bad = |e: serde_json::Error| AppError::field("params", "invalid_params", e.to_string());
    let mut map = params.as_object().cloned().unwrap_or_default();
    if report == "query" {
        if let Some(g) = granularity {
            if let Some(dims) = map.get_mut("dimensions").and_then(Value::as_array_mut) {
                for d in dims.iter_mut().filter(|d| d.get("bucket").is_some()) {
                    d["bucket"] = Value::from(g);
                }
            }
        }
        let spec: r::query::QuerySpec = serde_json::from_value(Value::Object(map)).map_err(bad)?;
        return Ok(Computed::Query(r::query::run(c, ctx, &spec)?));
    }
    let mut options = Map::new();
    for k in ["kpi", "currency"] {
        if let Some(v) = map.remove(k) {
            options.insert(k.to_owned(), v);
        }
    }
    let mut p: r::Params = serde_json::from_value(Value::Object(map)).map_err(bad)?;
    if run.given() {
        (p.period, p.from, p.to) = (run.period, run.from, run.to);
    }
    Ok(match report {
        "results" => Computed::Report(r::results(c, ctx, &p)?),
        "process" => Computed::Report(r::process(c, ctx, &p)?),
        "funnel" => Computed::Funnel(r::funnel(c, ctx, &p)?),
        "pipeline" => Computed::Pipeline(r::pipeline(c, ctx, &p)?),
        "receivables" => Computed::Report(r::receivables(c, ctx, &p)?),
        "adoption" => Computed::Report(r::adoption(c, ctx, &p)?),
        "leaderboard" => {
            let o: BoardOptions = serde_json::from_value(Value::Object(options)).map_err(bad)?;
            let kpi = o.kpi.unwrap_or_else(|| "sales_won_amount".into());
            Computed::Leaderboard(r::leaderboard::leaderboard(c, ctx, &p, &kpi, o.currency.as_deref())?)
        }
        "targets" => Computed::Targets(r::targets::attainment(c, ctx, &p)?),
        other => return Err(AppError::internal(format!("saved report of unknown kind {other}"))),
    })
}
