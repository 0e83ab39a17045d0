//! Accounts (customers): create with the duplicate check, update, and delete / restore
//! with the contacts that go and come back with them.

use crm_db::repo::accounts::{self, AccountChanges, AccountRow, Liveness, NewAccount};
use crm_db::repo::audit;
use crm_domain::access::Action;
use crm_domain::normalize;
use diesel::PgConnection;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{patch, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::owners::resolve_owner;
use crate::{custom, prune_changes, write};

const RES: &str = "accounts";

/// A new account, by its API field names (`type`, `tier`, `source` as catalogue values).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: String,
    /// Defaults to `prospect`.
    #[serde(rename = "type")]
    pub account_type: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub tier: Option<String>,
    pub source: Option<String>,
    pub parent_id: Option<Uuid>,
    /// Defaults to the actor; another owner needs `accounts:assign`.
    pub owner_id: Option<Uuid>,
    pub notes: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// A partial change: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub account_type: Option<String>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub website: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub tier: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub source: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub parent_id: Option<Option<Uuid>>,
    pub owner_id: Option<Uuid>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub notes: Option<Option<String>>,
    pub custom: Option<Map<String, Value>>,
}

/// A parent must be a live account the actor can see.
fn check_parent(c: &mut PgConnection, ctx: &Ctx, parent: Uuid) -> AppResult<()> {
    match accounts::find(c, &ctx.read_scope(RES), parent, Liveness::Live, false)? {
        Some(_) => Ok(()),
        None => Err(AppError::field("parent_id", "not_found", "no such account")),
    }
}

/// Creates an account from its fields. Refused with `duplicate` (409, with the
/// existing record) when an account the actor can see has the same normalised name,
/// phone or e-mail, unless `allow_duplicate`.
pub fn create(
    c: &mut PgConnection,
    ctx: &Ctx,
    fields: &Map<String, Value>,
    allow_duplicate: bool,
) -> AppResult<AccountRow> {
    ctx.require(RES, Action::Create)?;
    let input: AccountInput = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    let name = errs.max_len("name", Some(name), 200).unwrap_or_default();
    let mut new = NewAccount {
        id: Uuid::now_v7(),
        name_norm: normalize::name_key(&name),
        name,
        account_type: errs
            .choice(RES, "type", input.account_type)
            .unwrap_or_else(|| "prospect".into()),
        industry: errs.line_max("industry", input.industry, 100),
        region: errs.line_max("region", input.region, 100),
        address: errs.line_max("address", input.address, 500),
        phone: errs.phone("phone", input.phone),
        email: errs.email("email", input.email),
        website: errs.website("website", input.website),
        tier: errs.choice(RES, "tier", input.tier),
        source: errs.choice(RES, "source", input.source),
        parent_id: input.parent_id,
        owner_id: input.owner_id.unwrap_or_else(|| ctx.user_id()),
        team_id: None,
        notes: errs.text_max("notes", input.notes, 10_000),
        custom: json!({}),
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    errs.into_result()?;
    new.team_id = resolve_owner(c, ctx, RES, new.owner_id)?;
    if let Some(p) = new.parent_id {
        check_parent(c, ctx, p)?;
    }
    if !allow_duplicate {
        let read = ctx.read_scope(RES);
        if let Some((row, on)) =
            accounts::find_duplicate(c, &read, &new.name_norm, new.phone.as_deref(), new.email.as_deref())?
        {
            return Err(AppError::conflict(
                "duplicate",
                format!("an account with the same {on} already exists; pass allow_duplicate=true to create anyway"),
            )
            .with_extra("existing", json!({"id": row.id, "name": row.name, "matched_on": on})));
        }
    }
    new.custom = custom::write(c, ctx, RES, input.custom.as_ref(), None, Value::Null)?.unwrap_or_else(|| json!({}));
    let row = accounts::insert(c, &new)?;
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

/// Changes an account. Another owner needs `accounts:assign` (the team follows the
/// owner); a parent must be visible and not make a cycle.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<AccountRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: AccountPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    let name = name.and_then(|n| errs.max_len("name", Some(n), 200));
    let mut ch = AccountChanges {
        name_norm: name.as_deref().map(normalize::name_key),
        name,
        account_type: input.account_type.and_then(|t| errs.choice(RES, "type", Some(t))),
        industry: patch(input.industry, |v| errs.line_max("industry", v, 100)),
        region: patch(input.region, |v| errs.line_max("region", v, 100)),
        address: patch(input.address, |v| errs.line_max("address", v, 500)),
        phone: patch(input.phone, |v| errs.phone("phone", v)),
        email: patch(input.email, |v| errs.email("email", v)),
        website: patch(input.website, |v| errs.website("website", v)),
        tier: patch(input.tier, |v| errs.choice(RES, "tier", v)),
        source: patch(input.source, |v| errs.choice(RES, "source", v)),
        parent_id: input.parent_id,
        owner_id: input.owner_id,
        team_id: None,
        notes: patch(input.notes, |v| errs.text_max("notes", v, 10_000)),
        custom: None,
    };
    errs.into_result()?;
    write::update(c, ctx, &scope, id, expected, "account", |c, before: &AccountRow| {
        ch.custom = custom::write(
            c,
            ctx,
            RES,
            input.custom.as_ref(),
            Some((id, &before.custom)),
            Value::Null,
        )?;
        if let Some(owner) = ch.owner_id.filter(|o| *o != before.owner_id) {
            ctx.require(RES, Action::Assign)?;
            ch.team_id = Some(resolve_owner(c, ctx, RES, owner)?);
        }
        if let Some(Some(parent)) = ch.parent_id.filter(|p| *p != before.parent_id) {
            check_parent(c, ctx, parent)?;
            if accounts::in_parent_chain(c, parent, id)? {
                return Err(AppError::field(
                    "parent_id",
                    "cycle",
                    "an account cannot be its own ancestor",
                ));
            }
        }
        let unchanged = prune_changes!(ch, before;
            name, name_norm, account_type, industry, region, address, phone, email,
            website, tier, source, parent_id, owner_id, team_id, notes, custom);
        if unchanged {
            return Ok(None);
        }
        Ok(Some(accounts::update(c, id, &ch)?))
    })
}

fn cascade_change(before: Value, after: Value, account: Uuid) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("deleted_at".into(), json!({"before": before, "after": after}));
    m.insert("cascade_from_account".into(), json!(account));
    m
}

/// Moves an account to the recycle bin with its live contacts (one shared time, so a
/// restore brings back exactly those).
pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid, expected: Option<i32>) -> AppResult<AccountRow> {
    let scope = ctx.filter(RES, Action::Delete)?;
    let before = accounts::find(c, &scope, id, Liveness::Live, true)?.ok_or(AppError::NotFound("account"))?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(AppError::Stale {
            current: before.version,
        });
    }
    let (row, contact_ids) = accounts::soft_delete(c, id, ctx.now())?;
    let actor = ctx.actor();
    let change = json!({"deleted_at": {"before": null, "after": row.deleted_at}});
    let change = change.as_object().cloned().unwrap_or_default();
    audit::record(c, &actor, RES, id, "deleted", change, Value::Null)?;
    for cid in contact_ids {
        let ch = cascade_change(Value::Null, json!(row.deleted_at), id);
        audit::record(c, &actor, "contacts", cid, "deleted", ch, Value::Null)?;
    }
    Ok(row)
}

/// Brings a deleted account back with the contacts deleted together with it.
pub fn restore(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<AccountRow> {
    let scope = ctx.filter(RES, Action::Delete)?;
    let before =
        accounts::find(c, &scope, id, Liveness::Deleted, true)?.ok_or(AppError::NotFound("deleted account"))?;
    let (row, contact_ids) = accounts::restore(c, &before)?;
    let actor = ctx.actor();
    let change = json!({"deleted_at": {"before": before.deleted_at, "after": null}});
    let change = change.as_object().cloned().unwrap_or_default();
    audit::record(c, &actor, RES, id, "restored", change, Value::Null)?;
    for cid in contact_ids {
        let ch = cascade_change(json!(before.deleted_at), Value::Null, id);
        audit::record(c, &actor, "contacts", cid, "restored", ch, Value::Null)?;
    }
    Ok(row)
}
