//! The pipeline board: per-stage totals per currency (from the deals or the
//! trigger-maintained rollups per stage, close month and close day), cards, and an
//! account's deal totals.

use chrono::NaiveDate;
use crm_domain::access::ScopeFilter;
use crm_domain::pipeline::EdgePlan;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date, Numeric, Text, Uuid as SqlUuid};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::opportunities::{push_filter, OpportunityFilter, OpportunityRow};
use crate::sql::Sql;
use crate::QueryResult;

/// Per-stage totals of a board, one row per stage and currency.
#[derive(Debug, Clone, QueryableByName)]
pub struct StageTotals {
    #[diesel(sql_type = SqlUuid)]
    pub stage_id: Uuid,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Numeric)]
    pub weighted: Decimal,
}

/// Count, amount and weighted amount per stage and currency, in the caller's scope and
/// filters.
pub fn board_totals(
    conn: &mut PgConnection,
    stage_ids: &[Uuid],
    scope: &ScopeFilter,
    filter: &OpportunityFilter,
) -> QueryResult<Vec<StageTotals>> {
    let mut sql = Sql::new(
        "SELECT o.stage_id, o.currency, count(*)::bigint AS count, coalesce(sum(o.amount), 0)::numeric AS amount, \
         round(coalesce(sum(o.amount * o.probability / 100.0), 0), 2)::numeric AS weighted \
         FROM opportunities o WHERE o.deleted_at IS NULL AND o.stage_id = ANY(",
    );
    sql.bind::<Array<SqlUuid>, _>(stage_ids.to_vec());
    sql.push(")");
    sql.scope("o", scope);
    push_filter(&mut sql, filter);
    sql.push(" GROUP BY o.stage_id, o.currency");
    sql.into_query().load(conn)
}

/// Board totals filtered by expected close date (plus scope, owner, team): whole months
/// of the range from the monthly rollup, the partial months at its edges from the daily
/// one (a range scan of its primary key, at most one row per day, stage, owner, team
/// and currency), or as their whole month less the days outside the edge when those
/// are fewer (so an edge reads at most half a month of days). Neither reads a deal, so
/// the cost does not depend on how recently the deals were vacuumed. Deals without a
/// close date never match a close-date filter.
pub fn board_totals_by_close(
    conn: &mut PgConnection,
    stage_ids: &[Uuid],
    scope: &ScopeFilter,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    split: &crm_domain::pipeline::MonthSplit,
) -> QueryResult<Vec<StageTotals>> {
    let mut sql = Sql::new(
        "SELECT x.stage_id, x.currency, sum(x.n)::bigint AS count, coalesce(sum(x.a), 0)::numeric AS amount, \
         round(coalesce(sum(x.axp), 0) / 100, 2)::numeric AS weighted FROM (\
         SELECT t.stage_id, t.currency, t.deals AS n, t.amount AS a, t.amount_x_prob AS axp \
         FROM opportunity_month_totals t WHERE t.stage_id = ANY(",
    );
    sql.bind::<Array<SqlUuid>, _>(stage_ids.to_vec());
    sql.push(")");
    match split.months {
        None => {
            sql.push(" AND false");
        }
        Some((from, to)) => {
            sql.push(" AND t.close_month > DATE '0001-01-01'");
            if let Some(f) = from {
                sql.push(" AND t.close_month >= ");
                sql.bind::<Date, _>(f);
            }
            if let Some(t) = to {
                sql.push(" AND t.close_month < ");
                sql.bind::<Date, _>(t);
            }
        }
    }
    sql.scope("t", scope);
    sql.eq_opt::<SqlUuid, _>("t.owner_id", owner_id)
        .eq_opt::<SqlUuid, _>("t.team_id", team_id);
    let day_rows = |sql: &mut Sql<'_>, sign: &str, from: NaiveDate, to: NaiveDate| {
        sql.push(&format!(
            " UNION ALL SELECT d.stage_id, d.currency, {sign}d.deals, {sign}d.amount, {sign}d.amount_x_prob \
             FROM opportunity_day_totals d WHERE d.close_date >= "
        ));
        sql.bind::<Date, _>(from);
        sql.push(" AND d.close_date < ");
        sql.bind::<Date, _>(to);
        sql.push(" AND d.stage_id = ANY(");
        sql.bind::<Array<SqlUuid>, _>(stage_ids.to_vec());
        sql.push(")");
        sql.scope("d", scope);
        sql.eq_opt::<SqlUuid, _>("d.owner_id", owner_id)
            .eq_opt::<SqlUuid, _>("d.team_id", team_id);
    };
    for (from, to) in &split.edges {
        match EdgePlan::of(*from, *to) {
            EdgePlan::Days(from, to) => day_rows(&mut sql, "", from, to),
            EdgePlan::MonthLess { month, less } => {
                sql.push(
                    " UNION ALL SELECT t.stage_id, t.currency, t.deals, t.amount, t.amount_x_prob \
                     FROM opportunity_month_totals t WHERE t.close_month = ",
                );
                sql.bind::<Date, _>(month);
                sql.push(" AND t.stage_id = ANY(");
                sql.bind::<Array<SqlUuid>, _>(stage_ids.to_vec());
                sql.push(")");
                sql.scope("t", scope);
                sql.eq_opt::<SqlUuid, _>("t.owner_id", owner_id)
                    .eq_opt::<SqlUuid, _>("t.team_id", team_id);
                for (from, to) in less {
                    day_rows(&mut sql, "-", from, to);
                }
            }
        }
    }
    sql.push(") x GROUP BY x.stage_id, x.currency HAVING sum(x.n) > 0");
    sql.into_query().load(conn)
}

/// The first `per_stage + 1` cards of every listed stage, in board order.
pub fn board_cards(
    conn: &mut PgConnection,
    stage_ids: &[Uuid],
    scope: &ScopeFilter,
    filter: &OpportunityFilter,
    per_stage: i64,
) -> QueryResult<Vec<OpportunityRow>> {
    let mut sql = Sql::new("SELECT c.* FROM unnest(");
    sql.bind::<Array<SqlUuid>, _>(stage_ids.to_vec());
    sql.push(") AS s(id) CROSS JOIN LATERAL (SELECT o.* FROM opportunities o WHERE o.stage_id = s.id AND o.deleted_at IS NULL");
    sql.scope("o", scope);
    push_filter(&mut sql, filter);
    sql.push(" ORDER BY o.updated_at DESC, o.id DESC LIMIT ");
    sql.bind::<BigInt, _>(per_stage + 1);
    sql.push(") c");
    sql.into_query().load(conn)
}

/// Deal count and amount per status and currency for one account, in scope.
#[derive(Debug, Clone, QueryableByName)]
pub struct StatusTotals {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
}

pub fn account_totals(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    account_id: Uuid,
) -> QueryResult<Vec<StatusTotals>> {
    let mut sql = Sql::new(
        "SELECT o.status, o.currency, count(*)::bigint AS count, coalesce(sum(o.amount), 0)::numeric AS amount \
         FROM opportunities o WHERE o.deleted_at IS NULL AND o.account_id = ",
    );
    sql.bind::<SqlUuid, _>(account_id);
    sql.scope("o", scope);
    sql.push(" GROUP BY o.status, o.currency");
    sql.into_query().load(conn)
}

/// Board totals from the trigger-maintained rollup (no scan of the deals). Valid when
/// the only filters are the caller's scope, owner and team.
pub fn board_totals_rollup(
    conn: &mut PgConnection,
    stage_ids: &[Uuid],
    scope: &ScopeFilter,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
) -> QueryResult<Vec<StageTotals>> {
    let mut sql = Sql::new(
        "SELECT t.stage_id, t.currency, sum(t.deals)::bigint AS count, sum(t.amount)::numeric AS amount, \
         round(sum(t.amount_x_prob) / 100, 2)::numeric AS weighted \
         FROM opportunity_stage_totals t WHERE t.stage_id = ANY(",
    );
    sql.bind::<Array<SqlUuid>, _>(stage_ids.to_vec());
    sql.push(")");
    sql.scope("t", scope);
    sql.eq_opt::<SqlUuid, _>("t.owner_id", owner_id)
        .eq_opt::<SqlUuid, _>("t.team_id", team_id);
    sql.push(" GROUP BY t.stage_id, t.currency HAVING sum(t.deals) > 0");
    sql.into_query().load(conn)
}
