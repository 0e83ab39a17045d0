//! Notifications of the caller, and the admin view of background jobs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::str_enum;

str_enum! {
    /// What a notification is about; each kind can be muted.
    NotificationKind {
        ApprovalRequested => "approval_requested", ApprovalDecided => "approval_decided",
        TaskAssigned => "task_assigned", DealWon => "deal_won", DealLost => "deal_lost",
        LeadAssigned => "lead_assigned", WebhookDisabled => "webhook_disabled",
        RuleAlert => "rule_alert", ReportDelivery => "report_delivery", ReportAlert => "report_alert"
    }
}

/// An in-app notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    #[schema(value_type = NotificationKind)]
    pub kind: String,
    pub title_zh: String,
    pub title_en: String,
    /// The record to link to (e.g. `opportunities`, `tasks`, `approvals`).
    pub object_type: String,
    pub object_id: Uuid,
    /// The event that caused it (`GET /api/v1/meta/events` documents its type).
    pub event_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Null while unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl From<crm_app::notifications::Notification> for Notification {
    fn from(n: crm_app::notifications::Notification) -> Self {
        Notification {
            id: n.id,
            kind: n.kind,
            title_zh: n.title_zh,
            title_en: n.title_en,
            object_type: n.object_type,
            object_id: n.object_id,
            event_id: n.event_id,
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

/// A page of the caller's notifications, unread first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The caller's unread notifications in all.
    pub unread_count: i64,
}

/// Query of `GET /me/notifications`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only unread ones.
    pub unread_only: Option<bool>,
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What `POST /me/notifications/read-all` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedRead {
    /// Notifications that were unread.
    pub marked: usize,
}

/// One kind of notification and whether the caller has muted it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationKindSetting {
    #[schema(value_type = NotificationKind)]
    pub kind: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    pub muted: bool,
}

/// The caller's notification settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationSettings {
    pub kinds: Vec<NotificationKindSetting>,
}

/// The kinds to mute (all others are on).
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct SetNotificationSettings {
    #[validate(length(max = 50))]
    pub muted: Vec<NotificationKind>,
}

str_enum! {
    /// A job's state.
    JobState { Waiting => "waiting", Running => "running", Dead => "dead" }
}

/// Counts of one queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueSummary {
    pub queue: String,
    /// Waiting and due now.
    pub ready: i64,
    /// Waiting for a later time (scheduled, or backing off after a failure).
    pub scheduled: i64,
    pub running: i64,
    pub dead: i64,
    /// Age in seconds of the oldest due job not yet running (null: none).
    pub oldest_ready_age_secs: Option<f64>,
}

/// How far one event subscriber is behind.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberLag {
    pub name: String,
    /// The commit sequence number it has handled up to.
    pub position: i64,
    pub pending_commits: i64,
    pub oldest_pending_age_secs: Option<f64>,
}

/// One background job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    #[schema(value_type = JobState)]
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// When it runs (next).
    pub run_at: DateTime<Utc>,
    /// The last failure.
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<crm_db::repo::jobs::Job> for Job {
    fn from(j: crm_db::repo::jobs::Job) -> Self {
        Job {
            id: j.id,
            queue: j.queue,
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            last_error: j.last_error,
            unique_key: j.unique_key,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// The state of background work.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsOverview {
    pub queues: Vec<QueueSummary>,
    pub subscribers: Vec<SubscriberLag>,
    /// The rule engine's time triggers: pending, and due but not fired yet.
    pub rule_timers: RuleTimerBacklog,
    /// Jobs in the requested state (default `dead`), latest change first.
    pub jobs: Vec<Job>,
}

/// Time triggers of the rule engine waiting for their moment.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleTimerBacklog {
    pub pending: i64,
    /// Pending timers whose moment has come (the backlog a burst leaves).
    pub due: i64,
}

/// Query of `GET /admin/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Which jobs to list (default `dead`).
    #[param(inline)]
    pub state: Option<JobState>,
    /// How many, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}
