//! Contract records and their lifecycle: create, read, update, legal review, signing, activation, completion, termination, status history.

use super::*;

/// List contracts in the caller's scope.
#[utoipa::path(
    tag = "contracts",
    params(ContractListQuery),
    responses((status = 200, description = "A page of contracts", body = Page<Contract>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
            let spec = ListSpec::new(
                repo::SORT_COLUMNS,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
            )?;
            Ok::<_, ApiError>(repo::list(c, &scope, &filter, &spec)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Contract::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a draft contract from an accepted quote (amount and lines copied) or directly
/// on a deal. The number comes from the numbering pattern, gap-free per year.
#[utoipa::path(
    tag = "contracts",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateContract,
    responses(
        (status = 201, description = "Created", body = Contract, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts")]
pub async fn create_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateContract>,
) -> ApiResult<HttpResponse> {
    let scope = auth.require(RES, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let title = dto.title.as_deref().map(|t| errs.required_text("title", t));
    let amount = check_amount(&mut errs, "amount", dto.amount);
    let terms = errs.text(dto.terms);
    if dto.quote_id.is_none() && dto.opportunity_id.is_none() {
        errs.add("quote_id", "required", "give an accepted quote or an opportunity");
    }
    if dto.quote_id.is_some() && (dto.amount.is_some() || dto.currency.is_some()) {
        errs.add(
            "amount",
            "not_allowed",
            "a contract from a quote takes the quote's total and currency",
        );
    }
    if dto.quote_id.is_none() && dto.opportunity_id.is_some() && amount.is_none() {
        errs.add("amount", "required", "a contract without a quote needs an amount");
    }
    if let (Some(s), Some(e)) = (dto.start_date, dto.end_date) {
        if e < s {
            errs.add("end_date", "out_of_range", "must not be before start_date");
        }
    }
    errs.into_result()?;
    let writer = auth.clone();
    let year = state.clock.today().year();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let (deal, quote) = match dto.quote_id {
            Some(qid) => {
                let q = quotes::find(c, &ScopeFilter::All, qid, Liveness::Live, true)?
                    .ok_or_else(|| ApiError::field("quote_id", "not_found", "no such quote"))?;
                if !writer.reaches(scope, q.owner_id, q.team_id) {
                    return Err(ApiError::field("quote_id", "not_found", "no such quote"));
                }
                if q.status != "accepted" {
                    return Err(ApiError::unprocessable(
                        "quote_not_accepted",
                        format!("the quote is {}; a contract is made from an accepted quote", q.status),
                    ));
                }
                if dto.opportunity_id.is_some_and(|o| o != q.opportunity_id) {
                    return Err(ApiError::field(
                        "opportunity_id",
                        "mismatch",
                        "the quote belongs to another deal",
                    ));
                }
                if let Some(existing) = repo::live_for_quote(c, qid)? {
                    return Err(
                        ApiError::conflict("duplicate", "a contract already exists for this quote")
                            .with_extra("existing", json!({"id": existing})),
                    );
                }
                (reachable_deal(c, &writer, scope, q.opportunity_id)?, Some(q))
            }
            None => (
                reachable_deal(c, &writer, scope, dto.opportunity_id.unwrap_or_default())?,
                None,
            ),
        };
        let (amount, currency, lines) = match &quote {
            Some(q) => {
                let lines = quotes::lines(c, &[q.id])?;
                let lines: Vec<Value> = lines
                    .into_iter()
                    .map(|l| {
                        let dto = crate::dto::quotes::QuoteLine::from(l);
                        serde_json::to_value(dto).unwrap_or_default()
                    })
                    .collect();
                (q.total, q.currency.clone(), Value::Array(lines))
            }
            None => {
                let currency = dto
                    .currency
                    .as_deref()
                    .map(|c| c.trim().to_ascii_uppercase())
                    .unwrap_or_else(|| deal.currency.clone());
                if crm_domain::normalize::currency(&currency).is_none() {
                    return Err(ApiError::field(
                        "currency",
                        "invalid_format",
                        "an active ISO 4217 currency code such as CNY",
                    ));
                }
                (amount.unwrap_or_default(), currency, json!([]))
            }
        };
        let number = contract_number(c, year)?;
        let row = repo::insert(
            c,
            &NewContract {
                id: Uuid::now_v7(),
                number,
                opportunity_id: deal.id,
                account_id: deal.account_id,
                quote_id: quote.as_ref().map(|q| q.id),
                title: title.clone().unwrap_or_else(|| deal.name.clone()),
                amount,
                currency,
                lines,
                status: "draft".into(),
                start_date: dto.start_date,
                end_date: dto.end_date,
                terms,
                owner_id: deal.owner_id,
                team_id: deal.team_id,
                created_by: Some(writer.user_id),
            },
        )?;
        workflow::transition(c, "contract", row.id, None, "draft", Some(writer.user_id), None)?;
        let k = Contract::from(row);
        let data = to_json(&k);
        audit::record(c, &writer.actor(), RES, k.id, "created", diff::created(&data), data)?;
        Outcome::created(&k, format!("/api/v1/contracts/{}", k.id))
    })
    .await
}

/// Get one contract.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "The contract", body = Contract, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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

pub(super) fn contract_changes(
    errs: &mut Errors,
    title: Option<String>,
    amount: Option<Decimal>,
    start: Option<Option<chrono::NaiveDate>>,
    end: Option<Option<chrono::NaiveDate>>,
    terms: Option<Option<String>>,
) -> ContractChanges {
    ContractChanges {
        title: title.as_deref().map(|t| errs.required_text("title", t)),
        amount: amount.and_then(|a| check_amount(errs, "amount", Some(a))),
        start_date: start,
        end_date: end,
        terms: terms.map(|t| errs.text(t)),
    }
}

pub(super) fn check_dates(before: &ContractRow, ch: &ContractChanges) -> ApiResult<()> {
    let s = ch.start_date.unwrap_or(before.start_date);
    let e = ch.end_date.unwrap_or(before.end_date);
    if let (Some(s), Some(e)) = (s, e) {
        if e < s {
            return Err(ApiError::field(
                "end_date",
                "out_of_range",
                "must not be before start_date",
            ));
        }
    }
    Ok(())
}

/// Change a draft contract (`If-Match` required). A contract in legal review is locked
/// (409 `locked`); later changes go through amendments.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateContract,
    responses(
        (status = 200, description = "Updated", body = Contract, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/contracts/{id}")]
pub async fn update_contract(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateContract>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let ch = contract_changes(
        &mut errs,
        dto.title,
        dto.amount,
        dto.start_date,
        dto.end_date,
        dto.terms,
    );
    errs.into_result()?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = repo::find(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("contract"))?;
                if_match.0.check(before.version)?;
                match before.status.as_str() {
                    "draft" => {}
                    "legal_review" => {
                        return Err(ApiError::conflict(
                            "locked",
                            "the contract is locked while legal review is pending",
                        ))
                    }
                    s => {
                        return Err(ApiError::conflict(
                            "immutable",
                            format!("a contract that is {s} changes through POST /contracts/{{id}}/amendments"),
                        ))
                    }
                }
                if ch.amount.is_some() && before.quote_id.is_some() {
                    return Err(ApiError::field(
                        "amount",
                        "not_allowed",
                        "the amount comes from the accepted quote",
                    ));
                }
                check_dates(&before, &ch)?;
                if ch.is_empty() {
                    return Ok(before);
                }
                let after = repo::update(c, id, &ch)?;
                let (b, a) = (
                    to_json(&Contract::from(before)),
                    to_json(&Contract::from(after.clone())),
                );
                audit::record(c, &writer.actor(), RES, id, "updated", diff::changes(&b, &a), a)?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = row.version;
    Ok(with_etag(&Contract::from(row), v))
}

/// Runs a contract action on the contract locked in the caller's update scope.
pub(super) async fn act<F>(
    state: &AppState,
    auth: &Auth,
    key: IdempotencyKey,
    req: &HttpRequest,
    raw: &[u8],
    id: Uuid,
    f: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut PgConnection, &Auth, ContractRow) -> ApiResult<Contract> + Send + 'static,
{
    let find: crate::handlers::LockedFind<ContractRow> = |c, s, id| repo::find(c, s, id, true);
    crate::handlers::locked_action(state, auth, key, req, raw, (RES, "contract"), find, id, f).await
}

/// The contract's status machine: where `action` leads from the row's status.
pub(super) fn transition(row: &ContractRow, action: Act) -> ApiResult<Status> {
    Status::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("contract {} has status {}", row.id, row.status)))?
        .apply(action)
        .map_err(crate::handlers::transition_error)
}

/// Whether the contract binds (signed, active or completed).
pub(super) fn signed(row: &ContractRow) -> bool {
    Status::parse(&row.status).is_some_and(Status::is_signed)
}

/// Send a draft contract to legal review through the approval engine (the seeded
/// definition asks the legal role). With no matching definition it goes straight to
/// `pending_signature`.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "In review", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/submit")]
pub async fn submit_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Submit)?;
        let actor = w.actor();
        let k = set_status(c, &actor, &row, ContractStatus::LegalReview, "submitted", None, None)?;
        let record = crm_app::record::view(c, RES, k.id)?.unwrap_or_default();
        let inst = approval::submit(
            c,
            &actor,
            now,
            Submission {
                object_type: "contract",
                object_id: k.id,
                requester: w.user_id,
                owner_id: k.owner_id,
                owner_team: k.team_id,
                record,
            },
        )?;
        let outcome = approval::outcome(&inst);
        if outcome == ApprovalOutcome::Approved {
            crm_app::contracts::on_approval(c, &actor, k.id, outcome)?;
        }
        let row =
            repo::find(c, &ScopeFilter::All, k.id, false)?.ok_or_else(|| ApiError::internal("contract vanished"))?;
        Ok(Contract::from(row))
    })
    .await
}

/// Record the signature (customer-stamped copy). The deal becomes Won through the
/// normal stage move when the Won stage's entry criteria allow.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = SignContract,
    responses((status = 200, description = "Signed", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let clock = state.clock.clone();
    auth.require(RES, Action::Update)?;
    let dto = body.value?;
    let copy = dto.signed_copy_ref.trim().to_owned();
    if copy.is_empty() {
        return Err(ApiError::field("signed_copy_ref", "required", "must not be blank"));
    }
    let now = state.clock.now();
    if dto.signed_at.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
        return Err(ApiError::field(
            "signed_at",
            "out_of_range",
            "must not be in the future",
        ));
    }
    act(
        &state,
        &auth,
        key,
        &req,
        &body.raw,
        id.into_inner(),
        move |c, w, row| {
            transition(&row, Act::Sign)?;
            let k = set_status(
                c,
                &w.actor(),
                &row,
                ContractStatus::Signed,
                "signed",
                Some((dto.signed_at.unwrap_or(now), copy)),
                None,
            )?;
            crm_app::opportunities::close_deal(c, &w.ctx(&clock), k.opportunity_id, true, None)?;
            Ok(k)
        },
    )
    .await
}

/// Put a signed contract in force.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Active", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/contracts/{id}/activate")]
pub async fn activate_contract(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    act(&state, &auth, key, &req, b"", id.into_inner(), move |c, w, row| {
        transition(&row, Act::Activate)?;
        set_status(c, &w.actor(), &row, ContractStatus::Active, "activated", None, None)
    })
    .await
}

/// Mark an active contract fulfilled.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = ContractAction,
    responses((status = 200, description = "Completed", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let comment = body.value?.comment.clone();
    act(
        &state,
        &auth,
        key,
        &req,
        &body.raw,
        id.into_inner(),
        move |c, w, row| {
            transition(&row, Act::Complete)?;
            set_status(
                c,
                &w.actor(),
                &row,
                ContractStatus::Completed,
                "completed",
                None,
                comment.as_deref(),
            )
        },
    )
    .await
}

/// Terminate a contract (not while legal review is pending: withdraw it first).
/// Optionally marks an open deal Lost with the reason.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = TerminateContract,
    responses((status = 200, description = "Terminated", body = Contract), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let clock = state.clock.clone();
    auth.require(RES, Action::Update)?;
    let dto = body.value?;
    let reason = dto.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::field("reason", "required", "must not be blank"));
    }
    act(
        &state,
        &auth,
        key,
        &req,
        &body.raw,
        id.into_inner(),
        move |c, w, row| {
            if row.status == Status::LegalReview.as_str() {
                return Err(ApiError::conflict(
                    "locked",
                    "legal review is pending; withdraw the approval first",
                ));
            }
            transition(&row, Act::Terminate)?;
            let k = set_status(
                c,
                &w.actor(),
                &row,
                ContractStatus::Terminated,
                "terminated",
                None,
                Some(&reason),
            )?;
            if dto.mark_lost {
                w.require("opportunities", Action::Update)?;
                crm_app::opportunities::close_deal(c, &w.ctx(&clock), row.opportunity_id, false, Some(reason.clone()))?;
            }
            Ok(k)
        },
    )
    .await
}

/// Status changes of a contract, oldest first.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Status history", body = StatusHistory), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
