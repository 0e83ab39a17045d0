//! Integrations: webhook subscriptions and their delivery log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

/// A webhook subscription. Deliveries are signed (`Webhook-Signature: t=<unix>,v1=<hex
/// HMAC-SHA256 of "<t>.<body>">`, a second `v1` during a secret rotation's grace) and
/// carry `Webhook-Id` (the event id, stable across retries and redeliveries).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Patterns: `*`, `<object>.*` (e.g. `opportunity.*`) or exact types (see
    /// `GET /api/v1/meta/events`).
    pub event_types: Vec<String>,
    /// Only events whose record (as the role may read it) matches; the shared condition
    /// format. Null: every matching event.
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    /// The role whose data scope and field permissions apply (with the owner's team).
    pub role: String,
    /// The user it acts as, notified when it is disabled.
    pub owner_id: Uuid,
    pub enabled: bool,
    /// While a rotated-out secret still signs too.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// Failing continuously since then (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

/// A subscription with its signing secret: only in the answers to creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Store it now: it cannot be shown again (null on an idempotent replay).
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http or https; the egress policy decides at delivery which addresses it may reach.
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub url: String,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_items = 1, max_items = 100)]
    pub event_types: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    /// Role key, e.g. `sales_manager`.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub role: String,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub url: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_items = 1, max_items = 100)]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Option<Value>>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub role: Option<String>,
    /// Enabling a disabled subscription clears its failure streak and sends what waited.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Hours the old secret keeps signing too (default 24, at most 168).
    #[validate(range(min = 0, max = 168))]
    #[schema(minimum = 0, maximum = 168)]
    pub grace_hours: Option<i64>,
}

str_enum! {
    /// Where a delivery stands.
    DeliveryState { Pending => "pending", Delivered => "delivered", Failed => "failed" }
}

str_enum! {
    /// What an attempt came to: `retry` is a failure that will be tried again.
    AttemptOutcome { Delivered => "delivered", Retry => "retry", Failed => "failed" }
}

/// One delivery of one event, with its latest attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The event id (`Webhook-Id`); the same on redeliveries.
    pub event_id: Uuid,
    pub event_type: String,
    pub record_id: Option<Uuid>,
    #[schema(value_type = DeliveryState)]
    pub state: String,
    pub attempts: i32,
    /// When it is (or was to be) tried next.
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status; null when none came back.
    pub last_status: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    /// The start of the receiver's answer (up to 1,000 characters).
    pub last_response: Option<String>,
    /// The delivery this one repeats.
    pub redelivery_of: Option<i64>,
}

impl From<crm_db::repo::webhooks::DeliveryRow> for WebhookDelivery {
    fn from(d: crm_db::repo::webhooks::DeliveryRow) -> Self {
        WebhookDelivery {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            record_id: d.record_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            last_status: d.last_status,
            last_latency_ms: d.last_latency_ms,
            last_error: d.last_error,
            last_response: d.last_response,
            redelivery_of: d.redelivery_of,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttempt {
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    #[schema(value_type = AttemptOutcome)]
    pub outcome: String,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// A delivery with every attempt and the exact body sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryDetail {
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    /// The signed body, as sent.
    pub body: String,
    pub attempts_log: Vec<WebhookAttempt>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    pub state: Option<DeliveryState>,
    /// Deliveries older than this id (paging).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Default 50, at most 200.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Deliver again: one delivery, or every delivery created in a window (at most 31 days,
/// 1,000 deliveries).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    pub delivery_id: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// The new deliveries, queued now.
    pub delivery_ids: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestEventQueued {
    pub delivery_id: i64,
}

/// A web-to-lead capture form. Its public endpoint is `POST /api/v1/capture/{form_key}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureForm {
    pub id: Uuid,
    pub form_key: String,
    pub name: String,
    /// Origins (`https://www.example.com`) whose pages may submit; empty: any.
    pub allowed_origins: Vec<String>,
    /// Form field -> lead field (`person_name`, `company`, `mobile`, `email`, ...) or
    /// `custom.<key>`.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub mapping: Value,
    pub source: Option<String>,
    pub campaign: Option<String>,
    /// Leads are created as this user (then the assignment rules apply).
    pub owner_id: Uuid,
    /// A hidden form field people leave empty; a submission filling it is dropped
    /// silently (answered like any other).
    pub honeypot: String,
    pub per_address_per_hour: i32,
    pub per_form_per_hour: i32,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<crm_db::repo::capture::CaptureFormRow> for CaptureForm {
    fn from(r: crm_db::repo::capture::CaptureFormRow) -> Self {
        CaptureForm {
            id: r.id,
            form_key: r.form_key,
            name: r.name,
            allowed_origins: r.allowed_origins,
            mapping: r.mapping,
            source: r.source,
            campaign: r.campaign,
            owner_id: r.owner_id,
            honeypot: r.honeypot,
            per_address_per_hour: r.per_address_per_hour,
            per_form_per_hour: r.per_form_per_hour,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureFormList {
    pub items: Vec<CaptureForm>,
}

/// A capture form's settings (creation, or replacing them as a whole).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureFormInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// 8 to 64 letters, digits, `-`, `_`; generated when absent (kept on replace).
    #[validate(length(min = 8, max = 64))]
    #[schema(min_length = 8, max_length = 64)]
    pub form_key: Option<String>,
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub allowed_origins: Vec<String>,
    pub mapping: std::collections::BTreeMap<String, String>,
    /// A lead source (default `website`).
    pub source: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub campaign: Option<String>,
    /// Default: the caller.
    pub owner_id: Option<Uuid>,
    /// Default `website`.
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub honeypot: Option<String>,
    /// Default 20.
    #[validate(range(min = 1, max = 10000))]
    #[schema(minimum = 1, maximum = 10000)]
    pub per_address_per_hour: Option<i32>,
    /// Default 2000.
    #[validate(range(min = 1, max = 1000000))]
    #[schema(minimum = 1, maximum = 1000000)]
    pub per_form_per_hour: Option<i32>,
    pub enabled: Option<bool>,
}

/// One submission as the admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureSubmission {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    /// The client address it came from.
    pub client: String,
    /// `created`, `duplicate` (an open lead matched; nothing created) or `spam`.
    pub outcome: String,
    pub lead_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureSubmissionList {
    pub items: Vec<CaptureSubmission>,
}

/// What a website form sends: its fields as named in the form (JSON object or
/// `application/x-www-form-urlencoded`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaptureBody(pub std::collections::BTreeMap<String, String>);

/// The answer to every accepted submission (created, duplicate or dropped alike).
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureReceived {
    /// Always `received`.
    pub status: String,
}

str_enum! {
    /// Which robot a channel is.
    ChannelKind { Dingtalk => "dingtalk", Wecom => "wecom" }
}

/// A group robot channel. Its URL and secret are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channel {
    pub id: Uuid,
    #[schema(value_type = ChannelKind)]
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    /// Requests a minute at most (the platforms allow 20).
    pub per_minute: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<crm_db::repo::channels::ChannelRow> for Channel {
    fn from(r: crm_db::repo::channels::ChannelRow) -> Self {
        Channel {
            id: r.id,
            kind: r.kind,
            name: r.name,
            enabled: r.enabled,
            per_minute: r.per_minute,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<Channel>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    pub kind: ChannelKind,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// DingTalk: the robot's webhook URL (`https://oapi.dingtalk.com/robot/send?access_token=…`);
    /// WeCom: optional, the key is enough.
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub url: Option<String>,
    /// DingTalk: the signing secret (`SEC…`, optional); WeCom: the robot's key.
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub secret: Option<String>,
    /// Default 20.
    #[validate(range(min = 1, max = 20))]
    #[schema(minimum = 1, maximum = 20)]
    pub per_minute: Option<i32>,
    pub enabled: Option<bool>,
}

/// The channel the caller gets personal notifications in (null: none).
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MyChannel {
    pub channel_id: Option<Uuid>,
    /// The mobile number to @-mention.
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub mobile: Option<String>,
}
