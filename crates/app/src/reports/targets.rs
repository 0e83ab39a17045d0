//! Sales targets per rep or team and period (an amount of sales won, new contract
//! amount or payments collected in one currency; a count of deals won or new
//! contracts), and their attainment: the same figure the results report computes, over
//! the target's own dates, beside the share of the period gone by.

use chrono::NaiveDate;
use crm_db::repo::targets::{self, NewTarget, TargetChanges, TargetFilter, TargetRow};
use crm_db::sql::{ListSpec, Page};
use crm_domain::access::Action;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{kpi, Params};
use crate::checks::{check_amount, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, decimal_str, double_option};

const RES: &str = "sales_targets";

/// Figures a target can be set on: (metric, an amount in a currency).
pub const METRICS: [(&str, bool); 5] = [
    ("sales_won_amount", true),
    ("new_contract_amount", true),
    ("payments_collected", true),
    ("deals_won", false),
    ("new_contracts", false),
];

/// Targets one attainment report looks at, at most.
pub const MAX_TARGETS: usize = 200;

/// A new target, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetInput {
    /// The rep; or none and `team_id` for a team's target.
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub metric: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub currency: Option<String>,
    #[serde(deserialize_with = "decimal_str::required")]
    pub target: Decimal,
    pub note: Option<String>,
}

/// A change of a target's value or note (its subject, figure and period stay).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPatch {
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub target: Option<Decimal>,
    #[serde(default, deserialize_with = "double_option")]
    pub note: Option<Option<String>>,
}

fn check_target(errs: &mut Errors, v: Decimal) -> Decimal {
    let v = check_amount(errs, "target", Some(v)).unwrap_or_default();
    if v <= Decimal::ZERO {
        errs.add("target", "out_of_range", "must be more than zero");
    }
    v
}

/// Sets a target. The rep (or team) must be inside the caller's `sales_targets:create`
/// scope; one target per rep or team, figure, period and currency (`duplicate`, 409).
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<TargetRow> {
    let scope = ctx.require(RES, Action::Create)?;
    let input: TargetInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let money = METRICS
        .iter()
        .find(|(m, _)| *m == input.metric)
        .map(|(_, money)| *money);
    if money.is_none() {
        let names: Vec<&str> = METRICS.iter().map(|(m, _)| *m).collect();
        errs.add("metric", "invalid_choice", format!("one of {}", names.join(", ")));
    }
    let currency = input.currency.as_deref().map(|c| c.trim().to_ascii_uppercase());
    match (money, &currency) {
        (Some(true), None) => errs.add("currency", "required", "an amount target needs its currency"),
        (Some(true), Some(c)) if crm_domain::normalize::currency(c).is_none() => errs.add(
            "currency",
            "invalid_format",
            "an active ISO 4217 currency code such as CNY or USD",
        ),
        (Some(false), Some(_)) => errs.add("currency", "not_allowed", "a count has no currency"),
        _ => {}
    }
    use chrono::Datelike;
    for (field, d) in [("period_from", input.period_from), ("period_to", input.period_to)] {
        if !(1900..=2999).contains(&d.year()) {
            errs.add(field, "unsupported_date", "a date between the years 1900 and 2999");
        }
    }
    if input.period_to < input.period_from {
        errs.add("period_to", "before_from", "the period ends before it starts");
    } else if (input.period_to - input.period_from).num_days() > 1097 {
        errs.add("period_to", "period_too_long", "a target's period is at most 1098 days");
    }
    let target = check_target(&mut errs, input.target);
    let note = errs.text_max("note", input.note, 2000);
    let (owner_id, team_id) = match (input.owner_id, input.team_id) {
        (Some(_), Some(_)) => {
            errs.add(
                "team_id",
                "not_allowed",
                "a target is for a rep or for a team, not both",
            );
            (None, None)
        }
        (None, None) => {
            errs.add("owner_id", "required", "the rep (`owner_id`) or the team (`team_id`)");
            (None, None)
        }
        (Some(user), None) => match crm_db::repo::users::find(c, user)? {
            Some(u) => (Some(u.id), u.team_id),
            None => {
                errs.add("owner_id", "not_found", "no such user");
                (None, None)
            }
        },
        (None, Some(team)) => match crm_db::repo::teams::find(c, team)? {
            Some(t) => (None, Some(t.id)),
            None => {
                errs.add("team_id", "not_found", "no such team");
                (None, None)
            }
        },
    };
    errs.into_result()?;
    if !ctx.principal.reaches(scope, owner_id.unwrap_or(Uuid::nil()), team_id) {
        return Err(AppError::forbidden(
            "you may set targets only for the reps and teams in your scope",
        ));
    }
    let new = NewTarget {
        id: Uuid::now_v7(),
        owner_id,
        team_id,
        metric: input.metric,
        period_from: input.period_from,
        period_to: input.period_to,
        currency,
        target,
        note,
        created_by: Some(ctx.user_id()),
    };
    if let Some(existing) = targets::same_key(c, &new)? {
        return Err(AppError::conflict(
            "duplicate",
            "this rep or team already has a target for this figure, period and currency",
        )
        .with_extra("existing", json!({"id": existing})));
    }
    let row = targets::insert(c, &new)?;
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

/// One target in the caller's read scope.
pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<TargetRow> {
    let scope = ctx.filter(RES, Action::Read)?;
    targets::find(c, &scope, id, false)?.ok_or(AppError::NotFound("sales target"))
}

/// Targets in the caller's read scope, a page as `spec` says.
pub fn list(c: &mut PgConnection, ctx: &Ctx, f: &TargetFilter, spec: &ListSpec) -> AppResult<Page<TargetRow>> {
    let scope = ctx.filter(RES, Action::Read)?;
    Ok(targets::list(c, &scope, f, spec)?)
}

/// Changes a target's value or note.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<TargetRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: TargetPatch = write::parse(fields)?;
    let mut errs = Errors::default();
    let ch = TargetChanges {
        target: input.target.map(|v| check_target(&mut errs, v)),
        note: input.note.map(|n| errs.text_max("note", n, 2000)),
    };
    errs.into_result()?;
    let before = targets::find(c, &scope, id, true)?.ok_or(AppError::NotFound("sales target"))?;
    let version = before.version;
    write::change_locked(c, ctx, (RES, id), before, (version, expected), |c, row| {
        let ch = TargetChanges {
            target: write::changed(ch.target, &row.target),
            note: write::changed(ch.note, &row.note),
        };
        if ch.target.is_none() && ch.note.is_none() {
            return Ok(None);
        }
        Ok(Some(targets::update(c, id, &ch)?))
    })
}

/// Deletes a target for good.
pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    let scope = ctx.filter(RES, Action::Delete)?;
    targets::find(c, &scope, id, true)?.ok_or(AppError::NotFound("sales target"))?;
    targets::delete(c, id)?;
    crm_db::repo::audit::record(c, &ctx.actor(), RES, id, "deleted", Map::new(), Value::Null)?;
    Ok(())
}

/// One target beside what was reached.
#[derive(Debug, Clone)]
pub struct Attainment {
    pub target: TargetRow,
    /// The figure over the target's dates, for its rep or team (and sub-teams), counting
    /// the records the caller may read; none when the caller may not read them.
    pub actual: Option<Decimal>,
    pub attainment_pct: Option<Decimal>,
    /// Share of the target's days gone by (up to today, in the business time zone).
    pub elapsed_pct: Decimal,
    /// `actual` at or above the target.
    pub met: bool,
}

/// Targets overlapping the report's period, with attainment.
pub struct TargetReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub items: Vec<Attainment>,
    /// More targets overlap the period than one report computes.
    pub truncated: bool,
    pub generated_at: chrono::DateTime<chrono::Utc>,
}

/// Attainment of the targets (in the caller's `sales_targets:read` scope) whose period
/// overlaps the report's, filtered by `owner_id` / `team_id`.
pub fn attainment(c: &mut PgConnection, ctx: &Ctx, p: &Params) -> AppResult<TargetReport> {
    let s = super::setup(c, ctx, p, &["none"])?;
    let scope = ctx.filter(RES, Action::Read)?;
    let (from, to) = (s.window.current.from, s.window.current.to);
    let filter = TargetFilter {
        owner_id: p.owner_id,
        team_id: p.team_id,
        metric: None,
        overlaps: Some((from, to)),
    };
    let spec = ListSpec::list(targets::SORT_COLUMNS, "period_from", None, None, None)
        .map_err(|e| AppError::internal(e.to_string()))?
        .with_limit(MAX_TARGETS as i64);
    let page = targets::list(c, &scope, &filter, &spec)?;
    let truncated = page.next_cursor.is_some();
    let rows = page.items;
    let today = ctx.now().with_timezone(&s.tz).date_naive();
    let mut items = Vec::with_capacity(rows.len());
    for t in rows {
        let q = Params {
            from: Some(t.period_from),
            to: Some(t.period_to),
            owner_id: t.owner_id,
            team_id: if t.owner_id.is_none() { t.team_id } else { None },
            ..Default::default()
        };
        let report = kpi::of_kpi(c, ctx, &q, &t.metric)?;
        let actual = if report.withheld.iter().any(|w| *w == t.metric) {
            None
        } else {
            report
                .totals
                .iter()
                .filter(|f| f.kpi == t.metric && f.activity_type.is_none())
                .filter(|f| t.currency.is_none() || f.currency == t.currency)
                .find_map(|f| f.value)
                .or(Some(Decimal::ZERO))
        };
        let days = (t.period_to - t.period_from).num_days() + 1;
        let gone = (today - t.period_from).num_days().clamp(-1, days - 1) + 1;
        let elapsed_pct = crate::checks::money((Decimal::from(100 * gone) / Decimal::from(days)).round_dp(2));
        let attainment_pct = actual.map(|a| crate::checks::money((a * Decimal::from(100) / t.target).round_dp(2)));
        items.push(Attainment {
            met: actual.is_some_and(|a| a >= t.target),
            actual,
            attainment_pct,
            elapsed_pct,
            target: t,
        });
    }
    Ok(TargetReport {
        from,
        to,
        items,
        truncated,
        generated_at: ctx.now(),
    })
}
