//! Settings, gap-free document numbers and the status-transition log.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{number_sequences, settings, status_transitions};
use crate::QueryResult;

pub fn setting(conn: &mut PgConnection, key: &str) -> QueryResult<Option<Value>> {
    settings::table.find(key).select(settings::value).first(conn).optional()
}

/// The payment rules (`payments` setting), defaults where unset or unreadable.
pub fn payment_rules(conn: &mut PgConnection) -> QueryResult<crm_domain::money::PaymentRules> {
    Ok(setting(conn, "payments")?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

pub fn put_setting(conn: &mut PgConnection, key: &str, value: &Value) -> QueryResult<()> {
    diesel::insert_into(settings::table)
        .values((settings::key.eq(key), settings::value.eq(value)))
        .on_conflict(settings::key)
        .do_update()
        .set((settings::value.eq(value), settings::updated_at.eq(diesel::dsl::now)))
        .execute(conn)?;
    Ok(())
}

/// The next number of `series` in `year`. The counter row stays locked until the
/// caller's transaction ends, so concurrent callers queue and a rolled-back caller
/// leaves no gap.
pub fn next_number(conn: &mut PgConnection, series: &str, year: i32) -> QueryResult<i32> {
    diesel::insert_into(number_sequences::table)
        .values((
            number_sequences::series.eq(series),
            number_sequences::year.eq(year),
            number_sequences::last_value.eq(1),
        ))
        .on_conflict((number_sequences::series, number_sequences::year))
        .do_update()
        .set(number_sequences::last_value.eq(number_sequences::last_value + 1))
        .returning(number_sequences::last_value)
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = status_transitions)]
pub struct TransitionRow {
    pub id: i64,
    pub entity_type: String,
    pub entity_id: Uuid,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
}

/// Records a status change.
pub fn transition(
    conn: &mut PgConnection,
    entity_type: &str,
    entity_id: Uuid,
    from: Option<&str>,
    to: &str,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(status_transitions::table)
        .values((
            status_transitions::entity_type.eq(entity_type),
            status_transitions::entity_id.eq(entity_id),
            status_transitions::from_status.eq(from),
            status_transitions::to_status.eq(to),
            status_transitions::actor_id.eq(actor),
            status_transitions::reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

/// Status changes of one record, oldest first.
pub fn transitions(conn: &mut PgConnection, entity_type: &str, entity_id: Uuid) -> QueryResult<Vec<TransitionRow>> {
    status_transitions::table
        .filter(status_transitions::entity_type.eq(entity_type))
        .filter(status_transitions::entity_id.eq(entity_id))
        .order(status_transitions::id)
        .select(TransitionRow::as_select())
        .load(conn)
}
