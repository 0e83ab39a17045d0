//! The job queue, schedules and the outbox dispatcher against the real Postgres: each
//! test has a database of its own and runs real worker threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_db::pool::{build_pool, PoolConfig};
use crm_db::repo::jobs::{self, NewJob};
use crm_db::repo::outbox::{self, Delivered};
use crm_test_support::TestDb;
use crm_worker::{BoxError, JobContext, Registry, Setup, Subscriber, Worker, WorkerConfig, WorkerMetrics};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use parking_lot::Mutex;
use serde_json::{json, Value};
use uuid::Uuid;

fn config() -> WorkerConfig {
    WorkerConfig {
        queues: vec![("default".into(), 2)],
        lease: Duration::from_secs(1),
        poll: Duration::from_millis(100),
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        dispatch: true,
        schedules: true,
        dispatch_batch: 10,
    }
}

fn setup(db: &TestDb, registry: Registry, config: WorkerConfig) -> Setup {
    Setup {
        pool: build_pool(
            &db.url,
            &PoolConfig {
                max_size: 8,
                ..PoolConfig::default()
            },
        )
        .unwrap(),
        database_url: db.url.clone(),
        registry,
        config,
        clock: crm_app::Clock::default(),
        metrics: Arc::new(WorkerMetrics::default()),
    }
}

/// A table outside the business schema that job effects write to.
fn effects_table(db: &TestDb) {
    diesel::sql_query("CREATE TABLE job_effects (n serial PRIMARY KEY, key text NOT NULL)")
        .execute(&mut db.conn())
        .unwrap();
}

fn effect(c: &mut PgConnection, key: &str) -> Result<(), BoxError> {
    diesel::sql_query("INSERT INTO job_effects (key) VALUES ($1)")
        .bind::<Text, _>(key)
        .execute(c)?;
    Ok(())
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn enqueue(db: &TestDb, job: NewJob) -> Option<i64> {
    jobs::enqueue(&mut db.conn(), &job).unwrap()
}

#[test]
fn a_failing_job_backs_off_and_ends_dead_after_its_attempts() {
    let db = TestDb::new();
    let runs: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut r = Registry::default();
    let seen = runs.clone();
    r.handle("always_fails", move |_, ctx, _| {
        seen.lock().push(Instant::now());
        Err(format!("boom on attempt {}", ctx.attempt).into())
    });
    let id = enqueue(&db, NewJob::new("default", "always_fails", json!({})).attempts(3)).unwrap();
    let s = setup(&db, r, config());
    let metrics = s.metrics.clone();
    let w = Worker::start(s).unwrap();
    wait_until("the job to die", Duration::from_secs(10), || {
        db.count(&format!(
            "SELECT count(*) AS n FROM background_jobs WHERE id = {id} AND state = 'dead'"
        )) == 1
    });
    assert!(w.shutdown(Duration::from_secs(5)));
    let row = jobs::find(&mut db.conn(), id).unwrap().unwrap();
    assert_eq!(row.attempts, 3);
    assert_eq!(row.last_error.as_deref(), Some("boom on attempt 3"));
    let runs = runs.lock();
    assert_eq!(runs.len(), 3, "no run after the last attempt");
    // Backoff doubles from 100 ms with jitter between half and all of it: at least
    // 50 ms before the second attempt, at least 100 ms before the third.
    assert!(runs[1] - runs[0] >= Duration::from_millis(50));
    assert!(runs[2] - runs[1] >= Duration::from_millis(100));
    // This instance's figures: two retries and a death, with their run times.
    assert_eq!(
        (metrics.runs("retry"), metrics.runs("dead"), metrics.runs("ok")),
        (2, 1, 0)
    );
    let text = metrics.render();
    assert!(
        text.contains(r#"crm_jobs_total{queue="default",kind="always_fails",outcome="dead"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"crm_job_failures_total{queue="default"} 3"#), "{text}");
    assert!(
        text.contains(r#"crm_job_run_seconds_count{queue="default"} 3"#),
        "{text}"
    );

    // Retried from the admin side: fresh attempts, runs again.
    let again = jobs::retry(&mut db.conn(), id).unwrap().unwrap();
    assert_eq!((again.state.as_str(), again.attempts), ("waiting", 0));
    assert!(jobs::cancel(&mut db.conn(), id).unwrap());
    assert!(jobs::find(&mut db.conn(), id).unwrap().is_none());
}

#[test]
fn a_unique_key_dedupes_while_one_waits() {
    let db = TestDb::new();
    let job = || NewJob::new("default", "x", json!({})).unique("digest:user-1");
    let first = enqueue(&db, job());
    assert!(first.is_some());
    assert_eq!(enqueue(&db, job()), None, "second enqueue with the key is a no-op");
    assert_eq!(db.count("SELECT count(*) AS n FROM background_jobs"), 1);
    // Once the waiting one is claimed, the key is free again.
    let claimed = jobs::claim(&mut db.conn(), "default", "w1", 60).unwrap().unwrap();
    assert_eq!(Some(claimed.id), first);
    assert!(enqueue(&db, job()).is_some());
}

#[test]
fn enqueueing_commits_or_rolls_back_with_the_business_write() {
    let db = TestDb::new();
    let mut c = db.conn();
    let _ = c.transaction::<(), diesel::result::Error, _>(|c| {
        jobs::enqueue(c, &NewJob::new("default", "x", json!({})))?;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert_eq!(db.count("SELECT count(*) AS n FROM background_jobs"), 0);
}

#[test]
fn a_worker_killed_mid_job_leaves_it_to_run_again_and_the_effect_happens_once() {
    let db = TestDb::new();
    effects_table(&db);
    let mut r = Registry::default();
    r.handle("slow_effect", |c, ctx, payload| {
        effect(c, payload["key"].as_str().unwrap_or(""))?;
        if ctx.attempt == 1 {
            // The first run hangs until its connection is killed.
            diesel::sql_query("SELECT pg_sleep(30)").execute(c)?;
        }
        Ok(())
    });
    let id = enqueue(&db, NewJob::new("default", "slow_effect", json!({"key": "once"}))).unwrap();
    let w = Worker::start(setup(&db, r, config())).unwrap();
    wait_until("the first run to hang", Duration::from_secs(10), || {
        db.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")
            == 1
    });
    // Its effect is written but not committed.
    assert_eq!(db.count("SELECT count(*) AS n FROM job_effects"), 0);
    let killed = db.count(
        "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query = 'SELECT pg_sleep(30)') k",
    );
    assert_eq!(killed, 1);
    wait_until("the job to run again and finish", Duration::from_secs(15), || {
        db.count(&format!("SELECT count(*) AS n FROM background_jobs WHERE id = {id}")) == 0
    });
    assert!(w.shutdown(Duration::from_secs(5)));
    assert_eq!(db.count("SELECT count(*) AS n FROM job_effects WHERE key = 'once'"), 1);
}

#[test]
fn two_workers_never_run_one_job_twice() {
    let db = TestDb::new();
    effects_table(&db);
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let registry = || {
        let mut r = Registry::default();
        let runs = runs.clone();
        r.handle("count", move |c, _, payload| {
            let key = payload["n"].to_string();
            *runs.lock().entry(key.clone()).or_default() += 1;
            effect(c, &key)
        });
        r
    };
    {
        let mut c = db.conn();
        for n in 0..300 {
            jobs::enqueue(&mut c, &NewJob::new("default", "count", json!({"n": n}))).unwrap();
        }
    }
    let a = Worker::start(setup(&db, registry(), config())).unwrap();
    let b = Worker::start(setup(&db, registry(), config())).unwrap();
    wait_until("all jobs to run", Duration::from_secs(30), || {
        db.count("SELECT count(*) AS n FROM background_jobs") == 0
    });
    assert!(a.shutdown(Duration::from_secs(5)));
    assert!(b.shutdown(Duration::from_secs(5)));
    assert_eq!(db.count("SELECT count(*) AS n FROM job_effects"), 300);
    assert_eq!(db.count("SELECT count(DISTINCT key) AS n FROM job_effects"), 300);
    let runs = runs.lock();
    assert_eq!(runs.len(), 300);
    assert!(runs.values().all(|n| *n == 1), "a job ran twice");
}

#[test]
fn a_periodic_job_fires_once_per_period_with_three_workers() {
    let db = TestDb::new();
    effects_table(&db);
    let registry = || {
        let mut r = Registry::default();
        r.handle("tick", |c, _, payload| {
            effect(c, payload["period"].as_str().unwrap_or(""))
        })
        .every("tick", "default", "tick", Duration::from_secs(1));
        r
    };
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(setup(&db, registry(), config())).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(4300));
    for w in workers {
        assert!(w.shutdown(Duration::from_secs(5)));
    }
    #[derive(QueryableByName)]
    struct Period {
        #[diesel(sql_type = Text)]
        key: String,
    }
    let periods: Vec<i64> = diesel::sql_query("SELECT key FROM job_effects ORDER BY key")
        .load::<Period>(&mut db.conn())
        .unwrap()
        .iter()
        .map(|p| chrono::DateTime::parse_from_rfc3339(&p.key).unwrap().timestamp())
        .collect();
    assert!(periods.len() >= 4, "fired {periods:?} in 4.3 periods");
    for pair in periods.windows(2) {
        assert_eq!(pair[1] - pair[0], 1, "each period fired exactly once: {periods:?}");
    }
}

/// Records what it is handed, per record; idempotent by event id as subscribers must be
/// (an event comes again when a dispatch transaction dies after handling it).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(Uuid, Uuid, i64)>>,
}

impl Subscriber for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn handle(&self, _c: &mut PgConnection, _ctx: &JobContext, ev: &Delivered) -> Result<(), BoxError> {
        let v = ev.payload["version"].as_i64().unwrap_or(-1);
        let mut seen = self.seen.lock();
        if !seen.iter().any(|s| s.1 == ev.event_id) {
            seen.push((ev.aggregate_id, ev.event_id, v));
        }
        Ok(())
    }
}

fn write_event(c: &mut PgConnection, aggregate: Uuid, payload: Value) -> Uuid {
    let id = Uuid::now_v7();
    diesel::sql_query(
        "INSERT INTO outbox_events (event_type, aggregate_type, aggregate_id, payload, event_id) \
         VALUES ('thing.updated', 'things', $1, $2, $3)",
    )
    .bind::<diesel::sql_types::Uuid, _>(aggregate)
    .bind::<diesel::sql_types::Jsonb, _>(payload)
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(c)
    .unwrap();
    id
}

/// A table of versioned records outside the business schema; their ids.
fn things(db: &TestDb, n: usize) -> Vec<Uuid> {
    diesel::sql_query("CREATE TABLE things (id uuid PRIMARY KEY, version bigint NOT NULL)")
        .execute(&mut db.conn())
        .unwrap();
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        diesel::sql_query("INSERT INTO things VALUES ($1, 0)")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(&mut db.conn())
            .unwrap();
    }
    ids
}

/// One write as the write path does it: the record's row locked and its version taken,
/// the event with that version, in one transaction.
fn write_version(c: &mut PgConnection, id: Uuid) -> Result<(), diesel::result::Error> {
    c.transaction(|c| {
        #[derive(QueryableByName)]
        struct V {
            #[diesel(sql_type = BigInt)]
            version: i64,
        }
        let v: V = diesel::sql_query("UPDATE things SET version = version + 1 WHERE id = $1 RETURNING version")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .get_result(c)?;
        // Another statement between taking the version and the event, so concurrent
        // transactions interleave.
        diesel::sql_query("SELECT pg_sleep(0.001)").execute(c)?;
        diesel::sql_query(
            "INSERT INTO outbox_events (event_type, aggregate_type, aggregate_id, payload, event_id) \
             VALUES ('thing.updated', 'things', $1, $2, $3)",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Jsonb, _>(json!({"version": v.version}))
        .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
        .execute(c)?;
        Ok(())
    })
}

/// Each record's events reached the recorder as versions 1, 2, ... up to the record's
/// committed version: none lost, none twice, none out of order.
fn assert_in_version_order(db: &TestDb, rec: &Recorder, records: &[Uuid]) {
    let seen = rec.seen.lock();
    for id in records {
        let committed = db.count(&format!("SELECT version AS n FROM things WHERE id = '{id}'"));
        let versions: Vec<i64> = seen.iter().filter(|s| s.0 == *id).map(|s| s.2).collect();
        assert_eq!(versions, (1..=committed).collect::<Vec<_>>(), "events of {id}");
    }
}

fn event_row_id(db: &TestDb, event: Uuid) -> i64 {
    db.count(&format!("SELECT id AS n FROM outbox_events WHERE event_id = '{event}'"))
}

#[test]
fn a_slower_transaction_with_a_smaller_id_is_not_skipped() {
    let db = TestDb::new();
    let rec = Arc::new(Recorder::default());
    let mut r = Registry::default();
    r.subscribe(rec.clone());
    let mut cfg = config();
    cfg.queues.clear();
    let s = setup(&db, r, cfg);
    outbox::register(&mut db.conn(), "recorder").unwrap();
    let (mut slow, mut fast) = (db.conn(), db.conn());
    diesel::sql_query("BEGIN").execute(&mut slow).unwrap();
    let a = write_event(&mut slow, Uuid::now_v7(), json!({}));
    diesel::sql_query("BEGIN").execute(&mut fast).unwrap();
    let b = write_event(&mut fast, Uuid::now_v7(), json!({}));
    diesel::sql_query("COMMIT").execute(&mut fast).unwrap();

    crm_worker::dispatch::dispatch_once(&s, rec.as_ref()).unwrap();
    let ids = |rec: &Recorder| rec.seen.lock().iter().map(|s| s.1).collect::<Vec<_>>();
    assert_eq!(ids(&rec), vec![b]);
    diesel::sql_query("COMMIT").execute(&mut slow).unwrap();
    crm_worker::dispatch::dispatch_once(&s, rec.as_ref()).unwrap();
    assert_eq!(ids(&rec), vec![b, a], "delivered in commit order, none skipped");
    assert!(
        event_row_id(&db, a) < event_row_id(&db, b),
        "the slow one took the smaller id"
    );
    // Nothing is delivered twice.
    assert_eq!(crm_worker::dispatch::dispatch_once(&s, rec.as_ref()).unwrap(), 0);
    assert_eq!(ids(&rec).len(), 2);
}

#[test]
fn events_of_one_record_reach_a_subscriber_in_order_with_two_dispatchers() {
    let db = TestDb::new();
    let records = things(&db, 3);
    let rec = Arc::new(Recorder::default());
    outbox::register(&mut db.conn(), "recorder").unwrap();
    let dispatchers: Vec<Worker> = (0..2)
        .map(|_| {
            let mut r = Registry::default();
            r.subscribe(rec.clone());
            let mut cfg = config();
            cfg.queues.clear();
            cfg.dispatch_batch = 3;
            Worker::start(setup(&db, r, cfg)).unwrap()
        })
        .collect();
    // Four writers update the records concurrently, each write with its event in one
    // transaction, the record's row locked as the write path does.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = db.url.clone();
            let records = records.clone();
            std::thread::spawn(move || {
                let mut c = PgConnection::establish(&url).unwrap();
                for i in 0..30 {
                    let id = records[(i + w) % records.len()];
                    write_version(&mut c, id).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    wait_until("every event to be delivered", Duration::from_secs(20), || {
        rec.seen.lock().len() >= 120
    });
    for d in dispatchers {
        assert!(d.shutdown(Duration::from_secs(5)));
    }
    assert_eq!(rec.seen.lock().len(), 120, "each event once");
    assert_in_version_order(&db, &rec, &records);
}

#[test]
fn a_subscriber_failure_becomes_a_redelivery_job_and_the_stream_goes_on() {
    struct Flaky {
        fail_once: Mutex<bool>,
        seen: Mutex<Vec<Uuid>>,
    }
    impl Subscriber for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn handle(&self, _c: &mut PgConnection, _ctx: &JobContext, ev: &Delivered) -> Result<(), BoxError> {
            let mut f = self.fail_once.lock();
            if *f {
                *f = false;
                return Err("receiver down".into());
            }
            self.seen.lock().push(ev.event_id);
            Ok(())
        }
    }
    let db = TestDb::new();
    let flaky = Arc::new(Flaky {
        fail_once: Mutex::new(true),
        seen: Mutex::default(),
    });
    let mut r = Registry::default();
    r.subscribe(flaky.clone());
    crm_worker::builtin::redelivery(&mut r);
    let mut cfg = config();
    cfg.queues = vec![("events".into(), 1)];
    outbox::register(&mut db.conn(), "flaky").unwrap();
    let (a, b) = {
        let mut c = db.conn();
        (
            write_event(&mut c, Uuid::now_v7(), json!({})),
            write_event(&mut c, Uuid::now_v7(), json!({})),
        )
    };
    let w = Worker::start(setup(&db, r, cfg)).unwrap();
    wait_until("both events handled", Duration::from_secs(10), || {
        flaky.seen.lock().len() == 2
    });
    wait_until("the redelivery job to finish", Duration::from_secs(10), || {
        db.count("SELECT count(*) AS n FROM background_jobs") == 0
    });
    assert!(w.shutdown(Duration::from_secs(5)));
    let seen = flaky.seen.lock().clone();
    assert_eq!(seen, vec![b, a], "the second went on; the first came back as a job");
}

#[test]
fn outbox_rows_past_retention_that_every_subscriber_handled_are_pruned() {
    let db = TestDb::new();
    outbox::register(&mut db.conn(), "recorder").unwrap();
    let mut c = db.conn();
    let old = write_event(&mut c, Uuid::now_v7(), json!({}));
    diesel::sql_query("UPDATE outbox_commits SET committed_at = now() - interval '40 days'")
        .execute(&mut c)
        .unwrap();
    // Not handled yet: kept.
    assert_eq!(outbox::prune(&mut c, 30).unwrap(), 0);
    let pos = db.count("SELECT max(seq) AS n FROM outbox_commits");
    outbox::set_position(&mut c, "recorder", pos).unwrap();
    // The built-in notifications subscriber has not handled it yet: still kept.
    assert_eq!(outbox::prune(&mut c, 30).unwrap(), 0);
    outbox::set_position(&mut c, "notifications", pos).unwrap();
    // Nor the built-in webhooks subscriber.
    assert_eq!(outbox::prune(&mut c, 30).unwrap(), 0);
    outbox::set_position(&mut c, "webhooks", pos).unwrap();
    // Nor the rule engine.
    assert_eq!(outbox::prune(&mut c, 30).unwrap(), 0);
    outbox::set_position(&mut c, "rules", pos).unwrap();
    // Nor customer tiering.
    assert_eq!(outbox::prune(&mut c, 30).unwrap(), 0);
    outbox::set_position(&mut c, "tiering", pos).unwrap();
    let fresh = write_event(&mut c, Uuid::now_v7(), json!({}));
    assert_eq!(outbox::prune(&mut c, 30).unwrap(), 1);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM outbox_events WHERE event_id = '{old}'"
        )),
        0
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM outbox_events WHERE event_id = '{fresh}'"
        )),
        1
    );
}

#[test]
fn a_dispatcher_killed_mid_batch_delivers_the_batch_again_and_each_effect_happens_once() {
    struct Hangs {
        first: Mutex<bool>,
    }
    impl Subscriber for Hangs {
        fn name(&self) -> &'static str {
            "hangs"
        }
        fn handle(&self, c: &mut PgConnection, _ctx: &JobContext, ev: &Delivered) -> Result<(), BoxError> {
            effect(c, &ev.event_id.to_string())?;
            let hang = std::mem::replace(&mut *self.first.lock(), false);
            if hang {
                // The dispatcher's connection is killed here, mid-batch.
                diesel::sql_query("SELECT pg_sleep(31)").execute(c)?;
            }
            Ok(())
        }
    }
    let db = TestDb::new();
    effects_table(&db);
    outbox::register(&mut db.conn(), "hangs").unwrap();
    let events: Vec<Uuid> = {
        let mut c = db.conn();
        (0..5).map(|_| write_event(&mut c, Uuid::now_v7(), json!({}))).collect()
    };
    let mut r = Registry::default();
    r.subscribe(Arc::new(Hangs {
        first: Mutex::new(true),
    }));
    let mut cfg = config();
    cfg.queues.clear();
    let w = Worker::start(setup(&db, r, cfg)).unwrap();
    wait_until("the dispatcher to hang", Duration::from_secs(10), || {
        db.count("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(31)' AND state = 'active'")
            == 1
    });
    db.count(
        "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query = 'SELECT pg_sleep(31)') k",
    );
    let end = db.count("SELECT max(seq) AS n FROM outbox_commits");
    wait_until("the batch to be delivered again", Duration::from_secs(15), || {
        db.count("SELECT position AS n FROM outbox_subscribers WHERE name = 'hangs'") == end
    });
    assert!(w.shutdown(Duration::from_secs(5)));
    for e in &events {
        assert_eq!(
            db.count(&format!("SELECT count(*) AS n FROM job_effects WHERE key = '{e}'")),
            1,
            "event {e} handled once in effect"
        );
    }
}

#[test]
fn no_event_is_lost_or_reordered_when_every_connection_drops_as_in_a_postgres_restart() {
    let db = TestDb::new();
    let records = things(&db, 2);
    let rec = Arc::new(Recorder::default());
    outbox::register(&mut db.conn(), "recorder").unwrap();
    let mut r = Registry::default();
    r.subscribe(rec.clone());
    let mut cfg = config();
    cfg.queues.clear();
    cfg.dispatch_batch = 4;
    let w = Worker::start(setup(&db, r, cfg)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (url, stop) = (db.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(120));
                if let Ok(mut c) = PgConnection::establish(&url) {
                    let _ = diesel::sql_query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                    .execute(&mut c);
                    kills += 1;
                }
            }
            kills
        })
    };
    let writers: Vec<_> = (0..2)
        .map(|k| {
            let (url, records) = (db.url.clone(), records.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                let mut conn: Option<PgConnection> = None;
                while done < 40 {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match PgConnection::establish(&url) {
                            Ok(c) => conn.insert(c),
                            Err(_) => continue,
                        },
                    };
                    let id = records[(done + k) % records.len()];
                    let wrote = write_version(c, id);
                    match wrote {
                        Ok(()) => done += 1,
                        // Connection gone (or the commit's outcome unknown): reconnect and
                        // write again; whatever committed is what must be delivered.
                        Err(_) => conn = None,
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    for wr in writers {
        wr.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(kills >= 3, "connections were dropped {kills} times");
    let committed = db.count("SELECT count(*) AS n FROM outbox_events");
    wait_until("every committed event to be delivered", Duration::from_secs(30), || {
        rec.seen.lock().len() as i64 >= committed
    });
    assert!(w.shutdown(Duration::from_secs(5)));
    assert_eq!(
        rec.seen.lock().len() as i64,
        committed,
        "each committed event exactly once"
    );
    assert_in_version_order(&db, &rec, &records);
}
