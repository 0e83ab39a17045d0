//! Invoices issued against a contract.

use super::*;

/// A contract the caller's permission on payments reaches, locked.
pub(super) fn payable_contract(c: &mut PgConnection, auth: &Auth, action: Action, id: Uuid) -> ApiResult<ContractRow> {
    let scope = auth.require(PAY, action)?;
    match repo::find(c, &ScopeFilter::All, id, true)? {
        Some(k) if auth.reaches(scope, k.owner_id, k.team_id) => Ok(k),
        _ => Err(ApiError::field("contract_id", "not_found", "no such contract")),
    }
}

/// List invoices in the caller's scope (`payments:read`).
#[utoipa::path(
    tag = "payments",
    params(InvoiceListQuery),
    responses((status = 200, description = "A page of invoices", body = Page<Invoice>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
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
            let spec = ListSpec::new(
                repo::INVOICE_SORT,
                "-created_at",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
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
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.into_iter().map(Invoice::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Issue an invoice against a signed contract, usually for one installment (never more
/// than is left to invoice on it, or on the contract).
#[utoipa::path(
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateInvoice,
    responses(
        (status = 201, description = "Issued", body = Invoice, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/invoices")]
pub async fn create_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateInvoice>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    auth.require(PAY, Action::Create)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let amount = check_amount(&mut errs, "amount", dto.amount);
    if amount.is_some_and(|a| a <= Decimal::ZERO) {
        errs.add("amount", "out_of_range", "must be positive");
    }
    let rate = check_pct(&mut errs, "tax_rate", dto.tax_rate).unwrap_or(Decimal::from(13));
    errs.into_result()?;
    let writer = auth.clone();
    let today = state.clock.today();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let k = payable_contract(c, &writer, Action::Create, dto.contract_id)?;
        if !signed(&k) {
            return Err(ApiError::conflict(
                "invalid_transition",
                format!("invoices are issued on signed contracts; this one is {}", k.status),
            ));
        }
        repo::lock_plan(c, k.id)?;
        let invoiced = repo::invoiced_total(c, k.id)?;
        let amount = match dto.installment_id {
            Some(iid) => {
                let plan = repo::plan(c, &[k.id])?;
                let inst = plan.iter().find(|i| i.id == iid).ok_or_else(|| {
                    ApiError::field("installment_id", "not_found", "no such installment on this contract")
                })?;
                let left = inst.amount - inst.invoiced;
                let a = amount.unwrap_or(left);
                if a <= Decimal::ZERO || a > left {
                    return Err(ApiError::unprocessable(
                        "exceeds_installment",
                        format!("{} is left to invoice on this installment", money(left)),
                    )
                    .with_extra("remaining", json!(money(left))));
                }
                a
            }
            None => amount.ok_or_else(|| ApiError::field("amount", "required", "an amount or an installment"))?,
        };
        if invoiced + amount > k.amount {
            return Err(ApiError::unprocessable(
                "exceeds_contract",
                format!("{} is left to invoice on this contract", money(k.amount - invoiced)),
            )
            .with_extra("remaining", json!(money(k.amount - invoiced))));
        }
        let tax = cents(amount - amount * Decimal::from(100) / (Decimal::from(100) + rate));
        let year = dto.issued_on.unwrap_or(today).year();
        let cfg = workflow::setting(c, "invoice_numbering")?.unwrap_or(json!({}));
        let number = format_number(&cfg, "FP", 6, year, workflow::next_number(c, "invoice", year)?);
        let row = repo::insert_invoice(
            c,
            &InvoiceRow {
                id: Uuid::now_v7(),
                number,
                contract_id: k.id,
                installment_id: dto.installment_id,
                amount,
                tax_amount: tax,
                issued_on: dto.issued_on.unwrap_or(today),
                status: "issued".into(),
                owner_id: k.owner_id,
                team_id: k.team_id,
                created_by: Some(writer.user_id),
                created_at: now,
                version: 1,
            },
        )?;
        let inv = Invoice::from(row);
        let data = serde_json::to_value(&inv).unwrap_or_default();
        audit::record(
            c,
            &writer.actor(),
            "invoices",
            inv.id,
            "issued",
            diff::created(&data),
            data,
        )?;
        Outcome::created(&inv, format!("/api/v1/invoices/{}", inv.id))
    })
    .await
}

/// Void an issued invoice (`payments:update`).
#[utoipa::path(
    tag = "payments",
    params(("id" = Uuid, Path, description = "Invoice id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses((status = 200, description = "Voided", body = Invoice), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/invoices/{id}/void")]
pub async fn void_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Update)?;
    let id = id.into_inner();
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, b"", idempotency::keep, move |c| {
        let row = repo::find_invoice(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("invoice"))?;
        if row.status != "issued" {
            return Err(ApiError::conflict("invalid_transition", "the invoice is already void"));
        }
        let inv = Invoice::from(repo::void_invoice(c, id)?);
        let mut changes = serde_json::Map::new();
        changes.insert("status".into(), json!({"before": "issued", "after": "void"}));
        audit::record(
            c,
            &writer.actor(),
            "invoices",
            id,
            "voided",
            changes,
            serde_json::to_value(&inv).unwrap_or_default(),
        )?;
        Outcome::ok(&inv)
    })
    .await
}
