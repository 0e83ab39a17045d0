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
    responses((status = 200, description = "Payment plan", body = PaymentPlan), ReadErrors)
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
    responses(
        (status = 200, description = "The new plan", body = PaymentPlan),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[put("/contracts/{id}/payment-plan")]
pub async fn set_payment_plan(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    body: ValidJson<SetPaymentPlan>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let id = id.into_inner();
    let fields = body.fields()?;
    let plan = crate::handlers::run_op(&state, &auth, move |c, ctx| {
        let input: Vec<crm_app::contracts::InstallmentInput> =
            crm_app::write::parse(&fields).map(|p: PlanInput| p.installments)?;
        let k = crm_app::contracts::set_plan(c, ctx, id, &input)?;
        build_plan(c, &k, ctx.today())
    })
    .await?;
    Ok(HttpResponse::Ok().json(plan))
}

/// The body of `PUT /contracts/{id}/payment-plan` as the operation reads it.
#[derive(serde::Deserialize)]
struct PlanInput {
    installments: Vec<crm_app::contracts::InstallmentInput>,
}
