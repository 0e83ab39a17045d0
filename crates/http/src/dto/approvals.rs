//! Approval process bodies.

use chrono::{DateTime, Utc};
use crm_db::repo::approvals::{DefinitionRow, HistoryRow, InstanceRow, TaskRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

str_enum! {
    /// What kind of record a definition applies to.
    ApprovalObject { Quote => "quote", Contract => "contract", Opportunity => "opportunity" }
}

/// An approval process definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDefinition {
    pub id: Uuid,
    pub name: String,
    pub object_type: ApprovalObject,
    /// When the definition applies: same condition format as stage entry criteria, over
    /// the submitted record, e.g. `{"field": "discount_pct", "op": "gt", "value": "15"}`.
    /// Quotes add `discount_pct` (effective discount), `amount` (total),
    /// `free_text_lines` and `free_text_amount` (lines without a product, priced freely).
    /// Null means always.
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    /// When several definitions match, the lowest priority number wins.
    pub priority: i32,
    /// Ordered steps. Each: `name`; `approvers` one of `{"kind": "user", "user_id"}`,
    /// `{"kind": "role", "role", "within"?: "team"|"region"}`, `{"kind": "manager"}`,
    /// `{"kind": "manager_chain", "levels"}`, `{"kind": "team_lead"}`; `mode` `any`
    /// (default) or `all`; optional `condition` (the step applies only when it holds);
    /// optional `due_hours` after which a pending decision escalates to the approver's manager.
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<DefinitionRow> for ApprovalDefinition {
    fn from(r: DefinitionRow) -> Self {
        ApprovalDefinition {
            id: r.id,
            name: r.name,
            object_type: ApprovalObject::parse(&r.object_type).unwrap_or(ApprovalObject::Quote),
            condition: r.condition.filter(|v| !v.is_null()),
            priority: r.priority,
            steps: r.steps,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// All definitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDefinitionList {
    pub items: Vec<ApprovalDefinition>,
}

/// Body of `POST /admin/approval-definitions`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApprovalDefinition {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    pub object_type: ApprovalObject,
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    /// Default 100.
    #[validate(range(min = 0, max = 10000))]
    #[schema(minimum = 0, maximum = 10000)]
    pub priority: Option<i32>,
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    pub active: Option<bool>,
}

/// Body of `PATCH /admin/approval-definitions/{id}`. Running approvals keep the steps
/// they started with only as far as already opened; later steps follow the new version.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApprovalDefinition {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Option<Value>>,
    #[validate(range(min = 0, max = 10000))]
    #[schema(minimum = 0, maximum = 10000)]
    pub priority: Option<i32>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub steps: Option<Value>,
    pub active: Option<bool>,
}

str_enum! {
    /// Status of an approval.
    ApprovalStatus {
        Pending => "pending", Approved => "approved", Rejected => "rejected",
        Withdrawn => "withdrawn", AutoApproved => "auto_approved"
    }
}

str_enum! {
    /// Status of one approver's decision.
    DecisionStatus {
        Pending => "pending", Approved => "approved", Rejected => "rejected", Skipped => "skipped",
        Delegated => "delegated", Escalated => "escalated", Withdrawn => "withdrawn"
    }
}

/// One approver's decision in a step.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalTask {
    pub id: Uuid,
    pub approval_id: Uuid,
    pub step_index: i32,
    pub approver_id: Uuid,
    pub status: DecisionStatus,
    pub comment: Option<String>,
    /// The task this one was delegated or escalated from.
    pub delegated_from: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<TaskRow> for ApprovalTask {
    fn from(r: TaskRow) -> Self {
        ApprovalTask {
            id: r.id,
            approval_id: r.instance_id,
            step_index: r.step_index,
            approver_id: r.approver_id,
            status: DecisionStatus::parse(&r.status).unwrap_or(DecisionStatus::Pending),
            comment: r.comment,
            delegated_from: r.delegated_from,
            due_at: r.due_at,
            decided_at: r.decided_at,
            created_at: r.created_at,
        }
    }
}

/// One entry of an approval's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalEvent {
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    /// submitted, auto_approved, step_opened, approved, rejected, delegated, escalated,
    /// withdrawn, completed.
    pub action: String,
    pub step_index: Option<i32>,
    pub comment: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<HistoryRow> for ApprovalEvent {
    fn from(r: HistoryRow) -> Self {
        ApprovalEvent {
            at: r.at,
            actor_id: r.actor_id,
            action: r.action,
            step_index: r.step_index,
            comment: r.comment,
            details: r.details,
        }
    }
}

/// An approval of one record.
#[derive(Debug, Serialize, ToSchema)]
pub struct Approval {
    pub id: Uuid,
    pub definition_id: Option<Uuid>,
    pub object_type: ApprovalObject,
    pub object_id: Uuid,
    pub status: ApprovalStatus,
    pub requester_id: Uuid,
    pub owner_id: Uuid,
    pub current_step: Option<i32>,
    /// The record as submitted (what the approvers decide on).
    #[schema(value_type = Object)]
    pub record: Value,
    pub tasks: Vec<ApprovalTask>,
    pub history: Vec<ApprovalEvent>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub version: i32,
}

impl Approval {
    pub fn build(r: InstanceRow, tasks: Vec<TaskRow>, history: Vec<HistoryRow>) -> Self {
        Approval {
            id: r.id,
            definition_id: r.definition_id,
            object_type: ApprovalObject::parse(&r.object_type).unwrap_or(ApprovalObject::Quote),
            object_id: r.object_id,
            status: ApprovalStatus::parse(&r.status).unwrap_or(ApprovalStatus::Pending),
            requester_id: r.requester_id,
            owner_id: r.owner_id,
            current_step: r.current_step,
            record: r.snapshot.get("record").cloned().unwrap_or(Value::Null),
            tasks: tasks
                .into_iter()
                .filter(|t| t.instance_id == r.id)
                .map(ApprovalTask::from)
                .collect(),
            history: history
                .into_iter()
                .filter(|h| h.instance_id == r.id)
                .map(ApprovalEvent::from)
                .collect(),
            created_at: r.created_at,
            decided_at: r.decided_at,
            version: r.version,
        }
    }
}

/// Approvals of a record, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub items: Vec<Approval>,
}

/// An item of the caller's approval inbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxItem {
    pub task: ApprovalTask,
    pub approval_id: Uuid,
    pub object_type: ApprovalObject,
    pub object_id: Uuid,
    pub approval_status: ApprovalStatus,
    pub requester_id: Uuid,
    /// The record as submitted.
    #[schema(value_type = Object)]
    pub record: Value,
}

/// Query of `GET /me/approvals`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Default `pending`; `all` for every task.
    #[param(inline)]
    pub status: Option<InboxStatus>,
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

str_enum! {
    /// Which of the caller's decisions `GET /me/approvals` lists.
    InboxStatus {
        Pending => "pending", Approved => "approved", Rejected => "rejected", Skipped => "skipped",
        Delegated => "delegated", Escalated => "escalated", Withdrawn => "withdrawn", All => "all"
    }
}

/// Query of `GET /approvals`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsQuery {
    #[param(inline)]
    pub object_type: ApprovalObject,
    pub object_id: Uuid,
}

/// Body of approve / reject / withdraw.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Required to reject.
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// Body of `POST /approvals/{id}/delegate`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delegate {
    pub user_id: Uuid,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// Result of an escalation sweep.
#[derive(Debug, Serialize, ToSchema)]
pub struct SweepResult {
    /// Decisions escalated to the approver's manager.
    pub escalated: usize,
    /// Sent quotes past their validity marked expired.
    pub quotes_expired: usize,
}
