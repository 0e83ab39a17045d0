//! Roles and their permission grants.

use chrono::{DateTime, Utc};
use crm_domain::access::{Action, Grant, Scope};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::schema::{api_keys, role_permissions, roles, user_roles};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = roles)]
pub struct RoleRow {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = roles)]
pub struct NewRole {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub builtin: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = roles)]
pub struct RoleChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<RoleRow>> {
    roles::table.select(RoleRow::as_select()).order(roles::key).load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<RoleRow>> {
    roles::table
        .find(id)
        .select(RoleRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<RoleRow>> {
    roles::table
        .find(id)
        .select(RoleRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn find_by_keys(conn: &mut PgConnection, keys: &[String]) -> QueryResult<Vec<RoleRow>> {
    roles::table
        .filter(roles::key.eq_any(keys))
        .select(RoleRow::as_select())
        .load(conn)
}

pub fn find_by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<RoleRow>> {
    roles::table
        .filter(roles::id.eq_any(ids))
        .select(RoleRow::as_select())
        .load(conn)
}

/// Grants of each role in `ids`, as (role id, grant). Unknown stored values are skipped.
pub fn grants(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, Grant)>> {
    let rows: Vec<(Uuid, String, String, String)> = role_permissions::table
        .filter(role_permissions::role_id.eq_any(ids))
        .select((
            role_permissions::role_id,
            role_permissions::resource,
            role_permissions::action,
            role_permissions::scope,
        ))
        .order((
            role_permissions::role_id,
            role_permissions::resource,
            role_permissions::action,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(role, resource, action, scope)| {
            let action: Action = action.parse().ok()?;
            let scope: Scope = scope.parse().ok()?;
            Some((
                role,
                Grant {
                    resource,
                    action,
                    scope,
                },
            ))
        })
        .collect())
}

pub fn insert(conn: &mut PgConnection, new: &NewRole) -> QueryResult<RoleRow> {
    diesel::insert_into(roles::table)
        .values(new)
        .returning(RoleRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &RoleChanges) -> QueryResult<RoleRow> {
    diesel::update(roles::table.find(id))
        .set((
            changes,
            roles::version.eq(roles::version + 1),
            roles::updated_at.eq(diesel::dsl::now),
        ))
        .returning(RoleRow::as_returning())
        .get_result(conn)
}

/// Replaces a role's grants.
pub fn set_grants(conn: &mut PgConnection, role_id: Uuid, grants: &[Grant]) -> QueryResult<()> {
    diesel::delete(role_permissions::table.filter(role_permissions::role_id.eq(role_id))).execute(conn)?;
    let rows: Vec<_> = grants
        .iter()
        .map(|g| {
            (
                role_permissions::role_id.eq(role_id),
                role_permissions::resource.eq(g.resource.clone()),
                role_permissions::action.eq(g.action.as_str()),
                role_permissions::scope.eq(g.scope.as_str()),
            )
        })
        .collect();
    diesel::insert_into(role_permissions::table)
        .values(rows)
        .execute(conn)?;
    Ok(())
}

/// Whether any user or API key still uses the role.
pub fn in_use(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    let users: i64 = user_roles::table
        .filter(user_roles::role_id.eq(id))
        .count()
        .get_result(conn)?;
    let keys: i64 = api_keys::table
        .filter(api_keys::role_id.eq(id))
        .filter(api_keys::revoked_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(users > 0 || keys > 0)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    // Revoked API keys keep their role reference for the record; remove the role only
    // when nothing refers to it.
    diesel::delete(roles::table.find(id)).execute(conn)
}
