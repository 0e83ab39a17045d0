//! Amendments of signed contracts.

use super::*;

/// Amendments of a contract, oldest first.
#[utoipa::path(
    tag = "contracts",
    params(("id" = Uuid, Path, description = "Contract id")),
    responses((status = 200, description = "Amendments", body = AmendmentList), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 201, description = "Amended", body = Amendment, headers(("Location" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let description = errs.required_text("description", &dto.description);
    let ch = contract_changes(
        &mut errs,
        dto.title,
        dto.amount,
        dto.start_date,
        dto.end_date,
        dto.terms,
    );
    if ch.is_empty() {
        errs.add(
            "description",
            "no_change",
            "an amendment changes at least one of title, amount, dates, terms",
        );
    }
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let before = repo::find(c, &scope, id, true)?.ok_or_else(|| ApiError::not_found("contract"))?;
        if !matches!(before.status.as_str(), "signed" | "active") {
            return Err(ApiError::conflict(
                "invalid_transition",
                format!(
                    "only signed or active contracts are amended; this one is {}",
                    before.status
                ),
            ));
        }
        check_dates(&before, &ch)?;
        let after = repo::update(c, id, &ch)?;
        let (b, a) = (to_json(&Contract::from(before)), to_json(&Contract::from(after)));
        let mut changes = diff::changes(&b, &a);
        changes.retain(|k, _| !matches!(k.as_str(), "updated_at" | "version"));
        let am = repo::insert_amendment(c, id, &description, &Value::Object(changes.clone()), writer.user_id)?;
        let mut payload = a;
        payload["amendment"] = json!({"seq": am.seq, "description": am.description});
        audit::record(c, &writer.actor(), RES, id, "amended", changes, payload)?;
        Outcome::created(&Amendment::from(am), format!("/api/v1/contracts/{id}/amendments"))
    })
    .await
}
