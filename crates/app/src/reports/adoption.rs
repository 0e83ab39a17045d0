//! Adoption: "what is not in the system does not count". Per rep (or team), how well
//! the system is kept: records entered and follow-ups logged in the period; at its end
//! (now while it runs) open deals without an activity in the last `idle_days`; open
//! deals missing a required field now; and moves recorded after the fact: stage visits
//! left only after the stage's stalled threshold had passed, and deals closed after
//! their expected close date. Each count covers the records the caller may read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_db::sql::Sql;
use crm_domain::access::ScopeFilter;
use crm_domain::reports::GroupBy;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use rust_decimal::Decimal;

use super::{labels, push_filters, read_scope, setup, sort_rows, Figure, Group, Measure, Params, Report, Row, Unit};
use crate::error::{AppError, AppResult};
use crate::Ctx;

/// Days without an activity that make an open deal idle, unless asked otherwise.
pub const DEFAULT_IDLE_DAYS: u32 = 14;

const fn count(kpi: &'static str, label_zh: &'static str, label_en: &'static str, sums: bool) -> Measure {
    Measure {
        kpi,
        label_zh,
        label_en,
        unit: Unit::Count,
        agg: "",
        additive: true,
        sums,
        reads: None,
    }
}

const MEASURES: [Measure; 8] = [
    count("records_entered", "录入记录数", "Records entered", true),
    count("deals_entered", "录入商机数", "Deals entered", true),
    count("leads_entered", "录入线索数", "Leads entered", true),
    count("follow_ups_logged", "跟进记录数", "Follow-ups logged", true),
    count("deals_idle", "无跟进商机", "Open deals without a recent activity", true),
    // Known now only: there is no history of which fields were filled when.
    count(
        "deals_missing_required",
        "缺必填字段商机",
        "Open deals missing a required field",
        false,
    ),
    count(
        "stage_moves_late",
        "滞后推进",
        "Stage moves made after the stalled threshold",
        true,
    ),
    count(
        "closed_after_expected",
        "逾期结单",
        "Deals closed after their expected close date",
        true,
    ),
];

const GROUPINGS: &[&str] = &["none", "owner", "team"];

/// Counts of one group by (figure, current period).
type Counts = BTreeMap<(&'static str, bool), i64>;

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = Bool)]
    total: bool,
    #[diesel(sql_type = Bool)]
    cur: bool,
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The adoption report.
pub fn adoption(c: &mut PgConnection, ctx: &Ctx, p: &Params) -> AppResult<Report> {
    let s = setup(c, ctx, p, GROUPINGS)?;
    let deals =
        read_scope(ctx, "opportunities").ok_or_else(|| AppError::forbidden("missing permission opportunities:read"))?;
    let idle_days = p.idle_days.unwrap_or(DEFAULT_IDLE_DAYS);
    if !(1..=365).contains(&idle_days) {
        return Err(AppError::field(
            "idle_days",
            "out_of_range",
            "idle_days is between 1 and 365",
        ));
    }
    let now = ctx.now();
    let w = &s.window;
    let grouped = s.group_by != GroupBy::None;
    // `who` is the person a row counts for; the team grouping uses the record's team.
    let key = |who: &str, rec: &str| match s.group_by {
        GroupBy::Team => format!("{rec}.team_id::text"),
        GroupBy::Owner => format!("{who}::text"),
        _ => "NULL::text".to_owned(),
    };
    let mut sql = Sql::new("WITH d (cur, s, e, as_of) AS (VALUES (TRUE, ");
    let bind_ts = |sql: &mut Sql<'_>, t: DateTime<Utc>| {
        sql.bind::<Timestamptz, _>(t);
    };
    bind_ts(&mut sql, w.current.start);
    sql.push("::timestamptz, ");
    bind_ts(&mut sql, w.current.end);
    sql.push("::timestamptz, ");
    bind_ts(&mut sql, w.current.end.min(now));
    sql.push("::timestamptz), (FALSE, ");
    bind_ts(&mut sql, w.previous.start);
    sql.push(", ");
    bind_ts(&mut sql, w.previous.end);
    sql.push(", ");
    bind_ts(&mut sql, w.previous.end.min(now));
    sql.push(")), r (grp, cur, k) AS (");

    let mut first = true;
    // One UNION ALL branch: its SQL (with `$idle` where the idle days are bound), then
    // the caller's scope and the list filters on `rec`.
    let mut branch = |sql: &mut Sql<'_>, head: String, scope: &ScopeFilter, rec: &str| {
        if !first {
            sql.push(" UNION ALL ");
        }
        first = false;
        let mut parts = head.split("$idle");
        sql.push(parts.next().unwrap_or_default());
        for rest in parts {
            sql.bind::<Integer, _>(idle_days as i32);
            sql.push(rest);
        }
        sql.scope(rec, scope);
        push_filters(sql, rec, p);
    };
    // Records entered in the period, by whoever entered them.
    for (object, alias, extra) in [
        ("leads", "l", "'leads_entered'"),
        ("accounts", "a", "NULL"),
        ("contacts", "ct", "NULL"),
        ("opportunities", "o", "'deals_entered'"),
    ] {
        let Some(scope) = read_scope(ctx, object) else {
            continue;
        };
        branch(
            &mut sql,
            format!(
                "SELECT {}, d.cur, k FROM {object} {alias} \
                 JOIN d ON {alias}.created_at >= d.s AND {alias}.created_at < d.e \
                 CROSS JOIN LATERAL unnest(ARRAY['records_entered', {extra}]) k \
                 WHERE k IS NOT NULL AND {alias}.deleted_at IS NULL AND {alias}.created_by IS NOT NULL",
                key(&format!("{alias}.created_by"), alias)
            ),
            &scope,
            alias,
        );
    }
    if let Some(scope) = read_scope(ctx, "activities") {
        branch(
            &mut sql,
            format!(
                "SELECT {}, d.cur, 'follow_ups_logged' FROM activities act \
                 JOIN d ON act.occurred_at >= d.s AND act.occurred_at < d.e WHERE act.deleted_at IS NULL",
                key("act.owner_id", "act")
            ),
            &scope,
            "act",
        );
    }
    // Deals open at the end of the period with no activity in the `idle_days` before it.
    branch(
        &mut sql,
        format!(
            "SELECT {}, d.cur, 'deals_idle' FROM opportunities o JOIN d ON o.created_at < d.as_of \
             AND (o.closed_at IS NULL OR o.closed_at > d.as_of) WHERE o.deleted_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM activities act WHERE act.opportunity_id = o.id \
             AND act.deleted_at IS NULL AND act.occurred_at <= d.as_of \
             AND act.occurred_at > d.as_of - make_interval(days => $idle))",
            key("o.owner_id", "o")
        ),
        &deals,
        "o",
    );
    // Open deals missing the amount, the expected close date or a required custom field
    // (always required, or required from a stage they have reached).
    branch(
        &mut sql,
        format!(
            "SELECT {}, TRUE, 'deals_missing_required' FROM opportunities o JOIN stages st ON st.id = o.stage_id \
             WHERE o.deleted_at IS NULL AND o.status = 'open' AND (o.amount IS NULL OR o.expected_close_date IS NULL \
             OR EXISTS (SELECT 1 FROM field_definitions f LEFT JOIN stages rs ON rs.id = f.required_from_stage_id \
             WHERE f.object = 'opportunities' AND f.archived_at IS NULL \
             AND (f.required OR (rs.pipeline_id = o.pipeline_id AND rs.position <= st.position)) \
             AND coalesce(o.custom ->> f.key, '') = ''))",
            key("o.owner_id", "o")
        ),
        &deals,
        "o",
    );
    // Stage visits left in the period only after the stage's stalled threshold.
    branch(
        &mut sql,
        format!(
            "SELECT {}, d.cur, 'stage_moves_late' FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id \
             JOIN stages st ON st.id = h.to_stage_id JOIN d ON h.left_at >= d.s AND h.left_at < d.e \
             WHERE o.deleted_at IS NULL AND st.stalled_after_days IS NOT NULL \
             AND h.left_at - h.entered_at > make_interval(days => st.stalled_after_days)",
            key("o.owner_id", "o")
        ),
        &deals,
        "o",
    );
    // Deals closed in the period after their expected close date (in the business zone,
    // whose offset is configuration, not input).
    branch(
        &mut sql,
        format!(
            "SELECT {}, d.cur, 'closed_after_expected' FROM opportunities o \
             JOIN d ON o.closed_at >= d.s AND o.closed_at < d.e \
             WHERE o.deleted_at IS NULL AND o.status IN ('won', 'lost') AND o.expected_close_date IS NOT NULL \
             AND ((o.closed_at AT TIME ZONE 'UTC') + make_interval(secs => {}))::date > o.expected_close_date",
            key("o.owner_id", "o"),
            s.tz.local_minus_utc()
        ),
        &deals,
        "o",
    );
    sql.push(if grouped {
        ") SELECT grp, GROUPING(grp) = 1 AS total, cur, k, count(*) AS n FROM r \
         GROUP BY GROUPING SETS ((grp, cur, k), (cur, k))"
    } else {
        ") SELECT NULL::text AS grp, TRUE AS total, cur, k, count(*) AS n FROM r GROUP BY cur, k"
    });
    let rows: Vec<CountRow> = sql.into_query().load(c)?;

    let mut per: BTreeMap<Option<Option<String>>, Counts> = BTreeMap::new();
    per.entry(None).or_default();
    for r in &rows {
        let key = if r.total { None } else { Some(r.grp.clone()) };
        let kpi = MEASURES.iter().find(|m| m.kpi == r.k).map_or("", |m| m.kpi);
        *per.entry(key).or_default().entry((kpi, r.cur)).or_default() += r.n;
    }
    let figures = |counts: &Counts| -> Vec<Figure> {
        MEASURES
            .iter()
            .map(|m| {
                let get = |cur| counts.get(&(m.kpi, cur)).map(|n| Decimal::from(*n));
                let previous = if m.sums { get(false) } else { None };
                Figure::new(m, get(true).or(Some(Decimal::ZERO)), previous)
            })
            .collect()
    };
    let totals = figures(&per.remove(&None).unwrap_or_default());
    let mut out = Vec::new();
    if grouped {
        let keys: Vec<Option<String>> = per.keys().filter_map(|k| k.clone()).collect();
        let names = labels(c, &s.group_by, &keys)?;
        for (key, counts) in &per {
            let key = key.clone().flatten();
            let label = key.as_ref().and_then(|k| names.get(k).cloned());
            out.push(Row {
                group: Group { key, label },
                figures: figures(counts),
            });
        }
        sort_rows(&mut out);
    }
    Ok(Report {
        report: "adoption",
        window: s.window,
        utc_offset_hours: s.tz.local_minus_utc() / 3600,
        group_by: s.group_by,
        rows: out,
        totals,
        withheld: Vec::new(),
        generated_at: now,
    })
}
