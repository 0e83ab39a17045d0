//! Background work figures against the local Postgres (a fresh database of its own):
//! jobs per second for no-op jobs and for notification jobs with 1 and 4 worker
//! threads, and the dispatcher's lag (commit to handled, p50 / p99) under a steady
//! write load, next to the write rate reached.
//!
//!   cargo bench -p crm-worker --bench throughput          (or scripts/bench-jobs.sh)
//!   JOBS=20000 WRITE_RATE=500 WRITE_SECS=20 cargo bench -p crm-worker --bench throughput
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_db::pool::{build_pool, PoolConfig};
use crm_db::repo::jobs::{self, NewJob};
use crm_db::repo::outbox::Delivered;
use crm_test_support::fixtures::create_org;
use crm_test_support::TestDb;
use crm_worker::{BoxError, JobContext, Registry, Setup, Subscriber, Worker, WorkerConfig, WorkerMetrics};
use diesel::prelude::*;
use parking_lot::Mutex;
use serde_json::json;
use uuid::Uuid;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn setup(db: &TestDb, registry: Registry, threads: usize) -> Setup {
    Setup {
        pool: build_pool(
            &db.url,
            &PoolConfig {
                max_size: u32::try_from(threads + 4).unwrap(),
                ..PoolConfig::default()
            },
        )
        .unwrap(),
        database_url: db.url.clone(),
        registry,
        config: WorkerConfig {
            queues: if threads == 0 {
                Vec::new()
            } else {
                vec![("default".into(), threads)]
            },
            poll: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
        clock: crm_app::Clock::default(),
        metrics: Arc::new(WorkerMetrics::default()),
    }
}

/// A `lead.assigned` event for `user`, as the write path stores it.
fn lead_event(user: Uuid) -> serde_json::Value {
    json!({"state": {"owner_id": user, "company": "深圳云帆科技", "status": "assigned"}})
}

fn insert_event(c: &mut PgConnection, user: Uuid) {
    diesel::sql_query(
        "INSERT INTO outbox_events (event_type, aggregate_type, aggregate_id, payload, event_id) \
         VALUES ('lead.assigned', 'leads', $1, $2, $3)",
    )
    .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
    .bind::<diesel::sql_types::Jsonb, _>(lead_event(user))
    .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
    .execute(c)
    .unwrap();
}

/// Runs `n` jobs of `kind` with `threads` workers; jobs per second.
fn jobs_per_second(
    db: &TestDb,
    registry: Registry,
    kind: &str,
    n: u64,
    threads: usize,
    payload: serde_json::Value,
) -> f64 {
    {
        let mut c = db.conn();
        c.transaction::<_, diesel::result::Error, _>(|c| {
            for _ in 0..n {
                jobs::enqueue(c, &NewJob::new("default", kind, payload.clone()))?;
            }
            Ok(())
        })
        .unwrap();
    }
    let started = Instant::now();
    let w = Worker::start(setup(db, registry, threads)).unwrap();
    let mut c = db.conn();
    loop {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let left: N = diesel::sql_query("SELECT count(*) AS n FROM background_jobs")
            .get_result(&mut c)
            .unwrap();
        if left.n == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    w.shutdown(Duration::from_secs(10));
    n as f64 / secs
}

struct Timed {
    lags: Mutex<Vec<f64>>,
}

impl Subscriber for Timed {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn handle(&self, c: &mut PgConnection, ctx: &JobContext, ev: &Delivered) -> Result<(), BoxError> {
        crm_worker::builtin::Notifications.handle(c, ctx, ev)?;
        let lag = (chrono::Utc::now() - ev.committed_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        self.lags.lock().push(lag);
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let n = env("JOBS", 5000);
    let rate = env("WRITE_RATE", 200);
    let write_secs = env("WRITE_SECS", 10);
    let db = TestDb::new();
    let org = create_org(&mut db.conn());
    let users = [org.rep_east1, org.rep_east2, org.rep_north1, org.manager_east];

    println!(
        "background work, {n} jobs per run (Postgres at {})",
        db.url.split('@').next_back().unwrap_or("")
    );
    for threads in [1, 4] {
        let mut noop = Registry::default();
        noop.handle("noop", |_, _, _| Ok(()));
        let noop_rate = jobs_per_second(&db, noop, "noop", n, threads, json!({}));

        let mut notify = Registry::default();
        notify.handle("notify", |c, _, payload| {
            let user: Uuid = payload["user"].as_str().unwrap_or("").parse()?;
            let ev = Delivered {
                seq: 0,
                event_id: Uuid::now_v7(),
                event_type: "lead.assigned".into(),
                aggregate_type: "leads".into(),
                aggregate_id: Uuid::now_v7(),
                payload: lead_event(user),
                actor_id: None,
                committed_at: chrono::Utc::now(),
            };
            crm_app::notifications::on_event(c, &ev)?;
            Ok(())
        });
        let notify_rate = jobs_per_second(&db, notify, "notify", n, threads, json!({"user": users[0]}));
        println!(
            "  {threads} worker thread(s): no-op {noop_rate:>8.0} jobs/s   notification {notify_rate:>8.0} jobs/s"
        );
    }

    // Dispatcher lag under a steady write load: writers commit one event per transaction
    // at the target rate; the notification subscriber handles them.
    let timed = Arc::new(Timed { lags: Mutex::default() });
    let mut r = Registry::default();
    r.subscribe(timed.clone());
    let w = Worker::start(setup(&db, r, 0)).unwrap();
    let total = rate * write_secs;
    let writers = 2;
    let started = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|k| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut c = PgConnection::establish(&url).unwrap();
                let mine = total / writers;
                let every = Duration::from_secs_f64(writers as f64 / rate as f64);
                let t0 = Instant::now();
                for i in 0..mine {
                    let due = t0 + every * u32::try_from(i).unwrap();
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    insert_event(&mut c, users[((i + k) % 4) as usize]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let wrote_secs = started.elapsed().as_secs_f64();
    let until = Instant::now() + Duration::from_secs(30);
    while timed.lags.lock().len() < total as usize && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    w.shutdown(Duration::from_secs(10));
    let mut lags = timed.lags.lock().clone();
    lags.sort_by(f64::total_cmp);
    println!(
        "  dispatcher: {} events written at {:.0}/s (target {rate}/s); handled {}; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total,
        total as f64 / wrote_secs,
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0.0)
    );
}
