//! Pipelines and their stages (process engine configuration).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{opportunities, pipelines, stages};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = pipelines)]
pub struct PipelineRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pipelines)]
pub struct NewPipeline {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = pipelines)]
pub struct PipelineChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_default: Option<bool>,
    pub archived_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = stages)]
pub struct StageRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub position: i32,
    pub probability: i32,
    pub key_tasks: Value,
    pub required_outputs: Value,
    pub entry_criteria: Value,
    pub stalled_after_days: Option<i32>,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    pub forecast_category: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = stages)]
pub struct NewStage {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub position: i32,
    pub probability: i32,
    pub key_tasks: Value,
    pub required_outputs: Value,
    pub entry_criteria: Value,
    pub stalled_after_days: Option<i32>,
    pub forecast_category: String,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = stages)]
pub struct StageChanges {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub probability: Option<i32>,
    pub key_tasks: Option<Value>,
    pub required_outputs: Option<Value>,
    pub entry_criteria: Option<Value>,
    pub stalled_after_days: Option<Option<i32>>,
    pub archived_at: Option<Option<DateTime<Utc>>>,
    pub forecast_category: Option<String>,
}

pub fn list(conn: &mut PgConnection, include_archived: bool) -> QueryResult<Vec<PipelineRow>> {
    let mut q = pipelines::table
        .select(PipelineRow::as_select())
        .order((pipelines::is_default.desc(), pipelines::name))
        .into_boxed();
    if !include_archived {
        q = q.filter(pipelines::archived_at.is_null());
    }
    q.load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<PipelineRow>> {
    pipelines::table
        .find(id)
        .select(PipelineRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<PipelineRow>> {
    pipelines::table
        .find(id)
        .select(PipelineRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn default_pipeline(conn: &mut PgConnection) -> QueryResult<Option<PipelineRow>> {
    pipelines::table
        .filter(pipelines::is_default.eq(true))
        .filter(pipelines::archived_at.is_null())
        .select(PipelineRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut PgConnection, new: &NewPipeline) -> QueryResult<PipelineRow> {
    if new.is_default {
        clear_default(conn)?;
    }
    diesel::insert_into(pipelines::table)
        .values(new)
        .returning(PipelineRow::as_returning())
        .get_result(conn)
}

/// Unsets the current default pipeline (there is at most one).
pub fn clear_default(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::update(pipelines::table.filter(pipelines::is_default.eq(true)))
        .set((
            pipelines::is_default.eq(false),
            pipelines::version.eq(pipelines::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &PipelineChanges) -> QueryResult<PipelineRow> {
    if changes.is_default == Some(true) {
        clear_default(conn)?;
    }
    diesel::update(pipelines::table.find(id))
        .set((
            changes,
            pipelines::version.eq(pipelines::version + 1),
            pipelines::updated_at.eq(diesel::dsl::now),
        ))
        .returning(PipelineRow::as_returning())
        .get_result(conn)
}

/// Stages of some pipelines, in board order (archived included when asked).
pub fn stages_of(conn: &mut PgConnection, pipeline_ids: &[Uuid], include_archived: bool) -> QueryResult<Vec<StageRow>> {
    let mut q = stages::table
        .filter(stages::pipeline_id.eq_any(pipeline_ids))
        .select(StageRow::as_select())
        .order((stages::pipeline_id, stages::position, stages::id))
        .into_boxed();
    if !include_archived {
        q = q.filter(stages::archived_at.is_null());
    }
    q.load(conn)
}

pub fn find_stage(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<StageRow>> {
    stages::table
        .find(id)
        .select(StageRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_stage_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<StageRow>> {
    stages::table
        .find(id)
        .select(StageRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn insert_stage(conn: &mut PgConnection, new: &NewStage) -> QueryResult<StageRow> {
    diesel::insert_into(stages::table)
        .values(new)
        .returning(StageRow::as_returning())
        .get_result(conn)
}

pub fn update_stage(conn: &mut PgConnection, id: Uuid, changes: &StageChanges) -> QueryResult<StageRow> {
    diesel::update(stages::table.find(id))
        .set((
            changes,
            stages::version.eq(stages::version + 1),
            stages::updated_at.eq(diesel::dsl::now),
        ))
        .returning(StageRow::as_returning())
        .get_result(conn)
}

/// Sets positions 1..n in the given order.
pub fn reorder(conn: &mut PgConnection, ordered: &[Uuid]) -> QueryResult<()> {
    for (i, id) in ordered.iter().enumerate() {
        diesel::update(stages::table.find(*id))
            .set((
                stages::position.eq(i32::try_from(i).unwrap_or(i32::MAX) + 1),
                stages::version.eq(stages::version + 1),
                stages::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Live opportunities currently in a stage.
pub fn open_deals_in_stage(conn: &mut PgConnection, stage_id: Uuid) -> QueryResult<i64> {
    opportunities::table
        .filter(opportunities::stage_id.eq(stage_id))
        .filter(opportunities::deleted_at.is_null())
        .filter(opportunities::status.eq("open"))
        .count()
        .get_result(conn)
}
