//! Required outputs (documents) attached to a deal.

use super::*;

/// Deliverables attached to a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Outputs", body = OutputList), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 201, description = "Attached", body = Output, headers(("Location" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let title = errs.required_text("title", &dto.title);
    let url = errs.website("url", dto.url);
    let notes = errs.text(dto.notes);
    let file_ref = errs.line(dto.file_ref);
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let row = opps::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
        let stages = pipelines::stages_of(c, &[row.pipeline_id], true)?;
        let stage_id = dto.stage_id.unwrap_or(row.stage_id);
        if !stages.iter().any(|s| s.id == stage_id) {
            return Err(ApiError::field(
                "stage_id",
                "not_found",
                "no such stage in this deal's pipeline",
            ));
        }
        if let Some(code) = &dto.output_code {
            let defined = stages
                .into_iter()
                .map(Stage::from)
                .any(|s| s.required_outputs.iter().any(|o| &o.code == code));
            if !defined {
                return Err(ApiError::field(
                    "output_code",
                    "not_found",
                    "no stage of this pipeline requires such an output",
                ));
            }
        }
        let out = opps::insert_output(
            c,
            &opps::NewOutput {
                id: Uuid::now_v7(),
                opportunity_id: id,
                stage_id,
                output_code: dto.output_code.clone(),
                title,
                notes,
                url,
                file_ref,
                author_id: Some(writer.user_id),
            },
        )?;
        let dto = Output::from(out);
        let data = serde_json::to_value(&dto).unwrap_or_default();
        let mut changes = serde_json::Map::new();
        changes.insert("outputs".into(), json!({"before": null, "after": data}));
        audit::record(c, &writer.actor(), RES, id, "output_attached", changes, data)?;
        Outcome::created(&dto, format!("/api/v1/opportunities/{id}/outputs/{}", dto.id))
    })
    .await
}

/// Remove a deliverable from a deal.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("output_id" = Uuid, Path, description = "Output id")),
    responses((status = 204, description = "Removed"), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[delete("/opportunities/{id}/outputs/{output_id}")]
pub async fn delete_output(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let (id, output_id) = path.into_inner();
    let writer = auth.clone();
    let now = state.clock.now();
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                opps::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
                if !opps::delete_output(c, id, output_id, now)? {
                    return Err(ApiError::not_found("output"));
                }
                let mut changes = serde_json::Map::new();
                changes.insert("outputs".into(), json!({"before": {"id": output_id}, "after": null}));
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    id,
                    "output_removed",
                    changes,
                    json!({"opportunity_id": id, "output_id": output_id}),
                )?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
