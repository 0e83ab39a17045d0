//! `crm`: the CRM API server.
//!
//! `crm serve` creates the database when missing, applies migrations and serves (and
//! runs the background worker unless `--no-worker`); `crm demo` (= `serve --demo`) also
//! seeds demo data. `crm worker` runs only background work. `crm migrate`,
//! `crm seed-demo` and `crm openapi` do one thing each.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use crm_db::pool::{build_pool, PoolConfig};
use crm_db::{migrations, Db};
use crm_demo as demo;
use crm_http::{AppState, HttpConfig};
use crm_worker::WorkerMetrics;
use diesel::prelude::*;

/// mimalloc: allocation-heavy request paths (JSON pages) spent ~15% of their time in
/// glibc malloc under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "crm", version, about = "Opportunity management (商机管理) API server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if needed, migrate, and serve the API.
    Serve(ServeArgs),
    /// Same as `serve --demo`: seed demo data (if empty) and serve.
    Demo(ServeArgs),
    /// Run only background work (jobs, schedules, the event dispatcher); no API.
    Worker(WorkerArgs),
    /// Create the database if needed and apply pending migrations.
    Migrate(DbArgs),
    /// Create, migrate and seed the demo organisation (idempotent).
    SeedDemo(DbArgs),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/crm")]
    database_url: String,
    /// Log format.
    #[arg(long, env = "CRM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
}

/// Background work, for `crm worker` and for `crm serve` unless `--no-worker`.
#[derive(Args, Clone)]
struct BackgroundArgs {
    /// Threads working the default queue (periodic and business jobs).
    #[arg(long, env = "CRM_JOB_WORKERS", default_value_t = 2)]
    job_workers: usize,
    /// Threads working the events queue (event redeliveries).
    #[arg(long, env = "CRM_EVENT_WORKERS", default_value_t = 1)]
    event_workers: usize,
    /// Seconds a claimed job is held before another worker may take it (its worker died).
    #[arg(long, env = "CRM_JOB_LEASE_SECS", default_value_t = 300)]
    job_lease_secs: u64,
    /// Days outbox events are kept once every subscriber has handled them.
    #[arg(long, env = "CRM_OUTBOX_RETENTION_DAYS", default_value_t = 30)]
    outbox_retention_days: i32,
    /// Threads sending webhook deliveries (a slow receiver holds one of them at most).
    #[arg(long, env = "CRM_WEBHOOK_WORKERS", default_value_t = 2)]
    webhook_workers: usize,
    /// Hours a webhook may fail continuously before it is disabled.
    #[arg(long, env = "CRM_WEBHOOK_DISABLE_AFTER_HOURS", default_value_t = 72)]
    webhook_disable_after_hours: i64,
    /// Addresses and CIDR networks outgoing requests may reach although they are
    /// loopback, private, link-local or otherwise special (comma-separated).
    #[arg(long, env = "CRM_EGRESS_ALLOW", default_value = "")]
    egress_allow: String,
    /// Seconds running jobs get to finish on shutdown.
    #[arg(long, env = "CRM_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,
}

#[derive(Args, Clone)]
struct WorkerArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    background: BackgroundArgs,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    background: BackgroundArgs,
    /// Serve the API only; background work runs in `crm worker` processes.
    #[arg(long, env = "CRM_NO_WORKER")]
    no_worker: bool,
    /// Address to listen on.
    #[arg(long, env = "CRM_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Secret for signing access tokens (at least 32 bytes). Required unless --demo.
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Seed demo data when the database is empty; allows a random JWT secret.
    #[arg(long)]
    demo: bool,
    /// Worker threads (default: number of cores).
    #[arg(long, env = "CRM_WORKERS")]
    workers: Option<usize>,
    /// Database pool size.
    #[arg(long, env = "CRM_POOL_SIZE", default_value_t = 10)]
    pool_size: u32,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "CRM_ACCESS_TTL_SECS", default_value_t = 900)]
    access_ttl_secs: u64,
    /// Trust X-Forwarded-For / Forwarded for the client address (behind a reverse proxy).
    #[arg(long, env = "CRM_TRUST_PROXY", default_value_t = false)]
    trust_proxy: bool,
    /// CSV exports that may run at once (each holds up to 100,000 rows in memory).
    #[arg(long, env = "CRM_EXPORT_SLOTS", default_value_t = 2)]
    export_slots: usize,
    /// Report queries that may run at once (more wait up to 10 s, then get 429).
    #[arg(long, env = "CRM_REPORT_SLOTS", default_value_t = 4)]
    report_slots: usize,
    /// A read replica for report queries (falls back to the primary). Reports read
    /// from it may lag the primary by the replica's replay delay.
    #[arg(long, env = "CRM_REPORTS_DATABASE_URL", hide_env_values = true)]
    reports_database_url: Option<String>,
    /// Rows one CSV export may hold.
    #[arg(long, env = "CRM_EXPORT_MAX_ROWS", default_value_t = 100_000)]
    export_max_rows: usize,
    /// Failed logins from one client address (all accounts) before it is locked out for
    /// 15 minutes; raise it when many users share one address (NAT, proxy).
    #[arg(long, env = "CRM_LOGIN_IP_MAX_FAILURES", default_value_t = 50)]
    login_ip_max_failures: i32,
    /// Bearer token that opens /metrics on the API listener (unset: not served there).
    #[arg(long, env = "CRM_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// A separate listener serving only /metrics, without a token (e.g. 127.0.0.1:9090).
    #[arg(long, env = "CRM_METRICS_BIND")]
    metrics_bind: Option<String>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Json,
    Pretty,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

/// Hides the password of a database URL for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn prepare_database(url: &str) -> Result<()> {
    if migrations::create_database_if_missing(url).map_err(|e| anyhow::anyhow!("{e}"))? {
        tracing::info!(database = %redact_url(url), "created database");
    }
    let mut conn = PgConnection::establish(url).with_context(|| format!("connecting to {}", redact_url(url)))?;
    let applied = migrations::run_pending(&mut conn).map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
    for v in &applied {
        tracing::info!(version = %v, "applied migration");
    }
    Ok(())
}

fn seed_demo(url: &str) -> Result<()> {
    let mut conn = PgConnection::establish(url).with_context(|| format!("connecting to {}", redact_url(url)))?;
    let report = demo::seed(&mut conn, &|p| {
        crm_domain::secrets::hash_password(p).unwrap_or_default()
    })
    .context("seeding demo data")?;
    if report.seeded {
        tracing::info!(
            accounts = report.accounts,
            contacts = report.contacts,
            "seeded demo organisation"
        );
    } else {
        tracing::info!("demo organisation already present");
    }
    let pipeline = crm_demo::pipeline::seed(&mut conn, 20_000)
        .map_err(|e| anyhow::anyhow!("seeding demo pipeline data: {e:?}"))?;
    if pipeline.opportunities > 0 {
        tracing::info!(
            leads = pipeline.leads,
            opportunities = pipeline.opportunities,
            stage_visits = pipeline.stage_visits,
            activities = pipeline.activities,
            "seeded demo pipeline"
        );
    }
    let q2c = crm_demo::q2c::seed(&mut conn).map_err(|e| anyhow::anyhow!("seeding demo quote-to-cash data: {e:?}"))?;
    if q2c.quotes > 0 {
        tracing::info!(
            products = q2c.products,
            quotes = q2c.quotes,
            contracts = q2c.contracts,
            payments = q2c.payments,
            pending_approvals = q2c.pending_approvals,
            "seeded demo quote to cash"
        );
    }
    match seed_demo_rules(&mut conn) {
        Ok(Some(n)) => tracing::info!(rules = n, "installed the default automation rules"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "demo automation rules not seeded"),
    }
    println!("Demo logins (password for all: {}):", demo::DEMO_PASSWORD);
    for l in &report.logins {
        println!("  {:<26} {:<15} {}", l.email, l.role, l.team);
    }
    Ok(())
}

/// Installs the default automation rules (enabled, as the demo admin) and makes each
/// scenario happen on demo records, so the run log shows them having fired: stalled
/// deals, a birthday and an anniversary through their timers (fired by the worker), a lead
/// assigned (new-lead to-do and its response SLA timer), a deal moved back into
/// Proposal (the presales task), a new lead routed by territory, a deal re-entering
/// Closing (legal's review task), a 20% quote routed to the director. `None` when
/// they were installed before.
fn seed_demo_rules(conn: &mut PgConnection) -> Result<Option<usize>> {
    use crm_app::rules;
    conn.transaction(|c| {
        let Some(admin) = crm_db::repo::users::find_by_email(c, demo::ADMIN_EMAIL)? else {
            return Ok(None);
        };
        let Some(p) = crm_db::repo::auth::load_principal(c, admin.id, None, chrono::Duration::zero())? else {
            return Ok(None);
        };
        let clock = crm_app::Clock::default();
        let ctx = crm_app::Ctx::user(Arc::new(p.principal), None, clock.clone());
        let installed = rules::install_defaults(c, &ctx, true).map_err(|e| anyhow::anyhow!("{e}"))?;
        if installed.is_empty() {
            return Ok(None);
        }
        // Seed data (written directly): a contact's birthday and an account's first
        // contract's anniversary whose greetings (three days ahead, 09:00 business
        // time) fell due at the most recent 09:00. Their rules are scheduled as of a
        // day ago, so the worker catches the greetings up as it starts, as it would
        // after a day's downtime; every other rule is scheduled from now.
        diesel::sql_query("SET LOCAL crm.unaudited_writes = 'allowed'").execute(c)?;
        const GREET: &str = "(SELECT ((now() AT TIME ZONE 'Asia/Shanghai') - interval '9 hours')::date + 3 AS d)";
        diesel::sql_query(format!(
            "UPDATE contacts SET birthday = make_date(1988, extract(month FROM d)::int, extract(day FROM d)::int) \
             FROM {GREET} x WHERE id = (SELECT id FROM contacts WHERE deleted_at IS NULL ORDER BY id LIMIT 1)"
        ))
        .execute(c)?;
        diesel::sql_query(format!(
            "UPDATE contracts k SET signed_at = ((d - interval '1 year') + time '10:00') AT TIME ZONE 'Asia/Shanghai' \
             FROM {GREET} x WHERE k.id = (SELECT id FROM contracts WHERE signed_at IS NOT NULL AND deleted_at IS NULL \
               AND account_id IN (SELECT account_id FROM contracts WHERE signed_at IS NOT NULL AND deleted_at IS NULL \
                                  GROUP BY account_id HAVING count(*) = 1) ORDER BY id LIMIT 1)"
        ))
        .execute(c)?;
        let yesterday = crm_app::Clock::default();
        yesterday.advance(chrono::Duration::days(-1));
        for r in &installed {
            let yearly = matches!(r.seed_key.as_deref(), Some("contact_birthday" | "account_anniversary"));
            let from = if yearly { &yesterday } else { &clock };
            let mut after = uuid::Uuid::nil();
            while let Some(last) = rules::schedule_page(c, from, r.id, after).map_err(|e| anyhow::anyhow!("{e}"))? {
                after = last;
            }
            // Scheduled here in full: the rule's own scheduling job (queued when it was
            // created, not yet seen by any worker) would only redo it from now.
            diesel::sql_query("DELETE FROM background_jobs WHERE kind = $1 AND payload->>'rule_id' = $2")
                .bind::<diesel::sql_types::Text, _>(rules::SCHEDULE)
                .bind::<diesel::sql_types::Text, _>(r.id.to_string())
                .execute(c)?;
        }
        // Event scenarios: real operations, so the worker's rule subscriber picks them up.
        let ops = |c: &mut PgConnection| -> crm_app::AppResult<()> {
            #[derive(QueryableByName)]
            struct Pick {
                #[diesel(sql_type = diesel::sql_types::Uuid)]
                id: uuid::Uuid,
                #[diesel(sql_type = diesel::sql_types::Uuid)]
                other: uuid::Uuid,
            }
            let lead: Option<Pick> = diesel::sql_query(
                "SELECT l.id, u.id AS other FROM leads l JOIN users u ON u.team_id IS NOT NULL AND u.is_active \
                 JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id AND r.key = 'sales_rep' \
                 WHERE l.deleted_at IS NULL AND l.status = 'new' ORDER BY l.id, u.id LIMIT 1",
            )
            .get_result(c)
            .optional()?;
            if let Some(l) = lead {
                crm_app::leads::assign(c, &ctx, &[l.id], l.other)?;
                // Seed data: its response is already overdue, so the SLA ladder's first
                // step (the owner's reminder) fires as the worker starts.
                diesel::sql_query("UPDATE lead_slas SET due_at = now() - interval '1 minute' WHERE lead_id = $1")
                    .bind::<diesel::sql_types::Uuid, _>(l.id)
                    .execute(c)?;
            }
            let deal: Option<Pick> = diesel::sql_query(
                "SELECT o.id, p.id AS other FROM opportunities o JOIN stages s ON s.id = o.stage_id \
                 JOIN stages p ON p.pipeline_id = o.pipeline_id AND p.code = 'proposal' \
                 WHERE o.deleted_at IS NULL AND o.status = 'open' AND s.code = 'negotiation' ORDER BY o.id LIMIT 1",
            )
            .get_result(c)
            .optional()?;
            if let Some(d) = deal {
                let all = ctx.principal.filter(crm_domain::access::Scope::All);
                let live = crm_db::repo::accounts::Liveness::Live;
                if let Some(row) = crm_db::repo::opportunities::find(c, &all, d.id, live, true)? {
                    crm_app::opportunities::move_deal(c, &ctx, row, d.other, Some("演示: 客户要求重新出方案".into()))?;
                }
            }
            Ok(())
        };
        c.transaction(ops).map_err(|e| anyhow::anyhow!("{e}"))?;
        // The other scenarios, each on its own: one that cannot happen on this data
        // (a missing stage, a criterion) leaves the others.
        demo_step(c, "territory routing", |c| demo_territory(c, &ctx));
        demo_step(c, "closing contract review", |c| demo_closing(c, &ctx));
        demo_step(c, "quote approval routing", |c| demo_quote_routing(c, &ctx));
        Ok(Some(installed.len()))
    })
}

fn demo_step(c: &mut PgConnection, name: &str, f: impl FnOnce(&mut PgConnection) -> crm_app::AppResult<()>) {
    if let Err(e) = c.transaction(f) {
        tracing::warn!(scenario = name, error = %e, "demo rule scenario skipped");
    }
}

#[derive(QueryableByName)]
struct DemoPair {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    other: uuid::Uuid,
}

fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Scenario 1's assignment: the default territory rule (region teams by the region
/// they cover) routes a new web lead from East China; its to-do and SLA follow from
/// the other rules.
fn demo_territory(c: &mut PgConnection, ctx: &crm_app::Ctx) -> crm_app::AppResult<()> {
    crm_app::leads::create(
        c,
        ctx,
        &object(
            serde_json::json!({"person_name": "周婷", "company": "杭州星河智能", "mobile": "13700001234",
                                   "source": "website", "region": "east", "industry": "制造业"}),
        ),
        true,
    )?;
    Ok(())
}

/// Scenario 3's second half: a deal in Closing moved back to Negotiation and into
/// Closing again creates the contract review task for legal.
fn demo_closing(c: &mut PgConnection, ctx: &crm_app::Ctx) -> crm_app::AppResult<()> {
    let deal: Option<DemoPair> = diesel::sql_query(
        "SELECT o.id, p.id AS other FROM opportunities o JOIN stages s ON s.id = o.stage_id \
         JOIN stages p ON p.pipeline_id = o.pipeline_id AND p.code = 'negotiation' \
         WHERE o.deleted_at IS NULL AND o.status = 'open' AND s.code = 'closing' ORDER BY o.id LIMIT 1",
    )
    .get_result(c)
    .optional()?;
    let Some(d) = deal else { return Ok(()) };
    let all = ctx.principal.filter(crm_domain::access::Scope::All);
    let live = crm_db::repo::accounts::Liveness::Live;
    let find = |c: &mut PgConnection| {
        crm_db::repo::opportunities::find(c, &all, d.id, live, true)?.ok_or(crm_app::AppError::NotFound("opportunity"))
    };
    let closing = find(c)?.stage_id;
    let row = find(c)?;
    crm_app::opportunities::move_deal(c, ctx, row, d.other, Some("演示: 合同条款待确认".into()))?;
    let row = find(c)?;
    crm_app::opportunities::move_deal(c, ctx, row, closing, None)?;
    Ok(())
}

/// Scenario 5: a quote at a 20% discount submitted on an open deal is routed by the
/// rule to the sales director.
fn demo_quote_routing(c: &mut PgConnection, ctx: &crm_app::Ctx) -> crm_app::AppResult<()> {
    let deal: Option<DemoPair> = diesel::sql_query(
        "SELECT o.id, (SELECT p.id FROM products p WHERE p.active ORDER BY p.code LIMIT 1) AS other \
         FROM opportunities o WHERE o.deleted_at IS NULL AND o.status = 'open' \
           AND EXISTS (SELECT 1 FROM products p WHERE p.active) \
           AND NOT EXISTS (SELECT 1 FROM quotes q WHERE q.opportunity_id = o.id) ORDER BY o.id LIMIT 1",
    )
    .get_result(c)
    .optional()?;
    let Some(d) = deal else { return Ok(()) };
    let q = crm_app::quotes::create(
        c,
        ctx,
        &object(serde_json::json!({"opportunity_id": d.id,
                                   "lines": [{"product_id": d.other, "quantity": "2", "discount_pct": "20"}]})),
    )?;
    crm_app::quotes::submit(c, ctx, q.id)?;
    Ok(())
}

/// Clears the auth cache whenever another instance announces an org change.
fn spawn_auth_listener(url: String, state: AppState) {
    std::thread::Builder::new()
        .name("auth-listener".into())
        .spawn(move || loop {
            match PgConnection::establish(&url) {
                Ok(mut conn) => {
                    if diesel::sql_query("LISTEN crm_auth").execute(&mut conn).is_err() {
                        std::thread::sleep(Duration::from_secs(5));
                        continue;
                    }
                    loop {
                        // A cheap round trip lets libpq read pending notifications.
                        if diesel::sql_query("SELECT 1").execute(&mut conn).is_err() {
                            break;
                        }
                        let mut changed = false;
                        for n in conn.notifications_iter() {
                            changed |= n.is_ok();
                        }
                        if changed {
                            state.invalidate_caches();
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "auth listener cannot connect; retrying"),
            }
            std::thread::sleep(Duration::from_secs(5));
        })
        .ok();
}

/// Starts the background worker on a pool of its own.
fn start_worker(
    url: &str,
    bg: &BackgroundArgs,
    clock: crm_app::Clock,
) -> Result<(crm_worker::Worker, Arc<WorkerMetrics>)> {
    let config = crm_worker::WorkerConfig {
        queues: vec![
            (crm_worker::builtin::DEFAULT_QUEUE.into(), bg.job_workers.max(1)),
            (crm_worker::builtin::EVENTS_QUEUE.into(), bg.event_workers.max(1)),
            (crm_app::webhooks::QUEUE.into(), bg.webhook_workers.max(1)),
        ],
        lease: Duration::from_secs(bg.job_lease_secs.max(1)),
        ..crm_worker::WorkerConfig::default()
    };
    let threads = config.queues.iter().map(|q| q.1).sum::<usize>();
    let pool = build_pool(
        url,
        &PoolConfig {
            max_size: u32::try_from(threads + 3).unwrap_or(16),
            ..PoolConfig::default()
        },
    )
    .with_context(|| format!("connecting to {}", redact_url(url)))?;
    let metrics = Arc::new(WorkerMetrics::default());
    let policy =
        crm_worker::egress::Policy::parse(&bg.egress_allow).map_err(|e| anyhow::anyhow!("CRM_EGRESS_ALLOW: {e}"))?;
    let egress = crm_worker::egress::Egress::new(policy, Duration::from_secs(3), Duration::from_secs(10));
    let webhook_opts = crm_worker::webhooks::WebhookOptions {
        disable_after: chrono::Duration::hours(bg.webhook_disable_after_hours.max(1)),
        ..Default::default()
    };
    let options = crm_worker::builtin::Options {
        outbox_retention_days: bg.outbox_retention_days,
        ..Default::default()
    };
    let registry = crm_worker::builtin::registry_with(&options, |r| {
        crm_worker::robots::register(r, egress.clone());
        crm_worker::webhooks::register(r, egress, webhook_opts);
    });
    let worker = crm_worker::Worker::start(crm_worker::Setup {
        pool,
        database_url: url.to_owned(),
        registry,
        config,
        clock,
        metrics: metrics.clone(),
    })
    .map_err(|e| anyhow::anyhow!("starting the background worker: {e}"))?;
    Ok((worker, metrics))
}

async fn stop_worker(worker: crm_worker::Worker, grace: Duration) {
    let _ = tokio::task::spawn_blocking(move || worker.shutdown(grace)).await;
}

async fn run_worker(args: WorkerArgs) -> Result<()> {
    let url = args.db.database_url.clone();
    let u = url.clone();
    tokio::task::spawn_blocking(move || prepare_database(&u)).await??;
    let (worker, _metrics) = start_worker(&url, &args.background, crm_app::Clock::default())?;
    wait_for_stop_signal().await;
    tracing::info!("stopping: letting running jobs finish");
    stop_worker(worker, Duration::from_secs(args.background.shutdown_grace_secs)).await;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = actix_web::rt::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = actix_web::rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let url = args.db.database_url.clone();
    let secret = match (&args.jwt_secret, args.demo) {
        (Some(s), _) if s.len() >= 32 => s.clone().into_bytes(),
        (Some(_), _) => bail!("CRM_JWT_SECRET must be at least 32 bytes"),
        (None, true) => {
            tracing::warn!("no CRM_JWT_SECRET: using a random one (tokens end when the server restarts)");
            crm_domain::secrets::random_secret(48).into_bytes()
        }
        (None, false) => bail!("CRM_JWT_SECRET is required (or run with --demo)"),
    };
    let u = url.clone();
    tokio::task::spawn_blocking(move || prepare_database(&u)).await??;
    if args.demo {
        let u = url.clone();
        tokio::task::spawn_blocking(move || seed_demo(&u)).await??;
    }
    let pool = build_pool(
        &url,
        &PoolConfig {
            max_size: args.pool_size,
            ..PoolConfig::default()
        },
    )
    .with_context(|| format!("connecting to {}", redact_url(&url)))?;
    let mut cfg = HttpConfig::with_secret(secret);
    cfg.access_ttl = Duration::from_secs(args.access_ttl_secs);
    cfg.trust_proxy = args.trust_proxy;
    cfg.export_slots = args.export_slots;
    cfg.export_max_rows = args.export_max_rows.max(1);
    cfg.metrics_token = args.metrics_token.clone().filter(|t| !t.is_empty());
    cfg.ip_throttle.max_failures = args.login_ip_max_failures.max(1);
    cfg.report_slots = args.report_slots.max(1);
    let mut state = AppState::new(Db::new(pool), cfg);
    if let Some(replica) = args.reports_database_url.as_deref().filter(|u| !u.is_empty()) {
        let pool = build_pool(
            replica,
            &PoolConfig {
                max_size: u32::try_from(args.report_slots.max(1)).unwrap_or(4),
                ..PoolConfig::default()
            },
        )
        .with_context(|| format!("connecting to the reports replica {}", redact_url(replica)))?;
        state.reports_db = Db::new(pool);
        tracing::info!(replica = %redact_url(replica), "report queries go to the read replica");
    }
    let worker = if args.no_worker {
        tracing::info!("background work is left to `crm worker` processes (--no-worker)");
        None
    } else {
        let (worker, metrics) = start_worker(&url, &args.background, state.clock.clone())?;
        state.extra_metrics = Some(Arc::new(move || metrics.render()));
        Some(worker)
    };
    spawn_auth_listener(url, state.clone());
    // The worker stops on the same signal as the HTTP server, in parallel with it.
    let grace = Duration::from_secs(args.background.shutdown_grace_secs);
    let worker = worker.map(|w| {
        actix_web::rt::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!("stopping background work: letting running jobs finish");
            stop_worker(w, grace).await;
        })
    });

    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    tracing::info!(bind = %args.bind, workers, "listening; API docs at /docs");
    let app_state = state.clone();
    let api = actix_web::HttpServer::new(move || crm_http::routes::app(app_state.clone()))
        .workers(workers)
        .shutdown_timeout(30)
        .bind(&args.bind)
        .with_context(|| format!("binding {}", args.bind))?
        .run();
    match &args.metrics_bind {
        Some(bind) => {
            tracing::info!(bind = %bind, "metrics listener");
            let metrics_state = state.clone();
            let metrics = actix_web::HttpServer::new(move || crm_http::routes::metrics_app(metrics_state.clone()))
                .workers(1)
                .bind(bind)
                .with_context(|| format!("binding {bind}"))?
                .run();
            let (a, m) = futures_util::future::join(api, metrics).await;
            a?;
            m?;
        }
        None => api.await?,
    }
    if let Some(stopping) = worker {
        let _ = stopping.await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            use std::io::Write;
            // A closed pipe (e.g. `| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(crm_http::openapi::spec_json().as_bytes());
            Ok(())
        }
        Command::Migrate(db) => {
            init_tracing(db.log_format);
            prepare_database(&db.database_url)
        }
        Command::SeedDemo(db) => {
            init_tracing(db.log_format);
            prepare_database(&db.database_url)?;
            seed_demo(&db.database_url)
        }
        Command::Serve(args) => {
            init_tracing(args.db.log_format);
            actix_web::rt::System::new().block_on(serve(args))
        }
        Command::Worker(args) => {
            init_tracing(args.db.log_format);
            actix_web::rt::System::new().block_on(run_worker(args))
        }
        Command::Demo(mut args) => {
            args.demo = true;
            init_tracing(args.db.log_format);
            actix_web::rt::System::new().block_on(serve(args))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/crm"),
            "postgres://u:***@h:5432/crm"
        );
        assert_eq!(redact_url("postgres://postgres@h/crm"), "postgres://postgres@h/crm");
    }
}
