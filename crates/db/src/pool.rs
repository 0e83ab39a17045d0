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
    #[error("timed out waiting for a database connection")]
    Busy,
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

/// Shared handle to the pool. Work runs on tokio's blocking threads; at most
/// pool-size tasks hold a thread at once, and the rest wait in a fair (FIFO) async
/// queue for at most the pool timeout, instead of piling up blocked threads.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    wait: Duration,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        let size = usize::try_from(pool.max_size()).unwrap_or(10);
        let wait = pool.connection_timeout();
        Db {
            pool,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(size)),
            wait,
        }
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
        let permit = match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(DbError::Busy.into()),
        };
        let pool = self.pool.clone();
        match tokio::task::spawn_blocking(move || {
            let _permit = permit;
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
