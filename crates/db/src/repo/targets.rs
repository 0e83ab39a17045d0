//! Sales targets per rep or team and period.

use chrono::{DateTime, NaiveDate, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use diesel::sql_types::{Array, Date, Text, Uuid as SqlUuid};

use crate::schema::sales_targets;
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = sales_targets)]
pub struct TargetRow {
    pub id: Uuid,
    /// The rep (none: the team's own target).
    pub owner_id: Option<Uuid>,
    /// The team (a rep's target: the rep's team when it was set).
    pub team_id: Option<Uuid>,
    pub metric: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub currency: Option<String>,
    pub target: Decimal,
    pub note: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sales_targets)]
pub struct NewTarget {
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub metric: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub currency: Option<String>,
    pub target: Decimal,
    pub note: Option<String>,
    pub created_by: Option<Uuid>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = sales_targets)]
pub struct TargetChanges {
    pub target: Option<Decimal>,
    pub note: Option<Option<String>>,
}

/// Which targets a list asks for.
#[derive(Debug, Clone, Default)]
pub struct TargetFilter {
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub metric: Option<String>,
    /// Targets whose period overlaps `from ..= to`.
    pub overlaps: Option<(NaiveDate, NaiveDate)>,
}

fn scoped<'a>(scope: &ScopeFilter) -> sales_targets::BoxedQuery<'a, diesel::pg::Pg> {
    let q = sales_targets::table.into_boxed();
    match scope {
        ScopeFilter::All => q,
        ScopeFilter::Owner(u) => q.filter(sales_targets::owner_id.eq(*u)),
        ScopeFilter::OwnerOrTeams(u, teams) => q.filter(
            sales_targets::owner_id
                .eq(*u)
                .or(sales_targets::team_id.eq_any(teams.clone())),
        ),
    }
}

pub fn insert(conn: &mut PgConnection, new: &NewTarget) -> QueryResult<TargetRow> {
    diesel::insert_into(sales_targets::table)
        .values(new)
        .returning(TargetRow::as_returning())
        .get_result(conn)
}

/// A target in scope (locked for update when `lock`).
pub fn find(conn: &mut PgConnection, scope: &ScopeFilter, id: Uuid, lock: bool) -> QueryResult<Option<TargetRow>> {
    if lock {
        sales_targets::table
            .find(id)
            .select(sales_targets::id)
            .for_update()
            .first::<Uuid>(conn)
            .optional()?;
    }
    scoped(scope)
        .filter(sales_targets::id.eq(id))
        .select(TargetRow::as_select())
        .first(conn)
        .optional()
}

/// The target with the same subject, figure, period and currency, if any.
pub fn same_key(conn: &mut PgConnection, new: &NewTarget) -> QueryResult<Option<Uuid>> {
    let mut q = sales_targets::table
        .filter(sales_targets::metric.eq(&new.metric))
        .filter(sales_targets::period_from.eq(new.period_from))
        .filter(sales_targets::period_to.eq(new.period_to))
        .select(sales_targets::id)
        .into_boxed();
    q = match new.owner_id {
        Some(o) => q.filter(sales_targets::owner_id.eq(o)),
        None => q
            .filter(sales_targets::owner_id.is_null())
            .filter(sales_targets::team_id.eq(new.team_id)),
    };
    q = match &new.currency {
        Some(c) => q.filter(sales_targets::currency.eq(c.clone())),
        None => q.filter(sales_targets::currency.is_null()),
    };
    q.first(conn).optional()
}

/// Sortable columns of the list.
pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("period_from", "t.period_from", SortType::Date),
    SortColumn::new("period_to", "t.period_to", SortType::Date),
    SortColumn::new("target", "t.target", SortType::Decimal),
    SortColumn::new("created_at", "t.created_at", SortType::Timestamp),
];

/// Targets in scope matching `f`, a page as `spec` says.
pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    f: &TargetFilter,
    spec: &ListSpec,
) -> QueryResult<Page<TargetRow>> {
    let mut sql = Sql::new("SELECT t.* FROM sales_targets t WHERE TRUE");
    match scope {
        ScopeFilter::All => {}
        ScopeFilter::Owner(u) => {
            sql.push(" AND t.owner_id = ");
            sql.bind::<SqlUuid, _>(*u);
        }
        ScopeFilter::OwnerOrTeams(u, teams) => {
            sql.push(" AND (t.owner_id = ");
            sql.bind::<SqlUuid, _>(*u);
            sql.push(" OR t.team_id = ANY(");
            sql.bind::<Array<SqlUuid>, _>(teams.clone());
            sql.push("))");
        }
    }
    sql.eq_opt::<SqlUuid, _>("t.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("t.team_id", f.team_id)
        .eq_opt::<Text, _>("t.metric", f.metric.clone());
    if let Some((from, to)) = f.overlaps {
        sql.push(" AND t.period_from <= ");
        sql.bind::<Date, _>(to);
        sql.push(" AND t.period_to >= ");
        sql.bind::<Date, _>(from);
    }
    spec.load(conn, sql, "t.id", |r: &TargetRow| r.id)
}

pub fn update(conn: &mut PgConnection, id: Uuid, ch: &TargetChanges) -> QueryResult<TargetRow> {
    diesel::update(sales_targets::table.find(id))
        .set((
            ch,
            sales_targets::version.eq(sales_targets::version + 1),
            sales_targets::updated_at.eq(diesel::dsl::now),
        ))
        .returning(TargetRow::as_returning())
        .get_result(conn)
}

pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(sales_targets::table.find(id)).execute(conn)
}
