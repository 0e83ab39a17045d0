//! Authentication state: refresh-token families, login throttling, principal loading.

use chrono::{DateTime, Duration, Utc};
use crm_domain::access::{PermissionSet, Principal};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Interval, Nullable, Text, Timestamptz};
use uuid::Uuid;

use super::{roles, teams, users};
use crate::schema::{refresh_tokens as rt, user_roles};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rt)]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub fn insert_refresh_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: &[u8],
    ttl: Duration,
) -> QueryResult<()> {
    diesel::insert_into(rt::table)
        .values((
            rt::id.eq(Uuid::now_v7()),
            rt::user_id.eq(user_id),
            rt::family_id.eq(family_id),
            rt::token_hash.eq(token_hash),
            rt::expires_at.eq(Utc::now() + ttl),
        ))
        .execute(conn)?;
    Ok(())
}

/// Finds a refresh token by hash and locks it (rotation must not race).
pub fn find_refresh_token(conn: &mut PgConnection, hash: &[u8]) -> QueryResult<Option<RefreshTokenRow>> {
    rt::table
        .filter(rt::token_hash.eq(hash))
        .select(RefreshTokenRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn mark_used(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(rt::table.find(id))
        .set(rt::used_at.eq(diesel::dsl::now))
        .execute(conn)?;
    Ok(())
}

/// Deletes the token that replaced one rotated at `rotated_at` (created in the same
/// transaction) if it is still unused and live: it never reached the client. Deleted,
/// not revoked, because a revoked token ends the session. Returns 0 or 1.
pub fn discard_unused_successor(
    conn: &mut PgConnection,
    family_id: Uuid,
    rotated_at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(
        rt::table
            .filter(rt::family_id.eq(family_id))
            .filter(rt::created_at.eq(rotated_at))
            .filter(rt::used_at.is_null())
            .filter(rt::revoked_at.is_null()),
    )
    .execute(conn)
}

/// Revokes every live token of a family (logout, or re-use of a rotated token).
pub fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        rt::table
            .filter(rt::family_id.eq(family_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
}

/// Revokes every session of a user (disabled user, password change).
pub fn revoke_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        rt::table
            .filter(rt::user_id.eq(user_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
}

/// Families of `user_id` revoked within `window` (access tokens of those sessions must
/// stop working even before they expire).
pub fn revoked_families(conn: &mut PgConnection, user_id: Uuid, window: Duration) -> QueryResult<Vec<Uuid>> {
    rt::table
        .filter(rt::user_id.eq(user_id))
        .filter(rt::revoked_at.gt(Utc::now() - window))
        .select(rt::family_id)
        .distinct()
        .load(conn)
}

/// Throttling rule for one kind of key.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleRule {
    pub max_failures: i32,
    pub window: Duration,
    pub lockout: Duration,
}

/// The latest `locked_until` among `keys` that is still in the future.
pub fn locked_until(conn: &mut PgConnection, keys: &[String]) -> QueryResult<Option<DateTime<Utc>>> {
    use crate::schema::login_throttle as lt;
    lt::table
        .filter(lt::key.eq_any(keys))
        .filter(lt::locked_until.gt(Utc::now()))
        .select(diesel::dsl::max(lt::locked_until))
        .first::<Option<DateTime<Utc>>>(conn)
}

/// Counts a failed attempt for `key`; locks the key when the rule's limit is reached.
pub fn record_failure(conn: &mut PgConnection, key: &str, rule: ThrottleRule) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO login_throttle AS t (key, failures, window_started_at, locked_until) \
         VALUES ($1, 1, now(), CASE WHEN 1 >= $2 THEN now() + $4 END) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN t.window_started_at < now() - $3 THEN 1 ELSE t.failures + 1 END, \
           window_started_at = CASE WHEN t.window_started_at < now() - $3 THEN now() ELSE t.window_started_at END, \
           locked_until = CASE \
             WHEN (CASE WHEN t.window_started_at < now() - $3 THEN 1 ELSE t.failures + 1 END) >= $2 \
               THEN now() + $4 \
             ELSE t.locked_until END",
    )
    .bind::<Text, _>(key)
    .bind::<Int4, _>(rule.max_failures)
    .bind::<Interval, _>(to_interval(rule.window))
    .bind::<Interval, _>(to_interval(rule.lockout))
    .execute(conn)?;
    Ok(())
}

fn to_interval(d: Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(d.num_microseconds().unwrap_or(i64::MAX))
}

/// Clears the failure count of `key` after a successful login.
pub fn clear_failures(conn: &mut PgConnection, key: &str) -> QueryResult<()> {
    use crate::schema::login_throttle as lt;
    diesel::delete(lt::table.filter(lt::key.eq(key))).execute(conn)?;
    Ok(())
}

/// Deletes throttle rows whose window and lock are both over.
pub fn purge_throttle(conn: &mut PgConnection, older_than: Duration) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM login_throttle WHERE window_started_at < $1 \
         AND (locked_until IS NULL OR locked_until < now())",
    )
    .bind::<Nullable<Timestamptz>, _>(Some(Utc::now() - older_than))
    .execute(conn)
}

/// Everything authorization needs about a user, loaded in a handful of indexed queries
/// and then cached by the HTTP layer.
#[derive(Debug, Clone)]
pub struct LoadedPrincipal {
    pub principal: Principal,
    pub is_active: bool,
    pub revoked_sessions: Vec<Uuid>,
}

/// Loads a user's principal (roles, permissions, team subtree). `role_ids` restricts
/// the roles used (API keys act with exactly one role).
pub fn load_principal(
    conn: &mut PgConnection,
    user_id: Uuid,
    role_ids: Option<&[Uuid]>,
    revocation_window: Duration,
) -> QueryResult<Option<LoadedPrincipal>> {
    let Some(user) = users::find(conn, user_id)? else {
        return Ok(None);
    };
    let role_ids: Vec<Uuid> = match role_ids {
        Some(ids) => ids.to_vec(),
        None => user_roles::table
            .filter(user_roles::user_id.eq(user_id))
            .select(user_roles::role_id)
            .load(conn)?,
    };
    let role_rows = roles::find_by_ids(conn, &role_ids)?;
    let grants = roles::grants(conn, &role_ids)?;
    let team_subtree = match user.team_id {
        Some(t) => teams::subtree(conn, t)?,
        None => Vec::new(),
    };
    let revoked_sessions = revoked_families(conn, user_id, revocation_window)?;
    let field_access = super::fields::effective_access(conn, &role_ids)?;
    let mut role_keys: Vec<String> = role_rows.into_iter().map(|r| r.key).collect();
    role_keys.sort();
    Ok(Some(LoadedPrincipal {
        principal: Principal {
            user_id,
            email: user.email,
            name: user.name,
            team_id: user.team_id,
            team_subtree,
            role_keys,
            permissions: PermissionSet::from_grants(grants.into_iter().map(|(_, g)| g)),
            api_key_id: None,
            field_access,
        },
        is_active: user.is_active,
        revoked_sessions,
    }))
}
