//! Automation rules: what a rule is (triggers, a condition, ordered actions), what its
//! time triggers are due at, and how a condition explains itself. Storage, scheduling
//! and running are in `crm_app::rules`.
//!
//! ```json
//! {"triggers": [{"type": "stage_entered", "stage": "proposal"}],
//!  "condition": {"field": "amount", "op": "gte", "value": "100000"},
//!  "actions": [{"type": "create_task", "title": "准备技术方案: {{name}}",
//!               "assignee": "role:presales", "due_hours": 16, "business_hours": true}],
//!  "re_enroll": true}
//! ```

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::calendar::Calendar;
use crate::expr::{lookup, Expr};

/// How deep rules may trigger rules: a run caused by a rule's own write at this depth
/// is recorded as `loop_guard` and does nothing.
pub const MAX_DEPTH: i32 = 5;

/// Objects rules can be written for.
pub const OBJECTS: &[&str] = &[
    "leads",
    "accounts",
    "contacts",
    "opportunities",
    "activities",
    "tasks",
    "quotes",
    "contracts",
    "invoices",
    "payments",
];

/// What makes a rule consider a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// The record was created.
    Created {},
    /// Any change of the record.
    Updated {},
    /// The record was moved to the recycle bin.
    Deleted {},
    /// A field changed, optionally from and / or to a value.
    FieldChanged {
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Value>,
    },
    /// A deal entered a stage (any, or the one with this code).
    StageEntered {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
    /// A deal left a stage.
    StageLeft {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
    /// Any other catalogued action of the object (`GET /meta/events`): a lead
    /// `assigned` or `responded`, a quote `submitted` / `approved` / `rejected`, a
    /// contract's status changes ...
    Event { action: String },
    /// A moment relative to a date or time field: `offset_days` / `offset_hours`
    /// before (negative) or after it; `yearly` for birthdays and anniversaries; a date
    /// field fires at `at` (business time, default 09:00).
    DateRelative {
        field: String,
        #[serde(default)]
        offset_days: i32,
        #[serde(default)]
        offset_hours: i32,
        #[serde(default)]
        yearly: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<NaiveTime>,
    },
    /// On a schedule: a five-field cron expression in the business time zone
    /// (`0 9 * * 1`: Mondays 09:00); each occurrence considers every record of the
    /// object that matches the condition (see [`crate::cron`]).
    Schedule { cron: String },
    /// A quote or contract is submitted for approval: the rule routes it, inside the
    /// submission (its `start_approval` names the definition, or approves at once).
    ApprovalRequested {},
    /// A deal in its stage (any, or this one) for `days`, with no activity for
    /// `no_activity_days` either: due at the exact moment both hold, once per stage entry.
    InStage {
        days: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no_activity_days: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
}

impl Trigger {
    /// The trigger's name in run logs.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Created {} => "created",
            Trigger::Updated {} => "updated",
            Trigger::Deleted {} => "deleted",
            Trigger::FieldChanged { .. } => "field_changed",
            Trigger::StageEntered { .. } => "stage_entered",
            Trigger::StageLeft { .. } => "stage_left",
            Trigger::Event { .. } => "event",
            Trigger::DateRelative { .. } => "date_relative",
            Trigger::InStage { .. } => "in_stage",
            Trigger::ApprovalRequested {} => "approval_requested",
            Trigger::Schedule { .. } => "schedule",
        }
    }

    /// The next occurrence of a schedule trigger after `after`.
    pub fn next_scheduled(&self, after: DateTime<Utc>, cal: &Calendar) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Schedule { cron } => crate::cron::Cron::parse(cron).ok()?.next_after(after, cal.offset()),
            _ => None,
        }
    }

    /// Whether it is due at a moment of a record rather than on an event.
    pub fn is_timed(&self) -> bool {
        matches!(self, Trigger::DateRelative { .. } | Trigger::InStage { .. })
    }
}

/// Who an action addresses: `owner`, `manager` (the owner's manager), `user:<id>`, or
/// `role:<key>` (the active users with that role in the owner's team, else in the
/// nearest parent team that has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    Owner,
    Manager,
    User(Uuid),
    Role(String),
}

impl Party {
    pub fn parse(s: &str) -> Option<Party> {
        match s {
            "owner" => Some(Party::Owner),
            "manager" => Some(Party::Manager),
            _ => {
                if let Some(id) = s.strip_prefix("user:") {
                    id.parse().ok().map(Party::User)
                } else {
                    s.strip_prefix("role:")
                        .filter(|k| {
                            !k.is_empty()
                                && k.chars()
                                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        })
                        .map(|k| Party::Role(k.to_owned()))
                }
            }
        }
    }
}

/// How `assign_owner` picks among a team's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In turn, skipping inactive members.
    RoundRobin,
    /// The active member with the fewest open records of the object, below `capacity`.
    LeastLoaded,
}

/// One row of a territory table: the first row whose given values all equal the
/// record's (`region`, `industry`, `source`) names the user or team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Territory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<Uuid>,
}

impl Territory {
    pub fn matches(&self, record: &Value) -> bool {
        let eq = |want: &Option<String>, key: &str| {
            want.as_ref()
                .is_none_or(|w| lookup(record, key).as_str().is_some_and(|v| v.eq_ignore_ascii_case(w)))
        };
        eq(&self.region, "region") && eq(&self.industry, "industry") && eq(&self.source, "source")
    }
}

/// What a rule does, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// Give the record an owner: a fixed user; the first matching territory row; or a
    /// team's member by `strategy` (`capacity`: open records a member may hold);
    /// `reassign` excludes the current owner.
    AssignOwner {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strategy: Option<Strategy>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity: Option<i64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        territories: Vec<Territory>,
        /// Hand the record to someone other than its current owner; without a user,
        /// team or territory, among the current owner's team (an SLA's last step).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reassign: bool,
    },
    /// A to-do about the record (`{{path}}` in the title reads the record view).
    CreateTask {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// A party (see [`Party`]); default `owner`.
        #[serde(default = "owner")]
        assignee: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_hours: Option<i64>,
        #[serde(default)]
        business_hours: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<String>,
    },
    /// An in-app notification (copied to each user's chosen DingTalk / WeCom channel).
    Notify { to: Vec<String>, message: String },
    /// Set one field of the record through its update operation.
    UpdateField { field: String, value: Value },
    /// Submit the record (a quote or contract) to the approval engine: through this
    /// definition, or the first matching one; `auto_approve` approves it at once.
    StartApproval {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        definition_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        auto_approve: bool,
    },
    /// Hold the remaining actions for `hours` (business hours if asked).
    Wait {
        hours: i64,
        #[serde(default)]
        business_hours: bool,
    },
}

fn owner() -> String {
    "owner".into()
}

impl RuleAction {
    pub fn name(&self) -> &'static str {
        match self {
            RuleAction::AssignOwner { .. } => "assign_owner",
            RuleAction::CreateTask { .. } => "create_task",
            RuleAction::Notify { .. } => "notify",
            RuleAction::UpdateField { .. } => "update_field",
            RuleAction::StartApproval { .. } => "start_approval",
            RuleAction::Wait { .. } => "wait",
        }
    }
}

/// A rule's versioned definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub triggers: Vec<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Expr>,
    pub actions: Vec<RuleAction>,
    /// Whether a record that stopped matching may enrol again (fire again when it
    /// matches again); otherwise a record fires a rule once.
    #[serde(default)]
    pub re_enroll: bool,
}

/// Replaces `{{path}}` with the record view's value at `path` (text as is, other
/// values as JSON, missing as empty).
pub fn render(template: &str, record: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let path = after[..end].trim();
                match lookup(record, path) {
                    Value::Null => {}
                    Value::String(s) => out.push_str(s),
                    v => out.push_str(&v.to_string()),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// One leaf condition and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    pub field: String,
    pub op: Value,
    pub expected: Value,
    pub actual: Value,
    pub result: bool,
}

/// Every comparison of `expr` with the record's value and its result.
pub fn explain(expr: &Expr, record: &Value) -> Vec<Explained> {
    let mut out = Vec::new();
    collect(expr, record, &mut out);
    out
}

fn collect(expr: &Expr, record: &Value, out: &mut Vec<Explained>) {
    match expr {
        Expr::All { all: l } | Expr::Any { any: l } => l.iter().for_each(|e| collect(e, record, out)),
        Expr::Not { not } => collect(not, record, out),
        Expr::Compare { field, op, value } => out.push(Explained {
            field: field.clone(),
            op: serde_json::to_value(op).unwrap_or(Value::Null),
            expected: value.clone(),
            actual: lookup(record, field).clone(),
            result: expr.eval(record),
        }),
    }
}

/// The default time of day a date field's trigger fires at.
pub fn default_at() -> NaiveTime {
    NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN)
}

/// The same month and day in `year` (29 February is the 28th in other years).
fn in_year(d: NaiveDate, year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, d.month(), d.day()).or_else(|| NaiveDate::from_ymd_opt(year, d.month(), 28))
}

fn parse_moment(v: &Value) -> Option<(Option<NaiveDate>, Option<DateTime<Utc>>)> {
    let s = v.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((None, Some(t.with_timezone(&Utc))));
    }
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
        .ok()
        .map(|d| (Some(d), None))
}

/// A date-relative trigger's next occurrence at or after `now`: (due at, token). A
/// one-off occurrence in the past is still returned (due at once) unless it is older
/// than `grace`; `None` when the field is empty or the occurrence long gone.
#[allow(clippy::too_many_arguments)]
pub fn date_due(
    value: &Value,
    offset_days: i32,
    offset_hours: i32,
    yearly: bool,
    at: Option<NaiveTime>,
    cal: &Calendar,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<(DateTime<Utc>, String)> {
    let (date, time) = parse_moment(value)?;
    let offset = Duration::days(i64::from(offset_days)) + Duration::hours(i64::from(offset_hours));
    let tz = cal.offset();
    // A yearly time field fires at its own time of day unless `at` says otherwise.
    let time_of_day = if at.is_some() { None } else { time };
    let at = at.unwrap_or_else(default_at);
    let local = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(at))
            .single()
            .map(|t| t.with_timezone(&Utc))
    };
    if yearly {
        let base_date = date.or_else(|| time.map(|t| t.with_timezone(&tz).date_naive()))?;
        let this_year = now.with_timezone(&tz).year();
        for year in [this_year - 1, this_year, this_year + 1, this_year + 2] {
            let d = in_year(base_date, year)?;
            let due = match time_of_day {
                Some(t) => {
                    let shifted = t.with_timezone(&tz);
                    tz.from_local_datetime(&d.and_time(shifted.time()))
                        .single()?
                        .with_timezone(&Utc)
                        + offset
                }
                None => local(d)? + offset,
            };
            if due >= now {
                return Some((due, year.to_string()));
            }
        }
        return None;
    }
    let due = match (date, time) {
        (_, Some(t)) => t + offset,
        (Some(d), None) => local(d)? + offset,
        (None, None) => return None,
    };
    if due + grace < now {
        return None;
    }
    Some((due, value.as_str().unwrap_or_default().to_owned()))
}

/// A time-in-stage trigger's due moment for a deal that entered its stage at
/// `entered_at` and last had an activity at `last_activity_at`: when it has been in the
/// stage `days` and without activity `no_activity_days`. The token is the stage entry.
pub fn in_stage_due(
    entered_at: DateTime<Utc>,
    last_activity_at: Option<DateTime<Utc>>,
    days: i32,
    no_activity_days: Option<i32>,
) -> (DateTime<Utc>, String) {
    let in_stage = entered_at + Duration::days(i64::from(days));
    let quiet = match (no_activity_days, last_activity_at) {
        (Some(n), Some(last)) if last > entered_at => last + Duration::days(i64::from(n)),
        (Some(n), _) => entered_at + Duration::days(i64::from(n)),
        (None, _) => in_stage,
    };
    (in_stage.max(quiet), entered_at.to_rfc3339())
}

/// Adds `hours` of wall-clock or business time.
pub fn add_hours(cal: &Calendar, from: DateTime<Utc>, hours: i64, business: bool) -> DateTime<Utc> {
    let d = Duration::hours(hours);
    if business {
        cal.add(from, d).unwrap_or(from + d)
    } else {
        from + d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn definitions_parse_and_refuse_unknown_members() {
        let d: Definition = serde_json::from_value(json!({
            "triggers": [{"type": "stage_entered", "stage": "proposal"}, {"type": "created"}],
            "actions": [{"type": "create_task", "title": "x", "assignee": "role:presales"}],
        }))
        .unwrap();
        assert_eq!(d.triggers.len(), 2);
        assert!(!d.re_enroll);
        assert!(serde_json::from_value::<Trigger>(json!({"type": "created", "x": 1})).is_err());
        assert!(serde_json::from_value::<Trigger>(json!({"type": "nope"})).is_err());
        assert!(serde_json::from_value::<RuleAction>(json!({"type": "notify", "to": ["owner"]})).is_err());
    }

    #[test]
    fn parties() {
        assert_eq!(Party::parse("owner"), Some(Party::Owner));
        assert_eq!(Party::parse("role:presales"), Some(Party::Role("presales".into())));
        assert!(Party::parse("role:").is_none());
        assert!(Party::parse("user:nope").is_none());
        let id = Uuid::now_v7();
        assert_eq!(Party::parse(&format!("user:{id}")), Some(Party::User(id)));
    }

    #[test]
    fn templates_read_the_record() {
        let r = json!({"name": "ACME 扩容", "amount": "5000.00", "account": {"name": "ACME"}});
        assert_eq!(
            render("{{ name }} / {{account.name}} / {{missing}}!", &r),
            "ACME 扩容 / ACME / !"
        );
        assert_eq!(render("open {{", &r), "open {{");
    }

    #[test]
    fn birthday_minus_three_days_is_yearly_at_nine_business_time() {
        let cal = Calendar::default();
        let now = at("2026-12-01T00:00:00Z");
        let (due, token) = date_due(&json!("1990-12-10"), -3, 0, true, None, &cal, now, Duration::zero()).unwrap();
        // 7 December 09:00 China time = 01:00 UTC.
        assert_eq!(due, at("2026-12-07T01:00:00Z"));
        assert_eq!(token, "2026");
        // Already past this year: next year.
        let (due, token) = date_due(&json!("1990-11-02"), -3, 0, true, None, &cal, now, Duration::zero()).unwrap();
        assert_eq!(due, at("2027-10-30T01:00:00Z"));
        assert_eq!(token, "2027");
        // 29 February in a common year.
        let (due, _) = date_due(&json!("2000-02-29"), 0, 0, true, None, &cal, now, Duration::zero()).unwrap();
        assert_eq!(due, at("2027-02-28T01:00:00Z"));
        assert!(date_due(&Value::Null, 0, 0, true, None, &cal, now, Duration::zero()).is_none());
    }

    #[test]
    fn one_off_times_shift_and_expire() {
        let cal = Calendar::default();
        let now = at("2026-12-01T00:00:00Z");
        let (due, _) = date_due(
            &json!("2026-12-02T10:00:00Z"),
            0,
            -2,
            false,
            None,
            &cal,
            now,
            Duration::zero(),
        )
        .unwrap();
        assert_eq!(due, at("2026-12-02T08:00:00Z"));
        assert!(date_due(
            &json!("2026-11-01T10:00:00Z"),
            0,
            0,
            false,
            None,
            &cal,
            now,
            Duration::hours(1)
        )
        .is_none());
        assert!(date_due(
            &json!("2026-11-30T23:30:00Z"),
            0,
            0,
            false,
            None,
            &cal,
            now,
            Duration::hours(1)
        )
        .is_some());
    }

    #[test]
    fn in_stage_waits_for_both_the_stage_age_and_the_quiet() {
        let entered = at("2026-11-01T00:00:00Z");
        let (due, token) = in_stage_due(entered, None, 15, Some(7));
        assert_eq!(due, at("2026-11-16T00:00:00Z"));
        assert_eq!(token, entered.to_rfc3339());
        let (due, _) = in_stage_due(entered, Some(at("2026-11-14T00:00:00Z")), 15, Some(7));
        assert_eq!(due, at("2026-11-21T00:00:00Z"));
        let (due, _) = in_stage_due(entered, Some(at("2026-11-14T00:00:00Z")), 15, None);
        assert_eq!(due, at("2026-11-16T00:00:00Z"));
    }

    #[test]
    fn explain_lists_each_comparison() {
        let e: Expr = serde_json::from_value(json!({"all": [
            {"field": "amount", "op": "gt", "value": "100"},
            {"not": {"field": "stage.code", "op": "eq", "value": "won"}}]}))
        .unwrap();
        let r = json!({"amount": "50.00", "stage": {"code": "proposal"}});
        let x = explain(&e, &r);
        assert_eq!(x.len(), 2);
        assert!(!x[0].result);
        assert_eq!(x[0].actual, json!("50.00"));
        assert!(!x[1].result);
    }
}
