//! Leads.

use chrono::{DateTime, Utc};
use crm_domain::access::ScopeFilter;
pub use crm_domain::status::SlaStanding;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Uuid as SqlUuid};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::accounts::{advisory_lock_keys, deleted_since, Liveness};
use crate::schema::leads;
use crate::sql::{ListSpec, Page, SortColumn, SortType, Sql};
use crate::QueryResult;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize)]
#[diesel(table_name = leads)]
pub struct LeadRow {
    pub id: Uuid,
    pub person_name: String,
    pub company: Option<String>,
    pub title: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: String,
    pub campaign: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tags: Vec<String>,
    pub estimated_budget: Option<Decimal>,
    pub notes: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status: String,
    pub disqualify_reason: Option<String>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub converted_at: Option<DateTime<Utc>>,
    pub converted_account_id: Option<Uuid>,
    pub converted_contact_id: Option<Uuid>,
    pub converted_opportunity_id: Option<Uuid>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = leads)]
pub struct NewLead {
    pub id: Uuid,
    pub person_name: String,
    pub company: Option<String>,
    pub title: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: String,
    pub campaign: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tags: Vec<String>,
    pub estimated_budget: Option<Decimal>,
    pub notes: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status: String,
    pub assigned_at: Option<DateTime<Utc>>,
    pub custom: Value,
    pub created_by: Option<Uuid>,
}

/// A partial update: `None` leaves a column alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = leads)]
pub struct LeadChanges {
    pub person_name: Option<String>,
    pub company: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub mobile: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub source: Option<String>,
    pub campaign: Option<Option<String>>,
    pub region: Option<Option<String>>,
    pub industry: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub estimated_budget: Option<Option<Decimal>>,
    pub notes: Option<Option<String>>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Option<Uuid>>,
    pub status: Option<String>,
    pub disqualify_reason: Option<Option<String>>,
    pub assigned_at: Option<Option<DateTime<Utc>>>,
    pub first_response_at: Option<Option<DateTime<Utc>>>,
    pub converted_at: Option<Option<DateTime<Utc>>>,
    pub converted_account_id: Option<Option<Uuid>>,
    pub converted_contact_id: Option<Option<Uuid>>,
    pub converted_opportunity_id: Option<Option<Uuid>>,
    pub custom: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub status: Option<String>,
    pub source: Option<String>,
    pub campaign: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tag: Option<String>,
    /// Assigned (or new) and not yet answered: the response-SLA queue.
    pub unanswered: Option<bool>,
    /// The response SLA's standing (`met`, `breached`, `pending`) at the given moment.
    pub sla: Option<(SlaStanding, DateTime<Utc>)>,
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
    SortColumn::new("person_name", "l.person_name", SortType::Text),
    SortColumn::new("created_at", "l.created_at", SortType::Timestamp),
    SortColumn::new("updated_at", "l.updated_at", SortType::Timestamp),
];
pub const DEFAULT_SORT: &str = "-created_at";
/// Built-in fields of the search text: (field key, column).
pub const SEARCH_FIELDS: &[(&str, &str)] = &[
    ("person_name", "l.person_name"),
    ("company", "l.company"),
    ("mobile", "l.mobile"),
    ("phone", "l.phone"),
    ("email", "l.email"),
];

/// Must match the expression of `leads_search_idx`.
const SEARCH_EXPR: &str = "(l.person_name || ' ' || coalesce(l.company, '') || ' ' || coalesce(l.mobile, '') || ' ' || coalesce(l.phone, '') || ' ' || coalesce(l.email, ''))";

fn push_filter(sql: &mut Sql<'_>, f: &LeadFilter) {
    sql.eq_opt::<SqlUuid, _>("l.owner_id", f.owner_id)
        .eq_opt::<SqlUuid, _>("l.team_id", f.team_id)
        .eq_opt::<Text, _>("l.status", f.status.clone())
        .eq_opt::<Text, _>("l.source", f.source.clone())
        .eq_opt::<Text, _>("l.campaign", f.campaign.clone())
        .eq_opt::<Text, _>("l.region", f.region.clone())
        .eq_opt::<Text, _>("l.industry", f.industry.clone())
        .cmp_ts("l.created_at", ">=", f.created_after)
        .cmp_ts("l.created_at", "<", f.created_before)
        .cmp_ts("l.updated_at", ">=", f.updated_after)
        .cmp_ts("l.updated_at", "<", f.updated_before)
        .search(SEARCH_EXPR, SEARCH_FIELDS, "l", &f.search, f.q.as_deref());
    if let Some(tag) = &f.tag {
        sql.push(" AND l.tags @> ARRAY[");
        sql.bind::<Text, _>(tag.clone());
        sql.push("]::text[]");
    }
    match f.unanswered {
        Some(true) => {
            sql.push(" AND l.first_response_at IS NULL AND l.status IN ('new', 'assigned')");
        }
        Some(false) => {
            sql.push(" AND NOT (l.first_response_at IS NULL AND l.status IN ('new', 'assigned'))");
        }
        None => {}
    }
    if let Some((standing, now)) = f.sla {
        use diesel::sql_types::Timestamptz;
        // A pending SLA past its due time is breached before the sweep records it.
        sql.push(" AND EXISTS (SELECT 1 FROM lead_slas sla WHERE sla.lead_id = l.id AND ");
        match standing {
            SlaStanding::Met => {
                sql.push("sla.status = 'met'");
            }
            SlaStanding::Breached => {
                sql.push("(sla.status = 'breached' OR (sla.status = 'pending' AND sla.due_at < ");
                sql.bind::<Timestamptz, _>(now);
                sql.push("))");
            }
            SlaStanding::Pending => {
                sql.push("sla.status = 'pending' AND sla.due_at >= ");
                sql.bind::<Timestamptz, _>(now);
            }
        }
        sql.push(")");
    }
    super::fields::push_custom(sql, "l", &f.custom);
}

pub fn list(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &LeadFilter,
    spec: &ListSpec,
) -> QueryResult<Page<LeadRow>> {
    let mut sql = Sql::new("SELECT l.* FROM leads l WHERE l.deleted_at IS NULL");
    sql.scope("l", scope);
    push_filter(&mut sql, filter);
    spec.load(conn, sql, "l.id", |r: &LeadRow| r.id)
}

pub fn list_changed(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    filter: &LeadFilter,
    since: DateTime<Utc>,
    spec: &ListSpec,
    with_deleted: bool,
) -> QueryResult<(Page<LeadRow>, Vec<Uuid>)> {
    let mut sql = Sql::new("SELECT l.* FROM leads l WHERE l.deleted_at IS NULL");
    sql.scope("l", scope);
    push_filter(&mut sql, filter);
    sql.cmp_ts("l.updated_at", ">", Some(since));
    let page = spec.load(conn, sql, "l.id", |r: &LeadRow| r.id)?;
    let deleted = if with_deleted {
        deleted_since(conn, "leads", scope, since)?
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
) -> QueryResult<Option<LeadRow>> {
    super::soft_delete::find_in(conn, "leads", scope, id, liveness, lock)
}

/// Locks and returns the given live leads inside the scope (others are simply absent).
pub fn find_many_for_update(conn: &mut PgConnection, scope: &ScopeFilter, ids: &[Uuid]) -> QueryResult<Vec<LeadRow>> {
    let mut sql = Sql::new("SELECT l.* FROM leads l WHERE l.deleted_at IS NULL AND l.id = ANY(");
    sql.bind::<Array<SqlUuid>, _>(ids.to_vec());
    sql.push(")");
    sql.scope("l", scope);
    sql.push(" ORDER BY l.id FOR UPDATE");
    sql.into_query().load(conn)
}

/// A live, unconverted lead in scope with the same mobile/phone or e-mail, or the
/// same person at the same company.
pub fn find_duplicate(
    conn: &mut PgConnection,
    scope: &ScopeFilter,
    name_key: &str,
    company_key: &str,
    phones: &[&str],
    email: Option<&str>,
) -> QueryResult<Option<(LeadRow, &'static str)>> {
    let mut keys = vec![format!("lead:name:{company_key}:{name_key}")];
    keys.extend(phones.iter().map(|p| format!("lead:phone:{p}")));
    keys.extend(email.map(|e| format!("lead:email:{e}")));
    advisory_lock_keys(conn, keys)?;
    let phones: Vec<String> = phones.iter().map(|p| (*p).to_owned()).collect();
    let mut sql = Sql::new(
        "SELECT l.* FROM leads l WHERE l.deleted_at IS NULL AND l.status <> 'converted' AND ((lower(l.person_name) = ",
    );
    sql.bind::<Text, _>(name_key.to_owned());
    sql.push(" AND lower(coalesce(l.company, '')) = ");
    sql.bind::<Text, _>(company_key.to_owned());
    sql.push(") OR l.mobile = ANY(");
    sql.bind::<Array<Text>, _>(phones.clone());
    sql.push(") OR l.phone = ANY(");
    sql.bind::<Array<Text>, _>(phones.clone());
    sql.push(") OR l.email = ");
    sql.bind::<Nullable<Text>, _>(email.map(str::to_owned));
    sql.push(")");
    sql.scope("l", scope);
    sql.push(" ORDER BY l.created_at LIMIT 1");
    let row: Option<LeadRow> = sql.into_query().get_result(conn).optional()?;
    Ok(row.map(|r| {
        let on = if email.is_some() && r.email.as_deref() == email {
            "email"
        } else if r.mobile.as_ref().is_some_and(|m| phones.contains(m))
            || r.phone.as_ref().is_some_and(|p| phones.contains(p))
        {
            "phone"
        } else {
            "name"
        };
        (r, on)
    }))
}

pub fn insert(conn: &mut PgConnection, new: &NewLead) -> QueryResult<LeadRow> {
    diesel::insert_into(leads::table)
        .values(new)
        .returning(LeadRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, changes: &LeadChanges) -> QueryResult<LeadRow> {
    diesel::update(leads::table.find(id))
        .set((
            changes,
            leads::version.eq(leads::version + 1),
            leads::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LeadRow::as_returning())
        .get_result(conn)
}

/// Records the first response to a lead (the first activity logged on it): sets
/// `first_response_at` once and moves new/assigned leads to contacted. Returns the
/// lead before and after when it changed.
pub fn record_response(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<Option<(LeadRow, LeadRow)>> {
    let Some(before) = leads::table
        .find(id)
        .select(LeadRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let mut changes = LeadChanges::default();
    if before.first_response_at.is_none() {
        changes.first_response_at = Some(Some(at));
        answer_sla(conn, id, at)?;
    }
    if matches!(before.status.as_str(), "new" | "assigned") {
        changes.status = Some("contacted".into());
    }
    let touch = diesel::update(leads::table.find(id)).set(
        leads::last_activity_at.eq(diesel::dsl::sql::<Nullable<diesel::sql_types::Timestamptz>>(
            "greatest(last_activity_at, ",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(at)
        .sql(")")),
    );
    touch.execute(conn)?;
    if changes.first_response_at.is_none() && changes.status.is_none() {
        return Ok(None);
    }
    let after = update(conn, id, &changes)?;
    Ok(Some((before, after)))
}

/// A lead's response SLA.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, Serialize)]
#[diesel(table_name = crate::schema::lead_slas)]
pub struct SlaRow {
    pub lead_id: Uuid,
    pub assigned_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub status: String,
    pub responded_at: Option<DateTime<Utc>>,
    pub response_minutes: Option<i32>,
}

/// Starts (or restarts, for a new owner) the response SLA of an unanswered lead.
pub fn start_sla(
    conn: &mut PgConnection,
    lead: Uuid,
    assigned_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> QueryResult<()> {
    use crate::schema::lead_slas::dsl as s;
    diesel::insert_into(s::lead_slas)
        .values((
            s::lead_id.eq(lead),
            s::assigned_at.eq(assigned_at),
            s::due_at.eq(due_at),
            s::status.eq("pending"),
        ))
        .on_conflict(s::lead_id)
        .do_update()
        .set((
            s::assigned_at.eq(assigned_at),
            s::due_at.eq(due_at),
            s::status.eq("pending"),
            s::responded_at.eq(None::<DateTime<Utc>>),
            s::response_minutes.eq(None::<i32>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records the first response against a pending SLA: met by the due time, else breached.
fn answer_sla(conn: &mut PgConnection, lead: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE lead_slas SET responded_at = $2, \
             response_minutes = greatest(0, floor(extract(epoch FROM $2 - assigned_at) / 60))::integer, \
             status = CASE WHEN status = 'pending' AND $2 <= due_at THEN 'met' ELSE 'breached' END \
         WHERE lead_id = $1 AND responded_at IS NULL",
    )
    .bind::<SqlUuid, _>(lead)
    .bind::<diesel::sql_types::Timestamptz, _>(at)
    .execute(conn)?;
    Ok(())
}

/// The SLAs of these leads.
pub fn slas(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<SlaRow>> {
    use crate::schema::lead_slas::dsl as s;
    s::lead_slas
        .filter(s::lead_id.eq_any(ids))
        .select(SlaRow::as_select())
        .load(conn)
}

/// Marks pending SLAs due by `now` breached (at most `limit`, oldest first, skipping
/// rows another transaction holds). Returns the ids marked.
pub fn mark_sla_breaches(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let rows: Vec<Id> = diesel::sql_query(
        "UPDATE lead_slas SET status = 'breached' \
         WHERE lead_id IN (SELECT lead_id FROM lead_slas WHERE status = 'pending' AND due_at <= $1 \
                           ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING lead_id AS id",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
