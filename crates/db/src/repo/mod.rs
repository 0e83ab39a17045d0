//! Repositories: free functions over `&mut PgConnection`, composable in a transaction.

pub mod accounts;
pub mod activities;
pub mod api_keys;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod board;
pub mod capture;
pub mod channels;
pub mod contacts;
pub mod contracts;
pub mod fields;
pub mod idempotency;
pub mod jobs;
pub mod leads;
pub mod opportunities;
pub mod outbox;
pub mod pipelines;
pub mod products;
pub mod quotes;
pub mod report_rollups;
pub mod report_subscriptions;
pub mod roles;
pub mod rules;
pub mod saved_reports;
pub mod soft_delete;
pub mod storage;
pub mod targets;
pub mod tasks;
pub mod teams;
pub mod timeline;
pub mod users;
pub mod webhooks;
pub mod workflow;

use diesel::prelude::*;
use diesel::sql_types::{Array, Uuid as SqlUuid};

/// Returns `ids` that are not in `table` (live rows only when it has `deleted_at`).
pub fn missing_ids(conn: &mut PgConnection, table: &str, ids: &[uuid::Uuid]) -> crate::QueryResult<Vec<uuid::Uuid>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: uuid::Uuid,
    }
    let rows: Vec<Id> = diesel::sql_query(format!(
        "SELECT x.id FROM unnest($1) AS x(id) WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = x.id)"
    ))
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
