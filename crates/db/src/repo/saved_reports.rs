//! Saved reports (a report and its parameters) and dashboards (ordered saved reports
//! under one period), owned by a user (or built in), shared with roles or teams.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{dashboards, saved_reports};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = saved_reports)]
pub struct SavedReportRow {
    pub id: Uuid,
    /// None: built in.
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub report: String,
    pub params: Value,
    pub shared_with_roles: Vec<String>,
    pub shared_with_teams: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = saved_reports)]
pub struct NewSavedReport {
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub report: String,
    pub params: Value,
    pub shared_with_roles: Vec<String>,
    pub shared_with_teams: Vec<Uuid>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = saved_reports)]
pub struct SavedReportChanges {
    pub name: Option<String>,
    pub params: Option<Value>,
    pub shared_with_roles: Option<Vec<String>>,
    pub shared_with_teams: Option<Vec<Uuid>>,
}

/// Who is looking: their own reports and those shared with one of their roles or their
/// team; everyone's for `all`.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user_id: Uuid,
    pub role_keys: Vec<String>,
    pub team_id: Option<Uuid>,
    pub all: bool,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("name", "r.name", SortType::Text),
    SortColumn::new("created_at", "r.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "r.updated_at", SortType::Timestamp),
];

fn visible(sql: &mut Sql<'_>, v: &Viewer) {
    if v.all {
        return;
    }
    sql.push(" AND (r.owner_id = ");
    sql.bind::<SqlUuid, _>(v.user_id);
    sql.push(" OR r.shared_with_roles && ");
    sql.bind::<Array<Text>, _>(v.role_keys.clone());
    if let Some(team) = v.team_id {
        sql.push(" OR ");
        sql.bind::<SqlUuid, _>(team);
        sql.push(" = ANY(r.shared_with_teams)");
    }
    sql.push(")");
}

pub fn insert(conn: &mut PgConnection, new: &NewSavedReport) -> QueryResult<SavedReportRow> {
    diesel::insert_into(saved_reports::table)
        .values(new)
        .returning(SavedReportRow::as_returning())
        .get_result(conn)
}

/// A saved report the viewer may see (locked for update when `lock`).
pub fn find(conn: &mut PgConnection, v: &Viewer, id: Uuid, lock: bool) -> QueryResult<Option<SavedReportRow>> {
    let mut sql = Sql::new("SELECT r.* FROM saved_reports r WHERE r.id = ");
    sql.bind::<SqlUuid, _>(id);
    visible(&mut sql, v);
    if lock {
        sql.push(" FOR UPDATE");
    }
    Ok(sql.into_query().load::<SavedReportRow>(conn)?.into_iter().next())
}

/// Saved reports the viewer may see, optionally of one report.
pub fn list(
    conn: &mut PgConnection,
    v: &Viewer,
    report: Option<String>,
    spec: &ListSpec,
) -> QueryResult<Page<SavedReportRow>> {
    let mut sql = Sql::new("SELECT r.* FROM saved_reports r WHERE TRUE");
    visible(&mut sql, v);
    sql.eq_opt::<Text, _>("r.report", report);
    spec.load(conn, sql, "r.id", |r: &SavedReportRow| r.id)
}

pub fn update(conn: &mut PgConnection, id: Uuid, ch: &SavedReportChanges) -> QueryResult<SavedReportRow> {
    diesel::update(saved_reports::table.find(id))
        .set((
            ch,
            saved_reports::version.eq(saved_reports::version + 1),
            saved_reports::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SavedReportRow::as_returning())
        .get_result(conn)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(saved_reports::table.find(id)).execute(conn)
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = dashboards)]
pub struct DashboardRow {
    pub id: Uuid,
    /// None: built in.
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub period: String,
    pub granularity: String,
    pub widgets: Value,
    pub shared_with_roles: Vec<String>,
    pub shared_with_teams: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = dashboards)]
pub struct NewDashboard {
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub period: String,
    pub granularity: String,
    pub widgets: Value,
    pub shared_with_roles: Vec<String>,
    pub shared_with_teams: Vec<Uuid>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = dashboards)]
pub struct DashboardChanges {
    pub name: Option<String>,
    pub period: Option<String>,
    pub granularity: Option<String>,
    pub widgets: Option<Value>,
    pub shared_with_roles: Option<Vec<String>>,
    pub shared_with_teams: Option<Vec<Uuid>>,
}

pub fn insert_dashboard(conn: &mut PgConnection, new: &NewDashboard) -> QueryResult<DashboardRow> {
    diesel::insert_into(dashboards::table)
        .values(new)
        .returning(DashboardRow::as_returning())
        .get_result(conn)
}

/// A dashboard the viewer may see (locked for update when `lock`).
pub fn find_dashboard(conn: &mut PgConnection, v: &Viewer, id: Uuid, lock: bool) -> QueryResult<Option<DashboardRow>> {
    let mut sql = Sql::new("SELECT r.* FROM dashboards r WHERE r.id = ");
    sql.bind::<SqlUuid, _>(id);
    visible(&mut sql, v);
    if lock {
        sql.push(" FOR UPDATE");
    }
    Ok(sql.into_query().load::<DashboardRow>(conn)?.into_iter().next())
}

/// Dashboards the viewer may see.
pub fn list_dashboards(conn: &mut PgConnection, v: &Viewer, spec: &ListSpec) -> QueryResult<Page<DashboardRow>> {
    let mut sql = Sql::new("SELECT r.* FROM dashboards r WHERE TRUE");
    visible(&mut sql, v);
    spec.load(conn, sql, "r.id", |r: &DashboardRow| r.id)
}

pub fn update_dashboard(conn: &mut PgConnection, id: Uuid, ch: &DashboardChanges) -> QueryResult<DashboardRow> {
    diesel::update(dashboards::table.find(id))
        .set((
            ch,
            dashboards::version.eq(dashboards::version + 1),
            dashboards::updated_at.eq(diesel::dsl::now),
        ))
        .returning(DashboardRow::as_returning())
        .get_result(conn)
}

pub fn delete_dashboard(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(dashboards::table.find(id)).execute(conn)
}
