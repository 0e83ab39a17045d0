//! `/api/v1/quotes`: versioned quotes on deals with server-computed totals, approval,
//! sending, acceptance and the printable document.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::opportunities::{self as opps};
use crm_db::repo::quotes::{self, QuoteFilter, QuoteRow};
use crm_db::repo::{contacts, users, workflow};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::money::rmb_upper;
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    changed_record, created_record, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized,
    Unprocessable, VersionErrors,
};
use crate::auth::Auth;
use crate::dto::quotes::{
    CreateQuote, DeclineQuote, DocumentParty, Quote, QuoteDocument, QuoteListQuery, StatusChange, StatusHistory,
    UpdateQuote,
};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;
use crate::views;

const RES: &str = "quotes";
/// Tax rate of free-text lines unless given.
/// A quote as the caller may read it (cost and margin follow field permissions).
fn shaped(auth: &Auth, q: &Quote) -> Value {
    crate::custom::shaped(&auth.principal, RES, &[], q)
}

/// List quotes in the caller's scope.
#[utoipa::path(
    tag = "quotes",
    params(QuoteListQuery),
    responses((status = 200, description = "A page of quotes", body = Page<Quote>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/quotes")]
pub async fn list_quotes(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<QuoteListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let q = q.into_inner();
    let filter = QuoteFilter {
        opportunity_id: q.opportunity_id,
        account_id: q.account_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        owner_id: q.owner_id,
    };
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::list(
                quotes::SORT_COLUMNS,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
            )?;
            let page = quotes::list(c, &scope, &filter, &spec)?;
            let ids: Vec<Uuid> = page.items.iter().map(|r| r.id).collect();
            let mut lines = quotes::lines(c, &ids)?;
            let items = page
                .items
                .into_iter()
                .map(|r| {
                    let (mine, rest): (Vec<_>, Vec<_>) = lines.drain(..).partition(|l| l.quote_id == r.id);
                    lines = rest;
                    Quote::from_row(r, mine)
                })
                .collect();
            Ok::<_, ApiError>(Page {
                items,
                next_cursor: page.next_cursor,
            })
        })
        .await?;
    let page = Page {
        items: page.items.iter().map(|q| shaped(&auth, q)).collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
    };
    Ok(HttpResponse::Ok().json(page))
}

/// Create a draft quote on a deal. Totals are computed by the server.
#[utoipa::path(
    tag = "quotes",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateQuote,
    responses(
        (status = 201, description = "Created", body = Quote, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/quotes")]
pub async fn create_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateQuote>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(&state, &auth, (key, &req, &raw), (RES, "quotes"), move |c, ctx| {
        let row = crm_app::quotes::create(c, ctx, &fields)?;
        views::quote(c, row)
    })
    .await
}

/// Get one quote with its lines.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 200, description = "The quote", body = Quote, headers(("ETag" = String))), ReadErrors)
)]
#[get("/quotes/{id}")]
pub async fn get_quote(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::get_record(&state, &auth, "quote", id.into_inner(), |c, row: quotes::QuoteRow| {
        views::quote(c, row)
    })
    .await
}

/// Change a draft (or rejected) quote (`If-Match` required). `lines` replaces every
/// line; totals are recomputed. A rejected quote returns to draft. A quote pending
/// approval is locked (409 `locked`); an approved or later quote is immutable (409
/// `immutable`): revise it instead.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateQuote,
    responses(
        (status = 200, description = "Updated", body = Quote, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/quotes/{id}")]
pub async fn update_quote(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateQuote>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        let row = crm_app::quotes::update(c, ctx, id, expected, &fields)?;
        views::quote(c, row)
    })
    .await
}

/// Delete a draft quote (soft).
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 204, description = "Deleted"), ReadErrors, Conflict)
)]
#[delete("/quotes/{id}")]
pub async fn delete_quote(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::delete_record::<quotes::QuoteRow>(
        &state,
        &auth,
        "quote",
        id.into_inner(),
        crate::extract::OptionalIfMatch(None),
        crm_app::quotes::deletable,
    )
    .await
}

/// Runs a quote action (retry-safe with an `Idempotency-Key`) and answers 200 with the
/// quote as the caller may read it.
async fn quote_action<F>(
    state: &AppState,
    auth: &Auth,
    (key, req, raw): (IdempotencyKey, &HttpRequest, &[u8]),
    op: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> crm_app::AppResult<QuoteRow> + Send + 'static,
{
    let ctx = auth.ctx();
    idempotency::post(state, auth, key, req, raw, idempotency::keep, move |c| {
        let row = op(c, &ctx)?;
        let q = views::quote(c, row)?;
        Outcome::ok(&crate::custom::shaped(&ctx.principal, RES, &[], &q))
    })
    .await
}

/// Submit a draft (or rejected) quote for approval. The matching approval definition
/// opens its first step (status `pending_approval`); when none matches, the quote is
/// auto-approved (status `approved`) and that is recorded.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Submitted", body = Quote), ReadErrors, Conflict, Unprocessable)
)]
#[post("/quotes/{id}/submit")]
pub async fn submit_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    quote_action(&state, &auth, (key, &req, b""), move |c, ctx| {
        crm_app::quotes::submit(c, ctx, id)
    })
    .await
}

/// Send an approved quote to the customer. It becomes immutable.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Sent", body = Quote), ReadErrors, Conflict, Unprocessable)
)]
#[post("/quotes/{id}/send")]
pub async fn send_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    quote_action(&state, &auth, (key, &req, b""), move |c, ctx| {
        crm_app::quotes::send(c, ctx, id)
    })
    .await
}

/// Record the customer's acceptance of a sent quote. Only one quote per deal can be
/// accepted (409 `already_accepted`).
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Accepted", body = Quote), ReadErrors, Conflict, Unprocessable)
)]
#[post("/quotes/{id}/accept")]
pub async fn accept_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    quote_action(&state, &auth, (key, &req, b""), move |c, ctx| {
        crm_app::quotes::accept(c, ctx, id)
    })
    .await
}

/// Record that the customer declined a sent quote; optionally mark the deal Lost with
/// the reason.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = DeclineQuote,
    responses(
        (status = 200, description = "Declined", body = Quote),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/quotes/{id}/decline")]
pub async fn decline_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<DeclineQuote>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let dto = body.value?;
    quote_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        crm_app::quotes::decline(c, ctx, id, &dto.reason, dto.mark_lost)
    })
    .await
}

/// Create the next version of a quote (any status): a new draft with the same lines
/// and prices, and the next revision number.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 201, description = "The new version", body = Quote, headers(("Location" = String))),
        ReadErrors, Unprocessable
    )
)]
#[post("/quotes/{id}/revise")]
pub async fn revise_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    created_record(&state, &auth, (key, &req, b""), (RES, "quotes"), move |c, ctx| {
        let row = crm_app::quotes::revise(c, ctx, id)?;
        views::quote(c, row)
    })
    .await
}

/// Status changes of a quote, oldest first.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 200, description = "Status history", body = StatusHistory), ReadErrors)
)]
#[get("/quotes/{id}/status-history")]
pub async fn quote_status_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            quotes::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("quote"))?;
            Ok::<_, ApiError>(workflow::transitions(c, "quote", id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(StatusHistory {
        items: rows.into_iter().map(StatusChange::from).collect(),
    }))
}

/// Everything a front end needs to render or print the 《报价单》: company, customer,
/// lines, totals (with the amount in Chinese capitals), terms.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 200, description = "Document data", body = QuoteDocument), ReadErrors)
)]
#[get("/quotes/{id}/document")]
pub async fn quote_document(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let doc = state
        .db
        .run(move |c| {
            let row =
                quotes::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("quote"))?;
            let q = views::quote(c, row)?;
            let deal = opps::find(c, &ScopeFilter::All, q.opportunity_id, Liveness::Live, false)?
                .ok_or_else(|| ApiError::not_found("opportunity"))?;
            let account = accounts::find(c, &ScopeFilter::All, deal.account_id, Liveness::Live, false)?;
            let contact = match deal.primary_contact_id {
                Some(cid) => contacts::find(c, &ScopeFilter::All, cid, Liveness::Live, false)?,
                None => None,
            };
            let rep = users::find(c, q.owner_id)?;
            let company = workflow::setting(c, "company")?.unwrap_or(json!({}));
            let s = |k: &str| company.get(k).and_then(Value::as_str).map(str::to_owned);
            let issue_date =
                (q.status_changed_at + chrono::Duration::hours(crate::state::BUSINESS_UTC_OFFSET_HOURS)).date_naive();
            Ok::<_, ApiError>(QuoteDocument {
                title: "报价单 Quotation".into(),
                number: q.number.clone(),
                revision: q.revision,
                status: q.status,
                issue_date,
                valid_until: q.valid_until,
                currency: q.currency.clone(),
                seller: DocumentParty {
                    name: s("name").unwrap_or_default(),
                    address: s("address"),
                    phone: s("phone"),
                    tax_id: s("tax_id"),
                    contact_name: rep.as_ref().map(|u| u.name.clone()),
                    contact_phone: rep.as_ref().and_then(|u| u.phone.clone()),
                    contact_email: rep.as_ref().map(|u| u.email.clone()),
                },
                customer: DocumentParty {
                    name: account.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
                    address: account.as_ref().and_then(|a| a.address.clone()),
                    phone: account.as_ref().and_then(|a| a.phone.clone()),
                    tax_id: None,
                    contact_name: contact.as_ref().map(|ct| ct.name.clone()),
                    contact_phone: contact.as_ref().and_then(|ct| ct.mobile.clone().or(ct.phone.clone())),
                    contact_email: contact.as_ref().and_then(|ct| ct.email.clone()),
                },
                opportunity_name: deal.name,
                total_in_words: (q.currency == "CNY").then(|| rmb_upper(q.total)),
                list_total: q.list_total,
                subtotal: q.subtotal,
                header_discount_pct: q.header_discount_pct,
                header_discount_amount: q.header_discount_amount,
                discount_amount: q.discount_amount,
                net_amount: q.net_amount,
                tax_amount: q.tax_amount,
                total: q.total,
                terms: q.terms.clone(),
                lines: q.lines,
                rounding_rule: "Each line amount is rounded half-up to 2 decimals; totals are sums of the rounded \
                                lines; the header discount is spread over the lines in proportion, the remainder \
                                to the largest line."
                    .into(),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}
