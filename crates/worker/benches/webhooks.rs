//! Webhook delivery figures against the local Postgres (a fresh database of its own)
//! and local receivers on loopback: deliveries per second to fast receivers, and the
//! same run with one more receiver that answers in 5 s (what it does to the others).
//!
//!   cargo bench -p crm-worker --bench webhooks            (or scripts/bench-webhooks.sh)
//!   DELIVERIES=8000 THREADS=4 cargo bench -p crm-worker --bench webhooks
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_db::pool::{build_pool, PoolConfig};
use crm_db::repo::webhooks::{self as repo, NewDelivery, NewWebhook};
use crm_test_support::fixtures::create_org;
use crm_test_support::receiver::{Answer, Receiver};
use crm_test_support::TestDb;
use crm_worker::egress::{Egress, Policy};
use crm_worker::webhooks::WebhookOptions;
use crm_worker::{Registry, Setup, Worker, WorkerConfig, WorkerMetrics};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn subscribe(c: &mut PgConnection, url: String, owner: Uuid, role: Uuid) -> Uuid {
    repo::insert(
        c,
        &NewWebhook {
            id: Uuid::now_v7(),
            url,
            description: String::new(),
            event_types: vec!["*".into()],
            condition: None,
            role_id: role,
            owner_id: owner,
            enabled: true,
            secret: "whsec_bench".into(),
        },
    )
    .unwrap()
    .id
}

fn queue(c: &mut PgConnection, hook: Uuid, n: u64) {
    let now = chrono::Utc::now();
    let rows: Vec<NewDelivery> = (0..n)
        .map(|i| {
            let id = Uuid::now_v7();
            NewDelivery {
                webhook_id: hook,
                event_id: id,
                event_type: "opportunity.updated".into(),
                // Ten records per subscription: per-record order applies.
                record_id: Some(Uuid::from_u128(u128::from(i % 10) + 1)),
                body: json!({"id": id, "type": "opportunity.updated", "changes": {"amount": {"before": "1", "after": "2"}}})
                    .to_string(),
                next_attempt_at: now,
                created_at: now,
                redelivery_of: None,
            }
        })
        .collect();
    for chunk in rows.chunks(1000) {
        repo::insert_deliveries(c, chunk).unwrap();
    }
    repo::schedule(c, crm_app::webhooks::QUEUE, crm_app::webhooks::DELIVER, hook, now).unwrap();
}

fn delivered(c: &mut PgConnection, hook: Uuid) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'delivered'")
        .bind::<diesel::sql_types::Uuid, _>(hook)
        .get_result::<N>(c)
        .unwrap()
        .n
}

fn start(db: &TestDb, threads: usize) -> Worker {
    let egress = Egress::new(
        Policy::parse("127.0.0.1").unwrap(),
        Duration::from_secs(3),
        Duration::from_secs(10),
    );
    let mut registry = Registry::default();
    crm_worker::webhooks::register(&mut registry, egress, WebhookOptions::default());
    Worker::start(Setup {
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
            queues: vec![(crm_app::webhooks::QUEUE.into(), threads)],
            dispatch: false,
            schedules: false,
            poll: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
        clock: crm_app::Clock::default(),
        metrics: Arc::new(WorkerMetrics::default()),
    })
    .unwrap()
}

/// Waits until each fast subscription has `per` deliveries delivered; seconds each took.
fn wait(c: &mut PgConnection, hooks: &[Uuid], per: i64, started: Instant) -> Vec<f64> {
    let mut done: Vec<Option<f64>> = vec![None; hooks.len()];
    while done.iter().any(Option::is_none) {
        for (i, h) in hooks.iter().enumerate() {
            if done[i].is_none() && delivered(c, *h) >= per {
                done[i] = Some(started.elapsed().as_secs_f64());
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            panic!("deliveries did not finish in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done.into_iter().map(Option::unwrap_or_default).collect()
}

fn run(slow: bool, total: u64, threads: usize) -> (f64, Vec<f64>, i64) {
    let db = TestDb::new();
    let org = create_org(&mut db.conn());
    let mut c = db.conn();
    let role: Uuid = crm_db::repo::roles::find_by_keys(&mut c, &["sales_director".to_owned()]).unwrap()[0].id;
    let receivers: Vec<Receiver> = (0..3).map(|_| Receiver::start()).collect();
    let hooks: Vec<Uuid> = receivers
        .iter()
        .map(|r| subscribe(&mut c, r.url("/fast"), org.admin, role))
        .collect();
    let per = total / 3;
    let slow_rx = Receiver::start();
    slow_rx.default_answer(Answer::status(200).delay(Duration::from_secs(5)));
    let slow_hook = slow.then(|| subscribe(&mut c, slow_rx.url("/slow"), org.admin, role));
    for h in &hooks {
        queue(&mut c, *h, per);
    }
    if let Some(s) = slow_hook {
        queue(&mut c, s, 20);
    }
    let started = Instant::now();
    let worker = start(&db, threads);
    let each = wait(&mut c, &hooks, i64::try_from(per).unwrap(), started);
    let secs = each.iter().copied().fold(0.0, f64::max);
    let slow_done = slow_hook.map_or(0, |s| delivered(&mut c, s));
    worker.shutdown(Duration::from_secs(1));
    (per as f64 * 3.0 / secs, each, slow_done)
}

fn main() {
    let total = env("DELIVERIES", 3000);
    let threads = usize::try_from(env("THREADS", 4)).unwrap();
    println!("webhook deliveries: {total} to 3 local receivers, {threads} delivery threads");
    let (rate, each, _) = run(false, total, threads);
    println!(
        "  fast receivers only:        {rate:>7.0} deliveries/s (each receiver done after {})",
        each.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", ")
    );
    let (rate2, each2, slow_done) = run(true, total, threads);
    println!(
        "  plus one answering in 5 s:  {rate2:>7.0} deliveries/s (each fast receiver done after {}; the slow one got {slow_done} meanwhile)",
        each2.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  the slow receiver cost the others {:+.1}% of throughput",
        (rate2 / rate - 1.0) * 100.0
    );
}
