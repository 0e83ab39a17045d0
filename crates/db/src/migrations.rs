//! Embedded migrations and database creation.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Applies pending migrations; returns the versions applied.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, BoxError> {
    let applied = conn.run_pending_migrations(MIGRATIONS)?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Number of migrations not yet applied (0 when the schema is current).
pub fn pending_count(conn: &mut PgConnection) -> Result<usize, BoxError> {
    Ok(conn.pending_migrations(MIGRATIONS)?.len())
}

/// Splits a database URL into (URL of the `postgres` maintenance database, db name).
pub fn split_database_url(url: &str) -> Option<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://")? + 3;
    let slash = base[scheme_end..].rfind('/')? + scheme_end;
    let name = &base[slash + 1..];
    if name.is_empty() {
        return None;
    }
    let mut admin = format!("{}/postgres", &base[..slash]);
    if let Some(q) = query {
        admin.push('?');
        admin.push_str(q);
    }
    Some((admin, name.to_owned()))
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates the database named in `url` when it does not exist. Returns true if created.
pub fn create_database_if_missing(url: &str) -> Result<bool, BoxError> {
    let (admin_url, name) = split_database_url(url).ok_or("DATABASE_URL has no database name")?;
    if PgConnection::establish(url).is_ok() {
        return Ok(false);
    }
    let mut admin = PgConnection::establish(&admin_url)?;
    let exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(&name)
        .get_result::<Exists>(&mut admin)?
        .exists;
    if exists {
        return Ok(false);
    }
    diesel::sql_query(format!("CREATE DATABASE {} ENCODING 'UTF8'", quote_ident(&name))).execute(&mut admin)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_is_split_into_admin_url_and_name() {
        assert_eq!(
            split_database_url("postgres://postgres@127.0.0.1:5432/crm"),
            Some(("postgres://postgres@127.0.0.1:5432/postgres".into(), "crm".into()))
        );
        assert_eq!(
            split_database_url("postgres://u:p@h/db_1?sslmode=disable"),
            Some(("postgres://u:p@h/postgres?sslmode=disable".into(), "db_1".into()))
        );
        assert_eq!(split_database_url("postgres://h/"), None);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
