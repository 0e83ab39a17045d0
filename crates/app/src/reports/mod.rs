//! Fixed reports: results, process, funnel, pipeline, receivables and adoption. Each is computed in Postgres
//! in one or a few grouped statements over the caller's data scope (per source
//! record: deals, payments, contracts, leads, activities), with the figures of the
//! previous period beside the current ones. Amounts are split per currency, never
//! summed across currencies. Figures that read a field the caller may not see in
//! full (hidden or masked) are left out and named in `withheld`.

mod adoption;
pub mod delivery;
pub mod forecast;
mod funnel;
mod kpi;
pub mod leaderboard;
mod pipeline;
pub mod query;
mod receivables;
pub mod saved;
pub mod table;
pub mod targets;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::fields::{FieldAccess, FieldType};
use crm_domain::reports::{self as model, GroupBy, Preset, Window};
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use rust_decimal::Decimal;
use uuid::Uuid;

pub use adoption::adoption;
pub use funnel::{funnel, Funnel, FunnelGroup, FunnelStage};
pub use kpi::{process, results};
pub use pipeline::{pipeline, Pipeline, PipelineCell};
pub use receivables::receivables;

use crate::error::{AppError, AppResult};
use crate::Ctx;

/// Longest time one report statement may run before Postgres cancels it.
pub const STATEMENT_TIMEOUT_MS: u32 = 15_000;

/// What a fixed report is asked for: the period, the grouping and the list filters
/// (a saved report keeps them as JSON under the same names).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Params {
    pub period: Option<Preset>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// `none` (the default), `team`, `owner`, ... or `custom.<key>`.
    pub group_by: Option<String>,
    pub owner_id: Option<Uuid>,
    /// The team and the teams below it.
    pub team_id: Option<Uuid>,
    /// Deal-based figures only (leads have no pipeline).
    pub pipeline_id: Option<Uuid>,
    /// Adoption: days without an activity that make an open deal idle.
    pub idle_days: Option<u32>,
    /// Pipeline: rebuilt as it stood at the end of this date.
    pub as_of: Option<NaiveDate>,
}

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Money,
    Percent,
    Days,
    Minutes,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Money => "money",
            Unit::Percent => "percent",
            Unit::Days => "days",
            Unit::Minutes => "minutes",
        }
    }
}

/// One figure of a report, beside its value in the previous period.
#[derive(Debug, Clone)]
pub struct Figure {
    pub kpi: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    pub unit: Unit,
    /// For amounts: the currency (amounts of different currencies are never added).
    pub currency: Option<String>,
    /// For activity volume: the activity type (none on the total).
    pub activity_type: Option<String>,
    pub value: Option<Decimal>,
    pub previous: Option<Decimal>,
    pub change: Option<Decimal>,
    pub change_pct: Option<Decimal>,
}

impl Figure {
    fn new(m: &Measure, value: Option<Decimal>, previous: Option<Decimal>) -> Figure {
        // A count or sum over no rows is zero; an average or rate over none is unknown.
        let zero = |v: Option<Decimal>| if m.sums { v.or(Some(Decimal::ZERO)) } else { v };
        let (value, previous) = (zero(value), zero(previous));
        let (change, change_pct) = model::change(value, previous);
        Figure {
            kpi: m.kpi,
            label_zh: m.label_zh,
            label_en: m.label_en,
            unit: m.unit,
            currency: None,
            activity_type: None,
            value,
            previous,
            change,
            change_pct,
        }
    }
}

/// The value a row is grouped under, with a readable label (user, team and pipeline
/// names; the value itself otherwise). `key` is none for records without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: Option<String>,
    pub label: Option<String>,
}

/// One group's figures.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: Group,
    pub figures: Vec<Figure>,
}

/// A fixed report's answer.
#[derive(Debug, Clone)]
pub struct Report {
    pub report: &'static str,
    pub window: Window,
    pub utc_offset_hours: i32,
    pub group_by: GroupBy,
    /// Per group (empty when not grouped).
    pub rows: Vec<Row>,
    /// Over every group.
    pub totals: Vec<Figure>,
    /// Figures left out because the caller lacks the permission or a field they read.
    pub withheld: Vec<&'static str>,
    pub generated_at: DateTime<Utc>,
}

/// One aggregate of a source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measure {
    pub kpi: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    pub unit: Unit,
    /// SQL aggregate over the source's columns (`x.<col>`).
    pub agg: &'static str,
    /// A count that adds up across currencies (reported once, without a currency).
    pub additive: bool,
    /// A count or sum: zero over no rows (an average or a rate is unknown instead).
    pub sums: bool,
    /// The field it reads, as (object, field): withheld unless the caller sees it in full.
    pub reads: Option<(&'static str, &'static str)>,
}

/// The resolved period, zone and grouping a report runs with.
pub(crate) struct Setup {
    pub window: Window,
    pub tz: FixedOffset,
    pub group_by: GroupBy,
}

/// Reads the business time zone and checks the period and grouping.
pub(crate) fn setup(c: &mut PgConnection, ctx: &Ctx, p: &Params, allowed: &[&str]) -> AppResult<Setup> {
    let calendar = crate::rules::calendar(c)?;
    let tz = calendar.offset();
    let today = ctx.now().with_timezone(&tz).date_naive();
    let window = model::window(p.period, p.from, p.to, today, tz).map_err(|e| {
        let field = match e {
            model::PeriodError::Incomplete | model::PeriodError::Both | model::PeriodError::OutOfRange => "from",
            model::PeriodError::Reversed | model::PeriodError::TooLong => "to",
        };
        let code = match e {
            model::PeriodError::Incomplete => "incomplete_period",
            model::PeriodError::Both => "period_conflict",
            model::PeriodError::Reversed => "before_from",
            model::PeriodError::TooLong => "period_too_long",
            model::PeriodError::OutOfRange => "unsupported_date",
        };
        AppError::field(field, code, e.to_string())
    })?;
    if p.idle_days.is_some_and(|d| !(1..=365).contains(&d)) {
        return Err(AppError::field(
            "idle_days",
            "out_of_range",
            "idle_days is between 1 and 365",
        ));
    }
    let raw = p.group_by.as_deref().unwrap_or("none");
    let group_by = GroupBy::parse(raw)
        .filter(|g| matches!(g, GroupBy::Custom(_)) || allowed.contains(&g.as_str().as_str()))
        .ok_or_else(|| {
            AppError::field(
                "group_by",
                "unknown_grouping",
                format!(
                    "`{raw}` is not a grouping of this report (one of {})",
                    allowed.join(", ")
                ),
            )
        })?;
    if let GroupBy::Custom(key) = &group_by {
        if !allowed.contains(&"custom") {
            return Err(AppError::field(
                "group_by",
                "unknown_grouping",
                "this report has no custom grouping",
            ));
        }
        let def = crm_db::repo::fields::find(c, "opportunities", key, false)?
            .filter(|d| d.archived_at.is_none() && d.field_type() == FieldType::SingleSelect);
        if def.is_none() {
            return Err(AppError::field(
                "group_by",
                "unknown_grouping",
                format!("`custom.{key}` is not a single-select field of opportunities"),
            ));
        }
    }
    let readable = |object: &str, field: &str| {
        !matches!(
            ctx.principal.field_access(object, field),
            FieldAccess::Hidden | FieldAccess::Masked
        )
    };
    let guarded = match &group_by {
        GroupBy::Region => Some(("accounts", "region".to_owned())),
        GroupBy::Industry => Some(("accounts", "industry".to_owned())),
        GroupBy::Tier => Some(("accounts", "tier".to_owned())),
        GroupBy::Source => Some(("accounts", "source".to_owned())),
        GroupBy::Custom(k) => Some(("opportunities", format!("custom.{k}"))),
        _ => None,
    };
    if let Some((object, field)) = guarded {
        if !readable(object, &field) {
            return Err(AppError::field(
                "group_by",
                "field_not_readable",
                format!("you may not read `{object}.{field}`, so you cannot group by it"),
            ));
        }
    }
    // A runaway report is cancelled rather than holding a connection.
    diesel::sql_query(format!("SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")).execute(c)?;
    Ok(Setup { window, tz, group_by })
}

/// Whether the caller sees the field a measure reads in full.
pub(crate) fn may_read(ctx: &Ctx, m: &Measure) -> bool {
    m.reads.is_none_or(|(object, field)| {
        !matches!(
            ctx.principal.field_access(object, field),
            FieldAccess::Hidden | FieldAccess::Masked
        )
    })
}

/// The caller's read scope on `resource`, or none without the permission.
pub(crate) fn read_scope(ctx: &Ctx, resource: &str) -> Option<ScopeFilter> {
    ctx.principal
        .scope(resource, Action::Read)
        .map(|s| ctx.principal.filter(s))
}

/// `AND <rec>.owner_id = ..` / `AND <rec>.team_id IN (team and below)` for the filters.
pub(crate) fn push_filters(sql: &mut crm_db::sql::Sql<'_>, rec: &str, p: &Params) {
    if let Some(owner) = p.owner_id {
        sql.push(&format!(" AND {rec}.owner_id = "));
        sql.bind::<SqlUuid, _>(owner);
    }
    if let Some(team) = p.team_id {
        sql.push(&format!(
            " AND {rec}.team_id IN (WITH RECURSIVE sub AS (SELECT id FROM teams WHERE id = "
        ));
        sql.bind::<SqlUuid, _>(team);
        sql.push(" UNION ALL SELECT t.id FROM teams t JOIN sub ON t.parent_id = sub.id) SELECT id FROM sub)");
    }
}

/// Labels for group keys: user, team and pipeline names; other keys label themselves.
pub(crate) fn labels(
    c: &mut PgConnection,
    group_by: &GroupBy,
    keys: &[Option<String>],
) -> AppResult<BTreeMap<String, String>> {
    #[derive(QueryableByName)]
    struct L {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let table = match group_by {
        GroupBy::Owner => "users",
        GroupBy::Team => "teams",
        GroupBy::Pipeline => "pipelines",
        GroupBy::Account => "accounts",
        _ => return Ok(keys.iter().flatten().map(|k| (k.clone(), k.clone())).collect()),
    };
    let ids: Vec<Uuid> = keys.iter().flatten().filter_map(|k| k.parse().ok()).collect();
    let rows: Vec<L> = diesel::sql_query(format!("SELECT id::text AS id, name FROM {table} WHERE id = ANY($1)"))
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
        .load(c)?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}

/// Rows in the order of their labels (records without a key last).
pub(crate) fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| match (&a.group.key, &b.group.key) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        _ => a.group.label.cmp(&b.group.label).then(a.group.key.cmp(&b.group.key)),
    });
}
