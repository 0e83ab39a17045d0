//! Contract, payment-plan, invoice, payment and receivable bodies.

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::contracts::{AmendmentRow, ContractRow, InstallmentState, InvoiceRow, PaymentRow, ReceivableRow};
use crm_domain::money::{age_bucket, AgeBucket};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, money, str_enum};

str_enum! {
    /// Contract status: draft -> legal_review -> pending_signature -> signed -> active ->
    /// completed | terminated.
    ContractStatus {
        Draft => "draft", LegalReview => "legal_review", PendingSignature => "pending_signature",
        Signed => "signed", Active => "active", Completed => "completed", Terminated => "terminated"
    }
}

/// A sales contract.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contract {
    pub id: Uuid,
    /// Generated from the numbering pattern, e.g. HT-2026-00017 (gap-free per year).
    pub number: String,
    pub opportunity_id: Uuid,
    pub account_id: Uuid,
    /// The accepted quote it was made from.
    pub quote_id: Option<Uuid>,
    pub title: String,
    /// Contract total (tax included).
    #[schema(value_type = String, example = "113000.00")]
    pub amount: Decimal,
    pub currency: String,
    /// Lines copied from the quote.
    #[schema(value_type = Vec<Object>)]
    pub lines: Value,
    pub status: ContractStatus,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub signed_at: Option<DateTime<Utc>>,
    /// Reference to the customer-stamped copy (file key or URL).
    pub signed_copy_ref: Option<String>,
    pub terms: Option<String>,
    pub termination_reason: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<ContractRow> for Contract {
    fn from(r: ContractRow) -> Self {
        Contract {
            id: r.id,
            number: r.number,
            opportunity_id: r.opportunity_id,
            account_id: r.account_id,
            quote_id: r.quote_id,
            title: r.title,
            amount: money(r.amount),
            currency: r.currency,
            lines: r.lines,
            status: ContractStatus::parse(&r.status).unwrap_or(ContractStatus::Draft),
            start_date: r.start_date,
            end_date: r.end_date,
            signed_at: r.signed_at,
            signed_copy_ref: r.signed_copy_ref,
            terms: r.terms,
            termination_reason: r.termination_reason,
            owner_id: r.owner_id,
            team_id: r.team_id,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /contracts`: from an accepted quote (amount and lines are copied), or
/// directly on a deal with an amount.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContract {
    /// An accepted quote; its deal, currency, total and lines are used.
    pub quote_id: Option<Uuid>,
    /// Required without a quote.
    pub opportunity_id: Option<Uuid>,
    /// Defaults to the deal name.
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub title: Option<String>,
    /// Required without a quote.
    #[schema(value_type = Option<String>, example = "113000.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub amount: Option<Decimal>,
    /// Without a quote; default the deal's currency.
    #[validate(length(equal = 3))]
    #[schema(min_length = 3, max_length = 3)]
    pub currency: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    #[validate(length(max = 20000))]
    #[schema(max_length = 20000)]
    pub terms: Option<String>,
}

/// Body of `PATCH /contracts/{id}` (drafts only; signed contracts change by amendment).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContract {
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub title: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub start_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub end_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 20000)]
    #[validate(length(max = 20000))]
    pub terms: Option<Option<String>>,
}

/// Body of `POST /contracts/{id}/sign`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignContract {
    /// Reference to the customer-stamped copy (file key or URL).
    #[validate(length(min = 1, max = 1000))]
    #[schema(min_length = 1, max_length = 1000)]
    pub signed_copy_ref: String,
    /// Default now.
    pub signed_at: Option<DateTime<Utc>>,
}

/// Body of `POST /contracts/{id}/terminate`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateContract {
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// Also mark an open deal Lost with this reason (through the normal stage move).
    #[serde(default)]
    pub mark_lost: bool,
}

/// Body of contract actions without data (`submit`, `activate`, `complete`).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractAction {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// Query of `GET /contracts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContractListQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `created_at`, `updated_at`, `number`, `amount`; `-` for descending. Default `-created_at`.
    pub sort: Option<String>,
    pub opportunity_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<ContractStatus>,
    pub owner_id: Option<Uuid>,
}

/// A recorded change of a signed contract.
#[derive(Debug, Serialize, ToSchema)]
pub struct Amendment {
    pub id: Uuid,
    pub seq: i32,
    pub description: String,
    /// Field -> {before, after}.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<AmendmentRow> for Amendment {
    fn from(r: AmendmentRow) -> Self {
        Amendment {
            id: r.id,
            seq: r.seq,
            description: r.description,
            changes: r.changes,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// Amendments, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AmendmentList {
    pub items: Vec<Amendment>,
}

/// Body of `POST /contracts/{id}/amendments`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAmendment {
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub description: String,
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub title: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub start_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub end_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 20000)]
    #[validate(length(max = 20000))]
    pub terms: Option<Option<String>>,
}

/// Ageing bucket of an installment.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ageing {
    /// Not yet due (or paid).
    Current,
    #[serde(rename = "0-30")]
    Days0To30,
    #[serde(rename = "31-60")]
    Days31To60,
    #[serde(rename = "61-90")]
    Days61To90,
    #[serde(rename = "90+")]
    Over90,
}

impl From<AgeBucket> for Ageing {
    fn from(b: AgeBucket) -> Self {
        match b {
            AgeBucket::Current => Ageing::Current,
            AgeBucket::Days0To30 => Ageing::Days0To30,
            AgeBucket::Days31To60 => Ageing::Days31To60,
            AgeBucket::Days61To90 => Ageing::Days61To90,
            AgeBucket::Over90 => Ageing::Over90,
        }
    }
}

/// One installment of a payment plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct Installment {
    pub id: Uuid,
    pub seq: i32,
    pub due_date: NaiveDate,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub note: Option<String>,
    /// Allocated from payments.
    #[schema(value_type = String)]
    pub paid: Decimal,
    #[schema(value_type = String)]
    pub outstanding: Decimal,
    /// Issued (not void) invoices against it.
    #[schema(value_type = String)]
    pub invoiced: Decimal,
    /// Due date passed with something outstanding.
    pub overdue: bool,
    pub days_overdue: i64,
    pub ageing: Ageing,
}

impl Installment {
    pub fn build(s: InstallmentState, today: NaiveDate) -> Self {
        let outstanding = (s.amount - s.paid).max(Decimal::ZERO);
        let overdue = outstanding > Decimal::ZERO && s.due_date < today;
        Installment {
            id: s.id,
            seq: s.seq,
            due_date: s.due_date,
            amount: money(s.amount),
            note: s.note,
            paid: money(s.paid),
            outstanding: money(outstanding),
            invoiced: money(s.invoiced),
            overdue,
            days_overdue: if overdue { (today - s.due_date).num_days() } else { 0 },
            ageing: if overdue {
                age_bucket(s.due_date, today).into()
            } else {
                Ageing::Current
            },
        }
    }
}

/// A contract's payment plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPlan {
    pub contract_id: Uuid,
    #[schema(value_type = String)]
    pub contract_amount: Decimal,
    #[schema(value_type = String)]
    pub planned: Decimal,
    /// Whether the installments add up to the contract amount (false after an
    /// amendment changed the amount until the plan is set again).
    pub balanced: bool,
    pub installments: Vec<Installment>,
}

/// An installment as entered.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallmentInput {
    pub due_date: NaiveDate,
    #[schema(value_type = String, example = "33900.00")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub amount: Decimal,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// Body of `PUT /contracts/{id}/payment-plan`: the installments must add up to the
/// contract amount.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPaymentPlan {
    #[validate(length(min = 1, max = 120), nested)]
    #[schema(min_items = 1, max_items = 120)]
    pub installments: Vec<InstallmentInput>,
}

str_enum! {
    /// Invoice status.
    InvoiceStatus { Issued => "issued", Void => "void" }
}

/// An invoice (发票) issued against a contract installment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invoice {
    pub id: Uuid,
    /// e.g. FP-2026-000003.
    pub number: String,
    pub contract_id: Uuid,
    pub installment_id: Option<Uuid>,
    /// Invoiced amount, tax included.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The VAT part of the amount.
    #[schema(value_type = String)]
    pub tax_amount: Decimal,
    pub issued_on: NaiveDate,
    pub status: InvoiceStatus,
    pub owner_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub version: i32,
}

impl From<InvoiceRow> for Invoice {
    fn from(r: InvoiceRow) -> Self {
        Invoice {
            id: r.id,
            number: r.number,
            contract_id: r.contract_id,
            installment_id: r.installment_id,
            amount: money(r.amount),
            tax_amount: money(r.tax_amount),
            issued_on: r.issued_on,
            status: InvoiceStatus::parse(&r.status).unwrap_or(InvoiceStatus::Issued),
            owner_id: r.owner_id,
            created_by: r.created_by,
            created_at: r.created_at,
            version: r.version,
        }
    }
}

/// Body of `POST /invoices`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoice {
    pub contract_id: Uuid,
    /// The installment invoiced; the amount defaults to what is not yet invoiced on it.
    pub installment_id: Option<Uuid>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub amount: Option<Decimal>,
    /// Tax rate in percent used to split out the VAT part, default "13.00".
    #[schema(value_type = Option<String>, example = "13.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
    /// Default today.
    pub issued_on: Option<NaiveDate>,
}

/// Query of `GET /invoices`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceListQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `created_at`, `issued_on`; `-` for descending. Default `-created_at`.
    pub sort: Option<String>,
    pub contract_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<InvoiceStatus>,
}

str_enum! {
    /// How a payment was made.
    PaymentMethod {
        BankTransfer => "bank_transfer", Cash => "cash", Check => "check", Alipay => "alipay",
        WechatPay => "wechat_pay", Card => "card", Other => "other"
    }
}

/// Part of a payment applied to an installment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub installment_id: Uuid,
    #[schema(value_type = String, example = "33900.00")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub amount: Decimal,
}

/// A payment received (回款).
#[derive(Debug, Serialize, ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub contract_id: Uuid,
    pub account_id: Uuid,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub received_on: NaiveDate,
    pub method: PaymentMethod,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub allocations: Vec<Allocation>,
    /// Received before the contract was signed: held unapplied until it is.
    pub prepayment: bool,
    /// Not applied to any installment (over-payment, prepayment or no plan yet); apply
    /// later with `POST /payments/{id}/allocate`.
    #[schema(value_type = String)]
    pub unapplied: Decimal,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub version: i32,
}

impl Payment {
    pub fn build(r: PaymentRow, allocs: &[(Uuid, Uuid, Decimal)]) -> Self {
        let allocations: Vec<Allocation> = allocs
            .iter()
            .filter(|(p, _, _)| *p == r.id)
            .map(|(_, i, a)| Allocation {
                installment_id: *i,
                amount: money(*a),
            })
            .collect();
        let applied: Decimal = allocations.iter().map(|a| a.amount).sum();
        Payment {
            id: r.id,
            contract_id: r.contract_id,
            account_id: r.account_id,
            amount: money(r.amount),
            received_on: r.received_on,
            method: PaymentMethod::parse(&r.method).unwrap_or(PaymentMethod::Other),
            prepayment: r.prepayment,
            reference: r.reference,
            note: r.note,
            unapplied: money(r.amount - applied),
            allocations,
            owner_id: r.owner_id,
            team_id: r.team_id,
            created_by: r.created_by,
            created_at: r.created_at,
            version: r.version,
        }
    }
}

/// Body of `POST /payments`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    pub contract_id: Uuid,
    #[schema(value_type = String, example = "33900.00")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub amount: Decimal,
    /// Default today.
    pub received_on: Option<NaiveDate>,
    pub method: PaymentMethod,
    /// Bank reference, cheque number ...
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub reference: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    /// Explicit allocation; by default the oldest open installments are paid first and
    /// anything beyond what is due stays unapplied.
    #[validate(length(max = 120))]
    #[schema(max_items = 120)]
    pub allocations: Option<Vec<Allocation>>,
}

/// Body of `POST /payments/{id}/allocate`: applies (part of) the unapplied amount.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocatePayment {
    /// Default: oldest open installments first.
    #[validate(length(max = 120))]
    #[schema(max_items = 120)]
    pub allocations: Option<Vec<Allocation>>,
}

/// Query of `GET /payments`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentListQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `created_at`, `received_on`, `amount`; `-` for descending. Default `-received_on`.
    pub sort: Option<String>,
    pub contract_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub received_from: Option<NaiveDate>,
    pub received_to: Option<NaiveDate>,
}

str_enum! {
    /// How receivables are grouped.
    ReceivableGroup { Contract => "contract", Account => "account" }
}

/// Query of `GET /receivables`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceivablesQuery {
    /// `contract` (default) or `account`.
    #[param(inline)]
    pub group_by: Option<ReceivableGroup>,
    pub account_id: Option<Uuid>,
    pub contract_id: Option<Uuid>,
    /// Only rows with something overdue.
    pub overdue: Option<bool>,
    /// Rows, 1..=500 (default 100), most overdue first.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Overdue amounts by age.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct AgeingBuckets {
    #[serde(rename = "0-30")]
    #[schema(value_type = String, rename = "0-30")]
    pub d0_30: Decimal,
    #[serde(rename = "31-60")]
    #[schema(value_type = String, rename = "31-60")]
    pub d31_60: Decimal,
    #[serde(rename = "61-90")]
    #[schema(value_type = String, rename = "61-90")]
    pub d61_90: Decimal,
    #[serde(rename = "90+")]
    #[schema(value_type = String, rename = "90+")]
    pub d90_plus: Decimal,
}

/// What is owed on one contract or by one account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receivable {
    /// Contract id or account id, per `group_by`.
    pub id: Uuid,
    /// Contract number or account name.
    pub label: String,
    pub currency: String,
    #[schema(value_type = String)]
    pub contract_amount: Decimal,
    /// Sum of the payment plan.
    #[schema(value_type = String)]
    pub planned: Decimal,
    #[schema(value_type = String)]
    pub invoiced: Decimal,
    #[schema(value_type = String)]
    pub received: Decimal,
    /// contract amount - received.
    #[schema(value_type = String)]
    pub outstanding: Decimal,
    /// Open amounts of installments past their due date.
    #[schema(value_type = String)]
    pub overdue_amount: Decimal,
    pub overdue: bool,
    pub ageing: AgeingBuckets,
}

impl From<ReceivableRow> for Receivable {
    fn from(r: ReceivableRow) -> Self {
        Receivable {
            id: r.key_id,
            label: r.label,
            currency: r.currency,
            contract_amount: money(r.contract_amount),
            planned: money(r.planned),
            invoiced: money(r.invoiced),
            received: money(r.received),
            outstanding: money(r.outstanding),
            overdue_amount: money(r.overdue),
            overdue: r.overdue > Decimal::ZERO,
            ageing: AgeingBuckets {
                d0_30: money(r.d0_30),
                d31_60: money(r.d31_60),
                d61_90: money(r.d61_90),
                d90_plus: money(r.d90_plus),
            },
        }
    }
}

/// One currency's totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivableTotal {
    pub currency: String,
    #[schema(value_type = String)]
    pub outstanding: Decimal,
    #[schema(value_type = String)]
    pub overdue: Decimal,
    pub ageing: AgeingBuckets,
}

/// Receivables with totals (the totals cover everything matching, not only the rows
/// returned). Amounts of different currencies are never added: an item is one
/// contract's or one account's amounts in one currency, and `totals` has one entry per
/// currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivableReport {
    /// The business date the ageing is computed for.
    pub as_of: NaiveDate,
    pub items: Vec<Receivable>,
    /// Per currency, most overdue first.
    pub totals: Vec<ReceivableTotal>,
    /// The outstanding total when everything is in one currency (`0.00` when nothing
    /// matches); none when several currencies are involved (read `totals`).
    #[schema(value_type = Option<String>)]
    pub total_outstanding: Option<Decimal>,
    /// As `total_outstanding`, for the overdue amount.
    #[schema(value_type = Option<String>)]
    pub total_overdue: Option<Decimal>,
    /// As `total_outstanding`, for the ageing buckets.
    pub ageing: Option<AgeingBuckets>,
}
