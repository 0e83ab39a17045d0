//! Audit trail (append-only) and the transactional outbox.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::schema::{audit_log, outbox_events};
use crate::QueryResult;

/// Who is writing, carried into every audit entry and event.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The system itself (scheduled jobs such as approval escalation); recorded with no user.
    pub fn system() -> Actor {
        Actor {
            user_id: Uuid::nil(),
            api_key_id: None,
            request_id: None,
        }
    }

    fn user(&self) -> Option<Uuid> {
        (!self.user_id.is_nil()).then_some(self.user_id)
    }
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewAudit<'a> {
    actor_id: Option<Uuid>,
    api_key_id: Option<Uuid>,
    request_id: Option<&'a str>,
    entity_type: &'a str,
    entity_id: Uuid,
    action: &'a str,
    changes: Value,
}

#[derive(Insertable)]
#[diesel(table_name = outbox_events)]
struct NewEvent<'a> {
    event_type: &'a str,
    aggregate_type: &'a str,
    aggregate_id: Uuid,
    payload: Value,
    actor_id: Option<Uuid>,
}

/// Records one write: an audit entry with field-level changes and an outbox event
/// `<entity>.<action>` carrying `payload`. Call inside the write's transaction.
pub fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    entity_type: &str,
    entity_id: Uuid,
    action: &str,
    changes: Map<String, Value>,
    payload: Value,
) -> QueryResult<()> {
    let changed_fields: Vec<Value> = changes.keys().map(|k| Value::String(k.clone())).collect();
    diesel::insert_into(audit_log::table)
        .values(NewAudit {
            actor_id: actor.user(),
            api_key_id: actor.api_key_id,
            request_id: actor.request_id.as_deref(),
            entity_type,
            entity_id,
            action,
            changes: Value::Object(changes),
        })
        .execute(conn)?;
    let event_type = format!("{}.{}", singular(entity_type), action);
    diesel::insert_into(outbox_events::table)
        .values(NewEvent {
            event_type: &event_type,
            aggregate_type: entity_type,
            aggregate_id: entity_id,
            payload: serde_json::json!({ "data": payload, "changed_fields": changed_fields }),
            actor_id: actor.user(),
        })
        .execute(conn)?;
    Ok(())
}

/// `accounts` -> `account`, `opportunities` -> `opportunity`, for event names.
pub fn singular(entity_type: &str) -> String {
    if let Some(stem) = entity_type.strip_suffix("ies") {
        format!("{stem}y")
    } else {
        entity_type.strip_suffix('s').unwrap_or(entity_type).to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_names_use_the_singular() {
        for (plural, one) in [
            ("accounts", "account"),
            ("opportunities", "opportunity"),
            ("activities", "activity"),
            ("api_keys", "api_key"),
        ] {
            assert_eq!(super::singular(plural), one);
        }
    }
}

/// One audit entry as read back.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub entity_type: String,
    pub entity_id: Uuid,
    pub action: String,
    pub changes: Value,
}

/// History of one record, newest first, after (older than) audit id `before`.
pub fn history(
    conn: &mut PgConnection,
    entity_type: &str,
    entity_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut q = audit_log::table
        .filter(audit_log::entity_type.eq(entity_type))
        .filter(audit_log::entity_id.eq(entity_id))
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(audit_log::id.lt(b));
    }
    q.load(conn)
}

/// One outbox event as read back.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = outbox_events)]
pub struct EventRow {
    pub id: i64,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub payload: Value,
    pub actor_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
}

/// Events of one aggregate in order (used by tests and, later, by consumers).
pub fn events_for(conn: &mut PgConnection, aggregate_id: Uuid) -> QueryResult<Vec<EventRow>> {
    outbox_events::table
        .filter(outbox_events::aggregate_id.eq(aggregate_id))
        .select(EventRow::as_select())
        .order(outbox_events::id.asc())
        .load(conn)
}
