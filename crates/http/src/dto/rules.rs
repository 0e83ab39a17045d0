//! Automation rules: definitions, versions, runs, tests and backtests.
//!
//! A rule's `triggers`, `condition` and `actions` are documented here in prose (each a
//! JSON object with a `type`):
//!
//! - triggers: `created`, `updated`, `deleted`; `field_changed` (`field`, optional
//!   `from`, `to`); `stage_entered` / `stage_left` (optional `stage` code, deals only);
//!   `event` (`action`: any catalogued action of the object, e.g. a lead's `assigned`,
//!   a quote's `submitted` / `approved`, see `GET /api/v1/meta/events`); `date_relative`
//!   (`field` a date or time field, `offset_days`, `offset_hours`, `yearly`, `at`
//!   "HH:MM:SS" business time for dates, default 09:00); `in_stage` (`days`, optional
//!   `no_activity_days` and `stage`, deals only: due at the exact moment both hold,
//!   once per stage entry).
//! - condition: the shared expression format (as stage entry criteria) over the record
//!   view (`GET /api/v1/meta/{object}`; related `account.*`, `owner.*`, `stage.*`,
//!   `opportunity.*`), plus `changed` (keys), `from.<key>`, `to.<key>` for changes.
//! - actions: `assign_owner` (`user_id`, or `team_id` with `strategy` `round_robin` /
//!   `least_loaded` and `capacity`, or `territories`: rows of `region` / `industry` /
//!   `source` -> `user_id` | `team_id`); `create_task` (`title` with `{{field}}`
//!   placeholders, `assignee` `owner` | `manager` | `user:<id>` | `role:<key>`,
//!   `due_hours`, `business_hours`, `priority`); `notify` (`to`: parties, `message`);
//!   `update_field` (`field`, `value`); `wait` (`hours`, `business_hours`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

/// A rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rule {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `leads`, `accounts`, `contacts`, `opportunities`, `activities`, `tasks`,
    /// `quotes`, `contracts`.
    pub object: String,
    #[schema(value_type = Vec<Object>)]
    pub triggers: Value,
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    /// A record that stopped matching may fire again when it matches again.
    pub re_enroll: bool,
    /// The current definition's version (every run records the one it ran).
    pub rule_version: i32,
    /// The user the rule acts as: its permissions and data scope bound what it does;
    /// audit entries and events name the rule.
    pub acts_as: Uuid,
    pub enabled: bool,
    pub archived_at: Option<DateTime<Utc>>,
    /// More runs than this in an hour pause the rule (disabled, `paused_reason` set).
    pub max_runs_per_hour: Option<i32>,
    /// More runs in an hour than this many times the rate its backtest of the past
    /// week predicts (at least 20 runs) pause the rule too.
    pub pause_factor: Option<i32>,
    /// That predicted hourly rate, as last computed (daily, while the rule is busy).
    pub baseline_per_hour: Option<f64>,
    pub baseline_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
    /// The seeded scenario it came from, if any.
    pub seed_key: Option<String>,
    /// Time triggers waiting for their moment.
    pub pending_timers: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub items: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    pub object: RuleObject,
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 10)]
    pub triggers: Value,
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 20)]
    pub actions: Value,
    /// Default false: a record fires the rule once.
    pub re_enroll: Option<bool>,
    /// Default: the caller.
    pub acts_as: Option<Uuid>,
    /// Default false.
    pub enabled: Option<bool>,
    #[validate(range(min = 1, max = 1_000_000))]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_runs_per_hour: Option<i32>,
    /// Pause when it fires more than this many times its backtest's hourly rate.
    #[validate(range(min = 2, max = 1000))]
    #[schema(minimum = 2, maximum = 1000)]
    pub pause_factor: Option<i32>,
}

str_enum! {
    /// Objects rules are written for.
    RuleObject {
        Leads => "leads", Accounts => "accounts", Contacts => "contacts",
        Opportunities => "opportunities", Activities => "activities", Tasks => "tasks",
        Quotes => "quotes", Contracts => "contracts", Invoices => "invoices",
        Payments => "payments"
    }
}

/// A change: fields not given stay. A changed definition or name is a new version.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRule {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<Object>>, min_items = 1, max_items = 10)]
    pub triggers: Option<Value>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Option<Value>>,
    #[schema(value_type = Option<Vec<Object>>, min_items = 1, max_items = 20)]
    pub actions: Option<Value>,
    pub re_enroll: Option<bool>,
    pub acts_as: Option<Uuid>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(range(min = 1, max = 1_000_000))]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1_000_000)]
    pub max_runs_per_hour: Option<Option<i32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(range(min = 2, max = 1000))]
    #[schema(value_type = Option<i32>, minimum = 2, maximum = 1000)]
    pub pause_factor: Option<Option<i32>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleQuery {
    pub object: Option<RuleObject>,
    /// Include archived rules (default false).
    pub archived: Option<bool>,
}

/// One version of a rule's definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleVersion {
    pub version: i32,
    pub name: String,
    #[schema(value_type = Object)]
    pub definition: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleVersionList {
    pub items: Vec<RuleVersion>,
}

str_enum! {
    /// What a run came to: `done` (actions ran), `skipped` (did not enrol: `reason`),
    /// `failed` (an action failed: `error`; retryable), `waiting` (a `wait` holds the
    /// rest), `loop_guard` (rules triggering rules too deep).
    RunStatus { Done => "done", Skipped => "skipped", Failed => "failed", Waiting => "waiting", LoopGuard => "loop_guard" }
}

/// One run: a rule considered for one record because of an event or a timer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleRun {
    pub id: i64,
    pub rule_id: Uuid,
    pub rule_version: i32,
    pub trigger: String,
    pub event_id: Option<Uuid>,
    pub timer_id: Option<i64>,
    pub object: String,
    pub record_id: Uuid,
    pub status: RunStatus,
    pub reason: Option<String>,
    /// Each comparison of the condition: field, op, expected, actual, result.
    #[schema(value_type = Vec<Object>)]
    pub conditions: Value,
    /// Each action: index, type, arguments, status, result or error.
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    pub error: Option<String>,
    /// How many rules deep in a chain of rules triggering rules.
    pub depth: i32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<crm_db::repo::rules::RunRow> for RuleRun {
    fn from(r: crm_db::repo::rules::RunRow) -> Self {
        RuleRun {
            id: r.id,
            rule_id: r.rule_id,
            rule_version: r.rule_version,
            trigger: r.trigger,
            event_id: r.event_id,
            timer_id: r.timer_id,
            object: r.object,
            record_id: r.record_id,
            status: RunStatus::parse(&r.status).unwrap_or(RunStatus::Failed),
            reason: r.reason,
            conditions: r.conditions,
            actions: r.actions,
            error: r.error,
            depth: r.depth,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleRunPage {
    pub items: Vec<RuleRun>,
    /// Pass as `before` for older runs.
    pub next_before: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    /// Runs older than this id (paging).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Default 50, at most 200.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// A saved rule (`rule_id`) or an unsaved one (`rule`), tried on one record.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRule {
    pub rule_id: Option<Uuid>,
    #[validate(nested)]
    pub rule: Option<CreateRule>,
    pub record_id: Uuid,
}

/// What the rule would do to the record now. Nothing was written, sent or queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleTestResult {
    pub would_enrol: bool,
    pub matches: bool,
    pub reason: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub conditions: Value,
    /// Each action with its arguments resolved (assignee, due time, rendered text).
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
}

/// A saved or unsaved rule replayed over the stored events of a past window (at most
/// 92 days).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRule {
    pub rule_id: Option<Uuid>,
    #[validate(nested)]
    pub rule: Option<CreateRule>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleBacktestResult {
    pub events_considered: usize,
    /// How many times it would have fired.
    pub fired: usize,
    /// On how many records.
    pub records: usize,
    /// Up to 20: record, event, time, trigger.
    #[schema(value_type = Vec<Object>)]
    pub samples: Value,
    /// Occurrences of time triggers and schedules in the window, computed from the
    /// records' current dates and stage entries (a date changed since counts at its new
    /// value); conditions read the records as they are now.
    pub time_occurrences: usize,
    /// The rule's object has more records than a backtest reads (200,000) or its
    /// schedule more than 1,000 occurrences in the window: figures are a lower bound.
    pub truncated: bool,
}

/// Install the seeded default rules (the product's five scenarios) not installed yet.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallDefaults {
    /// Enable them at once (default false).
    pub enabled: Option<bool>,
}

/// The caller out of rules' automatic assignment (round robin, least loaded) until a
/// moment: leave, a full pipeline. `until: null` takes them back in.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentPause {
    /// After now and within a year; null: not paused.
    pub until: Option<DateTime<Utc>>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub reason: Option<String>,
}
