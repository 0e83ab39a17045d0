//! The rule engine: "if ... then ..." automation business users configure.
//!
//! A rule (object, triggers, condition, ordered actions, re-enrollment, the user it
//! acts as) is checked on save against the field catalogue and the acting user's
//! permissions. Event triggers are matched by the `rules` event subscriber
//! ([`on_event`]); time triggers are timers per record (`rule_timers`), set when a
//! record is written or a rule enabled, and fired at their exact moment by one job
//! waiting for the earliest ([`fire_due`]). Each consideration of a record is a run
//! (`rule_runs`, idempotent per event / timer) recording the version, each condition,
//! each action's result. Actions call the same operations as the API, as the rule's
//! user with a rule actor, so audit entries and events name the rule; the events they
//! cause carry the chain depth (loop guard, [`MAX_DEPTH`]).
//!
//! Enrollment: a record enrols when it matches the condition. For `updated` and
//! `field_changed` triggers only a change from not matching to matching enrols (a deal
//! that keeps matching does not fire on every edit); every other trigger is an
//! occurrence of its own. Without `re_enroll` a record enrols at most once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crm_db::repo::outbox::Delivered;
use crm_db::repo::rules::{self as repo, NewRule, NewRun, RuleChanges, RuleRow, RunOutcome, RunRow, TimerRow};
use crm_db::repo::{auth, fields, jobs, teams};
use crm_domain::access::{Action, Principal};
use crm_domain::calendar::Calendar;
use crm_domain::expr::Expr;
use crm_domain::rules::{
    add_hours, date_due, explain, in_stage_due, render, Definition, Party, RuleAction, Strategy, Trigger, MAX_DEPTH,
    OBJECTS,
};
use diesel::{Connection, PgConnection};
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::approvals::Route;
use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::notifications::{self, Planned};
use crate::tasks::{self, TaskInput};
use crate::Clock;

const RES: &str = "settings";

/// The queue of the engine's jobs (timers, scheduling, waits, retries).
pub const QUEUE: &str = "default";
/// Fires the due timers; one waits for the earliest pending timer.
pub const TIMERS: &str = "rules.timers";
/// Sets the timers of a rule's time triggers over every record, a page per run.
pub const SCHEDULE: &str = "rules.schedule";
/// Continues a run after a `wait` action.
pub const CONTINUE: &str = "rules.continue";
/// The job sweeping a schedule occurrence over the object's records.
pub const SWEEP: &str = "rules.sweep";

/// Timers fired per pass.
const TIMER_BATCH: i64 = 200;
/// Records scheduled per page.
const SCHEDULE_PAGE: i64 = 5000;
/// Records a schedule sweep considers per job.
const SWEEP_PAGE: i64 = 500;

/// What a rule is saved from.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub name: String,
    pub description: Option<String>,
    pub object: String,
    pub triggers: Value,
    pub condition: Option<Value>,
    pub actions: Value,
    pub re_enroll: Option<bool>,
    /// Defaults to the caller.
    pub acts_as: Option<Uuid>,
    pub enabled: Option<bool>,
    pub max_runs_per_hour: Option<i32>,
    /// Pause when it fires more than this many times its backtest's hourly rate.
    pub pause_factor: Option<i32>,
}

// ---------------------------------------------------------------------------------
// Validation

/// Keys a view has beyond its stored columns.
fn derived(object: &str) -> &'static [&'static str] {
    match object {
        "opportunities" => &["contacts", "weighted_amount", "stage", "account", "owner"],
        "leads" => &["response_minutes", "sla_due_at", "sla_status", "owner"],
        "quotes" => &[
            "lines",
            "free_text_lines",
            "free_text_amount",
            "discount_pct",
            "amount",
            "opportunity",
            "account",
            "owner",
        ],
        "contracts" => &["opportunity", "account", "owner"],
        "accounts" => &["owner", "type", "first_contract_signed_at"],
        _ => &["account", "owner"],
    }
}

/// Derived date fields time triggers can follow: (kind, SQL over the record `r`).
fn derived_date(object: &str, field: &str) -> Option<(&'static str, &'static str)> {
    match (object, field) {
        ("leads", "sla_due_at") => Some((
            "datetime",
            "(SELECT sla.due_at FROM lead_slas sla WHERE sla.lead_id = r.id)",
        )),
        ("accounts", "first_contract_signed_at") => Some((
            "datetime",
            "(SELECT min(k.signed_at) FROM contracts k \
              WHERE k.account_id = r.id AND k.deleted_at IS NULL AND k.signed_at IS NOT NULL)",
        )),
        _ => None,
    }
}

const OWNER_KEYS: &[&str] = &["id", "name", "email", "team_id", "manager_id", "is_active"];
const STAGE_KEYS: &[&str] = &["id", "code", "name", "kind", "probability"];

/// The fields of an object a condition may read: its view's keys.
/// (own keys, custom fields as (key, type)).
type Keys = (Vec<String>, Vec<(String, String)>);

struct Known {
    cache: HashMap<String, Keys>,
    types: HashMap<String, Vec<(String, String)>>,
}

/// The type of value a field holds, as far as saving a rule checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    Date,
    DateTime,
    Id,
}

impl Kind {
    fn of_sql(t: &str) -> Option<Kind> {
        Some(match t {
            "text" | "character varying" => Kind::Text,
            "integer" | "bigint" | "smallint" | "numeric" | "double precision" | "real" => Kind::Number,
            "boolean" => Kind::Bool,
            "date" => Kind::Date,
            "timestamp with time zone" => Kind::DateTime,
            "uuid" => Kind::Id,
            _ => return None,
        })
    }

    fn of_custom(t: &str) -> Option<Kind> {
        Some(match t {
            "text" | "long_text" | "single_select" | "email" | "phone" | "url" => Kind::Text,
            "integer" | "decimal" | "money" | "percent" => Kind::Number,
            "boolean" => Kind::Bool,
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "user_ref" | "record_ref" => Kind::Id,
            _ => return None,
        })
    }

    fn of_derived(key: &str) -> Option<Kind> {
        Some(match key {
            "weighted_amount" | "response_minutes" | "free_text_lines" | "free_text_amount" | "discount_pct"
            | "amount" => Kind::Number,
            "sla_due_at" | "first_contract_signed_at" => Kind::DateTime,
            "sla_status" => Kind::Text,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Date => "a date (YYYY-MM-DD)",
            Kind::DateTime => "a time (RFC 3339)",
            Kind::Id => "an id",
        }
    }

    /// Whether `v` is a value of this kind (null always is).
    fn fits(self, v: &Value) -> bool {
        let text = v.as_str();
        match (self, v) {
            (_, Value::Null) => true,
            (Kind::Text, _) => text.is_some(),
            (Kind::Number, Value::Number(_)) => true,
            (Kind::Number, _) => text.is_some_and(|s| s.trim().parse::<rust_decimal::Decimal>().is_ok()),
            (Kind::Bool, _) => v.is_boolean(),
            (Kind::Date, _) => text.is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            (Kind::DateTime, _) => text.is_some_and(|s| {
                DateTime::parse_from_rfc3339(s).is_ok() || chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
            }),
            (Kind::Id, _) => text.is_some_and(|s| s.parse::<Uuid>().is_ok()),
        }
    }
}

impl Known {
    fn new() -> Self {
        Known {
            cache: HashMap::new(),
            types: HashMap::new(),
        }
    }

    /// The kind of value at `path` in `object`'s view, where it is known.
    fn kind(&mut self, c: &mut PgConnection, object: &str, path: &str, depth: usize) -> AppResult<Option<Kind>> {
        let (top, rest) = match path.split_once('.') {
            Some((t, r)) => (t, Some(r)),
            None => (path, None),
        };
        if top == "custom" {
            let Some(key) = rest else { return Ok(None) };
            let (_, custom) = self.of(c, object)?;
            return Ok(custom
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, t)| Kind::of_custom(t)));
        }
        if let Some(rest) = rest {
            return Ok(match top {
                "account" if depth == 0 => self.kind(c, "accounts", rest, 1)?,
                "opportunity" if depth == 0 => self.kind(c, "opportunities", rest, 1)?,
                "owner" => match rest {
                    "id" | "team_id" | "manager_id" => Some(Kind::Id),
                    "name" | "email" => Some(Kind::Text),
                    "is_active" => Some(Kind::Bool),
                    _ => None,
                },
                "stage" => match rest {
                    "id" => Some(Kind::Id),
                    "code" | "name" | "kind" => Some(Kind::Text),
                    "probability" => Some(Kind::Number),
                    _ => None,
                },
                _ => None,
            });
        }
        if let Some(k) = Kind::of_derived(top) {
            return Ok(Some(k));
        }
        let column = if object == "accounts" && top == "type" {
            "account_type"
        } else {
            top
        };
        if !self.types.contains_key(object) {
            let table = crm_domain::events::table_of(object).unwrap_or(object);
            let types = repo::column_types(c, table)?;
            self.types.insert(object.to_owned(), types);
        }
        Ok(self.types[object]
            .iter()
            .find(|(n, _)| n == column)
            .and_then(|(_, t)| Kind::of_sql(t)))
    }

    /// Each comparison whose value does not fit its field (or whose operator does not
    /// apply to it): (field, problem).
    fn mistyped(
        &mut self,
        c: &mut PgConnection,
        object: &str,
        e: &Expr,
        out: &mut Vec<(String, String)>,
    ) -> AppResult<()> {
        use crm_domain::expr::Op;
        match e {
            Expr::All { all: l } | Expr::Any { any: l } => {
                for x in l {
                    self.mistyped(c, object, x, out)?;
                }
            }
            Expr::Not { not } => self.mistyped(c, object, not, out)?,
            Expr::Compare { field, op, value } => {
                let top = field.split('.').next().unwrap_or_default();
                if matches!(top, "changed" | "from" | "to") || matches!(op, Op::Present | Op::Blank) {
                    return Ok(());
                }
                let Some(kind) = self.kind(c, object, field, 0)? else {
                    return Ok(());
                };
                let ordered = matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte);
                if ordered && !matches!(kind, Kind::Number | Kind::Date | Kind::DateTime) {
                    out.push((
                        field.clone(),
                        format!("`{field}` holds {} and cannot be ordered", kind.name()),
                    ));
                    return Ok(());
                }
                let values: Vec<&Value> = match op {
                    Op::In | Op::NotIn => match value.as_array() {
                        Some(list) => list.iter().collect(),
                        None => {
                            out.push((field.clone(), format!("`{field}` {op:?}: a list of values")));
                            return Ok(());
                        }
                    },
                    Op::Contains if kind != Kind::Text => return Ok(()),
                    _ => vec![value],
                };
                if let Some(bad) = values.iter().find(|v| !kind.fits(v)) {
                    out.push((
                        field.clone(),
                        format!("`{field}` holds {}; {bad} is not one", kind.name()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// (own keys, custom fields as (key, type)).
    fn of(&mut self, c: &mut PgConnection, object: &str) -> AppResult<&Keys> {
        if !self.cache.contains_key(object) {
            let table = crm_domain::events::table_of(object).unwrap_or(object);
            let mut keys = repo::columns(c, table)?;
            keys.retain(|k| k != "name_norm" && k != "account_type");
            keys.extend(derived(object).iter().map(|s| (*s).to_owned()));
            let custom = fields::list(c, object, false)?
                .into_iter()
                .map(|d| (d.key, d.field_type))
                .collect();
            self.cache.insert(object.to_owned(), (keys, custom));
        }
        Ok(&self.cache[object])
    }

    /// Whether `path` names something in `object`'s record view.
    fn has(&mut self, c: &mut PgConnection, object: &str, path: &str, depth: usize) -> AppResult<bool> {
        let mut parts = path.splitn(2, '.');
        let top = parts.next().unwrap_or_default();
        let rest = parts.next();
        if depth == 0 && matches!(top, "changed" | "from" | "to") {
            return Ok(true);
        }
        if top == "custom" {
            let Some(key) = rest else { return Ok(true) };
            let (_, custom) = self.of(c, object)?;
            return Ok(custom
                .iter()
                .any(|(k, _)| k == key.split('.').next().unwrap_or_default()));
        }
        let (keys, _) = self.of(c, object)?;
        if !keys.iter().any(|k| k == top) {
            return Ok(false);
        }
        let Some(rest) = rest else { return Ok(true) };
        match top {
            "owner" => Ok(OWNER_KEYS.contains(&rest)),
            "stage" => Ok(STAGE_KEYS.contains(&rest)),
            "account" if depth == 0 => self.has(c, "accounts", rest, 1),
            "opportunity" if depth == 0 => self.has(c, "opportunities", rest, 1),
            // Lists and JSON values (lines, contacts, tags ...) are read as wholes or
            // by index.
            _ => Ok(true),
        }
    }

    /// The type of a date-like field (`date`, `datetime`), if it is one.
    fn date_kind(&mut self, c: &mut PgConnection, object: &str, path: &str) -> AppResult<Option<&'static str>> {
        if let Some(key) = path.strip_prefix("custom.") {
            let (_, custom) = self.of(c, object)?;
            return Ok(custom
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, t)| match t.as_str() {
                    "date" => Some("date"),
                    "datetime" => Some("datetime"),
                    _ => None,
                }));
        }
        let (keys, _) = self.of(c, object)?;
        if !keys.iter().any(|k| k == path) {
            return Ok(None);
        }
        if let Some((kind, _)) = derived_date(object, path) {
            return Ok(Some(kind));
        }
        let table = crm_domain::events::table_of(object).unwrap_or(object);
        column_kind(c, table, path)
    }
}

fn column_kind(c: &mut PgConnection, table: &str, column: &str) -> AppResult<Option<&'static str>> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Text)]
        data_type: String,
    }
    let t: Option<T> = diesel::sql_query(
        "SELECT data_type::text AS data_type FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
    )
    .bind::<diesel::sql_types::Text, _>(table)
    .bind::<diesel::sql_types::Text, _>(column)
    .get_result(c)
    .optional()?;
    Ok(t.and_then(|t| match t.data_type.as_str() {
        "date" => Some("date"),
        "timestamp with time zone" => Some("datetime"),
        _ => None,
    }))
}

/// The resource a rule's record updates need, and the objects update actions support.
fn updatable(object: &str) -> bool {
    matches!(object, "leads" | "accounts" | "contacts" | "opportunities" | "tasks")
}

#[allow(clippy::too_many_arguments)]
/// Parses and checks a definition for `object`, acting as `actor`; every problem is
/// named by its place (`triggers[0]`, `condition`, `actions[2].assignee`).
fn check(
    c: &mut PgConnection,
    object: &str,
    triggers: &Value,
    condition: Option<&Value>,
    actions: &Value,
    re_enroll: bool,
    actor: Option<&Principal>,
    errs: &mut Errors,
) -> AppResult<Definition> {
    let mut known = Known::new();
    let mut def = Definition {
        triggers: Vec::new(),
        condition: None,
        actions: Vec::new(),
        re_enroll,
    };
    let is_deal = object == "opportunities";
    match triggers.as_array() {
        Some(list) if !list.is_empty() && list.len() <= 10 => {
            for (i, t) in list.iter().enumerate() {
                let at = format!("triggers[{i}]");
                let t: Trigger = match serde_json::from_value(t.clone()) {
                    Ok(t) => t,
                    Err(e) => {
                        errs.add(&at, "invalid_trigger", e.to_string());
                        continue;
                    }
                };
                match &t {
                    Trigger::StageEntered { .. } | Trigger::StageLeft { .. } | Trigger::InStage { .. } if !is_deal => {
                        errs.add(&at, "trigger_not_available", format!("{} has no stages", object));
                    }
                    Trigger::FieldChanged { field, .. } if !known.has(c, object, field, 1)? => {
                        errs.add(
                            &format!("{at}.field"),
                            "no_such_field",
                            format!("{object} has no field `{field}`"),
                        );
                    }
                    Trigger::Event { action } if !crm_domain::events::is_catalogued(object, action) => {
                        errs.add(
                            &format!("{at}.action"),
                            "trigger_not_available",
                            format!("{object} has no `{action}` events (see GET /api/v1/meta/events)"),
                        );
                    }
                    Trigger::DateRelative { field, .. } if known.date_kind(c, object, field)?.is_none() => {
                        errs.add(
                            &format!("{at}.field"),
                            "no_such_field",
                            format!("{object} has no date or time field `{field}`"),
                        );
                    }
                    Trigger::Schedule { cron } => {
                        if let Err(e) = crm_domain::cron::Cron::parse(cron) {
                            errs.add(&format!("{at}.cron"), "invalid_trigger", e);
                        }
                    }
                    Trigger::ApprovalRequested {} if !matches!(object, "quotes" | "contracts") => {
                        errs.add(&at, "trigger_not_available", format!("{object} are not approved"));
                    }
                    Trigger::InStage {
                        days, no_activity_days, ..
                    } if !(0..=3650).contains(days) || no_activity_days.is_some_and(|d| !(0..=3650).contains(&d)) => {
                        errs.add(&at, "out_of_range", "days between 0 and 3650");
                    }
                    _ => {}
                }
                if let Trigger::FieldChanged { field, from, to } = &t {
                    if let Some(kind) = known.kind(c, object, field, 1)? {
                        for (k, v) in [("from", from), ("to", to)] {
                            if let Some(v) = v.as_ref().filter(|v| !kind.fits(v)) {
                                errs.add(
                                    &format!("{at}.{k}"),
                                    "wrong_value_type",
                                    format!("`{field}` holds {}; {v} is not one", kind.name()),
                                );
                            }
                        }
                    }
                }
                def.triggers.push(t);
            }
        }
        _ => errs.add("triggers", "invalid_trigger", "one to ten triggers"),
    }
    if let Some(v) = condition.filter(|v| !v.is_null()) {
        match serde_json::from_value::<Expr>(v.clone()) {
            Ok(e) => match e.validate() {
                Err(x) => errs.add("condition", "invalid_condition", x.to_string()),
                Ok(()) => {
                    let mut unknown = false;
                    for f in e.fields() {
                        if !known.has(c, object, f, 0)? {
                            unknown = true;
                            errs.add("condition", "no_such_field", format!("{object} has no field `{f}`"));
                        }
                    }
                    if !unknown {
                        let mut wrong = Vec::new();
                        known.mistyped(c, object, &e, &mut wrong)?;
                        for (_, problem) in wrong {
                            errs.add("condition", "wrong_value_type", problem);
                        }
                    }
                    def.condition = Some(e);
                }
            },
            Err(e) => errs.add("condition", "invalid_condition", format!("not a condition: {e}")),
        }
    }
    match actions.as_array() {
        Some(list) if !list.is_empty() && list.len() <= 20 => {
            for (i, a) in list.iter().enumerate() {
                let at = format!("actions[{i}]");
                let a: RuleAction = match serde_json::from_value(a.clone()) {
                    Ok(a) => a,
                    Err(e) => {
                        errs.add(&at, "invalid_action", e.to_string());
                        continue;
                    }
                };
                check_action(c, object, &a, &at, actor, &mut known, errs)?;
                def.actions.push(a);
            }
        }
        _ => errs.add("actions", "invalid_action", "one to twenty actions"),
    }
    if def.triggers.iter().any(|t| matches!(t, Trigger::ApprovalRequested {}))
        && !matches!(def.actions.as_slice(), [RuleAction::StartApproval { .. }])
    {
        errs.add(
            "actions",
            "invalid_action",
            "a routing rule (approval_requested) has exactly one action, start_approval",
        );
    }
    Ok(def)
}

fn may(actor: Option<&Principal>, resource: &str, action: Action) -> bool {
    actor.is_none_or(|p| p.scope(resource, action).is_some())
}

fn check_party(errs: &mut Errors, at: &str, s: &str) {
    if Party::parse(s).is_none() {
        errs.add(at, "invalid_party", "owner, manager, user:<id> or role:<key>");
    }
}

fn check_action(
    c: &mut PgConnection,
    object: &str,
    a: &RuleAction,
    at: &str,
    actor: Option<&Principal>,
    known: &mut Known,
    errs: &mut Errors,
) -> AppResult<()> {
    let denied = |errs: &mut Errors, what: String| {
        errs.add(at, "action_not_permitted", format!("the rule's user may not {what}"));
    };
    match a {
        RuleAction::AssignOwner {
            user_id,
            team_id,
            strategy,
            capacity,
            territories,
            reassign,
        } => {
            if !matches!(object, "leads" | "accounts" | "contacts" | "opportunities") {
                errs.add(
                    at,
                    "action_not_available",
                    format!("{object} records cannot be assigned by a rule"),
                );
            }
            let action = if object == "leads" {
                Action::Assign
            } else {
                Action::Update
            };
            if !may(actor, object, action) {
                denied(errs, format!("{action} {object}"));
            }
            if user_id.is_none() && team_id.is_none() && territories.is_empty() && !reassign {
                errs.add(at, "invalid_action", "needs user_id, team_id, territories or reassign");
            }
            if capacity.is_some_and(|n| n < 1) {
                errs.add(&format!("{at}.capacity"), "out_of_range", "at least 1");
            }
            if strategy.is_some() && team_id.is_none() && !reassign && territories.iter().all(|t| t.team_id.is_none()) {
                errs.add(
                    &format!("{at}.strategy"),
                    "invalid_action",
                    "a strategy picks among a team's members",
                );
            }
            let mut users: Vec<(String, Uuid)> = user_id.iter().map(|u| (format!("{at}.user_id"), *u)).collect();
            let mut teams_: Vec<(String, Uuid)> = team_id.iter().map(|t| (format!("{at}.team_id"), *t)).collect();
            for (j, t) in territories.iter().enumerate() {
                if t.user_id.is_none() == t.team_id.is_none() {
                    errs.add(
                        &format!("{at}.territories[{j}]"),
                        "invalid_action",
                        "exactly one of user_id, team_id",
                    );
                }
                users.extend(t.user_id.map(|u| (format!("{at}.territories[{j}].user_id"), u)));
                teams_.extend(t.team_id.map(|u| (format!("{at}.territories[{j}].team_id"), u)));
            }
            for (path, u) in users {
                if crm_db::repo::users::find(c, u)?.is_none_or(|u| !u.is_active) {
                    errs.add(&path, "not_found", "no such active user");
                }
            }
            for (path, t) in teams_ {
                if teams::find(c, t)?.is_none() {
                    errs.add(&path, "not_found", "no such team");
                }
            }
        }
        RuleAction::CreateTask {
            title,
            assignee,
            due_hours,
            priority,
            ..
        } => {
            if title.trim().is_empty() || title.chars().count() > 300 {
                errs.add(&format!("{at}.title"), "too_long", "1 to 300 characters");
            }
            check_party(errs, &format!("{at}.assignee"), assignee);
            if due_hours.is_some_and(|h| !(0..=24 * 366).contains(&h)) {
                errs.add(&format!("{at}.due_hours"), "out_of_range", "0 to 8784 hours");
            }
            if priority.as_deref().is_some_and(|p| !tasks::PRIORITIES.contains(&p)) {
                errs.add(
                    &format!("{at}.priority"),
                    "invalid_choice",
                    tasks::PRIORITIES.join(", "),
                );
            }
            if !may(actor, "tasks", Action::Create) {
                denied(errs, "create tasks".into());
            }
        }
        RuleAction::Notify { to, message } => {
            if to.is_empty() || to.len() > 20 {
                errs.add(&format!("{at}.to"), "invalid_party", "one to twenty recipients");
            }
            for (j, p) in to.iter().enumerate() {
                check_party(errs, &format!("{at}.to[{j}]"), p);
            }
            if message.trim().is_empty() || message.chars().count() > 500 {
                errs.add(&format!("{at}.message"), "too_long", "1 to 500 characters");
            }
        }
        RuleAction::UpdateField { field, value } => {
            if !updatable(object) {
                errs.add(
                    at,
                    "action_not_available",
                    format!("{object} fields cannot be set by a rule"),
                );
            } else if !known.has(c, object, field, 1)? || field.contains('.') && !field.starts_with("custom.") {
                errs.add(
                    &format!("{at}.field"),
                    "no_such_field",
                    format!("{object} has no field `{field}`"),
                );
            } else {
                if let Some(kind) = known.kind(c, object, field, 0)? {
                    if !kind.fits(value) {
                        errs.add(
                            &format!("{at}.value"),
                            "wrong_value_type",
                            format!("`{field}` holds {}; {value} is not one", kind.name()),
                        );
                    }
                }
                if !may(actor, object, Action::Update) {
                    denied(errs, format!("update {object}"));
                }
                if let Some(p) = actor {
                    let mut m = Map::new();
                    m.insert(field.clone(), Value::Null);
                    if crate::write::guard_fields(p, object, &m).is_err() {
                        denied(errs, format!("write `{field}`"));
                    }
                }
            }
        }
        RuleAction::StartApproval {
            definition_id,
            auto_approve,
        } => {
            let kind = match object {
                "quotes" => Some("quote"),
                "contracts" => Some("contract"),
                _ => None,
            };
            match kind {
                None => errs.add(at, "action_not_available", format!("{object} are not approved")),
                Some(kind) => {
                    if definition_id.is_some() && *auto_approve {
                        errs.add(at, "invalid_action", "a definition or auto_approve, not both");
                    }
                    if let Some(d) = definition_id {
                        match crm_db::repo::approvals::find_definition(c, *d, false)? {
                            Some(def) if def.object_type == kind => {}
                            _ => errs.add(
                                &format!("{at}.definition_id"),
                                "not_found",
                                format!("no approval definition of {object} with this id"),
                            ),
                        }
                    }
                    if !may(actor, object, Action::Update) {
                        denied(errs, format!("submit {object}"));
                    }
                }
            }
        }
        RuleAction::Wait { hours, .. } => {
            if !(1..=24 * 90).contains(hours) {
                errs.add(&format!("{at}.hours"), "out_of_range", "1 to 2160 hours");
            }
        }
    }
    Ok(())
}

fn acting(c: &mut PgConnection, user: Uuid) -> AppResult<Option<Arc<Principal>>> {
    Ok(auth::load_principal(c, user, None, Duration::zero())?
        .filter(|l| l.is_active)
        .map(|l| Arc::new(l.principal)))
}

/// Checks a rule's input; the definition and who it acts as.
fn validate(c: &mut PgConnection, ctx: &Ctx, input: &RuleInput, errs: &mut Errors) -> AppResult<(Definition, Uuid)> {
    if !OBJECTS.contains(&input.object.as_str()) {
        errs.add("object", "invalid_choice", format!("one of {}", OBJECTS.join(", ")));
    }
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errs.add("name", "too_long", "1 to 200 characters");
    }
    if input.description.as_ref().is_some_and(|d| d.chars().count() > 2000) {
        errs.add("description", "too_long", "at most 2000 characters");
    }
    if input.max_runs_per_hour.is_some_and(|n| n < 1) {
        errs.add("max_runs_per_hour", "out_of_range", "at least 1");
    }
    if input.pause_factor.is_some_and(|n| !(2..=1000).contains(&n)) {
        errs.add("pause_factor", "out_of_range", "2 to 1000");
    }
    let acts_as = input.acts_as.unwrap_or_else(|| ctx.user_id());
    let actor = if acts_as.is_nil() {
        errs.add("acts_as", "required", "a rule acts as a user");
        None
    } else {
        let p = acting(c, acts_as)?;
        if p.is_none() {
            errs.add("acts_as", "not_found", "no such active user");
        }
        p
    };
    if !OBJECTS.contains(&input.object.as_str()) {
        return Ok((
            Definition {
                triggers: vec![],
                condition: None,
                actions: vec![],
                re_enroll: false,
            },
            acts_as,
        ));
    }
    let def = check(
        c,
        &input.object,
        &input.triggers,
        input.condition.as_ref(),
        &input.actions,
        input.re_enroll.unwrap_or(false),
        actor.as_deref(),
        errs,
    )?;
    Ok((def, acts_as))
}

// ---------------------------------------------------------------------------------
// CRUD

fn definition_json(def: &Definition) -> Value {
    serde_json::to_value(def).unwrap_or(Value::Null)
}

/// Reads a stored definition.
pub fn definition(row: &RuleRow) -> AppResult<Definition> {
    serde_json::from_value(row.definition.clone())
        .map_err(|e| AppError::internal(format!("rule {} has an unreadable definition: {e}", row.id)))
}

/// Creates a rule (version 1); an enabled one has its time triggers scheduled.
pub fn create(c: &mut PgConnection, ctx: &Ctx, input: RuleInput) -> AppResult<RuleRow> {
    create_seeded(c, ctx, input, None)
}

fn create_seeded(c: &mut PgConnection, ctx: &Ctx, input: RuleInput, seed: Option<&str>) -> AppResult<RuleRow> {
    ctx.require(RES, Action::Admin)?;
    let mut errs = Errors::default();
    let (def, acts_as) = validate(c, ctx, &input, &mut errs)?;
    errs.into_result()?;
    let now = ctx.now();
    let by = Some(ctx.user_id()).filter(|u| !u.is_nil());
    let row = repo::insert(
        c,
        &NewRule {
            id: Uuid::now_v7(),
            name: input.name.trim().to_owned(),
            description: input.description.unwrap_or_default().trim().to_owned(),
            object: input.object,
            definition: definition_json(&def),
            acts_as,
            enabled: input.enabled.unwrap_or(false),
            max_runs_per_hour: input.max_runs_per_hour,
            pause_factor: input.pause_factor,
            seed_key: seed.map(str::to_owned),
            created_by: by,
            created_at: now,
            updated_at: now,
        },
    )?;
    repo::insert_version(c, row.id, 1, &row.name, &row.definition, by, now)?;
    if row.enabled {
        schedule_rule(c, row.id, now)?;
    }
    Ok(row)
}

pub fn list(c: &mut PgConnection, ctx: &Ctx, object: Option<&str>, archived: bool) -> AppResult<Vec<RuleRow>> {
    ctx.require(RES, Action::Admin)?;
    Ok(repo::list(c, object, archived)?)
}

pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<RuleRow> {
    ctx.require(RES, Action::Admin)?;
    repo::find(c, id)?.ok_or(AppError::NotFound("rule"))
}

fn locked(c: &mut PgConnection, id: Uuid, expected: Option<i32>) -> AppResult<RuleRow> {
    let row = repo::find_for_update(c, id)?.ok_or(AppError::NotFound("rule"))?;
    if let Some(v) = expected {
        if v != row.version {
            return Err(AppError::Stale { current: row.version });
        }
    }
    Ok(row)
}

/// A change of a rule: fields not given stay. A new definition (or name) is a new
/// version; its timers are set again.
#[derive(Debug, Clone, Default)]
pub struct RulePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub triggers: Option<Value>,
    pub condition: Option<Option<Value>>,
    pub actions: Option<Value>,
    pub re_enroll: Option<bool>,
    pub acts_as: Option<Uuid>,
    pub max_runs_per_hour: Option<Option<i32>>,
    pub pause_factor: Option<Option<i32>>,
}

pub fn update(c: &mut PgConnection, ctx: &Ctx, id: Uuid, expected: Option<i32>, p: RulePatch) -> AppResult<RuleRow> {
    ctx.require(RES, Action::Admin)?;
    let row = locked(c, id, expected)?;
    if row.archived_at.is_some() {
        return Err(AppError::conflict(
            "rule_archived",
            "an archived rule cannot be changed",
        ));
    }
    let cur = definition(&row)?;
    let cur_json = definition_json(&cur);
    let input = RuleInput {
        name: p.name.clone().unwrap_or_else(|| row.name.clone()),
        description: Some(p.description.clone().unwrap_or_else(|| row.description.clone())),
        object: row.object.clone(),
        triggers: p.triggers.clone().unwrap_or_else(|| cur_json["triggers"].clone()),
        condition: match &p.condition {
            Some(c) => c.clone(),
            None => cur_json.get("condition").cloned(),
        },
        actions: p.actions.clone().unwrap_or_else(|| cur_json["actions"].clone()),
        re_enroll: Some(p.re_enroll.unwrap_or(cur.re_enroll)),
        acts_as: Some(p.acts_as.unwrap_or(row.acts_as)),
        enabled: Some(row.enabled),
        max_runs_per_hour: p.max_runs_per_hour.unwrap_or(row.max_runs_per_hour),
        pause_factor: p.pause_factor.unwrap_or(row.pause_factor),
    };
    let mut errs = Errors::default();
    let (def, acts_as) = validate(c, ctx, &input, &mut errs)?;
    errs.into_result()?;
    let new_def = definition_json(&def);
    let name = input.name.trim().to_owned();
    let redefined = new_def != row.definition || name != row.name;
    let now = ctx.now();
    let version = if redefined {
        row.rule_version + 1
    } else {
        row.rule_version
    };
    let out = repo::update(
        c,
        id,
        &RuleChanges {
            name: Some(name.clone()),
            description: input.description.map(|d| d.trim().to_owned()),
            definition: Some(new_def.clone()),
            rule_version: Some(version),
            acts_as: Some(acts_as),
            max_runs_per_hour: Some(input.max_runs_per_hour),
            pause_factor: Some(input.pause_factor),
            ..Default::default()
        },
        now,
    )?;
    if redefined {
        let by = Some(ctx.user_id()).filter(|u| !u.is_nil());
        repo::insert_version(c, id, version, &name, &new_def, by, now)?;
        repo::clear_rule_timers(c, id)?;
        if out.enabled {
            schedule_rule(c, id, now)?;
        }
    }
    Ok(out)
}

/// Enables (scheduling its time triggers; clears an automatic pause) or disables a rule.
pub fn set_enabled(c: &mut PgConnection, ctx: &Ctx, id: Uuid, enabled: bool) -> AppResult<RuleRow> {
    ctx.require(RES, Action::Admin)?;
    let row = locked(c, id, None)?;
    if row.archived_at.is_some() && enabled {
        return Err(AppError::conflict(
            "rule_archived",
            "an archived rule cannot be enabled",
        ));
    }
    if enabled && acting(c, row.acts_as)?.is_none() {
        return Err(AppError::rule(
            "rule_actor_inactive",
            "the user the rule acts as is not active",
        ));
    }
    let now = ctx.now();
    let out = repo::update(
        c,
        id,
        &RuleChanges {
            enabled: Some(enabled),
            paused_at: Some(None),
            paused_reason: Some(None),
            ..Default::default()
        },
        now,
    )?;
    repo::clear_rule_timers(c, id)?;
    if enabled {
        schedule_rule(c, id, now)?;
    }
    Ok(out)
}

/// Archives a rule: disabled, hidden from the default list, its timers dropped.
pub fn archive(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<RuleRow> {
    ctx.require(RES, Action::Admin)?;
    let row = locked(c, id, None)?;
    if row.archived_at.is_some() {
        return Ok(row);
    }
    let out = repo::update(
        c,
        id,
        &RuleChanges {
            enabled: Some(false),
            archived_at: Some(Some(ctx.now())),
            ..Default::default()
        },
        ctx.now(),
    )?;
    repo::clear_rule_timers(c, id)?;
    Ok(out)
}

pub fn versions(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<Vec<repo::VersionRow>> {
    get(c, ctx, id)?;
    Ok(repo::versions(c, id)?)
}

/// Makes an old version's definition current again (as a new version).
pub fn restore_version(c: &mut PgConnection, ctx: &Ctx, id: Uuid, version: i32) -> AppResult<RuleRow> {
    ctx.require(RES, Action::Admin)?;
    let v = repo::version(c, id, version)?.ok_or(AppError::NotFound("rule version"))?;
    let d = &v.definition;
    update(
        c,
        ctx,
        id,
        None,
        RulePatch {
            name: Some(v.name.clone()),
            triggers: Some(d["triggers"].clone()),
            condition: Some(d.get("condition").cloned()),
            actions: Some(d["actions"].clone()),
            re_enroll: Some(d.get("re_enroll").and_then(Value::as_bool).unwrap_or(false)),
            ..Default::default()
        },
    )
}

pub fn runs(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<RunRow>> {
    get(c, ctx, id)?;
    Ok(repo::runs(c, id, status, before, limit.clamp(1, 200))?)
}

pub fn run(c: &mut PgConnection, ctx: &Ctx, id: Uuid, run_id: i64) -> AppResult<RunRow> {
    get(c, ctx, id)?;
    repo::run(c, run_id)?
        .filter(|r| r.rule_id == id)
        .ok_or(AppError::NotFound("rule run"))
}

// ---------------------------------------------------------------------------------
// Running

/// The principals rules act as, loaded once per batch.
#[derive(Default)]
pub struct Actors(HashMap<Uuid, Option<Arc<Principal>>>);

impl Actors {
    fn get(&mut self, c: &mut PgConnection, user: Uuid) -> AppResult<Option<Arc<Principal>>> {
        if let Some(p) = self.0.get(&user) {
            return Ok(p.clone());
        }
        let p = acting(c, user)?;
        self.0.insert(user, p.clone());
        Ok(p)
    }
}

/// The chain depth of an event: 0 for a person's or the system's write, the depth of
/// the rule run that wrote it otherwise (carried in the actor's `request_id`).
pub fn event_depth(payload: &Value) -> i32 {
    let actor = payload.get("actor").unwrap_or(&Value::Null);
    if actor.get("rule_id").is_none_or(Value::is_null) {
        return 0;
    }
    actor
        .get("request_id")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("rule-run:"))
        .and_then(|r| r.rsplit(':').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(1)
}

/// The business calendar (settings `business_calendar`, else the default).
pub fn calendar(c: &mut PgConnection) -> AppResult<Calendar> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        value: Value,
    }
    let v: Option<V> = diesel::sql_query("SELECT value FROM settings WHERE key = 'business_calendar'")
        .get_result(c)
        .optional()?;
    Ok(v.and_then(|v| serde_json::from_value::<Calendar>(v.value).ok())
        .filter(|c| c.validate().is_ok())
        .unwrap_or_default())
}

/// What triggered a run.
#[derive(Debug, Clone)]
pub enum Cause<'a> {
    Event(&'a Delivered),
    Timer(&'a TimerRow),
    /// An occurrence (its RFC 3339 time) of a schedule trigger.
    Schedule(&'a str),
}

fn stage_code(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|s| s.get("code"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether an event is an occurrence of a trigger, and whether it is "discrete" (an
/// occurrence of its own rather than a state change).
fn trigger_matches(t: &Trigger, ev: &Delivered) -> Option<bool> {
    let action = ev.event_type.rsplit('.').next().unwrap_or_default();
    let changes = ev.payload.get("changes").unwrap_or(&Value::Null);
    let detail = ev.payload.get("detail").unwrap_or(&Value::Null);
    match t {
        Trigger::Created {} => (action == "created").then_some(true),
        Trigger::Deleted {} => (action == "deleted").then_some(true),
        Trigger::Updated {} => matches!(action, "updated" | "stage_changed" | "assigned" | "migrated").then_some(false),
        Trigger::FieldChanged { field, from, to } => {
            let ch = changes.get(field.as_str())?;
            let ok = from.as_ref().is_none_or(|f| same(ch.get("before"), f))
                && to.as_ref().is_none_or(|t| same(ch.get("after"), t));
            ok.then_some(false)
        }
        Trigger::StageEntered { stage } => (action == "stage_changed"
            && stage
                .as_ref()
                .is_none_or(|s| stage_code(detail, "to_stage").as_deref() == Some(s)))
        .then_some(true),
        Trigger::StageLeft { stage } => (action == "stage_changed"
            && stage
                .as_ref()
                .is_none_or(|s| stage_code(detail, "from_stage").as_deref() == Some(s)))
        .then_some(true),
        Trigger::Event { action: a } => (a == action).then_some(true),
        Trigger::DateRelative { .. }
        | Trigger::InStage { .. }
        | Trigger::ApprovalRequested {}
        | Trigger::Schedule { .. } => None,
    }
}

fn same(v: Option<&Value>, want: &Value) -> bool {
    let v = v.unwrap_or(&Value::Null);
    if v == want {
        return true;
    }
    let num = |x: &Value| match x {
        Value::String(s) => s.parse::<rust_decimal::Decimal>().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    };
    matches!((num(v), num(want)), (Some(a), Some(b)) if a == b)
}

/// The record as conditions see it: the view, plus `changed` (keys), `from` and `to`
/// (values before and after) for a change.
fn eval_record(view: &Value, changes: Option<&Value>) -> Value {
    let mut r = view.clone();
    if let (Some(m), Some(Value::Object(ch))) = (r.as_object_mut(), changes) {
        let keys: Vec<Value> = ch.keys().map(|k| Value::String(k.clone())).collect();
        let from: Map<String, Value> = ch
            .iter()
            .map(|(k, v)| (k.clone(), v.get("before").cloned().unwrap_or(Value::Null)))
            .collect();
        let to: Map<String, Value> = ch
            .iter()
            .map(|(k, v)| (k.clone(), v.get("after").cloned().unwrap_or(Value::Null)))
            .collect();
        m.insert("changed".into(), Value::Array(keys));
        m.insert("from".into(), Value::Object(from));
        m.insert("to".into(), Value::Object(to));
    }
    r
}

/// One action as planned (arguments resolved) and, once run, its result.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub index: usize,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub arguments: Value,
    /// `planned` (test), `done`, `failed`, `waiting`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything actions need.
struct Env<'a> {
    rule: &'a RuleRow,
    ctx: Ctx,
    record_id: Uuid,
    view: Value,
    run_id: i64,
    cal: Calendar,
}

fn owner_of(view: &Value) -> Option<Uuid> {
    view.get("owner_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// The record owner's team (else the record's own team).
fn team_of(view: &Value) -> Option<Uuid> {
    let uuid = |v: Option<&Value>| v.and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
    uuid(view.get("owner").and_then(|o| o.get("team_id"))).or_else(|| uuid(view.get("team_id")))
}

fn party(c: &mut PgConnection, view: &Value, p: &Party) -> AppResult<Option<Uuid>> {
    let owner = owner_of(view);
    Ok(match p {
        Party::Owner => owner,
        Party::Manager => match owner {
            Some(o) => crm_db::repo::users::find(c, o)?.and_then(|u| u.manager_id),
            None => None,
        },
        Party::User(u) => Some(*u),
        Party::Role(key) => repo::user_with_role_near(c, team_of(view), key)?,
    })
}

/// The (type, id) a task about this record is related to.
fn related_of(object: &str, id: Uuid, view: &Value) -> Option<(String, Uuid)> {
    let uuid = |k: &str| view.get(k).and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
    match object {
        "leads" => Some(("lead".into(), id)),
        "accounts" => Some(("account".into(), id)),
        "contacts" => Some(("contact".into(), id)),
        "opportunities" => Some(("opportunity".into(), id)),
        _ => uuid("opportunity_id")
            .map(|o| ("opportunity".to_owned(), o))
            .or_else(|| uuid("account_id").map(|a| ("account".to_owned(), a))),
    }
}

/// Resolves an action's arguments without writing anything.
fn plan(c: &mut PgConnection, env: &Env<'_>, index: usize, a: &RuleAction) -> AppResult<Value> {
    let now = env.ctx.now();
    Ok(match a {
        RuleAction::CreateTask {
            title,
            description,
            assignee,
            due_hours,
            business_hours,
            priority,
        } => {
            let who = Party::parse(assignee).ok_or_else(|| AppError::internal("bad assignee"))?;
            let user = party(c, &env.view, &who)?;
            let due = due_hours.map(|h| add_hours(&env.cal, now, h, *business_hours));
            json!({
                "title": render(title, &env.view),
                "description": description.as_ref().map(|d| render(d, &env.view)),
                "owner_id": user,
                "assignee": assignee,
                "due_at": due,
                "priority": priority.clone().unwrap_or_else(|| "normal".into()),
                "related": related_of(&env.rule.object, env.record_id, &env.view)
                    .map(|(k, id)| json!({"type": k, "id": id})),
            })
        }
        RuleAction::Notify { to, message } => {
            let mut users = Vec::new();
            for p in to {
                let p = Party::parse(p).ok_or_else(|| AppError::internal("bad party"))?;
                // A notice goes to every holder of a role (a task to one of them).
                let found = match &p {
                    Party::Role(key) => repo::users_with_role_near(c, team_of(&env.view), key)?,
                    _ => party(c, &env.view, &p)?.into_iter().collect(),
                };
                for u in found {
                    if !users.contains(&u) {
                        users.push(u);
                    }
                }
            }
            json!({"user_ids": users, "message": render(message, &env.view)})
        }
        RuleAction::UpdateField { field, value } => json!({"field": field, "value": value}),
        RuleAction::StartApproval {
            definition_id,
            auto_approve,
        } => json!({"definition_id": definition_id, "auto_approve": auto_approve}),
        RuleAction::Wait { hours, business_hours } => {
            json!({"until": add_hours(&env.cal, now, *hours, *business_hours)})
        }
        RuleAction::AssignOwner {
            user_id,
            team_id,
            strategy,
            capacity,
            territories,
            reassign,
        } => {
            let (user, mut team, via) = match territories.iter().position(|t| t.matches(&env.view)) {
                Some(j) => (territories[j].user_id, territories[j].team_id, json!(j)),
                None => (*user_id, *team_id, Value::Null),
            };
            let current = owner_of(&env.view).filter(|_| *reassign);
            if *reassign && user.is_none() && team.is_none() {
                team = team_of(&env.view);
            }
            let picked = match (user, team) {
                (Some(u), _) => Some(u).filter(|u| Some(*u) != current),
                (None, Some(t)) => pick_member(
                    c,
                    &env.rule.object,
                    env.rule.id,
                    index,
                    t,
                    strategy.unwrap_or(Strategy::RoundRobin),
                    *capacity,
                    current,
                    now,
                )?,
                (None, None) => None,
            };
            json!({"owner_id": picked, "team_id": team, "territory": via, "strategy": strategy})
        }
    })
}

fn open_condition(object: &str) -> &'static str {
    match object {
        "leads" => "r.status NOT IN ('converted', 'disqualified')",
        "opportunities" => "r.status = 'open'",
        _ => "true",
    }
}

/// A team member for an assignment (read-only: the round-robin cursor moves when the
/// assignment is made), never `exclude`.
#[allow(clippy::too_many_arguments)]
fn pick_member(
    c: &mut PgConnection,
    object: &str,
    rule: Uuid,
    index: usize,
    team: Uuid,
    strategy: Strategy,
    capacity: Option<i64>,
    exclude: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Option<Uuid>> {
    let table = crm_domain::events::table_of(object).unwrap_or("leads");
    let members = repo::members_with_load(c, team, table, open_condition(object), now)?;
    let eligible: Vec<(Uuid, i64)> = members
        .into_iter()
        .filter(|(u, load)| capacity.is_none_or(|cap| *load < cap) && Some(*u) != exclude)
        .collect();
    Ok(match strategy {
        Strategy::LeastLoaded => eligible.iter().min_by_key(|(_, l)| *l).map(|(u, _)| *u),
        Strategy::RoundRobin => {
            use diesel::prelude::*;
            let last: Option<Uuid> = repo::rule_cursors::table
                .find((rule, i32::try_from(index).unwrap_or(0)))
                .select(repo::rule_cursors::last_user_id)
                .first::<Option<Uuid>>(c)
                .optional()?
                .flatten();
            let pos = last.and_then(|l| eligible.iter().position(|(u, _)| *u == l));
            match pos {
                Some(p) => eligible.get((p + 1) % eligible.len()).map(|(u, _)| *u),
                None => eligible.first().map(|(u, _)| *u),
            }
        }
    })
}

fn uuid_arg(args: &Value, key: &str) -> Option<Uuid> {
    args.get(key).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// Performs a planned action.
fn perform(c: &mut PgConnection, env: &Env<'_>, index: usize, a: &RuleAction, args: &Value) -> AppResult<Value> {
    let ctx = &env.ctx;
    let object = env.rule.object.as_str();
    match a {
        RuleAction::CreateTask { .. } => {
            let owner = uuid_arg(args, "owner_id")
                .ok_or_else(|| AppError::rule("no_assignee", "nobody to give the task to"))?;
            let related = args
                .get("related")
                .filter(|r| !r.is_null())
                .and_then(|r| Some((r.get("type")?.as_str()?.to_owned(), uuid_arg(r, "id")?)));
            let row = tasks::create(
                c,
                ctx,
                TaskInput {
                    title: args["title"].as_str().unwrap_or_default().to_owned(),
                    description: args["description"].as_str().map(str::to_owned),
                    due_at: args["due_at"].as_str().and_then(|s| s.parse().ok()),
                    reminder_at: None,
                    priority: args["priority"].as_str().unwrap_or("normal").to_owned(),
                    owner_id: Some(owner),
                    related,
                    origin: "rule".into(),
                },
            )?;
            Ok(json!({"task_id": row.id}))
        }
        RuleAction::Notify { .. } => {
            let message = args["message"].as_str().unwrap_or_default().to_owned();
            let mut sent = Vec::new();
            for u in args["user_ids"].as_array().into_iter().flatten() {
                let Some(user) = u.as_str().and_then(|s| s.parse::<Uuid>().ok()) else {
                    continue;
                };
                let n = Planned {
                    user_id: user,
                    kind: "rule_alert",
                    object_type: object.to_owned(),
                    object_id: env.record_id,
                    title_zh: message.clone(),
                    title_en: message.clone(),
                };
                let id = Uuid::from_u64_pair(u64::try_from(env.run_id).unwrap_or(0), index as u64);
                if notifications::write(c, &n, id, ctx.now())? > 0 {
                    let key = format!("rule-run:{}:{index}:{user}", env.run_id);
                    crate::channels::personal(c, user, &message, key, ctx.now())?;
                    sent.push(user);
                }
            }
            Ok(json!({"notified": sent}))
        }
        RuleAction::UpdateField { field, value } => {
            let mut m = Map::new();
            if let Some(key) = field.strip_prefix("custom.") {
                m.insert("custom".into(), json!({ key: value }));
            } else {
                m.insert(field.clone(), value.clone());
            }
            update_record(c, ctx, object, env.record_id, &m)?;
            Ok(json!({"updated": field}))
        }
        RuleAction::AssignOwner { team_id, .. } => {
            let owner = uuid_arg(args, "owner_id").ok_or_else(|| {
                AppError::rule(
                    "no_assignee",
                    "no member of the team can take it (inactive or at capacity)",
                )
            })?;
            if object == "leads" {
                crate::leads::assign(c, ctx, &[env.record_id], owner)?;
            } else {
                let mut m = Map::new();
                m.insert("owner_id".into(), json!(owner));
                update_record(c, ctx, object, env.record_id, &m)?;
            }
            if team_id.is_some() || args.get("team_id").is_some_and(|t| !t.is_null()) {
                let i = i32::try_from(index).unwrap_or(0);
                repo::cursor(c, env.rule.id, i)?;
                repo::set_cursor(c, env.rule.id, i, owner)?;
            }
            Ok(json!({"owner_id": owner}))
        }
        RuleAction::StartApproval {
            definition_id,
            auto_approve,
        } => {
            let route = route_of(env.rule, *definition_id, *auto_approve);
            let status = match object {
                "quotes" => crate::quotes::submit_routed(c, ctx, env.record_id, route)?.status,
                "contracts" => crate::contracts::submit_routed(c, ctx, env.record_id, route)?.status,
                _ => {
                    return Err(AppError::rule(
                        "action_not_available",
                        format!("{object} are not approved"),
                    ))
                }
            };
            Ok(json!({"status": status}))
        }
        RuleAction::Wait { .. } => Ok(args.clone()),
    }
}

fn route_of(rule: &RuleRow, definition_id: Option<Uuid>, auto_approve: bool) -> Option<Route> {
    if auto_approve {
        Some(Route::Auto(format!("rule `{}` approves it automatically", rule.name)))
    } else {
        definition_id.map(Route::Definition)
    }
}

/// Approval routing, inside the submission: the first enabled rule of the object with
/// an `approval_requested` trigger whose condition holds for the record routes it as
/// its `start_approval` says; the run is logged. `None`: no rule routes it (the first
/// matching approval definition does).
pub fn route_approval(
    c: &mut PgConnection,
    object_type: &str,
    record_id: Uuid,
    record: &Value,
    now: DateTime<Utc>,
) -> AppResult<Option<Route>> {
    let object = match object_type {
        "quote" => "quotes",
        "contract" => "contracts",
        _ => return Ok(None),
    };
    for rule in repo::enabled(c, Some(object))? {
        let def = definition(&rule)?;
        if !def.triggers.iter().any(|t| matches!(t, Trigger::ApprovalRequested {})) {
            continue;
        }
        if !def.condition.as_ref().is_none_or(|e| e.eval(record)) {
            continue;
        }
        let Some(
            a @ RuleAction::StartApproval {
                definition_id,
                auto_approve,
            },
        ) = def.actions.first()
        else {
            continue;
        };
        let Some(route) = route_of(&rule, *definition_id, *auto_approve) else {
            continue;
        };
        let run = repo::start_run(
            c,
            &NewRun {
                rule_id: rule.id,
                rule_version: rule.rule_version,
                trigger: "approval_requested".into(),
                event_id: None,
                timer_id: None,
                occurrence: None,
                object: object.into(),
                record_id,
                status: "done".into(),
                depth: 1,
                retry_of: None,
                created_at: now,
            },
        )?;
        if let Some(run_id) = run {
            let conditions = match &def.condition {
                Some(e) => serde_json::to_value(explain(e, record)).unwrap_or_default(),
                None => json!([]),
            };
            let report = ActionReport {
                index: 0,
                kind: a.name(),
                arguments: json!({"definition_id": definition_id, "auto_approve": auto_approve}),
                status: "done",
                result: Some(json!({"routed": true})),
                error: None,
            };
            repo::finish_run(
                c,
                run_id,
                &RunOutcome {
                    status: "done",
                    reason: Some("routed the approval request".into()),
                    conditions,
                    actions: json!([report]),
                    error: None,
                },
                now,
            )?;
        }
        return Ok(Some(route));
    }
    Ok(None)
}

fn update_record(c: &mut PgConnection, ctx: &Ctx, object: &str, id: Uuid, m: &Map<String, Value>) -> AppResult<()> {
    match object {
        "leads" => crate::leads::update(c, ctx, id, None, m).map(|_| ()),
        "accounts" => crate::accounts::update(c, ctx, id, None, m).map(|_| ()),
        "contacts" => crate::contacts::update(c, ctx, id, None, m).map(|_| ()),
        "opportunities" => crate::opportunities::update(c, ctx, id, None, m).map(|_| ()),
        "tasks" => tasks::update(c, ctx, id, None, m).map(|_| ()),
        _ => Err(AppError::rule(
            "action_not_available",
            format!("{object} fields cannot be set by a rule"),
        )),
    }
}

/// Runs actions from `from`, each in a savepoint: a failing action is rolled back alone
/// and stops the run's later actions (the run is `failed` and can be retried from
/// there); a `wait` holds the rest in a job. Returns (status, reports, error).
fn execute(
    c: &mut PgConnection,
    env: &Env<'_>,
    def: &Definition,
    from: usize,
) -> AppResult<(&'static str, Vec<ActionReport>, Option<String>)> {
    let mut reports = Vec::new();
    for (i, a) in def.actions.iter().enumerate().skip(from) {
        let outcome = c.transaction(|c| {
            let args = plan(c, env, i, a)?;
            let result = perform(c, env, i, a, &args)?;
            Ok::<_, AppError>((args, result))
        });
        match outcome {
            Ok((args, result)) => {
                if let RuleAction::Wait { .. } = a {
                    let until: DateTime<Utc> = args["until"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| env.ctx.now());
                    jobs::enqueue(
                        c,
                        &jobs::NewJob::new(QUEUE, CONTINUE, json!({"run_id": env.run_id, "from": i + 1}))
                            .unique(format!("rule-continue:{}:{}", env.run_id, i + 1))
                            .at(until),
                    )?;
                    reports.push(ActionReport {
                        index: i,
                        kind: a.name(),
                        arguments: args,
                        status: "waiting",
                        result: None,
                        error: None,
                    });
                    return Ok(("waiting", reports, None));
                }
                reports.push(ActionReport {
                    index: i,
                    kind: a.name(),
                    arguments: args,
                    status: "done",
                    result: Some(result),
                    error: None,
                });
            }
            Err(AppError::Db(e)) => return Err(AppError::Db(e)),
            Err(e) => {
                let msg = describe(&e);
                reports.push(ActionReport {
                    index: i,
                    kind: a.name(),
                    arguments: Value::Null,
                    status: "failed",
                    result: None,
                    error: Some(msg.clone()),
                });
                return Ok(("failed", reports, Some(format!("actions[{i}] ({}): {msg}", a.name()))));
            }
        }
    }
    Ok(("done", reports, None))
}

fn describe(e: &AppError) -> String {
    match e {
        AppError::Validation(errs) => errs
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn rule_ctx(actor: Arc<Principal>, rule: Uuid, run: i64, depth: i32, clock: &Clock) -> Ctx {
    let mut ctx = Ctx::rule(rule, actor, clock.clone());
    ctx.request_id = Some(format!("rule-run:{run}:{depth}"));
    ctx
}

/// What considering one record needs besides the rule: the record's view (read once
/// per event or timer, shared by every rule), the calendar and the acting principals.
pub struct Seen<'a> {
    pub view: Option<&'a Value>,
    pub cal: &'a Calendar,
    pub actors: &'a mut Actors,
}

/// Considers one record for one rule because of `cause`: checks the loop guard, the
/// condition and enrollment, records a run (once per event / timer occurrence), the
/// rate threshold, then runs the actions. A record that does not match is not logged
/// (only its enrollment state is kept; the test endpoint shows why); every enrollment,
/// and every refusal of a matching record, is. Returns the run id, `None` when no run
/// was recorded (no match, or it ran already).
#[allow(clippy::too_many_arguments)]
fn consider(
    c: &mut PgConnection,
    clock: &Clock,
    rule: &RuleRow,
    def: &Definition,
    trigger: &Trigger,
    discrete: bool,
    cause: Cause<'_>,
    record_id: Uuid,
    depth: i32,
    seen: &mut Seen<'_>,
) -> AppResult<Option<i64>> {
    let now = clock.now();
    let (event_id, timer_id, occurrence, changes) = match cause {
        Cause::Event(ev) => (Some(ev.event_id), None, None, ev.payload.get("changes")),
        Cause::Timer(t) => (None, Some(t.id), Some(t.token.clone()), None),
        Cause::Schedule(at) => (None, None, Some(format!("schedule:{at}")), None),
    };
    let new_run = |status: &str| NewRun {
        rule_id: rule.id,
        rule_version: rule.rule_version,
        trigger: trigger.name().to_owned(),
        event_id,
        timer_id,
        occurrence: occurrence.clone(),
        object: rule.object.clone(),
        record_id,
        status: status.into(),
        depth,
        retry_of: None,
        created_at: now,
    };
    let finish = |c: &mut PgConnection,
                  run_id: i64,
                  status: &str,
                  reason: Option<String>,
                  conditions: Value,
                  actions: Value,
                  error: Option<String>| {
        repo::finish_run(
            c,
            run_id,
            &RunOutcome {
                status,
                reason,
                conditions,
                actions,
                error,
            },
            now,
        )
    };
    if depth > MAX_DEPTH {
        let Some(run_id) = repo::start_run(c, &new_run("loop_guard"))? else {
            return Ok(None);
        };
        tracing::warn!(rule = %rule.id, record = %record_id, depth, "rule loop guard hit");
        let reason = format!("rules triggered rules {depth} deep (limit {MAX_DEPTH})");
        finish(c, run_id, "loop_guard", Some(reason), json!([]), json!([]), None)?;
        return Ok(Some(run_id));
    }
    let Some(view) = seen.view else {
        return Ok(None);
    };
    let record = eval_record(view, changes);
    let matches = def.condition.as_ref().is_none_or(|e| e.eval(&record));
    let (was, times) = repo::enrollment(c, rule.id, record_id)?.unwrap_or((false, 0));
    if !matches {
        if was {
            repo::set_enrollment(c, rule.id, record_id, false, false, now)?;
        }
        return Ok(None);
    }
    let Some(run_id) = repo::start_run(c, &new_run("skipped"))? else {
        return Ok(None);
    };
    let conditions = match &def.condition {
        Some(e) => serde_json::to_value(explain(e, &record)).unwrap_or_default(),
        None => json!([]),
    };
    let enrol = (discrete || !was) && (def.re_enroll || times == 0);
    repo::set_enrollment(c, rule.id, record_id, true, enrol, now)?;
    if !enrol {
        let reason = if times > 0 && !def.re_enroll {
            "the record enrolled before and re-enrollment is off"
        } else {
            "the record already matched (no change from not matching to matching)"
        };
        finish(c, run_id, "skipped", Some(reason.into()), conditions, json!([]), None)?;
        return Ok(Some(run_id));
    }
    let limited = rule.max_runs_per_hour.is_some() || rule.pause_factor.is_some();
    let acted = if limited {
        repo::acted_since(c, rule.id, now - Duration::hours(1))?
    } else {
        0
    };
    if let Some((max, why)) = threshold(c, rule, def, now, acted)? {
        if acted >= max {
            let reason = format!("paused: {acted} runs in an hour, {why}");
            repo::update(
                c,
                rule.id,
                &RuleChanges {
                    enabled: Some(false),
                    paused_at: Some(Some(now)),
                    paused_reason: Some(Some(reason.clone())),
                    ..Default::default()
                },
                now,
            )?;
            // Its pending timers are dropped as they come due (deleting them here could
            // wait on timers another worker holds, while it waits on this rule).
            tracing::warn!(rule = %rule.id, max, "rule paused by its run threshold");
            finish(c, run_id, "skipped", Some(reason), conditions, json!([]), None)?;
            return Ok(Some(run_id));
        }
    }
    let Some(actor) = seen.actors.get(c, rule.acts_as)? else {
        let error = Some("the user the rule acts as is not active".to_owned());
        finish(c, run_id, "failed", None, conditions, json!([]), error)?;
        return Ok(Some(run_id));
    };
    let env = Env {
        rule,
        ctx: rule_ctx(actor, rule.id, run_id, depth, clock),
        record_id,
        view: view.clone(),
        run_id,
        cal: seen.cal.clone(),
    };
    let (status, reports, error) = execute(c, &env, def, 0)?;
    let reports = serde_json::to_value(reports).unwrap_or_default();
    finish(c, run_id, status, None, conditions, reports, error)?;
    Ok(Some(run_id))
}

/// Runs in a busy hour before the backtest comparison is made (noise below this).
const PAUSE_FLOOR: i64 = 20;

/// The runs per hour at which the rule pauses itself, and why: its fixed
/// `max_runs_per_hour`, or `pause_factor` times the hourly rate a replay of the past
/// week predicts (the baseline, recomputed when a day old and the rule is busy);
/// `acted` is how many runs acted in the past hour.
fn threshold(
    c: &mut PgConnection,
    rule: &RuleRow,
    def: &Definition,
    now: DateTime<Utc>,
    acted: i64,
) -> AppResult<Option<(i64, String)>> {
    let fixed = rule
        .max_runs_per_hour
        .map(|m| (i64::from(m), format!("more than its limit of {m}")));
    let Some(factor) = rule.pause_factor else {
        return Ok(fixed);
    };
    if acted < PAUSE_FLOOR {
        return Ok(fixed);
    }
    let baseline = match (rule.baseline_per_hour, rule.baseline_at) {
        (Some(b), Some(at)) if now - at < Duration::days(1) => b,
        _ => {
            // The week before the busy hour.
            let week = replay(
                c,
                rule,
                def,
                now - Duration::days(7) - Duration::hours(1),
                now - Duration::hours(1),
            )?;
            let b = week.fired as f64 / (7.0 * 24.0);
            repo::set_baseline(c, rule.id, b, now)?;
            b
        }
    };
    let by_backtest = (f64::from(factor) * baseline.max(1.0)).ceil().max(PAUSE_FLOOR as f64) as i64;
    let predicted = format!("{factor} x the {baseline:.1} per hour its backtest of the past week predicts");
    Ok(Some(match fixed {
        Some((m, why)) if m <= by_backtest => (m, why),
        _ => (by_backtest, predicted),
    }))
}

/// The `rules` event subscriber: every enabled rule of the event's object whose
/// triggers take the event is considered for its record; time triggers of the record
/// are set again. Handling an event twice runs nothing twice. Returns runs started.
pub fn on_event(c: &mut PgConnection, clock: &Clock, ev: &Delivered, actors: &mut Actors) -> AppResult<usize> {
    let object = ev.aggregate_type.as_str();
    if !OBJECTS.contains(&object) {
        return Ok(0);
    }
    if object == "contracts" {
        follow_account(c, clock, ev)?;
    }
    let rules = repo::enabled(c, Some(object))?;
    if rules.is_empty() {
        return Ok(0);
    }
    let depth = event_depth(&ev.payload) + 1;
    let deleted = ev.event_type.ends_with(".deleted");
    // The record as it is now, read once for every rule (a deleted one as the recycle
    // bin keeps it, for its conditions; it has no timers).
    let view = crate::record::view(c, object, ev.aggregate_id)?;
    let live = view
        .as_ref()
        .filter(|v| !deleted && v.get("deleted_at").is_none_or(Value::is_null));
    let cal = calendar(c)?;
    let defs: Vec<Definition> = rules.iter().map(definition).collect::<AppResult<_>>()?;
    let ids: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
    // Which rules the record matched last time: a rule it matches neither now nor
    // then costs no further query.
    let was_matching = repo::matching_of(c, ev.aggregate_id, &ids)?;
    let record = view.as_ref().map(|v| eval_record(v, ev.payload.get("changes")));
    let mut started = 0;
    for (rule, def) in rules.iter().zip(&defs) {
        for (i, t) in def.triggers.iter().enumerate() {
            if t.is_timed() {
                set_record_timer(c, clock, rule, i, t, ev.aggregate_id, live, &cal)?;
            }
        }
        if rule.created_at > ev.committed_at {
            continue;
        }
        let Some((t, discrete)) = def.triggers.iter().find_map(|t| trigger_matches(t, ev).map(|d| (t, d))) else {
            continue;
        };
        let matches = record
            .as_ref()
            .is_some_and(|r| def.condition.as_ref().is_none_or(|e| e.eval(r)));
        if !matches && depth <= MAX_DEPTH && !was_matching.contains(&rule.id) {
            continue;
        }
        let mut seen = Seen {
            view: view.as_ref(),
            cal: &cal,
            actors,
        };
        // A rule failing for its own reasons never stops the others (or the stream).
        let r = c.transaction(|c| {
            consider(
                c,
                clock,
                rule,
                def,
                t,
                discrete,
                Cause::Event(ev),
                ev.aggregate_id,
                depth,
                &mut seen,
            )
        });
        match r {
            Ok(Some(_)) => started += 1,
            Ok(None) => {}
            Err(AppError::Db(e)) => return Err(AppError::Db(e)),
            Err(e) => tracing::error!(rule = %rule.id, event = %ev.event_id, error = %e, "rule run failed"),
        }
    }
    Ok(started)
}

/// A contract's change can move its account's first-contract date: the account's
/// timers that follow it are set again.
fn follow_account(c: &mut PgConnection, clock: &Clock, ev: &Delivered) -> AppResult<()> {
    let follows = |t: &Trigger| matches!(t, Trigger::DateRelative { field, .. } if field == "first_contract_signed_at");
    let rules: Vec<(RuleRow, Definition)> = repo::enabled(c, Some("accounts"))?
        .into_iter()
        .map(|r| definition(&r).map(|d| (r, d)))
        .collect::<AppResult<_>>()?;
    if !rules.iter().any(|(_, d)| d.triggers.iter().any(follows)) {
        return Ok(());
    }
    let account = crate::record::view(c, "contracts", ev.aggregate_id)?
        .as_ref()
        .and_then(|v| v.get("account_id"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Uuid>().ok());
    let Some(account) = account else { return Ok(()) };
    let view = crate::record::view(c, "accounts", account)?;
    let live = view.as_ref().filter(|v| v.get("deleted_at").is_none_or(Value::is_null));
    let cal = calendar(c)?;
    for (rule, def) in &rules {
        for (i, t) in def.triggers.iter().enumerate() {
            if follows(t) {
                set_record_timer(c, clock, rule, i, t, account, live, &cal)?;
            }
        }
    }
    Ok(())
}

/// Advances the timer job to `at` (one waits for the earliest timer).
fn wake_timers(c: &mut PgConnection, at: DateTime<Utc>) -> AppResult<()> {
    jobs::enqueue_or_advance(c, QUEUE, TIMERS, &json!({}), TIMERS, at)?;
    Ok(())
}

/// (due, token) of a record's time trigger from its view, `None` when it has none.
fn due_of(t: &Trigger, view: &Value, cal: &Calendar, now: DateTime<Utc>) -> Option<(DateTime<Utc>, String)> {
    match t {
        Trigger::DateRelative {
            field,
            offset_days,
            offset_hours,
            yearly,
            at,
        } => date_due(
            crm_domain::expr::lookup(view, field),
            *offset_days,
            *offset_hours,
            *yearly,
            *at,
            cal,
            now,
            Duration::hours(1),
        ),
        Trigger::InStage {
            days,
            no_activity_days,
            stage,
        } => {
            if view.get("status").and_then(Value::as_str) != Some("open") {
                return None;
            }
            if let Some(s) = stage {
                if view.get("stage").and_then(|s| s.get("code")).and_then(Value::as_str) != Some(s) {
                    return None;
                }
            }
            let at = |k: &str| {
                view.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            };
            let entered = at("stage_entered_at")?;
            Some(in_stage_due(entered, at("last_activity_at"), *days, *no_activity_days))
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn set_record_timer(
    c: &mut PgConnection,
    clock: &Clock,
    rule: &RuleRow,
    index: usize,
    t: &Trigger,
    record: Uuid,
    view: Option<&Value>,
    cal: &Calendar,
) -> AppResult<()> {
    let i = i32::try_from(index).unwrap_or(0);
    match view.and_then(|v| due_of(t, v, cal, clock.now())) {
        Some((due, token)) => {
            if repo::set_timer(c, rule.id, i, record, due, &token)? {
                wake_timers(c, due)?;
            }
        }
        None => {
            repo::clear_timer(c, rule.id, i, record)?;
        }
    }
    Ok(())
}

/// Queues the scheduling of a rule's time triggers over every record.
fn schedule_rule(c: &mut PgConnection, rule: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    jobs::enqueue(
        c,
        &jobs::NewJob::new(QUEUE, SCHEDULE, json!({"rule_id": rule, "after": Uuid::nil()}))
            .unique(format!("rule-schedule:{rule}"))
            .at(now),
    )?;
    Ok(())
}

/// The SQL reading a time trigger's input from a record `r` (and stage `s`): column
/// names come from the validated definition and are quoted.
fn input_sql(object: &str, t: &Trigger) -> Option<String> {
    let ident = |s: &str| {
        s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            .then(|| format!("\"{s}\""))
    };
    match t {
        Trigger::DateRelative { field, .. } => match field.strip_prefix("custom.") {
            Some(key) => ident(key).map(|_| format!("r.custom->>'{key}'")),
            None => match derived_date(object, field) {
                Some((_, sql)) => Some(sql.to_owned()),
                None => ident(field).map(|f| format!("r.{f}")),
            },
        },
        Trigger::InStage { .. } => Some(
            "json_build_object('status', r.status, 'stage', json_build_object('code', s.code), \
             'stage_entered_at', r.stage_entered_at, 'last_activity_at', r.last_activity_at)"
                .into(),
        ),
        _ => None,
    }
}

/// One page of scheduling a rule: sets the timers of its time triggers for up to
/// [`SCHEDULE_PAGE`] records after `after`; returns the last id when there is more.
pub fn schedule_page(c: &mut PgConnection, clock: &Clock, rule_id: Uuid, after: Uuid) -> AppResult<Option<Uuid>> {
    let Some(rule) = repo::find(c, rule_id)? else {
        return Ok(None);
    };
    if !rule.enabled || rule.archived_at.is_some() {
        return Ok(None);
    }
    let def = definition(&rule)?;
    let table = crm_domain::events::table_of(&rule.object).unwrap_or("leads");
    let cal = calendar(c)?;
    let now = clock.now();
    let mut last = None;
    let mut earliest: Option<DateTime<Utc>> = None;
    if after.is_nil() {
        // A schedule has one timer, for the rule itself (record nil).
        for (i, t) in def.triggers.iter().enumerate() {
            if let Some(next) = t.next_scheduled(now, &cal) {
                repo::set_timer(
                    c,
                    rule.id,
                    i32::try_from(i).unwrap_or(0),
                    Uuid::nil(),
                    next,
                    &next.to_rfc3339(),
                )?;
                earliest = Some(earliest.map_or(next, |e| e.min(next)));
            }
        }
    }
    for (i, t) in def.triggers.iter().enumerate() {
        let Some(sql) = input_sql(&rule.object, t) else {
            continue;
        };
        let rows = repo::timer_inputs(c, table, &sql, after, SCHEDULE_PAGE)?;
        let mut timers = Vec::new();
        for (id, v) in &rows {
            let view = timer_view(t, v.as_deref());
            if let Some((due, token)) = due_of(t, &view, &cal, now) {
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
                timers.push((*id, due, token));
            }
        }
        repo::set_timers(c, rule.id, i32::try_from(i).unwrap_or(0), &timers)?;
        if rows.len() as i64 == SCHEDULE_PAGE {
            last = rows.last().map(|r| r.0).into_iter().chain(last).min();
        }
    }
    if let Some(at) = earliest {
        wake_timers(c, at)?;
    }
    Ok(last)
}

/// The part of a record's view a time trigger reads, from its input SQL's text.
fn timer_view(t: &Trigger, v: Option<&str>) -> Value {
    let value: Value = match (t, v) {
        (_, None) => Value::Null,
        (Trigger::InStage { .. }, Some(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        (_, Some(s)) => Value::String(s.replace(' ', "T")),
    };
    match t {
        Trigger::DateRelative { field, .. } => {
            let mut m = Map::new();
            match field.strip_prefix("custom.") {
                Some(k) => {
                    m.insert("custom".into(), json!({ k: value }));
                }
                None => {
                    m.insert(field.clone(), normalise_time(&value));
                }
            }
            Value::Object(m)
        }
        _ => normalise_in_stage(value),
    }
}

/// Postgres text of a timestamp (`2026-12-01 08:00:00+00`) as RFC 3339.
fn normalise_time(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if s.len() > 10 => {
            let t = s.replace(' ', "T");
            let t = if t.ends_with("+00") { format!("{t}:00") } else { t };
            Value::String(t)
        }
        _ => v.clone(),
    }
}

fn normalise_in_stage(mut v: Value) -> Value {
    for k in ["stage_entered_at", "last_activity_at"] {
        if let Some(x) = v.get(k).cloned() {
            let t = x.as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok());
            v[k] = json!(t);
        }
    }
    v
}

/// Fires the due timers (a batch; others running at once take other timers) and waits
/// for the next one. Each timer is re-checked against its record first: a date moved
/// or a new stage entry reschedules it instead. Returns how many fired.
pub fn fire_due(c: &mut PgConnection, clock: &Clock) -> AppResult<usize> {
    let now = clock.now();
    let due = repo::claim_due(c, now, TIMER_BATCH)?;
    let mut actors = Actors::default();
    let cal = calendar(c)?;
    let mut fired = 0;
    let mut rules: HashMap<Uuid, Option<(RuleRow, Definition)>> = HashMap::new();
    for timer in &due {
        if let std::collections::hash_map::Entry::Vacant(e) = rules.entry(timer.rule_id) {
            let r = repo::find(c, timer.rule_id)?
                .filter(|r| r.enabled && r.archived_at.is_none())
                .map(|r| definition(&r).map(|d| (r, d)))
                .transpose()?;
            e.insert(r);
        }
        let Some((rule, def)) = rules.get(&timer.rule_id).and_then(Option::as_ref) else {
            // Disabled, paused or archived: this timer (held by this worker) goes.
            repo::clear_timer(c, timer.rule_id, timer.trigger_index, timer.record_id)?;
            continue;
        };
        let Some(t) = def
            .triggers
            .get(usize::try_from(timer.trigger_index).unwrap_or(usize::MAX))
        else {
            repo::clear_timer(c, rule.id, timer.trigger_index, timer.record_id)?;
            continue;
        };
        if let Trigger::Schedule { .. } = t {
            // An occurrence of a schedule: a sweep over the object's records, then the
            // next occurrence.
            jobs::enqueue(
                c,
                &jobs::NewJob::new(
                    QUEUE,
                    SWEEP,
                    json!({"rule_id": rule.id, "trigger_index": timer.trigger_index, "occurrence": timer.token,
                           "after": Uuid::nil()}),
                )
                .unique(format!(
                    "rule-sweep:{}:{}:{}",
                    rule.id, timer.trigger_index, timer.token
                ))
                .at(now),
            )?;
            match t.next_scheduled(timer.due_at.max(now), &cal) {
                Some(next) => repo::reschedule(c, timer.id, next, &next.to_rfc3339())?,
                None => repo::mark_fired(c, timer.id, now)?,
            }
            continue;
        }
        let view = crate::record::view(c, &rule.object, timer.record_id)?
            .filter(|v| v.get("deleted_at").is_none_or(Value::is_null));
        let Some(view) = view else {
            repo::clear_timer(c, rule.id, timer.trigger_index, timer.record_id)?;
            continue;
        };
        // What the record says now (the occurrence at or after the stored one).
        match due_of(t, &view, &cal, timer.due_at - Duration::seconds(1)) {
            None => {
                repo::clear_timer(c, rule.id, timer.trigger_index, timer.record_id)?;
                continue;
            }
            Some((d, token)) if d > now || token != timer.token => {
                repo::reschedule(c, timer.id, d, &token)?;
                continue;
            }
            Some(_) => {}
        }
        let mut seen = Seen {
            view: Some(&view),
            cal: &cal,
            actors: &mut actors,
        };
        let r = c.transaction(|c| {
            consider(
                c,
                clock,
                rule,
                def,
                t,
                true,
                Cause::Timer(timer),
                timer.record_id,
                1,
                &mut seen,
            )
        });
        match r {
            Ok(Some(_)) => fired += 1,
            Ok(None) => {}
            Err(AppError::Db(e)) => return Err(AppError::Db(e)),
            Err(e) => tracing::error!(rule = %rule.id, timer = timer.id, error = %e, "timed rule run failed"),
        }
        let paused = rule.max_runs_per_hour.is_some() && repo::find(c, rule.id)?.is_none_or(|r| !r.enabled);
        // A yearly date waits for next year; anything else has fired.
        let next = match t {
            Trigger::DateRelative { yearly: true, .. } => due_of(t, &view, &cal, timer.due_at + Duration::seconds(1)),
            _ => None,
        };
        match next {
            Some((d, token)) => repo::reschedule(c, timer.id, d, &token)?,
            None => repo::mark_fired(c, timer.id, now)?,
        }
        if paused {
            rules.insert(timer.rule_id, None);
        }
    }
    if due.len() as i64 == TIMER_BATCH {
        wake_timers(c, now)?;
    } else if let Some(next) = repo::next_due(c)? {
        wake_timers(c, next.max(now))?;
    }
    Ok(fired)
}

/// One page of a schedule occurrence's sweep: every live record of the rule's object
/// after `after` (up to [`SWEEP_PAGE`]) is considered, each once per occurrence, each
/// in its own savepoint. Returns the last id when there is more.
pub fn sweep_page(
    c: &mut PgConnection,
    clock: &Clock,
    rule_id: Uuid,
    trigger_index: i32,
    occurrence: &str,
    after: Uuid,
) -> AppResult<Option<Uuid>> {
    let Some(rule) = repo::find(c, rule_id)?.filter(|r| r.enabled && r.archived_at.is_none()) else {
        return Ok(None);
    };
    let def = definition(&rule)?;
    let Some(t) = def
        .triggers
        .get(usize::try_from(trigger_index).unwrap_or(usize::MAX))
        .filter(|t| matches!(t, Trigger::Schedule { .. }))
    else {
        return Ok(None);
    };
    let table = crm_domain::events::table_of(&rule.object).unwrap_or("leads");
    let ids = repo::timer_inputs(c, table, "NULL", after, SWEEP_PAGE)?;
    let cal = calendar(c)?;
    let mut actors = Actors::default();
    for (id, _) in &ids {
        let view = crate::record::view(c, &rule.object, *id)?;
        let mut seen = Seen {
            view: view.as_ref(),
            cal: &cal,
            actors: &mut actors,
        };
        let r = c.transaction(|c| {
            consider(
                c,
                clock,
                &rule,
                &def,
                t,
                true,
                Cause::Schedule(occurrence),
                *id,
                1,
                &mut seen,
            )
        });
        match r {
            Ok(_) => {}
            Err(AppError::Db(e)) => return Err(AppError::Db(e)),
            Err(e) => tracing::error!(rule = %rule.id, record = %id, error = %e, "scheduled rule run failed"),
        }
        if repo::find(c, rule.id)?.is_none_or(|r| !r.enabled) {
            // Paused by its threshold meanwhile.
            return Ok(None);
        }
    }
    Ok((ids.len() as i64 == SWEEP_PAGE)
        .then(|| ids.last().map(|r| r.0))
        .flatten())
}

/// Continues a run held by a `wait` action, from action `from`, with the rule version
/// the run started with.
pub fn continue_run(c: &mut PgConnection, clock: &Clock, run_id: i64, from: usize) -> AppResult<()> {
    let Some(run) = repo::run(c, run_id)? else {
        return Ok(());
    };
    if run.status != "waiting" {
        return Ok(());
    }
    let Some(rule) = repo::find(c, run.rule_id)? else {
        return Ok(());
    };
    let v = repo::version(c, rule.id, run.rule_version)?.ok_or_else(|| AppError::internal("run version vanished"))?;
    let def: Definition =
        serde_json::from_value(v.definition).map_err(|e| AppError::internal(format!("unreadable version: {e}")))?;
    resume(c, clock, &rule, &def, &run, from)
}

fn resume(
    c: &mut PgConnection,
    clock: &Clock,
    rule: &RuleRow,
    def: &Definition,
    run: &RunRow,
    from: usize,
) -> AppResult<()> {
    let now = clock.now();
    let mut reports: Vec<Value> = run.actions.as_array().cloned().unwrap_or_default();
    let mut reason = run.reason.clone();
    let (status, error) = match (
        acting(c, rule.acts_as)?,
        crate::record::view(c, &rule.object, run.record_id)?,
    ) {
        // After a wait the rest runs only while the record still matches (an SLA
        // ladder stops once the lead is answered).
        (Some(_), Some(view))
            if from > 0
                && def
                    .condition
                    .as_ref()
                    .is_some_and(|e| !e.eval(&eval_record(&view, None))) =>
        {
            let why = format!("the record no longer matches after the wait: actions from {from} on not run");
            reason = Some(match reason {
                Some(r) => format!("{r}; {why}"),
                None => why,
            });
            ("done", None)
        }
        (Some(actor), Some(view)) => {
            let env = Env {
                rule,
                ctx: rule_ctx(actor, rule.id, run.id, run.depth, clock),
                record_id: run.record_id,
                view,
                run_id: run.id,
                cal: calendar(c)?,
            };
            let (status, more, error) = execute(c, &env, def, from)?;
            reports.retain(|r| {
                r.get("index")
                    .and_then(Value::as_u64)
                    .is_some_and(|i| (i as usize) < from)
            });
            reports.extend(more.into_iter().map(|r| serde_json::to_value(r).unwrap_or_default()));
            (status, error)
        }
        (None, _) => ("failed", Some("the user the rule acts as is not active".to_owned())),
        (_, None) => ("failed", Some("the record no longer exists".to_owned())),
    };
    repo::finish_run(
        c,
        run.id,
        &RunOutcome {
            status,
            reason,
            conditions: run.conditions.clone(),
            actions: Value::Array(reports),
            error,
        },
        now,
    )?;
    Ok(())
}

/// Retries a failed run from its failed action (the actions before it are not done
/// again), with the version it ran; the same run records the outcome.
pub fn retry(c: &mut PgConnection, ctx: &Ctx, id: Uuid, run_id: i64) -> AppResult<RunRow> {
    let rule = get(c, ctx, id)?;
    let run = repo::run(c, run_id)?
        .filter(|r| r.rule_id == id)
        .ok_or(AppError::NotFound("rule run"))?;
    if run.status != "failed" {
        return Err(AppError::conflict(
            "run_not_failed",
            format!("the run is {}, not failed", run.status),
        ));
    }
    let v = repo::version(c, id, run.rule_version)?.ok_or_else(|| AppError::internal("run version vanished"))?;
    let def: Definition =
        serde_json::from_value(v.definition).map_err(|e| AppError::internal(format!("unreadable version: {e}")))?;
    let from = run
        .actions
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|r| r.get("status").and_then(Value::as_str) == Some("failed"))
                .and_then(|r| r.get("index").and_then(Value::as_u64))
        })
        .map_or(0, |i| i as usize);
    resume(c, &ctx.clock, &rule, &def, &run, from)?;
    repo::run(c, run_id)?.ok_or(AppError::NotFound("rule run"))
}

// ---------------------------------------------------------------------------------
// Knowing what a rule does

/// A rule to test: a saved one, or a definition not saved.
#[derive(Debug, Clone)]
pub enum Subject {
    Saved(Uuid),
    Draft(Box<RuleInput>),
}

/// What a test on a record found.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub would_enrol: bool,
    pub matches: bool,
    pub reason: Option<String>,
    pub conditions: Value,
    pub actions: Vec<ActionReport>,
}

fn subject(c: &mut PgConnection, ctx: &Ctx, s: Subject) -> AppResult<(RuleRow, Definition)> {
    match s {
        Subject::Saved(id) => {
            let row = get(c, ctx, id)?;
            let def = definition(&row)?;
            Ok((row, def))
        }
        Subject::Draft(input) => {
            let input = *input;
            let mut errs = Errors::default();
            let (def, acts_as) = validate(c, ctx, &input, &mut errs)?;
            errs.into_result()?;
            let now = ctx.now();
            Ok((
                RuleRow {
                    id: Uuid::nil(),
                    name: input.name,
                    description: String::new(),
                    object: input.object,
                    definition: definition_json(&def),
                    rule_version: 0,
                    acts_as,
                    enabled: false,
                    archived_at: None,
                    max_runs_per_hour: None,
                    pause_factor: None,
                    paused_at: None,
                    paused_reason: None,
                    seed_key: None,
                    created_by: None,
                    created_at: now,
                    updated_at: now,
                    version: 0,
                    baseline_per_hour: None,
                    baseline_at: None,
                },
                def,
            ))
        }
    }
}

/// Whether the rule would enrol the record now and what each action would do, with
/// its arguments resolved. Reads only: nothing is written, sent or queued.
pub fn test(c: &mut PgConnection, ctx: &Ctx, s: Subject, record_id: Uuid) -> AppResult<TestOutcome> {
    ctx.require(RES, Action::Admin)?;
    let (rule, def) = subject(c, ctx, s)?;
    let view = crate::record::view(c, &rule.object, record_id)?
        .filter(|v| v.get("deleted_at").is_none_or(Value::is_null))
        .ok_or(AppError::NotFound("record"))?;
    let (matches, conditions) = match &def.condition {
        Some(e) => (
            e.eval(&view),
            serde_json::to_value(explain(e, &view)).unwrap_or_default(),
        ),
        None => (true, json!([])),
    };
    let (was, times) = if rule.id.is_nil() {
        (false, 0)
    } else {
        use diesel::prelude::*;
        repo::rule_enrollments::table
            .find((rule.id, record_id))
            .select((repo::rule_enrollments::matching, repo::rule_enrollments::times))
            .first::<(bool, i32)>(c)
            .optional()?
            .unwrap_or((false, 0))
    };
    let discrete = def
        .triggers
        .iter()
        .any(|t| !matches!(t, Trigger::Updated {} | Trigger::FieldChanged { .. }));
    let would = matches && (discrete || !was) && (def.re_enroll || times == 0);
    let reason = if !matches {
        Some("the condition is not met".to_owned())
    } else if !would {
        Some("the record enrolled before and re-enrollment is off".to_owned())
    } else {
        None
    };
    let actor = acting(c, rule.acts_as)?
        .ok_or_else(|| AppError::rule("rule_actor_inactive", "the rule's user is not active"))?;
    let env = Env {
        rule: &rule,
        ctx: rule_ctx(actor, rule.id, 0, 1, &ctx.clock),
        record_id,
        view,
        run_id: 0,
        cal: calendar(c)?,
    };
    let mut actions = Vec::new();
    for (i, a) in def.actions.iter().enumerate() {
        let (arguments, error) = match plan(c, &env, i, a) {
            Ok(v) => (v, None),
            Err(AppError::Db(e)) => return Err(AppError::Db(e)),
            Err(e) => (Value::Null, Some(describe(&e))),
        };
        actions.push(ActionReport {
            index: i,
            kind: a.name(),
            arguments,
            status: "planned",
            result: None,
            error,
        });
    }
    Ok(TestOutcome {
        would_enrol: would,
        matches,
        reason,
        conditions,
        actions,
    })
}

/// What a backtest found.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    pub events_considered: usize,
    pub fired: usize,
    pub records: usize,
    pub samples: Vec<Value>,
    /// Occurrences of time triggers and schedules in the window, computed from the
    /// records' current dates (a date changed since is counted at its new value).
    pub time_occurrences: usize,
    /// More records (or schedule occurrences) than a backtest reads.
    pub truncated: bool,
}

/// Replays the stored events of the rule's object in [from, to) (the outbox keeps
/// them for its retention period): how often the rule would have fired, on which
/// records, a sample of each. Conditions read the record as the event left it (its
/// stored state) with today's related records. Reads only.
pub fn backtest(
    c: &mut PgConnection,
    ctx: &Ctx,
    s: Subject,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Backtest> {
    ctx.require(RES, Action::Admin)?;
    if to <= from || to - from > Duration::days(92) {
        return Err(AppError::field(
            "to",
            "out_of_range",
            "a window of up to 92 days after `from`",
        ));
    }
    let (rule, def) = subject(c, ctx, s)?;
    replay(c, &rule, &def, from, to)
}

/// The backtest of a rule over [from, to): events replayed, time triggers computed.
fn replay(
    c: &mut PgConnection,
    rule: &RuleRow,
    def: &Definition,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Backtest> {
    let events = crm_db::repo::outbox::window(c, &rule.object, from, to, 100_000)?;
    let mut state: HashMap<Uuid, (bool, i32)> = HashMap::new();
    let mut views: HashMap<Uuid, Option<Value>> = HashMap::new();
    let mut fired = 0;
    let mut samples = Vec::new();
    let mut records = std::collections::HashSet::new();
    for ev in &events {
        let Some((t, discrete)) = def.triggers.iter().find_map(|t| trigger_matches(t, ev).map(|d| (t, d))) else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(e) = views.entry(ev.aggregate_id) {
            e.insert(crate::record::view(c, &rule.object, ev.aggregate_id)?);
        }
        let mut record = views[&ev.aggregate_id].clone().unwrap_or_else(|| json!({}));
        if let (Some(m), Some(Value::Object(st))) = (record.as_object_mut(), ev.payload.get("state")) {
            for (k, v) in st {
                let key = if k == "account_type" { "type" } else { k.as_str() };
                m.insert(key.to_owned(), v.clone());
            }
        }
        let record = eval_record(&record, ev.payload.get("changes"));
        let matches = def.condition.as_ref().is_none_or(|e| e.eval(&record));
        let (was, times) = state.get(&ev.aggregate_id).copied().unwrap_or((false, 0));
        let enrol = matches && (discrete || !was) && (def.re_enroll || times == 0);
        state.insert(ev.aggregate_id, (matches, times + i32::from(enrol)));
        if enrol {
            fired += 1;
            records.insert(ev.aggregate_id);
            if samples.len() < 20 {
                samples.push(json!({
                    "record_id": ev.aggregate_id, "event_id": ev.event_id, "event_type": ev.event_type,
                    "occurred_at": ev.committed_at, "trigger": t.name(),
                }));
            }
        }
    }
    let mut timed = Timed {
        state,
        views,
        fired,
        records,
        samples,
        occurrences: 0,
        truncated: false,
    };
    backtest_timed(c, rule, def, from, to, &mut timed)?;
    Ok(Backtest {
        events_considered: events.len(),
        fired: timed.fired,
        records: timed.records.len(),
        samples: timed.samples,
        time_occurrences: timed.occurrences,
        truncated: timed.truncated,
    })
}

/// The running tally of a backtest's time triggers.
struct Timed {
    state: HashMap<Uuid, (bool, i32)>,
    views: HashMap<Uuid, Option<Value>>,
    fired: usize,
    records: std::collections::HashSet<Uuid>,
    samples: Vec<Value>,
    occurrences: usize,
    truncated: bool,
}

/// Records a backtest reads for its time triggers, at most.
const BACKTEST_RECORDS: usize = 200_000;

impl Timed {
    /// An occurrence of a time trigger on a record at `at`: fires when the record (as
    /// it is now) matches and may enrol.
    fn occur(
        &mut self,
        c: &mut PgConnection,
        rule: &RuleRow,
        def: &Definition,
        t: &Trigger,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> AppResult<()> {
        self.occurrences += 1;
        if let std::collections::hash_map::Entry::Vacant(e) = self.views.entry(id) {
            e.insert(crate::record::view(c, &rule.object, id)?);
        }
        let Some(view) = self.views[&id].as_ref() else {
            return Ok(());
        };
        let matches = def.condition.as_ref().is_none_or(|e| e.eval(view));
        let (_, times) = self.state.get(&id).copied().unwrap_or((false, 0));
        let enrol = matches && (def.re_enroll || times == 0);
        self.state.insert(id, (matches, times + i32::from(enrol)));
        if enrol {
            self.fired += 1;
            self.records.insert(id);
            if self.samples.len() < 20 {
                self.samples
                    .push(json!({"record_id": id, "due_at": at, "occurred_at": at, "trigger": t.name()}));
            }
        }
        Ok(())
    }
}

/// The occurrences of the rule's time triggers in [from, to), computed from the
/// records' current dates (and stage entries), and of its schedules over the records
/// matching now: what the timers would have done had the rule been on.
fn backtest_timed(
    c: &mut PgConnection,
    rule: &RuleRow,
    def: &Definition,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tally: &mut Timed,
) -> AppResult<()> {
    let table = crm_domain::events::table_of(&rule.object).unwrap_or("leads");
    let cal = calendar(c)?;
    for t in &def.triggers {
        if let Trigger::Schedule { .. } = t {
            let mut at = from - Duration::seconds(1);
            let mut moments = Vec::new();
            while let Some(next) = t.next_scheduled(at, &cal).filter(|n| *n < to) {
                moments.push(next);
                at = next;
                if moments.len() >= 1000 {
                    tally.truncated = true;
                    break;
                }
            }
            if moments.is_empty() {
                continue;
            }
            let mut after = Uuid::nil();
            let mut seen = 0;
            loop {
                let ids = repo::timer_inputs(c, table, "NULL", after, SCHEDULE_PAGE)?;
                for moment in &moments {
                    for (id, _) in &ids {
                        tally.occur(c, rule, def, t, *id, *moment)?;
                    }
                }
                seen += ids.len();
                match ids.last() {
                    Some((last, _)) if ids.len() as i64 == SCHEDULE_PAGE && seen < BACKTEST_RECORDS => after = *last,
                    Some(_) if ids.len() as i64 == SCHEDULE_PAGE => {
                        tally.truncated = true;
                        break;
                    }
                    _ => break,
                }
            }
            continue;
        }
        let Some(sql) = input_sql(&rule.object, t) else {
            continue;
        };
        let mut after = Uuid::nil();
        let mut seen = 0;
        loop {
            let rows = repo::timer_inputs(c, table, &sql, after, SCHEDULE_PAGE)?;
            for (id, v) in &rows {
                let view = timer_view(t, v.as_deref());
                let mut now = from;
                // A yearly date can come round more than once in a long window.
                for _ in 0..3 {
                    let Some((due, _)) = due_of(t, &view, &cal, now).filter(|(d, _)| *d >= from && *d < to) else {
                        break;
                    };
                    tally.occur(c, rule, def, t, *id, due)?;
                    if !matches!(t, Trigger::DateRelative { yearly: true, .. }) {
                        break;
                    }
                    now = due + Duration::seconds(1);
                }
            }
            seen += rows.len();
            match rows.last() {
                Some((last, _)) if rows.len() as i64 == SCHEDULE_PAGE && seen < BACKTEST_RECORDS => after = *last,
                Some(_) if rows.len() as i64 == SCHEDULE_PAGE => {
                    tally.truncated = true;
                    break;
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// Pending timers of a rule (for its view).
pub fn pending_timers(c: &mut PgConnection, id: Uuid) -> AppResult<i64> {
    Ok(repo::pending_timers(c, id)?)
}

// ---------------------------------------------------------------------------------
// The seed scenarios

/// The default rules (the seed's scenarios), installed disabled-or-enabled as asked,
/// once each (by seed key). Returns the rules installed now.
pub fn install_defaults(c: &mut PgConnection, ctx: &Ctx, enabled: bool) -> AppResult<Vec<RuleRow>> {
    ctx.require(RES, Action::Admin)?;
    let mut out = Vec::new();
    // Scenario 5 routes to the sales director's approval definition, where there is one.
    let director = crm_db::repo::approvals::active_definitions(c, "quote")?
        .into_iter()
        .find(|d| d.steps.to_string().contains("\"sales_director\""))
        .map(|d| d.id);
    for (key, input) in defaults(enabled, director, territory_table(c)?) {
        if repo::find_by_seed(c, key)?.is_some() {
            continue;
        }
        out.push(create_seeded(c, ctx, input, Some(key))?);
    }
    Ok(out)
}

/// Scenario 1's territory table, from the teams that say which region they cover: one
/// row per region value, region-level teams before others, then by name.
fn territory_table(c: &mut PgConnection) -> AppResult<Vec<Value>> {
    let mut teams: Vec<_> = crm_db::repo::teams::list(c)?
        .into_iter()
        .filter(|t| t.region.is_some())
        .collect();
    teams.sort_by_key(|t| (t.kind != "region", t.name.clone()));
    let mut seen = std::collections::HashSet::new();
    Ok(teams
        .into_iter()
        .filter_map(|t| {
            let region = t.region?;
            seen.insert(region.to_lowercase())
                .then(|| json!({"region": region, "team_id": t.id}))
        })
        .collect())
}

fn defaults(enabled: bool, director: Option<Uuid>, territories: Vec<Value>) -> Vec<(&'static str, RuleInput)> {
    let rule =
        |name: &str, object: &str, triggers: Value, condition: Option<Value>, actions: Value, re: bool| RuleInput {
            name: name.into(),
            description: None,
            object: object.into(),
            triggers,
            condition,
            actions,
            re_enroll: Some(re),
            acts_as: None,
            enabled: Some(enabled),
            max_runs_per_hour: None,
            pause_factor: None,
        };
    let mut all = Vec::new();
    if !territories.is_empty() {
        all.push((
            "new_lead_territory",
            RuleInput {
                description: Some(
                    "区域 -> 区域团队轮流分配; 可按行业、来源增加行 Rows may also match industry and source.".into(),
                ),
                ..rule(
                    "新线索按区域分配 New lead: assign by territory (region, round-robin)",
                    "leads",
                    json!([{"type": "created"}]),
                    Some(json!({"field": "status", "op": "eq", "value": "new"})),
                    json!([{"type": "assign_owner", "territories": territories, "strategy": "round_robin"}]),
                    false,
                )
            },
        ));
    }
    all.extend([
        (
            "new_lead_todo",
            rule(
                "新线索: 负责人跟进待办 New lead: a to-do for its owner",
                "leads",
                json!([{"type": "event", "action": "assigned"}]),
                Some(json!({"field": "first_response_at", "op": "blank"})),
                json!([{"type": "create_task", "title": "跟进新线索 Follow up: {{person_name}} {{company}}",
                        "assignee": "owner", "due_hours": 1, "business_hours": true, "priority": "high"}]),
                true,
            ),
        ),
        (
            "lead_sla_reminder",
            rule(
                "线索响应 SLA 升级 Lead response SLA: remind, alert the manager, reassign",
                "leads",
                json!([{"type": "date_relative", "field": "sla_due_at"}]),
                Some(json!({"all": [{"field": "first_response_at", "op": "blank"},
                                    {"field": "status", "op": "in", "value": ["new", "assigned"]}]})),
                json!([{"type": "notify", "to": ["owner"], "message": "线索 {{person_name}} 已到响应时限仍未跟进 (SLA due)"},
                       {"type": "wait", "hours": 1, "business_hours": true},
                       {"type": "notify", "to": ["manager"], "message": "线索 {{person_name}} 响应超时 1 小时 (SLA breached)"},
                       {"type": "wait", "hours": 2, "business_hours": true},
                       {"type": "assign_owner", "reassign": true, "strategy": "round_robin"}]),
                true,
            ),
        ),
        (
            "stalled_deal",
            rule(
                "商机停滞预警 Stalled deal: Discovery over 15 days without follow-up",
                "opportunities",
                json!([{"type": "in_stage", "stage": "discovery", "days": 15, "no_activity_days": 7}]),
                None,
                json!([{"type": "notify", "to": ["owner", "manager"],
                        "message": "商机 {{name}} 在需求确认阶段已超过 15 天且 7 天无跟进"}]),
                true,
            ),
        ),
        (
            "proposal_presales_task",
            rule(
                "进入方案阶段: 售前准备技术方案 Proposal: presales prepares the technical proposal",
                "opportunities",
                json!([{"type": "stage_entered", "stage": "proposal"}]),
                None,
                json!([{"type": "create_task", "title": "准备技术方案 Prepare technical proposal: {{name}}",
                        "assignee": "role:presales", "due_hours": 24, "business_hours": true}]),
                true,
            ),
        ),
        (
            "closing_contract_review",
            rule(
                "进入签约阶段: 法务审合同 Closing: legal reviews the contract",
                "opportunities",
                json!([{"type": "stage_entered", "stage": "closing"}]),
                None,
                json!([{"type": "create_task", "title": "合同审核 Contract review: {{name}}",
                        "assignee": "role:legal", "due_hours": 16, "business_hours": true}]),
                true,
            ),
        ),
        (
            "contact_birthday",
            rule(
                "客户关怀: 生日前 3 天送祝福 Customer care: greetings 3 days before a birthday",
                "contacts",
                json!([{"type": "date_relative", "field": "birthday", "offset_days": -3, "yearly": true}]),
                None,
                json!([{"type": "create_task", "title": "送生日祝福 Send birthday greetings: {{name}}",
                        "assignee": "owner", "due_hours": 72}]),
                true,
            ),
        ),
        (
            "account_anniversary",
            rule(
                "客户关怀: 合作周年前 3 天送祝福 Customer care: greetings 3 days before the cooperation anniversary",
                "accounts",
                json!([{"type": "date_relative", "field": "first_contract_signed_at", "offset_days": -3,
                        "yearly": true, "at": "09:00:00"}]),
                None,
                json!([{"type": "create_task", "title": "合作周年祝福 Anniversary greetings: {{name}}",
                        "assignee": "owner", "due_hours": 72}]),
                true,
            ),
        ),
    ]);
    if let Some(d) = director {
        all.push((
            "quote_approval_routing",
            rule(
                "报价审批路由: 折扣超过 15% 由销售总监审批 Quote approval: a discount above 15% goes to the sales director",
                "quotes",
                json!([{"type": "approval_requested"}]),
                Some(json!({"field": "discount_pct", "op": "gt", "value": "15"})),
                json!([{"type": "start_approval", "definition_id": d}]),
                true,
            ),
        ));
    }
    all
}

/// (pending timers, of which due already): the time-trigger backlog.
pub fn backlog(c: &mut PgConnection, now: DateTime<Utc>) -> AppResult<(i64, i64)> {
    Ok(repo::timer_backlog(c, now)?)
}

/// The caller's pause from automatic assignment: (until, reason), when one is running.
pub fn my_assignment_pause(c: &mut PgConnection, ctx: &Ctx) -> AppResult<Option<(DateTime<Utc>, Option<String>)>> {
    Ok(repo::assignment_pause(c, ctx.user_id())?.filter(|(until, _)| *until > ctx.now()))
}

/// Takes the caller out of rules' automatic assignment until `until` (at most a year
/// ahead), or back in with `None`. Audited on the user (`user.assignment_paused`).
pub fn set_my_assignment_pause(
    c: &mut PgConnection,
    ctx: &Ctx,
    pause: Option<(DateTime<Utc>, Option<String>)>,
) -> AppResult<Option<(DateTime<Utc>, Option<String>)>> {
    let now = ctx.now();
    if let Some((until, reason)) = &pause {
        if *until <= now || *until > now + Duration::days(366) {
            return Err(AppError::field("until", "invalid_pause", "after now and within a year"));
        }
        if reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
            return Err(AppError::field("reason", "invalid_pause", "at most 200 characters"));
        }
    }
    let user = ctx.user_id();
    if user.is_nil() || ctx.kind != crate::context::ActorKind::User {
        return Err(AppError::Forbidden(
            "only a signed-in user pauses their own assignments".into(),
        ));
    }
    let before = my_assignment_pause(c, ctx)?;
    repo::set_assignment_pause(c, user, pause.clone(), now)?;
    let mut changes = Map::new();
    changes.insert(
        "assignment_paused_until".into(),
        json!({"before": before.map(|p| p.0), "after": pause.as_ref().map(|p| p.0)}),
    );
    crm_db::repo::audit::record(
        c,
        &ctx.actor(),
        "users",
        user,
        "assignment_paused",
        changes,
        Value::Null,
    )?;
    Ok(pause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_read_from_the_rule_actor() {
        assert_eq!(event_depth(&json!({"actor": {"rule_id": null, "request_id": "x"}})), 0);
        assert_eq!(
            event_depth(&json!({"actor": {"rule_id": Uuid::nil(), "request_id": "rule-run:12:3"}})),
            3
        );
        assert_eq!(event_depth(&json!({"actor": {"rule_id": Uuid::nil()}})), 1);
    }

    #[test]
    fn change_context_lists_keys_and_values() {
        let r = eval_record(
            &json!({"amount": "5"}),
            Some(&json!({"amount": {"before": "1", "after": "5"}})),
        );
        assert_eq!(r["changed"], json!(["amount"]));
        assert_eq!(r["from"]["amount"], json!("1"));
        assert_eq!(r["to"]["amount"], json!("5"));
    }

    #[test]
    fn input_sql_quotes_only_plain_names() {
        let t = Trigger::DateRelative {
            field: "birthday".into(),
            offset_days: 0,
            offset_hours: 0,
            yearly: true,
            at: None,
        };
        assert_eq!(input_sql("contacts", &t).unwrap(), "r.\"birthday\"");
        let bad = Trigger::DateRelative {
            field: "x; drop".into(),
            offset_days: 0,
            offset_hours: 0,
            yearly: true,
            at: None,
        };
        assert!(input_sql("contacts", &bad).is_none());
    }
}
