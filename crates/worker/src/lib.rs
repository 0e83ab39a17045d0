//! Background work on Postgres alone: job workers per queue, periodic schedules that
//! fire once per period across all instances, and the outbox dispatcher that hands
//! every event to every subscriber in commit order.
//!
//! The queue itself is `crm_db::repo::jobs` (SKIP LOCKED claims under a lease, backoff
//! with jitter, a dead state, unique keys); the stream is `crm_db::repo::outbox`. This
//! crate runs them: [`Worker::start`] spawns the threads, [`Worker::shutdown`] lets
//! running jobs finish.

pub mod builtin;
pub mod dispatch;
pub mod egress;
mod listen;
pub mod metrics;
pub mod robots;
mod run;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crm_app::Clock;
use crm_db::repo::outbox::Delivered;
use crm_db::PgPool;
use diesel::PgConnection;
use serde_json::Value;

pub use metrics::WorkerMetrics;
pub use run::Worker;

/// What a job handler or subscriber returns when it fails.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a job handler sees besides its connection and payload.
#[derive(Clone)]
pub struct JobContext {
    pub clock: Clock,
    /// The job's attempt (1 on the first run).
    pub attempt: i32,
}

impl JobContext {
    /// The system actor at the worker's clock, for business operations.
    pub fn system(&self) -> crm_app::Ctx {
        crm_app::Ctx::system(self.clock.clone())
    }
}

/// A job handler: runs inside the job's transaction (its effects commit with the job's
/// removal, or roll back with a failure).
pub type Handler = Arc<dyn Fn(&mut PgConnection, &JobContext, &Value) -> Result<(), BoxError> + Send + Sync>;

/// A consumer of the event stream. `handle` runs inside the dispatch transaction that
/// also moves the subscriber's position; it must be idempotent by event id (an event can
/// arrive again after a crash between handling and recording, or from a redelivery).
pub trait Subscriber: Send + Sync {
    fn name(&self) -> &'static str;
    fn handle(&self, conn: &mut PgConnection, ctx: &JobContext, event: &Delivered) -> Result<(), BoxError>;
}

/// A periodic job: `kind` is enqueued on `queue` once every `every`.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub queue: String,
    pub kind: String,
    pub every: Duration,
}

/// Job kinds and their handlers, schedules and subscribers.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, Handler>,
    schedules: Vec<Schedule>,
    subscribers: Vec<Arc<dyn Subscriber>>,
}

impl Registry {
    pub fn handle<F>(&mut self, kind: &str, f: F) -> &mut Self
    where
        F: Fn(&mut PgConnection, &JobContext, &Value) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.handlers.insert(kind.to_owned(), Arc::new(f));
        self
    }

    pub fn every(&mut self, name: &str, queue: &str, kind: &str, every: Duration) -> &mut Self {
        self.schedules.push(Schedule {
            name: name.to_owned(),
            queue: queue.to_owned(),
            kind: kind.to_owned(),
            every,
        });
        self
    }

    pub fn subscribe(&mut self, s: Arc<dyn Subscriber>) -> &mut Self {
        self.subscribers.push(s);
        self
    }
}

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues and the number of threads that work each (per-queue concurrency: a busy
    /// queue never takes another queue's threads).
    pub queues: Vec<(String, usize)>,
    /// How long a claim lasts before another worker may take the job (its worker died).
    pub lease: Duration,
    /// Fallback polling interval when no notification arrives.
    pub poll: Duration,
    /// First retry delay; doubles with each attempt (with jitter), up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Run the outbox dispatcher.
    pub dispatch: bool,
    /// Fire periodic schedules.
    pub schedules: bool,
    /// Commits one dispatch transaction takes at most.
    pub dispatch_batch: i64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queues: vec![(builtin::DEFAULT_QUEUE.into(), 2), (builtin::EVENTS_QUEUE.into(), 1)],
            lease: Duration::from_secs(300),
            poll: Duration::from_secs(5),
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            dispatch: true,
            schedules: true,
            dispatch_batch: 100,
        }
    }
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped, with jitter
/// (uniform between half and all of it) so failed jobs do not retry in lockstep.
pub fn backoff(cfg: &WorkerConfig, attempt: i32) -> Duration {
    use rand::Rng;
    let exp = attempt.clamp(1, 30) - 1;
    let full = cfg
        .base_backoff
        .saturating_mul(1u32 << exp.min(20))
        .min(cfg.max_backoff);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rand::rng().random::<f64>())
}

/// The handle the process keeps: pool, registry, config and clock.
#[derive(Clone)]
pub struct Setup {
    pub pool: PgPool,
    pub database_url: String,
    pub registry: Registry,
    pub config: WorkerConfig,
    pub clock: Clock,
    pub metrics: Arc<WorkerMetrics>,
}
