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
    /// The lock after `max_failures`; each further failure doubles it (a progressive
    /// delay), up to `max_lockout`.
    pub lockout: Duration,
    pub max_lockout: Duration,
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

/// Each of `keys` still locked, with its `locked_until`.
pub fn locks(conn: &mut PgConnection, keys: &[String]) -> QueryResult<Vec<(String, DateTime<Utc>)>> {
    use crate::schema::login_throttle as lt;
    let rows: Vec<(String, Option<DateTime<Utc>>)> = lt::table
        .filter(lt::key.eq_any(keys))
        .filter(lt::locked_until.gt(Utc::now()))
        .select((lt::key, lt::locked_until))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(k, t)| Some((k, t?))).collect())
}

#[derive(QueryableByName)]
struct FailureOutcome {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<DateTime<Utc>>,
}

/// Counts a failed attempt for `key`. At the rule's limit the key is locked for the
/// rule's lockout, doubled for every failure beyond it (capped). Returns the new lock's
/// end when this failure locked the key.
pub fn record_failure(conn: &mut PgConnection, key: &str, rule: ThrottleRule) -> QueryResult<Option<DateTime<Utc>>> {
    let rows: Vec<FailureOutcome> = diesel::sql_query(
        "WITH up AS ( \
           INSERT INTO login_throttle AS t (key, failures, window_started_at, locked_until) \
           VALUES ($1, 1, now(), CASE WHEN 1 >= $2 THEN now() + $4 END) \
           ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN t.window_started_at < now() - $3 THEN 1 ELSE t.failures + 1 END, \
             window_started_at = CASE WHEN t.window_started_at < now() - $3 THEN now() ELSE t.window_started_at END, \
             locked_until = CASE \
               WHEN (CASE WHEN t.window_started_at < now() - $3 THEN 1 ELSE t.failures + 1 END) >= $2 \
                 THEN now() + least($5, $4 * power(2, least(20, \
                   (CASE WHEN t.window_started_at < now() - $3 THEN 1 ELSE t.failures + 1 END) - $2))::int) \
               ELSE t.locked_until END \
           RETURNING t.failures, t.locked_until) \
         SELECT CASE WHEN failures >= $2 THEN locked_until END AS locked_until FROM up",
    )
    .bind::<Text, _>(key)
    .bind::<Int4, _>(rule.max_failures)
    .bind::<Interval, _>(to_interval(rule.window))
    .bind::<Interval, _>(to_interval(rule.lockout))
    .bind::<Interval, _>(to_interval(rule.max_lockout.max(rule.lockout)))
    .load(conn)?;
    Ok(rows.into_iter().next().and_then(|r| r.locked_until))
}

/// Whether the user logged in successfully from `address` within `within`.
pub fn known_address(conn: &mut PgConnection, user_id: Uuid, address: &str, within: Duration) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = Int4)]
        n: i32,
    }
    let rows: Vec<Hit> = diesel::sql_query(
        "SELECT count(*)::int4 AS n FROM login_known_addresses WHERE user_id = $1 AND address = $2 AND last_success_at > $3",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<Text, _>(address)
    .bind::<Timestamptz, _>(Utc::now() - within)
    .load(conn)?;
    Ok(rows.first().is_some_and(|h| h.n > 0))
}

/// What failed on an account since its last successful login.
#[derive(Debug, Clone, Default, QueryableByName)]
pub struct LoginSecurity {
    #[diesel(sql_type = Int4)]
    pub failed_since_login: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_failed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_failed_from: Option<String>,
}

/// Counts a failed login of an existing account.
pub fn note_failed_login(conn: &mut PgConnection, user_id: Uuid, address: &str) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO login_security AS s (user_id, failed_since_login, last_failed_at, last_failed_from) \
         VALUES ($1, 1, now(), $2) \
         ON CONFLICT (user_id) DO UPDATE SET failed_since_login = s.failed_since_login + 1, \
           last_failed_at = now(), last_failed_from = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<Text, _>(address)
    .execute(conn)?;
    Ok(())
}

/// The account's failures since its last login.
pub fn login_security(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<LoginSecurity> {
    let rows: Vec<LoginSecurity> = diesel::sql_query(
        "SELECT failed_since_login, last_failed_at, last_failed_from FROM login_security WHERE user_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .load(conn)?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// A successful login from `address`: the address becomes known, and the failures
/// since the previous login are returned (to tell the user) and reset.
pub fn note_login(conn: &mut PgConnection, user_id: Uuid, address: &str) -> QueryResult<LoginSecurity> {
    let before = login_security(conn, user_id)?;
    diesel::sql_query(
        "INSERT INTO login_known_addresses (user_id, address, last_success_at) VALUES ($1, $2, now()) \
         ON CONFLICT (user_id, address) DO UPDATE SET last_success_at = now()",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<Text, _>(address)
    .execute(conn)?;
    diesel::sql_query("UPDATE login_security SET failed_since_login = 0 WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .execute(conn)?;
    Ok(before)
}

/// Clears every throttle of an account (after an administrator sets a new password).
pub fn clear_account_throttles(conn: &mut PgConnection, email: &str) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM login_throttle WHERE key = $1 OR key LIKE $2")
        .bind::<Text, _>(format!("account:{email}"))
        .bind::<Text, _>(format!(
            "pair:{}|%",
            email.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        ))
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
    // A formula over a restricted field would reveal it: formulas get their inputs'
    // restrictions (only worth a query when something is restricted).
    let formulas = if field_access.is_empty() {
        Vec::new()
    } else {
        super::fields::formula_inputs(conn)?
    };
    let mut role_keys: Vec<String> = role_rows.into_iter().map(|r| r.key).collect();
    role_keys.sort();
    let mut principal = Principal {
        user_id,
        email: user.email,
        name: user.name,
        team_id: user.team_id,
        team_subtree,
        role_keys,
        permissions: PermissionSet::from_grants(grants.into_iter().map(|(_, g)| g)),
        api_key_id: None,
        field_access,
    };
    principal.restrict_formulas(&formulas);
    Ok(Some(LoadedPrincipal {
        principal,
        is_active: user.is_active,
        revoked_sessions,
    }))
}
