//! Contracts, amendments, payment plans, invoices, payments and receivables.

use chrono::{DateTime, NaiveDate, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Date, Numeric, Text, Uuid as SqlUuid};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{contract_amendments, contracts, installments, invoices, payment_allocations, payments};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = contracts)]
pub struct ContractRow {
    pub id: Uuid,
    pub number: String,
    pub opportunity_id: Uuid,
    pub account_id: Uuid,
    pub quote_id: Option<Uuid>,
    pub title: String,
    pub amount: Decimal,
    pub currency: String,
    pub lines: Value,
    pub status: String,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub signed_at: Option<DateTime<Utc>>,
    pub signed_copy_ref: Option<String>,
    pub terms: Option<String>,
    pub termination_reason: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = contracts)]
pub struct NewContract {
    pub id: Uuid,
    pub number: String,
    pub opportunity_id: Uuid,
    pub account_id: Uuid,
    pub quote_id: Option<Uuid>,
    pub title: String,
    pub amount: Decimal,
    pub currency: String,
    pub lines: Value,
    pub status: String,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub terms: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
}

/// Fields a draft may change (and an amendment of a signed contract).
#[derive(Debug, Clone, Default, AsChangeset, Serialize)]
#[diesel(table_name = contracts)]
pub struct ContractChanges {
    pub title: Option<String>,
    pub amount: Option<Decimal>,
    pub start_date: Option<Option<NaiveDate>>,
    pub end_date: Option<Option<NaiveDate>>,
    pub terms: Option<Option<String>>,
}

impl ContractChanges {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.amount.is_none()
            && self.start_date.is_none()
            && self.end_date.is_none()
            && self.terms.is_none()
    }
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("created_at", "k.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "k.updated_at", SortType::Timestamp),
    SortColumn::new("number", "k.number", SortType::Text),
    SortColumn::new("amount", "k.amount", SortType::Decimal),
];

#[derive(Debug, Clone, Default)]
pub struct ContractFilter {
    pub opportunity_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub status: Option<String>,
    pub owner_id: Option<Uuid>,
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    f: &ContractFilter,
    spec: &ListSpec,
) -> QueryResult<Page<ContractRow>> {
    let mut sql = Sql::new("SELECT k.* FROM contracts k WHERE k.deleted_at IS NULL");
    sql.scope("k", scope);
    sql.eq_opt::<SqlUuid, _>("k.opportunity_id", f.opportunity_id)
        .eq_opt::<SqlUuid, _>("k.account_id", f.account_id)
        .eq_opt::<Text, _>("k.status", f.status.clone())
        .eq_opt::<SqlUuid, _>("k.owner_id", f.owner_id);
    spec.load(conn, sql, "k.id", |r: &ContractRow| r.id)
}

pub fn find(conn: &mut PgConnection, scope: &ScopeFilter, id: Uuid, lock: bool) -> QueryResult<Option<ContractRow>> {
    let mut sql = Sql::new("SELECT k.* FROM contracts k WHERE k.deleted_at IS NULL AND k.id = ");
    sql.bind::<SqlUuid, _>(id);
    sql.scope("k", scope);
    if lock {
        sql.push(" FOR UPDATE");
    }
    sql.into_query().get_result(conn).optional()
}

pub fn insert(conn: &mut PgConnection, new: &NewContract) -> QueryResult<ContractRow> {
    diesel::insert_into(contracts::table)
        .values(new)
        .returning(ContractRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, ch: &ContractChanges) -> QueryResult<ContractRow> {
    diesel::update(contracts::table.find(id))
        .set((
            ch,
            contracts::version.eq(contracts::version + 1),
            contracts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ContractRow::as_returning())
        .get_result(conn)
}

/// Status change with its side fields (the caller records the transition).
pub fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    signed: Option<(DateTime<Utc>, String)>,
    termination_reason: Option<&str>,
) -> QueryResult<ContractRow> {
    let (signed_at, copy) = match signed {
        Some((at, r)) => (Some(at), Some(r)),
        None => (None, None),
    };
    diesel::update(contracts::table.find(id))
        .set((
            contracts::status.eq(status),
            signed_at.map(|a| contracts::signed_at.eq(Some(a))),
            copy.map(|c| contracts::signed_copy_ref.eq(Some(c))),
            termination_reason.map(|r| contracts::termination_reason.eq(Some(r.to_owned()))),
            contracts::version.eq(contracts::version + 1),
            contracts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ContractRow::as_returning())
        .get_result(conn)
}

/// A live (not terminated) contract made from this quote.
pub fn live_for_quote(conn: &mut PgConnection, quote_id: Uuid) -> QueryResult<Option<Uuid>> {
    contracts::table
        .filter(contracts::quote_id.eq(quote_id))
        .filter(contracts::deleted_at.is_null())
        .filter(contracts::status.ne("terminated"))
        .select(contracts::id)
        .first(conn)
        .optional()
}

/// Whether a deal has a signed (signed, active or completed) contract, and whether any
/// payment was received on its contracts.
/// Evidence for a deal's Won criteria: (a contract is signed, a payment counts as
/// received). A payment counts when it was received on a signed contract, or when
/// prepayments on one contract reach `prepayment_wins_pct` percent of its amount (the
/// configured prepayment rule; `None`: prepayments alone never count).
pub fn deal_evidence(
    conn: &mut PgConnection,
    opportunity_id: Uuid,
    prepayment_wins_pct: Option<Decimal>,
) -> QueryResult<(bool, bool)> {
    let signed: i64 = contracts::table
        .filter(contracts::opportunity_id.eq(opportunity_id))
        .filter(contracts::deleted_at.is_null())
        .filter(contracts::status.eq_any(["signed", "active", "completed"]))
        .count()
        .get_result(conn)?;
    let paid: i64 = payments::table
        .inner_join(contracts::table)
        .filter(contracts::opportunity_id.eq(opportunity_id))
        .filter(contracts::deleted_at.is_null())
        .filter(payments::prepayment.eq(false))
        .count()
        .get_result(conn)?;
    if paid > 0 {
        return Ok((signed > 0, true));
    }
    let Some(pct) = prepayment_wins_pct else {
        return Ok((signed > 0, false));
    };
    let prepaid: Vec<(Decimal, Option<Decimal>)> = payments::table
        .inner_join(contracts::table)
        .filter(contracts::opportunity_id.eq(opportunity_id))
        .filter(contracts::deleted_at.is_null())
        .filter(contracts::status.ne("terminated"))
        .filter(payments::prepayment.eq(true))
        .group_by((contracts::id, contracts::amount))
        .select((contracts::amount, diesel::dsl::sum(payments::amount)))
        .load(conn)?;
    let hundred = Decimal::from(100);
    let enough = prepaid
        .iter()
        .any(|(amount, sum)| sum.unwrap_or_default() * hundred >= *amount * pct && *amount > Decimal::ZERO);
    Ok((signed > 0, enough))
}

/// Sum of the payments received on a contract.
pub fn received_total(conn: &mut PgConnection, contract_id: Uuid) -> QueryResult<Decimal> {
    let s: Option<Decimal> = payments::table
        .filter(payments::contract_id.eq(contract_id))
        .select(diesel::dsl::sum(payments::amount))
        .first(conn)?;
    Ok(s.unwrap_or_default())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = contract_amendments)]
pub struct AmendmentRow {
    pub id: Uuid,
    pub contract_id: Uuid,
    pub seq: i32,
    pub description: String,
    pub changes: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

pub fn amendments(conn: &mut PgConnection, contract_id: Uuid) -> QueryResult<Vec<AmendmentRow>> {
    contract_amendments::table
        .filter(contract_amendments::contract_id.eq(contract_id))
        .order(contract_amendments::seq)
        .select(AmendmentRow::as_select())
        .load(conn)
}

pub fn insert_amendment(
    conn: &mut PgConnection,
    contract_id: Uuid,
    description: &str,
    changes: &Value,
    by: Uuid,
) -> QueryResult<AmendmentRow> {
    let seq: Option<i32> = contract_amendments::table
        .filter(contract_amendments::contract_id.eq(contract_id))
        .select(diesel::dsl::max(contract_amendments::seq))
        .first(conn)?;
    diesel::insert_into(contract_amendments::table)
        .values((
            contract_amendments::id.eq(Uuid::now_v7()),
            contract_amendments::contract_id.eq(contract_id),
            contract_amendments::seq.eq(seq.unwrap_or(0) + 1),
            contract_amendments::description.eq(description),
            contract_amendments::changes.eq(changes),
            contract_amendments::created_by.eq(Some(by)),
        ))
        .returning(AmendmentRow::as_returning())
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = installments)]
pub struct InstallmentRow {
    pub id: Uuid,
    pub contract_id: Uuid,
    pub seq: i32,
    pub due_date: NaiveDate,
    pub amount: Decimal,
    pub note: Option<String>,
}

/// An installment with what was paid and invoiced on it.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct InstallmentState {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub contract_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub seq: i32,
    #[diesel(sql_type = Date)]
    pub due_date: NaiveDate,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub note: Option<String>,
    #[diesel(sql_type = Numeric)]
    pub paid: Decimal,
    #[diesel(sql_type = Numeric)]
    pub invoiced: Decimal,
}

/// The plan of some contracts with paid and invoiced amounts.
pub fn plan(conn: &mut PgConnection, contract_ids: &[Uuid]) -> QueryResult<Vec<InstallmentState>> {
    diesel::sql_query(
        "SELECT i.id, i.contract_id, i.seq, i.due_date, i.amount, i.note, \
           coalesce((SELECT sum(a.amount) FROM payment_allocations a WHERE a.installment_id = i.id), 0) AS paid, \
           coalesce((SELECT sum(v.amount) FROM invoices v WHERE v.installment_id = i.id AND v.status = 'issued'), 0) \
             AS invoiced \
         FROM installments i WHERE i.contract_id = ANY($1) ORDER BY i.contract_id, i.seq",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(contract_ids)
    .load(conn)
}

/// Replaces a plan (the caller checked nothing was paid or invoiced on it).
pub fn replace_plan(conn: &mut PgConnection, contract_id: Uuid, rows: &[InstallmentRow]) -> QueryResult<()> {
    diesel::delete(installments::table.filter(installments::contract_id.eq(contract_id))).execute(conn)?;
    if !rows.is_empty() {
        diesel::insert_into(installments::table).values(rows).execute(conn)?;
    }
    diesel::update(contracts::table.find(contract_id))
        .set((
            contracts::version.eq(contracts::version + 1),
            contracts::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether any payment or live invoice refers to the contract's installments.
pub fn plan_in_use(conn: &mut PgConnection, contract_id: Uuid) -> QueryResult<bool> {
    let ids: Vec<Uuid> = installments::table
        .filter(installments::contract_id.eq(contract_id))
        .select(installments::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(false);
    }
    let allocs: i64 = payment_allocations::table
        .filter(payment_allocations::installment_id.eq_any(&ids))
        .count()
        .get_result(conn)?;
    let invs: i64 = invoices::table
        .filter(invoices::installment_id.eq_any(&ids))
        .filter(invoices::status.eq("issued"))
        .count()
        .get_result(conn)?;
    Ok(allocs + invs > 0)
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, Serialize)]
#[diesel(table_name = invoices)]
pub struct InvoiceRow {
    pub id: Uuid,
    pub number: String,
    pub contract_id: Uuid,
    pub installment_id: Option<Uuid>,
    pub amount: Decimal,
    pub tax_amount: Decimal,
    pub issued_on: NaiveDate,
    pub status: String,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub version: i32,
}

pub const INVOICE_SORT: &[SortColumn] = &[
    SortColumn::new("created_at", "v.created_at", SortType::Timestamp),
    SortColumn::new("issued_on", "v.issued_on", SortType::Date),
];

pub fn list_invoices(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    contract_id: Option<Uuid>,
    status: Option<String>,
    spec: &ListSpec,
) -> QueryResult<Page<InvoiceRow>> {
    let mut sql = Sql::new("SELECT v.* FROM invoices v WHERE TRUE");
    sql.scope("v", scope);
    sql.eq_opt::<SqlUuid, _>("v.contract_id", contract_id)
        .eq_opt::<Text, _>("v.status", status);
    spec.load(conn, sql, "v.id", |r: &InvoiceRow| r.id)
}

pub fn find_invoice(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<InvoiceRow>> {
    let mut sql = Sql::new("SELECT v.* FROM invoices v WHERE v.id = ");
    sql.bind::<SqlUuid, _>(id);
    sql.scope("v", scope);
    if lock {
        sql.push(" FOR UPDATE");
    }
    sql.into_query().get_result(conn).optional()
}

pub fn insert_invoice(conn: &mut PgConnection, row: &InvoiceRow) -> QueryResult<InvoiceRow> {
    diesel::insert_into(invoices::table)
        .values(row)
        .returning(InvoiceRow::as_returning())
        .get_result(conn)
}

pub fn void_invoice(conn: &mut PgConnection, id: Uuid) -> QueryResult<InvoiceRow> {
    diesel::update(invoices::table.find(id))
        .set((invoices::status.eq("void"), invoices::version.eq(invoices::version + 1)))
        .returning(InvoiceRow::as_returning())
        .get_result(conn)
}

/// Live invoices of a contract: total amount.
pub fn invoiced_total(conn: &mut PgConnection, contract_id: Uuid) -> QueryResult<Decimal> {
    let s: Option<Decimal> = invoices::table
        .filter(invoices::contract_id.eq(contract_id))
        .filter(invoices::status.eq("issued"))
        .select(diesel::dsl::sum(invoices::amount))
        .first(conn)?;
    Ok(s.unwrap_or_default())
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, Serialize)]
#[diesel(table_name = payments)]
pub struct PaymentRow {
    pub id: Uuid,
    pub contract_id: Uuid,
    pub account_id: Uuid,
    pub amount: Decimal,
    pub received_on: NaiveDate,
    pub method: String,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub version: i32,
    /// Received before the contract was signed; held as unapplied credit until then.
    pub prepayment: bool,
}

pub const PAYMENT_SORT: &[SortColumn] = &[
    SortColumn::new("created_at", "p.created_at", SortType::Timestamp),
    SortColumn::new("received_on", "p.received_on", SortType::Date),
    SortColumn::new("amount", "p.amount", SortType::Decimal),
];

#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub contract_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub received_from: Option<NaiveDate>,
    pub received_to: Option<NaiveDate>,
}

pub fn list_payments(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    f: &PaymentFilter,
    spec: &ListSpec,
) -> QueryResult<Page<PaymentRow>> {
    let mut sql = Sql::new("SELECT p.* FROM payments p WHERE TRUE");
    sql.scope("p", scope);
    sql.eq_opt::<SqlUuid, _>("p.contract_id", f.contract_id)
        .eq_opt::<SqlUuid, _>("p.account_id", f.account_id);
    if let Some(d) = f.received_from {
        sql.push(" AND p.received_on >= ");
        sql.bind::<Date, _>(d);
    }
    if let Some(d) = f.received_to {
        sql.push(" AND p.received_on <= ");
        sql.bind::<Date, _>(d);
    }
    spec.load(conn, sql, "p.id", |r: &PaymentRow| r.id)
}

pub fn find_payment(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<PaymentRow>> {
    let mut sql = Sql::new("SELECT p.* FROM payments p WHERE p.id = ");
    sql.bind::<SqlUuid, _>(id);
    sql.scope("p", scope);
    if lock {
        sql.push(" FOR UPDATE");
    }
    sql.into_query().get_result(conn).optional()
}

pub fn insert_payment(conn: &mut PgConnection, row: &PaymentRow) -> QueryResult<PaymentRow> {
    diesel::insert_into(payments::table)
        .values(row)
        .returning(PaymentRow::as_returning())
        .get_result(conn)
}

/// Adds allocations (amounts add up when the pair exists).
pub fn add_allocations(conn: &mut PgConnection, payment_id: Uuid, allocs: &[(Uuid, Decimal)]) -> QueryResult<()> {
    for (inst, amount) in allocs {
        diesel::insert_into(payment_allocations::table)
            .values((
                payment_allocations::payment_id.eq(payment_id),
                payment_allocations::installment_id.eq(inst),
                payment_allocations::amount.eq(amount),
            ))
            .on_conflict((payment_allocations::payment_id, payment_allocations::installment_id))
            .do_update()
            .set(payment_allocations::amount.eq(payment_allocations::amount + amount))
            .execute(conn)?;
    }
    Ok(())
}

/// Allocations of some payments: (payment, installment, amount).
pub fn allocations(conn: &mut PgConnection, payment_ids: &[Uuid]) -> QueryResult<Vec<(Uuid, Uuid, Decimal)>> {
    payment_allocations::table
        .filter(payment_allocations::payment_id.eq_any(payment_ids))
        .select((
            payment_allocations::payment_id,
            payment_allocations::installment_id,
            payment_allocations::amount,
        ))
        .order((payment_allocations::payment_id, payment_allocations::installment_id))
        .load(conn)
}

/// Locks a contract's installments (allocation writers queue on them).
pub fn lock_plan(conn: &mut PgConnection, contract_id: Uuid) -> QueryResult<Vec<InstallmentRow>> {
    installments::table
        .filter(installments::contract_id.eq(contract_id))
        .order(installments::seq)
        .select(InstallmentRow::as_select())
        .for_update()
        .load(conn)
}

/// Receivables of one contract or account, as of a day.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct ReceivableRow {
    #[diesel(sql_type = SqlUuid)]
    pub key_id: Uuid,
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Numeric)]
    pub contract_amount: Decimal,
    #[diesel(sql_type = Numeric)]
    pub planned: Decimal,
    #[diesel(sql_type = Numeric)]
    pub invoiced: Decimal,
    #[diesel(sql_type = Numeric)]
    pub received: Decimal,
    #[diesel(sql_type = Numeric)]
    pub outstanding: Decimal,
    #[diesel(sql_type = Numeric)]
    pub overdue: Decimal,
    #[diesel(sql_type = Numeric)]
    pub d0_30: Decimal,
    #[diesel(sql_type = Numeric)]
    pub d31_60: Decimal,
    #[diesel(sql_type = Numeric)]
    pub d61_90: Decimal,
    #[diesel(sql_type = Numeric)]
    pub d90_plus: Decimal,
}

/// How receivables are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceivableGrouping {
    Contract,
    Account,
    /// One row per currency over everything in scope.
    Total,
}

#[allow(clippy::too_many_arguments)]
/// Receivables grouped per contract or per account (signed/active/completed contracts
/// and contracts with payments), in scope, as of `today`; one row per currency of a
/// group (amounts of different currencies are never added).
pub fn receivables(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    group: ReceivableGrouping,
    account_id: Option<Uuid>,
    contract_id: Option<Uuid>,
    overdue_only: bool,
    today: NaiveDate,
    limit: i64,
) -> QueryResult<Vec<ReceivableRow>> {
    let (key, label) = match group {
        ReceivableGrouping::Account => ("k.account_id", "max(a.name)"),
        ReceivableGrouping::Contract => ("k.id", "max(k.number)"),
        ReceivableGrouping::Total => ("'00000000-0000-0000-0000-000000000000'::uuid", "'total'"),
    };
    // Narrow requests (one contract, one account, one owner) look each contract up by
    // index (LATERAL); broad ones aggregate the tables once with hash joins.
    let narrow = contract_id.is_some() || account_id.is_some() || matches!(scope, ScopeFilter::Owner(_));
    let mut sql = Sql::new(
        "WITH per AS (SELECT k.id, k.account_id, k.number, k.currency, k.amount, \
            coalesce(ins.planned, 0) AS planned, coalesce(inv.total, 0) AS invoiced, \
            coalesce(pay.total, 0) AS received, coalesce(ins.overdue, 0) AS overdue, \
            coalesce(ins.d0_30, 0) AS d0_30, coalesce(ins.d31_60, 0) AS d31_60, \
            coalesce(ins.d61_90, 0) AS d61_90, coalesce(ins.d90_plus, 0) AS d90_plus \
          FROM contracts k LEFT JOIN ",
    );
    if narrow {
        sql.push("LATERAL ");
    }
    sql.push(
        "(SELECT x.contract_id, sum(x.amount) AS planned, \
              sum(x.open) FILTER (WHERE x.late >= 1) AS overdue, \
              sum(x.open) FILTER (WHERE x.late BETWEEN 1 AND 30) AS d0_30, \
              sum(x.open) FILTER (WHERE x.late BETWEEN 31 AND 60) AS d31_60, \
              sum(x.open) FILTER (WHERE x.late BETWEEN 61 AND 90) AS d61_90, \
              sum(x.open) FILTER (WHERE x.late > 90) AS d90_plus \
            FROM (SELECT i.contract_id, i.amount, (",
    );
    sql.bind::<Date, _>(today);
    if narrow {
        sql.push(
            "::date - i.due_date) AS late, greatest(i.amount - coalesce((SELECT sum(al.amount) \
                FROM payment_allocations al WHERE al.installment_id = i.id), 0), 0) AS open \
              FROM installments i WHERE i.contract_id = k.id) x GROUP BY x.contract_id) ins ON true \
            LEFT JOIN LATERAL (SELECT sum(v.amount) AS total FROM invoices v \
              WHERE v.contract_id = k.id AND v.status = 'issued') inv ON true \
            LEFT JOIN LATERAL (SELECT sum(p.amount) AS total FROM payments p WHERE p.contract_id = k.id) pay ON true",
        );
    } else {
        sql.push(
            "::date - i.due_date) AS late, greatest(i.amount - coalesce(al.paid, 0), 0) AS open \
              FROM installments i LEFT JOIN (SELECT installment_id, sum(amount) AS paid \
                FROM payment_allocations GROUP BY installment_id) al ON al.installment_id = i.id) x \
              GROUP BY x.contract_id) ins ON ins.contract_id = k.id \
            LEFT JOIN (SELECT contract_id, sum(amount) AS total FROM invoices WHERE status = 'issued' \
              GROUP BY contract_id) inv ON inv.contract_id = k.id \
            LEFT JOIN (SELECT contract_id, sum(amount) AS total FROM payments GROUP BY contract_id) pay \
              ON pay.contract_id = k.id",
        );
    }
    sql.push(
        " WHERE k.deleted_at IS NULL AND (k.status IN ('signed', 'active', 'completed') OR pay.total IS NOT NULL)",
    );
    sql.scope("k", scope);
    sql.eq_opt::<SqlUuid, _>("k.account_id", account_id)
        .eq_opt::<SqlUuid, _>("k.id", contract_id);
    sql.push(&format!(
        ") SELECT {key} AS key_id, {label} AS label, k.currency AS currency, sum(k.amount) AS contract_amount, \
         sum(k.planned) AS planned, sum(k.invoiced) AS invoiced, sum(k.received) AS received, \
         greatest(sum(k.amount) - sum(k.received), 0) AS outstanding, sum(k.overdue) AS overdue, \
         sum(k.d0_30) AS d0_30, sum(k.d31_60) AS d31_60, sum(k.d61_90) AS d61_90, sum(k.d90_plus) AS d90_plus \
         FROM per k JOIN accounts a ON a.id = k.account_id GROUP BY 1, k.currency"
    ));
    if overdue_only {
        sql.push(" HAVING sum(k.overdue) > 0");
    }
    sql.push(" ORDER BY sum(k.overdue) DESC, 2, 1 LIMIT ");
    sql.bind::<diesel::sql_types::BigInt, _>(limit);
    sql.into_query().load(conn)
}
