//! Follow-ups (calls, visits, meetings ...): logging one touches what it is about (last
//! activity of the account, contact and deal; a lead's first response), correcting one.

use chrono::{DateTime, Duration, Utc};
use crm_db::repo::accounts::Liveness;
use crm_db::repo::activities::{self as acts, ActivityChanges, ActivityRow, NewActivity};
use crm_db::repo::{audit, contacts, leads, opportunities as opps};
use crm_domain::access::{Action, ScopeFilter};
use diesel::PgConnection;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::checks::{patch, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, double_option};
use crate::{prune_changes, tasks};

const RES: &str = "activities";

/// Kinds of follow-up.
pub const ACTIVITY_TYPES: &[&str] = &["call", "visit", "meeting", "email", "message", "note"];

/// A follow-up to log, by its API field names. At least one of the links is needed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    #[serde(rename = "type")]
    pub activity_type: String,
    pub subject: String,
    pub content: Option<String>,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub duration_minutes: Option<i32>,
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    pub lead_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
}

/// A correction (links cannot change).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityPatch {
    #[serde(rename = "type")]
    pub activity_type: Option<String>,
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub content: Option<Option<String>>,
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "double_option")]
    pub duration_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "double_option")]
    pub outcome: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub next_step: Option<Option<String>>,
}

/// A follow-up is logged when it happened: not in the future (5 minutes of clock skew
/// allowed) and at most a year back (older history comes in by import).
fn check_occurred(errs: &mut Errors, at: DateTime<Utc>, now: DateTime<Utc>) {
    if at > now + Duration::minutes(5) {
        errs.add("occurred_at", "out_of_range", "must not be in the future");
    } else if at < now - Duration::days(366) {
        errs.add("occurred_at", "out_of_range", "must be within the last year");
    }
}

fn check_type(errs: &mut Errors, v: Option<String>) -> Option<String> {
    let v = v?;
    if !ACTIVITY_TYPES.contains(&v.as_str()) {
        errs.add(
            "type",
            "invalid_choice",
            format!("one of {}", ACTIVITY_TYPES.join(", ")),
        );
    }
    Some(v)
}

fn check_duration(errs: &mut Errors, v: Option<i32>) -> Option<i32> {
    if v.is_some_and(|m| !(0..=10_080).contains(&m)) {
        errs.add("duration_minutes", "out_of_range", "0 to 10080 minutes");
    }
    v
}

/// Logs a follow-up owned by the actor. Every linked record must be visible; the
/// account is filled in from the contact or deal; the account, contact and deal get
/// their last activity time, a lead its first response (`lead.responded`).
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<ActivityRow> {
    ctx.require(RES, Action::Create)?;
    let input: ActivityInput = write::input(ctx, RES, fields)?;
    let now = ctx.now();
    let mut errs = Errors::default();
    let subject = errs.required_text("subject", &input.subject);
    let occurred_at = input.occurred_at.unwrap_or(now);
    check_occurred(&mut errs, occurred_at, now);
    if input.lead_id.is_none()
        && input.account_id.is_none()
        && input.contact_id.is_none()
        && input.opportunity_id.is_none()
    {
        errs.add(
            "lead_id",
            "required",
            "link at least one of lead_id, account_id, contact_id, opportunity_id",
        );
    }
    let mut new = NewActivity {
        id: Uuid::now_v7(),
        activity_type: check_type(&mut errs, Some(input.activity_type)).unwrap_or_default(),
        subject: errs.max_len("subject", Some(subject), 300).unwrap_or_default(),
        content: errs.text_max("content", input.content, 20_000),
        occurred_at,
        duration_minutes: check_duration(&mut errs, input.duration_minutes),
        outcome: errs.text_max("outcome", input.outcome, 2_000),
        next_step: errs.text_max("next_step", input.next_step, 2_000),
        lead_id: input.lead_id,
        account_id: input.account_id,
        contact_id: input.contact_id,
        opportunity_id: input.opportunity_id,
        owner_id: ctx.user_id(),
        team_id: ctx.principal.team_id,
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    errs.into_result()?;
    for (field, kind, id) in [
        ("lead_id", "lead", new.lead_id),
        ("account_id", "account", new.account_id),
        ("contact_id", "contact", new.contact_id),
        ("opportunity_id", "opportunity", new.opportunity_id),
    ] {
        if let Some(id) = id {
            if !tasks::visible(c, ctx, kind, id)? {
                return Err(AppError::field(field, "not_found", format!("no such {kind}")));
            }
        }
    }
    // The account from the contact or deal, so account timelines are complete.
    if new.account_id.is_none() {
        if let Some(ct) = new.contact_id {
            new.account_id = contacts::find(c, &ScopeFilter::All, ct, Liveness::Live, false)?.map(|x| x.account_id);
        } else if let Some(o) = new.opportunity_id {
            new.account_id = opps::find(c, &ScopeFilter::All, o, Liveness::Live, false)?.map(|x| x.account_id);
        }
    }
    let row = acts::insert(c, &new)?;
    let at = row.occurred_at.min(now);
    for (table, id) in [
        ("accounts", row.account_id),
        ("contacts", row.contact_id),
        ("opportunities", row.opportunity_id),
    ] {
        if let Some(id) = id {
            opps::touch_activity(c, table, id, at)?;
        }
    }
    if let Some(id) = row.lead_id {
        let old = write::audit_view(c, "leads", id)?;
        if leads::record_response(c, id, at)?.is_some() {
            let new = write::audit_view(c, "leads", id)?;
            let changes = crm_domain::diff::changes(&old, &new);
            audit::record(c, &ctx.actor(), "leads", id, "responded", changes, Value::Null)?;
        }
    }
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

/// Corrects a follow-up.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<ActivityRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: ActivityPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let subject = input.subject.as_deref().map(|s| errs.required_text("subject", s));
    if let Some(at) = input.occurred_at {
        check_occurred(&mut errs, at, ctx.now());
    }
    let mut ch = ActivityChanges {
        activity_type: check_type(&mut errs, input.activity_type),
        subject: subject.and_then(|s| errs.max_len("subject", Some(s), 300)),
        content: patch(input.content, |v| errs.text_max("content", v, 20_000)),
        occurred_at: input.occurred_at,
        duration_minutes: patch(input.duration_minutes, |v| check_duration(&mut errs, v)),
        outcome: patch(input.outcome, |v| errs.text_max("outcome", v, 2_000)),
        next_step: patch(input.next_step, |v| errs.text_max("next_step", v, 2_000)),
    };
    errs.into_result()?;
    write::update(c, ctx, &scope, id, expected, "activity", |c, before: &ActivityRow| {
        if prune_changes!(ch, before; activity_type, subject, content, occurred_at, duration_minutes, outcome, next_step)
        {
            return Ok(None);
        }
        Ok(Some(acts::update(c, id, &ch)?))
    })
}
