//! Custom field definitions: list, create, read, update (re-checking stored values), archive, restore, flagged values.

use super::*;

/// Custom fields of an object (admin view).
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "accounts, contacts, leads or opportunities"), FieldListQuery),
    responses((status = 200, description = "Definitions", body = FieldList), ReadErrors)
)]
#[get("/admin/fields/{object}")]
pub async fn list_fields(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<String>,
    q: web::Query<FieldListQuery>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let object = object(&path)?;
    let all = q.include_archived;
    let rows = state
        .db
        .run(move |c| fields::list(c, object, all).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(FieldList {
        items: rows.into_iter().map(FieldDefinition::from).collect(),
    }))
}

/// Define a custom field. Values are validated on every write, returned on reads, and
/// can be filtered and sorted on (`custom.<key>=`, `_gte`, `_lte`, `sort=custom.<key>`).
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateField,
    responses(
        (status = 201, description = "Created", body = FieldDefinition, headers(("Location" = String), ("ETag" = String))),
        ReadErrors, Conflict, BodyErrors
    )
)]
#[post("/admin/fields/{object}")]
pub async fn create_field(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    path: web::Path<String>,
    body: ValidJson<CreateField>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let object = object(&path)?;
    let raw = body.raw.clone();
    let fields_in = body.fields()?;
    let ctx = auth.ctx();
    let resp = idempotency::post(&state, &auth, key, &req, &raw, idempotency::keep, move |c| {
        let out = FieldDefinition::from(crm_app::fields::create(c, &ctx, object, &fields_in)?);
        Outcome::created(&out, format!("/api/v1/admin/fields/{object}/{}", out.key))
    })
    .await;
    state.invalidate_caches();
    resp
}

/// One custom field.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key")),
    responses((status = 200, description = "The definition", body = FieldDefinition, headers(("ETag" = String))), ReadErrors)
)]
#[get("/admin/fields/{object}/{key}")]
pub async fn get_field(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (o, key) = path.into_inner();
    let object = object(&o)?;
    let row = state
        .db
        .run(move |c| fields::find(c, object, &key, false).map_err(ApiError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("field"))?;
    let v = row.version;
    Ok(with_etag(&FieldDefinition::from(row), v))
}

/// Change a field. Narrowing the type or settings, or making it required, re-checks
/// every stored value: when some would break, the change is refused with their count
/// unless a `migration` says what to do (set a default, or leave them flagged).
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key"),
        ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateField,
    responses(
        (status = 200, description = "Updated", body = FieldDefinition, headers(("ETag" = String))),
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
)]
#[patch("/admin/fields/{object}/{key}")]
pub async fn update_field(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateField>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (o, key) = path.into_inner();
    let object = object(&o)?;
    let (expected, fields_in) = (if_match.0.expected(), body.fields()?);
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(crm_app::fields::update(c, ctx, (object, &key), expected, &fields_in)?)
    })
    .await?;
    state.invalidate_caches();
    let v = row.version;
    Ok(with_etag(&FieldDefinition::from(row), v))
}

pub(super) async fn set_archived(
    state: &AppState,
    auth: &Auth,
    object: &'static str,
    key: String,
    archived: bool,
) -> ApiResult<FieldDefRow> {
    let row = run_op(state, auth, move |c, ctx| {
        Ok(crm_app::fields::set_archived(c, ctx, (object, &key), archived)?)
    })
    .await?;
    state.invalidate_caches();
    Ok(row)
}

/// Archive a field: it disappears from forms and responses; stored values are kept.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key")),
    responses((status = 204, description = "Archived"), ReadErrors)
)]
#[delete("/admin/fields/{object}/{key}")]
pub async fn archive_field(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (o, key) = path.into_inner();
    set_archived(&state, &auth, object(&o)?, key, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore an archived field with the values it had.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key")),
    responses((status = 200, description = "Restored", body = FieldDefinition), ReadErrors)
)]
#[post("/admin/fields/{object}/{key}/restore")]
pub async fn restore_field(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (o, key) = path.into_inner();
    let row = set_archived(&state, &auth, object(&o)?, key, false).await?;
    Ok(HttpResponse::Ok().json(FieldDefinition::from(row)))
}

/// Records whose value was left invalid (or missing) by a definition change.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key")),
    responses((status = 200, description = "Flagged values (at most 1000)", body = FlaggedList), ReadErrors)
)]
#[get("/admin/fields/{object}/{key}/flagged")]
pub async fn flagged_values(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let (o, key) = path.into_inner();
    let object = object(&o)?;
    let rows = state
        .db
        .run(move |c| {
            fields::find(c, object, &key, false)?.ok_or_else(|| ApiError::not_found("field"))?;
            Ok::<_, ApiError>(fields::flagged(c, object, &key, 1000)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(FlaggedList {
        items: rows
            .into_iter()
            .map(|r| FlaggedValue {
                record_id: r.record_id,
                value: r.value,
                reason: r.reason,
                flagged_at: r.flagged_at,
            })
            .collect(),
    }))
}
