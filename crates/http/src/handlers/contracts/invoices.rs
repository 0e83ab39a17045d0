//! Invoices issued against a contract.

use super::*;

/// List invoices in the caller's scope (`payments:read`).
#[utoipa::path(
    tag = "payments",
    params(InvoiceListQuery),
    responses((status = 200, description = "A page of invoices", body = Page<Invoice>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/invoices")]
pub async fn list_invoices(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<InvoiceListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let q = q.into_inner();
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::list(
                repo::INVOICE_SORT,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
            )?;
            Ok::<_, ApiError>(repo::list_invoices(
                c,
                &scope,
                q.contract_id,
                q.status.map(|s| s.as_str().to_owned()),
                &spec,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::of(page, Invoice::from)))
}

/// Issue an invoice against a signed contract, usually for one installment (never more
/// than is left to invoice on it, or on the contract).
#[utoipa::path(
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateInvoice,
    responses(
        (status = 201, description = "Issued", body = Invoice, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
)]
#[post("/invoices")]
pub async fn create_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateInvoice>,
) -> ApiResult<HttpResponse> {
    auth.require(PAY, Action::Create)?;
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        ("invoices", "invoices"),
        move |c, ctx| Ok(Invoice::from(crm_app::payments::issue_invoice(c, ctx, &fields)?)),
    )
    .await
}

/// Void an issued invoice (`payments:update`).
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Invoice id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Voided", body = Invoice), ReadErrors, Conflict)
)]
#[post("/invoices/{id}/void")]
pub async fn void_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    auth.require(PAY, Action::Update)?;
    let id = id.into_inner();
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, b"", idempotency::keep, move |c| {
        Outcome::ok(&Invoice::from(crm_app::payments::void_invoice(c, &ctx, id)?))
    })
    .await
}
