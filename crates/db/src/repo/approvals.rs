//! Approval definitions, instances, tasks and history, and approver lookups.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{approval_definitions, approval_history, approval_instances, approval_tasks};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = approval_definitions)]
pub struct DefinitionRow {
    pub id: Uuid,
    pub name: String,
    pub object_type: String,
    pub condition: Option<Value>,
    pub priority: i32,
    pub steps: Value,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = approval_definitions)]
pub struct NewDefinition {
    pub id: Uuid,
    pub name: String,
    pub object_type: String,
    pub condition: Option<Value>,
    pub priority: i32,
    pub steps: Value,
    pub active: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = approval_definitions)]
pub struct DefinitionChanges {
    pub name: Option<String>,
    pub condition: Option<Option<Value>>,
    pub priority: Option<i32>,
    pub steps: Option<Value>,
    pub active: Option<bool>,
}

pub fn list_definitions(conn: &mut PgConnection, object_type: Option<&str>) -> QueryResult<Vec<DefinitionRow>> {
    let mut q = approval_definitions::table
        .select(DefinitionRow::as_select())
        .order((
            approval_definitions::object_type,
            approval_definitions::priority,
            approval_definitions::created_at,
        ))
        .into_boxed();
    if let Some(t) = object_type {
        q = q.filter(approval_definitions::object_type.eq(t.to_owned()));
    }
    q.load(conn)
}

/// Active definitions of an object type in priority order (lowest number first).
pub fn active_definitions(conn: &mut PgConnection, object_type: &str) -> QueryResult<Vec<DefinitionRow>> {
    approval_definitions::table
        .filter(approval_definitions::object_type.eq(object_type))
        .filter(approval_definitions::active.eq(true))
        .order((approval_definitions::priority, approval_definitions::created_at))
        .select(DefinitionRow::as_select())
        .load(conn)
}

pub fn find_definition(conn: &mut PgConnection, id: Uuid, lock: bool) -> QueryResult<Option<DefinitionRow>> {
    let q = approval_definitions::table.find(id).select(DefinitionRow::as_select());
    if lock {
        q.for_update().first(conn).optional()
    } else {
        q.first(conn).optional()
    }
}

pub fn insert_definition(conn: &mut PgConnection, new: &NewDefinition) -> QueryResult<DefinitionRow> {
    diesel::insert_into(approval_definitions::table)
        .values(new)
        .returning(DefinitionRow::as_returning())
        .get_result(conn)
}

pub fn update_definition(conn: &mut PgConnection, id: Uuid, ch: &DefinitionChanges) -> QueryResult<DefinitionRow> {
    diesel::update(approval_definitions::table.find(id))
        .set((
            ch,
            approval_definitions::version.eq(approval_definitions::version + 1),
            approval_definitions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(DefinitionRow::as_returning())
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = approval_instances)]
pub struct InstanceRow {
    pub id: Uuid,
    pub definition_id: Option<Uuid>,
    pub object_type: String,
    pub object_id: Uuid,
    pub status: String,
    pub requester_id: Uuid,
    pub owner_id: Uuid,
    pub current_step: Option<i32>,
    pub snapshot: Value,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub version: i32,
}

pub fn insert_instance(conn: &mut PgConnection, new: &InstanceRow) -> QueryResult<InstanceRow> {
    diesel::insert_into(approval_instances::table)
        .values(new)
        .returning(InstanceRow::as_returning())
        .get_result(conn)
}

pub fn find_instance(conn: &mut PgConnection, id: Uuid, lock: bool) -> QueryResult<Option<InstanceRow>> {
    let q = approval_instances::table.find(id).select(InstanceRow::as_select());
    if lock {
        q.for_update().first(conn).optional()
    } else {
        q.first(conn).optional()
    }
}

/// The pending instance of a record, locked.
pub fn pending_for(conn: &mut PgConnection, object_type: &str, object_id: Uuid) -> QueryResult<Option<InstanceRow>> {
    approval_instances::table
        .filter(approval_instances::object_type.eq(object_type))
        .filter(approval_instances::object_id.eq(object_id))
        .filter(approval_instances::status.eq("pending"))
        .select(InstanceRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Every instance of a record, newest first.
pub fn instances_for(conn: &mut PgConnection, object_type: &str, object_id: Uuid) -> QueryResult<Vec<InstanceRow>> {
    approval_instances::table
        .filter(approval_instances::object_type.eq(object_type))
        .filter(approval_instances::object_id.eq(object_id))
        .order(approval_instances::created_at.desc())
        .select(InstanceRow::as_select())
        .load(conn)
}

pub fn set_instance(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    current_step: Option<i32>,
    decided_at: Option<DateTime<Utc>>,
) -> QueryResult<InstanceRow> {
    diesel::update(approval_instances::table.find(id))
        .set((
            approval_instances::status.eq(status),
            approval_instances::current_step.eq(current_step),
            approval_instances::decided_at.eq(decided_at),
            approval_instances::version.eq(approval_instances::version + 1),
        ))
        .returning(InstanceRow::as_returning())
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, Serialize)]
#[diesel(table_name = approval_tasks)]
pub struct TaskRow {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub step_index: i32,
    pub approver_id: Uuid,
    pub status: String,
    pub comment: Option<String>,
    pub delegated_from: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub fn insert_tasks(conn: &mut PgConnection, rows: &[TaskRow]) -> QueryResult<()> {
    diesel::insert_into(approval_tasks::table).values(rows).execute(conn)?;
    Ok(())
}

pub fn tasks_of(conn: &mut PgConnection, instance_ids: &[Uuid]) -> QueryResult<Vec<TaskRow>> {
    approval_tasks::table
        .filter(approval_tasks::instance_id.eq_any(instance_ids))
        .order((
            approval_tasks::step_index,
            approval_tasks::created_at,
            approval_tasks::id,
        ))
        .select(TaskRow::as_select())
        .load(conn)
}

/// Sets a task's outcome.
pub fn decide_task(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    comment: Option<&str>,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(approval_tasks::table.find(id))
        .set((
            approval_tasks::status.eq(status),
            approval_tasks::comment.eq(comment),
            approval_tasks::decided_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Closes the still-pending tasks of an instance (optionally of one step only).
pub fn close_pending(
    conn: &mut PgConnection,
    instance_id: Uuid,
    step: Option<i32>,
    status: &str,
    at: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut sql = String::from(
        "UPDATE approval_tasks SET status = $2, decided_at = $3 WHERE instance_id = $1 AND status = 'pending'",
    );
    if step.is_some() {
        sql.push_str(" AND step_index = $4");
    }
    let q = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(instance_id)
        .bind::<Text, _>(status)
        .bind::<Timestamptz, _>(at);
    match step {
        Some(s) => q.bind::<Int4, _>(s).execute(conn),
        None => q.execute(conn),
    }
}

/// Pending tasks of a step.
pub fn pending_in_step(conn: &mut PgConnection, instance_id: Uuid, step: i32) -> QueryResult<Vec<TaskRow>> {
    approval_tasks::table
        .filter(approval_tasks::instance_id.eq(instance_id))
        .filter(approval_tasks::step_index.eq(step))
        .filter(approval_tasks::status.eq("pending"))
        .select(TaskRow::as_select())
        .load(conn)
}

/// Pending tasks due before `now` (for escalation), oldest first.
pub fn overdue_tasks(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<TaskRow>> {
    approval_tasks::table
        .filter(approval_tasks::status.eq("pending"))
        .filter(approval_tasks::due_at.lt(now))
        .order(approval_tasks::due_at)
        .limit(limit)
        .select(TaskRow::as_select())
        .load(conn)
}

/// An approver's inbox: their tasks with the instance, newest first.
pub fn inbox(
    conn: &mut PgConnection,
    approver: Uuid,
    status: Option<&str>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<(TaskRow, InstanceRow)>> {
    let mut q = approval_tasks::table
        .inner_join(approval_instances::table)
        .filter(approval_tasks::approver_id.eq(approver))
        .select((TaskRow::as_select(), InstanceRow::as_select()))
        .order((approval_tasks::created_at.desc(), approval_tasks::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(approval_tasks::status.eq(s.to_owned()));
    }
    if let Some((at, id)) = before {
        q = q.filter(
            approval_tasks::created_at
                .lt(at)
                .or(approval_tasks::created_at.eq(at).and(approval_tasks::id.lt(id))),
        );
    }
    q.load(conn)
}

pub fn find_task(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<TaskRow>> {
    approval_tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .first(conn)
        .optional()
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = approval_history)]
pub struct HistoryRow {
    pub id: i64,
    pub instance_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub step_index: Option<i32>,
    pub comment: Option<String>,
    pub details: Value,
}

#[allow(clippy::too_many_arguments)]
pub fn log(
    conn: &mut PgConnection,
    instance_id: Uuid,
    at: DateTime<Utc>,
    actor: Option<Uuid>,
    action: &str,
    step: Option<i32>,
    comment: Option<&str>,
    details: Value,
) -> QueryResult<()> {
    diesel::insert_into(approval_history::table)
        .values((
            approval_history::instance_id.eq(instance_id),
            approval_history::at.eq(at),
            approval_history::actor_id.eq(actor),
            approval_history::action.eq(action),
            approval_history::step_index.eq(step),
            approval_history::comment.eq(comment),
            approval_history::details.eq(details),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn history(conn: &mut PgConnection, instance_ids: &[Uuid]) -> QueryResult<Vec<HistoryRow>> {
    approval_history::table
        .filter(approval_history::instance_id.eq_any(instance_ids))
        .order(approval_history::id)
        .select(HistoryRow::as_select())
        .load(conn)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Active holders of a role, optionally only in some teams; ordered for stable output.
pub fn role_holders(conn: &mut PgConnection, role: &str, teams: Option<&[Uuid]>) -> QueryResult<Vec<Uuid>> {
    let base = "SELECT u.id FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id \
                WHERE r.key = $1 AND u.is_active AND NOT u.is_service";
    let rows: Vec<Id> = match teams {
        Some(t) => diesel::sql_query(format!("{base} AND u.team_id = ANY($2) ORDER BY u.email"))
            .bind::<Text, _>(role)
            .bind::<Array<SqlUuid>, _>(t)
            .load(conn)?,
        None => diesel::sql_query(format!("{base} ORDER BY u.email"))
            .bind::<Text, _>(role)
            .load(conn)?,
    };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The active managers above `user`, nearest first, at most `levels`.
pub fn manager_chain(conn: &mut PgConnection, user: Uuid, levels: i32) -> QueryResult<Vec<Uuid>> {
    let rows: Vec<Id> = diesel::sql_query(
        "WITH RECURSIVE chain(id, depth) AS ( \
           SELECT manager_id, 1 FROM users WHERE id = $1 AND manager_id IS NOT NULL \
           UNION ALL \
           SELECT u.manager_id, c.depth + 1 FROM users u JOIN chain c ON u.id = c.id \
           WHERE u.manager_id IS NOT NULL AND c.depth < $2) \
         SELECT c.id FROM chain c JOIN users u ON u.id = c.id WHERE u.is_active ORDER BY c.depth",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<Int4, _>(levels)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The team and its ancestors, nearest first, with their kinds.
pub fn team_ancestry(conn: &mut PgConnection, team: Uuid) -> QueryResult<Vec<(Uuid, String)>> {
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Text)]
        kind: String,
    }
    let rows: Vec<T> = diesel::sql_query(
        "WITH RECURSIVE up(id, kind, parent_id, depth) AS ( \
           SELECT id, kind, parent_id, 0 FROM teams WHERE id = $1 \
           UNION ALL \
           SELECT t.id, t.kind, t.parent_id, u.depth + 1 FROM teams t JOIN up u ON t.id = u.parent_id \
           WHERE u.depth < 20) \
         SELECT id, kind FROM up ORDER BY depth",
    )
    .bind::<SqlUuid, _>(team)
    .load(conn)?;
    Ok(rows.into_iter().map(|t| (t.id, t.kind)).collect())
}
