//! `GET /api/v1/meta/events`: the documented, versioned shape of outbox events (what
//! webhooks, rules and other consumers receive).

use actix_web::{get, web, HttpResponse};
use crm_db::repo::audit;
use crm_domain::events::{envelope_schema, CATALOGUE};

use super::Unauthorized;
use crate::auth::Auth;
use crate::dto::events::{EventCatalogue, EventObjectDto, EventTypeDto, StorageColumnDto};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The event catalogue: the envelope schema, and per object its event types (with the
/// members of their `detail`) and the storage columns its `state` and `changes` use.
#[utoipa::path(
    tag = "fields",
    responses((status = 200, description = "Event types", body = EventCatalogue), Unauthorized)
)]
#[get("/meta/events")]
pub async fn event_catalogue(state: web::Data<AppState>, _auth: Auth) -> ApiResult<HttpResponse> {
    let tables: Vec<&'static str> = CATALOGUE.iter().filter_map(|o| o.table).collect();
    let columns = state
        .db
        .run(move |c| audit::storage_columns(c, &tables).map_err(ApiError::from))
        .await?;
    let objects = CATALOGUE
        .iter()
        .map(|o| EventObjectDto {
            object: o.object.into(),
            columns: columns
                .iter()
                .filter(|c| Some(c.table_name.as_str()) == o.table)
                .map(|c| StorageColumnDto {
                    name: c.column_name.clone(),
                    data_type: c.data_type.clone(),
                    nullable: c.nullable,
                })
                .collect(),
            events: o
                .actions
                .iter()
                .map(|a| EventTypeDto {
                    event_type: format!("{}.{}", audit::singular(o.object), a.name),
                    action: a.name.into(),
                    description: a.description.into(),
                    detail: a.detail.iter().map(|d| (*d).to_owned()).collect(),
                })
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventCatalogue {
        schema_version: audit::EVENT_SCHEMA_VERSION,
        envelope: envelope_schema(),
        objects,
    }))
}
