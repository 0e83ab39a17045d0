//! Money in: invoices issued on signed contracts and payments received (回款), allocated
//! to the payment plan's instalments (explicitly or oldest due first, never beyond
//! what is due; the rest stays unapplied), prepayments held until signing.

use chrono::{Datelike, NaiveDate};
use crm_db::repo::contracts::{self as repo, ContractRow, InvoiceRow, PaymentRow};
use crm_db::repo::{audit, workflow};
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::money::{allocate, cents, check_payment, AllocationError, Due, PaymentError};
use crm_domain::status::{ContractStatus, InvoiceAction, InvoiceStatus};
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{check_amount, check_pct, money, Errors};
use crate::context::Ctx;
use crate::contracts::is_signed;
use crate::error::{AppError, AppResult};
use crate::write::{self, decimal_str};

/// What each instalment of a contract still has outstanding, in plan order.
pub fn dues(c: &mut PgConnection, contract_id: Uuid) -> AppResult<Vec<Due>> {
    Ok(repo::plan(c, &[contract_id])?
        .into_iter()
        .map(|i| Due {
            installment_id: i.id,
            due_date: i.due_date,
            outstanding: (i.amount - i.paid).max(Decimal::ZERO),
        })
        .collect())
}

/// An allocation refused by the rules (422 with the error's code).
pub fn allocation_error(e: AllocationError) -> AppError {
    let code = match e {
        AllocationError::UnknownInstallment(_) => "unknown_installment",
        AllocationError::ExceedsDue(_) => "exceeds_due",
        AllocationError::ExceedsPayment => "exceeds_payment",
        AllocationError::NotPositive => "not_positive",
    };
    AppError::rule(code, e.to_string())
}

/// The part of a payment not yet applied to instalments.
pub fn unapplied(c: &mut PgConnection, payment: &PaymentRow) -> AppResult<Decimal> {
    let applied: Decimal = repo::allocations(c, &[payment.id])?
        .into_iter()
        .map(|(_, _, amount)| amount)
        .sum();
    Ok(payment.amount - applied)
}

/// Applies (part of) a payment's unapplied amount to its contract's instalments: the
/// `wanted` (instalment, amount) pairs, or oldest due first. Only a signed contract's
/// payments are applied; the plan is locked so two allocations cannot both take the
/// same outstanding amount. Returns the payment; records `payment.allocated`.
pub fn allocate_payment(
    c: &mut PgConnection,
    ctx: &Ctx,
    scope: &ScopeFilter,
    payment_id: Uuid,
    wanted: Option<&[(Uuid, Decimal)]>,
) -> AppResult<PaymentRow> {
    let row = repo::find_payment(c, scope, payment_id, true)?.ok_or(AppError::NotFound("payment"))?;
    let k = repo::find(c, &ScopeFilter::All, row.contract_id, true)?
        .ok_or_else(|| AppError::internal("payment without contract"))?;
    if !ContractStatus::parse(&k.status).is_some_and(ContractStatus::is_signed) {
        return Err(AppError::conflict(
            "contract_not_signed",
            format!("the contract is {}; payments are applied once it is signed", k.status),
        ));
    }
    repo::lock_plan(c, row.contract_id)?;
    let before = unapplied(c, &row)?;
    let allocs = allocate(before, &dues(c, row.contract_id)?, wanted).map_err(allocation_error)?;
    repo::add_allocations(c, payment_id, &allocs)?;
    let after = unapplied(c, &row)?;
    let mut changes = serde_json::Map::new();
    changes.insert(
        "unapplied".into(),
        json!({"before": crate::checks::money(before), "after": crate::checks::money(after)}),
    );
    audit::record(
        c,
        &ctx.actor(),
        "payments",
        payment_id,
        "allocated",
        changes,
        Value::Null,
    )?;
    Ok(row)
}

const PAY: &str = "payments";

/// Ways a payment is received.
pub const PAYMENT_METHODS: &[&str] = &[
    "bank_transfer",
    "cash",
    "check",
    "alipay",
    "wechat_pay",
    "card",
    "other",
];

/// An invoice to issue on a signed contract (for an instalment, or an amount).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    pub contract_id: Uuid,
    pub installment_id: Option<Uuid>,
    /// Defaults to what is left to invoice on the instalment.
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub amount: Option<Decimal>,
    /// Percent; defaults to 13.
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
    pub issued_on: Option<NaiveDate>,
}

/// An amount applied to an instalment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationInput {
    pub installment_id: Uuid,
    #[serde(deserialize_with = "decimal_str::required")]
    pub amount: Decimal,
}

/// A payment received (回款).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub contract_id: Uuid,
    #[serde(deserialize_with = "decimal_str::required")]
    pub amount: Decimal,
    /// Defaults to today; not in the future.
    pub received_on: Option<NaiveDate>,
    pub method: String,
    pub reference: Option<String>,
    pub note: Option<String>,
    /// Explicit allocation; oldest due first otherwise.
    pub allocations: Option<Vec<AllocationInput>>,
}

/// A contract the actor's permission on payments reaches, locked.
fn payable_contract(c: &mut PgConnection, ctx: &Ctx, action: Action, id: Uuid) -> AppResult<ContractRow> {
    let scope = ctx.require(PAY, action)?;
    match repo::find(c, &ScopeFilter::All, id, true)? {
        Some(k) if ctx.principal.reaches(scope, k.owner_id, k.team_id) => Ok(k),
        _ => Err(AppError::field("contract_id", "not_found", "no such contract")),
    }
}

/// Issues an invoice on a signed contract, for an instalment (at most what is left to
/// invoice on it) or an amount; never beyond the contract amount.
pub fn issue_invoice(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<InvoiceRow> {
    ctx.require(PAY, Action::Create)?;
    let input: InvoiceInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "amount", input.amount);
    if amount.is_some_and(|a| a <= Decimal::ZERO) {
        errs.add("amount", "out_of_range", "must be positive");
    }
    let rate = check_pct(&mut errs, "tax_rate", input.tax_rate).unwrap_or(Decimal::from(13));
    errs.into_result()?;
    let k = payable_contract(c, ctx, Action::Create, input.contract_id)?;
    if !is_signed(&k) {
        return Err(AppError::conflict(
            "invalid_transition",
            format!("invoices are issued on signed contracts; this one is {}", k.status),
        ));
    }
    repo::lock_plan(c, k.id)?;
    let invoiced = repo::invoiced_total(c, k.id)?;
    let amount = match input.installment_id {
        Some(iid) => {
            let plan = repo::plan(c, &[k.id])?;
            let inst = plan.iter().find(|i| i.id == iid).ok_or_else(|| {
                AppError::field("installment_id", "not_found", "no such installment on this contract")
            })?;
            let left = inst.amount - inst.invoiced;
            let a = amount.unwrap_or(left);
            if a <= Decimal::ZERO || a > left {
                return Err(AppError::rule(
                    "exceeds_installment",
                    format!("{} is left to invoice on this installment", money(left)),
                )
                .with_extra("remaining", json!(money(left))));
            }
            a
        }
        None => amount.ok_or_else(|| AppError::field("amount", "required", "an amount or an installment"))?,
    };
    if invoiced + amount > k.amount {
        return Err(AppError::rule(
            "exceeds_contract",
            format!("{} is left to invoice on this contract", money(k.amount - invoiced)),
        )
        .with_extra("remaining", json!(money(k.amount - invoiced))));
    }
    let tax = cents(amount - amount * Decimal::from(100) / (Decimal::from(100) + rate));
    let issued_on = input.issued_on.unwrap_or(ctx.today());
    let year = issued_on.year();
    let cfg = workflow::setting(c, "invoice_numbering")?.unwrap_or(json!({}));
    let number = crate::numbering::format_number(&cfg, "FP", 6, year, workflow::next_number(c, "invoice", year)?);
    let row = repo::insert_invoice(
        c,
        &InvoiceRow {
            id: Uuid::now_v7(),
            number,
            contract_id: k.id,
            installment_id: input.installment_id,
            amount,
            tax_amount: tax,
            issued_on,
            status: "issued".into(),
            owner_id: k.owner_id,
            team_id: k.team_id,
            created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
            created_at: ctx.now(),
            version: 1,
        },
    )?;
    let after = write::audit_view(c, "invoices", row.id)?;
    let changes = crm_domain::diff::created(&after);
    audit::record(c, &ctx.actor(), "invoices", row.id, "issued", changes, Value::Null)?;
    Ok(row)
}

/// Voids an issued invoice (`payments:update`).
pub fn void_invoice(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<InvoiceRow> {
    let scope = ctx.filter(PAY, Action::Update)?;
    let row = repo::find_invoice(c, &scope, id, true)?.ok_or(AppError::NotFound("invoice"))?;
    InvoiceStatus::parse(&row.status)
        .ok_or_else(|| AppError::internal(format!("invoice {id} has status {}", row.status)))?
        .apply(InvoiceAction::Void)?;
    let row = repo::void_invoice(c, id)?;
    let mut changes = Map::new();
    changes.insert("status".into(), json!({"before": "issued", "after": "void"}));
    audit::record(c, &ctx.actor(), "invoices", id, "voided", changes, Value::Null)?;
    Ok(row)
}

/// Allocation amounts as (instalment, amount), checked.
pub fn explicit(list: Option<&[AllocationInput]>) -> AppResult<Option<Vec<(Uuid, Decimal)>>> {
    let Some(l) = list else {
        return Ok(None);
    };
    let mut errs = Errors::default();
    let out = l
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("allocations[{i}].amount");
            (
                a.installment_id,
                check_amount(&mut errs, &field, Some(a.amount)).unwrap_or_default(),
            )
        })
        .collect();
    errs.into_result()?;
    Ok(Some(out))
}

/// Records a payment received on a contract, allocated to instalments (explicitly or
/// oldest due first, never beyond what is due; the rest stays unapplied). On a contract
/// not yet signed it is a prepayment, held unapplied, or refused when the payment
/// settings do not accept prepayments; never beyond the contract amount plus the
/// tolerance. The deal may become Won as the Won criteria allow.
pub fn receive_payment(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<PaymentRow> {
    ctx.require(PAY, Action::Create)?;
    let input: PaymentInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "amount", Some(input.amount)).unwrap_or_default();
    if amount <= Decimal::ZERO {
        errs.add("amount", "out_of_range", "must be positive");
    }
    if !PAYMENT_METHODS.contains(&input.method.as_str()) {
        errs.add(
            "method",
            "invalid_choice",
            format!("one of {}", PAYMENT_METHODS.join(", ")),
        );
    }
    let reference = errs.line_max("reference", input.reference, 200);
    let note = errs.text_max("note", input.note, 2_000);
    errs.into_result()?;
    let wanted = explicit(input.allocations.as_deref())?;
    let today = ctx.today();
    let received_on = input.received_on.unwrap_or(today);
    if received_on > today {
        return Err(AppError::field(
            "received_on",
            "out_of_range",
            "must not be in the future",
        ));
    }
    let k = payable_contract(c, ctx, Action::Create, input.contract_id)?;
    if k.status == "terminated" {
        return Err(AppError::conflict("invalid_transition", "the contract is terminated"));
    }
    repo::lock_plan(c, k.id)?;
    let rules = workflow::payment_rules(c)?;
    let received = repo::received_total(c, k.id)?;
    let prepayment = check_payment(&rules, k.amount, received, amount, is_signed(&k)).map_err(|e| match e {
        PaymentError::NotSigned => AppError::conflict(
            "contract_not_signed",
            format!("the contract is {}; payments are recorded once it is signed", k.status),
        ),
        PaymentError::ExceedsContract { remaining } => AppError::rule(
            "exceeds_contract",
            format!(
                "{} more can be received on this contract (amount {} plus a tolerance of {})",
                money(remaining),
                money(k.amount),
                money(rules.overpayment_tolerance)
            ),
        )
        .with_extra("remaining", json!(money(remaining))),
    })?;
    // A prepayment is held as unapplied credit until the contract is signed.
    let allocs = if prepayment {
        if wanted.is_some() {
            return Err(AppError::field(
                "allocations",
                "not_signed",
                "a prepayment on an unsigned contract stays unapplied until it is signed",
            ));
        }
        Vec::new()
    } else {
        allocate(amount, &dues(c, k.id)?, wanted.as_deref()).map_err(allocation_error)?
    };
    let row = repo::insert_payment(
        c,
        &PaymentRow {
            id: Uuid::now_v7(),
            contract_id: k.id,
            account_id: k.account_id,
            amount,
            received_on,
            method: input.method,
            reference,
            note,
            owner_id: k.owner_id,
            team_id: k.team_id,
            created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
            created_at: ctx.now(),
            version: 1,
            prepayment,
        },
    )?;
    repo::add_allocations(c, row.id, &allocs)?;
    let after = write::audit_view(c, PAY, row.id)?;
    audit::record(
        c,
        &ctx.actor(),
        PAY,
        row.id,
        "received",
        crm_domain::diff::created(&after),
        Value::Null,
    )?;
    crate::opportunities::close_deal(c, ctx, k.opportunity_id, true, None)?;
    Ok(row)
}
