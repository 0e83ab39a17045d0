//! Soft delete and restore, one implementation for every object with a recycle bin.

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::accounts::Liveness;
use crate::sql::Sql;
use crate::QueryResult;

/// A row type whose table has `deleted_at`, `version` and `updated_at`.
pub trait SoftDelete: QueryableByName<Pg> + Sized + Send + 'static {
    /// The table (also the object's name in audit entries and events); fixed, never input.
    const TABLE: &'static str;
    /// The record in `scope` (`FOR UPDATE` when `lock`), live or deleted as asked.
    fn find(
        conn: &mut PgConnection,
        scope: &ScopeFilter,
        id: Uuid,
        liveness: Liveness,
        lock: bool,
    ) -> QueryResult<Option<Self>>;
    fn version(&self) -> i32;
    fn deleted_at(&self) -> Option<DateTime<Utc>>;
}

/// The record of `table` with this id in `scope` (`FOR UPDATE` when `lock`), live or
/// deleted as asked: the one lookup every repository's `find` is. `table` is a fixed
/// name, never input.
pub fn find_in<R: QueryableByName<Pg> + 'static>(
    conn: &mut PgConnection,
    table: &'static str,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<R>> {
    let select = format!("SELECT t.* FROM {table} t WHERE t.id = ");
    let mut sql = Sql::new(&select);
    sql.bind::<SqlUuid, _>(id);
    sql.push(match liveness {
        Liveness::Live => " AND t.deleted_at IS NULL",
        Liveness::Deleted => " AND t.deleted_at IS NOT NULL",
    });
    sql.scope("t", scope);
    if lock {
        sql.push(" FOR UPDATE");
    }
    sql.into_query().get_result(conn).optional()
}

/// Moves a record to the recycle bin at `at`, or restores it (`None`), bumping its
/// version. Returns the row as written.
pub fn set_deleted<R: SoftDelete>(conn: &mut PgConnection, id: Uuid, at: Option<DateTime<Utc>>) -> QueryResult<R> {
    diesel::sql_query(format!(
        "UPDATE {} SET deleted_at = $2, version = version + 1, updated_at = now() WHERE id = $1 RETURNING *",
        R::TABLE
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Timestamptz>, _>(at)
    .get_result(conn)
}

macro_rules! soft_delete {
    ($($module:ident :: $row:ident),* $(,)?) => {
        $(impl SoftDelete for super::$module::$row {
            const TABLE: &'static str = stringify!($module);
            fn find(
                conn: &mut PgConnection,
                scope: &ScopeFilter,
                id: Uuid,
                liveness: Liveness,
                lock: bool,
            ) -> QueryResult<Option<Self>> {
                super::$module::find(conn, scope, id, liveness, lock)
            }
            fn version(&self) -> i32 {
                self.version
            }
            fn deleted_at(&self) -> Option<DateTime<Utc>> {
                self.deleted_at
            }
        })*
    };
}

soft_delete!(
    accounts::AccountRow,
    contacts::ContactRow,
    leads::LeadRow,
    opportunities::OpportunityRow,
    activities::ActivityRow,
    tasks::TaskRow,
    quotes::QuoteRow,
);
