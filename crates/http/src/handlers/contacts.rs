//! `/api/v1/contacts`: people at accounts.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::accounts::{self, Liveness};
use crm_db::repo::audit;
use crm_db::repo::contacts::{self, ContactChanges, ContactFilter, NewContact};
use crm_domain::access::{Action, Scope, ScopeFilter};
use crm_domain::{diff, normalize};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::{
    prune_changes, resolve_owner, BadRequest, Conflict, ExportBusy, Forbidden, NotFound, PayloadTooLarge,
    PreconditionFailed, PreconditionRequired, Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::Auth;
use crate::custom::{self, Shaper};
use crate::dto::accounts::{AuditEntry, CreateQuery, HistoryQuery};
use crate::dto::contacts::{Contact, ContactListQuery, CreateContact, UpdateContact};
use crate::dto::{patch, Errors, Page, SyncPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;

const RES: &str = "contacts";

fn to_json(c: &Contact) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_default()
}

fn scope_or_own(auth: &Auth, resource: &str) -> ScopeFilter {
    auth.principal
        .filter(auth.scope(resource, Action::Read).unwrap_or(Scope::Own))
}

/// The account must exist and be visible to the caller.
fn visible_account(c: &mut PgConnection, auth: &Auth, id: Uuid) -> ApiResult<()> {
    let scope = scope_or_own(auth, "accounts");
    match accounts::find(c, &scope, id, Liveness::Live, false)? {
        Some(_) => Ok(()),
        None => Err(ApiError::field("account_id", "not_found", "no such account")),
    }
}

/// List contacts in the caller's data scope (keyset-paginated; `updated_since` for sync).
#[utoipa::path(
    tag = "contacts",
    params(ContactListQuery),
    responses(
        (status = 200, description = "A page of contacts", body = SyncPage<Contact>),
        BadRequest, Unauthorized, Forbidden
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contacts")]
pub async fn list_contacts(
    state: web::Data<AppState>,
    auth: Auth,
    q: ListQuery<ContactListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q);
    listing::list(&state, &auth, filter, params).await
}

/// The typed filter and the shared list parameters of a list or export query.
fn list_filter(q: ListQuery<ContactListQuery>) -> (ContactFilter, listing::Params) {
    let ListQuery { query: q, custom, keys } = q;
    let params = listing::Params {
        since: q.updated_since,
        keys,
        sort: q.sort,
        cursor: q.cursor,
        limit: q.limit,
        custom,
    };
    let filter = ContactFilter {
        account_id: q.account_id,
        owner_id: q.owner_id,
        team_id: q.team_id,
        decision_role: q.decision_role.map(|d| d.as_str().to_owned()),
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
        updated_before: q.updated_before,
        q: q.q,
        custom: Vec::new(),
        search: Default::default(),
    };
    (filter, params)
}

crate::impl_listing!(ContactFilter, Contact, RES, "c", contacts, |c, rows| rows
    .into_iter()
    .map(Contact::from)
    .collect());

/// Export contacts as CSV: every record the list with the same filters and sort returns.
///
/// Needs `contacts:export`. UTF-8 with a BOM; one column per field the caller may see
/// (masked fields masked), custom fields as `custom.<key>`; `header=zh|en` puts labels
/// in the heading row. `cursor` and `limit` do not apply; more matching records than
/// `CRM_EXPORT_MAX_ROWS` (default 100,000) answer 422 `export_too_large`. Recorded in
/// the audit trail and as the
/// `contact.exported` event.
#[utoipa::path(
    tag = "contacts",
    params(ContactListQuery, ExportOptions),
    responses(
        (status = 200, description = "CSV document", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String), ("X-Export-Id" = String), ("X-Export-Rows" = i64))),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ExportBusy
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contacts/export")]
pub async fn export_contacts(
    state: web::Data<AppState>,
    auth: Auth,
    q: ExportQuery<ContactListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q.list);
    listing::export(&state, &auth, filter, params, q.options, q.raw).await
}

/// Create a contact at a visible account.
///
/// Refused with 409 `duplicate` when a visible contact has the same mobile, phone or
/// e-mail, or the same name at the same account, unless `allow_duplicate=true`.
#[utoipa::path(
    tag = "contacts",
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: a repeat within 24 h returns the first response")),
    request_body = CreateContact,
    responses(
        (status = 201, description = "Created", body = Contact,
            headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contacts")]
pub async fn create_contact(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    q: web::Query<CreateQuery>,
    key: IdempotencyKey,
    body: ValidJson<CreateContact>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    custom::guard_write(&auth.principal, RES, &body.raw)?;
    let cache = state.fields.clone();
    let read = scope_or_own(&auth, RES);
    let allow_duplicate = q.allow_duplicate;
    let dto = body.value?;
    let custom_in = dto.custom.clone();
    let mut errs = Errors::default();
    let name = errs.required_text("name", &dto.name);
    let mut new = NewContact {
        id: Uuid::now_v7(),
        account_id: dto.account_id,
        name_norm: normalize::name_key(&name),
        name,
        title: errs.line(dto.title),
        department: errs.line(dto.department),
        mobile: errs.phone("mobile", dto.mobile),
        phone: errs.phone("phone", dto.phone),
        email: errs.email("email", dto.email),
        wechat: errs.line(dto.wechat),
        birthday: dto.birthday,
        decision_role: dto.decision_role.map(|d| d.as_str().to_owned()),
        preferences: errs.text(dto.preferences),
        pain_points: errs.text(dto.pain_points),
        notes: errs.text(dto.notes),
        owner_id: dto.owner_id.unwrap_or(auth.user_id),
        team_id: None,
        custom: json!({}),
        created_by: Some(auth.user_id),
    };
    if let Some(b) = new.birthday {
        if b > state.clock.today() {
            errs.add("birthday", "out_of_range", "must not be in the future");
        }
    }
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        visible_account(c, &writer, new.account_id)?;
        new.team_id = resolve_owner(c, &writer, RES, new.owner_id)?;
        if !allow_duplicate {
            let phones: Vec<&str> = new.mobile.iter().chain(new.phone.iter()).map(String::as_str).collect();
            if let Some((row, on)) =
                contacts::find_duplicate(c, &read, new.account_id, &new.name_norm, &phones, new.email.as_deref())?
            {
                return Err(ApiError::conflict(
                    "duplicate",
                    format!("a contact with the same {on} already exists; pass allow_duplicate=true to create anyway"),
                )
                .with_extra(
                    "existing",
                    json!({"id": row.id, "name": row.name, "account_id": row.account_id, "matched_on": on}),
                ));
            }
        }
        let defs = cache.get(c, RES)?;
        new.custom = crm_app::custom::apply(
            c,
            &writer.principal,
            crm_app::custom::CustomWrite {
                object: RES,
                defs: &defs,
                input: custom_in.as_ref(),
                existing: None,
                record: &json!({}),
            },
        )?;
        let row = contacts::insert(c, &new)?;
        let dto = Contact::from(row);
        let data = to_json(&dto);
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        Outcome::created(
            &Shaper::new(&writer.principal, RES, defs).one(&dto),
            format!("/api/v1/contacts/{}", dto.id),
        )
    })
    .await
}

/// Get one contact.
#[utoipa::path(
    tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 200, description = "The contact", body = Contact, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contacts/{id}")]
pub async fn get_contact(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let principal = auth.principal.clone();
    let cache = state.fields.clone();
    let (shaper, row) = state
        .db
        .run(move |c| {
            let row =
                contacts::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("contact"))?;
            Ok::<_, ApiError>((Shaper::new(&principal, RES, cache.get(c, RES)?), row))
        })
        .await?;
    let version = row.version;
    Ok(shaper.respond(&Contact::from(row), version))
}

/// Update a contact (partial). Requires `If-Match` with the current version.
#[utoipa::path(
    tag = "contacts",
    params(
        ("id" = Uuid, Path, description = "Contact id"),
        ("If-Match" = String, Header, description = "ETag of the version being changed, e.g. \"3\"")
    ),
    request_body = UpdateContact,
    responses(
        (status = 200, description = "Updated", body = Contact, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/contacts/{id}")]
pub async fn update_contact(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateContact>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    custom::guard_write(&auth.principal, RES, &body.raw)?;
    let cache = state.fields.clone();
    let id = id.into_inner();
    let dto = body.value?;
    let custom_in = dto.custom.clone();
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    if let Some(Some(b)) = dto.birthday {
        if b > state.clock.today() {
            errs.add("birthday", "out_of_range", "must not be in the future");
        }
    }
    let mut ch = ContactChanges {
        account_id: dto.account_id,
        name_norm: name.as_deref().map(normalize::name_key),
        name,
        title: patch(dto.title, |v| errs.line(v)),
        department: patch(dto.department, |v| errs.line(v)),
        mobile: patch(dto.mobile, |v| errs.phone("mobile", v)),
        phone: patch(dto.phone, |v| errs.phone("phone", v)),
        email: patch(dto.email, |v| errs.email("email", v)),
        wechat: patch(dto.wechat, |v| errs.line(v)),
        birthday: dto.birthday,
        decision_role: dto.decision_role.map(|d| d.map(|d| d.as_str().to_owned())),
        preferences: patch(dto.preferences, |v| errs.text(v)),
        pain_points: patch(dto.pain_points, |v| errs.text(v)),
        notes: patch(dto.notes, |v| errs.text(v)),
        owner_id: dto.owner_id,
        team_id: None,
        custom: None,
    };
    errs.into_result()?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = contacts::find(c, &scope, id, Liveness::Live, true)?
                    .ok_or_else(|| ApiError::not_found("contact"))?;
                if_match.0.check(before.version)?;
                let defs = cache.get(c, RES)?;
                if custom_in.is_some()
                    || custom::live(&defs).any(|d| d.field_type() == crm_domain::fields::FieldType::Formula)
                {
                    ch.custom = Some(crm_app::custom::apply(
                        c,
                        &writer.principal,
                        crm_app::custom::CustomWrite {
                            object: RES,
                            defs: &defs,
                            input: custom_in.as_ref(),
                            existing: Some(&before.custom),
                            record: &json!({}),
                        },
                    )?);
                    if let Some(keys) = &custom_in {
                        crm_db::repo::fields::unflag(c, RES, id, &keys.keys().cloned().collect::<Vec<_>>())?;
                    }
                }
                if let Some(account) = ch.account_id.filter(|a| *a != before.account_id) {
                    visible_account(c, &writer, account)?;
                }
                if let Some(owner) = ch.owner_id.filter(|o| *o != before.owner_id) {
                    writer.require(RES, Action::Assign)?;
                    ch.team_id = Some(resolve_owner(c, &writer, RES, owner)?);
                }
                let unchanged = prune_changes!(ch, before;
                    account_id, name, name_norm, title, department, mobile, phone, email, wechat,
                    birthday, decision_role, preferences, pain_points, notes, owner_id, team_id, custom);
                if unchanged {
                    return Ok((before, defs));
                }
                let after = contacts::update(c, id, &ch)?;
                let (b, a) = (to_json(&Contact::from(before)), to_json(&Contact::from(after.clone())));
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>((after, defs))
            })
        })
        .await?;
    let (row, defs) = row;
    let version = row.version;
    Ok(Shaper::new(&auth.principal, RES, defs).respond(&Contact::from(row), version))
}

/// Delete a contact (soft). `If-Match` is honoured when sent.
#[utoipa::path(
    tag = "contacts",
    params(
        ("id" = Uuid, Path, description = "Contact id"),
        ("If-Match" = Option<String>, Header, description = "Optional ETag guard")
    ),
    responses(
        (status = 204, description = "Deleted"),
        BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/contacts/{id}")]
pub async fn delete_contact(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    super::delete_record::<contacts::ContactRow>(&state, &auth, "contact", id.into_inner(), if_match, super::always)
        .await
}

/// A record comes back only under a live account.
fn account_live(c: &mut PgConnection, row: &contacts::ContactRow) -> crm_app::AppResult<()> {
    if accounts::exists_live(c, row.account_id)? {
        Ok(())
    } else {
        Err(crm_app::AppError::rule(
            "account_deleted",
            "the contact's account is deleted; restore the account first",
        ))
    }
}

/// Restore a deleted contact (its account must be live).
#[utoipa::path(
    tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 200, description = "Restored", body = Contact, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contacts/{id}/restore")]
pub async fn restore_contact(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let cache = state.fields.clone();
    super::restore_record(
        &state,
        &auth,
        key,
        &req,
        "deleted contact",
        id.into_inner(),
        account_live,
        move |c, w, row: contacts::ContactRow| {
            Ok(Shaper::new(&w.principal, RES, cache.get(c, RES)?).one(&Contact::from(row)))
        },
    )
    .await
}

/// Audit history of a contact, newest first.
#[utoipa::path(
    tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id"), HistoryQuery),
    responses(
        (status = 200, description = "History entries", body = Page<AuditEntry>),
        BadRequest, Unauthorized, Forbidden, NotFound
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contacts/{id}/history")]
pub async fn contact_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history(&state, &auth, RES, id.into_inner(), q.into_inner(), |c, s, id| {
        Ok(contacts::find(c, s, id, Liveness::Live, false)?.is_some())
    })
    .await
}
