//! Web-to-lead: capture forms (admin) and public submissions. A submission becomes a
//! lead through the same operation as the API (`leads::create_checked`: validation,
//! custom fields, duplicate detection, audit and the `lead.created` event that the
//! assignment rules act on), created as the form's owner.

use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use crm_db::repo::capture::{self as repo, CaptureFormRow, NewCaptureForm, SubmissionRow};
use crm_db::repo::{auth, fields, users};
use crm_domain::access::Action;
use diesel::PgConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::leads::{self, Created};
use crate::Clock;

const RES: &str = "settings";

/// Lead fields a form field may fill (`custom.<key>` too).
pub const TARGETS: &[&str] = &[
    "person_name",
    "company",
    "title",
    "mobile",
    "phone",
    "email",
    "region",
    "industry",
    "notes",
    "estimated_budget",
    "tags",
];

/// A capture form's settings (create, or replace as a whole).
#[derive(Debug, Clone)]
pub struct FormInput {
    pub name: String,
    /// Generated when absent.
    pub form_key: Option<String>,
    pub allowed_origins: Vec<String>,
    /// Form field -> lead field or `custom.<key>`.
    pub mapping: Map<String, Value>,
    pub source: Option<String>,
    pub campaign: Option<String>,
    pub owner_id: Option<Uuid>,
    pub honeypot: Option<String>,
    pub per_address_per_hour: Option<i32>,
    pub per_form_per_hour: Option<i32>,
    pub enabled: Option<bool>,
}

fn form_field_name(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}

fn check(c: &mut PgConnection, ctx: &Ctx, id: Uuid, input: FormInput) -> AppResult<NewCaptureForm> {
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    let name = errs.max_len("name", Some(name), 200).unwrap_or_default();
    let form_key = match input.form_key {
        Some(k) => {
            if !(8..=64).contains(&k.len()) || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                errs.add("form_key", "invalid", "8 to 64 letters, digits, - or _");
            } else if repo::key_taken(c, &k, id)? {
                errs.add("form_key", "duplicate", "another form has this key");
            }
            k
        }
        None => crm_domain::secrets::random_secret(18),
    };
    let mut origins = Vec::new();
    for (i, o) in input.allowed_origins.iter().enumerate() {
        let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
        let ok = url::Url::parse(&o)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/" && u.query().is_none());
        if !ok {
            errs.add(
                &format!("allowed_origins[{i}]"),
                "invalid",
                "an origin: scheme, host and optional port",
            );
        }
        origins.push(o);
    }
    let custom: Vec<String> = fields::list(c, "leads", false)?.into_iter().map(|d| d.key).collect();
    let mut has_name = false;
    for (k, v) in &input.mapping {
        let path = format!("mapping.{k}");
        if !form_field_name(k) {
            errs.add(
                &path,
                "invalid",
                "form field names: up to 64 letters, digits, _ - . [ ]",
            );
        }
        match v.as_str() {
            Some("person_name") => has_name = true,
            Some(t) if TARGETS.contains(&t) => {}
            Some(t)
                if t.strip_prefix("custom.")
                    .is_some_and(|ck| custom.iter().any(|x| x == ck)) => {}
            _ => errs.add(
                &path,
                "unknown_lead_field",
                format!("map to one of {} or custom.<key> of a lead field", TARGETS.join(", ")),
            ),
        }
    }
    if input.mapping.len() > 50 {
        errs.add("mapping", "too_many", "at most 50 form fields");
    }
    if !has_name {
        errs.add("mapping", "required", "one form field must map to person_name");
    }
    let source = errs.choice(
        "leads",
        "source",
        Some(input.source.unwrap_or_else(|| "website".into())),
    );
    let campaign = errs.line_max("campaign", input.campaign, 200);
    let honeypot = input.honeypot.unwrap_or_else(|| "website".into());
    if !form_field_name(&honeypot) || input.mapping.contains_key(&honeypot) {
        errs.add("honeypot", "invalid", "a form field name not in the mapping");
    }
    let per_address = input.per_address_per_hour.unwrap_or(20);
    let per_form = input.per_form_per_hour.unwrap_or(2000);
    if !(1..=10_000).contains(&per_address) {
        errs.add("per_address_per_hour", "out_of_range", "1 to 10000");
    }
    if !(1..=1_000_000).contains(&per_form) {
        errs.add("per_form_per_hour", "out_of_range", "1 to 1000000");
    }
    let owner_id = input.owner_id.unwrap_or_else(|| ctx.user_id());
    if users::find(c, owner_id)?.is_none_or(|u| !u.is_active) {
        errs.add("owner_id", "not_found", "no active user with this id");
    }
    errs.into_result()?;
    Ok(NewCaptureForm {
        id,
        form_key,
        name,
        allowed_origins: origins,
        mapping: Value::Object(input.mapping),
        source,
        campaign,
        owner_id,
        honeypot,
        per_address_per_hour: per_address,
        per_form_per_hour: per_form,
        enabled: input.enabled.unwrap_or(true),
    })
}

pub fn create(c: &mut PgConnection, ctx: &Ctx, input: FormInput) -> AppResult<CaptureFormRow> {
    ctx.require(RES, Action::Admin)?;
    let new = check(c, ctx, Uuid::now_v7(), input)?;
    Ok(repo::insert(c, &new)?)
}

pub fn list(c: &mut PgConnection, ctx: &Ctx) -> AppResult<Vec<CaptureFormRow>> {
    ctx.require(RES, Action::Admin)?;
    Ok(repo::list(c)?)
}

pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<CaptureFormRow> {
    ctx.require(RES, Action::Admin)?;
    repo::find(c, id)?.ok_or(AppError::NotFound("capture form"))
}

/// Replaces a form's settings (a missing `form_key` keeps the current one).
pub fn replace(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    mut input: FormInput,
    expected: Option<i32>,
) -> AppResult<CaptureFormRow> {
    ctx.require(RES, Action::Admin)?;
    let current = repo::lock(c, id)?.ok_or(AppError::NotFound("capture form"))?;
    if expected.is_some_and(|v| v != current.version) {
        return Err(AppError::Stale {
            current: current.version,
        });
    }
    input.form_key = input.form_key.or(Some(current.form_key));
    let new = check(c, ctx, id, input)?;
    Ok(repo::replace(c, &new)?)
}

pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    ctx.require(RES, Action::Admin)?;
    if !repo::delete(c, id)? {
        return Err(AppError::NotFound("capture form"));
    }
    Ok(())
}

pub fn submissions(c: &mut PgConnection, ctx: &Ctx, id: Uuid, limit: i64) -> AppResult<Vec<SubmissionRow>> {
    get(c, ctx, id)?;
    Ok(repo::submissions(c, id, limit)?)
}

/// Why a public submission is refused. Answers say no more than the form needs.
#[derive(Debug)]
pub enum Refused {
    /// No enabled form with this key (or its owner is inactive).
    NoForm,
    /// The request's origin is not one the form allows.
    Origin,
    /// Over the per-address or per-form limit; retry after this many seconds.
    RateLimited {
        retry_after: i64,
    },
    /// Submitted values are invalid: (form field, message).
    Invalid(Vec<(String, String)>),
    Failed(AppError),
}

impl From<AppError> for Refused {
    fn from(e: AppError) -> Self {
        Refused::Failed(e)
    }
}

impl From<diesel::result::Error> for Refused {
    fn from(e: diesel::result::Error) -> Self {
        Refused::Failed(e.into())
    }
}

/// What an accepted submission came to (the answer is the same for all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Created(Uuid),
    Duplicate,
    Spam,
}

/// The enabled form with this key, if the origin may use it.
pub fn open_form(c: &mut PgConnection, key: &str, origin: Option<&str>) -> Result<CaptureFormRow, Refused> {
    let form = repo::by_key(c, key)?.filter(|f| f.enabled).ok_or(Refused::NoForm)?;
    if !form.allowed_origins.is_empty() {
        let origin = origin.map(|o| o.trim_end_matches('/').to_ascii_lowercase());
        if !origin.is_some_and(|o| form.allowed_origins.contains(&o)) {
            return Err(Refused::Origin);
        }
    }
    Ok(form)
}

/// Counts the submission against the form's limits (its own transaction: counted even
/// when refused). `Err(RateLimited)` when over either.
pub fn count(c: &mut PgConnection, form: &CaptureFormRow, client: &str, now: DateTime<Utc>) -> Result<(), Refused> {
    let per_address = repo::hit(c, form.id, client, now)?;
    let per_form = repo::hit(c, form.id, "*", now)?;
    if per_address > form.per_address_per_hour || per_form > form.per_form_per_hour {
        let into_hour = i64::from(now.minute()) * 60 + i64::from(now.second());
        return Err(Refused::RateLimited {
            retry_after: (3600 - into_hour).max(1),
        });
    }
    Ok(())
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Turns a submission into a lead (see the module docs).
pub fn submit(
    c: &mut PgConnection,
    clock: &Clock,
    form: &CaptureFormRow,
    client: &str,
    values: &Map<String, Value>,
) -> Result<Submitted, Refused> {
    let now = clock.now();
    if values.get(&form.honeypot).and_then(text_of).is_some() {
        repo::record_submission(c, form.id, now, client, "spam", None)?;
        return Ok(Submitted::Spam);
    }
    let mapping = form.mapping.as_object().cloned().unwrap_or_default();
    let mut lead = Map::new();
    let mut custom = Map::new();
    for (field, target) in &mapping {
        let (Some(target), Some(v)) = (target.as_str(), values.get(field).and_then(text_of)) else {
            continue;
        };
        if let Some(key) = target.strip_prefix("custom.") {
            custom.insert(key.to_owned(), Value::String(v));
        } else if target == "tags" {
            let tags: Vec<Value> = v
                .split([',', '，'])
                .map(|t| Value::String(t.trim().to_owned()))
                .collect();
            lead.insert("tags".into(), Value::Array(tags));
        } else {
            lead.insert(target.to_owned(), Value::String(v));
        }
    }
    if !custom.is_empty() {
        lead.insert("custom".into(), Value::Object(custom));
    }
    lead.insert(
        "source".into(),
        Value::String(form.source.clone().unwrap_or_else(|| "website".into())),
    );
    if let Some(cmp) = &form.campaign {
        lead.insert("campaign".into(), Value::String(cmp.clone()));
    }
    if !lead.contains_key("person_name") {
        let field = mapping
            .iter()
            .find(|(_, t)| t.as_str() == Some("person_name"))
            .map_or("name", |(f, _)| f.as_str());
        return Err(Refused::Invalid(vec![(field.to_owned(), "required".into())]));
    }
    let principal = auth::load_principal(c, form.owner_id, None, chrono::Duration::zero())?
        .filter(|l| l.is_active)
        .ok_or(Refused::NoForm)?;
    let ctx = Ctx::user(Arc::new(principal.principal), None, clock.clone());
    match leads::create_checked(c, &ctx, &lead, true) {
        Ok(Created::Lead(row)) => {
            repo::record_submission(c, form.id, now, client, "created", Some(row.id))?;
            Ok(Submitted::Created(row.id))
        }
        Ok(Created::Duplicate { existing, .. }) => {
            repo::record_submission(c, form.id, now, client, "duplicate", Some(existing.id))?;
            Ok(Submitted::Duplicate)
        }
        Err(AppError::Validation(errors)) => {
            // Name the form's own fields, never the lead's.
            let named = errors
                .into_iter()
                .map(|e| {
                    let lead_field = e.field.split(['[', '.']).next().unwrap_or("").to_owned();
                    let custom_field = e.field.clone();
                    let form_field = mapping
                        .iter()
                        .find(|(_, t)| t.as_str() == Some(&lead_field) || t.as_str() == Some(&custom_field))
                        .map_or_else(|| "form".to_owned(), |(f, _)| f.clone());
                    (form_field, e.message)
                })
                .collect();
            Err(Refused::Invalid(named))
        }
        Err(e) => Err(Refused::Failed(e)),
    }
}
