//! Stage moves (under the entry criteria) and the stage history.

use super::*;

/// Move a deal to another stage of its pipeline.
///
/// Every entry into an open or won stage checks that stage's entry criteria, whether
/// the deal advances, wins or comes back from won or lost: when any is unmet the answer
/// is 422 `stage_criteria_unmet` with `unmet` listing every missing field, task or
/// output. Moving backwards and losing (the reason becomes the lost reason) need a
/// `reason`; moving a won or lost deal anywhere (reopening) needs a `reason` and the
/// `opportunities:reopen` permission (403 otherwise). Every move is recorded in the
/// stage history.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"),
        ("If-Match" = Option<String>, Header, description = "Optional ETag guard"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = MoveStage,
    responses(
        (status = 200, description = "Moved", body = Opportunity, headers(("ETag" = String))),
        ReadErrors, Conflict, PreconditionFailed, BodyErrors
    )
)]
#[post("/opportunities/{id}/stage")]
pub async fn move_stage(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    if_match: OptionalIfMatch,
    body: ValidJson<MoveStage>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Update)?;
    let id = id.into_inner();
    let dto = body.value?;
    let reason = dto.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    let ctx = auth.ctx();
    let cache = state.fields.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let before_row =
            opps::find(c, &scope, id, Liveness::Live, true)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
        if let Some(m) = if_match.0 {
            m.check(before_row.version)?;
        }
        let moved = opportunities::move_deal(c, &ctx, before_row, dto.stage_id, reason)?;
        let after = one(c, moved)?;
        Outcome::ok(&Shaper::new(&ctx.principal, RES, cache.get(c, RES)?).one(&after))
    })
    .await
}

/// Stage history: one entry per stay in a stage, with dwell time.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Stage visits, oldest first", body = StageHistory), ReadErrors)
)]
#[get("/opportunities/{id}/stage-history")]
pub async fn stage_history(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>(opps::stage_history(c, id)?)
        })
        .await?;
    // The amount and probability a deal entered each stage with are the fields' own
    // history: readable only as far as the fields are.
    let readable = |f: &str| auth.principal.field_access(RES, f) >= crm_domain::fields::FieldAccess::ReadOnly;
    let (amount, probability) = (readable("amount"), readable("probability"));
    Ok(HttpResponse::Ok().json(StageHistory {
        items: rows
            .into_iter()
            .map(|r| StageVisit::at(r, now))
            .map(|mut v| {
                if !amount {
                    v.amount = None;
                }
                if !probability {
                    v.probability = None;
                }
                v
            })
            .collect(),
    }))
}
