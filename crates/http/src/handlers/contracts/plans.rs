//! Payment plans (instalments) of a contract.

use super::*;

pub(super) fn build_plan(c: &mut PgConnection, k: &ContractRow, today: chrono::NaiveDate) -> ApiResult<PaymentPlan> {
    let rows = repo::plan(c, &[k.id])?;
    let planned: Decimal = rows.iter().map(|r| r.amount).sum();
    Ok(PaymentPlan {
        contract_id: k.id,
        contract_amount: money(k.amount),
        planned: money(planned),
        balanced: planned == k.amount,
        installments: rows.into_iter().map(|r| Installment::build(r, today)).collect(),
    })
}

/// A contract's payment plan with what is paid, outstanding and overdue per installment.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Payment plan", body = PaymentPlan), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/contracts/{id}/payment-plan")]
pub async fn get_payment_plan(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let today = state.clock.today();
    let plan = state
        .db
        .run(move |c| {
            let k = repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract"))?;
            build_plan(c, &k, today)
        })
        .await?;
    Ok(HttpResponse::Ok().json(plan))
}

/// Set (replace) the payment plan. The installments must add up to the contract amount
/// (422 `plan_total_mismatch`); a plan with payments or invoices on it cannot be
/// replaced (409 `plan_in_use`).
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    request_body = SetPaymentPlan,
    responses((status = 200, description = "The new plan", body = PaymentPlan), BadRequest, Unauthorized, Forbidden, NotFound,
        Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[put("/contracts/{id}/payment-plan")]
pub async fn set_payment_plan(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    body: ValidJson<SetPaymentPlan>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let mut items: Vec<(chrono::NaiveDate, Decimal, Option<String>)> = Vec::new();
    for (i, it) in dto.installments.into_iter().enumerate() {
        let a = check_amount(&mut errs, &format!("installments[{i}].amount"), Some(it.amount)).unwrap_or_default();
        if a <= Decimal::ZERO {
            errs.add(&format!("installments[{i}].amount"), "out_of_range", "must be positive");
        }
        items.push((it.due_date, a, errs.text(it.note)));
    }
    errs.into_result()?;
    items.sort_by_key(|(d, _, _)| *d);
    let writer = auth.clone();
    let today = state.clock.today();
    let plan = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let k = repo::find(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("contract"))?;
                if Status::parse(&k.status).is_some_and(Status::is_final) {
                    return Err(ApiError::conflict(
                        "invalid_transition",
                        format!("the contract is {}", k.status),
                    ));
                }
                let total: Decimal = items.iter().map(|(_, a, _)| *a).sum();
                if total != k.amount {
                    return Err(ApiError::unprocessable(
                        "plan_total_mismatch",
                        format!(
                            "installments add up to {} but the contract amount is {}",
                            money(total),
                            money(k.amount)
                        ),
                    )
                    .with_extra("planned", json!(money(total)))
                    .with_extra("contract_amount", json!(money(k.amount))));
                }
                if repo::plan_in_use(c, id)? {
                    return Err(ApiError::conflict(
                        "plan_in_use",
                        "payments or invoices refer to the current plan; it cannot be replaced",
                    ));
                }
                let before = build_plan(c, &k, today)?;
                let rows: Vec<InstallmentRow> = items
                    .iter()
                    .enumerate()
                    .map(|(i, (d, a, n))| InstallmentRow {
                        id: Uuid::now_v7(),
                        contract_id: id,
                        seq: i as i32 + 1,
                        due_date: *d,
                        amount: *a,
                        note: n.clone(),
                    })
                    .collect();
                repo::replace_plan(c, id, &rows)?;
                let after = build_plan(c, &k, today)?;
                let mut changes = serde_json::Map::new();
                changes.insert(
                    "payment_plan".into(),
                    json!({"before": before.installments.len(), "after": after.installments.len()}),
                );
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "payment_plan_set",
                    changes,
                    serde_json::to_value(&after).unwrap_or_default(),
                )?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(plan))
}
