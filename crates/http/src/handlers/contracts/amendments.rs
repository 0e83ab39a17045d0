//! Amendments of signed contracts.

use super::*;

/// Amendments of a contract, oldest first.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Amendments", body = AmendmentList), ReadErrors)
)]
#[get("/contracts/{id}/amendments")]
pub async fn list_amendments(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            repo::find(c, &scope, id, false)?.ok_or_else(|| ApiError::not_found("contract"))?;
            Ok::<_, ApiError>(repo::amendments(c, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(AmendmentList {
        items: rows.into_iter().map(Amendment::from).collect(),
    }))
}

/// Amend a signed or active contract: the change is applied and kept with its
/// before/after values. An amount change unbalances the payment plan until it is set again.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateAmendment,
    responses(
        (status = 201, description = "Amended", body = Amendment, headers(("Location" = String))),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/contracts/{id}/amendments")]
pub async fn create_amendment(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<CreateAmendment>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let fields = body.fields()?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let description = fields
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let am = crm_app::contracts::amend(c, &ctx, id, &description, &fields)?;
        Outcome::created(&Amendment::from(am), format!("/api/v1/contracts/{id}/amendments"))
    })
    .await
}
