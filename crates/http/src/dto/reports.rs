//! Fixed reports: results, process, funnel, pipeline.

use chrono::{DateTime, NaiveDate, Utc};
use crm_app::reports as app;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::str_enum;

str_enum! {
    /// A period relative to today in the business time zone (weeks start on Monday).
    PeriodPreset {
        ThisWeek => "this_week",
        LastWeek => "last_week",
        ThisMonth => "this_month",
        LastMonth => "last_month",
        ThisQuarter => "this_quarter",
        LastQuarter => "last_quarter",
        ThisYear => "this_year",
        LastYear => "last_year",
    }
}

impl PeriodPreset {
    pub fn model(self) -> crm_domain::reports::Preset {
        use crm_domain::reports::Preset as P;
        match self {
            PeriodPreset::ThisWeek => P::ThisWeek,
            PeriodPreset::LastWeek => P::LastWeek,
            PeriodPreset::ThisMonth => P::ThisMonth,
            PeriodPreset::LastMonth => P::LastMonth,
            PeriodPreset::ThisQuarter => P::ThisQuarter,
            PeriodPreset::LastQuarter => P::LastQuarter,
            PeriodPreset::ThisYear => P::ThisYear,
            PeriodPreset::LastYear => P::LastYear,
        }
    }
}

/// Query of the fixed reports. The period is `period` (default `this_month`) or
/// `from` and `to` (business dates, inclusive, at most 1098 days); the previous period
/// is the unit before a preset, or as many days just before a custom range.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    #[param(inline)]
    pub period: Option<PeriodPreset>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// `none` (default), `team`, `owner`, `region`, `pipeline`, `source`, `industry`,
    /// `tier`, `account` or `custom.<key>`; each report says which it accepts.
    #[param(
        pattern = "^(none|team|owner|region|pipeline|source|industry|tier|account|custom\\.[a-z][a-z0-9_]{0,63})$"
    )]
    pub group_by: Option<String>,
    /// Records owned by this user.
    pub owner_id: Option<Uuid>,
    /// Records of this team and the teams below it.
    pub team_id: Option<Uuid>,
    /// Deal-based figures of this pipeline (lead figures ignore it).
    pub pipeline_id: Option<Uuid>,
    /// Adoption: days without an activity that make an open deal idle (default 14).
    #[param(minimum = 1, maximum = 365)]
    pub idle_days: Option<u32>,
    /// Pipeline: the open pipeline as it stood at the end of this business date, rebuilt
    /// from stage and field history (default: now).
    pub as_of: Option<NaiveDate>,
}

impl ReportQuery {
    pub fn params(self) -> app::Params {
        app::Params {
            period: self.period.map(PeriodPreset::model),
            from: self.from,
            to: self.to,
            group_by: self.group_by,
            owner_id: self.owner_id,
            team_id: self.team_id,
            pipeline_id: self.pipeline_id,
            idle_days: self.idle_days,
            as_of: self.as_of,
        }
    }
}

/// A period of business dates (both inclusive).
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodDto {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The first moment of `from` and the first moment after `to`, in UTC.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl From<crm_domain::reports::Period> for PeriodDto {
    fn from(p: crm_domain::reports::Period) -> Self {
        PeriodDto {
            from: p.from,
            to: p.to,
            starts_at: p.start,
            ends_at: p.end,
        }
    }
}

str_enum! {
    /// What a figure measures: a count, an amount (in `currency`), a percentage, days or minutes.
    FigureUnit { Count => "count", Money => "money", Percent => "percent", Days => "days", Minutes => "minutes" }
}

impl FigureUnit {
    fn of(u: app::Unit) -> FigureUnit {
        match u {
            app::Unit::Count => FigureUnit::Count,
            app::Unit::Money => FigureUnit::Money,
            app::Unit::Percent => FigureUnit::Percent,
            app::Unit::Days => FigureUnit::Days,
            app::Unit::Minutes => FigureUnit::Minutes,
        }
    }
}

/// One figure beside its value in the previous period.
#[derive(Debug, Serialize, ToSchema)]
pub struct FigureDto {
    /// Stable name of the figure (`sales_won_amount`, `win_rate`, ...).
    pub kpi: String,
    pub label_zh: String,
    pub label_en: String,
    #[schema(inline)]
    pub unit: FigureUnit,
    /// Amounts: their currency; amounts of different currencies are never added up.
    /// None for counts and rates, and for an amount with no records at all.
    pub currency: Option<String>,
    /// Activity volume: the activity type (none on the total over all types).
    pub activity_type: Option<String>,
    /// None when there is nothing to compute it from (an average over no records).
    #[schema(value_type = Option<String>, example = "128000.00")]
    pub value: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub previous: Option<Decimal>,
    /// `value - previous`.
    #[schema(value_type = Option<String>)]
    pub change: Option<Decimal>,
    /// The change as a percentage of `previous` (none when that is zero or missing).
    #[schema(value_type = Option<String>)]
    pub change_pct: Option<Decimal>,
}

impl From<app::Figure> for FigureDto {
    fn from(f: app::Figure) -> Self {
        let unit = FigureUnit::of(f.unit);
        FigureDto {
            kpi: f.kpi.into(),
            label_zh: f.label_zh.into(),
            label_en: f.label_en.into(),
            unit,
            currency: f.currency,
            activity_type: f.activity_type,
            value: f.value,
            previous: f.previous,
            change: f.change,
            change_pct: f.change_pct,
        }
    }
}

/// The value rows are grouped under: an id (owner, team, pipeline) or a value
/// (region, source, ...), none for records without one, with a readable label.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDto {
    pub key: Option<String>,
    pub label: Option<String>,
}

impl From<app::Group> for GroupDto {
    fn from(g: app::Group) -> Self {
        GroupDto {
            key: g.key,
            label: g.label,
        }
    }
}

/// One group's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportRowDto {
    pub group: GroupDto,
    pub figures: Vec<FigureDto>,
}

/// A results or process report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportDto {
    /// `results`, `process`, `receivables` or `adoption`.
    pub report: String,
    /// The preset asked for, if any.
    pub preset: Option<String>,
    pub period: PeriodDto,
    pub previous_period: PeriodDto,
    /// Offset of the business time zone from UTC, in hours.
    pub utc_offset_hours: i32,
    pub group_by: String,
    /// Per group, ordered by label (records without a value last); empty when not grouped.
    pub rows: Vec<ReportRowDto>,
    /// Over all groups.
    pub totals: Vec<FigureDto>,
    /// Figures left out: the caller lacks the read permission on their records, or
    /// may not see a field they read (hidden or masked).
    pub withheld: Vec<String>,
    /// Computed live from the primary (or the reports replica) at this moment.
    pub generated_at: DateTime<Utc>,
}

impl From<app::Report> for ReportDto {
    fn from(r: app::Report) -> Self {
        ReportDto {
            report: r.report.into(),
            preset: r.window.preset.map(|p| p.as_str().to_owned()),
            period: r.window.current.into(),
            previous_period: r.window.previous.into(),
            utc_offset_hours: r.utc_offset_hours,
            group_by: r.group_by.as_str(),
            rows: r
                .rows
                .into_iter()
                .map(|row| ReportRowDto {
                    group: row.group.into(),
                    figures: row.figures.into_iter().map(Into::into).collect(),
                })
                .collect(),
            totals: r.totals.into_iter().map(Into::into).collect(),
            withheld: r.withheld.into_iter().map(str::to_owned).collect(),
            generated_at: r.generated_at,
        }
    }
}

/// One stage of the funnel.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelStageDto {
    pub stage_id: Uuid,
    pub code: String,
    pub name: String,
    /// `open`, `won` or `lost`.
    pub kind: String,
    pub position: i32,
    /// `entered` (deals), `entries`, `advanced`, `lost`, `moved_back`, `skipped`,
    /// `conversion_to_next` and `conversion_to_won` (percent), `dwell_avg_days`,
    /// `dwell_median_days` (of entries that left the stage), and `in_stage_now`,
    /// `stalled_now` (today, without a previous value).
    pub figures: Vec<FigureDto>,
}

impl From<app::FunnelStage> for FunnelStageDto {
    fn from(s: app::FunnelStage) -> Self {
        FunnelStageDto {
            stage_id: s.stage_id,
            code: s.code,
            name: s.name,
            kind: s.kind,
            position: s.position,
            figures: s.figures.into_iter().map(Into::into).collect(),
        }
    }
}

/// One group's funnel.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelGroupDto {
    pub group: GroupDto,
    pub stages: Vec<FunnelStageDto>,
}

/// The funnel of one pipeline, from stage history.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelDto {
    pub pipeline_id: Uuid,
    pub preset: Option<String>,
    pub period: PeriodDto,
    pub previous_period: PeriodDto,
    pub utc_offset_hours: i32,
    /// `none`, `team` or `owner`.
    pub group_by: String,
    /// Per team or rep; empty when not grouped.
    pub groups: Vec<FunnelGroupDto>,
    /// Every stage, over all groups.
    pub totals: Vec<FunnelStageDto>,
    pub generated_at: DateTime<Utc>,
}

impl From<app::Funnel> for FunnelDto {
    fn from(f: app::Funnel) -> Self {
        FunnelDto {
            pipeline_id: f.pipeline_id,
            preset: f.window.preset.map(|p| p.as_str().to_owned()),
            period: f.window.current.into(),
            previous_period: f.window.previous.into(),
            utc_offset_hours: f.utc_offset_hours,
            group_by: f.group_by.as_str(),
            groups: f
                .groups
                .into_iter()
                .map(|g| FunnelGroupDto {
                    group: g.group.into(),
                    stages: g.stages.into_iter().map(Into::into).collect(),
                })
                .collect(),
            totals: f.totals.into_iter().map(Into::into).collect(),
            generated_at: f.generated_at,
        }
    }
}

/// Open deals of one expected close month, stage and currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineCellDto {
    /// `YYYY-MM`; none for deals without an expected close date.
    pub month: Option<String>,
    pub stage_id: Uuid,
    pub stage_code: String,
    pub stage_name: String,
    pub stage_position: i32,
    /// The deal's own forecast category, else its stage's.
    pub forecast_category: String,
    pub currency: String,
    pub deals: i64,
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    /// Each deal's amount times its probability.
    #[schema(value_type = Option<String>)]
    pub weighted_amount: Option<Decimal>,
    /// Won share (percent) of the deals that entered this stage in the last 365 days
    /// and have closed since; none without such deals.
    #[schema(value_type = Option<String>)]
    pub historical_win_pct: Option<Decimal>,
    /// `amount` times `historical_win_pct`.
    #[schema(value_type = Option<String>)]
    pub forecast_amount: Option<Decimal>,
}

/// Open pipeline by expected close month and stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineReportDto {
    /// Expected close dates covered (none: every open deal, with or without a date).
    pub close_from: Option<NaiveDate>,
    pub close_to: Option<NaiveDate>,
    pub cells: Vec<PipelineCellDto>,
    /// Per forecast category (`pipeline`, `best_case`, `commit`, `closed`, `omitted`)
    /// and currency.
    pub by_category: Vec<CategoryTotalDto>,
    /// The forecast from stage history laid out in time: open deals by the month they
    /// are expected to close in if they move as the deals won from their stage did
    /// (stage entry plus the average time to won of deals that entered that stage in
    /// the last 365 days; this month at the earliest), with each deal's amount times
    /// its stage's historical win share. Empty for `as_of`.
    pub by_history: Vec<HistoryCellDto>,
    /// Amount columns left out (null) because the caller may not see deal amounts.
    pub withheld: Vec<String>,
    pub generated_at: DateTime<Utc>,
}

/// Open deals of one history-expected close month and currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryCellDto {
    /// `YYYY-MM`; none for deals in a stage from which no deal was won in the last 365
    /// days.
    pub month: Option<String>,
    pub currency: String,
    pub deals: i64,
    #[schema(value_type = Option<String>)]
    pub forecast_amount: Option<Decimal>,
}

impl From<app::Pipeline> for PipelineReportDto {
    fn from(p: app::Pipeline) -> Self {
        PipelineReportDto {
            close_from: p.close_from,
            close_to: p.close_to,
            cells: p
                .cells
                .into_iter()
                .map(|c| PipelineCellDto {
                    month: c.month,
                    stage_id: c.stage_id,
                    stage_code: c.stage_code,
                    stage_name: c.stage_name,
                    stage_position: c.stage_position,
                    forecast_category: c.forecast_category,
                    currency: c.currency,
                    deals: c.deals,
                    amount: c.amount,
                    weighted_amount: c.weighted_amount,
                    historical_win_pct: c.historical_win_pct,
                    forecast_amount: c.forecast_amount,
                })
                .collect(),
            by_category: p
                .by_category
                .into_iter()
                .map(|t| CategoryTotalDto {
                    category: t.category,
                    currency: t.currency,
                    deals: t.deals,
                    amount: t.amount,
                    weighted_amount: t.weighted_amount,
                })
                .collect(),
            by_history: p
                .by_history
                .into_iter()
                .map(|h| HistoryCellDto {
                    month: h.month,
                    currency: h.currency,
                    deals: h.deals,
                    forecast_amount: h.forecast_amount,
                })
                .collect(),
            withheld: p.withheld.into_iter().map(str::to_owned).collect(),
            generated_at: p.generated_at,
        }
    }
}

/// Open deals of one forecast category and currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryTotalDto {
    pub category: String,
    pub currency: String,
    pub deals: i64,
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub weighted_amount: Option<Decimal>,
}

/// Query of `GET /reports/forecast-snapshots`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// The business date to read (default today): its snapshot, or the latest before it.
    pub on: Option<NaiveDate>,
    pub owner_id: Option<Uuid>,
    /// This team and the teams below it.
    pub team_id: Option<Uuid>,
    pub pipeline_id: Option<Uuid>,
}

/// One row of a forecast snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotRowDto {
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub pipeline_id: Uuid,
    /// The forecast category the deals had that day.
    pub category: String,
    /// First day of the expected close month; none for deals without a date.
    pub close_month: Option<NaiveDate>,
    pub currency: String,
    pub deals: i32,
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub weighted: Option<Decimal>,
}

/// A forecast snapshot: open deals (and deals won in that quarter) as they stood on
/// `taken_on`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotDto {
    /// The snapshot's business date; none when no snapshot was taken on or before the
    /// date asked for. Snapshots are taken by the background worker once a day.
    pub taken_on: Option<NaiveDate>,
    pub items: Vec<SnapshotRowDto>,
    pub withheld: Vec<String>,
}

impl From<app::forecast::Snapshot> for SnapshotDto {
    fn from(s: app::forecast::Snapshot) -> Self {
        SnapshotDto {
            taken_on: s.taken_on,
            items: s
                .rows
                .into_iter()
                .map(|r| SnapshotRowDto {
                    owner_id: r.owner_id,
                    team_id: r.team_id,
                    pipeline_id: r.pipeline_id,
                    category: r.category,
                    close_month: r.close_month,
                    currency: r.currency,
                    deals: r.deals,
                    amount: r.amount,
                    weighted: r.weighted,
                })
                .collect(),
            withheld: s.withheld.into_iter().map(str::to_owned).collect(),
        }
    }
}

str_enum! {
    /// What an ad-hoc query runs over.
    QueryObject {
        Leads => "leads",
        Accounts => "accounts",
        Contacts => "contacts",
        Opportunities => "opportunities",
        StageHistory => "stage_history",
        Activities => "activities",
        Tasks => "tasks",
        Quotes => "quotes",
        QuoteLines => "quote_lines",
        Contracts => "contracts",
        Invoices => "invoices",
        Payments => "payments",
    }
}

str_enum! {
    /// An aggregate: `count` (rows, no field), `count_distinct` (of a field), or `sum`,
    /// `avg`, `min`, `max` of a numeric field.
    QueryAgg { Count => "count", CountDistinct => "count_distinct", Sum => "sum", Avg => "avg", Min => "min", Max => "max" }
}

str_enum! {
    /// A time bucket of a date or time field, in the business time zone (weeks start on Monday).
    QueryBucket { Day => "day", Week => "week", Month => "month", Quarter => "quarter", Year => "year" }
}

/// One measure.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMeasure {
    #[schema(inline)]
    pub agg: QueryAgg,
    /// A field of the object (`amount`), a custom field (`custom.<key>`) or a related
    /// record's field (`account.industry`); none for `count`.
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub field: Option<String>,
}

/// One dimension.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryDimension {
    /// As for measures: `stage_id`, `custom.<key>`, `account.industry`, `created_at`.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub field: String,
    /// For a date or time field: group by day, week, month, quarter or year.
    #[schema(inline)]
    pub bucket: Option<QueryBucket>,
}

/// One sort key.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuerySort {
    /// A column key of the answer: a dimension's field (`stage_id`,
    /// `created_at:month`) or a measure's `agg:field` (`sum:amount`, `count`).
    #[validate(length(min = 1, max = 220))]
    #[schema(min_length = 1, max_length = 220)]
    pub key: String,
    #[serde(default)]
    pub desc: bool,
}

/// An ad-hoc report query. Fields are checked against the object's report fields,
/// custom fields and the caller's field permissions (422 naming the field); sums and
/// averages of amounts are always split by currency.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportQueryRequest {
    #[schema(inline)]
    pub object: QueryObject,
    #[serde(default)]
    #[validate(nested, length(max = 8))]
    #[schema(max_items = 8)]
    pub measures: Vec<QueryMeasure>,
    #[serde(default)]
    #[validate(nested, length(max = 4))]
    #[schema(max_items = 4)]
    pub dimensions: Vec<QueryDimension>,
    /// A condition in the shared expression format (`{"all": [{"field": "status",
    /// "op": "eq", "value": "won"}]}`); fields as for dimensions.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    #[serde(default)]
    #[validate(nested, length(max = 8))]
    #[schema(max_items = 8)]
    pub sort: Vec<QuerySort>,
    /// Rows, 1..=10000 (default 1000).
    #[validate(range(min = 1, max = 10000))]
    #[schema(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

impl ReportQueryRequest {
    pub fn spec(self) -> app::query::QuerySpec {
        use app::query::{Agg, Bucket};
        app::query::QuerySpec {
            object: self.object.as_str().to_owned(),
            measures: self
                .measures
                .into_iter()
                .map(|m| app::query::MeasureSpec {
                    agg: match m.agg {
                        QueryAgg::Count => Agg::Count,
                        QueryAgg::CountDistinct => Agg::CountDistinct,
                        QueryAgg::Sum => Agg::Sum,
                        QueryAgg::Avg => Agg::Avg,
                        QueryAgg::Min => Agg::Min,
                        QueryAgg::Max => Agg::Max,
                    },
                    field: m.field,
                })
                .collect(),
            dimensions: self
                .dimensions
                .into_iter()
                .map(|d| app::query::DimensionSpec {
                    field: d.field,
                    bucket: d.bucket.map(|b| match b {
                        QueryBucket::Day => Bucket::Day,
                        QueryBucket::Week => Bucket::Week,
                        QueryBucket::Month => Bucket::Month,
                        QueryBucket::Quarter => Bucket::Quarter,
                        QueryBucket::Year => Bucket::Year,
                    }),
                })
                .collect(),
            filter: self.filter,
            sort: self
                .sort
                .into_iter()
                .map(|s| app::query::SortSpec {
                    key: s.key,
                    desc: s.desc,
                })
                .collect(),
            limit: self.limit,
        }
    }
}

/// A column of a query answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryColumnDto {
    /// The dimension's field (`created_at:month` with a bucket) or the measure's
    /// `agg:field` (`count` for rows).
    pub key: String,
    /// `dimension` or `measure`.
    pub role: String,
    /// `text`, `number`, `money`, `integer`, `date`, `datetime`, `boolean` or `id`.
    /// Money and numbers are decimal strings; buckets are their first date.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub ty: String,
    pub label_zh: String,
    pub label_en: String,
    /// `currency` (amounts: the row's `currency` column says which) or `count`.
    pub unit: Option<String>,
}

/// The answer to an ad-hoc query.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportQueryResult {
    pub object: String,
    pub columns: Vec<QueryColumnDto>,
    /// One array per row, its cells in column order (a string, number, boolean or
    /// null each, as the column's `type` says).
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub rows: Vec<serde_json::Value>,
    /// The row limit applied.
    pub limit: i64,
    /// True when more rows matched than the limit: the answer is cut.
    pub truncated: bool,
    /// How to draw it: `number`, `bar`, `stacked_bar`, `line` or `table`.
    pub chart: String,
    /// What the engine added (such as a currency dimension beside sums of amounts).
    pub notes: Vec<String>,
    pub generated_at: DateTime<Utc>,
}

impl From<app::query::QueryResult> for ReportQueryResult {
    fn from(r: app::query::QueryResult) -> Self {
        ReportQueryResult {
            object: r.object.into(),
            columns: r
                .columns
                .into_iter()
                .map(|c| QueryColumnDto {
                    key: c.key,
                    role: c.role.into(),
                    ty: c.ty.as_str().into(),
                    label_zh: c.label_zh,
                    label_en: c.label_en,
                    unit: c.unit.map(str::to_owned),
                })
                .collect(),
            rows: r.rows,
            limit: r.limit,
            truncated: r.truncated,
            chart: r.chart.into(),
            notes: r.notes,
            generated_at: r.generated_at,
        }
    }
}

str_enum! {
    /// A fixed report.
    ReportName { Results => "results", Process => "process", Funnel => "funnel", Pipeline => "pipeline", Receivables => "receivables", Adoption => "adoption" }
}

str_enum! {
    /// A file format: `csv` (UTF-8 with BOM) or `xlsx` (typed cells, header row frozen).
    FileFormat { Csv => "csv", Xlsx => "xlsx" }
}

/// How a report is written out (besides the report's own parameters).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportOptions {
    /// `csv` (default) or `xlsx`.
    #[param(inline)]
    pub format: Option<FileFormat>,
}

/// What a chart draws (besides the report's own parameters).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChartOptions {
    /// Results and process: the figure drawn per group (default the first, e.g.
    /// `sales_won_amount`, `win_rate`). Funnels draw deals entered per stage, the
    /// pipeline its weighted amount per close month.
    #[param(max_length = 64, pattern = "^[a-z_]{1,64}$")]
    pub kpi: Option<String>,
}

/// What a leaderboard ranks (besides the report's own parameters).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaderboardOptions {
    /// A figure of the results or process report (default `sales_won_amount`), e.g.
    /// `payments_collected`, `new_contracts`, `win_rate`, `activities`.
    #[param(max_length = 64, pattern = "^[a-z_]{1,64}$")]
    pub kpi: Option<String>,
    /// Amounts of this currency only (default: every currency, each ranked apart).
    #[param(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

/// One place on a leaderboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct StandingDto {
    /// 1 for the highest value; equal values share a rank (1, 2, 2, 4). Amounts are
    /// ranked within their currency.
    pub rank: u32,
    pub group: GroupDto,
    pub currency: Option<String>,
    #[schema(value_type = Option<String>, example = "128000.00")]
    pub value: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub previous: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub change: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub change_pct: Option<Decimal>,
}

/// Reps or teams ranked by one figure.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardDto {
    pub kpi: String,
    pub label_zh: String,
    pub label_en: String,
    #[schema(inline)]
    pub unit: FigureUnit,
    /// `owner` or `team`.
    pub group_by: String,
    pub preset: Option<String>,
    pub period: PeriodDto,
    pub previous_period: PeriodDto,
    /// By currency (amounts), then rank.
    pub standings: Vec<StandingDto>,
    pub generated_at: DateTime<Utc>,
}

impl From<app::leaderboard::Leaderboard> for LeaderboardDto {
    fn from(l: app::leaderboard::Leaderboard) -> Self {
        LeaderboardDto {
            kpi: l.kpi.into(),
            label_zh: l.label_zh.into(),
            label_en: l.label_en.into(),
            unit: FigureUnit::of(l.unit),
            group_by: l.group_by.as_str(),
            preset: l.window.preset.map(|p| p.as_str().to_owned()),
            period: l.window.current.into(),
            previous_period: l.window.previous.into(),
            standings: l
                .standings
                .into_iter()
                .map(|s| StandingDto {
                    rank: s.rank,
                    group: s.group.into(),
                    currency: s.figure.currency,
                    value: s.figure.value,
                    previous: s.figure.previous,
                    change: s.figure.change,
                    change_pct: s.figure.change_pct,
                })
                .collect(),
            generated_at: l.generated_at,
        }
    }
}

str_enum! {
    /// The figure a sales target is set on: an amount (`sales_won_amount`,
    /// `new_contract_amount`, `payments_collected`, in `currency`) or a count
    /// (`deals_won`, `new_contracts`, no currency).
    TargetMetric {
        SalesWonAmount => "sales_won_amount",
        NewContractAmount => "new_contract_amount",
        PaymentsCollected => "payments_collected",
        DealsWon => "deals_won",
        NewContracts => "new_contracts",
    }
}

/// Body of `POST /sales-targets`: a rep's (`owner_id`) or a team's (`team_id`) target.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    /// The rep; the target keeps the rep's current team.
    pub owner_id: Option<Uuid>,
    /// The team (its sub-teams count toward it), when `owner_id` is not given.
    pub team_id: Option<Uuid>,
    #[schema(inline)]
    pub metric: TargetMetric,
    pub period_from: NaiveDate,
    /// Inclusive; at most 1098 days after `period_from`.
    pub period_to: NaiveDate,
    /// Amount targets: ISO 4217 code; counts have none.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// More than zero; at most two decimals.
    #[schema(value_type = String, example = "500000.00", pattern = "^[0-9]{1,16}(\\.[0-9]{1,2})?$")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub target: Decimal,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Body of `PATCH /sales-targets/{id}`: the value and the note (subject, figure and
/// period stay; delete and set anew to change them).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    #[schema(value_type = Option<String>, pattern = "^[0-9]{1,16}(\\.[0-9]{1,2})?$")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub target: Option<Decimal>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub note: Option<Option<String>>,
}

/// A sales target.
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesTarget {
    pub id: Uuid,
    /// The rep; none for a team's own target.
    pub owner_id: Option<Uuid>,
    /// The team: a team's target, or the rep's team when it was set.
    pub team_id: Option<Uuid>,
    pub metric: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub currency: Option<String>,
    #[schema(value_type = String, example = "500000.00")]
    pub target: Decimal,
    pub note: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<crm_db::repo::targets::TargetRow> for SalesTarget {
    fn from(r: crm_db::repo::targets::TargetRow) -> Self {
        SalesTarget {
            id: r.id,
            owner_id: r.owner_id,
            team_id: r.team_id,
            metric: r.metric,
            period_from: r.period_from,
            period_to: r.period_to,
            currency: r.currency,
            target: super::money(r.target),
            note: r.note,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Query of `GET /sales-targets`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TargetListQuery {
    /// A rep's targets.
    pub owner_id: Option<Uuid>,
    /// Targets of this team (a team's own, and its reps').
    pub team_id: Option<Uuid>,
    #[param(inline)]
    pub metric: Option<TargetMetric>,
    /// Targets whose period overlaps `from ..= to` (both needed).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `period_from`, `period_to`, `target`, `created_at`; `-` for descending. Default `-period_from`.
    pub sort: Option<String>,
}

/// One target beside what was reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttainmentDto {
    pub target: SalesTarget,
    /// The figure over the target's own dates for its rep (or team and sub-teams),
    /// counting the records the caller may read; none when the caller may not read them.
    #[schema(value_type = Option<String>, example = "320000.00")]
    pub actual: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "64.00")]
    pub attainment_pct: Option<Decimal>,
    /// Share of the target's days gone by (to today in the business time zone).
    #[schema(value_type = String, example = "50.00")]
    pub elapsed_pct: Decimal,
    /// `actual` reached the target.
    pub met: bool,
}

/// Targets overlapping the period, with attainment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetReportDto {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub items: Vec<AttainmentDto>,
    /// More targets overlap the period than one report computes (200).
    pub truncated: bool,
    pub generated_at: DateTime<Utc>,
}

impl From<app::targets::TargetReport> for TargetReportDto {
    fn from(r: app::targets::TargetReport) -> Self {
        TargetReportDto {
            from: r.from,
            to: r.to,
            items: r
                .items
                .into_iter()
                .map(|a| AttainmentDto {
                    target: a.target.into(),
                    actual: a.actual,
                    attainment_pct: a.attainment_pct,
                    elapsed_pct: a.elapsed_pct,
                    met: a.met,
                })
                .collect(),
            truncated: r.truncated,
            generated_at: r.generated_at,
        }
    }
}

str_enum! {
    /// A report that can be saved: a fixed report or an ad-hoc `query`.
    SavedReportKind {
        Results => "results",
        Process => "process",
        Funnel => "funnel",
        Pipeline => "pipeline",
        Receivables => "receivables",
        Adoption => "adoption",
        Leaderboard => "leaderboard",
        Targets => "targets",
        Query => "query",
    }
}

/// Body of `POST /saved-reports`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSavedReport {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(inline)]
    pub report: SavedReportKind,
    /// Fixed reports: their query parameters as JSON (`{"period": "this_quarter",
    /// "group_by": "owner"}`; a leaderboard also `kpi`, `currency`). `query`: the body of
    /// `POST /reports/query`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Role keys (`sales_rep`, `sales_manager`, ...) whose holders may see and run it.
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50, value_type = Vec<String>)]
    pub shared_with_roles: Vec<String>,
    /// Teams whose members may see and run it.
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub shared_with_teams: Vec<Uuid>,
}

/// Body of `PATCH /saved-reports/{id}` (the report kind stays).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSavedReport {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub shared_with_roles: Option<Vec<String>>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub shared_with_teams: Option<Vec<Uuid>>,
}

/// A saved report.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedReport {
    pub id: Uuid,
    /// None for the built-in reports (changed by admins only).
    pub owner_id: Option<Uuid>,
    pub name: String,
    pub report: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub shared_with_roles: Vec<String>,
    pub shared_with_teams: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<crm_db::repo::saved_reports::SavedReportRow> for SavedReport {
    fn from(r: crm_db::repo::saved_reports::SavedReportRow) -> Self {
        SavedReport {
            id: r.id,
            owner_id: r.owner_id,
            name: r.name,
            report: r.report,
            params: r.params,
            shared_with_roles: r.shared_with_roles,
            shared_with_teams: r.shared_with_teams,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Query of `GET /saved-reports`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SavedReportListQuery {
    #[param(inline)]
    pub report: Option<SavedReportKind>,
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `name`, `created_at`, `updated_at`; `-` for descending. Default `name`.
    pub sort: Option<String>,
}

/// Query of `GET /saved-reports/{id}/run`: a period that replaces the saved one.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunSavedQuery {
    #[param(inline)]
    pub period: Option<PeriodPreset>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// A saved report's answer, computed for the caller's own scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedReportRun {
    pub saved_report: SavedReport,
    /// The report's own answer (as its endpoint gives it: `ReportDto`, `FunnelDto`,
    /// `PipelineReportDto`, `LeaderboardDto`, `TargetReportDto` or `ReportQueryResult`).
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
}

str_enum! {
    /// How a widget draws its report.
    WidgetChart { Number => "number", Bar => "bar", Line => "line", Table => "table", Funnel => "funnel", Pie => "pie" }
}

str_enum! {
    /// How much of the dashboard a widget takes.
    WidgetSize { Small => "small", Medium => "medium", Large => "large" }
}

str_enum! {
    /// The time bucket ad-hoc query widgets are drawn in.
    Granularity { Day => "day", Week => "week", Month => "month", Quarter => "quarter", Year => "year" }
}

/// One widget: a saved report drawn as `chart`, `size` wide.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetDto {
    pub saved_report_id: Uuid,
    #[schema(inline)]
    pub chart: WidgetChart,
    #[schema(inline)]
    pub size: WidgetSize,
}

/// Body of `POST /dashboards`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDashboard {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The period every widget shows (default `this_month`).
    #[schema(inline)]
    pub period: Option<PeriodPreset>,
    /// The time bucket of ad-hoc query widgets (default `month`).
    #[schema(inline)]
    pub granularity: Option<Granularity>,
    /// In order; at most 24, each a saved report the author may see.
    #[serde(default)]
    #[validate(length(max = 24))]
    #[schema(max_items = 24)]
    pub widgets: Vec<WidgetDto>,
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50, value_type = Vec<String>)]
    pub shared_with_roles: Vec<String>,
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub shared_with_teams: Vec<Uuid>,
}

/// Body of `PATCH /dashboards/{id}`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDashboard {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(inline)]
    pub period: Option<PeriodPreset>,
    #[schema(inline)]
    pub granularity: Option<Granularity>,
    #[validate(length(max = 24))]
    #[schema(max_items = 24)]
    pub widgets: Option<Vec<WidgetDto>>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub shared_with_roles: Option<Vec<String>>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub shared_with_teams: Option<Vec<Uuid>>,
}

/// A dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub id: Uuid,
    /// None for the seeded dashboards (changed by admins only).
    pub owner_id: Option<Uuid>,
    pub name: String,
    pub period: String,
    pub granularity: String,
    #[schema(value_type = Vec<WidgetDto>)]
    pub widgets: serde_json::Value,
    pub shared_with_roles: Vec<String>,
    pub shared_with_teams: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<crm_db::repo::saved_reports::DashboardRow> for Dashboard {
    fn from(r: crm_db::repo::saved_reports::DashboardRow) -> Self {
        Dashboard {
            id: r.id,
            owner_id: r.owner_id,
            name: r.name,
            period: r.period,
            granularity: r.granularity,
            widgets: r.widgets,
            shared_with_roles: r.shared_with_roles,
            shared_with_teams: r.shared_with_teams,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Query of `GET /dashboards`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DashboardListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `name`, `created_at`, `updated_at`; `-` for descending. Default `name`.
    pub sort: Option<String>,
}

/// Query of `GET /dashboards/{id}/run`: a period and granularity for every widget at once.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunDashboardQuery {
    #[param(inline)]
    pub period: Option<PeriodPreset>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    #[param(inline)]
    pub granularity: Option<Granularity>,
}

/// Why a widget has no answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

/// One widget's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetRun {
    pub widget: WidgetDto,
    /// None when the caller may no longer see the saved report.
    pub saved_report: Option<SavedReport>,
    /// The report's answer for the caller's own scope.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Set instead of `result` when this widget could not be computed for the caller
    /// (e.g. 403 without the report's permission); the other widgets still are.
    pub error: Option<WidgetError>,
}

/// A dashboard's widgets, each computed for the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardRun {
    pub dashboard: Dashboard,
    pub widgets: Vec<WidgetRun>,
}

str_enum! {
    /// How an alert compares its figure with the threshold.
    AlertOpDto { Below => "below", Above => "above" }
}

/// An alert on one figure of a saved report (results, process, funnel, receivables or
/// adoption): it fires when the figure is `below` / `above` a fixed `threshold`, or
/// `ratio` times its average over the `baseline_periods` before (0.6 and 4: below 60%
/// of the last four periods' average).
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertDto {
    /// The figure's code as the report gives it (`conversion_to_next`, `win_rate`,
    /// `sales_won_amount`).
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, example = "conversion_to_next")]
    pub kpi: String,
    /// Funnel: the stage's code (`proposal`).
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub stage: Option<String>,
    /// One group's figure (the report's `group_by` key: a user, team or pipeline id, a
    /// region); none for the total.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub group: Option<String>,
    /// Amounts: the currency (ISO 4217).
    #[validate(length(min = 3, max = 3))]
    #[schema(min_length = 3, max_length = 3)]
    pub currency: Option<String>,
    #[schema(inline)]
    pub op: AlertOpDto,
    /// A fixed threshold (a decimal string, at most four decimals).
    #[schema(value_type = Option<String>, pattern = "^-?[0-9]{1,15}(\\.[0-9]{1,4})?$", example = "50")]
    #[serde(
        default,
        deserialize_with = "super::decimal_str::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub threshold: Option<Decimal>,
    /// Or a share of the average of the periods before (above 0, at most 100).
    #[schema(value_type = Option<String>, pattern = "^[0-9]{1,3}(\\.[0-9]{1,4})?$", example = "0.6")]
    #[serde(
        default,
        deserialize_with = "super::decimal_str::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub ratio: Option<Decimal>,
    /// Periods the average covers, 1..=12 (default 4; with `ratio`).
    #[validate(range(min = 1, max = 12))]
    #[schema(minimum = 1, maximum = 12)]
    pub baseline_periods: Option<u32>,
}

/// Body of `POST /report-subscriptions`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReportSubscription {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The saved report delivered (or watched by `alert`); give this or `dashboard_id`.
    pub saved_report_id: Option<Uuid>,
    /// The dashboard delivered (every widget's summary).
    pub dashboard_id: Option<Uuid>,
    /// When: five cron fields in the business time zone (`0 9 * * 1`: Mondays 09:00;
    /// `0 8 * * 1-5`: working days 08:00), at most once an hour.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, example = "0 9 * * 1")]
    pub schedule: String,
    /// The period each delivery covers (default: the saved report's own, a dashboard's).
    #[schema(inline)]
    pub period: Option<PeriodPreset>,
    /// Users notified in the app, each with the report over their own scope (default: the
    /// owner, when no channel is given).
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub recipients: Option<Vec<Uuid>>,
    /// A DingTalk or WeCom channel that gets the report over the owner's scope.
    pub channel_id: Option<Uuid>,
    /// Deliver only when this alert fires.
    #[validate(nested)]
    pub alert: Option<AlertDto>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Body of `PATCH /report-subscriptions/{id}` (what it delivers stays); `null` clears
/// `period`, `channel_id` or `alert`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateReportSubscription {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub schedule: Option<String>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(inline, value_type = Option<PeriodPreset>)]
    pub period: Option<Option<PeriodPreset>>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub recipients: Option<Vec<Uuid>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub channel_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<AlertDto>)]
    pub alert: Option<Option<AlertDto>>,
    pub enabled: Option<bool>,
}

/// A report subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportSubscription {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub saved_report_id: Option<Uuid>,
    pub dashboard_id: Option<Uuid>,
    pub schedule: String,
    pub period: Option<String>,
    pub recipients: Vec<Uuid>,
    pub channel_id: Option<Uuid>,
    #[schema(value_type = Option<AlertDto>)]
    pub alert: Option<serde_json::Value>,
    pub enabled: bool,
    /// The next delivery (none while disabled).
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<app::delivery::View> for ReportSubscription {
    fn from(v: app::delivery::View) -> Self {
        let r = v.row;
        ReportSubscription {
            id: r.id,
            owner_id: r.owner_id,
            name: r.name,
            saved_report_id: r.saved_report_id,
            dashboard_id: r.dashboard_id,
            schedule: r.schedule,
            period: r.period,
            recipients: r.recipients,
            channel_id: r.channel_id,
            alert: r.alert,
            enabled: r.enabled,
            next_run_at: v.next_run_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Query of `GET /report-subscriptions`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportSubscriptionListQuery {
    pub saved_report_id: Option<Uuid>,
    pub dashboard_id: Option<Uuid>,
    /// Admins: one owner's (others always see their own).
    pub owner_id: Option<Uuid>,
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `name`, `created_at`, `updated_at`; `-` for descending. Default `name`.
    pub sort: Option<String>,
}

/// Query of `GET /report-subscriptions/{id}/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// The latest this many, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// One occurrence a subscription ran for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportDelivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    /// The scheduled moment it ran for.
    pub occurrence: DateTime<Utc>,
    /// `sent`, `not_triggered` (an alert that did not fire), `skipped` (no recipient may
    /// see the report) or `failed`.
    pub status: String,
    /// Per recipient (by user id) and for the channel: whether it was sent, the alert's
    /// evaluation, or why it was skipped.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// In-app notifications written.
    pub notified: i32,
    /// Whether a message was queued for the channel.
    pub channel_queued: bool,
    pub created_at: DateTime<Utc>,
}

impl From<crm_db::repo::report_subscriptions::DeliveryRow> for ReportDelivery {
    fn from(d: crm_db::repo::report_subscriptions::DeliveryRow) -> Self {
        ReportDelivery {
            id: d.id,
            subscription_id: d.subscription_id,
            occurrence: d.occurrence,
            status: d.status,
            detail: d.detail,
            notified: d.notified,
            channel_queued: d.channel_queued,
            created_at: d.created_at,
        }
    }
}

/// An alert's evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertCheckDto {
    /// The figure this period (a decimal string; none without data).
    pub value: Option<String>,
    /// The average of the periods before (ratio alerts).
    pub baseline: Option<String>,
    pub threshold: Option<String>,
    pub triggered: bool,
    /// Why it could not be evaluated.
    pub reason: Option<String>,
}

/// What a subscription sends now to its owner, computed but not sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPreview {
    pub title_zh: String,
    pub title_en: String,
    /// Markdown, as the channel shows it.
    pub body: String,
    pub alert: Option<AlertCheckDto>,
    /// Whether a delivery now would send it (always for a digest; when the alert fires).
    pub send: bool,
}

impl From<app::delivery::Outcome> for DeliveryPreview {
    fn from(o: app::delivery::Outcome) -> Self {
        let s = |d: Option<Decimal>| d.map(|d| d.to_string());
        DeliveryPreview {
            title_zh: o.message.title_zh,
            title_en: o.message.title_en,
            body: o.message.body,
            alert: o.alert.map(|a| AlertCheckDto {
                value: s(a.value),
                baseline: s(a.baseline),
                threshold: s(a.threshold),
                triggered: a.triggered,
                reason: a.reason,
            }),
            send: o.send,
        }
    }
}
