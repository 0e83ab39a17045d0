//! Leads: create with the duplicate check, update with the status machine, and
//! assignment from the API, a rule (round robin, territory, least loaded) or an import.

use chrono::NaiveDate;
use crm_db::repo::accounts::{self, Liveness, NewAccount};
use crm_db::repo::audit;
use crm_db::repo::contacts::{self, NewContact};
use crm_db::repo::leads::{self, LeadChanges, LeadRow, NewLead};
use crm_domain::access::Action;
use crm_domain::normalize;
use crm_domain::pipeline::LeadStatus;
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{check_amount, patch, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::owners::resolve_owner;
use crate::write::{decimal_str, double_option};
use crate::{custom, prune_changes, write};

const RES: &str = "leads";

/// Assigns leads in the actor's assign scope to `owner_id` (who takes their team): new
/// and disqualified leads become `assigned`, the assignment time starts the response
/// clock. Unknown or converted leads are field errors (`lead_ids[i]`) and nothing is
/// assigned. Records `lead.assigned` for each.
pub fn assign(c: &mut PgConnection, ctx: &Ctx, lead_ids: &[Uuid], owner_id: Uuid) -> AppResult<Vec<LeadRow>> {
    let scope = ctx.filter(RES, Action::Assign)?;
    let rows = leads::find_many_for_update(c, &scope, lead_ids)?;
    let mut errs = Errors::default();
    for (i, id) in lead_ids.iter().enumerate() {
        match rows.iter().find(|r| r.id == *id) {
            None => errs.add(&format!("lead_ids[{i}]"), "not_found", "no such lead"),
            Some(r) if r.status == "converted" => errs.add(
                &format!("lead_ids[{i}]"),
                "lead_converted",
                "a converted lead cannot be reassigned",
            ),
            Some(_) => {}
        }
    }
    errs.into_result()?;
    let team = resolve_owner(c, ctx, RES, owner_id)?;
    if owner_id == ctx.user_id() {
        ctx.require(RES, Action::Assign)?;
    }
    let now = ctx.now();
    let due = crate::settings::sla_due(c, now)?;
    let mut out = Vec::with_capacity(rows.len());
    for before in rows {
        let reopen = matches!(before.status.as_str(), "new" | "disqualified");
        let ch = LeadChanges {
            owner_id: Some(owner_id),
            team_id: Some(team),
            status: reopen.then(|| "assigned".to_owned()),
            disqualify_reason: (before.status == "disqualified").then_some(None),
            assigned_at: Some(Some(now)),
            // A new owner gets the full SLA; an answered lead keeps the one it met or missed.
            ..LeadChanges::default()
        };
        let after = leads::update(c, before.id, &ch)?;
        // A new owner gets the full SLA; an answered lead keeps the one it met or missed.
        if before.first_response_at.is_none() {
            leads::start_sla(c, after.id, now, due)?;
        }
        audit::record(c, &ctx.actor(), RES, after.id, "assigned", Map::new(), Value::Null)?;
        out.push(after);
    }
    Ok(out)
}

/// A new lead, by its API field names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    pub person_name: String,
    pub company: Option<String>,
    pub title: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: String,
    pub campaign: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub estimated_budget: Option<Decimal>,
    pub notes: Option<String>,
    /// Set: the lead starts `assigned` (another owner needs `leads:assign`).
    pub owner_id: Option<Uuid>,
    pub custom: Option<Map<String, Value>>,
}

/// A partial change: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
    pub person_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub company: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub email: Option<Option<String>>,
    pub source: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub campaign: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub industry: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "decimal_str::nullable")]
    pub estimated_budget: Option<Option<Decimal>>,
    #[serde(default, deserialize_with = "double_option")]
    pub notes: Option<Option<String>>,
    /// `new`, `contacted`, `qualified` or `disqualified` (by the lead status machine).
    pub status: Option<String>,
    pub disqualify_reason: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// Tags cleaned, sorted, without repeats or blanks.
pub fn clean_tags(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = tags
        .into_iter()
        .map(|t| normalize::clean_text(&t))
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Creates a lead: `assigned` when an owner is given (the response clock starts), else
/// `new` and owned by the actor. Refused with `duplicate` (409) when an open lead the
/// actor can see has the same person and company, a phone or the e-mail, unless
/// `allow_duplicate`.
pub fn create(
    c: &mut PgConnection,
    ctx: &Ctx,
    fields: &Map<String, Value>,
    allow_duplicate: bool,
) -> AppResult<LeadRow> {
    match create_checked(c, ctx, fields, !allow_duplicate)? {
        Created::Lead(row) => Ok(row),
        Created::Duplicate { existing, matched_on } => Err(AppError::conflict(
            "duplicate",
            format!(
                "an open lead with the same {matched_on} already exists; pass allow_duplicate=true to create anyway"
            ),
        )
        .with_extra(
            "existing",
            json!({"id": existing.id, "person_name": existing.person_name, "matched_on": matched_on}),
        )),
    }
}

/// What [`create_checked`] came to.
#[derive(Debug)]
pub enum Created {
    Lead(LeadRow),
    /// An open lead the actor can see matched; nothing was created.
    Duplicate {
        existing: LeadRow,
        matched_on: &'static str,
    },
}

/// Creates a lead, or (with `check_duplicates`) reports the open lead it duplicates.
pub fn create_checked(
    c: &mut PgConnection,
    ctx: &Ctx,
    fields: &Map<String, Value>,
    check_duplicates: bool,
) -> AppResult<Created> {
    ctx.require(RES, Action::Create)?;
    let input: LeadInput = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let person_name = errs.required_text("person_name", &input.person_name);
    let person_name = errs.max_len("person_name", Some(person_name), 200).unwrap_or_default();
    let assigned = input.owner_id.is_some();
    let mut new = NewLead {
        id: Uuid::now_v7(),
        person_name,
        company: errs.line_max("company", input.company, 200),
        title: errs.line_max("title", input.title, 200),
        mobile: errs.phone("mobile", input.mobile),
        phone: errs.phone("phone", input.phone),
        email: errs.email("email", input.email),
        source: errs.choice(RES, "source", Some(input.source)).unwrap_or_default(),
        campaign: errs.line_max("campaign", input.campaign, 200),
        region: errs.line_max("region", input.region, 100),
        industry: errs.line_max("industry", input.industry, 100),
        tags: clean_tags(input.tags),
        estimated_budget: check_amount(&mut errs, "estimated_budget", input.estimated_budget),
        notes: errs.text_max("notes", input.notes, 10_000),
        owner_id: input.owner_id.unwrap_or_else(|| ctx.user_id()),
        team_id: None,
        status: if assigned { "assigned" } else { "new" }.into(),
        assigned_at: assigned.then(|| ctx.now()),
        custom: json!({}),
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    if new.tags.len() > 20 {
        errs.add("tags", "too_many", "at most 20 tags");
    }
    errs.into_result()?;
    if assigned && new.owner_id != ctx.user_id() {
        ctx.require(RES, Action::Assign)?;
    }
    new.team_id = resolve_owner(c, ctx, RES, new.owner_id)?;
    if check_duplicates {
        let phones: Vec<&str> = new.mobile.iter().chain(new.phone.iter()).map(String::as_str).collect();
        let company_key = new.company.as_deref().map(normalize::name_key).unwrap_or_default();
        let read = ctx.read_scope(RES);
        let person = new.person_name.to_lowercase();
        if let Some((row, on)) = leads::find_duplicate(c, &read, &person, &company_key, &phones, new.email.as_deref())?
        {
            return Ok(Created::Duplicate {
                existing: row,
                matched_on: on,
            });
        }
    }
    let record = json!({"estimated_budget": new.estimated_budget});
    new.custom = custom::write(c, ctx, RES, input.custom.as_ref(), None, record)?.unwrap_or_else(|| json!({}));
    let row = leads::insert(c, &new)?;
    if let Some(at) = row.assigned_at {
        let due = crate::settings::sla_due(c, at)?;
        leads::start_sla(c, row.id, at, due)?;
    }
    write::created(c, ctx, RES, row.id)?;
    Ok(Created::Lead(row))
}

/// The status change a patch asks for, by the lead status machine: `(status,
/// disqualify_reason)` to write. Assigning and converting have their own operations.
fn status_change(
    from: LeadStatus,
    to: Option<&str>,
    reason: Option<String>,
) -> AppResult<(Option<String>, Option<Option<String>>)> {
    let to = match to {
        None => None,
        Some(s) => {
            Some(LeadStatus::parse(s).ok_or_else(|| AppError::field("status", "invalid_choice", "no such status"))?)
        }
    };
    match to.filter(|t| *t != from) {
        Some(to) => {
            if !from.can_become(to) {
                let hint = match to {
                    LeadStatus::Assigned => "; use POST /leads/assign",
                    LeadStatus::Converted => "; use POST /leads/{id}/convert",
                    _ => "",
                };
                return Err(AppError::field(
                    "status",
                    "invalid_transition",
                    format!("a {} lead cannot become {}{hint}", from.as_str(), to.as_str()),
                ));
            }
            if to == LeadStatus::Disqualified && reason.is_none() {
                return Err(AppError::field(
                    "disqualify_reason",
                    "required",
                    "give a reason to disqualify",
                ));
            }
            let reason = if to == LeadStatus::Disqualified { reason } else { None };
            Ok((Some(to.as_str().into()), Some(reason)))
        }
        None if reason.is_some() => {
            if from == LeadStatus::Disqualified {
                Ok((None, Some(reason)))
            } else {
                Err(AppError::field(
                    "disqualify_reason",
                    "not_allowed",
                    "only with status disqualified",
                ))
            }
        }
        None => Ok((None, None)),
    }
}

/// Changes a lead (not a converted one: `lead_converted`, 409), including its status
/// by the lead status machine.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<LeadRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: LeadPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let person_name = input
        .person_name
        .as_deref()
        .map(|n| errs.required_text("person_name", n));
    let person_name = person_name.and_then(|n| errs.max_len("person_name", Some(n), 200));
    let budget = input
        .estimated_budget
        .map(|b| check_amount(&mut errs, "estimated_budget", b));
    let reason = input
        .disqualify_reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let mut ch = LeadChanges {
        person_name,
        company: patch(input.company, |v| errs.line_max("company", v, 200)),
        title: patch(input.title, |v| errs.line_max("title", v, 200)),
        mobile: patch(input.mobile, |v| errs.phone("mobile", v)),
        phone: patch(input.phone, |v| errs.phone("phone", v)),
        email: patch(input.email, |v| errs.email("email", v)),
        source: input.source.and_then(|s| errs.choice(RES, "source", Some(s))),
        campaign: patch(input.campaign, |v| errs.line_max("campaign", v, 200)),
        region: patch(input.region, |v| errs.line_max("region", v, 100)),
        industry: patch(input.industry, |v| errs.line_max("industry", v, 100)),
        tags: input.tags.map(clean_tags),
        estimated_budget: budget,
        notes: patch(input.notes, |v| errs.text_max("notes", v, 10_000)),
        ..LeadChanges::default()
    };
    errs.into_result()?;
    write::update(c, ctx, &scope, id, expected, "lead", |c, before: &LeadRow| {
        if before.status == "converted" {
            return Err(AppError::conflict("lead_converted", "a converted lead is read-only"));
        }
        let budget = ch.estimated_budget.unwrap_or(before.estimated_budget);
        let existing = Some((id, &before.custom));
        let record = json!({"estimated_budget": budget});
        ch.custom = custom::write(c, ctx, RES, input.custom.as_ref(), existing, record)?;
        let from = LeadStatus::parse(&before.status).unwrap_or(LeadStatus::New);
        (ch.status, ch.disqualify_reason) = status_change(from, input.status.as_deref(), reason)?;
        let unchanged = prune_changes!(ch, before;
            person_name, company, title, mobile, phone, email, source, campaign, region, industry, tags,
            estimated_budget, notes, status, disqualify_reason, custom);
        if unchanged {
            return Ok(None);
        }
        Ok(Some(leads::update(c, id, &ch)?))
    })
}

/// A lead the actor can read, for operations that start from one (conversion).
pub fn find_readable(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<Option<LeadRow>> {
    Ok(leads::find(c, &ctx.read_scope(RES), id, Liveness::Live, false)?)
}

/// The account side of a conversion: link an existing account or create one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertAccount {
    /// Link this existing (visible) account instead of creating one.
    pub id: Option<Uuid>,
    /// Name of the new account; defaults to the lead's company (or person).
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub account_type: Option<String>,
    /// Create even when a visible account has the same name or phone.
    #[serde(default)]
    pub allow_duplicate: bool,
}

/// The optional opportunity of a conversion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertOpportunity {
    /// Defaults to "<company> - <person>".
    pub name: Option<String>,
    /// Defaults to the default pipeline.
    pub pipeline_id: Option<Uuid>,
    /// Defaults to the lead's estimated budget.
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub amount: Option<Decimal>,
    pub expected_close_date: Option<NaiveDate>,
}

/// What to convert a lead into.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertInput {
    pub account: Option<ConvertAccount>,
    /// Link this existing contact of the account instead of creating one.
    pub contact_id: Option<Uuid>,
    /// Also open an opportunity.
    pub opportunity: Option<ConvertOpportunity>,
}

/// What a conversion produced (the same on every repeat).
pub struct Conversion {
    pub lead: LeadRow,
    pub account_id: Uuid,
    pub contact_id: Uuid,
    pub opportunity_id: Option<Uuid>,
}

fn convert_account(c: &mut PgConnection, ctx: &Ctx, lead: &LeadRow, spec: Option<&ConvertAccount>) -> AppResult<Uuid> {
    let read = ctx.read_scope("accounts");
    if let Some(existing) = spec.and_then(|s| s.id) {
        return match accounts::find(c, &read, existing, Liveness::Live, false)? {
            Some(a) => Ok(a.id),
            None => Err(AppError::field("account.id", "not_found", "no such account")),
        };
    }
    ctx.require("accounts", Action::Create)?;
    let mut errs = Errors::default();
    let account_type = errs.choice("accounts", "type", spec.and_then(|s| s.account_type.clone()));
    errs.into_result().map_err(|e| e.prefixed("account."))?;
    let name = spec
        .and_then(|s| s.name.as_deref())
        .map(normalize::clean_text)
        .filter(|n| !n.is_empty())
        .or_else(|| lead.company.clone())
        .unwrap_or_else(|| lead.person_name.clone());
    let name_norm = normalize::name_key(&name);
    if !spec.is_some_and(|s| s.allow_duplicate) {
        if let Some((row, on)) = accounts::find_duplicate(c, &read, &name_norm, lead.phone.as_deref(), None)? {
            return Err(AppError::conflict(
                "duplicate",
                format!("an account with the same {on} exists; convert into it with account.id, or set account.allow_duplicate"),
            )
            .with_extra("existing", json!({"id": row.id, "name": row.name, "matched_on": on})));
        }
    }
    let row = accounts::insert(
        c,
        &NewAccount {
            id: Uuid::now_v7(),
            name,
            name_norm,
            account_type: account_type.unwrap_or_else(|| "prospect".into()),
            industry: lead.industry.clone(),
            region: lead.region.clone(),
            address: None,
            phone: lead.phone.clone(),
            email: None,
            website: None,
            tier: None,
            source: Some(lead.source.clone()),
            parent_id: None,
            owner_id: lead.owner_id,
            team_id: lead.team_id,
            notes: None,
            custom: json!({}),
            created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
        },
    )?;
    write::created(c, ctx, "accounts", row.id)?;
    Ok(row.id)
}

fn convert_contact(
    c: &mut PgConnection,
    ctx: &Ctx,
    lead: &LeadRow,
    account_id: Uuid,
    existing: Option<Uuid>,
) -> AppResult<Uuid> {
    if let Some(id) = existing {
        return match contacts::find(c, &ctx.read_scope("contacts"), id, Liveness::Live, false)? {
            Some(ct) if ct.account_id == account_id => Ok(ct.id),
            Some(_) => Err(AppError::field(
                "contact_id",
                "wrong_account",
                "the contact belongs to another account",
            )),
            None => Err(AppError::field("contact_id", "not_found", "no such contact")),
        };
    }
    ctx.require("contacts", Action::Create)?;
    let row = contacts::insert(
        c,
        &NewContact {
            id: Uuid::now_v7(),
            account_id,
            name: lead.person_name.clone(),
            name_norm: normalize::name_key(&lead.person_name),
            title: lead.title.clone(),
            department: None,
            mobile: lead.mobile.clone(),
            phone: lead.phone.clone(),
            email: lead.email.clone(),
            wechat: None,
            birthday: None,
            decision_role: None,
            preferences: None,
            pain_points: None,
            notes: lead.notes.clone(),
            owner_id: lead.owner_id,
            team_id: lead.team_id,
            custom: json!({}),
            created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
        },
    )?;
    write::created(c, ctx, "contacts", row.id)?;
    Ok(row.id)
}

fn convert_deal(
    c: &mut PgConnection,
    ctx: &Ctx,
    lead: &LeadRow,
    (account_id, contact_id): (Uuid, Uuid),
    o: &ConvertOpportunity,
) -> AppResult<Uuid> {
    ctx.require("opportunities", Action::Create)?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "opportunity.amount", o.amount.or(lead.estimated_budget));
    errs.into_result()?;
    let company = lead.company.clone().unwrap_or_else(|| lead.person_name.clone());
    let name = o
        .name
        .as_deref()
        .map(normalize::clean_text)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{company} - {}", lead.person_name));
    let deal = crate::opportunities::NewDeal {
        name,
        account_id,
        primary_contact_id: Some(contact_id),
        contacts: Vec::new(),
        pipeline_id: o.pipeline_id,
        stage_id: None,
        amount,
        currency: "CNY".into(),
        expected_close_date: o.expected_close_date,
        probability: None,
        owner_id: lead.owner_id,
        source_lead_id: Some(lead.id),
        competitors: Vec::new(),
        next_step: None,
        forecast_category: None,
        custom: None,
    };
    let row = crate::opportunities::create(c, ctx, deal).map_err(|e| e.prefixed("opportunity."))?;
    Ok(row.id)
}

/// Converts a lead in the actor's update scope into an account (new, or an existing one
/// chosen), a contact and optionally an opportunity; the lead becomes `converted` and
/// links to all three (`lead.converted`). A converted lead answers with the same result
/// and creates nothing.
pub fn convert(c: &mut PgConnection, ctx: &Ctx, id: Uuid, fields: &Map<String, Value>) -> AppResult<Conversion> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: ConvertInput = write::parse(fields)?;
    let lead = leads::find(c, &scope, id, Liveness::Live, true)?.ok_or(AppError::NotFound("lead"))?;
    if let (Some(account_id), Some(contact_id)) = (lead.converted_account_id, lead.converted_contact_id) {
        let opportunity_id = lead.converted_opportunity_id;
        return Ok(Conversion {
            lead,
            account_id,
            contact_id,
            opportunity_id,
        });
    }
    let status = LeadStatus::parse(&lead.status).unwrap_or(LeadStatus::New);
    if !status.convertible() {
        return Err(AppError::rule(
            "lead_not_convertible",
            format!("a {} lead cannot be converted", status.as_str()),
        ));
    }
    let account_id = convert_account(c, ctx, &lead, input.account.as_ref())?;
    let contact_id = convert_contact(c, ctx, &lead, account_id, input.contact_id)?;
    let opportunity_id = match &input.opportunity {
        None => None,
        Some(o) => Some(convert_deal(c, ctx, &lead, (account_id, contact_id), o)?),
    };
    let ch = LeadChanges {
        status: Some("converted".into()),
        converted_at: Some(Some(ctx.now())),
        converted_account_id: Some(Some(account_id)),
        converted_contact_id: Some(Some(contact_id)),
        converted_opportunity_id: Some(opportunity_id),
        ..LeadChanges::default()
    };
    let old = write::audit_view(c, RES, id)?;
    let after = leads::update(c, id, &ch)?;
    let new = write::audit_view(c, RES, id)?;
    let changes = crm_domain::diff::changes(&old, &new);
    audit::record(c, &ctx.actor(), RES, id, "converted", changes, Value::Null)?;
    Ok(Conversion {
        lead: after,
        account_id,
        contact_id,
        opportunity_id,
    })
}

/// The SLA sweep: leads still unanswered at their response due time are marked
/// `breached`, each with an audit entry and `lead.sla_breached`. Safe to run anywhere
/// at once (rows held elsewhere are left to the next run).
pub fn mark_sla_breaches(c: &mut PgConnection, ctx: &Ctx) -> AppResult<usize> {
    let ids = leads::mark_sla_breaches(c, ctx.now(), 1000)?;
    for id in &ids {
        let mut changes = Map::new();
        changes.insert("sla_status".into(), json!({"before": "pending", "after": "breached"}));
        audit::record(c, &ctx.actor(), RES, *id, "sla_breached", changes, Value::Null)?;
    }
    Ok(ids.len())
}
