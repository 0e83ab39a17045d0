//! Payments collected (回款) and their allocation to instalments.

use super::*;

pub(super) fn explicit(list: &Option<Vec<Allocation>>) -> ApiResult<Option<Vec<(Uuid, Decimal)>>> {
    match list {
        None => Ok(None),
        Some(l) => {
            let mut errs = Errors::default();
            let out = l
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    (
                        a.installment_id,
                        check_amount(&mut errs, &format!("allocations[{i}].amount"), Some(a.amount))
                            .unwrap_or_default(),
                    )
                })
                .collect();
            errs.into_result()?;
            Ok(Some(out))
        }
    }
}

pub(super) fn load_payment(c: &mut PgConnection, row: PaymentRow) -> ApiResult<Payment> {
    let allocs = repo::allocations(c, &[row.id])?;
    Ok(Payment::build(row, &allocs))
}

/// List payments in the caller's scope (`payments:read`; reps see their own deals').
#[utoipa::path(
    tag = "payments",
    params(PaymentListQuery),
    responses((status = 200, description = "A page of payments", body = Page<Payment>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/payments")]
pub async fn list_payments(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<PaymentListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let q = q.into_inner();
    let filter = PaymentFilter {
        contract_id: q.contract_id,
        account_id: q.account_id,
        received_from: q.received_from,
        received_to: q.received_to,
    };
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::new(
                repo::PAYMENT_SORT,
                "-received_on",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
            )?;
            let page = repo::list_payments(c, &scope, &filter, &spec)?;
            let ids: Vec<Uuid> = page.items.iter().map(|p| p.id).collect();
            let allocs = repo::allocations(c, &ids)?;
            Ok::<_, ApiError>(Page {
                items: page.items.into_iter().map(|p| Payment::build(p, &allocs)).collect(),
                next_cursor: page.next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get one payment with its allocations.
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = Payment), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/payments/{id}")]
pub async fn get_payment(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let id = id.into_inner();
    let p = state
        .db
        .run(move |c| {
            let row = repo::find_payment(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("payment"))?;
            load_payment(c, row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

/// Record a payment received (回款) on a contract. It is allocated to installments,
/// explicitly or oldest-first; an allocation never exceeds what is due, and anything
/// beyond stays `unapplied` (over-payment). A partial payment leaves the installment
/// partly outstanding. A contract's payments never exceed its amount plus the
/// configured tolerance (422 `exceeds_contract` with `remaining`).
///
/// On a contract not yet signed the payment is a prepayment (`prepayment: true`): held
/// unapplied until the contract is signed, refused (409 `contract_not_signed`) when the
/// payment settings do not accept prepayments. Payments win an open deal through the
/// normal stage move only as the Won criteria allow: a payment on a signed contract, or
/// prepayments reaching the configured share of the contract amount.
#[utoipa::path(
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreatePayment,
    responses(
        (status = 201, description = "Recorded", body = Payment, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/payments")]
pub async fn create_payment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreatePayment>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let clock = state.clock.clone();
    auth.require(PAY, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "amount", Some(dto.amount)).unwrap_or_default();
    if amount <= Decimal::ZERO {
        errs.add("amount", "out_of_range", "must be positive");
    }
    let reference = errs.line(dto.reference);
    let note = errs.text(dto.note);
    errs.into_result()?;
    let wanted = explicit(&dto.allocations)?;
    let writer = auth.clone();
    let today = state.clock.today();
    let received_on = dto.received_on.unwrap_or(today);
    if received_on > today {
        return Err(ApiError::field(
            "received_on",
            "out_of_range",
            "must not be in the future",
        ));
    }
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let k = payable_contract(c, &writer, Action::Create, dto.contract_id)?;
        if k.status == "terminated" {
            return Err(ApiError::conflict("invalid_transition", "the contract is terminated"));
        }
        repo::lock_plan(c, k.id)?;
        let rules = workflow::payment_rules(c)?;
        let signed = signed(&k);
        let received = repo::received_total(c, k.id)?;
        let prepayment = check_payment(&rules, k.amount, received, amount, signed).map_err(|e| match e {
            PaymentError::NotSigned => ApiError::conflict(
                "contract_not_signed",
                format!("the contract is {}; payments are recorded once it is signed", k.status),
            ),
            PaymentError::ExceedsContract { remaining } => ApiError::unprocessable(
                "exceeds_contract",
                format!(
                    "{} more can be received on this contract (amount {} plus a tolerance of {})",
                    money(remaining),
                    money(k.amount),
                    money(rules.overpayment_tolerance)
                ),
            )
            .with_extra("remaining", json!(money(remaining))),
        })?;
        // A prepayment is held as unapplied credit until the contract is signed.
        let allocs = if prepayment {
            if wanted.is_some() {
                return Err(ApiError::field(
                    "allocations",
                    "not_signed",
                    "a prepayment on an unsigned contract stays unapplied until it is signed",
                ));
            }
            Vec::new()
        } else {
            allocate(amount, &crm_app::contracts::dues(c, k.id)?, wanted.as_deref())
                .map_err(crm_app::contracts::allocation_error)?
        };
        let row = repo::insert_payment(
            c,
            &PaymentRow {
                id: Uuid::now_v7(),
                contract_id: k.id,
                account_id: k.account_id,
                amount,
                received_on,
                method: dto.method.as_str().into(),
                reference,
                note,
                owner_id: k.owner_id,
                team_id: k.team_id,
                created_by: Some(writer.user_id),
                created_at: now,
                version: 1,
                prepayment,
            },
        )?;
        repo::add_allocations(c, row.id, &allocs)?;
        let p = load_payment(c, row)?;
        let data = serde_json::to_value(&p).unwrap_or_default();
        audit::record(c, &writer.actor(), PAY, p.id, "received", diff::created(&data), data)?;
        crm_app::opportunities::close_deal(c, &writer.ctx(&clock), k.opportunity_id, true, None)?;
        Outcome::created(&p, format!("/api/v1/payments/{}", p.id))
    })
    .await
}

/// Apply (part of) a payment's unapplied amount to installments (e.g. after the plan
/// was set), explicitly or oldest-first.
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = AllocatePayment,
    responses((status = 200, description = "The payment", body = Payment), BadRequest, Unauthorized, Forbidden, NotFound,
        Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/payments/{id}/allocate")]
pub async fn allocate_payment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<AllocatePayment>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Update)?;
    let id = id.into_inner();
    let wanted = explicit(&body.value?.allocations)?;
    let ctx = auth.ctx(&state.clock);
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let row = crm_app::contracts::allocate_payment(c, &ctx, &scope, id, wanted.as_deref())?;
        Outcome::ok(&load_payment(c, row)?)
    })
    .await
}
