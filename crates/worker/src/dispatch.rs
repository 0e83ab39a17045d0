//! The outbox dispatcher: reads committed events in commit order and hands each to
//! every subscriber, moving the subscriber's stored position in the same transaction as
//! the subscriber's effects. Several dispatchers (instances) may run: the position row
//! is locked (`SKIP LOCKED`), so one of them delivers a subscriber's batch at a time
//! and events of one record arrive in order. A process that dies mid-batch rolls back
//! both effects and position; the batch is delivered again.
//!
//! A subscriber that fails on one event does not stop the stream: the event is handed
//! to it again by an `outbox.redeliver` job (with the job queue's retries, backoff and
//! dead state), and the batch goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crm_db::repo::{jobs, outbox};
use diesel::prelude::*;
use serde_json::json;

use crate::builtin::{EVENTS_QUEUE, REDELIVER};
use crate::listen::Signals;
use crate::{BoxError, JobContext, Setup, Subscriber};

pub fn run(setup: &Setup, signals: &Signals, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let seen = signals.outbox.seen();
        let mut busy = false;
        for s in &setup.registry.subscribers {
            match dispatch_once(setup, s.as_ref()) {
                Ok(n) => busy |= n > 0,
                Err(e) => tracing::warn!(subscriber = s.name(), error = %e, "dispatch failed"),
            }
        }
        if !busy {
            signals.outbox.wait(seen, setup.config.poll.min(Duration::from_secs(1)));
        }
    }
}

/// Delivers one batch to `sub`; the number of commits it moved past (0: nothing new,
/// or another dispatcher holds this subscriber).
pub fn dispatch_once(setup: &Setup, sub: &dyn Subscriber) -> Result<usize, BoxError> {
    let mut c = setup.pool.get()?;
    let batch = setup.config.dispatch_batch;
    c.transaction::<_, BoxError, _>(|c| {
        let Some(position) = outbox::lock_position(c, sub.name())? else {
            return Ok(0);
        };
        let (end, events) = outbox::after(c, position, batch)?;
        if end == position {
            return Ok(0);
        }
        let ctx = JobContext {
            clock: setup.clock.clone(),
            attempt: 1,
        };
        for ev in &events {
            let handled = c.transaction::<_, BoxError, _>(|c| sub.handle(c, &ctx, ev));
            let lag = (chrono::Utc::now() - ev.committed_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            setup.metrics.handled(sub.name(), lag, handled.is_ok());
            if let Err(e) = handled {
                tracing::warn!(subscriber = sub.name(), event = %ev.event_id, error = %e,
                    "subscriber failed; redelivering as a job");
                let job = jobs::NewJob::new(
                    EVENTS_QUEUE,
                    REDELIVER,
                    json!({"subscriber": sub.name(), "event_id": ev.event_id}),
                )
                .unique(format!("redeliver:{}:{}", sub.name(), ev.event_id));
                jobs::enqueue(c, &job)?;
            }
        }
        outbox::set_position(c, sub.name(), end)?;
        Ok(usize::try_from(end - position).unwrap_or(0))
    })
}
