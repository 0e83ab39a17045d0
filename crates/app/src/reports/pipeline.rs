//! Open pipeline by expected close month and stage, per currency: the amount, the
//! amount weighted by each deal's probability, and a forecast from history (the share
//! of deals that entered the stage in the last year and, once closed, were won).

use chrono::Duration;
use crm_db::sql::Sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{may_read, push_filters, read_scope, setup, Measure, Params, Unit};
use crate::error::{AppError, AppResult};
use crate::Ctx;

/// Open deals of one expected close month (none: no date), stage and currency.
#[derive(Debug, Clone, QueryableByName)]
pub struct PipelineCell {
    /// `YYYY-MM`.
    #[diesel(sql_type = Nullable<Text>)]
    pub month: Option<String>,
    #[diesel(sql_type = SqlUuid)]
    pub stage_id: Uuid,
    #[diesel(sql_type = Text)]
    pub stage_code: String,
    #[diesel(sql_type = Text)]
    pub stage_name: String,
    #[diesel(sql_type = Integer)]
    pub stage_position: i32,
    /// The deal's own forecast category, else its stage's.
    #[diesel(sql_type = Text)]
    pub forecast_category: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub deals: i64,
    #[diesel(sql_type = Nullable<Numeric>)]
    pub amount: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    pub weighted_amount: Option<Decimal>,
    /// Won share of the deals that entered this stage in the last 365 days and have
    /// closed since (none without such deals).
    #[diesel(sql_type = Nullable<Numeric>)]
    pub historical_win_pct: Option<Decimal>,
    /// `amount` times `historical_win_pct`.
    #[diesel(sql_type = Nullable<Numeric>)]
    pub forecast_amount: Option<Decimal>,
}

/// Open deals of one forecast category and currency.
#[derive(Debug, Clone)]
pub struct CategoryTotal {
    pub category: String,
    pub currency: String,
    pub deals: i64,
    pub amount: Option<Decimal>,
    pub weighted_amount: Option<Decimal>,
}

/// The pipeline report's answer.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Expected close dates covered (all open deals when no period was asked for).
    pub close_from: Option<chrono::NaiveDate>,
    pub close_to: Option<chrono::NaiveDate>,
    pub cells: Vec<PipelineCell>,
    /// Per forecast category and currency, over every month and stage.
    pub by_category: Vec<CategoryTotal>,
    pub withheld: Vec<&'static str>,
    pub generated_at: chrono::DateTime<chrono::Utc>,
}

const AMOUNT: Measure = Measure {
    kpi: "amount",
    label_zh: "金额",
    label_en: "Amount",
    unit: Unit::Money,
    agg: "",
    additive: false,
    sums: true,
    reads: Some(("opportunities", "amount")),
};

/// Open pipeline by expected close month and stage.
pub fn pipeline(c: &mut PgConnection, ctx: &Ctx, p: &Params) -> AppResult<Pipeline> {
    let asked = p.period.is_some() || p.from.is_some() || p.to.is_some();
    let s = setup(c, ctx, p, &["none"])?;
    let scope =
        read_scope(ctx, "opportunities").ok_or_else(|| AppError::forbidden("missing permission opportunities:read"))?;
    let (close_from, close_to) = if asked {
        (Some(s.window.current.from), Some(s.window.current.to))
    } else {
        (None, None)
    };
    let mut sql = Sql::new(
        "WITH hist AS (SELECT h.to_stage_id AS stage_id, \
         round(100.0 * count(DISTINCT o.id) FILTER (WHERE o.status = 'won') / count(DISTINCT o.id), 2) AS pct \
         FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id \
         WHERE o.deleted_at IS NULL AND o.status IN ('won', 'lost') AND h.entered_at >= ",
    );
    sql.bind::<Timestamptz, _>(ctx.now() - Duration::days(365));
    sql.scope("o", &scope);
    push_filters(&mut sql, "o", p);
    sql.push(
        " GROUP BY h.to_stage_id) \
         SELECT to_char(o.expected_close_date, 'YYYY-MM') AS month, o.stage_id, s.code AS stage_code, \
         s.name AS stage_name, s.position AS stage_position, \
         coalesce(o.forecast_category, s.forecast_category) AS forecast_category, o.currency, count(*) AS deals, \
         coalesce(sum(o.amount), 0) AS amount, \
         round(coalesce(sum(o.amount * o.probability / 100.0), 0), 2) AS weighted_amount, \
         max(hist.pct) AS historical_win_pct, \
         round(coalesce(sum(o.amount), 0) * max(hist.pct) / 100.0, 2) AS forecast_amount \
         FROM opportunities o JOIN stages s ON s.id = o.stage_id LEFT JOIN hist ON hist.stage_id = o.stage_id \
         WHERE o.deleted_at IS NULL AND o.status = 'open'",
    );
    sql.scope("o", &scope);
    push_filters(&mut sql, "o", p);
    if let Some(pipeline) = p.pipeline_id {
        sql.push(" AND o.pipeline_id = ");
        sql.bind::<SqlUuid, _>(pipeline);
    }
    if let (Some(from), Some(to)) = (close_from, close_to) {
        sql.push(" AND o.expected_close_date >= ");
        sql.bind::<Date, _>(from);
        sql.push(" AND o.expected_close_date <= ");
        sql.bind::<Date, _>(to);
    }
    sql.push(
        " GROUP BY 1, o.stage_id, s.code, s.name, s.position, 6, o.currency \
         ORDER BY 1 NULLS LAST, s.position, 6, o.currency",
    );
    let mut cells: Vec<PipelineCell> = sql.into_query().load(c)?;
    let mut withheld = Vec::new();
    if !may_read(ctx, &AMOUNT) {
        withheld = vec!["amount", "weighted_amount", "forecast_amount"];
        for cell in &mut cells {
            cell.amount = None;
            cell.weighted_amount = None;
            cell.forecast_amount = None;
        }
    }
    let mut by_category: Vec<CategoryTotal> = Vec::new();
    for cell in &cells {
        let add = |a: Option<Decimal>, b: Option<Decimal>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        match by_category
            .iter_mut()
            .find(|t| t.category == cell.forecast_category && t.currency == cell.currency)
        {
            Some(t) => {
                t.deals += cell.deals;
                t.amount = add(t.amount, cell.amount);
                t.weighted_amount = add(t.weighted_amount, cell.weighted_amount);
            }
            None => by_category.push(CategoryTotal {
                category: cell.forecast_category.clone(),
                currency: cell.currency.clone(),
                deals: cell.deals,
                amount: cell.amount,
                weighted_amount: cell.weighted_amount,
            }),
        }
    }
    let rank = |c: &str| {
        crm_domain::reports::FORECAST_CATEGORIES
            .iter()
            .position(|x| *x == c)
            .unwrap_or(usize::MAX)
    };
    by_category.sort_by(|a, b| {
        rank(&a.category)
            .cmp(&rank(&b.category))
            .then(a.currency.cmp(&b.currency))
    });
    Ok(Pipeline {
        close_from,
        close_to,
        cells,
        by_category,
        withheld,
        generated_at: ctx.now(),
    })
}
