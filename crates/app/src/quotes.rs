//! Quote lifecycle operations shared by the API, the approval engine and scheduled work.

use chrono::Datelike;
use chrono::NaiveDate;
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::opportunities::{self as opps, OpportunityRow};
use crm_db::repo::products::{self, PriceBookRow};
use crm_db::repo::quotes::{self, NewQuote, QuoteChanges, QuoteLineRow, QuoteRow, QuoteTotalsRow};
use crm_db::repo::{audit, workflow};
use crm_domain::access::{Action, ScopeFilter};
use crm_domain::money::{compute_quote, LineInput as MoneyLine};
use crm_domain::status::{QuoteAction, QuoteStatus};
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::approvals::{self, Outcome, Submission};
use crate::checks::{check_amount, check_pct, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, decimal_str, double_option};

const RES: &str = "quotes";

/// Tax rate of a free-text line without one (VAT on goods).
const DEFAULT_TAX_RATE: i64 = 13;

/// One quote line as submitted: a product (its price, description, unit and tax rate
/// unless given) or free text (description and unit price needed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    pub product_id: Option<Uuid>,
    pub description: Option<String>,
    pub unit: Option<String>,
    #[serde(deserialize_with = "decimal_str::required")]
    pub quantity: Decimal,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub unit_price: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub discount_pct: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
}

/// A new quote, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteInput {
    pub opportunity_id: Uuid,
    /// Defaults to the account tier's book in the deal's currency, else the currency's
    /// default book.
    pub price_book_id: Option<Uuid>,
    /// Defaults to 30 days from today.
    pub valid_until: Option<NaiveDate>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub header_discount_pct: Option<Decimal>,
    pub terms: Option<String>,
    #[serde(default)]
    pub lines: Vec<LineInput>,
}

/// A change of a draft or rejected quote; `lines` replaces every line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotePatch {
    #[serde(default, deserialize_with = "double_option")]
    pub valid_until: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub header_discount_pct: Option<Decimal>,
    #[serde(default, deserialize_with = "double_option")]
    pub terms: Option<Option<String>>,
    pub lines: Option<Vec<LineInput>>,
}

/// One past the largest amount a numeric(18, 2) column stores.
pub fn max_amount() -> Decimal {
    Decimal::from(10_000_000_000_000_000i64)
}

/// Line inputs checked and priced: the rows to store and the quote totals. Product
/// lines take the price book's price (a CNY product's list price without one), the
/// product's description, unit, tax rate and standard cost unless given; free-text
/// lines need a description and a unit price. Amounts that cannot be stored are
/// refused (field errors, nothing priced).
pub fn price_lines(
    c: &mut PgConnection,
    quote_id: Uuid,
    book: Option<&PriceBookRow>,
    currency: &str,
    inputs: &[LineInput],
    header_discount_pct: Decimal,
) -> AppResult<(Vec<QuoteLineRow>, QuoteTotalsRow)> {
    let ids: Vec<Uuid> = inputs.iter().filter_map(|l| l.product_id).collect();
    let found = products::find_many(c, &ids)?;
    let prices = match book {
        Some(b) if !ids.is_empty() => products::prices(c, b.id, &ids)?,
        _ => Vec::new(),
    };
    let mut errs = Errors::default();
    let mut money_lines = Vec::with_capacity(inputs.len());
    let mut rows = Vec::with_capacity(inputs.len());
    for (i, l) in inputs.iter().enumerate() {
        let f = |name: &str| format!("lines[{i}].{name}");
        if l.quantity <= Decimal::ZERO {
            errs.add(&f("quantity"), "out_of_range", "must be positive");
        } else if l.quantity.normalize().scale() > 4 || l.quantity >= Decimal::from(1_000_000_000_000i64) {
            errs.add(
                &f("quantity"),
                "too_precise",
                "at most four decimal places and below 10^12",
            );
        }
        let unit_price = check_amount(&mut errs, &f("unit_price"), l.unit_price);
        let discount = check_pct(&mut errs, &f("discount_pct"), l.discount_pct).unwrap_or_default();
        let tax = check_pct(&mut errs, &f("tax_rate"), l.tax_rate);
        let (description, unit, list_price, cost, tax_rate) = match l.product_id {
            Some(pid) => {
                let Some(p) = found.iter().find(|p| p.id == pid) else {
                    errs.add(&f("product_id"), "not_found", "no such product");
                    continue;
                };
                if !p.active {
                    errs.add(&f("product_id"), "inactive", "the product is no longer sold");
                }
                let list = match prices.iter().find(|(id, _)| *id == pid) {
                    Some((_, price)) => *price,
                    // Products carry a CNY list price; other currencies need a book entry.
                    None if currency == "CNY" => p.list_price,
                    None => {
                        errs.add(
                            &f("product_id"),
                            "not_in_price_book",
                            "the price book has no price for it",
                        );
                        Decimal::ZERO
                    }
                };
                (
                    errs.line(l.description.clone()).unwrap_or_else(|| p.name.clone()),
                    errs.line(l.unit.clone()).or_else(|| Some(p.unit.clone())),
                    list,
                    p.standard_cost,
                    tax.unwrap_or(p.tax_rate),
                )
            }
            None => {
                let Some(d) = errs.line(l.description.clone()) else {
                    errs.add(
                        &f("description"),
                        "required",
                        "a line without a product needs a description",
                    );
                    continue;
                };
                let Some(price) = unit_price else {
                    errs.add(
                        &f("unit_price"),
                        "required",
                        "a line without a product needs a unit price",
                    );
                    continue;
                };
                (
                    d,
                    errs.line(l.unit.clone()),
                    price,
                    Decimal::ZERO,
                    tax.unwrap_or(Decimal::from(DEFAULT_TAX_RATE)),
                )
            }
        };
        let price = unit_price.unwrap_or(list_price);
        // Every amount is stored as numeric(18, 2): a line whose quantity times price
        // (or cost) cannot be stored is refused here, before any arithmetic overflows.
        let largest = price.max(list_price).max(cost);
        if l.quantity.checked_mul(largest).is_none_or(|v| v >= max_amount()) {
            errs.add(
                &format!("lines[{i}].quantity"),
                "out_of_range",
                "quantity times price exceeds the largest amount (9999999999999999.99)",
            );
        }
        money_lines.push(MoneyLine {
            quantity: l.quantity,
            unit_list_price: list_price,
            unit_price: price,
            discount_pct: discount,
            tax_rate,
            unit_cost: cost,
        });
        rows.push(QuoteLineRow {
            id: Uuid::now_v7(),
            quote_id,
            position: i as i32 + 1,
            product_id: l.product_id,
            description,
            unit,
            quantity: l.quantity,
            unit_list_price: list_price,
            unit_price: price,
            discount_pct: discount,
            tax_rate,
            unit_cost: cost,
            list_amount: Decimal::ZERO,
            net_amount: Decimal::ZERO,
            tax_amount: Decimal::ZERO,
            total: Decimal::ZERO,
        });
    }
    errs.into_result()?;
    let (amounts, t) = compute_quote(&money_lines, header_discount_pct);
    if [t.list_total, t.total, t.cost_total].iter().any(|v| *v >= max_amount()) {
        return Err(AppError::field(
            "lines",
            "out_of_range",
            "the quote's total exceeds the largest amount (9999999999999999.99)",
        ));
    }
    // The effective discount is stored as numeric(7, 2): prices more than a thousand
    // times the list price (a "discount" below -99999.99%) are refused, not stored.
    if t.effective_discount_pct <= Decimal::from(-100_000) {
        return Err(AppError::field(
            "lines",
            "out_of_range",
            "the quoted prices are more than 1,000 times the list prices",
        ));
    }
    for (row, a) in rows.iter_mut().zip(amounts) {
        row.list_amount = a.list_amount;
        row.net_amount = a.net_amount;
        row.tax_amount = a.tax_amount;
        row.total = a.total;
    }
    let totals = QuoteTotalsRow {
        list_total: t.list_total,
        subtotal: t.subtotal,
        discount_amount: t.discount_amount,
        net_amount: t.net_amount,
        tax_amount: t.tax_amount,
        total: t.total,
        effective_discount_pct: t.effective_discount_pct,
        cost_total: t.cost_total,
        gross_margin: t.gross_margin,
    };
    Ok((rows, totals))
}

/// The quote in storage form with its lines, as audit entries and events carry it.
pub fn view(c: &mut PgConnection, row: &QuoteRow) -> AppResult<Value> {
    let lines = quotes::lines(c, &[row.id])?;
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["lines"] = serde_json::to_value(lines).unwrap_or_default();
    Ok(v)
}

/// Changes a quote's status: the transition log, the audit entry and the
/// `quote.<action>` event.
pub fn set_status(
    c: &mut PgConnection,
    actor: &audit::Actor,
    before: &QuoteRow,
    to: QuoteStatus,
    action: &str,
    reason: Option<&str>,
) -> AppResult<QuoteRow> {
    let row = quotes::set_status(c, before.id, to.as_str())?;
    let user = Some(actor.user_id).filter(|u| !u.is_nil());
    workflow::transition(c, "quote", before.id, Some(&before.status), to.as_str(), user, reason)?;
    let mut changes = serde_json::Map::new();
    changes.insert("status".into(), json!({"before": before.status, "after": to.as_str()}));
    let detail = json!({"from": before.status, "to": to.as_str(), "reason": reason});
    audit::record(c, actor, RES, row.id, action, changes, detail)?;
    Ok(row)
}

/// Applies an approval outcome to the quote it was about (nothing when the quote no
/// longer waits for it).
pub fn on_approval(c: &mut PgConnection, actor: &audit::Actor, quote_id: Uuid, outcome: Outcome) -> AppResult<()> {
    let Some(row) = quotes::find(c, &ScopeFilter::All, quote_id, Liveness::Live, true)? else {
        return Ok(());
    };
    if row.status != QuoteStatus::PendingApproval.as_str() {
        return Ok(());
    }
    match outcome {
        Outcome::Pending => {}
        Outcome::Approved => {
            set_status(c, actor, &row, QuoteStatus::Approved, "approved", None)?;
        }
        Outcome::Rejected => {
            set_status(c, actor, &row, QuoteStatus::Rejected, "rejected", None)?;
        }
        Outcome::Withdrawn => {
            set_status(
                c,
                actor,
                &row,
                QuoteStatus::Draft,
                "withdrawn",
                Some("approval withdrawn"),
            )?;
        }
    }
    Ok(())
}

/// Marks sent quotes past their validity expired (as the system). Returns how many.
pub fn expire_due(c: &mut PgConnection, today: NaiveDate) -> AppResult<usize> {
    let actor = audit::Actor::system();
    let rows = quotes::expired_candidates(c, today)?;
    for row in &rows {
        set_status(c, &actor, row, QuoteStatus::Expired, "expired", Some("validity ended"))?;
    }
    Ok(rows.len())
}

/// Validity of a new quote unless given.
const DEFAULT_VALID_DAYS: i64 = 30;

/// The book a new quote uses: the given one, else the account tier's book in the deal's
/// currency, else the currency's default book (none for free-text-only quotes).
fn pick_book(
    c: &mut PgConnection,
    given: Option<Uuid>,
    deal: &OpportunityRow,
    tier: Option<&str>,
) -> AppResult<Option<PriceBookRow>> {
    if let Some(id) = given {
        return products::find_book(c, id, false)?
            .filter(|b| b.active)
            .map(Some)
            .ok_or_else(|| AppError::field("price_book_id", "not_found", "no such active price book"));
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

fn quote_number(c: &mut PgConnection, year: i32) -> AppResult<String> {
    let cfg = workflow::setting(c, "quote_numbering")?.unwrap_or(json!({}));
    let n = workflow::next_number(c, "quote", year)?;
    Ok(crate::numbering::format_number(&cfg, "BJ", 6, year, n))
}

/// The deal a quote is made on: visible to the actor (locked: the lock serialises
/// revision numbers and acceptances) and within the actor's `quotes:create` reach.
fn quotable_deal(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<OpportunityRow> {
    let create = ctx.require(RES, Action::Create)?;
    let read = ctx.filter("opportunities", Action::Read)?;
    let deal = opps::find(c, &read, id, Liveness::Live, true)?
        .ok_or_else(|| AppError::field("opportunity_id", "not_found", "no such opportunity"))?;
    if !ctx.principal.reaches(create, deal.owner_id, deal.team_id) {
        return Err(AppError::forbidden("quotes:create does not reach this deal's owner"));
    }
    Ok(deal)
}

/// Records a new quote version: the draft status in the transition log, the audit entry
/// and `quote.created`.
fn created(c: &mut PgConnection, ctx: &Ctx, id: Uuid, reason: Option<&str>) -> AppResult<()> {
    let user = Some(ctx.user_id()).filter(|u| !u.is_nil());
    workflow::transition(c, "quote", id, None, "draft", user, reason)?;
    write::created(c, ctx, RES, id)
}

/// Creates a draft quote on a deal, priced by the server.
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<QuoteRow> {
    ctx.require(RES, Action::Create)?;
    let input: QuoteInput = write::input(ctx, RES, fields)?;
    let today = ctx.today();
    let mut errs = Errors::default();
    let header = check_pct(&mut errs, "header_discount_pct", input.header_discount_pct).unwrap_or_default();
    check_validity(&mut errs, input.valid_until, today);
    let terms = errs.text_max("terms", input.terms, 10_000);
    if input.lines.len() > 200 {
        errs.add("lines", "too_many", "at most 200 lines");
    }
    errs.into_result()?;
    let deal = quotable_deal(c, ctx, input.opportunity_id)?;
    let tier = accounts::find(c, &ScopeFilter::All, deal.account_id, Liveness::Live, false)?.and_then(|a| a.tier);
    let book = pick_book(c, input.price_book_id, &deal, tier.as_deref())?;
    let currency = book
        .as_ref()
        .map_or_else(|| deal.currency.clone(), |b| b.currency.clone());
    let id = Uuid::now_v7();
    let (lines, totals) = price_lines(c, id, book.as_ref(), &currency, &input.lines, header)?;
    let new = NewQuote {
        id,
        opportunity_id: deal.id,
        number: quote_number(c, today.year())?,
        revision: quotes::next_revision(c, deal.id)?,
        status: QuoteStatus::Draft.as_str().into(),
        currency,
        price_book_id: book.map(|b| b.id),
        valid_until: Some(
            input
                .valid_until
                .unwrap_or(today + chrono::Duration::days(DEFAULT_VALID_DAYS)),
        ),
        header_discount_pct: header,
        terms,
        owner_id: deal.owner_id,
        team_id: deal.team_id,
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    quotes::insert(c, &new)?;
    let row = quotes::write_lines(c, id, &QuoteChanges::default(), &lines, &totals, false)?;
    created(c, ctx, id, None)?;
    Ok(row)
}

/// Why a quote cannot change: `locked` while its approval is pending, `immutable` once
/// approved or later (revise it instead).
fn not_editable(status: &str) -> AppError {
    if status == QuoteStatus::PendingApproval.as_str() {
        AppError::conflict(
            "locked",
            "the quote is locked while its approval is pending; withdraw it to edit",
        )
    } else {
        AppError::conflict(
            "immutable",
            format!("a quote that is {status} cannot change; create a new version with POST /quotes/{{id}}/revise"),
        )
    }
}

/// Changes a draft or rejected quote and re-prices it (`lines` replaces every line; the
/// current lines are re-priced as entered otherwise). A rejected quote returns to draft.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<QuoteRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: QuotePatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let header = input
        .header_discount_pct
        .and_then(|v| check_pct(&mut errs, "header_discount_pct", Some(v)));
    check_validity(&mut errs, input.valid_until.flatten(), ctx.today());
    let terms = input.terms.map(|t| errs.text_max("terms", t, 10_000));
    if input.lines.as_ref().is_some_and(|l| l.len() > 200) {
        errs.add("lines", "too_many", "at most 200 lines");
    }
    errs.into_result()?;
    write::update(c, ctx, &scope, id, expected, "quote", |c, before: &QuoteRow| {
        let status = QuoteStatus::parse(&before.status).unwrap_or(QuoteStatus::Draft);
        if !status.editable() {
            return Err(not_editable(&before.status));
        }
        let inputs: Vec<LineInput> = match input.lines {
            Some(l) => l,
            // Re-price the current lines as they were entered.
            None => quotes::lines(c, &[id])?
                .into_iter()
                .map(|l| LineInput {
                    product_id: l.product_id,
                    description: Some(l.description),
                    unit: l.unit,
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
        let (lines, totals) = price_lines(c, id, book.as_ref(), &before.currency, &inputs, header_pct)?;
        let ch = QuoteChanges {
            valid_until: input.valid_until,
            header_discount_pct: header,
            terms,
            price_book_id: None,
        };
        let mut row = quotes::write_lines(c, id, &ch, &lines, &totals, true)?;
        if status == QuoteStatus::Rejected {
            let reason = Some("edited after rejection");
            row = set_status(c, &ctx.actor(), &row, QuoteStatus::Draft, "reopened", reason)?;
        }
        Ok(Some(row))
    })
}

/// The quote in the actor's update scope, locked, where `action` leads from its status.
fn acting_on(c: &mut PgConnection, ctx: &Ctx, id: Uuid, action: QuoteAction) -> AppResult<(QuoteRow, QuoteStatus)> {
    let scope = ctx.filter(RES, Action::Update)?;
    let row = quotes::find(c, &scope, id, Liveness::Live, true)?.ok_or(AppError::NotFound("quote"))?;
    let to = QuoteStatus::parse(&row.status)
        .ok_or_else(|| AppError::internal(format!("quote {} has status {}", row.id, row.status)))?
        .apply(action)?;
    Ok((row, to))
}

fn still_valid(ctx: &Ctx, row: &QuoteRow) -> AppResult<()> {
    if row.valid_until.is_some_and(|d| d < ctx.today()) {
        return Err(AppError::rule(
            "quote_expired",
            "the quote's validity has ended; revise it with a new date",
        ));
    }
    Ok(())
}

/// Submits a draft or rejected quote for approval: the matching approval definition
/// opens its first step (`pending_approval`); with none matching the quote is
/// auto-approved.
pub fn submit(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<QuoteRow> {
    submit_routed(c, ctx, id, None)
}

/// [`submit`], routed as a rule says.
pub fn submit_routed(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    route: Option<approvals::Route>,
) -> AppResult<QuoteRow> {
    let (row, to) = acting_on(c, ctx, id, QuoteAction::Submit)?;
    if quotes::lines(c, &[id])?.is_empty() {
        return Err(AppError::rule("no_lines", "a quote needs at least one line"));
    }
    set_status(c, &ctx.actor(), &row, to, "submitted", None)?;
    let record = crate::record::view(c, RES, id)?.unwrap_or_default();
    let submission = Submission {
        object_type: "quote",
        object_id: id,
        requester: ctx.user_id(),
        owner_id: row.owner_id,
        owner_team: row.team_id,
        record,
        route,
    };
    let inst = approvals::submit(c, &ctx.actor(), ctx.now(), submission)?;
    let outcome = approvals::outcome(&inst);
    if outcome == Outcome::Approved {
        on_approval(c, &ctx.actor(), id, outcome)?;
    }
    quotes::find(c, &ScopeFilter::All, id, Liveness::Live, false)?.ok_or_else(|| AppError::internal("quote vanished"))
}

/// Sends an approved quote to the customer (it becomes immutable).
pub fn send(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<QuoteRow> {
    let (row, to) = acting_on(c, ctx, id, QuoteAction::Send)?;
    still_valid(ctx, &row)?;
    set_status(c, &ctx.actor(), &row, to, "sent", None)
}

/// Records the customer's acceptance of a sent quote; one accepted quote per deal
/// (`already_accepted`).
pub fn accept(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<QuoteRow> {
    let (row, to) = acting_on(c, ctx, id, QuoteAction::Accept)?;
    still_valid(ctx, &row)?;
    // The deal lock serialises acceptances; the unique index is the backstop.
    opps::find(c, &ScopeFilter::All, row.opportunity_id, Liveness::Live, true)?;
    if quotes::statuses_of(c, row.opportunity_id)?
        .iter()
        .any(|s| s == "accepted")
    {
        return Err(AppError::conflict(
            "already_accepted",
            "another quote of this deal is already accepted",
        ));
    }
    set_status(c, &ctx.actor(), &row, to, "accepted", None)
}

/// Records that the customer declined a sent quote; `mark_lost` also loses the deal
/// with the reason (needs `opportunities:update`).
pub fn decline(c: &mut PgConnection, ctx: &Ctx, id: Uuid, reason: &str, mark_lost: bool) -> AppResult<QuoteRow> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::field("reason", "required", "must not be blank"));
    }
    let (row, to) = acting_on(c, ctx, id, QuoteAction::Decline)?;
    let row = set_status(c, &ctx.actor(), &row, to, "declined", Some(reason))?;
    if mark_lost {
        ctx.require("opportunities", Action::Update)?;
        crate::opportunities::close_deal(c, ctx, row.opportunity_id, false, Some(reason.to_owned()))?;
    }
    Ok(row)
}

/// Creates the next version of a quote (any status): a new draft with the same lines
/// and prices and the next revision number.
pub fn revise(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<QuoteRow> {
    let read = ctx.filter(RES, Action::Read)?;
    let create = ctx.require(RES, Action::Create)?;
    let src = quotes::find(c, &read, id, Liveness::Live, false)?.ok_or(AppError::NotFound("quote"))?;
    let deal = opps::find(c, &ScopeFilter::All, src.opportunity_id, Liveness::Live, true)?
        .ok_or_else(|| AppError::rule("deal_deleted", "the quote's deal is deleted"))?;
    if !ctx.principal.reaches(create, deal.owner_id, deal.team_id) {
        return Err(AppError::forbidden("quotes:create does not reach this deal's owner"));
    }
    let today = ctx.today();
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
    let new = NewQuote {
        id: new_id,
        opportunity_id: deal.id,
        number: quote_number(c, today.year())?,
        revision: quotes::next_revision(c, deal.id)?,
        status: "draft".into(),
        currency: src.currency.clone(),
        price_book_id: src.price_book_id,
        valid_until: Some(valid),
        header_discount_pct: src.header_discount_pct,
        terms: src.terms.clone(),
        owner_id: deal.owner_id,
        team_id: deal.team_id,
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    quotes::insert(c, &new)?;
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
    created(c, ctx, new_id, Some(&format!("revision of {}", src.number)))?;
    Ok(row)
}

/// A quote line as a contract keeps it (the document's copy of the accepted offer):
/// prices and amounts with two decimals, no costs.
pub fn line_snapshot(l: &QuoteLineRow) -> Value {
    let m = crate::checks::money;
    json!({
        "id": l.id,
        "position": l.position,
        "product_id": l.product_id,
        "description": l.description,
        "unit": l.unit,
        "quantity": l.quantity.normalize(),
        "unit_list_price": m(l.unit_list_price),
        "unit_price": m(l.unit_price),
        "discount_pct": m(l.discount_pct),
        "tax_rate": m(l.tax_rate),
        "list_amount": m(l.list_amount),
        "net_amount": m(l.net_amount),
        "tax_amount": m(l.tax_amount),
        "total": m(l.total),
    })
}

/// Only a draft or rejected quote may go to the recycle bin (`not_draft` otherwise).
pub fn deletable(_: &mut PgConnection, q: &QuoteRow) -> AppResult<()> {
    if QuoteStatus::parse(&q.status).is_some_and(QuoteStatus::editable) {
        Ok(())
    } else {
        Err(AppError::conflict(
            "not_draft",
            "only draft or rejected quotes can be deleted",
        ))
    }
}
