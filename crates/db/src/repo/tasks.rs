//! Tasks (to-dos).

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use serde::Serialize;
use uuid::Uuid;

use super::accounts::Liveness;
use crate::schema::tasks;
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = tasks)]
pub struct TaskRow {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub reminder_at: Option<DateTime<Utc>>,
    pub priority: String,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub related_type: Option<String>,
    pub related_id: Option<Uuid>,
    pub origin: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tasks)]
pub struct NewTask {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub reminder_at: Option<DateTime<Utc>>,
    pub priority: String,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status: String,
    pub related_type: Option<String>,
    pub related_id: Option<Uuid>,
    pub origin: String,
    pub created_by: Option<Uuid>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = tasks)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub due_at: Option<Option<DateTime<Utc>>>,
    pub reminder_at: Option<Option<DateTime<Utc>>>,
    pub priority: Option<String>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Option<Uuid>>,
    pub status: Option<String>,
    pub completed_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub statuses: Option<Vec<String>>,
    pub priority: Option<String>,
    pub related_type: Option<String>,
    pub related_id: Option<Uuid>,
    pub due_after: Option<DateTime<Utc>>,
    pub due_before: Option<DateTime<Utc>>,
    pub q: Option<String>,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::nullable(
        "due_at",
        "coalesce(t.due_at, '9999-12-31T00:00:00Z'::timestamptz)",
        SortType::Timestamp,
        "9999-12-31T00:00:00Z",
    ),
    SortColumn::new("created_at", "t.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "t.updated_at", SortType::Timestamp),
];
pub const DEFAULT_SORT: &str = "due_at";

fn push_filter(sql: &mut Sql<'_>, f: &TaskFilter) {
    sql.eq_opt::<SqlUuid, _>("t.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("t.team_id", f.team_id)
        .eq_opt::<Text, _>("t.priority", f.priority.clone())
        .eq_opt::<Text, _>("t.related_type", f.related_type.clone())
        .eq_opt::<SqlUuid, _>("t.related_id", f.related_id)
        .cmp_ts("t.due_at", ">=", f.due_after)
        .cmp_ts("t.due_at", "<", f.due_before)
        .contains("(t.title || ' ' || coalesce(t.description, ''))", f.q.as_deref());
    if let Some(st) = &f.statuses {
        sql.push(" AND t.status = ANY(");
        sql.bind::<Array<Text>, _>(st.clone());
        sql.push(")");
    }
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &TaskFilter,
    spec: &ListSpec,
) -> QueryResult<Page<TaskRow>> {
    let mut sql = Sql::new("SELECT t.* FROM tasks t WHERE t.deleted_at IS NULL");
    sql.scope("t", scope);
    push_filter(&mut sql, filter);
    spec.load(conn, sql, "t.id", |r: &TaskRow| r.id)
}

pub fn find(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<TaskRow>> {
    super::soft_delete::find_in(conn, "tasks", scope, id, liveness, lock)
}

pub fn insert(conn: &mut PgConnection, new: &NewTask) -> QueryResult<TaskRow> {
    diesel::insert_into(tasks::table)
        .values(new)
        .returning(TaskRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &TaskChanges) -> QueryResult<TaskRow> {
    diesel::update(tasks::table.find(id))
        .set((
            changes,
            tasks::version.eq(tasks::version + 1),
            tasks::updated_at.eq(diesel::dsl::now),
        ))
        .returning(TaskRow::as_returning())
        .get_result(conn)
}

/// Open tasks tied to an account, its contacts or its deals (for the 360 view).
pub fn open_for_account(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    account_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<TaskRow>> {
    let mut sql = Sql::new("SELECT t.* FROM tasks t WHERE t.deleted_at IS NULL AND t.status = 'open' AND ((t.related_type = 'account' AND t.related_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push(") OR (t.related_type = 'contact' AND t.related_id IN (SELECT c.id FROM contacts c WHERE c.account_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push(")) OR (t.related_type = 'opportunity' AND t.related_id IN (SELECT o.id FROM opportunities o WHERE o.account_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push(")))");
    sql.scope("t", scope);
    sql.push(" ORDER BY coalesce(t.due_at, 'infinity'::timestamptz), t.id LIMIT ");
    sql.bind::<diesel::sql_types::BigInt, _>(limit);
    sql.into_query().load(conn)
}
