//! Customer tiering: rules (setting `account_tiering`) that place each account in tier
//! A, B, C or D from what it is worth (contracts signed and payments received in the
//! last `value_days`), how it is worked (follow-ups in the last `activity_days`) and what
//! it may bring (open pipeline). Each rule is a condition in the shared expression
//! format over the account's figures; the first that holds gives the tier, none gives
//! `default_tier`.
//!
//! Amounts count in the tiering's `currency` only (amounts in other currencies are not
//! converted and never added in). The figures are recomputed for every account by a
//! daily job (in pages of `PAGE` accounts, one transaction each), and for one account
//! when one of its deals, contracts, payments or activities changes. A changed tier is
//! written as the system (audit entry and `account.updated` event) and kept in the
//! account's tier history with the figures it was decided on. Running twice changes
//! nothing the second time: a tier that stays is not written.

use chrono::Duration;
use crm_db::repo::{audit, workflow};
use crm_domain::access::Action;
use crm_domain::expr::Expr;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::clock::Clock;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};

const SETTING: &str = "account_tiering";
/// Recomputes a page of accounts: `{"after": <account id>}` (none: from the first).
pub const JOB: &str = "accounts.tiering";
pub const QUEUE: &str = "default";
/// Accounts one job recomputes.
pub const PAGE: i64 = 500;
/// The tiers, best first.
pub const TIERS: [&str; 4] = ["A", "B", "C", "D"];
/// The figures a rule reads.
pub const METRICS: [&str; 6] = [
    "contract_amount",
    "payments",
    "follow_ups",
    "open_pipeline",
    "open_deals",
    "days_since_activity",
];

/// One rule: the tier an account gets when the condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    pub tier: String,
    pub condition: Expr,
}

/// The tiering setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiering {
    /// Off: tiers are what users set.
    pub enabled: bool,
    /// The currency amounts count in (ISO 4217).
    pub currency: String,
    /// Contracts signed and payments received in this many days count as value.
    pub value_days: i32,
    /// Follow-ups (activities) in this many days count as activity.
    pub activity_days: i32,
    /// In order; the first whose condition holds gives the tier.
    pub rules: Vec<TierRule>,
    /// The tier when no rule holds.
    pub default_tier: String,
}

fn at_least(field: &str, value: Value) -> Expr {
    Expr::Compare {
        field: field.into(),
        op: crm_domain::expr::Op::Gte,
        value,
    }
}

fn any_of(tier: &str, conditions: Vec<Expr>) -> TierRule {
    TierRule {
        tier: tier.into(),
        condition: Expr::Any { any: conditions },
    }
}

impl Default for Tiering {
    /// Off, with rules a company can start from: A for a million signed or half a million
    /// received, B for 200k signed or half a million in the pipeline, C for an account
    /// being worked (three follow-ups or an open deal), D otherwise.
    fn default() -> Self {
        Tiering {
            enabled: false,
            currency: "CNY".into(),
            value_days: 365,
            activity_days: 90,
            rules: vec![
                any_of(
                    "A",
                    vec![
                        at_least("contract_amount", json!("1000000")),
                        at_least("payments", json!("500000")),
                    ],
                ),
                any_of(
                    "B",
                    vec![
                        at_least("contract_amount", json!("200000")),
                        at_least("open_pipeline", json!("500000")),
                    ],
                ),
                any_of(
                    "C",
                    vec![at_least("follow_ups", json!(3)), at_least("open_deals", json!(1))],
                ),
            ],
            default_tier: "D".into(),
        }
    }
}

/// The tiering setting (the default, switched off, when none is saved).
pub fn get(c: &mut PgConnection) -> AppResult<Tiering> {
    Ok(workflow::setting(c, SETTING)?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Checks and saves the setting (settings admins); when on, every account is recomputed
/// by the background job (queued here).
pub fn set(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<Tiering> {
    ctx.require("settings", Action::Admin)?;
    let t: Tiering = crate::write::parse(fields)?;
    let mut errs = Errors::default();
    if crm_domain::normalize::currency(&t.currency) != Some(t.currency.as_str()) {
        errs.add("currency", "invalid_currency", "an ISO 4217 code such as CNY");
    }
    if !(1..=1830).contains(&t.value_days) {
        errs.add("value_days", "out_of_range", "1 to 1830 days");
    }
    if !(1..=365).contains(&t.activity_days) {
        errs.add("activity_days", "out_of_range", "1 to 365 days");
    }
    if t.rules.len() > 20 {
        errs.add("rules", "too_many", "at most 20 rules");
    }
    for (i, r) in t.rules.iter().enumerate() {
        if !TIERS.contains(&r.tier.as_str()) {
            errs.add(&format!("rules[{i}].tier"), "invalid_choice", "A, B, C or D");
        }
        if let Err(e) = r.condition.validate() {
            errs.add(&format!("rules[{i}].condition"), "invalid_condition", e.to_string());
        }
        for f in r.condition.fields() {
            if !METRICS.contains(&f) {
                errs.add(
                    &format!("rules[{i}].condition"),
                    "unknown_figure",
                    format!("`{f}` is not a tiering figure (one of {})", METRICS.join(", ")),
                );
            }
        }
    }
    if !TIERS.contains(&t.default_tier.as_str()) {
        errs.add("default_tier", "invalid_choice", "A, B, C or D");
    }
    errs.into_result()?;
    let before = workflow::setting(c, SETTING)?;
    let value = serde_json::to_value(&t).map_err(|e| AppError::internal(e.to_string()))?;
    workflow::put_setting(c, SETTING, &value)?;
    let mut changes = Map::new();
    changes.insert(SETTING.to_owned(), json!({"before": before, "after": value}));
    audit::record(
        c,
        &ctx.actor(),
        "settings",
        Uuid::nil(),
        "updated",
        changes,
        Value::Null,
    )?;
    if t.enabled {
        queue_recompute(c)?;
    }
    Ok(t)
}

/// Queues a recompute of every account from the first (settings admins).
pub fn recompute_all(c: &mut PgConnection, ctx: &Ctx) -> AppResult<bool> {
    ctx.require("settings", Action::Admin)?;
    if !get(c)?.enabled {
        return Err(AppError::conflict(
            "tiering_disabled",
            "customer tiering is switched off",
        ));
    }
    queue_recompute(c)?;
    Ok(true)
}

fn queue_recompute(c: &mut PgConnection) -> AppResult<()> {
    crm_db::repo::jobs::enqueue(
        c,
        &crm_db::repo::jobs::NewJob::new(QUEUE, JOB, json!({})).unique("accounts.tiering:start"),
    )?;
    Ok(())
}

/// One account's figures, as the rules read them.
#[derive(Debug, Clone, QueryableByName)]
struct Figures {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    tier: Option<String>,
    #[diesel(sql_type = Numeric)]
    contract_amount: Decimal,
    #[diesel(sql_type = Numeric)]
    payments: Decimal,
    #[diesel(sql_type = BigInt)]
    follow_ups: i64,
    #[diesel(sql_type = Numeric)]
    open_pipeline: Decimal,
    #[diesel(sql_type = BigInt)]
    open_deals: i64,
    #[diesel(sql_type = Nullable<Integer>)]
    days_since_activity: Option<i32>,
}

impl Figures {
    fn view(&self) -> Value {
        json!({
            "contract_amount": crate::checks::money(self.contract_amount).to_string(),
            "payments": crate::checks::money(self.payments).to_string(),
            "follow_ups": self.follow_ups,
            "open_pipeline": crate::checks::money(self.open_pipeline).to_string(),
            "open_deals": self.open_deals,
            "days_since_activity": self.days_since_activity,
        })
    }
}

/// The figures of the live accounts `ids` (or, with none, of a page after `after`).
fn figures(
    c: &mut PgConnection,
    t: &Tiering,
    clock: &Clock,
    ids: Option<&[Uuid]>,
    after: Uuid,
) -> AppResult<Vec<Figures>> {
    let now = clock.now();
    let value_since = now - Duration::days(i64::from(t.value_days));
    let activity_since = now - Duration::days(i64::from(t.activity_days));
    Ok(diesel::sql_query(
        "SELECT a.id, a.tier, \
           coalesce((SELECT sum(k.amount) FROM contracts k WHERE k.account_id = a.id AND k.deleted_at IS NULL \
              AND k.status IN ('signed', 'active', 'completed') AND k.currency = $1 AND k.signed_at >= $2), 0) \
              AS contract_amount, \
           coalesce((SELECT sum(p.amount) FROM payments p JOIN contracts k ON k.id = p.contract_id \
              WHERE p.account_id = a.id AND k.currency = $1 AND p.received_on >= $3), 0) AS payments, \
           (SELECT count(*) FROM activities x WHERE x.account_id = a.id AND x.deleted_at IS NULL \
              AND x.occurred_at >= $4 AND x.occurred_at <= $5) AS follow_ups, \
           coalesce((SELECT sum(o.amount) FROM opportunities o WHERE o.account_id = a.id AND o.deleted_at IS NULL \
              AND o.status = 'open' AND o.currency = $1), 0) AS open_pipeline, \
           (SELECT count(*) FROM opportunities o WHERE o.account_id = a.id AND o.deleted_at IS NULL \
              AND o.status = 'open') AS open_deals, \
           (SELECT (extract(epoch FROM $5 - max(x.occurred_at)) / 86400)::int FROM activities x \
              WHERE x.account_id = a.id AND x.deleted_at IS NULL AND x.occurred_at <= $5) AS days_since_activity \
         FROM accounts a WHERE a.deleted_at IS NULL \
           AND (($6::uuid[] IS NULL AND a.id > $7) OR a.id = ANY($6)) \
         ORDER BY a.id LIMIT $8",
    )
    .bind::<Text, _>(&t.currency)
    .bind::<Timestamptz, _>(value_since)
    .bind::<Date, _>(value_since.date_naive())
    .bind::<Timestamptz, _>(activity_since)
    .bind::<Timestamptz, _>(now)
    .bind::<Nullable<diesel::sql_types::Array<SqlUuid>>, _>(ids.map(<[Uuid]>::to_vec))
    .bind::<SqlUuid, _>(after)
    .bind::<BigInt, _>(PAGE)
    .load(c)?)
}

/// The tier the rules give for `view`, with the index of the rule that held.
pub fn decide(t: &Tiering, view: &Value) -> (String, Option<usize>) {
    match t.rules.iter().position(|r| r.condition.eval(view)) {
        Some(i) => (t.rules[i].tier.clone(), Some(i)),
        None => (t.default_tier.clone(), None),
    }
}

/// Applies the rules to `rows`: writes each changed tier as the system and keeps it in
/// the history. Returns how many changed.
fn apply(c: &mut PgConnection, t: &Tiering, clock: &Clock, rows: &[Figures], cause: &str) -> AppResult<usize> {
    let mut changed = 0;
    for f in rows {
        let view = f.view();
        let (tier, index) = decide(t, &view);
        if f.tier.as_deref() == Some(tier.as_str()) {
            continue;
        }
        diesel::sql_query("UPDATE accounts SET tier = $2, version = version + 1, updated_at = $3 WHERE id = $1")
            .bind::<SqlUuid, _>(f.id)
            .bind::<Text, _>(&tier)
            .bind::<Timestamptz, _>(clock.now())
            .execute(c)?;
        diesel::sql_query(
            "INSERT INTO account_tier_history (account_id, tier_from, tier_to, cause, metrics, rule_index, changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind::<SqlUuid, _>(f.id)
        .bind::<Nullable<Text>, _>(f.tier.as_deref())
        .bind::<Text, _>(&tier)
        .bind::<Text, _>(cause)
        .bind::<diesel::sql_types::Jsonb, _>(&view)
        .bind::<Nullable<Integer>, _>(index.and_then(|i| i32::try_from(i).ok()))
        .bind::<Timestamptz, _>(clock.now())
        .execute(c)?;
        changed += 1;
    }
    if changed > 0 {
        let system = Ctx::system(clock.clone());
        audit::record_pending(c, &system.actor(), "accounts", "updated")?;
    }
    Ok(changed)
}

/// One page of the full recompute: the accounts after `after`. Returns how many
/// changed, and where the next page starts (none: done, or tiering is off).
pub fn recompute_page(c: &mut PgConnection, clock: &Clock, after: Uuid) -> AppResult<(usize, Option<Uuid>)> {
    let t = get(c)?;
    if !t.enabled {
        return Ok((0, None));
    }
    let rows = figures(c, &t, clock, None, after)?;
    let changed = apply(c, &t, clock, &rows, "schedule")?;
    let next = if rows.len() as i64 == PAGE {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((changed, next))
}

/// Recomputes the given accounts now (a related record changed). Returns how many changed.
pub fn recompute_accounts(c: &mut PgConnection, clock: &Clock, ids: &[Uuid]) -> AppResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let t = get(c)?;
    if !t.enabled {
        return Ok(0);
    }
    let rows = figures(c, &t, clock, Some(ids), Uuid::nil())?;
    apply(c, &t, clock, &rows, "change")
}

/// The accounts an event concerns, when it can move a tier: a deal, contract, payment or
/// activity written (its account), or an account created.
pub fn accounts_of_event(ev: &crm_db::repo::outbox::Delivered) -> Vec<Uuid> {
    let relevant = matches!(
        ev.aggregate_type.as_str(),
        "opportunities" | "opportunity" | "contracts" | "contract" | "payments" | "payment" | "activities" | "activity"
    );
    let state = ev.payload.get("state").unwrap_or(&Value::Null);
    let before = ev
        .payload
        .get("changes")
        .and_then(|c| c.get("account_id"))
        .and_then(|c| c.get("before"));
    let mut out = Vec::new();
    if relevant {
        for v in [state.get("account_id"), before] {
            if let Some(id) = v.and_then(Value::as_str).and_then(|s| s.parse().ok()) {
                out.push(id);
            }
        }
    } else if matches!(ev.aggregate_type.as_str(), "accounts" | "account") && ev.event_type.ends_with(".created") {
        out.push(ev.aggregate_id);
    }
    out.sort();
    out.dedup();
    out
}

/// One change of an account's tier by the rules.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct TierChange {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub tier_from: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub tier_to: Option<String>,
    #[diesel(sql_type = Text)]
    pub cause: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub metrics: Value,
    #[diesel(sql_type = Nullable<Integer>)]
    pub rule_index: Option<i32>,
    #[diesel(sql_type = Timestamptz)]
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

/// An account's tier history, newest first (an account outside the caller's scope is
/// not found; without read access to `tier` the history is withheld).
pub fn history(c: &mut PgConnection, ctx: &Ctx, account: Uuid, limit: i64) -> AppResult<Vec<TierChange>> {
    let scope = ctx.filter("accounts", Action::Read)?;
    crm_db::repo::accounts::find(c, &scope, account, crm_db::repo::accounts::Liveness::Live, false)?
        .ok_or(AppError::NotFound("account"))?;
    if matches!(
        ctx.principal.field_access("accounts", "tier"),
        crm_domain::fields::FieldAccess::Hidden | crm_domain::fields::FieldAccess::Masked
    ) {
        return Err(AppError::forbidden("you may not read accounts' tier"));
    }
    Ok(diesel::sql_query(
        "SELECT id, tier_from, tier_to, cause, metrics, rule_index, changed_at FROM account_tier_history \
         WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind::<SqlUuid, _>(account)
    .bind::<BigInt, _>(limit.clamp(1, 200))
    .load(c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_that_holds_gives_the_tier_and_none_gives_the_default() {
        let t = Tiering::default();
        let view = |amount: &str, pipeline: &str, follow_ups: i64, deals: i64| {
            json!({"contract_amount": amount, "payments": "0.00", "follow_ups": follow_ups,
                   "open_pipeline": pipeline, "open_deals": deals, "days_since_activity": null})
        };
        assert_eq!(decide(&t, &view("1000000.00", "0.00", 0, 0)), ("A".into(), Some(0)));
        assert_eq!(decide(&t, &view("200000.00", "0.00", 0, 0)), ("B".into(), Some(1)));
        assert_eq!(decide(&t, &view("0.00", "600000.00", 0, 1)), ("B".into(), Some(1)));
        assert_eq!(decide(&t, &view("0.00", "1000.00", 0, 1)), ("C".into(), Some(2)));
        assert_eq!(decide(&t, &view("0.00", "0.00", 2, 0)), ("D".into(), None));
    }
}
