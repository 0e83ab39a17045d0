//! Rule engine figures against the local Postgres (a fresh database of its own):
//!
//! 1. events per second the `rules` subscriber sustains with 50 enabled rules on deals
//!    (a mix of triggers and conditions; a tenth of the events fire a rule that notifies);
//! 2. how long scheduling a time-in-stage rule takes over OPPORTUNITIES deals (default one
//!    million), page by page as the `rules.schedule` job does;
//! 3. lateness of time triggers under that load: TIMERS timers due over the next few
//!    seconds, fired by two workers calling the timer job as it comes due; p50 / p99 of
//!    (run start - due time).
//!
//!   cargo bench -p crm-worker --bench rules            (or scripts/bench-rules.sh)
//!   OPPORTUNITIES=200000 EVENTS=5000 cargo bench -p crm-worker --bench rules
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_app::{Clock, Ctx};
use crm_db::pool::{build_pool, PoolConfig};
use crm_test_support::fixtures::create_org;
use crm_test_support::TestDb;
use crm_worker::{Setup, WorkerConfig, WorkerMetrics};
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(c: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(c).unwrap().n
}

fn admin_ctx(c: &mut PgConnection, admin: Uuid, clock: &Clock) -> Ctx {
    let p = crm_db::repo::auth::load_principal(c, admin, None, chrono::Duration::zero())
        .unwrap()
        .unwrap();
    Ctx::user(Arc::new(p.principal), None, clock.clone())
}

fn rule(
    c: &mut PgConnection,
    ctx: &Ctx,
    name: String,
    triggers: Value,
    condition: Option<Value>,
    actions: Value,
) -> Uuid {
    c.transaction(|c| {
        crm_app::rules::create(
            c,
            ctx,
            crm_app::rules::RuleInput {
                name,
                object: "opportunities".into(),
                triggers,
                condition,
                actions,
                re_enroll: Some(true),
                enabled: Some(true),
                ..Default::default()
            },
        )
    })
    .unwrap()
    .id
}

/// Deals inserted directly (seed-style), `n` of them, in Discovery since `days_ago`.
fn insert_deals(c: &mut PgConnection, owner: Uuid, n: u64) {
    let sql = format!(
        "WITH a AS (INSERT INTO accounts (id, name, name_norm, account_type, owner_id) VALUES (gen_random_uuid(), 'Bench account', 'bench account', 'customer', '{owner}') RETURNING id), \
              s AS (SELECT st.id, st.pipeline_id FROM stages st JOIN pipelines p ON p.id = st.pipeline_id \
                    WHERE p.is_default AND st.code = 'discovery') \
         INSERT INTO opportunities (id, name, account_id, pipeline_id, stage_id, probability, owner_id, \
                                    stage_entered_at, last_activity_at) \
         SELECT gen_random_uuid(), 'Bench deal ' || g, a.id, s.pipeline_id, s.id, 20, '{owner}', \
                now() - make_interval(days => (g % 30)::int), now() - make_interval(days => (g % 9)::int) \
         FROM generate_series(1, {n}) g, a, s"
    );
    diesel::sql_query(sql).execute(c).unwrap();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let events = env("EVENTS", 3000);
    let deals = env("OPPORTUNITIES", 1_000_000);
    let timers = env("TIMERS", 5000);
    let db = TestDb::new();
    let org = {
        let mut c = db.conn();
        create_org(&mut c)
    };
    let clock = Clock::default();
    let mut c = db.app_conn();
    let ctx = admin_ctx(&mut c, org.admin, &clock);

    // 1. Events per second with 50 enabled rules.
    for i in 0..50 {
        let (triggers, condition) = match i % 5 {
            0 => (
                json!([{"type": "updated"}]),
                json!({"field": "amount", "op": "gte", "value": "900000"}),
            ),
            1 => (
                json!([{"type": "field_changed", "field": "amount"}]),
                json!({"field": "account.industry", "op": "eq", "value": "energy"}),
            ),
            2 => (
                json!([{"type": "stage_entered", "stage": "closing"}]),
                json!({"field": "amount", "op": "gt", "value": "1"}),
            ),
            3 => (
                json!([{"type": "event", "action": "updated"}]),
                json!({"field": "next_step", "op": "eq", "value": format!("never {i}")}),
            ),
            _ => (
                json!([{"type": "created"}]),
                json!({"field": "owner.is_active", "op": "eq", "value": true}),
            ),
        };
        rule(
            &mut c,
            &ctx,
            format!("Bench rule {i}"),
            triggers,
            Some(condition),
            json!([{"type": "notify", "to": ["owner"], "message": "{{name}}"}]),
        );
    }
    // One rule fires on a tenth of the events.
    rule(
        &mut c,
        &ctx,
        "Bench firing rule".into(),
        json!([{"type": "event", "action": "updated"}]),
        Some(json!({"field": "next_step", "op": "eq", "value": "hot"})),
        json!([{"type": "notify", "to": ["owner", "manager"], "message": "hot: {{name}}"}]),
    );
    let rep_ctx = admin_ctx(&mut c, org.rep_east1, &clock);
    let account = c
        .transaction(|c| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), json!("Bench events account"));
            crm_app::accounts::create(c, &rep_ctx, &m, true)
        })
        .unwrap();
    let mut deal_ids = Vec::new();
    for i in 0..50 {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!(format!("Event deal {i}")));
        m.insert("account_id".into(), json!(account.id));
        m.insert("amount".into(), json!("1000.00"));
        let d = c
            .transaction(|c| crm_app::opportunities::create_from(c, &rep_ctx, &m))
            .unwrap();
        deal_ids.push(d.id);
    }
    for i in 0..events {
        let id = deal_ids[(i % 50) as usize];
        let mut m = serde_json::Map::new();
        m.insert(
            "next_step".into(),
            json!(if i % 10 == 0 {
                "hot".to_owned()
            } else {
                format!("step {i}")
            }),
        );
        c.transaction(|c| crm_app::opportunities::update(c, &rep_ctx, id, None, &m))
            .unwrap();
    }
    let pool = build_pool(&db.url, &PoolConfig::default()).unwrap();
    let setup = Setup {
        pool,
        database_url: db.url.clone(),
        registry: crm_worker::builtin::registry(&Default::default()),
        config: WorkerConfig::default(),
        clock: clock.clone(),
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let backlog = count(&mut c, "SELECT count(*) AS n FROM outbox_events");
    let t = Instant::now();
    let mut handled = 0;
    loop {
        let n = crm_worker::dispatch::dispatch_once(&setup, &crm_worker::builtin::Rules).unwrap();
        if n == 0 {
            break;
        }
        handled += n;
    }
    let secs = t.elapsed().as_secs_f64();
    let runs = count(&mut c, "SELECT count(*) AS n FROM rule_runs WHERE status = 'done'");
    println!(
        "rules: {handled} events ({backlog} in the outbox) through 51 enabled rules in {secs:.2} s = {:.0} events/s; {runs} runs acted",
        handled as f64 / secs
    );

    // 2. Scheduling a time-in-stage rule over `deals` deals.
    let t = Instant::now();
    {
        let mut w = db.conn();
        // Seed rows only: no per-row triggers (board totals, stage visits) or FK checks.
        diesel::sql_query("SET session_replication_role = replica")
            .execute(&mut w)
            .unwrap();
        let mut left = deals;
        while left > 0 {
            let n = left.min(100_000);
            insert_deals(&mut w, org.rep_east1, n);
            left -= n;
        }
    }
    println!("rules: inserted {deals} deals in {:.1} s", t.elapsed().as_secs_f64());
    let stalled = rule(
        &mut c,
        &ctx,
        "Bench stalled".into(),
        json!([{"type": "in_stage", "stage": "discovery", "days": 45, "no_activity_days": 7}]),
        None,
        json!([{"type": "notify", "to": ["owner"], "message": "stalled {{name}}"}]),
    );
    let t = Instant::now();
    let mut after = Uuid::nil();
    let mut pages = 0;
    loop {
        let next = c
            .transaction(|c| crm_app::rules::schedule_page(c, &clock, stalled, after))
            .unwrap();
        pages += 1;
        match next {
            Some(last) => after = last,
            None => break,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let set = count(
        &mut c,
        &format!("SELECT count(*) AS n FROM rule_timers WHERE rule_id = '{stalled}'"),
    );
    println!(
        "rules: scheduled a time-in-stage rule over {} deals in {secs:.1} s ({pages} pages, {set} timers, {:.0} records/s)",
        deals + 50,
        (deals + 50) as f64 / secs
    );

    // 3. Lateness: `timers` tasks due over a few seconds, among the deals' pending timers.
    let due_rule = c
        .transaction(|c| {
            crm_app::rules::create(
                c,
                &ctx,
                crm_app::rules::RuleInput {
                    name: "Bench due".into(),
                    object: "tasks".into(),
                    triggers: json!([{"type": "date_relative", "field": "due_at"}]),
                    actions: json!([{"type": "notify", "to": ["owner"], "message": "due: {{title}}"}]),
                    enabled: Some(true),
                    ..Default::default()
                },
            )
        })
        .unwrap()
        .id;
    diesel::sql_query(format!(
        "INSERT INTO tasks (id, title, due_at, owner_id, team_id) \
         SELECT gen_random_uuid(), 'Bench task ' || g, now() + interval '6 seconds' + random() * interval '5 seconds', \
                '{}', '{}' FROM generate_series(1, {timers}) g",
        org.rep_east1, org.east1
    ))
    .execute(&mut db.conn())
    .unwrap();
    let mut after = Uuid::nil();
    while let Some(last) = c
        .transaction(|c| crm_app::rules::schedule_page(c, &clock, due_rule, after))
        .unwrap()
    {
        after = last;
    }
    let stalled = due_rule;
    let before = count(&mut c, "SELECT count(*) AS n FROM rule_runs");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (url, clock, stop) = (db.url.clone(), clock.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = PgConnection::establish(&url).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // The timer job runs when it comes due; here: as soon as anything is.
                    let next = crm_db::repo::rules::next_due(&mut c).unwrap();
                    match next {
                        Some(at) if at <= chrono::Utc::now() => {
                            c.transaction(|c| crm_app::rules::fire_due(c, &clock)).unwrap();
                        }
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    loop {
        let done = count(&mut c, "SELECT count(*) AS n FROM rule_runs") - before;
        if done >= timers as i64 || t.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    #[derive(QueryableByName)]
    struct L {
        #[diesel(sql_type = diesel::sql_types::Double)]
        ms: f64,
    }
    let lat: Vec<L> = diesel::sql_query(format!(
        "SELECT extract(epoch FROM r.created_at - t.due_at)::float8 * 1000 AS ms FROM rule_runs r \
         JOIN rule_timers t ON t.id = r.timer_id WHERE r.rule_id = '{stalled}' ORDER BY 1"
    ))
    .load(&mut c)
    .unwrap();
    let ms: Vec<f64> = lat.into_iter().map(|l| l.ms).collect();
    println!(
        "rules: {} task timers fired beside {set} pending deal timers; lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (due time to run start, 2 workers)",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
}
