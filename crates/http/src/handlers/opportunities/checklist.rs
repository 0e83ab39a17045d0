//! The stage checklist of a deal.

use super::*;

pub(super) fn build_checklist(c: &mut PgConnection, row: &OpportunityRow) -> ApiResult<Checklist> {
    let stages = pipelines::stages_of(c, &[row.pipeline_id], false)?;
    let state = opps::checklist(c, row.id)?;
    let attached = opps::output_codes(c, row.id)?;
    let stages = stages
        .into_iter()
        .filter(|s| s.kind != "lost")
        .map(|s| {
            let st = Stage::from(s);
            let tasks = st
                .key_tasks
                .iter()
                .map(|t: &StageItem| {
                    let entry = state.iter().find(|r| r.stage_id == st.id && r.task_code == t.code);
                    ChecklistItem {
                        code: t.code.clone(),
                        title: t.title.clone(),
                        done: entry.is_some_and(|e| e.done),
                        changed_by: entry.and_then(|e| e.changed_by),
                        changed_at: entry.map(|e| e.changed_at),
                    }
                })
                .collect();
            let outputs = st
                .required_outputs
                .iter()
                .map(|o| OutputStatus {
                    code: o.code.clone(),
                    title: o.title.clone(),
                    attached: attached.contains(&o.code),
                })
                .collect();
            ChecklistStage {
                stage_id: st.id,
                stage_code: st.code,
                stage_name: st.name,
                tasks,
                outputs,
            }
        })
        .collect();
    Ok(Checklist { stages })
}

/// The key-task checklist of every stage, with who did what when, and which required
/// outputs are attached.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id")),
    responses((status = 200, description = "Checklist", body = Checklist), ReadErrors)
)]
#[get("/opportunities/{id}/checklist")]
pub async fn get_checklist(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let list = state
        .db
        .run(move |c| {
            let row =
                opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            build_checklist(c, &row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Mark a key task of a stage done or undone.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), ("stage_id" = Uuid, Path, description = "Stage id"),
        ("task_code" = String, Path, description = "Key task code")),
    request_body = SetTask,
    responses(
        (status = 200, description = "The updated checklist", body = Checklist),
        ReadErrors, BodyErrors
    )
)]
#[put("/opportunities/{id}/checklist/{stage_id}/{task_code}")]
pub async fn set_checklist_task(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, Uuid, String)>,
    body: ValidJson<SetTask>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Update)?;
    let (id, stage_id, task) = path.into_inner();
    let done = body.value?.done;
    let list = run_op(&state, &auth, move |c, ctx| {
        let row = opportunities::set_key_task(c, ctx, id, (stage_id, &task), done)?;
        build_checklist(c, &row)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}
