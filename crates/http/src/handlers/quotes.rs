//! `/api/v1/quotes`: versioned quotes on deals with server-computed totals, approval,
//! sending, acceptance and the printable document.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{Datelike, NaiveDate};
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::opportunities::{self as opps, OpportunityRow};
use crm_db::repo::products::{self, PriceBookRow};
use crm_db::repo::quotes::{self, NewQuote, QuoteChanges, QuoteFilter, QuoteLineRow, QuoteRow, QuoteTotalsRow};
use crm_db::repo::{audit, contacts, users, workflow};
use crm_db::sql::ListSpec;
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::diff;
use crm_domain::money::rmb_upper;
use crm_domain::status::{QuoteAction as Act, QuoteStatus as Status};
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired, Unauthorized,
    Unprocessable, UnsupportedMediaType,
};
use crate::auth::Auth;
use crate::dto::check_pct;
use crate::dto::quotes::{
    CreateQuote, DeclineQuote, DocumentParty, LineInput, Quote, QuoteDocument, QuoteListQuery, QuoteStatus,
    StatusChange, StatusHistory, UpdateQuote,
};
use crate::dto::{Errors, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;
use crate::views;
use crm_app::approvals::{self as approval, Outcome as ApprovalOutcome, Submission};

const RES: &str = "quotes";
/// Tax rate of free-text lines unless given.
/// Validity of a new quote unless given.
const DEFAULT_VALID_DAYS: i64 = 30;

/// A quote as the caller may read it (cost and margin follow field permissions).
fn shaped(auth: &Auth, q: &Quote) -> Value {
    crate::custom::shaped(&auth.principal, RES, &[], q)
}

fn to_json(q: &Quote) -> Value {
    serde_json::to_value(q).unwrap_or_default()
}

/// Line bodies as the pricing operation takes them.
fn lines_of(lines: &[LineInput]) -> Vec<crm_app::quotes::LineInput> {
    lines
        .iter()
        .map(|l| crm_app::quotes::LineInput {
            product_id: l.product_id,
            description: l.description.clone(),
            unit: l.unit.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            discount_pct: l.discount_pct,
            tax_rate: l.tax_rate,
        })
        .collect()
}

/// The book a new quote uses: the given one, else the account tier's book in the deal's
/// currency, else the currency's default book (none for free-text-only quotes).
fn pick_book(
    c: &mut PgConnection,
    given: Option<Uuid>,
    deal: &OpportunityRow,
    tier: Option<&str>,
) -> ApiResult<Option<PriceBookRow>> {
    if let Some(id) = given {
        return products::find_book(c, id, false)?
            .filter(|b| b.active)
            .map(Some)
            .ok_or_else(|| ApiError::field("price_book_id", "not_found", "no such active price book"));
    }
    if let Some(t) = tier {
        if let Some(b) = products::tier_book(c, &deal.currency, t)? {
            return Ok(Some(b));
        }
    }
    Ok(products::default_book(c, &deal.currency)?)
}

/// A quote cannot be made valid until a day already past (it would be born expired).
fn check_validity(errs: &mut Errors, valid_until: Option<NaiveDate>, today: NaiveDate) {
    if valid_until.is_some_and(|d| d < today) {
        errs.add("valid_until", "out_of_range", "must be today or later");
    }
}

fn quote_number(c: &mut PgConnection, year: i32) -> ApiResult<String> {
    let cfg = workflow::setting(c, "quote_numbering")?.unwrap_or(json!({}));
    Ok(crm_app::numbering::format_number(
        &cfg,
        "BJ",
        6,
        year,
        workflow::next_number(c, "quote", year)?,
    ))
}

/// Changes a quote's status (an operation of the app) and loads it for the answer.
fn set_status(
    c: &mut PgConnection,
    actor: &audit::Actor,
    before: &QuoteRow,
    to: QuoteStatus,
    action: &str,
    reason: Option<&str>,
) -> ApiResult<Quote> {
    let to = Status::parse(to.as_str()).ok_or_else(|| ApiError::internal("unknown quote status"))?;
    let row = crm_app::quotes::set_status(c, actor, before, to, action, reason)?;
    views::quote(c, row)
}

fn visible_deal(c: &mut PgConnection, auth: &Auth, id: Uuid, lock: bool) -> ApiResult<OpportunityRow> {
    let scope = auth.principal.filter(
        auth.scope("opportunities", Action::Read)
            .ok_or_else(|| ApiError::forbidden("missing permission opportunities:read"))?,
    );
    opps::find(c, &scope, id, Liveness::Live, lock)?
        .ok_or_else(|| ApiError::field("opportunity_id", "not_found", "no such opportunity"))
}

fn locked_error(status: &str) -> ApiError {
    if status == QuoteStatus::PendingApproval.as_str() {
        ApiError::conflict(
            "locked",
            "the quote is locked while its approval is pending; withdraw it to edit",
        )
    } else {
        ApiError::conflict(
            "immutable",
            format!("a quote that is {status} cannot change; create a new version with POST /quotes/{{id}}/revise"),
        )
    }
}

/// List quotes in the caller's scope.
#[utoipa::path(
    tag = "quotes",
    params(QuoteListQuery),
    responses((status = 200, description = "A page of quotes", body = Page<Quote>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
            let spec = ListSpec::new(
                quotes::SORT_COLUMNS,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
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
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/quotes")]
pub async fn create_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateQuote>,
) -> ApiResult<HttpResponse> {
    let scope = auth.require(RES, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let header = check_pct(&mut errs, "header_discount_pct", dto.header_discount_pct).unwrap_or_default();
    let today = state.clock.today();
    check_validity(&mut errs, dto.valid_until, today);
    let terms = errs.text(dto.terms);
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        // The deal row lock serialises revision numbers.
        let deal = visible_deal(c, &writer, dto.opportunity_id, true)?;
        if !writer.reaches(scope, deal.owner_id, deal.team_id) {
            return Err(ApiError::forbidden("quotes:create does not reach this deal's owner"));
        }
        let tier = accounts::find(c, &ScopeFilter::All, deal.account_id, Liveness::Live, false)?.and_then(|a| a.tier);
        let book = pick_book(c, dto.price_book_id, &deal, tier.as_deref())?;
        let currency = book
            .as_ref()
            .map(|b| b.currency.clone())
            .unwrap_or_else(|| deal.currency.clone());
        let id = Uuid::now_v7();
        let (lines, totals) =
            crm_app::quotes::price_lines(c, id, book.as_ref(), &currency, &lines_of(&dto.lines), header)?;
        let revision = quotes::next_revision(c, deal.id)?;
        let number = quote_number(c, today.year())?;
        quotes::insert(
            c,
            &NewQuote {
                id,
                opportunity_id: deal.id,
                number,
                revision,
                status: QuoteStatus::Draft.as_str().into(),
                currency,
                price_book_id: book.map(|b| b.id),
                valid_until: Some(
                    dto.valid_until
                        .unwrap_or(today + chrono::Duration::days(DEFAULT_VALID_DAYS)),
                ),
                header_discount_pct: header,
                terms,
                owner_id: deal.owner_id,
                team_id: deal.team_id,
                created_by: Some(writer.user_id),
            },
        )?;
        let row = quotes::write_lines(c, id, &QuoteChanges::default(), &lines, &totals, false)?;
        workflow::transition(c, "quote", id, None, "draft", Some(writer.user_id), None)?;
        let q = views::quote(c, row)?;
        let data = to_json(&q);
        audit::record(c, &writer.actor(), RES, id, "created", diff::created(&data), data)?;
        Outcome::created(&shaped(&writer, &q), format!("/api/v1/quotes/{id}"))
    })
    .await
}

/// Get one quote with its lines.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 200, description = "The quote", body = Quote, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/quotes/{id}")]
pub async fn get_quote(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let q = state
        .db
        .run(move |c| {
            let row =
                quotes::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("quote"))?;
            views::quote(c, row)
        })
        .await?;
    let v = q.version;
    Ok(super::with_etag(&shaped(&auth, &q), v))
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
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/quotes/{id}")]
pub async fn update_quote(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateQuote>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let header = dto
        .header_discount_pct
        .and_then(|v| check_pct(&mut errs, "header_discount_pct", Some(v)));
    check_validity(&mut errs, dto.valid_until.flatten(), state.clock.today());
    let terms = dto.terms.map(|t| errs.text(t));
    errs.into_result()?;
    let writer = auth.clone();
    let q = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before =
                    quotes::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("quote"))?;
                if_match.0.check(before.version)?;
                let status = QuoteStatus::parse(&before.status).unwrap_or(QuoteStatus::Draft);
                if !Status::parse(&before.status).is_some_and(Status::editable) {
                    return Err(locked_error(&before.status));
                }
                let old = views::quote(c, before.clone())?;
                let inputs: Vec<LineInput> = match dto.lines {
                    Some(l) => l,
                    // Re-price the current lines as they were entered.
                    None => old
                        .lines
                        .iter()
                        .map(|l| LineInput {
                            product_id: l.product_id,
                            description: Some(l.description.clone()),
                            unit: l.unit.clone(),
                            quantity: l.quantity,
                            unit_price: Some(l.unit_price),
                            discount_pct: Some(l.discount_pct),
                            tax_rate: Some(l.tax_rate),
                        })
                        .collect(),
                };
                let book = match before.price_book_id {
                    Some(b) => products::find_book(c, b, false)?,
                    None => None,
                };
                let header_pct = header.unwrap_or(before.header_discount_pct);
                let (lines, totals) = crm_app::quotes::price_lines(
                    c,
                    id,
                    book.as_ref(),
                    &before.currency,
                    &lines_of(&inputs),
                    header_pct,
                )?;
                let ch = QuoteChanges {
                    valid_until: dto.valid_until,
                    header_discount_pct: header,
                    terms,
                    price_book_id: None,
                };
                let row = quotes::write_lines(c, id, &ch, &lines, &totals, true)?;
                let mut after = views::quote(c, row.clone())?;
                if status == QuoteStatus::Rejected {
                    after = set_status(
                        c,
                        &writer.actor(),
                        &row,
                        QuoteStatus::Draft,
                        "reopened",
                        Some("edited after rejection"),
                    )?;
                }
                let (b, a) = (to_json(&old), to_json(&after));
                let mut changes = diff::changes(&b, &a);
                changes.retain(|k, _| !matches!(k.as_str(), "updated_at" | "version"));
                if !changes.is_empty() {
                    audit::record(c, &writer.actor(), RES, id, "updated", changes, a)?;
                }
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = q.version;
    Ok(super::with_etag(&shaped(&auth, &q), v))
}

/// Delete a draft quote (soft).
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/quotes/{id}")]
pub async fn delete_quote(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::delete_record::<quotes::QuoteRow>(
        &state,
        &auth,
        "quote",
        id.into_inner(),
        crate::extract::OptionalIfMatch(None),
        |_, q| {
            if q.status == "draft" || q.status == "rejected" {
                Ok(())
            } else {
                Err(crm_app::AppError::conflict(
                    "not_draft",
                    "only draft or rejected quotes can be deleted",
                ))
            }
        },
    )
    .await
}

/// Runs a quote action on the quote locked in the caller's update scope.
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
    F: FnOnce(&mut PgConnection, &Auth, QuoteRow) -> ApiResult<Quote> + Send + 'static,
{
    let find: super::LockedFind<QuoteRow> = |c, s, id| quotes::find(c, s, id, Liveness::Live, true);
    super::locked_action(state, auth, key, req, raw, (RES, "quote"), find, id, f).await
}

/// The quote's status machine: where `action` leads from the row's status.
fn transition(row: &QuoteRow, action: Act) -> ApiResult<Status> {
    Status::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("quote {} has status {}", row.id, row.status)))?
        .apply(action)
        .map_err(super::transition_error)
}

/// Submit a draft (or rejected) quote for approval. The matching approval definition
/// opens its first step (status `pending_approval`); when none matches, the quote is
/// auto-approved (status `approved`) and that is recorded.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Submitted", body = Quote), BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/quotes/{id}/submit")]
pub async fn submit_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Submit)?;
        let q = views::quote(c, row.clone())?;
        if q.lines.is_empty() {
            return Err(ApiError::unprocessable("no_lines", "a quote needs at least one line"));
        }
        set_status(c, &w.actor(), &row, QuoteStatus::PendingApproval, "submitted", None)?;
        let record = crm_app::record::view(c, RES, row.id)?.unwrap_or_default();
        let inst = approval::submit(
            c,
            &w.actor(),
            now,
            Submission {
                object_type: "quote",
                object_id: row.id,
                requester: w.user_id,
                owner_id: row.owner_id,
                owner_team: row.team_id,
                record,
            },
        )?;
        let outcome = approval::outcome(&inst);
        if outcome == ApprovalOutcome::Approved {
            crm_app::quotes::on_approval(c, &w.actor(), row.id, outcome)?;
        }
        let row = quotes::find(c, &ScopeFilter::All, row.id, Liveness::Live, false)?
            .ok_or_else(|| ApiError::internal("quote vanished"))?;
        views::quote(c, row)
    })
    .await
}

/// Send an approved quote to the customer. It becomes immutable.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Sent", body = Quote), BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/quotes/{id}/send")]
pub async fn send_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let today = state.clock.today();
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Send)?;
        if row.valid_until.is_some_and(|d| d < today) {
            return Err(ApiError::unprocessable(
                "quote_expired",
                "the quote's validity has ended; revise it with a new date",
            ));
        }
        set_status(c, &w.actor(), &row, QuoteStatus::Sent, "sent", None)
    })
    .await
}

/// Record the customer's acceptance of a sent quote. Only one quote per deal can be
/// accepted (409 `already_accepted`).
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Accepted", body = Quote), BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/quotes/{id}/accept")]
pub async fn accept_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let today = state.clock.today();
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Accept)?;
        if row.valid_until.is_some_and(|d| d < today) {
            return Err(ApiError::unprocessable(
                "quote_expired",
                "the quote's validity has ended; revise it with a new date",
            ));
        }
        // The deal lock serialises acceptances; the unique index is the backstop.
        opps::find(c, &ScopeFilter::All, row.opportunity_id, Liveness::Live, true)?;
        let others = quotes::statuses_of(c, row.opportunity_id)?;
        if others.iter().any(|s| s == "accepted") {
            return Err(ApiError::conflict(
                "already_accepted",
                "another quote of this deal is already accepted",
            ));
        }
        set_status(c, &w.actor(), &row, QuoteStatus::Accepted, "accepted", None)
    })
    .await
}

/// Record that the customer declined a sent quote; optionally mark the deal Lost with
/// the reason.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = DeclineQuote,
    responses((status = 200, description = "Declined", body = Quote), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
            transition(&row, Act::Decline)?;
            let q = set_status(c, &w.actor(), &row, QuoteStatus::Declined, "declined", Some(&reason))?;
            if dto.mark_lost {
                w.require("opportunities", Action::Update)?;
                crm_app::opportunities::close_deal(c, &w.ctx(&clock), row.opportunity_id, false, Some(reason.clone()))?;
            }
            Ok(q)
        },
    )
    .await
}

/// Create the next version of a quote (any status): a new draft with the same lines
/// and prices, and the next revision number.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 201, description = "The new version", body = Quote, headers(("Location" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/quotes/{id}/revise")]
pub async fn revise_quote(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let read = auth.filter(RES, Action::Read)?;
    let create = auth.require(RES, Action::Create)?;
    let id = id.into_inner();
    let writer = auth.clone();
    let today = state.clock.today();
    idempotency::post(&state, &auth, key, &req, b"", idempotency::keep, move |c| {
        let src = quotes::find(c, &read, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("quote"))?;
        let deal = opps::find(c, &ScopeFilter::All, src.opportunity_id, Liveness::Live, true)?
            .ok_or_else(|| ApiError::unprocessable("deal_deleted", "the quote's deal is deleted"))?;
        if !writer.reaches(create, deal.owner_id, deal.team_id) {
            return Err(ApiError::forbidden("quotes:create does not reach this deal's owner"));
        }
        let new_id = Uuid::now_v7();
        let lines: Vec<QuoteLineRow> = quotes::lines(c, &[id])?
            .into_iter()
            .map(|l| QuoteLineRow {
                id: Uuid::now_v7(),
                quote_id: new_id,
                ..l
            })
            .collect();
        let valid = src
            .valid_until
            .filter(|d| *d >= today)
            .unwrap_or(today + chrono::Duration::days(DEFAULT_VALID_DAYS));
        let number = quote_number(c, today.year())?;
        let revision = quotes::next_revision(c, deal.id)?;
        quotes::insert(
            c,
            &NewQuote {
                id: new_id,
                opportunity_id: deal.id,
                number,
                revision,
                status: "draft".into(),
                currency: src.currency.clone(),
                price_book_id: src.price_book_id,
                valid_until: Some(valid),
                header_discount_pct: src.header_discount_pct,
                terms: src.terms.clone(),
                owner_id: deal.owner_id,
                team_id: deal.team_id,
                created_by: Some(writer.user_id),
            },
        )?;
        let totals = QuoteTotalsRow {
            list_total: src.list_total,
            subtotal: src.subtotal,
            discount_amount: src.discount_amount,
            net_amount: src.net_amount,
            tax_amount: src.tax_amount,
            total: src.total,
            effective_discount_pct: src.effective_discount_pct,
            cost_total: src.cost_total,
            gross_margin: src.gross_margin,
        };
        let row = quotes::write_lines(c, new_id, &QuoteChanges::default(), &lines, &totals, false)?;
        workflow::transition(
            c,
            "quote",
            new_id,
            None,
            "draft",
            Some(writer.user_id),
            Some(&format!("revision of {}", src.number)),
        )?;
        let q = views::quote(c, row)?;
        let mut data = to_json(&q);
        data["revised_from"] = json!(id);
        audit::record(c, &writer.actor(), RES, new_id, "created", diff::created(&data), data)?;
        Outcome::created(&shaped(&writer, &q), format!("/api/v1/quotes/{new_id}"))
    })
    .await
}

/// Status changes of a quote, oldest first.
#[utoipa::path(
    tag = "quotes",
    params(("id" = Uuid, Path, description = "Quote id")),
    responses((status = 200, description = "Status history", body = StatusHistory), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Document data", body = QuoteDocument), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
