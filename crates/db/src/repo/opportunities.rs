//! Opportunities: lists, stage moves with history, checklist, outputs (the board is in
//! `board`, the timeline in `timeline`).

use chrono::{DateTime, NaiveDate, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Numeric, Text, Timestamptz, Uuid as SqlUuid};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::accounts::{deleted_since, Liveness};
use crate::schema::{
    activities, opportunities, opportunity_checklist, opportunity_contacts, opportunity_outputs, stage_history, stages,
};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = opportunities)]
pub struct OpportunityRow {
    pub id: Uuid,
    pub name: String,
    pub account_id: Uuid,
    pub primary_contact_id: Option<Uuid>,
    pub pipeline_id: Uuid,
    pub stage_id: Uuid,
    pub amount: Option<Decimal>,
    pub currency: String,
    pub expected_close_date: Option<NaiveDate>,
    pub probability: i32,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub source_lead_id: Option<Uuid>,
    pub competitors: Vec<String>,
    pub next_step: Option<String>,
    pub status: String,
    pub lost_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub stage_entered_at: DateTime<Utc>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
    /// Overrides the stage's forecast category (none: the stage's).
    pub forecast_category: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = opportunities)]
pub struct NewOpportunity {
    pub id: Uuid,
    pub name: String,
    pub account_id: Uuid,
    pub primary_contact_id: Option<Uuid>,
    pub pipeline_id: Uuid,
    pub stage_id: Uuid,
    pub amount: Option<Decimal>,
    pub currency: String,
    pub expected_close_date: Option<NaiveDate>,
    pub probability: i32,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub source_lead_id: Option<Uuid>,
    pub competitors: Vec<String>,
    pub next_step: Option<String>,
    pub status: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
    pub forecast_category: Option<String>,
}

/// Fields a PATCH may change. Stage, status and closing only change through a stage move.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = opportunities)]
pub struct OpportunityChanges {
    pub name: Option<String>,
    pub account_id: Option<Uuid>,
    pub primary_contact_id: Option<Option<Uuid>>,
    pub amount: Option<Option<Decimal>>,
    pub currency: Option<String>,
    pub expected_close_date: Option<Option<NaiveDate>>,
    pub probability: Option<i32>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Option<Uuid>>,
    pub competitors: Option<Vec<String>>,
    pub next_step: Option<Option<String>>,
    pub custom: Option<Value>,
    pub forecast_category: Option<Option<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct OpportunityFilter {
    pub pipeline_id: Option<Uuid>,
    pub stage_id: Option<Uuid>,
    pub status: Option<String>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub amount_gte: Option<Decimal>,
    pub amount_lte: Option<Decimal>,
    pub close_after: Option<NaiveDate>,
    pub close_before: Option<NaiveDate>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    /// Open deals past their stage's "stalled after N days" with no activity since.
    pub stalled: Option<bool>,
    pub q: Option<String>,
    /// `custom.*` conditions.
    /// What `q` covers for the caller beyond the built-in search text.
    pub search: crate::sql::SearchScope,
    pub custom: Vec<super::fields::CustomCond>,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("name", "o.name", SortType::Text),
    SortColumn::new("created_at", "o.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "o.updated_at", SortType::Timestamp),
    SortColumn::new("stage_entered_at", "o.stage_entered_at", SortType::Timestamp),
    SortColumn::nullable("amount", "coalesce(o.amount, 0)", SortType::Decimal, "0"),
    SortColumn::nullable(
        "expected_close_date",
        "coalesce(o.expected_close_date, '9999-12-31'::date)",
        SortType::Date,
        "9999-12-31",
    ),
];
pub const DEFAULT_SORT: &str = "-created_at";
/// Built-in fields of the search text: (field key, column).
pub const SEARCH_FIELDS: &[(&str, &str)] = &[("name", "o.name")];
/// The board's card order (per stage); its cursors work with the list endpoint.
pub const BOARD_SORT: &str = "-updated_at";

const STALLED: &str = "EXISTS (SELECT 1 FROM stages st WHERE st.id = o.stage_id AND st.stalled_after_days IS NOT NULL \
     AND o.status = 'open' \
     AND coalesce(greatest(o.last_activity_at, o.stage_entered_at), o.stage_entered_at) < now() - make_interval(days => st.stalled_after_days))";

pub fn push_filter(sql: &mut Sql<'_>, f: &OpportunityFilter) {
    sql.eq_opt::<SqlUuid, _>("o.pipeline_id", f.pipeline_id)
        .eq_opt::<SqlUuid, _>("o.stage_id", f.stage_id)
        .eq_opt::<Text, _>("o.status", f.status.clone())
        .eq_opt::<SqlUuid, _>("o.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("o.team_id", f.team_id)
        .eq_opt::<SqlUuid, _>("o.account_id", f.account_id)
        .cmp_ts("o.created_at", ">=", f.created_after)
        .cmp_ts("o.created_at", "<", f.created_before)
        .cmp_ts("o.updated_at", ">=", f.updated_after)
        .cmp_ts("o.updated_at", "<", f.updated_before)
        .search("o.name", SEARCH_FIELDS, "o", &f.search, f.q.as_deref());
    if let Some(v) = f.amount_gte {
        sql.push(" AND o.amount >= ");
        sql.bind::<Numeric, _>(v);
    }
    if let Some(v) = f.amount_lte {
        sql.push(" AND o.amount <= ");
        sql.bind::<Numeric, _>(v);
    }
    if let Some(d) = f.close_after {
        sql.push(" AND o.expected_close_date >= ");
        sql.bind::<diesel::sql_types::Date, _>(d);
    }
    if let Some(d) = f.close_before {
        sql.push(" AND o.expected_close_date < ");
        sql.bind::<diesel::sql_types::Date, _>(d);
    }
    match f.stalled {
        Some(true) => {
            sql.push(&format!(" AND {STALLED}"));
        }
        Some(false) => {
            sql.push(&format!(" AND NOT {STALLED}"));
        }
        None => {}
    }
    super::fields::push_custom(sql, "o", &f.custom);
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &OpportunityFilter,
    spec: &ListSpec,
) -> QueryResult<Page<OpportunityRow>> {
    let mut sql = Sql::new("SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL");
    sql.scope("o", scope);
    push_filter(&mut sql, filter);
    spec.load(conn, sql, "o.id", |r: &OpportunityRow| r.id)
}

pub fn list_changed(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &OpportunityFilter,
    since: DateTime<Utc>,
    spec: &ListSpec,
    with_deleted: bool,
) -> QueryResult<(Page<OpportunityRow>, Vec<Uuid>)> {
    let mut sql = Sql::new("SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL");
    sql.scope("o", scope);
    push_filter(&mut sql, filter);
    sql.cmp_ts("o.updated_at", ">", Some(since));
    let page = spec.load(conn, sql, "o.id", |r: &OpportunityRow| r.id)?;
    let deleted = if with_deleted {
        deleted_since(conn, "opportunities", scope, since)?
    } else {
        Vec::new()
    };
    Ok((page, deleted))
}

pub fn find(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<OpportunityRow>> {
    super::soft_delete::find_in(conn, "opportunities", scope, id, liveness, lock)
}

/// Inserts a deal and opens its first stage visit.
/// Inserts a deal and opens its first stage visit; `by` is who created it (`None`: the system).
pub fn insert(conn: &mut PgConnection, new: &NewOpportunity, by: Option<Uuid>) -> QueryResult<OpportunityRow> {
    let row: OpportunityRow = diesel::insert_into(opportunities::table)
        .values(new)
        .returning(OpportunityRow::as_returning())
        .get_result(conn)?;
    diesel::insert_into(stage_history::table)
        .values((
            stage_history::opportunity_id.eq(row.id),
            stage_history::to_stage_id.eq(row.stage_id),
            stage_history::entered_at.eq(row.stage_entered_at),
            stage_history::changed_by.eq(by),
            stage_history::amount.eq(row.amount),
            stage_history::probability.eq(Some(row.probability)),
        ))
        .execute(conn)?;
    Ok(row)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &OpportunityChanges) -> QueryResult<OpportunityRow> {
    diesel::update(opportunities::table.find(id))
        .set((
            changes,
            opportunities::version.eq(opportunities::version + 1),
            opportunities::updated_at.eq(diesel::dsl::now),
        ))
        .returning(OpportunityRow::as_returning())
        .get_result(conn)
}

/// A stage move as decided by the caller.
#[derive(Debug, Clone)]
pub struct StageMove {
    pub to_stage: Uuid,
    pub status: String,
    pub probability: i32,
    pub closed_at: Option<DateTime<Utc>>,
    pub lost_reason: Option<String>,
    pub reason: Option<String>,
    /// Who moved it (`None`: the system).
    pub by: Option<Uuid>,
    /// When (the business clock).
    pub at: DateTime<Utc>,
}

/// Moves a deal: closes the current stage visit and opens the next one, in one go.
pub fn move_stage(conn: &mut PgConnection, before: &OpportunityRow, mv: &StageMove) -> QueryResult<OpportunityRow> {
    let now = mv.at;
    diesel::update(
        stage_history::table
            .filter(stage_history::opportunity_id.eq(before.id))
            .filter(stage_history::left_at.is_null()),
    )
    .set(stage_history::left_at.eq(Some(now)))
    .execute(conn)?;
    let row: OpportunityRow = diesel::update(opportunities::table.find(before.id))
        .set((
            opportunities::stage_id.eq(mv.to_stage),
            opportunities::status.eq(&mv.status),
            opportunities::probability.eq(mv.probability),
            opportunities::closed_at.eq(mv.closed_at),
            opportunities::lost_reason.eq(&mv.lost_reason),
            opportunities::stage_entered_at.eq(now),
            opportunities::version.eq(opportunities::version + 1),
            opportunities::updated_at.eq(now),
        ))
        .returning(OpportunityRow::as_returning())
        .get_result(conn)?;
    diesel::insert_into(stage_history::table)
        .values((
            stage_history::opportunity_id.eq(row.id),
            stage_history::from_stage_id.eq(Some(before.stage_id)),
            stage_history::to_stage_id.eq(row.stage_id),
            stage_history::entered_at.eq(now),
            stage_history::changed_by.eq(mv.by),
            stage_history::amount.eq(row.amount),
            stage_history::probability.eq(Some(row.probability)),
            stage_history::reason.eq(&mv.reason),
        ))
        .execute(conn)?;
    Ok(row)
}

/// Contacts of deals with their roles: (opportunity, contact, role).
pub fn contacts_of(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, Uuid, String)>> {
    opportunity_contacts::table
        .filter(opportunity_contacts::opportunity_id.eq_any(ids))
        .select((
            opportunity_contacts::opportunity_id,
            opportunity_contacts::contact_id,
            opportunity_contacts::role,
        ))
        .order((opportunity_contacts::opportunity_id, opportunity_contacts::contact_id))
        .load(conn)
}

/// Replaces a deal's other contacts.
pub fn set_contacts(conn: &mut PgConnection, id: Uuid, contacts: &[(Uuid, String)]) -> QueryResult<()> {
    diesel::delete(opportunity_contacts::table.filter(opportunity_contacts::opportunity_id.eq(id))).execute(conn)?;
    let rows: Vec<_> = contacts
        .iter()
        .map(|(c, r)| {
            (
                opportunity_contacts::opportunity_id.eq(id),
                opportunity_contacts::contact_id.eq(*c),
                opportunity_contacts::role.eq(r.clone()),
            )
        })
        .collect();
    diesel::insert_into(opportunity_contacts::table)
        .values(rows)
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = opportunity_checklist)]
pub struct ChecklistRow {
    pub opportunity_id: Uuid,
    pub stage_id: Uuid,
    pub task_code: String,
    pub done: bool,
    pub changed_by: Option<Uuid>,
    pub changed_at: DateTime<Utc>,
}

pub fn checklist(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<ChecklistRow>> {
    opportunity_checklist::table
        .filter(opportunity_checklist::opportunity_id.eq(id))
        .select(ChecklistRow::as_select())
        .load(conn)
}

/// Marks a key task done or undone; returns the previous state (None when never set).
pub fn set_task_done(
    conn: &mut PgConnection,
    id: Uuid,
    stage_id: Uuid,
    task: &str,
    done: bool,
    by: Uuid,
) -> QueryResult<(Option<bool>, ChecklistRow)> {
    let before: Option<bool> = opportunity_checklist::table
        .find((id, stage_id, task))
        .select(opportunity_checklist::done)
        .first(conn)
        .optional()?;
    let row = diesel::insert_into(opportunity_checklist::table)
        .values((
            opportunity_checklist::opportunity_id.eq(id),
            opportunity_checklist::stage_id.eq(stage_id),
            opportunity_checklist::task_code.eq(task),
            opportunity_checklist::done.eq(done),
            opportunity_checklist::changed_by.eq(Some(by)),
            opportunity_checklist::changed_at.eq(diesel::dsl::now),
        ))
        .on_conflict((
            opportunity_checklist::opportunity_id,
            opportunity_checklist::stage_id,
            opportunity_checklist::task_code,
        ))
        .do_update()
        .set((
            opportunity_checklist::done.eq(done),
            opportunity_checklist::changed_by.eq(Some(by)),
            opportunity_checklist::changed_at.eq(diesel::dsl::now),
        ))
        .returning(ChecklistRow::as_returning())
        .get_result(conn)?;
    Ok((before, row))
}

/// Done key tasks as (stage code, task code), for entry criteria.
pub fn tasks_done(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<(String, String)>> {
    opportunity_checklist::table
        .inner_join(stages::table.on(stages::id.eq(opportunity_checklist::stage_id)))
        .filter(opportunity_checklist::opportunity_id.eq(id))
        .filter(opportunity_checklist::done.eq(true))
        .select((stages::code, opportunity_checklist::task_code))
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = opportunity_outputs)]
pub struct OutputRow {
    pub id: Uuid,
    pub opportunity_id: Uuid,
    pub stage_id: Uuid,
    pub output_code: Option<String>,
    pub title: String,
    pub notes: Option<String>,
    pub url: Option<String>,
    pub file_ref: Option<String>,
    pub author_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = opportunity_outputs)]
pub struct NewOutput {
    pub id: Uuid,
    pub opportunity_id: Uuid,
    pub stage_id: Uuid,
    pub output_code: Option<String>,
    pub title: String,
    pub notes: Option<String>,
    pub url: Option<String>,
    pub file_ref: Option<String>,
    pub author_id: Option<Uuid>,
}

pub fn outputs(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<OutputRow>> {
    opportunity_outputs::table
        .filter(opportunity_outputs::opportunity_id.eq(id))
        .filter(opportunity_outputs::deleted_at.is_null())
        .select(OutputRow::as_select())
        .order((opportunity_outputs::created_at, opportunity_outputs::id))
        .load(conn)
}

pub fn insert_output(conn: &mut PgConnection, new: &NewOutput) -> QueryResult<OutputRow> {
    diesel::insert_into(opportunity_outputs::table)
        .values(new)
        .returning(OutputRow::as_returning())
        .get_result(conn)
}

/// Soft-deletes an output of a deal; false when there was none.
pub fn delete_output(conn: &mut PgConnection, id: Uuid, output_id: Uuid, at: DateTime<Utc>) -> QueryResult<bool> {
    let n = diesel::update(
        opportunity_outputs::table
            .filter(opportunity_outputs::id.eq(output_id))
            .filter(opportunity_outputs::opportunity_id.eq(id))
            .filter(opportunity_outputs::deleted_at.is_null()),
    )
    .set(opportunity_outputs::deleted_at.eq(Some(at)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Codes of attached outputs, for entry criteria.
pub fn output_codes(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<String>> {
    let codes: Vec<Option<String>> = opportunity_outputs::table
        .filter(opportunity_outputs::opportunity_id.eq(id))
        .filter(opportunity_outputs::deleted_at.is_null())
        .select(opportunity_outputs::output_code)
        .distinct()
        .load(conn)?;
    Ok(codes.into_iter().flatten().collect())
}

/// Types of activities logged on a deal, for entry criteria.
pub fn activity_types(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<String>> {
    activities::table
        .filter(activities::opportunity_id.eq(id))
        .filter(activities::deleted_at.is_null())
        .select(activities::activity_type)
        .distinct()
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = stage_history)]
pub struct StageVisitRow {
    pub id: i64,
    pub opportunity_id: Uuid,
    pub from_stage_id: Option<Uuid>,
    pub to_stage_id: Uuid,
    pub entered_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
    pub changed_by: Option<Uuid>,
    pub amount: Option<Decimal>,
    pub probability: Option<i32>,
    pub reason: Option<String>,
}

pub fn stage_history(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<StageVisitRow>> {
    stage_history::table
        .filter(stage_history::opportunity_id.eq(id))
        .select(StageVisitRow::as_select())
        .order((stage_history::entered_at, stage_history::id))
        .load(conn)
}

/// Touches `last_activity_at` (never moving it backwards) without bumping the version.
pub fn touch_activity(conn: &mut PgConnection, table: &'static str, id: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query(format!(
        "UPDATE {table} SET last_activity_at = greatest(last_activity_at, $2), updated_at = now() WHERE id = $1"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Timestamptz, _>(at)
    .execute(conn)?;
    Ok(())
}
