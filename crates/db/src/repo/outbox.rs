//! Reading the outbox in commit order, with a stored position per subscriber.
//!
//! Every transaction that writes events takes a commit sequence number at commit time
//! (`outbox_commits`, see the `background_work` migration), so `seq` order is the order
//! in which the transactions became visible: a reader that remembers the last `seq` it
//! handled never skips a slower transaction's events, unlike one that remembers the
//! last event id.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use serde_json::Value;
use uuid::Uuid;

use crate::QueryResult;

/// One event as subscribers receive it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Delivered {
    /// The commit sequence number of the transaction that wrote it.
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub aggregate_type: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub aggregate_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub actor_id: Option<Uuid>,
    #[diesel(sql_type = Timestamptz)]
    pub committed_at: DateTime<Utc>,
}

/// Registers a subscriber at the current end of the stream (no-op when it exists).
pub fn register(conn: &mut PgConnection, name: &str) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO outbox_subscribers (name, position) \
         VALUES ($1, (SELECT coalesce(max(seq), 0) FROM outbox_commits)) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(name)
    .execute(conn)?;
    Ok(())
}

/// Inside the dispatch transaction: locks the subscriber's position (`None` when
/// another dispatcher holds it now; that one delivers).
pub fn lock_position(conn: &mut PgConnection, name: &str) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Pos {
        #[diesel(sql_type = BigInt)]
        position: i64,
    }
    let rows: Vec<Pos> =
        diesel::sql_query("SELECT position FROM outbox_subscribers WHERE name = $1 FOR UPDATE SKIP LOCKED")
            .bind::<Text, _>(name)
            .load(conn)?;
    Ok(rows.first().map(|p| p.position))
}

/// The events of the next `commits` committed transactions after `position`, in commit
/// order and, within a transaction, in the order they were written; and the sequence
/// number the batch ends at (`position` when nothing new has committed). The commits
/// are read first and the events for exactly those, so a commit arriving meanwhile
/// waits for the next batch instead of being stepped over.
pub fn after(conn: &mut PgConnection, position: i64, commits: i64) -> QueryResult<(i64, Vec<Delivered>)> {
    #[derive(QueryableByName)]
    struct Commit {
        #[diesel(sql_type = BigInt)]
        seq: i64,
        #[diesel(sql_type = BigInt)]
        tx_id: i64,
    }
    let batch: Vec<Commit> =
        diesel::sql_query("SELECT seq, tx_id FROM outbox_commits WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind::<BigInt, _>(position)
            .bind::<BigInt, _>(commits)
            .load(conn)?;
    let Some(end) = batch.last().map(|c| c.seq) else {
        return Ok((position, Vec::new()));
    };
    let txs: Vec<i64> = batch.iter().map(|c| c.tx_id).collect();
    let events = diesel::sql_query(
        "SELECT c.seq, e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.payload, e.actor_id, \
                c.committed_at \
         FROM outbox_commits c JOIN outbox_events e ON e.tx_id = c.tx_id \
         WHERE c.tx_id = ANY($1) ORDER BY c.seq, e.id",
    )
    .bind::<diesel::sql_types::Array<BigInt>, _>(&txs)
    .load(conn)?;
    Ok((end, events))
}

pub fn set_position(conn: &mut PgConnection, name: &str, position: i64) -> QueryResult<()> {
    diesel::sql_query("UPDATE outbox_subscribers SET position = $2, updated_at = now() WHERE name = $1")
        .bind::<Text, _>(name)
        .bind::<BigInt, _>(position)
        .execute(conn)?;
    Ok(())
}

/// How far each subscriber is behind: commits not yet handled and the age of the oldest.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
pub struct Lag {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub position: i64,
    #[diesel(sql_type = BigInt)]
    pub pending_commits: i64,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub oldest_pending_age_secs: Option<f64>,
}

pub fn lag(conn: &mut PgConnection) -> QueryResult<Vec<Lag>> {
    diesel::sql_query(
        "SELECT s.name, s.position, \
                (SELECT count(*) FROM outbox_commits c WHERE c.seq > s.position) AS pending_commits, \
                (SELECT extract(epoch FROM now() - min(c.committed_at))::float8 FROM outbox_commits c \
                  WHERE c.seq > s.position) AS oldest_pending_age_secs \
         FROM outbox_subscribers s ORDER BY s.name",
    )
    .load(conn)
}

/// Removes events older than `keep_days` that every subscriber has handled, and their
/// commit rows. Returns the number of events removed.
pub fn prune(conn: &mut PgConnection, keep_days: i32) -> QueryResult<usize> {
    conn.transaction(|c| {
        let n = diesel::sql_query(
            "WITH done AS ( \
                 SELECT seq, tx_id FROM outbox_commits \
                 WHERE seq <= (SELECT coalesce(min(position), (SELECT coalesce(max(seq), 0) FROM outbox_commits)) \
                               FROM outbox_subscribers) \
                   AND committed_at < now() - make_interval(days => $1)), \
             gone AS (DELETE FROM outbox_commits WHERE seq IN (SELECT seq FROM done)) \
             DELETE FROM outbox_events WHERE tx_id IN (SELECT tx_id FROM done)",
        )
        .bind::<diesel::sql_types::Integer, _>(keep_days)
        .execute(c)?;
        // Events from before commit sequencing existed, past the retention.
        let legacy = diesel::sql_query(
            "DELETE FROM outbox_events WHERE tx_id IS NULL AND occurred_at < now() - make_interval(days => $1)",
        )
        .bind::<diesel::sql_types::Integer, _>(keep_days)
        .execute(c)?;
        Ok(n + legacy)
    })
}

/// One committed event by its id (redelivery to a subscriber that failed on it).
pub fn by_event_id(conn: &mut PgConnection, event_id: Uuid) -> QueryResult<Option<Delivered>> {
    let rows: Vec<Delivered> = diesel::sql_query(
        "SELECT c.seq, e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.payload, e.actor_id, \
                c.committed_at \
         FROM outbox_events e JOIN outbox_commits c ON c.tx_id = e.tx_id WHERE e.event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .load(conn)?;
    Ok(rows.into_iter().next())
}

/// The stored events about `aggregate_type` committed in [from, to), in commit order, at
/// most `limit` (backtests replay them).
pub fn window(
    conn: &mut PgConnection,
    aggregate_type: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Delivered>> {
    diesel::sql_query(
        "SELECT c.seq, e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.payload, e.actor_id, \
                c.committed_at \
         FROM outbox_events e JOIN outbox_commits c ON c.tx_id = e.tx_id \
         WHERE e.aggregate_type = $1 AND c.committed_at >= $2 AND c.committed_at < $3 \
         ORDER BY c.seq, e.id LIMIT $4",
    )
    .bind::<Text, _>(aggregate_type)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<BigInt, _>(limit)
    .load(conn)
}
