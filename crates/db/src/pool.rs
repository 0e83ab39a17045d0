//! Connection pool and the one place where diesel work leaves the async executor.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

/// Failure to get a connection or to run the blocking task.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database task failed: {0}")]
    Task(String),
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_size: u32,
    pub min_idle: Option<u32>,
    pub connection_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 10,
            min_idle: Some(2),
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds the pool; fails fast when the database is unreachable.
pub fn build_pool(database_url: &str, cfg: &PoolConfig) -> Result<PgPool, diesel::r2d2::PoolError> {
    Pool::builder()
        .max_size(cfg.max_size)
        .min_idle(cfg.min_idle)
        .connection_timeout(cfg.connection_timeout)
        .test_on_check_out(false)
        .build(ConnectionManager::<PgConnection>::new(database_url))
}

/// Shared handle to the pool. Work runs on tokio's blocking threads; concurrency is
/// bounded by the pool size, and waiting for a connection by the pool timeout.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Db { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    pub async fn run<F, T, E>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        match tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => Err(DbError::Task(e.to_string()).into()),
        }
    }

    /// Pool gauges for `/metrics`: (connections open, idle).
    pub fn state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }
}
