//! Test harness. Every test gets its own database, cloned from a template that is
//! migrated once per migration set (`CREATE DATABASE ... TEMPLATE`), so tests run in
//! parallel against the real Postgres. `TestApp` drives the real actix app in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod fixtures;
pub mod receiver;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crm_db::migrations::{quote_ident, run_pending, split_database_url};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use sha2::{Digest, Sha256};

pub use app::{Resp, TestApp};
pub use fixtures::Org;

/// Server URL used for tests (any database on the server; the name is replaced).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_db(url: &str, db: &str) -> String {
    let (admin, _) = split_database_url(url).expect("database URL must name a database");
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let root = base.strip_suffix("/postgres").unwrap_or(base);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

fn admin_conn() -> PgConnection {
    let (admin, _) = split_database_url(&server_url()).expect("database URL must name a database");
    PgConnection::establish(&admin).expect("cannot reach Postgres for tests; is it running?")
}

/// Hash of every migration's SQL: a new or edited migration gives a new template.
fn migrations_hash() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut h = Sha256::new();
    for e in entries {
        h.update(e.file_name().unwrap().to_string_lossy().as_bytes());
        for f in ["up.sql", "down.sql"] {
            if let Ok(sql) = std::fs::read(e.join(f)) {
                h.update(&sql);
            }
        }
    }
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Creates (once per process, guarded across processes by an advisory lock) the
/// migrated template database and returns its name.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("crm_tpl_{}", migrations_hash());
        let mut admin = admin_conn();
        diesel::sql_query("SELECT pg_advisory_lock(7317001)")
            .execute(&mut admin)
            .unwrap();
        let existing: Vec<Name> = diesel::sql_query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'crm\\_tpl\\_%' OR datname LIKE 'crm\\_test\\_%'",
        )
        .load(&mut admin)
        .unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        for db in &existing {
            // Old templates, and test databases left behind by killed runs (> 1 h old).
            let stale_template = db.datname.starts_with("crm_tpl_") && db.datname != name;
            let stale_test = db
                .datname
                .strip_prefix("crm_test_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|ts| ts.parse::<u64>().ok())
                .is_some_and(|ts| ts + 3600 < now);
            if stale_template || stale_test {
                if stale_template {
                    let _ = diesel::sql_query(format!("ALTER DATABASE {} IS_TEMPLATE false", quote_ident(&db.datname)))
                        .execute(&mut admin);
                }
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&db.datname)
                ))
                .execute(&mut admin);
            }
        }
        if !existing.iter().any(|d| d.datname == name) {
            let building = format!("{name}_build");
            diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&building)
            ))
            .execute(&mut admin)
            .unwrap();
            diesel::sql_query(format!("CREATE DATABASE {} ENCODING 'UTF8'", quote_ident(&building)))
                .execute(&mut admin)
                .unwrap();
            {
                let mut conn = PgConnection::establish(&with_db(&server_url(), &building)).unwrap();
                run_pending(&mut conn).expect("migrations apply to a fresh database");
            }
            diesel::sql_query(format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&building),
                quote_ident(&name)
            ))
            .execute(&mut admin)
            .unwrap();
            diesel::sql_query(format!("ALTER DATABASE {} IS_TEMPLATE true", quote_ident(&name)))
                .execute(&mut admin)
                .unwrap();
        }
        diesel::sql_query("SELECT pg_advisory_unlock(7317001)")
            .execute(&mut admin)
            .unwrap();
        name
    })
}

/// A database of its own for one test; dropped with the value.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let template = template();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let name = format!("crm_test_{now}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_conn();
        // Cloning needs the template to be idle; retry briefly if another clone races.
        let mut attempts = 0;
        loop {
            match diesel::sql_query(format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(template)
            ))
            .execute(&mut admin)
            {
                Ok(_) => break,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("cannot create test database: {e}"),
            }
        }
        TestDb {
            url: with_db(&server_url(), &name),
            name,
        }
    }

    /// A direct connection for setting up and inspecting data. Its writes are exempt
    /// from the audit requirement (`crm.unaudited_writes`); the app's pool is not.
    pub fn conn(&self) -> PgConnection {
        let mut c = PgConnection::establish(&self.url).unwrap();
        diesel::sql_query("SET crm.unaudited_writes = 'allowed'")
            .execute(&mut c)
            .unwrap();
        c
    }

    /// A connection like the app's pool gives: writes to business records need their
    /// audit entry and event (`crm_db::repo::audit::record`) before commit.
    pub fn app_conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    /// Runs a scalar count query, for assertions on what was written.
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let n: N = diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
            .get_result(&mut self.conn())
            .unwrap();
        n.n
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut admin = admin_conn();
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        ))
        .execute(&mut admin);
    }
}
