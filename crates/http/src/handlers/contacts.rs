//! `/api/v1/contacts`: people at accounts.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::contacts::{self, ContactFilter};
use crm_domain::access::Action;
use diesel::prelude::*;
use uuid::Uuid;

use super::{
    changed_record, created_record, BadRequest, BodyErrors, Conflict, ExportBusy, Forbidden, PreconditionFailed,
    ReadErrors, Unauthorized, Unprocessable, VersionErrors,
};
use crate::auth::Auth;
use crate::custom::Shaper;
use crate::dto::accounts::{AuditEntry, CreateQuery, HistoryQuery};
use crate::dto::contacts::{Contact, ContactListQuery, CreateContact, UpdateContact};
use crate::dto::{Page, SyncPage};
use crate::error::ApiResult;
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;

const RES: &str = "contacts";

/// List contacts in the caller's data scope (keyset-paginated; `updated_since` for sync).
#[utoipa::path(
    tag = "contacts",
    params(ContactListQuery),
    responses(
        (status = 200, description = "A page of contacts", body = SyncPage<Contact>),
        BadRequest, Unauthorized, Forbidden
    )
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
    )
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
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
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
    let raw = body.raw.clone();
    let fields = body.fields()?;
    let allow_duplicate = q.allow_duplicate;
    created_record(&state, &auth, (key, &req, &raw), (RES, "contacts"), move |c, ctx| {
        Ok(Contact::from(crm_app::contacts::create(
            c,
            ctx,
            &fields,
            allow_duplicate,
        )?))
    })
    .await
}

/// Get one contact.
#[utoipa::path(
    tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 200, description = "The contact", body = Contact, headers(("ETag" = String))),
        ReadErrors
    )
)]
#[get("/contacts/{id}")]
pub async fn get_contact(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    super::get_record(
        &state,
        &auth,
        "contact",
        id.into_inner(),
        |_c, row: contacts::ContactRow| Ok(Contact::from(row)),
    )
    .await
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
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[patch("/contacts/{id}")]
pub async fn update_contact(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateContact>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        Ok(Contact::from(crm_app::contacts::update(c, ctx, id, expected, &fields)?))
    })
    .await
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
        ReadErrors, PreconditionFailed
    )
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
    crm_app::recycle::under_live_account(c, row.account_id, "contact")
}

/// Restore a deleted contact (its account must be live).
#[utoipa::path(
    tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 200, description = "Restored", body = Contact, headers(("ETag" = String))),
        ReadErrors, Unprocessable
    )
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
        ReadErrors
    )
)]
#[get("/contacts/{id}/history")]
pub async fn contact_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history::<contacts::ContactRow>(&state, &auth, id.into_inner(), q.into_inner()).await
}
