//! Form layouts per object (and pipeline).

use super::*;

/// The form layout for an object (per pipeline for opportunities when one exists).
/// Fields the caller cannot see are left out.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), LayoutQuery),
    responses((status = 200, description = "The layout", body = Layout), BadRequest, Unauthorized, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Saved", body = Layout), BadRequest, Unauthorized, Forbidden, NotFound,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                if let Some(p) = dto.pipeline_id {
                    if object != "opportunities" {
                        return Err(ApiError::field(
                            "pipeline_id",
                            "not_allowed",
                            "only opportunity layouts are per pipeline",
                        ));
                    }
                    pipelines::find(c, p)?
                        .ok_or_else(|| ApiError::field("pipeline_id", "not_found", "no such pipeline"))?;
                }
                let defs = fields::list(c, object, false)?;
                let mut errs = Vec::new();
                let mut seen: Vec<&str> = Vec::new();
                for (i, s) in dto.sections.iter().enumerate() {
                    if s.title_zh.trim().is_empty() || s.title_en.trim().is_empty() {
                        errs.push(FieldError::new(
                            format!("sections[{i}].title_zh"),
                            "required",
                            "both titles are needed",
                        ));
                    }
                    for (j, f) in s.fields.iter().enumerate() {
                        let known = match f.strip_prefix("custom.") {
                            Some(k) => defs.iter().any(|d| d.key == k),
                            None => builtins(object).iter().any(|b| b.key == f),
                        };
                        if !known {
                            errs.push(FieldError::new(
                                format!("sections[{i}].fields[{j}]"),
                                "not_found",
                                format!("no field `{f}`"),
                            ));
                        } else if seen.contains(&f.as_str()) {
                            errs.push(FieldError::new(
                                format!("sections[{i}].fields[{j}]"),
                                "duplicate",
                                "a field appears once",
                            ));
                        }
                        seen.push(f);
                    }
                }
                if !errs.is_empty() {
                    return Err(ApiError::validation(errs));
                }
                let existing = fields::find_layout_exact(c, object, dto.pipeline_id)?;
                let sections: Vec<LayoutSection> = dto.sections.clone();
                let value = serde_json::to_value(&sections).unwrap_or_default();
                let row =
                    fields::upsert_layout(c, existing.as_ref(), object, dto.pipeline_id, dto.name.trim(), &value)?;
                let mut changes = serde_json::Map::new();
                changes.insert(
                    "sections".into(),
                    json!({"before": existing.map(|e| e.sections), "after": value}),
                );
                audit::record(
                    c,
                    &writer.actor(),
                    "layouts",
                    row.id,
                    "saved",
                    changes,
                    json!({"object": object, "pipeline_id": dto.pipeline_id}),
                )?;
                Ok::<_, ApiError>(row)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(Layout::from(row)))
}
