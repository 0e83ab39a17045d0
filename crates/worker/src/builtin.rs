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

/// Registers the built-in jobs, schedules and subscribers.
pub fn standard(registry: &mut Registry, opts: &Options) {
    let retention = opts.outbox_retention_days.max(1);
    registry
        .handle(SWEEP, |c, ctx, _| {
            let swept = crm_app::approvals::sweep(c, &ctx.system())?;
            if swept.escalated + swept.quotes_expired > 0 {
                tracing::info!(
                    escalated = swept.escalated,
                    quotes_expired = swept.quotes_expired,
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
        .subscribe(Arc::new(Notifications));
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
