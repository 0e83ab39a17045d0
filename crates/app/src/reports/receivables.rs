//! Receivables: the installments of signed contracts, per currency. What fell due and
//! what was collected in the period; and at the period's end (today while the period
//! runs) what is overdue, aged by days past due (1-30, 31-60, 61-90, over 90), and what
//! is not yet due. The previous period's figures are taken the same way at its end.
//! Collections count payments allocated to installments; an installment is overdue
//! from the day after its due date. Draft, unsigned and terminated contracts are left
//! out.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use crm_db::sql::Sql;
use crm_domain::reports::GroupBy;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Date, Nullable, Numeric, Text};
use rust_decimal::Decimal;

use super::{labels, push_filters, read_scope, setup, sort_rows, Figure, Group, Measure, Params, Report, Row, Unit};
use crate::error::{AppError, AppResult};
use crate::Ctx;

const fn money(kpi: &'static str, label_zh: &'static str, label_en: &'static str) -> Measure {
    Measure {
        kpi,
        label_zh,
        label_en,
        unit: Unit::Money,
        agg: "",
        additive: false,
        sums: true,
        reads: None,
    }
}

/// The figures, in the order of the statement's columns `v0..`.
const MEASURES: [Measure; 9] = [
    money("receivable_due", "本期应收", "Due in period"),
    money(
        "receivable_collected",
        "本期回款(计划内)",
        "Collected against installments",
    ),
    Measure {
        unit: Unit::Percent,
        sums: false,
        ..money("collection_rate", "回款率", "Collected share of due")
    },
    money("receivable_overdue", "逾期应收", "Overdue"),
    money("overdue_1_30_days", "逾期1-30天", "Overdue 1-30 days"),
    money("overdue_31_60_days", "逾期31-60天", "Overdue 31-60 days"),
    money("overdue_61_90_days", "逾期61-90天", "Overdue 61-90 days"),
    money("overdue_over_90_days", "逾期90天以上", "Overdue over 90 days"),
    money("receivable_not_yet_due", "未到期应收", "Not yet due"),
];

/// Counts, added up across currencies.
const COUNT: Measure = Measure {
    kpi: "overdue_installments",
    label_zh: "逾期期数",
    label_en: "Overdue installments",
    unit: Unit::Count,
    agg: "",
    additive: true,
    sums: true,
    reads: None,
};

/// Figures that read payments (withheld without `payments:read`).
const READS_PAYMENTS: [&str; 9] = [
    "receivable_collected",
    "collection_rate",
    "receivable_overdue",
    "overdue_1_30_days",
    "overdue_31_60_days",
    "overdue_61_90_days",
    "overdue_over_90_days",
    "receivable_not_yet_due",
    "overdue_installments",
];

const GROUPINGS: &[&str] = &["none", "owner", "team", "account"];

#[derive(QueryableByName)]
struct AggRow {
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = Bool)]
    total: bool,
    #[diesel(sql_type = Bool)]
    cur: bool,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Nullable<Numeric>)]
    v0: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v1: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v2: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v3: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v4: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v5: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v6: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v7: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    v8: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    overdue_count: Option<Decimal>,
}

impl AggRow {
    fn value(&self, i: usize) -> Option<Decimal> {
        [
            self.v0, self.v1, self.v2, self.v3, self.v4, self.v5, self.v6, self.v7, self.v8,
        ]
        .get(i)
        .copied()
        .flatten()
    }
}

/// The receivables report over the caller's `contracts:read` scope.
pub fn receivables(c: &mut PgConnection, ctx: &Ctx, p: &Params) -> AppResult<Report> {
    let s = setup(c, ctx, p, GROUPINGS)?;
    let scope = read_scope(ctx, "contracts").ok_or_else(|| AppError::forbidden("missing permission contracts:read"))?;
    let payments = read_scope(ctx, "payments").is_some();
    let today = ctx.now().with_timezone(&s.tz).date_naive();
    let (w, grouped) = (&s.window, s.group_by != GroupBy::None);
    let as_of = |to: NaiveDate| to.min(today);
    let grp = match s.group_by {
        GroupBy::Owner => "c.owner_id::text",
        GroupBy::Team => "c.team_id::text",
        GroupBy::Account => "c.account_id::text",
        _ => "NULL::text",
    };
    let mut sql = Sql::new("WITH d (cur, from_d, to_d, as_of) AS (VALUES (TRUE, ");
    sql.bind::<Date, _>(w.current.from);
    sql.push("::date, ");
    sql.bind::<Date, _>(w.current.to);
    sql.push("::date, ");
    sql.bind::<Date, _>(as_of(w.current.to));
    sql.push("::date), (FALSE, ");
    sql.bind::<Date, _>(w.previous.from);
    sql.push(", ");
    sql.bind::<Date, _>(w.previous.to);
    sql.push(", ");
    sql.bind::<Date, _>(as_of(w.previous.to));
    sql.push(&format!(
        ")), x AS (SELECT {grp} AS grp, d.cur, c.currency, i.amount, i.due_date, d.from_d, d.to_d, d.as_of, \
         d.as_of - i.due_date AS late, coalesce(pa.paid, 0) AS paid, coalesce(pa.collected, 0) AS collected \
         FROM installments i JOIN contracts c ON c.id = i.contract_id CROSS JOIN d \
         LEFT JOIN LATERAL (SELECT sum(a.amount) FILTER (WHERE p.received_on <= d.as_of) AS paid, \
         sum(a.amount) FILTER (WHERE p.received_on BETWEEN d.from_d AND d.to_d) AS collected \
         FROM payment_allocations a JOIN payments p ON p.id = a.payment_id WHERE a.installment_id = i.id) pa ON TRUE \
         WHERE c.deleted_at IS NULL AND c.status IN ('signed', 'active', 'completed')"
    ));
    sql.scope("c", &scope);
    push_filters(&mut sql, "c", p);
    let open = "greatest(x.amount - x.paid, 0)";
    sql.push(&format!(
        ") SELECT {}, x.cur, x.currency, \
         sum(x.amount) FILTER (WHERE x.due_date BETWEEN x.from_d AND x.to_d) AS v0, \
         sum(x.collected) AS v1, \
         round(100.0 * sum(least(x.collected, x.amount)) FILTER (WHERE x.due_date BETWEEN x.from_d AND x.to_d) \
           / nullif(sum(x.amount) FILTER (WHERE x.due_date BETWEEN x.from_d AND x.to_d), 0), 2) AS v2, \
         sum({open}) FILTER (WHERE x.late >= 1) AS v3, \
         sum({open}) FILTER (WHERE x.late BETWEEN 1 AND 30) AS v4, \
         sum({open}) FILTER (WHERE x.late BETWEEN 31 AND 60) AS v5, \
         sum({open}) FILTER (WHERE x.late BETWEEN 61 AND 90) AS v6, \
         sum({open}) FILTER (WHERE x.late > 90) AS v7, \
         sum({open}) FILTER (WHERE x.late < 1) AS v8, \
         count(*) FILTER (WHERE x.late >= 1 AND x.amount > x.paid)::numeric AS overdue_count \
         FROM x GROUP BY {}",
        if grouped {
            "x.grp, GROUPING(x.grp) = 1 AS total"
        } else {
            "NULL::text AS grp, TRUE AS total"
        },
        if grouped {
            "GROUPING SETS ((x.grp, x.cur, x.currency), (x.cur, x.currency))"
        } else {
            "x.cur, x.currency"
        },
    ));
    let rows: Vec<AggRow> = sql.into_query().load(c)?;

    let mut buckets: BTreeMap<Option<Option<String>>, Vec<&AggRow>> = BTreeMap::new();
    buckets.entry(None).or_default();
    for r in &rows {
        let key = if r.total { None } else { Some(r.grp.clone()) };
        buckets.entry(key).or_default().push(r);
    }
    let withheld: Vec<&'static str> = if payments { Vec::new() } else { READS_PAYMENTS.to_vec() };
    let shown = |kpi: &str| !withheld.contains(&kpi);
    let mut per_group: BTreeMap<Option<Option<String>>, Vec<Figure>> = BTreeMap::new();
    for (key, rows) in buckets {
        let mut currencies: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
        currencies.sort_unstable();
        currencies.dedup();
        let pick = |cur: bool, ccy: Option<&str>, v: &dyn Fn(&AggRow) -> Option<Decimal>| {
            let mut found = rows
                .iter()
                .filter(|r| r.cur == cur && ccy.is_none_or(|c| r.currency == c))
                .filter_map(|r| v(r))
                .peekable();
            found.peek()?;
            Some(found.sum())
        };
        let mut figures = Vec::new();
        for (i, m) in MEASURES.iter().enumerate() {
            if !shown(m.kpi) {
                continue;
            }
            let v = |r: &AggRow| r.value(i);
            if currencies.is_empty() {
                figures.push(Figure::new(m, None, None));
            }
            for ccy in &currencies {
                figures.push(Figure {
                    currency: Some((*ccy).to_owned()),
                    ..Figure::new(m, pick(true, Some(ccy), &v), pick(false, Some(ccy), &v))
                });
            }
        }
        if shown(COUNT.kpi) {
            let v = |r: &AggRow| r.overdue_count;
            figures.push(Figure::new(&COUNT, pick(true, None, &v), pick(false, None, &v)));
        }
        per_group.insert(key, figures);
    }
    let totals = per_group.remove(&None).unwrap_or_default();
    let mut out = Vec::new();
    if grouped {
        let keys: Vec<Option<String>> = per_group.keys().filter_map(|k| k.clone()).collect();
        let names = labels(c, &s.group_by, &keys)?;
        for (key, figures) in per_group {
            let key = key.flatten();
            let label = key.as_ref().and_then(|k| names.get(k).cloned());
            out.push(Row {
                group: Group { key, label },
                figures,
            });
        }
        sort_rows(&mut out);
    }
    Ok(Report {
        report: "receivables",
        window: s.window,
        utc_offset_hours: s.tz.local_minus_utc() / 3600,
        group_by: s.group_by,
        rows: out,
        totals,
        withheld,
        generated_at: ctx.now(),
    })
}
