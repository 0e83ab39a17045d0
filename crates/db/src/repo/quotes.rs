//! Quotes and their lines.

use chrono::{DateTime, NaiveDate, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::accounts::Liveness;
use crate::schema::{quote_lines, quotes};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = quotes)]
pub struct QuoteRow {
    pub id: Uuid,
    pub opportunity_id: Uuid,
    pub number: String,
    pub revision: i32,
    pub status: String,
    pub currency: String,
    pub price_book_id: Option<Uuid>,
    pub valid_until: Option<NaiveDate>,
    pub header_discount_pct: Decimal,
    pub list_total: Decimal,
    pub subtotal: Decimal,
    pub discount_amount: Decimal,
    pub net_amount: Decimal,
    pub tax_amount: Decimal,
    pub total: Decimal,
    pub effective_discount_pct: Decimal,
    pub cost_total: Decimal,
    pub gross_margin: Decimal,
    pub terms: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status_changed_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = quotes)]
pub struct NewQuote {
    pub id: Uuid,
    pub opportunity_id: Uuid,
    pub number: String,
    pub revision: i32,
    pub status: String,
    pub currency: String,
    pub price_book_id: Option<Uuid>,
    pub valid_until: Option<NaiveDate>,
    pub header_discount_pct: Decimal,
    pub terms: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
}

/// Header fields a draft may change.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = quotes)]
pub struct QuoteChanges {
    pub valid_until: Option<Option<NaiveDate>>,
    pub header_discount_pct: Option<Decimal>,
    pub terms: Option<Option<String>>,
    pub price_book_id: Option<Option<Uuid>>,
}

/// Computed totals written with the lines.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = quotes)]
pub struct QuoteTotalsRow {
    pub list_total: Decimal,
    pub subtotal: Decimal,
    pub discount_amount: Decimal,
    pub net_amount: Decimal,
    pub tax_amount: Decimal,
    pub total: Decimal,
    pub effective_discount_pct: Decimal,
    pub cost_total: Decimal,
    pub gross_margin: Decimal,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = quote_lines)]
pub struct QuoteLineRow {
    pub id: Uuid,
    pub quote_id: Uuid,
    pub position: i32,
    pub product_id: Option<Uuid>,
    pub description: String,
    pub unit: Option<String>,
    pub quantity: Decimal,
    pub unit_list_price: Decimal,
    pub unit_price: Decimal,
    pub discount_pct: Decimal,
    pub tax_rate: Decimal,
    pub unit_cost: Decimal,
    pub list_amount: Decimal,
    pub net_amount: Decimal,
    pub tax_amount: Decimal,
    pub total: Decimal,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("created_at", "q.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "q.updated_at", SortType::Timestamp),
    SortColumn::new("number", "q.number", SortType::Text),
    SortColumn::new("total", "q.total", SortType::Decimal),
];

#[derive(Debug, Clone, Default)]
pub struct QuoteFilter {
    pub opportunity_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub status: Option<String>,
    pub owner_id: Option<Uuid>,
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    f: &QuoteFilter,
    spec: &ListSpec,
) -> QueryResult<Page<QuoteRow>> {
    let mut sql = Sql::new("SELECT q.* FROM quotes q WHERE q.deleted_at IS NULL");
    sql.scope("q", scope);
    sql.eq_opt::<SqlUuid, _>("q.opportunity_id", f.opportunity_id)
        .eq_opt::<Text, _>("q.status", f.status.clone())
        .eq_opt::<SqlUuid, _>("q.owner_id", f.owner_id);
    if let Some(a) = f.account_id {
        sql.push(" AND q.opportunity_id IN (SELECT o.id FROM opportunities o WHERE o.account_id = ");
        sql.bind::<SqlUuid, _>(a);
        sql.push(")");
    }
    spec.load(conn, sql, "q.id", |r: &QuoteRow| r.id)
}

pub fn find(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<QuoteRow>> {
    super::soft_delete::find_in(conn, "quotes", scope, id, liveness, lock)
}

pub fn lines(conn: &mut PgConnection, quote_ids: &[Uuid]) -> QueryResult<Vec<QuoteLineRow>> {
    quote_lines::table
        .filter(quote_lines::quote_id.eq_any(quote_ids))
        .order((quote_lines::quote_id, quote_lines::position))
        .select(QuoteLineRow::as_select())
        .load(conn)
}

/// The next revision number of a deal's quotes (call with the deal locked).
pub fn next_revision(conn: &mut PgConnection, opportunity_id: Uuid) -> QueryResult<i32> {
    let max: Option<i32> = quotes::table
        .filter(quotes::opportunity_id.eq(opportunity_id))
        .select(diesel::dsl::max(quotes::revision))
        .first(conn)?;
    Ok(max.unwrap_or(0) + 1)
}

pub fn insert(conn: &mut PgConnection, new: &NewQuote) -> QueryResult<QuoteRow> {
    diesel::insert_into(quotes::table)
        .values(new)
        .returning(QuoteRow::as_returning())
        .get_result(conn)
}

/// Replaces the lines and writes the totals; `bump` counts it as a new version (not
/// when filling in a quote just inserted).
pub fn write_lines(
    conn: &mut PgConnection,
    id: Uuid,
    header: &QuoteChanges,
    lines: &[QuoteLineRow],
    totals: &QuoteTotalsRow,
    bump: bool,
) -> QueryResult<QuoteRow> {
    let step = i32::from(bump);
    diesel::delete(quote_lines::table.filter(quote_lines::quote_id.eq(id))).execute(conn)?;
    if !lines.is_empty() {
        diesel::insert_into(quote_lines::table).values(lines).execute(conn)?;
    }
    let q = diesel::update(quotes::table.find(id));
    if header.valid_until.is_none()
        && header.header_discount_pct.is_none()
        && header.terms.is_none()
        && header.price_book_id.is_none()
    {
        q.set((
            totals,
            quotes::version.eq(quotes::version + step),
            quotes::updated_at.eq(diesel::dsl::now),
        ))
        .returning(QuoteRow::as_returning())
        .get_result(conn)
    } else {
        q.set((
            header,
            totals,
            quotes::version.eq(quotes::version + step),
            quotes::updated_at.eq(diesel::dsl::now),
        ))
        .returning(QuoteRow::as_returning())
        .get_result(conn)
    }
}

/// Changes the status (the caller records the transition).
pub fn set_status(conn: &mut PgConnection, id: Uuid, status: &str) -> QueryResult<QuoteRow> {
    diesel::update(quotes::table.find(id))
        .set((
            quotes::status.eq(status),
            quotes::status_changed_at.eq(diesel::dsl::now),
            quotes::version.eq(quotes::version + 1),
            quotes::updated_at.eq(diesel::dsl::now),
        ))
        .returning(QuoteRow::as_returning())
        .get_result(conn)
}

pub fn set_valid_until(conn: &mut PgConnection, id: Uuid, d: NaiveDate) -> QueryResult<()> {
    diesel::update(quotes::table.find(id))
        .set(quotes::valid_until.eq(Some(d)))
        .execute(conn)?;
    Ok(())
}

/// Statuses of a deal's live quotes.
pub fn statuses_of(conn: &mut PgConnection, opportunity_id: Uuid) -> QueryResult<Vec<String>> {
    quotes::table
        .filter(quotes::opportunity_id.eq(opportunity_id))
        .filter(quotes::deleted_at.is_null())
        .select(quotes::status)
        .distinct()
        .load(conn)
}

/// Sent quotes past their validity, locked (for the expiry sweep).
pub fn expired_candidates(conn: &mut PgConnection, today: NaiveDate) -> QueryResult<Vec<QuoteRow>> {
    quotes::table
        .filter(quotes::status.eq("sent"))
        .filter(quotes::deleted_at.is_null())
        .filter(quotes::valid_until.lt(today))
        .select(QuoteRow::as_select())
        .for_update()
        .skip_locked()
        .limit(500)
        .load(conn)
}
