//! Persistence layer: schema, rows, repositories over `&mut PgConnection`, the pool and
//! its blocking hand-off, migrations and demo data.

pub mod migrations;
pub mod pool;
pub mod repo;
pub mod schema;
pub mod sql;

pub use pool::{Db, DbError, PgPool};

/// Result of a repository call.
pub type QueryResult<T> = Result<T, diesel::result::Error>;
