//! `/api/v1/accounts`: customers.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::accounts::{self, AccountFilter, Liveness};
use crm_db::sql::ListSpec;
use crm_domain::access::Action;
use crm_domain::fields::FieldAccess;
use diesel::prelude::*;
use uuid::Uuid;

use super::{
    changed_record, created_record, run_op, BadRequest, BodyErrors, Conflict, ExportBusy, Forbidden,
    PreconditionFailed, ReadErrors, Unauthorized, Unprocessable, VersionErrors,
};
use crate::auth::Auth;
use crate::custom::Shaper;
use crate::dto::accounts::{
    Account, AccountListQuery, AuditEntry, CreateAccount, CreateQuery, HistoryQuery, UpdateAccount,
};
use crate::dto::{Page, SyncPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;

const RES: &str = "accounts";

/// List accounts in the caller's data scope.
///
/// Keyset-paginated; filters combine with AND. With `updated_since` the list is a
/// delta for mobile sync: changed records in `updated_at` order and `deleted_ids`.
#[utoipa::path(
    tag = "accounts",
    params(AccountListQuery),
    responses(
        (status = 200, description = "A page of accounts", body = SyncPage<Account>),
        BadRequest, Unauthorized, Forbidden
    )
)]
#[get("/accounts")]
pub async fn list_accounts(
    state: web::Data<AppState>,
    auth: Auth,
    q: ListQuery<AccountListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q);
    listing::list(&state, &auth, filter, params).await
}

/// The typed filter and the shared list parameters of a list or export query.
fn list_filter(q: ListQuery<AccountListQuery>) -> (AccountFilter, listing::Params) {
    let ListQuery { query: q, custom, keys } = q;
    let params = listing::Params {
        since: q.updated_since,
        keys,
        sort: q.sort,
        cursor: q.cursor,
        limit: q.limit,
        custom,
    };
    let filter = AccountFilter {
        owner_id: q.owner_id,
        team_id: q.team_id,
        account_type: q.account_type.map(|t| t.as_str().to_owned()),
        industry: q.industry,
        region: q.region,
        tier: q.tier.map(|t| t.as_str().to_owned()),
        source: q.source.map(|s| s.as_str().to_owned()),
        parent_id: q.parent_id,
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
        updated_before: q.updated_before,
        q: q.q,
        custom: Vec::new(),
        search: Default::default(),
    };
    (filter, params)
}

crate::impl_listing!(AccountFilter, Account, RES, "a", accounts, |c, rows| rows
    .into_iter()
    .map(Account::from)
    .collect());

/// Export accounts as CSV: every record the list with the same filters and sort returns.
///
/// Needs `accounts:export`. UTF-8 with a BOM; one column per field the caller may see
/// (masked fields masked), custom fields as `custom.<key>`; `header=zh|en` puts labels
/// in the heading row. `cursor` and `limit` do not apply; more matching records than
/// `CRM_EXPORT_MAX_ROWS` (default 100,000) answer 422 `export_too_large`. Recorded in
/// the audit trail and as the
/// `account.exported` event.
#[utoipa::path(
    tag = "accounts",
    params(AccountListQuery, ExportOptions),
    responses(
        (status = 200, description = "CSV document", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String), ("X-Export-Id" = String), ("X-Export-Rows" = i64))),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ExportBusy
    )
)]
#[get("/accounts/export")]
pub async fn export_accounts(
    state: web::Data<AppState>,
    auth: Auth,
    q: ExportQuery<AccountListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q.list);
    listing::export(&state, &auth, filter, params, q.options, q.raw).await
}

/// Create an account.
///
/// Refused with 409 `duplicate` when an account the caller can see has the same
/// normalised name, phone or e-mail, unless `allow_duplicate=true`.
#[utoipa::path(
    tag = "accounts",
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: a repeat within 24 h returns the first response")),
    request_body = CreateAccount,
    responses(
        (status = 201, description = "Created", body = Account,
            headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/accounts")]
pub async fn create_account(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    q: web::Query<CreateQuery>,
    key: IdempotencyKey,
    body: ValidJson<CreateAccount>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    let allow_duplicate = q.allow_duplicate;
    created_record(&state, &auth, (key, &req, &raw), (RES, "accounts"), move |c, ctx| {
        Ok(Account::from(crm_app::accounts::create(
            c,
            ctx,
            &fields,
            allow_duplicate,
        )?))
    })
    .await
}

/// Get one account.
#[utoipa::path(
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = Account, headers(("ETag" = String))),
        ReadErrors
    )
)]
#[get("/accounts/{id}")]
pub async fn get_account(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::get_record(
        &state,
        &auth,
        "account",
        id.into_inner(),
        |_c, row: accounts::AccountRow| Ok(Account::from(row)),
    )
    .await
}

/// Update an account (partial). Requires `If-Match` with the current version.
///
/// Changing `owner_id` needs `accounts:assign`; the team follows the new owner.
#[utoipa::path(
    tag = "accounts",
    params(
        ("id" = Uuid, Path, description = "Account id"),
        ("If-Match" = String, Header, description = "ETag of the version being changed, e.g. \"3\"")
    ),
    request_body = UpdateAccount,
    responses(
        (status = 200, description = "Updated", body = Account, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/accounts/{id}")]
pub async fn update_account(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateAccount>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        Ok(Account::from(crm_app::accounts::update(c, ctx, id, expected, &fields)?))
    })
    .await
}

/// Delete an account (soft); its contacts are deleted with it and come back on restore.
/// `If-Match` is honoured when sent.
#[utoipa::path(
    tag = "accounts",
    params(
        ("id" = Uuid, Path, description = "Account id"),
        ("If-Match" = Option<String>, Header, description = "Optional ETag guard")
    ),
    responses(
        (status = 204, description = "Deleted"),
        ReadErrors, PreconditionFailed
    )
)]
#[delete("/accounts/{id}")]
pub async fn delete_account(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    let (id, expected) = (id.into_inner(), if_match.expected());
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::accounts::delete(c, ctx, id, expected)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore a deleted account, with the contacts deleted together with it.
#[utoipa::path(
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 200, description = "Restored", body = Account, headers(("ETag" = String))),
        ReadErrors, Unprocessable
    )
)]
#[post("/accounts/{id}/restore")]
pub async fn restore_account(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let ctx = auth.ctx();
    let cache = state.fields.clone();
    idempotency::post(&state, &auth, key, &req, b"", idempotency::keep, move |c| {
        let dto = Account::from(crm_app::accounts::restore(c, &ctx, id)?);
        Outcome::ok(&Shaper::new(&ctx.principal, RES, cache.get(c, RES)?).one(&dto))
    })
    .await
}

/// Audit history of an account, newest first: who changed which field, from what to what.
#[utoipa::path(
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id"), HistoryQuery),
    responses(
        (status = 200, description = "History entries", body = Page<AuditEntry>),
        ReadErrors
    )
)]
#[get("/accounts/{id}/history")]
pub async fn account_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history::<accounts::AccountRow>(&state, &auth, id.into_inner(), q.into_inner()).await
}

/// Customer 360: the account, its contacts, open / won / lost deals with totals, recent
/// activity across its contacts and deals, open tasks, upcoming birthdays, recent
/// quotes, contracts and payments, and what the account owes. One
/// request, every list bounded, each part filtered by the caller's scope for that
/// kind of record (parts the caller may not read come back empty).
#[utoipa::path(
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id")),
    responses((status = 200, description = "The 360 view", body = crate::dto::overview::AccountOverview), ReadErrors)
)]
#[get("/accounts/{id}/overview")]
pub async fn account_overview(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    use crate::dto::activities::{Activity, Task};
    use crate::dto::contacts::Contact;
    use crate::dto::overview::{AccountOverview, CurrencyAmount, DealGroup, KeyDate};
    use crm_db::repo::{activities, contacts, opportunities as opps, tasks};

    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let part = |resource: &str| auth.scope(resource, Action::Read).map(|s| auth.principal.filter(s));
    let (contact_scope, deal_scope, act_scope, task_scope) = (
        part("contacts"),
        part("opportunities"),
        part("activities"),
        part("tasks"),
    );
    let (quote_scope, contract_scope, pay_scope) = (part("quotes"), part("contracts"), part("payments"));
    let today = state.clock.today();
    let principal = auth.principal.clone();
    let cache = state.fields.clone();
    let overview = state
        .db
        .run(move |c| {
            let account =
                accounts::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("account"))?;
            let account_shape = Shaper::new(&principal, RES, cache.get(c, RES)?);
            let contact_shape = Shaper::new(&principal, "contacts", cache.get(c, "contacts")?);
            let deal_shape = Shaper::new(&principal, "opportunities", cache.get(c, "opportunities")?);
            let show_amount = principal.field_access("opportunities", "amount") >= FieldAccess::ReadOnly;
            let contacts: Vec<Contact> = match &contact_scope {
                Some(s) => {
                    let spec = ListSpec::new(contacts::SORT_COLUMNS, "name", None, None, Some(100), "overview")?;
                    let filter = contacts::ContactFilter {
                        account_id: Some(id),
                        ..Default::default()
                    };
                    contacts::list(c, s, &filter, &spec)?
                        .items
                        .into_iter()
                        .map(Contact::from)
                        .collect()
                }
                None => Vec::new(),
            };
            let totals = match &deal_scope {
                Some(s) => crm_db::repo::board::account_totals(c, s, id)?,
                None => Vec::new(),
            };
            let mut groups = Vec::new();
            for status in ["open", "won", "lost"] {
                let group = match &deal_scope {
                    Some(s) => {
                        let mut mine: Vec<_> = totals.iter().filter(|t| t.status == status).collect();
                        mine.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.currency.cmp(&b.currency)));
                        let spec = ListSpec::new(opps::SORT_COLUMNS, "-updated_at", None, None, Some(20), "overview")?;
                        let filter = opps::OpportunityFilter {
                            account_id: Some(id),
                            status: Some(status.into()),
                            ..Default::default()
                        };
                        let rows = opps::list(c, s, &filter, &spec)?.items;
                        let sums: Vec<_> = mine.iter().map(|t| t.amount).collect();
                        let amount = crate::dto::single_currency_sum(&sums);
                        DealGroup {
                            count: mine.iter().map(|t| t.count).sum(),
                            amount: amount.filter(|_| show_amount).map(crate::dto::money),
                            by_currency: mine
                                .iter()
                                .map(|t| CurrencyAmount {
                                    currency: t.currency.clone(),
                                    count: t.count,
                                    amount: show_amount.then(|| crate::dto::money(t.amount)),
                                })
                                .collect(),
                            items: crate::views::with_contacts(c, rows)?
                                .iter()
                                .map(|o| deal_shape.one(o))
                                .collect(),
                        }
                    }
                    None => empty_group(),
                };
                groups.push(group);
            }
            let recent_activities = match &act_scope {
                Some(s) => activities::recent_for_account(c, s, id, 30)?
                    .into_iter()
                    .map(Activity::from)
                    .collect(),
                None => Vec::new(),
            };
            let open_tasks = match &task_scope {
                Some(s) => tasks::open_for_account(c, s, id, 30)?
                    .into_iter()
                    .map(Task::from)
                    .collect(),
                None => Vec::new(),
            };
            let q2c = quote_to_cash(c, id, today, &quote_scope, &contract_scope, &pay_scope)?;
            let mut key_dates: Vec<KeyDate> = contacts
                .iter()
                .filter_map(|ct| {
                    let b = ct.birthday?;
                    let next = next_anniversary(b, today)?;
                    ((next - today).num_days() <= 30).then(|| KeyDate {
                        date: next,
                        kind: "birthday".into(),
                        contact_id: ct.id,
                        name: ct.name.clone(),
                    })
                })
                .collect();
            key_dates.sort_by_key(|k| k.date);
            let mut groups = groups.into_iter();
            let (open_deals, won_deals, lost_deals) = (
                groups.next().unwrap_or_else(empty_group),
                groups.next().unwrap_or_else(empty_group),
                groups.next().unwrap_or_else(empty_group),
            );
            Ok::<_, ApiError>(AccountOverview {
                account: account_shape.one(&Account::from(account)),
                contacts: contacts.iter().map(|ct| contact_shape.one(ct)).collect(),
                open_deals,
                won_deals,
                lost_deals,
                recent_activities,
                open_tasks,
                key_dates,
                recent_quotes: {
                    let quote_shape = Shaper::new(&principal, "quotes", Default::default());
                    q2c.0.iter().map(|q| quote_shape.one(q)).collect()
                },
                contracts: q2c.1,
                recent_payments: q2c.2,
                receivable: q2c.3,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(overview))
}

type QuoteToCash = (
    Vec<crate::dto::quotes::Quote>,
    Vec<crate::dto::contracts::Contract>,
    Vec<crate::dto::contracts::Payment>,
    Option<crate::dto::contracts::Receivable>,
);

/// The quote-to-cash part of the 360 view, each part in the caller's scope for it.
fn quote_to_cash(
    c: &mut PgConnection,
    account: Uuid,
    today: chrono::NaiveDate,
    quote_scope: &Option<crm_domain::access::ScopeFilter>,
    contract_scope: &Option<crm_domain::access::ScopeFilter>,
    pay_scope: &Option<crm_domain::access::ScopeFilter>,
) -> ApiResult<QuoteToCash> {
    use crm_db::repo::{contracts, quotes};
    let mut out: QuoteToCash = (Vec::new(), Vec::new(), Vec::new(), None);
    if let Some(s) = quote_scope {
        let spec = ListSpec::new(quotes::SORT_COLUMNS, "-created_at", None, None, Some(10), "overview")?;
        let filter = quotes::QuoteFilter {
            account_id: Some(account),
            ..Default::default()
        };
        for row in quotes::list(c, s, &filter, &spec)?.items {
            out.0.push(crate::views::quote(c, row)?);
        }
    }
    if let Some(s) = contract_scope {
        let spec = ListSpec::new(contracts::SORT_COLUMNS, "-created_at", None, None, Some(20), "overview")?;
        let filter = contracts::ContractFilter {
            account_id: Some(account),
            ..Default::default()
        };
        out.1 = contracts::list(c, s, &filter, &spec)?
            .items
            .into_iter()
            .map(Into::into)
            .collect();
    }
    if let Some(s) = pay_scope {
        let spec = ListSpec::new(
            contracts::PAYMENT_SORT,
            "-received_on",
            None,
            None,
            Some(10),
            "overview",
        )?;
        let filter = contracts::PaymentFilter {
            account_id: Some(account),
            ..Default::default()
        };
        let rows = contracts::list_payments(c, s, &filter, &spec)?.items;
        let ids: Vec<Uuid> = rows.iter().map(|p| p.id).collect();
        let allocs = contracts::allocations(c, &ids)?;
        out.2 = rows
            .into_iter()
            .map(|p| crate::dto::contracts::Payment::build(p, &allocs))
            .collect();
        out.3 = contracts::receivables(
            c,
            s,
            contracts::ReceivableGrouping::Account,
            Some(account),
            None,
            false,
            today,
            1,
        )?
        .into_iter()
        .next()
        .map(Into::into);
    }
    Ok(out)
}

fn empty_group() -> crate::dto::overview::DealGroup {
    crate::dto::overview::DealGroup {
        count: 0,
        amount: None,
        by_currency: Vec::new(),
        items: Vec::new(),
    }
}

/// The next date (today or later) with the month and day of `date`; 29 February falls
/// on 28 February in other years.
pub fn next_anniversary(date: chrono::NaiveDate, today: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
    use chrono::Datelike;
    let on = |year: i32| {
        chrono::NaiveDate::from_ymd_opt(year, date.month(), date.day())
            .or_else(|| chrono::NaiveDate::from_ymd_opt(year, date.month(), date.day() - 1))
    };
    let this_year = on(today.year())?;
    if this_year >= today {
        Some(this_year)
    } else {
        on(today.year() + 1)
    }
}

/// How the tiering rules moved the account's tier, newest first (the latest 100): from
/// and to, why (the daily run or a related change), the figures and the rule that held.
#[utoipa::path(
    tag = "accounts",
    params(("id" = Uuid, Path, description = "Account id")),
    responses((status = 200, description = "Tier changes", body = Vec<crate::dto::settings::TierChange>), ReadErrors)
)]
#[get("/accounts/{id}/tier-history")]
pub async fn tier_history(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let rows = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::tiering::history(c, ctx, id, 100)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(
        rows.into_iter()
            .map(crate::dto::settings::TierChange::from)
            .collect::<Vec<_>>(),
    ))
}
