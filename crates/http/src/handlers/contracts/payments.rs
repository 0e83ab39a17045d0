//! Payments collected (回款) and their allocation to instalments.

use super::*;

pub(super) fn load_payment(c: &mut PgConnection, row: PaymentRow) -> ApiResult<Payment> {
    let allocs = repo::allocations(c, &[row.id])?;
    Ok(Payment::build(row, &allocs))
}

/// List payments in the caller's scope (`payments:read`; reps see their own deals').
#[utoipa::path(
    tag = "payments",
    params(PaymentListQuery),
    responses((status = 200, description = "A page of payments", body = Page<Payment>), BadRequest, Unauthorized, Forbidden)
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
            let spec = ListSpec::list(
                repo::PAYMENT_SORT,
                "-received_on",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
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
    responses((status = 200, description = "The payment", body = Payment), ReadErrors)
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
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/payments")]
pub async fn create_payment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreatePayment>,
) -> ApiResult<HttpResponse> {
    auth.require(PAY, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(&state, &auth, (key, &req, &raw), (PAY, "payments"), move |c, ctx| {
        let row = crm_app::payments::receive_payment(c, ctx, &fields)?;
        load_payment(c, row)
    })
    .await
}

/// Apply (part of) a payment's unapplied amount to installments (e.g. after the plan
/// was set), explicitly or oldest-first.
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = AllocatePayment,
    responses(
        (status = 200, description = "The payment", body = Payment),
        ReadErrors, Conflict, BodyErrors
    )
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
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let fields = body.fields()?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let list: Option<Vec<crm_app::payments::AllocationInput>> = match fields.get("allocations") {
            Some(v) if !v.is_null() => Some(crm_app::write::parse_value(v)?),
            _ => None,
        };
        let wanted = crm_app::payments::explicit(list.as_deref())?;
        let row = crm_app::payments::allocate_payment(c, &ctx, &scope, id, wanted.as_deref())?;
        Outcome::ok(&load_payment(c, row)?)
    })
    .await
}
