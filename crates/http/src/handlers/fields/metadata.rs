//! `/meta/{object}`: every field the caller can see, with types, options and access.

use super::*;

pub(super) fn access_dto(a: FieldAccess) -> AccessDto {
    match a {
        FieldAccess::Full => AccessDto::Full,
        FieldAccess::ReadOnly => AccessDto::ReadOnly,
        _ => AccessDto::Masked,
    }
}

/// Every field of an object the caller can see, built-in and custom, with types,
/// options and the caller's access: the contract forms and tables are rendered from.
#[utoipa::path(
    tag = "fields",
    params(("object" = FieldObject, Path, description = "Object")),
    responses((status = 200, description = "Field metadata", body = Meta), BadRequest, Unauthorized, NotFound)
)]
#[get("/meta/{object}")]
pub async fn meta(state: web::Data<AppState>, auth: Auth, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let object = object(&path)?;
    if auth.scope(object, Action::Read).is_none() {
        return Err(ApiError::forbidden(format!("missing permission {object}:read")));
    }
    let cache = state.fields.clone();
    let defs = state
        .db
        .run(move |c| cache.get(c, object).map_err(ApiError::from))
        .await?;
    let p = &auth.principal;
    let mut out = Vec::new();
    for (i, b) in builtins(object).into_iter().enumerate() {
        let access = p.field_access(object, b.key);
        if access == FieldAccess::Hidden {
            continue;
        }
        out.push(MetaField {
            key: b.key.into(),
            custom: false,
            label_zh: b.label_zh.into(),
            label_en: b.label_en.into(),
            help_text: None,
            field_type: FieldTypeDto::parse(b.field_type).unwrap_or(FieldTypeDto::Text),
            required: b.required,
            required_from_stage_id: None,
            system: b.system,
            access: if b.system {
                AccessDto::ReadOnly.max_with(access_dto(access))
            } else {
                access_dto(access)
            },
            options: b
                .options
                .iter()
                .map(|o| MetaOption {
                    key: (*o).into(),
                    label_zh: (*o).into(),
                    label_en: (*o).into(),
                    color: None,
                    retired: false,
                })
                .collect(),
            group: None,
            position: i32::try_from(i).unwrap_or(0),
            settings: json!({}),
            filterable: b.filterable,
            searchable: crate::meta::searched(object, b.key) && access >= FieldAccess::ReadOnly,
        });
    }
    for d in defs.iter().filter(|d| d.archived_at.is_none()) {
        let name = format!("custom.{}", d.key);
        let access = p.field_access(object, &name);
        if access == FieldAccess::Hidden {
            continue;
        }
        let settings: Settings = serde_json::from_value(d.settings.clone()).unwrap_or_default();
        let t = d.field_type();
        out.push(MetaField {
            key: name,
            custom: true,
            label_zh: d.label_zh.clone(),
            label_en: d.label_en.clone(),
            help_text: d.help_text.clone(),
            field_type: FieldTypeDto::parse(t.as_str()).unwrap_or(FieldTypeDto::Text),
            required: d.required,
            required_from_stage_id: d.required_from_stage_id,
            system: t == FieldType::Formula,
            access: if t == FieldType::Formula {
                AccessDto::ReadOnly.max_with(access_dto(access))
            } else {
                access_dto(access)
            },
            options: settings
                .options
                .iter()
                .map(|o| MetaOption {
                    key: o.key.clone(),
                    label_zh: o.label_zh.clone(),
                    label_en: o.label_en.clone(),
                    color: o.color.clone(),
                    retired: o.retired,
                })
                .collect(),
            group: d.group_name.clone(),
            position: 1000 + d.position,
            settings: d.settings.clone(),
            searchable: d.searchable && access >= FieldAccess::ReadOnly,
            filterable: access >= FieldAccess::ReadOnly,
        });
    }
    Ok(HttpResponse::Ok().json(Meta {
        object: object.into(),
        fields: out,
    }))
}

impl AccessDto {
    /// The more restrictive of two accesses (read-only beats full, masked beats both).
    fn max_with(self, other: AccessDto) -> AccessDto {
        let rank = |a: AccessDto| match a {
            AccessDto::Full => 0,
            AccessDto::ReadOnly => 1,
            AccessDto::Masked => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}
