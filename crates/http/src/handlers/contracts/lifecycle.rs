//! Contract records and their lifecycle: create, read, update, legal review, signing, activation, completion, termination, status history.

use super::*;

/// List contracts in the caller's scope.
#[utoipa::path(
    tag = "contracts",
    params(ContractListQuery),
    responses((status = 200, description = "A page of contracts", body = Page<Contract>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/contracts")]
pub async fn list_contracts(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ContractListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let q = q.into_inner();
    let filter = ContractFilter {
        opportunity_id: q.opportunity_id,
        account_id: q.account_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        owner_id: q.owner_id,
    };
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::list(
                repo::SORT_COLUMNS,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
            )?;
            Ok::<_, ApiError>(repo::list(c, &scope, &filter, &spec)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::of(page, Contract::from)))
}

/// Create a draft contract from an accepted quote (amount and lines copied) or directly
/// on a deal. The number comes from the numbering pattern, gap-free per year.
#[utoipa::path(
    tag = "contracts",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateContract,
    responses(
        (status = 201, description = "Created", body = Contract, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/contracts")]
pub async fn create_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateContract>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(&state, &auth, (key, &req, &raw), (RES, "contracts"), move |c, ctx| {
        Ok(Contract::from(crm_app::contracts::create(c, ctx, &fields)?))
    })
    .await
}

/// Get one contract.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "The contract", body = Contract, headers(("ETag" = String))), ReadErrors)
)]
#[get("/contracts/{id}")]
pub async fn get_contract(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let row = state
        .db
        .run(move |c| repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract")))
        .await?;
    let v = row.version;
    Ok(with_etag(&Contract::from(row), v))
}

/// Change a draft contract (`If-Match` required). A contract in legal review is locked
/// (409 `locked`); later changes go through amendments.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateContract,
    responses(
        (status = 200, description = "Updated", body = Contract, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/contracts/{id}")]
pub async fn update_contract(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateContract>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        Ok(Contract::from(crm_app::contracts::update(
            c, ctx, id, expected, &fields,
        )?))
    })
    .await
}

/// Runs a contract action (retry-safe with an `Idempotency-Key`) and answers 200 with
/// the contract.
async fn contract_action<F>(
    state: &AppState,
    auth: &Auth,
    (key, req, raw): (IdempotencyKey, &HttpRequest, &[u8]),
    op: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection, &crm_app::Ctx) -> crm_app::AppResult<ContractRow> + Send + 'static,
{
    let ctx = auth.ctx();
    idempotency::post(state, auth, key, req, raw, idempotency::keep, move |c| {
        Outcome::ok(&Contract::from(op(c, &ctx)?))
    })
    .await
}

/// Send a draft contract to legal review through the approval engine (the seeded
/// definition asks the legal role). With no matching definition it goes straight to
/// `pending_signature`.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "In review", body = Contract), ReadErrors, Conflict, Unprocessable)
)]
#[post("/contracts/{id}/submit")]
pub async fn submit_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    contract_action(&state, &auth, (key, &req, b""), move |c, ctx| {
        crm_app::contracts::submit(c, ctx, id)
    })
    .await
}

/// Record the signature (customer-stamped copy). The deal becomes Won through the
/// normal stage move when the Won stage's entry criteria allow.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = SignContract,
    responses(
        (status = 200, description = "Signed", body = Contract),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/contracts/{id}/sign")]
pub async fn sign_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<SignContract>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let dto = body.value?;
    contract_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        crm_app::contracts::sign(c, ctx, id, &dto.signed_copy_ref, dto.signed_at)
    })
    .await
}

/// Put a signed contract in force.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Active", body = Contract), ReadErrors, Conflict)
)]
#[post("/contracts/{id}/activate")]
pub async fn activate_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    contract_action(&state, &auth, (key, &req, b""), move |c, ctx| {
        crm_app::contracts::activate(c, ctx, id)
    })
    .await
}

/// Mark an active contract fulfilled.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = ContractAction,
    responses(
        (status = 200, description = "Completed", body = Contract),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/contracts/{id}/complete")]
pub async fn complete_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<ContractAction>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let comment = body.value?.comment;
    contract_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        crm_app::contracts::complete(c, ctx, id, comment.as_deref())
    })
    .await
}

/// Terminate a contract (not while legal review is pending: withdraw it first).
/// Optionally marks an open deal Lost with the reason.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = TerminateContract,
    responses(
        (status = 200, description = "Terminated", body = Contract),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/contracts/{id}/terminate")]
pub async fn terminate_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<TerminateContract>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let dto = body.value?;
    contract_action(&state, &auth, (key, &req, &raw), move |c, ctx| {
        crm_app::contracts::terminate(c, ctx, id, &dto.reason, dto.mark_lost)
    })
    .await
}

/// Status changes of a contract, oldest first.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Status history", body = StatusHistory), ReadErrors)
)]
#[get("/contracts/{id}/status-history")]
pub async fn contract_status_history(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract"))?;
            Ok::<_, ApiError>(workflow::transitions(c, "contract", id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(StatusHistory {
        items: rows.into_iter().map(StatusChange::from).collect(),
    }))
}
