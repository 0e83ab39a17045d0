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
use crm_domain::money::{allocate, cents, check_payment, AllocationError, Due, PaymentError};
use crm_domain::status::{ContractAction as Act, ContractStatus as Status};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
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

/// List contracts in the caller's scope.
#[utoipa::path(
    tag = "contracts",
    params(ContractListQuery),
    responses((status = 200, description = "A page of contracts", body = Page<Contract>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contracts")]
pub async fn list_contracts(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ContractListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let q = q.into_inner();
    let filter = ContractFilter {
        opportunity_id: q.opportunity_id,
        account_id: q.account_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        owner_id: q.owner_id,
    };
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::new(
                repo::SORT_COLUMNS,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
            )?;
            Ok::<_, ApiError>(repo::list(c, &scope, &filter, &spec)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Contract::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a draft contract from an accepted quote (amount and lines copied) or directly
/// on a deal. The number comes from the numbering pattern, gap-free per year.
#[utoipa::path(
    tag = "contracts",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateContract,
    responses(
        (status = 201, description = "Created", body = Contract, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts")]
pub async fn create_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateContract>,
) -> ApiResult<HttpResponse> {
    let scope = auth.require(RES, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let title = dto.title.as_deref().map(|t| errs.required_text("title", t));
    let amount = check_amount(&mut errs, "amount", dto.amount);
    let terms = errs.text(dto.terms);
    if dto.quote_id.is_none() && dto.opportunity_id.is_none() {
        errs.add("quote_id", "required", "give an accepted quote or an opportunity");
    }
    if dto.quote_id.is_some() && (dto.amount.is_some() || dto.currency.is_some()) {
        errs.add(
            "amount",
            "not_allowed",
            "a contract from a quote takes the quote's total and currency",
        );
    }
    if dto.quote_id.is_none() && dto.opportunity_id.is_some() && amount.is_none() {
        errs.add("amount", "required", "a contract without a quote needs an amount");
    }
    if let (Some(s), Some(e)) = (dto.start_date, dto.end_date) {
        if e < s {
            errs.add("end_date", "out_of_range", "must not be before start_date");
        }
    }
    errs.into_result()?;
    let writer = auth.clone();
    let year = state.clock.today().year();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let (deal, quote) = match dto.quote_id {
            Some(qid) => {
                let q = quotes::find(c, &ScopeFilter::All, qid, Liveness::Live, true)?
                    .ok_or_else(|| ApiError::field("quote_id", "not_found", "no such quote"))?;
                if !writer.reaches(scope, q.owner_id, q.team_id) {
                    return Err(ApiError::field("quote_id", "not_found", "no such quote"));
                }
                if q.status != "accepted" {
                    return Err(ApiError::unprocessable(
                        "quote_not_accepted",
                        format!("the quote is {}; a contract is made from an accepted quote", q.status),
                    ));
                }
                if dto.opportunity_id.is_some_and(|o| o != q.opportunity_id) {
                    return Err(ApiError::field(
                        "opportunity_id",
                        "mismatch",
                        "the quote belongs to another deal",
                    ));
                }
                if let Some(existing) = repo::live_for_quote(c, qid)? {
                    return Err(
                        ApiError::conflict("duplicate", "a contract already exists for this quote")
                            .with_extra("existing", json!({"id": existing})),
                    );
                }
                (reachable_deal(c, &writer, scope, q.opportunity_id)?, Some(q))
            }
            None => (
                reachable_deal(c, &writer, scope, dto.opportunity_id.unwrap_or_default())?,
                None,
            ),
        };
        let (amount, currency, lines) = match &quote {
            Some(q) => {
                let lines = quotes::lines(c, &[q.id])?;
                let lines: Vec<Value> = lines
                    .into_iter()
                    .map(|l| {
                        let dto = crate::dto::quotes::QuoteLine::from(l);
                        serde_json::to_value(dto).unwrap_or_default()
                    })
                    .collect();
                (q.total, q.currency.clone(), Value::Array(lines))
            }
            None => {
                let currency = dto
                    .currency
                    .as_deref()
                    .map(|c| c.trim().to_ascii_uppercase())
                    .unwrap_or_else(|| deal.currency.clone());
                if crm_domain::normalize::currency(&currency).is_none() {
                    return Err(ApiError::field(
                        "currency",
                        "invalid_format",
                        "an active ISO 4217 currency code such as CNY",
                    ));
                }
                (amount.unwrap_or_default(), currency, json!([]))
            }
        };
        let number = contract_number(c, year)?;
        let row = repo::insert(
            c,
            &NewContract {
                id: Uuid::now_v7(),
                number,
                opportunity_id: deal.id,
                account_id: deal.account_id,
                quote_id: quote.as_ref().map(|q| q.id),
                title: title.clone().unwrap_or_else(|| deal.name.clone()),
                amount,
                currency,
                lines,
                status: "draft".into(),
                start_date: dto.start_date,
                end_date: dto.end_date,
                terms,
                owner_id: deal.owner_id,
                team_id: deal.team_id,
                created_by: Some(writer.user_id),
            },
        )?;
        workflow::transition(c, "contract", row.id, None, "draft", Some(writer.user_id), None)?;
        let k = Contract::from(row);
        let data = to_json(&k);
        audit::record(c, &writer.actor(), RES, k.id, "created", diff::created(&data), data)?;
        Outcome::created(&k, format!("/api/v1/contracts/{}", k.id))
    })
    .await
}

/// Get one contract.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "The contract", body = Contract, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contracts/{id}")]
pub async fn get_contract(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let row = state
        .db
        .run(move |c| repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract")))
        .await?;
    let v = row.version;
    Ok(with_etag(&Contract::from(row), v))
}

fn contract_changes(
    errs: &mut Errors,
    title: Option<String>,
    amount: Option<Decimal>,
    start: Option<Option<chrono::NaiveDate>>,
    end: Option<Option<chrono::NaiveDate>>,
    terms: Option<Option<String>>,
) -> ContractChanges {
    ContractChanges {
        title: title.as_deref().map(|t| errs.required_text("title", t)),
        amount: amount.and_then(|a| check_amount(errs, "amount", Some(a))),
        start_date: start,
        end_date: end,
        terms: terms.map(|t| errs.text(t)),
    }
}

fn check_dates(before: &ContractRow, ch: &ContractChanges) -> ApiResult<()> {
    let s = ch.start_date.unwrap_or(before.start_date);
    let e = ch.end_date.unwrap_or(before.end_date);
    if let (Some(s), Some(e)) = (s, e) {
        if e < s {
            return Err(ApiError::field(
                "end_date",
                "out_of_range",
                "must not be before start_date",
            ));
        }
    }
    Ok(())
}

/// Change a draft contract (`If-Match` required). A contract in legal review is locked
/// (409 `locked`); later changes go through amendments.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateContract,
    responses(
        (status = 200, description = "Updated", body = Contract, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/contracts/{id}")]
pub async fn update_contract(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateContract>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let ch = contract_changes(
        &mut errs,
        dto.title,
        dto.amount,
        dto.start_date,
        dto.end_date,
        dto.terms,
    );
    errs.into_result()?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = repo::find(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("contract"))?;
                if_match.0.check(before.version)?;
                match before.status.as_str() {
                    "draft" => {}
                    "legal_review" => {
                        return Err(ApiError::conflict(
                            "locked",
                            "the contract is locked while legal review is pending",
                        ))
                    }
                    s => {
                        return Err(ApiError::conflict(
                            "immutable",
                            format!("a contract that is {s} changes through POST /contracts/{{id}}/amendments"),
                        ))
                    }
                }
                if ch.amount.is_some() && before.quote_id.is_some() {
                    return Err(ApiError::field(
                        "amount",
                        "not_allowed",
                        "the amount comes from the accepted quote",
                    ));
                }
                check_dates(&before, &ch)?;
                if ch.is_empty() {
                    return Ok(before);
                }
                let after = repo::update(c, id, &ch)?;
                let (b, a) = (
                    to_json(&Contract::from(before)),
                    to_json(&Contract::from(after.clone())),
                );
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = row.version;
    Ok(with_etag(&Contract::from(row), v))
}

/// Runs a contract action on the contract locked in the caller's update scope.
async fn act<F>(
    state: &AppState,
    auth: &Auth,
    key: IdempotencyKey,
    req: &HttpRequest,
    raw: &[u8],
    id: Uuid,
    f: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection, &Auth, ContractRow) -> ApiResult<Contract> + Send + 'static,
{
    let find: super::LockedFind<ContractRow> = |c, s, id| repo::find(c, s, id, true);
    super::locked_action(state, auth, key, req, raw, (RES, "contract"), find, id, f).await
}

/// The contract's status machine: where `action` leads from the row's status.
fn transition(row: &ContractRow, action: Act) -> ApiResult<Status> {
    Status::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("contract {} has status {}", row.id, row.status)))?
        .apply(action)
        .map_err(super::transition_error)
}

/// Whether the contract binds (signed, active or completed).
fn signed(row: &ContractRow) -> bool {
    Status::parse(&row.status).is_some_and(Status::is_signed)
}

/// Send a draft contract to legal review through the approval engine (the seeded
/// definition asks the legal role). With no matching definition it goes straight to
/// `pending_signature`.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "In review", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/submit")]
pub async fn submit_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Submit)?;
        let actor = w.actor();
        let k = set_status(c, &actor, &row, ContractStatus::LegalReview, "submitted", None, None)?;
        let mut record = to_json(&k);
        record["amount"] = json!(k.amount);
        let inst = approval::submit(
            c,
            &actor,
            now,
            Submission {
                object_type: "contract",
                object_id: k.id,
                requester: w.user_id,
                owner_id: k.owner_id,
                owner_team: k.team_id,
                record,
            },
        )?;
        let outcome = approval::outcome(&inst);
        if outcome == ApprovalOutcome::Approved {
            crm_app::contracts::on_approval(c, &actor, k.id, outcome)?;
        }
        let row =
            repo::find(c, &ScopeFilter::All, k.id, false)?.ok_or_else(|| ApiError::internal("contract vanished"))?;
        Ok(Contract::from(row))
    })
    .await
}

/// Record the signature (customer-stamped copy). The deal becomes Won through the
/// normal stage move when the Won stage's entry criteria allow.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = SignContract,
    responses((status = 200, description = "Signed", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/sign")]
pub async fn sign_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<SignContract>,
) -> ApiResult<HttpResponse> {
    let clock = state.clock.clone();
    auth.require(RES, Action::Update)?;
    let dto = body.value?;
    let copy = dto.signed_copy_ref.trim().to_owned();
    if copy.is_empty() {
        return Err(ApiError::field("signed_copy_ref", "required", "must not be blank"));
    }
    let now = state.clock.now();
    if dto.signed_at.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
        return Err(ApiError::field(
            "signed_at",
            "out_of_range",
            "must not be in the future",
        ));
    }
    act(
        &state,
        &auth,
        key,
        &req,
        &body.raw,
        id.into_inner(),
        move |c, w, row| {
            transition(&row, Act::Sign)?;
            let k = set_status(
                c,
                &w.actor(),
                &row,
                ContractStatus::Signed,
                "signed",
                Some((dto.signed_at.unwrap_or(now), copy)),
                None,
            )?;
            crm_app::opportunities::close_deal(c, &w.ctx(&clock), k.opportunity_id, true, None)?;
            Ok(k)
        },
    )
    .await
}

/// Put a signed contract in force.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Active", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/activate")]
pub async fn activate_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Activate)?;
        set_status(c, &w.actor(), &row, ContractStatus::Active, "activated", None, None)
    })
    .await
}

/// Mark an active contract fulfilled.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = ContractAction,
    responses((status = 200, description = "Completed", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/complete")]
pub async fn complete_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<ContractAction>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let comment = body.value?.comment.clone();
    act(
        &state,
        &auth,
        key,
        &req,
        &body.raw,
        id.into_inner(),
        move |c, w, row| {
            transition(&row, Act::Complete)?;
            set_status(
                c,
                &w.actor(),
                &row,
                ContractStatus::Completed,
                "completed",
                None,
                comment.as_deref(),
            )
        },
    )
    .await
}

/// Terminate a contract (not while legal review is pending: withdraw it first).
/// Optionally marks an open deal Lost with the reason.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = TerminateContract,
    responses((status = 200, description = "Terminated", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/terminate")]
pub async fn terminate_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<TerminateContract>,
) -> ApiResult<HttpResponse> {
    let clock = state.clock.clone();
    auth.require(RES, Action::Update)?;
    let dto = body.value?;
    let reason = dto.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::field("reason", "required", "must not be blank"));
    }
    act(
        &state,
        &auth,
        key,
        &req,
        &body.raw,
        id.into_inner(),
        move |c, w, row| {
            if row.status == Status::LegalReview.as_str() {
                return Err(ApiError::conflict(
                    "locked",
                    "legal review is pending; withdraw the approval first",
                ));
            }
            transition(&row, Act::Terminate)?;
            let k = set_status(
                c,
                &w.actor(),
                &row,
                ContractStatus::Terminated,
                "terminated",
                None,
                Some(&reason),
            )?;
            if dto.mark_lost {
                w.require("opportunities", Action::Update)?;
                crm_app::opportunities::close_deal(c, &w.ctx(&clock), row.opportunity_id, false, Some(reason.clone()))?;
            }
            Ok(k)
        },
    )
    .await
}

/// Status changes of a contract, oldest first.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Status history", body = StatusHistory), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contracts/{id}/status-history")]
pub async fn contract_status_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract"))?;
            Ok::<_, ApiError>(workflow::transitions(c, "contract", id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(StatusHistory {
        items: rows.into_iter().map(StatusChange::from).collect(),
    }))
}

/// Amendments of a contract, oldest first.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Amendments", body = AmendmentList), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contracts/{id}/amendments")]
pub async fn list_amendments(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract"))?;
            Ok::<_, ApiError>(repo::amendments(c, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(AmendmentList {
        items: rows.into_iter().map(Amendment::from).collect(),
    }))
}

/// Amend a signed or active contract: the change is applied and kept with its
/// before/after values. An amount change unbalances the payment plan until it is set again.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateAmendment,
    responses((status = 201, description = "Amended", body = Amendment, headers(("Location" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/amendments")]
pub async fn create_amendment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<CreateAmendment>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let description = errs.required_text("description", &dto.description);
    let ch = contract_changes(
        &mut errs,
        dto.title,
        dto.amount,
        dto.start_date,
        dto.end_date,
        dto.terms,
    );
    if ch.is_empty() {
        errs.add(
            "description",
            "no_change",
            "an amendment changes at least one of title, amount, dates, terms",
        );
    }
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let before = repo::find(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("contract"))?;
        if !matches!(before.status.as_str(), "signed" | "active") {
            return Err(ApiError::conflict(
                "invalid_transition",
                format!(
                    "only signed or active contracts are amended; this one is {}",
                    before.status
                ),
            ));
        }
        check_dates(&before, &ch)?;
        let after = repo::update(c, id, &ch)?;
        let (b, a) = (to_json(&Contract::from(before)), to_json(&Contract::from(after)));
        let mut changes = diff::changes(&b, &a);
        changes.retain(|k, _| !matches!(k.as_str(), "updated_at" | "version"));
        let am = repo::insert_amendment(c, id, &description, &Value::Object(changes.clone()), writer.user_id)?;
        let mut payload = a;
        payload["amendment"] = json!({"seq": am.seq, "description": am.description});
        audit::record(c, &writer.actor(), RES, id, "amended", changes, payload)?;
        Outcome::created(&Amendment::from(am), format!("/api/v1/contracts/{id}/amendments"))
    })
    .await
}

fn build_plan(c: &mut PgConnection, k: &ContractRow, today: chrono::NaiveDate) -> ApiResult<PaymentPlan> {
    let rows = repo::plan(c, &[k.id])?;
    let planned: Decimal = rows.iter().map(|r| r.amount).sum();
    Ok(PaymentPlan {
        contract_id: k.id,
        contract_amount: money(k.amount),
        planned: money(planned),
        balanced: planned == k.amount,
        installments: rows.into_iter().map(|r| Installment::build(r, today)).collect(),
    })
}

/// A contract's payment plan with what is paid, outstanding and overdue per installment.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Payment plan", body = PaymentPlan), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contracts/{id}/payment-plan")]
pub async fn get_payment_plan(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let today = state.clock.today();
    let plan = state
        .db
        .run(move |c| {
            let k = repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract"))?;
            build_plan(c, &k, today)
        })
        .await?;
    Ok(HttpResponse::Ok().json(plan))
}

/// Set (replace) the payment plan. The installments must add up to the contract amount
/// (422 `plan_total_mismatch`); a plan with payments or invoices on it cannot be
/// replaced (409 `plan_in_use`).
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    request_body = SetPaymentPlan,
    responses((status = 200, description = "The new plan", body = PaymentPlan), BadRequest, Unauthorized, Forbidden, NotFound,
        Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[put("/contracts/{id}/payment-plan")]
pub async fn set_payment_plan(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    body: ValidJson<SetPaymentPlan>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let mut items: Vec<(chrono::NaiveDate, Decimal, Option<String>)> = Vec::new();
    for (i, it) in dto.installments.into_iter().enumerate() {
        let a = check_amount(&mut errs, &format!("installments[{i}].amount"), Some(it.amount)).unwrap_or_default();
        if a <= Decimal::ZERO {
            errs.add(&format!("installments[{i}].amount"), "out_of_range", "must be positive");
        }
        items.push((it.due_date, a, errs.text(it.note)));
    }
    errs.into_result()?;
    items.sort_by_key(|(d, _, _)| *d);
    let writer = auth.clone();
    let today = state.clock.today();
    let plan = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let k = repo::find(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("contract"))?;
                if Status::parse(&k.status).is_some_and(Status::is_final) {
                    return Err(ApiError::conflict(
                        "invalid_transition",
                        format!("the contract is {}", k.status),
                    ));
                }
                let total: Decimal = items.iter().map(|(_, a, _)| *a).sum();
                if total != k.amount {
                    return Err(ApiError::unprocessable(
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
                    return Err(ApiError::conflict(
                        "plan_in_use",
                        "payments or invoices refer to the current plan; it cannot be replaced",
                    ));
                }
                let before = build_plan(c, &k, today)?;
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
                let after = build_plan(c, &k, today)?;
                let mut changes = serde_json::Map::new();
                changes.insert(
                    "payment_plan".into(),
                    json!({"before": before.installments.len(), "after": after.installments.len()}),
                );
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "payment_plan_set",
                    changes,
                    serde_json::to_value(&after).unwrap_or_default(),
                )?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(plan))
}

/// A contract the caller's permission on payments reaches, locked.
fn payable_contract(c: &mut PgConnection, auth: &Auth, action: Action, id: Uuid) -> ApiResult<ContractRow> {
    let scope = auth.require(PAY, action)?;
    match repo::find(c, &ScopeFilter::All, id, true)? {
        Some(k) if auth.reaches(scope, k.owner_id, k.team_id) => Ok(k),
        _ => Err(ApiError::field("contract_id", "not_found", "no such contract")),
    }
}

/// List invoices in the caller's scope (`payments:read`).
#[utoipa::path(
    tag = "payments",
    params(InvoiceListQuery),
    responses((status = 200, description = "A page of invoices", body = Page<Invoice>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/invoices")]
pub async fn list_invoices(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<InvoiceListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let q = q.into_inner();
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::new(
                repo::INVOICE_SORT,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
            )?;
            Ok::<_, ApiError>(repo::list_invoices(
                c,
                &scope,
                q.contract_id,
                q.status.map(|s| s.as_str().to_owned()),
                &spec,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Invoice::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Issue an invoice against a signed contract, usually for one installment (never more
/// than is left to invoice on it, or on the contract).
#[utoipa::path(
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateInvoice,
    responses(
        (status = 201, description = "Issued", body = Invoice, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/invoices")]
pub async fn create_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateInvoice>,
) -> ApiResult<HttpResponse> {
    auth.require(PAY, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "amount", dto.amount);
    if amount.is_some_and(|a| a <= Decimal::ZERO) {
        errs.add("amount", "out_of_range", "must be positive");
    }
    let rate = check_pct(&mut errs, "tax_rate", dto.tax_rate).unwrap_or(Decimal::from(13));
    errs.into_result()?;
    let writer = auth.clone();
    let today = state.clock.today();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let k = payable_contract(c, &writer, Action::Create, dto.contract_id)?;
        if !signed(&k) {
            return Err(ApiError::conflict(
                "invalid_transition",
                format!("invoices are issued on signed contracts; this one is {}", k.status),
            ));
        }
        repo::lock_plan(c, k.id)?;
        let invoiced = repo::invoiced_total(c, k.id)?;
        let amount = match dto.installment_id {
            Some(iid) => {
                let plan = repo::plan(c, &[k.id])?;
                let inst = plan.iter().find(|i| i.id == iid).ok_or_else(|| {
                    ApiError::field("installment_id", "not_found", "no such installment on this contract")
                })?;
                let left = inst.amount - inst.invoiced;
                let a = amount.unwrap_or(left);
                if a <= Decimal::ZERO || a > left {
                    return Err(ApiError::unprocessable(
                        "exceeds_installment",
                        format!("{} is left to invoice on this installment", money(left)),
                    )
                    .with_extra("remaining", json!(money(left))));
                }
                a
            }
            None => amount.ok_or_else(|| ApiError::field("amount", "required", "an amount or an installment"))?,
        };
        if invoiced + amount > k.amount {
            return Err(ApiError::unprocessable(
                "exceeds_contract",
                format!("{} is left to invoice on this contract", money(k.amount - invoiced)),
            )
            .with_extra("remaining", json!(money(k.amount - invoiced))));
        }
        let tax = cents(amount - amount * Decimal::from(100) / (Decimal::from(100) + rate));
        let year = dto.issued_on.unwrap_or(today).year();
        let cfg = workflow::setting(c, "invoice_numbering")?.unwrap_or(json!({}));
        let number = format_number(&cfg, "FP", 6, year, workflow::next_number(c, "invoice", year)?);
        let row = repo::insert_invoice(
            c,
            &InvoiceRow {
                id: Uuid::now_v7(),
                number,
                contract_id: k.id,
                installment_id: dto.installment_id,
                amount,
                tax_amount: tax,
                issued_on: dto.issued_on.unwrap_or(today),
                status: "issued".into(),
                owner_id: k.owner_id,
                team_id: k.team_id,
                created_by: Some(writer.user_id),
                created_at: chrono::Utc::now(),
                version: 1,
            },
        )?;
        let inv = Invoice::from(row);
        let data = serde_json::to_value(&inv).unwrap_or_default();
        audit::record(
            c,
            &writer.actor(),
            "invoices",
            inv.id,
            "issued",
            diff::created(&data),
            data,
        )?;
        Outcome::created(&inv, format!("/api/v1/invoices/{}", inv.id))
    })
    .await
}

/// Void an issued invoice (`payments:update`).
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Invoice id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Voided", body = Invoice), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/invoices/{id}/void")]
pub async fn void_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Update)?;
    let id = id.into_inner();
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, b"", idempotency::keep, move |c| {
        let row = repo::find_invoice(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("invoice"))?;
        if row.status != "issued" {
            return Err(ApiError::conflict("invalid_transition", "the invoice is already void"));
        }
        let inv = Invoice::from(repo::void_invoice(c, id)?);
        let mut changes = serde_json::Map::new();
        changes.insert("status".into(), json!({"before": "issued", "after": "void"}));
        audit::record(
            c,
            &writer.actor(),
            "invoices",
            id,
            "voided",
            changes,
            serde_json::to_value(&inv).unwrap_or_default(),
        )?;
        Outcome::ok(&inv)
    })
    .await
}

fn dues(c: &mut PgConnection, contract_id: Uuid) -> ApiResult<Vec<Due>> {
    Ok(repo::plan(c, &[contract_id])?
        .into_iter()
        .map(|i| Due {
            installment_id: i.id,
            due_date: i.due_date,
            outstanding: (i.amount - i.paid).max(Decimal::ZERO),
        })
        .collect())
}

fn allocation_error(e: AllocationError) -> ApiError {
    let code = match e {
        AllocationError::UnknownInstallment(_) => "unknown_installment",
        AllocationError::ExceedsDue(_) => "exceeds_due",
        AllocationError::ExceedsPayment => "exceeds_payment",
        AllocationError::NotPositive => "not_positive",
    };
    ApiError::unprocessable(code, e.to_string())
}

fn explicit(list: &Option<Vec<Allocation>>) -> ApiResult<Option<Vec<(Uuid, Decimal)>>> {
    match list {
        None => Ok(None),
        Some(l) => {
            let mut errs = Errors::default();
            let out = l
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    (
                        a.installment_id,
                        check_amount(&mut errs, &format!("allocations[{i}].amount"), Some(a.amount))
                            .unwrap_or_default(),
                    )
                })
                .collect();
            errs.into_result()?;
            Ok(Some(out))
        }
    }
}

fn load_payment(c: &mut PgConnection, row: PaymentRow) -> ApiResult<Payment> {
    let allocs = repo::allocations(c, &[row.id])?;
    Ok(Payment::build(row, &allocs))
}

/// List payments in the caller's scope (`payments:read`; reps see their own deals').
#[utoipa::path(
    tag = "payments",
    params(PaymentListQuery),
    responses((status = 200, description = "A page of payments", body = Page<Payment>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/payments")]
pub async fn list_payments(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<PaymentListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let q = q.into_inner();
    let filter = PaymentFilter {
        contract_id: q.contract_id,
        account_id: q.account_id,
        received_from: q.received_from,
        received_to: q.received_to,
    };
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::new(
                repo::PAYMENT_SORT,
                "-received_on",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
            )?;
            let page = repo::list_payments(c, &scope, &filter, &spec)?;
            let ids: Vec<Uuid> = page.items.iter().map(|p| p.id).collect();
            let allocs = repo::allocations(c, &ids)?;
            Ok::<_, ApiError>(Page {
                items: page.items.into_iter().map(|p| Payment::build(p, &allocs)).collect(),
                next_cursor: page.next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get one payment with its allocations.
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = Payment), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/payments/{id}")]
pub async fn get_payment(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let id = id.into_inner();
    let p = state
        .db
        .run(move |c| {
            let row = repo::find_payment(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("payment"))?;
            load_payment(c, row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

/// Record a payment received (回款) on a contract. It is allocated to installments,
/// explicitly or oldest-first; an allocation never exceeds what is due, and anything
/// beyond stays `unapplied` (over-payment). A partial payment leaves the installment
/// partly outstanding. A contract's payments never exceed its amount plus the
/// configured tolerance (422 `exceeds_contract` with `remaining`).
///
/// On a contract not yet signed the payment is a prepayment (`prepayment: true`): held
/// unapplied until the contract is signed, refused (409 `contract_not_signed`) when the
/// payment settings do not accept prepayments. Payments win an open deal through the
/// normal stage move only as the Won criteria allow: a payment on a signed contract, or
/// prepayments reaching the configured share of the contract amount.
#[utoipa::path(
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreatePayment,
    responses(
        (status = 201, description = "Recorded", body = Payment, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/payments")]
pub async fn create_payment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreatePayment>,
) -> ApiResult<HttpResponse> {
    let clock = state.clock.clone();
    auth.require(PAY, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "amount", Some(dto.amount)).unwrap_or_default();
    if amount <= Decimal::ZERO {
        errs.add("amount", "out_of_range", "must be positive");
    }
    let reference = errs.line(dto.reference);
    let note = errs.text(dto.note);
    errs.into_result()?;
    let wanted = explicit(&dto.allocations)?;
    let writer = auth.clone();
    let today = state.clock.today();
    let received_on = dto.received_on.unwrap_or(today);
    if received_on > today {
        return Err(ApiError::field(
            "received_on",
            "out_of_range",
            "must not be in the future",
        ));
    }
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let k = payable_contract(c, &writer, Action::Create, dto.contract_id)?;
        if k.status == "terminated" {
            return Err(ApiError::conflict("invalid_transition", "the contract is terminated"));
        }
        repo::lock_plan(c, k.id)?;
        let rules = workflow::payment_rules(c)?;
        let signed = signed(&k);
        let received = repo::received_total(c, k.id)?;
        let prepayment = check_payment(&rules, k.amount, received, amount, signed).map_err(|e| match e {
            PaymentError::NotSigned => ApiError::conflict(
                "contract_not_signed",
                format!("the contract is {}; payments are recorded once it is signed", k.status),
            ),
            PaymentError::ExceedsContract { remaining } => ApiError::unprocessable(
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
                return Err(ApiError::field(
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
                method: dto.method.as_str().into(),
                reference,
                note,
                owner_id: k.owner_id,
                team_id: k.team_id,
                created_by: Some(writer.user_id),
                created_at: chrono::Utc::now(),
                version: 1,
                prepayment,
            },
        )?;
        repo::add_allocations(c, row.id, &allocs)?;
        let p = load_payment(c, row)?;
        let data = serde_json::to_value(&p).unwrap_or_default();
        audit::record(c, &writer.actor(), PAY, p.id, "received", diff::created(&data), data)?;
        crm_app::opportunities::close_deal(c, &writer.ctx(&clock), k.opportunity_id, true, None)?;
        Outcome::created(&p, format!("/api/v1/payments/{}", p.id))
    })
    .await
}

/// Apply (part of) a payment's unapplied amount to installments (e.g. after the plan
/// was set), explicitly or oldest-first.
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = AllocatePayment,
    responses((status = 200, description = "The payment", body = Payment), BadRequest, Unauthorized, Forbidden, NotFound,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/payments/{id}/allocate")]
pub async fn allocate_payment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<AllocatePayment>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Update)?;
    let id = id.into_inner();
    let wanted = explicit(&body.value?.allocations)?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let row = repo::find_payment(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("payment"))?;
        let k = repo::find(c, &ScopeFilter::All, row.contract_id, true)?
            .ok_or_else(|| ApiError::internal("payment without contract"))?;
        if !signed(&k) {
            return Err(ApiError::conflict(
                "contract_not_signed",
                format!("the contract is {}; payments are applied once it is signed", k.status),
            ));
        }
        repo::lock_plan(c, row.contract_id)?;
        let before = load_payment(c, row.clone())?;
        let allocs =
            allocate(before.unapplied, &dues(c, row.contract_id)?, wanted.as_deref()).map_err(allocation_error)?;
        repo::add_allocations(c, id, &allocs)?;
        let after = load_payment(c, row)?;
        let mut changes = serde_json::Map::new();
        changes.insert(
            "unapplied".into(),
            json!({"before": before.unapplied, "after": after.unapplied}),
        );
        audit::record(
            c,
            &writer.actor(),
            PAY,
            id,
            "allocated",
            changes,
            serde_json::to_value(&after).unwrap_or_default(),
        )?;
        Outcome::ok(&after)
    })
    .await
}

/// Receivables per contract (default) or per account in the caller's `payments:read`
/// scope: contract amount, planned, invoiced, received, outstanding, overdue flag and
/// ageing buckets (days past due: 0-30, 31-60, 61-90, 90+), most overdue first.
#[utoipa::path(
    tag = "payments",
    params(ReceivablesQuery),
    responses((status = 200, description = "Receivables", body = ReceivableReport), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/receivables")]
pub async fn receivables(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ReceivablesQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 500",
        ));
    }
    let today = state.clock.today();
    let group = match q.group_by {
        Some(ReceivableGroup::Account) => Grouping::Account,
        _ => Grouping::Contract,
    };
    let (rows, total) = state
        .db
        .run(move |c| {
            let (acc, kid, overdue) = (q.account_id, q.contract_id, q.overdue.unwrap_or(false));
            let rows = repo::receivables(c, &scope, group, acc, kid, overdue, today, limit)?;
            let total = repo::receivables(c, &scope, Grouping::Total, acc, kid, overdue, today, 1)?;
            Ok::<_, ApiError>((rows, total.into_iter().next()))
        })
        .await?;
    let items: Vec<Receivable> = rows.into_iter().map(Into::into).collect();
    let total: Option<Receivable> = total.map(Into::into);
    Ok(HttpResponse::Ok().json(ReceivableReport {
        as_of: today,
        total_outstanding: total.as_ref().map_or(money(Decimal::ZERO), |t| t.outstanding),
        total_overdue: total.as_ref().map_or(money(Decimal::ZERO), |t| t.overdue_amount),
        ageing: total.map(|t| t.ageing).unwrap_or_else(|| AgeingBuckets {
            d0_30: money(Decimal::ZERO),
            d31_60: money(Decimal::ZERO),
            d61_90: money(Decimal::ZERO),
            d90_plus: money(Decimal::ZERO),
        }),
        items,
    }))
}
