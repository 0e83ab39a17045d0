//! The job queue in Postgres (`background_jobs`): enqueue inside the caller's
//! transaction, claim with `FOR UPDATE SKIP LOCKED` under a lease, run in a transaction
//! that holds the job's row, back off or end dead on failure; and the periodic
//! schedules (`job_schedules`) that enqueue one job per period across all instances.
//!
//! How a job runs exactly once in effect: [`claim`] marks it `running` with a lease in a
//! short transaction of its own; the run's transaction starts with [`start`], which
//! locks the row and checks the claim is still this worker's, and ends with [`finish`],
//! which deletes it. While the run's transaction is open nobody else can claim the job
//! (the row is locked); when the worker dies its transaction rolls back (the effects
//! with it) and the job is claimed again once the lease has expired.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, SmallInt, Text, Timestamptz};
use serde::Serialize;
use serde_json::Value;

use crate::QueryResult;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    /// When it may run first (`None`: now).
    pub run_at: Option<DateTime<Utc>>,
    /// Higher runs first within a queue.
    pub priority: i16,
    pub max_attempts: i32,
    /// A second enqueue with this key while one waits is a no-op.
    pub unique_key: Option<String>,
}

impl NewJob {
    pub fn new(queue: &str, kind: &str, payload: Value) -> Self {
        Self {
            queue: queue.to_owned(),
            kind: kind.to_owned(),
            payload,
            run_at: None,
            priority: 0,
            max_attempts: 10,
            unique_key: None,
        }
    }

    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    pub fn at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn attempts(mut self, max: i32) -> Self {
        self.max_attempts = max.max(1);
        self
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Enqueues a job in the caller's transaction; `None` when a waiting job has its
/// unique key already.
pub fn enqueue(conn: &mut PgConnection, job: &NewJob) -> QueryResult<Option<i64>> {
    let ids: Vec<Id> = diesel::sql_query(
        "INSERT INTO background_jobs (queue, kind, payload, run_at, priority, max_attempts, unique_key) \
         VALUES ($1, $2, $3, coalesce($4, now()), $5, $6, $7) \
         ON CONFLICT (unique_key) WHERE state = 'waiting' AND unique_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind::<Text, _>(&job.queue)
    .bind::<Text, _>(&job.kind)
    .bind::<Jsonb, _>(&job.payload)
    .bind::<Nullable<Timestamptz>, _>(job.run_at)
    .bind::<SmallInt, _>(job.priority)
    .bind::<Integer, _>(job.max_attempts)
    .bind::<Nullable<Text>, _>(job.unique_key.as_deref())
    .load(conn)?;
    Ok(ids.first().map(|i| i.id))
}

/// Enqueues a job under `unique_key`, or brings the waiting one forward: one waiting
/// job per key, run at the earliest time asked for (its payload is the first one's).
pub fn enqueue_or_advance(
    conn: &mut PgConnection,
    queue: &str,
    kind: &str,
    payload: &Value,
    unique_key: &str,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO background_jobs AS j (queue, kind, payload, run_at, unique_key) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (unique_key) WHERE state = 'waiting' AND unique_key IS NOT NULL \
         DO UPDATE SET run_at = least(j.run_at, EXCLUDED.run_at)",
    )
    .bind::<Text, _>(queue)
    .bind::<Text, _>(kind)
    .bind::<Jsonb, _>(payload)
    .bind::<Timestamptz, _>(at)
    .bind::<Text, _>(unique_key)
    .execute(conn)?;
    Ok(())
}

/// A job: what a worker claims and the admin view shows.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct Job {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub queue: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub run_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub unique_key: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

const JOB_COLUMNS: &str =
    "id, queue, kind, payload, state, attempts, max_attempts, run_at, last_error, unique_key, created_at, updated_at";

/// Claims the next due job of `queue` for `worker` (its own short transaction): a
/// waiting job whose time has come, or a running one whose lease has expired (its
/// worker died). Counts an attempt.
pub fn claim(conn: &mut PgConnection, queue: &str, worker: &str, lease_secs: i32) -> QueryResult<Option<Job>> {
    // Expired leases first (few, and their jobs have waited longest), then due jobs by
    // priority; each a single statement over its partial index.
    for due in [
        "state = 'running' AND locked_until < now() ORDER BY locked_until",
        "state = 'waiting' AND run_at <= now() ORDER BY priority DESC, run_at, id",
    ] {
        let jobs: Vec<Job> = diesel::sql_query(format!(
            "UPDATE background_jobs j SET state = 'running', attempts = j.attempts + 1, locked_by = $2, \
                    locked_until = now() + make_interval(secs => $3), updated_at = now() \
             WHERE j.id = (SELECT id FROM background_jobs WHERE queue = $1 AND {due} \
                           LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind::<Text, _>(queue)
        .bind::<Text, _>(worker)
        .bind::<Integer, _>(lease_secs)
        .load(conn)?;
        if let Some(job) = jobs.into_iter().next() {
            return Ok(Some(job));
        }
    }
    Ok(None)
}

/// First statement of a run's transaction: locks the job's row while it runs and
/// checks the claim is still `worker`'s (false: the lease expired and someone else has
/// it; do not run).
pub fn start(conn: &mut PgConnection, id: i64, worker: &str) -> QueryResult<bool> {
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT id FROM background_jobs WHERE id = $1 AND state = 'running' AND locked_by = $2 FOR UPDATE",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .load(conn)?;
    Ok(!ids.is_empty())
}

/// Last statement of a successful run's transaction: the job is done.
pub fn finish(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM background_jobs WHERE id = $1")
        .bind::<BigInt, _>(id)
        .execute(conn)?;
    Ok(())
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Waits again, to run after the backoff.
    Retry,
    /// Used its attempts: dead, holding the last error.
    Dead,
    /// No longer this worker's (lease expired and claimed again, or cancelled).
    Gone,
}

/// Records a failed run (after its transaction rolled back): back to waiting after
/// `backoff_secs`, or dead when it has used its attempts.
pub fn fail(conn: &mut PgConnection, id: i64, worker: &str, error: &str, backoff_secs: f64) -> QueryResult<Fate> {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let error: String = error.chars().take(2000).collect();
    let rows: Vec<State> = diesel::sql_query(
        "UPDATE background_jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'waiting' END, \
             run_at = CASE WHEN attempts >= max_attempts THEN run_at \
                           ELSE now() + make_interval(secs => $4) END, \
             last_error = $3, locked_by = NULL, locked_until = NULL, updated_at = now() \
         WHERE id = $1 AND state = 'running' AND locked_by = $2 \
         RETURNING state",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .bind::<Text, _>(&error)
    .bind::<diesel::sql_types::Double, _>(backoff_secs)
    .load(conn)
    .or_else(|e| redundant(conn, id, e).map(|_| Vec::new()))?;
    Ok(match rows.first().map(|r| r.state.as_str()) {
        Some("dead") => Fate::Dead,
        Some(_) => Fate::Retry,
        None => Fate::Gone,
    })
}

/// A job going back to waiting collides with a waiting job of the same unique key that
/// arrived meanwhile: this one is redundant and goes.
fn redundant(conn: &mut PgConnection, id: i64, e: diesel::result::Error) -> QueryResult<()> {
    match e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => finish(conn, id),
        e => Err(e),
    }
}

/// Marks a claimed job dead at once (unknown kind, lease expired on its last attempt).
pub fn bury(conn: &mut PgConnection, id: i64, worker: &str, error: &str) -> QueryResult<bool> {
    let n = diesel::sql_query(
        "UPDATE background_jobs SET state = 'dead', last_error = $3, locked_by = NULL, locked_until = NULL, \
                updated_at = now() WHERE id = $1 AND locked_by = $2",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .bind::<Text, _>(error)
    .execute(conn)?;
    Ok(n > 0)
}

/// Gives claimed jobs back without counting the attempt (graceful shutdown of a worker
/// that claimed but did not start them).
pub fn release(conn: &mut PgConnection, id: i64, worker: &str) -> QueryResult<bool> {
    let n = diesel::sql_query(
        "UPDATE background_jobs SET state = 'waiting', attempts = greatest(attempts - 1, 0), \
                locked_by = NULL, locked_until = NULL, updated_at = now() \
         WHERE id = $1 AND state = 'running' AND locked_by = $2",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker)
    .execute(conn)
    .or_else(|e| redundant(conn, id, e).map(|_| 0))?;
    Ok(n > 0)
}

/// Counts of one queue for the admin view and metrics.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct QueueStats {
    #[diesel(sql_type = Text)]
    pub queue: String,
    /// Waiting and due now.
    #[diesel(sql_type = BigInt)]
    pub ready: i64,
    /// Waiting for a later time (scheduled, or backing off).
    #[diesel(sql_type = BigInt)]
    pub scheduled: i64,
    #[diesel(sql_type = BigInt)]
    pub running: i64,
    #[diesel(sql_type = BigInt)]
    pub dead: i64,
    /// Age in seconds of the oldest job that is due and not yet running.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub oldest_ready_age_secs: Option<f64>,
}

pub fn stats(conn: &mut PgConnection) -> QueryResult<Vec<QueueStats>> {
    diesel::sql_query(
        "SELECT queue, \
                count(*) FILTER (WHERE state = 'waiting' AND run_at <= now()) AS ready, \
                count(*) FILTER (WHERE state = 'waiting' AND run_at > now()) AS scheduled, \
                count(*) FILTER (WHERE state = 'running') AS running, \
                count(*) FILTER (WHERE state = 'dead') AS dead, \
                extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'waiting' AND run_at <= now()))::float8 \
                    AS oldest_ready_age_secs \
         FROM background_jobs GROUP BY queue ORDER BY queue",
    )
    .load(conn)
}

/// Jobs in one state, newest change first.
pub fn list(conn: &mut PgConnection, state: &str, limit: i64) -> QueryResult<Vec<Job>> {
    diesel::sql_query(format!(
        "SELECT {JOB_COLUMNS} FROM background_jobs WHERE state = $1 ORDER BY updated_at DESC, id DESC LIMIT $2"
    ))
    .bind::<Text, _>(state)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

pub fn find(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Job>> {
    let rows: Vec<Job> = diesel::sql_query(format!("SELECT {JOB_COLUMNS} FROM background_jobs WHERE id = $1"))
        .bind::<BigInt, _>(id)
        .load(conn)?;
    Ok(rows.into_iter().next())
}

/// A dead job (or a waiting one) runs again now with fresh attempts. `None`: no such
/// job, or it is running.
pub fn retry(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Job>> {
    let rows: Vec<Job> = diesel::sql_query(format!(
        "UPDATE background_jobs SET state = 'waiting', attempts = 0, run_at = now(), updated_at = now() \
         WHERE id = $1 AND state IN ('dead', 'waiting') RETURNING {JOB_COLUMNS}"
    ))
    .bind::<BigInt, _>(id)
    .load(conn)?;
    Ok(rows.into_iter().next())
}

/// Removes a waiting or dead job. `false`: no such job, or it is running.
pub fn cancel(conn: &mut PgConnection, id: i64) -> QueryResult<bool> {
    let n = diesel::sql_query("DELETE FROM background_jobs WHERE id = $1 AND state IN ('dead', 'waiting')")
        .bind::<BigInt, _>(id)
        .execute(conn)?;
    Ok(n > 0)
}

/// Registers (or updates the period of) a schedule; its next run is the start of the
/// next period, aligned to the epoch so every instance agrees.
pub fn register_schedule(
    conn: &mut PgConnection,
    name: &str,
    queue: &str,
    kind: &str,
    every_secs: i32,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO job_schedules (name, queue, kind, every_secs, next_run_at) \
         VALUES ($1, $2, $3, $4, to_timestamp((floor(extract(epoch FROM now()) / $4) + 1) * $4)) \
         ON CONFLICT (name) DO UPDATE SET queue = EXCLUDED.queue, kind = EXCLUDED.kind, \
             every_secs = EXCLUDED.every_secs, \
             next_run_at = CASE WHEN job_schedules.every_secs = EXCLUDED.every_secs \
                                THEN job_schedules.next_run_at ELSE EXCLUDED.next_run_at END",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(queue)
    .bind::<Text, _>(kind)
    .bind::<Integer, _>(every_secs)
    .execute(conn)?;
    Ok(())
}

/// Fires every due schedule once: moves its next run past now (periods missed while no
/// worker ran are skipped, not replayed) and enqueues that period's job, in one
/// transaction. Of several instances calling this at once, one fires each period: the
/// update's condition is re-checked on the row another instance has just moved.
pub fn fire_due_schedules(conn: &mut PgConnection) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        queue: String,
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Timestamptz)]
        period: DateTime<Utc>,
    }
    conn.transaction(|c| {
        let due: Vec<Due> = diesel::sql_query(
            "UPDATE job_schedules s SET last_run_at = s.next_run_at, \
                 next_run_at = s.next_run_at + make_interval(secs => s.every_secs * \
                     (floor(extract(epoch FROM now() - s.next_run_at) / s.every_secs) + 1)) \
             FROM (SELECT name FROM job_schedules WHERE next_run_at <= now() ORDER BY name FOR UPDATE) d \
             WHERE s.name = d.name AND s.next_run_at <= now() \
             RETURNING s.name, s.queue, s.kind, s.last_run_at AS period",
        )
        .load(c)?;
        for d in &due {
            let key = format!("schedule:{}:{}", d.name, d.period.timestamp());
            let job = NewJob::new(&d.queue, &d.kind, serde_json::json!({"period": d.period})).unique(key);
            enqueue(c, &job)?;
        }
        Ok(due.len())
    })
}
