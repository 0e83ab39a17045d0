//! Receivables: due, collected, overdue and ageing.

use super::*;

/// Receivables per contract (default) or per account in the caller's `payments:read`
/// scope: contract amount, planned, invoiced, received, outstanding, overdue flag and
/// ageing buckets (days past due: 0-30, 31-60, 61-90, 90+), most overdue first.
#[utoipa::path(
    tag = "payments",
    params(ReceivablesQuery),
    responses((status = 200, description = "Receivables", body = ReceivableReport), BadRequest, Unauthorized, Forbidden)
)]
#[get("/receivables")]
pub async fn receivables(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ReceivablesQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(PAY, Action::Read)?;
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 500",
        ));
    }
    let today = state.clock.today();
    let group = match q.group_by {
        Some(ReceivableGroup::Account) => Grouping::Account,
        _ => Grouping::Contract,
    };
    let (rows, total) = state
        .db
        .run(move |c| {
            let (acc, kid, overdue) = (q.account_id, q.contract_id, q.overdue.unwrap_or(false));
            let rows = repo::receivables(c, &scope, group, acc, kid, overdue, today, limit)?;
            let total = repo::receivables(c, &scope, Grouping::Total, acc, kid, overdue, today, 1)?;
            Ok::<_, ApiError>((rows, total.into_iter().next()))
        })
        .await?;
    let items: Vec<Receivable> = rows.into_iter().map(Into::into).collect();
    let total: Option<Receivable> = total.map(Into::into);
    Ok(HttpResponse::Ok().json(ReceivableReport {
        as_of: today,
        total_outstanding: total.as_ref().map_or(money(Decimal::ZERO), |t| t.outstanding),
        total_overdue: total.as_ref().map_or(money(Decimal::ZERO), |t| t.overdue_amount),
        ageing: total.map(|t| t.ageing).unwrap_or_else(|| AgeingBuckets {
            d0_30: money(Decimal::ZERO),
            d31_60: money(Decimal::ZERO),
            d61_90: money(Decimal::ZERO),
            d90_plus: money(Decimal::ZERO),
        }),
        items,
    }))
}
