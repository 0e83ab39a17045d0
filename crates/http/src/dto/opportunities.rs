//! Opportunity (deal) bodies.

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::opportunities::{OpportunityRow, OutputRow, StageVisitRow};
use crm_db::repo::timeline::TimelineRow;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

str_enum! {
    /// Deal status; changes only through a stage move.
    DealStatus { Open => "open", Won => "won", Lost => "lost" }
}

str_enum! {
    /// A contact's role in a deal.
    DealRole {
        DecisionMaker => "decision_maker", Influencer => "influencer", User => "user",
        Gatekeeper => "gatekeeper", Champion => "champion", Other => "other"
    }
}

/// Another contact of the deal and their role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealContact {
    pub contact_id: Uuid,
    pub role: DealRole,
}

/// A sales opportunity.
#[derive(Debug, Serialize, ToSchema)]
pub struct Opportunity {
    pub id: Uuid,
    pub name: String,
    pub account_id: Uuid,
    pub primary_contact_id: Option<Uuid>,
    pub contacts: Vec<DealContact>,
    pub pipeline_id: Uuid,
    pub stage_id: Uuid,
    /// Exact decimal as a string, e.g. "120000.00".
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    /// ISO 4217 code.
    pub currency: String,
    pub expected_close_date: Option<NaiveDate>,
    /// 0..=100; defaults from the stage, may be overridden.
    pub probability: i32,
    /// amount x probability / 100.
    #[schema(value_type = Option<String>)]
    pub weighted_amount: Option<Decimal>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub source_lead_id: Option<Uuid>,
    pub competitors: Vec<String>,
    pub next_step: Option<String>,
    /// The deal's own forecast category; none: its stage's (see the stage).
    #[schema(inline)]
    pub forecast_category: Option<crate::dto::pipelines::ForecastCategory>,
    pub status: DealStatus,
    pub lost_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub stage_entered_at: DateTime<Utc>,
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Custom field values by key (see `GET /meta/{object}`).
    #[schema(value_type = Object)]
    pub custom: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl Opportunity {
    pub fn from_row(r: OpportunityRow, contacts: Vec<DealContact>) -> Self {
        // Money rounds half-up (away from zero) to cents, as Postgres' round() does.
        let weighted = r.amount.map(|a| {
            (a * Decimal::from(r.probability) / Decimal::from(100))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        });
        Opportunity {
            id: r.id,
            name: r.name,
            account_id: r.account_id,
            primary_contact_id: r.primary_contact_id,
            contacts,
            pipeline_id: r.pipeline_id,
            stage_id: r.stage_id,
            amount: r.amount,
            currency: r.currency,
            expected_close_date: r.expected_close_date,
            probability: r.probability,
            weighted_amount: weighted,
            owner_id: r.owner_id,
            team_id: r.team_id,
            source_lead_id: r.source_lead_id,
            competitors: r.competitors,
            next_step: r.next_step,
            forecast_category: r
                .forecast_category
                .as_deref()
                .and_then(crate::dto::pipelines::ForecastCategory::parse),
            status: DealStatus::parse(&r.status).unwrap_or(DealStatus::Open),
            lost_reason: r.lost_reason,
            closed_at: r.closed_at,
            stage_entered_at: r.stage_entered_at,
            last_activity_at: r.last_activity_at,
            custom: r.custom,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /opportunities`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOpportunity {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    pub account_id: Uuid,
    /// Must be a contact of the account.
    pub primary_contact_id: Option<Uuid>,
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub contacts: Vec<DealContact>,
    /// Defaults to the default pipeline.
    pub pipeline_id: Option<Uuid>,
    /// Defaults to the pipeline's first stage; a later stage must meet its entry criteria.
    pub stage_id: Option<Uuid>,
    #[schema(value_type = Option<String>, example = "120000.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub amount: Option<Decimal>,
    /// ISO 4217, default CNY.
    #[validate(length(equal = 3))]
    #[schema(min_length = 3, max_length = 3)]
    pub currency: Option<String>,
    pub expected_close_date: Option<NaiveDate>,
    /// Defaults to the stage's probability. An open deal's probability is 0 to 99: 100
    /// is reached only by winning it.
    #[validate(range(min = 0, max = 99))]
    #[schema(minimum = 0, maximum = 99)]
    pub probability: Option<i32>,
    /// Defaults to the caller; another owner needs `opportunities:assign`.
    pub owner_id: Option<Uuid>,
    #[serde(default)]
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub competitors: Vec<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub next_step: Option<String>,
    /// Overrides the stage's forecast category for this deal.
    #[schema(inline)]
    pub forecast_category: Option<crate::dto::pipelines::ForecastCategory>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /opportunities/{id}`. Stage and status change only through
/// `POST /opportunities/{id}/stage`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOpportunity {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub account_id: Option<Uuid>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub primary_contact_id: Option<Option<Uuid>>,
    /// Replaces the other contacts.
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub contacts: Option<Vec<DealContact>>,
    #[serde(default, deserialize_with = "super::decimal_str::nullable")]
    #[schema(value_type = Option<String>, example = "120000.00")]
    pub amount: Option<Option<Decimal>>,
    #[validate(length(equal = 3))]
    #[schema(min_length = 3, max_length = 3)]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub expected_close_date: Option<Option<NaiveDate>>,
    /// 0 to 99 on an open deal (100 is reached only by winning it); a won or lost deal's
    /// probability follows its stage and cannot be set.
    #[validate(range(min = 0, max = 99))]
    #[schema(minimum = 0, maximum = 99)]
    pub probability: Option<i32>,
    /// Reassigning needs `opportunities:assign`.
    pub owner_id: Option<Uuid>,
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub competitors: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub next_step: Option<Option<String>>,
    /// Overrides the stage's forecast category; `null` goes back to the stage's.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(inline)]
    pub forecast_category: Option<Option<crate::dto::pipelines::ForecastCategory>>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `POST /opportunities/{id}/stage`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveStage {
    pub stage_id: Uuid,
    /// Required to move backwards, to lose (becomes the lost reason) and to reopen.
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

/// Query of `GET /opportunities`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OpportunityListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (or of a board column).
    pub cursor: Option<String>,
    /// `name`, `created_at`, `updated_at`, `stage_entered_at`, `amount`,
    /// `expected_close_date`; `-` for descending. Default `-created_at`.
    pub sort: Option<String>,
    /// Search in deal names.
    pub q: Option<String>,
    pub pipeline_id: Option<Uuid>,
    pub stage_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<DealStatus>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    #[param(value_type = Option<String>)]
    pub amount_gte: Option<Decimal>,
    #[param(value_type = Option<String>)]
    pub amount_lte: Option<Decimal>,
    /// Expected close on or after.
    pub close_after: Option<NaiveDate>,
    /// Expected close before.
    pub close_before: Option<NaiveDate>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    /// Only deals stalled in their stage (longer than the stage's threshold without activity).
    pub stalled: Option<bool>,
    /// Delta sync: changed after this instant plus `deleted_ids` (first page).
    pub updated_since: Option<DateTime<Utc>>,
}

/// A key task of a stage with its state on this deal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecklistItem {
    pub code: String,
    pub title: String,
    pub done: bool,
    pub changed_by: Option<Uuid>,
    pub changed_at: Option<DateTime<Utc>>,
}

/// The checklist of one stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecklistStage {
    pub stage_id: Uuid,
    pub stage_code: String,
    pub stage_name: String,
    pub tasks: Vec<ChecklistItem>,
    /// Required outputs of the stage and whether one is attached.
    pub outputs: Vec<OutputStatus>,
}

/// Whether a required output is attached.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputStatus {
    pub code: String,
    pub title: String,
    pub attached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checklist {
    pub stages: Vec<ChecklistStage>,
}

/// Body of `PUT /opportunities/{id}/checklist/{stage_id}/{task_code}`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTask {
    pub done: bool,
}

/// A deliverable attached to a deal.
#[derive(Debug, Serialize, ToSchema)]
pub struct Output {
    pub id: Uuid,
    pub opportunity_id: Uuid,
    pub stage_id: Uuid,
    /// Code of the required output this fulfils, if any.
    pub output_code: Option<String>,
    pub title: String,
    pub notes: Option<String>,
    pub url: Option<String>,
    /// Reference to a stored file (e.g. object-storage key).
    pub file_ref: Option<String>,
    pub author_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<OutputRow> for Output {
    fn from(r: OutputRow) -> Self {
        Output {
            id: r.id,
            opportunity_id: r.opportunity_id,
            stage_id: r.stage_id,
            output_code: r.output_code,
            title: r.title,
            notes: r.notes,
            url: r.url,
            file_ref: r.file_ref,
            author_id: r.author_id,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutputList {
    pub items: Vec<Output>,
}

/// Body of `POST /opportunities/{id}/outputs`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOutput {
    /// Defaults to the deal's current stage.
    pub stage_id: Option<Uuid>,
    /// A required-output code defined in the pipeline.
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub output_code: Option<String>,
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub title: String,
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub notes: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub file_ref: Option<String>,
}

/// One stay of a deal in a stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageVisit {
    pub id: i64,
    pub from_stage_id: Option<Uuid>,
    pub to_stage_id: Uuid,
    pub entered_at: DateTime<Utc>,
    /// Null while the deal is still in the stage.
    pub left_at: Option<DateTime<Utc>>,
    /// Time in the stage (until now when still there).
    pub dwell_seconds: i64,
    pub changed_by: Option<Uuid>,
    /// Amount and probability when the deal entered the stage.
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    pub probability: Option<i32>,
    pub reason: Option<String>,
}

impl StageVisit {
    /// A visit as of `now` (an open visit's dwell runs to now).
    pub fn at(r: StageVisitRow, now: DateTime<Utc>) -> Self {
        let end = r.left_at.unwrap_or(now);
        StageVisit {
            id: r.id,
            from_stage_id: r.from_stage_id,
            to_stage_id: r.to_stage_id,
            entered_at: r.entered_at,
            left_at: r.left_at,
            dwell_seconds: (end - r.entered_at).num_seconds().max(0),
            changed_by: r.changed_by,
            amount: r.amount,
            probability: r.probability,
            reason: r.reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StageHistory {
    pub items: Vec<StageVisit>,
}

str_enum! {
    /// Kind of timeline entry.
    TimelineKind {
        StageChange => "stage_change", FieldChange => "field_change", Activity => "activity",
        Task => "task", Output => "output", Quote => "quote", Contract => "contract", Payment => "payment"
    }
}

/// One entry of a deal's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// Stable id of the entry within the timeline.
    pub id: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<TimelineRow> for TimelineEntry {
    fn from(r: TimelineRow) -> Self {
        TimelineEntry {
            at: r.at,
            kind: TimelineKind::parse(&r.kind).unwrap_or(TimelineKind::FieldChange),
            id: r.ref_id,
            data: r.data,
        }
    }
}
