//! The product's own background work: queues, periodic jobs (approval escalation and
//! quote expiry, housekeeping, outbox pruning), event redelivery, and the in-app
//! notification subscriber.

use std::sync::Arc;
use std::time::Duration;

use crm_db::repo::outbox::Delivered;
use diesel::prelude::*;
use serde_json::Value;

use crate::{BoxError, JobContext, Registry, Subscriber};

/// Periodic and business jobs.
pub const DEFAULT_QUEUE: &str = "default";
/// Event redeliveries (and, next, webhook deliveries): apart, so a backlog there never
/// delays the periodic work.
pub const EVENTS_QUEUE: &str = "events";

pub const SWEEP: &str = "approvals.sweep";
pub const HOUSEKEEPING: &str = "housekeeping";
pub const PRUNE_OUTBOX: &str = "outbox.prune";
pub const REDELIVER: &str = "outbox.redeliver";

/// Settings of the built-in jobs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Days outbox events are kept once every subscriber has handled them.
    pub outbox_retention_days: i32,
    /// Period of the approval escalation / quote expiry sweep.
    pub sweep_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            outbox_retention_days: 30,
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// In-app notifications from events.
pub struct Notifications;

impl Subscriber for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn handle(&self, conn: &mut PgConnection, _ctx: &JobContext, event: &Delivered) -> Result<(), BoxError> {
        crm_app::notifications::on_event(conn, event)?;
        Ok(())
    }
}

/// The rule engine: event triggers (this subscriber), timers, scheduling and waits
/// (the `rules.*` jobs).
pub struct Rules;

impl Subscriber for Rules {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn handle(&self, conn: &mut PgConnection, ctx: &JobContext, event: &Delivered) -> Result<(), BoxError> {
        let mut actors = crm_app::rules::Actors::default();
        crm_app::rules::on_event(conn, &ctx.clock, event, &mut actors)?;
        Ok(())
    }
}

/// Customer tiering: an account's tier follows changes of its deals, contracts,
/// payments and activities.
pub struct Tiering;

impl Subscriber for Tiering {
    fn name(&self) -> &'static str {
        "tiering"
    }

    fn handle(&self, conn: &mut PgConnection, ctx: &JobContext, event: &Delivered) -> Result<(), BoxError> {
        let accounts = crm_app::tiering::accounts_of_event(event);
        crm_app::tiering::recompute_accounts(conn, &ctx.clock, &accounts)?;
        Ok(())
    }
}

fn rules_jobs(registry: &mut Registry) {
    use crm_app::rules;
    registry
        .handle(rules::TIMERS, |c, ctx, _| {
            let fired = rules::fire_due(c, &ctx.clock)?;
            if fired > 0 {
                tracing::info!(fired, "rule timers fired");
            }
            Ok(())
        })
        .handle(rules::SCHEDULE, |c, ctx, payload: &Value| {
            let id = uuid_in(payload, "rule_id")?;
            let after = uuid_in(payload, "after").unwrap_or_default();
            if let Some(last) = rules::schedule_page(c, &ctx.clock, id, after)? {
                crm_db::repo::jobs::enqueue(
                    c,
                    &crm_db::repo::jobs::NewJob::new(
                        rules::QUEUE,
                        rules::SCHEDULE,
                        serde_json::json!({"rule_id": id, "after": last}),
                    ),
                )?;
            }
            Ok(())
        })
        .handle(rules::SWEEP, |c, ctx, payload: &Value| {
            let id = uuid_in(payload, "rule_id")?;
            let index = payload
                .get("trigger_index")
                .and_then(Value::as_i64)
                .ok_or("payload has no trigger_index")?;
            let occurrence = payload
                .get("occurrence")
                .and_then(Value::as_str)
                .ok_or("payload has no occurrence")?;
            let after = uuid_in(payload, "after").unwrap_or_default();
            if let Some(last) = rules::sweep_page(c, &ctx.clock, id, i32::try_from(index)?, occurrence, after)? {
                crm_db::repo::jobs::enqueue(
                    c,
                    &crm_db::repo::jobs::NewJob::new(
                        rules::QUEUE,
                        rules::SWEEP,
                        serde_json::json!({"rule_id": id, "trigger_index": index, "occurrence": occurrence, "after": last}),
                    ),
                )?;
            }
            Ok(())
        })
        .handle(rules::CONTINUE, |c, ctx, payload: &Value| {
            let run = payload
                .get("run_id")
                .and_then(Value::as_i64)
                .ok_or("payload has no run_id")?;
            let from = payload
                .get("from")
                .and_then(Value::as_u64)
                .ok_or("payload has no from")?;
            rules::continue_run(c, &ctx.clock, run, usize::try_from(from)?)?;
            Ok(())
        });
}

fn uuid_in(payload: &Value, key: &str) -> Result<uuid::Uuid, BoxError> {
    Ok(payload
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("payload has no {key}"))?)
}

/// Registers the built-in jobs, schedules and subscribers.
pub fn standard(registry: &mut Registry, opts: &Options) {
    let retention = opts.outbox_retention_days.max(1);
    registry
        .handle(SWEEP, |c, ctx, _| {
            let swept = crm_app::approvals::sweep(c, &ctx.system())?;
            if swept.escalated + swept.quotes_expired + swept.sla_breached > 0 {
                tracing::info!(
                    escalated = swept.escalated,
                    quotes_expired = swept.quotes_expired,
                    sla_breached = swept.sla_breached,
                    "sweep done"
                );
            }
            Ok(())
        })
        .handle(HOUSEKEEPING, |c, _, _| {
            let keys = crm_db::repo::idempotency::purge_expired(c)?;
            let throttle = crm_db::repo::auth::purge_throttle(c, chrono::Duration::days(1))?;
            let capture = crm_db::repo::capture::purge_counters(c)?;
            tracing::info!(keys, throttle, capture, "housekeeping done");
            Ok(())
        })
        .handle(crm_app::reports::forecast::SNAPSHOT_JOB, |c, ctx, _| {
            let rows = crm_app::reports::forecast::take_snapshot(c, &ctx.clock)?;
            if rows > 0 {
                tracing::info!(rows, "forecast snapshot taken");
            }
            Ok(())
        })
        .handle(crm_app::reports::delivery::DUE_JOB, |c, ctx, _| {
            let queued = crm_app::reports::delivery::queue_due(c, &ctx.clock, 200)?;
            if queued > 0 {
                tracing::info!(queued, "report deliveries queued");
            }
            Ok(())
        })
        .handle(crm_app::reports::delivery::DELIVER_JOB, |c, ctx, payload: &Value| {
            let id = uuid_in(payload, "subscription_id")?;
            let occurrence: chrono::DateTime<chrono::Utc> = payload
                .get("occurrence")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or("payload has no occurrence")?;
            if let Some(d) = crm_app::reports::delivery::deliver(c, &ctx.clock, id, occurrence)? {
                tracing::info!(subscription = %id, status = %d.status, notified = d.notified, "report delivered");
            }
            Ok(())
        })
        .handle(crm_app::tiering::JOB, |c, ctx, payload: &Value| {
            let after = uuid_in(payload, "after").unwrap_or_default();
            let (changed, next) = crm_app::tiering::recompute_page(c, &ctx.clock, after)?;
            if changed > 0 {
                tracing::info!(changed, "account tiers recomputed");
            }
            if let Some(last) = next {
                crm_db::repo::jobs::enqueue(
                    c,
                    &crm_db::repo::jobs::NewJob::new(
                        crm_app::tiering::QUEUE,
                        crm_app::tiering::JOB,
                        serde_json::json!({"after": last}),
                    ),
                )?;
            }
            Ok(())
        })
        .handle(PRUNE_OUTBOX, move |c, _, _| {
            let n = crm_db::repo::outbox::prune(c, retention)?;
            if n > 0 {
                tracing::info!(events = n, retention_days = retention, "outbox pruned");
            }
            Ok(())
        })
        .every(SWEEP, DEFAULT_QUEUE, SWEEP, opts.sweep_every)
        .every(HOUSEKEEPING, DEFAULT_QUEUE, HOUSEKEEPING, Duration::from_secs(3600))
        .every(PRUNE_OUTBOX, DEFAULT_QUEUE, PRUNE_OUTBOX, Duration::from_secs(3600))
        // The first run of a business day records that day's forecast snapshot.
        .every(
            crm_app::reports::forecast::SNAPSHOT_JOB,
            DEFAULT_QUEUE,
            crm_app::reports::forecast::SNAPSHOT_JOB,
            Duration::from_secs(3600),
        )
        // Report subscriptions: due schedules become delivery jobs.
        .every(
            crm_app::reports::delivery::DUE_JOB,
            DEFAULT_QUEUE,
            crm_app::reports::delivery::DUE_JOB,
            Duration::from_secs(60),
        )
        // Every account's tier, daily (a run that changes nothing writes nothing).
        .every(
            crm_app::tiering::JOB,
            DEFAULT_QUEUE,
            crm_app::tiering::JOB,
            Duration::from_secs(86_400),
        )
        // A safety net only: timers wake their job at their exact moment.
        .every(
            crm_app::rules::TIMERS,
            DEFAULT_QUEUE,
            crm_app::rules::TIMERS,
            Duration::from_secs(300),
        )
        .subscribe(Arc::new(Notifications))
        .subscribe(Arc::new(Rules))
        .subscribe(Arc::new(Tiering));
    rules_jobs(registry);
}

/// Registers the redelivery job for the subscribers registered so far (call last).
pub fn redelivery(registry: &mut Registry) {
    let subscribers = registry.subscribers.clone();
    registry.handle(REDELIVER, move |c, ctx, payload: &Value| {
        let name = payload.get("subscriber").and_then(Value::as_str).unwrap_or("");
        let sub = subscribers
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("no subscriber `{name}`"))?;
        let id = payload
            .get("event_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or("payload has no event_id")?;
        match crm_db::repo::outbox::by_event_id(c, id)? {
            Some(ev) => sub.handle(c, ctx, &ev),
            // Pruned meanwhile: nothing left to deliver.
            None => Ok(()),
        }
    });
}

/// The registry of a production process.
pub fn registry(opts: &Options) -> Registry {
    registry_with(opts, |_| {})
}

/// The standard registry plus what `extra` registers (integrations), with redelivery
/// covering every subscriber.
pub fn registry_with(opts: &Options, extra: impl FnOnce(&mut Registry)) -> Registry {
    let mut r = Registry::default();
    standard(&mut r, opts);
    extra(&mut r);
    redelivery(&mut r);
    r
}
