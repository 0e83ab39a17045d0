//! Settings: document numbering, the company details printed on quotes, and the payment
//! rules. Each is one named value, changed by holders of `settings:admin` with an audit
//! entry and `setting.updated`.

use crm_db::repo::{audit, workflow};
use crm_domain::access::Action;
use crm_domain::money::PaymentRules;
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{check_amount, check_pct, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};

const RES: &str = "settings";

/// Document series with a numbering pattern.
pub const SERIES: &[&str] = &["contract", "quote", "invoice"];

/// Sets the named value, recording before / after under its name.
fn put(c: &mut PgConnection, ctx: &Ctx, key: &str, value: Value) -> AppResult<()> {
    ctx.require(RES, Action::Admin)?;
    let before = workflow::setting(c, key)?;
    workflow::put_setting(c, key, &value)?;
    let mut changes = Map::new();
    changes.insert(key.to_owned(), json!({"before": before, "after": value}));
    audit::record(c, &ctx.actor(), RES, Uuid::nil(), "updated", changes, Value::Null)?;
    Ok(())
}

/// Sets the numbering pattern of a series: `<prefix><sep><year><sep><sequence>`
/// (`prefix`, `digits`, `include_year`, `separator`); sequences restart each year and
/// never skip a number.
pub fn set_numbering(c: &mut PgConnection, ctx: &Ctx, series: &str, pattern: &Map<String, Value>) -> AppResult<()> {
    if !SERIES.contains(&series) {
        return Err(AppError::NotFound("numbering series"));
    }
    let text = |k: &str| pattern.get(k).and_then(Value::as_str).unwrap_or_default();
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
    };
    if !ok(text("prefix")) {
        return Err(AppError::field("prefix", "invalid_format", "letters, digits, - _ / ."));
    }
    if !ok(text("separator")) {
        return Err(AppError::field("separator", "invalid_format", "- _ / . or empty"));
    }
    let mut value = pattern.clone();
    value.remove("example");
    put(c, ctx, &format!("{series}_numbering"), Value::Object(value))
}

/// Sets the company details printed on quotes (`name` required).
pub fn set_company(c: &mut PgConnection, ctx: &Ctx, info: &Map<String, Value>) -> AppResult<()> {
    if info
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|n| n.trim().is_empty())
    {
        return Err(AppError::field("name", "required", "must not be blank"));
    }
    put(c, ctx, "company", Value::Object(info.clone()))
}

/// Sets the payment rules: the over-payment tolerance, whether prepayments are taken
/// on unsigned contracts, and the share of prepayment that counts as "payment
/// received" (`None`: the rule is off).
pub fn set_payment_rules(
    c: &mut PgConnection,
    ctx: &Ctx,
    tolerance: Decimal,
    accept_prepayments: bool,
    prepayment_wins_pct: Option<Decimal>,
) -> AppResult<PaymentRules> {
    let mut errs = Errors::default();
    let tolerance = check_amount(&mut errs, "overpayment_tolerance", Some(tolerance)).unwrap_or_default();
    let pct = check_pct(&mut errs, "prepayment_wins_pct", prepayment_wins_pct);
    if pct.is_some_and(|p| p.is_zero()) {
        errs.add(
            "prepayment_wins_pct",
            "out_of_range",
            "must be above 0 (or null to turn the rule off)",
        );
    }
    errs.into_result()?;
    let rules = PaymentRules {
        overpayment_tolerance: tolerance,
        accept_prepayments,
        prepayment_wins_pct: pct,
    };
    let value = serde_json::to_value(&rules).map_err(|e| AppError::internal(e.to_string()))?;
    put(c, ctx, "payments", value)?;
    Ok(rules)
}

/// Sets the business calendar (working days and hours, holidays, make-up working
/// days, time zone) used by rule due times, waits and SLAs.
pub fn set_calendar(c: &mut PgConnection, ctx: &Ctx, cal: &crm_domain::calendar::Calendar) -> AppResult<()> {
    if let Err(e) = cal.validate() {
        let field = match e {
            crm_domain::calendar::CalendarError::BadHours => "hours",
            crm_domain::calendar::CalendarError::NoWorkingDays => "weekdays",
            crm_domain::calendar::CalendarError::BadOffset => "utc_offset_hours",
        };
        return Err(AppError::field(field, "invalid_calendar", e.to_string()));
    }
    let value = serde_json::to_value(cal).map_err(|e| AppError::internal(e.to_string()))?;
    put(c, ctx, "business_calendar", value)?;
    // Reports count activities per business day: a new offset moves the day
    // boundaries, so the rollup is rebuilt at it, in this transaction.
    crm_db::repo::report_rollups::align_offset(c, cal.utc_offset_hours)?;
    Ok(())
}

/// The lead response SLA: how long after assignment the first response is due, in
/// business hours (the business calendar) or wall-clock hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeadSla {
    pub hours: i64,
    pub business_hours: bool,
}

impl Default for LeadSla {
    fn default() -> Self {
        LeadSla {
            hours: 1,
            business_hours: true,
        }
    }
}

/// The lead response SLA (setting `lead_sla`, else one business hour).
pub fn lead_sla(c: &mut PgConnection) -> AppResult<LeadSla> {
    Ok(workflow::setting(c, "lead_sla")?
        .and_then(|v| serde_json::from_value::<LeadSla>(v).ok())
        .filter(|s| (1..=720).contains(&s.hours))
        .unwrap_or_default())
}

/// Sets the lead response SLA (1 to 720 hours). Leads assigned from now on are due by
/// it; leads already assigned keep their due time.
pub fn set_lead_sla(c: &mut PgConnection, ctx: &Ctx, sla: LeadSla) -> AppResult<LeadSla> {
    if !(1..=720).contains(&sla.hours) {
        return Err(AppError::field("hours", "invalid_sla", "between 1 and 720 hours"));
    }
    let value = serde_json::to_value(sla).map_err(|e| AppError::internal(e.to_string()))?;
    put(c, ctx, "lead_sla", value)?;
    Ok(sla)
}

/// When the first response to a lead assigned at `assigned_at` is due.
pub fn sla_due(
    c: &mut PgConnection,
    assigned_at: chrono::DateTime<chrono::Utc>,
) -> AppResult<chrono::DateTime<chrono::Utc>> {
    let sla = lead_sla(c)?;
    let cal = crate::rules::calendar(c)?;
    Ok(crm_domain::rules::add_hours(
        &cal,
        assigned_at,
        sla.hours,
        sla.business_hours,
    ))
}
