//! The event catalogue served at `GET /api/v1/meta/events`.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Every outbox event type, its envelope and the storage columns of its `state`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventCatalogue {
    /// The envelope's `schema_version`.
    pub schema_version: i32,
    /// JSON Schema of the envelope every event has.
    #[schema(value_type = Object)]
    pub envelope: Value,
    pub objects: Vec<EventObjectDto>,
}

/// An object that events are about.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventObjectDto {
    /// `object.type` in its events (the API resource name).
    pub object: String,
    /// Columns of `state` and the keys of `changes` (custom fields: `custom.<key>`);
    /// empty for objects without a row of their own.
    pub columns: Vec<StorageColumnDto>,
    pub events: Vec<EventTypeDto>,
}

/// One storage column.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageColumnDto {
    pub name: String,
    /// The Postgres type (`uuid`, `text`, `numeric`, `timestamp with time zone`, `jsonb` ...);
    /// numerics are JSON numbers, timestamps RFC 3339 strings.
    pub data_type: String,
    pub nullable: bool,
}

/// One event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeDto {
    /// `<object in the singular>.<action>`, e.g. `opportunity.stage_changed`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub action: String,
    pub description: String,
    /// Members of the event's `detail`; empty when it has none.
    pub detail: Vec<String>,
}
