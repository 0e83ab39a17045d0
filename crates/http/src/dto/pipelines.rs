//! Pipeline, stage and board bodies.

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::pipelines::{PipelineRow, StageRow};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::opportunities::Opportunity;
use super::{double_option, str_enum};

str_enum! {
    /// Kind of stage: deals in `won` / `lost` stages are closed.
    StageKindDto { Open => "open", Won => "won", Lost => "lost" }
}

/// A key task or required output of a stage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct StageItem {
    /// Stable code (lower-case letters, digits, `_`).
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub code: String,
    #[validate(length(min = 1, max = 300))]
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
}

/// An entry criterion. `unmet` lists in 422 answers use the same objects.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Criterion {
    /// A field of the opportunity is filled in, e.g. `amount`, `primary_contact_id`.
    FieldRequired { field: String },
    /// A key task (by stage code and task code) is checked off.
    TaskDone { stage: String, task: String },
    /// An output (deliverable) with this code is attached.
    OutputAttached { output: String },
    /// A quote of the deal has this status.
    QuoteStatus { status: String },
    /// Probability is at least this value.
    MinProbability {
        #[schema(minimum = 0, maximum = 100)]
        value: i32,
    },
    /// An activity of one of these types (any when empty) was logged on the deal.
    ActivityLogged {
        #[serde(default)]
        types: Vec<String>,
    },
    /// A condition over the deal's fields:
    /// `{"all"|"any": [...]}`, `{"not": ...}`, `{"field", "op", "value"}` with ops
    /// eq, ne, gt, gte, lt, lte, in, not_in, present, blank, contains.
    Condition {
        #[schema(value_type = Object)]
        expr: Value,
    },
    /// A contract of the deal is signed (signed, active or completed).
    ContractSigned,
    /// A payment (e.g. a prepayment) was received on a contract of the deal.
    PaymentReceived,
    /// At least one of these criteria is met.
    AnyOf {
        #[schema(no_recursion)]
        criteria: Vec<Criterion>,
    },
    /// Every one of these criteria is met (groups alternatives inside `any_of`).
    AllOf {
        #[schema(no_recursion)]
        criteria: Vec<Criterion>,
    },
}

impl Criterion {
    /// The domain form (same JSON shape).
    pub fn to_domain(&self) -> Result<crm_domain::pipeline::Criterion, String> {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(|e| e.to_string())
    }

    pub fn from_domain(c: &crm_domain::pipeline::Criterion) -> Option<Self> {
        serde_json::to_value(c)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

/// A stage of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stage {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: StageKindDto,
    /// Board order (1 = first).
    pub position: i32,
    /// Default win probability (0..=100) given to deals entering the stage.
    pub probability: i32,
    pub key_tasks: Vec<StageItem>,
    pub required_outputs: Vec<StageItem>,
    pub entry_criteria: Vec<Criterion>,
    /// Deals longer than this in the stage without activity count as stalled.
    pub stalled_after_days: Option<i32>,
    /// Forecast category of the stage's deals unless a deal overrides it.
    #[schema(inline)]
    pub forecast_category: ForecastCategory,
    pub archived: bool,
    pub version: i32,
}

str_enum! {
    /// A forecast category: `pipeline`, `best_case`, `commit`, `closed` or `omitted` (left out of forecasts).
    ForecastCategory { Pipeline => "pipeline", BestCase => "best_case", Commit => "commit", Closed => "closed", Omitted => "omitted" }
}

impl From<StageRow> for Stage {
    fn from(r: StageRow) -> Self {
        Stage {
            id: r.id,
            pipeline_id: r.pipeline_id,
            code: r.code,
            name: r.name,
            kind: StageKindDto::parse(&r.kind).unwrap_or(StageKindDto::Open),
            position: r.position,
            probability: r.probability,
            key_tasks: serde_json::from_value(r.key_tasks).unwrap_or_default(),
            required_outputs: serde_json::from_value(r.required_outputs).unwrap_or_default(),
            entry_criteria: serde_json::from_value(r.entry_criteria).unwrap_or_default(),
            stalled_after_days: r.stalled_after_days,
            forecast_category: ForecastCategory::parse(&r.forecast_category).unwrap_or(ForecastCategory::Pipeline),
            archived: r.archived_at.is_some(),
            version: r.version,
        }
    }
}

/// A pipeline with its stages in board order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pipeline {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
    pub archived: bool,
    pub stages: Vec<Stage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl Pipeline {
    pub fn from_rows(p: PipelineRow, stages: Vec<StageRow>) -> Self {
        Pipeline {
            id: p.id,
            name: p.name,
            description: p.description,
            is_default: p.is_default,
            archived: p.archived_at.is_some(),
            stages: stages
                .into_iter()
                .filter(|s| s.pipeline_id == p.id)
                .map(Stage::from)
                .collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineList {
    pub items: Vec<Pipeline>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PipelineQuery {
    /// Include archived pipelines and stages.
    #[serde(default)]
    pub include_archived: bool,
}

/// Body of `POST /admin/pipelines/{id}/stages` (and the stages of a new pipeline).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStage {
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub code: String,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    pub kind: StageKindDto,
    #[validate(range(min = 0, max = 100))]
    #[schema(minimum = 0, maximum = 100)]
    pub probability: i32,
    #[serde(default)]
    #[validate(nested)]
    pub key_tasks: Vec<StageItem>,
    #[serde(default)]
    #[validate(nested)]
    pub required_outputs: Vec<StageItem>,
    #[serde(default)]
    pub entry_criteria: Vec<Criterion>,
    #[validate(range(min = 1, max = 3650))]
    #[schema(minimum = 1, maximum = 3650)]
    pub stalled_after_days: Option<i32>,
    /// Default by kind: open `pipeline`, won `closed`, lost `omitted`.
    #[schema(inline)]
    pub forecast_category: Option<ForecastCategory>,
    /// 1-based position to insert at; appended when absent.
    #[validate(range(min = 1))]
    #[schema(minimum = 1)]
    pub position: Option<i32>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipeline {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_default: bool,
    /// Stages in board order.
    #[validate(nested)]
    pub stages: Vec<CreateStage>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePipeline {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub description: Option<Option<String>>,
    /// Make this the default pipeline (the previous default stops being one).
    pub is_default: Option<bool>,
    /// Archive (hide) or restore the pipeline; its deals keep their stages.
    pub archived: Option<bool>,
}

/// Body of `PATCH /admin/stages/{id}`; the code is immutable.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStage {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub kind: Option<StageKindDto>,
    #[validate(range(min = 0, max = 100))]
    #[schema(minimum = 0, maximum = 100)]
    pub probability: Option<i32>,
    #[validate(nested)]
    pub key_tasks: Option<Vec<StageItem>>,
    #[validate(nested)]
    pub required_outputs: Option<Vec<StageItem>>,
    pub entry_criteria: Option<Vec<Criterion>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub stalled_after_days: Option<Option<i32>>,
    /// Archive the stage (refused while open deals are in it) or restore it.
    pub archived: Option<bool>,
    #[schema(inline)]
    pub forecast_category: Option<ForecastCategory>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderStages {
    /// Every live stage of the pipeline, in the new order.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_items = 1, max_items = 100)]
    pub stage_ids: Vec<Uuid>,
}

/// Query of `GET /pipelines/{id}/board`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    /// Cards per stage, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    /// Expected close on or after this date.
    pub close_after: Option<NaiveDate>,
    /// Expected close before this date.
    pub close_before: Option<NaiveDate>,
    #[param(value_type = Option<String>)]
    pub amount_gte: Option<Decimal>,
    #[param(value_type = Option<String>)]
    pub amount_lte: Option<Decimal>,
    /// Search in deal names.
    pub q: Option<String>,
}

/// The deals of one currency in a board column (or the whole board).
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyTotal {
    pub currency: String,
    pub count: i64,
    /// Sum of amounts; null when the caller may not read deal amounts.
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    /// Sum of amount x probability; null when the caller may not read weighted amounts.
    #[schema(value_type = Option<String>)]
    pub weighted_amount: Option<Decimal>,
}

/// A board column.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardColumn {
    pub stage: Stage,
    /// Deals in the stage (matching the filters, in the caller's scope).
    pub count: i64,
    /// Sum of amounts; null when the caller may not read deal amounts, and when the
    /// column holds deals of more than one currency (amounts of different currencies
    /// are never added up: `totals` has one sum per currency).
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    /// Sum of amount x probability; null when the caller may not read weighted amounts
    /// or the column mixes currencies.
    #[schema(value_type = Option<String>)]
    pub weighted_amount: Option<Decimal>,
    /// Count and sums per currency, most deals first.
    pub totals: Vec<CurrencyTotal>,
    /// The first cards, most recently updated first.
    #[schema(value_type = Vec<Opportunity>)]
    pub cards: Vec<serde_json::Value>,
    /// More cards: `GET /opportunities?stage_id=<stage>&sort=-updated_at&cursor=<this>`
    /// with the same filters.
    pub next_cursor: Option<String>,
}

/// The kanban board of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    pub pipeline_id: Uuid,
    pub columns: Vec<BoardColumn>,
    pub total_count: i64,
    /// Null when the caller may not read deal amounts or the board mixes currencies.
    #[schema(value_type = Option<String>)]
    pub total_amount: Option<Decimal>,
    /// Null when the caller may not read weighted amounts or the board mixes currencies.
    #[schema(value_type = Option<String>)]
    pub total_weighted_amount: Option<Decimal>,
    /// Count and sums per currency over every column, most deals first.
    pub totals: Vec<CurrencyTotal>,
}
