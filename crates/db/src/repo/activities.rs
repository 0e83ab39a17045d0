//! Activities (follow-up records).

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use serde::Serialize;
use uuid::Uuid;

use super::accounts::Liveness;
use crate::schema::activities;
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = activities)]
pub struct ActivityRow {
    pub id: Uuid,
    pub activity_type: String,
    pub subject: String,
    pub content: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub duration_minutes: Option<i32>,
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = activities)]
pub struct NewActivity {
    pub id: Uuid,
    pub activity_type: String,
    pub subject: String,
    pub content: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub duration_minutes: Option<i32>,
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = activities)]
pub struct ActivityChanges {
    pub activity_type: Option<String>,
    pub subject: Option<String>,
    pub content: Option<Option<String>>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub duration_minutes: Option<Option<i32>>,
    pub outcome: Option<Option<String>>,
    pub next_step: Option<Option<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub activity_type: Option<String>,
    pub occurred_after: Option<DateTime<Utc>>,
    pub occurred_before: Option<DateTime<Utc>>,
    pub q: Option<String>,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("occurred_at", "x.occurred_at", SortType::Timestamp),
    SortColumn::new("created_at", "x.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "x.updated_at", SortType::Timestamp),
];
pub const DEFAULT_SORT: &str = "-occurred_at";

fn push_filter(sql: &mut Sql<'_>, f: &ActivityFilter) {
    sql.eq_opt::<SqlUuid, _>("x.lead_id", f.lead_id)
        .eq_opt::<SqlUuid, _>("x.account_id", f.account_id)
        .eq_opt::<SqlUuid, _>("x.contact_id", f.contact_id)
        .eq_opt::<SqlUuid, _>("x.opportunity_id", f.opportunity_id)
        .eq_opt::<SqlUuid, _>("x.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("x.team_id", f.team_id)
        .eq_opt::<Text, _>("x.activity_type", f.activity_type.clone())
        .cmp_ts("x.occurred_at", ">=", f.occurred_after)
        .cmp_ts("x.occurred_at", "<", f.occurred_before)
        .contains("(x.subject || ' ' || coalesce(x.content, ''))", f.q.as_deref());
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &ActivityFilter,
    spec: &ListSpec,
) -> QueryResult<Page<ActivityRow>> {
    let mut sql = Sql::new("SELECT x.* FROM activities x WHERE x.deleted_at IS NULL");
    sql.scope("x", scope);
    push_filter(&mut sql, filter);
    spec.load(conn, sql, "x.id", |r: &ActivityRow| r.id)
}

pub fn find(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<ActivityRow>> {
    super::soft_delete::find_in(conn, "activities", scope, id, liveness, lock)
}

pub fn insert(conn: &mut PgConnection, new: &NewActivity) -> QueryResult<ActivityRow> {
    diesel::insert_into(activities::table)
        .values(new)
        .returning(ActivityRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &ActivityChanges) -> QueryResult<ActivityRow> {
    diesel::update(activities::table.find(id))
        .set((
            changes,
            activities::version.eq(activities::version + 1),
            activities::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ActivityRow::as_returning())
        .get_result(conn)
}

/// Recent activities across an account, its contacts and its deals, newest first.
pub fn recent_for_account(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    account_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<ActivityRow>> {
    let mut sql = Sql::new("SELECT x.* FROM activities x WHERE x.deleted_at IS NULL AND (x.account_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push(" OR x.contact_id IN (SELECT c.id FROM contacts c WHERE c.account_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push(") OR x.opportunity_id IN (SELECT o.id FROM opportunities o WHERE o.account_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push("))");
    sql.scope("x", scope);
    sql.push(" ORDER BY x.occurred_at DESC, x.id DESC LIMIT ");
    sql.bind::<diesel::sql_types::BigInt, _>(limit);
    sql.into_query().load(conn)
}
