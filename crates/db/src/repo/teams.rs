//! Teams: a tree (company -> region/department -> team).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use serde::Serialize;
use uuid::Uuid;

use crate::schema::{teams, users};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    /// The region value records carry (`region`) that this team covers.
    pub region: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = teams)]
pub struct NewTeam {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub parent_id: Option<Uuid>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = teams)]
pub struct TeamChanges {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub parent_id: Option<Option<Uuid>>,
    pub region: Option<Option<String>>,
}

/// Every team, parents before children (by name within a level is left to clients).
pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<TeamRow>> {
    teams::table
        .select(TeamRow::as_select())
        .order((teams::name, teams::id))
        .load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<TeamRow>> {
    teams::table
        .find(id)
        .select(TeamRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut PgConnection, new: &NewTeam) -> QueryResult<TeamRow> {
    diesel::insert_into(teams::table)
        .values(new)
        .returning(TeamRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &TeamChanges) -> QueryResult<TeamRow> {
    diesel::update(teams::table.find(id))
        .set((
            changes,
            teams::version.eq(teams::version + 1),
            teams::updated_at.eq(diesel::dsl::now),
        ))
        .returning(TeamRow::as_returning())
        .get_result(conn)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(teams::table.find(id)).execute(conn)
}

/// Whether a team has child teams or members (then it cannot be deleted).
pub fn in_use(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    let children: i64 = teams::table.filter(teams::parent_id.eq(id)).count().get_result(conn)?;
    let members: i64 = users::table.filter(users::team_id.eq(id)).count().get_result(conn)?;
    Ok(children > 0 || members > 0)
}

/// The team and every team below it.
pub fn subtree(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let rows: Vec<Id> = diesel::sql_query(
        "WITH RECURSIVE sub(id, depth) AS ( \
           SELECT id, 0 FROM teams WHERE id = $1 \
           UNION ALL \
           SELECT t.id, s.depth + 1 FROM teams t JOIN sub s ON t.parent_id = s.id WHERE s.depth < 50) \
         SELECT DISTINCT id FROM sub",
    )
    .bind::<SqlUuid, _>(id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
