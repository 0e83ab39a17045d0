//! API keys for integrations.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::schema::{api_keys, users};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub role_id: Uuid,
    pub prefix: String,
    #[serde(skip)]
    pub key_hash: Vec<u8>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub role_id: Uuid,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub created_by: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
}

pub fn insert(conn: &mut PgConnection, new: &NewApiKey) -> QueryResult<ApiKeyRow> {
    diesel::insert_into(api_keys::table)
        .values(new)
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .select(ApiKeyRow::as_select())
        .order(api_keys::created_at.desc())
        .load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// A usable key by prefix: not revoked, not expired, service user active.
pub fn find_usable_by_prefix(conn: &mut PgConnection, prefix: &str) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .inner_join(users::table.on(users::id.eq(api_keys::user_id)))
        .filter(api_keys::prefix.eq(prefix))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::expires_at.is_null().or(api_keys::expires_at.gt(Utc::now())))
        .filter(users::is_active.eq(true))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

pub fn revoke(conn: &mut PgConnection, id: Uuid) -> QueryResult<ApiKeyRow> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::revoked_at.eq(diesel::dsl::now))
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
}

pub fn touch(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(diesel::dsl::now))
        .execute(conn)?;
    Ok(())
}
