//! Outgoing webhooks: subscriptions, their deliveries (one per event and subscription,
//! in order per record) and every attempt made.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::QueryResult;

diesel::table! {
    webhooks (id) {
        id -> Uuid,
        url -> Text,
        description -> Text,
        event_types -> Array<Text>,
        condition -> Nullable<Jsonb>,
        role_id -> Uuid,
        owner_id -> Uuid,
        enabled -> Bool,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamptz>,
        failing_since -> Nullable<Timestamptz>,
        disabled_at -> Nullable<Timestamptz>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Int8,
        webhook_id -> Uuid,
        event_id -> Uuid,
        event_type -> Text,
        record_id -> Nullable<Uuid>,
        body -> Text,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        last_attempt_at -> Nullable<Timestamptz>,
        last_status -> Nullable<Int4>,
        last_latency_ms -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        last_response -> Nullable<Text>,
        redelivery_of -> Nullable<Int8>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Int8,
        delivery_id -> Int8,
        attempt -> Int4,
        attempted_at -> Timestamptz,
        status -> Nullable<Int4>,
        latency_ms -> Int4,
        outcome -> Text,
        error -> Nullable<Text>,
        response -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(webhooks, webhook_deliveries, webhook_attempts);

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub condition: Option<Value>,
    pub role_id: Uuid,
    pub owner_id: Uuid,
    pub enabled: bool,
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl WebhookRow {
    /// The secrets that sign a delivery at `now`: the current one, and the previous one
    /// during a rotation's grace period.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if until > now {
                out.push(old.as_str());
            }
        }
        out
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub condition: Option<Value>,
    pub role_id: Uuid,
    pub owner_id: Uuid,
    pub enabled: bool,
    pub secret: String,
}

/// A change to a subscription (`None`: unchanged).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub condition: Option<Option<Value>>,
    pub role_id: Option<Uuid>,
    pub enabled: Option<bool>,
    pub failing_since: Option<Option<DateTime<Utc>>>,
    pub disabled_at: Option<Option<DateTime<Utc>>>,
    pub disabled_reason: Option<Option<String>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub record_id: Option<Uuid>,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub last_response: Option<String>,
    pub redelivery_of: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewDelivery {
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub record_id: Option<Uuid>,
    pub body: String,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub redelivery_of: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub outcome: String,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// The result of one attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    /// `delivered`, `retry` or `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub response: Option<String>,
    /// When to try again (`retry` only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

pub fn insert(conn: &mut PgConnection, new: &NewWebhook) -> QueryResult<WebhookRow> {
    diesel::insert_into(webhooks::table)
        .values(new)
        .returning(WebhookRow::as_returning())
        .get_result(conn)
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<WebhookRow>> {
    webhooks::table
        .order(webhooks::created_at.asc())
        .select(WebhookRow::as_select())
        .load(conn)
}

pub fn enabled(conn: &mut PgConnection) -> QueryResult<Vec<WebhookRow>> {
    webhooks::table
        .filter(webhooks::enabled.eq(true))
        .order(webhooks::created_at.asc())
        .select(WebhookRow::as_select())
        .load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<WebhookRow>> {
    webhooks::table
        .find(id)
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// Locks a subscription for a change.
pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<WebhookRow>> {
    webhooks::table
        .find(id)
        .for_update()
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// Locks a subscription for delivering, or `None` when another run holds it.
pub fn lock_for_delivery(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<WebhookRow>> {
    webhooks::table
        .find(id)
        .for_update()
        .skip_locked()
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

pub fn update(conn: &mut PgConnection, id: Uuid, change: &WebhookChange) -> QueryResult<WebhookRow> {
    diesel::update(webhooks::table.find(id))
        .set((
            change,
            webhooks::updated_at.eq(diesel::dsl::now),
            webhooks::version.eq(webhooks::version + 1),
        ))
        .returning(WebhookRow::as_returning())
        .get_result(conn)
}

/// Replaces the secret; the old one keeps signing until `grace_until`.
pub fn rotate_secret(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &str,
    grace_until: DateTime<Utc>,
) -> QueryResult<WebhookRow> {
    diesel::update(webhooks::table.find(id))
        .set((
            webhooks::previous_secret.eq(webhooks::secret.nullable()),
            webhooks::previous_secret_until.eq(Some(grace_until)),
            webhooks::secret.eq(secret),
            webhooks::updated_at.eq(diesel::dsl::now),
            webhooks::version.eq(webhooks::version + 1),
        ))
        .returning(WebhookRow::as_returning())
        .get_result(conn)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(webhooks::table.find(id)).execute(conn)? > 0)
}

/// Records a subscription's failure streak (`None`: cleared by a success).
pub fn set_failing(conn: &mut PgConnection, id: Uuid, since: Option<DateTime<Utc>>) -> QueryResult<()> {
    diesel::update(webhooks::table.find(id))
        .set(webhooks::failing_since.eq(since))
        .execute(conn)?;
    Ok(())
}

/// Creates deliveries; one that exists for the same event and subscription is skipped.
/// Returns how many were created.
pub fn insert_deliveries(conn: &mut PgConnection, rows: &[NewDelivery]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::insert_into(webhook_deliveries::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
}

pub fn find_delivery(conn: &mut PgConnection, webhook: Uuid, id: i64) -> QueryResult<Option<DeliveryRow>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook))
        .filter(webhook_deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()
}

/// The delivery log, newest first: deliveries with an `id` below `before`, optionally
/// of one state.
pub fn deliveries(
    conn: &mut PgConnection,
    webhook: Uuid,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook))
        .into_boxed();
    if let Some(s) = state {
        q = q.filter(webhook_deliveries::state.eq(s.to_owned()));
    }
    if let Some(b) = before {
        q = q.filter(webhook_deliveries::id.lt(b));
    }
    q.order(webhook_deliveries::id.desc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

pub fn attempts(conn: &mut PgConnection, delivery: i64) -> QueryResult<Vec<AttemptRow>> {
    webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq(delivery))
        .order(webhook_attempts::id.asc())
        .select(AttemptRow::as_select())
        .load(conn)
}

/// Original deliveries created in a time window (for redelivery), oldest first.
pub fn deliveries_between(
    conn: &mut PgConnection,
    webhook: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook))
        .filter(webhook_deliveries::created_at.ge(from))
        .filter(webhook_deliveries::created_at.lt(to))
        .filter(webhook_deliveries::redelivery_of.is_null())
        .order(webhook_deliveries::id.asc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The heads of a subscription's pending deliveries: per record the oldest pending one
/// (deliveries of one record go out in order). One pass over the pending deliveries'
/// index, whatever the backlog's shape.
const HEADS: &str = "SELECT DISTINCT ON (record_id) id, next_attempt_at FROM webhook_deliveries \
                     WHERE webhook_id = $1 AND state = 'pending' ORDER BY record_id, id";

/// Up to `limit` deliveries due by `now`, each the head of its record, in due order.
pub fn due_heads(
    conn: &mut PgConnection,
    webhook: Uuid,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let ids: Vec<Due> = diesel::sql_query(format!(
        "SELECT h.id FROM ({HEADS}) h WHERE h.next_attempt_at <= $2 ORDER BY h.next_attempt_at, h.id LIMIT $3"
    ))
    .bind::<diesel::sql_types::Uuid, _>(webhook)
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    let ids: Vec<i64> = ids.into_iter().map(|d| d.id).collect();
    let mut rows: Vec<DeliveryRow> = webhook_deliveries::table
        .filter(webhook_deliveries::id.eq_any(&ids))
        .select(DeliveryRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    Ok(rows)
}

#[derive(QueryableByName)]
struct NextAt {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    at: Option<DateTime<Utc>>,
}

/// When the subscription next has a delivery due (the earliest head), if any.
pub fn next_due_at(conn: &mut PgConnection, webhook: Uuid) -> QueryResult<Option<DateTime<Utc>>> {
    let rows: Vec<NextAt> = diesel::sql_query(format!("SELECT min(h.next_attempt_at) AS at FROM ({HEADS}) h"))
        .bind::<diesel::sql_types::Uuid, _>(webhook)
        .load(conn)?;
    Ok(rows.into_iter().next().and_then(|r| r.at))
}

/// Enabled subscriptions with a pending delivery due by `now` (the sweeper's list).
pub fn with_due(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<Vec<Uuid>> {
    webhook_deliveries::table
        .inner_join(webhooks::table.on(webhooks::id.eq(webhook_deliveries::webhook_id)))
        .filter(webhooks::enabled.eq(true))
        .filter(webhook_deliveries::state.eq("pending"))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .select(webhook_deliveries::webhook_id)
        .distinct()
        .load(conn)
}

/// Records an attempt: the delivery's state and last result, and the attempt row.
pub fn record_attempt(conn: &mut PgConnection, d: &DeliveryRow, r: &AttemptResult) -> QueryResult<()> {
    let state = match r.outcome {
        "retry" => "pending",
        o => o,
    };
    diesel::update(webhook_deliveries::table.find(d.id))
        .set((
            webhook_deliveries::state.eq(state),
            webhook_deliveries::attempts.eq(d.attempts + 1),
            webhook_deliveries::next_attempt_at.eq(r.next_attempt_at.unwrap_or(d.next_attempt_at)),
            webhook_deliveries::last_attempt_at.eq(Some(r.at)),
            webhook_deliveries::last_status.eq(r.status),
            webhook_deliveries::last_latency_ms.eq(Some(r.latency_ms)),
            webhook_deliveries::last_error.eq(r.error.as_deref()),
            webhook_deliveries::last_response.eq(r.response.as_deref()),
        ))
        .execute(conn)?;
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::delivery_id.eq(d.id),
            webhook_attempts::attempt.eq(d.attempts + 1),
            webhook_attempts::attempted_at.eq(r.at),
            webhook_attempts::status.eq(r.status),
            webhook_attempts::latency_ms.eq(r.latency_ms),
            webhook_attempts::outcome.eq(r.outcome),
            webhook_attempts::error.eq(r.error.as_deref()),
            webhook_attempts::response.eq(r.response.as_deref()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Enqueues (or brings forward) the delivery job of a subscription: one waiting job per
/// subscription, run at the earliest time asked for.
pub fn schedule(conn: &mut PgConnection, queue: &str, kind: &str, webhook: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
    super::jobs::enqueue_or_advance(
        conn,
        queue,
        kind,
        &serde_json::json!({"webhook_id": webhook}),
        &format!("webhook:{webhook}"),
        at,
    )
}
