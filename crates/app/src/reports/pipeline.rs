//! Open pipeline by expected close month and stage, per currency: the amount, the
//! amount weighted by each deal's probability, and a forecast from history (the share
//! of deals that entered the stage in the last year and, once closed, were won), also
//! laid out by the month history expects each deal to close in (its stage entry plus
//! the average time deals won from that stage took).

use chrono::Duration;
use crm_db::sql::Sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date, Double, Integer, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
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

/// Open deals by the month stage history expects them to close in, per currency.
#[derive(Debug, Clone, QueryableByName)]
pub struct HistoryCell {
    /// `YYYY-MM` of the deal's stage entry plus the average time deals that entered
    /// the same stage in the last 365 days took to be won (this month at the earliest);
    /// none when no such deal was won.
    #[diesel(sql_type = Nullable<Text>)]
    pub month: Option<String>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub deals: i64,
    /// Sum of each deal's amount times its stage's historical win share.
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
    /// The history forecast by expected month and currency (empty for a past date).
    pub by_history: Vec<HistoryCell>,
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
    if let Some(on) = p.as_of {
        return pipeline_as_of(c, ctx, p, on);
    }
    let asked = p.period.is_some() || p.from.is_some() || p.to.is_some();
    let s = setup(c, ctx, p, &["none"])?;
    let scope =
        read_scope(ctx, "opportunities").ok_or_else(|| AppError::forbidden("missing permission opportunities:read"))?;
    let (close_from, close_to) = if asked {
        (Some(s.window.current.from), Some(s.window.current.to))
    } else {
        (None, None)
    };
    let hist = hist(c, ctx, &scope, p)?;
    // The cells, from the open deals' rollup (kept by a trigger, migration
    // `report_rollups`): one row per close date, stage, category, owner, team, currency.
    let mut sql = Sql::new("");
    push_hist(&mut sql, &hist);
    sql.push(
        " SELECT to_char(nullif(t.close_date, '-infinity'), 'YYYY-MM') AS month, t.stage_id, s.code AS stage_code, \
         s.name AS stage_name, s.position AS stage_position, \
         coalesce(nullif(t.forecast_category, ''), s.forecast_category) AS forecast_category, t.currency, \
         sum(t.deals)::bigint AS deals, coalesce(sum(t.amount), 0) AS amount, \
         round(coalesce(sum(t.amount_x_prob) / 100.0, 0), 2) AS weighted_amount, \
         max(hist.pct) AS historical_win_pct, \
         round(coalesce(sum(t.amount), 0) * max(hist.pct) / 100.0, 2) AS forecast_amount \
         FROM opportunity_forecast_totals t JOIN stages s ON s.id = t.stage_id \
         LEFT JOIN hist ON hist.stage_id = t.stage_id WHERE t.deals <> 0",
    );
    sql.scope("t", &scope);
    push_filters(&mut sql, "t", p);
    if let Some(pipeline) = p.pipeline_id {
        sql.push(" AND s.pipeline_id = ");
        sql.bind::<SqlUuid, _>(pipeline);
    }
    if let (Some(from), Some(to)) = (close_from, close_to) {
        sql.push(" AND t.close_date >= ");
        sql.bind::<Date, _>(from);
        sql.push(" AND t.close_date <= ");
        sql.bind::<Date, _>(to);
    }
    sql.push(
        " GROUP BY 1, t.stage_id, s.code, s.name, s.position, 6, t.currency HAVING sum(t.deals) <> 0 \
         ORDER BY 1 NULLS LAST, s.position, 6, t.currency",
    );
    let cells: Vec<PipelineCell> = sql.into_query().load(c)?;

    let mut sql = Sql::new("");
    push_hist(&mut sql, &hist);
    sql.push(
        ", d AS (SELECT o.currency, o.amount, hist.pct, CASE WHEN hist.secs IS NOT NULL THEN \
         ((greatest(o.stage_entered_at + make_interval(secs => hist.secs), ",
    );
    sql.bind::<Timestamptz, _>(ctx.now());
    sql.push(&format!(
        ") AT TIME ZONE 'UTC') + make_interval(secs => {}))::date END AS due \
         FROM opportunities o LEFT JOIN hist ON hist.stage_id = o.stage_id \
         WHERE o.deleted_at IS NULL AND o.status = 'open'",
        s.tz.local_minus_utc()
    ));
    sql.scope("o", &scope);
    push_filters(&mut sql, "o", p);
    if let Some(pipeline) = p.pipeline_id {
        sql.push(" AND o.pipeline_id = ");
        sql.bind::<SqlUuid, _>(pipeline);
    }
    sql.push(
        ") SELECT to_char(d.due, 'YYYY-MM') AS month, d.currency, count(*) AS deals, \
         round(coalesce(sum(d.amount * d.pct / 100.0), 0), 2) AS forecast_amount FROM d WHERE TRUE",
    );
    if let (Some(from), Some(to)) = (close_from, close_to) {
        sql.push(" AND d.due >= ");
        sql.bind::<Date, _>(from);
        sql.push(" AND d.due <= ");
        sql.bind::<Date, _>(to);
    }
    sql.push(" GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2");
    let by_history: Vec<HistoryCell> = sql.into_query().load(c)?;
    finish(ctx, close_from, close_to, cells, by_history)
}

/// One stage's history: the won share (percent) of the deals in scope and filters that
/// entered it in the last 365 days and have closed since, and the average seconds
/// from such an entry to the deal being won.
#[derive(QueryableByName)]
struct StageHistory {
    #[diesel(sql_type = SqlUuid)]
    stage_id: Uuid,
    #[diesel(sql_type = Nullable<Numeric>)]
    pct: Option<Decimal>,
    #[diesel(sql_type = Nullable<Double>)]
    secs: Option<f64>,
}

/// Every stage's history, computed once per report (both of its statements read it),
/// from the rollup of closed deals' visits (migration `stage_win_totals`, kept by
/// triggers): the window starts at the UTC day 365 days back, and a deal counts once
/// per stage by its visits whose previous entry into the stage is before the window.
fn hist(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: &crm_domain::access::ScopeFilter,
    p: &Params,
) -> AppResult<Vec<StageHistory>> {
    let since = (ctx.now() - Duration::days(365)).date_naive();
    let mut sql = Sql::new("SELECT t.stage_id, round(100.0 * sum(t.won_visits) FILTER (WHERE t.prev_on < ");
    sql.bind::<Date, _>(since);
    sql.push(") / nullif(sum(t.visits) FILTER (WHERE t.prev_on < ");
    sql.bind::<Date, _>(since);
    sql.push(
        "), 0), 2) AS pct, (sum(t.won_secs) / nullif(sum(t.won_visits), 0))::float8 AS secs \
         FROM stage_win_totals t WHERE t.entered_on >= ",
    );
    sql.bind::<Date, _>(since);
    sql.scope("t", scope);
    push_filters(&mut sql, "t", p);
    sql.push(" GROUP BY t.stage_id HAVING sum(t.visits) <> 0");
    Ok(sql.into_query().load(c)?)
}

/// `WITH hist (stage_id, pct, secs) AS (…)`: the stages' history, bound as arrays.
fn push_hist(sql: &mut Sql<'_>, hist: &[StageHistory]) {
    sql.push("WITH hist AS (SELECT * FROM unnest(");
    sql.bind::<Array<SqlUuid>, _>(hist.iter().map(|h| h.stage_id).collect::<Vec<_>>());
    sql.push("::uuid[], ");
    sql.bind::<Array<Nullable<Numeric>>, _>(hist.iter().map(|h| h.pct).collect::<Vec<_>>());
    sql.push("::numeric[], ");
    sql.bind::<Array<Nullable<Double>>, _>(hist.iter().map(|h| h.secs).collect::<Vec<_>>());
    sql.push("::float8[]) AS h (stage_id, pct, secs))");
}

/// Withholds amounts the caller may not read and adds the totals per forecast category.
fn finish(
    ctx: &Ctx,
    close_from: Option<chrono::NaiveDate>,
    close_to: Option<chrono::NaiveDate>,
    mut cells: Vec<PipelineCell>,
    mut by_history: Vec<HistoryCell>,
) -> AppResult<Pipeline> {
    let mut withheld = Vec::new();
    if !may_read(ctx, &AMOUNT) {
        withheld = vec!["amount", "weighted_amount", "forecast_amount"];
        for cell in &mut cells {
            cell.amount = None;
            cell.weighted_amount = None;
            cell.forecast_amount = None;
        }
        for cell in &mut by_history {
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
        by_history,
        withheld,
        generated_at: ctx.now(),
    })
}

/// The open pipeline as it stood at the end of `on` (business time zone), rebuilt from
/// history: each deal's stage from the stage visit open then, its amount and expected
/// close date from the last change recorded before then (the audit trail; the stage
/// visit's amount or today's value when none was recorded), its probability from that
/// visit. Deals are those in the caller's read scope today. A period limits the
/// expected close dates as in [`pipeline`].
pub fn pipeline_as_of(c: &mut PgConnection, ctx: &Ctx, p: &Params, on: chrono::NaiveDate) -> AppResult<Pipeline> {
    let asked = p.period.is_some() || p.from.is_some() || p.to.is_some();
    let s = setup(c, ctx, p, &["none"])?;
    let scope =
        read_scope(ctx, "opportunities").ok_or_else(|| AppError::forbidden("missing permission opportunities:read"))?;
    let today = ctx.now().with_timezone(&s.tz).date_naive();
    if on > today {
        return Err(AppError::field(
            "as_of",
            "in_future",
            "the pipeline of a day to come is not known yet",
        ));
    }
    let at = crm_domain::reports::Period::dates(on, on, s.tz).end;
    let (close_from, close_to) = if asked {
        (Some(s.window.current.from), Some(s.window.current.to))
    } else {
        (None, None)
    };
    let last_change = |field: &str, ty: &str| {
        format!(
            "LEFT JOIN LATERAL (SELECT (a.changes -> '{field}' ->> 'after')::{ty} AS v FROM audit_log a \
             WHERE a.entity_type = 'opportunities' AND a.entity_id = o.id AND a.occurred_at < $at \
             AND a.changes ? '{field}' ORDER BY a.id DESC LIMIT 1) ch_{field} ON TRUE "
        )
    };
    let template = format!(
        "SELECT to_char(x.close_date, 'YYYY-MM') AS month, x.stage_id, s.code AS stage_code, s.name AS stage_name, \
         s.position AS stage_position, coalesce(x.category, s.forecast_category) AS forecast_category, x.currency, \
         count(*) AS deals, coalesce(sum(x.amount), 0) AS amount, \
         round(coalesce(sum(x.amount * x.probability / 100.0), 0), 2) AS weighted_amount, \
         NULL::numeric AS historical_win_pct, NULL::numeric AS forecast_amount \
         FROM (SELECT v.to_stage_id AS stage_id, o.currency, o.forecast_category AS category, \
         coalesce(ch_amount.v, v.amount, o.amount) AS amount, \
         coalesce(v.probability, st.probability) AS probability, \
         coalesce(ch_expected_close_date.v, o.expected_close_date) AS close_date \
         FROM opportunities o \
         JOIN LATERAL (SELECT h.to_stage_id, h.amount, h.probability FROM stage_history h \
         WHERE h.opportunity_id = o.id AND h.entered_at < $at AND (h.left_at IS NULL OR h.left_at >= $at) \
         ORDER BY h.entered_at DESC, h.id DESC LIMIT 1) v ON TRUE \
         JOIN stages st ON st.id = v.to_stage_id \
         {}{}\
         WHERE (o.deleted_at IS NULL OR o.deleted_at >= $at) AND o.created_at < $at AND st.kind = 'open'",
        last_change("amount", "numeric"),
        last_change("expected_close_date", "date"),
    );
    // `$at` stands for the moment; each occurrence is bound in order.
    let mut parts = template.split("$at");
    let mut sql = Sql::new(parts.next().unwrap_or_default());
    for rest in parts {
        sql.bind::<Timestamptz, _>(at);
        sql.push(rest);
    }
    sql.scope("o", &scope);
    push_filters(&mut sql, "o", p);
    if let Some(pipeline) = p.pipeline_id {
        sql.push(" AND o.pipeline_id = ");
        sql.bind::<SqlUuid, _>(pipeline);
    }
    sql.push(") x JOIN stages s ON s.id = x.stage_id WHERE TRUE");
    if let (Some(from), Some(to)) = (close_from, close_to) {
        sql.push(" AND x.close_date >= ");
        sql.bind::<Date, _>(from);
        sql.push(" AND x.close_date <= ");
        sql.bind::<Date, _>(to);
    }
    sql.push(
        " GROUP BY 1, x.stage_id, s.code, s.name, s.position, 6, x.currency \
         ORDER BY 1 NULLS LAST, s.position, 6, x.currency",
    );
    let cells: Vec<PipelineCell> = sql.into_query().load(c)?;
    finish(ctx, close_from, close_to, cells, Vec::new())
}
