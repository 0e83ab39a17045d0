//! `/api/v1/contracts` (with legal review, signing, amendments and the payment plan),
//! `/api/v1/invoices`, `/api/v1/payments` and `/api/v1/receivables`.

use actix_web::{get, patch, post, put, web, HttpRequest, HttpResponse};
use crm_db::repo::contracts::{
    self as repo, ContractFilter, ContractRow, PaymentFilter, PaymentRow, ReceivableGrouping as Grouping,
};
use crm_db::repo::workflow;
use crm_db::sql::ListSpec;
use crm_domain::access::Action;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Auth;
use crate::dto::contracts::{
    AgeingBuckets, AllocatePayment, Amendment, AmendmentList, Contract, ContractAction, ContractListQuery,
    CreateAmendment, CreateContract, CreateInvoice, CreatePayment, Installment, Invoice, InvoiceListQuery, Payment,
    PaymentListQuery, PaymentPlan, Receivable, ReceivableGroup, ReceivableReport, ReceivableTotal, ReceivablesQuery,
    SetPaymentPlan, SignContract, TerminateContract, UpdateContract,
};
use crate::dto::quotes::{StatusChange, StatusHistory};
use crate::dto::{money, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::handlers::{
    changed_record, created_record, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized,
    Unprocessable, VersionErrors,
};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "contracts";
const PAY: &str = "payments";

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
