//! A deal's timeline: activities, stage moves and field changes in one keyset-paged feed.

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::sql::Sql;
use crate::QueryResult;

/// One entry of a deal's merged timeline.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct TimelineRow {
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub ref_id: String,
    #[diesel(sql_type = Jsonb)]
    pub data: Value,
}

/// Which quote-to-cash entries a caller's timeline holds: the quotes, contracts and
/// payments in each read scope (`None`: no permission, none of them).
#[derive(Debug, Clone, Default)]
pub struct TimelineAccess {
    pub quotes: Option<ScopeFilter>,
    pub contracts: Option<ScopeFilter>,
    pub payments: Option<ScopeFilter>,
}

/// Stage changes, field changes, activities, tasks, outputs, quote and contract status
/// changes and payments of a deal, newest first,
/// strictly before `(at, ref_id)` when given.
pub fn timeline(
    conn: &mut PgConnection,
    id: Uuid,
    access: &TimelineAccess,
    before: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> QueryResult<Vec<TimelineRow>> {
    let mut sql = Sql::new(
        "SELECT * FROM (SELECT h.entered_at AS at, 'stage_change' AS kind, 'h:' || h.id AS ref_id, \
        jsonb_build_object('from_stage_id', h.from_stage_id, 'to_stage_id', h.to_stage_id, 'reason', h.reason, \
        'changed_by', h.changed_by, 'amount', h.amount::text, 'probability', h.probability) AS data \
        FROM stage_history h WHERE h.opportunity_id = ",
    );
    sql.bind::<SqlUuid, _>(id);
    sql.push(" UNION ALL SELECT a.occurred_at, 'field_change', 'a:' || a.id, \
        jsonb_build_object('action', a.action, 'actor_id', a.actor_id, 'changes', a.changes) \
        FROM audit_log a WHERE a.entity_type = 'opportunities' AND a.action NOT IN ('stage_changed') AND a.entity_id = ");
    sql.bind::<SqlUuid, _>(id);
    sql.push(
        " UNION ALL SELECT x.occurred_at, 'activity', 'x:' || x.id, \
        jsonb_build_object('id', x.id, 'activity_type', x.activity_type, 'subject', x.subject, 'content', x.content, \
        'outcome', x.outcome, 'owner_id', x.owner_id, 'duration_minutes', x.duration_minutes) \
        FROM activities x WHERE x.deleted_at IS NULL AND x.opportunity_id = ",
    );
    sql.bind::<SqlUuid, _>(id);
    sql.push(" UNION ALL SELECT coalesce(t.completed_at, t.created_at), 'task', 't:' || t.id, \
        jsonb_build_object('id', t.id, 'title', t.title, 'status', t.status, 'due_at', t.due_at, 'owner_id', t.owner_id) \
        FROM tasks t WHERE t.deleted_at IS NULL AND t.related_type = 'opportunity' AND t.related_id = ");
    sql.bind::<SqlUuid, _>(id);
    sql.push(
        " UNION ALL SELECT p.created_at, 'output', 'p:' || p.id, \
        jsonb_build_object('id', p.id, 'title', p.title, 'output_code', p.output_code, 'stage_id', p.stage_id, \
        'url', p.url, 'author_id', p.author_id) \
        FROM opportunity_outputs p WHERE p.deleted_at IS NULL AND p.opportunity_id = ",
    );
    sql.bind::<SqlUuid, _>(id);
    if let Some(scope) = &access.quotes {
        sql.push(
            " UNION ALL SELECT st.at, 'quote', 's:' || st.id, \
            jsonb_build_object('quote_id', q.id, 'number', q.number, 'revision', q.revision, 'from_status', st.from_status, \
            'to_status', st.to_status, 'total', q.total::text, 'actor_id', st.actor_id, 'reason', st.reason) \
            FROM status_transitions st JOIN quotes q ON q.id = st.entity_id \
            WHERE st.entity_type = 'quote' AND q.deleted_at IS NULL AND q.opportunity_id = ",
        );
        sql.bind::<SqlUuid, _>(id);
        sql.scope("q", scope);
    }
    if let Some(scope) = &access.contracts {
        sql.push(
            " UNION ALL SELECT st.at, 'contract', 's:' || st.id, \
            jsonb_build_object('contract_id', k.id, 'number', k.number, 'from_status', st.from_status, \
            'to_status', st.to_status, 'amount', k.amount::text, 'actor_id', st.actor_id, 'reason', st.reason) \
            FROM status_transitions st JOIN contracts k ON k.id = st.entity_id \
            WHERE st.entity_type = 'contract' AND k.deleted_at IS NULL AND k.opportunity_id = ",
        );
        sql.bind::<SqlUuid, _>(id);
        sql.scope("k", scope);
    }
    if let Some(scope) = &access.payments {
        sql.push(
            " UNION ALL SELECT y.created_at, 'payment', 'y:' || y.id, \
            jsonb_build_object('payment_id', y.id, 'contract_id', y.contract_id, 'amount', y.amount::text, \
            'received_on', y.received_on, 'method', y.method, 'reference', y.reference) \
            FROM payments y JOIN contracts k ON k.id = y.contract_id WHERE k.opportunity_id = ",
        );
        sql.bind::<SqlUuid, _>(id);
        sql.scope("y", scope);
    }
    sql.push(") t");
    if let Some((at, r)) = before {
        sql.push(" WHERE (t.at, t.ref_id) < (");
        sql.bind::<Timestamptz, _>(at);
        sql.push(", ");
        sql.bind::<Text, _>(r);
        sql.push(")");
    }
    sql.push(" ORDER BY t.at DESC, t.ref_id DESC LIMIT ");
    sql.bind::<BigInt, _>(limit);
    sql.into_query().load(conn)
}
