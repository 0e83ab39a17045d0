//! Required outputs (documents) attached to a deal.

use super::*;

/// Deliverables attached to a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Outputs", body = OutputList), ReadErrors)
)]
#[get("/opportunities/{id}/outputs")]
pub async fn list_outputs(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>(opps::outputs(c, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OutputList {
        items: rows.into_iter().map(Output::from).collect(),
    }))
}

/// Attach a deliverable (e.g. 《首次沟通纪要》) to a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateOutput,
    responses(
        (status = 201, description = "Attached", body = Output, headers(("Location" = String))),
        ReadErrors, BodyErrors
    )
)]
#[post("/opportunities/{id}/outputs")]
pub async fn create_output(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: ValidJson<CreateOutput>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, raw) = (id.into_inner(), body.raw.clone());
    let fields = body.fields()?;
    let ctx = auth.ctx();
    idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let out = Output::from(opportunities::attach_output(c, &ctx, id, &fields)?);
        Outcome::created(&out, format!("/api/v1/opportunities/{id}/outputs/{}", out.id))
    })
    .await
}

/// Remove a deliverable from a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("output_id" = Uuid, Path, description = "Output id")),
    responses((status = 204, description = "Removed"), ReadErrors)
)]
#[delete("/opportunities/{id}/outputs/{output_id}")]
pub async fn delete_output(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, output_id) = path.into_inner();
    run_op(&state, &auth, move |c, ctx| {
        Ok(opportunities::remove_output(c, ctx, id, output_id)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
