//! Outgoing webhooks: subscriptions (admin), turning events into signed deliveries
//! (the `webhooks` event subscriber), the delivery log, redelivery and test events.
//! Sending is the worker's part (`crm_worker::webhooks`).
//!
//! A subscription acts as its owner limited to one role, like an API key: the role's
//! data scope decides which records' events it receives, its field permissions shape
//! the payload (hidden fields absent, masked ones masked, in `changes` and `record`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crm_db::repo::outbox::Delivered;
use crm_db::repo::webhooks::{self as repo, DeliveryRow, NewDelivery, NewWebhook, WebhookChange, WebhookRow};
use crm_db::repo::{auth, fields, roles};
use crm_domain::access::{Action, Principal};
use crm_domain::expr::Expr;
use crm_domain::integrations::{check_pattern, read_permission, type_matches};
use diesel::PgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};

/// The queue deliveries run on (own threads: a slow receiver never holds up other work).
pub const QUEUE: &str = "webhooks";
/// Delivers a subscription's due deliveries: `{"webhook_id"}`.
pub const DELIVER: &str = "webhooks.deliver";
/// Finds subscriptions with due deliveries and no job (a safety net).
pub const SWEEP: &str = "webhooks.sweep";
/// The event type of a "send test event".
pub const TEST_EVENT: &str = "webhook.test";

const RES: &str = "settings";

/// What a subscription is created from.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub condition: Option<Value>,
    /// The key of the role whose scope and field permissions apply.
    pub role: String,
    pub enabled: Option<bool>,
}

/// A change to a subscription (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub condition: Option<Option<Value>>,
    pub role: Option<String>,
    pub enabled: Option<bool>,
}

fn check_url(errs: &mut Errors, raw: &str) -> String {
    let raw = raw.trim();
    match url::Url::parse(raw) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errs.add("url", "invalid_url", "only http and https URLs");
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => errs.add("url", "invalid_url", "the URL needs a host"),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            errs.add("url", "invalid_url", "credentials in the URL are not allowed")
        }
        Ok(_) if raw.len() > 2000 => errs.add("url", "too_long", "at most 2000 characters"),
        Ok(_) => {}
        Err(e) => errs.add("url", "invalid_url", format!("not a URL: {e}")),
    }
    raw.to_owned()
}

fn check_types(errs: &mut Errors, types: &[String]) -> Vec<String> {
    if types.is_empty() {
        errs.add("event_types", "required", "name at least one event type (`*` for all)");
    }
    if types.len() > 100 {
        errs.add("event_types", "too_many", "at most 100 patterns");
    }
    for (i, t) in types.iter().enumerate() {
        if let Err(m) = check_pattern(t) {
            errs.add(&format!("event_types[{i}]"), "unknown_event_type", m);
        }
    }
    let mut out = types.to_vec();
    out.sort();
    out.dedup();
    out
}

fn check_condition(errs: &mut Errors, v: Option<Value>) -> Option<Value> {
    let v = v.filter(|v| !v.is_null())?;
    match serde_json::from_value::<Expr>(v.clone()) {
        Ok(e) => {
            if let Err(x) = e.validate() {
                errs.add("condition", "invalid_condition", x.to_string());
            }
        }
        Err(e) => errs.add("condition", "invalid_condition", format!("not a condition: {e}")),
    }
    Some(v)
}

fn role_id(c: &mut PgConnection, errs: &mut Errors, key: &str) -> AppResult<Uuid> {
    Ok(match roles::find_by_keys(c, &[key.to_owned()])?.into_iter().next() {
        Some(r) => r.id,
        None => {
            errs.add("role", "not_found", "no such role");
            Uuid::nil()
        }
    })
}

fn description(errs: &mut Errors, d: Option<String>) -> String {
    let d = d.unwrap_or_default().trim().to_owned();
    if d.chars().count() > 500 {
        errs.add("description", "too_long", "at most 500 characters");
    }
    d
}

fn new_secret() -> String {
    format!("whsec_{}", crm_domain::secrets::random_secret(32))
}

/// Creates a subscription owned by the caller; returns it with its signing secret
/// (shown this once).
pub fn create(c: &mut PgConnection, ctx: &Ctx, input: WebhookInput) -> AppResult<(WebhookRow, String)> {
    ctx.require(RES, Action::Admin)?;
    let mut errs = Errors::default();
    let url = check_url(&mut errs, &input.url);
    let event_types = check_types(&mut errs, &input.event_types);
    let condition = check_condition(&mut errs, input.condition);
    let description = description(&mut errs, input.description);
    let role_id = role_id(c, &mut errs, &input.role)?;
    errs.into_result()?;
    if ctx.user_id().is_nil() {
        return Err(AppError::forbidden("a webhook belongs to a user"));
    }
    let secret = new_secret();
    let row = repo::insert(
        c,
        &NewWebhook {
            id: Uuid::now_v7(),
            url,
            description,
            event_types,
            condition,
            role_id,
            owner_id: ctx.user_id(),
            enabled: input.enabled.unwrap_or(true),
            secret: secret.clone(),
        },
    )?;
    tracing::info!(webhook = %row.id, user = %ctx.user_id(), "webhook created");
    Ok((row, secret))
}

pub fn list(c: &mut PgConnection, ctx: &Ctx) -> AppResult<Vec<WebhookRow>> {
    ctx.require(RES, Action::Admin)?;
    Ok(repo::list(c)?)
}

pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<WebhookRow> {
    ctx.require(RES, Action::Admin)?;
    repo::find(c, id)?.ok_or(AppError::NotFound("webhook"))
}

/// Changes a subscription. Enabling it again clears its failure streak.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    patch: WebhookPatch,
    expected: Option<i32>,
) -> AppResult<WebhookRow> {
    ctx.require(RES, Action::Admin)?;
    let current = repo::lock(c, id)?.ok_or(AppError::NotFound("webhook"))?;
    if expected.is_some_and(|v| v != current.version) {
        return Err(AppError::Stale {
            current: current.version,
        });
    }
    let mut errs = Errors::default();
    let mut change = WebhookChange {
        url: patch.url.map(|u| check_url(&mut errs, &u)),
        description: patch.description.map(|d| description(&mut errs, Some(d))),
        event_types: patch.event_types.map(|t| check_types(&mut errs, &t)),
        condition: patch.condition.map(|v| check_condition(&mut errs, v)),
        role_id: match patch.role {
            Some(r) => Some(role_id(c, &mut errs, &r)?),
            None => None,
        },
        enabled: patch.enabled,
        ..WebhookChange::default()
    };
    errs.into_result()?;
    if patch.enabled == Some(true) && !current.enabled {
        change.failing_since = Some(None);
        change.disabled_at = Some(None);
        change.disabled_reason = Some(None);
    }
    let row = repo::update(c, id, &change)?;
    if row.enabled && !current.enabled {
        // Deliveries that waited while it was disabled go out now.
        repo::schedule(c, QUEUE, DELIVER, id, ctx.now())?;
    }
    Ok(row)
}

pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    ctx.require(RES, Action::Admin)?;
    if !repo::delete(c, id)? {
        return Err(AppError::NotFound("webhook"));
    }
    tracing::info!(webhook = %id, user = %ctx.user_id(), "webhook deleted");
    Ok(())
}

/// Replaces the signing secret; the old one keeps signing (a second `v1`) for
/// `grace_hours` (0..=168). Returns the new secret (shown this once).
pub fn rotate_secret(c: &mut PgConnection, ctx: &Ctx, id: Uuid, grace_hours: i64) -> AppResult<(WebhookRow, String)> {
    ctx.require(RES, Action::Admin)?;
    if !(0..=168).contains(&grace_hours) {
        return Err(AppError::field("grace_hours", "out_of_range", "0 to 168 hours"));
    }
    repo::lock(c, id)?.ok_or(AppError::NotFound("webhook"))?;
    let secret = new_secret();
    let row = repo::rotate_secret(c, id, &secret, ctx.now() + Duration::hours(grace_hours))?;
    tracing::info!(webhook = %id, user = %ctx.user_id(), grace_hours, "webhook secret rotated");
    Ok((row, secret))
}

/// The delivery log, newest first.
pub fn deliveries(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    get(c, ctx, id)?;
    Ok(repo::deliveries(c, id, state, before, limit)?)
}

/// One delivery with every attempt.
pub fn delivery(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    delivery: i64,
) -> AppResult<(DeliveryRow, Vec<repo::AttemptRow>)> {
    get(c, ctx, id)?;
    let d = repo::find_delivery(c, id, delivery)?.ok_or(AppError::NotFound("delivery"))?;
    let attempts = repo::attempts(c, d.id)?;
    Ok((d, attempts))
}

/// What to deliver again.
#[derive(Debug, Clone, Copy)]
pub enum Redeliver {
    One(i64),
    Window { from: DateTime<Utc>, to: DateTime<Utc> },
}

/// Most deliveries one redelivery request queues.
pub const MAX_REDELIVER: i64 = 1000;

/// Queues the same bodies again (same event ids, so receivers can deduplicate) as new
/// deliveries; returns them.
pub fn redeliver(c: &mut PgConnection, ctx: &Ctx, id: Uuid, what: Redeliver) -> AppResult<Vec<i64>> {
    get(c, ctx, id)?;
    let originals = match what {
        Redeliver::One(d) => vec![repo::find_delivery(c, id, d)?.ok_or(AppError::NotFound("delivery"))?],
        Redeliver::Window { from, to } => {
            if to <= from {
                return Err(AppError::field("to", "out_of_range", "must be after `from`"));
            }
            if to - from > Duration::days(31) {
                return Err(AppError::field("to", "out_of_range", "a window of at most 31 days"));
            }
            repo::deliveries_between(c, id, from, to, MAX_REDELIVER)?
        }
    };
    let now = ctx.now();
    let rows: Vec<NewDelivery> = originals
        .iter()
        .map(|d| NewDelivery {
            webhook_id: id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            record_id: d.record_id,
            body: d.body.clone(),
            next_attempt_at: now,
            created_at: now,
            redelivery_of: Some(d.id),
        })
        .collect();
    let ids = insert_returning(c, &rows)?;
    if !ids.is_empty() {
        repo::schedule(c, QUEUE, DELIVER, id, now)?;
    }
    tracing::info!(webhook = %id, user = %ctx.user_id(), deliveries = ids.len(), "webhook redelivery queued");
    Ok(ids)
}

fn insert_returning(c: &mut PgConnection, rows: &[NewDelivery]) -> AppResult<Vec<i64>> {
    use diesel::prelude::*;
    let mut ids = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = diesel::insert_into(repo::webhook_deliveries::table)
            .values(r)
            .returning(repo::webhook_deliveries::id)
            .get_result(c)?;
        ids.push(id);
    }
    Ok(ids)
}

/// Queues a `webhook.test` event to an enabled subscription (a disabled one sends
/// nothing: 409 `webhook_disabled`); returns the delivery id.
pub fn send_test(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<i64> {
    let hook = get(c, ctx, id)?;
    if !hook.enabled {
        return Err(AppError::conflict(
            "webhook_disabled",
            "the webhook is disabled; enable it to send a test event",
        ));
    }
    let now = ctx.now();
    let event_id = Uuid::now_v7();
    let body = json!({
        "schema_version": crm_db::repo::audit::EVENT_SCHEMA_VERSION,
        "id": event_id,
        "type": TEST_EVENT,
        "occurred_at": now,
        "actor": {"kind": "user", "user_id": ctx.user_id()},
        "object": {"type": "webhooks", "id": id},
        "changes": {},
        "record": null,
    });
    let ids = insert_returning(
        c,
        &[NewDelivery {
            webhook_id: id,
            event_id,
            event_type: TEST_EVENT.into(),
            record_id: None,
            body: body.to_string(),
            next_attempt_at: now,
            created_at: now,
            redelivery_of: None,
        }],
    )?;
    repo::schedule(c, QUEUE, DELIVER, id, now)?;
    Ok(ids[0])
}

/// The principals subscriptions act as, loaded once per batch of events.
#[derive(Default)]
pub struct Principals(HashMap<(Uuid, Uuid), Option<Arc<Principal>>>);

impl Principals {
    fn get(&mut self, c: &mut PgConnection, owner: Uuid, role: Uuid) -> AppResult<Option<Arc<Principal>>> {
        if let Some(p) = self.0.get(&(owner, role)) {
            return Ok(p.clone());
        }
        let p = auth::load_principal(c, owner, Some(&[role]), chrono::Duration::zero())?
            .filter(|l| l.is_active)
            .map(|l| Arc::new(l.principal));
        self.0.insert((owner, role), p.clone());
        Ok(p)
    }
}

/// Whether the principal may see this event's record at all.
fn may_see(p: &Principal, object: &str, state: &Value) -> bool {
    let (resource, action, owned) = read_permission(object);
    let Some(scope) = p.scope(resource, action) else {
        return false;
    };
    if !owned || !crm_domain::integrations::scoped(scope) {
        return true;
    }
    let id = |k: &str| {
        state
            .get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    match id("owner_id") {
        Some(owner) => p.reaches(scope, owner, id("team_id")),
        None => false,
    }
}

fn shape_view(c: &mut PgConnection, p: &Principal, object: &str, v: &mut Value) -> AppResult<()> {
    let defs = fields::list(c, object, true)?;
    crate::shaping::shape(p, object, &defs, v);
    // Related records carried in the view are shaped as their own objects.
    for (key, related) in [("account", "accounts"), ("opportunity", "opportunities")] {
        if let Some(r) = v.get_mut(key).filter(|r| r.is_object()) {
            let defs = fields::list(c, related, true)?;
            crate::shaping::shape(p, related, &defs, r);
        }
    }
    Ok(())
}

/// The `webhooks` event subscriber: a delivery for every enabled subscription whose
/// patterns, data scope and condition take the event, with the payload shaped for its
/// role; the subscriptions' delivery jobs are scheduled. Handling an event twice
/// creates nothing new. Returns how many deliveries were created.
pub fn on_event(
    c: &mut PgConnection,
    now: DateTime<Utc>,
    event: &Delivered,
    cache: &mut Principals,
) -> AppResult<usize> {
    let hooks = repo::enabled(c)?;
    let event_type = event
        .payload
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(&event.event_type)
        .to_owned();
    let object = event.aggregate_type.as_str();
    let state = event.payload.get("state").cloned().unwrap_or(Value::Null);
    let mut view: Option<Option<Value>> = None;
    let mut rows = Vec::new();
    for h in hooks {
        if h.created_at > event.committed_at || !h.event_types.iter().any(|p| type_matches(p, &event_type)) {
            continue;
        }
        let Some(p) = cache.get(c, h.owner_id, h.role_id)? else {
            continue;
        };
        if !may_see(&p, object, &state) {
            continue;
        }
        if view.is_none() {
            let known = crate::record::VIEWED.iter().any(|(o, _)| *o == object);
            view = Some(if known {
                crate::record::view(c, object, event.aggregate_id)?
            } else {
                Some(state.clone()).filter(|s| !s.is_null())
            });
        }
        let mut record = view.clone().flatten().unwrap_or(Value::Null);
        if !record.is_null() {
            shape_view(c, &p, object, &mut record)?;
        }
        if let Some(cond) = h.condition.as_ref().filter(|v| !v.is_null()) {
            let expr: Expr = serde_json::from_value(cond.clone())
                .map_err(|e| AppError::internal(format!("webhook {} has an unreadable condition: {e}", h.id)))?;
            if !expr.eval(&record) {
                continue;
            }
        }
        let mut changes = event.payload.get("changes").cloned().unwrap_or_else(|| json!({}));
        crate::shaping::shape_changes(&p, object, &mut changes);
        let mut body = Map::new();
        for k in ["schema_version", "id", "type", "occurred_at", "actor", "object"] {
            body.insert(k.into(), event.payload.get(k).cloned().unwrap_or(Value::Null));
        }
        body.insert("changes".into(), changes);
        if let Some(d) = event.payload.get("detail") {
            body.insert("detail".into(), d.clone());
        }
        body.insert("record".into(), record);
        rows.push(NewDelivery {
            webhook_id: h.id,
            event_id: event.event_id,
            event_type: event_type.clone(),
            record_id: Some(event.aggregate_id),
            body: Value::Object(body).to_string(),
            next_attempt_at: now,
            created_at: now,
            redelivery_of: None,
        });
    }
    let n = repo::insert_deliveries(c, &rows)?;
    let mut scheduled: Vec<Uuid> = rows.iter().map(|r| r.webhook_id).collect();
    scheduled.dedup();
    if n > 0 {
        for id in scheduled {
            repo::schedule(c, QUEUE, DELIVER, id, now)?;
        }
    }
    Ok(n)
}
