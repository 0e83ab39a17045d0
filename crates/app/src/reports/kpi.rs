//! The results and process reports: per source (won deals, payments, contracts,
//! leads, closed deals, activities, lead SLAs) one grouped statement computes every
//! figure of the current and the previous period at once, per group and in total
//! (`GROUPING SETS`), split per currency or activity type where that applies.

use std::collections::BTreeMap;

use crm_db::sql::Sql;
use crm_domain::reports::GroupBy;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Date, Nullable, Numeric, Text, Timestamptz};
use rust_decimal::Decimal;

use super::{
    labels, may_read, push_filters, read_scope, setup, sort_rows, Figure, Group, Measure, Params, Report, Row, Unit,
};
use crate::error::AppResult;
use crate::Ctx;

/// The column a source's period is read from.
#[derive(Clone, Copy)]
enum Time {
    Moment(&'static str),
    Day(&'static str),
}

/// What a source's figures are split by besides the grouping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    None,
    /// Amounts per currency (counts marked additive are added up).
    Currency(&'static str),
    /// Per activity type, plus the total.
    Kind(&'static str),
}

/// Records that figures are computed from.
struct Source {
    /// The permission (`<resource>:read`) whose data scope applies.
    resource: &'static str,
    /// Alias of the scoped record (with `owner_id` and `team_id`).
    rec: &'static str,
    from: &'static str,
    filter: &'static str,
    time: Time,
    split: Split,
    /// Columns the measures read, as `<expr> AS <name>`.
    cols: &'static str,
    region: Option<&'static str>,
    industry: Option<&'static str>,
    tier: Option<&'static str>,
    source: Option<&'static str>,
    /// Alias of the deal, for the pipeline, custom groupings and the pipeline filter.
    deal: Option<&'static str>,
    /// The join that brings the deal in (empty when it is the record), made only for
    /// those; it filters nothing out (the reference is mandatory).
    deal_join: &'static str,
    measures: &'static [Measure],
    /// A trigger-kept rollup that answers the same figures when the report needs
    /// nothing but its keys.
    rollup: Option<Rollup>,
}

/// A rollup per business day, owner and team (and the split): it answers a source's
/// figures when the grouping is none, team or owner and no deal filter applies, and
/// while it is built at the calendar's offset (migration `report_rollups`).
#[derive(Clone, Copy)]
struct Rollup {
    /// The table, aliased as the source's record (with `owner_id` and `team_id`, the
    /// nil UUID for no team).
    from: &'static str,
    /// Its business-day column.
    day: &'static str,
    split: &'static str,
    /// Columns the aggregates read, as `<expr> AS <name>`.
    cols: &'static str,
    /// Rows that count (a key whose records all went keeps a zero row).
    filter: &'static str,
    /// Per measure, the aggregate over the rollup's rows.
    aggs: &'static [&'static str],
}

const fn m(
    kpi: &'static str,
    label_zh: &'static str,
    label_en: &'static str,
    unit: Unit,
    agg: &'static str,
) -> Measure {
    Measure {
        kpi,
        label_zh,
        label_en,
        unit,
        agg,
        additive: false,
        sums: false,
        reads: None,
    }
}

const fn count(kpi: &'static str, label_zh: &'static str, label_en: &'static str, agg: &'static str) -> Measure {
    Measure {
        additive: true,
        sums: true,
        ..m(kpi, label_zh, label_en, Unit::Count, agg)
    }
}

const fn sum(
    kpi: &'static str,
    label_zh: &'static str,
    label_en: &'static str,
    agg: &'static str,
    reads: (&'static str, &'static str),
) -> Measure {
    Measure {
        sums: true,
        reads: Some(reads),
        ..m(kpi, label_zh, label_en, Unit::Money, agg)
    }
}

const WON: Source = Source {
    resource: "opportunities",
    rec: "o",
    from: "opportunities o JOIN accounts a ON a.id = o.account_id",
    filter: "o.deleted_at IS NULL AND o.status = 'won'",
    time: Time::Moment("o.closed_at"),
    split: Split::Currency("o.currency"),
    cols: "o.amount AS amount",
    region: Some("a.region"),
    industry: Some("a.industry"),
    tier: Some("a.tier"),
    source: Some("a.source"),
    deal: Some("o"),
    deal_join: "",
    measures: &[
        sum(
            "sales_won_amount",
            "赢单金额",
            "Sales won",
            "sum(x.amount)",
            ("opportunities", "amount"),
        ),
        count("deals_won", "赢单数", "Deals won", "count(*)"),
        Measure {
            reads: Some(("opportunities", "amount")),
            ..m(
                "average_deal_size",
                "平均成交金额",
                "Average deal size",
                Unit::Money,
                "round(avg(x.amount), 2)",
            )
        },
    ],
    rollup: None,
};

const PAYMENTS: Source = Source {
    resource: "payments",
    rec: "p",
    from: "payments p JOIN contracts c ON c.id = p.contract_id JOIN accounts a ON a.id = p.account_id",
    filter: "TRUE",
    time: Time::Day("p.received_on"),
    split: Split::Currency("c.currency"),
    cols: "p.amount AS amount",
    region: Some("a.region"),
    industry: Some("a.industry"),
    tier: Some("a.tier"),
    source: Some("a.source"),
    deal: Some("o"),
    deal_join: " JOIN opportunities o ON o.id = c.opportunity_id",
    measures: &[
        sum(
            "payments_collected",
            "回款金额",
            "Payments collected",
            "sum(x.amount)",
            ("payments", "amount"),
        ),
        count("payments_received", "回款笔数", "Payments received", "count(*)"),
    ],
    rollup: None,
};

const CONTRACTS: Source = Source {
    resource: "contracts",
    rec: "c",
    from: "contracts c JOIN accounts a ON a.id = c.account_id LEFT JOIN LATERAL (SELECT sum(ql.net_amount - ql.quantity * ql.unit_cost) AS profit \
           FROM quote_lines ql WHERE ql.quote_id = c.quote_id) g ON TRUE",
    filter: "c.deleted_at IS NULL AND c.signed_at IS NOT NULL",
    time: Time::Moment("c.signed_at"),
    split: Split::Currency("c.currency"),
    cols: "c.amount AS amount, g.profit AS profit",
    region: Some("a.region"),
    industry: Some("a.industry"),
    tier: Some("a.tier"),
    source: Some("a.source"),
    deal: Some("o"),
    deal_join: " JOIN opportunities o ON o.id = c.opportunity_id",
    measures: &[
        count("new_contracts", "新签合同数", "New contracts", "count(*)"),
        sum(
            "new_contract_amount",
            "新签合同金额",
            "New contract amount",
            "sum(x.amount)",
            ("contracts", "amount"),
        ),
        sum(
            "gross_profit",
            "毛利",
            "Gross profit",
            "round(sum(x.profit), 2)",
            ("quotes", "gross_margin"),
        ),
    ],
    rollup: None,
};

const LEADS: Source = Source {
    resource: "leads",
    rec: "l",
    from: "leads l",
    filter: "l.deleted_at IS NULL",
    time: Time::Moment("l.created_at"),
    split: Split::None,
    cols: "l.converted_at AS converted_at",
    region: Some("l.region"),
    industry: Some("l.industry"),
    tier: None,
    source: Some("l.source"),
    deal: None,
    deal_join: "",
    measures: &[
        count("new_leads", "新增线索", "New leads", "count(*)"),
        count(
            "new_leads_converted",
            "新增线索中已转化",
            "New leads converted",
            "count(*) FILTER (WHERE x.converted_at IS NOT NULL)",
        ),
        m(
            "lead_conversion_rate",
            "线索转化率",
            "Lead conversion rate",
            Unit::Percent,
            "round(100.0 * count(*) FILTER (WHERE x.converted_at IS NOT NULL) / nullif(count(*), 0), 2)",
        ),
    ],
    rollup: None,
};

const CLOSED: Source = Source {
    resource: "opportunities",
    rec: "o",
    from: "opportunities o JOIN accounts a ON a.id = o.account_id",
    filter: "o.deleted_at IS NULL AND o.status IN ('won', 'lost')",
    time: Time::Moment("o.closed_at"),
    split: Split::None,
    cols: "o.status AS status, extract(epoch FROM o.closed_at - o.created_at) / 86400.0 AS cycle_days",
    region: Some("a.region"),
    industry: Some("a.industry"),
    tier: Some("a.tier"),
    source: Some("a.source"),
    deal: Some("o"),
    deal_join: "",
    measures: &[
        count("deals_closed", "结单数", "Deals closed", "count(*)"),
        m(
            "win_rate",
            "赢单率",
            "Win rate",
            Unit::Percent,
            "round(100.0 * count(*) FILTER (WHERE x.status = 'won') / nullif(count(*), 0), 2)",
        ),
        m(
            "sales_cycle_avg_days",
            "平均销售周期",
            "Average sales cycle",
            Unit::Days,
            "round(avg(x.cycle_days) FILTER (WHERE x.status = 'won'), 1)",
        ),
        m(
            "sales_cycle_median_days",
            "销售周期中位数",
            "Median sales cycle",
            Unit::Days,
            "round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x.cycle_days) \
             FILTER (WHERE x.status = 'won'))::numeric, 1)",
        ),
    ],
    rollup: None,
};

const ACTIVITIES: Source = Source {
    resource: "activities",
    rec: "act",
    from: "activities act LEFT JOIN accounts a ON a.id = act.account_id",
    filter: "act.deleted_at IS NULL",
    time: Time::Moment("act.occurred_at"),
    split: Split::Kind("act.activity_type"),
    cols: "act.id AS id",
    region: Some("a.region"),
    industry: Some("a.industry"),
    tier: Some("a.tier"),
    source: Some("a.source"),
    deal: Some("o"),
    deal_join: " LEFT JOIN opportunities o ON o.id = act.opportunity_id",
    measures: &[count("activities", "跟进次数", "Activities", "count(*)")],
    rollup: Some(Rollup {
        from: "activity_day_totals act",
        day: "act.day",
        split: "act.activity_type",
        cols: "act.activities AS n",
        filter: "act.activities <> 0",
        aggs: &["sum(x.n)"],
    }),
};

const LEAD_SLA: Source = Source {
    resource: "leads",
    rec: "l",
    from: "lead_slas s JOIN leads l ON l.id = s.lead_id",
    filter: "l.deleted_at IS NULL",
    time: Time::Moment("s.assigned_at"),
    split: Split::None,
    cols: "s.status AS status, s.response_minutes AS minutes",
    region: Some("l.region"),
    industry: Some("l.industry"),
    tier: None,
    source: Some("l.source"),
    deal: None,
    deal_join: "",
    measures: &[
        m(
            "lead_response_avg_minutes",
            "线索平均响应时间",
            "Average lead response time",
            Unit::Minutes,
            "round(avg(x.minutes), 1)",
        ),
        m(
            "lead_response_median_minutes",
            "线索响应时间中位数",
            "Median lead response time",
            Unit::Minutes,
            "round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x.minutes))::numeric, 1)",
        ),
        m(
            "lead_sla_attainment",
            "线索响应达标率",
            "Lead SLA attainment",
            Unit::Percent,
            "round(100.0 * count(*) FILTER (WHERE x.status = 'met') \
             / nullif(count(*) FILTER (WHERE x.status IN ('met', 'breached')), 0), 2)",
        ),
    ],
    rollup: None,
};

/// Groupings the results and process reports accept (plus `custom.<key>`).
const GROUPINGS: &[&str] = &[
    "none", "team", "owner", "region", "pipeline", "source", "industry", "tier", "custom",
];

/// Results: sales won, payments collected, gross profit, new contracts, deal size.
pub fn results(c: &mut PgConnection, ctx: &Ctx, p: &Params) -> AppResult<Report> {
    report(c, ctx, p, "results", REPORTS[0].1)
}

/// Process: new leads and their conversion, win rate, sales cycle, activity volume by
/// type, lead response time and SLA attainment.
pub fn process(c: &mut PgConnection, ctx: &Ctx, p: &Params) -> AppResult<Report> {
    report(c, ctx, p, "process", REPORTS[1].1)
}

/// The sources of each report, by name.
static REPORTS: [(&str, &[&Source]); 2] = [
    ("results", &[&WON, &PAYMENTS, &CONTRACTS]),
    ("process", &[&LEADS, &CLOSED, &ACTIVITIES, &LEAD_SLA]),
];

/// The measure named `kpi` among the results and process figures.
pub(super) fn find(kpi: &str) -> Option<&'static Measure> {
    REPORTS
        .iter()
        .flat_map(|(_, sources)| sources.iter())
        .flat_map(|s| s.measures.iter())
        .find(|m| m.kpi == kpi)
}

/// The results or process report computed from only the source of `kpi`.
pub(super) fn of_kpi(c: &mut PgConnection, ctx: &Ctx, p: &Params, kpi: &str) -> AppResult<Report> {
    for (name, sources) in REPORTS.iter() {
        if let Some(src) = sources.iter().find(|s| s.measures.iter().any(|m| m.kpi == kpi)) {
            return report(c, ctx, p, name, &[*src]);
        }
    }
    Err(crate::error::AppError::field(
        "kpi",
        "unknown_kpi",
        format!("`{kpi}` is not a figure of the results or process report"),
    ))
}

#[derive(QueryableByName)]
struct AggRow {
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = Bool)]
    total: bool,
    #[diesel(sql_type = Bool)]
    cur: bool,
    #[diesel(sql_type = Text)]
    split: String,
    #[diesel(sql_type = Nullable<Numeric>)]
    v0: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v1: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v2: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v3: Option<Decimal>,
}

impl AggRow {
    fn value(&self, i: usize) -> Option<Decimal> {
        [self.v0, self.v1, self.v2, self.v3].get(i).copied().flatten()
    }
}

fn report(c: &mut PgConnection, ctx: &Ctx, p: &Params, name: &'static str, sources: &[&Source]) -> AppResult<Report> {
    let s = setup(c, ctx, p, GROUPINGS)?;
    let rollup_ok = crm_db::repo::report_rollups::offset_hours(c)? == Some(s.tz.local_minus_utc() / 3600);
    let mut withheld = Vec::new();
    // group key (None = totals) -> figures
    let mut per_group: BTreeMap<Option<Option<String>>, Vec<Figure>> = BTreeMap::new();
    per_group.insert(None, Vec::new());
    for src in sources {
        let Some(scope) = read_scope(ctx, src.resource) else {
            withheld.extend(src.measures.iter().map(|m| m.kpi));
            continue;
        };
        let readable: Vec<bool> = src.measures.iter().map(|m| may_read(ctx, m)).collect();
        withheld.extend(
            src.measures
                .iter()
                .zip(&readable)
                .filter(|(_, r)| !**r)
                .map(|(m, _)| m.kpi),
        );
        if !readable.iter().any(|r| *r) {
            continue;
        }
        let rows = load(c, src, &s.group_by, &s.window, &scope, p, rollup_ok)?;
        let mut buckets: BTreeMap<Option<Option<String>>, Vec<&AggRow>> = BTreeMap::new();
        for r in &rows {
            let key = if r.total { None } else { Some(r.grp.clone()) };
            buckets.entry(key).or_default().push(r);
        }
        buckets.entry(None).or_default();
        for (key, rows) in buckets {
            let figures = per_group.entry(key).or_default();
            for (i, measure) in src.measures.iter().enumerate() {
                if readable[i] {
                    figures.extend(figures_of(src.split, measure, i, &rows));
                }
            }
        }
    }
    let totals = per_group.remove(&None).unwrap_or_default();
    let mut rows = Vec::new();
    if s.group_by != GroupBy::None {
        let keys: Vec<Option<String>> = per_group.keys().filter_map(|k| k.clone()).collect();
        let names = labels(c, &s.group_by, &keys)?;
        for (key, figures) in per_group {
            let key = key.flatten();
            let label = key.as_ref().and_then(|k| names.get(k).cloned());
            rows.push(Row {
                group: Group { key, label },
                figures,
            });
        }
        sort_rows(&mut rows);
    }
    Ok(Report {
        report: name,
        window: s.window,
        utc_offset_hours: s.tz.local_minus_utc() / 3600,
        group_by: s.group_by,
        rows,
        totals,
        withheld,
        generated_at: ctx.now(),
    })
}

/// One measure's figures in one group: per split value, or added up.
fn figures_of(split: Split, m: &Measure, i: usize, rows: &[&AggRow]) -> Vec<Figure> {
    let pick = |cur: bool, split: Option<&str>| -> Option<Decimal> {
        let mut found = rows
            .iter()
            .filter(|r| r.cur == cur && split.is_none_or(|s| r.split == s))
            .filter_map(|r| r.value(i))
            .peekable();
        found.peek()?;
        Some(found.sum())
    };
    let splits: Vec<String> = {
        let mut v: Vec<String> = rows.iter().map(|r| r.split.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let total = || Figure::new(m, pick(true, None), pick(false, None));
    match split {
        Split::None => vec![Figure::new(m, pick(true, Some("")), pick(false, Some("")))],
        Split::Currency(_) if m.additive => vec![total()],
        // No amounts at all: one figure without a currency (zero for a sum).
        Split::Currency(_) if splits.is_empty() => vec![total()],
        Split::Currency(_) => splits
            .iter()
            .map(|ccy| Figure {
                currency: Some(ccy.clone()),
                ..Figure::new(m, pick(true, Some(ccy)), pick(false, Some(ccy)))
            })
            .collect(),
        Split::Kind(_) => std::iter::once(total())
            .chain(splits.iter().map(|kind| Figure {
                activity_type: Some(kind.clone()),
                ..Figure::new(m, pick(true, Some(kind)), pick(false, Some(kind)))
            }))
            .collect(),
    }
}

/// The source's grouped figures for both periods: from its rollup when `rollup_ok`
/// (the rollup is built at the report's offset) and the grouping and filters allow,
/// else from its records.
fn load(
    c: &mut PgConnection,
    src: &Source,
    group_by: &GroupBy,
    w: &crm_domain::reports::Window,
    scope: &crm_domain::access::ScopeFilter,
    p: &Params,
    rollup_ok: bool,
) -> AppResult<Vec<AggRow>> {
    let rec = src.rec;
    let rollup = src
        .rollup
        .filter(|_| rollup_ok && p.pipeline_id.is_none())
        .filter(|_| matches!(group_by, GroupBy::None | GroupBy::Owner | GroupBy::Team));
    let grouped = *group_by != GroupBy::None;
    let mut sql = Sql::new(if grouped {
        "SELECT x.grp, GROUPING(x.grp) = 1 AS total, x.cur, x.split"
    } else {
        "SELECT NULL::text AS grp, TRUE AS total, x.cur, x.split"
    });
    for i in 0..4 {
        let agg = match rollup {
            Some(r) => r.aggs.get(i).copied(),
            None => src.measures.get(i).map(|m| m.agg),
        };
        match agg {
            Some(agg) => sql.push(&format!(", ({agg})::numeric AS v{i}")),
            None => sql.push(&format!(", NULL::numeric AS v{i}")),
        };
    }
    sql.push(" FROM (SELECT ");
    let dim = |col: Option<&str>| col.map(|c| format!("{c}::text"));
    let grp = match group_by {
        GroupBy::None => None,
        GroupBy::Owner => Some(format!("{rec}.owner_id::text")),
        GroupBy::Team if rollup.is_some() => Some(format!(
            "nullif({rec}.team_id, '00000000-0000-0000-0000-000000000000'::uuid)::text"
        )),
        GroupBy::Team => Some(format!("{rec}.team_id::text")),
        GroupBy::Region => dim(src.region),
        GroupBy::Industry => dim(src.industry),
        GroupBy::Tier => dim(src.tier),
        GroupBy::Source => dim(src.source),
        GroupBy::Pipeline => src.deal.map(|d| format!("{d}.pipeline_id::text")),
        GroupBy::Account => None,
        GroupBy::Custom(_) => src.deal.map(|d| format!("({d}.custom ->> ")),
    };
    match (grp, group_by) {
        (Some(expr), GroupBy::Custom(key)) => {
            sql.push(&expr);
            sql.bind::<Text, _>(key.clone());
            sql.push(")");
        }
        (Some(expr), _) => {
            sql.push(&expr);
        }
        (None, _) => {
            sql.push("NULL::text");
        }
    }
    sql.push(" AS grp, ");
    let (time_expr, is_day) = match (rollup, src.time) {
        (Some(r), _) => (r.day, true),
        (None, Time::Moment(e)) => (e, false),
        (None, Time::Day(e)) => (e, true),
    };
    sql.push(&format!("{time_expr} >= "));
    bind_bound(&mut sql, is_day, w.current.start, w.current.from);
    sql.push(" AS cur, ");
    match (rollup, src.split) {
        (Some(r), _) => sql.push(&format!("coalesce({}, '')", r.split)),
        (None, Split::None) => sql.push("''"),
        (None, Split::Currency(e) | Split::Kind(e)) => sql.push(&format!("coalesce({e}, '')")),
    };
    let needs_deal = matches!(group_by, GroupBy::Pipeline | GroupBy::Custom(_)) || p.pipeline_id.is_some();
    let from = match rollup {
        Some(r) => r.from.to_owned(),
        None if needs_deal => format!("{}{}", src.from, src.deal_join),
        None => src.from.to_owned(),
    };
    let (cols, filter) = match rollup {
        Some(r) => (r.cols, r.filter),
        None => (src.cols, src.filter),
    };
    sql.push(&format!(" AS split, {cols} FROM {from} WHERE {filter}"));
    sql.push(&format!(" AND {time_expr} >= "));
    bind_bound(&mut sql, is_day, w.previous.start, w.previous.from);
    sql.push(&format!(" AND {time_expr} < "));
    bind_bound(&mut sql, is_day, w.current.end, w.current.until());
    sql.scope(rec, scope);
    push_filters(&mut sql, rec, p);
    if let (Some(pipeline), Some(deal), None) = (p.pipeline_id, src.deal, rollup) {
        sql.push(&format!(" AND {deal}.pipeline_id = "));
        sql.bind::<diesel::sql_types::Uuid, _>(pipeline);
    }
    sql.push(if grouped {
        ") x GROUP BY GROUPING SETS ((x.grp, x.cur, x.split), (x.cur, x.split))"
    } else {
        ") x GROUP BY x.cur, x.split"
    });
    Ok(sql.into_query().load(c)?)
}

fn bind_bound(sql: &mut Sql<'_>, is_day: bool, at: chrono::DateTime<chrono::Utc>, day: chrono::NaiveDate) {
    if is_day {
        sql.bind::<Date, _>(day);
    } else {
        sql.bind::<Timestamptz, _>(at);
    }
}
