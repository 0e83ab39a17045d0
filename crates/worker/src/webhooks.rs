//! Sending webhook deliveries: the `webhooks` event subscriber (events -> deliveries),
//! the per-subscription delivery job, and the sweeper that reschedules any
//! subscription with due deliveries.
//!
//! A delivery job locks its subscription (one run per subscription at a time, so one
//! record's deliveries keep their order), sends due deliveries one by one and records
//! each attempt in the same transaction as the job. A worker dying mid-run rolls that
//! back and the job runs again after its lease: delivery is at least once, and every
//! delivery carries the event's stable id for receivers to deduplicate.
//!
//! Outcomes: 2xx delivered; 429 retried after `Retry-After`; 408, 409, 425, 5xx and
//! transport failures retried with exponential backoff (with jitter) until the retry
//! window (3 days) has passed; any other status, a redirect, or an address the egress
//! policy refuses fails at once. A subscription failing continuously for
//! `disable_after` is disabled and its owner notified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crm_app::notifications::{self, Planned};
use crm_app::webhooks::{self as app, Principals, DELIVER, QUEUE, SWEEP};
use crm_db::repo::outbox::Delivered;
use crm_db::repo::webhooks::{self as repo, AttemptResult, DeliveryRow, WebhookChange, WebhookRow};
use crm_domain::integrations::signature_header;
use diesel::PgConnection;
use serde_json::Value;
use uuid::Uuid;

use crate::egress::{Egress, SendError};
use crate::{BoxError, JobContext, Registry, Subscriber};

/// How deliveries are retried and when a subscription is given up on.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Retries stop this long after a delivery was created.
    pub retry_window: chrono::Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A subscription failing continuously this long is disabled.
    pub disable_after: chrono::Duration,
    /// Most deliveries one job sends before handing over to the next job.
    pub batch: usize,
    /// Most time one job spends sending.
    pub budget: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: chrono::Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            retry_window: chrono::Duration::days(3),
            base_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(6 * 3600),
            disable_after: chrono::Duration::days(3),
            batch: 2000,
            budget: Duration::from_secs(10),
            max_retry_after: chrono::Duration::hours(24),
        }
    }
}

/// The most of a response body kept in the delivery log.
pub const EXCERPT_CHARS: usize = 1000;

/// The event subscriber turning events into deliveries.
pub struct WebhookSubscriber;

impl Subscriber for WebhookSubscriber {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn handle(&self, conn: &mut PgConnection, ctx: &JobContext, event: &Delivered) -> Result<(), BoxError> {
        app::on_event(conn, ctx.clock.now(), event, &mut Principals::default())?;
        Ok(())
    }
}

/// Registers the subscriber, the delivery job and the sweeper.
pub fn register(registry: &mut Registry, egress: Egress, opts: WebhookOptions) {
    let egress = Arc::new(egress);
    let opts = Arc::new(opts);
    registry
        .handle(DELIVER, move |c, ctx, payload: &Value| {
            let id = payload
                .get("webhook_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Uuid>().ok())
                .ok_or("payload has no webhook_id")?;
            deliver(c, ctx, &egress, &opts, id)?;
            Ok(())
        })
        .handle(SWEEP, |c, ctx, _| {
            let now = ctx.clock.now();
            for id in repo::with_due(c, now)? {
                repo::schedule(c, QUEUE, DELIVER, id, now)?;
            }
            Ok(())
        })
        .every(SWEEP, crate::builtin::DEFAULT_QUEUE, SWEEP, Duration::from_secs(60))
        .subscribe(Arc::new(WebhookSubscriber));
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub attempted: usize,
    pub delivered: usize,
    pub disabled: bool,
    /// Another run held the subscription; this one was rescheduled.
    pub busy: bool,
}

/// Sends a subscription's due deliveries (see the module docs).
pub fn deliver(
    c: &mut PgConnection,
    ctx: &JobContext,
    egress: &Egress,
    opts: &WebhookOptions,
    id: Uuid,
) -> Result<Run, BoxError> {
    let mut run = Run::default();
    let Some(mut hook) = repo::lock_for_delivery(c, id)? else {
        // Deleted meanwhile: nothing to send. Otherwise another run holds it.
        if repo::find(c, id)?.is_some() {
            repo::schedule(
                c,
                QUEUE,
                DELIVER,
                id,
                ctx.clock.now() + chrono::Duration::milliseconds(200),
            )?;
            run.busy = true;
        }
        return Ok(run);
    };
    if !hook.enabled {
        return Ok(run);
    }
    let started = Instant::now();
    'run: while run.attempted < opts.batch && started.elapsed() < opts.budget {
        // Heads of distinct records: sending them one after another keeps every
        // record's order; a failed one holds back only its own record.
        let heads = repo::due_heads(c, id, ctx.clock.now(), 50)?;
        if heads.is_empty() {
            break;
        }
        for d in heads {
            if run.attempted >= opts.batch || started.elapsed() >= opts.budget {
                break 'run;
            }
            let now = ctx.clock.now();
            let result = attempt(egress, opts, &hook, &d, now);
            repo::record_attempt(c, &d, &result)?;
            run.attempted += 1;
            if result.outcome == "delivered" {
                run.delivered += 1;
                if hook.failing_since.is_some() {
                    repo::set_failing(c, id, None)?;
                    hook.failing_since = None;
                }
                continue;
            }
            let since = *hook.failing_since.get_or_insert(now);
            if now - since >= opts.disable_after {
                disable(c, &hook, since, now)?;
                run.disabled = true;
                return Ok(run);
            }
            repo::set_failing(c, id, Some(since))?;
        }
    }
    if let Some(at) = repo::next_due_at(c, id)? {
        repo::schedule(c, QUEUE, DELIVER, id, at.max(ctx.clock.now()))?;
    }
    Ok(run)
}

fn disable(c: &mut PgConnection, hook: &WebhookRow, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), BoxError> {
    let reason = format!("failing continuously since {}", since.to_rfc3339());
    repo::update(
        c,
        hook.id,
        &WebhookChange {
            enabled: Some(false),
            disabled_at: Some(Some(now)),
            disabled_reason: Some(Some(reason.clone())),
            failing_since: Some(Some(since)),
            ..WebhookChange::default()
        },
    )?;
    notifications::write(
        c,
        &Planned {
            user_id: hook.owner_id,
            kind: "webhook_disabled",
            object_type: "webhooks".into(),
            object_id: hook.id,
            title_zh: format!("Webhook {} 持续失败，已停用", hook.url),
            title_en: format!("Webhook {} was disabled: {reason}", hook.url),
        },
        Uuid::now_v7(),
        now,
    )?;
    tracing::warn!(webhook = %hook.id, %reason, "webhook disabled");
    Ok(())
}

fn excerpt(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.chars().take(EXCERPT_CHARS).collect())
    }
}

/// The backoff before attempt `n + 1` after `n` failed ones: half to all of
/// base·2^(n-1), capped.
pub fn backoff(opts: &WebhookOptions, attempts: i32) -> Duration {
    use rand::Rng;
    let exp = (attempts.clamp(1, 30) - 1) as u32;
    let full = opts
        .base_backoff
        .saturating_mul(1u32 << exp.min(20))
        .min(opts.max_backoff);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rand::rng().random::<f64>())
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn retry_after(v: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    if let Ok(secs) = v.trim().parse::<i64>() {
        return Some(chrono::Duration::seconds(secs.max(0)));
    }
    DateTime::parse_from_rfc2822(v.trim())
        .ok()
        .map(|t| (t.with_timezone(&Utc) - now).max(chrono::Duration::zero()))
}

/// One attempt at a delivery and how it is judged.
pub fn attempt(
    egress: &Egress,
    opts: &WebhookOptions,
    hook: &WebhookRow,
    d: &DeliveryRow,
    now: DateTime<Utc>,
) -> AttemptResult {
    let ts = now.timestamp();
    let headers = [
        ("Webhook-Id", d.event_id.to_string()),
        ("Webhook-Timestamp", ts.to_string()),
        (
            "Webhook-Signature",
            signature_header(&hook.signing_secrets(now), ts, &d.body),
        ),
        ("Webhook-Delivery", d.id.to_string()),
        ("Webhook-Attempt", (d.attempts + 1).to_string()),
    ];
    let sent = egress.post_json(&hook.url, &headers, &d.body);
    let give_up_at = d.created_at + opts.retry_window;
    let retry = |after: chrono::Duration| {
        let at = now + after;
        (at <= give_up_at).then_some(at)
    };
    let backoff = chrono::Duration::from_std(backoff(opts, d.attempts + 1)).unwrap_or(chrono::Duration::hours(1));
    let mut r = AttemptResult {
        at: now,
        status: None,
        latency_ms: 0,
        outcome: "failed",
        error: None,
        response: None,
        next_attempt_at: None,
    };
    match sent {
        Ok(reply) => {
            r.status = Some(i32::from(reply.status));
            r.latency_ms = i32::try_from(reply.latency.as_millis()).unwrap_or(i32::MAX);
            r.response = excerpt(&reply.body);
            match reply.status {
                200..=299 => r.outcome = "delivered",
                429 => {
                    let wait = reply
                        .retry_after
                        .as_deref()
                        .and_then(|v| retry_after(v, now))
                        .map_or(backoff, |w| w.min(opts.max_retry_after));
                    r.next_attempt_at = retry(wait);
                    r.error = Some("429 Too Many Requests".into());
                }
                408 | 409 | 425 | 500..=599 => {
                    r.next_attempt_at = retry(backoff);
                    r.error = Some(format!("HTTP {}", reply.status));
                }
                300..=399 => r.error = Some(format!("HTTP {}: redirects are not followed", reply.status)),
                s => r.error = Some(format!("HTTP {s}: not retried")),
            }
        }
        Err(SendError::Refused(why)) => r.error = Some(format!("refused by the egress policy: {why}")),
        Err(SendError::Transport { message, latency }) => {
            r.latency_ms = i32::try_from(latency.as_millis()).unwrap_or(i32::MAX);
            r.error = Some(message);
            r.next_attempt_at = retry(backoff);
        }
    }
    let retriable = r.outcome != "delivered"
        && (matches!(r.status, Some(408 | 409 | 425 | 429 | 500..=599))
            || (r.status.is_none() && !r.error.as_deref().unwrap_or("").starts_with("refused")));
    if retriable {
        match r.next_attempt_at {
            Some(_) => r.outcome = "retry",
            None => {
                r.error = Some(format!(
                    "gave up after {} attempts: {}",
                    d.attempts + 1,
                    r.error.clone().unwrap_or_default()
                ))
            }
        }
    }
    r
}
