//! `/api/v1/contracts` (with legal review, signing, amendments and the payment plan),
//! `/api/v1/invoices`, `/api/v1/payments` and `/api/v1/receivables`.

use actix_web::{get, patch, post, put, web, HttpRequest, HttpResponse};
use chrono::Datelike;
use crm_db::repo::accounts::Liveness;
use crm_db::repo::contracts::{
    self as repo, ContractChanges, ContractFilter, ContractRow, InstallmentRow, InvoiceRow, NewContract, PaymentFilter,
    PaymentRow, ReceivableGrouping as Grouping,
};
use crm_db::repo::opportunities as opps;
use crm_db::repo::{audit, quotes, workflow};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, Scope, ScopeFilter};
use crm_domain::diff;
use crm_domain::money::{allocate, cents, check_payment, PaymentError};
use crm_domain::status::{ContractAction as Act, ContractStatus as Status};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Auth;
use crate::dto::check_amount;
use crate::dto::check_pct;
use crate::dto::contracts::{
    AgeingBuckets, AllocatePayment, Allocation, Amendment, AmendmentList, Contract, ContractAction, ContractListQuery,
    ContractStatus, CreateAmendment, CreateContract, CreateInvoice, CreatePayment, Installment, Invoice,
    InvoiceListQuery, Payment, PaymentListQuery, PaymentPlan, Receivable, ReceivableGroup, ReceivableReport,
    ReceivablesQuery, SetPaymentPlan, SignContract, TerminateContract, UpdateContract,
};
use crate::dto::quotes::{StatusChange, StatusHistory};
use crate::dto::{money, Errors, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::handlers::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;
use crm_app::approvals::{self as approval, Outcome as ApprovalOutcome, Submission};
use crm_app::numbering::format_number;

const RES: &str = "contracts";
const PAY: &str = "payments";

fn to_json(k: &Contract) -> Value {
    serde_json::to_value(k).unwrap_or_default()
}

fn contract_number(c: &mut PgConnection, year: i32) -> ApiResult<String> {
    let cfg = workflow::setting(c, "contract_numbering")?.unwrap_or(json!({}));
    Ok(format_number(
        &cfg,
        "HT",
        5,
        year,
        workflow::next_number(c, "contract", year)?,
    ))
}

/// Changes a contract's status (an operation of the app) for the answer.
fn set_status(
    c: &mut PgConnection,
    actor: &audit::Actor,
    before: &ContractRow,
    to: ContractStatus,
    action: &str,
    signed: Option<(chrono::DateTime<chrono::Utc>, String)>,
    reason: Option<&str>,
) -> ApiResult<Contract> {
    let to = Status::parse(to.as_str()).ok_or_else(|| ApiError::internal("unknown contract status"))?;
    let row = crm_app::contracts::set_status(c, actor, before, to, action, signed, reason)?;
    Ok(Contract::from(row))
}

/// A deal the caller's `contracts:create` reaches (404 otherwise, so nothing leaks).
fn reachable_deal(c: &mut PgConnection, auth: &Auth, scope: Scope, id: Uuid) -> ApiResult<opps::OpportunityRow> {
    match opps::find(c, &ScopeFilter::All, id, Liveness::Live, true)? {
        Some(d) if auth.reaches(scope, d.owner_id, d.team_id) => Ok(d),
        _ => Err(ApiError::field("opportunity_id", "not_found", "no such opportunity")),
    }
}

mod ageing;
mod amendments;
mod invoices;
mod lifecycle;
mod payments;
mod plans;

pub use ageing::*;
pub use amendments::*;
pub use invoices::*;
pub use lifecycle::*;
pub use payments::*;
pub use plans::*;
