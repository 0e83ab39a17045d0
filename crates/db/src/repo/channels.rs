//! Group robot channels (DingTalk, WeCom), their waiting messages and the requests made
//! to them (the rate window).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::QueryResult;

diesel::table! {
    channels (id) {
        id -> Uuid,
        kind -> Text,
        name -> Text,
        url -> Text,
        secret -> Nullable<Text>,
        enabled -> Bool,
        per_minute -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    channel_messages (id) {
        id -> Int8,
        channel_id -> Uuid,
        dedupe_key -> Nullable<Text>,
        title -> Text,
        body -> Text,
        link -> Nullable<Text>,
        mentions -> Array<Text>,
        state -> Text,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        send_id -> Nullable<Int8>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    channel_sends (id) {
        id -> Int8,
        channel_id -> Uuid,
        sent_at -> Timestamptz,
        messages -> Int4,
        status -> Nullable<Int4>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    user_channels (user_id) {
        user_id -> Uuid,
        channel_id -> Uuid,
        mobile -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(channels, channel_messages, channel_sends, user_channels);

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = channels)]
pub struct ChannelRow {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    #[serde(skip)]
    pub url: String,
    #[serde(skip)]
    pub secret: Option<String>,
    pub enabled: bool,
    pub per_minute: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = channels)]
pub struct NewChannel {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub url: String,
    pub secret: Option<String>,
    pub enabled: bool,
    pub per_minute: i32,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = channel_messages)]
pub struct MessageRow {
    pub id: i64,
    pub channel_id: Uuid,
    pub dedupe_key: Option<String>,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub mentions: Vec<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub send_id: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = channel_messages)]
pub struct NewMessage {
    pub channel_id: Uuid,
    pub dedupe_key: Option<String>,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub mentions: Vec<String>,
    pub created_at: DateTime<Utc>,
}

pub fn insert(conn: &mut PgConnection, new: &NewChannel) -> QueryResult<ChannelRow> {
    diesel::insert_into(channels::table)
        .values(new)
        .returning(ChannelRow::as_returning())
        .get_result(conn)
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<ChannelRow>> {
    channels::table
        .order(channels::created_at.asc())
        .select(ChannelRow::as_select())
        .load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<ChannelRow>> {
    channels::table
        .find(id)
        .select(ChannelRow::as_select())
        .first(conn)
        .optional()
}

/// Locks a channel for sending, or `None` when another run holds it.
pub fn lock_for_sending(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<ChannelRow>> {
    channels::table
        .find(id)
        .for_update()
        .skip_locked()
        .select(ChannelRow::as_select())
        .first(conn)
        .optional()
}

pub fn set_enabled(conn: &mut PgConnection, id: Uuid, enabled: bool) -> QueryResult<Option<ChannelRow>> {
    diesel::update(channels::table.find(id))
        .set((
            channels::enabled.eq(enabled),
            channels::updated_at.eq(diesel::dsl::now),
            channels::version.eq(channels::version + 1),
        ))
        .returning(ChannelRow::as_returning())
        .get_result(conn)
        .optional()
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(channels::table.find(id)).execute(conn)? > 0)
}

/// Queues a message (one with the same dedupe key is not queued twice); returns whether
/// it was queued.
pub fn enqueue(conn: &mut PgConnection, m: &NewMessage) -> QueryResult<bool> {
    Ok(diesel::insert_into(channel_messages::table)
        .values(m)
        .on_conflict_do_nothing()
        .execute(conn)?
        > 0)
}

pub fn waiting(conn: &mut PgConnection, channel: Uuid, limit: i64) -> QueryResult<Vec<MessageRow>> {
    channel_messages::table
        .filter(channel_messages::channel_id.eq(channel))
        .filter(channel_messages::state.eq("waiting"))
        .order(channel_messages::id.asc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
}

pub fn count_waiting(conn: &mut PgConnection, channel: Uuid) -> QueryResult<i64> {
    channel_messages::table
        .filter(channel_messages::channel_id.eq(channel))
        .filter(channel_messages::state.eq("waiting"))
        .count()
        .get_result(conn)
}

/// Requests made to the channel since `since`: how many, and the oldest one's time.
pub fn sends_since(
    conn: &mut PgConnection,
    channel: Uuid,
    since: DateTime<Utc>,
) -> QueryResult<(i64, Option<DateTime<Utc>>)> {
    let rows: Vec<DateTime<Utc>> = channel_sends::table
        .filter(channel_sends::channel_id.eq(channel))
        .filter(channel_sends::sent_at.gt(since))
        .select(channel_sends::sent_at)
        .order(channel_sends::sent_at.asc())
        .load(conn)?;
    Ok((i64::try_from(rows.len()).unwrap_or(i64::MAX), rows.first().copied()))
}

/// Records a request and, when it succeeded, marks its messages sent.
pub fn record_send(
    conn: &mut PgConnection,
    channel: Uuid,
    at: DateTime<Utc>,
    messages: &[i64],
    status: Option<i32>,
    error: Option<&str>,
) -> QueryResult<i64> {
    let id: i64 = diesel::insert_into(channel_sends::table)
        .values((
            channel_sends::channel_id.eq(channel),
            channel_sends::sent_at.eq(at),
            channel_sends::messages.eq(i32::try_from(messages.len()).unwrap_or(i32::MAX)),
            channel_sends::status.eq(status),
            channel_sends::error.eq(error),
        ))
        .returning(channel_sends::id)
        .get_result(conn)?;
    let q = diesel::update(channel_messages::table.filter(channel_messages::id.eq_any(messages)));
    if error.is_none() {
        q.set((
            channel_messages::state.eq("sent"),
            channel_messages::sent_at.eq(Some(at)),
            channel_messages::send_id.eq(Some(id)),
            channel_messages::error.eq(None::<String>),
        ))
        .execute(conn)?;
    } else {
        q.set(channel_messages::error.eq(error)).execute(conn)?;
    }
    Ok(id)
}

/// The channel (and mobile to @) a user gets personal notifications in, if any.
pub fn user_channel(conn: &mut PgConnection, user: Uuid) -> QueryResult<Option<(Uuid, Option<String>)>> {
    user_channels::table
        .inner_join(channels::table.on(channels::id.eq(user_channels::channel_id)))
        .filter(user_channels::user_id.eq(user))
        .filter(channels::enabled.eq(true))
        .select((user_channels::channel_id, user_channels::mobile))
        .first(conn)
        .optional()
}

pub fn set_user_channel(
    conn: &mut PgConnection,
    user: Uuid,
    channel: Option<(Uuid, Option<String>)>,
) -> QueryResult<()> {
    diesel::delete(user_channels::table.find(user)).execute(conn)?;
    if let Some((channel_id, mobile)) = channel {
        diesel::insert_into(user_channels::table)
            .values((
                user_channels::user_id.eq(user),
                user_channels::channel_id.eq(channel_id),
                user_channels::mobile.eq(mobile),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Enqueues (or brings forward) the send job of a channel: one waiting job per channel.
pub fn schedule(conn: &mut PgConnection, queue: &str, kind: &str, channel: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
    super::jobs::enqueue_or_advance(
        conn,
        queue,
        kind,
        &serde_json::json!({"channel_id": channel}),
        &format!("channel:{channel}"),
        at,
    )
}
