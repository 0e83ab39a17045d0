//! Product catalogue and price books.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::schema::{price_book_entries, price_books, products};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub unit: String,
    pub category: Option<String>,
    pub list_price: Decimal,
    pub standard_cost: Decimal,
    pub tax_rate: Decimal,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = products)]
pub struct NewProduct {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub unit: String,
    pub category: Option<String>,
    pub list_price: Decimal,
    pub standard_cost: Decimal,
    pub tax_rate: Decimal,
    pub active: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = products)]
pub struct ProductChanges {
    pub code: Option<String>,
    pub name: Option<String>,
    pub unit: Option<String>,
    pub category: Option<Option<String>>,
    pub list_price: Option<Decimal>,
    pub standard_cost: Option<Decimal>,
    pub tax_rate: Option<Decimal>,
    pub active: Option<bool>,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("code", "p.code", SortType::Text),
    SortColumn::new("name", "p.name", SortType::Text),
    SortColumn::new("list_price", "p.list_price", SortType::Decimal),
    SortColumn::new("created_at", "p.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "p.updated_at", SortType::Timestamp),
];

#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub q: Option<String>,
    pub category: Option<String>,
    pub active: Option<bool>,
}

pub fn list(conn: &mut PgConnection, f: &ProductFilter, spec: &ListSpec) -> QueryResult<Page<ProductRow>> {
    let mut sql = Sql::new("SELECT p.* FROM products p WHERE TRUE");
    sql.eq_opt::<Text, _>("p.category", f.category.clone())
        .eq_opt::<Bool, _>("p.active", f.active);
    if let Some(q) = f.q.as_deref().filter(|q| !q.trim().is_empty()) {
        let pat = format!("%{}%", crate::sql::escape_like(q.trim()));
        sql.push(" AND (p.name ILIKE ");
        sql.bind::<Text, _>(pat.clone());
        sql.push(" OR p.code ILIKE ");
        sql.bind::<Text, _>(pat);
        sql.push(")");
    }
    spec.load(conn, sql, "p.id", |r: &ProductRow| r.id)
}

pub fn find(conn: &mut PgConnection, id: Uuid, lock: bool) -> QueryResult<Option<ProductRow>> {
    let q = products::table.find(id).select(ProductRow::as_select());
    if lock {
        q.for_update().first(conn).optional()
    } else {
        q.first(conn).optional()
    }
}

pub fn find_many(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<ProductRow>> {
    products::table
        .filter(products::id.eq_any(ids))
        .select(ProductRow::as_select())
        .load(conn)
}

/// The product using `code` (case-insensitive), other than `except`.
pub fn code_taken(conn: &mut PgConnection, code: &str, except: Option<Uuid>) -> QueryResult<Option<Uuid>> {
    let mut sql = Sql::new("SELECT p.* FROM products p WHERE lower(p.code) = lower(");
    sql.bind::<Text, _>(code.to_owned());
    sql.push(")");
    if let Some(id) = except {
        sql.push(" AND p.id <> ");
        sql.bind::<SqlUuid, _>(id);
    }
    let row: Option<ProductRow> = sql.into_query().get_result(conn).optional()?;
    Ok(row.map(|r| r.id))
}

pub fn insert(conn: &mut PgConnection, new: &NewProduct) -> QueryResult<ProductRow> {
    diesel::insert_into(products::table)
        .values(new)
        .returning(ProductRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, ch: &ProductChanges) -> QueryResult<ProductRow> {
    diesel::update(products::table.find(id))
        .set((
            ch,
            products::version.eq(products::version + 1),
            products::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ProductRow::as_returning())
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = price_books)]
pub struct PriceBookRow {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub tier: Option<String>,
    pub is_default: bool,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = price_books)]
pub struct NewPriceBook {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub tier: Option<String>,
    pub is_default: bool,
    pub active: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = price_books)]
pub struct PriceBookChanges {
    pub name: Option<String>,
    pub tier: Option<Option<String>>,
    pub is_default: Option<bool>,
    pub active: Option<bool>,
}

pub fn list_books(conn: &mut PgConnection) -> QueryResult<Vec<PriceBookRow>> {
    price_books::table
        .select(PriceBookRow::as_select())
        .order((price_books::currency, price_books::is_default.desc(), price_books::name))
        .load(conn)
}

pub fn find_book(conn: &mut PgConnection, id: Uuid, lock: bool) -> QueryResult<Option<PriceBookRow>> {
    let q = price_books::table.find(id).select(PriceBookRow::as_select());
    if lock {
        q.for_update().first(conn).optional()
    } else {
        q.first(conn).optional()
    }
}

/// The default active book of a currency.
pub fn default_book(conn: &mut PgConnection, currency: &str) -> QueryResult<Option<PriceBookRow>> {
    price_books::table
        .filter(price_books::currency.eq(currency))
        .filter(price_books::is_default.eq(true))
        .filter(price_books::active.eq(true))
        .select(PriceBookRow::as_select())
        .first(conn)
        .optional()
}

/// The active book for a customer tier in a currency, if one exists.
pub fn tier_book(conn: &mut PgConnection, currency: &str, tier: &str) -> QueryResult<Option<PriceBookRow>> {
    price_books::table
        .filter(price_books::currency.eq(currency))
        .filter(price_books::tier.eq(tier))
        .filter(price_books::active.eq(true))
        .select(PriceBookRow::as_select())
        .order(price_books::created_at)
        .first(conn)
        .optional()
}

/// Clears the default flag of the other books of the currency.
pub fn clear_default(conn: &mut PgConnection, currency: &str, except: Uuid) -> QueryResult<()> {
    diesel::update(
        price_books::table
            .filter(price_books::currency.eq(currency))
            .filter(price_books::is_default.eq(true))
            .filter(price_books::id.ne(except)),
    )
    .set((
        price_books::is_default.eq(false),
        price_books::version.eq(price_books::version + 1),
        price_books::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    Ok(())
}

pub fn insert_book(conn: &mut PgConnection, new: &NewPriceBook) -> QueryResult<PriceBookRow> {
    diesel::insert_into(price_books::table)
        .values(new)
        .returning(PriceBookRow::as_returning())
        .get_result(conn)
}

pub fn update_book(conn: &mut PgConnection, id: Uuid, ch: &PriceBookChanges) -> QueryResult<PriceBookRow> {
    diesel::update(price_books::table.find(id))
        .set((
            ch,
            price_books::version.eq(price_books::version + 1),
            price_books::updated_at.eq(diesel::dsl::now),
        ))
        .returning(PriceBookRow::as_returning())
        .get_result(conn)
}

/// Book prices: (product, unit price), ordered by product code.
pub fn entries(conn: &mut PgConnection, book: Uuid) -> QueryResult<Vec<(Uuid, String, String, Decimal)>> {
    price_book_entries::table
        .inner_join(products::table)
        .filter(price_book_entries::price_book_id.eq(book))
        .select((
            price_book_entries::product_id,
            products::code,
            products::name,
            price_book_entries::unit_price,
        ))
        .order(products::code)
        .load(conn)
}

/// Prices of some products in a book.
pub fn prices(conn: &mut PgConnection, book: Uuid, product_ids: &[Uuid]) -> QueryResult<Vec<(Uuid, Decimal)>> {
    price_book_entries::table
        .filter(price_book_entries::price_book_id.eq(book))
        .filter(price_book_entries::product_id.eq_any(product_ids))
        .select((price_book_entries::product_id, price_book_entries::unit_price))
        .load(conn)
}

/// Sets (upserts) and removes prices of a book.
pub fn set_prices(conn: &mut PgConnection, book: Uuid, set: &[(Uuid, Decimal)], remove: &[Uuid]) -> QueryResult<()> {
    for (product, price) in set {
        diesel::insert_into(price_book_entries::table)
            .values((
                price_book_entries::price_book_id.eq(book),
                price_book_entries::product_id.eq(product),
                price_book_entries::unit_price.eq(price),
            ))
            .on_conflict((price_book_entries::price_book_id, price_book_entries::product_id))
            .do_update()
            .set(price_book_entries::unit_price.eq(price))
            .execute(conn)?;
    }
    if !remove.is_empty() {
        diesel::delete(
            price_book_entries::table
                .filter(price_book_entries::price_book_id.eq(book))
                .filter(price_book_entries::product_id.eq_any(remove)),
        )
        .execute(conn)?;
    }
    diesel::update(price_books::table.find(book))
        .set((
            price_books::version.eq(price_books::version + 1),
            price_books::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}
