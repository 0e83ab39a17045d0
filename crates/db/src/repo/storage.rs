//! Records read in storage form (column names as stored), for record views and events:
//! decimals as exact strings (`"5000.00"`), integers as numbers, secrets left out.

use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Uuid as SqlUuid};
use serde_json::Value;
use uuid::Uuid;

use super::audit::SECRET_COLUMNS;
use crate::QueryResult;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Jsonb)]
    row: Value,
}

/// `to_jsonb(t)` with decimals as exact text (jsonb keeps a numeric's scale).
const EXACT: &str = "(SELECT jsonb_object_agg(key, CASE WHEN jsonb_typeof(value) = 'number' \
    AND value::text LIKE '%.%' THEN to_jsonb(value #>> '{}') ELSE value END) FROM jsonb_each(to_jsonb(t)))";

fn clean(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        for k in SECRET_COLUMNS {
            m.remove(*k);
        }
    }
    v
}

/// The row of `table` with this id. `table` is a fixed name, never input.
pub fn row(conn: &mut PgConnection, table: &'static str, id: Uuid) -> QueryResult<Option<Value>> {
    let rows: Vec<Row> = diesel::sql_query(format!("SELECT {EXACT} AS row FROM {table} t WHERE t.id = $1"))
        .bind::<SqlUuid, _>(id)
        .load(conn)?;
    Ok(rows.into_iter().next().map(|r| clean(r.row)))
}

/// The rows of `table` whose `column` is `id`, ordered by `order` (fixed names).
pub fn rows_of(
    conn: &mut PgConnection,
    table: &'static str,
    column: &'static str,
    id: Uuid,
    order: &'static str,
) -> QueryResult<Vec<Value>> {
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {EXACT} AS row FROM {table} t WHERE t.{column} = $1 ORDER BY t.{order}"
    ))
    .bind::<SqlUuid, _>(id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| clean(r.row)).collect())
}
