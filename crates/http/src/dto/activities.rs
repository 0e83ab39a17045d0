//! Activity (follow-up) and task bodies.

use chrono::{DateTime, Utc};
use crm_db::repo::activities::ActivityRow;
use crm_db::repo::tasks::TaskRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

str_enum! {
    /// Kind of follow-up.
    ActivityType { Call => "call", Visit => "visit", Meeting => "meeting", Email => "email", Message => "message", Note => "note" }
}

/// A follow-up record.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    pub subject: String,
    pub content: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub duration_minutes: Option<i32>,
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<ActivityRow> for Activity {
    fn from(r: ActivityRow) -> Self {
        Activity {
            id: r.id,
            activity_type: ActivityType::parse(&r.activity_type).unwrap_or(ActivityType::Note),
            subject: r.subject,
            content: r.content,
            occurred_at: r.occurred_at,
            duration_minutes: r.duration_minutes,
            outcome: r.outcome,
            next_step: r.next_step,
            lead_id: r.lead_id,
            account_id: r.account_id,
            contact_id: r.contact_id,
            opportunity_id: r.opportunity_id,
            owner_id: r.owner_id,
            team_id: r.team_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /activities`: link at least one of lead, account, contact, opportunity.
/// The account is filled in from the contact or deal when omitted.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub subject: String,
    #[validate(length(max = 20000))]
    #[schema(max_length = 20000)]
    pub content: Option<String>,
    /// Defaults to now; at most 5 minutes in the future and a year in the past.
    pub occurred_at: Option<DateTime<Utc>>,
    #[validate(range(min = 0, max = 10080))]
    #[schema(minimum = 0, maximum = 10080)]
    pub duration_minutes: Option<i32>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub outcome: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub next_step: Option<String>,
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateActivity {
    #[serde(rename = "type")]
    pub activity_type: Option<ActivityType>,
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 20000)]
    #[validate(length(max = 20000))]
    pub content: Option<Option<String>>,
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 10080)]
    #[validate(range(min = 0, max = 10080))]
    pub duration_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub outcome: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub next_step: Option<Option<String>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityListQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `occurred_at`, `created_at`, `updated_at`; default `-occurred_at`.
    pub sort: Option<String>,
    /// Search in subject and content.
    pub q: Option<String>,
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub activity_type: Option<ActivityType>,
    pub occurred_after: Option<DateTime<Utc>>,
    pub occurred_before: Option<DateTime<Utc>>,
}

str_enum! {
    /// Task priority.
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" }
}

str_enum! {
    /// Task status.
    TaskStatus { Open => "open", Done => "done", Cancelled => "cancelled" }
}

str_enum! {
    /// Kind of record a task is about.
    RelatedType { Lead => "lead", Account => "account", Contact => "contact", Opportunity => "opportunity" }
}

str_enum! {
    /// Where a task came from.
    TaskOrigin { Manual => "manual", Rule => "rule", System => "system" }
}

/// A to-do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub reminder_at: Option<DateTime<Utc>>,
    pub priority: Priority,
    /// The assignee.
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status: TaskStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub related_type: Option<RelatedType>,
    pub related_id: Option<Uuid>,
    pub origin: TaskOrigin,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<TaskRow> for Task {
    fn from(r: TaskRow) -> Self {
        Task {
            id: r.id,
            title: r.title,
            description: r.description,
            due_at: r.due_at,
            reminder_at: r.reminder_at,
            priority: Priority::parse(&r.priority).unwrap_or(Priority::Normal),
            owner_id: r.owner_id,
            team_id: r.team_id,
            status: TaskStatus::parse(&r.status).unwrap_or(TaskStatus::Open),
            completed_at: r.completed_at,
            related_type: r.related_type.as_deref().and_then(RelatedType::parse),
            related_id: r.related_id,
            origin: TaskOrigin::parse(&r.origin).unwrap_or(TaskOrigin::Manual),
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub title: String,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    /// Must not be after `due_at`.
    pub reminder_at: Option<DateTime<Utc>>,
    pub priority: Option<Priority>,
    /// Assignee; defaults to the caller. Someone else needs `tasks:assign`.
    pub owner_id: Option<Uuid>,
    /// Give both or neither; the record must be visible to the caller.
    pub related_type: Option<RelatedType>,
    pub related_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    #[validate(length(max = 10000))]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub reminder_at: Option<Option<DateTime<Utc>>>,
    pub priority: Option<Priority>,
    /// Reassign (needs `tasks:assign`).
    pub owner_id: Option<Uuid>,
    /// `done` records `completed_at`; `open` reopens.
    pub status: Option<TaskStatus>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `due_at` (no due date last), `created_at`, `updated_at`; default `due_at`.
    pub sort: Option<String>,
    pub q: Option<String>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<TaskStatus>,
    #[param(inline)]
    pub priority: Option<Priority>,
    #[param(inline)]
    pub related_type: Option<RelatedType>,
    pub related_id: Option<Uuid>,
    pub due_after: Option<DateTime<Utc>>,
    pub due_before: Option<DateTime<Utc>>,
}

str_enum! {
    /// Window of `GET /me/tasks`.
    DueWindow { Overdue => "overdue", Today => "today", Upcoming => "upcoming" }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MyTasksQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// overdue (due before now), today (due today in `utc_offset`), upcoming (due after today).
    /// Without it: every open task.
    #[param(inline)]
    pub due: Option<DueWindow>,
    /// The caller's UTC offset for "today", e.g. `+08:00` (default).
    #[param(pattern = "^[+-]?(0?[0-9]|1[0-4]):[0-5][0-9]$")]
    pub utc_offset: Option<String>,
    /// Default `open`.
    #[param(inline)]
    pub status: Option<TaskStatus>,
}
