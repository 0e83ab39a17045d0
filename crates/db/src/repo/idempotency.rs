//! `Idempotency-Key` replay store. The key row is written in the same transaction as the
//! effect: a concurrent retry blocks on the unique key until the first attempt commits
//! (then replays it) or rolls back (then runs itself).

use diesel::prelude::*;
use serde_json::Value;

use crate::schema::idempotency_keys as ik;
use crate::QueryResult;

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// Outcome of claiming a key.
#[derive(Debug)]
pub enum Claim {
    /// First use: run the request, then call [`complete`].
    Fresh,
    /// Seen before with the same request: answer with the stored response.
    Replay {
        status: u16,
        body: Value,
        location: Option<String>,
    },
    /// Seen before with a different request.
    Mismatch,
}

pub fn claim(conn: &mut PgConnection, owner: &str, key: &str, request_hash: &[u8]) -> QueryResult<Claim> {
    // Expired keys are forgotten, so the key can be used again.
    diesel::delete(
        ik::table
            .filter(ik::owner.eq(owner))
            .filter(ik::key.eq(key))
            .filter(ik::created_at.lt(chrono::Utc::now() - chrono::Duration::hours(RETENTION_HOURS))),
    )
    .execute(conn)?;
    let inserted = diesel::insert_into(ik::table)
        .values((
            ik::owner.eq(owner),
            ik::key.eq(key),
            ik::request_hash.eq(request_hash),
            ik::status_code.eq(0),
            ik::response_body.eq(Value::Null),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let (hash, status, body, location): (Vec<u8>, i32, Value, Option<String>) = ik::table
        .filter(ik::owner.eq(owner))
        .filter(ik::key.eq(key))
        .select((ik::request_hash, ik::status_code, ik::response_body, ik::location))
        .first(conn)?;
    if hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay {
        status: u16::try_from(status).unwrap_or(200),
        body,
        location,
    })
}

/// Stores the response of a fresh claim.
pub fn complete(
    conn: &mut PgConnection,
    owner: &str,
    key: &str,
    status: u16,
    body: &Value,
    location: Option<&str>,
) -> QueryResult<()> {
    diesel::update(ik::table.filter(ik::owner.eq(owner)).filter(ik::key.eq(key)))
        .set((
            ik::status_code.eq(i32::from(status)),
            ik::response_body.eq(body),
            ik::location.eq(location),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes keys past retention; returns how many.
pub fn purge_expired(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::delete(ik::table.filter(ik::created_at.lt(chrono::Utc::now() - chrono::Duration::hours(RETENTION_HOURS))))
        .execute(conn)
}
