//! Contacts: the people at an account. Create with the duplicate check, update.

use chrono::NaiveDate;
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::contacts::{self, ContactChanges, ContactRow, NewContact};
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

const RES: &str = "contacts";

/// A new contact, by its API field names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub account_id: Uuid,
    pub name: String,
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
    /// Defaults to the actor; another owner needs `contacts:assign`.
    pub owner_id: Option<Uuid>,
    pub custom: Option<Map<String, Value>>,
}

/// A partial change: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    pub account_id: Option<Uuid>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub wechat: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub birthday: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub decision_role: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub preferences: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub pain_points: Option<Option<String>>,
    #[serde(default, deserialize_with = "write::double_option")]
    pub notes: Option<Option<String>>,
    pub owner_id: Option<Uuid>,
    pub custom: Option<Map<String, Value>>,
}

/// The account must be live and visible to the actor.
fn check_account(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    match accounts::find(c, &ctx.read_scope("accounts"), id, Liveness::Live, false)? {
        Some(_) => Ok(()),
        None => Err(AppError::field("account_id", "not_found", "no such account")),
    }
}

fn check_birthday(errs: &mut Errors, ctx: &Ctx, b: Option<NaiveDate>) -> Option<NaiveDate> {
    if b.is_some_and(|b| b > ctx.today()) {
        errs.add("birthday", "out_of_range", "must not be in the future");
    }
    b
}

/// Creates a contact at a visible account. Refused with `duplicate` (409) when a
/// contact of that account has the same name, a phone or the e-mail, unless
/// `allow_duplicate`.
pub fn create(
    c: &mut PgConnection,
    ctx: &Ctx,
    fields: &Map<String, Value>,
    allow_duplicate: bool,
) -> AppResult<ContactRow> {
    ctx.require(RES, Action::Create)?;
    let input: ContactInput = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    let name = errs.max_len("name", Some(name), 200).unwrap_or_default();
    let mut new = NewContact {
        id: Uuid::now_v7(),
        account_id: input.account_id,
        name_norm: normalize::name_key(&name),
        name,
        title: errs.line_max("title", input.title, 200),
        department: errs.line_max("department", input.department, 200),
        mobile: errs.phone("mobile", input.mobile),
        phone: errs.phone("phone", input.phone),
        email: errs.email("email", input.email),
        wechat: errs.line_max("wechat", input.wechat, 100),
        birthday: check_birthday(&mut errs, ctx, input.birthday),
        decision_role: errs.choice(RES, "decision_role", input.decision_role),
        preferences: errs.text_max("preferences", input.preferences, 5_000),
        pain_points: errs.text_max("pain_points", input.pain_points, 5_000),
        notes: errs.text_max("notes", input.notes, 10_000),
        owner_id: input.owner_id.unwrap_or_else(|| ctx.user_id()),
        team_id: None,
        custom: json!({}),
        created_by: Some(ctx.user_id()).filter(|u| !u.is_nil()),
    };
    errs.into_result()?;
    check_account(c, ctx, new.account_id)?;
    new.team_id = resolve_owner(c, ctx, RES, new.owner_id)?;
    if !allow_duplicate {
        let phones: Vec<&str> = new.mobile.iter().chain(new.phone.iter()).map(String::as_str).collect();
        let read = ctx.read_scope(RES);
        if let Some((row, on)) =
            contacts::find_duplicate(c, &read, new.account_id, &new.name_norm, &phones, new.email.as_deref())?
        {
            return Err(AppError::conflict(
                "duplicate",
                format!("a contact with the same {on} already exists; pass allow_duplicate=true to create anyway"),
            )
            .with_extra(
                "existing",
                json!({"id": row.id, "name": row.name, "account_id": row.account_id, "matched_on": on}),
            ));
        }
    }
    new.custom = custom::write(c, ctx, RES, input.custom.as_ref(), None, Value::Null)?.unwrap_or_else(|| json!({}));
    let row = contacts::insert(c, &new)?;
    write::created(c, ctx, RES, row.id)?;
    Ok(row)
}

/// Changes a contact. Moving it to another account needs that account visible; another
/// owner needs `contacts:assign`.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<ContactRow> {
    let scope = ctx.filter(RES, Action::Update)?;
    let input: ContactPatch = write::input(ctx, RES, fields)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    let name = name.and_then(|n| errs.max_len("name", Some(n), 200));
    let mut ch = ContactChanges {
        account_id: input.account_id,
        name_norm: name.as_deref().map(normalize::name_key),
        name,
        title: patch(input.title, |v| errs.line_max("title", v, 200)),
        department: patch(input.department, |v| errs.line_max("department", v, 200)),
        mobile: patch(input.mobile, |v| errs.phone("mobile", v)),
        phone: patch(input.phone, |v| errs.phone("phone", v)),
        email: patch(input.email, |v| errs.email("email", v)),
        wechat: patch(input.wechat, |v| errs.line_max("wechat", v, 100)),
        birthday: patch(input.birthday, |v| check_birthday(&mut errs, ctx, v)),
        decision_role: patch(input.decision_role, |v| errs.choice(RES, "decision_role", v)),
        preferences: patch(input.preferences, |v| errs.text_max("preferences", v, 5_000)),
        pain_points: patch(input.pain_points, |v| errs.text_max("pain_points", v, 5_000)),
        notes: patch(input.notes, |v| errs.text_max("notes", v, 10_000)),
        owner_id: input.owner_id,
        team_id: None,
        custom: None,
    };
    errs.into_result()?;
    write::update(c, ctx, &scope, id, expected, "contact", |c, before: &ContactRow| {
        ch.custom = custom::write(
            c,
            ctx,
            RES,
            input.custom.as_ref(),
            Some((id, &before.custom)),
            Value::Null,
        )?;
        if let Some(account) = ch.account_id.filter(|a| *a != before.account_id) {
            check_account(c, ctx, account)?;
        }
        if let Some(owner) = ch.owner_id.filter(|o| *o != before.owner_id) {
            ctx.require(RES, Action::Assign)?;
            ch.team_id = Some(resolve_owner(c, ctx, RES, owner)?);
        }
        let unchanged = prune_changes!(ch, before;
            account_id, name, name_norm, title, department, mobile, phone, email, wechat,
            birthday, decision_role, preferences, pain_points, notes, owner_id, team_id, custom);
        if unchanged {
            return Ok(None);
        }
        Ok(Some(contacts::update(c, id, &ch)?))
    })
}
