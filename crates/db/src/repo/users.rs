//! Users and their role assignments.

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Uuid as SqlUuid};
use serde::Serialize;
use uuid::Uuid;

use crate::schema::{roles, user_roles, users};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// Never serialised: rows are mapped to DTOs, and this guards against mistakes.
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub phone: Option<String>,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub is_active: bool,
    pub is_service: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub phone: Option<String>,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub is_active: bool,
    pub is_service: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub team_id: Option<Option<Uuid>>,
    pub manager_id: Option<Option<Uuid>>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub team_id: Option<Uuid>,
    pub is_active: Option<bool>,
    pub role: Option<String>,
    pub q: Option<String>,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("name", "u.name", SortType::Text),
    SortColumn::new("email", "u.email", SortType::Text),
    SortColumn::new("created_at", "u.created_at", SortType::Timestamp),
];
pub const DEFAULT_SORT: &str = "name";

/// Users visible under a `users:read` scope. Users have no owner: `own` is the user
/// themself, team scopes are the users of those teams.
pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &UserFilter,
    spec: &ListSpec,
) -> QueryResult<Page<UserRow>> {
    let mut sql = Sql::new("SELECT u.* FROM users u WHERE TRUE");
    match scope {
        ScopeFilter::All => {}
        ScopeFilter::Owner(me) => {
            sql.push(" AND u.id = ");
            sql.bind::<SqlUuid, _>(*me);
        }
        ScopeFilter::OwnerOrTeams(me, teams) => {
            sql.push(" AND (u.id = ");
            sql.bind::<SqlUuid, _>(*me);
            sql.push(" OR u.team_id = ANY(");
            sql.bind::<diesel::sql_types::Array<SqlUuid>, _>(teams.clone());
            sql.push("))");
        }
    }
    sql.eq_opt::<SqlUuid, _>("u.team_id", filter.team_id)
        .eq_opt::<Bool, _>("u.is_active", filter.is_active)
        .contains("(u.name || ' ' || u.email)", filter.q.as_deref());
    if let Some(role) = &filter.role {
        sql.push(" AND EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id AND r.key = ");
        sql.bind::<diesel::sql_types::Text, _>(role.clone());
        sql.push(")");
    }
    spec.load(conn, sql, "u.id", |r: &UserRow| r.id)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn find_by_email(conn: &mut PgConnection, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut PgConnection, new: &NewUser) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &UserChanges) -> QueryResult<UserRow> {
    diesel::update(users::table.find(id))
        .set((
            changes,
            users::version.eq(users::version + 1),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
}

pub fn touch_login(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(diesel::dsl::now))
        .execute(conn)?;
    Ok(())
}

/// Role keys of each of `ids`, as (user id, role key).
pub fn role_keys(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, String)>> {
    user_roles::table
        .inner_join(roles::table)
        .filter(user_roles::user_id.eq_any(ids))
        .select((user_roles::user_id, roles::key))
        .order((user_roles::user_id, roles::key))
        .load(conn)
}

/// Replaces a user's roles.
pub fn set_roles(conn: &mut PgConnection, user_id: Uuid, role_ids: &[Uuid]) -> QueryResult<()> {
    diesel::delete(user_roles::table.filter(user_roles::user_id.eq(user_id))).execute(conn)?;
    let rows: Vec<_> = role_ids
        .iter()
        .map(|r| (user_roles::user_id.eq(user_id), user_roles::role_id.eq(*r)))
        .collect();
    diesel::insert_into(user_roles::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// Whether `candidate` is `user` or reports (transitively) to `user`: a manager chain
/// that would loop back.
pub fn manages_transitively(conn: &mut PgConnection, user: Uuid, candidate: Uuid) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Bool)]
        found: bool,
    }
    let r: Found = diesel::sql_query(
        "WITH RECURSIVE chain(id, manager_id, depth) AS ( \
           SELECT id, manager_id, 0 FROM users WHERE id = $1 \
           UNION ALL \
           SELECT u.id, u.manager_id, c.depth + 1 FROM users u JOIN chain c ON u.id = c.manager_id \
           WHERE c.depth < 100) \
         SELECT EXISTS (SELECT 1 FROM chain WHERE id = $2) AS found",
    )
    .bind::<SqlUuid, _>(candidate)
    .bind::<SqlUuid, _>(user)
    .get_result(conn)?;
    Ok(r.found)
}
