//! Form layouts per object (and pipeline).

use super::*;

/// The form layout for an object (per pipeline for opportunities when one exists).
/// Fields the caller cannot see are left out.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), LayoutQuery),
    responses((status = 200, description = "The layout", body = Layout), BadRequest, Unauthorized, NotFound)
)]
#[get("/layouts/{object}")]
pub async fn get_layout(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<String>,
    q: web::Query<LayoutQuery>,
) -> ApiResult<HttpResponse> {
    let object = object(&path)?;
    let pipeline = q.pipeline_id;
    let row = state
        .db
        .run(move |c| fields::layout(c, object, pipeline).map_err(ApiError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("layout"))?;
    let mut layout = Layout::from(row);
    for s in &mut layout.sections {
        s.fields
            .retain(|f| auth.principal.field_access(object, f) != FieldAccess::Hidden);
    }
    Ok(HttpResponse::Ok().json(layout))
}

/// Create or replace the layout of an object (optionally for one pipeline).
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object")),
    request_body = PutLayout,
    responses(
        (status = 200, description = "Saved", body = Layout),
        ReadErrors, BodyErrors
    )
)]
#[put("/admin/layouts/{object}")]
pub async fn put_layout(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<String>,
    body: ValidJson<PutLayout>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let object = object(&path)?;
    let dto = body.value?;
    let sections: Vec<crm_app::fields::Section> = dto
        .sections
        .iter()
        .map(|s| crm_app::fields::Section {
            title_zh: s.title_zh.clone(),
            title_en: s.title_en.clone(),
            fields: s.fields.clone(),
        })
        .collect();
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::fields::save_layout(
            c,
            ctx,
            (object, dto.pipeline_id),
            &dto.name,
            &sections,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Layout::from(row)))
}
