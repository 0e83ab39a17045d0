//! The catalogue of outbox event types, served at `GET /api/v1/meta/events`.
//!
//! Every event has the same versioned envelope (see [`envelope_schema`]); `type` is
//! `<object>.<action>` with the object in the singular. `state` is the record's row in
//! storage form after the write (secrets removed; `null` for parts without a row of
//! their own); `changes` maps each changed column to `{before, after}` in storage form.
//! Actions beyond plain create / update / delete / restore carry a `detail`.

use serde::Serialize;
use serde_json::{json, Value};

/// One object that events are about: its storage table and the actions it emits.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EventObject {
    /// The `object.type` of its events (the API resource name).
    pub object: &'static str,
    /// Where `state` comes from; `None` when the object has no row of its own.
    pub table: Option<&'static str>,
    pub actions: &'static [EventAction],
}

/// One action of an object: `<singular object>.<name>`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EventAction {
    pub name: &'static str,
    pub description: &'static str,
    /// Members of `detail`, when the action carries one.
    pub detail: &'static [&'static str],
}

const fn act(name: &'static str, description: &'static str) -> EventAction {
    EventAction {
        name,
        description,
        detail: &[],
    }
}

const fn act_d(name: &'static str, description: &'static str, detail: &'static [&'static str]) -> EventAction {
    EventAction {
        name,
        description,
        detail,
    }
}

const CREATED: EventAction = act("created", "The record was created; `changes` lists every set column.");
const UPDATED: EventAction = act("updated", "Columns of the record changed.");
const DELETED: EventAction = act("deleted", "The record was moved to the recycle bin (soft delete).");
const RESTORED: EventAction = act("restored", "The record was restored from the recycle bin.");
const EXPORTED: EventAction = act_d(
    "exported",
    "A CSV export of the list was taken; `object.id` is the export's id.",
    &["rows", "query", "columns"],
);
const MIGRATED: EventAction = act(
    "migrated",
    "A field definition change gave the record a value (`set_default` migration).",
);

/// What approval events carry: the instance, and what the action adds.
const APPROVAL_DETAIL: &[&str] = &[
    "instance_id",
    "object_type",
    "object_id",
    "status",
    "current_step",
    "requester_id",
    "approvers",
    "step",
    "next_step",
    "outcome",
    "auto",
    "reason",
    "comment",
    "from",
    "to",
];

/// Every object with events, and its actions.
pub const CATALOGUE: &[EventObject] = &[
    EventObject {
        object: "accounts",
        table: Some("accounts"),
        actions: &[CREATED, UPDATED, DELETED, RESTORED, EXPORTED, MIGRATED],
    },
    EventObject {
        object: "contacts",
        table: Some("contacts"),
        actions: &[CREATED, UPDATED, DELETED, RESTORED, EXPORTED, MIGRATED],
    },
    EventObject {
        object: "leads",
        table: Some("leads"),
        actions: &[
            CREATED,
            UPDATED,
            DELETED,
            RESTORED,
            EXPORTED,
            MIGRATED,
            act("assigned", "The lead was assigned to an owner."),
            act("converted", "The lead was converted to an account, contact and deal."),
            act(
                "responded",
                "The first activity on the lead was logged (response time).",
            ),
            act(
                "sla_breached",
                "The lead was still unanswered at its response due time (`sla_due_at`).",
            ),
        ],
    },
    EventObject {
        object: "opportunities",
        table: Some("opportunities"),
        actions: &[
            CREATED,
            UPDATED,
            DELETED,
            RESTORED,
            EXPORTED,
            MIGRATED,
            act_d(
                "stage_changed",
                "The deal entered another stage (forward, backward, closing or reopening).",
                &["from_stage", "to_stage", "move", "reopened", "reason"],
            ),
            act_d(
                "checklist_updated",
                "A checklist task of a stage was ticked or unticked.",
                &["opportunity_id", "stage", "task", "done"],
            ),
            act(
                "output_attached",
                "A required output (document) was attached to the deal; `changes.outputs.after` is it.",
            ),
            act_d(
                "output_removed",
                "An attached output was removed.",
                &["opportunity_id", "output_id"],
            ),
        ],
    },
    EventObject {
        object: "activities",
        table: Some("activities"),
        actions: &[CREATED, UPDATED, DELETED, MIGRATED],
    },
    EventObject {
        object: "tasks",
        table: Some("tasks"),
        actions: &[CREATED, UPDATED, DELETED, MIGRATED],
    },
    EventObject {
        object: "products",
        table: Some("products"),
        actions: &[CREATED, UPDATED, MIGRATED],
    },
    EventObject {
        object: "price_books",
        table: Some("price_books"),
        actions: &[CREATED, UPDATED],
    },
    EventObject {
        object: "quotes",
        table: Some("quotes"),
        actions: &[
            CREATED,
            UPDATED,
            DELETED,
            MIGRATED,
            act_d(
                "submitted",
                "The quote was submitted for discount approval.",
                &["from", "to", "reason"],
            ),
            act_d(
                "approved",
                "The quote's approval was granted.",
                &["from", "to", "reason"],
            ),
            act_d(
                "rejected",
                "The quote's approval was refused.",
                &["from", "to", "reason"],
            ),
            act_d(
                "withdrawn",
                "The quote's approval request was withdrawn.",
                &["from", "to", "reason"],
            ),
            act_d(
                "reopened",
                "A rejected quote was edited and is a draft again.",
                &["from", "to", "reason"],
            ),
            act_d("sent", "The quote was sent to the customer.", &["from", "to", "reason"]),
            act_d(
                "accepted",
                "The customer accepted the quote.",
                &["from", "to", "reason"],
            ),
            act_d(
                "declined",
                "The customer declined the quote.",
                &["from", "to", "reason"],
            ),
            act_d("expired", "The quote's validity ended.", &["from", "to", "reason"]),
        ],
    },
    EventObject {
        object: "contracts",
        table: Some("contracts"),
        actions: &[
            CREATED,
            UPDATED,
            MIGRATED,
            act_d("amended", "An amendment changed the signed contract.", &["amendment"]),
            act("payment_plan_set", "The payment plan (instalments) was set."),
            act_d(
                "submitted",
                "The contract was submitted for legal review.",
                &["from", "to", "reason"],
            ),
            act_d(
                "review_passed",
                "Legal review passed; awaiting signature.",
                &["from", "to", "reason"],
            ),
            act_d(
                "review_rejected",
                "Legal review rejected the contract.",
                &["from", "to", "reason"],
            ),
            act_d(
                "review_withdrawn",
                "The legal review request was withdrawn.",
                &["from", "to", "reason"],
            ),
            act_d(
                "signed",
                "The contract was signed (its deal is won).",
                &["from", "to", "reason"],
            ),
            act_d("activated", "The contract took effect.", &["from", "to", "reason"]),
            act_d("completed", "The contract was fulfilled.", &["from", "to", "reason"]),
            act_d(
                "terminated",
                "The contract was terminated early.",
                &["from", "to", "reason"],
            ),
        ],
    },
    EventObject {
        object: "invoices",
        table: Some("invoices"),
        actions: &[
            act("issued", "An invoice was issued against the contract."),
            act("voided", "The invoice was voided."),
        ],
    },
    EventObject {
        object: "payments",
        table: Some("payments"),
        actions: &[
            act("received", "A payment was recorded."),
            act("allocated", "The payment was allocated to instalments."),
        ],
    },
    EventObject {
        object: "approvals",
        table: Some("approval_instances"),
        actions: &[
            act_d("submitted", "An approval was requested.", APPROVAL_DETAIL),
            act_d(
                "step_approved",
                "A step was approved; the next step is pending.",
                APPROVAL_DETAIL,
            ),
            act_d(
                "decided",
                "The approval reached its outcome (approved or rejected).",
                APPROVAL_DETAIL,
            ),
            act_d(
                "delegated",
                "An approver handed the decision to someone else.",
                APPROVAL_DETAIL,
            ),
            act_d("escalated", "An overdue decision was escalated.", APPROVAL_DETAIL),
            act_d("withdrawn", "The requester withdrew the approval.", APPROVAL_DETAIL),
        ],
    },
    EventObject {
        object: "approval_definitions",
        table: Some("approval_definitions"),
        actions: &[CREATED, UPDATED],
    },
    EventObject {
        object: "pipelines",
        table: Some("pipelines"),
        actions: &[
            CREATED,
            UPDATED,
            act_d("stage_added", "A stage was added.", &["pipeline_id", "stage_id"]),
            act_d(
                "stage_updated",
                "A stage's settings or criteria changed.",
                &["pipeline_id", "stage_id"],
            ),
            act_d("stages_reordered", "The stages were reordered.", &["pipeline_id"]),
        ],
    },
    EventObject {
        object: "fields",
        table: Some("field_definitions"),
        actions: &[
            CREATED,
            UPDATED,
            act("archived", "The custom field was archived."),
            act("restored", "The custom field was restored."),
        ],
    },
    EventObject {
        object: "layouts",
        table: Some("layouts"),
        actions: &[act_d("saved", "A form layout was saved.", &["object", "pipeline_id"])],
    },
    EventObject {
        object: "roles",
        table: Some("roles"),
        actions: &[
            CREATED,
            UPDATED,
            DELETED,
            act_d(
                "field_permissions_updated",
                "The role's field permissions changed.",
                &["role_id"],
            ),
        ],
    },
    EventObject {
        object: "users",
        table: Some("users"),
        actions: &[
            CREATED,
            UPDATED,
            act_d(
                "login_locked",
                "Repeated failed sign-ins locked an account or address.",
                &["user_id", "address", "locked_until", "lock"],
            ),
            act(
                "assignment_paused",
                "The user paused (or resumed) automatic assignment to them (`PUT /me/assignment-pause`).",
            ),
        ],
    },
    EventObject {
        object: "dashboards",
        table: Some("dashboards"),
        actions: &[CREATED, UPDATED, act("deleted", "The dashboard was deleted.")],
    },
    EventObject {
        object: "reports",
        table: None,
        actions: &[act_d(
            "exported",
            "A report was exported as a file (CSV or XLSX); `object.id` is the export's id.",
            &["report", "format", "rows", "query"],
        )],
    },
    EventObject {
        object: "report_subscriptions",
        table: Some("report_subscriptions"),
        actions: &[
            CREATED,
            UPDATED,
            act(
                "deleted",
                "The subscription was deleted (or went with its saved report or dashboard).",
            ),
        ],
    },
    EventObject {
        object: "saved_reports",
        table: Some("saved_reports"),
        actions: &[CREATED, UPDATED, act("deleted", "The saved report was deleted.")],
    },
    EventObject {
        object: "sales_targets",
        table: Some("sales_targets"),
        actions: &[CREATED, UPDATED, act("deleted", "The target was deleted.")],
    },
    EventObject {
        object: "teams",
        table: Some("teams"),
        actions: &[CREATED, UPDATED, DELETED],
    },
    EventObject {
        object: "api_keys",
        table: Some("api_keys"),
        actions: &[CREATED, act("revoked", "The API key was revoked.")],
    },
    EventObject {
        object: "settings",
        table: None,
        actions: &[act("updated", "An organisation setting changed; `changes` names it.")],
    },
];

/// The catalogue entry of `<object>.<action>`.
pub fn find(object: &str, action: &str) -> Option<&'static EventAction> {
    CATALOGUE
        .iter()
        .find(|o| o.object == object)
        .and_then(|o| o.actions.iter().find(|a| a.name == action))
}

/// The storage table of an object events are about (`fields` are `field_definitions`).
pub fn table_of(object: &str) -> Option<&'static str> {
    CATALOGUE.iter().find(|o| o.object == object).and_then(|o| o.table)
}

/// Whether `<object>.<action>` is in the catalogue.
pub fn is_catalogued(object: &str, action: &str) -> bool {
    find(object, action).is_some()
}

/// `detail` of an event: the members of `payload` its action lists, or none.
pub fn detail(object: &str, action: &str, payload: &Value) -> Option<Value> {
    let a = find(object, action)?;
    if a.detail.is_empty() {
        return None;
    }
    let mut out = serde_json::Map::new();
    for k in a.detail {
        if let Some(v) = payload.get(*k) {
            out.insert((*k).to_owned(), v.clone());
        }
    }
    Some(Value::Object(out))
}

/// JSON Schema of the envelope every event has.
pub fn envelope_schema() -> Value {
    json!({
        "type": "object",
        "required": ["schema_version", "id", "type", "occurred_at", "actor", "object", "changes", "state"],
        "properties": {
            "schema_version": {"type": "integer", "const": 1, "description": "Bumped only by incompatible changes."},
            "id": {"type": "string", "format": "uuid", "description": "Stable event id (UUID v7); deduplicate by it."},
            "type": {"type": "string", "description": "`<object>.<action>`, object in the singular (`opportunity.stage_changed`)."},
            "occurred_at": {"type": "string", "format": "date-time", "description": "When the write's transaction recorded it."},
            "actor": {
                "type": "object",
                "required": ["kind"],
                "properties": {
                    "kind": {"type": "string", "enum": ["user", "api_key", "rule", "system"]},
                    "user_id": {"type": ["string", "null"], "format": "uuid", "description": "The acting user; a rule's configured user; null for the system."},
                    "api_key_id": {"type": ["string", "null"], "format": "uuid"},
                    "rule_id": {"type": ["string", "null"], "format": "uuid"},
                    "request_id": {"type": ["string", "null"], "description": "The API request's X-Request-Id."}
                }
            },
            "object": {
                "type": "object",
                "required": ["type", "id"],
                "properties": {
                    "type": {"type": "string", "description": "The object (API resource) name, e.g. `opportunities`."},
                    "id": {"type": "string", "format": "uuid"},
                    "version": {"type": ["integer", "null"], "description": "The record's version after the write, when it has one."}
                }
            },
            "changes": {
                "type": "object",
                "description": "Changed columns in storage form: `{column: {before, after}}`; custom fields as `custom.<key>`. For writes to a record's parts (checklist, outputs, stages, lines) the part's change.",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"before": {}, "after": {}}
                }
            },
            "state": {
                "type": ["object", "null"],
                "description": "The record's row after the write in storage form (columns as listed under `columns`), secrets removed; null for objects without a row."
            },
            "detail": {"type": "object", "description": "What the action adds beyond the record; members listed per action."}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_and_action_is_listed_once() {
        let mut objects: Vec<&str> = CATALOGUE.iter().map(|o| o.object).collect();
        objects.sort_unstable();
        let n = objects.len();
        objects.dedup();
        assert_eq!(objects.len(), n, "an object is listed twice");
        for o in CATALOGUE {
            let mut names: Vec<&str> = o.actions.iter().map(|a| a.name).collect();
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "{} lists an action twice", o.object);
        }
        assert!(is_catalogued("opportunities", "stage_changed"));
        assert!(!is_catalogued("opportunities", "teleported"));
    }
}
