//! Audit trail (append-only) and the transactional outbox.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::schema::{audit_log, outbox_events};
use crate::QueryResult;

/// Who is writing, carried into every audit entry and event.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The acting user (a rule acts as its configured user); nil for the system.
    pub user_id: Uuid,
    pub api_key_id: Option<Uuid>,
    /// The automation rule acting, if any.
    pub rule_id: Option<Uuid>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The system itself (scheduled jobs such as approval escalation); recorded with no user.
    pub fn system() -> Actor {
        Actor {
            user_id: Uuid::nil(),
            api_key_id: None,
            rule_id: None,
            request_id: None,
        }
    }

    fn user(&self) -> Option<Uuid> {
        (!self.user_id.is_nil()).then_some(self.user_id)
    }

    /// `user`, `api_key`, `rule` or `system`, as events name it.
    pub fn kind(&self) -> &'static str {
        if self.rule_id.is_some() {
            "rule"
        } else if self.api_key_id.is_some() {
            "api_key"
        } else if self.user_id.is_nil() {
            "system"
        } else {
            "user"
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewAudit<'a> {
    actor_id: Option<Uuid>,
    api_key_id: Option<Uuid>,
    rule_id: Option<Uuid>,
    request_id: Option<&'a str>,
    entity_type: &'a str,
    entity_id: Uuid,
    action: &'a str,
    changes: Value,
}

#[derive(Insertable)]
#[diesel(table_name = outbox_events)]
struct NewEvent<'a> {
    event_id: Uuid,
    event_type: &'a str,
    aggregate_type: &'a str,
    aggregate_id: Uuid,
    payload: Value,
    actor_id: Option<Uuid>,
}

/// Version of the event envelope; bumped only by incompatible changes.
pub const EVENT_SCHEMA_VERSION: i32 = 1;

/// Storage columns never carried by an event or an audit entry.
pub const SECRET_COLUMNS: &[&str] = &["password_hash", "key_hash", "token_hash", "request_hash"];

#[derive(QueryableByName)]
struct Pending {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
    old_row: Option<Value>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
    new_row: Option<Value>,
}

/// The captured storage-form rows of `entity` written in this transaction (oldest
/// first), consumed: the record's state before the first and after the last write.
fn take_pending(conn: &mut PgConnection, entity_type: &str, entity_id: Uuid) -> QueryResult<Option<(Value, Value)>> {
    let rows: Vec<Pending> = diesel::sql_query(
        "WITH taken AS (DELETE FROM pending_changes WHERE tx_id = pg_current_xact_id() \
         AND entity_type = $1 AND entity_id = $2 RETURNING seq, old_row, new_row) \
         SELECT old_row, new_row FROM taken ORDER BY seq",
    )
    .bind::<diesel::sql_types::Text, _>(entity_type)
    .bind::<diesel::sql_types::Uuid, _>(entity_id)
    .load(conn)?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(None);
    };
    let clean = |v: &Option<Value>| match v {
        Some(Value::Object(m)) => {
            let mut m = m.clone();
            for k in SECRET_COLUMNS {
                m.remove(*k);
            }
            Value::Object(m)
        }
        _ => Value::Null,
    };
    Ok(Some((clean(&first.old_row), clean(&last.new_row))))
}

/// Records one write: an audit entry with field-level changes and an outbox event
/// `<entity>.<action>`. Call inside the write's transaction, after the write.
///
/// The event is the versioned envelope documented at `GET /api/v1/meta/events`: its
/// `state` and `changes` come from the rows the database captured for this record in
/// this transaction (storage form, secrets removed), not from the API representation.
/// `changes` is the caller's field-level diff, used where nothing was captured (writes
/// to a record's parts such as checklist items, lines or stages). `detail` holds what
/// an action adds beyond the record (`stage_changed`: from / to stage, direction); only
/// the members the catalogue (`crm_domain::events`) lists for the action are kept.
pub fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    entity_type: &str,
    entity_id: Uuid,
    action: &str,
    changes: Map<String, Value>,
    detail: Value,
) -> QueryResult<()> {
    let captured = take_pending(conn, entity_type, entity_id)?;
    let (state, stored_changes) = match &captured {
        Some((before, after)) => {
            let mut diff = crm_domain::diff::changes(before, after);
            for k in SECRET_COLUMNS {
                diff.remove(*k);
            }
            // A write to a record's parts may leave its own row unchanged but for
            // bookkeeping; the caller's diff then says what changed.
            if diff.is_empty() {
                diff = changes.clone();
            }
            (after.clone(), diff)
        }
        None => (Value::Null, changes.clone()),
    };
    // A caller with nothing to add records what the database captured.
    let changes = if changes.is_empty() {
        stored_changes.clone()
    } else {
        changes
    };
    let occurred_at: DateTime<Utc> = diesel::insert_into(audit_log::table)
        .values(NewAudit {
            actor_id: actor.user(),
            api_key_id: actor.api_key_id,
            rule_id: actor.rule_id,
            request_id: actor.request_id.as_deref(),
            entity_type,
            entity_id,
            action,
            changes: Value::Object(changes),
        })
        .returning(audit_log::occurred_at)
        .get_result(conn)?;
    let event_type = format!("{}.{}", singular(entity_type), action);
    let event_id = Uuid::now_v7();
    let version = state.get("version").cloned().unwrap_or(Value::Null);
    let mut envelope = json!({
        "schema_version": EVENT_SCHEMA_VERSION,
        "id": event_id,
        "type": event_type,
        "occurred_at": occurred_at,
        "actor": {
            "kind": actor.kind(),
            "user_id": actor.user(),
            "api_key_id": actor.api_key_id,
            "rule_id": actor.rule_id,
            "request_id": actor.request_id,
        },
        "object": {"type": entity_type, "id": entity_id, "version": version},
        "changes": stored_changes,
        "state": state,
    });
    debug_assert!(
        crm_domain::events::is_catalogued(entity_type, action),
        "event {entity_type}.{action} is not in crm_domain::events::CATALOGUE"
    );
    if let Some(d) = crm_domain::events::detail(entity_type, action, &detail) {
        envelope["detail"] = d;
    }
    diesel::insert_into(outbox_events::table)
        .values(NewEvent {
            event_id,
            event_type: &event_type,
            aggregate_type: entity_type,
            aggregate_id: entity_id,
            payload: envelope,
            actor_id: actor.user(),
        })
        .execute(conn)?;
    Ok(())
}

/// Records every other write to `entity_type` captured in this transaction (side
/// effects of the operation, such as another pipeline losing the default flag, or a
/// field migration setting a value on many records): one audit entry and event each,
/// with the changes the database captured.
pub fn record_pending(conn: &mut PgConnection, actor: &Actor, entity_type: &str, action: &str) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        entity_id: Uuid,
    }
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT entity_id FROM pending_changes WHERE tx_id = pg_current_xact_id() AND entity_type = $1 \
         GROUP BY entity_id ORDER BY min(seq)",
    )
    .bind::<diesel::sql_types::Text, _>(entity_type)
    .load(conn)?;
    for id in &ids {
        record(conn, actor, entity_type, id.entity_id, action, Map::new(), Value::Null)?;
    }
    Ok(ids.len())
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
    pub event_id: Uuid,
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

/// One storage column, as event `state` and `changes` carry it.
#[derive(Debug, Clone, QueryableByName)]
pub struct StorageColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub data_type: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub nullable: bool,
}

/// The columns of `tables` in storage order, secrets left out: the shape of `state`.
pub fn storage_columns(conn: &mut PgConnection, tables: &[&str]) -> QueryResult<Vec<StorageColumn>> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    let secrets: Vec<String> = SECRET_COLUMNS.iter().map(|t| (*t).to_owned()).collect();
    diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'YES' AS nullable \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = ANY($1) AND NOT column_name = ANY($2) ORDER BY table_name, ordinal_position",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(tables)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(secrets)
    .load(conn)
}
