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
            let totals = repo::receivables(c, &scope, Grouping::Total, acc, kid, overdue, today, 1000)?;
            Ok::<_, ApiError>((rows, totals))
        })
        .await?;
    let items: Vec<Receivable> = rows.into_iter().map(Into::into).collect();
    let totals: Vec<ReceivableTotal> = total
        .into_iter()
        .map(Receivable::from)
        .map(|t| ReceivableTotal {
            currency: t.currency,
            outstanding: t.outstanding,
            overdue: t.overdue_amount,
            ageing: t.ageing,
        })
        .collect();
    let zero = || AgeingBuckets {
        d0_30: money(Decimal::ZERO),
        d31_60: money(Decimal::ZERO),
        d61_90: money(Decimal::ZERO),
        d90_plus: money(Decimal::ZERO),
    };
    // One figure only where it means one currency's amount.
    let (total_outstanding, total_overdue, ageing) = match totals.as_slice() {
        [] => (Some(money(Decimal::ZERO)), Some(money(Decimal::ZERO)), Some(zero())),
        [one] => (
            Some(one.outstanding),
            Some(one.overdue),
            Some(AgeingBuckets {
                d0_30: one.ageing.d0_30,
                d31_60: one.ageing.d31_60,
                d61_90: one.ageing.d61_90,
                d90_plus: one.ageing.d90_plus,
            }),
        ),
        _ => (None, None, None),
    };
    Ok(HttpResponse::Ok().json(ReceivableReport {
        as_of: today,
        totals,
        total_outstanding,
        total_overdue,
        ageing,
        items,
    }))
}
