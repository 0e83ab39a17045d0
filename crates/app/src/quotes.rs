//! Quote lifecycle operations shared by the API, the approval engine and scheduled work.

use chrono::NaiveDate;
use crm_db::repo::accounts::Liveness;
use crm_db::repo::products::{self, PriceBookRow};
use crm_db::repo::quotes::{self, QuoteLineRow, QuoteRow, QuoteTotalsRow};
use crm_db::repo::{audit, workflow};
use crm_domain::access::ScopeFilter;
use crm_domain::money::{compute_quote, LineInput as MoneyLine};
use crm_domain::status::QuoteStatus;
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::approvals::Outcome;
use crate::checks::{check_amount, check_pct, Errors};
use crate::error::{AppError, AppResult};

const RES: &str = "quotes";

/// Tax rate of a free-text line without one (VAT on goods).
const DEFAULT_TAX_RATE: i64 = 13;

/// One quote line as submitted.
#[derive(Debug, Clone)]
pub struct LineInput {
    pub product_id: Option<Uuid>,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Option<Decimal>,
    pub discount_pct: Option<Decimal>,
    pub tax_rate: Option<Decimal>,
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
