//! `/api/v1/admin/settings`: document numbering and company details printed on quotes.

use actix_web::{get, post, put, web, HttpResponse};
use crm_db::repo::workflow;
use crm_domain::access::Action;
use serde_json::json;

use super::{run_op, BadRequest, BodyErrors, Forbidden, ReadErrors, Unauthorized};
use crate::auth::Auth;
use crate::dto::settings::{
    AccountTiering, BusinessCalendar, CompanyInfo, LeadSlaSetting, Numbering, NumberingSeries, PaymentSettings,
    TieringQueued,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::ValidJson;
use crate::state::AppState;

const RES: &str = "settings";

fn key(series: NumberingSeries) -> String {
    format!("{}_numbering", series.as_str())
}

fn defaults(series: NumberingSeries) -> Numbering {
    let (prefix, digits) = match series {
        NumberingSeries::Contract => ("HT", 5),
        NumberingSeries::Quote => ("BJ", 6),
        NumberingSeries::Invoice => ("FP", 6),
    };
    Numbering {
        prefix: prefix.into(),
        digits,
        include_year: true,
        separator: "-".into(),
        example: None,
    }
}

fn with_example(mut n: Numbering, year: i32) -> Numbering {
    let cfg = serde_json::to_value(&n).unwrap_or_default();
    n.example = Some(crm_app::numbering::format_number(
        &cfg,
        &n.prefix,
        n.digits as usize,
        year,
        1,
    ));
    n
}

/// The numbering pattern of a document series (`contract`, `quote`, `invoice`).
#[utoipa::path(
    tag = "admin",
    params(("series" = NumberingSeries, Path, description = "Document series")),
    responses((status = 200, description = "The pattern", body = Numbering), ReadErrors)
)]
#[get("/admin/settings/numbering/{series}")]
pub async fn get_numbering(
    state: web::Data<AppState>,
    auth: Auth,
    series: web::Path<NumberingSeries>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let series = series.into_inner();
    let year = chrono::Datelike::year(&state.clock.today());
    let v = state
        .db
        .run(move |c| Ok::<_, ApiError>(workflow::setting(c, &key(series))?))
        .await?;
    let d = defaults(series);
    let n = match v {
        Some(v) => Numbering {
            prefix: v.get("prefix").and_then(|x| x.as_str()).unwrap_or(&d.prefix).to_owned(),
            digits: v.get("digits").and_then(|x| x.as_u64()).map_or(d.digits, |x| x as u8),
            include_year: v.get("include_year").and_then(|x| x.as_bool()).unwrap_or(true),
            separator: v.get("separator").and_then(|x| x.as_str()).unwrap_or("-").to_owned(),
            example: None,
        },
        None => d,
    };
    Ok(HttpResponse::Ok().json(with_example(n, year)))
}

/// Set the numbering pattern: `<prefix><sep><year><sep><sequence>`; sequences restart
/// each year and never skip a number.
#[utoipa::path(
    tag = "admin",
    params(("series" = NumberingSeries, Path, description = "Document series")),
    request_body = Numbering,
    responses(
        (status = 200, description = "The new pattern", body = Numbering),
        ReadErrors, BodyErrors
    )
)]
#[put("/admin/settings/numbering/{series}")]
pub async fn put_numbering(
    state: web::Data<AppState>,
    auth: Auth,
    series: web::Path<NumberingSeries>,
    body: ValidJson<Numbering>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let series = series.into_inner();
    let mut n = body.value?;
    n.example = None;
    let pattern = as_object(&n)?;
    let year = chrono::Datelike::year(&state.clock.today());
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::settings::set_numbering(c, ctx, series.as_str(), &pattern)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(with_example(n, year)))
}

/// Company details printed on quotes.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Company details", body = CompanyInfo), Unauthorized, Forbidden)
)]
#[get("/admin/settings/company")]
pub async fn get_company(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let v = state
        .db
        .run(move |c| Ok::<_, ApiError>(workflow::setting(c, "company")?))
        .await?
        .unwrap_or(json!({}));
    let info: CompanyInfo = serde_json::from_value(v).unwrap_or_default();
    Ok(HttpResponse::Ok().json(info))
}

/// Set the company details printed on quotes.
#[utoipa::path(
    tag = "admin",
    request_body = CompanyInfo,
    responses(
        (status = 200, description = "Company details", body = CompanyInfo),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[put("/admin/settings/company")]
pub async fn put_company(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<CompanyInfo>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let info = body.value?;
    let value = as_object(&info)?;
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::settings::set_company(c, ctx, &value)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(info))
}

/// How payments are bounded and when a prepayment wins a deal.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Payment rules", body = PaymentSettings), Unauthorized, Forbidden)
)]
#[get("/admin/settings/payments")]
pub async fn get_payments(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let rules = state
        .db
        .run(move |c| Ok::<_, ApiError>(workflow::payment_rules(c)?))
        .await?;
    Ok(HttpResponse::Ok().json(PaymentSettings::from(rules)))
}

/// Set the payment rules: the over-payment tolerance, whether prepayments are taken on
/// unsigned contracts, and the share of prepayment that counts as "payment received".
#[utoipa::path(
    tag = "admin",
    request_body = PaymentSettings,
    responses(
        (status = 200, description = "Payment rules", body = PaymentSettings),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[put("/admin/settings/payments")]
pub async fn put_payments(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<PaymentSettings>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let dto = body.value?;
    let rules = run_op(&state, &auth, move |c, ctx| {
        let (tolerance, accept, pct) = (
            dto.overpayment_tolerance,
            dto.accept_prepayments,
            dto.prepayment_wins_pct,
        );
        Ok(crm_app::settings::set_payment_rules(c, ctx, tolerance, accept, pct)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(PaymentSettings::from(rules)))
}

/// A settings body as the JSON object an operation stores.
fn as_object<T: serde::Serialize>(v: &T) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    match crate::idempotency::to_value(v)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(ApiError::internal("a settings body is an object")),
    }
}

/// The business calendar (default: Monday to Friday, 09:00–12:00 and 13:30–18:00,
/// UTC+8, no holidays).
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Business calendar", body = BusinessCalendar), Unauthorized, Forbidden)
)]
#[get("/admin/settings/calendar")]
pub async fn get_calendar(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let cal = state
        .db
        .run(move |c| Ok::<_, ApiError>(crm_app::rules::calendar(c)?))
        .await?;
    Ok(HttpResponse::Ok().json(BusinessCalendar::from(cal)))
}

/// Set the business calendar: working weekdays and hours, public holidays and make-up
/// working days as data, and the time zone.
#[utoipa::path(
    tag = "admin",
    request_body = BusinessCalendar,
    responses(
        (status = 200, description = "Business calendar", body = BusinessCalendar),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[put("/admin/settings/calendar")]
pub async fn put_calendar(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<BusinessCalendar>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let cal: crm_domain::calendar::Calendar = body.value?.into();
    let out = run_op(&state, &auth, move |c, ctx| {
        crm_app::settings::set_calendar(c, ctx, &cal)?;
        Ok(crm_app::rules::calendar(c)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(BusinessCalendar::from(out)))
}

/// The lead response SLA (default: one business hour from assignment).
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Lead response SLA", body = LeadSlaSetting), Unauthorized, Forbidden)
)]
#[get("/admin/settings/lead-sla")]
pub async fn get_lead_sla(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let sla = state
        .db
        .run(move |c| Ok::<_, ApiError>(crm_app::settings::lead_sla(c)?))
        .await?;
    Ok(HttpResponse::Ok().json(LeadSlaSetting::from(sla)))
}

/// Set the lead response SLA. Leads assigned from now on are due by it; leads already
/// assigned keep their due time.
#[utoipa::path(
    tag = "admin",
    request_body = LeadSlaSetting,
    responses(
        (status = 200, description = "Lead response SLA", body = LeadSlaSetting),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[put("/admin/settings/lead-sla")]
pub async fn put_lead_sla(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<LeadSlaSetting>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let b = body.value?;
    let sla = crm_app::settings::LeadSla {
        hours: b.hours,
        business_hours: b.business_hours,
    };
    let out = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::settings::set_lead_sla(c, ctx, sla)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(LeadSlaSetting::from(out)))
}

/// Customer tiering: the rules, their figures' windows and currency, on or off
/// (default: off, with starting rules).
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Customer tiering", body = AccountTiering), Unauthorized, Forbidden)
)]
#[get("/admin/settings/account-tiering")]
pub async fn get_account_tiering(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let t = state
        .db
        .run(move |c| Ok::<_, ApiError>(crm_app::tiering::get(c)?))
        .await?;
    Ok(HttpResponse::Ok().json(t))
}

/// Set customer tiering. Rules read only the tiering figures (422 `unknown_figure`
/// names the rule). Switched on, every account is recomputed in the background; after
/// that, daily and whenever an account's deals, contracts, payments or activities
/// change. A changed tier is written as the system, audited, and kept in the account's
/// tier history.
#[utoipa::path(
    tag = "admin",
    request_body = AccountTiering,
    responses(
        (status = 200, description = "Customer tiering", body = AccountTiering),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[put("/admin/settings/account-tiering")]
pub async fn put_account_tiering(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<AccountTiering>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let fields = body.fields()?;
    let t = run_op(&state, &auth, move |c, ctx| Ok(crm_app::tiering::set(c, ctx, &fields)?)).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// Recompute every account's tier now (in the background, in pages).
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 202, description = "Queued", body = TieringQueued),
        Unauthorized, Forbidden,
        (status = 409, description = "Tiering is off (`tiering_disabled`)", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/admin/settings/account-tiering/recompute")]
pub async fn recompute_account_tiers(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let queued = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::tiering::recompute_all(c, ctx)?)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(TieringQueued { queued }))
}
