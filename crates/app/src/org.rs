//! The organisation (`teams`, `roles`, `users`, `api_keys` admin): the team tree, roles
//! and their permissions, users with their teams, managers and roles, and API keys of
//! service users. Every change takes effect at once for every session (`NOTIFY
//! crm_auth`). Passwords arrive hashed; no secret is ever recorded.

use chrono::{DateTime, Utc};
use crm_db::repo::{api_keys, audit, auth as auth_repo, roles, teams, users};
use crm_domain::access::{Action, Grant};
use crm_domain::{normalize, secrets};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::{patch, Errors};
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::{prune_changes, write};

/// Kinds of team.
pub const TEAM_KINDS: &[&str] = &["company", "region", "department", "team"];

/// Tells every instance that the organisation or permissions changed.
pub fn notify_changed(c: &mut PgConnection) -> AppResult<()> {
    diesel::sql_query("NOTIFY crm_auth").execute(c)?;
    Ok(())
}

fn unique(e: DieselError, detail: &'static str) -> AppError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::conflict("duplicate", detail),
        other => other.into(),
    }
}

fn in_use(e: DieselError, detail: &'static str) -> AppError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => AppError::conflict("in_use", detail),
        other => other.into(),
    }
}

/// Records a hard delete: every field of the record as it was, and `<object>.deleted`.
fn deleted(c: &mut PgConnection, ctx: &Ctx, object: &str, id: Uuid, before: &Value) -> AppResult<()> {
    let changes = crm_domain::diff::changes(before, &json!({}));
    audit::record(c, &ctx.actor(), object, id, "deleted", changes, Value::Null)?;
    Ok(())
}

fn check_team_kind(errs: &mut Errors, kind: &str) {
    if !TEAM_KINDS.contains(&kind) {
        errs.add("kind", "invalid_choice", format!("one of {}", TEAM_KINDS.join(", ")));
    }
}

fn team_exists(c: &mut PgConnection, field: &str, id: Uuid) -> AppResult<()> {
    match teams::find(c, id)? {
        Some(_) => Ok(()),
        None => Err(AppError::field(field, "not_found", "no such team")),
    }
}

/// Creates a team under `parent_id` (sibling names are unique).
pub fn create_team(
    c: &mut PgConnection,
    ctx: &Ctx,
    name: &str,
    kind: &str,
    parent_id: Option<Uuid>,
    region: Option<&str>,
) -> AppResult<teams::TeamRow> {
    ctx.require("teams", Action::Admin)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", name);
    check_team_kind(&mut errs, kind);
    let region = errs.line_max("region", region.map(str::to_owned), 100);
    errs.into_result()?;
    if let Some(p) = parent_id {
        team_exists(c, "parent_id", p)?;
    }
    let new = teams::NewTeam {
        id: Uuid::now_v7(),
        name: normalize::clean_text(&name),
        kind: kind.to_owned(),
        parent_id,
        region,
    };
    let row = teams::insert(c, &new).map_err(|e| unique(e, "a sibling team already has this name"))?;
    write::created(c, ctx, "teams", row.id)?;
    notify_changed(c)?;
    Ok(row)
}

/// A change to a team: (name, kind, parent, region); `None` leaves a part as it is.
pub type TeamChange<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<Option<Uuid>>,
    Option<Option<&'a str>>,
);

/// Renames, moves or re-regions a team; moving it under one of its own descendants is
/// a `cycle`.
pub fn update_team(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    (name, kind, parent_id, region): TeamChange<'_>,
) -> AppResult<teams::TeamRow> {
    ctx.require("teams", Action::Admin)?;
    let mut errs = Errors::default();
    let name = name.map(|n| errs.required_text("name", n));
    if let Some(k) = kind {
        check_team_kind(&mut errs, k);
    }
    let region = region.map(|r| errs.line_max("region", r.map(str::to_owned), 100));
    errs.into_result()?;
    let before = teams::find(c, id)?.ok_or(AppError::NotFound("team"))?;
    let version = before.version;
    let row = write::change_locked(c, ctx, ("teams", id), before, (version, expected), |c, _| {
        if let Some(Some(parent)) = parent_id {
            team_exists(c, "parent_id", parent)?;
            if teams::subtree(c, id)?.contains(&parent) {
                return Err(AppError::field("parent_id", "cycle", "a team cannot move under itself"));
            }
        }
        let ch = teams::TeamChanges {
            name,
            kind: kind.map(str::to_owned),
            parent_id,
            region,
        };
        Ok(Some(
            teams::update(c, id, &ch).map_err(|e| unique(e, "a sibling team already has this name"))?,
        ))
    })?;
    notify_changed(c)?;
    Ok(row)
}

/// Deletes a team that has no sub-teams, members or records (`in_use` otherwise).
pub fn delete_team(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    ctx.require("teams", Action::Admin)?;
    teams::find(c, id)?.ok_or(AppError::NotFound("team"))?;
    const IN_USE: &str = "the team still has sub-teams, members or records";
    if teams::in_use(c, id)? {
        return Err(AppError::conflict("in_use", IN_USE));
    }
    let before = write::audit_view(c, "teams", id)?;
    teams::delete(c, id).map_err(|e| in_use(e, IN_USE))?;
    deleted(c, ctx, "teams", id, &before)?;
    notify_changed(c)
}

fn check_grants(errs: &mut Errors, grants: &[Grant]) {
    let mut seen: Vec<&Grant> = Vec::new();
    for (i, g) in grants.iter().enumerate() {
        if let Err(msg) = g.validate() {
            errs.add(&format!("permissions[{i}]"), "invalid_permission", msg);
            continue;
        }
        if seen.iter().any(|o| o.resource == g.resource && o.action == g.action) {
            errs.add(
                &format!("permissions[{i}]"),
                "duplicate",
                format!("{}:{} is listed twice", g.resource, g.action),
            );
            continue;
        }
        seen.push(g);
    }
}

fn role_view(c: &mut PgConnection, id: Uuid) -> AppResult<Value> {
    let mut v = write::audit_view(c, "roles", id)?;
    let grants: Vec<Value> = roles::grants(c, &[id])?
        .into_iter()
        .map(|(_, g)| json!(format!("{}:{}:{}", g.resource, g.action, g.scope.as_str())))
        .collect();
    v["permissions"] = Value::Array(grants);
    Ok(v)
}

/// Creates a custom role with its permissions (checked against the catalogue).
pub fn create_role(
    c: &mut PgConnection,
    ctx: &Ctx,
    (key, name, description): (&str, &str, Option<String>),
    grants: &[Grant],
) -> AppResult<roles::RoleRow> {
    ctx.require("roles", Action::Admin)?;
    let mut errs = Errors::default();
    let valid_key = key.len() >= 2
        && key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_key {
        errs.add(
            "key",
            "invalid_format",
            "lower-case letters, digits and _, starting with a letter",
        );
    }
    let name = errs.required_text("name", name);
    let description = errs.text(description);
    check_grants(&mut errs, grants);
    errs.into_result()?;
    let new = roles::NewRole {
        id: Uuid::now_v7(),
        key: key.to_owned(),
        name,
        description,
        builtin: false,
    };
    let row = roles::insert(c, &new).map_err(|e| unique(e, "a role with this key exists"))?;
    roles::set_grants(c, row.id, grants)?;
    let after = role_view(c, row.id)?;
    audit::record(
        c,
        &ctx.actor(),
        "roles",
        row.id,
        "created",
        crm_domain::diff::created(&after),
        Value::Null,
    )?;
    Ok(row)
}

/// Changes a custom role (built-in ones cannot change: `builtin_role`); its users get
/// the new permissions at once.
pub fn update_role(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    (name, description): (Option<&str>, Option<Option<String>>),
    grants: Option<&[Grant]>,
) -> AppResult<roles::RoleRow> {
    ctx.require("roles", Action::Admin)?;
    let mut errs = Errors::default();
    let name = name.map(|n| errs.required_text("name", n));
    let description = patch(description, |d| errs.text(d));
    if let Some(gs) = grants {
        check_grants(&mut errs, gs);
    }
    errs.into_result()?;
    let row = roles::find_for_update(c, id)?.ok_or(AppError::NotFound("role"))?;
    if expected.is_some_and(|v| v != row.version) {
        return Err(AppError::Stale { current: row.version });
    }
    if row.builtin {
        return Err(AppError::conflict(
            "builtin_role",
            "built-in roles cannot be changed; create a custom role",
        ));
    }
    let old = role_view(c, id)?;
    if let Some(gs) = grants {
        roles::set_grants(c, id, gs)?;
    }
    let after = roles::update(c, id, &roles::RoleChanges { name, description })?;
    let new = role_view(c, id)?;
    audit::record(
        c,
        &ctx.actor(),
        "roles",
        id,
        "updated",
        crm_domain::diff::changes(&old, &new),
        Value::Null,
    )?;
    notify_changed(c)?;
    Ok(after)
}

/// Deletes a custom role nobody uses (`in_use`, `builtin_role` otherwise).
pub fn delete_role(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    ctx.require("roles", Action::Admin)?;
    let row = roles::find_for_update(c, id)?.ok_or(AppError::NotFound("role"))?;
    if row.builtin {
        return Err(AppError::conflict("builtin_role", "built-in roles cannot be deleted"));
    }
    const IN_USE: &str = "the role is assigned to users or API keys";
    if roles::in_use(c, id)? {
        return Err(AppError::conflict("in_use", IN_USE));
    }
    let before = role_view(c, id)?;
    roles::delete(c, id).map_err(|e| in_use(e, IN_USE))?;
    deleted(c, ctx, "roles", id, &before)
}

/// Role ids for role keys; unknown keys are a field error on `roles`.
fn role_ids(c: &mut PgConnection, keys: &[String]) -> AppResult<Vec<Uuid>> {
    let rows = roles::find_by_keys(c, keys)?;
    let unknown: Vec<&str> = keys
        .iter()
        .filter(|k| !rows.iter().any(|r| &r.key == *k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(AppError::field(
            "roles",
            "not_found",
            format!("unknown roles: {}", unknown.join(", ")),
        ));
    }
    Ok(rows.into_iter().map(|r| r.id).collect())
}

fn user_view(c: &mut PgConnection, id: Uuid) -> AppResult<Value> {
    let mut v = write::audit_view(c, "users", id)?;
    let mut keys: Vec<String> = users::role_keys(c, &[id])?.into_iter().map(|(_, k)| k).collect();
    keys.sort();
    v["roles"] = json!(keys);
    Ok(v)
}

fn active_manager(c: &mut PgConnection, id: Uuid) -> AppResult<()> {
    if users::find(c, id)?.is_none_or(|u| !u.is_active) {
        return Err(AppError::field(
            "manager_id",
            "not_found",
            "no active user with this id",
        ));
    }
    Ok(())
}

/// A user to create. A person has a password (hashed by the caller); a service user
/// (for API keys) has none.
pub struct NewUserInput {
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub phone: Option<String>,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub roles: Vec<String>,
    pub is_service: bool,
}

/// Creates a user with its roles (e-mail addresses are unique).
pub fn create_user(c: &mut PgConnection, ctx: &Ctx, input: NewUserInput) -> AppResult<users::UserRow> {
    ctx.require("users", Action::Admin)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    let email = errs.email("email", Some(input.email)).unwrap_or_default();
    let phone = errs.phone("phone", input.phone);
    match (input.is_service, &input.password_hash) {
        (true, Some(_)) => errs.add("password", "not_allowed", "service users cannot have a password"),
        (false, None) => errs.add("password", "required", "a password is required"),
        _ => {}
    }
    errs.into_result()?;
    if let Some(t) = input.team_id {
        team_exists(c, "team_id", t)?;
    }
    if let Some(m) = input.manager_id {
        active_manager(c, m)?;
    }
    let ids = role_ids(c, &input.roles)?;
    let new = users::NewUser {
        id: Uuid::now_v7(),
        email,
        name,
        password_hash: input.password_hash,
        phone,
        team_id: input.team_id,
        manager_id: input.manager_id,
        is_active: true,
        is_service: input.is_service,
    };
    let row = users::insert(c, &new).map_err(|e| unique(e, "another user has this e-mail address"))?;
    users::set_roles(c, row.id, &ids)?;
    let after = user_view(c, row.id)?;
    audit::record(
        c,
        &ctx.actor(),
        "users",
        row.id,
        "created",
        crm_domain::diff::created(&after),
        Value::Null,
    )?;
    Ok(row)
}

/// A change of a user; `password_hash` is a new password, hashed by the caller.
#[derive(Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub phone: Option<Option<String>>,
    pub team_id: Option<Option<Uuid>>,
    pub manager_id: Option<Option<Uuid>>,
    pub roles: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

/// Changes a user: profile, team, manager (not a subordinate: `cycle`), roles, password,
/// active flag. Disabling a user or setting a new password ends all their sessions; a
/// new password also lifts the account's login locks. Nobody disables themself.
pub fn update_user(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    input: UserPatch,
) -> AppResult<users::UserRow> {
    ctx.require("users", Action::Admin)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    let email = input.email.map(|e| errs.email("email", Some(e)).unwrap_or_default());
    let phone = patch(input.phone, |v| errs.phone("phone", v));
    if id == ctx.user_id() && input.is_active == Some(false) {
        errs.add("is_active", "not_allowed", "you cannot disable yourself");
    }
    errs.into_result()?;
    let before = users::find_for_update(c, id)?.ok_or(AppError::NotFound("user"))?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(AppError::Stale {
            current: before.version,
        });
    }
    let password_changed = input.password_hash.is_some();
    if before.is_service && password_changed {
        return Err(AppError::field(
            "password",
            "not_allowed",
            "service users cannot have a password",
        ));
    }
    if let Some(Some(t)) = input.team_id {
        team_exists(c, "team_id", t)?;
    }
    if let Some(Some(m)) = input.manager_id {
        active_manager(c, m)?;
        if users::manages_transitively(c, id, m)? {
            return Err(AppError::field(
                "manager_id",
                "cycle",
                "a user cannot report to themself or a subordinate",
            ));
        }
    }
    let old = user_view(c, id)?;
    let mut role_change = false;
    if let Some(keys) = &input.roles {
        let ids = role_ids(c, keys)?;
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        if Some(&json!(sorted)) != old.get("roles") {
            users::set_roles(c, id, &ids)?;
            role_change = true;
        }
    }
    let mut ch = users::UserChanges {
        email,
        name,
        password_hash: input.password_hash.map(Some),
        phone,
        team_id: input.team_id,
        manager_id: input.manager_id,
        is_active: input.is_active,
    };
    let unchanged = prune_changes!(ch, before; email, name, phone, team_id, manager_id, is_active);
    let email_taken = |e| unique(e, "another user has this e-mail address");
    if !unchanged || password_changed {
        users::update(c, id, &ch).map_err(email_taken)?;
    } else if role_change {
        users::update(c, id, &users::UserChanges::default()).map_err(email_taken)?;
    }
    if ch.is_active == Some(false) || password_changed {
        auth_repo::revoke_user(c, id)?;
    }
    if password_changed {
        // A reset lifts the account's login locks (the owner gets straight in).
        auth_repo::clear_account_throttles(c, &before.email)?;
    }
    let new = user_view(c, id)?;
    let mut changes = crm_domain::diff::changes(&old, &new);
    if password_changed {
        changes.insert("password".into(), json!({"before": "***", "after": "***"}));
    }
    if !changes.is_empty() {
        audit::record(c, &ctx.actor(), "users", id, "updated", changes, Value::Null)?;
        notify_changed(c)?;
    }
    users::find(c, id)?.ok_or(AppError::NotFound("user"))
}

/// Creates an API key for an active service user, scoped to one of its roles. Returns
/// the row and the key itself, which is shown once and never stored.
pub fn create_api_key(
    c: &mut PgConnection,
    ctx: &Ctx,
    (name, user_id, role): (&str, Uuid, &str),
    expires_at: Option<DateTime<Utc>>,
) -> AppResult<(api_keys::ApiKeyRow, String)> {
    ctx.require("api_keys", Action::Admin)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", name);
    if expires_at.is_some_and(|e| e <= ctx.now()) {
        errs.add("expires_at", "out_of_range", "must be in the future");
    }
    errs.into_result()?;
    let user = users::find(c, user_id)?
        .filter(|u| u.is_active)
        .ok_or_else(|| AppError::field("user_id", "not_found", "no active user with this id"))?;
    if !user.is_service {
        return Err(AppError::field(
            "user_id",
            "not_service_user",
            "API keys belong to service users",
        ));
    }
    let role = roles::find_by_keys(c, &[role.to_owned()])?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::field("role", "not_found", "no such role"))?;
    let generated = secrets::new_api_key();
    let new = api_keys::NewApiKey {
        id: Uuid::now_v7(),
        name,
        user_id: user.id,
        role_id: role.id,
        prefix: generated.prefix,
        key_hash: generated.hash,
        created_by: ctx.user_id(),
        expires_at,
    };
    let row = api_keys::insert(c, &new)?;
    write::created(c, ctx, "api_keys", row.id)?;
    Ok((row, generated.key))
}

/// Revokes an API key (it stops working at once); revoking twice changes nothing.
pub fn revoke_api_key(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    ctx.require("api_keys", Action::Admin)?;
    let row = api_keys::find(c, id)?.ok_or(AppError::NotFound("API key"))?;
    if row.revoked_at.is_some() {
        return Ok(());
    }
    let after = api_keys::revoke(c, id)?;
    let mut changes = Map::new();
    changes.insert("revoked_at".into(), json!({"before": null, "after": after.revoked_at}));
    audit::record(c, &ctx.actor(), "api_keys", id, "revoked", changes, json!({"id": id}))?;
    notify_changed(c)
}
