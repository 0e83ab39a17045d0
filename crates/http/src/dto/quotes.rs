//! Quote bodies.

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::quotes::{QuoteLineRow, QuoteRow};
use crm_db::repo::workflow::TransitionRow;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, money, str_enum};

str_enum! {
    /// Quote status: draft -> pending_approval -> approved | rejected -> sent ->
    /// accepted | declined | expired.
    QuoteStatus {
        Draft => "draft", PendingApproval => "pending_approval", Approved => "approved",
        Rejected => "rejected", Sent => "sent", Accepted => "accepted", Declined => "declined",
        Expired => "expired"
    }
}

/// One line of a quote. Amounts are computed by the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteLine {
    pub id: Uuid,
    pub position: i32,
    pub product_id: Option<Uuid>,
    pub description: String,
    pub unit: Option<String>,
    #[schema(value_type = String, example = "2")]
    pub quantity: Decimal,
    /// From the price book at the time the line was written.
    #[schema(value_type = String, example = "9800.00")]
    pub unit_list_price: Decimal,
    #[schema(value_type = String, example = "9800.00")]
    pub unit_price: Decimal,
    /// Percent off the unit price.
    #[schema(value_type = String, example = "5.00")]
    pub discount_pct: Decimal,
    #[schema(value_type = String, example = "13.00")]
    pub tax_rate: Decimal,
    /// quantity x unit list price.
    #[schema(value_type = String)]
    pub list_amount: Decimal,
    /// After the line discount and the line's share of the header discount, before tax.
    #[schema(value_type = String)]
    pub net_amount: Decimal,
    #[schema(value_type = String)]
    pub tax_amount: Decimal,
    /// net + tax.
    #[schema(value_type = String)]
    pub total: Decimal,
}

impl From<QuoteLineRow> for QuoteLine {
    fn from(r: QuoteLineRow) -> Self {
        QuoteLine {
            id: r.id,
            position: r.position,
            product_id: r.product_id,
            description: r.description,
            unit: r.unit,
            quantity: r.quantity.normalize(),
            unit_list_price: money(r.unit_list_price),
            unit_price: money(r.unit_price),
            discount_pct: money(r.discount_pct),
            tax_rate: money(r.tax_rate),
            list_amount: money(r.list_amount),
            net_amount: money(r.net_amount),
            tax_amount: money(r.tax_amount),
            total: money(r.total),
        }
    }
}

/// A quote (one version of the offer on a deal).
///
/// Rounding rule: each line amount is rounded half-up (away from zero) to cents; totals
/// are sums of rounded line amounts. The header discount is spread over the lines in
/// proportion to their net, the rounding remainder going to the largest line.
#[derive(Debug, Serialize, ToSchema)]
pub struct Quote {
    pub id: Uuid,
    pub opportunity_id: Uuid,
    /// e.g. BJ-2026-000042.
    pub number: String,
    /// 1 for the deal's first quote, then 2, 3 ...
    pub revision: i32,
    pub status: QuoteStatus,
    pub currency: String,
    pub price_book_id: Option<Uuid>,
    pub valid_until: Option<NaiveDate>,
    /// Header discount, percent off the subtotal.
    #[schema(value_type = String, example = "5.00")]
    pub header_discount_pct: Decimal,
    pub lines: Vec<QuoteLine>,
    /// Sum of quantity x list price.
    #[schema(value_type = String)]
    pub list_total: Decimal,
    /// Sum of line nets after line discounts, before the header discount.
    #[schema(value_type = String)]
    pub subtotal: Decimal,
    /// Header discount in money.
    #[schema(value_type = String)]
    pub header_discount_amount: Decimal,
    /// Everything given away against list price: list_total - net_amount.
    #[schema(value_type = String)]
    pub discount_amount: Decimal,
    /// discount_amount / list_total, percent; what approval rules look at.
    #[schema(value_type = String, example = "16.20")]
    pub effective_discount_pct: Decimal,
    /// Lines without a product: priced freely, with no list price to measure a discount
    /// against. The seeded approval rule sends such quotes to the sales director.
    pub free_text_lines: i32,
    /// subtotal - header discount: the taxable amount.
    #[schema(value_type = String)]
    pub net_amount: Decimal,
    #[schema(value_type = String)]
    pub tax_amount: Decimal,
    /// net + tax: what the customer pays.
    #[schema(value_type = String)]
    pub total: Decimal,
    /// Sum of quantity x standard cost.
    #[schema(value_type = String)]
    pub cost_total: Decimal,
    /// net_amount - cost_total.
    #[schema(value_type = String)]
    pub gross_margin: Decimal,
    /// gross_margin / net_amount, percent.
    #[schema(value_type = String)]
    pub gross_margin_pct: Decimal,
    pub terms: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    /// Whether changes are allowed (draft or rejected); otherwise revise it.
    pub editable: bool,
    pub status_changed_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl Quote {
    pub fn from_row(r: QuoteRow, lines: Vec<QuoteLineRow>) -> Self {
        let status = QuoteStatus::parse(&r.status).unwrap_or(QuoteStatus::Draft);
        let margin_pct = if r.net_amount.is_zero() {
            Decimal::ZERO
        } else {
            crm_domain::money::cents(r.gross_margin * Decimal::from(100) / r.net_amount)
        };
        Quote {
            id: r.id,
            opportunity_id: r.opportunity_id,
            number: r.number,
            revision: r.revision,
            status,
            currency: r.currency,
            price_book_id: r.price_book_id,
            valid_until: r.valid_until,
            header_discount_pct: money(r.header_discount_pct),
            free_text_lines: lines.iter().filter(|l| l.product_id.is_none()).count() as i32,
            lines: lines.into_iter().map(QuoteLine::from).collect(),
            list_total: money(r.list_total),
            subtotal: money(r.subtotal),
            header_discount_amount: money(r.subtotal - r.net_amount),
            discount_amount: money(r.discount_amount),
            effective_discount_pct: money(r.effective_discount_pct),
            net_amount: money(r.net_amount),
            tax_amount: money(r.tax_amount),
            total: money(r.total),
            cost_total: money(r.cost_total),
            gross_margin: money(r.gross_margin),
            gross_margin_pct: money(margin_pct),
            terms: r.terms,
            owner_id: r.owner_id,
            team_id: r.team_id,
            editable: matches!(status, QuoteStatus::Draft | QuoteStatus::Rejected),
            status_changed_at: r.status_changed_at,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// A line as entered. With `product_id` the list price comes from the price book and
/// the description, unit, tax rate and cost from the product unless given.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    pub product_id: Option<Uuid>,
    /// Required without a product.
    #[validate(length(max = 1000))]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[validate(length(max = 20))]
    #[schema(max_length = 20)]
    pub unit: Option<String>,
    #[schema(value_type = String, example = "2")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub quantity: Decimal,
    /// Defaults to the list price; required without a product.
    #[schema(value_type = Option<String>, example = "9800.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub unit_price: Option<Decimal>,
    /// Percent, default "0".
    #[schema(value_type = Option<String>, example = "5.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub discount_pct: Option<Decimal>,
    /// Percent; defaults to the product's rate, or "13.00" without a product.
    #[schema(value_type = Option<String>, example = "13.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
}

/// Body of `POST /quotes`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQuote {
    pub opportunity_id: Uuid,
    /// Defaults to the book of the account's tier in the deal's currency, else the
    /// currency's default book.
    pub price_book_id: Option<Uuid>,
    /// Defaults to 30 days from today.
    pub valid_until: Option<NaiveDate>,
    /// Percent off the subtotal, default "0".
    #[schema(value_type = Option<String>, example = "5.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub header_discount_pct: Option<Decimal>,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub terms: Option<String>,
    #[serde(default)]
    #[validate(length(max = 200), nested)]
    #[schema(max_items = 200)]
    pub lines: Vec<LineInput>,
}

/// Body of `PATCH /quotes/{id}` (draft or rejected quotes only). `lines` replaces all lines.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuote {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub valid_until: Option<Option<NaiveDate>>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub header_discount_pct: Option<Decimal>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    #[validate(length(max = 10000))]
    pub terms: Option<Option<String>>,
    #[validate(length(max = 200), nested)]
    #[schema(max_items = 200)]
    pub lines: Option<Vec<LineInput>>,
}

/// Query of `GET /quotes`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuoteListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `created_at`, `updated_at`, `number`, `total`; `-` for descending. Default `-created_at`.
    pub sort: Option<String>,
    pub opportunity_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<QuoteStatus>,
    pub owner_id: Option<Uuid>,
}

/// Optional note on a quote action.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteAction {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// Body of `POST /quotes/{id}/decline`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineQuote {
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// Also mark the deal Lost with this reason (through the normal stage move).
    #[serde(default)]
    pub mark_lost: bool,
}

/// A recorded status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChange {
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
}

impl From<TransitionRow> for StatusChange {
    fn from(r: TransitionRow) -> Self {
        StatusChange {
            from_status: r.from_status,
            to_status: r.to_status,
            at: r.at,
            actor_id: r.actor_id,
            reason: r.reason,
        }
    }
}

/// Status changes of a record, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusHistory {
    pub items: Vec<StatusChange>,
}

/// Party block of the printed quote.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentParty {
    pub name: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub tax_id: Option<String>,
    /// Contact person (customer side) or sales rep (our side).
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
}

/// Everything needed to render or print the 《报价单》.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteDocument {
    /// 报价单 Quotation.
    pub title: String,
    pub number: String,
    pub revision: i32,
    pub status: QuoteStatus,
    pub issue_date: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub currency: String,
    pub seller: DocumentParty,
    pub customer: DocumentParty,
    pub opportunity_name: String,
    pub lines: Vec<QuoteLine>,
    #[schema(value_type = String)]
    pub list_total: Decimal,
    #[schema(value_type = String)]
    pub subtotal: Decimal,
    #[schema(value_type = String)]
    pub header_discount_pct: Decimal,
    #[schema(value_type = String)]
    pub header_discount_amount: Decimal,
    #[schema(value_type = String)]
    pub discount_amount: Decimal,
    #[schema(value_type = String)]
    pub net_amount: Decimal,
    #[schema(value_type = String)]
    pub tax_amount: Decimal,
    #[schema(value_type = String)]
    pub total: Decimal,
    /// The total in Chinese capital numerals (大写金额) for CNY quotes.
    pub total_in_words: Option<String>,
    pub terms: Option<String>,
    /// How amounts were rounded.
    pub rounding_rule: String,
}
