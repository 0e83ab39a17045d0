//! Soft delete and restore, one implementation for every object with a recycle bin.

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::accounts::Liveness;
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
