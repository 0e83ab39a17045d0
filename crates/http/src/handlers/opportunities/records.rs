//! Deal records: list, export, create, read, update, delete, restore, history.

use super::*;

/// List deals in the caller's scope (keyset; `updated_since` for sync).
#[utoipa::path(
    tag = "opportunities",
    params(OpportunityListQuery),
    responses((status = 200, description = "A page of deals", body = SyncPage<Opportunity>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/opportunities")]
pub async fn list_opportunities(
    state: web::Data<AppState>,
    auth: Auth,
    q: ListQuery<OpportunityListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q);
    listing::list(&state, &auth, filter, params).await
}

/// The typed filter and the shared list parameters of a list or export query.
pub(super) fn list_filter(q: ListQuery<OpportunityListQuery>) -> (OpportunityFilter, listing::Params) {
    let ListQuery { query: q, custom, keys } = q;
    let params = listing::Params {
        since: q.updated_since,
        keys,
        sort: q.sort,
        cursor: q.cursor,
        limit: q.limit,
        custom,
    };
    let filter = OpportunityFilter {
        pipeline_id: q.pipeline_id,
        stage_id: q.stage_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        owner_id: q.owner_id,
        team_id: q.team_id,
        account_id: q.account_id,
        amount_gte: q.amount_gte,
        amount_lte: q.amount_lte,
        close_after: q.close_after,
        close_before: q.close_before,
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
        updated_before: q.updated_before,
        stalled: q.stalled,
        q: q.q,
        custom: Vec::new(),
        search: Default::default(),
    };
    (filter, params)
}

crate::impl_listing!(OpportunityFilter, Opportunity, RES, "o", opps, |c, rows| with_contacts(
    c, rows
)?);

/// Export opportunities as CSV: every record the list with the same filters and sort returns.
///
/// Needs `opportunities:export`. UTF-8 with a BOM; one column per field the caller may see
/// (masked fields masked), custom fields as `custom.<key>`; `header=zh|en` puts labels
/// in the heading row. `cursor` and `limit` do not apply; more matching records than
/// `CRM_EXPORT_MAX_ROWS` (default 100,000) answer 422 `export_too_large`. Recorded in
/// the audit trail and as the
/// `opportunity.exported` event.
#[utoipa::path(
    tag = "opportunities",
    params(OpportunityListQuery, ExportOptions),
    responses(
        (status = 200, description = "CSV document", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String), ("X-Export-Id" = String), ("X-Export-Rows" = i64))),
        BadRequest, Unauthorized, Forbidden, Unprocessable, ExportBusy
    )
)]
#[get("/opportunities/export")]
pub async fn export_opportunities(
    state: web::Data<AppState>,
    auth: Auth,
    q: ExportQuery<OpportunityListQuery>,
) -> ApiResult<HttpResponse> {
    let (filter, params) = list_filter(q.list);
    listing::export(&state, &auth, filter, params, q.options, q.raw).await
}

/// Create a deal in a pipeline (default pipeline, first stage unless given; a later
/// stage must meet its entry criteria).
#[utoipa::path(
    tag = "opportunities",
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateOpportunity,
    responses(
        (status = 201, description = "Created", body = Opportunity, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/opportunities")]
pub async fn create_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateOpportunity>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        (RES, "opportunities"),
        move |c, ctx| {
            let row = opportunities::create_from(c, ctx, &fields)?;
            one(c, row)
        },
    )
    .await
}

/// Get one deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "The deal", body = Opportunity, headers(("ETag" = String))), ReadErrors)
)]
#[get("/opportunities/{id}")]
pub async fn get_opportunity(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    crate::handlers::get_record(&state, &auth, "opportunity", id.into_inner(), one).await
}

/// Update a deal (partial, `If-Match` required). Stage and status only change through
/// `POST /opportunities/{id}/stage`.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateOpportunity,
    responses(
        (status = 200, description = "Updated", body = Opportunity, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/opportunities/{id}")]
pub async fn update_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateOpportunity>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        let row = opportunities::update(c, ctx, id, expected, &fields)?;
        one(c, row)
    })
    .await
}

/// Delete a deal (soft). `If-Match` is honoured when sent.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("If-Match" = Option<String>, Header, description = "Optional ETag guard")),
    responses((status = 204, description = "Deleted"), ReadErrors, PreconditionFailed)
)]
#[delete("/opportunities/{id}")]
pub async fn delete_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
) -> ApiResult<HttpResponse> {
    crate::handlers::delete_record::<OpportunityRow>(
        &state,
        &auth,
        "opportunity",
        id.into_inner(),
        if_match,
        crate::handlers::always,
    )
    .await
}

/// A record comes back only under a live account.
fn account_live(c: &mut PgConnection, row: &OpportunityRow) -> crm_app::AppResult<()> {
    crm_app::recycle::under_live_account(c, row.account_id, "deal")
}

/// Restore a deleted deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Restored", body = Opportunity), ReadErrors, Unprocessable)
)]
#[post("/opportunities/{id}/restore")]
pub async fn restore_opportunity(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let cache = state.fields.clone();
    crate::handlers::restore_record(
        &state,
        &auth,
        key,
        &req,
        "deleted opportunity",
        id.into_inner(),
        account_live,
        move |c, w, row: OpportunityRow| Ok(Shaper::new(&w.principal, RES, cache.get(c, RES)?).one(&one(c, row)?)),
    )
    .await
}

/// Audit history of a deal (field-level changes), newest first.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), HistoryQuery),
    responses((status = 200, description = "History entries", body = Page<AuditEntry>), ReadErrors)
)]
#[get("/opportunities/{id}/history")]
pub async fn opportunity_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    crate::history::history::<OpportunityRow>(&state, &auth, id.into_inner(), q.into_inner()).await
}
