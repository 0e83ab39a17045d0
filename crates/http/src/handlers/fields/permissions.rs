//! Field permissions per role.

use super::*;

/// A role's field restrictions.
#[utoipa::path(
    tag = "fields",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 200, description = "Restrictions", body = FieldPermissions), ReadErrors)
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
    responses(
        (status = 200, description = "Saved", body = FieldPermissions),
        ReadErrors, BodyErrors
    )
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
    let rows: Vec<(String, String, String)> = items
        .iter()
        .map(|it| {
            (
                it.object.as_str().to_owned(),
                it.field.clone(),
                it.access.as_str().to_owned(),
            )
        })
        .collect();
    run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::fields::set_field_permissions(c, ctx, id, &rows)?)
    })
    .await?;
    state.invalidate_caches();
    Ok(HttpResponse::Ok().json(FieldPermissions { items }))
}
