//! Accounts (customers).

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{accounts, contacts};
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    pub id: Uuid,
    pub name: String,
    #[serde(skip)]
    pub name_norm: String,
    pub account_type: String,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub tier: Option<String>,
    pub source: Option<String>,
    pub parent_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub notes: Option<String>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub last_activity_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccount {
    pub id: Uuid,
    pub name: String,
    pub name_norm: String,
    pub account_type: String,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub tier: Option<String>,
    pub source: Option<String>,
    pub parent_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub notes: Option<String>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
}

/// A partial update: `None` leaves a column alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = accounts)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub name_norm: Option<String>,
    pub account_type: Option<String>,
    pub industry: Option<Option<String>>,
    pub region: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub tier: Option<Option<String>>,
    pub source: Option<Option<String>>,
    pub parent_id: Option<Option<Uuid>>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Option<Uuid>>,
    pub notes: Option<Option<String>>,
    pub custom: Option<Value>,
}

/// List filters (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub account_type: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub tier: Option<String>,
    pub source: Option<String>,
    pub parent_id: Option<Uuid>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    pub q: Option<String>,
    /// `custom.*` conditions.
    /// What `q` covers for the caller beyond the built-in search text.
    pub search: crate::sql::SearchScope,
    pub custom: Vec<super::fields::CustomCond>,
}

pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn::new("name", "a.name", SortType::Text),
    SortColumn::new("created_at", "a.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "a.updated_at", SortType::Timestamp),
];
pub const DEFAULT_SORT: &str = "-created_at";
/// Built-in fields of the search text: (field key, column).
pub const SEARCH_FIELDS: &[(&str, &str)] = &[("name", "a.name"), ("phone", "a.phone"), ("email", "a.email")];

/// Must match the expression of `accounts_search_idx`.
const SEARCH_EXPR: &str = "(a.name || ' ' || coalesce(a.phone, '') || ' ' || coalesce(a.email, ''))";

fn push_filter<'a>(sql: &mut Sql<'a>, f: &AccountFilter) {
    sql.eq_opt::<SqlUuid, _>("a.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("a.team_id", f.team_id)
        .eq_opt::<Text, _>("a.account_type", f.account_type.clone())
        .eq_opt::<Text, _>("a.industry", f.industry.clone())
        .eq_opt::<Text, _>("a.region", f.region.clone())
        .eq_opt::<Text, _>("a.tier", f.tier.clone())
        .eq_opt::<Text, _>("a.source", f.source.clone())
        .eq_opt::<SqlUuid, _>("a.parent_id", f.parent_id)
        .cmp_ts("a.created_at", ">=", f.created_after)
        .cmp_ts("a.created_at", "<", f.created_before)
        .cmp_ts("a.updated_at", ">=", f.updated_after)
        .cmp_ts("a.updated_at", "<", f.updated_before)
        .search(SEARCH_EXPR, SEARCH_FIELDS, "a", &f.search, f.q.as_deref());
    super::fields::push_custom(sql, "a", &f.custom);
}

/// A page of live accounts in the caller's scope.
pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &AccountFilter,
    spec: &ListSpec,
) -> QueryResult<Page<AccountRow>> {
    let mut sql = Sql::new("SELECT a.* FROM accounts a WHERE a.deleted_at IS NULL");
    sql.scope("a", scope);
    push_filter(&mut sql, filter);
    spec.load(conn, sql, "a.id", |r: &AccountRow| r.id)
}

/// Delta sync: live accounts changed after `since` (in `updated_at` order), plus on
/// the first page the ids deleted after `since`.
pub fn list_changed(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &AccountFilter,
    since: DateTime<Utc>,
    spec: &ListSpec,
    with_deleted: bool,
) -> QueryResult<(Page<AccountRow>, Vec<Uuid>)> {
    let mut sql = Sql::new("SELECT a.* FROM accounts a WHERE a.deleted_at IS NULL");
    sql.scope("a", scope);
    push_filter(&mut sql, filter);
    sql.cmp_ts("a.updated_at", ">", Some(since));
    let page = spec.load(conn, sql, "a.id", |r: &AccountRow| r.id)?;
    let deleted = if with_deleted {
        deleted_since(conn, "accounts", scope, since)?
    } else {
        Vec::new()
    };
    Ok((page, deleted))
}

/// Ids a device syncing `table` since `since` must drop: rows soft-deleted since then
/// in the caller's scope, and rows that left the caller's scope since then (reassigned
/// to an owner or team the caller does not reach) and are not back in it.
pub fn deleted_since(
    conn: &mut PgConnection,
    table: &'static str,
    scope: &ScopeFilter,
    since: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let mut sql = Sql::new(&format!("SELECT t.id FROM {table} t WHERE t.deleted_at > "));
    sql.bind::<Timestamptz, _>(since);
    sql.scope("t", scope);
    sql.push(" ORDER BY t.deleted_at, t.id LIMIT 10000");
    let rows: Vec<Id> = sql.into_query().load(conn)?;
    let mut ids: Vec<Uuid> = rows.into_iter().map(|r| r.id).collect();
    if *scope != ScopeFilter::All {
        let mut sql = Sql::new("SELECT DISTINCT d.record_id AS id FROM scope_departures d WHERE d.resource = ");
        sql.bind::<diesel::sql_types::Text, _>(table);
        sql.push(" AND d.left_at > ");
        sql.bind::<Timestamptz, _>(since);
        sql.scope("d", scope);
        sql.push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = d.record_id AND t.deleted_at IS NULL"
        ));
        sql.scope("t", scope);
        sql.push(") LIMIT 10000");
        let gone: Vec<Id> = sql.into_query().load(conn)?;
        let seen: std::collections::HashSet<Uuid> = ids.iter().copied().collect();
        ids.extend(gone.into_iter().map(|g| g.id).filter(|id| !seen.contains(id)));
    }
    Ok(ids)
}

/// Which records a lookup may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Live,
    Deleted,
}

/// One account in scope; `lock` takes a row lock for a read-modify-write.
pub fn find(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<AccountRow>> {
    super::soft_delete::find_in(conn, "accounts", scope, id, liveness, lock)
}

/// The first live account in scope with the same name key, phone or e-mail, and which
/// of them matched. Takes transaction-level advisory locks on the keys so that two
/// concurrent creates of the same customer cannot both pass the check.
pub fn find_duplicate(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    name_norm: &str,
    phone: Option<&str>,
    email: Option<&str>,
) -> QueryResult<Option<(AccountRow, &'static str)>> {
    let mut keys = vec![format!("account:name:{name_norm}")];
    keys.extend(phone.map(|p| format!("account:phone:{p}")));
    keys.extend(email.map(|e| format!("account:email:{e}")));
    advisory_lock_keys(conn, keys)?;

    let mut sql = Sql::new("SELECT a.* FROM accounts a WHERE a.deleted_at IS NULL AND (a.name_norm = ");
    sql.bind::<Text, _>(name_norm.to_owned());
    sql.push(" OR a.phone = ");
    sql.bind::<Nullable<Text>, _>(phone.map(str::to_owned));
    sql.push(" OR a.email = ");
    sql.bind::<Nullable<Text>, _>(email.map(str::to_owned));
    sql.push(")");
    sql.scope("a", scope);
    sql.push(" ORDER BY a.created_at LIMIT 1");
    let row: Option<AccountRow> = sql.into_query().get_result(conn).optional()?;
    Ok(row.map(|r| {
        let on = if r.name_norm == name_norm {
            "name"
        } else if phone.is_some() && r.phone.as_deref() == phone {
            "phone"
        } else {
            "email"
        };
        (r, on)
    }))
}

/// Serialises concurrent transactions that check the same natural keys.
pub fn advisory_lock_keys(conn: &mut PgConnection, mut keys: Vec<String>) -> QueryResult<()> {
    keys.sort();
    keys.dedup();
    for k in keys {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<Text, _>(k)
            .execute(conn)?;
    }
    Ok(())
}

pub fn insert(conn: &mut PgConnection, new: &NewAccount) -> QueryResult<AccountRow> {
    diesel::insert_into(accounts::table)
        .values(new)
        .returning(AccountRow::as_returning())
        .get_result(conn)
}

/// Applies changes, bumps the version and `updated_at`.
pub fn update(conn: &mut PgConnection, id: Uuid, changes: &AccountChanges) -> QueryResult<AccountRow> {
    diesel::update(accounts::table.find(id))
        .set((
            changes,
            accounts::version.eq(accounts::version + 1),
            accounts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(AccountRow::as_returning())
        .get_result(conn)
}

/// Soft-deletes an account and its live contacts with one shared timestamp, so that a
/// restore brings back exactly those contacts. Returns (account, contact ids deleted).
pub fn soft_delete(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<(AccountRow, Vec<Uuid>)> {
    let row = diesel::update(accounts::table.find(id))
        .set((
            accounts::deleted_at.eq(Some(now)),
            accounts::version.eq(accounts::version + 1),
            accounts::updated_at.eq(now),
        ))
        .returning(AccountRow::as_returning())
        .get_result(conn)?;
    let contact_ids = diesel::update(
        contacts::table
            .filter(contacts::account_id.eq(id))
            .filter(contacts::deleted_at.is_null()),
    )
    .set((
        contacts::deleted_at.eq(Some(now)),
        contacts::version.eq(contacts::version + 1),
        contacts::updated_at.eq(now),
    ))
    .returning(contacts::id)
    .get_results(conn)?;
    Ok((row, contact_ids))
}

/// Restores an account and the contacts deleted together with it.
pub fn restore(conn: &mut PgConnection, row: &AccountRow) -> QueryResult<(AccountRow, Vec<Uuid>)> {
    let restored = diesel::update(accounts::table.find(row.id))
        .set((
            accounts::deleted_at.eq(None::<DateTime<Utc>>),
            accounts::version.eq(accounts::version + 1),
            accounts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(AccountRow::as_returning())
        .get_result(conn)?;
    let contact_ids = match row.deleted_at {
        Some(at) => diesel::update(
            contacts::table
                .filter(contacts::account_id.eq(row.id))
                .filter(contacts::deleted_at.eq(at)),
        )
        .set((
            contacts::deleted_at.eq(None::<DateTime<Utc>>),
            contacts::version.eq(contacts::version + 1),
            contacts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(contacts::id)
        .get_results(conn)?,
        None => Vec::new(),
    };
    Ok((restored, contact_ids))
}

/// Whether a live account with this id exists at all (scope ignored).
pub fn exists_live(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::deleted_at.is_null()),
    ))
    .get_result(conn)
}

/// Whether `id` is `start` or one of its ancestors (parent chain), to refuse cycles.
pub fn in_parent_chain(conn: &mut PgConnection, start: Uuid, id: Uuid) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let r: Found = diesel::sql_query(
        "WITH RECURSIVE chain(id, parent_id, depth) AS ( \
           SELECT id, parent_id, 0 FROM accounts WHERE id = $1 \
           UNION ALL \
           SELECT a.id, a.parent_id, c.depth + 1 FROM accounts a JOIN chain c ON a.id = c.parent_id \
           WHERE c.depth < 100) \
         SELECT EXISTS (SELECT 1 FROM chain WHERE id = $2) AS found",
    )
    .bind::<SqlUuid, _>(start)
    .bind::<SqlUuid, _>(id)
    .get_result(conn)?;
    Ok(r.found)
}
