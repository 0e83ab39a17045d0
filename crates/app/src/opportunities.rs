//! Deals: creation, and the stage engine every stage change goes through (entry
//! criteria, reopening, stage history, audit and the `opportunity.stage_changed`
//! event), whether a person, a rule or the system moves the deal.

use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::opportunities::{self as opps, NewOpportunity, OpportunityChanges, OpportunityRow, StageMove};
use crm_db::repo::{audit, contacts, contracts, fields, pipelines, quotes, storage, workflow};
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::diff;
use crm_domain::pipeline::{classify_move, unmet, Criterion, Evidence, MoveError, StageKind, StagePos};
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{check_amount, patch, Errors};
use crate::write::{decimal_str, double_option};
use crate::{prune_changes, write};

use crate::context::Ctx;
use crate::custom::{self, CustomWrite};
use crate::error::{AppError, AppResult};
use crate::owners::resolve_owner;
use crate::record;

const RES: &str = "opportunities";

/// The deal's other contacts, as (contact id, role).
pub fn contacts_of(c: &mut PgConnection, id: Uuid) -> AppResult<Vec<(Uuid, String)>> {
    Ok(opps::contacts_of(c, &[id])?
        .into_iter()
        .map(|(_, contact, role)| (contact, role))
        .collect())
}

/// The deal as conditions and audit entries see it.
pub fn view(c: &mut PgConnection, row: &OpportunityRow) -> AppResult<Value> {
    let links = contacts_of(c, row.id)?;
    Ok(record::opportunity(row, &links))
}

fn stage_pos(s: &pipelines::StageRow) -> StagePos {
    StagePos {
        position: s.position,
        kind: StageKind::parse(&s.kind).unwrap_or(StageKind::Open),
    }
}

/// Entry criteria of `stage` not met by the deal (`None` for a deal being created);
/// `record` is the deal's view ([`view`]). Custom fields "required from stage X on"
/// apply to X and every later stage.
pub fn unmet_criteria(
    c: &mut PgConnection,
    deal: Option<Uuid>,
    stage: &pipelines::StageRow,
    record: &Value,
) -> AppResult<Vec<Criterion>> {
    let mut criteria: Vec<Criterion> = serde_json::from_value(stage.entry_criteria.clone())
        .map_err(|e| AppError::Internal(format!("stage {} has unreadable criteria: {e}", stage.id)))?;
    if stage.kind != "lost" {
        for def in fields::list(c, RES, false)? {
            let Some(from) = def.required_from_stage_id else {
                continue;
            };
            let applies = match pipelines::find_stage(c, from)? {
                Some(s) => s.pipeline_id == stage.pipeline_id && s.position <= stage.position,
                None => false,
            };
            if applies {
                criteria.push(Criterion::FieldRequired {
                    field: format!("custom.{}", def.key),
                });
            }
        }
    }
    if criteria.is_empty() {
        return Ok(Vec::new());
    }
    let (tasks, outputs, activities, quote_statuses, (contract_signed, payment_received)) = match deal {
        Some(id) => {
            let rules = workflow::payment_rules(c)?;
            (
                opps::tasks_done(c, id)?,
                opps::output_codes(c, id)?,
                opps::activity_types(c, id)?,
                quotes::statuses_of(c, id)?,
                contracts::deal_evidence(c, id, rules.prepayment_wins_pct)?,
            )
        }
        None => (Vec::new(), Vec::new(), Vec::new(), Vec::new(), (false, false)),
    };
    let ev = Evidence {
        record: Some(record),
        tasks_done: &tasks,
        outputs: &outputs,
        activity_types: &activities,
        quote_statuses: &quote_statuses,
        contract_signed,
        payment_received,
    };
    Ok(unmet(&criteria, &ev))
}

fn criteria_unmet(stage: &pipelines::StageRow, unmet: Vec<Criterion>) -> AppError {
    AppError::CriteriaUnmet {
        stage_id: stage.id,
        stage_code: stage.code.clone(),
        unmet,
    }
}

/// Moves a (locked) deal to a stage of its pipeline inside the caller's transaction.
/// Every entry into an open or won stage checks that stage's criteria; leaving a won
/// or lost stage (reopening) needs `opportunities:reopen` reaching the deal.
pub fn move_deal(
    c: &mut PgConnection,
    ctx: &Ctx,
    before_row: OpportunityRow,
    stage_id: Uuid,
    reason: Option<String>,
) -> AppResult<OpportunityRow> {
    let id = before_row.id;
    let to = pipelines::find_stage(c, stage_id)?
        .filter(|s| s.pipeline_id == before_row.pipeline_id && s.archived_at.is_none())
        .ok_or_else(|| AppError::field("stage_id", "not_found", "no such stage in this deal's pipeline"))?;
    let from = pipelines::find_stage(c, before_row.stage_id)?
        .ok_or_else(|| AppError::Internal("deal in a missing stage".into()))?;
    let mv =
        classify_move(stage_pos(&from), stage_pos(&to), from.id == to.id, reason.as_deref()).map_err(|e| match e {
            MoveError::SameStage => AppError::conflict("same_stage", e.to_string()),
            MoveError::ReasonRequired => AppError::field(
                "reason",
                "required",
                "a reason is required to move backwards, lose or reopen",
            ),
        })?;
    if mv.reopens {
        let allowed = ctx
            .principal
            .scope(RES, Action::Reopen)
            .is_some_and(|s| ctx.principal.reaches(s, before_row.owner_id, before_row.team_id));
        if !allowed {
            return Err(AppError::Forbidden(format!(
                "the deal is {}; reopening it needs the permission opportunities:reopen",
                before_row.status
            )));
        }
    }
    let before = view(c, &before_row)?;
    if mv.checks_criteria() {
        let record = record::view(c, RES, id)?.ok_or(AppError::NotFound("opportunity"))?;
        let missing = unmet_criteria(c, Some(id), &to, &record)?;
        if !missing.is_empty() {
            return Err(criteria_unmet(&to, missing));
        }
    }
    let now = ctx.now();
    let kind = StageKind::parse(&to.kind).unwrap_or(StageKind::Open);
    let (status, closed_at, lost_reason) = match kind {
        StageKind::Won => ("won", Some(now), None),
        StageKind::Lost => ("lost", Some(now), reason.clone()),
        StageKind::Open => ("open", None, None),
    };
    let row = opps::move_stage(
        c,
        &before_row,
        &StageMove {
            to_stage: to.id,
            status: status.into(),
            probability: to.probability,
            closed_at,
            lost_reason,
            reason: reason.clone(),
            by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
            at: now,
        },
    )?;
    let after = view(c, &row)?;
    let mut changes = diff::changes(&before, &after);
    changes.retain(|k, _| !matches!(k.as_str(), "stage_entered_at" | "weighted_amount"));
    let payload = json!({
        "move": mv.kind.as_str(), "reopened": mv.reopens, "reason": reason,
        "from_stage": {"id": from.id, "code": from.code}, "to_stage": {"id": to.id, "code": to.code},
    });
    audit::record(c, &ctx.actor(), RES, id, "stage_changed", changes, payload)?;
    Ok(row)
}

/// Closes an open deal as Won or Lost as a consequence of something else (a contract
/// signed, a payment received, the final quote declined, a contract terminated),
/// through [`move_deal`]. `None` when the deal is not open or, for Won, when the Won
/// stage's criteria are still unmet (the deal then stays where it is).
pub fn close_deal(
    c: &mut PgConnection,
    ctx: &Ctx,
    deal_id: Uuid,
    won: bool,
    reason: Option<String>,
) -> AppResult<Option<OpportunityRow>> {
    let Some(row) = opps::find(c, &ScopeFilter::All, deal_id, Liveness::Live, true)? else {
        return Ok(None);
    };
    if row.status != "open" {
        return Ok(None);
    }
    let kind = if won { "won" } else { "lost" };
    let Some(stage) = pipelines::stages_of(c, &[row.pipeline_id], false)?
        .into_iter()
        .find(|s| s.kind == kind)
    else {
        return Ok(None);
    };
    match move_deal(c, ctx, row, stage.id, reason) {
        Ok(o) => Ok(Some(o)),
        Err(AppError::CriteriaUnmet { .. }) if won => {
            tracing::info!(deal = %deal_id, "deal not moved to Won: entry criteria unmet");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What a new deal needs (also what lead conversion and rules pass).
pub struct NewDeal {
    pub name: String,
    pub account_id: Uuid,
    pub primary_contact_id: Option<Uuid>,
    /// Other contacts, as (contact id, role).
    pub contacts: Vec<(Uuid, String)>,
    pub pipeline_id: Option<Uuid>,
    pub stage_id: Option<Uuid>,
    pub amount: Option<Decimal>,
    pub currency: String,
    pub expected_close_date: Option<chrono::NaiveDate>,
    pub probability: Option<i32>,
    pub owner_id: Uuid,
    pub source_lead_id: Option<Uuid>,
    pub competitors: Vec<String>,
    pub next_step: Option<String>,
    pub forecast_category: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// The account must be a live account the actor may read.
pub fn check_account(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    match accounts::find(c, &ctx.read_scope("accounts"), id, Liveness::Live, false)? {
        Some(_) => Ok(()),
        None => Err(AppError::field("account_id", "not_found", "no such account")),
    }
}

/// The primary contact must be a visible contact of the deal's account.
pub fn check_primary(c: &mut PgConnection, ctx: &Ctx, contact: Uuid, account: Uuid) -> AppResult<()> {
    match contacts::find(c, &ctx.read_scope("contacts"), contact, Liveness::Live, false)? {
        Some(ct) if ct.account_id == account => Ok(()),
        Some(_) => Err(AppError::field(
            "primary_contact_id",
            "wrong_account",
            "the contact belongs to another account",
        )),
        None => Err(AppError::field("primary_contact_id", "not_found", "no such contact")),
    }
}

/// The deal's other contacts must be visible contacts, each listed once.
pub fn check_contacts(c: &mut PgConnection, ctx: &Ctx, list: &[(Uuid, String)]) -> AppResult<()> {
    let scope = ctx.read_scope("contacts");
    let mut seen: Vec<Uuid> = Vec::new();
    for (i, (contact, _)) in list.iter().enumerate() {
        if contacts::find(c, &scope, *contact, Liveness::Live, false)?.is_none() {
            return Err(AppError::field(
                &format!("contacts[{i}].contact_id"),
                "not_found",
                "no such contact",
            ));
        }
        if seen.contains(contact) {
            return Err(AppError::field(
                &format!("contacts[{i}].contact_id"),
                "duplicate",
                "listed twice",
            ));
        }
        seen.push(*contact);
    }
    Ok(())
}

/// Creates a deal inside the caller's transaction, with audit and event. A deal starts
/// in an open stage (the first one unless given); a later stage must meet its criteria.
pub fn create(c: &mut PgConnection, ctx: &Ctx, d: NewDeal) -> AppResult<OpportunityRow> {
    check_account(c, ctx, d.account_id)?;
    if let Some(p) = d.primary_contact_id {
        check_primary(c, ctx, p, d.account_id)?;
    }
    check_contacts(c, ctx, &d.contacts)?;
    let team_id = resolve_owner(c, ctx, RES, d.owner_id)?;
    let pipeline = match d.pipeline_id {
        Some(id) => pipelines::find(c, id)?
            .filter(|p| p.archived_at.is_none())
            .ok_or_else(|| AppError::field("pipeline_id", "not_found", "no such pipeline"))?,
        None => pipelines::default_pipeline(c)?
            .ok_or_else(|| AppError::rule("no_default_pipeline", "no default pipeline is configured"))?,
    };
    let stages = pipelines::stages_of(c, &[pipeline.id], false)?;
    let first_open = stages
        .iter()
        .find(|s| s.kind == "open")
        .ok_or_else(|| AppError::rule("no_open_stage", "the pipeline has no open stage"))?;
    let stage = match d.stage_id {
        Some(id) => stages
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| AppError::field("stage_id", "not_found", "no such stage in the pipeline"))?,
        None => first_open,
    };
    if stage.kind != "open" {
        return Err(AppError::field(
            "stage_id",
            "closed_stage",
            "new deals start in an open stage",
        ));
    }
    let probability = d.probability.unwrap_or(stage.probability);
    let defs = fields::list(c, RES, true)?;
    let custom = custom::apply(
        c,
        &ctx.principal,
        CustomWrite {
            object: RES,
            defs: &defs,
            input: d.custom.as_ref(),
            existing: None,
            record: &json!({"amount": d.amount, "probability": probability}),
        },
    )?;
    let new = NewOpportunity {
        id: Uuid::now_v7(),
        name: d.name,
        account_id: d.account_id,
        primary_contact_id: d.primary_contact_id,
        pipeline_id: pipeline.id,
        stage_id: stage.id,
        amount: d.amount,
        currency: d.currency,
        expected_close_date: d.expected_close_date,
        probability,
        owner_id: d.owner_id,
        team_id,
        source_lead_id: d.source_lead_id,
        competitors: d.competitors,
        next_step: d.next_step,
        status: "open".into(),
        closed_at: None,
        forecast_category: d.forecast_category,
        custom,
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    let row = opps::insert(c, &new, Some(ctx.user_id()).filter(|u| !u.is_nil()))?;
    opps::set_contacts(c, row.id, &d.contacts)?;
    // Created in a later stage: that stage's criteria hold for the new deal (its view as
    // stored; an error rolls the insert back with the caller's transaction).
    if stage.id != first_open.id {
        let record = record::view(c, RES, row.id)?.ok_or(AppError::NotFound("opportunity"))?;
        let missing = unmet_criteria(c, None, stage, &record)?;
        if !missing.is_empty() {
            return Err(criteria_unmet(stage, missing));
        }
    }
    let data = view(c, &row)?;
    audit::record(c, &ctx.actor(), RES, row.id, "created", diff::created(&data), data)?;
    Ok(row)
}

/// Roles a deal's other contacts take.
pub const DEAL_ROLES: &[&str] = &[
    "decision_maker",
    "influencer",
    "user",
    "gatekeeper",
    "champion",
    "other",
];

/// One of a deal's other contacts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealContactInput {
    pub contact_id: Uuid,
    pub role: String,
}

/// A new deal, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    pub name: String,
    pub account_id: Uuid,
    pub primary_contact_id: Option<Uuid>,
    #[serde(default)]
    pub contacts: Vec<DealContactInput>,
    pub pipeline_id: Option<Uuid>,
    pub stage_id: Option<Uuid>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    pub expected_close_date: Option<chrono::NaiveDate>,
    pub probability: Option<i32>,
    pub owner_id: Option<Uuid>,
    #[serde(default)]
    pub competitors: Vec<String>,
    pub next_step: Option<String>,
    pub forecast_category: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// A partial change: absent fields stay, `null` clears. Stage, status and closing have
/// their own operations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealPatch {
    pub name: Option<String>,
    pub account_id: Option<Uuid>,
    #[serde(default, deserialize_with = "double_option")]
    pub primary_contact_id: Option<Option<Uuid>>,
    pub contacts: Option<Vec<DealContactInput>>,
    #[serde(default, deserialize_with = "decimal_str::nullable")]
    pub amount: Option<Option<Decimal>>,
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub expected_close_date: Option<Option<chrono::NaiveDate>>,
    pub probability: Option<i32>,
    pub owner_id: Option<Uuid>,
    pub competitors: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub next_step: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub forecast_category: Option<Option<String>>,
    pub custom: Option<Map<String, Value>>,
}

/// A deal's own forecast category, one of the five (none: the stage's).
fn check_category(errs: &mut Errors, v: Option<String>) -> Option<String> {
    crate::pipelines::check_category(errs, "forecast_category", v.as_deref());
    v
}

/// An active ISO 4217 code, upper-cased.
fn check_currency(errs: &mut Errors, v: &str) -> String {
    let up = v.trim().to_ascii_uppercase();
    if crm_domain::normalize::currency(&up).is_none() {
        errs.add(
            "currency",
            "invalid_format",
            "an active ISO 4217 currency code such as CNY or USD",
        );
    }
    up
}

/// An open deal's probability is 0 to 99 (100 is reached only by winning).
fn check_probability(errs: &mut Errors, v: Option<i32>) -> Option<i32> {
    if v.is_some_and(|p| !(0..=99).contains(&p)) {
        errs.add("probability", "out_of_range", "must be between 0 and 99");
    }
    v
}

fn clean_list(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = v
        .into_iter()
        .map(|s| crm_domain::normalize::clean_text(&s))
        .filter(|s| !s.is_empty())
        .collect();
    out.dedup();
    out
}

fn links(errs: &mut Errors, list: Vec<DealContactInput>) -> Vec<(Uuid, String)> {
    for (i, d) in list.iter().enumerate() {
        if !DEAL_ROLES.contains(&d.role.as_str()) {
            errs.add(
                &format!("contacts[{i}].role"),
                "invalid_choice",
                format!("one of {}", DEAL_ROLES.join(", ")),
            );
        }
    }
    list.into_iter().map(|d| (d.contact_id, d.role)).collect()
}

/// Creates a deal from its fields (see [`create`]).
pub fn create_from(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<OpportunityRow> {
    ctx.require(RES, Action::Create)?;
    let input: DealInput = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    let deal = NewDeal {
        name: errs.max_len("name", Some(name), 200).unwrap_or_default(),
        account_id: input.account_id,
        primary_contact_id: input.primary_contact_id,
        contacts: links(&mut errs, input.contacts),
        pipeline_id: input.pipeline_id,
        stage_id: input.stage_id,
        amount: check_amount(&mut errs, "amount", input.amount),
        currency: check_currency(&mut errs, input.currency.as_deref().unwrap_or("CNY")),
        expected_close_date: input.expected_close_date,
        probability: check_probability(&mut errs, input.probability),
        owner_id: input.owner_id.unwrap_or_else(|| ctx.user_id()),
        source_lead_id: None,
        competitors: clean_list(input.competitors),
        next_step: errs.text_max("next_step", input.next_step, 2_000),
        forecast_category: check_category(&mut errs, input.forecast_category),
        custom: input.custom,
    };
    errs.into_result()?;
    create(c, ctx, deal)
}

/// Changes a deal's fields. A won or lost deal's probability follows its stage; moving
/// it to another account re-checks the primary contact; another owner needs
/// `opportunities:assign`.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<OpportunityRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: DealPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    let mut ch = OpportunityChanges {
        name: name.and_then(|n| errs.max_len("name", Some(n), 200)),
        account_id: input.account_id,
        primary_contact_id: input.primary_contact_id,
        amount: input.amount.map(|a| check_amount(&mut errs, "amount", a)),
        currency: input.currency.as_deref().map(|v| check_currency(&mut errs, v)),
        expected_close_date: input.expected_close_date,
        probability: check_probability(&mut errs, input.probability),
        owner_id: input.owner_id,
        team_id: None,
        competitors: input.competitors.map(clean_list),
        next_step: patch(input.next_step, |v| errs.text_max("next_step", v, 2_000)),
        forecast_category: input.forecast_category.map(|v| check_category(&mut errs, v)),
        custom: None,
    };
    let contacts_in = input.contacts.map(|l| links(&mut errs, l));
    errs.into_result()?;
    write::update(
        c,
        ctx,
        &scope,
        id,
        expected,
        "opportunity",
        |c, before: &OpportunityRow| {
            if ch.probability.is_some_and(|p| p != before.probability) && before.status != "open" {
                return Err(AppError::field(
                    "probability",
                    "closed_deal",
                    "a won or lost deal's probability follows its stage",
                ));
            }
            let amount = ch.amount.unwrap_or(before.amount);
            let probability = ch.probability.unwrap_or(before.probability);
            let record = json!({"amount": amount, "probability": probability});
            ch.custom = custom::write(c, ctx, RES, input.custom.as_ref(), Some((id, &before.custom)), record)?;
            if let Some(a) = ch.account_id.filter(|a| *a != before.account_id) {
                check_account(c, ctx, a)?;
            }
            let account = ch.account_id.unwrap_or(before.account_id);
            if let Some(p) = ch.primary_contact_id.unwrap_or(before.primary_contact_id) {
                if ch.primary_contact_id.is_some() || ch.account_id.is_some() {
                    check_primary(c, ctx, p, account)?;
                }
            }
            if let Some(owner) = ch.owner_id.filter(|o| *o != before.owner_id) {
                ctx.require(RES, Action::Assign)?;
                ch.team_id = Some(resolve_owner(c, ctx, RES, owner)?);
            }
            let mut contacts_changed = false;
            if let Some(links) = &contacts_in {
                check_contacts(c, ctx, links)?;
                let mut current = contacts_of(c, id)?;
                current.sort();
                let mut wanted = links.clone();
                wanted.sort();
                if wanted != current {
                    opps::set_contacts(c, id, links)?;
                    contacts_changed = true;
                }
            }
            let unchanged = prune_changes!(ch, before;
            name, account_id, primary_contact_id, amount, currency, expected_close_date, probability,
            owner_id, team_id, competitors, next_step, forecast_category, custom);
            if unchanged && !contacts_changed {
                return Ok(None);
            }
            Ok(Some(opps::update(c, id, &ch)?))
        },
    )
}

/// A deliverable to attach to a deal (e.g. 《首次沟通纪要》).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputInput {
    /// Defaults to the deal's current stage.
    pub stage_id: Option<Uuid>,
    /// The required output of a stage this fulfils.
    pub output_code: Option<String>,
    pub title: String,
    pub notes: Option<String>,
    pub url: Option<String>,
    pub file_ref: Option<String>,
}

fn codes_of(items: &Value) -> impl Iterator<Item = &str> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("code").and_then(Value::as_str))
}

/// The deal in the actor's update scope, locked.
fn changing(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<OpportunityRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    opps::find(c, &scope, id, Liveness::Live, true)?.ok_or(AppError::NotFound("opportunity"))
}

/// Marks a key task of one of the deal's stages done or undone
/// (`opportunity.checklist_updated` when it changes). Returns the deal.
pub fn set_key_task(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    (stage_id, task): (Uuid, &str),
    done: bool,
) -> AppResult<OpportunityRow> {
    let row = changing(c, ctx, id)?;
    let stage = pipelines::find_stage(c, stage_id)?
        .filter(|s| s.pipeline_id == row.pipeline_id)
        .ok_or(AppError::NotFound("stage"))?;
    if !codes_of(&stage.key_tasks).any(|t| t == task) {
        return Err(AppError::NotFound("key task"));
    }
    let (before, _) = opps::set_task_done(c, id, stage_id, task, done, ctx.user_id())?;
    if before != Some(done) {
        let mut changes = Map::new();
        changes.insert(
            format!("checklist.{}.{}", stage.code, task),
            json!({"before": before.unwrap_or(false), "after": done}),
        );
        let detail = json!({"opportunity_id": id, "stage": stage.code, "task": task, "done": done});
        audit::record(c, &ctx.actor(), RES, id, "checklist_updated", changes, detail)?;
    }
    Ok(row)
}

/// Attaches a deliverable to a deal, for a stage of its pipeline and optionally a
/// stage's required output (`opportunity.output_attached`).
pub fn attach_output(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    fields: &Map<String, Value>,
) -> AppResult<opps::OutputRow> {
    let input: OutputInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let title = errs.required_text("title", &input.title);
    let url = errs.website("url", input.url);
    let notes = errs.text_max("notes", input.notes, 10_000);
    let file_ref = errs.line_max("file_ref", input.file_ref, 500);
    errs.into_result()?;
    let row = changing(c, ctx, id)?;
    let stages = pipelines::stages_of(c, &[row.pipeline_id], true)?;
    let stage_id = input.stage_id.unwrap_or(row.stage_id);
    if !stages.iter().any(|s| s.id == stage_id) {
        return Err(AppError::field(
            "stage_id",
            "not_found",
            "no such stage in this deal's pipeline",
        ));
    }
    if let Some(code) = &input.output_code {
        if !stages.iter().any(|s| codes_of(&s.required_outputs).any(|o| o == code)) {
            return Err(AppError::field(
                "output_code",
                "not_found",
                "no stage of this pipeline requires such an output",
            ));
        }
    }
    let new = opps::NewOutput {
        id: Uuid::now_v7(),
        opportunity_id: id,
        stage_id,
        output_code: input.output_code,
        title,
        notes,
        url,
        file_ref,
        author_id: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    let out = opps::insert_output(c, &new)?;
    let data = storage::row(c, "opportunity_outputs", out.id)?.unwrap_or_default();
    let mut changes = Map::new();
    changes.insert("outputs".into(), json!({"before": null, "after": data}));
    audit::record(c, &ctx.actor(), RES, id, "output_attached", changes, Value::Null)?;
    Ok(out)
}

/// Removes a deliverable from a deal (`opportunity.output_removed`).
pub fn remove_output(c: &mut PgConnection, ctx: &Ctx, id: Uuid, output_id: Uuid) -> AppResult<()> {
    changing(c, ctx, id)?;
    if !opps::delete_output(c, id, output_id, ctx.now())? {
        return Err(AppError::NotFound("output"));
    }
    let mut changes = Map::new();
    changes.insert("outputs".into(), json!({"before": {"id": output_id}, "after": null}));
    let detail = json!({"opportunity_id": id, "output_id": output_id});
    audit::record(c, &ctx.actor(), RES, id, "output_removed", changes, detail)?;
    Ok(())
}
