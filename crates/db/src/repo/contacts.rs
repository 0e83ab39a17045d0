//! Contacts of accounts.

use chrono::{DateTime, NaiveDate, Utc};
use crm_domain::access::ScopeFilter;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::accounts::{advisory_lock_keys, deleted_since, Liveness};
use crate::schema::contacts;
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = contacts)]
pub struct ContactRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    #[serde(skip)]
    pub name_norm: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub wechat: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub decision_role: Option<String>,
    pub preferences: Option<String>,
    pub pain_points: Option<String>,
    pub notes: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub last_activity_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = contacts)]
pub struct NewContact {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub name_norm: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub wechat: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub decision_role: Option<String>,
    pub preferences: Option<String>,
    pub pain_points: Option<String>,
    pub notes: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
}

/// A partial update: `None` leaves a column alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = contacts)]
pub struct ContactChanges {
    pub account_id: Option<Uuid>,
    pub name: Option<String>,
    pub name_norm: Option<String>,
    pub title: Option<Option<String>>,
    pub department: Option<Option<String>>,
    pub mobile: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub wechat: Option<Option<String>>,
    pub birthday: Option<Option<NaiveDate>>,
    pub decision_role: Option<Option<String>>,
    pub preferences: Option<Option<String>>,
    pub pain_points: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Option<Uuid>>,
    pub custom: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub account_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub decision_role: Option<String>,
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
    SortColumn::new("name", "c.name", SortType::Text),
    SortColumn::new("created_at", "c.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "c.updated_at", SortType::Timestamp),
];
pub const DEFAULT_SORT: &str = "-created_at";
/// Built-in fields of the search text: (field key, column).
pub const SEARCH_FIELDS: &[(&str, &str)] = &[
    ("name", "c.name"),
    ("mobile", "c.mobile"),
    ("phone", "c.phone"),
    ("email", "c.email"),
];

/// Must match the expression of `contacts_search_idx`.
const SEARCH_EXPR: &str =
    "(c.name || ' ' || coalesce(c.mobile, '') || ' ' || coalesce(c.phone, '') || ' ' || coalesce(c.email, ''))";

fn push_filter<'a>(sql: &mut Sql<'a>, f: &ContactFilter) {
    sql.eq_opt::<SqlUuid, _>("c.account_id", f.account_id)
        .eq_opt::<SqlUuid, _>("c.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("c.team_id", f.team_id)
        .eq_opt::<Text, _>("c.decision_role", f.decision_role.clone())
        .cmp_ts("c.created_at", ">=", f.created_after)
        .cmp_ts("c.created_at", "<", f.created_before)
        .cmp_ts("c.updated_at", ">=", f.updated_after)
        .cmp_ts("c.updated_at", "<", f.updated_before)
        .search(SEARCH_EXPR, SEARCH_FIELDS, "c", &f.search, f.q.as_deref());
    super::fields::push_custom(sql, "c", &f.custom);
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &ContactFilter,
    spec: &ListSpec,
) -> QueryResult<Page<ContactRow>> {
    let mut sql = Sql::new("SELECT c.* FROM contacts c WHERE c.deleted_at IS NULL");
    sql.scope("c", scope);
    push_filter(&mut sql, filter);
    spec.load(conn, sql, "c.id", |r: &ContactRow| r.id)
}

pub fn list_changed(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &ContactFilter,
    since: DateTime<Utc>,
    spec: &ListSpec,
    with_deleted: bool,
) -> QueryResult<(Page<ContactRow>, Vec<Uuid>)> {
    let mut sql = Sql::new("SELECT c.* FROM contacts c WHERE c.deleted_at IS NULL");
    sql.scope("c", scope);
    push_filter(&mut sql, filter);
    sql.cmp_ts("c.updated_at", ">", Some(since));
    let page = spec.load(conn, sql, "c.id", |r: &ContactRow| r.id)?;
    let deleted = if with_deleted {
        deleted_since(conn, "contacts", scope, since)?
    } else {
        Vec::new()
    };
    Ok((page, deleted))
}

pub fn find(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    id: Uuid,
    liveness: Liveness,
    lock: bool,
) -> QueryResult<Option<ContactRow>> {
    super::soft_delete::find_in(conn, "contacts", scope, id, liveness, lock)
}

/// A live contact in scope with the same mobile, phone or e-mail, or the same name at
/// the same account; with what matched.
pub fn find_duplicate(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    account_id: Uuid,
    name_norm: &str,
    phones: &[&str],
    email: Option<&str>,
) -> QueryResult<Option<(ContactRow, &'static str)>> {
    let mut keys = vec![format!("contact:name:{account_id}:{name_norm}")];
    keys.extend(phones.iter().map(|p| format!("contact:phone:{p}")));
    keys.extend(email.map(|e| format!("contact:email:{e}")));
    advisory_lock_keys(conn, keys)?;

    let phones: Vec<String> = phones.iter().map(|p| (*p).to_owned()).collect();
    let mut sql = Sql::new("SELECT c.* FROM contacts c WHERE c.deleted_at IS NULL AND ((c.account_id = ");
    sql.bind::<SqlUuid, _>(account_id);
    sql.push(" AND c.name_norm = ");
    sql.bind::<Text, _>(name_norm.to_owned());
    sql.push(") OR c.mobile = ANY(");
    sql.bind::<diesel::sql_types::Array<Text>, _>(phones.clone());
    sql.push(") OR c.phone = ANY(");
    sql.bind::<diesel::sql_types::Array<Text>, _>(phones.clone());
    sql.push(") OR c.email = ");
    sql.bind::<Nullable<Text>, _>(email.map(str::to_owned));
    sql.push(")");
    sql.scope("c", scope);
    sql.push(" ORDER BY c.created_at LIMIT 1");
    let row: Option<ContactRow> = sql.into_query().get_result(conn).optional()?;
    Ok(row.map(|r| {
        let on = if r.account_id == account_id && r.name_norm == name_norm {
            "name"
        } else if email.is_some() && r.email.as_deref() == email {
            "email"
        } else if r.mobile.as_ref().is_some_and(|m| phones.contains(m)) {
            "mobile"
        } else {
            "phone"
        };
        (r, on)
    }))
}

pub fn insert(conn: &mut PgConnection, new: &NewContact) -> QueryResult<ContactRow> {
    diesel::insert_into(contacts::table)
        .values(new)
        .returning(ContactRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &ContactChanges) -> QueryResult<ContactRow> {
    diesel::update(contacts::table.find(id))
        .set((
            changes,
            contacts::version.eq(contacts::version + 1),
            contacts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ContactRow::as_returning())
        .get_result(conn)
}
