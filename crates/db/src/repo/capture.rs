//! Web-to-lead capture forms, their submissions and rate counters.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamptz};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::QueryResult;

diesel::table! {
    capture_forms (id) {
        id -> Uuid,
        form_key -> Text,
        name -> Text,
        allowed_origins -> Array<Text>,
        mapping -> Jsonb,
        source -> Nullable<Text>,
        campaign -> Nullable<Text>,
        owner_id -> Uuid,
        honeypot -> Text,
        per_address_per_hour -> Int4,
        per_form_per_hour -> Int4,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    capture_submissions (id) {
        id -> Int8,
        form_id -> Uuid,
        received_at -> Timestamptz,
        client -> Text,
        outcome -> Text,
        lead_id -> Nullable<Uuid>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(capture_forms, capture_submissions);

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = capture_forms)]
pub struct CaptureFormRow {
    pub id: Uuid,
    pub form_key: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub mapping: Value,
    pub source: Option<String>,
    pub campaign: Option<String>,
    pub owner_id: Uuid,
    pub honeypot: String,
    pub per_address_per_hour: i32,
    pub per_form_per_hour: i32,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = capture_forms)]
pub struct NewCaptureForm {
    pub id: Uuid,
    pub form_key: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub mapping: Value,
    pub source: Option<String>,
    pub campaign: Option<String>,
    pub owner_id: Uuid,
    pub honeypot: String,
    pub per_address_per_hour: i32,
    pub per_form_per_hour: i32,
    pub enabled: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = capture_submissions)]
pub struct SubmissionRow {
    pub id: i64,
    pub form_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub client: String,
    pub outcome: String,
    pub lead_id: Option<Uuid>,
}

pub fn insert(conn: &mut PgConnection, new: &NewCaptureForm) -> QueryResult<CaptureFormRow> {
    diesel::insert_into(capture_forms::table)
        .values(new)
        .returning(CaptureFormRow::as_returning())
        .get_result(conn)
}

/// Replaces a form's settings (everything but id and key is given anew).
pub fn replace(conn: &mut PgConnection, new: &NewCaptureForm) -> QueryResult<CaptureFormRow> {
    diesel::update(capture_forms::table.find(new.id))
        .set((
            new,
            capture_forms::updated_at.eq(diesel::dsl::now),
            capture_forms::version.eq(capture_forms::version + 1),
        ))
        .returning(CaptureFormRow::as_returning())
        .get_result(conn)
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<CaptureFormRow>> {
    capture_forms::table
        .order(capture_forms::created_at.asc())
        .select(CaptureFormRow::as_select())
        .load(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<CaptureFormRow>> {
    capture_forms::table
        .find(id)
        .select(CaptureFormRow::as_select())
        .first(conn)
        .optional()
}

pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<CaptureFormRow>> {
    capture_forms::table
        .find(id)
        .for_update()
        .select(CaptureFormRow::as_select())
        .first(conn)
        .optional()
}

pub fn by_key(conn: &mut PgConnection, key: &str) -> QueryResult<Option<CaptureFormRow>> {
    capture_forms::table
        .filter(capture_forms::form_key.eq(key))
        .select(CaptureFormRow::as_select())
        .first(conn)
        .optional()
}

pub fn key_taken(conn: &mut PgConnection, key: &str, except: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        capture_forms::table
            .filter(capture_forms::form_key.eq(key))
            .filter(capture_forms::id.ne(except)),
    ))
    .get_result(conn)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(capture_forms::table.find(id)).execute(conn)? > 0)
}

pub fn record_submission(
    conn: &mut PgConnection,
    form: Uuid,
    at: DateTime<Utc>,
    client: &str,
    outcome: &str,
    lead: Option<Uuid>,
) -> QueryResult<()> {
    diesel::insert_into(capture_submissions::table)
        .values((
            capture_submissions::form_id.eq(form),
            capture_submissions::received_at.eq(at),
            capture_submissions::client.eq(client),
            capture_submissions::outcome.eq(outcome),
            capture_submissions::lead_id.eq(lead),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn submissions(conn: &mut PgConnection, form: Uuid, limit: i64) -> QueryResult<Vec<SubmissionRow>> {
    capture_submissions::table
        .filter(capture_submissions::form_id.eq(form))
        .order(capture_submissions::id.desc())
        .limit(limit)
        .select(SubmissionRow::as_select())
        .load(conn)
}

#[derive(QueryableByName)]
struct Hits {
    #[diesel(sql_type = Integer)]
    hits: i32,
}

/// Counts one hit for `client` of the form in the hour of `at`; returns the hour's
/// count including this one.
pub fn hit(conn: &mut PgConnection, form: Uuid, client: &str, at: DateTime<Utc>) -> QueryResult<i32> {
    let rows: Vec<Hits> = diesel::sql_query(
        "INSERT INTO capture_counters AS k (form_id, client, window_start, hits) \
         VALUES ($1, $2, date_trunc('hour', $3), 1) \
         ON CONFLICT (form_id, client, window_start) DO UPDATE SET hits = k.hits + 1 \
         RETURNING k.hits",
    )
    .bind::<diesel::sql_types::Uuid, _>(form)
    .bind::<Text, _>(client)
    .bind::<Timestamptz, _>(at)
    .load(conn)?;
    Ok(rows.first().map_or(0, |r| r.hits))
}

/// Removes counters of hours long past.
pub fn purge_counters(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM capture_counters WHERE window_start < now() - interval '2 days'").execute(conn)
}
