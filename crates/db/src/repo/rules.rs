//! Automation rules: definitions and their versions, runs, enrollments, time triggers
//! and round-robin cursors.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};
use serde_json::Value;
use uuid::Uuid;

use crate::QueryResult;

diesel::table! {
    rules (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        object -> Text,
        definition -> Jsonb,
        rule_version -> Int4,
        acts_as -> Uuid,
        enabled -> Bool,
        archived_at -> Nullable<Timestamptz>,
        max_runs_per_hour -> Nullable<Int4>,
        paused_at -> Nullable<Timestamptz>,
        paused_reason -> Nullable<Text>,
        seed_key -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
        pause_factor -> Nullable<Int4>,
        baseline_per_hour -> Nullable<Float8>,
        baseline_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rule_versions (rule_id, version) {
        rule_id -> Uuid,
        version -> Int4,
        name -> Text,
        definition -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    rule_runs (id) {
        id -> Int8,
        rule_id -> Uuid,
        rule_version -> Int4,
        trigger -> Text,
        event_id -> Nullable<Uuid>,
        timer_id -> Nullable<Int8>,
        occurrence -> Nullable<Text>,
        object -> Text,
        record_id -> Uuid,
        status -> Text,
        reason -> Nullable<Text>,
        conditions -> Jsonb,
        actions -> Jsonb,
        error -> Nullable<Text>,
        depth -> Int4,
        retry_of -> Nullable<Int8>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rule_enrollments (rule_id, record_id) {
        rule_id -> Uuid,
        record_id -> Uuid,
        matching -> Bool,
        times -> Int4,
        enrolled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rule_timers (id) {
        id -> Int8,
        rule_id -> Uuid,
        trigger_index -> Int4,
        record_id -> Uuid,
        due_at -> Timestamptz,
        token -> Text,
        state -> Text,
        fired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rule_cursors (rule_id, action_index) {
        rule_id -> Uuid,
        action_index -> Int4,
        last_user_id -> Nullable<Uuid>,
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rules)]
pub struct RuleRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub object: String,
    pub definition: Value,
    pub rule_version: i32,
    pub acts_as: Uuid,
    pub enabled: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub max_runs_per_hour: Option<i32>,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
    pub seed_key: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    pub pause_factor: Option<i32>,
    pub baseline_per_hour: Option<f64>,
    pub baseline_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = rules)]
pub struct NewRule {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub object: String,
    pub definition: Value,
    pub acts_as: Uuid,
    pub enabled: bool,
    pub max_runs_per_hour: Option<i32>,
    pub pause_factor: Option<i32>,
    pub seed_key: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = rules)]
pub struct RuleChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub definition: Option<Value>,
    pub rule_version: Option<i32>,
    pub acts_as: Option<Uuid>,
    pub enabled: Option<bool>,
    pub archived_at: Option<Option<DateTime<Utc>>>,
    pub max_runs_per_hour: Option<Option<i32>>,
    pub pause_factor: Option<Option<i32>>,
    pub paused_at: Option<Option<DateTime<Utc>>>,
    pub paused_reason: Option<Option<String>>,
}

/// Stores a rule's baseline hourly rate (not a change of the rule: no new version).
pub fn set_baseline(conn: &mut PgConnection, id: Uuid, per_hour: f64, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(rules::table.find(id))
        .set((rules::baseline_per_hour.eq(per_hour), rules::baseline_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

pub fn insert(conn: &mut PgConnection, new: &NewRule) -> QueryResult<RuleRow> {
    diesel::insert_into(rules::table)
        .values(new)
        .returning(RuleRow::as_returning())
        .get_result(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<RuleRow>> {
    rules::table
        .find(id)
        .select(RuleRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<RuleRow>> {
    rules::table
        .find(id)
        .select(RuleRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn find_by_seed(conn: &mut PgConnection, key: &str) -> QueryResult<Option<RuleRow>> {
    rules::table
        .filter(rules::seed_key.eq(key))
        .select(RuleRow::as_select())
        .first(conn)
        .optional()
}

/// Changes a rule, bumping its row version and `updated_at`.
pub fn update(conn: &mut PgConnection, id: Uuid, ch: &RuleChanges, now: DateTime<Utc>) -> QueryResult<RuleRow> {
    diesel::update(rules::table.find(id))
        .set((ch, rules::updated_at.eq(now), rules::version.eq(rules::version + 1)))
        .returning(RuleRow::as_returning())
        .get_result(conn)
}

/// Rules, newest first; archived ones only when asked.
pub fn list(conn: &mut PgConnection, object: Option<&str>, archived: bool) -> QueryResult<Vec<RuleRow>> {
    let mut q = rules::table.select(RuleRow::as_select()).into_boxed();
    if let Some(o) = object {
        q = q.filter(rules::object.eq(o.to_owned()));
    }
    if !archived {
        q = q.filter(rules::archived_at.is_null());
    }
    q.order((rules::created_at.desc(), rules::id.desc())).load(conn)
}

/// The enabled, unarchived rules of an object (all objects when `None`).
pub fn enabled(conn: &mut PgConnection, object: Option<&str>) -> QueryResult<Vec<RuleRow>> {
    let mut q = rules::table
        .filter(rules::enabled.eq(true))
        .filter(rules::archived_at.is_null())
        .select(RuleRow::as_select())
        .into_boxed();
    if let Some(o) = object {
        q = q.filter(rules::object.eq(o.to_owned()));
    }
    q.order(rules::created_at.asc()).load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rule_versions)]
pub struct VersionRow {
    pub rule_id: Uuid,
    pub version: i32,
    pub name: String,
    pub definition: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

pub fn insert_version(
    conn: &mut PgConnection,
    rule: Uuid,
    version: i32,
    name: &str,
    definition: &Value,
    by: Option<Uuid>,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(rule_versions::table)
        .values((
            rule_versions::rule_id.eq(rule),
            rule_versions::version.eq(version),
            rule_versions::name.eq(name),
            rule_versions::definition.eq(definition),
            rule_versions::created_by.eq(by),
            rule_versions::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn versions(conn: &mut PgConnection, rule: Uuid) -> QueryResult<Vec<VersionRow>> {
    rule_versions::table
        .filter(rule_versions::rule_id.eq(rule))
        .order(rule_versions::version.desc())
        .select(VersionRow::as_select())
        .load(conn)
}

pub fn version(conn: &mut PgConnection, rule: Uuid, version: i32) -> QueryResult<Option<VersionRow>> {
    rule_versions::table
        .find((rule, version))
        .select(VersionRow::as_select())
        .first(conn)
        .optional()
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rule_runs)]
pub struct RunRow {
    pub id: i64,
    pub rule_id: Uuid,
    pub rule_version: i32,
    pub trigger: String,
    pub event_id: Option<Uuid>,
    pub timer_id: Option<i64>,
    pub occurrence: Option<String>,
    pub object: String,
    pub record_id: Uuid,
    pub status: String,
    pub reason: Option<String>,
    pub conditions: Value,
    pub actions: Value,
    pub error: Option<String>,
    pub depth: i32,
    pub retry_of: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = rule_runs)]
pub struct NewRun {
    pub rule_id: Uuid,
    pub rule_version: i32,
    pub trigger: String,
    pub event_id: Option<Uuid>,
    pub timer_id: Option<i64>,
    pub occurrence: Option<String>,
    pub object: String,
    pub record_id: Uuid,
    pub status: String,
    pub depth: i32,
    pub retry_of: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Starts a run; `None` when this rule already ran for this event / timer and record.
pub fn start_run(conn: &mut PgConnection, new: &NewRun) -> QueryResult<Option<i64>> {
    diesel::insert_into(rule_runs::table)
        .values(new)
        .on_conflict_do_nothing()
        .returning(rule_runs::id)
        .get_result(conn)
        .optional()
}

/// What a run came to.
#[derive(Debug, Clone)]
pub struct RunOutcome<'a> {
    pub status: &'a str,
    pub reason: Option<String>,
    pub conditions: Value,
    pub actions: Value,
    pub error: Option<String>,
}

pub fn finish_run(conn: &mut PgConnection, id: i64, o: &RunOutcome<'_>, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(rule_runs::table.find(id))
        .set((
            rule_runs::status.eq(o.status),
            rule_runs::reason.eq(o.reason.as_deref()),
            rule_runs::conditions.eq(&o.conditions),
            rule_runs::actions.eq(&o.actions),
            rule_runs::error.eq(o.error.as_deref()),
            rule_runs::finished_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn run(conn: &mut PgConnection, id: i64) -> QueryResult<Option<RunRow>> {
    rule_runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)
        .optional()
}

/// A rule's runs, newest first, before run `before`, optionally of one status.
pub fn runs(
    conn: &mut PgConnection,
    rule: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<RunRow>> {
    let mut q = rule_runs::table
        .filter(rule_runs::rule_id.eq(rule))
        .select(RunRow::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(rule_runs::status.eq(s.to_owned()));
    }
    if let Some(b) = before {
        q = q.filter(rule_runs::id.lt(b));
    }
    q.order(rule_runs::id.desc()).limit(limit).load(conn)
}

/// Runs that acted (done or waiting) since `since`.
pub fn acted_since(conn: &mut PgConnection, rule: Uuid, since: DateTime<Utc>) -> QueryResult<i64> {
    rule_runs::table
        .filter(rule_runs::rule_id.eq(rule))
        .filter(rule_runs::status.eq_any(["done", "waiting"]))
        .filter(rule_runs::created_at.ge(since))
        .count()
        .get_result(conn)
}

/// Whether the record matched when last considered, and how often it enrolled.
pub fn enrollment(conn: &mut PgConnection, rule: Uuid, record: Uuid) -> QueryResult<Option<(bool, i32)>> {
    rule_enrollments::table
        .find((rule, record))
        .select((rule_enrollments::matching, rule_enrollments::times))
        .for_update()
        .first(conn)
        .optional()
}

/// Records whether the record matches now; `enrolled` counts an enrollment.
pub fn set_enrollment(
    conn: &mut PgConnection,
    rule: Uuid,
    record: Uuid,
    matching: bool,
    enrolled: bool,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO rule_enrollments (rule_id, record_id, matching, times, enrolled_at) \
         VALUES ($1, $2, $3, CASE WHEN $4 THEN 1 ELSE 0 END, CASE WHEN $4 THEN $5 END) \
         ON CONFLICT (rule_id, record_id) DO UPDATE SET matching = EXCLUDED.matching, \
           times = rule_enrollments.times + CASE WHEN $4 THEN 1 ELSE 0 END, \
           enrolled_at = CASE WHEN $4 THEN $5 ELSE rule_enrollments.enrolled_at END",
    )
    .bind::<diesel::sql_types::Uuid, _>(rule)
    .bind::<diesel::sql_types::Uuid, _>(record)
    .bind::<diesel::sql_types::Bool, _>(matching)
    .bind::<diesel::sql_types::Bool, _>(enrolled)
    .bind::<Timestamptz, _>(at)
    .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = rule_timers)]
pub struct TimerRow {
    pub id: i64,
    pub rule_id: Uuid,
    pub trigger_index: i32,
    pub record_id: Uuid,
    pub due_at: DateTime<Utc>,
    pub token: String,
    pub state: String,
    pub fired_at: Option<DateTime<Utc>>,
}

/// Sets a record's timer of a rule's trigger to (`due_at`, `token`). An occurrence
/// already fired (same token) stays fired; anything else becomes pending at `due_at`.
/// Returns whether the timer is pending afterwards.
pub fn set_timer(
    conn: &mut PgConnection,
    rule: Uuid,
    trigger: i32,
    record: Uuid,
    due_at: DateTime<Utc>,
    token: &str,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct St {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let rows: Vec<St> = diesel::sql_query(
        "INSERT INTO rule_timers AS t (rule_id, trigger_index, record_id, due_at, token) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (rule_id, trigger_index, record_id) DO UPDATE SET \
           due_at = CASE WHEN t.token = EXCLUDED.token AND t.state = 'fired' THEN t.due_at ELSE EXCLUDED.due_at END, \
           state = CASE WHEN t.token = EXCLUDED.token AND t.state = 'fired' THEN 'fired' ELSE 'pending' END, \
           token = EXCLUDED.token \
         RETURNING state",
    )
    .bind::<diesel::sql_types::Uuid, _>(rule)
    .bind::<Integer, _>(trigger)
    .bind::<diesel::sql_types::Uuid, _>(record)
    .bind::<Timestamptz, _>(due_at)
    .bind::<Text, _>(token)
    .load(conn)?;
    Ok(rows.first().is_some_and(|r| r.state == "pending"))
}

/// Sets many timers of one rule trigger at once (scheduling a rule over every record).
pub fn set_timers(
    conn: &mut PgConnection,
    rule: Uuid,
    trigger: i32,
    timers: &[(Uuid, DateTime<Utc>, String)],
) -> QueryResult<usize> {
    if timers.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = timers.iter().map(|t| t.0).collect();
    let due: Vec<DateTime<Utc>> = timers.iter().map(|t| t.1).collect();
    let tokens: Vec<String> = timers.iter().map(|t| t.2.clone()).collect();
    diesel::sql_query(
        "INSERT INTO rule_timers AS t (rule_id, trigger_index, record_id, due_at, token) \
         SELECT $1, $2, r, d, k FROM unnest($3::uuid[], $4::timestamptz[], $5::text[]) AS x(r, d, k) \
         ON CONFLICT (rule_id, trigger_index, record_id) DO UPDATE SET \
           due_at = CASE WHEN t.token = EXCLUDED.token AND t.state = 'fired' THEN t.due_at ELSE EXCLUDED.due_at END, \
           state = CASE WHEN t.token = EXCLUDED.token AND t.state = 'fired' THEN 'fired' ELSE 'pending' END, \
           token = EXCLUDED.token",
    )
    .bind::<diesel::sql_types::Uuid, _>(rule)
    .bind::<Integer, _>(trigger)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .bind::<diesel::sql_types::Array<Timestamptz>, _>(due)
    .bind::<diesel::sql_types::Array<Text>, _>(tokens)
    .execute(conn)
}

/// Drops a record's timers of a rule's trigger (the date was cleared, the deal left
/// the stage, the record was deleted).
pub fn clear_timer(conn: &mut PgConnection, rule: Uuid, trigger: i32, record: Uuid) -> QueryResult<usize> {
    diesel::delete(
        rule_timers::table
            .filter(rule_timers::rule_id.eq(rule))
            .filter(rule_timers::trigger_index.eq(trigger))
            .filter(rule_timers::record_id.eq(record))
            .filter(rule_timers::state.eq("pending")),
    )
    .execute(conn)
}

/// Drops every pending timer of a rule (disabled, archived or redefined) that no
/// worker holds. The caller holds the rule's row; a worker firing a timer holds the
/// timer and may then wait on the rule (to pause it), so waiting here on its timers
/// would deadlock. A held timer is left to its worker, which re-reads the rule and
/// drops or re-plans the timer when it next comes due.
pub fn clear_rule_timers(conn: &mut PgConnection, rule: Uuid) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM rule_timers WHERE id IN (SELECT id FROM rule_timers \
         WHERE rule_id = $1 AND state = 'pending' FOR UPDATE SKIP LOCKED)",
    )
    .bind::<diesel::sql_types::Uuid, _>(rule)
    .execute(conn)
}

/// Claims up to `limit` due pending timers (others working in parallel skip them).
pub fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<TimerRow>> {
    diesel::sql_query(
        "SELECT * FROM rule_timers WHERE state = 'pending' AND due_at <= $1 \
         ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

pub fn mark_fired(conn: &mut PgConnection, id: i64, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(rule_timers::table.find(id))
        .set((rule_timers::state.eq("fired"), rule_timers::fired_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

/// Moves a pending timer to its next occurrence.
pub fn reschedule(conn: &mut PgConnection, id: i64, due_at: DateTime<Utc>, token: &str) -> QueryResult<()> {
    diesel::update(rule_timers::table.find(id))
        .set((
            rule_timers::due_at.eq(due_at),
            rule_timers::token.eq(token),
            rule_timers::state.eq("pending"),
        ))
        .execute(conn)?;
    Ok(())
}

/// When the earliest pending timer is due.
pub fn next_due(conn: &mut PgConnection) -> QueryResult<Option<DateTime<Utc>>> {
    rule_timers::table
        .filter(rule_timers::state.eq("pending"))
        .select(diesel::dsl::min(rule_timers::due_at))
        .first(conn)
}

/// Pending timers per rule (for the rule list).
pub fn pending_timers(conn: &mut PgConnection, rule: Uuid) -> QueryResult<i64> {
    rule_timers::table
        .filter(rule_timers::rule_id.eq(rule))
        .filter(rule_timers::state.eq("pending"))
        .count()
        .get_result(conn)
}

/// The user a round-robin action gave its last record to (locked until commit).
pub fn cursor(conn: &mut PgConnection, rule: Uuid, action: i32) -> QueryResult<Option<Uuid>> {
    diesel::sql_query("INSERT INTO rule_cursors (rule_id, action_index) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind::<diesel::sql_types::Uuid, _>(rule)
        .bind::<Integer, _>(action)
        .execute(conn)?;
    rule_cursors::table
        .find((rule, action))
        .select(rule_cursors::last_user_id)
        .for_update()
        .first::<Option<Uuid>>(conn)
}

pub fn set_cursor(conn: &mut PgConnection, rule: Uuid, action: i32, user: Uuid) -> QueryResult<()> {
    diesel::update(rule_cursors::table.find((rule, action)))
        .set(rule_cursors::last_user_id.eq(Some(user)))
        .execute(conn)?;
    Ok(())
}

/// The active members of a team and its sub-teams (a region's whole sales force),
/// not paused, in a stable order, with how many open records of
/// `table` each owns (`status_open`: the SQL condition for "open").
pub fn members_with_load(
    conn: &mut PgConnection,
    team: Uuid,
    table: &str,
    open: &str,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(Uuid, i64)>> {
    #[derive(QueryableByName)]
    struct M {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = BigInt)]
        load: i64,
    }
    // `table` and `open` are constants of the caller, never input.
    let sql = format!(
        "SELECT u.id, (SELECT count(*) FROM {table} r WHERE r.owner_id = u.id AND r.deleted_at IS NULL AND {open}) AS load \
         FROM users u WHERE u.is_active AND NOT u.is_service \
           AND u.team_id IN (WITH RECURSIVE sub(id) AS (SELECT $1::uuid UNION ALL \
                             SELECT t.id FROM teams t JOIN sub ON t.parent_id = sub.id) SELECT id FROM sub) \
           AND NOT EXISTS (SELECT 1 FROM assignment_pauses p WHERE p.user_id = u.id AND p.until > $2) \
         ORDER BY u.created_at, u.id"
    );
    let rows: Vec<M> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(team)
        .bind::<Timestamptz, _>(now)
        .load(conn)?;
    Ok(rows.into_iter().map(|m| (m.id, m.load)).collect())
}

/// a rule over every record).
pub fn live_ids(conn: &mut PgConnection, table: &str, after: Uuid, limit: i64) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct I {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    // `table` is a constant of the caller, never input.
    let sql = format!("SELECT id FROM {table} WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2");
    let rows: Vec<I> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(after)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|i| i.id).collect())
}

/// Pending timers, and how many of them are due already (the engine's backlog).
pub fn timer_backlog(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<(i64, i64)> {
    let pending = rule_timers::table
        .filter(rule_timers::state.eq("pending"))
        .count()
        .get_result(conn)?;
    let due = rule_timers::table
        .filter(rule_timers::state.eq("pending"))
        .filter(rule_timers::due_at.le(now))
        .count()
        .get_result(conn)?;
    Ok((pending, due))
}

/// The first active user with role `role` in `team` or, failing that, in the nearest
/// parent team that has one; then any active user with the role.
pub fn user_with_role_near(conn: &mut PgConnection, team: Option<Uuid>, role: &str) -> QueryResult<Option<Uuid>> {
    Ok(users_with_role_near(conn, team, role)?.first().copied())
}

/// Every active holder of the role at the nearest level that has one: the team, else
/// its parent, and so on, else anywhere (at most 50, oldest first).
pub fn users_with_role_near(conn: &mut PgConnection, team: Option<Uuid>, role: &str) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct I {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
        d: Option<i32>,
    }
    let rows: Vec<I> = diesel::sql_query(
        "WITH RECURSIVE up AS ( \
           SELECT id, parent_id, 0 AS d FROM teams WHERE id = $1 \
           UNION ALL SELECT t.id, t.parent_id, up.d + 1 FROM teams t JOIN up ON t.id = up.parent_id WHERE up.d < 20) \
         SELECT u.id, up.d FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id \
         LEFT JOIN up ON up.id = u.team_id \
         WHERE r.key = $2 AND u.is_active AND NOT u.is_service \
         ORDER BY up.d NULLS LAST, u.created_at, u.id LIMIT 50",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(team)
    .bind::<Text, _>(role)
    .load(conn)?;
    let nearest = rows.first().map(|r| r.d);
    Ok(rows
        .into_iter()
        .take_while(|r| Some(r.d) == nearest)
        .map(|r| r.id)
        .collect())
}

/// What scheduling a time trigger needs of each record, read in pages: (id, value).
/// `value_sql` is an SQL expression over the record `r` (and its stage `s`) built by
/// the caller from validated column names, never from input text.
pub fn timer_inputs(
    conn: &mut PgConnection,
    table: &str,
    value_sql: &str,
    after: Uuid,
    limit: i64,
) -> QueryResult<Vec<(Uuid, Option<String>)>> {
    #[derive(QueryableByName)]
    struct I {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        v: Option<String>,
    }
    let join = if table == "opportunities" {
        " LEFT JOIN stages s ON s.id = r.stage_id"
    } else {
        ""
    };
    // Payments and invoices are never soft-deleted (they are reversed or voided).
    let live = if matches!(table, "payments" | "invoices") {
        "true"
    } else {
        "r.deleted_at IS NULL"
    };
    let sql = format!(
        "SELECT r.id, ({value_sql})::text AS v FROM {table} r{join} \
         WHERE {live} AND r.id > $1 ORDER BY r.id LIMIT $2"
    );
    let rows: Vec<I> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(after)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|i| (i.id, i.v)).collect())
}

/// The stored columns of a table.
pub fn columns(conn: &mut PgConnection, table: &str) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct C {
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let rows: Vec<C> = diesel::sql_query(
        "SELECT column_name::text AS column_name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind::<Text, _>(table)
    .load(conn)?;
    Ok(rows.into_iter().map(|c| c.column_name).collect())
}

/// The columns of a table with their SQL types (information_schema `data_type`).
pub fn column_types(conn: &mut PgConnection, table: &str) -> QueryResult<Vec<(String, String)>> {
    #[derive(QueryableByName)]
    struct C {
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        data_type: String,
    }
    let rows: Vec<C> = diesel::sql_query(
        "SELECT column_name::text AS column_name, data_type::text AS data_type FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind::<Text, _>(table)
    .load(conn)?;
    Ok(rows.into_iter().map(|c| (c.column_name, c.data_type)).collect())
}

/// The rules among `rules` for which the record matched when last considered.
pub fn matching_of(conn: &mut PgConnection, record: Uuid, rules: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    rule_enrollments::table
        .filter(rule_enrollments::record_id.eq(record))
        .filter(rule_enrollments::rule_id.eq_any(rules))
        .filter(rule_enrollments::matching.eq(true))
        .select(rule_enrollments::rule_id)
        .load(conn)
}

/// A user's pause from automatic assignment: (until, reason).
pub fn assignment_pause(conn: &mut PgConnection, user: Uuid) -> QueryResult<Option<(DateTime<Utc>, Option<String>)>> {
    #[derive(QueryableByName)]
    struct P {
        #[diesel(sql_type = Timestamptz)]
        until: DateTime<Utc>,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        reason: Option<String>,
    }
    let p: Option<P> = diesel::sql_query("SELECT until, reason FROM assignment_pauses WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .get_result(conn)
        .optional()?;
    Ok(p.map(|p| (p.until, p.reason)))
}

/// Sets (or with `None` ends) a user's pause from automatic assignment.
pub fn set_assignment_pause(
    conn: &mut PgConnection,
    user: Uuid,
    pause: Option<(DateTime<Utc>, Option<String>)>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    match pause {
        Some((until, reason)) => diesel::sql_query(
            "INSERT INTO assignment_pauses (user_id, until, reason, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET until = $2, reason = $3, updated_at = $4",
        )
        .bind::<diesel::sql_types::Uuid, _>(user)
        .bind::<Timestamptz, _>(until)
        .bind::<diesel::sql_types::Nullable<Text>, _>(reason)
        .bind::<Timestamptz, _>(now)
        .execute(conn)?,
        None => diesel::sql_query("DELETE FROM assignment_pauses WHERE user_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(user)
            .execute(conn)?,
    };
    Ok(())
}
