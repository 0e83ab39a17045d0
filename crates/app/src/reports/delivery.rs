//! Scheduled delivery: a saved report or a dashboard sent on a schedule (a cron
//! expression in the business time zone, at most hourly) to in-app notifications and
//! to a DingTalk or WeCom channel; or, with an alert, only when one of its figures
//! crosses a threshold (a fixed value, or a share of its average over the periods
//! before, e.g. Proposal conversion this week below 60% of the last four weeks').
//!
//! Every destination gets what its reader may see: each recipient's notification is
//! computed (and an alert evaluated) over that recipient's own scope; the channel's
//! message over the owner's, as the owner chose to post it there. A recipient who may
//! no longer see the report is skipped and named in the delivery's log.
//!
//! The scheduler (`reports.deliveries_due`, every minute) claims due schedules with
//! `SKIP LOCKED`, queues one `reports.deliver` job per occurrence and moves each
//! schedule on; missed occurrences (the worker was down) collapse into one. A delivery
//! records its occurrence under a unique key first, so a second run of the same
//! occurrence — a retried job, a second instance — sends nothing twice.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use crm_db::repo::report_subscriptions::{
    self as repo, DeliveryRow, NewSubscription, SubscriptionChanges, SubscriptionFilter, SubscriptionRow,
};
use crm_db::sql::{ListSpec, Page};
use crm_domain::access::{Action, Principal};
use crm_domain::cron::Cron;
use crm_domain::reports::Preset;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::saved::{self, Computed, RunPeriod, PERIODS};
use super::{Figure, Unit};
use crate::checks::Errors;
use crate::clock::Clock;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write;

pub const RES: &str = "report_subscriptions";
/// Queues the due deliveries (periodic).
pub const DUE_JOB: &str = "reports.deliveries_due";
/// Delivers one occurrence: `{"subscription_id", "occurrence"}`.
pub const DELIVER_JOB: &str = "reports.deliver";
/// Recipients one subscription reaches at most.
pub const MAX_RECIPIENTS: usize = 50;
/// Reports an alert can watch (those answering with figures).
pub const ALERT_REPORTS: [&str; 5] = ["results", "process", "funnel", "receivables", "adoption"];
/// Lines a summary of one report holds at most.
const MAX_LINES: usize = 12;

/// How an alert compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOp {
    Below,
    Above,
}

/// An alert on one figure of a saved report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// The figure's code (`conversion_to_next`, `sales_won_amount`, `win_rate`).
    pub kpi: String,
    /// Funnel: the stage's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// One group's figure (its key: a user, team or pipeline id, a region...); none: the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// For amounts: the currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub op: AlertOp,
    /// A fixed threshold.
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Decimal>,
    /// Or a share of the figure's average over the `baseline_periods` before (0.6: 60%).
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_periods: Option<u32>,
}

/// Decimal strings in and out (as everywhere in the API).
mod opt_decimal {
    use rust_decimal::Decimal;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        crate::write::decimal_str::optional(d)
    }
}

/// A new subscription, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    pub name: String,
    pub saved_report_id: Option<Uuid>,
    pub dashboard_id: Option<Uuid>,
    pub schedule: String,
    pub period: Option<String>,
    pub recipients: Option<Vec<Uuid>>,
    pub channel_id: Option<Uuid>,
    pub alert: Option<Alert>,
    pub enabled: Option<bool>,
}

/// A change of a subscription (what it delivers stays).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub name: Option<String>,
    pub schedule: Option<String>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub period: Option<Option<String>>,
    pub recipients: Option<Vec<Uuid>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub channel_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub alert: Option<Option<Alert>>,
    pub enabled: Option<bool>,
}

/// A subscription with when it runs next.
#[derive(Debug, Clone)]
pub struct View {
    pub row: SubscriptionRow,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// What a delivery sends, or would send (a preview).
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub title_zh: String,
    pub title_en: String,
    /// Markdown lines, as a channel shows them.
    pub body: String,
}

/// An alert's evaluation for one reader.
#[derive(Debug, Clone, Serialize)]
pub struct AlertCheck {
    #[serde(with = "opt_decimal")]
    pub value: Option<Decimal>,
    /// The average over the periods before (ratio alerts).
    #[serde(with = "opt_decimal")]
    pub baseline: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    pub threshold: Option<Decimal>,
    pub triggered: bool,
    /// Why it could not be evaluated (no value this period, no baseline).
    pub reason: Option<String>,
}

/// What one destination gets.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub message: Message,
    pub alert: Option<AlertCheck>,
    /// Whether it is sent: always for a digest, when triggered for an alert.
    pub send: bool,
}

fn is_admin(ctx: &Ctx) -> bool {
    ctx.principal.scope("settings", Action::Admin).is_some()
}

fn me(ctx: &Ctx) -> AppResult<Uuid> {
    match ctx.user_id() {
        u if u.is_nil() => Err(AppError::forbidden("a report subscription belongs to a user")),
        u => Ok(u),
    }
}

/// The schedule, checked: five cron fields, at most one run an hour.
fn check_schedule(errs: &mut Errors, text: &str, now: DateTime<Utc>, tz: FixedOffset) -> Option<Cron> {
    let cron = match Cron::parse(text.trim()) {
        Ok(c) => c,
        Err(e) => {
            errs.add("schedule", "invalid_schedule", e);
            return None;
        }
    };
    let mut at = now;
    let mut last: Option<DateTime<Utc>> = None;
    for _ in 0..48 {
        let Some(next) = cron.next_after(at, tz) else {
            break;
        };
        if last.is_some_and(|l| next - l < Duration::minutes(60)) {
            errs.add("schedule", "too_frequent", "a report is delivered at most once an hour");
            return None;
        }
        last = Some(next);
        at = next;
    }
    if last.is_none() {
        errs.add("schedule", "invalid_schedule", "the schedule never runs");
        return None;
    }
    Some(cron)
}

fn check_alert(errs: &mut Errors, a: &Alert) {
    match (a.threshold, a.ratio) {
        (Some(_), Some(_)) => errs.add("alert.ratio", "conflict", "give a threshold or a ratio, not both"),
        (None, None) => errs.add("alert.threshold", "required", "a threshold or a ratio"),
        (None, Some(r)) if r <= Decimal::ZERO || r > Decimal::from(100) => {
            errs.add("alert.ratio", "out_of_range", "above 0 and at most 100")
        }
        _ => {}
    }
    let limit = Decimal::from(1_000_000_000_000_000i64);
    for (field, v) in [("alert.threshold", a.threshold), ("alert.ratio", a.ratio)] {
        match v {
            Some(v) if v.normalize().scale() > 4 => errs.add(field, "too_precise", "at most four decimal places"),
            Some(v) if v.abs() >= limit => errs.add(field, "out_of_range", "too large"),
            _ => {}
        }
    }
    for (field, v, max) in [("alert.stage", &a.stage, 100), ("alert.group", &a.group, 100)] {
        if v.as_ref().is_some_and(|v| v.is_empty() || v.chars().count() > max) {
            errs.add(field, "out_of_range", format!("1 to {max} characters"));
        }
    }
    if a.currency
        .as_deref()
        .is_some_and(|c| crm_domain::normalize::currency(c) != Some(c))
    {
        errs.add("alert.currency", "invalid_currency", "an ISO 4217 code");
    }
    match a.baseline_periods {
        Some(_) if a.ratio.is_none() => {
            errs.add("alert.baseline_periods", "conflict", "baseline periods go with a ratio")
        }
        Some(n) if !(1..=12).contains(&n) => errs.add("alert.baseline_periods", "out_of_range", "1 to 12"),
        _ => {}
    }
    if a.kpi.trim().is_empty() || a.kpi.len() > 100 {
        errs.add("alert.kpi", "required", "a figure's code");
    }
}

/// The user acting as themself (active), for computing what they receive.
fn acting(c: &mut PgConnection, user: Uuid) -> AppResult<Option<Arc<Principal>>> {
    Ok(
        crm_db::repo::auth::load_principal(c, user, None, chrono::Duration::zero())?
            .filter(|l| l.is_active)
            .map(|l| Arc::new(l.principal)),
    )
}

/// The target a subscription delivers, as `who` may see it.
enum Target {
    Saved(crm_db::repo::saved_reports::SavedReportRow),
    Dashboard(crm_db::repo::saved_reports::DashboardRow),
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Saved(r) => &r.name,
            Target::Dashboard(d) => &d.name,
        }
    }
}

fn target_for(c: &mut PgConnection, who: &Ctx, row: &SubscriptionRow) -> AppResult<Option<Target>> {
    let found = match (row.saved_report_id, row.dashboard_id) {
        (Some(id), _) => saved::get(c, who, id).map(Target::Saved),
        (None, Some(id)) => saved::get_dashboard(c, who, id).map(Target::Dashboard),
        (None, None) => return Ok(None),
    };
    match found {
        Ok(t) => Ok(Some(t)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks everything but the schedule against the database; the parts named by path.
struct Checked {
    recipients: Vec<Uuid>,
}

fn check_destinations(
    c: &mut PgConnection,
    ctx: &Ctx,
    errs: &mut Errors,
    row: &SubscriptionRow,
    recipients: Option<&[Uuid]>,
) -> AppResult<Checked> {
    let mut list: Vec<Uuid> = match recipients {
        Some(r) => r.to_vec(),
        None if row.channel_id.is_none() => vec![row.owner_id],
        None => Vec::new(),
    };
    list.sort();
    list.dedup();
    if list.len() > MAX_RECIPIENTS {
        errs.add("recipients", "too_many", format!("at most {MAX_RECIPIENTS} recipients"));
    }
    for (i, user) in list.iter().enumerate().take(MAX_RECIPIENTS) {
        let sees = match acting(c, *user)? {
            Some(p) => {
                let their = Ctx::user(p, None, ctx.clock.clone());
                target_for(c, &their, row)?.is_some()
            }
            None => false,
        };
        if !sees {
            errs.add(
                &format!("recipients[{i}]"),
                "not_found",
                "no active user who may see this report",
            );
        }
    }
    if let Some(ch) = row.channel_id {
        let ok = crm_db::repo::channels::find(c, ch)?.is_some_and(|ch| ch.enabled);
        if !ok {
            errs.add("channel_id", "not_found", "no enabled channel with this id");
        }
    }
    if list.is_empty() && row.channel_id.is_none() {
        errs.add("recipients", "required", "recipients or a channel to deliver to");
    }
    Ok(Checked { recipients: list })
}

/// The alert checked against the report it watches: a report that answers with figures,
/// and the figure (and stage) in the owner's answer now.
fn check_alert_target(c: &mut PgConnection, ctx: &Ctx, errs: &mut Errors, row: &SubscriptionRow) -> AppResult<()> {
    let Some(alert) = row
        .alert
        .as_ref()
        .and_then(|a| serde_json::from_value::<Alert>(a.clone()).ok())
    else {
        return Ok(());
    };
    let Some(Target::Saved(saved)) = target_for(c, ctx, row)? else {
        errs.add("alert", "conflict", "an alert watches a saved report, not a dashboard");
        return Ok(());
    };
    if !ALERT_REPORTS.contains(&saved.report.as_str()) {
        errs.add(
            "alert",
            "conflict",
            format!("an alert watches a figure of {}", ALERT_REPORTS.join(", ")),
        );
        return Ok(());
    }
    if saved.report == "funnel" && alert.stage.is_none() {
        errs.add("alert.stage", "required", "a funnel figure belongs to a stage");
        return Ok(());
    }
    // Try it now, in a savepoint: a figure the answer does not have is named.
    let run = run_period(row);
    let answer = c.transaction(|c| saved::compute(c, ctx, &saved.report, &saved.params, run, None));
    match answer {
        Ok(computed) => {
            if let Err(e) = pick(&computed, &alert, true) {
                let field = if e.starts_with("stage") {
                    "alert.stage"
                } else {
                    "alert.kpi"
                };
                errs.add(field, "unknown_figure", e);
            }
        }
        Err(AppError::Validation(_)) | Err(AppError::Forbidden(_)) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

fn run_period(row: &SubscriptionRow) -> RunPeriod {
    RunPeriod {
        period: row.period.as_deref().and_then(|p| p.parse::<Preset>().ok()),
        ..RunPeriod::default()
    }
}

fn alert_json(a: Option<Alert>) -> AppResult<Option<Value>> {
    a.map(|a| serde_json::to_value(a).map_err(|e| AppError::internal(e.to_string())))
        .transpose()
}

/// Creates a subscription for the caller.
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<View> {
    let owner = me(ctx)?;
    let input: SubscriptionInput = write::parse(fields)?;
    let tz = crate::rules::calendar(c)?.offset();
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    if name.chars().count() > 200 {
        errs.add("name", "too_long", "at most 200 characters");
    }
    let cron = check_schedule(&mut errs, &input.schedule, ctx.now(), tz);
    if let Some(p) = input.period.as_deref() {
        if !PERIODS.contains(&p) {
            errs.add("period", "invalid_choice", format!("one of {}", PERIODS.join(", ")));
        }
    }
    if input.saved_report_id.is_some() == input.dashboard_id.is_some() {
        errs.add(
            "saved_report_id",
            "required",
            "a saved report or a dashboard (one of them)",
        );
    }
    if let Some(a) = &input.alert {
        check_alert(&mut errs, a);
    }
    let probe = SubscriptionRow {
        id: Uuid::now_v7(),
        owner_id: owner,
        team_id: ctx.principal.team_id,
        name,
        saved_report_id: input.saved_report_id,
        dashboard_id: input.dashboard_id,
        schedule: input.schedule.trim().to_owned(),
        period: input.period,
        recipients: Vec::new(),
        channel_id: input.channel_id,
        alert: alert_json(input.alert)?,
        enabled: input.enabled.unwrap_or(true),
        created_at: ctx.now(),
        updated_at: ctx.now(),
        version: 1,
    };
    if errs.0.is_empty() && target_for(c, ctx, &probe)?.is_none() {
        let field = if probe.saved_report_id.is_some() {
            "saved_report_id"
        } else {
            "dashboard_id"
        };
        errs.add(field, "not_found", "nothing you may see has this id");
    }
    let checked = check_destinations(c, ctx, &mut errs, &probe, input.recipients.as_deref())?;
    if errs.0.is_empty() {
        check_alert_target(c, ctx, &mut errs, &probe)?;
    }
    errs.into_result()?;
    let row = repo::insert(
        c,
        &NewSubscription {
            id: probe.id,
            owner_id: owner,
            team_id: probe.team_id,
            name: probe.name,
            saved_report_id: probe.saved_report_id,
            dashboard_id: probe.dashboard_id,
            schedule: probe.schedule,
            period: probe.period,
            recipients: checked.recipients,
            channel_id: probe.channel_id,
            alert: probe.alert,
            enabled: probe.enabled,
        },
    )?;
    write::created(c, ctx, RES, row.id)?;
    let next = if row.enabled {
        cron.and_then(|cr| cr.next_after(ctx.now(), tz))
    } else {
        None
    };
    repo::set_next_run(c, row.id, next)?;
    Ok(View { row, next_run_at: next })
}

/// A subscription the caller may see: their own (admins: any); others are not found.
fn visible(c: &mut PgConnection, ctx: &Ctx, id: Uuid, lock: bool) -> AppResult<SubscriptionRow> {
    let owner = if is_admin(ctx) { None } else { Some(me(ctx)?) };
    repo::find(c, owner, id, lock)?.ok_or(AppError::NotFound("report subscription"))
}

pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<View> {
    let row = visible(c, ctx, id, false)?;
    let next_run_at = repo::next_run(c, id)?;
    Ok(View { row, next_run_at })
}

/// The caller's subscriptions (admins: everyone's, or one owner's).
pub fn list(c: &mut PgConnection, ctx: &Ctx, mut filter: SubscriptionFilter, spec: &ListSpec) -> AppResult<Page<View>> {
    if !is_admin(ctx) {
        filter.owner = Some(me(ctx)?);
    }
    let page = repo::list(c, &filter, spec)?;
    let mut items = Vec::with_capacity(page.items.len());
    for row in page.items {
        let next_run_at = repo::next_run(c, row.id)?;
        items.push(View { row, next_run_at });
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// Changes a subscription (its owner or an admin); the schedule restarts from now.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<View> {
    let input: SubscriptionPatch = write::parse(fields)?;
    let before = visible(c, ctx, id, true)?;
    let tz = crate::rules::calendar(c)?.offset();
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        errs.add("name", "too_long", "at most 200 characters");
    }
    let schedule = input.schedule.as_deref().map(|s| s.trim().to_owned());
    let cron = check_schedule(
        &mut errs,
        schedule.as_deref().unwrap_or(&before.schedule),
        ctx.now(),
        tz,
    );
    if let Some(Some(p)) = input.period.as_ref() {
        if !PERIODS.contains(&p.as_str()) {
            errs.add("period", "invalid_choice", format!("one of {}", PERIODS.join(", ")));
        }
    }
    if let Some(Some(a)) = &input.alert {
        check_alert(&mut errs, a);
    }
    let alert = match input.alert {
        Some(a) => Some(alert_json(a)?),
        None => None,
    };
    // The subscription as it would be, checked as a whole (as its owner sees it).
    let mut probe = before.clone();
    if let Some(p) = &input.period {
        probe.period.clone_from(p);
    }
    if let Some(ch) = input.channel_id {
        probe.channel_id = ch;
    }
    if let Some(a) = &alert {
        probe.alert.clone_from(a);
    }
    if probe.alert.is_some() && probe.saved_report_id.is_none() {
        errs.add("alert", "conflict", "an alert watches a saved report, not a dashboard");
    }
    let owner_ctx = match acting(c, before.owner_id)? {
        Some(p) if before.owner_id != ctx.user_id() => Ctx::user(p, ctx.request_id.clone(), ctx.clock.clone()),
        _ => ctx.clone(),
    };
    let recipients = input.recipients.as_deref().unwrap_or(&before.recipients);
    let checked = check_destinations(c, &owner_ctx, &mut errs, &probe, Some(recipients))?;
    if errs.0.is_empty() && (alert.is_some() || input.period.is_some()) {
        check_alert_target(c, &owner_ctx, &mut errs, &probe)?;
    }
    errs.into_result()?;
    let version = before.version;
    let row = write::change_locked(c, ctx, (RES, id), before, (version, expected), |c, row| {
        let ch = SubscriptionChanges {
            name: write::changed(name, &row.name),
            schedule: write::changed(schedule, &row.schedule),
            period: write::changed(input.period, &row.period),
            recipients: write::changed(input.recipients.map(|_| checked.recipients), &row.recipients),
            channel_id: write::changed(input.channel_id, &row.channel_id),
            alert: write::changed(alert, &row.alert),
            enabled: write::changed(input.enabled, &row.enabled),
        };
        if ch.is_empty() {
            return Ok(None);
        }
        Ok(Some(repo::update(c, id, &ch)?))
    })?;
    let next = if row.enabled {
        cron.and_then(|cr| cr.next_after(ctx.now(), tz))
    } else {
        None
    };
    repo::set_next_run(c, row.id, next)?;
    Ok(View { row, next_run_at: next })
}

/// Deletes a subscription (its owner or an admin).
pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    visible(c, ctx, id, true)?;
    repo::delete(c, id)?;
    crm_db::repo::audit::record(c, &ctx.actor(), RES, id, "deleted", Map::new(), Value::Null)?;
    Ok(())
}

/// The latest deliveries of a subscription (newest first).
pub fn deliveries(c: &mut PgConnection, ctx: &Ctx, id: Uuid, limit: i64) -> AppResult<Vec<DeliveryRow>> {
    visible(c, ctx, id, false)?;
    Ok(repo::deliveries(c, id, limit.clamp(1, 200))?)
}

/// What the subscription would send now to its owner (and whether its alert fires),
/// sending nothing: the way to test one before trusting it.
pub fn preview(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<Outcome> {
    let row = visible(c, ctx, id, false)?;
    let owner = acting(c, row.owner_id)?
        .ok_or_else(|| AppError::conflict("owner_inactive", "the subscription's owner is no longer active"))?;
    let owner_ctx = Ctx::user(owner, ctx.request_id.clone(), ctx.clock.clone());
    let tz = crate::rules::calendar(c)?.offset();
    c.transaction(|c| outcome_for(c, &owner_ctx, &row, tz))?
        .ok_or(AppError::NotFound("saved report or dashboard"))
}

// ---------------------------------------------------------------------------------
// Computing what is sent.

fn num(d: Decimal) -> String {
    d.normalize().to_string()
}

fn unit_suffix(u: Unit) -> &'static str {
    match u {
        Unit::Percent => "%",
        Unit::Days => " 天",
        Unit::Minutes => " 分钟",
        Unit::Count | Unit::Money => "",
    }
}

fn value_text(v: Option<Decimal>, u: Unit) -> String {
    v.map_or_else(|| "—".to_owned(), |d| format!("{}{}", num(d), unit_suffix(u)))
}

fn figure_line(f: &Figure) -> String {
    let split = f
        .currency
        .as_deref()
        .or(f.activity_type.as_deref())
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let change = f
        .change_pct
        .map(|p| {
            let sign = if p > Decimal::ZERO { "+" } else { "" };
            format!("，{sign}{}%", num(p))
        })
        .unwrap_or_default();
    format!(
        "- {}{split}: **{}**（上期 previous {}{change}）",
        f.label_zh,
        value_text(f.value, f.unit),
        value_text(f.previous, f.unit)
    )
}

fn funnel_figure<'a>(figs: &'a [Figure], kpi: &str) -> Option<&'a Figure> {
    figs.iter().find(|f| f.kpi == kpi)
}

/// A report's answer in a few markdown lines.
fn summary(computed: &Computed, tz: FixedOffset) -> Vec<String> {
    let mut lines: Vec<String> = match computed {
        Computed::Report(r) => {
            let mut v = vec![format!("{} ~ {}", r.window.current.from, r.window.current.to)];
            v.extend(r.totals.iter().map(figure_line));
            v
        }
        Computed::Funnel(f) => {
            let mut v = vec![format!("{} ~ {}", f.window.current.from, f.window.current.to)];
            for s in f.totals.iter().filter(|s| s.kind == "open") {
                let get = |k: &str| funnel_figure(&s.figures, k).map(|f| value_text(f.value, f.unit));
                v.push(format!(
                    "- {}: 进入 {}，阶段转化率 {}，平均停留 {}",
                    s.name,
                    get("entered").unwrap_or_default(),
                    get("conversion_to_next").unwrap_or_default(),
                    get("dwell_avg_days").unwrap_or_default(),
                ));
            }
            v
        }
        Computed::Pipeline(p) => p
            .by_category
            .iter()
            .map(|t| {
                format!(
                    "- {} ({}): {} 个商机，金额 {}，加权 {}",
                    t.category,
                    t.currency,
                    t.deals,
                    value_text(t.amount, Unit::Money),
                    value_text(t.weighted_amount, Unit::Money)
                )
            })
            .collect(),
        Computed::Leaderboard(l) => l
            .standings
            .iter()
            .map(|s| {
                format!(
                    "{}. {}{}: **{}**",
                    s.rank,
                    s.group.label.clone().unwrap_or_else(|| "—".into()),
                    s.figure
                        .currency
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default(),
                    value_text(s.figure.value, s.figure.unit)
                )
            })
            .collect(),
        Computed::Targets(t) => t
            .items
            .iter()
            .map(|a| {
                format!(
                    "- {} {}~{}: {} / {}（{}）",
                    a.target.metric,
                    a.target.period_from,
                    a.target.period_to,
                    value_text(a.actual, Unit::Money),
                    num(a.target.target),
                    value_text(a.attainment_pct, Unit::Percent)
                )
            })
            .collect(),
        Computed::Query(q) => {
            let t = super::table::of_query(q);
            let mut v = vec![t.headers.join(" | ")];
            v.extend(t.rows.iter().map(|r| {
                let cells: Vec<String> = r.iter().map(|c| c.display(tz)).collect();
                format!("- {}", cells.join(" | "))
            }));
            v
        }
    };
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("…（另有 {more} 行 more rows）"));
    }
    if lines.is_empty() {
        lines.push("（无数据 no data）".into());
    }
    lines
}

/// The alert's figure in an answer. `Err` names what the answer does not have (with
/// `strict`, a group without data is one too; otherwise it has no value).
fn pick(computed: &Computed, a: &Alert, strict: bool) -> Result<Option<Decimal>, String> {
    let matches =
        |f: &&Figure| f.kpi == a.kpi && a.currency.as_deref().is_none_or(|c| f.currency.as_deref() == Some(c));
    let missing_group = |g: &str| {
        if strict {
            Err(format!("group `{g}` has no figures in this report now"))
        } else {
            Ok(None)
        }
    };
    let figures: &[Figure] = match computed {
        Computed::Report(r) => match &a.group {
            None => &r.totals,
            Some(g) => match r.rows.iter().find(|row| row.group.key.as_deref() == Some(g.as_str())) {
                Some(row) => &row.figures,
                None => return missing_group(g),
            },
        },
        Computed::Funnel(f) => {
            let stages = match &a.group {
                None => &f.totals,
                Some(g) => match f.groups.iter().find(|x| x.group.key.as_deref() == Some(g.as_str())) {
                    Some(x) => &x.stages,
                    None => return missing_group(g),
                },
            };
            let code = a.stage.as_deref().unwrap_or("");
            match stages.iter().find(|s| s.code == code) {
                Some(s) => &s.figures,
                None => return Err(format!("stage `{code}` is not a stage of this funnel")),
            }
        }
        _ => return Err("this report has no figures to watch".into()),
    };
    match figures.iter().find(matches) {
        Some(f) => Ok(f.value),
        // A currency without amounts this period has no value; an unknown code is wrong.
        None if a.currency.is_some() && figures.iter().any(|f| f.kpi == a.kpi) => Ok(None),
        None if !strict && a.currency.is_some() => Ok(None),
        None => Err(format!("`{}` is not a figure of this report", a.kpi)),
    }
}

fn window_of(computed: &Computed) -> Option<crm_domain::reports::Window> {
    match computed {
        Computed::Report(r) => Some(r.window),
        Computed::Funnel(f) => Some(f.window),
        _ => None,
    }
}

/// Evaluates an alert over `ctx`'s scope: the figure now, and (ratio alerts) its average
/// over the periods before.
fn evaluate(
    c: &mut PgConnection,
    ctx: &Ctx,
    saved: &crm_db::repo::saved_reports::SavedReportRow,
    current: &Computed,
    a: &Alert,
    tz: FixedOffset,
) -> AppResult<AlertCheck> {
    let value = pick(current, a, false).unwrap_or(None);
    if value.is_none() {
        return Ok(AlertCheck {
            value,
            baseline: None,
            threshold: a.threshold,
            triggered: false,
            reason: Some("no value this period".to_owned()),
        });
    }
    let (baseline, threshold, reason) = match (a.threshold, a.ratio) {
        (Some(t), _) => (None, Some(t), None),
        (None, Some(ratio)) => {
            let n = a.baseline_periods.unwrap_or(4);
            let window =
                window_of(current).ok_or_else(|| AppError::internal("an alert on a report without a period"))?;
            let mut values = Vec::new();
            for k in 1..=n {
                let p = window.earlier(k, tz);
                let run = RunPeriod {
                    period: None,
                    from: Some(p.from),
                    to: Some(p.to),
                };
                let earlier = saved::compute(c, ctx, &saved.report, &saved.params, run, None)?;
                if let Ok(Some(v)) = pick(&earlier, a, false) {
                    values.push(v);
                }
            }
            if values.is_empty() {
                (None, None, Some("no value in the periods before".to_owned()))
            } else {
                let avg = values.iter().copied().sum::<Decimal>() / Decimal::from(values.len());
                let avg = avg.round_dp(2);
                (Some(avg), Some((avg * ratio).round_dp(2)), None)
            }
        }
        (None, None) => (None, None, Some("no threshold".to_owned())),
    };
    let triggered = match (value, threshold) {
        (Some(v), Some(t)) => match a.op {
            AlertOp::Below => v < t,
            AlertOp::Above => v > t,
        },
        _ => false,
    };
    Ok(AlertCheck {
        value,
        baseline,
        threshold,
        triggered,
        reason,
    })
}

fn figure_label(computed: &Computed, a: &Alert) -> (String, String) {
    let find = |figs: &[Figure]| {
        figs.iter()
            .find(|f| f.kpi == a.kpi)
            .map(|f| (f.label_zh.to_owned(), f.label_en.to_owned()))
    };
    let found = match computed {
        Computed::Report(r) => find(&r.totals),
        Computed::Funnel(f) => f
            .totals
            .iter()
            .find(|s| Some(s.code.as_str()) == a.stage.as_deref())
            .and_then(|s| find(&s.figures).map(|(z, e)| (format!("{} {z}", s.name), format!("{} {e}", s.name)))),
        _ => None,
    };
    found.unwrap_or_else(|| (a.kpi.clone(), a.kpi.clone()))
}

/// What `ctx` (a recipient, or the owner for the channel) gets from the subscription;
/// none when they may not see its report any more.
fn outcome_for(c: &mut PgConnection, ctx: &Ctx, row: &SubscriptionRow, tz: FixedOffset) -> AppResult<Option<Outcome>> {
    let Some(target) = target_for(c, ctx, row)? else {
        return Ok(None);
    };
    let run = run_period(row);
    let name = target.name().to_owned();
    match target {
        Target::Saved(saved) => {
            let computed = saved::compute(c, ctx, &saved.report, &saved.params, run, None)?;
            let lines = summary(&computed, tz);
            let alert: Option<Alert> = row.alert.as_ref().and_then(|a| serde_json::from_value(a.clone()).ok());
            let Some(alert) = alert else {
                return Ok(Some(Outcome {
                    message: Message {
                        title_zh: format!("报表推送：{}", row.name),
                        title_en: format!("Report: {}", row.name),
                        body: format!("### {name}\n{}", lines.join("\n")),
                    },
                    alert: None,
                    send: true,
                }));
            };
            let check = evaluate(c, ctx, &saved, &computed, &alert, tz)?;
            let (label_zh, label_en) = figure_label(&computed, &alert);
            let (op_zh, op_en) = match alert.op {
                AlertOp::Below => ("低于", "below"),
                AlertOp::Above => ("高于", "above"),
            };
            let shown = |d: Option<Decimal>| d.map_or_else(|| "—".to_owned(), num);
            let mut body = format!(
                "### 预警 Alert：{}\n- {label_zh}: **{}**，{op_zh}阈值 {}",
                row.name,
                shown(check.value),
                shown(check.threshold)
            );
            if let (Some(b), Some(r)) = (check.baseline, alert.ratio) {
                body.push_str(&format!(
                    "（前 {} 期平均 {} × {}）",
                    alert.baseline_periods.unwrap_or(4),
                    num(b),
                    num(r)
                ));
            }
            body.push('\n');
            body.push_str(&lines.join("\n"));
            Ok(Some(Outcome {
                message: Message {
                    title_zh: format!(
                        "预警：{} {label_zh} {} {op_zh} {}",
                        row.name,
                        shown(check.value),
                        shown(check.threshold)
                    ),
                    title_en: format!(
                        "Alert: {} {label_en} {} {op_en} {}",
                        row.name,
                        shown(check.value),
                        shown(check.threshold)
                    ),
                    body,
                },
                send: check.triggered,
                alert: Some(check),
            }))
        }
        Target::Dashboard(d) => {
            let widgets = saved::widgets_of(c, ctx, &d)?;
            let run = if run.period.is_none() {
                RunPeriod {
                    period: d.period.parse::<Preset>().ok(),
                    ..RunPeriod::default()
                }
            } else {
                run
            };
            let mut body = format!("### {name}");
            for (_, saved) in widgets {
                let Some(saved) = saved else {
                    continue;
                };
                body.push_str(&format!("\n#### {}\n", saved.name));
                let answer =
                    c.transaction(|c| saved::compute(c, ctx, &saved.report, &saved.params, run, Some(&d.granularity)));
                match answer {
                    Ok(computed) => {
                        let mut lines = summary(&computed, tz);
                        lines.truncate(6);
                        body.push_str(&lines.join("\n"));
                    }
                    Err(e) if e.is_client_error() => body.push_str("（无权查看 not available to you）"),
                    Err(e) => return Err(e),
                }
            }
            Ok(Some(Outcome {
                message: Message {
                    title_zh: format!("看板推送：{}", row.name),
                    title_en: format!("Dashboard: {}", row.name),
                    body,
                },
                alert: None,
                send: true,
            }))
        }
    }
}

// ---------------------------------------------------------------------------------
// The scheduler and the delivery job.

/// Queues a delivery job for every due occurrence (up to `limit`) and moves each
/// schedule on to its next occurrence after now. Returns how many were queued.
pub fn queue_due(c: &mut PgConnection, clock: &Clock, limit: i64) -> AppResult<usize> {
    let now = clock.now();
    let tz = crate::rules::calendar(c)?.offset();
    let due = repo::claim_due(c, now, limit)?;
    for d in &due {
        crm_db::repo::jobs::enqueue(
            c,
            &crm_db::repo::jobs::NewJob::new(
                crate::channels::QUEUE,
                DELIVER_JOB,
                json!({"subscription_id": d.subscription_id, "occurrence": d.next_run_at}),
            ),
        )?;
        let next = Cron::parse(&d.schedule).ok().and_then(|cr| cr.next_after(now, tz));
        repo::advance(c, d.subscription_id, now, next)?;
    }
    Ok(due.len())
}

/// Delivers one occurrence (once: a second run finds it recorded and does nothing).
/// Returns the delivery recorded, none when nothing was to be done.
pub fn deliver(
    c: &mut PgConnection,
    clock: &Clock,
    id: Uuid,
    occurrence: DateTime<Utc>,
) -> AppResult<Option<DeliveryRow>> {
    let Some(row) = repo::find(c, None, id, false)? else {
        return Ok(None);
    };
    if !row.enabled {
        return Ok(None);
    }
    // Claim the occurrence first: a concurrent run waits here, then finds it taken.
    let mut log = DeliveryRow {
        id: Uuid::now_v7(),
        subscription_id: id,
        occurrence,
        status: "sent".into(),
        detail: json!({}),
        notified: 0,
        channel_queued: false,
        created_at: clock.now(),
    };
    let Some(claimed) = repo::record_delivery(c, &log)? else {
        return Ok(None);
    };
    log.id = claimed.id;
    let tz = crate::rules::calendar(c)?.offset();
    let mut detail = Map::new();
    let mut any_sent = false;
    let mut failed = false;
    let kind: &'static str = if row.alert.is_some() {
        "report_alert"
    } else {
        "report_delivery"
    };
    let mut people: HashMap<Uuid, Value> = HashMap::new();
    for user in &row.recipients {
        let Some(p) = acting(c, *user)? else {
            people.insert(*user, json!({"skipped": "inactive"}));
            continue;
        };
        let ctx = Ctx::user(p, Some(format!("report-delivery:{id}")), clock.clone());
        match c.transaction(|c| outcome_for(c, &ctx, &row, tz)) {
            Ok(None) => {
                people.insert(*user, json!({"skipped": "may not see the report"}));
            }
            Ok(Some(o)) => {
                let mut entry = json!({"sent": o.send});
                if let Some(a) = &o.alert {
                    entry["alert"] = serde_json::to_value(a).unwrap_or(Value::Null);
                }
                if o.send {
                    let (object_type, object_id) = match (row.saved_report_id, row.dashboard_id) {
                        (Some(s), _) => ("saved_report", s),
                        (None, Some(d)) => ("dashboard", d),
                        (None, None) => ("report_subscription", row.id),
                    };
                    let planned = crate::notifications::Planned {
                        user_id: *user,
                        kind,
                        object_type: object_type.into(),
                        object_id,
                        title_zh: o.message.title_zh.clone(),
                        title_en: o.message.title_en.clone(),
                    };
                    if crate::notifications::write(c, &planned, log.id, clock.now())? > 0 {
                        log.notified += 1;
                        let key = format!("report-delivery:{}:{user}", log.id);
                        crate::channels::personal(c, *user, &o.message.title_zh, key, clock.now())?;
                    }
                    any_sent = true;
                }
                people.insert(*user, entry);
            }
            Err(e) if e.is_client_error() => {
                people.insert(*user, json!({"skipped": e.to_string()}));
            }
            Err(e) => {
                failed = true;
                tracing::error!(subscription = %id, user = %user, error = %e, "report delivery failed");
                people.insert(*user, json!({"failed": true}));
            }
        }
    }
    let mut recipients: Vec<(String, Value)> = people.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    recipients.sort_by(|a, b| a.0.cmp(&b.0));
    detail.insert("recipients".into(), Value::Object(recipients.into_iter().collect()));
    if let Some(channel) = row.channel_id {
        let entry = match crm_db::repo::channels::find(c, channel)? {
            Some(ch) if ch.enabled => match acting(c, row.owner_id)? {
                Some(p) => {
                    let ctx = Ctx::user(p, Some(format!("report-delivery:{id}")), clock.clone());
                    match c.transaction(|c| outcome_for(c, &ctx, &row, tz)) {
                        Ok(Some(o)) => {
                            let mut entry = json!({"sent": o.send});
                            if let Some(a) = &o.alert {
                                entry["alert"] = serde_json::to_value(a).unwrap_or(Value::Null);
                            }
                            if o.send {
                                log.channel_queued = crate::channels::post(
                                    c,
                                    ch.id,
                                    &crate::channels::Message {
                                        title: o.message.title_zh.clone(),
                                        body: o.message.body.clone(),
                                        link: None,
                                        mentions: Vec::new(),
                                        dedupe_key: Some(format!("report-delivery:{}", log.id)),
                                    },
                                    clock.now(),
                                )?;
                                any_sent = true;
                            }
                            entry
                        }
                        Ok(None) => json!({"skipped": "the owner may not see the report"}),
                        Err(e) if e.is_client_error() => json!({"skipped": e.to_string()}),
                        Err(e) => {
                            failed = true;
                            tracing::error!(subscription = %id, error = %e, "report delivery to a channel failed");
                            json!({"failed": true})
                        }
                    }
                }
                None => json!({"skipped": "the owner is no longer active"}),
            },
            Some(_) => json!({"skipped": "the channel is disabled"}),
            None => json!({"skipped": "the channel was deleted"}),
        };
        detail.insert("channel".into(), entry);
    }
    log.status = if any_sent {
        "sent"
    } else if failed {
        "failed"
    } else if row.alert.is_some() {
        "not_triggered"
    } else {
        "skipped"
    }
    .into();
    log.detail = Value::Object(detail);
    Ok(Some(repo::finish_delivery(c, &log)?))
}
