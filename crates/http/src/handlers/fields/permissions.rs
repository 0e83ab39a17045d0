//! Field permissions per role.

use super::*;

/// A role's field restrictions.
#[utoipa::path(
    tag = "fields",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 200, description = "Restrictions", body = FieldPermissions), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/admin/roles/{id}/field-permissions")]
pub async fn get_field_permissions(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    auth.require("roles", Action::Admin)?;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            roles::find(c, id)?.ok_or_else(|| ApiError::not_found("role"))?;
            Ok::<_, ApiError>(fields::role_restrictions(c, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(FieldPermissions {
        items: rows
            .into_iter()
            .filter_map(|(o, f, a)| {
                Some(FieldRestriction {
                    object: RestrictedObject::parse(&o)?,
                    field: f,
                    access: Restriction::parse(&a)?,
                })
            })
            .collect(),
    }))
}

/// Replace a role's field restrictions: per field hidden (absent from responses,
/// filters, sorts), masked (138****1234, read-only) or read-only. Users with several
/// roles get the most permissive access among them.
#[utoipa::path(
    tag = "fields",
    params(("id" = Uuid, Path, description = "Role id")),
    request_body = FieldPermissions,
    responses((status = 200, description = "Saved", body = FieldPermissions), BadRequest, Unauthorized, Forbidden, NotFound,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[put("/admin/roles/{id}/field-permissions")]
pub async fn put_field_permissions(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    body: ValidJson<FieldPermissions>,
) -> ApiResult<HttpResponse> {
    auth.require("roles", Action::Admin)?;
    let id = id.into_inner();
    let items = body.value?.items;
    let writer = auth.clone();
    let saved = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                roles::find_for_update(c, id)?.ok_or_else(|| ApiError::not_found("role"))?;
                let mut errs = Vec::new();
                let mut rows: Vec<(String, String, String)> = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let object = it.object.as_str();
                    // The field's type, when the object has such a field.
                    let field_type: Option<String> = match it.field.strip_prefix("custom.") {
                        Some(_) if FieldObject::parse(object).is_none() => None,
                        Some(k) => fields::find(c, object, k, false)?.map(|d| d.field_type),
                        None => builtins(object)
                            .iter()
                            .find(|b| b.key == it.field)
                            .map(|b| b.field_type.to_owned()),
                    };
                    let Some(field_type) = field_type else {
                        errs.push(FieldError::new(
                            format!("items[{i}].field"),
                            "not_found",
                            format!("{object} has no field `{}`", it.field),
                        ));
                        continue;
                    };
                    if crate::meta::protected(object).contains(&it.field.as_str()) {
                        errs.push(FieldError::new(
                            format!("items[{i}].field"),
                            "not_restrictable",
                            format!("every reader of {object} sees `{}`", it.field),
                        ));
                    } else if it.access == Restriction::Masked && !crate::meta::maskable(&field_type) {
                        errs.push(FieldError::new(
                            format!("items[{i}].access"),
                            "not_maskable",
                            format!("a {field_type} field can be hidden or read-only, not masked"),
                        ));
                    } else if rows.iter().any(|(o, f, _)| o == object && *f == it.field) {
                        errs.push(FieldError::new(
                            format!("items[{i}].field"),
                            "duplicate",
                            "listed twice",
                        ));
                    }
                    rows.push((object.to_owned(), it.field.clone(), it.access.as_str().to_owned()));
                }
                if !errs.is_empty() {
                    return Err(ApiError::validation(errs));
                }
                let before = fields::role_restrictions(c, id)?;
                fields::set_role_restrictions(c, id, &rows)?;
                let mut changes = serde_json::Map::new();
                changes.insert("field_permissions".into(), json!({"before": before, "after": rows}));
                audit::record(
                    c,
                    &writer.actor(),
                    "roles",
                    id,
                    "field_permissions_updated",
                    changes,
                    json!({"role_id": id}),
                )?;
                notify_auth_changed(c)?;
                Ok::<_, ApiError>(items)
            })
        })
        .await?;
    state.invalidate_caches();
    Ok(HttpResponse::Ok().json(FieldPermissions { items: saved }))
}
