//! The catalogue everyone quotes from: products and price books, changed by holders of
//! `products:admin`. Existing quotes keep the prices they were written with.

use crm_db::repo::products::{
    self, NewPriceBook, NewProduct, PriceBookChanges, PriceBookRow, ProductChanges, ProductRow,
};
use crm_db::repo::{audit, missing_ids};
use crm_domain::access::Action;
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{check_amount, check_pct, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, decimal_str, double_option};

const RES: &str = "products";

/// A new product, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub code: String,
    pub name: String,
    /// Defaults to 件.
    pub unit: Option<String>,
    pub category: Option<String>,
    #[serde(deserialize_with = "decimal_str::required")]
    pub list_price: Decimal,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub standard_cost: Option<Decimal>,
    /// Percent; defaults to 13.
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
    pub active: Option<bool>,
}

/// A partial change of a product.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub unit: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub category: Option<Option<String>>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub list_price: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub standard_cost: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
    pub active: Option<bool>,
}

/// A product's price in a book.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub product_id: Uuid,
    #[serde(deserialize_with = "decimal_str::required")]
    pub unit_price: Decimal,
}

/// A new price book.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBookInput {
    pub name: String,
    /// Defaults to CNY.
    pub currency: Option<String>,
    /// The customer tier (A-D) the book prices for.
    pub tier: Option<String>,
    /// Becomes the currency's default book (the previous one stops being it).
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub entries: Vec<PriceInput>,
}

/// A change of a price book: header, prices to set, products to remove.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBookPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub tier: Option<Option<String>>,
    pub is_default: Option<bool>,
    pub active: Option<bool>,
    #[serde(default)]
    pub set_prices: Vec<PriceInput>,
    #[serde(default)]
    pub remove_products: Vec<Uuid>,
}

fn check_code(errs: &mut Errors, code: &str) -> String {
    let c = code.trim().to_owned();
    let ok = c.len() <= 50
        && c.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'));
    if !ok {
        errs.add(
            "code",
            "invalid_format",
            "letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        );
    }
    c
}

fn check_tier(errs: &mut Errors, tier: Option<String>) -> Option<String> {
    let t = tier.map(|t| t.trim().to_ascii_uppercase()).filter(|t| !t.is_empty())?;
    if !matches!(t.as_str(), "A" | "B" | "C" | "D") {
        errs.add("tier", "invalid_choice", "one of A, B, C, D");
    }
    Some(t)
}

fn check_prices(errs: &mut Errors, field: &str, list: &[PriceInput]) -> Vec<(Uuid, Decimal)> {
    let mut out: Vec<(Uuid, Decimal)> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let v = check_amount(errs, &format!("{field}[{i}].unit_price"), Some(p.unit_price)).unwrap_or_default();
        if out.iter().any(|(id, _)| *id == p.product_id) {
            errs.add(&format!("{field}[{i}].product_id"), "duplicate", "listed twice");
        }
        out.push((p.product_id, v));
    }
    out
}

fn check_products_exist(c: &mut PgConnection, field: &str, prices: &[(Uuid, Decimal)]) -> AppResult<()> {
    let ids: Vec<Uuid> = prices.iter().map(|(p, _)| *p).collect();
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(missing) = missing_ids(c, "products", &ids)?.first() {
        let i = ids.iter().position(|x| x == missing).unwrap_or(0);
        return Err(AppError::field(
            &format!("{field}[{i}].product_id"),
            "not_found",
            "no such product",
        ));
    }
    Ok(())
}

fn code_conflict(c: &mut PgConnection, code: &str, except: Option<Uuid>) -> AppResult<()> {
    match products::code_taken(c, code, except)? {
        Some(existing) => Err(AppError::conflict("duplicate", "another product has this code")
            .with_extra("existing", json!({"id": existing}))),
        None => Ok(()),
    }
}

/// Adds a product to the catalogue (codes are unique: `duplicate`, 409).
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<ProductRow> {
    ctx.require(RES, Action::Admin)?;
    let input: ProductInput = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let new = NewProduct {
        id: Uuid::now_v7(),
        code: check_code(&mut errs, &input.code),
        name: errs.required_text("name", &input.name),
        unit: errs.line(input.unit).unwrap_or_else(|| "件".into()),
        category: errs.line(input.category),
        list_price: check_amount(&mut errs, "list_price", Some(input.list_price)).unwrap_or_default(),
        standard_cost: check_amount(&mut errs, "standard_cost", input.standard_cost).unwrap_or_default(),
        tax_rate: check_pct(&mut errs, "tax_rate", input.tax_rate).unwrap_or(Decimal::from(13)),
        active: input.active.unwrap_or(true),
    };
    errs.into_result()?;
    code_conflict(c, &new.code, None)?;
    let row = products::insert(c, &new)?;
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

/// Changes a product.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<ProductRow> {
    ctx.require(RES, Action::Admin)?;
    let input: ProductPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let ch = ProductChanges {
        code: input.code.as_deref().map(|c| check_code(&mut errs, c)),
        name: input.name.as_deref().map(|n| errs.required_text("name", n)),
        unit: input.unit.as_deref().map(|u| errs.required_text("unit", u)),
        category: input.category.map(|c| errs.line(c)),
        list_price: input
            .list_price
            .and_then(|v| check_amount(&mut errs, "list_price", Some(v))),
        standard_cost: input
            .standard_cost
            .and_then(|v| check_amount(&mut errs, "standard_cost", Some(v))),
        tax_rate: input.tax_rate.and_then(|v| check_pct(&mut errs, "tax_rate", Some(v))),
        active: input.active,
    };
    errs.into_result()?;
    let before = products::find(c, id, true)?.ok_or(AppError::NotFound("product"))?;
    let version = before.version;
    write::change_locked(c, ctx, (RES, id), before, (version, expected), |c, _| {
        if let Some(code) = &ch.code {
            code_conflict(c, code, Some(id))?;
        }
        Ok(Some(products::update(c, id, &ch)?))
    })
}

/// Creates a price book with its prices; a default book takes the flag from the
/// currency's previous default.
pub fn create_book(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<PriceBookRow> {
    ctx.require(RES, Action::Admin)?;
    let input: PriceBookInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let currency = input.currency.as_deref().unwrap_or("CNY").trim().to_ascii_uppercase();
    if crm_domain::normalize::currency(&currency).is_none() {
        errs.add(
            "currency",
            "invalid_format",
            "an active ISO 4217 currency code such as CNY or USD",
        );
    }
    let new = NewPriceBook {
        id: Uuid::now_v7(),
        name: errs.required_text("name", &input.name),
        currency,
        tier: check_tier(&mut errs, input.tier),
        is_default: input.is_default,
        active: true,
    };
    let prices = check_prices(&mut errs, "entries", &input.entries);
    errs.into_result()?;
    check_products_exist(c, "entries", &prices)?;
    if new.is_default {
        products::clear_default(c, &new.currency, new.id)?;
    }
    let row = products::insert_book(c, &new)?;
    products::set_prices(c, new.id, &prices, &[])?;
    write::created(c, ctx, "price_books", row.id)?;
    // The currency's previous default book, if this one took the flag.
    audit::record_pending(c, &ctx.actor(), "price_books", "updated")?;
    Ok(row)
}

/// Changes a price book: header, prices set and removed. The default book stays active;
/// another book becomes the default by taking the flag.
pub fn update_book(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<PriceBookRow> {
    ctx.require(RES, Action::Admin)?;
    let input: PriceBookPatch = write::parse(fields)?;
    let mut errs = Errors::default();
    if input.is_default == Some(false) {
        errs.add("is_default", "invalid", "make another book the default instead");
    }
    let ch = PriceBookChanges {
        name: input.name.as_deref().map(|n| errs.required_text("name", n)),
        tier: input.tier.map(|t| check_tier(&mut errs, t)),
        is_default: input.is_default,
        active: input.active,
    };
    let prices = check_prices(&mut errs, "set_prices", &input.set_prices);
    errs.into_result()?;
    let before = products::find_book(c, id, true)?.ok_or(AppError::NotFound("price book"))?;
    let version = before.version;
    let row = write::change_locked(c, ctx, ("price_books", id), before, (version, expected), |c, row| {
        if ch.is_default == Some(true) && ch.active == Some(false) {
            return Err(AppError::field("active", "invalid", "the default book must be active"));
        }
        if row.is_default && ch.active == Some(false) {
            return Err(AppError::field(
                "active",
                "invalid",
                "make another book the default first",
            ));
        }
        check_products_exist(c, "set_prices", &prices)?;
        if ch.is_default == Some(true) {
            products::clear_default(c, &row.currency, id)?;
        }
        let after = products::update_book(c, id, &ch)?;
        products::set_prices(c, id, &prices, &input.remove_products)?;
        Ok(Some(after))
    })?;
    audit::record_pending(c, &ctx.actor(), "price_books", "updated")?;
    Ok(row)
}
