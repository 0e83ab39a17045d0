//! Forecast snapshots: once per business day the open pipeline (and the deals won
//! this quarter) by owner, team, pipeline, forecast category, expected close month and
//! currency is recorded, so what was committed at any past date can be read back.
//! Taking a snapshot twice, or on several instances at once, records it once.

use chrono::{Datelike, NaiveDate};
use crm_db::sql::Sql;
use diesel::prelude::*;
use diesel::sql_types::{Date, Integer, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{push_filters, read_scope, Params};
use crate::error::{AppError, AppResult};
use crate::{Clock, Ctx};

/// The job that takes the day's snapshot (enqueued hourly; the first run of a day
/// records it).
pub const SNAPSHOT_JOB: &str = "reports.forecast_snapshot";

/// Records today's snapshot (business date in the calendar's zone) unless it exists;
/// returns the rows written.
pub fn take_snapshot(c: &mut PgConnection, clock: &Clock) -> AppResult<usize> {
    let tz = crate::rules::calendar(c)?.offset();
    let now = clock.now();
    let today = now.with_timezone(&tz).date_naive();
    let quarter = NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1).unwrap_or(today);
    let quarter_start = crm_domain::reports::Period::dates(quarter, quarter, tz).start;
    let n = diesel::sql_query(
        "INSERT INTO forecast_snapshots (taken_on, taken_at, owner_id, team_id, pipeline_id, category, close_month, \
         currency, deals, amount, weighted) \
         SELECT $1, $2, o.owner_id, o.team_id, o.pipeline_id, coalesce(o.forecast_category, s.forecast_category), \
         date_trunc('month', o.expected_close_date)::date, o.currency, count(*)::int, coalesce(sum(o.amount), 0), \
         round(coalesce(sum(o.amount * o.probability / 100.0), 0), 2) \
         FROM opportunities o JOIN stages s ON s.id = o.stage_id \
         WHERE o.deleted_at IS NULL AND (o.status = 'open' OR (o.status = 'won' AND o.closed_at >= $3)) \
         GROUP BY o.owner_id, o.team_id, o.pipeline_id, 6, 7, o.currency \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Date, _>(today)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(quarter_start)
    .execute(c)?;
    Ok(n)
}

/// One row of a snapshot.
#[derive(Debug, Clone, QueryableByName)]
pub struct SnapshotRow {
    #[diesel(sql_type = SqlUuid)]
    pub owner_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub team_id: Option<Uuid>,
    #[diesel(sql_type = SqlUuid)]
    pub pipeline_id: Uuid,
    #[diesel(sql_type = Text)]
    pub category: String,
    #[diesel(sql_type = Nullable<Date>)]
    pub close_month: Option<NaiveDate>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Integer)]
    pub deals: i32,
    #[diesel(sql_type = Nullable<Numeric>)]
    pub amount: Option<Decimal>,
    #[diesel(sql_type = Nullable<Numeric>)]
    pub weighted: Option<Decimal>,
}

/// A snapshot as the caller may read it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The business date of the snapshot read (the latest on or before the date asked
    /// for); none when there is none yet.
    pub taken_on: Option<NaiveDate>,
    pub rows: Vec<SnapshotRow>,
    pub withheld: Vec<&'static str>,
}

/// The snapshot of `on` (default today), or the latest before it, in the caller's
/// `opportunities:read` scope, filtered by owner, team and pipeline.
pub fn snapshot(c: &mut PgConnection, ctx: &Ctx, on: Option<NaiveDate>, p: &Params) -> AppResult<Snapshot> {
    let scope =
        read_scope(ctx, "opportunities").ok_or_else(|| AppError::forbidden("missing permission opportunities:read"))?;
    let tz = crate::rules::calendar(c)?.offset();
    let on = on.unwrap_or_else(|| ctx.now().with_timezone(&tz).date_naive());
    #[derive(QueryableByName)]
    struct D {
        #[diesel(sql_type = Nullable<Date>)]
        d: Option<NaiveDate>,
    }
    let taken_on = diesel::sql_query("SELECT max(taken_on) AS d FROM forecast_snapshots WHERE taken_on <= $1")
        .bind::<Date, _>(on)
        .get_result::<D>(c)?
        .d;
    let Some(day) = taken_on else {
        return Ok(Snapshot {
            taken_on: None,
            rows: Vec::new(),
            withheld: Vec::new(),
        });
    };
    let mut sql = Sql::new(
        "SELECT f.owner_id, f.team_id, f.pipeline_id, f.category, f.close_month, f.currency, f.deals, f.amount, \
         f.weighted FROM forecast_snapshots f WHERE f.taken_on = ",
    );
    sql.bind::<Date, _>(day);
    sql.scope("f", &scope);
    push_filters(&mut sql, "f", p);
    if let Some(pipeline) = p.pipeline_id {
        sql.push(" AND f.pipeline_id = ");
        sql.bind::<SqlUuid, _>(pipeline);
    }
    sql.push(" ORDER BY f.category, f.close_month NULLS LAST, f.currency, f.owner_id");
    let mut rows: Vec<SnapshotRow> = sql.into_query().load(c)?;
    let mut withheld = Vec::new();
    if matches!(
        ctx.principal.field_access("opportunities", "amount"),
        crm_domain::fields::FieldAccess::Hidden | crm_domain::fields::FieldAccess::Masked
    ) {
        withheld = vec!["amount", "weighted"];
        for r in &mut rows {
            r.amount = None;
            r.weighted = None;
        }
    }
    Ok(Snapshot {
        taken_on: Some(day),
        rows,
        withheld,
    })
}
