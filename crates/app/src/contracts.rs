//! Contract lifecycle operations shared by the API and the approval engine.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use crm_db::repo::accounts::Liveness;
use crm_db::repo::contracts::{self as repo, ContractChanges, ContractRow, InstallmentRow, NewContract};
use crm_db::repo::opportunities::{self as opps, OpportunityRow};
use crm_db::repo::{audit, quotes, workflow};
use crm_domain::access::{Action, Scope, ScopeFilter};
use crm_domain::status::{ContractAction, ContractStatus};
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::approvals::{self, Outcome, Submission};
use crate::checks::{check_amount, money, patch, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, decimal_str, double_option};

const RES: &str = "contracts";

/// Changes a contract's status with the transition log, audit entry and
/// `contract.<action>` event. `signed` is (when, the signed copy) for signing.
pub fn set_status(
    c: &mut PgConnection,
    actor: &audit::Actor,
    before: &ContractRow,
    to: ContractStatus,
    action: &str,
    signed: Option<(DateTime<Utc>, String)>,
    reason: Option<&str>,
) -> AppResult<ContractRow> {
    let termination = if to == ContractStatus::Terminated { reason } else { None };
    let row = repo::set_status(c, before.id, to.as_str(), signed, termination)?;
    let user = Some(actor.user_id).filter(|u| !u.is_nil());
    workflow::transition(
        c,
        "contract",
        before.id,
        Some(&before.status),
        to.as_str(),
        user,
        reason,
    )?;
    let mut changes = serde_json::Map::new();
    changes.insert("status".into(), json!({"before": before.status, "after": to.as_str()}));
    let detail = json!({"from": before.status, "to": to.as_str(), "reason": reason});
    audit::record(c, actor, RES, row.id, action, changes, detail)?;
    Ok(row)
}

/// Applies the legal-review outcome to the contract (nothing when it no longer waits).
pub fn on_approval(c: &mut PgConnection, actor: &audit::Actor, contract_id: Uuid, outcome: Outcome) -> AppResult<()> {
    let Some(row) = repo::find(c, &ScopeFilter::All, contract_id, true)? else {
        return Ok(());
    };
    if row.status != ContractStatus::LegalReview.as_str() {
        return Ok(());
    }
    let (to, action, reason) = match outcome {
        Outcome::Pending => return Ok(()),
        Outcome::Approved => (ContractStatus::PendingSignature, "review_passed", None),
        Outcome::Rejected => (ContractStatus::Draft, "review_rejected", Some("legal review rejected")),
        Outcome::Withdrawn => (ContractStatus::Draft, "review_withdrawn", Some("review withdrawn")),
    };
    set_status(c, actor, &row, to, action, None, reason)?;
    Ok(())
}

/// A new contract: from an accepted quote (its total, currency and lines) or on a deal
/// with an amount.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractInput {
    pub quote_id: Option<Uuid>,
    pub opportunity_id: Option<Uuid>,
    /// Defaults to the deal's name.
    pub title: Option<String>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub terms: Option<String>,
}

/// A change of a draft contract, or what an amendment changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractPatch {
    pub title: Option<String>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "double_option")]
    pub start_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    pub end_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    pub terms: Option<Option<String>>,
}

/// An instalment of a payment plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallmentInput {
    pub due_date: NaiveDate,
    #[serde(deserialize_with = "decimal_str::required")]
    pub amount: Decimal,
    pub note: Option<String>,
}

fn contract_number(c: &mut PgConnection, year: i32) -> AppResult<String> {
    let cfg = workflow::setting(c, "contract_numbering")?.unwrap_or(json!({}));
    let n = workflow::next_number(c, "contract", year)?;
    Ok(crate::numbering::format_number(&cfg, "HT", 5, year, n))
}

/// A deal the actor's `contracts:create` reaches, locked (`not_found` otherwise, so
/// nothing leaks).
fn reachable_deal(c: &mut PgConnection, ctx: &Ctx, scope: Scope, id: Uuid) -> AppResult<OpportunityRow> {
    match opps::find(c, &ScopeFilter::All, id, Liveness::Live, true)? {
        Some(d) if ctx.principal.reaches(scope, d.owner_id, d.team_id) => Ok(d),
        _ => Err(AppError::field("opportunity_id", "not_found", "no such opportunity")),
    }
}

/// The accepted quote a contract is made from, with its deal.
fn quote_and_deal(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: Scope,
    qid: Uuid,
    deal: Option<Uuid>,
) -> AppResult<(OpportunityRow, quotes::QuoteRow)> {
    let q = quotes::find(c, &ScopeFilter::All, qid, Liveness::Live, true)?
        .filter(|q| ctx.principal.reaches(scope, q.owner_id, q.team_id))
        .ok_or_else(|| AppError::field("quote_id", "not_found", "no such quote"))?;
    if q.status != "accepted" {
        return Err(AppError::rule(
            "quote_not_accepted",
            format!("the quote is {}; a contract is made from an accepted quote", q.status),
        ));
    }
    if deal.is_some_and(|o| o != q.opportunity_id) {
        return Err(AppError::field(
            "opportunity_id",
            "mismatch",
            "the quote belongs to another deal",
        ));
    }
    if let Some(existing) = repo::live_for_quote(c, qid)? {
        return Err(
            AppError::conflict("duplicate", "a contract already exists for this quote")
                .with_extra("existing", json!({"id": existing})),
        );
    }
    Ok((reachable_deal(c, ctx, scope, q.opportunity_id)?, q))
}

fn check_dates(start: Option<NaiveDate>, end: Option<NaiveDate>) -> AppResult<()> {
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            return Err(AppError::field(
                "end_date",
                "out_of_range",
                "must not be before start_date",
            ));
        }
    }
    Ok(())
}

/// Creates a draft contract: from an accepted quote (its total, currency and a copy of
/// its lines; one live contract per quote) or on a deal with an amount.
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<ContractRow> {
    let scope = ctx.require(RES, Action::Create)?;
    let input: ContractInput = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let title = input.title.as_deref().map(|t| errs.required_text("title", t));
    let amount = check_amount(&mut errs, "amount", input.amount);
    let terms = errs.text_max("terms", input.terms, 20_000);
    if input.quote_id.is_none() && input.opportunity_id.is_none() {
        errs.add("quote_id", "required", "give an accepted quote or an opportunity");
    }
    if input.quote_id.is_some() && (input.amount.is_some() || input.currency.is_some()) {
        errs.add(
            "amount",
            "not_allowed",
            "a contract from a quote takes the quote's total and currency",
        );
    }
    if input.quote_id.is_none() && input.opportunity_id.is_some() && amount.is_none() {
        errs.add("amount", "required", "a contract without a quote needs an amount");
    }
    errs.into_result()?;
    check_dates(input.start_date, input.end_date)?;
    let (deal, quote) = match input.quote_id {
        Some(qid) => {
            let (deal, q) = quote_and_deal(c, ctx, scope, qid, input.opportunity_id)?;
            (deal, Some(q))
        }
        None => (
            reachable_deal(c, ctx, scope, input.opportunity_id.unwrap_or_default())?,
            None,
        ),
    };
    let (amount, currency, lines) = match &quote {
        Some(q) => {
            let lines = quotes::lines(c, &[q.id])?
                .iter()
                .map(crate::quotes::line_snapshot)
                .collect();
            (q.total, q.currency.clone(), Value::Array(lines))
        }
        None => {
            let currency = input
                .currency
                .as_deref()
                .map_or_else(|| deal.currency.clone(), |c| c.trim().to_ascii_uppercase());
            if crm_domain::normalize::currency(&currency).is_none() {
                return Err(AppError::field(
                    "currency",
                    "invalid_format",
                    "an active ISO 4217 currency code such as CNY",
                ));
            }
            (amount.unwrap_or_default(), currency, json!([]))
        }
    };
    let new = NewContract {
        id: Uuid::now_v7(),
        number: contract_number(c, ctx.today().year())?,
        opportunity_id: deal.id,
        account_id: deal.account_id,
        quote_id: quote.as_ref().map(|q| q.id),
        title: title.unwrap_or_else(|| deal.name.clone()),
        amount,
        currency,
        lines,
        status: "draft".into(),
        start_date: input.start_date,
        end_date: input.end_date,
        terms,
        owner_id: deal.owner_id,
        team_id: deal.team_id,
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    let row = repo::insert(c, &new)?;
    let user = Some(ctx.user_id()).filter(|u| !u.is_nil());
    workflow::transition(c, "contract", row.id, None, "draft", user, None)?;
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

fn changes_of(errs: &mut Errors, input: ContractPatch) -> ContractChanges {
    ContractChanges {
        title: input.title.as_deref().map(|t| errs.required_text("title", t)),
        amount: input.amount.and_then(|a| check_amount(errs, "amount", Some(a))),
        start_date: input.start_date,
        end_date: input.end_date,
        terms: patch(input.terms, |t| errs.text_max("terms", t, 20_000)),
    }
}

fn dates_after(before: &ContractRow, ch: &ContractChanges) -> AppResult<()> {
    check_dates(
        ch.start_date.unwrap_or(before.start_date),
        ch.end_date.unwrap_or(before.end_date),
    )
}

/// Changes a draft contract. In legal review it is `locked`; later it changes through
/// amendments (`immutable`). A contract from a quote keeps the quote's amount.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<ContractRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: ContractPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let ch = changes_of(&mut errs, input);
    errs.into_result()?;
    let before = repo::find(c, &scope, id, true)?.ok_or(AppError::NotFound("contract"))?;
    let version = before.version;
    write::change_locked(c, ctx, (RES, id), before, (version, expected), |c, before| {
        match before.status.as_str() {
            "draft" => {}
            "legal_review" => {
                return Err(AppError::conflict(
                    "locked",
                    "the contract is locked while legal review is pending",
                ))
            }
            s => {
                return Err(AppError::conflict(
                    "immutable",
                    format!("a contract that is {s} changes through POST /contracts/{{id}}/amendments"),
                ))
            }
        }
        if ch.amount.is_some() && before.quote_id.is_some() {
            return Err(AppError::field(
                "amount",
                "not_allowed",
                "the amount comes from the accepted quote",
            ));
        }
        dates_after(before, &ch)?;
        if ch.is_empty() {
            return Ok(None);
        }
        Ok(Some(repo::update(c, id, &ch)?))
    })
}

/// Amends a signed or active contract: the change is applied and kept with its
/// before / after values (`contract.amended`). Returns the amendment's number.
pub fn amend(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    description: &str,
    fields: &Map<String, Value>,
) -> AppResult<repo::AmendmentRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let mut body = fields.clone();
    body.remove("description");
    let input: ContractPatch = write::input(ctx, RES, &body)?;
    let mut errs = Errors::default();
    let description = errs.required_text("description", description);
    let ch = changes_of(&mut errs, input);
    if ch.is_empty() {
        errs.add(
            "description",
            "no_change",
            "an amendment changes at least one of title, amount, dates, terms",
        );
    }
    errs.into_result()?;
    let before = repo::find(c, &scope, id, true)?.ok_or(AppError::NotFound("contract"))?;
    ContractStatus::parse(&before.status)
        .ok_or_else(|| AppError::internal(format!("contract {id} has status {}", before.status)))?
        .apply(ContractAction::Amend)?;
    dates_after(&before, &ch)?;
    let old = write::audit_view(c, RES, id)?;
    repo::update(c, id, &ch)?;
    let new = write::audit_view(c, RES, id)?;
    let changes = crm_domain::diff::changes(&old, &new);
    let am = repo::insert_amendment(c, id, &description, &Value::Object(changes.clone()), ctx.user_id())?;
    let detail = json!({"amendment": {"seq": am.seq, "description": am.description}});
    audit::record(c, &ctx.actor(), RES, id, "amended", changes, detail)?;
    Ok(am)
}

/// The contract in the actor's update scope, locked, where `action` leads from its
/// status.
fn acting_on(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    action: ContractAction,
) -> AppResult<(ContractRow, ContractStatus)> {
    let scope = ctx.filter(RES, Action::Update)?;
    let row = repo::find(c, &scope, id, true)?.ok_or(AppError::NotFound("contract"))?;
    let to = ContractStatus::parse(&row.status)
        .ok_or_else(|| AppError::internal(format!("contract {} has status {}", row.id, row.status)))?
        .apply(action)?;
    Ok((row, to))
}

/// Sends a draft contract to legal review through the approval engine; with no
/// matching definition it goes straight to `pending_signature`.
pub fn submit(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<ContractRow> {
    submit_routed(c, ctx, id, None)
}

/// [`submit`], routed as a rule says.
pub fn submit_routed(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    route: Option<approvals::Route>,
) -> AppResult<ContractRow> {
    let (row, to) = acting_on(c, ctx, id, ContractAction::Submit)?;
    let actor = ctx.actor();
    let k = set_status(c, &actor, &row, to, "submitted", None, None)?;
    let record = crate::record::view(c, RES, id)?.unwrap_or_default();
    let submission = Submission {
        object_type: "contract",
        object_id: id,
        requester: ctx.user_id(),
        owner_id: k.owner_id,
        owner_team: k.team_id,
        record,
        route,
    };
    let inst = approvals::submit(c, &actor, ctx.now(), submission)?;
    let outcome = approvals::outcome(&inst);
    if outcome == Outcome::Approved {
        on_approval(c, &actor, id, outcome)?;
    }
    repo::find(c, &ScopeFilter::All, id, false)?.ok_or_else(|| AppError::internal("contract vanished"))
}

/// Records the signature (the customer-stamped copy); the deal becomes Won through the
/// normal stage move when the Won stage's criteria allow.
pub fn sign(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    signed_copy_ref: &str,
    signed_at: Option<DateTime<Utc>>,
) -> AppResult<ContractRow> {
    let copy = signed_copy_ref.trim().to_owned();
    if copy.is_empty() {
        return Err(AppError::field("signed_copy_ref", "required", "must not be blank"));
    }
    let now = ctx.now();
    if signed_at.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
        return Err(AppError::field(
            "signed_at",
            "out_of_range",
            "must not be in the future",
        ));
    }
    let (row, to) = acting_on(c, ctx, id, ContractAction::Sign)?;
    let k = set_status(
        c,
        &ctx.actor(),
        &row,
        to,
        "signed",
        Some((signed_at.unwrap_or(now), copy)),
        None,
    )?;
    crate::opportunities::close_deal(c, ctx, k.opportunity_id, true, None)?;
    Ok(k)
}

/// Puts a signed contract in force.
pub fn activate(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<ContractRow> {
    let (row, to) = acting_on(c, ctx, id, ContractAction::Activate)?;
    set_status(c, &ctx.actor(), &row, to, "activated", None, None)
}

/// Marks an active contract fulfilled.
pub fn complete(c: &mut PgConnection, ctx: &Ctx, id: Uuid, comment: Option<&str>) -> AppResult<ContractRow> {
    let (row, to) = acting_on(c, ctx, id, ContractAction::Complete)?;
    set_status(c, &ctx.actor(), &row, to, "completed", None, comment)
}

/// Terminates a contract (not while legal review is pending: withdraw it first);
/// `mark_lost` also loses an open deal with the reason.
pub fn terminate(c: &mut PgConnection, ctx: &Ctx, id: Uuid, reason: &str, mark_lost: bool) -> AppResult<ContractRow> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::field("reason", "required", "must not be blank"));
    }
    let scope = ctx.filter(RES, Action::Update)?;
    if repo::find(c, &scope, id, true)?.is_some_and(|k| k.status == ContractStatus::LegalReview.as_str()) {
        return Err(AppError::conflict(
            "locked",
            "legal review is pending; withdraw the approval first",
        ));
    }
    let (row, to) = acting_on(c, ctx, id, ContractAction::Terminate)?;
    let k = set_status(c, &ctx.actor(), &row, to, "terminated", None, Some(reason))?;
    if mark_lost {
        ctx.require("opportunities", Action::Update)?;
        crate::opportunities::close_deal(c, ctx, row.opportunity_id, false, Some(reason.to_owned()))?;
    }
    Ok(k)
}

/// Replaces the payment plan of a contract that is not final: the instalments must add
/// up to the contract amount (`plan_total_mismatch`) and no payment or invoice may
/// refer to the current plan (`plan_in_use`). Records `contract.payment_plan_set`.
pub fn set_plan(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    installments: &[InstallmentInput],
) -> AppResult<ContractRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let mut errs = Errors::default();
    let mut items: Vec<(NaiveDate, Decimal, Option<String>)> = Vec::new();
    for (i, it) in installments.iter().enumerate() {
        let field = format!("installments[{i}].amount");
        let a = check_amount(&mut errs, &field, Some(it.amount)).unwrap_or_default();
        if a <= Decimal::ZERO {
            errs.add(&field, "out_of_range", "must be positive");
        }
        items.push((it.due_date, a, errs.text(it.note.clone())));
    }
    errs.into_result()?;
    items.sort_by_key(|(d, _, _)| *d);
    let k = repo::find(c, &scope, id, true)?.ok_or(AppError::NotFound("contract"))?;
    if ContractStatus::parse(&k.status).is_some_and(ContractStatus::is_final) {
        return Err(AppError::conflict(
            "invalid_transition",
            format!("the contract is {}", k.status),
        ));
    }
    let total: Decimal = items.iter().map(|(_, a, _)| *a).sum();
    if total != k.amount {
        return Err(AppError::rule(
            "plan_total_mismatch",
            format!(
                "installments add up to {} but the contract amount is {}",
                money(total),
                money(k.amount)
            ),
        )
        .with_extra("planned", json!(money(total)))
        .with_extra("contract_amount", json!(money(k.amount))));
    }
    if repo::plan_in_use(c, id)? {
        return Err(AppError::conflict(
            "plan_in_use",
            "payments or invoices refer to the current plan; it cannot be replaced",
        ));
    }
    let before = repo::plan(c, &[id])?.len();
    let rows: Vec<InstallmentRow> = items
        .iter()
        .enumerate()
        .map(|(i, (d, a, n))| InstallmentRow {
            id: Uuid::now_v7(),
            contract_id: id,
            seq: i as i32 + 1,
            due_date: *d,
            amount: *a,
            note: n.clone(),
        })
        .collect();
    repo::replace_plan(c, id, &rows)?;
    let mut changes = Map::new();
    changes.insert("payment_plan".into(), json!({"before": before, "after": rows.len()}));
    audit::record(c, &ctx.actor(), RES, id, "payment_plan_set", changes, Value::Null)?;
    Ok(k)
}

pub(crate) fn is_signed(k: &ContractRow) -> bool {
    ContractStatus::parse(&k.status).is_some_and(ContractStatus::is_signed)
}
