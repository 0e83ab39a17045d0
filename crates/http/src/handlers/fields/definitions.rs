//! Custom field definitions: list, create, read, update (re-checking stored values), archive, restore, flagged values.

use super::*;

/// A definition as submitted, before checks.
pub(super) struct Draft<'a> {
    object: &'a str,
    key: &'a str,
    field_type: FieldType,
    settings: &'a Value,
    default: Option<&'a Value>,
    required_from_stage: Option<Uuid>,
}

/// Checks a definition as a whole; returns the parsed settings and normalised default.
pub(super) fn check_definition(
    c: &mut PgConnection,
    draft: Draft<'_>,
    others: &[FieldDefRow],
) -> ApiResult<(Settings, Option<Value>)> {
    let Draft {
        object,
        key,
        field_type: t,
        settings,
        default,
        required_from_stage,
    } = draft;
    let mut errs: Vec<FieldError> = Vec::new();
    let settings: Settings = match serde_json::from_value(if settings.is_null() {
        json!({})
    } else {
        settings.clone()
    }) {
        Ok(s) => s,
        Err(e) => return Err(ApiError::field("settings", "invalid", e.to_string())),
    };
    for (field, msg) in check_settings(t, &settings) {
        errs.push(FieldError::new(format!("settings.{field}"), "invalid", msg));
    }
    if t == FieldType::Formula {
        if let Some(f) = settings.expr.as_deref().and_then(|e| Formula::parse(e).ok()) {
            for r in f.fields() {
                let ok = match r.strip_prefix("custom.") {
                    Some(k) => {
                        k != key
                            && others
                                .iter()
                                .any(|d| d.key == k && d.archived_at.is_none() && d.field_type().is_numeric())
                    }
                    None => formula_inputs(object).contains(&r),
                };
                if !ok {
                    errs.push(FieldError::new(
                        "settings.expr",
                        "invalid",
                        format!("`{r}` is not a numeric field of {object}"),
                    ));
                }
            }
        }
    }
    let spec = FieldSpec {
        key: key.to_owned(),
        field_type: t,
        settings: settings.clone(),
    };
    let default = match default.filter(|d| !d.is_null()) {
        None => None,
        Some(_) if t == FieldType::Formula => {
            errs.push(FieldError::new("default_value", "not_allowed", "formulas are computed"));
            None
        }
        Some(d) => match check_value(&spec, d, Mode::Write) {
            Ok(v) => Some(v),
            Err(e) => {
                errs.push(FieldError::new("default_value", e.code, e.message));
                None
            }
        },
    };
    if let Some(stage) = required_from_stage {
        if object != "opportunities" {
            errs.push(FieldError::new(
                "required_from_stage_id",
                "not_allowed",
                "only opportunities have stages",
            ));
        } else if pipelines::find_stage(c, stage)?.is_none() {
            errs.push(FieldError::new("required_from_stage_id", "not_found", "no such stage"));
        }
    }
    if errs.is_empty() {
        Ok((settings, default))
    } else {
        Err(ApiError::validation(errs))
    }
}

/// Stored values that break a (new) definition: invalid ones and, when required,
/// missing ones. Then applies the migration, or refuses with a count.
pub(super) fn reconcile(
    c: &mut PgConnection,
    object: &str,
    spec: &FieldSpec,
    required: bool,
    default: Option<&Value>,
    migration: Option<&Migration>,
) -> ApiResult<()> {
    if spec.field_type == FieldType::Formula {
        return Ok(());
    }
    let rows = fields::stored_values(c, object, &spec.key)?;
    let mut invalid: Vec<(Uuid, Option<Value>)> = Vec::new();
    let mut missing: Vec<Uuid> = Vec::new();
    for r in rows {
        match &r.value {
            None | Some(Value::Null) => {
                if required {
                    missing.push(r.id);
                }
            }
            Some(v) => {
                if check_value(spec, v, Mode::Recheck).is_err() {
                    invalid.push((r.id, r.value.clone()));
                }
            }
        }
    }
    if invalid.is_empty() && missing.is_empty() {
        return Ok(());
    }
    match migration {
        None => {
            let sample: Vec<Uuid> = invalid
                .iter()
                .map(|(id, _)| *id)
                .chain(missing.iter().copied())
                .take(10)
                .collect();
            Err(ApiError::conflict(
                "definition_conflicts_with_data",
                format!(
                    "{} records hold values this definition rejects and {} lack a required value; send a migration \
                     (set_default or flag_invalid)",
                    invalid.len(),
                    missing.len()
                ),
            )
            .with_extra(
                "breaking",
                json!({"invalid": invalid.len(), "missing": missing.len(), "sample_record_ids": sample}),
            ))
        }
        Some(Migration::SetDefault { value }) => {
            let raw = value.clone().or_else(|| default.cloned()).ok_or_else(|| {
                ApiError::field("migration.value", "required", "give a value (the field has no default)")
            })?;
            let v = check_value(spec, &raw, Mode::Write)
                .map_err(|e| ApiError::field("migration.value", e.code, e.message))?;
            if v.is_null() {
                return Err(ApiError::field(
                    "migration.value",
                    "required",
                    "the value must not be empty",
                ));
            }
            let ids: Vec<Uuid> = invalid
                .iter()
                .map(|(id, _)| *id)
                .chain(missing.iter().copied())
                .collect();
            fields::set_values(c, object, &spec.key, &ids, &v)?;
            Ok(())
        }
        Some(Migration::FlagInvalid) => {
            fields::flag(c, object, &spec.key, &invalid, "invalid_after_change")?;
            let missing: Vec<(Uuid, Option<Value>)> = missing.into_iter().map(|id| (id, None)).collect();
            fields::flag(c, object, &spec.key, &missing, "missing_required")?;
            Ok(())
        }
    }
}

/// Types whose values the list's `q` search can look in.
pub(super) fn search_kind(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::Text | FieldType::LongText | FieldType::Email | FieldType::Phone | FieldType::Url
    )
}

pub(super) fn check_searchable(searchable: bool, t: FieldType) -> ApiResult<()> {
    if searchable && !search_kind(t) {
        return Err(ApiError::field(
            "searchable",
            "not_searchable",
            "only text, long text, e-mail, phone and URL fields can be searchable",
        ));
    }
    Ok(())
}

pub(super) fn index_kind(t: FieldType) -> bool {
    t.is_numeric()
        || t.is_temporal()
        || matches!(
            t,
            FieldType::Text | FieldType::SingleSelect | FieldType::Email | FieldType::Phone | FieldType::Url
        )
}

/// Custom fields of an object (admin view).
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "accounts, contacts, leads or opportunities"), FieldListQuery),
    responses((status = 200, description = "Definitions", body = FieldList), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 201, description = "Created", body = FieldDefinition, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let dto = body.value?;
    if !valid_key(&dto.key) {
        return Err(ApiError::field(
            "key",
            "invalid_format",
            "snake_case: lower-case letters, digits and _, starting with a letter",
        ));
    }
    if builtins(object).iter().any(|b| b.key == dto.key) || dto.key == "custom" {
        return Err(ApiError::field("key", "reserved", "a built-in field has this name"));
    }
    let t: FieldType = FieldType::parse(dto.field_type.as_str()).unwrap_or(FieldType::Text);
    check_searchable(dto.searchable, t)?;
    let writer = auth.clone();
    let st = state.clone();
    let resp = idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let others = fields::list(c, object, true)?;
        if others.iter().any(|d| d.key == dto.key) {
            return Err(ApiError::conflict(
                "duplicate",
                "a field with this key exists (perhaps archived: restore it)",
            ));
        }
        let draft = Draft {
            object,
            key: &dto.key,
            field_type: t,
            settings: &dto.settings,
            default: dto.default_value.as_ref(),
            required_from_stage: dto.required_from_stage_id,
        };
        let (settings, default) = check_definition(c, draft, &others)?;
        let spec = FieldSpec {
            key: dto.key.clone(),
            field_type: t,
            settings: settings.clone(),
        };
        reconcile(c, object, &spec, dto.required, default.as_ref(), dto.migration.as_ref())?;
        let row = fields::insert(
            c,
            &NewFieldDef {
                id: Uuid::now_v7(),
                object: object.into(),
                key: dto.key.clone(),
                label_zh: dto.label_zh.trim().into(),
                label_en: dto.label_en.trim().into(),
                help_text: dto.help_text.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()),
                field_type: t.as_str().into(),
                required: dto.required,
                required_from_stage_id: dto.required_from_stage_id,
                default_value: default,
                position: dto.position,
                group_name: dto.group.map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()),
                settings: serde_json::to_value(&settings).unwrap_or_default(),
                filterable: dto.filterable,
                searchable: dto.searchable,
            },
        )?;
        if dto.filterable && index_kind(t) {
            fields::create_index(c, object, &row.key, t)?;
        }
        if dto.searchable {
            fields::create_search_index(c, object, &row.key)?;
        }
        let out = FieldDefinition::from(row);
        let data = to_json(&out);
        audit::record(c, &writer.actor(), RES, out.id, "created", diff::created(&data), data)?;
        // Records a `set_default` migration gave the new value to.
        audit::record_pending(c, &writer.actor(), object, "migrated")?;
        notify_auth_changed(c)?;
        Outcome::created(&out, format!("/api/v1/admin/fields/{object}/{}", out.key))
    })
    .await;
    st.invalidate_caches();
    resp
}

/// One custom field.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key")),
    responses((status = 200, description = "The definition", body = FieldDefinition, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Updated", body = FieldDefinition, headers(("ETag" = String))), BadRequest, Unauthorized,
        Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, PreconditionRequired),
    security(("bearer_auth" = []), ("api_key" = []))
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
    let dto = body.value?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = fields::find(c, object, &key, true)?.ok_or_else(|| ApiError::not_found("field"))?;
                if_match.0.check(before.version)?;
                let others: Vec<FieldDefRow> = fields::list(c, object, true)?
                    .into_iter()
                    .filter(|d| d.key != key)
                    .collect();
                let t = dto.field_type.map_or(before.field_type(), |t| {
                    FieldType::parse(t.as_str()).unwrap_or(FieldType::Text)
                });
                let settings_in = dto.settings.clone().unwrap_or_else(|| before.settings.clone());
                let default_in = dto
                    .default_value
                    .clone()
                    .unwrap_or_else(|| before.default_value.clone());
                let stage = dto.required_from_stage_id.unwrap_or(before.required_from_stage_id);
                let draft = Draft {
                    object,
                    key: &key,
                    field_type: t,
                    settings: &settings_in,
                    default: default_in.as_ref(),
                    required_from_stage: stage,
                };
                let (settings, default) = check_definition(c, draft, &others)?;
                let required = dto.required.unwrap_or(before.required);
                let searchable = dto.searchable.unwrap_or(before.searchable);
                check_searchable(searchable, t)?;
                let spec = FieldSpec {
                    key: key.clone(),
                    field_type: t,
                    settings: settings.clone(),
                };
                let narrowing = t != before.field_type() || dto.settings.is_some() || (required && !before.required);
                if narrowing {
                    reconcile(c, object, &spec, required, default.as_ref(), dto.migration.as_ref())?;
                }
                let ch = FieldDefChanges {
                    label_zh: dto.label_zh.map(|l| l.trim().to_owned()),
                    label_en: dto.label_en.map(|l| l.trim().to_owned()),
                    help_text: dto
                        .help_text
                        .map(|h| h.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty())),
                    field_type: Some(t.as_str().to_owned()),
                    required: Some(required),
                    required_from_stage_id: Some(stage),
                    default_value: Some(default),
                    position: dto.position,
                    group_name: dto
                        .group
                        .map(|g| g.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty())),
                    settings: Some(serde_json::to_value(&settings).unwrap_or_default()),
                    filterable: dto.filterable,
                    searchable: Some(searchable),
                    archived_at: None,
                };
                let after = fields::update(c, before.id, &ch)?;
                if after.filterable && index_kind(t) {
                    if !before.filterable || before.field_type() != t {
                        fields::create_index(c, object, &key, t)?;
                    }
                } else if before.filterable {
                    fields::drop_index(c, object, &key)?;
                }
                match (before.searchable, after.searchable) {
                    (false, true) => fields::create_search_index(c, object, &key)?,
                    (true, false) => fields::drop_search_index(c, object, &key)?,
                    _ => {}
                }
                let (b, a) = (
                    to_json(&FieldDefinition::from(before)),
                    to_json(&FieldDefinition::from(after.clone())),
                );
                audit::record(c, &writer.actor(), RES, after.id, "updated", diff::changes(&b, &a), a)?;
                audit::record_pending(c, &writer.actor(), object, "migrated")?;
                notify_auth_changed(c)?;
                Ok::<_, ApiError>(after)
            })
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
    let now = state.clock.now();
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = fields::find(c, object, &key, true)?.ok_or_else(|| ApiError::not_found("field"))?;
                if before.archived_at.is_some() == archived {
                    return Ok(before);
                }
                let at = if archived { Some(now) } else { None };
                let after = fields::update(
                    c,
                    before.id,
                    &FieldDefChanges {
                        archived_at: Some(at),
                        ..FieldDefChanges::default()
                    },
                )?;
                let change = json!({"archived": {"before": !archived, "after": archived}});
                audit::record(
                    c,
                    &writer.actor(),
                    RES,
                    after.id,
                    if archived { "archived" } else { "restored" },
                    change.as_object().cloned().unwrap_or_default(),
                    json!({"object": object, "key": key}),
                )?;
                notify_auth_changed(c)?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    state.invalidate_caches();
    Ok(row)
}

/// Archive a field: it disappears from forms and responses; stored values are kept.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object"), ("key" = String, Path, description = "Field key")),
    responses((status = 204, description = "Archived"), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Restored", body = FieldDefinition), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
    responses((status = 200, description = "Flagged values (at most 1000)", body = FlaggedList), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
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
