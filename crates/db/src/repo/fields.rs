//! Custom field definitions, field-level permissions, flagged values and layouts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_domain::fields::{FieldAccess, FieldType};
use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Nullable, Text, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{
    field_definitions as fd, field_permissions as fp, flagged_values as fv, layouts as lt, user_roles,
};
use crate::QueryResult;

/// Objects that carry custom fields, with their table.
pub const OBJECTS: &[&str] = &["accounts", "contacts", "leads", "opportunities"];

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = fd)]
pub struct FieldDefRow {
    pub id: Uuid,
    pub object: String,
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    pub help_text: Option<String>,
    pub field_type: String,
    pub required: bool,
    pub required_from_stage_id: Option<Uuid>,
    pub default_value: Option<Value>,
    pub position: i32,
    pub group_name: Option<String>,
    pub settings: Value,
    pub filterable: bool,
    pub searchable: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl FieldDefRow {
    pub fn field_type(&self) -> FieldType {
        FieldType::parse(&self.field_type).unwrap_or(FieldType::Text)
    }

    pub fn spec(&self) -> crm_domain::fields::FieldSpec {
        crm_domain::fields::FieldSpec {
            key: self.key.clone(),
            field_type: self.field_type(),
            settings: serde_json::from_value(self.settings.clone()).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = fd)]
pub struct NewFieldDef {
    pub id: Uuid,
    pub object: String,
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    pub help_text: Option<String>,
    pub field_type: String,
    pub required: bool,
    pub required_from_stage_id: Option<Uuid>,
    pub default_value: Option<Value>,
    pub position: i32,
    pub group_name: Option<String>,
    pub settings: Value,
    pub filterable: bool,
    pub searchable: bool,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = fd)]
pub struct FieldDefChanges {
    pub label_zh: Option<String>,
    pub label_en: Option<String>,
    pub help_text: Option<Option<String>>,
    pub field_type: Option<String>,
    pub required: Option<bool>,
    pub required_from_stage_id: Option<Option<Uuid>>,
    pub default_value: Option<Option<Value>>,
    pub position: Option<i32>,
    pub group_name: Option<Option<String>>,
    pub settings: Option<Value>,
    pub filterable: Option<bool>,
    pub searchable: Option<bool>,
    pub archived_at: Option<Option<DateTime<Utc>>>,
}

pub fn list(conn: &mut PgConnection, object: &str, include_archived: bool) -> QueryResult<Vec<FieldDefRow>> {
    let mut q = fd::table
        .filter(fd::object.eq(object))
        .select(FieldDefRow::as_select())
        .order((fd::position, fd::key))
        .into_boxed();
    if !include_archived {
        q = q.filter(fd::archived_at.is_null());
    }
    q.load(conn)
}

pub fn find(conn: &mut PgConnection, object: &str, key: &str, lock: bool) -> QueryResult<Option<FieldDefRow>> {
    let q = fd::table
        .filter(fd::object.eq(object))
        .filter(fd::key.eq(key))
        .select(FieldDefRow::as_select());
    if lock {
        q.for_update().first(conn).optional()
    } else {
        q.first(conn).optional()
    }
}

pub fn insert(conn: &mut PgConnection, new: &NewFieldDef) -> QueryResult<FieldDefRow> {
    diesel::insert_into(fd::table)
        .values(new)
        .returning(FieldDefRow::as_returning())
        .get_result(conn)
}

pub fn update(conn: &mut PgConnection, id: Uuid, ch: &FieldDefChanges) -> QueryResult<FieldDefRow> {
    diesel::update(fd::table.find(id))
        .set((ch, fd::version.eq(fd::version + 1), fd::updated_at.eq(diesel::dsl::now)))
        .returning(FieldDefRow::as_returning())
        .get_result(conn)
}

/// SQL expression for a custom value as used by filters, sorts and indexes:
/// numbers through `crm_num` (missing sorts lowest), everything else as text.
pub fn value_expr(alias: &str, key: &str, t: FieldType) -> String {
    if t.is_numeric() {
        format!("coalesce(crm_num({alias}custom->>'{key}'), {NUM_MISSING})")
    } else {
        format!("coalesce({alias}custom->>'{key}', '')")
    }
}

/// What a missing numeric value sorts as (below any real value).
pub const NUM_MISSING: &str = "-999999999999999999999999999";

fn index_name(object: &str, key: &str) -> String {
    format!("{object}_cf_{key}_idx")
}

/// Creates (or replaces) the expression index of a filterable field. `key` and
/// `object` are validated identifiers, never user text.
pub fn create_index(conn: &mut PgConnection, object: &str, key: &str, t: FieldType) -> QueryResult<()> {
    drop_index(conn, object, key)?;
    diesel::sql_query(format!(
        "CREATE INDEX {} ON {object} (({}), id) WHERE deleted_at IS NULL",
        index_name(object, key),
        value_expr("", key, t)
    ))
    .execute(conn)?;
    Ok(())
}

pub fn drop_index(conn: &mut PgConnection, object: &str, key: &str) -> QueryResult<()> {
    diesel::sql_query(format!("DROP INDEX IF EXISTS {}", index_name(object, key))).execute(conn)?;
    Ok(())
}

fn search_index_name(object: &str, key: &str) -> String {
    format!("{object}_cfs_{key}_idx")
}

/// The trigram index that lets the list's `q` search a searchable text field.
pub fn create_search_index(conn: &mut PgConnection, object: &str, key: &str) -> QueryResult<()> {
    diesel::sql_query(format!(
        "CREATE INDEX IF NOT EXISTS {} ON {object} USING gin ((custom->>'{key}') gin_trgm_ops) \
         WHERE deleted_at IS NULL",
        search_index_name(object, key)
    ))
    .execute(conn)?;
    Ok(())
}

pub fn drop_search_index(conn: &mut PgConnection, object: &str, key: &str) -> QueryResult<()> {
    diesel::sql_query(format!("DROP INDEX IF EXISTS {}", search_index_name(object, key))).execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
pub struct StoredValue {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub value: Option<Value>,
}

/// Every live record's value of a custom field (None when absent), for re-checking
/// existing data against a changed definition.
pub fn stored_values(conn: &mut PgConnection, object: &str, key: &str) -> QueryResult<Vec<StoredValue>> {
    diesel::sql_query(format!(
        "SELECT id, custom->'{key}' AS value FROM {object} WHERE deleted_at IS NULL"
    ))
    .load(conn)
}

/// Sets one custom value on the given records (without bumping versions: a schema
/// migration, recorded in the audit trail of the field definition).
pub fn set_values(conn: &mut PgConnection, object: &str, key: &str, ids: &[Uuid], value: &Value) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "UPDATE {object} SET custom = jsonb_set(custom, ARRAY[$1], $2, true), updated_at = now() WHERE id = ANY($3)"
    ))
    .bind::<Text, _>(key)
    .bind::<Jsonb, _>(value)
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
    .execute(conn)
}

pub fn flag(
    conn: &mut PgConnection,
    object: &str,
    key: &str,
    rows: &[(Uuid, Option<Value>)],
    reason: &str,
) -> QueryResult<()> {
    for chunk in rows.chunks(1000) {
        let values: Vec<_> = chunk
            .iter()
            .map(|(id, v)| {
                (
                    fv::object.eq(object),
                    fv::record_id.eq(*id),
                    fv::field_key.eq(key),
                    fv::value.eq(v.clone()),
                    fv::reason.eq(reason),
                )
            })
            .collect();
        diesel::insert_into(fv::table)
            .values(values)
            .on_conflict((fv::object, fv::field_key, fv::record_id))
            .do_update()
            .set((fv::reason.eq(reason), fv::flagged_at.eq(diesel::dsl::now)))
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = fv)]
pub struct FlaggedRow {
    pub object: String,
    pub record_id: Uuid,
    pub field_key: String,
    pub value: Option<Value>,
    pub reason: String,
    pub flagged_at: DateTime<Utc>,
}

pub fn flagged(conn: &mut PgConnection, object: &str, key: &str, limit: i64) -> QueryResult<Vec<FlaggedRow>> {
    fv::table
        .filter(fv::object.eq(object))
        .filter(fv::field_key.eq(key))
        .select(FlaggedRow::as_select())
        .order(fv::record_id)
        .limit(limit)
        .load(conn)
}

/// Clears the flag of a record's field once a valid value is written.
pub fn unflag(conn: &mut PgConnection, object: &str, record_id: Uuid, keys: &[String]) -> QueryResult<()> {
    diesel::delete(
        fv::table
            .filter(fv::object.eq(object))
            .filter(fv::record_id.eq(record_id))
            .filter(fv::field_key.eq_any(keys)),
    )
    .execute(conn)?;
    Ok(())
}

/// Restrictions of a set of roles combined into the user's effective access: a field
/// is restricted only if every role restricts it (then the most permissive applies).
pub fn effective_access(conn: &mut PgConnection, role_ids: &[Uuid]) -> QueryResult<Vec<(String, String, FieldAccess)>> {
    if role_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, String, String, String)> = fp::table
        .filter(fp::role_id.eq_any(role_ids))
        .select((fp::role_id, fp::object, fp::field, fp::access))
        .load(conn)?;
    let mut per_field: BTreeMap<(String, String), Vec<FieldAccess>> = BTreeMap::new();
    for (_, object, field, access) in rows {
        per_field
            .entry((object, field))
            .or_default()
            .push(FieldAccess::parse(&access).unwrap_or(FieldAccess::Full));
    }
    let mut out = Vec::new();
    for ((object, field), accesses) in per_field {
        let mut all: Vec<Option<FieldAccess>> = accesses.into_iter().map(Some).collect();
        all.resize(role_ids.len().max(all.len()), None);
        let a = FieldAccess::combine(&all);
        if a != FieldAccess::Full {
            out.push((object, field, a));
        }
    }
    Ok(out)
}

/// Live formula fields of every object, as (object, `custom.<key>`, input fields).
pub fn formula_inputs(conn: &mut PgConnection) -> QueryResult<Vec<(String, String, Vec<String>)>> {
    let rows: Vec<(String, String, Value)> = fd::table
        .filter(fd::field_type.eq("formula"))
        .filter(fd::archived_at.is_null())
        .select((fd::object, fd::key, fd::settings))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(object, key, settings)| {
            let expr = settings.get("expr")?.as_str()?.to_owned();
            let f = crm_domain::fields::Formula::parse(&expr).ok()?;
            let inputs = f.fields().into_iter().map(str::to_owned).collect();
            Some((object, format!("custom.{key}"), inputs))
        })
        .collect())
}

pub fn role_restrictions(conn: &mut PgConnection, role_id: Uuid) -> QueryResult<Vec<(String, String, String)>> {
    fp::table
        .filter(fp::role_id.eq(role_id))
        .select((fp::object, fp::field, fp::access))
        .order((fp::object, fp::field))
        .load(conn)
}

/// Replaces a role's field restrictions.
pub fn set_role_restrictions(
    conn: &mut PgConnection,
    role_id: Uuid,
    items: &[(String, String, String)],
) -> QueryResult<()> {
    diesel::delete(fp::table.filter(fp::role_id.eq(role_id))).execute(conn)?;
    let rows: Vec<_> = items
        .iter()
        .map(|(o, f, a)| {
            (
                fp::role_id.eq(role_id),
                fp::object.eq(o.clone()),
                fp::field.eq(f.clone()),
                fp::access.eq(a.clone()),
            )
        })
        .collect();
    diesel::insert_into(fp::table).values(rows).execute(conn)?;
    Ok(())
}

/// Users holding any of these roles (their cached access must be refreshed).
pub fn users_with_roles(conn: &mut PgConnection, role_ids: &[Uuid]) -> QueryResult<i64> {
    user_roles::table
        .filter(user_roles::role_id.eq_any(role_ids))
        .count()
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = lt)]
pub struct LayoutRow {
    pub id: Uuid,
    pub object: String,
    pub pipeline_id: Option<Uuid>,
    pub name: String,
    pub sections: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

/// The layout for an object: the pipeline-specific one when asked and present, else
/// the object's general one.
pub fn layout(conn: &mut PgConnection, object: &str, pipeline_id: Option<Uuid>) -> QueryResult<Option<LayoutRow>> {
    let rows: Vec<LayoutRow> = lt::table
        .filter(lt::object.eq(object))
        .select(LayoutRow::as_select())
        .load(conn)?;
    Ok(rows
        .iter()
        .find(|l| pipeline_id.is_some() && l.pipeline_id == pipeline_id)
        .or_else(|| rows.iter().find(|l| l.pipeline_id.is_none()))
        .cloned())
}

pub fn find_layout_exact(
    conn: &mut PgConnection,
    object: &str,
    pipeline_id: Option<Uuid>,
) -> QueryResult<Option<LayoutRow>> {
    let base = lt::table
        .filter(lt::object.eq(object))
        .select(LayoutRow::as_select())
        .for_update();
    match pipeline_id {
        Some(p) => base.filter(lt::pipeline_id.eq(p)).first(conn).optional(),
        None => base.filter(lt::pipeline_id.is_null()).first(conn).optional(),
    }
}

pub fn upsert_layout(
    conn: &mut PgConnection,
    existing: Option<&LayoutRow>,
    object: &str,
    pipeline_id: Option<Uuid>,
    name: &str,
    sections: &Value,
) -> QueryResult<LayoutRow> {
    match existing {
        Some(l) => diesel::update(lt::table.find(l.id))
            .set((
                lt::name.eq(name),
                lt::sections.eq(sections),
                lt::version.eq(lt::version + 1),
                lt::updated_at.eq(diesel::dsl::now),
            ))
            .returning(LayoutRow::as_returning())
            .get_result(conn),
        None => diesel::insert_into(lt::table)
            .values((
                lt::id.eq(Uuid::now_v7()),
                lt::object.eq(object),
                lt::pipeline_id.eq(pipeline_id),
                lt::name.eq(name),
                lt::sections.eq(sections),
            ))
            .returning(LayoutRow::as_returning())
            .get_result(conn),
    }
}

/// A `custom.*` list filter, ready for SQL.
#[derive(Debug, Clone)]
pub enum CustomCond {
    /// `custom @> {"key": value}` (GIN index).
    Contains(Value),
    /// Numeric comparison on the field's expression.
    Num {
        key: String,
        field_type: FieldType,
        op: &'static str,
        value: rust_decimal::Decimal,
    },
    /// Text comparison on the field's expression (dates, datetimes).
    Text {
        key: String,
        field_type: FieldType,
        op: &'static str,
        value: String,
    },
}

/// Appends custom-field conditions for a table alias. Keys are validated identifiers.
pub fn push_custom(sql: &mut crate::sql::Sql<'_>, alias: &str, conds: &[CustomCond]) {
    for c in conds {
        match c {
            CustomCond::Contains(v) => {
                sql.push(&format!(" AND {alias}.custom @> "));
                sql.bind::<Jsonb, _>(v.clone());
            }
            CustomCond::Num {
                key,
                field_type,
                op,
                value,
            } => {
                sql.push(&format!(
                    " AND {} {op} ",
                    value_expr(&format!("{alias}."), key, *field_type)
                ));
                sql.bind::<diesel::sql_types::Numeric, _>(*value);
                if *op == "<=" {
                    sql.push(&format!(" AND {alias}.custom ? '{key}'"));
                }
            }
            CustomCond::Text {
                key,
                field_type,
                op,
                value,
            } => {
                sql.push(&format!(
                    " AND {} {op} ",
                    value_expr(&format!("{alias}."), key, *field_type)
                ));
                sql.bind::<Text, _>(value.clone());
                if *op == "<=" {
                    sql.push(&format!(" AND {alias}.custom ? '{key}'"));
                }
            }
        }
    }
}
