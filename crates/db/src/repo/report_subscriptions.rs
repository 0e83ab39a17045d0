//! Report subscriptions (a saved report or dashboard delivered on a schedule, or an
//! alert on one of its figures), when each runs next, and the log of its deliveries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{report_deliveries, report_schedules, report_subscriptions};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = report_subscriptions)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub saved_report_id: Option<Uuid>,
    pub dashboard_id: Option<Uuid>,
    pub schedule: String,
    pub period: Option<String>,
    pub recipients: Vec<Uuid>,
    pub channel_id: Option<Uuid>,
    pub alert: Option<Value>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = report_subscriptions)]
pub struct NewSubscription {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub saved_report_id: Option<Uuid>,
    pub dashboard_id: Option<Uuid>,
    pub schedule: String,
    pub period: Option<String>,
    pub recipients: Vec<Uuid>,
    pub channel_id: Option<Uuid>,
    pub alert: Option<Value>,
    pub enabled: bool,
}

/// A change: `Some(None)` clears a nullable column.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = report_subscriptions)]
pub struct SubscriptionChanges {
    pub name: Option<String>,
    pub schedule: Option<String>,
    pub period: Option<Option<String>>,
    pub recipients: Option<Vec<Uuid>>,
    pub channel_id: Option<Option<Uuid>>,
    pub alert: Option<Option<Value>>,
    pub enabled: Option<bool>,
}

impl SubscriptionChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.schedule.is_none()
            && self.period.is_none()
            && self.recipients.is_none()
            && self.channel_id.is_none()
            && self.alert.is_none()
            && self.enabled.is_none()
    }
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("name", "s.name", SortType::Text),
    SortColumn::new("created_at", "s.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "s.updated_at", SortType::Timestamp),
];

pub fn insert(conn: &mut PgConnection, new: &NewSubscription) -> QueryResult<SubscriptionRow> {
    diesel::insert_into(report_subscriptions::table)
        .values(new)
        .returning(SubscriptionRow::as_returning())
        .get_result(conn)
}

/// A subscription of `owner` (any owner's when none), locked for update when `lock`.
pub fn find(
    conn: &mut PgConnection,
    owner: Option<Uuid>,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<SubscriptionRow>> {
    let mut sql = Sql::new("SELECT s.* FROM report_subscriptions s WHERE s.id = ");
    sql.bind::<SqlUuid, _>(id);
    if let Some(o) = owner {
        sql.push(" AND s.owner_id = ");
        sql.bind::<SqlUuid, _>(o);
    }
    if lock {
        sql.push(" FOR UPDATE");
    }
    Ok(sql.into_query().load::<SubscriptionRow>(conn)?.into_iter().next())
}

/// What a list is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    /// Only this owner's (none: everyone's).
    pub owner: Option<Uuid>,
    pub saved_report_id: Option<Uuid>,
    pub dashboard_id: Option<Uuid>,
}

pub fn list(conn: &mut PgConnection, f: &SubscriptionFilter, spec: &ListSpec) -> QueryResult<Page<SubscriptionRow>> {
    let mut sql = Sql::new("SELECT s.* FROM report_subscriptions s WHERE TRUE");
    sql.eq_opt::<SqlUuid, _>("s.owner_id", f.owner);
    sql.eq_opt::<SqlUuid, _>("s.saved_report_id", f.saved_report_id);
    sql.eq_opt::<SqlUuid, _>("s.dashboard_id", f.dashboard_id);
    spec.load(conn, sql, "s.id", |r: &SubscriptionRow| r.id)
}

pub fn update(conn: &mut PgConnection, id: Uuid, ch: &SubscriptionChanges) -> QueryResult<SubscriptionRow> {
    diesel::update(report_subscriptions::table.find(id))
        .set((
            ch,
            report_subscriptions::version.eq(report_subscriptions::version + 1),
            report_subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SubscriptionRow::as_returning())
        .get_result(conn)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(report_subscriptions::table.find(id)).execute(conn)
}

/// When the subscription runs next (none: it does not, being disabled).
pub fn next_run(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<DateTime<Utc>>> {
    report_schedules::table
        .find(id)
        .select(report_schedules::next_run_at)
        .first(conn)
        .optional()
}

/// Sets (or, with none, removes) the subscription's next run.
pub fn set_next_run(conn: &mut PgConnection, id: Uuid, next: Option<DateTime<Utc>>) -> QueryResult<()> {
    match next {
        Some(at) => diesel::insert_into(report_schedules::table)
            .values((
                report_schedules::subscription_id.eq(id),
                report_schedules::next_run_at.eq(at),
            ))
            .on_conflict(report_schedules::subscription_id)
            .do_update()
            .set(report_schedules::next_run_at.eq(at))
            .execute(conn)?,
        None => diesel::delete(report_schedules::table.find(id)).execute(conn)?,
    };
    Ok(())
}

/// A due occurrence claimed by the scheduler.
#[derive(Debug, Clone, QueryableByName)]
pub struct Due {
    #[diesel(sql_type = SqlUuid)]
    pub subscription_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub next_run_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub schedule: String,
}

/// Up to `limit` schedules due at `now`, locked (others running the scheduler at the
/// same time skip them).
pub fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<Due>> {
    diesel::sql_query(
        "SELECT r.subscription_id, r.next_run_at, s.schedule FROM report_schedules r \
         JOIN report_subscriptions s ON s.id = r.subscription_id \
         WHERE r.next_run_at <= $1 ORDER BY r.next_run_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
}

/// Moves a claimed schedule on to its next occurrence (none: stops it).
pub fn advance(conn: &mut PgConnection, id: Uuid, ran: DateTime<Utc>, next: Option<DateTime<Utc>>) -> QueryResult<()> {
    match next {
        Some(at) => diesel::update(report_schedules::table.find(id))
            .set((
                report_schedules::next_run_at.eq(at),
                report_schedules::last_run_at.eq(ran),
            ))
            .execute(conn)?,
        None => diesel::delete(report_schedules::table.find(id)).execute(conn)?,
    };
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = report_deliveries)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub occurrence: DateTime<Utc>,
    pub status: String,
    pub detail: Value,
    pub notified: i32,
    pub channel_queued: bool,
    pub created_at: DateTime<Utc>,
}

/// Records the run of one occurrence; none when it was recorded already (a second run
/// of the same occurrence).
pub fn record_delivery(conn: &mut PgConnection, row: &DeliveryRow) -> QueryResult<Option<DeliveryRow>> {
    diesel::insert_into(report_deliveries::table)
        .values((
            report_deliveries::id.eq(row.id),
            report_deliveries::subscription_id.eq(row.subscription_id),
            report_deliveries::occurrence.eq(row.occurrence),
            report_deliveries::status.eq(&row.status),
            report_deliveries::detail.eq(&row.detail),
            report_deliveries::notified.eq(row.notified),
            report_deliveries::channel_queued.eq(row.channel_queued),
            report_deliveries::created_at.eq(row.created_at),
        ))
        .on_conflict((report_deliveries::subscription_id, report_deliveries::occurrence))
        .do_nothing()
        .returning(DeliveryRow::as_returning())
        .get_result(conn)
        .optional()
}

/// Writes what a claimed delivery did.
pub fn finish_delivery(conn: &mut PgConnection, row: &DeliveryRow) -> QueryResult<DeliveryRow> {
    diesel::update(report_deliveries::table.find(row.id))
        .set((
            report_deliveries::status.eq(&row.status),
            report_deliveries::detail.eq(&row.detail),
            report_deliveries::notified.eq(row.notified),
            report_deliveries::channel_queued.eq(row.channel_queued),
        ))
        .returning(DeliveryRow::as_returning())
        .get_result(conn)
}

/// Whether the occurrence has run.
pub fn delivered(conn: &mut PgConnection, id: Uuid, occurrence: DateTime<Utc>) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        report_deliveries::table
            .filter(report_deliveries::subscription_id.eq(id))
            .filter(report_deliveries::occurrence.eq(occurrence)),
    ))
    .get_result(conn)
}

/// The latest deliveries of a subscription, newest first.
pub fn deliveries(conn: &mut PgConnection, id: Uuid, limit: i64) -> QueryResult<Vec<DeliveryRow>> {
    report_deliveries::table
        .filter(report_deliveries::subscription_id.eq(id))
        .order(report_deliveries::occurrence.desc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}
